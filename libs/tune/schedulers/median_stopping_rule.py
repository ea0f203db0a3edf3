"""``MedianStoppingRule``: stop a trial whose best result so far is worse than
the median of the other trials' running averages at the same point in time."""

import collections

import numpy as np

from .trial_scheduler import TrialScheduler, sign


class MedianStoppingRule(TrialScheduler):
    """Median stopping (Golovin et al., Vizier)::

        scheduler = MedianStoppingRule(metric="loss", mode="min", grace_period=5,
                                       time_attr="training_iteration")
    """

    def __init__(self, time_attr="time_total_s", metric=None, mode=None, grace_period=60.0,
                 min_samples_required=3, min_time_slice=0, hard_stop=True):
        if mode is not None and mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}.")
        self._time_attr, self._metric, self._mode = time_attr, metric, mode
        self._grace = grace_period
        self._min_samples = min_samples_required
        self._min_time_slice = min_time_slice
        self._hard_stop = hard_stop
        self._results = collections.defaultdict(list)  # trial_id -> [(t, signed value)]
        self._completed = set()
        self._last_pause = {}
        self._num_stopped = 0

    def on_trial_result(self, runner, trial, result):
        self._need_metric()
        if self._time_attr not in result or self._metric not in result:
            return TrialScheduler.CONTINUE
        now = result[self._time_attr]
        self._results[trial.trial_id].append((now, sign(self._mode) * result[self._metric]))
        if now < self._grace:
            return TrialScheduler.CONTINUE
        others = [tid for tid in self._results if tid != trial.trial_id]
        means = []
        for tid in others:
            values = [v for t, v in self._results[tid] if t <= now]
            if values:
                means.append(float(np.mean(values)))
        if len(means) < self._min_samples:
            return TrialScheduler.CONTINUE
        median = float(np.median(means))
        best = max(v for _, v in self._results[trial.trial_id])
        if best < median:
            self._num_stopped += 1
            return TrialScheduler.STOP if self._hard_stop else TrialScheduler.PAUSE
        return TrialScheduler.CONTINUE

    def on_trial_complete(self, runner, trial, result):
        self._completed.add(trial.trial_id)

    def debug_string(self):
        return f"MedianStoppingRule: {self._num_stopped} trials stopped early"
