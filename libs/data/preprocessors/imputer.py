"""SimpleImputer: fill missing values (NaN / None) with a column statistic or a constant."""

import numpy as np

from .. import aggregate as A
from .base import Preprocessor, check_columns, output_names


def _missing(col):
    if col.dtype.kind == "f":
        return np.isnan(col)
    if col.dtype == object:
        return np.array([v is None or (isinstance(v, float) and v != v) for v in col],
                        dtype=bool)
    return np.zeros(len(col), dtype=bool)


class _MostFrequent(A.AggregateFn):
    def __init__(self, on):
        self.on, self.name = on, f"most_frequent({on})"

    def partial(self, block, key=None):
        col = block[self.on] if block else np.array([])
        values = col[~_missing(col)].tolist()
        counts = {}
        for v in values:
            counts[v] = counts.get(v, 0) + 1
        return counts

    def merge(self, a, b):
        out = dict(a)
        for k, v in b.items():
            out[k] = out.get(k, 0) + v
        return out

    def finalize(self, acc):
        return max(sorted(acc), key=lambda v: acc[v]) if acc else None


class SimpleImputer(Preprocessor):
    """Replace missing values: ``strategy`` "mean", "most_frequent" or "constant".

    Example::

        imp = SimpleImputer(columns=["x"], strategy="mean").fit(ds)
        imp.transform_batch({"x": np.array([np.nan, 1.0])})
    """

    _STRATEGIES = ("mean", "most_frequent", "constant")

    def __init__(self, columns, strategy="mean", fill_value=None, *, output_columns=None):
        super().__init__()
        self.output_columns = output_names(list(columns), output_columns, "SimpleImputer")
        if strategy not in self._STRATEGIES:
            raise ValueError(f"strategy must be one of {self._STRATEGIES}, got {strategy!r}.")
        if strategy == "constant" and fill_value is None:
            raise ValueError("strategy='constant' needs a fill_value.")
        self.columns, self.strategy, self.fill_value = list(columns), strategy, fill_value
        self._is_fittable = strategy != "constant"

    def _fit(self, ds):
        if self.strategy == "mean":
            return ds.aggregate(*[A.Mean(c) for c in self.columns])
        return ds.aggregate(*[_MostFrequent(c) for c in self.columns])

    def _value(self, col):
        if self.strategy == "constant":
            return self.fill_value
        return self.stats_[f"{self.strategy}({col})"]

    def _transform_numpy(self, batch):
        check_columns(batch, self.columns, "SimpleImputer")
        out = dict(batch)
        for col, name in zip(self.columns, self.output_columns):
            values = batch[col]
            mask = _missing(values)
            if mask.any():
                fill = self._value(col)
                values = values.astype(np.result_type(values.dtype, type(fill))) \
                    if values.dtype != object else values.copy()
                values[mask] = fill
            out[name] = values
        return out
