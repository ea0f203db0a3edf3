"""``Tuner``: the entry point.  ``Tuner(trainable, param_space=..., tune_config=...,
run_config=...).fit()`` runs the experiment and returns a ResultGrid;
``Tuner.restore(path, trainable)`` picks an interrupted one up again.

fit() writes ``tuner.pkl`` (everything but the trainable) into the experiment
directory first, then hands a TrialRunner the search algorithm, scheduler,
stopper and callbacks built from the configs.
"""

import datetime
import os
import time

import minray

from . import experiment_state
from .config import FailureConfig, RunConfig, TuneConfig
from .result_grid import ResultGrid
from .runner import TrialRunner
from .schedulers.trial_scheduler import FIFOScheduler
from .search.basic_variant import BasicVariantGenerator
from .search.searcher import SearchAlgorithm, Searcher, SearchGenerator
from .stopper import make_stopper
from .trainable import TrainableSpec

DEFAULT_STORAGE_PATH = "~/ray_results"


def _storage_path(run_config):
    return os.path.abspath(os.path.expanduser(run_config.storage_path or DEFAULT_STORAGE_PATH))


class ParamSpaceTypeError(TypeError, ValueError):
    """A param space that is not a dict.  Ray raises ValueError here and minray raised
    TypeError before, so this is both: ``except`` clauses written for either still work."""


def check_param_space(param_space, what="`param_space` passed to the `Tuner`"):
    """The param space as a dict (None: {}), or ParamSpaceTypeError in Ray's words."""
    if param_space is None:
        return {}
    if not isinstance(param_space, dict) and callable(getattr(param_space, "to_dict", None)):
        # A library's config object (RLlib's AlgorithmConfig), as Ray's Tuner takes it.
        param_space = param_space.to_dict()
    if not isinstance(param_space, dict):
        raise ParamSpaceTypeError(f"The {what} must be a dict. Got '{type(param_space)}' "
                                  f"instead.")
    return dict(param_space)


def check_serializable(trainable):
    """TypeError, before anything starts, if the trainable cannot be pickled: each trial's
    actor receives it by value."""
    import cloudpickle
    try:
        cloudpickle.dumps(trainable)
    except Exception as exc:  # noqa: BLE001 - any pickling failure means the same thing
        name = getattr(trainable, "__qualname__", type(trainable).__name__)
        raise TypeError(
            f"The provided trainable is not serializable, which is a requirement since the "
            f"trainable is serialized and deserialized when transferred to remote workers. "
            f"{name!r} failed with {type(exc).__name__}: {exc}. Fix: create locks, sockets, "
            f"files and clients inside the trainable instead of capturing them, or pass "
            f"large objects with tune.with_parameters().") from exc


def make_search_alg(search_alg, metric, mode, param_space, num_samples):
    if search_alg is None:
        search_alg = BasicVariantGenerator()
    if isinstance(search_alg, Searcher):
        search_alg = SearchGenerator(search_alg)
    if not isinstance(search_alg, SearchAlgorithm):
        raise TypeError(f"search_alg must be a tune Searcher or SearchAlgorithm, got "
                        f"{type(search_alg).__name__}.")
    if not search_alg.set_search_properties(metric, mode, param_space):
        raise ValueError(f"{type(search_alg).__name__} already has a search space; pass "
                         "param_space to it or to the Tuner, not both.")
    search_alg.setup(param_space, num_samples)
    return search_alg


