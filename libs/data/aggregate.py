"""Aggregations: whole-dataset (``ds.sum("x")``) and per group (``ds.groupby("k").sum("x")``).

    whole dataset: block --partial(agg) per block, streamed--> partials --merge, finalize--> value
    per group:     sort by key (range partitions) --reduce_groups per partition--> one row per key

Every aggregation is an ``AggregateFn`` with the vectorized pieces a sorted
partition needs (``block_groups``: one value per group via numpy reduceat) and
the mergeable partial form a whole-dataset aggregate needs.  A user-defined
``AggregateFn(init, merge, accumulate_row=..., finalize=...)`` works in both
places, one Python call per row.

Example::

    from minray.data.aggregate import Count, Mean
    ds.groupby("k").aggregate(Count(), Mean("x")).take_all()
"""

import numpy as np

import minray as ray

from . import block as B
from .executor import _meta


class AggregateFn:
    """A user-defined aggregation: ``init(key) -> acc``, ``accumulate_row(acc, row)`` (or
    ``accumulate_block(acc, block)``), ``merge(a, b)``, ``finalize(acc)``.

    Example::

        total = AggregateFn(init=lambda k: 0, accumulate_row=lambda a, r: a + r["x"],
                            merge=lambda a, b: a + b, name="total")
        ds.aggregate(total) == {"total": ...}
    """

    def __init__(self, init, merge, name, accumulate_row=None, accumulate_block=None,
                 finalize=None):
        if (accumulate_row is None) == (accumulate_block is None):
            raise ValueError("Give exactly one of accumulate_row or accumulate_block.")
        self.init, self.merge_fn, self.name = init, merge, name
        self.accumulate_row, self.accumulate_block = accumulate_row, accumulate_block
        self.finalize_fn = finalize or (lambda a: a)
        self.on = None

    def partial(self, block, key=None):
        acc = self.init(key)
        if not block:
            return acc
        if self.accumulate_block is not None:
            return self.accumulate_block(acc, block)
        for row in B.iter_rows(block):
            acc = self.accumulate_row(acc, row)
        return acc

    def merge(self, a, b):
        return self.merge_fn(a, b)

    def finalize(self, acc):
        return self.finalize_fn(acc)

    def block_groups(self, block, starts, keys):
        bounds = list(starts) + [B.num_rows(block)]
        return B.make_column([self.finalize(self.partial(B.slice_block(block, bounds[i],
                                                                       bounds[i + 1]), keys[i]))
                              for i in range(len(starts))])


class _NullSeen:
    """The partial of a column that held a null under ``ignore_nulls=False``: it absorbs
    every merge and finalizes to None, as Ray's aggregations do."""

    def __eq__(self, other):
        return isinstance(other, _NullSeen)

    def __hash__(self):
        return 0


def _is_null(value):
    return value is None or (isinstance(value, float) and value != value)


