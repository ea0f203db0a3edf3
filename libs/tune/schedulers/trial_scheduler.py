"""``TrialScheduler``: decides, per result, whether a trial goes on.

The runner calls ``on_trial_result(runner, trial, result)`` and acts on the
returned decision (CONTINUE, PAUSE or STOP); ``choose_trial_to_run`` picks the
next trial to (re)start among PENDING and PAUSED ones.  Schedulers that act on
other trials use the runner's ``stop_trial``/``pause_trial``/``resume_trial``.
"""


class TrialScheduler:
    """Base class of trial schedulers."""

    CONTINUE = "CONTINUE"
    PAUSE = "PAUSE"
    STOP = "STOP"
    NOOP = "NOOP"

    _metric = None
    _mode = None
    supports_buffered_results = True

    @property
    def metric(self):
        return self._metric

    def set_search_properties(self, metric, mode, **spec):
        """Take TuneConfig's metric/mode unless given to the scheduler itself."""
        if self._metric is None and metric:
            self._metric = metric
        if self._mode is None and mode:
            self._mode = mode
        return True

    def _need_metric(self):
        if not self._metric or self._mode not in ("min", "max"):
            raise ValueError(f"{type(self).__name__} needs a metric and a mode ('min' or "
                             "'max'): pass them to the scheduler or to "
                             "tune.TuneConfig(metric=..., mode=...).")

    def on_trial_add(self, runner, trial):
        pass

    def on_trial_error(self, runner, trial):
        pass

    def on_trial_result(self, runner, trial, result):
        return TrialScheduler.CONTINUE

    def on_trial_complete(self, runner, trial, result):
        pass

    def on_trial_remove(self, runner, trial):
        pass

    def choose_trial_to_run(self, runner):
        for status in ("PENDING", "PAUSED"):
            for trial in runner.get_trials():
                if trial.status == status:
                    return trial
        return None

    def debug_string(self):
        return type(self).__name__


class FIFOScheduler(TrialScheduler):
    """Runs trials in order and never stops them early (the default)."""

    def __init__(self):
        pass


def sign(mode):
    """+1 for max, -1 for min: compare ``sign * value`` as 'bigger is better'."""
    return 1.0 if mode == "max" else -1.0
