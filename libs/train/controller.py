"""The controller: the function that Tune runs as a trainer's one trial.

    Trainer.fit() -> Tune runs this controller in a (0-CPU) trial actor
      -> WorkerGroup.start (placement group, N TrainWorker actors, ranks)
      -> setup: dataset shards (streaming_split), torch.distributed
      -> run the loop on every worker; poll their reports
      -> ReportRounds pairs the k-th report of every rank -> one tune.report
         (rank 0's metrics, the round's checkpoint)
      -> a worker raises or dies: kill the group, raise WorkerGroupError;
         Tune retries the trial (FailureConfig.max_failures) from its
         latest checkpoint, which is a fresh group here.
"""

import collections
import dataclasses
import os
import re
import shutil
import uuid
from typing import Any, Dict, List, Optional

import minray
from minray.tune import session as tune_session
from minray.tune.checkpoint import Checkpoint

from .exceptions import WorkerGroupError
from .worker_group import WorkerGroup

# Fields Tune adds to every result; stripped when a worker's report is passed on.
AUTO_KEYS = frozenset({
    "done", "training_iteration", "trial_id", "date", "timestamp", "time_this_iter_s",
    "time_total_s", "pid", "hostname", "node_ip", "time_since_restore",
    "iterations_since_restore", "config"})
MAX_PENDING_REPORTS = int(os.environ.get("MINRAY_TRAIN_MAX_PENDING_REPORTS", "16"))
_CHECKPOINT_DIR = re.compile(r"^checkpoint_(\d{6})$")


def user_metrics(result):
    """A reported result without Tune's automatic fields."""
    return {k: v for k, v in result.items() if k not in AUTO_KEYS}


@dataclasses.dataclass
class Round:
    """The k-th report of every rank, merged: rank 0's metrics, the checkpoint."""
    metrics: Dict[str, Any]
    checkpoint_path: Optional[str]


class ReportRounds:
    """Pairs up the workers' reports: round k is complete once every rank has
    made its k-th report.  When every worker has finished, reports left
    unpaired (a rank reported fewer times) are passed on as they are::

        rounds = ReportRounds(2)
        rounds.add(0, [({"loss": 1.0}, None)])
        rounds.ready()            # [] (rank 1 has not reported yet)
        rounds.add(1, [({"loss": 1.1}, None)])
        rounds.ready()            # [Round(metrics={"loss": 1.0}, checkpoint_path=None)]
    """

    def __init__(self, num_workers):
        self.queues = [collections.deque() for _ in range(num_workers)]
        self.finished = [False] * num_workers

    def add(self, rank, items):
        self.queues[rank].extend(items)

    def finish(self, rank):
        self.finished[rank] = True

    @property
    def done(self):
        return all(self.finished) and not any(self.queues)

    def ready(self):
        out = []
        while all(self.queues) or (all(self.finished) and any(self.queues)):
            items = [q.popleft() if q else None for q in self.queues]
            present = [it for it in items if it is not None]
            result = present[0][0]
            ckpts = [saved["path"] for _, saved in present if saved]
            out.append(Round(dict(result), ckpts[0] if ckpts else None))
        return out


@dataclasses.dataclass
class TrainPayload:
    """Everything the controller needs, shipped once with the trial's function."""
    loop: Any
    loop_config: Dict[str, Any]
    scaling: Any
    backend: Any
    datasets: Dict[str, Any]
    data_config: Any
    resume_from_checkpoint: Optional[Checkpoint]
    metadata: Dict[str, Any]


class _LoopCall:
    """Calls the user's loop with or without its config; its return value is dropped
    (Tune would take a returned dict for a final report of this rank alone)."""

    def __init__(self, loop, takes_config):
        self.loop, self.takes_config = loop, takes_config

    def __call__(self, config):
        if self.takes_config:
            self.loop(config)
        else:
            self.loop()