class _Numeric(AggregateFn):
    """Built-in aggregation on one column; partials are small tuples merged on the driver.

    Nulls (None in a column, or NaN in a float column) are skipped with ``ignore_nulls=True``;
    with ``ignore_nulls=False`` a None anywhere makes the result None, and a NaN in a float
    column propagates as NaN.  Subclasses define ``reduce(values)``, ``combine(a, b)`` and
    ``result(acc)`` on the non-null values only.
    """
    label = "agg"

    def __init__(self, on=None, ignore_nulls=True, alias_name=None):
        self.on = on
        self.ignore_nulls = ignore_nulls
        self.name = alias_name or (f"{self.label}({on})" if on is not None else
                                   f"{self.label}()")

    def values(self, block):
        """The column's values without its nulls, and whether it held any."""
        if not block:
            return np.array([]), False
        B.check_columns(block, [self.on])
        col = block[self.on]
        if col.dtype == object:
            nulls = np.fromiter((_is_null(v) for v in col), dtype=bool, count=len(col))
            if nulls.any():
                kept = col[~nulls].tolist()
                return (B.make_column(kept) if kept else np.array([])), True
            return col, False
        if self.ignore_nulls and col.dtype.kind == "f":
            col = col[~np.isnan(col)]
        return col, False

    def column(self, block):
        return self.values(block)[0]

    def partial(self, block, key=None):
        col, had_null = self.values(block)
        if had_null and not self.ignore_nulls:
            return _NullSeen()
        return self.reduce(col)

    def merge(self, a, b):
        if isinstance(a, _NullSeen) or isinstance(b, _NullSeen):
            return _NullSeen()
        return self.combine(a, b)

    def finalize(self, acc):
        return None if isinstance(acc, _NullSeen) else self.result(acc)

    # ---- per-group (groupby) pieces share one null handling, vectorized with numpy
    def group_view(self, block, starts):
        """``(values, valid, nulls, sizes)`` of the column for per-group reductions:
        nulls (None; NaN too in a float column under ignore_nulls) are zero-filled in
        ``values`` and marked in ``nulls``; ``sizes`` are the groups' row counts.
        ``valid`` and ``nulls`` are None when the column has no nulls (the fast path)."""
        B.check_columns(block, [self.on])
        col = block[self.on]
        sizes = np.diff(np.append(starts, len(col)))
        if col.dtype == object:
            nulls = np.fromiter((_is_null(v) for v in col), dtype=bool, count=len(col))
            filled = np.asarray([0 if n else v for v, n in zip(col.tolist(), nulls)])
            values = filled if filled.dtype.kind in "biuf" else col
        elif col.dtype.kind == "f" and self.ignore_nulls:
            nulls = np.isnan(col)
            values = np.where(nulls, 0.0, col) if nulls.any() else col
        else:
            nulls = None
            values = col
        if nulls is None or not nulls.any():
            return values, None, None, sizes
        return values, ~nulls, nulls, sizes

    def group_counts(self, valid, nulls, sizes, starts):
        """``{"n": values per group, "z": nulls per group}``."""
        if valid is None:
            return {"n": sizes, "z": np.zeros(len(sizes), dtype=np.int64)}
        return {"n": _count(valid, starts), "z": _count(nulls, starts)}

    def null_groups(self, states):
        """Groups whose result is None: no values, or a null under ignore_nulls=False."""
        empty = states["n"] == 0
        return empty | (states["z"] > 0) if not self.ignore_nulls else empty

    def block_groups(self, block, starts, keys):
        return self.finalize_groups(self.state_groups(block, starts))


def _count(mask, starts):
    return np.add.reduceat(mask.astype(np.int64), starts) if len(mask) else \
        np.zeros(len(starts), dtype=np.int64)


def _with_nones(values, none_mask):
    """``values`` with None where ``none_mask`` (an object column then), as Ray's groupby
    returns None for a group without values."""
    if not none_mask.any():
        return values
    out = values.astype(object)
    out[none_mask] = None
    return out


class Count(_Numeric):
    """Rows (``Count()``), or values of a column; nulls count unless ``ignore_nulls=True``."""
    label = "count"

    def __init__(self, on=None, ignore_nulls=False, alias_name=None):
        super().__init__(on, ignore_nulls, alias_name)

    def partial(self, block, key=None):
        if self.on is None or not block or not self.ignore_nulls:
            if self.on is not None and block:
                B.check_columns(block, [self.on])
            return B.num_rows(block)
        return len(self.values(block)[0])

    def merge(self, a, b):
        return a + b

    def finalize(self, acc):
        return int(acc)

    def state_groups(self, block, starts):
        if self.on is not None and self.ignore_nulls:
            _, valid, nulls, sizes = self.group_view(block, starts)
            return {"n": self.group_counts(valid, nulls, sizes, starts)["n"]}
        return {"n": np.diff(np.append(starts, B.num_rows(block)))}

    def merge_state_groups(self, states, starts):
        return {"n": np.add.reduceat(states["n"], starts)}

    def finalize_groups(self, states):
        return states["n"]


