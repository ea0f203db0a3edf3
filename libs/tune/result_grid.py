"""``Result`` (one trial's outcome) and ``ResultGrid`` (all of them), what
``Tuner.fit()`` returns."""

import os

from .checkpoint import Checkpoint


class Result:
    """One trial's outcome: ``metrics`` (its last result), ``config``,
    ``checkpoint`` (latest), ``path`` (the trial folder), ``error``::

        best = results.get_best_result()
        print(best.config, best.metrics["loss"], best.checkpoint)
    """

    def __init__(self, trial):
        self._trial = trial
        self.metrics = trial.last_result or {}
        self.config = trial.config
        self.path = trial.path
        self.error = trial.error if trial.error is not None else (
            _RestoredTrialError(trial.error_msg) if trial.error_msg else None)
        self.checkpoint = Checkpoint(trial.checkpoint["path"]) if trial.checkpoint else None
        self._df = None

    @property
    def metrics_dataframe(self):
        """Every result of the trial as a pandas DataFrame (from progress.csv)."""
        if self._df is None:
            pd = _pandas()
            csv = os.path.join(self.path, "progress.csv")
            self._df = pd.read_csv(csv) if os.path.exists(csv) and os.path.getsize(csv) else \
                pd.DataFrame()
        return self._df

    @property
    def best_checkpoints(self):
        """``[(Checkpoint, metrics)]`` of the checkpoints CheckpointConfig keeps: with a
        ``checkpoint_score_attribute``, the best ``num_to_keep``, worst first; else the
        newest, oldest first. ``checkpoint`` (the latest) is kept as well."""
        history = self._trial.__dict__.get("_checkpoints", [])
        return [(Checkpoint(c["path"]), m) for c, m in history if os.path.exists(c["path"])]

    def get_best_checkpoint(self, metric, mode):
        """The kept checkpoint with the best ``metric`` (``mode`` "min" or "max").

        Example::

            result.get_best_checkpoint("loss", "min")
        """
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}.")
        scored = [(m[metric], c) for c, m in self.best_checkpoints
                  if isinstance(m.get(metric), (int, float)) and m[metric] == m[metric]]
        if not scored:
            raise RuntimeError(f"No checkpoint of this trial has a value of {metric!r}; the "
                               f"kept checkpoints report {sorted({k for _, m in self.best_checkpoints for k in m})}.")
        pick = max if mode == "max" else min
        return pick(scored, key=lambda vc: vc[0])[1]

    @property
    def filesystem(self):
        return None

    def __repr__(self):
        shown = {k: v for k, v in self.metrics.items()
                 if k not in ("config", "date", "hostname", "node_ip", "pid", "timestamp")}
        return (f"Result(metrics={shown}, path={self.path!r}, "
                f"checkpoint={self.checkpoint}{', error=' + repr(self.error) if self.error else ''})")


class _RestoredTrialError(RuntimeError):
    """A trial's error read back from disk (after ``Tuner.restore``)."""


class ResultGrid:
    """The results of every trial of an experiment, in trial order::

        results = tuner.fit()
        for result in results:
            print(result.config, result.metrics["score"])
        results.get_best_result(metric="score", mode="max")
        results.get_dataframe()
    """

    def __init__(self, trials, experiment_path=None, metric=None, mode=None):
        self._trials = list(trials)
        self._results = [Result(t) for t in self._trials]
        self.experiment_path = experiment_path
        self._metric, self._mode = metric, mode

    def __len__(self):
        return len(self._results)

    def __getitem__(self, index):
        return self._results[index]

    def __iter__(self):
        return iter(self._results)

    @property
    def errors(self):
        """The exceptions of the trials that failed (each with its traceback in str())."""
        return [r.error for r in self._results if r.error is not None]

    @property
    def num_errors(self):
        return len(self.errors)

    @property
    def num_terminated(self):
        return sum(1 for t in self._trials if t.status == "TERMINATED")

    def get_best_result(self, metric=None, mode=None, scope="last", filter_nan_and_inf=True):
        """The best trial's Result by ``metric`` in ``scope``::

            results.get_best_result(metric="loss", mode="min", scope="all")

        ``scope``: "last" (each trial's last result), "avg", "last-5-avg",
        "last-10-avg" or "all" (best value ever reported).
        """
        metric = metric or self._metric
        mode = mode or self._mode
        if not metric or not mode:
            raise ValueError("get_best_result needs a metric and a mode: pass them here, e.g. "
                             "get_best_result(metric='loss', mode='min'), or to "
                             "tune.TuneConfig(metric=..., mode=...).")
        best = best_trial(self._trials, metric, mode, scope, filter_nan_and_inf)
        return self._results[self._trials.index(best)]

    def get_dataframe(self, filter_metric=None, filter_mode=None):
        """One row per trial (its last result, config as ``config/<key>``), or with
        ``filter_metric``/``filter_mode`` each trial's best result."""
        pd = _pandas()
        from .logger import flatten_dict
        rows = []
        for trial, result in zip(self._trials, self._results):
            row = result.metrics
            if filter_metric:
                df = result.metrics_dataframe
                if filter_metric in df:
                    idx = df[filter_metric].idxmax() if filter_mode == "max" else \
                        df[filter_metric].idxmin()
                    row = dict(df.loc[idx])
            row = dict(row)
            row.pop("config", None)
            flat = flatten_dict(row)
            flat.update(flatten_dict({"config": trial.config}))
            flat["logdir"] = trial.path
            rows.append(flat)
        return pd.DataFrame(rows)

    def __repr__(self):
        return f"ResultGrid<[\n  " + ",\n  ".join(map(repr, self._results)) + "\n]>"


def best_trial(trials, metric, mode, scope="last", filter_nan_and_inf=True):
    """The best trial, or a ValueError naming the metrics the trials do report."""
    import math
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}.")
    scored = []
    for trial in trials:
        value = trial.metric_value(metric, "max" if scope == "all" and mode == "max" else
                                   "min" if scope == "all" else scope)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if filter_nan_and_inf and not math.isfinite(value):
            continue
        scored.append((value, trial))
    if not scored:
        known = sorted({k for t in trials for k, v in t.last_result.items()
                        if isinstance(v, (int, float)) and not isinstance(v, bool)})
        if any(metric in t.last_result for t in trials):
            raise ValueError(f"No trial has a finite value of {metric!r} to rank by.")
        raise ValueError(f"No trial reported the metric {metric!r}. The trials reported these "
                         f"metrics: {known}. Pass one of them as metric=..., or report "
                         f"{metric!r} with tune.report().")
    pick = max if mode == "max" else min
    return pick(scored, key=lambda vt: vt[0])[1]


def _pandas():
    try:
        import pandas
    except ImportError:
        raise ImportError("this needs pandas: pip install pandas (or minray[tune])") from None
    return pandas
