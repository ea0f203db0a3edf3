"""``DataParallelTrainer`` and ``Result``: ``fit()`` runs the training as a
one-trial Tune experiment whose trial is the controller (controller.py).

Tune provides the rest: the experiment folder ``storage_path/name``, checkpoint
retention (``CheckpointConfig``), retries from the latest checkpoint
(``FailureConfig``), progress output, and ``Tuner(trainer, ...)``.
"""

import dataclasses
import os
from typing import Any, Dict, List, Optional, Tuple

import minray
from minray.tune.callback import Callback
from minray.tune.checkpoint import Checkpoint
from minray.tune.config import RunConfig, TuneConfig
from minray.tune.trainable import with_resources

from .config import DataConfig, ScalingConfig
from .controller import TrainPayload, _takes_config, run_controller, user_metrics
from .exceptions import ControllerError, TrainingFailedError


class UserCallback:
    """Train's callbacks (``RunConfig(callbacks=[...])``), called on the driver::

        class PrintLoss(train.UserCallback):
            def after_report(self, run_context, metrics, checkpoint):
                print(metrics[0]["loss"])
    """

    def after_report(self, run_context, metrics, checkpoint):
        pass

    def after_exception(self, run_context, worker_exceptions):
        pass


@dataclasses.dataclass
class Result:
    """The outcome of ``fit()``: as in Ray Train 2.60, ``metrics`` are those reported
    with the latest checkpoint, ``metrics_dataframe`` holds those of every kept
    checkpoint, ``path`` is the run's folder ``storage_path/name``::

        result = trainer.fit()
        with result.checkpoint.as_directory() as d:
            model.load_state_dict(torch.load(os.path.join(d, "model.pt")))
    """

    metrics: Optional[Dict[str, Any]]
    checkpoint: Optional[Checkpoint]
    error: Optional[BaseException]
    path: str
    best_checkpoints: List[Tuple[Checkpoint, Dict[str, Any]]]
    metrics_dataframe: Any = None
    filesystem: Any = None

    def __repr__(self):
        return (f"Result(metrics={self.metrics}, checkpoint={self.checkpoint}, "
                f"path={self.path!r}{', error=' + repr(self.error) if self.error else ''})")


class _Recorder(Callback):
    """Keeps every (checkpoint, metrics) pair of the trial, on the driver."""

    def __init__(self):
        self.pending = None
        self.checkpoints = []  # [(path, metrics)]

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        self.pending = checkpoint["path"]

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if self.pending is not None:
            self.checkpoints.append((self.pending, user_metrics(result)))
            self.pending = None


class _UserCallbackAdapter(Callback):
    """Runs a Train ``UserCallback`` from Tune's callback hooks (on the driver)."""

    def __init__(self, callback):
        self.callback = callback
        self.pending = None

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        self.pending = Checkpoint(checkpoint["path"])

    def on_trial_result(self, iteration, trials, trial, result, **info):
        ckpt, self.pending = self.pending, None
        self.callback.after_report(None, [user_metrics(result)], ckpt)

    def on_trial_error(self, iteration, trials, trial, **info):
        err = _unwrap(trial.error)
        self.callback.after_exception(None, getattr(err, "worker_failures", {0: err}))


def _unwrap(err):
    """The TrainingFailedError inside the RayTaskError that a trial error arrives as."""
    cause = getattr(err, "cause", None)
    if isinstance(cause, TrainingFailedError):
        return cause
    if err is None or isinstance(err, TrainingFailedError):
        return err
    return ControllerError(err)


