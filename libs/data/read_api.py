"""Creating datasets: from Python objects, from files, from other libraries.

    range / range_tensor / read_*  -> Plan(ReadSource(ReadTask per block or file))  (lazy)
    from_items / from_numpy / ...  -> Plan(RefSource(blocks put in the object store))

Block counts follow Ray's rule of thumb: about two blocks per CPU, more when
blocks would exceed ``DataContext.target_max_block_size``, at most 200 for
small data; ``override_num_blocks`` sets it exactly.
"""

import builtins
import math

import numpy as np

import minray as ray

from . import block as B
from . import csv_io as C
from . import datasource as D
from .context import DataContext
from .dataset import MaterializedDataset, Dataset
from .executor import (LazyReadSource, Meta, Plan, ReadSource, ReadTask, RefSource,
                       _total_cpus)

_ARROW_ONLY_ARGS = {"parse_options", "read_options", "convert_options", "arrow_open_stream_args",
                    "partitioning", "shuffle", "ray_remote_args", "meta_provider", "filesystem",
                    "partition_filter", "concurrency", "ignore_missing_paths", "parallelism",
                    "arrow_open_file_args", "num_cpus", "num_gpus", "memory"}


def default_num_blocks(num_rows, bytes_per_row=8, override=None):
    """How many blocks to cut ``num_rows`` rows into."""
    if override is not None:
        if not isinstance(override, int) or override < 1:
            raise ValueError(f"override_num_blocks must be a positive int, got {override!r}.")
        return override
    ctx = DataContext.get_current()
    size = num_rows * bytes_per_row
    reasonable = max(1, size // ctx.target_min_block_size)
    safe = max(1, math.ceil(size / ctx.target_max_block_size))
    blocks = max(min(ctx.read_op_min_num_blocks, reasonable), safe, 2 * _total_cpus(start=False))
    return max(1, min(blocks, num_rows))


def _bounds(n, k):
    return [(i * n // k, (i + 1) * n // k) for i in builtins.range(k)]


# ---------------------------------------------------------------- synthetic
def _range_block(start, end):
    return {"id": np.arange(start, end, dtype=np.int64)}


def _range_tensor_block(start, end, shape):
    ids = np.arange(start, end, dtype=np.int64)
    return {"data": np.broadcast_to(ids.reshape((-1,) + (1,) * len(shape)),
                                    (end - start,) + tuple(shape)).copy()}


def range(n, *, override_num_blocks=None, parallelism=-1, concurrency=None):
    """Rows ``{"id": 0}`` .. ``{"id": n - 1}``.

    Example::

        ray.data.range(10000).count() == 10000
    """
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}.")
    if parallelism not in (-1, None) and override_num_blocks is None:
        override_num_blocks = parallelism
    k = default_num_blocks(int(n), 8, override_num_blocks) if n else 1
    tasks = [ReadTask(_range_block, a, b, num_rows=b - a) for a, b in _bounds(int(n), k)]
    return Dataset(Plan(ReadSource(tasks, "ReadRange")))


def range_tensor(n, *, shape=(1,), override_num_blocks=None, parallelism=-1,
                 concurrency=None):
    """Rows ``{"data": ndarray of shape filled with i}``.

    Example::

        ray.data.range_tensor(4, shape=(2, 2)).take(1)[0]["data"].shape == (2, 2)
    """
    if parallelism not in (-1, None) and override_num_blocks is None:
        override_num_blocks = parallelism
    shape = tuple(shape)
    per_row = 8 * int(np.prod(shape))
    k = default_num_blocks(int(n), per_row, override_num_blocks) if n else 1
    tasks = [ReadTask(_range_tensor_block, a, b, shape, num_rows=b - a)
             for a, b in _bounds(int(n), k)]
    return Dataset(Plan(ReadSource(tasks, "ReadRangeTensor")))


# ---------------------------------------------------------------- in-memory
def _from_blocks(blocks):
    bundles = []
    for block in blocks:
        bundles.append((ray.put(block), Meta(B.num_rows(block), B.size_bytes(block))))
    return MaterializedDataset(Plan(RefSource(bundles)))


def from_items(items, *, override_num_blocks=None, parallelism=-1):
    """A dataset from a list of dicts (or of plain values, which become ``{"item": x}``).

    Example::

        ds = ray.data.from_items([{"a": 1}, {"a": 2}])
    """
    if not isinstance(items, (list, tuple)):
        items = list(items)
    if parallelism not in (-1, None) and override_num_blocks is None:
        override_num_blocks = parallelism
    if not items:
        return _from_blocks([])
    k = default_num_blocks(len(items), 64, override_num_blocks)
    return _from_blocks([B.from_items(list(items[a:b])) for a, b in _bounds(len(items), k)])


def from_numpy(ndarrays):
    """A dataset with one column ``data``, one block per array.

    Example::

        ray.data.from_numpy(np.zeros((10, 3))).count() == 10
    """
    arrays = ndarrays if isinstance(ndarrays, list) else [ndarrays]
    for a in arrays:
        if not isinstance(a, np.ndarray):
            raise TypeError(f"from_numpy takes numpy arrays, got {type(a).__name__}.")
    return _from_blocks([{"data": a} for a in arrays])


def from_numpy_refs(ndarrays):
    """Like from_numpy, for ObjectRefs of arrays."""
    refs = ndarrays if isinstance(ndarrays, list) else [ndarrays]
    return from_numpy(ray.get(refs))


def from_pandas(dfs, override_num_blocks=None):
    """A dataset from one pandas DataFrame (or a list: one block each).

    Example::

        ray.data.from_pandas(pd.DataFrame({"a": [1, 2]})).sum("a") == 3
    """
    B.require("pandas", "pandas")
    dfs = dfs if isinstance(dfs, list) else [dfs]
    blocks = [B.from_pandas(df) for df in dfs]
    if override_num_blocks and len(blocks) == 1:
        block, n = blocks[0], B.num_rows(blocks[0])
        blocks = [B.slice_block(block, a, b) for a, b in _bounds(n, override_num_blocks)]
    return _from_blocks(blocks)


def from_pandas_refs(dfs):
    """Like from_pandas, for ObjectRefs of DataFrames."""
    refs = dfs if isinstance(dfs, list) else [dfs]
    return from_pandas(ray.get(refs))


def from_dask(df):
    """A dataset from a dask DataFrame, one block per partition (see dask_io.py)."""
    from .dask_io import from_dask as _from_dask
    return _from_dask(df)


def from_arrow(tables):
    """A dataset from pyarrow Tables (needs pyarrow).

    Example::

        ray.data.from_arrow(pa.table({"a": [1, 2]}))
    """
    B.require("pyarrow", "pyarrow")
    tables = tables if isinstance(tables, list) else [tables]
    return _from_blocks([B.from_arrow(t) for t in tables])


def from_arrow_refs(tables):
    """Like from_arrow, for ObjectRefs of Tables."""
    refs = tables if isinstance(tables, list) else [tables]
    return from_arrow(ray.get(refs))


def from_torch(dataset, local_read=False):
    """A dataset of ``{"item": sample}`` rows from a map-style torch Dataset.

    Example::

        ray.data.from_torch(torch_dataset).take(1)   # [{'item': ...}]
    """
    items = []
    for i in builtins.range(len(dataset)):
        items.append({"item": _torch_to_numpy(dataset[i])})
    return from_items(items)


def _torch_to_numpy(value):
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        return value.detach().cpu().numpy()
    if isinstance(value, tuple):
        return tuple(_torch_to_numpy(v) for v in value)
    if isinstance(value, list):
        return [_torch_to_numpy(v) for v in value]
    if isinstance(value, dict):
        return {k: _torch_to_numpy(v) for k, v in value.items()}
    return value


# ---------------------------------------------------------------- files
def _file_dataset(tasks, name, paths):
    source = ReadSource(tasks, name)
    source.paths = paths
    return Dataset(Plan(source))


def _pandas_options(kwargs, reader):
    return {k: v for k, v in kwargs.items() if k not in _ARROW_ONLY_ARGS}


def read_csv(paths, *, include_paths=False, file_extensions=None, override_num_blocks=None,
             **read_args):
    """Read CSV files (a file, a directory, a glob, or a list of them); one block per file,
    big files in parallel 16 MiB byte ranges (cut at line ends; from a range holding a
    quote character on, the rest of the file is one range).  A range of plain numbers
    is parsed by minray's compiled parser (``minray._ext.csvnum``), anything else by
    pandas (pyarrow for a small one-off read), always with the columns and types
    ``pandas.read_csv`` gives; extra keyword arguments go to ``pandas.read_csv``.  The
    ranges are found as the dataset executes.

    Example::

        ds = ray.data.read_csv("/tmp/data/*.csv")
    """
    options = _pandas_options(read_args, "csv")
    if options or not C.have_pyarrow():
        B.require("pandas", "pandas")
    files = D.expand_paths(paths, file_extensions, "read_csv")

    def tasks():            # lazily: each file is scanned as its ranges are submitted
        for f in files:
            for r in C.iter_csv_ranges(f, options):
                yield ReadTask(C.read_csv_range, f, r.start, r.end, include_paths, options,
                               r.header)

    source = LazyReadSource(tasks, "ReadCSV")
    source.paths = files
    return Dataset(Plan(source))


def read_json(paths, *, include_paths=False, file_extensions=None, override_num_blocks=None,
              lines=None, **read_args):
    """Read JSON lines files (or files holding one JSON array of objects).

    Example::

        ds = ray.data.read_json("/tmp/data.jsonl")
    """
    files = D.expand_paths(paths, file_extensions, "read_json")
    options = _pandas_options(read_args, "json")
    if lines is not None:
        options["lines"] = lines
    return _file_dataset([ReadTask(D.read_json_file, f, include_paths, dict(options))
                          for f in files], "ReadJSON", files)


def read_text(paths, *, encoding="utf-8", drop_empty_lines=True, include_paths=False,
              file_extensions=None, override_num_blocks=None, **kwargs):
    """Read text files: one row ``{"text": line}`` per line, as Ray does.

    Lines split at ``\n``, ``\r\n`` and ``\r`` (the line ends are not kept, other
    whitespace is); a final line end adds no extra row.  ``drop_empty_lines=True`` (the
    default) skips lines that are empty or only whitespace.

    Example::

        # notes.txt holds "first line\n\nsecond line\n"
        ray.data.read_text("/tmp/notes.txt").take_all()
        # [{'text': 'first line'}, {'text': 'second line'}]
        ray.data.read_text("/tmp/notes.txt", drop_empty_lines=False).count() == 3
    """
    files = D.expand_paths(paths, file_extensions, "read_text")
    return _file_dataset([ReadTask(D.read_text_file, f, encoding, drop_empty_lines,
                                   include_paths) for f in files], "ReadText", files)


def read_numpy(paths, *, include_paths=False, file_extensions=("npy", "npz"),
               override_num_blocks=None, **kwargs):
    """Read ``.npy`` files into column ``data`` (``.npz``: one column per array).

    Example::

        ray.data.read_numpy("/tmp/arrays/")
    """
    files = D.expand_paths(paths, file_extensions, "read_numpy")
    return _file_dataset([ReadTask(D.read_numpy_file, f, include_paths) for f in files],
                         "ReadNumpy", files)


def read_parquet(paths, *, columns=None, include_paths=False, file_extensions=None,
                 override_num_blocks=None, **kwargs):
    """Read Parquet files (needs pyarrow).

    Example::

        ray.data.read_parquet("/tmp/table.parquet", columns=["a"])
    """
    B.require("pyarrow.parquet", "pyarrow")
    files = D.expand_paths(paths, file_extensions, "read_parquet")
    return _file_dataset([ReadTask(D.read_parquet_file, f, columns, include_paths)
                          for f in files], "ReadParquet", files)


IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "tif", "tiff", "bmp", "gif")


def read_images(paths, *, size=None, mode=None, include_paths=False,
                file_extensions=IMAGE_EXTENSIONS, override_num_blocks=None, **kwargs):
    """Read images into column ``image`` (HxWxC uint8 arrays; needs Pillow).

    ``size=(height, width)`` resizes, ``mode="RGB"`` converts.

    Example::

        ray.data.read_images("/tmp/images/", size=(32, 32), mode="RGB")
    """
    B.require("PIL.Image", "pillow")
    files = D.expand_paths(paths, file_extensions, "read_images")
    k = override_num_blocks or min(len(files), max(1, 2 * _total_cpus(start=False)))
    chunks = [files[a:b] for a, b in _bounds(len(files), k) if b > a]
    return _file_dataset([ReadTask(D.read_image_files, c, size, mode, include_paths)
                          for c in chunks], "ReadImages", files)


def read_binary_files(paths, *, include_paths=False, file_extensions=None,
                      override_num_blocks=None, **kwargs):
    """Read whole files as ``{"bytes": b"..."}`` rows.

    Example::

        ray.data.read_binary_files("/tmp/blobs/")
    """
    files = D.expand_paths(paths, file_extensions, "read_binary_files")
    return _file_dataset([ReadTask(D.read_binary_file, f, include_paths) for f in files],
                         "ReadBinary", files)
