"""read_csv: parallel byte ranges and the pyarrow parser give what pandas.read_csv gives.

Each case compares the dataset's rows (concatenated blocks) with ``pandas.read_csv``
of the same file: column names and order, dtypes, values (NaN where pandas has NaN).
"""
import numpy as np
import pandas as pd
import pytest

import minray as ray
import minray.data
from minray.data import block as B
from minray.data import csv_io

pytestmark = pytest.mark.usefixtures("ray_module")


def _assert_like_pandas(blocks, *paths):
    expected = B.from_pandas(pd.concat([pd.read_csv(p) for p in paths], ignore_index=True))
    got = B.concat(blocks)
    assert list(got) == list(expected)
    for name, want in expected.items():
        have = got[name]
        assert have.dtype == want.dtype, (name, have.dtype, want.dtype)
        if want.dtype.kind == "f":
            np.testing.assert_array_equal(have, want)      # NaN == NaN here
        else:
            assert have.tolist() == want.tolist() or all(
                (a == b) or (a != a and b != b) for a, b in zip(have, want)), name


def _blocks(ds):
    return [ray.get(ref) for ref, _ in ds.materialize()._plan.source.bundles]


def _numeric_file(path, rows, trailing_newline=True):
    rng = np.random.default_rng(1)
    lines = [f"{i},{rng.random() * 1000:.4f},{i % 7},{'' if i % 11 == 0 else i * 3}"
             for i in range(rows)]
    path.write_text("id,x,k,maybe\n" + "\n".join(lines) + ("\n" if trailing_newline else ""))
    return str(path)


def test_split_ranges_equal_pandas_with_and_without_trailing_newline(tmp_path, monkeypatch):
    monkeypatch.setattr(csv_io, "CSV_SPLIT_BYTES", 8192)
    for trailing in (True, False):
        path = _numeric_file(tmp_path / f"n{trailing}.csv", 3000, trailing)
        ranges = csv_io.csv_ranges(path, {})
        assert len(ranges) > 5 and ranges[0][0] == 0 and ranges[-1][1] == len(
            open(path, "rb").read())
        assert all(a == b for (_, a), (b, _) in zip(ranges, ranges[1:]))   # contiguous
        ds = ray.data.read_csv(path)
        blocks = _blocks(ds)
        assert len(blocks) == len(ranges)
        _assert_like_pandas(blocks, path)
        assert [r["id"] for r in ds.take_all()] == list(range(3000))   # row order kept


def test_quoted_commas_and_newlines_read_whole_and_equal_pandas(tmp_path, monkeypatch):
    monkeypatch.setattr(csv_io, "CSV_SPLIT_BYTES", 256)
    path = tmp_path / "quoted.csv"
    rows = [f'{i},"line one, {i}\nline two",{i * 0.5}' for i in range(200)]
    path.write_text('id,"text, with comma",v\n' + "\n".join(rows) + "\n")
    assert csv_io.csv_ranges(str(path), {}) == [(0, path.stat().st_size)]
    blocks = _blocks(ray.data.read_csv(str(path)))
    _assert_like_pandas(blocks, str(path))
    assert B.concat(blocks)["text, with comma"][3] == "line one, 3\nline two"


def test_types_missing_values_bools_strings_and_dates_like_pandas(tmp_path):
    path = tmp_path / "types.csv"
    path.write_text("i,f,b,bn,s,d,empty,inull\n"
                    "1,1.5,True,true,x,2020-01-01,,1\n"
                    "2,NaN,False,,y,2020-01-02,,\n"
                    "3,2.25,true,False,,2020-01-03,,3\n")
    _assert_like_pandas(_blocks(ray.data.read_csv(str(path))), str(path))
    numeric = tmp_path / "numeric.csv"
    numeric.write_text("a,b,c\n1,,True\n2,NA,False\n3,4.5,\n")
    block = csv_io.read_csv_range(str(numeric), 0, numeric.stat().st_size, False, {})
    want = B.from_pandas(pd.read_csv(numeric))
    assert [block[k].dtype for k in block] == [want[k].dtype for k in want]


def test_many_files_keep_file_order(tmp_path):
    paths = [_numeric_file(tmp_path / f"part{i}.csv", 50 + i) for i in range(6)]
    ds = ray.data.read_csv(str(tmp_path / "part*.csv"))
    assert ds.materialize().num_blocks() == 6
    _assert_like_pandas(_blocks(ds), *paths)


