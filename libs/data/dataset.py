"""Dataset: a lazy plan of operators and the methods that extend or consume it.

    ray.data.range(...) / read_*(...) / from_*(...)  -> Dataset(Plan(source))
    ds.map / map_batches / filter / sort / ...       -> Dataset(plan + operator)   (lazy)
    ds.take / iter_batches / count / write_* / ...   -> executor.stream(plan)      (runs)

Transforms return a new Dataset and run nothing.  Consumers execute the plan
through the streaming executor (executor.py), all-to-all operators through
shuffle.py, aggregations through aggregate.py, writes through datasource.py.
``materialize()`` runs the plan once and keeps the blocks in the object store.
"""

import itertools
import uuid
import zlib

import numpy as np

import minray as ray

from . import aggregate as A
from . import block as B
from . import shuffle as S
from . import transforms as T
from .context import resolve_compute
from .executor import BarrierOp, LimitOp, MapOp, Plan, RefSource, Stats, UnionSource, stream
from .iterator import DatasetIterator, _SplitCoordinator, StreamSplitDataIterator

DEFAULT_MAP_BATCH_SIZE = 1024


def _remote_args(num_cpus, num_gpus, memory, ray_remote_args):
    args = dict(ray_remote_args)
    for key, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus), ("memory", memory)):
        if value is not None:
            args[key] = value
    return args


def _as_list(cols, what):
    if isinstance(cols, str):
        return [cols]
    if not isinstance(cols, (list, tuple)) or not all(isinstance(c, str) for c in cols):
        raise TypeError(f"{what} must be a column name or a list of column names, got {cols!r}.")
    return list(cols)


