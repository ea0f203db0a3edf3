"""Chain and the helpers the built-in preprocessors share.

The fit / transform protocol itself (Preprocessor, PreprocessorNotFittedException)
lives in minray/data/preprocessor.py, Ray's path; it is re-exported here.
Built-in subclasses implement ``_fit`` (returning their statistics, which ``fit``
stores in ``self.stats_``) and ``_transform_numpy`` (a pure function of a dict of
numpy arrays).
"""

from ..preprocessor import Preprocessor, PreprocessorNotFittedException

__all__ = ["Chain", "Preprocessor", "PreprocessorNotFittedException"]


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
        if Preprocessor.FitStatus.NOT_FITTED in states:
            return Preprocessor.FitStatus.NOT_FITTED
        return Preprocessor.FitStatus.FITTED

    def fit(self, ds):
        for i, p in enumerate(self.preprocessors):
            p.fit(ds)
            if i < len(self.preprocessors) - 1:
                ds = p.transform(ds)
        self._fitted = True
        return self

    def transform(self, ds, *, batch_size=None, num_cpus=None, memory=None, concurrency=None):
        for p in self.preprocessors:
            ds = p.transform(ds, batch_size=batch_size, num_cpus=num_cpus, memory=memory,
                             concurrency=concurrency)
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