def test_empty_file_raises_and_header_only_file_has_no_rows(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty"):
        ray.data.read_csv(str(empty)).materialize()
    header = tmp_path / "header.csv"
    header.write_text("a,b\n")
    assert ray.data.read_csv(str(header)).count() == 0


def test_pandas_options_and_no_pyarrow_fallback(tmp_path, monkeypatch):
    path = _numeric_file(tmp_path / "opts.csv", 400)
    monkeypatch.setattr(csv_io, "CSV_SPLIT_BYTES", 2048)
    # options that count lines are never split; they go to pandas as given
    assert len(csv_io.csv_ranges(path, {"skiprows": [1]})) == 1
    got = ray.data.read_csv(path, usecols=["id", "k"]).take_all()
    assert got[:2] == [{"id": 0, "k": 0}, {"id": 1, "k": 1}]
    monkeypatch.setattr(csv_io, "pyarrow_csv", lambda: None)   # as if not installed
    ranges = csv_io.csv_ranges(path, {})
    blocks = [csv_io.read_csv_range(path, a, b, False, {}) for a, b in ranges]
    _assert_like_pandas(blocks, path)


def test_split_skips_compressed_files_and_odd_encodings(tmp_path):
    assert not csv_io.splittable("/x/data.csv.gz", {})
    assert not csv_io.splittable("/x/data.csv", {"encoding": "utf-16"})
    assert not csv_io.splittable("/x/data.csv", {"header": None})
    assert csv_io.splittable("/x/data.csv", {"sep": ";", "encoding": "UTF-8"})


def test_quote_late_in_file_splits_before_it_and_reads_the_rest_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(csv_io, "CSV_SPLIT_BYTES", 4096)
    path = tmp_path / "late_quote.csv"
    rows = [f"{i},{i * 0.25},plain{i}" for i in range(1200)]
    # a quoted field holding newlines, from the middle of the file on: a cut inside it
    # would split one record in two
    rows[700] = '700,175.0,"first line\n701,not,a row\n' + "x" * 5000 + '"'
    path.write_text("id,v,s\n" + "\n".join(rows) + "\n")
    size = path.stat().st_size
    ranges = list(csv_io.iter_csv_ranges(str(path), {}))
    quote_at = path.read_bytes().index(b'"')
    assert len(ranges) > 3 and ranges[-1].end == size
    assert all(r.end <= quote_at for r in ranges[:-1])          # split only before it
    assert ranges[-1].start <= quote_at                         # the rest is one range
    assert all(r.header == b"id,v,s\n" for r in ranges[1:]) and ranges[0].header == b""
    ds = ray.data.read_csv(str(path))
    blocks = _blocks(ds)
    assert len(blocks) == len(ranges)
    _assert_like_pandas(blocks, str(path))
    assert ds.count() == 1200
    assert [r["id"] for r in ds.take_all()] == list(range(1200))


def test_ranges_are_found_as_the_dataset_executes(tmp_path, monkeypatch):
    from minray.data import executor
    monkeypatch.setattr(csv_io, "CSV_SPLIT_BYTES", 8192)
    path = _numeric_file(tmp_path / "lazy.csv", 3000)
    made = []

    def tasks():
        for r in csv_io.iter_csv_ranges(path, {}):
            made.append(r)
            yield executor.ReadTask(csv_io.read_csv_range, path, r.start, r.end, False, {},
                                    r.header)

    source = executor.LazyReadSource(tasks, "ReadCSV")
    assert source.produced is None and source.known_rows() is None
    assert executor._expected_blocks(source, []) == []          # counting runs no scan
    items = source.items()
    first = next(items)
    assert len(made) == 1                   # the first task exists before the file is scanned
    assert first.args[1:3] == (0, made[0].end)
    rest = list(items)
    assert source.produced == [first] + rest and len(made) == len(rest) + 1
    assert list(source.items()) == source.produced and len(made) == len(rest) + 1  # kept
    blocks = [t() for t in source.produced]
    _assert_like_pandas(blocks, path)
    # a given header equals the one read from the file
    r = made[2]
    given = csv_io.read_csv_range(path, r.start, r.end, False, {}, r.header)
    read = csv_io.read_csv_range(path, r.start, r.end, False, {})
    assert list(given) == list(read) == ["id", "x", "k", "maybe"]
    for name in read:
        np.testing.assert_array_equal(given[name], read[name])
    ds = ray.data.read_csv(path)
    assert ds.num_blocks() == len(made)     # the count before execution runs the scan


@pytest.mark.parametrize("nbytes, options, compressed, loaded, pandas_, arrow, native, "
                         "expected", [
    (16 << 20, False, False, False, True, True, True, "native"),   # compiled numeric parser
    (1 << 10, False, False, False, False, False, True, "native"),  # small, no pandas/pyarrow
    (100 << 20, False, False, True, True, True, True, "pandas-stream"),  # a file not cut
    (16 << 20, True, False, True, True, True, True, "pandas"),     # options: pandas
    (16 << 20, False, True, True, True, True, True, "pandas"),     # compressed: pandas
    (16 << 20, False, False, False, True, True, False, "pandas-stream"),  # a big range
    (1 << 20, False, False, False, True, True, False, "pyarrow"),        # small one-off: quick import
    (1 << 20, False, False, True, True, True, False, "pandas-stream"),   # pandas already loaded
    (1 << 20, False, False, False, True, False, False, "pandas-stream"),  # no pyarrow
    (16 << 20, False, False, False, False, True, False, "pyarrow"),      # no pandas
    (16 << 20, True, False, True, True, True, False, "pandas"),          # the user's options
    (16 << 20, False, True, True, True, True, False, "pandas"),          # compressed: whole file
])
def test_choose_parser(nbytes, options, compressed, loaded, pandas_, arrow, native, expected):
    assert csv_io.choose_parser(nbytes, options, compressed, loaded, pandas_, arrow,
                                native) == expected


@pytest.mark.parametrize("give_header", [True, False])
def test_each_parser_reads_every_range_like_pandas(tmp_path, give_header):
    # In this process, range by range: the streaming pandas parser and pyarrow agree
    # with pandas.read_csv of the whole file (header given, or read from the file).
    path = _numeric_file(tmp_path / "r.csv", 4000, trailing_newline=False)
    ranges = list(csv_io.iter_csv_ranges(path, {}, split_bytes=4096))
    assert len(ranges) > 10
    streamed, arrowed, native = [], [], []
    for r in ranges:
        header = (r.header or None) if give_header else None
        streamed.append(csv_io._pandas_stream_block(path, r.start, r.end, header))
        arrowed.append(csv_io._arrow_block(csv_io._range_bytes(path, r.start, r.end, header)))
        if csv_io.native_parser() is not None:
            native.append(csv_io._native_block(path, r.start, r.end, header))
    _assert_like_pandas(streamed, path)
    _assert_like_pandas(arrowed, path)
    if csv_io.native_parser() is not None:
        assert all(b is not None for b in native)       # every range is numbers only
        _assert_like_pandas(native, path)


def _native_or_skip():
    if csv_io.native_parser() is None:
        pytest.skip("the compiled numeric CSV parser is not in use (MINRAY_NO_EXTENSIONS=1 "
                    "or not built): pandas reads every range")


def test_the_native_parser_reads_numbers_without_pandas(tmp_path, monkeypatch):
    # In a fresh interpreter (a worker's view): a numeric range is read with no
    # pandas or pyarrow import at all.
    _native_or_skip()
    import subprocess
    import sys
    path = _numeric_file(tmp_path / "n.csv", 2000)
    code = ("import sys; from minray.data import csv_io; "
            f"b = csv_io.read_csv_range({path!r}, 0, {len(open(path, 'rb').read())}, "
            "False, {}); "
            "print(sorted(b), len(b['id']), 'pandas' in sys.modules, 'pyarrow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["['id',", "'k',", "'maybe',", "'x']", "2000", "False", "False"]


def test_a_file_pandas_wrote_is_read_natively(tmp_path, monkeypatch):
    # DataFrame.to_csv writes floats with up to 17 significant digits (repr), small
    # ones with leading zeros: the compiled parser reads every range, correctly rounded.
    _native_or_skip()
    monkeypatch.setattr(csv_io, "CSV_SPLIT_BYTES", 8192)
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"x": rng.random(3000) * 1000, "tiny": rng.random(3000) / 1e5,
                       "big": rng.random(3000) * 1e17, "i": np.arange(3000)})
    path = str(tmp_path / "written.csv")
    df.to_csv(path, index=False)
    ranges = list(csv_io.iter_csv_ranges(path, {}))
    blocks = [csv_io._native_block(path, r.start, r.end, r.header or None) for r in ranges]
    assert len(blocks) > 5 and all(b is not None for b in blocks)
    _assert_like_pandas(blocks, path)
    np.testing.assert_array_equal(B.concat(blocks)["x"], df["x"].to_numpy())  # round trip