class DataParallelTrainer:
    """Runs ``train_loop_per_worker`` on ``scaling_config.num_workers`` worker
    processes at once (see ``TorchTrainer`` for PyTorch)::

        trainer = DataParallelTrainer(loop, train_loop_config={"lr": 0.1},
                                      scaling_config=ScalingConfig(num_workers=2),
                                      backend_config=TorchConfig())
        result = trainer.fit()
    """

    _default_backend = None

    def __init__(self, train_loop_per_worker, *, train_loop_config=None,
                 backend_config=None, scaling_config=None, run_config=None, datasets=None,
                 dataset_config=None, resume_from_checkpoint=None, metadata=None):
        if not callable(train_loop_per_worker):
            raise TypeError(f"train_loop_per_worker must be a function, got "
                            f"{type(train_loop_per_worker).__name__}.")
        _takes_config(train_loop_per_worker)  # raises on a wrong signature
        if train_loop_config is not None and not isinstance(train_loop_config, dict):
            raise TypeError(f"train_loop_config must be a dict, got "
                            f"{type(train_loop_config).__name__}.")
        scaling_config = scaling_config or ScalingConfig()
        if not isinstance(scaling_config, ScalingConfig):
            raise TypeError(f"scaling_config must be a train.ScalingConfig, got "
                            f"{type(scaling_config).__name__}.")
        run_config = run_config or RunConfig()
        if not isinstance(run_config, RunConfig):
            raise TypeError(f"run_config must be a train.RunConfig, got "
                            f"{type(run_config).__name__}.")
        datasets = dict(datasets or {})
        for name, ds in datasets.items():
            if not hasattr(ds, "streaming_split"):
                raise TypeError(f"datasets[{name!r}] must be a minray.data Dataset, got "
                                f"{type(ds).__name__}.")
        if resume_from_checkpoint is not None and not isinstance(resume_from_checkpoint,
                                                                  Checkpoint):
            raise TypeError("resume_from_checkpoint must be a train.Checkpoint.")
        backend_config = backend_config or (self._default_backend() if self._default_backend
                                            else None)
        if backend_config is None:
            raise ValueError("DataParallelTrainer needs a backend_config such as "
                             "minray.train.torch.TorchConfig(); or use TorchTrainer.")
        self.train_loop_per_worker = train_loop_per_worker
        self.train_loop_config = dict(train_loop_config or {})
        self.scaling_config = scaling_config
        self.run_config = run_config
        self.datasets = datasets
        self.dataset_config = dataset_config or DataConfig()
        self.resume_from_checkpoint = resume_from_checkpoint
        self.metadata = dict(metadata or {})
        self.backend_config = backend_config

    # ---- what Tune runs
    def _payload(self):
        return TrainPayload(self.train_loop_per_worker, self.train_loop_config,
                            self.scaling_config, self.backend_config, self.datasets,
                            self.dataset_config, self.resume_from_checkpoint, self.metadata)

    def _as_tune_trainable(self):
        """The controller as a Tune function trainable (a 0-CPU trial: the workers
        reserve their own resources)."""
        payload = self._payload()

        def controller(config):
            run_controller(payload, config)
        controller.__name__ = controller.__qualname__ = type(self).__name__
        return with_resources(controller, {"cpu": 0})

    def _tune_run_config(self, extra_callbacks=()):
        rc = self.run_config
        callbacks = list(extra_callbacks)
        for cb in rc.callbacks or []:
            callbacks.append(cb if isinstance(cb, Callback) else _UserCallbackAdapter(cb))
        return dataclasses.replace(rc, callbacks=callbacks)

    # ---- the user's entry point
    def fit(self):
        """Run the training; return a ``Result`` or raise ``TrainingFailedError``."""
        from minray.tune.tuner import Tuner
        if not minray.is_initialized():
            minray.init()
        from .worker_group import _check_fits
        _check_fits(self.scaling_config)
        recorder = _Recorder()
        run_config = self._tune_run_config([recorder])
        if run_config.name is None:
            import time
            run_config.name = f"{type(self).__name__}_{time.strftime('%Y-%m-%d_%H-%M-%S')}"
        tuner = Tuner(self._as_tune_trainable(), param_space={},
                      tune_config=TuneConfig(reuse_actors=False), run_config=run_config)
        grid = tuner.fit()
        result = self._result(grid[0], grid.experiment_path, recorder)
        if result.error is not None:
            raise result.error
        return result

    @staticmethod
    def _result(tune_result, experiment_path, recorder):
        kept = [(Checkpoint(p), m) for p, m in recorder.checkpoints if os.path.isdir(p)]
        latest = tune_result.checkpoint
        metrics = None
        if latest is not None:
            metrics = next((m for p, m in reversed(recorder.checkpoints)
                            if p == latest.path), None)
        frame = None
        if kept:
            import pandas as pd
            frame = pd.DataFrame([m for _, m in kept])
        return Result(metrics=metrics, checkpoint=latest, error=_unwrap(tune_result.error),
                      path=experiment_path, best_checkpoints=kept, metrics_dataframe=frame)

    def __repr__(self):
        return (f"{type(self).__name__}(num_workers={self.scaling_config.num_workers}, "
                f"datasets={sorted(self.datasets)})")
