"""How trial configs are chosen.

The runner asks its search algorithm ``next_config(trial_id)`` whenever it can
start a trial, and feeds back ``on_trial_result`` / ``on_trial_complete``:

    runner --next_config--> SearchAlgorithm --(wraps)--> Searcher.suggest
           <--config | None (not now) | FINISHED--
           --on_trial_result / on_trial_complete-->

``Searcher`` is the class users subclass (Ray's interface: ``suggest``,
``on_trial_complete``...); ``SearchGenerator`` adapts one to the runner,
counting samples and filling the constants and ``sample_from`` values of the
param_space around what the searcher suggests.  ``ConcurrencyLimiter`` and
``Repeater`` wrap a Searcher.
"""

import pickle

import numpy as np

from . import sample


FINISHED = "FINISHED"


class SearchAlgorithm:
    """What the runner drives (``BasicVariantGenerator``, ``SearchGenerator``)."""

    metric = None
    mode = None

    def set_search_properties(self, metric, mode, config, **spec):
        return True

    def setup(self, param_space, num_samples):
        raise NotImplementedError

    def next_config(self, trial_id):
        raise NotImplementedError

    def on_trial_result(self, trial_id, result):
        pass

    def on_trial_complete(self, trial_id, result=None, error=False):
        pass

    def is_finished(self):
        return False

    def total_samples(self):
        """How many trials this algorithm will make (None: unknown / unlimited)."""
        return None


class Searcher:
    """Base class of model-based search algorithms.

    Subclass and implement ``suggest(trial_id) -> dict | None`` (None: no
    suggestion right now; ``Searcher.FINISHED``: done) and
    ``on_trial_complete(trial_id, result, error)``::

        class Halving(Searcher):
            def __init__(self):
                super().__init__(metric="loss", mode="min")
                self.x = 1.0
            def suggest(self, trial_id):
                self.x /= 2
                return {"x": self.x}
    """

    FINISHED = FINISHED

    def __init__(self, metric=None, mode=None):
        if mode is not None and mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}.")
        self._metric = metric
        self._mode = mode

    @property
    def metric(self):
        return self._metric

    @property
    def mode(self):
        return self._mode

    def set_search_properties(self, metric, mode, config, **spec):
        """Called by the Tuner with its metric/mode/param_space; False if unsupported."""
        if self._metric is None and metric:
            self._metric = metric
        if self._mode is None and mode:
            self._mode = mode
        return True

    def suggest(self, trial_id):
        raise NotImplementedError

    def on_trial_result(self, trial_id, result):
        pass

    def on_trial_complete(self, trial_id, result=None, error=False):
        pass

    def add_evaluated_point(self, parameters, value, error=False, pruned=False,
                            intermediate_values=None):
        raise NotImplementedError(f"{type(self).__name__} cannot take evaluated points.")

    def save(self, checkpoint_path):
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path):
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))

    def set_max_concurrency(self, max_concurrent):
        return False

    # helpers for subclasses
    def _sign(self):
        return 1.0 if self._mode == "max" else -1.0


class ConcurrencyLimiter(Searcher):
    """At most ``max_concurrent`` trials of ``searcher`` in flight at once::

        algo = ConcurrencyLimiter(BayesOptSearch(), max_concurrent=2)
    """

    def __init__(self, searcher, max_concurrent, batch=False):
        if int(max_concurrent) < 1:
            raise ValueError(f"max_concurrent must be at least 1, got {max_concurrent}.")
        self.searcher = searcher
        self.max_concurrent = int(max_concurrent)
        self.batch = batch
        self.live_trials = set()
        self.cached_results = {}
        super().__init__(metric=searcher.metric, mode=searcher.mode)

    def set_search_properties(self, metric, mode, config, **spec):
        ok = self.searcher.set_search_properties(metric, mode, config, **spec)
        self._metric, self._mode = self.searcher.metric, self.searcher.mode
        return ok

    def suggest(self, trial_id):
        if len(self.live_trials) >= self.max_concurrent:
            return None
        if self.batch and self.cached_results:
            return None  # a batch waits until every trial of the previous one ends
        config = self.searcher.suggest(trial_id)
        if config is not None and config != FINISHED:
            self.live_trials.add(trial_id)
        return config

    def on_trial_result(self, trial_id, result):
        if trial_id in self.live_trials:
            self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id, result=None, error=False):
        if trial_id not in self.live_trials:
            return
        self.live_trials.discard(trial_id)
        if self.batch:
            self.cached_results[trial_id] = (result, error)
            if not self.live_trials:
                for tid, (res, err) in self.cached_results.items():
                    self.searcher.on_trial_complete(tid, result=res, error=err)
                self.cached_results = {}
        else:
            self.searcher.on_trial_complete(trial_id, result=result, error=error)


