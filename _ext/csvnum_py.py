"""Numeric CSV records to columns: the pure-Python twin of `_csvnum.pyx`.

`parse(data, ncols)` reads the records of a CSV file after its header line and
returns their columns as native int64 or float64 bytes, or None when ``data``
holds anything it does not read exactly as ``pandas.read_csv`` (default
options) would.  minray.data's read_csv tries it first on each byte range of a
file and hands a refused range to pandas; the compiled twin parses a 16 MiB
range in one pass, with no pandas import in the worker.

What it reads (anything else is refused: the whole result is None):

- records of exactly ``ncols`` fields separated by ``,``; each record ends with
  ``\\n`` or ``\\r\\n``, the last one may end at the end of ``data``; empty lines
  (``\\n`` or ``\\r\\n`` alone) are skipped, as pandas' ``skip_blank_lines``;
- a field is empty (a missing value: NaN) or a number
  ``[+-] digits [. digits] [(e|E) [+-] digits]`` with at least one digit in
  front of the exponent (``1.``, ``.5`` and ``1e5`` are numbers; spaces,
  quotes, ``nan``, ``inf``, ``1e`` are not) of at most 47 bytes;
- an *int* (no point, no exponent) has at most 18 significant digits (leading
  zeros do not count): an int64;
- every other number has at most 19 significant digits and a decimal
  exponent (the exponent minus the digits after the point) within -280..280, so
  its value is a finite, normal double: the correctly rounded one (``float(token)``,
  as pyarrow, Ray Data's parser, and pandas 3.1's default converter give it);
- an int in a float64 column is its value as a double (rounded correctly), but a
  float64 column may not hold the int ``-0`` (pandas reads it as -0.0 there, an
  int64 slot cannot keep the sign);
- at least one record.

A column is int64 when all its fields are ints, else float64 (missing values
are NaN), as pandas types it.

>>> out = parse(b"1,2.5\\n3,\\n", 2)
>>> out.rows, out.kinds
(2, ['int64', 'float64'])
>>> import array
>>> list(array.array("q", out.columns[0])), list(array.array("d", out.columns[1]))[0]
([1, 3], 2.5)
>>> parse(b"1,abc\\n", 2) is None
True
"""

import array
import re
from collections import namedtuple

# rows: records read; kinds: "int64" or "float64" per column; columns: one
# bytearray of 8 * rows native-endian bytes per column.
Parsed = namedtuple("Parsed", "rows kinds columns", module=__name__)

MAX_INT_DIGITS = 18
MAX_FLOAT_DIGITS = 19
MAX_EXP10 = 280
MAX_TOKEN = 47

_NUMBER = re.compile(rb"([+-]?)([0-9]*)(?:(\.)([0-9]*))?(?:[eE]([+-]?[0-9]+))?")


def _field(token):
    """("int", value, digits, negzero) / ("float", value) / ("nan",) / None."""
    if not token:
        return ("nan",)
    m = _NUMBER.fullmatch(token) if len(token) <= MAX_TOKEN else None
    if m is None:
        return None
    sign, whole, point, frac, exp = m.groups()
    frac = frac or b""
    if not whole and not frac:
        return None
    digits = len((whole + frac).lstrip(b"0"))          # significant digits
    if point is None and exp is None:
        if digits > MAX_INT_DIGITS:
            return None
        value = int(whole)
        return ("int", -value if sign == b"-" else value, digits,
                sign == b"-" and value == 0)
    exp10 = (int(exp) if exp is not None else 0) - len(frac)
    if digits > MAX_FLOAT_DIGITS or not -MAX_EXP10 <= exp10 <= MAX_EXP10:
        return None
    return ("float", float(token))


def _records(data):
    """The non-empty lines of ``data``, or None for a carriage return not followed by
    a newline (the last line's end included)."""
    lines = bytes(data).split(b"\n")
    tail = lines.pop()                   # after the last newline: no line end of its own
    out = []
    for line in lines:
        if line.endswith(b"\r"):
            line = line[:-1]
        if b"\r" in line:
            return None
        if line:
            out.append(line)
    if b"\r" in tail:
        return None
    if tail:
        out.append(tail)
    return out


def parse(data, ncols):
    """The columns of ``data`` (the CSV records after the header line, ``ncols``
    fields each), or None where pandas must read it (see the module docstring)."""
    if ncols < 1:
        raise ValueError(f"ncols must be at least 1, got {ncols}")
    records = _records(data)
    if not records:
        return None
    cols = [[] for _ in range(ncols)]
    for line in records:
        fields = line.split(b",")
        if len(fields) != ncols:
            return None
        for col, token in zip(cols, fields):
            parsed = _field(token)
            if parsed is None:
                return None
            col.append(parsed)
    kinds, columns = [], []
    for col in cols:
        if all(p[0] == "int" for p in col):
            kinds.append("int64")
            columns.append(bytearray(array.array("q", [p[1] for p in col]).tobytes()))
            continue
        values = []
        for p in col:
            if p[0] == "int":
                if p[3]:
                    return None
                values.append(float(p[1]))
            else:
                values.append(float("nan") if p[0] == "nan" else p[1])
        kinds.append("float64")
        columns.append(bytearray(array.array("d", values).tobytes()))
    return Parsed(len(records), kinds, columns)
