"""``OptunaSearch``: Optuna's samplers (TPE by default) as a Tune searcher.

Needs the ``optuna`` package (``pip install optuna``).  Tune domains become
Optuna distributions; each trial is an Optuna ask/tell trial.
"""

from . import sample
from .searcher import Searcher


def _import_optuna():
    try:
        import optuna
    except ImportError:
        raise ImportError("OptunaSearch needs the optuna package: pip install optuna") from None
    return optuna


class OptunaSearch(Searcher):
    """Optuna as a search algorithm::

        algo = OptunaSearch(metric="loss", mode="min")
        tune.Tuner(train, param_space={"lr": tune.loguniform(1e-4, 1e-1)},
                   tune_config=tune.TuneConfig(search_alg=algo, num_samples=20))
    """

    def __init__(self, space=None, metric=None, mode=None, points_to_evaluate=None,
                 sampler=None, seed=None, evaluated_rewards=None, **kwargs):
        self._optuna = _import_optuna()
        super().__init__(metric=metric, mode=mode)
        self._sampler = sampler
        self._seed = seed
        self._points = [dict(p) for p in (points_to_evaluate or [])]
        self._dims = None
        self._study = None
        self._live = {}
        if space:
            self._set_space(space)

    def _distribution(self, path, leaf):
        d = self._optuna.distributions
        if isinstance(leaf, sample.Categorical):
            return d.CategoricalDistribution(leaf.categories)
        if leaf.lower is None:
            raise ValueError(f"OptunaSearch needs bounded domains; {path} is {leaf!r}.")
        log = leaf.sampler == "loguniform"
        if isinstance(leaf, sample.Integer):
            high = leaf.upper if leaf.inclusive else leaf.upper - 1
            return d.IntDistribution(leaf.lower, high, log=log, step=1 if log else (leaf.q or 1))
        return d.FloatDistribution(leaf.lower, leaf.upper, log=log,
                                   step=None if log else leaf.q)

    def _set_space(self, space):
        self._dims = [(path, self._distribution(path, leaf))
                      for path, leaf in sample.domain_leaves(space)]

    def set_search_properties(self, metric, mode, config, **spec):
        if self._dims is not None and config and sample.domain_leaves(config):
            return False
        super().set_search_properties(metric, mode, config)
        if self._dims is None:
            self._set_space(config)
        return True

    def _ensure_study(self):
        if self._study is None:
            sampler = self._sampler or self._optuna.samplers.TPESampler(seed=self._seed)
            direction = "maximize" if self._mode == "max" else "minimize"
            self._study = self._optuna.create_study(sampler=sampler, direction=direction)
            for point in self._points:
                self._study.enqueue_trial({"/".join(map(str, p)): v
                                           for p, v in sample.walk(point)})
        return self._study

    def suggest(self, trial_id):
        if not self._metric or self._mode not in ("min", "max"):
            raise ValueError("OptunaSearch needs metric and mode (here or in TuneConfig).")
        study = self._ensure_study()
        ot = study.ask({"/".join(map(str, p)): dist for p, dist in self._dims})
        self._live[trial_id] = ot
        config = {}
        for path, _ in self._dims:
            sample.set_path(config, path, ot.params["/".join(map(str, path))])
        return config

    def on_trial_result(self, trial_id, result):
        ot = self._live.get(trial_id)
        if ot is not None and self._metric in result and "training_iteration" in result:
            ot.report(result[self._metric], result["training_iteration"])

    def on_trial_complete(self, trial_id, result=None, error=False):
        ot = self._live.pop(trial_id, None)
        if ot is None:
            return
        state = self._optuna.trial.TrialState
        if error or not result or self._metric not in result:
            self._study.tell(ot, state=state.FAIL)
        else:
            self._study.tell(ot, result[self._metric])