def run_controller(payload: TrainPayload, config):
    """The trial body: one attempt of the whole training run."""
    ctx = tune_session.get_context()
    loop_config = dict(payload.loop_config or {})
    loop_config.update(config.get("train_loop_config") or {})
    scaling = config.get("scaling_config") or payload.scaling
    trial_dir = ctx.get_trial_dir()
    os.makedirs(trial_dir, exist_ok=True)
    checkpoint = tune_session.get_checkpoint()
    base_iteration = getattr(tune_session._session, "iteration", 0) if checkpoint else 0
    if checkpoint is None:
        checkpoint = payload.resume_from_checkpoint
    _remove_stale_checkpoints(trial_dir, base_iteration, checkpoint)
    n = scaling.num_workers
    shards = _shard_datasets(payload.datasets, payload.data_config, n)
    group = WorkerGroup.start(scaling)
    try:
        group.setup(payload.backend.for_workers(scaling.use_gpu), shards)
        workers = group.by_rank()
        ranks = sorted(group.ranks, key=lambda r: r.world_rank)
        run_id = uuid.uuid4().hex
        loop = minray.put(_LoopCall(payload.loop, _takes_config(payload.loop)))
        start = {"path": checkpoint.path, "iteration": base_iteration, "time_total": 0.0} \
            if checkpoint is not None else None
        base_info = {"trial_id": ctx.get_trial_id(), "trial_name": ctx.get_trial_name(),
                     "trial_dir": trial_dir, "experiment_name": ctx.get_experiment_name(),
                     "metadata": payload.metadata}
        for worker, rank in zip(workers, ranks):
            info = dict(base_info, world_rank=rank.world_rank, world_size=rank.world_size,
                        local_rank=rank.local_rank, node_rank=rank.node_rank,
                        local_world_size=rank.local_world_size,
                        resources=scaling.bundles()[0])
            worker.run.remote(loop, loop_config, {"info": info, "checkpoint": start,
                                                  "max_pending": MAX_PENDING_REPORTS,
                                                  "run_id": run_id})
        _drive(workers, run_id, group.pids())
    finally:
        group.shutdown()


def _drive(workers, run_id, pids):
    """Poll every worker, pass complete report rounds to Tune; raise on a failure."""
    polls = {w.poll.remote(run_id): rank for rank, w in enumerate(workers)}
    rounds = ReportRounds(len(workers))
    while not rounds.done:
        ready, _ = minray.wait(list(polls), num_returns=1)
        if len(polls) > 1:  # take every reply that is in, not just the first
            ready, _ = minray.wait(list(polls), num_returns=len(polls), timeout=0)
        failures = {}
        for ref in ready:
            rank = polls.pop(ref)
            try:
                results, finished = minray.get(ref)
            except Exception as exc:  # the loop raised (RayTaskError) or the worker died
                failures[rank] = exc
                continue
            rounds.add(rank, results)
            if finished is None:
                polls[workers[rank].poll.remote(run_id)] = rank
            else:
                rounds.finish(rank)
        for rnd in rounds.ready():
            if rnd.checkpoint_path is None:
                tune_session.report(rnd.metrics)
            else:
                tune_session.report(rnd.metrics, checkpoint=Checkpoint(rnd.checkpoint_path),
                                    checkpoint_dir_name=os.path.basename(rnd.checkpoint_path))
        if failures:
            raise WorkerGroupError(_describe_failures(failures, pids), failures)


def _describe_failures(failures, pids):
    parts = []
    for rank, exc in sorted(failures.items()):
        if isinstance(exc, minray.exceptions.RayActorError):
            text = (f"the worker process (pid {pids[rank] if rank < len(pids) else '?'}) "
                    f"died: {exc}")
        else:
            text = str(exc)
        parts.append(f"[Rank {rank}]\n{text}")
    return "\n".join(parts)


def _shard_datasets(datasets, data_config, n):
    """One ``{name: DataIterator}`` per rank: split datasets streamed in equal
    shares, the others whole."""
    per_rank = [{} for _ in range(n)]
    split = set(data_config.split_names(datasets))
    for name, ds in (datasets or {}).items():
        if name in split:
            for rank, it in enumerate(ds.streaming_split(n, equal=True)):
                per_rank[rank][name] = it
        else:
            for rank in range(n):
                per_rank[rank][name] = ds.iterator()
    return per_rank


def _remove_stale_checkpoints(trial_dir, base_iteration, keep):
    """Checkpoint folders numbered after the one this attempt resumes from were
    written by a failed attempt; the new attempt writes those numbers again."""
    keep_path = os.path.abspath(keep.path) if keep is not None else None
    for name in os.listdir(trial_dir):
        m = _CHECKPOINT_DIR.match(name)
        path = os.path.abspath(os.path.join(trial_dir, name))
        if m and int(m.group(1)) > base_iteration and path != keep_path:
            shutil.rmtree(path, ignore_errors=True)


def _takes_config(fn):
    import inspect
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.default is inspect.Parameter.empty and
                  p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        has_var = any(p.kind == p.VAR_POSITIONAL for p in
                      inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return True
    if len(params) > 1:
        raise ValueError(f"train_loop_per_worker must take no argument or one (the "
                         f"train_loop_config dict); {getattr(fn, '__name__', fn)} takes "
                         f"{len(params)}.")
    return bool(params) or has_var or bool(inspect.signature(fn).parameters)
