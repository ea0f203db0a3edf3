"""Preprocessor: the fit / transform protocol every preprocessor follows.

    fit(ds)            -> self._fit(ds) computes ``self.stats_`` with dataset aggregations
    transform(ds)      -> ds.map_batches(self._transform_numpy)   (lazy, fused with other maps)
    transform_batch(b) -> self._transform_numpy on one dict-of-arrays or pandas batch

Subclasses implement ``_fit`` (if they need statistics) and ``_transform_numpy``
(a pure function of a dict of numpy arrays).
"""

from .. import block as B


class PreprocessorNotFittedException(RuntimeError):
    """transform() was called before fit() on a preprocessor that needs statistics."""


class Preprocessor:
    """Base class. Example::

        class Double(Preprocessor):
            _is_fittable = False
            def _transform_numpy(self, batch):
                return {k: v * 2 for k, v in batch.items()}
    """
    _is_fittable = True

    def __init__(self):
        self.stats_ = None

    def fit_status(self):
        if not self._is_fittable:
            return "NOT_FITTABLE"
        return "FITTED" if self.stats_ is not None else "NOT_FITTED"

    def fit(self, ds):
        """Compute the statistics this preprocessor needs from ``ds``; returns self."""
        if self._is_fittable:
            self.stats_ = self._fit(ds)
        return self

    def fit_transform(self, ds):
        """``fit(ds)`` then ``transform(ds)``."""
        return self.fit(ds).transform(ds)

    def transform(self, ds, **map_batches_kwargs):
        """A new dataset with this preprocessor applied to every batch (lazy)."""
        self._check_fitted()
        return ds.map_batches(self._transform_numpy, batch_format="numpy", batch_size=None,
                              **map_batches_kwargs)

    def transform_batch(self, batch):
        """Apply to one batch: a dict of numpy arrays or a pandas DataFrame (same type back).

        Example::

            scaler.transform_batch({"x": np.array([1.0, 2.0])})
        """
        self._check_fitted()
        if isinstance(batch, dict):
            return self._transform_numpy({k: B.make_column(v) for k, v in batch.items()})
        if type(batch).__module__.startswith("pandas"):
            return B.to_pandas(self._transform_numpy(B.from_pandas(batch)))
        raise TypeError(f"transform_batch takes a dict of numpy arrays or a pandas.DataFrame, "
                        f"got {type(batch).__name__}.")

    def _check_fitted(self):
        if self._is_fittable and self.stats_ is None:
            raise PreprocessorNotFittedException(
                f"{type(self).__name__} must be fitted before transform: call fit(ds) or "
                f"fit_transform(ds) first.")

    def _fit(self, ds):
        raise NotImplementedError

    def _transform_numpy(self, batch):
        raise NotImplementedError

    def __repr__(self):
        fields = {k: v for k, v in vars(self).items() if k != "stats_"}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in fields.items())})"


class Chain(Preprocessor):
    """Apply preprocessors in order; fitting fits each on the output of the ones before.

    Example::

        chain = Chain(SimpleImputer(["x"]), StandardScaler(["x"]))
        ds = chain.fit_transform(ds)
    """

    def __init__(self, *preprocessors):
        super().__init__()
        self.preprocessors = list(preprocessors)

    def fit_status(self):
        states = {p.fit_status() for p in self.preprocessors}
        return "NOT_FITTED" if "NOT_FITTED" in states else "FITTED"

    def fit(self, ds):
        for i, p in enumerate(self.preprocessors):
            p.fit(ds)
            if i < len(self.preprocessors) - 1:
                ds = p.transform(ds)
        self.stats_ = {}
        return self

    def transform(self, ds, **kwargs):
        for p in self.preprocessors:
            ds = p.transform(ds, **kwargs)
        return ds

    def _check_fitted(self):
        for p in self.preprocessors:
            p._check_fitted()

    def _transform_numpy(self, batch):
        for p in self.preprocessors:
            batch = p._transform_numpy(batch)
        return batch


def check_columns(batch, columns, who):
    missing = [c for c in columns if c not in batch]
    if missing:
        raise KeyError(f"{who}: column {missing[0]!r} does not exist; the batch has columns "
                       f"{list(batch)}.")


def output_names(columns, output_columns, who):
    if output_columns is None:
        return list(columns)
    if len(output_columns) != len(columns):
        raise ValueError(f"{who}: output_columns must have one name per column ({len(columns)}), "
                         f"got {output_columns!r}.")
    return list(output_columns)
