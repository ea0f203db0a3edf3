"""minray.train: distributed training on a group of worker actors (Ray Train's API).

    from minray import train
    from minray.train.torch import TorchTrainer

    def train_loop_per_worker(config):
        shard = train.get_dataset_shard("train")
        model = train.torch.prepare_model(MyModel())
        for epoch in range(config["epochs"]):
            for batch in shard.iter_torch_batches(batch_size=32):
                ...
            train.report({"epoch": epoch, "loss": loss.item()})

    result = TorchTrainer(train_loop_per_worker, train_loop_config={"epochs": 3},
                          scaling_config=train.ScalingConfig(num_workers=2),
                          datasets={"train": ds}).fit()

``report``, ``get_checkpoint``, ``Checkpoint``, ``RunConfig``, ``CheckpointConfig``
and ``FailureConfig`` are Tune's own objects: ``fit()`` is a one-trial Tune run.

Layout: trainer.py (DataParallelTrainer, Result) runs controller.py as Tune's
trial; the controller drives worker_group.py (TrainWorker actors, ranks);
session.py is what a loop calls; torch/ holds TorchTrainer and its helpers.
"""

from .config import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
from .exceptions import ControllerError, TrainingFailedError, WorkerGroupError
from .session import (Checkpoint, TrainContext, get_checkpoint, get_context,
                      get_dataset_shard, report)
from .trainer import DataParallelTrainer, Result, UserCallback


def __getattr__(name):
    if name == "torch":  # loaded on first use: it imports nothing heavy until called
        import importlib
        module = importlib.import_module(f"{__name__}.torch")
        globals()["torch"] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Checkpoint", "CheckpointConfig", "ControllerError", "DataConfig", "DataParallelTrainer",
    "FailureConfig", "Result", "RunConfig", "ScalingConfig", "TrainContext",
    "TrainingFailedError", "UserCallback", "WorkerGroupError", "get_checkpoint",
    "get_context", "get_dataset_shard", "report",
]
