"""The worker group: ``num_workers`` actors, one process each, that run the
training loop together.

    controller (controller.py)              TrainWorker actors (a Tune TrialWorker each)
    WorkerGroup.start: placement group, actors, describe() -> ranks (assign_ranks)
    setup_train(rank info, backend, shards) -> env vars, torch.distributed init
    run.remote(loop, config, spec) -------> the loop runs under a _TrainSession:
    poll.remote(run_id) <------------------ train.report() results (Tune's queue)

A ``TrainWorker`` is Tune's ``TrialWorker`` (its run/poll/stop queue, its
result fields and checkpoint persistence), with a session that also knows the
worker's ranks, so ``train.report`` is ``tune.report``.
"""

import dataclasses
import os
import shutil
import socket
from typing import Dict, List, Optional

import minray
from minray.tune.trial_worker import TrialWorker, _Session, _StopTrial
from minray.util.placement_group import placement_group, remove_placement_group
from minray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from . import session as train_session


@dataclasses.dataclass
class WorkerInfo:
    """What a freshly started worker says about itself."""
    pid: int
    node_id: str
    hostname: str
    gpu_ids: List[str]


@dataclasses.dataclass
class RankInfo:
    """A worker's place in the group."""
    world_rank: int
    local_rank: int
    node_rank: int
    local_world_size: int
    world_size: int
    visible_devices: Optional[str] = None  # CUDA_VISIBLE_DEVICES for the worker, if GPUs


def assign_ranks(infos: List[WorkerInfo]) -> List[RankInfo]:
    """Ranks for workers in actor order: grouped by node (nodes in order of first
    appearance), then by first GPU id; local ranks count within a node.  Workers
    on a node with GPUs all see the node's assigned GPUs (so ``local_rank``
    indexes them, as in Ray Train)::

        assign_ranks([WorkerInfo(1, "a", "h", []), WorkerInfo(2, "a", "h", [])])
        # -> world ranks 0, 1; local ranks 0, 1; node rank 0
    """
    nodes = []
    for info in infos:
        if info.node_id not in nodes:
            nodes.append(info.node_id)

    def gpu_key(info):
        return [int(g) if str(g).isdigit() else str(g) for g in info.gpu_ids]

    order = sorted(range(len(infos)), key=lambda i: (nodes.index(infos[i].node_id),
                                                     gpu_key(infos[i]), i))
    per_node = {n: [i for i in order if infos[i].node_id == n] for n in nodes}
    node_gpus = {}
    for n, members in per_node.items():
        ids = []
        for i in members:
            for g in infos[i].gpu_ids:
                if str(g) not in ids:
                    ids.append(str(g))
        node_gpus[n] = ids
    ranks = [None] * len(infos)
    for world_rank, i in enumerate(order):
        node = infos[i].node_id
        gpus = node_gpus[node]
        ranks[i] = RankInfo(world_rank=world_rank, local_rank=per_node[node].index(i),
                            node_rank=nodes.index(node), local_world_size=len(per_node[node]),
                            world_size=len(infos),
                            visible_devices=",".join(gpus) if gpus else None)
    return ranks


def device_index(rank: RankInfo, own_gpu_ids: List[str]) -> int:
    """The CUDA device index of a worker: the position of its first assigned GPU
    among the node's visible ones (``local_rank`` when it has none of its own)."""
    visible = (rank.visible_devices or "").split(",")
    if own_gpu_ids and str(own_gpu_ids[0]) in visible:
        return visible.index(str(own_gpu_ids[0]))
    return rank.local_rank


class _TrainSession(_Session):
    """Tune's trial session for one rank.  A report is passed on as the user wrote
    it (the controller adds Tune's fields once per round), and every rank that
    reports a checkpoint in the same report adds its files to the same
    ``checkpoint_NNNNNN`` folder (the report's iteration)."""

    def report(self, metrics, checkpoint, checkpoint_dir_name):
        if self.worker.stop_requested:
            raise _StopTrial()
        self.iteration += 1
        saved = None
        if checkpoint is not None:
            name = checkpoint_dir_name or f"checkpoint_{self.iteration:06d}"
            dest = os.path.join(self.info["trial_dir"], name)
            if os.path.abspath(checkpoint.path) != os.path.abspath(dest):
                shutil.copytree(checkpoint.path, dest, dirs_exist_ok=True)
            saved = {"path": dest, "iteration": self.iteration, "time_total": 0.0}
        self.worker.push((dict(metrics), saved))


