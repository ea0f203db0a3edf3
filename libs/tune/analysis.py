"""The legacy entry point ``tune.run(...)`` and its ``ExperimentAnalysis``
(as "Learning Ray" chapter 5 uses them).  ``run`` builds a Tuner from its
keyword arguments; the analysis reads the trials the runner returns."""

import os

from .config import CheckpointConfig, FailureConfig, RunConfig, TuneConfig
from .result_grid import Result, best_trial
from .trial import Trial


class TuneError(Exception):
    """An experiment-level failure (e.g. trials that did not complete)."""


class ExperimentAnalysis:
    """What ``tune.run`` returns::

        analysis = tune.run(train, config=space, num_samples=4)
        analysis.get_best_config(metric="score", mode="min")
        analysis.results_df
    """

    def __init__(self, trials, experiment_path=None, default_metric=None, default_mode=None):
        self.trials = list(trials)
        self.experiment_path = experiment_path
        self.default_metric, self.default_mode = default_metric, default_mode

    def _validate(self, metric, mode, what):
        metric = metric or self.default_metric
        mode = mode or self.default_mode
        if not metric or not mode:
            raise ValueError(f"To fetch {what}, pass a metric and a mode, either here or to "
                             "tune.run(metric=..., mode=...).")
        return metric, mode

    def get_best_trial(self, metric=None, mode=None, scope="last", filter_nan_and_inf=True):
        """The best Trial by ``metric`` (see ResultGrid.get_best_result for ``scope``)."""
        metric, mode = self._validate(metric, mode, "the best trial")
        return best_trial(self.trials, metric, mode, scope, filter_nan_and_inf)

    def get_best_config(self, metric=None, mode=None, scope="last"):
        """The config of the best trial."""
        return self.get_best_trial(metric, mode, scope).config

    def get_best_checkpoint(self, trial, metric=None, mode=None):
        return Result(trial).checkpoint

    def get_last_checkpoint(self, trial=None, metric="training_iteration", mode="max"):
        trial = trial or self.get_best_trial(metric, mode)
        return Result(trial).checkpoint

    @property
    def best_trial(self):
        return self.get_best_trial()

    @property
    def best_config(self):
        return self.get_best_config()

    @property
    def best_result(self):
        return self.best_trial.last_result

    @property
    def best_checkpoint(self):
        return Result(self.best_trial).checkpoint

    @property
    def best_logdir(self):
        return self.best_trial.path

    @property
    def best_dataframe(self):
        return Result(self.best_trial).metrics_dataframe

    @property
    def best_result_df(self):
        pd = _pandas()
        return pd.DataFrame([_flat_row(self.best_trial)]).set_index("trial_id")

    @property
    def results(self):
        """``{trial_id: last result}``."""
        return {t.trial_id: t.last_result for t in self.trials}

    @property
    def results_df(self):
        """One row per trial (last result, ``config/...`` columns), indexed by trial_id."""
        pd = _pandas()
        rows = [_flat_row(t) for t in self.trials]
        if not rows:
            return pd.DataFrame()
        return pd.DataFrame(rows).set_index("trial_id")

    def dataframe(self, metric=None, mode=None):
        """One row per trial: its last result, or its best by ``metric``/``mode``."""
        pd = _pandas()
        rows = []
        for t in self.trials:
            row = dict(t.last_result)
            if metric and mode:
                df = Result(t).metrics_dataframe
                if metric in df:
                    row = dict(df.loc[df[metric].idxmax() if mode == "max"
                                      else df[metric].idxmin()])
            row.pop("config", None)
            from .logger import flatten_dict
            flat = flatten_dict(row)
            flat.update(flatten_dict({"config": t.config}))
            flat["logdir"] = t.path
            rows.append(flat)
        return pd.DataFrame(rows)

    @property
    def trial_dataframes(self):
        """``{trial path: its progress DataFrame}``."""
        return {t.path: Result(t).metrics_dataframe for t in self.trials}

    def get_all_configs(self, prefix=False):
        return {t.path: t.config for t in self.trials}

    def stats(self):
        return {}


