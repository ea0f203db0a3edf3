"""``BasicVariantGenerator``: grid search times random sampling (Tune's default).

Configs are made lazily, in Ray's order: for each of ``num_samples`` repeats,
every grid combination (the first grid axis varying fastest), with the random
domains drawn afresh for each trial.  ``points_to_evaluate`` come first.
"""

from . import sample
from .searcher import FINISHED, SearchAlgorithm


class BasicVariantGenerator(SearchAlgorithm):
    """Random and grid search over the param_space (the default search_alg)::

        algo = BasicVariantGenerator(points_to_evaluate=[{"lr": 0.01}])
        tune.Tuner(train, param_space={"lr": tune.loguniform(1e-4, 1)},
                   tune_config=tune.TuneConfig(search_alg=algo, num_samples=4))

    Each point in ``points_to_evaluate`` is a (partial) config; values it lacks
    are sampled.  With ``constant_grid_search=True`` the random values are
    drawn once per sample and shared by that sample's grid points.
    """

    restores_by_count = True  # its state is the number of configs made so far

    def __init__(self, points_to_evaluate=None, max_concurrent=0, constant_grid_search=False,
                 random_state=None):
        self._points = [dict(p) for p in (points_to_evaluate or [])]
        self.max_concurrent = max_concurrent
        self._constant_grid = constant_grid_search
        if random_state is not None:
            import numpy as np
            np.random.seed(random_state)
        self._space = {}
        self._num_samples = 1
        self._grid = [{}]
        self._made = 0
        self._total = 0
        self._live = set()
        self._shared = None

    def setup(self, param_space, num_samples):
        self._space = param_space
        self._grid = sample.grid_points(param_space)
        self._num_samples = num_samples
        self._total = max(num_samples * len(self._grid), len(self._points))
        if num_samples < 0:  # unlimited: until a stopper or time_budget_s ends the run
            self._total = float("inf")

    def next_config(self, trial_id):
        if self._made >= self._total:
            return FINISHED
        if self.max_concurrent and len(self._live) >= self.max_concurrent:
            return None
        index = self._made
        self._made += 1
        self._live.add(trial_id)
        if index < len(self._points):
            overrides = dict(sample.walk(self._points[index]))
            grid_point = self._grid[index % len(self._grid)]
            config = sample.resolve(self._space, grid_point, overrides)
            for path, value in overrides.items():
                sample.set_path(config, path, value)
            return config
        grid_point = self._grid[index % len(self._grid)]
        if self._constant_grid:
            if index % len(self._grid) == 0 or self._shared is None:
                self._shared = {p: leaf.sample() for p, leaf in sample.domain_leaves(self._space)}
            return sample.resolve(self._space, grid_point, self._shared)
        return sample.resolve(self._space, grid_point)

    def on_trial_complete(self, trial_id, result=None, error=False):
        self._live.discard(trial_id)

    def skip_to(self, made):
        """After a restore: the journal holds ``made`` trials already."""
        self._made = max(self._made, made)

    def is_finished(self):
        return self._made >= self._total

    def total_samples(self):
        return None if self._total == float("inf") else self._total