class TrainWorker(TrialWorker):
    """One training worker (an actor with ``max_concurrency=3``: run, poll, stop)."""

    session_class = _TrainSession

    def describe(self):
        ctx = minray.get_runtime_context()
        gpus = [str(g) for g in ctx.get_accelerator_ids().get("GPU", [])]
        return WorkerInfo(pid=os.getpid(), node_id=str(ctx.get_node_id()),
                          hostname=socket.gethostname(), gpu_ids=gpus)

    def free_address(self):
        """An address and a free port for torch.distributed's rendezvous (rank 0)."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            return "127.0.0.1", s.getsockname()[1]

    def setup_train(self, rank: RankInfo, backend, master, shards, own_gpus):
        """Environment variables, the dataset shards, then the backend (torch.distributed)."""
        env = {"RANK": rank.world_rank, "LOCAL_RANK": rank.local_rank,
               "WORLD_SIZE": rank.world_size, "LOCAL_WORLD_SIZE": rank.local_world_size,
               "NODE_RANK": rank.node_rank, "MASTER_ADDR": master[0], "MASTER_PORT": master[1]}
        os.environ.update({k: str(v) for k, v in env.items()})
        if rank.visible_devices is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = rank.visible_devices
        train_session._set_dataset_shards(shards)
        self.rank = rank
        self.backend = backend
        if backend is not None:
            backend.on_start(rank, master, device_index(rank, own_gpus))
        return True

    def shutdown_train(self):
        backend = getattr(self, "backend", None)
        if backend is not None:
            backend.on_shutdown()
        train_session._set_dataset_shards(None)
        return True


_WorkerActor = None


def _worker_actor():
    global _WorkerActor
    if _WorkerActor is None:
        _WorkerActor = minray.remote(TrainWorker)
    return _WorkerActor


class WorkerGroup:
    """``num_workers`` TrainWorker actors in one placement group::

        group = WorkerGroup.start(ScalingConfig(num_workers=2))
        ...
        group.shutdown()
    """

    def __init__(self, workers, infos, ranks, pg):
        self.workers, self.infos, self.ranks, self._pg = workers, infos, ranks, pg

    @classmethod
    def start(cls, scaling, placement_timeout_s=None):
        _check_fits(scaling)
        pg = placement_group(scaling.bundles(), strategy=scaling.placement_strategy)
        try:
            if placement_timeout_s is None:
                minray.get(pg.ready())
            else:
                minray.get(pg.ready(), timeout=placement_timeout_s)
            opts = scaling.actor_options()
            workers = [_worker_actor().options(
                max_concurrency=3, scheduling_strategy=PlacementGroupSchedulingStrategy(
                    pg, placement_group_bundle_index=i), **opts).remote()
                for i in range(scaling.num_workers)]
            infos = minray.get([w.describe.remote() for w in workers])
        except BaseException:
            remove_placement_group(pg)
            raise
        return cls(workers, infos, assign_ranks(infos), pg)

    def setup(self, backend, shards_per_rank: List[Dict]):
        """Rendezvous and backend start on every worker at once."""
        rank0 = self.workers[[r.world_rank for r in self.ranks].index(0)]
        master = minray.get(rank0.free_address.remote())
        minray.get([w.setup_train.remote(r, backend, master, shards_per_rank[r.world_rank],
                                         info.gpu_ids)
                    for w, r, info in zip(self.workers, self.ranks, self.infos)])

    def by_rank(self):
        """The workers in world-rank order."""
        return [w for _, w in sorted(zip([r.world_rank for r in self.ranks], self.workers),
                                     key=lambda p: p[0])]

    def pids(self):
        return [i.pid for i in self.infos]

    def shutdown(self):
        """Kill every worker and free the placement group (workers may be dead already)."""
        for w in self.workers:
            try:
                minray.kill(w)
            except Exception:  # already gone
                pass
        try:
            remove_placement_group(self._pg)
        except Exception:
            pass


def _check_fits(scaling):
    total = minray.cluster_resources()
    need = {}
    for bundle in scaling.bundles():
        for k, v in bundle.items():
            need[k] = need.get(k, 0) + v
    for key, amount in need.items():
        if amount > total.get(key, 0) + 1e-9:
            raise ValueError(
                f"ScalingConfig asks for {amount:g} {key} in all ({scaling.num_workers} workers "
                f"x {scaling.bundles()[0]}), but the cluster has {total.get(key, 0):g}. Lower "
                f"num_workers or resources_per_worker"
                + (", or set use_gpu=False" if key == "GPU" else "") + ".")
