"""minray._ext.csvnum: numeric CSV records to columns, compiled and twin.

Three properties, on random CSV text built from the tokens that matter (ints of
every length, signs, leading zeros, points, exponents, empty fields, and the
text the parser must refuse):
- the compiled parser and its twin agree on every input (result or refusal);
- whatever they accept, pandas.read_csv (default options) reads to the same
  dtypes and the same bits, so handing a range to it instead changes nothing;
- what they refuse is refused for a reason the docstring names.
"""

import doctest
import io
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import minray._ext
from minray._ext import csvnum_py
from test_ext_hot_path import compiled as compiled_module

pd = pytest.importorskip("pandas")


def compiled():
    """The compiled module: skips under MINRAY_NO_EXTENSIONS=1, fails if not built."""
    return compiled_module("csvnum")


@pytest.fixture(params=["compiled", "twin"])
def csvnum(request):
    return compiled() if request.param == "compiled" else csvnum_py


def columns(out):
    return [np.frombuffer(col, kind) for kind, col in zip(out.kinds, out.columns)]


def like_pandas(body, ncols, out):
    """Assert pandas reads ``body`` (after a header) to exactly ``out``."""
    names = [f"c{i}" for i in range(ncols)]
    df = pd.read_csv(io.BytesIO((",".join(names) + "\n").encode() + body))
    assert len(df) == out.rows
    for name, kind, col in zip(names, out.kinds, columns(out)):
        want = df[name].to_numpy()
        assert str(want.dtype) == kind, (name, body)
        # the same bits, NaN included (a value off by one ulp fails here)
        assert want.tobytes() == col.tobytes() or (
            kind == "float64" and np.array_equal(want, col, equal_nan=True)
            and np.array_equal(np.signbit(want), np.signbit(col))), (name, body)


def test_twin_doctests():
    result = doctest.testmod(csvnum_py)
    assert result.attempted > 0 and result.failed == 0


def test_ints_floats_and_missing_values(csvnum):
    out = csvnum.parse(b"1,2.5,\n-3,1e3,7\r\n\n+4,.5,8", 3)
    assert out.rows == 3 and out.kinds == ["int64", "float64", "float64"]
    a, b, c = columns(out)
    assert a.tolist() == [1, -3, 4] and b.tolist() == [2.5, 1000.0, 0.5]
    assert math.isnan(c[0]) and c[1:].tolist() == [7.0, 8.0]


def test_a_column_turns_float_in_place_when_a_float_comes_late(csvnum):
    body = b"".join(b"%d,1\n" % i for i in range(1000)) + b"0.25,1\n"
    out = csvnum.parse(body, 2)
    assert out.kinds == ["float64", "int64"]
    assert columns(out)[0][:3].tolist() == [0.0, 1.0, 2.0] and columns(out)[0][-1] == 0.25


@pytest.mark.parametrize("body, ncols", [
    (b"1,abc\n", 2),                 # a string
    (b'1,"2"\n', 2),                 # a quote
    (b"1, 2\n", 2),                  # a space
    (b"1,nan\n", 2),                 # a missing-value word
    (b"1,inf\n", 2),
    (b"1,2,3\n", 2),                 # a ragged row
    (b"1\n", 2),
    (b"1,1e\n", 2),                  # an exponent without digits
    (b"1,.\n", 2),
    (b"1,-\n", 2),
    (b"1,2\r3,4\n", 2),              # a bare carriage return
    (b"1,2\r", 2),                   # ... at the end
    (b"1,2\n\r", 2),
    (b"1234567890123456789\n", 1),   # an int of 19 digits
    (b"1.2345678901234567890\n", 1),  # a float of 20 digits
    (b"1e281\n", 1),                 # a decimal exponent past 280
    (b"1e-281\n", 1),
    (b"1.5e-280\n", 1),              # -281 once the digit after the point counts
    (b"1e" + b"0" * 45 + b"1\n", 1),  # a token of 48 bytes
    (b"-0\n0.5\n", 1),               # -0 in a float column
    (b"0.5\n-0\n", 1),
    (b"\n\n", 1),                    # no record
    (b"", 1),
])
def test_what_it_hands_to_pandas(csvnum, body, ncols):
    assert csvnum.parse(body, ncols) is None


def test_ncols_must_be_positive(csvnum):
    with pytest.raises(ValueError, match="ncols must be at least 1"):
        csvnum.parse(b"1\n", 0)


def test_accepts_bytes_bytearray_and_memoryview(csvnum):
    for data in (b"1,2\n", bytearray(b"1,2\n"), memoryview(b"xx1,2\n")[2:]):
        assert csvnum.parse(data, 2).rows == 1


# ------------------------------------------------------------------ random inputs
DIGITS = st.one_of(st.text("0123456789", min_size=1, max_size=6),
                   st.text("0123456789", min_size=1, max_size=20))


@st.composite
def number(draw):
    sign = draw(st.sampled_from(["", "", "-", "+"]))
    whole = draw(st.one_of(DIGITS, st.just("")))
    kind = draw(st.sampled_from(["int", "point", "exp", "point-exp"]))
    text = sign + whole
    if kind in ("point", "point-exp"):
        text += "." + draw(st.one_of(DIGITS, st.just("")))
    if kind in ("exp", "point-exp"):
        text += draw(st.sampled_from("eE")) + draw(st.sampled_from(["", "-", "+"])) + str(
            draw(st.integers(0, 40)))
    return text


