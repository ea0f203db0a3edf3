"""Scalers: StandardScaler, MinMaxScaler, MaxAbsScaler (statistics from dataset aggregates)."""

import numpy as np

from .. import aggregate as A
from .base import Preprocessor, check_columns, output_names


class _Scaler(Preprocessor):
    def __init__(self, columns, output_columns=None):
        super().__init__()
        self.columns = list(columns)
        self.output_columns = output_names(self.columns, output_columns, type(self).__name__)

    def _transform_numpy(self, batch):
        check_columns(batch, self.columns, type(self).__name__)
        out = dict(batch)
        for col, name in zip(self.columns, self.output_columns):
            shift, scale = self._shift_scale(col)
            out[name] = (batch[col].astype(np.float64) - shift) / scale
        return out


class StandardScaler(_Scaler):
    """Scale each column to mean 0 and standard deviation 1 (population std, ddof=0).

    Example::

        s = StandardScaler(columns=["x"]).fit(ds)
        s.stats_   # {'mean(x)': ..., 'std(x)': ...}
    """

    def _fit(self, ds):
        aggs = [a for c in self.columns for a in (A.Mean(c), A.Std(c, ddof=0))]
        return ds.aggregate(*aggs)

    def _shift_scale(self, col):
        std = self.stats_[f"std({col})"]
        return self.stats_[f"mean({col})"], (std if std else 1.0)


class MinMaxScaler(_Scaler):
    """Scale each column to [0, 1] using its min and max.

    Example::

        MinMaxScaler(columns=["x"]).fit_transform(ds)
    """

    def _fit(self, ds):
        return ds.aggregate(*[a for c in self.columns for a in (A.Min(c), A.Max(c))])

    def _shift_scale(self, col):
        lo, hi = self.stats_[f"min({col})"], self.stats_[f"max({col})"]
        return lo, (hi - lo) or 1.0


class MaxAbsScaler(_Scaler):
    """Scale each column by its largest absolute value.

    Example::

        MaxAbsScaler(columns=["x"]).fit_transform(ds)
    """

    def _fit(self, ds):
        return ds.aggregate(*[A.AbsMax(c) for c in self.columns])

    def _shift_scale(self, col):
        return 0.0, self.stats_[f"abs_max({col})"] or 1.0
