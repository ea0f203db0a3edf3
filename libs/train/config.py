"""Train's configuration records.  ``RunConfig``, ``CheckpointConfig`` and
``FailureConfig`` are Tune's own classes (one set of records for both
libraries); ``ScalingConfig`` and ``DataConfig`` are Train's."""

import dataclasses
from typing import Any, Dict, List, Optional, Union

from minray.tune.config import CheckpointConfig, FailureConfig, RunConfig

_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


@dataclasses.dataclass
class ScalingConfig:
    """How many training workers, and what each one holds::

        ScalingConfig(num_workers=2, use_gpu=False, resources_per_worker={"CPU": 1})

    Each worker is one actor (one process) with ``resources_per_worker``
    (default ``{"CPU": 1}``, plus ``{"GPU": 1}`` with ``use_gpu=True``).  The
    workers are reserved together as one placement group with
    ``placement_strategy``.
    """

    num_workers: int = 1
    use_gpu: bool = False
    resources_per_worker: Optional[Dict[str, float]] = None
    placement_strategy: str = "PACK"
    accelerator_type: Optional[str] = None
    trainer_resources: Optional[Dict[str, float]] = None

    def __post_init__(self):
        n = self.num_workers
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"ScalingConfig(num_workers=...) must be an int of at least 1, "
                             f"got {n!r}; e.g. ScalingConfig(num_workers=2).")
        if self.placement_strategy not in _STRATEGIES:
            raise ValueError(f"placement_strategy must be one of {_STRATEGIES}, got "
                             f"{self.placement_strategy!r}.")
        if self.resources_per_worker is not None and not isinstance(
                self.resources_per_worker, dict):
            raise TypeError(f"resources_per_worker must be a dict such as {{'CPU': 1}}, got "
                            f"{type(self.resources_per_worker).__name__}.")

    @property
    def num_cpus_per_worker(self):
        return self._worker_resources().get("CPU", 0)

    @property
    def num_gpus_per_worker(self):
        return self._worker_resources().get("GPU", 0)

    def _worker_resources(self):
        """One worker's resources, Ray's defaults filled in: ``{"CPU": 1, "GPU": 0}``."""
        res = {}
        for key, value in (self.resources_per_worker or {}).items():
            k = {"cpu": "CPU", "num_cpus": "CPU", "gpu": "GPU", "num_gpus": "GPU"}.get(
                key.lower(), key)
            res[k] = value
        res.setdefault("CPU", 1)
        if self.use_gpu:
            res.setdefault("GPU", 1)
            if not res["GPU"]:
                raise ValueError("use_gpu=True but resources_per_worker asks for 0 GPUs; drop "
                                 "the GPU entry or set it above 0.")
        else:
            res.setdefault("GPU", 0)
        return res

    def bundles(self):
        """The placement group's bundles, one per worker."""
        one = {k: v for k, v in self._worker_resources().items() if v}
        return [dict(one) for _ in range(self.num_workers)]

    def actor_options(self):
        """``.options(...)`` for one worker actor."""
        res = self._worker_resources()
        opts = {"num_cpus": res.get("CPU", 0), "num_gpus": res.get("GPU", 0)}
        custom = {k: v for k, v in res.items() if k not in ("CPU", "GPU", "memory") and v}
        if custom:
            opts["resources"] = custom
        if res.get("memory"):
            opts["memory"] = res["memory"]
        if not opts["num_gpus"]:
            del opts["num_gpus"]
        return opts


@dataclasses.dataclass
class DataConfig:
    """Which datasets are split between the workers (``"all"`` by default); the
    others are read whole by every worker::

        DataConfig(datasets_to_split=["train"])   # "valid" is seen whole by each worker
    """

    datasets_to_split: Union[str, List[str]] = "all"
    execution_options: Any = None
    enable_shard_locality: bool = True

    def __post_init__(self):
        if self.datasets_to_split != "all" and not isinstance(self.datasets_to_split,
                                                                (list, tuple)):
            raise TypeError(f"datasets_to_split must be 'all' or a list of dataset names, got "
                            f"{self.datasets_to_split!r}.")

    def split_names(self, names):
        return list(names) if self.datasets_to_split == "all" else [
            n for n in names if n in self.datasets_to_split]


__all__ = ["CheckpointConfig", "DataConfig", "FailureConfig", "RunConfig", "ScalingConfig"]
