"""``TuneReportCallback``: run a trainer inside a Tune trial and pass its reports on
to Tune (Ray 2.60's way to tune a Train run)::

    def trial(config):
        trainer = TorchTrainer(loop, train_loop_config=config["train_loop_config"],
                               run_config=RunConfig(callbacks=[TuneReportCallback()]))
        trainer.fit()

    tune.Tuner(trial, param_space={"train_loop_config": {"lr": tune.grid_search([0.1, 0.01])}})

The trainer's fit() drives the training from the trial's process, so each
training report becomes one ``tune.report`` of the trial: rank 0's metrics,
plus the path of the report's checkpoint (already stored by the trainer, so
not copied again) as the metric ``checkpoint_path``.
"""

from .. import session


class TuneReportCallback:
    """A minray.train ``UserCallback`` forwarding each report to the enclosing trial."""

    def __init__(self):
        if session._session is None:
            raise RuntimeError("TuneReportCallback must be used in a Tune session: create it "
                               "inside the function that tune.Tuner runs as its trainable.")

    def after_report(self, run_context, metrics, checkpoint):
        metrics = dict(metrics[0])
        if checkpoint is not None:
            metrics["checkpoint_path"] = checkpoint.path
        session.report(metrics)

    def after_exception(self, run_context, worker_exceptions):
        pass