class Dataset:
    """A distributed collection of rows, split into blocks, transformed lazily.

    Example::

        ds = ray.data.range(1000).map_batches(lambda b: {"id": b["id"] * 2})
        ds.filter(lambda row: row["id"] % 3 == 0).take(3)   # [{'id': 0}, {'id': 6}, ...]
    """

    def __init__(self, plan):
        self._plan = plan
        self._last_stats = Stats()

    def _with(self, op):
        return Dataset(self._plan.with_op(op))

    def _stream(self, plan=None):
        """Execute (this plan, or a consumer's extension of it) and record its stats here."""
        self._last_stats = Stats()
        return stream(plan or self._plan, self._last_stats)

    def _bundles(self):
        return list(self._stream())

    def __repr__(self):
        return f"{type(self).__name__}({self._plan.describe()})"

    # ------------------------------------------------------------ row/batch maps
    def map(self, fn, *, compute=None, fn_args=None, fn_kwargs=None, fn_constructor_args=None,
            fn_constructor_kwargs=None, num_cpus=None, num_gpus=None, memory=None,
            concurrency=None, **ray_remote_args):
        """Apply ``fn(row) -> row`` to each row (a dict).

        Example::

            ray.data.range(3).map(lambda row: {"id": row["id"] ** 2}).take_all()
            # [{'id': 0}, {'id': 1}, {'id': 4}]
        """
        t = T.MapRows(fn, fn_args, fn_kwargs, fn_constructor_args, fn_constructor_kwargs)
        compute = resolve_compute(t.is_class, compute, concurrency)
        return self._with(MapOp(t, compute, _remote_args(num_cpus, num_gpus, memory,
                                                          ray_remote_args)))

    def map_batches(self, fn, *, batch_size=None, compute=None, batch_format="default",
                    zero_copy_batch=True, fn_args=None, fn_kwargs=None,
                    fn_constructor_args=None, fn_constructor_kwargs=None, num_cpus=None,
                    num_gpus=None, memory=None, concurrency=None, **ray_remote_args):
        """Apply ``fn(batch) -> batch`` to batches of rows; a class runs on an actor pool.

        A batch is a dict of numpy arrays (``batch_format="numpy"``/``"default"``) or a
        pandas DataFrame (``"pandas"``); ``batch_size=None`` (the default) passes whole
        blocks.  As in Ray, numpy batches are zero-copy views that may be read-only: pass
        ``zero_copy_batch=False`` to a function that modifies its batch in place.  A callable class is built once per actor:
        ``concurrency=n`` for n actors, ``(min, max)`` to autoscale.

        Example::

            ds.map_batches(lambda b: {"id": b["id"] * 2}, batch_size=256)

            class Model:
                def __init__(self):
                    self.w = 2
                def __call__(self, batch):
                    return {"y": batch["id"] * self.w}
            ds.map_batches(Model, concurrency=2, batch_size=64)
        """
        if batch_size == "default":
            batch_size = DEFAULT_MAP_BATCH_SIZE
        t = T.MapBatches(fn, batch_size, batch_format, zero_copy_batch, fn_args, fn_kwargs,
                         fn_constructor_args, fn_constructor_kwargs)
        if not t.is_class and (fn_constructor_args or fn_constructor_kwargs):
            raise ValueError("fn_constructor_args/kwargs are only for callable classes; "
                             f"{T.fn_name(fn)!r} is not a class.")
        if not callable(fn):
            raise TypeError(f"map_batches needs a function or a callable class, got {fn!r}.")
        compute = resolve_compute(t.is_class, compute, concurrency)
        return self._with(MapOp(t, compute, _remote_args(num_cpus, num_gpus, memory,
                                                          ray_remote_args)))

    def flat_map(self, fn, *, compute=None, fn_args=None, fn_kwargs=None,
                 fn_constructor_args=None, fn_constructor_kwargs=None, num_cpus=None,
                 num_gpus=None, memory=None, concurrency=None, **ray_remote_args):
        """Apply ``fn(row) -> list of rows`` and flatten.

        Example::

            ray.data.range(2).flat_map(lambda r: [r, r]).count() == 4
        """
        t = T.FlatMap(fn, fn_args, fn_kwargs, fn_constructor_args, fn_constructor_kwargs,
                      name="FlatMap")
        compute = resolve_compute(t.is_class, compute, concurrency)
        return self._with(MapOp(t, compute, _remote_args(num_cpus, num_gpus, memory,
                                                          ray_remote_args)))

    def filter(self, fn=None, *, expr=None, compute=None, fn_args=None, fn_kwargs=None,
               fn_constructor_args=None, fn_constructor_kwargs=None, num_cpus=None,
               num_gpus=None, memory=None, concurrency=None, **ray_remote_args):
        """Keep the rows for which ``fn(row)`` is true.

        Example::

            ray.data.range(10).filter(lambda r: r["id"] % 2 == 0).count() == 5
        """
        if expr is not None:
            if fn is not None:
                raise ValueError("Give filter either fn or expr, not both.")
            code = compile(expr, "<filter expr>", "eval")
            fn = _ExprFilter(expr, code)
        if fn is None:
            raise ValueError("filter needs a function fn(row) -> bool (or expr='...').")
        t = T.Filter(fn, fn_args, fn_kwargs, fn_constructor_args, fn_constructor_kwargs,
                     name="Filter")
        compute = resolve_compute(t.is_class, compute, concurrency)
        return self._with(MapOp(t, compute, _remote_args(num_cpus, num_gpus, memory,
                                                          ray_remote_args)))

    def add_column(self, col, fn, *, batch_format="pandas", compute=None, concurrency=None,
                   **ray_remote_args):
        """Add column ``col`` computed by ``fn(batch)`` (a pandas batch by default).

        Example::

            ds.add_column("double", lambda df: df["id"] * 2)
        """
        return self._with(MapOp(T.AddColumn(col, fn, batch_format),
                                resolve_compute(False, compute, concurrency), ray_remote_args))

    def drop_columns(self, cols, **ray_remote_args):
        """Drop the given columns.

        Example::

            ds.drop_columns(["b"]).columns() == ["a"]
        """
        return self._with(MapOp(T.Project(drop=_as_list(cols, "cols")), None, ray_remote_args))

    def select_columns(self, cols, **ray_remote_args):
        """Keep only the given columns, in the given order.

        Example::

            ds.select_columns(["a"]).columns() == ["a"]
        """
        return self._with(MapOp(T.Project(select=_as_list(cols, "cols")), None, ray_remote_args))

    def rename_columns(self, names, **ray_remote_args):
        """Rename columns: a dict ``{old: new}`` or the full list of new names.

        Example::

            ds.rename_columns({"a": "x"})
        """
        if isinstance(names, (list, tuple)):
            old = self.columns()
            if len(names) != len(old):
                raise ValueError(f"rename_columns got {len(names)} names for {len(old)} "
                                 f"columns {old}.")
            names = dict(zip(old, names))
        if not isinstance(names, dict):
            raise TypeError(f"rename_columns takes a dict {{old: new}} or a list, got {names!r}.")
        return self._with(MapOp(T.Project(rename=dict(names)), None, ray_remote_args))

    def limit(self, limit):
        """The first ``limit`` rows (streaming: later blocks are never computed).

        Example::

            ray.data.range(1000).limit(5).count() == 5
        """
        if not isinstance(limit, int) or limit < 0:
            raise ValueError(f"limit must be a non-negative int, got {limit!r}.")
        return self._with(LimitOp(limit))

    # ------------------------------------------------------------ all-to-all
    def repartition(self, num_blocks=None, *, target_num_rows_per_block=None, shuffle=False,
                    **kwargs):
        """Redistribute rows into ``num_blocks`` blocks of (nearly) equal size, or into
        blocks of ``target_num_rows_per_block`` rows.

        Example::

            ray.data.range(100).repartition(4).materialize().num_blocks() == 4
        """
        if (num_blocks is None) == (target_num_rows_per_block is None):
            raise ValueError("Give repartition exactly one of num_blocks or "
                             "target_num_rows_per_block.")
        for label, v in (("num_blocks", num_blocks),
                         ("target_num_rows_per_block", target_num_rows_per_block)):
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ValueError(f"{label} must be a positive int, got {v!r}.")
        if target_num_rows_per_block is not None:
            rows = target_num_rows_per_block

            def by_rows(bundles):
                total = sum(m.num_rows for _, m in bundles)
                return S.slice_rows(bundles, [(a, min(a + rows, total))
                                              for a in range(0, total, rows)])
            return self._with(BarrierOp(f"Repartition(rows={rows})", by_rows))
        if shuffle:
            return self._with(BarrierOp("RandomShuffle",
                                        lambda b: S.random_shuffle(b, None, num_blocks)))
        return self._with(BarrierOp(f"Repartition({num_blocks})",
                                    lambda b: S.repartition(b, num_blocks)))

    def random_shuffle(self, *, seed=None, num_blocks=None, **kwargs):
        """Shuffle all rows randomly (repeatable with ``seed``).

        Example::

            ray.data.range(10).random_shuffle(seed=42).take(3)
        """
        return self._with(BarrierOp("RandomShuffle",
                                    lambda b: S.random_shuffle(b, seed, num_blocks)))

    def randomize_block_order(self, *, seed=None):
        """Shuffle the order of blocks (cheap: no data moves).

        Example::

            ds.randomize_block_order(seed=0)
        """
        return self._with(BarrierOp("RandomizeBlockOrder",
                                    lambda b: S.randomize_block_order(b, seed)))

    def sort(self, key, descending=False, boundaries=None):
        """Sort by one or more columns; ``descending`` is one bool or one per key.

        Example::

            ray.data.from_items([{"a": 3}, {"a": 1}]).sort("a").take_all()
            # [{'a': 1}, {'a': 3}]
            ds.sort(["a", "b"], descending=[True, False])   # a high to low, then b low to high
            ds.sort("id", boundaries=[10, 20])   # blocks: id < 10, 10 <= id < 20, id >= 20
        """
        keys = _as_list(key, "key")
        descending = S.directions(keys, descending)
        if boundaries is not None:
            boundaries = list(boundaries)
            if (not boundaries or any(isinstance(v, bool) or not isinstance(v, (int, float))
                                      for v in boundaries) or boundaries != sorted(boundaries)):
                raise ValueError(f"boundaries must be a non-empty, ascending list of numbers "
                                 f"(values of the first key), got {boundaries!r}.")
        return self._with(BarrierOp(f"Sort({', '.join(keys)})",
                                    lambda b: S.sort(b, keys, descending, boundaries)))

    def groupby(self, key, **kwargs):
        """Group rows by one or more key columns, then aggregate or map each group.

        Example::

            ds.groupby("k").sum("v").take_all()   # [{'k': ..., 'sum(v)': ...}, ...]
        """
        from .grouped import GroupedData
        return GroupedData(self, _as_list(key, "key") if key is not None else None)

    def union(self, *others):
        """Concatenate this dataset with others (their blocks follow this one's).

        Example::

            ray.data.range(3).union(ray.data.range(2)).count() == 5
        """
        for other in others:
            if not isinstance(other, Dataset):
                raise TypeError(f"union takes Datasets, got {type(other).__name__}.")
        return Dataset(Plan(UnionSource([self._plan] + [o._plan for o in others])))

    def zip(self, *others):
        """Combine columns of datasets with the same number of rows, row by row.

        Duplicate column names get a ``_1`` suffix.

        Example::

            ray.data.range(3).zip(ray.data.range(3)).columns() == ["id", "id_1"]
        """
        out = self
        for other in others:
            right = other._plan
            out = out._with(BarrierOp("Zip", lambda b, right=right: S.zip_bundles(
                b, [x for x in stream(right) if x[1].num_rows])))
        return out

    def unique(self, column):
        """The distinct values of a column, as a list.

        Example::

            ray.data.from_items([{"a": 1}, {"a": 1}, {"a": 2}]).unique("a") == [1, 2]
        """
        return self.aggregate(A.Unique(column))[f"unique({column})"]

    # ------------------------------------------------------------ aggregates
    def aggregate(self, *aggs):
        """Run aggregations over the whole dataset; returns ``{agg.name: value}``.

        Example::

            from minray.data.aggregate import Max, Mean
            ds.aggregate(Max("id"), Mean("id"))  # {'max(id)': 9, 'mean(id)': 4.5}
        """
        aggs = list(aggs)
        refs = [A.partials.remote(ref, aggs) for ref, meta in self._stream()
                if meta.num_rows]
        return A.combine(ray.get(refs), aggs)

    def _column_agg(self, cls, on, **kwargs):
        if on is None:
            on = self.columns()
        cols = _as_list(on, "on")
        result = self.aggregate(*[cls(c, **kwargs) for c in cols])
        values = list(result.values())
        return values[0] if len(cols) == 1 else result

    def sum(self, on=None, ignore_nulls=True):
        """Sum of a column (or a dict of sums for a list of columns).

        Example::

            ray.data.range(5).sum("id") == 10
        """
        return self._column_agg(A.Sum, on, ignore_nulls=ignore_nulls)

    def min(self, on=None, ignore_nulls=True):
        """Minimum of a column. Example: ``ray.data.range(5).min("id") == 0``."""
        return self._column_agg(A.Min, on, ignore_nulls=ignore_nulls)

    def max(self, on=None, ignore_nulls=True):
        """Maximum of a column. Example: ``ray.data.range(5).max("id") == 4``."""
        return self._column_agg(A.Max, on, ignore_nulls=ignore_nulls)

    def mean(self, on=None, ignore_nulls=True):
        """Mean of a column. Example: ``ray.data.range(5).mean("id") == 2.0``."""
        return self._column_agg(A.Mean, on, ignore_nulls=ignore_nulls)

    def std(self, on=None, ddof=1, ignore_nulls=True):
        """Standard deviation of a column (``ddof=1``, like pandas).

        Example::

            ray.data.range(10000).std("id")   # 2886.8956...
        """
        return self._column_agg(A.Std, on, ddof=ddof, ignore_nulls=ignore_nulls)

    # ------------------------------------------------------------ consumption
    def iterator(self):
        """A DataIterator over this dataset. Example: ``ds.iterator().iter_batches()``."""
        return DatasetIterator(self)

    def iter_rows(self, *, prefetch_batches=1):
        """Iterate over rows (dicts). Example: ``for row in ds.iter_rows(): ...``."""
        return self.iterator().iter_rows(prefetch_batches=prefetch_batches)

    def iter_batches(self, *, prefetch_batches=1, batch_size=256, batch_format="default",
                     drop_last=False, local_shuffle_buffer_size=None, local_shuffle_seed=None):
        """Iterate over batches; ``prefetch_batches`` blocks are requested ahead.

        Example::

            for batch in ds.iter_batches(batch_size=100, batch_format="pandas"):
                ...
        """
        return self.iterator().iter_batches(
            prefetch_batches=prefetch_batches, batch_size=batch_size, batch_format=batch_format,
            drop_last=drop_last, local_shuffle_buffer_size=local_shuffle_buffer_size,
            local_shuffle_seed=local_shuffle_seed)

    def iter_torch_batches(self, *, prefetch_batches=1, batch_size=256, dtypes=None,
                           device="auto", collate_fn=None, drop_last=False,
                           local_shuffle_buffer_size=None, local_shuffle_seed=None):
        """Iterate over batches of torch tensors (needs torch).

        Example::

            for batch in ds.iter_torch_batches(batch_size=32, dtypes=torch.float32):
                model(batch["x"])
        """
        return self.iterator().iter_torch_batches(
            prefetch_batches=prefetch_batches, batch_size=batch_size, dtypes=dtypes,
            device=device, collate_fn=collate_fn, drop_last=drop_last,
            local_shuffle_buffer_size=local_shuffle_buffer_size,
            local_shuffle_seed=local_shuffle_seed)

    def take(self, limit=20):
        """The first ``limit`` rows, as a list of dicts.

        Example::

            ray.data.range(100).take(2) == [{"id": 0}, {"id": 1}]
        """
        limited = DatasetIterator(self, self._plan.with_op(LimitOp(limit)))
        return list(itertools.islice(limited.iter_rows(), limit))

    def take_all(self, limit=None):
        """All rows as a list of dicts (ValueError past ``limit`` rows).

        Example::

            ray.data.range(3).take_all() == [{"id": 0}, {"id": 1}, {"id": 2}]
        """
        rows = []
        for row in self.iter_rows():
            rows.append(row)
            if limit is not None and len(rows) > limit:
                raise ValueError(f"The dataset has more than the given limit of {limit} rows.")
        return rows

    def take_batch(self, batch_size=20, *, batch_format="default"):
        """The first ``batch_size`` rows as one batch.

        Example::

            ray.data.range(10).take_batch(3)["id"]   # array([0, 1, 2])
        """
        limited = DatasetIterator(self, self._plan.with_op(LimitOp(batch_size)))
        for batch in limited.iter_batches(batch_size=batch_size, batch_format=batch_format):
            return batch
        raise ValueError("The dataset is empty.")

    def show(self, limit=20):
        """Print the first ``limit`` rows, one per line. Example: ``ds.show(3)``."""
        for row in self.take(limit):
            print(row)

    def count(self):
        """The number of rows (from metadata when no operator changes it).

        Example::

            ray.data.range(10).count() == 10
        """
        known = self._plan.known_rows()
        if known is not None:
            return known
        return sum(meta.num_rows for _, meta in self._stream())

    def schema(self, fetch_if_missing=True):
        """Column names and types, from the first non-empty block.

        Example::

            ray.data.range(3).schema().names == ["id"]
        """
        first_empty = None
        plan = self._plan if isinstance(self, MaterializedDataset) else \
            self._plan.with_op(LimitOp(1))
        for ref, meta in self._stream(plan):
            block = ray.get(ref)
            if meta.num_rows:
                return B.Schema.of(block)
            first_empty = first_empty or (block or None)
        return B.Schema.of(first_empty) if first_empty else None

    def columns(self, fetch_if_missing=True):
        """Column names. Example: ``ray.data.range(3).columns() == ["id"]``."""
        schema = self.schema()
        return schema.names if schema is not None else []

    def to_pandas(self, limit=None):
        """All rows as one pandas DataFrame (ValueError if there are more than ``limit``).

        Example::

            df = ray.data.range(3).to_pandas()
        """
        B.require("pandas", "pandas")
        plan = self._plan if limit is None else self._plan.with_op(LimitOp(limit + 1))
        blocks = [ray.get(ref) for ref, meta in self._stream(plan) if meta.num_rows]
        if limit is not None and sum(B.num_rows(b) for b in blocks) > limit:
            raise ValueError(f"The dataset has more than the given limit of {limit} rows; "
                             f"call ds.limit({limit}).to_pandas() to truncate it.")
        return B.to_pandas(B.concat(blocks)) if blocks else __import__("pandas").DataFrame()

    def to_numpy_refs(self, *, column=None):
        """ObjectRefs of each block as a dict of numpy arrays (or one column's array).

        Example::

            arrays = ray.get(ds.to_numpy_refs())
        """
        bundles = self._bundles()
        if column is None:
            return [ref for ref, _ in bundles]
        return [_column_remote.remote(ref, column) for ref, _ in bundles]

    def to_pandas_refs(self):
        """ObjectRefs of each block as a pandas DataFrame."""
        return [_to_pandas_remote.remote(ref) for ref, _ in self._bundles()]

    def to_dask(self, meta=None, verify_meta=True):
        """A dask DataFrame with one partition per block (needs dask; see dask_io.py)."""
        from .dask_io import to_dask
        return to_dask(self, meta=meta, verify_meta=verify_meta)

    def materialize(self):
        """Execute now and keep the blocks in the object store.

        Example::

            mat = ray.data.range(100, override_num_blocks=4).materialize()
            mat.num_blocks() == 4
        """
        stats = Stats()
        bundles = list(stream(self._plan, stats))
        mat = MaterializedDataset(Plan(RefSource(bundles)))
        mat._last_stats = stats
        self._last_stats = stats
        return mat

    def stats(self):
        """A summary of the last execution: per operator, blocks, rows and time.

        Example::

            ds.materialize().stats()
        """
        return self._last_stats.summary()

    def size_bytes(self):
        """The in-memory size of all blocks. Example: ``ds.size_bytes()``."""
        return sum(meta.size_bytes for _, meta in self._stream())

    def input_files(self):
        """The files a read_* source reads (empty for in-memory sources)."""
        return list(getattr(self._plan.source, "paths", []))

    def num_blocks(self):
        """How many blocks the dataset has (executes it unless that is known).

        Example::

            ray.data.range(10, override_num_blocks=2).num_blocks() == 2
        """
        if not self._plan.ops and hasattr(self._plan.source, "tasks"):
            return len(self._plan.source.tasks)
        return len(self._bundles())

    def get_internal_block_refs(self):
        """The ObjectRefs of the blocks (executes the dataset)."""
        return [ref for ref, _ in self._bundles()]

    def random_sample(self, fraction, *, seed=None):
        """Keep each row with probability ``fraction`` (repeatable with ``seed``).

        Example::

            ray.data.range(1000).random_sample(0.1, seed=0).count()   # about 100
        """
        if not 0 <= fraction <= 1:
            raise ValueError(f"fraction must be in [0, 1], got {fraction!r}.")

        def sample(batch):
            n = len(next(iter(batch.values()))) if batch else 0
            first = next(iter(batch.values()))[:1] if batch else []
            # Seeded per block by its first row, so reruns pick the same rows.
            salt = zlib.crc32(first.tobytes()) if hasattr(first, "tobytes") else 0
            rng = np.random.default_rng(None if seed is None else [seed, salt])
            keep = rng.random(n) < fraction
            return {k: v[keep] for k, v in batch.items()}
        return self.map_batches(sample, batch_format="numpy")

    def explain(self):
        """Print the logical plan. Example: ``ds.map(f).explain()``."""
        print(self._plan.describe())

    @property
    def context(self):
        from .context import DataContext
        return DataContext.get_current()

    def set_name(self, name):
        """Name the dataset (shown in its repr)."""
        self._name = name

    @property
    def name(self):
        return getattr(self, "_name", None)

    # ------------------------------------------------------------ splits
    def split(self, n, *, equal=False, locality_hints=None):
        """Split into ``n`` materialized datasets (``equal=True``: same row count each,
        the remainder dropped).

        Example::

            a, b = ray.data.range(10).split(2)
            a.count() == b.count() == 5
        """
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}.")
        if locality_hints is not None and len(locality_hints) != n:
            raise ValueError(f"locality_hints must have {n} entries, got {len(locality_hints)}.")
        bundles = self._bundles()
        total = sum(m.num_rows for _, m in bundles)
        if equal:
            per = total // n
            ranges = [(j * per, (j + 1) * per) for j in range(n)]
        else:
            ranges = S.even_ranges(total, n)
        return [MaterializedDataset(Plan(RefSource(S.slice_rows(bundles, [r]))))
                for r in ranges]

    def split_at_indices(self, indices):
        """Split at the given row indices.

        Example::

            a, b = ray.data.range(10).split_at_indices([3])
            a.count() == 3 and b.count() == 7
        """
        if list(indices) != sorted(indices) or any(i < 0 for i in indices):
            raise ValueError(f"indices must be sorted and non-negative, got {indices!r}.")
        bundles = self._bundles()
        total = sum(m.num_rows for _, m in bundles)
        cuts = [0] + [min(i, total) for i in indices] + [total]
        return [MaterializedDataset(Plan(RefSource(S.slice_rows(bundles, [(a, b)]))))
                for a, b in zip(cuts, cuts[1:])]

    def split_proportionately(self, proportions):
        """Split by fractions; the last part gets the rest.

        Example::

            a, b, c = ds.split_proportionately([0.2, 0.5])
        """
        _check_proportions(proportions)
        total = self.count()
        cuts, acc = [], 0.0
        for p in proportions:
            acc += p
            cuts.append(int(total * acc))
        return self.split_at_indices(cuts)

    def train_test_split(self, test_size, *, shuffle=False, seed=None):
        """Split into (train, test); ``test_size`` is a fraction or a row count.

        Example::

            train, test = ray.data.range(10).train_test_split(0.2, shuffle=True, seed=1)
            test.count() == 2
        """
        ds = self.random_shuffle(seed=seed) if shuffle else self
        if isinstance(test_size, float):
            if not 0 < test_size < 1:
                raise ValueError(f"A float test_size must be in (0, 1), got {test_size}.")
            total = ds.count()
            return tuple(ds.split_at_indices([total - int(total * test_size)]))
        if not isinstance(test_size, int) or test_size < 1:
            raise ValueError(f"test_size must be a float in (0, 1) or a positive int, got "
                             f"{test_size!r}.")
        total = ds.count()
        if test_size > total:
            raise ValueError(f"test_size {test_size} is larger than the dataset ({total} rows).")
        return tuple(ds.split_at_indices([total - test_size]))

    def streaming_split(self, n, *, equal=False, locality_hints=None):
        """``n`` DataIterators over disjoint shards, each to be consumed by one actor.

        Every full iteration of an iterator is one epoch; the dataset runs once per epoch.

        Example::

            its = ds.streaming_split(2, equal=True)
            ray.get([worker.train.remote(it) for worker, it in zip(workers, its)])
        """
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}.")
        coordinator = _SplitCoordinator.remote(Dataset(self._plan), n, equal)
        return [StreamSplitDataIterator(coordinator, i, n) for i in range(n)]

    # ------------------------------------------------------------ writes
    def _write(self, kind, path, min_rows_per_file=None, num_rows_per_file=None, **options):
        from . import datasource
        import os
        min_rows = datasource.check_min_rows(min_rows_per_file, num_rows_per_file)
        os.makedirs(path, exist_ok=True)
        prefix = uuid.uuid4().hex[:12]
        groups = datasource.file_groups(self._stream(), min_rows)
        refs = [datasource.write_block.remote(kind, path, f"{prefix}_{i:06d}", options, *group)
                for i, group in enumerate(groups)]
        ray.get(refs)

    def write_csv(self, path, *, min_rows_per_file=None, num_rows_per_file=None,
                  **arrow_csv_args):
        """Write CSV files into directory ``path``: one per block, or with
        ``min_rows_per_file=N`` consecutive blocks joined until a file has at least N rows.

        Example::

            ray.data.range(10).write_csv("/tmp/out")
            ray.data.range(10, override_num_blocks=5).write_csv("/tmp/out4", min_rows_per_file=4)
            # three files: 4, 4 and 2 rows
        """
        self._write("csv", path, min_rows_per_file, num_rows_per_file, **arrow_csv_args)

    def write_json(self, path, *, min_rows_per_file=None, num_rows_per_file=None,
                   **pandas_json_args):
        """Write JSON lines, one file per block (or per ``min_rows_per_file`` rows, as
        ``write_csv``). Example: ``ds.write_json("/tmp/out")``."""
        self._write("json", path, min_rows_per_file, num_rows_per_file, **pandas_json_args)

    def write_parquet(self, path, *, min_rows_per_file=None, num_rows_per_file=None,
                      **arrow_parquet_args):
        """Write Parquet files, one per block or per ``min_rows_per_file`` rows (needs
        pyarrow). Example: ``ds.write_parquet("/tmp/out", min_rows_per_file=1000)``."""
        B.require("pyarrow", "pyarrow")
        self._write("parquet", path, min_rows_per_file, num_rows_per_file,
                    **arrow_parquet_args)

    def write_numpy(self, path, *, column, min_rows_per_file=None, num_rows_per_file=None):
        """Write one column as ``.npy`` files, one per block or per ``min_rows_per_file`` rows.

        Example::

            ray.data.range(10).write_numpy("/tmp/out", column="id")
        """
        self._write("numpy", path, min_rows_per_file, num_rows_per_file, column=column)