def test_a_file_that_shrank_raises_instead_of_reading_a_short_range(tmp_path):
    # The ranges were cut when the file was longer: every parser says so, none
    # returns a short block.
    path = _numeric_file(tmp_path / "short.csv", 500)
    size = len(open(path, "rb").read())
    with pytest.raises(ValueError, match="shrank"):
        csv_io.read_csv_range(path, 0, size + 100, False, {})
    with pytest.raises(ValueError, match="shrank"):
        csv_io._range_bytes(path, 0, size + 100)


def test_a_range_the_native_parser_refuses_goes_to_pandas(tmp_path, monkeypatch):
    # Numbers, then a range with strings, a CRLF range and a missing-value word: the
    # native parser reads the numeric ranges, hands the others back, and the
    # dataset still equals pandas.read_csv of the file.
    _native_or_skip()
    monkeypatch.setattr(csv_io, "CSV_SPLIT_BYTES", 4096)
    rows = [f"{i},{i * 0.5},{i % 5}" for i in range(3000)]
    rows[1500] = "1500,750.0,text"                      # a string in the last column
    rows[2500] = "2500,NA,0"                             # a missing-value word
    path = tmp_path / "mixed.csv"
    path.write_bytes(("id,v,k\n" + "\n".join(rows[:2000]) + "\n").encode()
                     + ("\r\n".join(rows[2000:]) + "\r\n").encode())
    ranges = list(csv_io.iter_csv_ranges(str(path), {}))
    header = ranges[1].header
    natively = [csv_io._native_block(str(path), r.start, r.end, r.header or None)
                for r in ranges]
    refused = [r for r, b in zip(ranges, natively) if b is None]
    assert 1 <= len(refused) <= 3 and len(refused) < len(ranges) // 2
    assert header == b"id,v,k\n"
    blocks = _blocks(ray.data.read_csv(str(path)))
    data = path.read_bytes()
    assert len(blocks) == len(ranges)
    for r, block in zip(ranges, blocks):                 # each block: pandas on its range
        part = tmp_path / "part.csv"
        part.write_bytes(r.header + data[r.start:r.end])
        _assert_like_pandas([block], str(part))
    kinds = {str(b["k"].dtype) for b in blocks}
    assert kinds == {"int64", "object"}              # each block typed on its own, as Ray's
    assert ray.data.read_csv(str(path)).count() == 3000


def test_csv_io_doctests():
    import doctest
    result = doctest.testmod(csv_io)
    assert result.attempted >= 4 and result.failed == 0


@pytest.mark.parametrize("line, names", [
    (b"a,b,c\n", ["a", "b", "c"]),
    (b"a,b,c\r\n", ["a", "b", "c"]),
    (b"a,b,c", ["a", "b", "c"]),
    (b" a,b ,1\n", [" a", "b ", "1"]),          # pandas keeps spaces and digits as text
    ("é,ü\n".encode(), ["é", "ü"]),
    (b"a,,c\n", None),                           # pandas names it "Unnamed: 1"
    (b"a,a\n", None),                            # pandas makes it "a.1"
    (b'"a",b\n', None),                          # quotes
    (b"\xef\xbb\xbfa,b\n", None),                # a byte-order mark
    (b"\n", None),
    (b"\xff,b\n", None),                         # not UTF-8
])
def test_header_names_as_pandas_reads_them(line, names):
    assert csv_io.header_names(line) == names
    if names is not None:
        df = pd.read_csv(__import__("io").BytesIO(line.rstrip(b"\r\n") + b"\n" +
                                                  b",".join([b"1"] * len(names)) + b"\n"))
        assert list(df.columns) == names