class Sum(_Numeric):
    label = "sum"

    def reduce(self, col):
        return (col.sum(), len(col)) if len(col) else (0, 0)

    def combine(self, a, b):
        return (a[0] + b[0], a[1] + b[1])

    def result(self, acc):
        return _py(acc[0]) if acc[1] else None

    def state_groups(self, block, starts):
        values, valid, nulls, sizes = self.group_view(block, starts)
        return {"s": np.add.reduceat(values, starts),
                **self.group_counts(valid, nulls, sizes, starts)}

    def merge_state_groups(self, states, starts):
        return {k: np.add.reduceat(v, starts) for k, v in states.items()}

    def finalize_groups(self, states):
        return _with_nones(states["s"], self.null_groups(states))


class Min(_Numeric):
    label = "min"
    _reduce = staticmethod(np.minimum)
    _pick = staticmethod(min)

    def reduce(self, col):
        return self._pick(col.tolist()) if len(col) else None

    def combine(self, a, b):
        return b if a is None else a if b is None else self._pick(a, b)

    def result(self, acc):
        return _py(acc)

    def _fill(self, dtype):
        """A value that never wins the reduction (so nulls can stand in as it)."""
        big = self._pick is min
        if dtype.kind == "f":
            return np.inf if big else -np.inf
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            return info.max if big else info.min
        return bool(big)

    def state_groups(self, block, starts):
        values, valid, nulls, sizes = self.group_view(block, starts)
        counts = self.group_counts(valid, nulls, sizes, starts)
        if values.dtype.kind in "biuf":
            if valid is not None:
                values = np.where(valid, values, self._fill(values.dtype))
            picked = self._reduce.reduceat(values, starts)
        else:  # strings and other objects: Python's min/max per group, nulls left out
            if valid is None:
                valid = np.ones(len(values), dtype=bool)
            bounds = list(starts) + [len(values)]
            picked = B._objects([
                self._pick(values[a:b][valid[a:b]].tolist()) if valid[a:b].any() else None
                for a, b in zip(bounds, bounds[1:])])
        return {"m": picked, **counts}

    def merge_state_groups(self, states, starts):
        picked = states["m"]
        if picked.dtype.kind in "biuf":
            merged = self._reduce.reduceat(picked, starts)
        else:
            # parts without values (n == 0) hold a filler: leave them out
            bounds = list(starts) + [len(picked)]
            values, counts = picked.tolist(), states["n"].tolist()
            merged = B._objects([
                self._pick(kept) if (kept := [v for v, c in zip(values[a:b], counts[a:b])
                                              if c]) else None
                for a, b in zip(bounds, bounds[1:])])
        return {"m": merged, "n": np.add.reduceat(states["n"], starts),
                "z": np.add.reduceat(states["z"], starts)}

    def finalize_groups(self, states):
        return _with_nones(states["m"], self.null_groups(states))


class Max(Min):
    label = "max"
    _reduce = staticmethod(np.maximum)
    _pick = staticmethod(max)


class AbsMax(_Numeric):
    label = "abs_max"

    def reduce(self, col):
        return np.abs(col).max() if len(col) else None

    def combine(self, a, b):
        return b if a is None else a if b is None else max(a, b)

    def result(self, acc):
        return _py(acc)

    def block_groups(self, block, starts, keys):
        return np.maximum.reduceat(np.abs(block[self.on]), starts)

    def state_groups(self, block, starts):
        return {"m": self.block_groups(block, starts, None)}

    def merge_state_groups(self, states, starts):
        return {"m": np.maximum.reduceat(states["m"], starts)}

    def finalize_groups(self, states):
        return states["m"]


class Mean(_Numeric):
    label = "mean"

    def reduce(self, col):
        return (float(col.sum()), len(col)) if len(col) else (0.0, 0)

    def combine(self, a, b):
        return (a[0] + b[0], a[1] + b[1])

    def result(self, acc):
        return acc[0] / acc[1] if acc[1] else None

    def state_groups(self, block, starts):
        values, valid, nulls, sizes = self.group_view(block, starts)
        return {"s": np.add.reduceat(values.astype(np.float64, copy=False), starts),
                **self.group_counts(valid, nulls, sizes, starts)}

    def merge_state_groups(self, states, starts):
        return {k: np.add.reduceat(v, starts) for k, v in states.items()}

    def finalize_groups(self, states):
        with np.errstate(divide="ignore", invalid="ignore"):
            means = states["s"] / states["n"]
        return _with_nones(means, self.null_groups(states))