CLEAN = st.one_of(
    number(), number(), number(),
    st.integers(-10**18, 10**18).map(str),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    st.just(""), st.just("-0"), st.just("0"),
)
TIDY = st.one_of(                     # within every limit: accepted
    st.integers(-10**17, 10**17).map(str),
    st.builds(lambda m, f: f"{m / 10**f:.{f}f}", st.integers(-10**14, 10**14),
              st.integers(0, 14)),
    st.builds(lambda m, e: f"{m}e{e}", st.integers(-10**6, 10**6), st.integers(-15, 15)),
    st.just(""),
)
TOKEN = st.one_of(
    CLEAN, CLEAN, CLEAN,
    st.sampled_from(["abc", "nan", "NA", " 1", "1 ", '"1"', "1e", ".", "-", "inf", "-0",
                     "0", "00", "-0.0", "1_0", "0x10"]),
)


@st.composite
def csv_body(draw):
    """(body, ncols): half the cases numbers within every limit, a quarter numbers
    of any shape (accepted or refused by a limit), a quarter with text the parser
    refuses and ragged rows."""
    ncols = draw(st.integers(1, 4))
    mode = draw(st.sampled_from(["tidy", "tidy", "clean", "rough"]))
    rough = mode == "rough"
    tokens = {"tidy": TIDY, "clean": CLEAN, "rough": TOKEN}[mode]
    lines = []
    for _ in range(draw(st.integers(0, 12))):
        width = draw(st.integers(1, 5)) if rough and not draw(st.integers(0, 4)) else ncols
        fields = [draw(tokens) for _ in range(width)]
        lines.append(",".join(fields))
        if draw(st.integers(0, 9)) == 0:
            lines.append("")                                   # a blank line
    ends = draw(st.sampled_from(["\n", "\r\n"]))
    body = ends.join(lines) + draw(st.sampled_from(["", ends, ends, "\r", "\n\r"]))
    return body.encode(), ncols


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(csv_body())
@example((b"0.1,3\n", 2))
@example((b"-0.0\n1\n", 1))
@example((b"1.,.5\n1e5,+3\n", 2))
@example((b"0.0034916983049360084,000123\n-0.000,00.00e5\n0e5,.000\n", 2))  # leading zeros
@example((b"636.9616873214543,16.527635528529096\n1e-300,12345678901234567890e-5\n", 2))
def test_compiled_twin_and_pandas_agree(case):
    body, ncols = case
    twin = csvnum_py.parse(body, ncols)
    if not minray._ext.NO_EXTENSIONS:
        fast = compiled().parse(body, ncols)
        assert (fast is None) == (twin is None), body
        if twin is not None:
            assert fast.rows == twin.rows and fast.kinds == twin.kinds
            for a, b in zip(columns(fast), columns(twin)):
                assert np.array_equal(a, b, equal_nan=True) and \
                    np.array_equal(np.signbit(a), np.signbit(b)), body
    if twin is not None:
        like_pandas(body, ncols, twin)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.integers(1, 10**15 - 1), st.integers(1, 10**19 - 1)),
                          st.one_of(st.integers(-22, 22), st.integers(-280, 280)),
                          st.booleans()), min_size=1, max_size=50))
def test_floats_are_rounded_as_pandas_rounds_them(values):
    # Up to 19 digits and exponents -280..280, written in every notation: the
    # correctly rounded value, float()'s, which pandas 3.1's converter gives too
    # (the compiled parser: one rounding up to 15 digits and 1e22, else Python's).
    tokens = []
    for mant, exp, point in values:
        if point:
            digits = str(mant)
            frac = max(0, -exp)
            digits = digits.rjust(frac + 1, "0") if len(digits) <= frac else digits
            text = (digits[:len(digits) - frac] + "." + digits[len(digits) - frac:]) \
                if frac else digits + "." + ""
            if exp > 0:
                text += f"e{exp}"
        else:
            text = f"{mant}e{exp}"
        tokens.append(text)
    body = ("\n".join(tokens) + "\n").encode()
    out = csvnum_py.parse(body, 1)
    if out is None:                      # past 19 digits (leading zeros count) or 1e280
        return
    assert out.kinds == ["float64"]
    assert columns(out)[0].tolist() == [float(t) for t in tokens]
    like_pandas(body, 1, out)
    if not minray._ext.NO_EXTENSIONS:
        assert compiled().parse(body, 1).columns == out.columns


@pytest.mark.parametrize("token", [
    "9007199254740993.0", "9007199254740995.0", "-9007199254740993.00",  # halfway: to even
    "900719925474099.3e1", "9007199254740993e0", "0.1", "0.30000000000000004",
    "1.7976931348623157e280", "2.2250738585072014e-260", "1234567890123456789e-27",
    "0.0034916983049360084", "123456789012345678.9", "5e-280", "4.9406564584124654e-200",
])
def test_hard_cases_round_correctly(csvnum, token):
    out = csvnum.parse(f"{token}\n".encode(), 1)
    assert out.kinds == ["float64"]
    assert columns(out)[0][0] == float(token)


def test_ints_in_a_float_column_round_correctly(csvnum):
    # 2**53 + 1 as an int: to even, as pandas rounds it once the column is float
    out = csvnum.parse(b"9007199254740993\n0.5\n-9007199254740995\n", 1)
    assert columns(out)[0].tolist() == [9007199254740992.0, 0.5, -9007199254740996.0]
    like_pandas(b"9007199254740993\n0.5\n-9007199254740995\n", 1, out)


def test_loaded_only_when_used():
    # Every runtime process imports minray._ext; only read_csv's workers need csvnum.
    import subprocess
    import sys
    code = ("import sys, minray._ext as e; before = 'minray._ext._csvnum' in sys.modules or "
            "'minray._ext.csvnum_py' in sys.modules; m = e.csvnum; "
            "print(before, m.__name__, e.is_compiled(m) != e.NO_EXTENSIONS)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0] == "False" and out[1].startswith("minray._ext.") and out[2] == "True"
