"""``TorchConfig``: how the workers start torch.distributed (gloo on CPU, nccl
on GPUs), and the per-process device that ``get_device`` returns."""

import dataclasses
import datetime
import os
from typing import Optional

# Set on each worker by the backend's on_start: the torch device of this worker.
_device = None


@dataclasses.dataclass
class TorchConfig:
    """torch.distributed settings for ``TorchTrainer(torch_config=...)``::

        TorchTrainer(loop, torch_config=TorchConfig(backend="gloo", timeout_s=600))

    ``backend`` None picks "nccl" when the workers use GPUs, else "gloo".
    """

    backend: Optional[str] = None
    init_method: str = "tcp"
    timeout_s: int = 1800

    def __post_init__(self):
        if self.init_method not in ("tcp", "env"):
            raise ValueError(f"init_method must be 'tcp' or 'env', got {self.init_method!r}.")

    def for_workers(self, use_gpu):
        return _TorchBackend(self.backend or ("nccl" if use_gpu else "gloo"),
                             self.init_method, self.timeout_s, bool(use_gpu))


@dataclasses.dataclass
class _TorchBackend:
    """What each worker runs around the training loop (shipped to the workers)."""

    backend: str
    init_method: str
    timeout_s: int
    use_gpu: bool

    def on_start(self, rank, master, device_index):
        global _device
        import torch
        import torch.distributed as dist
        # torchrun's variables, as Ray Train sets them: code in the loop (and Data's
        # device="auto") can tell it runs in a training worker.
        os.environ.update(RANK=str(rank.world_rank), LOCAL_RANK=str(rank.local_rank),
                          WORLD_SIZE=str(rank.world_size), NODE_RANK=str(rank.node_rank),
                          LOCAL_WORLD_SIZE=str(rank.local_world_size))
        if self.use_gpu and torch.cuda.is_available():
            _device = torch.device("cuda", device_index)
            torch.cuda.set_device(_device)
        else:
            if self.backend == "nccl":
                raise RuntimeError("the nccl backend needs GPUs, and this worker sees none "
                                   "(torch.cuda.is_available() is False); use "
                                   "TorchConfig(backend='gloo') or give the workers GPUs.")
            _device = torch.device("cpu")
        if rank.world_size == 1 and not dist.is_available():
            return
        url = f"tcp://{master[0]}:{master[1]}" if self.init_method == "tcp" else "env://"
        dist.init_process_group(self.backend, init_method=url, rank=rank.world_rank,
                                world_size=rank.world_size,
                                timeout=datetime.timedelta(seconds=self.timeout_s))

    def on_shutdown(self):
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
