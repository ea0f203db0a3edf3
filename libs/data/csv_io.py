"""CSV reading: one file in parallel byte ranges, parsed where it is cheapest.

    file --iter_csv_ranges--> CsvRange(start, end, header) ... cut at line ends, lazily
    range --read_csv_range--> block: minray._ext.csvnum, the compiled parser of
                                     numeric records (one pass, no pandas import);
                                     a range holding anything else: pandas.read_csv
                                     streaming the range from the file; pyarrow.csv
                                     (one thread) for a small one-off read

Splitting is only done where a line end is certainly a record end: the file is
larger than ``CSV_SPLIT_BYTES``, uncompressed, in an ASCII-compatible encoding,
read with options that do not count lines (no skiprows, nrows, comment, ...),
and the bytes before the cut hold no quote character (a quoted field may contain
a newline).  The driver scans the file range by range as the executor asks for
read tasks, so the scan overlaps the workers' parsing instead of delaying the
first task; at the first range holding a quote, the rest of the file (from that
range's start, a record start since no quote came before it) is read as one
block.  A file quoted from its first line is read whole: the safe fallback.

Ranges are ``CSV_SPLIT_BYTES`` (16 MiB): measured on a 2-core box against 64 MiB,
a smaller range keeps each worker's parse buffers small enough to be reused from
task to task (64 MiB ranges paid 0.5 s more kernel time in fresh pages per
500 MB file) and balances the last tasks across the workers.

The result equals ``pandas.read_csv`` of the file: same column names, order,
values and dtypes.  The compiled parser reads a range only where that holds
exactly (ints, decimals of up to 19 significant digits, correctly rounded as
pandas 3.1 and pyarrow read them, empty fields, plain header names:
``minray._ext.csvnum_py`` lists the rules; a test compares it with pandas bit for
bit) and hands any other range back; per 16 MiB
range of the benchmark's numbers it takes 26-28 ms of CPU, pandas' C parser fed the
range in small reads 52 ms, a single-threaded pyarrow 80 ms.  Of the ranges it
hands back (or all, where it is not compiled), pyarrow, quicker to import than
pandas, parses small one-off reads (``choose_parser``), and only where its result
matches: a range whose columns
pyarrow reads as anything but int64, double, bool or all-null (strings, dates,
times) is parsed again by pandas, and pandas' defaults for missing values and
booleans are given to pyarrow.  Each block infers its own types, as each of
Ray's files does: a column that is int in one range and float in another is
float once the blocks are combined (``to_pandas``, ``take_all``).

Example::

    csv_ranges("/tmp/big.csv", {})        # [(0, 16777259), (16777259, 33554490), ...]
    read_csv_range("/tmp/big.csv", 0, 16777259, False, {})   # {"a": array([...]), ...}
"""

import functools
import io
import logging
import os
import sys
from typing import NamedTuple

import numpy as np

from . import block as B
from .datasource import _with_path

logger = logging.getLogger(__name__)

CSV_SPLIT_BYTES = 16 * 1024 * 1024   # files larger than this read in parallel ranges

# pandas.read_csv options under which a line end outside quotes ends a record.
_SPLIT_SAFE_OPTIONS = {"sep", "delimiter", "usecols", "dtype", "na_values", "keep_default_na",
                       "na_filter", "true_values", "false_values", "decimal", "thousands",
                       "quotechar", "float_precision", "low_memory", "engine", "encoding",
                       "header", "skip_blank_lines", "skipinitialspace"}
_ASCII_ENCODINGS = {None, "utf-8", "utf8", "ascii", "latin-1", "latin1", "iso-8859-1"}
_COMPRESSED = (".gz", ".bz2", ".zip", ".xz", ".zst", ".tar")

# pandas' default missing-value strings and booleans, given to pyarrow so both agree.
_PANDAS_NA = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
              "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
_PANDAS_TRUE = ["True", "TRUE", "true"]
_PANDAS_FALSE = ["False", "FALSE", "false"]


class CsvRange(NamedTuple):
    """Bytes [start, end) of a file that parse on their own, after ``header`` (the
    file's first line, given to every range but the first so no task reads it again)."""
    start: int
    end: int
    header: bytes = b""


def splittable(path, options):
    """Whether ``path`` may be cut at line ends under these pandas options."""
    if path.lower().endswith(_COMPRESSED) or options.get("compression") not in (None, "infer"):
        return False
    if any(k not in _SPLIT_SAFE_OPTIONS for k in options):
        return False
    encoding = options.get("encoding")
    if (encoding.lower() if isinstance(encoding, str) else encoding) not in _ASCII_ENCODINGS:
        return False
    return options.get("header", "infer") in ("infer", 0)