class Std(_Numeric):
    """Standard deviation with ``ddof`` (default 1, like Ray and pandas)."""
    label = "std"

    def __init__(self, on=None, ddof=1, ignore_nulls=True, alias_name=None):
        super().__init__(on, ignore_nulls, alias_name)
        self.ddof = ddof

    def reduce(self, col):
        col = col.astype(np.float64)
        if not len(col):
            return (0, 0.0, 0.0)
        mean = col.mean()
        return (len(col), mean, float(((col - mean) ** 2).sum()))

    def combine(self, a, b):
        # Chan et al.'s parallel update: exact for any split of the rows.
        (na, ma, m2a), (nb, mb, m2b) = a, b
        n = na + nb
        if n == 0:
            return a
        delta = mb - ma
        return (n, ma + delta * nb / n, m2a + m2b + delta * delta * na * nb / n)

    def result(self, acc):
        # No values: None; too few for ddof: NaN (Ray's results for an empty and a one-row
        # column with ddof=1).
        n, _, m2 = acc
        if not n:
            return None
        return float(np.sqrt(m2 / (n - self.ddof))) if n - self.ddof > 0 else float("nan")

    def state_groups(self, block, starts):
        values, valid, nulls, sizes = self.group_view(block, starts)
        col = values.astype(np.float64, copy=False)
        counts = self.group_counts(valid, nulls, sizes, starts)
        n = counts["n"]
        with np.errstate(divide="ignore", invalid="ignore"):
            means = np.where(n > 0, np.add.reduceat(col, starts) / n, 0.0)
        dev = col - np.repeat(means, sizes)
        if valid is not None:
            dev = np.where(valid, dev, 0.0)
        return {"mean": means, "m2": np.add.reduceat(dev * dev, starts), **counts}

    def merge_state_groups(self, states, starts):
        # Chan et al.'s pairwise update, vectorized over the partials of every group.
        n_j, mean_j, m2_j = states["n"], states["mean"], states["m2"]
        sizes = np.diff(np.append(starts, len(n_j)))
        n = np.add.reduceat(n_j, starts)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.where(n > 0, np.add.reduceat(n_j * mean_j, starts) / n, 0.0)
        dev = mean_j - np.repeat(mean, sizes)
        return {"n": n, "mean": mean, "m2": np.add.reduceat(m2_j + n_j * dev * dev, starts),
                "z": np.add.reduceat(states["z"], starts)}

    def finalize_groups(self, states):
        counts, m2 = states["n"], states["m2"]
        with np.errstate(divide="ignore", invalid="ignore"):
            std = np.where(counts - self.ddof > 0, np.sqrt(m2 / (counts - self.ddof)), np.nan)
        return _with_nones(std, self.null_groups(states))


class Unique(_Numeric):
    label = "unique"

    def partial(self, block, key=None):
        # Unique keeps None as a value of its own (Ray's unique() lists it too); NaN in a
        # float column is skipped, as before.
        if not block:
            return set()
        B.check_columns(block, [self.on])
        col = block[self.on]
        if col.dtype.kind == "f":
            col = col[~np.isnan(col)]
        return set(col.tolist())

    def merge(self, a, b):
        return a | b

    def finalize(self, acc):
        return sorted(acc, key=lambda v: (v is None, v))

    def block_groups(self, block, starts, keys):
        bounds = list(starts) + [B.num_rows(block)]
        return B._objects([sorted(set(block[self.on][bounds[i]:bounds[i + 1]].tolist()))
                           for i in range(len(starts))])

    def state_groups(self, block, starts):
        return {"u": self.block_groups(block, starts, None)}

    def merge_state_groups(self, states, starts):
        bounds = list(starts) + [len(states["u"])]
        return {"u": B._objects([sorted(set().union(*states["u"][bounds[i]:bounds[i + 1]]))
                                 for i in range(len(starts))])}

    def finalize_groups(self, states):
        return states["u"]


def _py(value):
    return value.item() if isinstance(value, np.generic) else value


# ---------------------------------------------------------------- remote pieces
@ray.remote
def partials(block, aggs):
    """Per-block partial results of whole-dataset aggregations."""
    return [agg.partial(block) for agg in aggs]


