"""Block transforms: what one fused map task (or map actor) runs on one block.

    block --MapRows / FlatMap / Filter / MapBatches / Project / AddColumn--> block

Each transform is a small picklable object ``t(block, block_index) -> block``;
the executor chains several of them into one task per block (operator fusion).
``setup()`` runs once per worker before the first block: a callable class given
to ``map_batches`` is constructed there, so a model loads once per actor.

A user function that raises keeps its exception type (so ``except ValueError``
works after the runtime re-raises it) and gains a note naming the function, the
operator and the block (and the row for row-wise functions).
"""

import numpy as np

from . import block as B


def fn_name(fn):
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return name or type(fn).__name__


def _blame(exc, op, fn, block_index, row=None):
    where = f"block {block_index}" + (f", row {row}" if row is not None else "")
    op = op if "(" in op else f"{op}({fn_name(fn)})"
    try:
        exc.add_note(f"minray.data: {op} failed on {where}; the error was "
                     f"raised by the user function {fn_name(fn)!r}.")
    except Exception:
        pass
    return exc


class Transform:
    """Base class: a named block -> block step."""
    name = "Map"

    def setup(self):
        """Runs once in the worker before the first block."""

    def __call__(self, block, block_index):
        raise NotImplementedError

    @property
    def is_class(self):
        return False


class MapRows(Transform):
    """``Dataset.map``: fn(row: dict) -> dict (fn may be a callable class)."""

    def __init__(self, fn, fn_args=(), fn_kwargs=None, fn_constructor_args=(),
                 fn_constructor_kwargs=None, name="Map"):
        self.fn, self.fn_args, self.fn_kwargs = fn, tuple(fn_args or ()), dict(fn_kwargs or {})
        self.ctor_args = tuple(fn_constructor_args or ())
        self.ctor_kwargs = dict(fn_constructor_kwargs or {})
        self.name = f"{name}({fn_name(fn)})"
        self._call = None

    @property
    def is_class(self):
        return isinstance(self.fn, type)

    def setup(self):
        if self._call is None:
            self._call = _instantiate(self.fn, self.ctor_args, self.ctor_kwargs)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_call"] = None           # an instance never travels; each worker builds its own
        return state

    def __call__(self, block, block_index):
        self.setup()
        out = []
        call = self._call
        for i, row in enumerate(B.iter_rows(block)):
            try:
                result = call(row, *self.fn_args, **self.fn_kwargs)
            except Exception as exc:
                raise _blame(exc, self.name, self.fn, block_index, i)
            if not isinstance(result, dict):
                raise _blame(TypeError(
                    f"{self.name} function {fn_name(self.fn)!r} must return a dict row, got "
                    f"{type(result).__name__}: {result!r}. Return e.g. {{'item': value}}."),
                    self.name, self.fn, block_index, i)
            out.append(result)
        return B.from_rows(out)


class FlatMap(MapRows):
    """``Dataset.flat_map``: fn(row) -> list of dict rows."""

    def __call__(self, block, block_index):
        self.setup()
        out = []
        call = self._call
        for i, row in enumerate(B.iter_rows(block)):
            try:
                out.extend(call(row, *self.fn_args, **self.fn_kwargs))
            except Exception as exc:
                raise _blame(exc, self.name, self.fn, block_index, i)
        return B.from_rows(out)


class Filter(MapRows):
    """``Dataset.filter``: keep rows where fn(row) is true."""

    def __call__(self, block, block_index):
        self.setup()
        call = self._call
        keep = np.zeros(B.num_rows(block), dtype=bool)
        for i, row in enumerate(B.iter_rows(block)):
            try:
                keep[i] = bool(call(row, *self.fn_args, **self.fn_kwargs))
            except Exception as exc:
                raise _blame(exc, self.name, self.fn, block_index, i)
        return B.take(block, keep)


def _instantiate(fn, args, kwargs):
    return fn(*args, **kwargs) if isinstance(fn, type) else fn