class MaterializedDataset(Dataset):
    """A Dataset whose blocks are computed and held in the object store."""

    def num_blocks(self):
        """How many blocks. Example: ``ds.materialize().num_blocks()``."""
        return len(self._plan.source.bundles)

    def __repr__(self):
        return (f"MaterializedDataset(num_blocks={self.num_blocks()}, "
                f"num_rows={self._plan.source.known_rows()})")


def _check_proportions(proportions):
    """Ray's checks, in Ray's order: a non-empty list of positive fractions summing below 1."""
    if not isinstance(proportions, (list, tuple)):
        raise TypeError(f"proportions must be a list of floats (e.g. [0.2, 0.3]), got "
                        f"{type(proportions).__name__}: {proportions!r}.")
    if len(proportions) < 1:
        raise ValueError("proportions must be at least of length 1")
    if sum(proportions) >= 1:
        raise ValueError(f"proportions must sum to less than 1, got {list(proportions)!r} "
                         f"(the last split gets the remaining rows).")
    if any(p <= 0 for p in proportions):
        raise ValueError(f"proportions must be bigger than 0, got {list(proportions)!r}.")


@ray.remote
def _column_remote(block, column):
    B.check_columns(block, [column])
    return block[column]


@ray.remote
def _to_pandas_remote(block):
    return B.to_pandas(block)


class _ExprFilter:
    """``filter(expr="x > 3")``: a Python expression over the row's columns."""

    def __init__(self, expr, code):
        self.expr = expr
        self.__qualname__ = f"expr({expr!r})"

    def __call__(self, row):
        return eval(compile(self.expr, "<filter expr>", "eval"), {"np": np}, dict(row))