def combine(partial_lists, aggs):
    """Merge per-block partials and finalize; no blocks at all finalizes each aggregation's
    empty partial (``count()`` of an empty dataset is 0, ``sum`` None, ``unique`` [])."""
    partial_lists = list(partial_lists)
    if not partial_lists:
        partial_lists = [[agg.partial({}) for agg in aggs]]
    accs = list(partial_lists[0])
    for parts in partial_lists[1:]:
        for i, p in enumerate(parts):
            accs[i] = aggs[i].merge(accs[i], p)
    return {agg.name: agg.finalize(acc) for agg, acc in zip(aggs, accs)}


def group_starts(block, keys):
    """Row indices where a new group begins in a block sorted by ``keys``."""
    n = B.num_rows(block)
    change = np.zeros(n, dtype=bool)
    if n:
        change[0] = True
    for k in keys:
        col = block[k]
        change[1:] |= col[1:] != col[:-1]
    return np.flatnonzero(change)


@ray.remote(num_returns=2)
def reduce_groups(keys, aggs, *parts):
    """Reduce one sorted range partition to one row per distinct key."""
    from .shuffle import _sort_order
    block = B.concat(list(parts))
    if not block:
        return {}, _meta({})
    block = B.take(block, _sort_order(block, keys, False))
    starts = group_starts(block, keys)
    out = {k: block[k][starts] for k in keys}
    key_values = list(zip(*[out[k].tolist() for k in keys]))
    key_values = [kv[0] if len(keys) == 1 else kv for kv in key_values]
    for agg in aggs:
        if agg.on is not None:
            B.check_columns(block, [agg.on])
        out[agg.name] = agg.block_groups(block, starts, key_values)
    return out, _meta(out)


def combinable(aggs):
    """Built-in aggregations combine per block first (map-side), so only one small row per
    key and block crosses the shuffle."""
    return all(hasattr(agg, "state_groups") for agg in aggs)


class PartialAggregate:
    """Map side of a combinable groupby: one row of partial states per key in a block."""

    def __init__(self, keys, aggs):
        self.keys, self.aggs, self.name = keys, aggs, f"PartialAggregate({', '.join(keys)})"

    def setup(self):
        pass

    def __call__(self, block, block_index):
        from .shuffle import _sort_order
        if not block or not B.num_rows(block):
            return {}
        B.check_columns(block, self.keys, what="groupby key")
        for agg in self.aggs:
            if agg.on is not None:
                B.check_columns(block, [agg.on])
        block = B.take(block, _sort_order(block, self.keys, False))
        starts = group_starts(block, self.keys)
        out = {k: block[k][starts] for k in self.keys}
        for i, agg in enumerate(self.aggs):
            for field, col in agg.state_groups(block, starts).items():
                out[f"__{i}_{field}"] = col
        return out


@ray.remote(num_returns=2)
def reduce_partials(keys, aggs, *parts):
    """Reduce side of a combinable groupby: merge partial states, then finalize."""
    from .shuffle import _sort_order
    block = B.concat(list(parts))
    if not block:
        return {}, _meta({})
    block = B.take(block, _sort_order(block, keys, False))
    starts = group_starts(block, keys)
    out = {k: block[k][starts] for k in keys}
    for i, agg in enumerate(aggs):
        prefix = f"__{i}_"
        states = {name[len(prefix):]: col for name, col in block.items()
                  if name.startswith(prefix)}
        out[agg.name] = agg.finalize_groups(agg.merge_state_groups(states, starts))
    return out, _meta(out)


@ray.remote(num_returns=2)
def map_groups_task(keys, transform, *parts):
    """Run a map_groups function once per group of one sorted range partition."""
    from .shuffle import _sort_order
    block = B.concat(list(parts))
    if not block:
        return {}, _meta({})
    block = B.take(block, _sort_order(block, keys, False))
    bounds = list(group_starts(block, keys)) + [B.num_rows(block)]
    outs = [transform(B.slice_block(block, bounds[i], bounds[i + 1]), i)
            for i in range(len(bounds) - 1)]
    out = B.concat(outs)
    return out, _meta(out)
