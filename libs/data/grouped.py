"""GroupedData: what ``Dataset.groupby(key)`` returns.

    ds.groupby(k) --aggregate (built-ins)--> per block: partial states per key (fused map)
                                         --> range-partition by k, merge states, finalize
                  --aggregate (AggregateFn) / map_groups(fn)--> range-partition the rows by k,
                                         reduce (or call fn) once per group

The barrier is shuffle.range_partition: rows with equal keys land in the same
partition, so each partition reduces on its own and the output comes out sorted
by key.  Built-in aggregations combine map-side first, so a 10M-row groupby
over 1000 keys shuffles only a thousand small rows per block.
"""

from . import aggregate as A
from . import block as B
from . import transforms as T
from .executor import BarrierOp, MapOp
from .shuffle import range_partition


class GroupedData:
    """Rows grouped by key columns; aggregate them or map each group.

    Example::

        ds = ray.data.from_items([{"k": i % 2, "v": i} for i in range(6)])
        ds.groupby("k").sum("v").take_all()
        # [{'k': 0, 'sum(v)': 6}, {'k': 1, 'sum(v)': 9}]
    """

    def __init__(self, dataset, keys):
        self._dataset, self._keys = dataset, keys

    def __repr__(self):
        return f"GroupedData(key={self._keys})"

    def aggregate(self, *aggs):
        """Apply aggregations per group; one output row per key.

        Example::

            from minray.data.aggregate import Count, Max
            ds.groupby("k").aggregate(Count(), Max("v"))
        """
        if self._keys is None:
            from .read_api import from_items
            return from_items([self._dataset.aggregate(*aggs)])
        keys, aggs = self._keys, list(aggs)
        for agg in aggs:
            if not isinstance(agg, A.AggregateFn):
                raise TypeError(f"aggregate takes AggregateFn objects (Count(), Sum('x'), ...), "
                                f"got {agg!r}.")
        if A.combinable(aggs):
            partial = self._dataset._with(MapOp(A.PartialAggregate(keys, aggs)))
            return partial._with(BarrierOp(
                f"Aggregate({', '.join(keys)})",
                lambda b: range_partition(b, keys, False, A.reduce_partials, keys, aggs)))
        return self._dataset._with(BarrierOp(
            f"Aggregate({', '.join(keys)})",
            lambda b: range_partition(b, keys, False, A.reduce_groups, keys, aggs)))

    def _agg(self, cls, on, **kwargs):
        cols = [on] if isinstance(on, str) else list(on)
        return self.aggregate(*[cls(c, **kwargs) for c in cols])

    def count(self):
        """Rows per group, in column ``count()``. Example: ``ds.groupby("k").count()``."""
        return self.aggregate(A.Count())

    def sum(self, on, ignore_nulls=True):
        """Per-group sum, in column ``sum(on)``."""
        return self._agg(A.Sum, on, ignore_nulls=ignore_nulls)

    def min(self, on, ignore_nulls=True):
        """Per-group minimum, in column ``min(on)``."""
        return self._agg(A.Min, on, ignore_nulls=ignore_nulls)

    def max(self, on, ignore_nulls=True):
        """Per-group maximum, in column ``max(on)``."""
        return self._agg(A.Max, on, ignore_nulls=ignore_nulls)

    def mean(self, on, ignore_nulls=True):
        """Per-group mean, in column ``mean(on)``."""
        return self._agg(A.Mean, on, ignore_nulls=ignore_nulls)

    def std(self, on, ddof=1, ignore_nulls=True):
        """Per-group standard deviation, in column ``std(on)``."""
        return self._agg(A.Std, on, ddof=ddof, ignore_nulls=ignore_nulls)

    def map_groups(self, fn, *, batch_format="default", fn_args=None, fn_kwargs=None,
                   compute=None, concurrency=None, num_cpus=None, num_gpus=None,
                   **ray_remote_args):
        """Call ``fn(batch)`` once per group (the whole group as one batch).

        Example::

            ds.groupby("k").map_groups(lambda g: {"k": g["k"][:1], "n": [len(g["k"])]})
        """
        if self._keys is None:
            raise ValueError("map_groups needs a groupby key.")
        keys = self._keys
        t = T.MapBatches(fn, None, batch_format, False, fn_args, fn_kwargs,
                         name=f"MapGroups({T.fn_name(fn)})")
        if t.is_class:
            t.setup()
        return self._dataset._with(BarrierOp(
            f"MapGroups({T.fn_name(fn)})",
            lambda b: range_partition(b, keys, False, A.map_groups_task, keys, t)))


__all__ = ["GroupedData", "B"]
