"""``BayesOptSearch``: Bayesian optimisation with a Gaussian process, in numpy.

Each numeric domain of the space is mapped to [0, 1] (log domains in log
space).  After ``random_search_steps`` random points, every suggestion fits a
GP (Matern 5/2 kernel; length scale picked by marginal likelihood) to the
completed trials and maximises an acquisition function (UCB, EI or PI) over
random candidates plus perturbations of the best points so far.
"""

import math

import numpy as np

from . import sample
from .searcher import Searcher


def _matern52(a, b, length):
    d = np.sqrt(np.maximum(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1), 0.0)) / length
    s5 = math.sqrt(5.0) * d
    return (1.0 + s5 + 5.0 / 3.0 * d * d) * np.exp(-s5)


class _GP:
    def __init__(self, x, y, noise=1e-6):
        self.x = x
        self.mean, self.std = y.mean(), y.std() or 1.0
        yn = (y - self.mean) / self.std
        best = None
        for length in (0.05, 0.1, 0.2, 0.35, 0.5, 1.0, 2.0):
            k = _matern52(x, x, length) + (noise + 1e-8) * np.eye(len(x))
            try:
                chol = np.linalg.cholesky(k)
            except np.linalg.LinAlgError:
                continue
            alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, yn))
            nll = 0.5 * yn @ alpha + np.log(np.diag(chol)).sum()
            if best is None or nll < best[0]:
                best = (nll, length, chol, alpha)
        if best is None:
            raise np.linalg.LinAlgError("GP fit failed")
        _, self.length, self.chol, self.alpha = best

    def predict(self, xs):
        ks = _matern52(xs, self.x, self.length)
        mu = ks @ self.alpha
        v = np.linalg.solve(self.chol, ks.T)
        var = np.maximum(1.0 - (v * v).sum(0), 1e-12)
        return mu * self.std + self.mean, np.sqrt(var) * self.std


def _norm_cdf(z):
    return 0.5 * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0)))


def _norm_pdf(z):
    return np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


class BayesOptSearch(Searcher):
    """Gaussian-process Bayesian optimisation over float and int domains::

        algo = BayesOptSearch(metric="loss", mode="min", random_search_steps=4)
        tune.Tuner(train, param_space={"x": tune.uniform(-5, 5)},
                   tune_config=tune.TuneConfig(search_alg=algo, num_samples=20))

    ``utility_kwargs``: {"kind": "ucb" | "ei" | "poi", "kappa": 2.576, "xi": 0.0}.
    """

    def __init__(self, space=None, metric=None, mode=None, points_to_evaluate=None,
                 utility_kwargs=None, random_state=42, random_search_steps=10, verbose=0,
                 patience=5, skip_duplicate=True):
        super().__init__(metric=metric, mode=mode)
        self._utility = {"kind": "ucb", "kappa": 2.576, "xi": 0.0}
        self._utility.update(utility_kwargs or {})
        if self._utility["kind"] not in ("ucb", "ei", "poi"):
            raise ValueError(f"utility kind must be 'ucb', 'ei' or 'poi', got "
                             f"{self._utility['kind']!r}.")
        self._rng = np.random.RandomState(random_state)
        self._random_steps = random_search_steps
        self._points = [dict(p) for p in (points_to_evaluate or [])]
        self._dims = None
        self._live = {}  # trial_id -> unit vector
        self._x, self._y = [], []
        if space:
            self._set_space(space)

    def _set_space(self, space):
        dims = []
        for path, leaf in sample.domain_leaves(space):
            if isinstance(leaf, sample.Categorical):
                raise ValueError(f"BayesOptSearch handles float and int domains only; "
                                 f"{'.'.join(map(str, path))} is a tune.choice. Use "
                                 "OptunaSearch or BasicVariantGenerator for categories.")
            if leaf.lower is None:
                raise ValueError(f"BayesOptSearch needs bounded domains; "
                                 f"{'.'.join(map(str, path))} is {leaf!r}.")
            dims.append((path, leaf))
        if not dims:
            raise ValueError("BayesOptSearch found no tune.uniform/loguniform/randint domain "
                             "in the search space.")
        self._dims = dims

    def set_search_properties(self, metric, mode, config, **spec):
        if self._dims is not None and config and sample.domain_leaves(config):
            return False
        super().set_search_properties(metric, mode, config)
        if self._dims is None:
            self._set_space(config)
        return True

    # unit cube <-> values
    def _to_value(self, leaf, u):
        lo, hi = leaf.lower, leaf.upper
        if leaf.sampler == "loguniform":
            value = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
        else:
            value = lo + u * (hi - lo)
        if isinstance(leaf, sample.Integer):
            top = hi if leaf.inclusive else hi - 1
            return int(min(max(round(value), lo), top))
        if leaf.q is not None:
            value = round(value / leaf.q) * leaf.q
        return float(min(max(value, lo), hi))

    def _to_unit(self, leaf, value):
        lo, hi = leaf.lower, leaf.upper
        if leaf.sampler == "loguniform":
            return (math.log(value) - math.log(lo)) / (math.log(hi) - math.log(lo))
        return (value - lo) / (hi - lo)

    def _config(self, u):
        config = {}
        for (path, leaf), ui in zip(self._dims, u):
            sample.set_path(config, path, self._to_value(leaf, float(ui)))
        return config

    def suggest(self, trial_id):
        if self._dims is None:
            raise ValueError("BayesOptSearch has no search space: pass space=... or a "
                             "Tuner param_space.")
        if not self._metric or self._mode not in ("min", "max"):
            raise ValueError("BayesOptSearch needs metric and mode (here or in TuneConfig).")
        if self._points:
            point = self._points.pop(0)
            u = np.array([self._to_unit(leaf, sample.get_path(point, path))
                          for path, leaf in self._dims])
            self._live[trial_id] = u
            return point
        d = len(self._dims)
        if len(self._y) < max(self._random_steps, 2):
            u = self._rng.uniform(size=d)
        else:
            u = self._maximize_acquisition(d)
        self._live[trial_id] = u
        return self._config(u)

    def _maximize_acquisition(self, d):
        x, y = np.array(self._x), np.array(self._y)
        try:
            gp = _GP(x, y)
        except np.linalg.LinAlgError:
            return self._rng.uniform(size=d)
        candidates = [self._rng.uniform(size=(2000, d))]
        for best in x[np.argsort(y)[-3:]]:
            candidates.append(np.clip(best + self._rng.normal(scale=0.05, size=(200, d)), 0, 1))
        cand = np.vstack(candidates)
        mu, sd = gp.predict(cand)
        kind = self._utility["kind"]
        if kind == "ucb":
            score = mu + self._utility["kappa"] * sd
        else:
            z = (mu - y.max() - self._utility["xi"]) / sd
            score = (mu - y.max() - self._utility["xi"]) * _norm_cdf(z) + sd * _norm_pdf(z) \
                if kind == "ei" else _norm_cdf(z)
        return cand[int(np.argmax(score))]

    def on_trial_complete(self, trial_id, result=None, error=False):
        u = self._live.pop(trial_id, None)
        if u is None or error or not result or self._metric not in result:
            return
        value = result[self._metric]
        if value is None or not math.isfinite(value):
            return
        self._x.append(u)
        self._y.append(self._sign() * value)

    def add_evaluated_point(self, parameters, value, error=False, pruned=False,
                            intermediate_values=None):
        if error or pruned:
            return
        u = np.array([self._to_unit(leaf, sample.get_path(parameters, path))
                      for path, leaf in self._dims])
        self._x.append(u)
        self._y.append(self._sign() * value)
