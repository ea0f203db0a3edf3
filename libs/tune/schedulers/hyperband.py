"""``HyperBandScheduler``: synchronous HyperBand (Li et al. 2017).

Trials are grouped into brackets.  A bracket runs each of its trials for ``r``
units of ``time_attr`` (trials that get there first are PAUSED to free their
resources), then keeps the best ``1/reduction_factor`` of them and multiplies
``r`` by ``reduction_factor``, until ``max_t``.  Brackets of one band start at
different ``r`` (more trials with small budgets, or fewer with large ones).
"""

import math

import numpy as np

from .trial_scheduler import TrialScheduler


class _Bracket:
    def __init__(self, time_attr, max_trials, r0, max_t, eta, s, stop_last_trials):
        self.time_attr = time_attr
        self.n = max_trials
        self.r = self.cumul_r = r0
        self.max_t = max_t
        self.eta = eta
        self.halves = s
        self.stop_last_trials = stop_last_trials
        self.live = {}  # trial -> its latest result (None before the first)
        self.to_unpause = set()
        self.being_processed = False
        self.progress = 0
        self.total_work = self._total_work(max_trials, r0, s)

    def _time(self, result):
        return 0 if result is None else result[self.time_attr]

    def _total_work(self, n, r, s):
        work, cumul = 0, r
        for _ in range(s + 1):
            work += int(n) * int(r)
            n = int(math.ceil(n / self.eta))
            r = int(min(r * self.eta, self.max_t - cumul))
        return max(work, 1)

    def filled(self):
        return len(self.live) == self.n

    def cur_iter_done(self):
        return all(self._time(r) >= self.cumul_r for r in self.live.values())

    def finished(self):
        return self.stop_last_trials and self.halves == 0 and self.cur_iter_done()

    def continue_trial(self, trial):
        if not self.stop_last_trials and self.halves == 0:
            return True
        return self._time(self.live[trial]) < self.cumul_r

    def update(self, trial, result):
        delta = self._time(result) - self._time(self.live[trial])
        self.progress += max(delta, 0)
        self.live[trial] = result
        self.to_unpause.discard(trial)

    def halve(self, metric, op):
        """Keep the best ``n / eta`` trials: returns (good, bad)."""
        if self.halves == 0 and not self.stop_last_trials:
            return list(self.live), []
        self.halves -= 1
        self.n = int(math.ceil(self.n / self.eta))
        self.r = int(min(self.r * self.eta, self.max_t))
        self.cumul_r = self.r
        ranked = sorted(self.live, key=lambda t: op * self.live[t][metric])
        return ranked[-self.n:], ranked[:-self.n]

    def completion(self):
        return 1.0 if self.finished() else min(self.progress / self.total_work, 1.0)


class HyperBandScheduler(TrialScheduler):
    """Synchronous HyperBand::

        scheduler = HyperBandScheduler(metric="score", mode="min", max_t=9)
        tune.run(train, config=space, scheduler=scheduler, num_samples=10)
    """

    supports_buffered_results = False

    def __init__(self, time_attr="training_iteration", metric=None, mode=None, max_t=81,
                 reduction_factor=3, stop_last_trials=True):
        if max_t <= 0:
            raise ValueError(f"max_t must be positive, got {max_t}.")
        if mode is not None and mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}.")
        self._eta = reduction_factor
        self._s_max_1 = int(np.round(np.log(max_t) / np.log(reduction_factor))) + 1
        self._max_t = max_t
        self._time_attr = time_attr
        self._metric, self._mode = metric, mode
        self._stop_last = stop_last_trials
        self._bands = [[]]
        self._bracket = None
        self._info = {}  # trial -> bracket
        self._num_stopped = 0

    def _n0(self, s):
        return int(math.ceil(self._s_max_1 / (s + 1) * self._eta ** s))

    def _r0(self, s):
        return int(self._max_t * self._eta ** (-s))

    def on_trial_add(self, runner, trial):
        self._need_metric()
        if self._bracket is None or self._bracket.filled():
            while True:
                if len(self._bands[-1]) == self._s_max_1:
                    self._bands.append([])
                band = self._bands[-1]
                s = len(band)
                if self._r0(s) == 0:  # too small a budget: try the next bracket size
                    band.append(None)
                    continue
                self._bracket = _Bracket(self._time_attr, self._n0(s), self._r0(s),
                                         self._max_t, self._eta, s, self._stop_last)
                band.append(self._bracket)
                break
        self._bracket.live[trial] = None
        self._info[trial] = self._bracket

    def on_trial_result(self, runner, trial, result):
        bracket = self._info[trial]
        bracket.update(trial, result)
        if bracket.continue_trial(trial):
            return TrialScheduler.CONTINUE
        return self._process(runner, bracket)

    def _process(self, runner, bracket):
        action = TrialScheduler.PAUSE
        if not bracket.cur_iter_done():
            return action
        if bracket.finished():
            for t in list(bracket.live):
                if t.status == "PAUSED":
                    runner.stop_trial(t)
            return TrialScheduler.STOP
        bracket.being_processed = True
        op = 1.0 if self._mode == "max" else -1.0
        good, bad = bracket.halve(self._metric, op)
        self._num_stopped += len(bad)
        for t in bad:
            if t.status == "RUNNING":
                bracket.live.pop(t, None)
                action = TrialScheduler.STOP
            else:
                runner.stop_trial(t)
        for t in good:
            if bracket.continue_trial(t):
                if t.status == "PAUSED":
                    bracket.to_unpause.add(t)
                elif t.status == "RUNNING":
                    action = TrialScheduler.CONTINUE
            elif bracket.finished() and bracket.stop_last_trials:
                if t.status == "PAUSED":
                    runner.stop_trial(t)
                elif t.status == "RUNNING":
                    bracket.live.pop(t, None)
                    action = TrialScheduler.STOP
        bracket.being_processed = False
        return action

    def on_trial_remove(self, runner, trial):
        bracket = self._info.get(trial)
        if bracket is None:
            return
        bracket.live.pop(trial, None)
        if not bracket.finished() and not bracket.being_processed:
            self._process(runner, bracket)

    def on_trial_complete(self, runner, trial, result):
        self.on_trial_remove(runner, trial)

    def on_trial_error(self, runner, trial):
        self.on_trial_remove(runner, trial)

    def choose_trial_to_run(self, runner):
        for band in self._bands:
            brackets = [b for b in band if b is not None]
            for bracket in sorted(brackets, key=lambda b: b.completion()):
                for trial in bracket.live:
                    if trial.status == "PENDING" or (trial.status == "PAUSED" and
                                                     trial in bracket.to_unpause):
                        return trial
        return None

    def debug_string(self):
        return f"HyperBand: {self._num_stopped} trials stopped"