class Tuner:
    """Run a hyperparameter search::

        def train(config):
            for step in range(10):
                tune.report({"score": config["x"] * step})

        tuner = tune.Tuner(train, param_space={"x": tune.uniform(0, 1)},
                           tune_config=tune.TuneConfig(metric="score", mode="max",
                                                       num_samples=8))
        results = tuner.fit()
        print(results.get_best_result().config)
    """

    def __init__(self, trainable=None, *, param_space=None, tune_config=None, run_config=None,
                 _restored=None):
        if trainable is None:
            raise TypeError("Tuner needs a trainable: a function train(config) or a "
                            "tune.Trainable subclass.")
        if hasattr(trainable, "_as_tune_trainable"):  # a minray.train trainer
            if run_config is None:
                run_config = trainable._tune_run_config()
            trainable = trainable._as_tune_trainable()
        check_serializable(trainable)
        self._trainable = trainable
        self._param_space = check_param_space(param_space)
        self._tune_config = tune_config or TuneConfig()
        self._run_config = run_config or RunConfig()
        if not isinstance(self._tune_config, TuneConfig):
            raise TypeError(f"tune_config must be a tune.TuneConfig, got "
                            f"{type(self._tune_config).__name__}.")
        self._restored = _restored  # (experiment_dir, trials, search_alg) after restore()
        self._results = None

    @classmethod
    def restore(cls, path, trainable, resume_unfinished=True, resume_errored=False,
                restart_errored=False, param_space=None, **_ignored):
        """Continue an experiment that stopped (even one whose driver was killed)::

            tuner = tune.Tuner.restore("~/ray_results/my_exp", train)
            results = tuner.fit()  # finished trials are kept, the others resume

        Unfinished trials resume from their latest checkpoint (or start over);
        errored trials stay errored unless ``resume_errored`` (from their last
        checkpoint) or ``restart_errored`` (from scratch).
        """
        path = os.path.abspath(os.path.expanduser(os.fspath(path)))
        saved = experiment_state.load_tuner(path)
        trials = experiment_state.load_trials(path)
        search_alg = experiment_state.load_search(path)
        for trial in trials:
            if trial.status == "ERROR" and (resume_errored or restart_errored):
                trial.status, trial.error_msg, trial.num_failures = "PENDING", None, 0
                if restart_errored:
                    trial.checkpoint = None
            elif trial.status in ("RUNNING", "PAUSED", "PENDING"):
                trial.status = "PENDING" if resume_unfinished else "TERMINATED"
        run_config = saved["run_config"]
        run_config.name = os.path.basename(path)
        run_config.storage_path = os.path.dirname(path)
        tuner = cls(trainable, param_space=param_space or saved["param_space"],
                    tune_config=saved["tune_config"], run_config=run_config,
                    _restored=(path, trials, search_alg))
        return tuner

    @classmethod
    def can_restore(cls, path):
        """True if ``path`` holds an experiment that ``restore`` can continue."""
        path = os.path.abspath(os.path.expanduser(os.fspath(path)))
        return os.path.exists(os.path.join(path, experiment_state.TUNER_STATE))

    def fit(self):
        """Run the experiment; return a ResultGrid (errors are in ``.errors``)."""
        if not minray.is_initialized():
            minray.init()
        tc, rc = self._tune_config, self._run_config
        spec = TrainableSpec(self._trainable)
        if self._restored is not None:
            experiment_dir, trials, search_alg = self._restored
            name = os.path.basename(experiment_dir)
        else:
            name = rc.name
            if name is None:  # a default name never reuses an existing directory
                stamp = time.strftime('%Y-%m-%d_%H-%M-%S')
                name, n = f"{spec.name}_{stamp}", 1
                while os.path.exists(os.path.join(_storage_path(rc), name)):
                    n += 1
                    name = f"{spec.name}_{stamp}_{n}"
            experiment_dir = os.path.join(_storage_path(rc), name)
            trials, search_alg = [], None
        metric, mode = tc.metric, tc.mode
        if search_alg is None:
            search_alg = make_search_alg(tc.search_alg, metric, mode, self._param_space,
                                         tc.num_samples)
        elif isinstance(search_alg, BasicVariantGenerator):
            search_alg.skip_to(len(trials))
        scheduler = tc.scheduler or FIFOScheduler()
        scheduler.set_search_properties(metric, mode)
        state = experiment_state.ExperimentState(experiment_dir)
        if self._restored is None:
            try:
                state.save_tuner({"param_space": self._param_space, "tune_config": tc,
                                  "run_config": _picklable_run_config(rc)})
            except Exception as exc:  # the run goes on; only restore() will not work
                import warnings
                warnings.warn(f"the experiment cannot be restored later: its configs could "
                              f"not be pickled ({exc}).")
        failure = rc.failure_config or FailureConfig()
        budget = tc.time_budget_s
        if isinstance(budget, datetime.timedelta):
            budget = budget.total_seconds()
        max_concurrent = tc.max_concurrent_trials
        limit = getattr(search_alg, "max_concurrent", 0)
        if limit:
            max_concurrent = min(max_concurrent or limit, limit)
        runner = TrialRunner(
            spec, search_alg, scheduler, make_stopper(rc.stop), rc.callbacks, experiment_dir,
            name, metric=metric, mode=mode, max_concurrent=max_concurrent,
            time_budget_s=budget, max_failures=failure.max_failures,
            fail_fast=failure.fail_fast, checkpoint_config=rc.checkpoint_config,
            verbose=1 if rc.verbose is None else rc.verbose, trials=trials,
            reuse_actors=tc.reuse_actors, num_samples=tc.num_samples,
            progress_reporter=rc.progress_reporter,
            trial_name_creator=tc.trial_name_creator,
            trial_dirname_creator=tc.trial_dirname_creator)
        try:
            trials = runner.run()
        except KeyboardInterrupt:
            import sys
            print(f"Experiment interrupted; its state is saved. Resume it with "
                  f"tune.Tuner.restore({experiment_dir!r}, trainable).fit()", file=sys.stderr)
            raise
        self._results = ResultGrid(trials, experiment_dir, metric, mode)
        return self._results

    def get_results(self):
        """The ResultGrid of the last fit() (or of the restored experiment)."""
        if self._results is None:
            if self._restored is not None:
                path, trials, _ = self._restored
                return ResultGrid(trials, path, self._tune_config.metric,
                                  self._tune_config.mode)
            raise RuntimeError("get_results() needs fit() to have run first, or a Tuner "
                               "made by Tuner.restore(path, trainable).")
        return self._results


def _picklable_run_config(rc):
    """The RunConfig to save; callbacks that cannot be pickled are dropped."""
    import copy
    import cloudpickle
    rc = copy.copy(rc)
    try:
        cloudpickle.dumps(rc.callbacks)
    except Exception:
        rc.callbacks = None
    for field in ("stop", "progress_reporter"):
        try:
            cloudpickle.dumps(getattr(rc, field))
        except Exception:
            setattr(rc, field, None)
    return rc
