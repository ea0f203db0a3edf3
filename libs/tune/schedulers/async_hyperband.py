"""``AsyncHyperBandScheduler`` / ``ASHAScheduler``: asynchronous successive halving.

Each trial passes rungs at ``grace_period * reduction_factor**k`` (in
``time_attr`` units, below ``max_t``).  When it reaches a rung it is stopped if
its metric is below the rung's ``1 - 1/reduction_factor`` quantile of the trials
recorded there before it; no trial waits for another (the first to reach a
rung always goes on).  With ``brackets > 1`` trials are spread over brackets
that start at later rungs.
"""

import math

import numpy as np

from .trial_scheduler import TrialScheduler, sign


class _Bracket:
    def __init__(self, min_t, max_t, reduction_factor, s, stop_last_trials):
        self.max_t = max_t
        self.rf = reduction_factor
        self.stop_last_trials = stop_last_trials
        max_rungs = int(math.log(max_t / min_t) / math.log(reduction_factor) + 1)
        self.rungs = [(min_t * reduction_factor ** (k + s), {})
                      for k in reversed(range(max_rungs - s))]

    def cutoff(self, recorded):
        if not recorded:
            return None
        return np.nanpercentile(list(recorded.values()), (1 - 1 / self.rf) * 100)

    def on_result(self, trial_id, cur_iter, cur_rew):
        """True: continue, False: stop."""
        action = True
        for milestone, recorded in self.rungs:
            if cur_iter >= self.max_t and self.stop_last_trials:
                return False
            if cur_iter < milestone or trial_id in recorded:
                continue
            cutoff = self.cutoff(recorded)
            if cutoff is not None and cur_rew is not None and cur_rew < cutoff:
                action = False
            if cur_rew is not None:
                recorded[trial_id] = cur_rew
            break
        return action


class AsyncHyperBandScheduler(TrialScheduler):
    """Asynchronous HyperBand (ASHA)::

        scheduler = ASHAScheduler(metric="loss", mode="min", max_t=100, grace_period=1,
                                  reduction_factor=4)
        tune.Tuner(train, tune_config=tune.TuneConfig(scheduler=scheduler, num_samples=50))
    """

    def __init__(self, time_attr="training_iteration", metric=None, mode=None, max_t=100,
                 grace_period=1, reduction_factor=4, brackets=1, stop_last_trials=True):
        if grace_period <= 0:
            raise ValueError(f"grace_period must be positive, got {grace_period}.")
        if reduction_factor <= 1:
            raise ValueError(f"reduction_factor must be > 1, got {reduction_factor}.")
        if max_t <= 0 or max_t < grace_period:
            raise ValueError(f"max_t must be positive and >= grace_period, got max_t={max_t}, "
                             f"grace_period={grace_period}.")
        if mode is not None and mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}.")
        self._time_attr = time_attr
        self._metric, self._mode = metric, mode
        self._max_t = max_t
        self._brackets = [_Bracket(grace_period, max_t, reduction_factor, s, stop_last_trials)
                          for s in range(brackets)]
        self._trial_bracket = {}
        self._num_stopped = 0

    def on_trial_add(self, runner, trial):
        sizes = np.array([len(b.rungs) for b in self._brackets])
        probs = np.e ** (sizes - sizes.max())
        index = int(np.random.choice(len(self._brackets), p=probs / probs.sum()))
        self._trial_bracket[trial.trial_id] = self._brackets[index]

    def on_trial_result(self, runner, trial, result):
        self._need_metric()
        if self._time_attr not in result:
            return TrialScheduler.CONTINUE
        bracket = self._trial_bracket.get(trial.trial_id)
        if bracket is None:
            self.on_trial_add(runner, trial)
            bracket = self._trial_bracket[trial.trial_id]
        value = result.get(self._metric)
        reward = None if value is None else sign(self._mode) * value
        if bracket.on_result(trial.trial_id, result[self._time_attr], reward):
            return TrialScheduler.CONTINUE
        self._num_stopped += 1
        return TrialScheduler.STOP

    def on_trial_complete(self, runner, trial, result):
        bracket = self._trial_bracket.pop(trial.trial_id, None)
        if bracket is not None and result and self._metric in result and \
                self._time_attr in result:
            bracket.on_result(trial.trial_id, result[self._time_attr],
                              sign(self._mode) * result[self._metric])

    def on_trial_remove(self, runner, trial):
        self._trial_bracket.pop(trial.trial_id, None)

    def debug_string(self):
        return f"AsyncHyperBand: {self._num_stopped} trials stopped early"


ASHAScheduler = AsyncHyperBandScheduler
