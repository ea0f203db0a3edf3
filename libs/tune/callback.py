"""``Callback``: hooks the runner calls on experiment events (all optional).

    class Printer(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            print(trial.trial_id, result["loss"])

``iteration`` counts runner steps, and every result is a step of its own (so it grows
with each ``on_trial_result``, as in Ray); ``trials`` is the list of every trial.
"""


class Callback:
    """Base class; override the hooks you need (each gets ``**info``)."""

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info):
        pass

    def on_step_begin(self, iteration, trials, **info):
        pass

    def on_step_end(self, iteration, trials, **info):
        pass

    def on_trial_start(self, iteration, trials, trial, **info):
        pass

    def on_trial_restore(self, iteration, trials, trial, **info):
        pass

    def on_trial_save(self, iteration, trials, trial, **info):
        pass

    def on_trial_result(self, iteration, trials, trial, result, **info):
        pass

    def on_trial_complete(self, iteration, trials, trial, **info):
        pass

    def on_trial_error(self, iteration, trials, trial, **info):
        pass

    def on_trial_recover(self, iteration, trials, trial, **info):
        pass

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        pass

    def on_experiment_end(self, trials, **info):
        pass