def csv_ranges(path, options=None, split_bytes=None):
    """Byte ranges ``[(start, end), ...]`` of ``path`` that parse independently
    (all of ``iter_csv_ranges``, without the header bytes).

    Example::

        csv_ranges("/tmp/small.csv", {})     # [(0, 1234)]: one range
    """
    return [(r.start, r.end) for r in iter_csv_ranges(path, options, split_bytes)]


def iter_csv_ranges(path, options=None, split_bytes=None):
    """Yield the ``CsvRange``s of ``path``, scanning each for quotes just before it is
    yielded (so a consumer that submits each range at once overlaps the scan).

    One range for a small, compressed or unusually read file; else cuts at the line end
    after each multiple of about ``split_bytes``, past the header, until a range holds
    a quote character: that range and the rest of the file are then one range.
    """
    options = options or {}
    split_bytes = split_bytes or CSV_SPLIT_BYTES
    size = os.path.getsize(path)
    if size <= split_bytes or not splittable(path, options):
        yield CsvRange(0, size)
        return
    quote = str(options.get("quotechar", '"')).encode()
    if len(quote) != 1:
        yield CsvRange(0, size)
        return
    buf = bytearray(_SCAN_CHUNK)
    with open(path, "rb", buffering=0) as f:
        fd = f.fileno()
        header_end = _find_byte(fd, b"\n", 0, size, buf) + 1
        if header_end <= 0:
            yield CsvRange(0, size)
            return
        header = os.pread(fd, header_end, 0)
        n = -(-size // split_bytes)
        start = 0
        for j in range(1, n + 1):
            end = size
            if j < n:
                end = _find_byte(fd, b"\n", max(j * size // n, header_end), size, buf) + 1
                end = end if 0 < end < size else size
            if end <= start:
                continue
            if _find_byte(fd, quote, start, end, buf) != -1:
                logger.debug("read_csv: %s holds a quote after byte %d; reading the rest as "
                             "one block", path, start)
                end = size
            yield CsvRange(start, end, header if start else b"")
            if end == size:
                return
            start = end


_SCAN_CHUNK = 4 << 20


def _find_byte(fd, byte, pos, stop, buf):
    """The offset of the first ``byte`` in bytes [pos, stop) of the open file ``fd``, or
    -1.  Reads with pread into ``buf`` (not mmap: a file truncated while a lazy scan is
    under way then reads short instead of killing the process with SIGBUS)."""
    view = memoryview(buf)
    while pos < stop:
        got = os.preadv(fd, [view[:min(len(buf), stop - pos)]], pos)
        if got <= 0:
            return -1
        i = buf.find(byte, 0, got)
        if i != -1:
            return pos + i
        pos += got
    return -1


def _range_bytes(path, start, end, header=None, into=None):
    """The header line plus bytes [start, end) (the whole file when start is 0), read
    into one buffer (no copy to join them): a new bytearray, or a view of ``into``
    (grown as needed and kept by the caller for the next range)."""
    with open(path, "rb", buffering=0) as f:
        if header is None or not start:
            header = _header_line(f, start)
        total = len(header) + end - start
        if into is None:
            buf = bytearray(total)
        else:
            if len(into) < total:
                into.extend(bytes(total - len(into)))
            buf = into
        buf[:len(header)] = header
        view = memoryview(buf)[len(header):total]
        f.seek(start)
        while len(view):
            n = f.readinto(view)
            if not n:
                raise ValueError(f"read_csv: {path!r} shrank while it was being read.")
            view = view[n:]
        view.release()
    return buf if into is None else memoryview(into)[:total]


def _header_line(f, start):
    """The file's first line, for a range after it (``f`` an open binary file); the
    range at byte 0 holds it already."""
    if not start:
        return b""
    f.seek(0)
    return f.readline()


_SMALL = 4096     # a range this short may be empty (a file of only whitespace)


def read_csv_range(path, start, end, include_paths, options, header=None):
    """Parse bytes [start, end) of ``path`` (after its header line, read from the file
    unless given) into a block."""
    nbytes, compressed = end - start, path.lower().endswith(_COMPRESSED)
    installed = ("pandas" in sys.modules, have_pandas(), have_pyarrow())
    native = native_parser()
    parser = choose_parser(nbytes, bool(options), compressed, *installed, native is not None)
    if parser == "native":
        block = _native_block(path, start, end, header or None, native)
        if block is not None:
            return _with_path(block, path, include_paths)
        parser = choose_parser(nbytes, False, compressed, *installed, False)
    if parser == "pandas-stream" and nbytes >= _SMALL:
        return _with_path(_pandas_stream_block(path, start, end, header or None), path,
                          include_paths)
    data = _range_bytes(path, start, end, header or None)     # small, or not streamed
    _check_not_empty(path, data)
    block = _arrow_block(data) if parser == "pyarrow" and pyarrow_csv() is not None else None
    if block is None:
        block = _pandas_block(data, options)
    return _with_path(block, path, include_paths)


NATIVE_MAX_BYTES = 4 * CSV_SPLIT_BYTES   # a longer range (a file not cut) goes to pandas


def choose_parser(nbytes, has_options, compressed, pandas_loaded, have_pandas_,
                  have_pyarrow_, native_=False):
    """Which parser reads a range: "native" (minray's compiled parser of numeric
    records, ``minray._ext.csvnum``: one pass, no pandas import; it hands a range
    holding anything else back, and the rule is asked again without it),
    "pandas-stream" (pandas' C parser fed by small reads), "pyarrow" (one thread;
    imports in 0.09 s where pandas takes 0.21 s, so it serves a one-off small read)
    or "pandas" (the whole range in one buffer, with the user's options).

    >>> choose_parser(16 << 20, False, False, False, True, True, True)
    'native'
    >>> choose_parser(16 << 20, False, False, False, True, True)
    'pandas-stream'
    >>> choose_parser(1 << 20, False, False, False, True, True)
    'pyarrow'
    """
    if has_options or compressed:
        return "pandas"
    if native_ and nbytes <= NATIVE_MAX_BYTES:
        return "native"
    if have_pandas_ and (pandas_loaded or nbytes >= CSV_SPLIT_BYTES // 2 or not have_pyarrow_):
        return "pandas-stream"
    return "pyarrow" if have_pyarrow_ else "pandas"


def _check_not_empty(path, data):
    if len(data) < _SMALL and not bytes(data).strip():    # (a big range is not empty)
        raise ValueError(f"read_csv: {path!r} is empty; a CSV file needs at least a header "
                         f"line (pandas.read_csv and Ray Data raise on it too). Remove it or "
                         f"choose the files with file_extensions=/a glob.")


def native_parser():
    """``minray._ext.csvnum`` where it is compiled, else None (its pure-Python twin is
    the readable specification, far slower than pandas: never used to read)."""
    from minray import _ext
    csvnum = _ext.csvnum
    return csvnum if _ext.is_compiled(csvnum) else None


_BUFFERS = []       # read buffers kept for the next range (one per thread reading at once)


def _native_block(path, start, end, header, native=None):
    """The block of bytes [start, end) parsed by the compiled numeric parser
    (``native``, by default ``native_parser()``), or None where it hands the range
    back (a string, a quote, a ragged row, odd header names: ``minray._ext.csvnum_py``
    lists what it reads)."""
    native = native or native_parser()
    buf = _BUFFERS.pop() if _BUFFERS else bytearray()
    data = None
    try:
        data = _range_bytes(path, start, end, header, into=buf)
        cut = buf.find(b"\n", 0, len(data)) + 1 or len(data)     # after the header line
        names = header_names(data[:cut])
        if names is None:
            return None
        with data[cut:] as records:
            out = native.parse(records, len(names))
    finally:
        if data is not None:
            data.release()                            # before buf may grow again
        if len(buf) <= NATIVE_MAX_BYTES:
            _BUFFERS.append(buf)
    if out is None:
        logger.debug("read_csv: bytes %d-%d of %s are not all numbers; pandas reads them",
                     start, end, path)
        return None
    return {name: np.frombuffer(col, kind) for name, kind, col in
            zip(names, out.kinds, out.columns)}


def header_names(line):
    """The column names of a header line as pandas reads them, or None where pandas
    would change them (empty or repeated names, quotes, a byte-order mark, ...).

    >>> header_names(b"id,x, y\\r\\n")
    ['id', 'x', ' y']
    >>> header_names(b'"id",x\\n') is None
    True
    """
    line = bytes(line)
    if line.endswith(b"\n"):
        line = line[:-1]
    if line.endswith(b"\r"):
        line = line[:-1]
    if not line or line.startswith(b"\xef\xbb\xbf") or any(c in line for c in b"\"\r\n"):
        return None
    try:
        names = line.decode("utf-8").split(",")
    except UnicodeDecodeError:
        return None
    if not all(names) or len(set(names)) != len(names):
        return None
    return names


class _RangeReader(io.RawIOBase):
    """The header line, then bytes [start, end) of a file, read with pread as the
    parser asks: pandas' tokenizer then works on small chunks that stay in cache
    instead of one 16 MiB buffer (per 16 MiB range on the 2-core box, median of 8:
    52 ms against 65 ms read into one buffer first, and 80 ms for pyarrow)."""

    def __init__(self, path, start, end, header):
        self._path = path
        self._file = open(path, "rb", buffering=0)
        if header is None:
            header = _header_line(self._file, start)
        self._head, self._pos, self._end = memoryview(header), start, end

    def readable(self):
        return True

    def readinto(self, buf):
        if len(self._head):
            n = min(len(buf), len(self._head))
            buf[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        n = min(len(buf), self._end - self._pos)
        if n <= 0:
            return 0
        got = os.preadv(self._file.fileno(), [memoryview(buf)[:n]], self._pos)
        if not got:
            raise ValueError(f"read_csv: {self._path!r} shrank while it was being read.")
        self._pos += got
        return got

    def close(self):
        self._file.close()
        super().close()


def _pandas_stream_block(path, start, end, header):
    pd = B.require("pandas", "pandas")
    with io.BufferedReader(_RangeReader(path, start, end, header), 1 << 18) as f:
        return B.from_pandas(pd.read_csv(f))


def _pandas_block(data, options):
    pd = B.require("pandas", "pandas")
    return B.from_pandas(pd.read_csv(io.BytesIO(data), **options))


@functools.lru_cache(maxsize=None)
def _installed(module):
    """Whether ``module`` is installed, without importing it (looked up once)."""
    import importlib.util
    return importlib.util.find_spec(module) is not None


def have_pandas():
    return _installed("pandas")


def have_pyarrow():
    """Whether pyarrow is installed, without importing it (the driver needs no parser)."""
    return _installed("pyarrow")


def pyarrow_csv():
    """pyarrow with its csv module, or None when pyarrow is not installed (optional)."""
    try:
        import pyarrow
        import pyarrow.csv
    except ImportError:
        return None
    return pyarrow


def _arrow_block(data):
    """The block pyarrow parses from ``data`` (a header line, then rows), or None where
    pandas must parse it (a column type pandas would not produce, odd header names)."""
    pa = pyarrow_csv()
    csv = pa.csv
    try:
        table = csv.read_csv(
            pa.py_buffer(data),
            read_options=csv.ReadOptions(use_threads=False, block_size=len(data) + 1),
            convert_options=csv.ConvertOptions(null_values=_PANDAS_NA,
                                               true_values=_PANDAS_TRUE,
                                               false_values=_PANDAS_FALSE,
                                               strings_can_be_null=True))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None                     # let pandas parse it (and raise its own error)
    names = table.column_names
    if table.num_rows == 0 or len(set(names)) != len(names) or not all(names):
        return None
    out = {}
    types = pa.types
    for name, col in zip(names, table.columns):
        t = col.type
        if not (types.is_null(t) or types.is_int64(t) or types.is_float64(t)
                or types.is_boolean(t)):
            return None                             # strings, dates, ...: pandas' types
        out[name] = _to_numpy(col.combine_chunks() if col.num_chunks != 1 else col.chunk(0))
    return out


def _to_numpy(arr):
    """A numpy column from a pyarrow int64 / double / bool / null Array, as pandas types
    it: ints with missing values become float64 with NaN, bools with missing values an
    object column with NaN.  Reads the Arrow buffers directly: ``Array.to_numpy`` would
    import pandas (a third of a second in every worker)."""
    n, off = len(arr), arr.offset
    if str(arr.type) == "null":                      # a column with no values at all
        return np.full(n, np.nan)
    validity, values = arr.buffers()[:2]
    if arr.type.bit_width == 1:                      # bool: one bit per value
        bits = np.unpackbits(np.frombuffer(values, np.uint8), bitorder="little")
        col = bits[off:off + n].astype(bool)
    else:
        col = np.frombuffer(values, np.dtype("int64" if str(arr.type) == "int64"
                                             else "float64"), count=n, offset=off * 8)
    if not arr.null_count:
        return col
    valid = np.unpackbits(np.frombuffer(validity, np.uint8),
                          bitorder="little")[off:off + n].astype(bool)
    col = col.astype(object if col.dtype == bool else np.float64)
    col[~valid] = np.nan
    return col
