"""Blocks: the unit of data that tasks pass around.

    rows (list of dicts) --from_rows--> block --to_batch--> numpy / pandas / pyarrow batch
    pandas / pyarrow / dict batch --normalize_batch--> block --iter_rows--> rows

A block is a plain ``dict`` mapping column names to numpy arrays of equal
length (a tensor column is an array with more than one dimension; strings are
numpy ``str`` or ``object`` arrays).  One block lives in the object store as one
ObjectRef, so a task reads it zero-copy.  Everything here is pure functions on
blocks: no runtime calls, so the executor and the tests can use them anywhere.
"""

import numpy as np

DEFAULT_BATCH_FORMAT = "numpy"
BATCH_FORMATS = ("default", "numpy", "pandas", "pyarrow")


def require(module, extra):
    """Import an optional dependency or raise an ImportError that names the fix."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"minray.data needs the '{module}' package for this call; install it "
                          f"with `pip install {extra}`.") from exc


# ---------------------------------------------------------------- building blocks
def _objects(values):
    """A 1-D object column holding each value as is (ragged tensors, tuples, dicts)."""
    col = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        col[i] = v
    return col


def make_column(values):
    """A numpy column from a list of row values (scalars, strings or arrays).

    Example::

        make_column([1, 2]).dtype == np.int64
        make_column([np.zeros(3), np.ones(3)]).shape == (2, 3)
    """
    if isinstance(values, np.ndarray):
        return values
    values = list(values)
    first = values[0] if values else None
    if isinstance(first, np.ndarray):
        shapes = {v.shape if isinstance(v, np.ndarray) else None for v in values}
        return np.stack(values) if len(shapes) == 1 else _objects(values)
    if isinstance(first, list):
        try:
            arr = np.asarray(values)
            if arr.dtype != object:
                return arr
        except ValueError:
            pass
        return _objects([np.asarray(v) for v in values])
    if isinstance(first, (dict, bytes, tuple)) or any(v is None for v in values):
        return _objects(values)
    try:
        return np.asarray(values)
    except ValueError:
        return _objects(values)


def from_rows(rows):
    """A block from a list of dict rows (columns in first-seen order)."""
    if not rows:
        return {}
    names = list(rows[0])
    seen = set(names)
    for row in rows:
        if not isinstance(row, dict):
            raise TypeError(f"A row must be a dict of column -> value, got {type(row).__name__}: "
                            f"{row!r}. Return {{'item': value}} to make a one-column row.")
        if len(row) != len(names) or row.keys() != seen:
            for key in row:
                if key not in seen:
                    names.append(key)
                    seen.add(key)
    return {name: make_column([row.get(name) for row in rows]) for name in names}


def from_items(items):
    """A block from ``from_items`` input: dict rows, or bare values wrapped as ``{"item": x}``."""
    if items and not isinstance(items[0], dict):
        return {"item": make_column(items)}
    return from_rows(items)


def num_rows(block):
    for col in block.values():
        return len(col)
    return 0


def size_bytes(block):
    total = 0
    for col in block.values():
        total += col.nbytes if col.dtype != object else 64 * len(col)
    return total


def slice_block(block, start, end):
    return {k: v[start:end] for k, v in block.items()}


def take(block, indices):
    return {k: v[indices] for k, v in block.items()}


def concat(blocks):
    """Concatenate blocks with the same columns (empty blocks are skipped)."""
    blocks = [b for b in blocks if b and num_rows(b) > 0]
    if not blocks:
        return {}
    if len(blocks) == 1:
        return blocks[0]
    names = list(blocks[0])
    for b in blocks[1:]:
        if list(b) != names and set(b) != set(names):
            raise ValueError(f"Cannot concatenate blocks with different columns: {names} and "
                             f"{list(b)}. Make every batch return the same columns.")
    out = {}
    for name in names:
        cols = [b[name] for b in blocks]
        try:
            out[name] = np.concatenate(cols)
        except ValueError:          # tensors of different shapes: one object per row
            out[name] = make_column([row for c in cols for row in c])
    return out


def iter_rows(block):
    """Rows of a block as dicts of Python scalars (tensor cells stay numpy arrays)."""
    names = list(block)
    cols = [c.tolist() if c.ndim == 1 and c.dtype != object else c for c in block.values()]
    for values in zip(*cols):
        yield dict(zip(names, values))


def check_columns(block, columns, what="column"):
    """Raise KeyError naming the known columns if one of ``columns`` is missing."""
    missing = [c for c in columns if c not in block]
    if missing:
        raise KeyError(f"{what} {missing[0]!r} does not exist; the dataset has columns "
                       f"{list(block)}.")


# ---------------------------------------------------------------- batch formats
def to_pandas(block):
    pd = require("pandas", "pandas")
    data = {}
    for name, col in block.items():
        if col.ndim > 1:
            data[name] = list(col)     # a tensor column: one array per cell
        else:
            data[name] = col
    return pd.DataFrame(data)


def from_pandas(df):
    out = {}
    for name in df.columns:
        series = df[name]
        col = series.to_numpy()
        if col.dtype == object and len(col) and isinstance(col[0], np.ndarray):
            col = make_column(list(col))
        elif col.dtype != object and not isinstance(col, np.ndarray):
            col = np.asarray(col)
        elif col.dtype == object and str(series.dtype) in ("str", "string"):
            col = col.astype(object)
        out[str(name)] = col
    return out


def to_arrow(block):
    pa = require("pyarrow", "pyarrow")
    arrays = {}
    for name, col in block.items():
        arrays[name] = pa.array(list(col)) if col.ndim > 1 or col.dtype == object else col
    return pa.table(arrays)


def from_arrow(table):
    out = {}
    for name in table.column_names:
        chunked = table.column(name)
        try:
            col = chunked.to_numpy()
        except Exception:       # nested or null-bearing columns convert via Python lists
            col = make_column(chunked.to_pylist())
        if col.dtype == object and len(col) and isinstance(col[0], (np.ndarray, list)):
            col = make_column([np.asarray(v) for v in col])
        out[name] = col
    return out


def to_batch(block, batch_format):
    """Convert a block to the batch type a user function asked for."""
    if batch_format in ("default", "numpy", None):
        return dict(block)
    if batch_format == "pandas":
        return to_pandas(block)
    if batch_format == "pyarrow":
        return to_arrow(block)
    raise ValueError(f"batch_format must be one of {BATCH_FORMATS}, got {batch_format!r}.")


def normalize_batch(batch, fn_name="the function"):
    """Turn what a batch function returned (dict, DataFrame, pyarrow Table) into a block."""
    if isinstance(batch, dict):
        out = {}
        n = None
        for name, col in batch.items():
            col = col if isinstance(col, np.ndarray) else make_column(col)
            if col.ndim == 0:
                raise ValueError(f"{fn_name} returned a scalar for column {name!r}; a batch "
                                 f"column must be an array or a list with one value per row.")
            if n is not None and len(col) != n:
                raise ValueError(f"{fn_name} returned columns of different lengths "
                                 f"({n} and {len(col)} for {name!r}).")
            n = len(col)
            out[str(name)] = col
        return out
    module = type(batch).__module__
    if module.startswith("pandas"):
        return from_pandas(batch)
    if module.startswith("pyarrow"):
        return from_arrow(batch)
    raise TypeError(f"{fn_name} must return a dict of column -> array, a pandas.DataFrame or a "
                    f"pyarrow.Table, got {type(batch).__name__}.")


# ---------------------------------------------------------------- schema
_ARROW_NAMES = {"float64": "double", "float32": "float", "float16": "halffloat"}


class DataType:
    """A column type, printed the way Arrow names it (``int64``, ``double``, ``string``)."""

    def __init__(self, name, dtype=None, shape=None):
        self.name, self.dtype, self.shape = name, dtype, shape

    def __str__(self):
        return self.name

    __repr__ = __str__

    def __eq__(self, other):
        return str(self) == str(other)

    def __hash__(self):
        return hash(self.name)


def column_type(col):
    if col.dtype.kind in "US":
        return DataType("string" if col.dtype.kind == "U" else "binary", col.dtype)
    if col.dtype == object:
        sample = next((v for v in col[:16] if v is not None), None)
        if isinstance(sample, str):
            return DataType("string", col.dtype)
        if isinstance(sample, bytes):
            return DataType("binary", col.dtype)
        if isinstance(sample, np.ndarray):
            return DataType(f"ArrowVariableShapedTensorType(ndim={sample.ndim}, "
                            f"dtype={sample.dtype})", sample.dtype)
        return DataType("object", col.dtype)
    scalar = _ARROW_NAMES.get(col.dtype.name, col.dtype.name)
    if col.ndim > 1:
        return DataType(f"ArrowTensorTypeV2(shape={col.shape[1:]}, dtype={col.dtype.name})",
                        col.dtype, col.shape[1:])
    if col.dtype.kind == "M":
        return DataType(f"timestamp[{np.datetime_data(col.dtype)[0]}]", col.dtype)
    return DataType(scalar, col.dtype)


class Schema:
    """Column names and types of a dataset, as ``Dataset.schema()`` returns them.

    Example::

        s = ray.data.range(3).schema()
        s.names == ["id"]; str(s.types[0]) == "int64"
    """

    def __init__(self, names, types):
        self.names = list(names)
        self.types = list(types)

    @classmethod
    def of(cls, block):
        return cls(list(block), [column_type(c) for c in block.values()])

    @property
    def base_schema(self):
        return self

    def __eq__(self, other):
        return (isinstance(other, Schema) and self.names == other.names
                and [str(t) for t in self.types] == [str(t) for t in other.types])

    def __len__(self):
        return len(self.names)

    def __repr__(self):
        width = max([len("Column")] + [len(n) for n in self.names])
        lines = [f"{'Column':<{width}}  Type", f"{'------':<{width}}  ----"]
        lines += [f"{n:<{width}}  {t}" for n, t in zip(self.names, self.types)]
        return "\n".join(lines)
