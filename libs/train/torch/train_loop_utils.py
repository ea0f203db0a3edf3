"""What a PyTorch loop calls on each worker: ``prepare_model`` (DDP on this
worker's device), ``prepare_data_loader`` (a DistributedSampler and the move
to the device), ``get_device``; and ``TorchCheckpoint`` (chapter 7's name)."""

import os

from minray.tune.checkpoint import Checkpoint

from . import config as _config

MODEL_FILE = "model.pt"


def get_device():
    """This worker's torch device: ``cuda:<i>`` for its assigned GPU, else ``cpu``."""
    import torch
    if _config._device is not None:
        return _config._device
    if torch.cuda.is_available() and os.environ.get("CUDA_VISIBLE_DEVICES"):
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) %
                            torch.cuda.device_count())
    return torch.device("cpu")


def get_devices():
    """A list of this worker's devices (one here)."""
    return [get_device()]


def _world_size():
    import torch.distributed as dist
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def prepare_model(model, move_to_device=True, parallel_strategy="ddp",
                  parallel_strategy_kwargs=None):
    """Move ``model`` to this worker's device and, with more than one worker,
    wrap it in DistributedDataParallel (gradients averaged across workers)::

        model = train.torch.prepare_model(MyModel())
    """
    import torch
    from torch.nn.parallel import DistributedDataParallel
    if parallel_strategy not in ("ddp", None):
        raise ValueError(f"parallel_strategy must be 'ddp' or None, got "
                         f"{parallel_strategy!r} (FSDP is not supported).")
    device = get_device()
    if move_to_device:
        model = model.to(device)
    if parallel_strategy is None or _world_size() <= 1:
        return model
    kwargs = dict(parallel_strategy_kwargs or {})
    if device.type == "cuda":
        kwargs.setdefault("device_ids", [device.index])
        kwargs.setdefault("output_device", device.index)
    if not any(p.requires_grad for p in model.parameters()):
        return model
    return DistributedDataParallel(model, **kwargs) if torch.distributed.is_initialized() \
        else model


def prepare_optimizer(optimizer):
    """Kept for old loops: returns ``optimizer`` unchanged."""
    return optimizer


class _DeviceLoader:
    """Iterates a DataLoader, moving each batch to the device and advancing the
    DistributedSampler's epoch each pass (so every epoch shuffles anew)."""

    def __init__(self, loader, device, move):
        self._loader, self._device, self._move = loader, device, move
        self._epoch = 0

    def __len__(self):
        return len(self._loader)

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def __iter__(self):
        sampler = getattr(self._loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self._epoch)
        self._epoch += 1
        for batch in self._loader:
            yield _to_device(batch, self._device) if self._move else batch


def _to_device(batch, device):
    import torch
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


def prepare_data_loader(data_loader, add_dist_sampler=True, move_to_device=True,
                        auto_transfer=True):
    """Give each worker its own share of ``data_loader``'s dataset (a
    DistributedSampler, shuffling if the loader did) and move its batches to
    this worker's device::

        loader = train.torch.prepare_data_loader(DataLoader(ds, batch_size=32, shuffle=True))
    """
    from torch.utils.data import DataLoader, IterableDataset, RandomSampler
    from torch.utils.data.distributed import DistributedSampler
    if not isinstance(data_loader, DataLoader):
        raise TypeError(f"prepare_data_loader needs a torch DataLoader, got "
                        f"{type(data_loader).__name__}.")
    loader = data_loader
    if (add_dist_sampler and _world_size() > 1 and
            not isinstance(loader.sampler, DistributedSampler) and
            not isinstance(loader.dataset, IterableDataset)):
        shuffle = isinstance(loader.sampler, RandomSampler)
        sampler = DistributedSampler(loader.dataset, shuffle=shuffle)
        loader = DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=sampler,
                            num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                            pin_memory=loader.pin_memory, drop_last=loader.drop_last,
                            timeout=loader.timeout, worker_init_fn=loader.worker_init_fn,
                            generator=loader.generator)
    return _DeviceLoader(loader, get_device(), move_to_device)


def enable_reproducibility(seed=0):
    """Seed torch, numpy and random; use deterministic algorithms."""
    import random
    import numpy as np
    import torch
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


class TorchCheckpoint(Checkpoint):
    """A Checkpoint holding a torch model or state dict in ``model.pt`` (the name
    chapter 7 of "Learning Ray" uses)::

        ckpt = TorchCheckpoint.from_state_dict(model.state_dict())
        train.report({"loss": loss}, checkpoint=ckpt)
        model = TorchCheckpoint(result.checkpoint.path).get_model(MyModel())
    """

    @classmethod
    def from_state_dict(cls, state_dict, *, preprocessor=None):
        import tempfile
        import torch
        path = tempfile.mkdtemp(prefix="checkpoint_")
        torch.save(state_dict, os.path.join(path, MODEL_FILE))
        ckpt = cls(path)
        if preprocessor is not None:
            ckpt._save_preprocessor(preprocessor)
        return ckpt

    @classmethod
    def from_model(cls, model, *, preprocessor=None):
        """A checkpoint of ``model``'s weights (unwrapped from DDP)."""
        return cls.from_state_dict(getattr(model, "module", model).state_dict(),
                                   preprocessor=preprocessor)

    def get_model(self, model=None):
        """Load the weights into ``model`` (and return it); without a model, return
        what the file holds (a whole pickled model)."""
        import torch
        with self.as_directory() as d:
            obj = torch.load(os.path.join(d, MODEL_FILE), weights_only=False)
        if model is None:
            return obj
        state = obj.state_dict() if hasattr(obj, "state_dict") else obj
        model.load_state_dict(state)
        return model

    def _save_preprocessor(self, preprocessor):
        import pickle
        with open(os.path.join(self.path, "preprocessor.pkl"), "wb") as f:
            pickle.dump(preprocessor, f)

    def get_preprocessor(self):
        import pickle
        try:
            with open(os.path.join(self.path, "preprocessor.pkl"), "rb") as f:
                return pickle.load(f)
        except FileNotFoundError:
            return None