class Repeater(Searcher):
    """Evaluate each suggested config ``repeat`` times; the searcher sees the mean::

        algo = Repeater(BayesOptSearch(), repeat=3)
    """

    def __init__(self, searcher, repeat=1, set_index=True):
        self.searcher = searcher
        self.repeat = int(repeat)
        self.set_index = set_index
        self._current = None  # (group_id, config, made)
        self._groups = {}  # group_id -> {"trials": [...], "scores": [...]}
        self._trial_group = {}
        super().__init__(metric=searcher.metric, mode=searcher.mode)

    def set_search_properties(self, metric, mode, config, **spec):
        ok = self.searcher.set_search_properties(metric, mode, config, **spec)
        self._metric, self._mode = self.searcher.metric, self.searcher.mode
        return ok

    def suggest(self, trial_id):
        if self._current is None or self._current[2] >= self.repeat:
            config = self.searcher.suggest(trial_id)
            if config is None or config == FINISHED:
                return config
            self._current = [trial_id, config, 0]
            self._groups[trial_id] = {"left": self.repeat, "scores": []}
        group_id, config, made = self._current
        self._current[2] += 1
        self._trial_group[trial_id] = group_id
        config = dict(config)
        if self.set_index:
            config["__trial_index__"] = made
        return config

    def on_trial_complete(self, trial_id, result=None, error=False):
        group_id = self._trial_group.pop(trial_id, None)
        if group_id is None:
            return
        group = self._groups[group_id]
        group["left"] -= 1
        if result and self._metric in result and not error:
            group["scores"].append(result[self._metric])
        if group["left"] == 0:
            del self._groups[group_id]
            if group["scores"]:
                merged = dict(result or {})
                merged[self._metric] = float(np.nanmean(group["scores"]))
                self.searcher.on_trial_complete(group_id, result=merged)
            else:
                self.searcher.on_trial_complete(group_id, result=None, error=True)


class SearchGenerator(SearchAlgorithm):
    """Drives a ``Searcher`` for the runner: ``num_samples`` suggestions (-1: no
    limit), each completed with the param_space's constants and sample_from."""

    def __init__(self, searcher):
        self.searcher = searcher
        self._space = {}
        self._num_samples = 1
        self._made = 0
        self._finished = False

    @property
    def metric(self):
        return self.searcher.metric

    @property
    def mode(self):
        return self.searcher.mode

    def set_search_properties(self, metric, mode, config, **spec):
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def setup(self, param_space, num_samples):
        if any(sample._is_grid_marker(leaf) for _, leaf in sample.walk(param_space)):
            raise ValueError(f"grid_search cannot be used with {type(self.searcher).__name__}; "
                             "use tune.choice, or the default BasicVariantGenerator.")
        self._space = param_space
        self._num_samples = num_samples

    def next_config(self, trial_id):
        if self._finished:
            return FINISHED
        if 0 <= self._num_samples <= self._made:
            self._finished = True
            return FINISHED
        suggested = self.searcher.suggest(trial_id)
        if suggested == FINISHED:
            self._finished = True
            return FINISHED
        if suggested is None:
            return None
        self._made += 1
        overrides = dict(sample.walk(suggested))
        config = sample.resolve(self._space, overrides=overrides)
        for path, value in overrides.items():  # keys outside the space (__trial_index__)
            sample.set_path(config, path, value)
        return config

    def on_trial_result(self, trial_id, result):
        self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id, result=None, error=False):
        self.searcher.on_trial_complete(trial_id, result=result, error=error)

    def is_finished(self):
        return self._finished

    def total_samples(self):
        return None if self._num_samples < 0 else self._num_samples
