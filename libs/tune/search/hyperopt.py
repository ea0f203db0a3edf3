"""``HyperOptSearch``: HyperOpt's TPE as a Tune searcher.

Needs the ``hyperopt`` package (``pip install hyperopt``).
"""

from . import sample
from .searcher import Searcher


def _import_hyperopt():
    try:
        import hyperopt
    except ImportError:
        raise ImportError("HyperOptSearch needs the hyperopt package: pip install hyperopt") \
            from None
    return hyperopt


class HyperOptSearch(Searcher):
    """Tree-structured Parzen estimators from HyperOpt::

        algo = HyperOptSearch(metric="loss", mode="min", n_initial_points=5)
    """

    def __init__(self, space=None, metric=None, mode=None, points_to_evaluate=None,
                 n_initial_points=20, random_state_seed=None, gamma=0.25, **kwargs):
        self._hpo = _import_hyperopt()
        super().__init__(metric=metric, mode=mode)
        self._n_initial = n_initial_points
        self._seed = random_state_seed
        self._gamma = gamma
        self._points = [dict(p) for p in (points_to_evaluate or [])]
        self._dims = None
        self._live = {}
        self._trials = None
        self._domain = None
        if space:
            self._set_space(space)

    def _expr(self, name, leaf):
        hp = self._hpo.hp
        if isinstance(leaf, sample.Categorical):
            return hp.choice(name, leaf.categories)
        if leaf.lower is None:
            return hp.normal(name, leaf.mean, leaf.sd)
        if isinstance(leaf, sample.Integer):
            high = leaf.upper if leaf.inclusive else leaf.upper - 1
            return self._hpo.pyll.scope.int(hp.quniform(name, leaf.lower, high, leaf.q or 1))
        if leaf.sampler == "loguniform":
            import math
            return hp.loguniform(name, math.log(leaf.lower), math.log(leaf.upper))
        if leaf.q is not None:
            return hp.quniform(name, leaf.lower, leaf.upper, leaf.q)
        return hp.uniform(name, leaf.lower, leaf.upper)

    def _set_space(self, space):
        self._dims = [(path, "/".join(map(str, path)))
                      for path, _ in sample.domain_leaves(space)]
        exprs = {name: self._expr(name, leaf)
                 for (path, name), (_, leaf) in zip(self._dims, sample.domain_leaves(space))}
        self._domain = self._hpo.Domain(lambda spc: 0, exprs)
        self._trials = self._hpo.Trials()
        import numpy as np
        self._rstate = np.random.default_rng(self._seed)

    def set_search_properties(self, metric, mode, config, **spec):
        if self._dims is not None and config and sample.domain_leaves(config):
            return False
        super().set_search_properties(metric, mode, config)
        if self._dims is None:
            self._set_space(config)
        return True

    def suggest(self, trial_id):
        if not self._metric or self._mode not in ("min", "max"):
            raise ValueError("HyperOptSearch needs metric and mode (here or in TuneConfig).")
        if self._points:
            point = self._points.pop(0)
            self._live[trial_id] = None
            return point
        hpo = self._hpo
        new_ids = self._trials.new_trial_ids(1)
        self._trials.refresh()
        algo = hpo.rand.suggest if len(self._trials.trials) < self._n_initial else \
            hpo.tpe.suggest
        docs = algo(new_ids, self._domain, self._trials, self._rstate.integers(2 ** 31 - 1))
        self._trials.insert_trial_docs(docs)
        self._trials.refresh()
        doc = self._trials.trials[-1]
        self._live[trial_id] = doc
        values = {k: v[0] for k, v in doc["misc"]["vals"].items() if v}
        params = hpo.space_eval(self._domain.expr, values)
        config = {}
        for path, name in self._dims:
            sample.set_path(config, path, params[name])
        return config

    def on_trial_complete(self, trial_id, result=None, error=False):
        doc = self._live.pop(trial_id, None)
        if doc is None:
            return
        hpo = self._hpo
        if error or not result or self._metric not in result:
            doc["state"] = hpo.base.JOB_STATE_ERROR
        else:
            loss = result[self._metric] * (-1.0 if self._mode == "max" else 1.0)
            doc["result"] = {"loss": loss, "status": "ok"}
            doc["state"] = hpo.base.JOB_STATE_DONE
        self._trials.refresh()
