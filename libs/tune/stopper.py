"""Stoppers: when a trial (or the whole experiment) should stop.

``RunConfig(stop=...)`` takes a dict (``{"training_iteration": 10}``: stop once
a result reaches any of the values), a function ``(trial_id, result) -> bool``,
or a ``Stopper``.  ``make_stopper`` turns each into a Stopper.
"""

import time
from collections import defaultdict, deque

import numpy as np


class Stopper:
    """Base class: ``__call__(trial_id, result)`` stops one trial, ``stop_all()``
    the experiment::

        class ScoreReached(tune.Stopper):
            def __call__(self, trial_id, result):
                return result["score"] > 0.99
            def stop_all(self):
                return False
    """

    def __call__(self, trial_id, result):
        raise NotImplementedError

    def stop_all(self):
        return False


class NoopStopper(Stopper):
    def __call__(self, trial_id, result):
        return False


class FunctionStopper(Stopper):
    """Wraps ``fn(trial_id, result) -> bool``."""

    def __init__(self, function):
        self._fn = function

    def __call__(self, trial_id, result):
        return bool(self._fn(trial_id, result))


class DictStopper(Stopper):
    """Stop a trial once ``result[key] >= value`` for any ``key: value``; a key
    ``"a/b/c"`` reaches into nested results (``result["a"]["b"]["c"]``), as in Ray::

        RunConfig(stop={"training_iteration": 10, "eval/accuracy": 0.95})
    """

    _MISSING = object()

    def __init__(self, criteria):
        self.criteria = dict(criteria)

    def __call__(self, trial_id, result):
        for key, value in self.criteria.items():
            found = _nested(result, key, self._MISSING)
            if found is self._MISSING:
                raise ValueError(f"stop criterion {key!r} is not in the trial's results; the "
                                 f"results have: {sorted(result)}. Fix the key in "
                                 "RunConfig(stop=...) or report it from the trainable.")
            if found >= value:
                return True
        return False


def _nested(result, key, default):
    if key in result:
        return result[key]
    value = result
    for part in key.split("/"):
        if not isinstance(value, dict) or part not in value:
            return default
        value = value[part]
    return value


class MaximumIterationStopper(Stopper):
    """Stop each trial after ``max_iter`` results."""

    def __init__(self, max_iter):
        self._max_iter = max_iter
        self._iters = defaultdict(int)

    def __call__(self, trial_id, result):
        self._iters[trial_id] += 1
        return self._iters[trial_id] >= self._max_iter


class TimeoutStopper(Stopper):
    """Stop the whole experiment after ``timeout`` seconds (or a timedelta)."""

    def __init__(self, timeout):
        self._budget = timeout.total_seconds() if hasattr(timeout, "total_seconds") else timeout
        if self._budget <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}.")
        self._start = None

    def __call__(self, trial_id, result):
        return False

    def stop_all(self):
        if self._start is None:
            self._start = time.monotonic()
        return time.monotonic() - self._start >= self._budget


class TrialPlateauStopper(Stopper):
    """Stop a trial once ``metric``'s std over its last ``num_results`` is < ``std``."""

    def __init__(self, metric, std=0.01, num_results=4, grace_period=4, metric_threshold=None,
                 mode=None):
        if metric_threshold is not None and mode not in ("min", "max"):
            raise ValueError("TrialPlateauStopper with metric_threshold needs mode='min' or "
                             "'max'.")
        self._metric, self._std, self._n = metric, std, num_results
        self._grace, self._threshold, self._mode = grace_period, metric_threshold, mode
        self._window = defaultdict(lambda: deque(maxlen=num_results))
        self._count = defaultdict(int)

    def __call__(self, trial_id, result):
        value = result.get(self._metric)
        self._count[trial_id] += 1
        self._window[trial_id].append(value)
        if self._count[trial_id] < self._grace or len(self._window[trial_id]) < self._n:
            return False
        if self._threshold is not None:
            if self._mode == "min" and value > self._threshold:
                return False
            if self._mode == "max" and value < self._threshold:
                return False
        return float(np.std(self._window[trial_id])) < self._std


class ExperimentPlateauStopper(Stopper):
    """Stop everything once the ``top`` best values' std stays < ``std`` for
    ``patience`` results."""

    def __init__(self, metric, std=0.001, top=10, mode="min", patience=0):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}.")
        self._metric, self._std, self._top, self._mode = metric, std, top, mode
        self._patience, self._iterations = patience, 0
        self._values = []
        self._stop = False

    def __call__(self, trial_id, result):
        self._values.append(result[self._metric])
        best = sorted(self._values, reverse=self._mode == "max")[:self._top]
        if len(best) >= self._top and float(np.std(best)) <= self._std:
            self._iterations += 1
        else:
            self._iterations = 0
        self._stop = self._iterations > self._patience
        return self._stop

    def stop_all(self):
        return self._stop


class CombinedStopper(Stopper):
    """Stop when any of the given stoppers says so."""

    def __init__(self, *stoppers):
        self._stoppers = stoppers

    def __call__(self, trial_id, result):
        return any([s(trial_id, result) for s in self._stoppers])

    def stop_all(self):
        return any([s.stop_all() for s in self._stoppers])


def make_stopper(stop):
    """A Stopper from RunConfig(stop=...): None, dict, function or Stopper."""
    if stop is None:
        return None
    if isinstance(stop, Stopper):
        return stop
    if isinstance(stop, dict):
        return DictStopper(stop) if stop else None
    if callable(stop):
        return FunctionStopper(stop)
    raise TypeError(f"stop must be a dict, a function (trial_id, result) -> bool or a "
                    f"tune.Stopper, got {type(stop).__name__}.")