class MapBatches(Transform):
    """``Dataset.map_batches``: fn(batch) -> batch, over slices of ``batch_size`` rows."""

    def __init__(self, fn, batch_size=None, batch_format="default", zero_copy_batch=False,
                 fn_args=(), fn_kwargs=None, fn_constructor_args=(),
                 fn_constructor_kwargs=None, name=None):
        if batch_format not in B.BATCH_FORMATS:
            raise ValueError(f"batch_format must be one of {B.BATCH_FORMATS}, got "
                             f"{batch_format!r}.")
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}.")
        self.fn, self.batch_size, self.batch_format = fn, batch_size, batch_format
        self.zero_copy_batch = zero_copy_batch
        self.fn_args, self.fn_kwargs = tuple(fn_args or ()), dict(fn_kwargs or {})
        self.ctor_args = tuple(fn_constructor_args or ())
        self.ctor_kwargs = dict(fn_constructor_kwargs or {})
        self.name = name or f"MapBatches({fn_name(fn)})"
        self._call = None

    @property
    def is_class(self):
        return isinstance(self.fn, type)

    def setup(self):
        if self._call is None:
            self._call = _instantiate(self.fn, self.ctor_args, self.ctor_kwargs)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_call"] = None           # an instance never travels; each worker builds its own
        return state

    def __call__(self, block, block_index):
        self.setup()
        n = B.num_rows(block)
        if n == 0:
            return {}                   # never call the user's function on an empty batch
        size = self.batch_size or n
        outs = []
        for start in range(0, n, size):
            piece = B.slice_block(block, start, start + size) if size < n else block
            if not self.zero_copy_batch and self.batch_format in ("default", "numpy"):
                piece = {k: (v if v.flags.writeable else v.copy()) for k, v in piece.items()}
            batch = B.to_batch(piece, self.batch_format)
            try:
                result = self._call(batch, *self.fn_args, **self.fn_kwargs)
            except Exception as exc:
                raise _blame(exc, "MapBatches", self.fn, block_index)
            if result is None:
                raise _blame(TypeError(
                    f"map_batches function {fn_name(self.fn)!r} returned None; it must return "
                    f"a batch (dict of arrays, pandas.DataFrame or pyarrow.Table)."),
                    "MapBatches", self.fn, block_index)
            if hasattr(result, "__next__") and not isinstance(result, dict):
                outs.extend(B.normalize_batch(r, fn_name(self.fn)) for r in result)
            else:
                outs.append(B.normalize_batch(result, fn_name(self.fn)))
        return B.concat(outs) if len(outs) != 1 else outs[0]


class Project(Transform):
    """select_columns / drop_columns / rename_columns, all zero-copy."""

    def __init__(self, select=None, drop=None, rename=None):
        self.select, self.drop, self.rename = select, drop, rename
        self.name = ("SelectColumns" if select is not None else
                     "DropColumns" if drop is not None else "RenameColumns")

    def __call__(self, block, block_index):
        if not block:
            return block
        if self.select is not None:
            B.check_columns(block, self.select)
            return {c: block[c] for c in self.select}
        if self.drop is not None:
            B.check_columns(block, self.drop)
            return {c: v for c, v in block.items() if c not in self.drop}
        B.check_columns(block, list(self.rename))
        return {self.rename.get(c, c): v for c, v in block.items()}


class AddColumn(Transform):
    """``Dataset.add_column``: fn(batch) -> the new column's values."""
    name = "AddColumn"

    def __init__(self, col, fn, batch_format="pandas"):
        self.col, self.fn, self.batch_format = col, fn, batch_format

    def __call__(self, block, block_index):
        if not block:
            return block
        try:
            values = self.fn(B.to_batch(block, self.batch_format))
        except Exception as exc:
            raise _blame(exc, "AddColumn", self.fn, block_index)
        if hasattr(values, "to_numpy"):
            values = values.to_numpy()
        out = dict(block)
        out[self.col] = B.make_column(values)
        if len(out[self.col]) != B.num_rows(block):
            raise ValueError(f"add_column({self.col!r}) function returned "
                             f"{len(out[self.col])} values for {B.num_rows(block)} rows.")
        return out


class Slice(Transform):
    """Keep rows [start, end) (used by limit and split)."""
    name = "Slice"

    def __init__(self, start, end):
        self.start, self.end = start, end

    def __call__(self, block, block_index):
        return B.slice_block(block, self.start, self.end)


def apply(transforms, block, block_index):
    for t in transforms:
        block = t(block, block_index)
    return block
