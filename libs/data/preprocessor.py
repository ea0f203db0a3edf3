"""minray.data.preprocessor: the Preprocessor base class, at Ray's import path.

    fit(ds)            -> self._fit(ds) computes statistics (``self.stats_``) with aggregations
    transform(ds)      -> ds.map_batches(...)   (lazy, fused with the other maps)
    transform_batch(b) -> the same function on one dict-of-arrays or pandas batch

A subclass implements ``_fit`` (unless ``_is_fittable = False``) and one of
``_transform_numpy`` (a function of a dict of numpy arrays) or ``_transform_pandas``
(a function of a pandas DataFrame).  Ray's custom-preprocessor pattern works as is::

    from minray.data.preprocessor import Preprocessor

    class Center(Preprocessor):
        def _fit(self, ds):
            self.stats_ = {"mean": ds.mean("x")}
            return self

        def _transform_pandas(self, df):
            df["x"] = df["x"] - self.stats_["mean"]
            return df

    Center().transform(ds)       # raises PreprocessorNotFittedException: fit first
    Center().fit_transform(ds)   # fits, then transforms

The library's own preprocessors (minray.data.preprocessors) return their statistics
from ``_fit`` instead; ``fit`` stores them in ``stats_``.
"""

import enum

from . import block as B


class PreprocessorNotFittedException(RuntimeError):
    """transform() or transform_batch() was called before fit() on a preprocessor that
    needs statistics. Example::

        try:
            StandardScaler(columns=["x"]).transform(ds)
        except PreprocessorNotFittedException:
            ...
    """


class Preprocessor:
    """Base class of every preprocessor. Example::

        class Double(Preprocessor):
            _is_fittable = False
            def _transform_numpy(self, batch):
                return {k: v * 2 for k, v in batch.items()}

        Double().transform(ds)
    """

    class FitStatus(str, enum.Enum):
        """Where a preprocessor stands; compares equal to its name (``== "FITTED"``)."""
        NOT_FITTABLE = "NOT_FITTABLE"
        NOT_FITTED = "NOT_FITTED"
        PARTIALLY_FITTED = "PARTIALLY_FITTED"
        FITTED = "FITTED"

    _is_fittable = True

    def __init__(self):
        self.stats_ = None

    def fit_status(self):
        """``Preprocessor.FitStatus``: NOT_FITTABLE, NOT_FITTED or FITTED."""
        if not self._is_fittable:
            return Preprocessor.FitStatus.NOT_FITTABLE
        fitted = getattr(self, "_fitted", False)
        return Preprocessor.FitStatus.FITTED if fitted else Preprocessor.FitStatus.NOT_FITTED

    def fit(self, ds):
        """Compute the statistics this preprocessor needs from ``ds``; returns self.

        A non-fittable preprocessor (``_is_fittable = False``) returns at once.
        """
        if not self._is_fittable:
            return self
        if type(self)._fit is Preprocessor._fit:
            raise TypeError(f"{type(self).__name__} is fittable but defines no _fit(self, ds); "
                            f"define it, or set `_is_fittable = False` on the class.")
        stats = self._fit(ds)
        if stats is not None and stats is not self:
            self.stats_ = stats
        self._fitted = True
        return self

    def fit_transform(self, ds, *, transform_num_cpus=None, transform_memory=None,
                      transform_batch_size=None, transform_concurrency=None):
        """``fit(ds)`` then ``transform(ds)``. Example: ``scaler.fit_transform(train_ds)``."""
        return self.fit(ds).transform(ds, batch_size=transform_batch_size,
                                      num_cpus=transform_num_cpus, memory=transform_memory,
                                      concurrency=transform_concurrency)

    def transform(self, ds, *, batch_size=None, num_cpus=None, memory=None, concurrency=None):
        """A new dataset with this preprocessor applied to every batch (lazy); the keywords
        go to ``map_batches`` (``batch_size=None``: one batch per block).

        Example::

            StandardScaler(columns=["x"]).fit(train).transform(test, concurrency=2)
        """
        if self.fit_status() == Preprocessor.FitStatus.NOT_FITTED:
            raise PreprocessorNotFittedException(
                f"`fit` must be called before `transform`, or simply use fit_transform() to "
                f"run both steps ({type(self).__name__} is not fitted).")
        return ds.map_batches(self._apply, batch_format="numpy", batch_size=batch_size,
                              num_cpus=num_cpus, memory=memory, concurrency=concurrency)

    def transform_batch(self, batch):
        """Apply to one batch: a dict of numpy arrays or a pandas DataFrame (same type back).

        Example::

            scaler.transform_batch({"x": np.array([1.0, 2.0])})
        """
        if self.fit_status() == Preprocessor.FitStatus.NOT_FITTED:
            raise PreprocessorNotFittedException(
                f"`fit` must be called before `transform_batch` ({type(self).__name__} is not "
                f"fitted).")
        if isinstance(batch, dict):
            return self._apply({k: B.make_column(v) for k, v in batch.items()})
        if type(batch).__module__.startswith("pandas"):
            return B.to_pandas(self._apply(B.from_pandas(batch)))
        raise TypeError(f"transform_batch takes a dict of numpy arrays or a pandas.DataFrame, "
                        f"got {type(batch).__name__}.")

    def _check_fitted(self):
        if self.fit_status() == Preprocessor.FitStatus.NOT_FITTED:
            raise PreprocessorNotFittedException(
                f"`fit` must be called before `transform` ({type(self).__name__} is not "
                f"fitted).")

    def _apply(self, batch):
        """Run whichever transform the subclass defines on a dict-of-arrays batch."""
        cls = type(self)
        if cls._transform_numpy is not Preprocessor._transform_numpy:
            return self._transform_numpy(batch)
        if cls._transform_pandas is not Preprocessor._transform_pandas:
            return B.normalize_batch(self._transform_pandas(B.to_pandas(batch)))
        raise TypeError(f"{cls.__name__} defines no transform: implement "
                        f"_transform_numpy(self, batch) or _transform_pandas(self, df).")

    def _fit(self, ds):
        """Overridden by fittable subclasses (``fit`` refuses when it is not)."""
        return None

    def _transform_numpy(self, batch):
        """Overridden by subclasses that transform dicts of numpy arrays."""
        return self._apply(batch)

    def _transform_pandas(self, df):
        """Overridden by subclasses that transform pandas DataFrames."""
        return B.to_pandas(self._apply(B.from_pandas(df)))

    def __repr__(self):
        fields = {k: v for k, v in vars(self).items()
                  if k not in ("stats_", "_fitted") and not k.startswith("_")}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in fields.items())})"


__all__ = ["Preprocessor", "PreprocessorNotFittedException"]