def _flat_row(trial):
    from .logger import flatten_dict
    row = {k: v for k, v in trial.last_result.items() if k != "config"}
    flat = flatten_dict(row)
    flat.update(flatten_dict({"config": trial.config}))
    flat["trial_id"] = trial.trial_id
    flat["logdir"] = trial.path
    return flat


def run(run_or_experiment, *, name=None, metric=None, mode=None, stop=None,
        time_budget_s=None, config=None, resources_per_trial=None, num_samples=1,
        storage_path=None, search_alg=None, scheduler=None, checkpoint_config=None,
        verbose=None, progress_reporter=None, max_failures=0, fail_fast=False,
        reuse_actors=None, raise_on_failed_trial=True, callbacks=None,
        max_concurrent_trials=None, resume=None, keep_checkpoints_num=None,
        checkpoint_score_attr=None, checkpoint_freq=0, checkpoint_at_end=False,
        local_dir=None, **unsupported):
    """Run an experiment the Ray 1.x way (prefer ``Tuner``)::

        analysis = tune.run(train, config={"x": tune.grid_search([1, 2])},
                            metric="score", mode="max")
        print(analysis.best_config)

    Raises TuneError when a trial failed, unless ``raise_on_failed_trial=False``.
    """
    from .trainable import with_resources
    from .tuner import Tuner, check_param_space
    check_param_space(config, "`config` passed to `tune.run(...)`")
    if unsupported:
        raise TypeError(f"tune.run() got arguments that minray does not support: "
                        f"{sorted(unsupported)}; use tune.Tuner with TuneConfig/RunConfig.")
    trainable = run_or_experiment
    if resources_per_trial is not None:
        trainable = with_resources(trainable, resources_per_trial)
    if checkpoint_config is None and (keep_checkpoints_num or checkpoint_freq or
                                      checkpoint_at_end):
        checkpoint_config = CheckpointConfig(
            num_to_keep=keep_checkpoints_num, checkpoint_frequency=checkpoint_freq,
            checkpoint_at_end=checkpoint_at_end,
            checkpoint_score_attribute=(checkpoint_score_attr or "").replace("min-", "") or None,
            checkpoint_score_order="min" if (checkpoint_score_attr or "").startswith("min-")
            else "max")
    run_config = RunConfig(name=name, storage_path=storage_path or local_dir, stop=stop,
                           callbacks=callbacks, checkpoint_config=checkpoint_config,
                           failure_config=FailureConfig(max_failures, fail_fast),
                           verbose=verbose, progress_reporter=progress_reporter)
    tune_config = TuneConfig(metric=metric, mode=mode, search_alg=search_alg,
                             scheduler=scheduler, num_samples=num_samples,
                             max_concurrent_trials=max_concurrent_trials,
                             time_budget_s=time_budget_s, reuse_actors=reuse_actors)
    if resume and name:
        from .tuner import _storage_path
        path = os.path.join(_storage_path(run_config), name)
        if Tuner.can_restore(path):
            tuner = Tuner.restore(path, trainable)
        else:
            tuner = Tuner(trainable, param_space=config, tune_config=tune_config,
                          run_config=run_config)
    else:
        tuner = Tuner(trainable, param_space=config, tune_config=tune_config,
                      run_config=run_config)
    grid = tuner.fit()
    trials = grid._trials
    failed = [t for t in trials if t.status == Trial.ERROR]
    if failed and raise_on_failed_trial:
        raise TuneError(f"Trials did not complete: {failed}")
    return ExperimentAnalysis(trials, grid.experiment_path, metric, mode)


def _pandas():
    try:
        import pandas
    except ImportError:
        raise ImportError("this needs pandas: pip install pandas (or minray[tune])") from None
    return pandas
