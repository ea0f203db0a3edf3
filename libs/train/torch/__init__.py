"""minray.train.torch: PyTorch data-parallel training on minray workers.

    from minray import train
    from minray.train.torch import TorchTrainer, prepare_model, prepare_data_loader

    def loop(config):
        model = prepare_model(MyModel())           # DDP, on this worker's device
        loader = prepare_data_loader(DataLoader(ds, batch_size=32, shuffle=True))
        for epoch in range(config["epochs"]):
            for x, y in loader:                     # this worker's share, on its device
                ...
            train.report({"epoch": epoch, "loss": loss.item()})

    TorchTrainer(loop, train_loop_config={"epochs": 3},
                 scaling_config=train.ScalingConfig(num_workers=2)).fit()

torch.distributed uses gloo on CPU and nccl when the workers have GPUs
(``ScalingConfig(use_gpu=True)``); each worker sees its node's assigned GPUs
and uses the one at its own GPU id (``get_device``).
"""

from ..trainer import DataParallelTrainer
from . import config as _config
from .config import TorchConfig
from .train_loop_utils import (TorchCheckpoint, enable_reproducibility, get_device,
                               get_devices, prepare_data_loader, prepare_model,
                               prepare_optimizer)


class TorchTrainer(DataParallelTrainer):
    """Data-parallel PyTorch training (torch.distributed set up on every worker)::

        trainer = TorchTrainer(train_loop_per_worker, train_loop_config={"lr": 1e-3},
                               scaling_config=ScalingConfig(num_workers=2),
                               run_config=RunConfig(name="exp", storage_path="/tmp/results"),
                               datasets={"train": ds})
        result = trainer.fit()
    """

    _default_backend = TorchConfig

    def __init__(self, train_loop_per_worker, *, train_loop_config=None, torch_config=None,
                 scaling_config=None, run_config=None, datasets=None, dataset_config=None,
                 resume_from_checkpoint=None, metadata=None):
        if torch_config is not None and not isinstance(torch_config, TorchConfig):
            raise TypeError(f"torch_config must be a TorchConfig, got "
                            f"{type(torch_config).__name__}.")
        super().__init__(train_loop_per_worker, train_loop_config=train_loop_config,
                         backend_config=torch_config or TorchConfig(),
                         scaling_config=scaling_config, run_config=run_config,
                         datasets=datasets, dataset_config=dataset_config,
                         resume_from_checkpoint=resume_from_checkpoint, metadata=metadata)


__all__ = ["TorchCheckpoint", "TorchConfig", "TorchTrainer", "enable_reproducibility",
           "get_device", "get_devices", "prepare_data_loader", "prepare_model",
           "prepare_optimizer"]
