"""Concatenator: merge several numeric columns into one tensor column (for model input)."""

import numpy as np

from .base import Preprocessor


class Concatenator(Preprocessor):
    """Stack ``columns`` into one 2-D column ``output_column_name`` and drop the originals.

    Example::

        Concatenator(columns=["a", "b"], output_column_name="x").transform(ds)
        # rows: {"x": array([a, b])}
    """
    _is_fittable = False

    def __init__(self, columns=None, output_column_name="concat_out", dtype=None,
                 raise_if_missing=False, flatten=False, exclude=None):
        super().__init__()
        self.columns = list(columns) if columns is not None else None
        self.exclude = list(exclude or [])
        self.output_column_name = output_column_name
        self.dtype, self.raise_if_missing, self.flatten = dtype, raise_if_missing, flatten

    def _transform_numpy(self, batch):
        columns = self.columns if self.columns is not None else [
            c for c in batch if c not in self.exclude]
        missing = [c for c in columns if c not in batch]
        if missing:
            raise ValueError(f"Concatenator: missing columns {missing}; the batch has columns "
                             f"{list(batch)}.")
        parts = [batch[c].reshape(len(batch[c]), -1) for c in columns]
        stacked = np.concatenate(parts, axis=1) if parts else np.zeros((0, 0))
        if self.dtype is not None:
            stacked = stacked.astype(self.dtype)
        out = {k: v for k, v in batch.items() if k not in columns}
        out[self.output_column_name] = stacked
        return out
