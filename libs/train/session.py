"""What a training loop calls on each worker.

``report``, ``get_checkpoint`` and ``Checkpoint`` are Tune's own objects: a
training worker runs its loop inside Tune's trial session (worker_group.py
installs a ``_TrainSession``, a Tune session that also knows the worker's
ranks and dataset shards).  ``get_context`` and ``get_dataset_shard`` are
Train's additions on top of that session::

    def train_loop_per_worker(config):
        ctx = train.get_context()
        shard = train.get_dataset_shard("train")
        for epoch in range(config["epochs"]):
            for batch in shard.iter_torch_batches(batch_size=32):
                ...
            train.report({"epoch": epoch, "rank": ctx.get_world_rank()})
"""

from minray.tune import session as _tune_session
from minray.tune.checkpoint import Checkpoint
from minray.tune.session import TuneContext, get_checkpoint, report

# Dataset shards of this worker process: {name: DataIterator}; set by the worker actor.
_dataset_shards = {}


def _set_dataset_shards(shards):
    global _dataset_shards
    _dataset_shards = dict(shards or {})


class TrainContext(TuneContext):
    """Facts about this training worker and its run::

        ctx = train.get_context()
        ctx.get_world_rank(), ctx.get_world_size(), ctx.get_local_rank(), ctx.get_node_rank()
    """

    def get_local_world_size(self):
        return self._info.get("local_world_size", 1)

    def get_node_rank(self):
        return self._info.get("node_rank", 0)

    def get_storage(self):
        return self._info.get("trial_dir")

    def get_metadata(self):
        return dict(self._info.get("metadata") or {})

    def get_experiment_name(self):
        return self._info.get("experiment_name")

    def __repr__(self):
        return (f"TrainContext(world_rank={self.get_world_rank()}, world_size="
                f"{self.get_world_size()}, local_rank={self.get_local_rank()}, "
                f"node_rank={self.get_node_rank()})")


def _session(name):
    session = _tune_session._session
    if session is None:
        raise RuntimeError(f"train.{name}() was called outside a training worker. Call it "
                           "from the train_loop_per_worker function that you pass to "
                           "TorchTrainer(...).")
    return session


def get_context():
    """The ``TrainContext`` of this worker (ranks, world size, trial name)."""
    return TrainContext(_session("get_context").info)


def get_dataset_shard(dataset_name=None):
    """This worker's part of ``datasets[dataset_name]`` as a DataIterator::

        shard = train.get_dataset_shard("train")
        for epoch in range(3):
            for batch in shard.iter_batches(batch_size=64):   # one pass = one epoch
                ...

    Datasets listed in ``DataConfig.datasets_to_split`` ("all" by default) are
    split so that each worker reads a disjoint, equal share; the others are
    read whole by every worker.
    """
    _session("get_dataset_shard")
    if dataset_name is None:
        if len(_dataset_shards) == 1:
            return next(iter(_dataset_shards.values()))
        if not _dataset_shards:
            return None
        raise ValueError(f"get_dataset_shard() needs a name when the trainer has several "
                         f"datasets; pass one of {sorted(_dataset_shards)}.")
    if dataset_name not in _dataset_shards:
        raise KeyError(f"No dataset named {dataset_name!r} was passed to the trainer; it has "
                       f"{sorted(_dataset_shards) or 'none'}. Pass it as "
                       f"TorchTrainer(..., datasets={{{dataset_name!r}: ds}}).")
    return _dataset_shards[dataset_name]


__all__ = ["Checkpoint", "TrainContext", "get_checkpoint", "get_context",
           "get_dataset_shard", "report"]
