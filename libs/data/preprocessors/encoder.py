"""Categorical encoders: OneHotEncoder, LabelEncoder, OrdinalEncoder.

Each fits ``unique_values(col)``: a dict category -> index, categories sorted.
"""

import numpy as np

from .. import aggregate as A
from .base import Preprocessor, check_columns, output_names


def _fit_uniques(ds, columns):
    result = ds.aggregate(*[A.Unique(c) for c in columns])
    return {f"unique_values({c})": {v: i for i, v in enumerate(result[f"unique({c})"])}
            for c in columns}


def _encode(values, mapping, unknown=-1):
    lookup = mapping.get
    return np.array([lookup(v, unknown) for v in values.tolist()], dtype=np.int64)


class OrdinalEncoder(Preprocessor):
    """Replace each category with its index in the sorted categories (unknown categories: -1).

    Example::

        OrdinalEncoder(columns=["color"]).fit_transform(ds)
    """

    def __init__(self, columns, *, output_columns=None):
        super().__init__()
        self.columns = list(columns)
        self.output_columns = output_names(self.columns, output_columns, "OrdinalEncoder")

    def _fit(self, ds):
        return _fit_uniques(ds, self.columns)

    def _transform_numpy(self, batch):
        check_columns(batch, self.columns, "OrdinalEncoder")
        out = dict(batch)
        for col, name in zip(self.columns, self.output_columns):
            out[name] = _encode(batch[col], self.stats_[f"unique_values({col})"])
        return out


class OneHotEncoder(Preprocessor):
    """Replace each categorical column with a column of one-hot vectors.

    Unknown categories encode as all zeros; ``max_categories={col: k}`` keeps the k
    most frequent.

    Example::

        enc = OneHotEncoder(columns=["color"]).fit(ds)
        enc.transform_batch({"color": np.array(["red"])})["color"]  # array([[0, 0, 1]])
    """

    def __init__(self, columns, *, max_categories=None, output_columns=None):
        super().__init__()
        self.columns = list(columns)
        self.max_categories = dict(max_categories or {})
        self.output_columns = output_names(self.columns, output_columns, "OneHotEncoder")

    def _fit(self, ds):
        stats = _fit_uniques(ds, self.columns)
        for col, k in self.max_categories.items():
            counts = {}
            for row in ds.select_columns([col]).iter_rows():
                counts[row[col]] = counts.get(row[col], 0) + 1
            top = sorted(sorted(counts), key=lambda v: -counts[v])[:k]
            stats[f"unique_values({col})"] = {v: i for i, v in enumerate(sorted(top))}
        return stats

    def _transform_numpy(self, batch):
        check_columns(batch, self.columns, "OneHotEncoder")
        out = dict(batch)
        for col, name in zip(self.columns, self.output_columns):
            mapping = self.stats_[f"unique_values({col})"]
            codes = _encode(batch[col], mapping)
            onehot = np.zeros((len(codes), len(mapping)), dtype=np.int64)
            known = codes >= 0
            onehot[np.flatnonzero(known), codes[known]] = 1
            out[name] = onehot
        return out


class LabelEncoder(Preprocessor):
    """Encode a label column as integers 0..k-1 (sorted categories).

    Example::

        enc = LabelEncoder(label_column="label").fit(ds)
        enc.inverse_transform_batch({"label": np.array([0, 1])})
    """

    def __init__(self, label_column, *, output_column=None):
        super().__init__()
        self.label_column = label_column
        self.output_column = output_column or label_column

    def _fit(self, ds):
        return _fit_uniques(ds, [self.label_column])

    def _transform_numpy(self, batch):
        check_columns(batch, [self.label_column], "LabelEncoder")
        mapping = self.stats_[f"unique_values({self.label_column})"]
        codes = _encode(batch[self.label_column], mapping)
        if (codes < 0).any():
            unknown = batch[self.label_column][codes < 0][0]
            raise ValueError(f"LabelEncoder: label {unknown!r} was not seen during fit; known "
                             f"labels are {list(mapping)}.")
        out = dict(batch)
        out[self.output_column] = codes
        return out

    def inverse_transform_batch(self, batch):
        """Map encoded labels back to the original categories."""
        self._check_fitted()
        labels = list(self.stats_[f"unique_values({self.label_column})"])
        out = dict(batch)
        col = np.empty(len(batch[self.output_column]), dtype=object)
        col[:] = [labels[i] for i in batch[self.output_column]]
        out[self.label_column] = col
        return out

    def inverse_transform(self, ds):
        """A dataset with encoded labels mapped back (lazy)."""
        self._check_fitted()
        return ds.map_batches(self.inverse_transform_batch, batch_format="numpy",
                              batch_size=None)
