"""TorchTrainer end to end: real worker processes running torch.distributed (gloo)."""
import json
import os
import signal
import threading
import time

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn

import minray
from minray import train, tune
from minray.train import (Checkpoint, CheckpointConfig, DataConfig, FailureConfig, RunConfig,
                          ScalingConfig, TrainingFailedError)
from minray.train.torch import TorchTrainer, prepare_data_loader, prepare_model

STEPS = 3
LR = 0.1


def _rank_data(rank):
    g = torch.Generator().manual_seed(100 + rank)
    x = torch.randn(8, 3, generator=g)
    return x, x.sum(dim=1, keepdim=True) * (rank + 1)


def ddp_loop(config):
    """Each rank trains on its own data; after every step it records its weights."""
    ctx = train.get_context()
    torch.manual_seed(ctx.get_world_rank())  # different inits: DDP must broadcast rank 0's
    model = prepare_model(nn.Linear(3, 1))
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    x, y = _rank_data(ctx.get_world_rank())
    history = []
    for step in range(STEPS):
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append([p.detach().flatten().tolist() for p in model.parameters()])
        train.report({"step": step, "loss": loss.item()})
    rows = [len(b["id"]) for b in train.get_dataset_shard("train").iter_batches(batch_size=4)]
    whole = sum(len(b["id"]) for b in train.get_dataset_shard("eval").iter_batches())
    from torch.utils.data import DataLoader, TensorDataset
    loader = prepare_data_loader(DataLoader(TensorDataset(torch.arange(10.0)), batch_size=2))
    seen = sorted(int(v) for (b,) in loader for v in b)
    info = {"rank": ctx.get_world_rank(), "size": ctx.get_world_size(),
            "local_rank": ctx.get_local_rank(), "node_rank": ctx.get_node_rank(),
            "pid": os.getpid(), "history": history, "ddp": hasattr(model, "module"),
            "backend": dist.get_backend(), "shard_rows": sum(rows), "eval_rows": whole,
            "loader_items": seen, "trial_name": ctx.get_trial_name(),
            "env_rank": os.environ["RANK"]}
    with open(os.path.join(config["out"], f"rank{ctx.get_world_rank()}.json"), "w") as f:
        json.dump(info, f)


def _reference_history():
    """One process, rank 0's init, gradient = the mean of both ranks' gradients."""
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    data = [_rank_data(0), _rank_data(1)]
    history = []
    for _ in range(STEPS):
        loss = sum(((model(x) - y) ** 2).mean() for x, y in data) / 2
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append([p.detach().flatten().tolist() for p in model.parameters()])
    return history


def test_two_workers_train_in_two_processes_with_averaged_gradients(ray_module, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    trainer = TorchTrainer(
        ddp_loop, train_loop_config={"out": str(out)},
        scaling_config=ScalingConfig(num_workers=2),
        datasets={"train": minray.data.range(20), "eval": minray.data.range(6)},
        dataset_config=DataConfig(datasets_to_split=["train"]),
        run_config=RunConfig(name="ddp", storage_path=str(tmp_path / "results")))
    result = trainer.fit()
    assert result.error is None
    assert result.metrics is None and result.checkpoint is None  # no checkpoint reported
    assert result.path == str(tmp_path / "results" / "ddp")
    r0, r1 = (json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1))
    assert (r0["rank"], r1["rank"]) == (0, 1) and r0["size"] == r1["size"] == 2
    assert (r0["env_rank"], r1["env_rank"]) == ("0", "1")
    assert (r0["local_rank"], r1["local_rank"]) == (0, 1) and r0["node_rank"] == 0
    assert r0["pid"] != r1["pid"] and os.getpid() not in (r0["pid"], r1["pid"])
    assert r0["ddp"] and r0["backend"] == "gloo"
    assert r0["trial_name"] == r1["trial_name"]
    # the replicas are identical after every step, and equal to averaged-gradient SGD
    reference = _reference_history()
    for step in range(STEPS):
        assert r0["history"][step] == r1["history"][step]
        for got, want in zip(r0["history"][step], reference[step]):
            assert got == pytest.approx(want, rel=1e-5, abs=1e-6)
    # "train" is split in equal halves; "eval" is read whole by each worker
    assert r0["shard_rows"] == r1["shard_rows"] == 10
    assert r0["eval_rows"] == r1["eval_rows"] == 6
    # prepare_data_loader gave each worker a disjoint half of the DataLoader's data
    assert sorted(r0["loader_items"] + r1["loader_items"]) == list(range(10))
    assert len(r0["loader_items"]) == 5


def ckpt_loop(config):
    start = 0
    ckpt = train.get_checkpoint()
    if ckpt is not None:
        start = ckpt.to_dict()["epoch"] + 1
    for epoch in range(start, start + config["epochs"]):
        ckpt = None
        if train.get_context().get_world_rank() == 0:
            ckpt = Checkpoint.from_dict({"epoch": epoch})
        train.report({"epoch": epoch, "started_at": start, "score": -abs(epoch - 1)},
                     checkpoint=ckpt)


def test_checkpoints_are_kept_and_restore(ray_module, tmp_path):
    run = RunConfig(name="ckpt", storage_path=str(tmp_path),
                    checkpoint_config=CheckpointConfig(num_to_keep=2))
    first = TorchTrainer(ckpt_loop, train_loop_config={"epochs": 3},
                         scaling_config=ScalingConfig(num_workers=2), run_config=run).fit()
    assert first.metrics == {"epoch": 2, "started_at": 0, "score": -1}
    assert [m["epoch"] for _, m in first.best_checkpoints] == [1, 2]  # num_to_keep=2
    assert list(first.metrics_dataframe["epoch"]) == [1, 2]
    assert first.checkpoint.to_dict() == {"epoch": 2}
    on_disk = [d for _, dirs, _ in os.walk(first.path) for d in dirs
               if d.startswith("checkpoint_")]
    assert len(on_disk) == 2
    # A second fit resumes from the first one's checkpoint: get_checkpoint() returns it.
    second = TorchTrainer(ckpt_loop, train_loop_config={"epochs": 2},
                          scaling_config=ScalingConfig(num_workers=2),
                          run_config=RunConfig(name="ckpt2", storage_path=str(tmp_path)),
                          resume_from_checkpoint=first.checkpoint).fit()
    assert second.metrics == {"epoch": 4, "started_at": 3, "score": -3}
    assert list(second.metrics_dataframe["epoch"]) == [3, 4]


def failing_loop(config):
    if train.get_context().get_world_rank() == 1:
        raise ValueError("bad batch on purpose")
    for step in range(1000):  # rank 0 would wait forever for rank 1 in a collective
        dist.barrier()


def test_a_loop_that_raises_fails_fit_with_the_workers_traceback(ray_module, tmp_path):
    trainer = TorchTrainer(failing_loop, scaling_config=ScalingConfig(num_workers=2),
                           run_config=RunConfig(name="bad", storage_path=str(tmp_path)))
    with pytest.raises(TrainingFailedError) as info:
        trainer.fit()
    err = info.value
    assert isinstance(err, train.WorkerGroupError) and set(err.worker_failures) == {1}
    text = str(err)
    assert "[Rank 1]" in text and "bad batch on purpose" in text
    assert "failing_loop" in text and "Traceback" in text  # the worker's own traceback


def test_bad_configs_fail_before_anything_starts(ray_module, tmp_path):
    with pytest.raises(ValueError, match="num_workers"):
        TorchTrainer(ckpt_loop, scaling_config=ScalingConfig(num_workers=0))
    with pytest.raises(ValueError, match="the cluster has 4"):
        TorchTrainer(ckpt_loop, scaling_config=ScalingConfig(num_workers=5)).fit()
    with pytest.raises(ValueError, match="takes 2"):
        TorchTrainer(lambda a, b: None)
    with pytest.raises(TypeError, match="minray.data Dataset"):
        TorchTrainer(ckpt_loop, datasets={"train": [1, 2]})


def kill_loop(config):
    """Writes its pid at epoch 2 of the first attempt, then waits to be SIGKILLed."""
    ctx = train.get_context()
    ckpt = train.get_checkpoint()
    start = ckpt.to_dict()["epoch"] + 1 if ckpt else 0
    with open(os.path.join(config["dir"], "starts.txt"), "a") as f:
        f.write(f"{ctx.get_world_rank()} {start} {os.getpid()}\n")
    model = prepare_model(nn.Linear(2, 1))
    for epoch in range(start, 4):
        model(torch.ones(1, 2)).sum().backward()  # an allreduce: the ranks are in step
        pid_file = os.path.join(config["dir"], "victim.pid")
        if epoch == 2 and ctx.get_world_rank() == 1 and not os.path.exists(pid_file):
            # wait until the driver has taken in the report (and checkpoint) of epoch 1
            seen = os.path.join(config["dir"], "reported_1")
            deadline = time.monotonic() + 120
            while not os.path.exists(seen) and time.monotonic() < deadline:
                time.sleep(0.02)
            with open(pid_file + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.rename(pid_file + ".tmp", pid_file)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # the test kills us here
                time.sleep(0.05)
            raise RuntimeError("was not killed")
        ckpt = Checkpoint.from_dict({"epoch": epoch}) if ctx.get_world_rank() == 0 else None
        train.report({"epoch": epoch, "pid": os.getpid()}, checkpoint=ckpt)


class _MarkReports(train.UserCallback):
    """On the driver: a file per report taken in, for the worker to wait on."""

    def __init__(self, path):
        self.path = path

    def after_report(self, run_context, metrics, checkpoint):
        open(os.path.join(self.path, f"reported_{metrics[0]['epoch']}"), "w").close()


def _kill_when_ready(pid_file, killed):
    deadline = time.monotonic() + 120
    while not os.path.exists(pid_file) and time.monotonic() < deadline:
        time.sleep(0.02)
    pid = int(open(pid_file).read())
    os.kill(pid, signal.SIGKILL)
    killed.append(pid)


@pytest.mark.slow
def test_sigkilled_worker_restarts_the_group_from_the_latest_checkpoint(ray_module, tmp_path):
    killed = []
    killer = threading.Thread(target=_kill_when_ready,
                              args=(str(tmp_path / "victim.pid"), killed), daemon=True)
    killer.start()
    result = TorchTrainer(
        kill_loop, train_loop_config={"dir": str(tmp_path)},
        scaling_config=ScalingConfig(num_workers=2),
        run_config=RunConfig(name="ft", storage_path=str(tmp_path),
                             failure_config=FailureConfig(max_failures=1),
                             callbacks=[_MarkReports(str(tmp_path))])).fit()
    killer.join(5)
    assert killed, "the killer thread never found the victim's pid"
    assert result.error is None and result.metrics["epoch"] == 3
    starts = [line.split() for line in (tmp_path / "starts.txt").read_text().splitlines()]
    # attempt 1 started both ranks at epoch 0; attempt 2 both at epoch 2 (after checkpoint 1)
    assert sorted((int(r), int(s)) for r, s, _ in starts) == [(0, 0), (0, 2), (1, 0), (1, 2)]
    new_pids = {int(p) for _, s, p in starts if s == "2"}
    assert killed[0] not in new_pids and len(new_pids) == 2  # a fresh group
    assert [m["epoch"] for _, m in result.best_checkpoints] == [0, 1, 2, 3]


@pytest.mark.slow
def test_sigkill_without_retries_fails_fit(ray_module, tmp_path):
    killed = []
    threading.Thread(target=_kill_when_ready, args=(str(tmp_path / "victim.pid"), killed),
                     daemon=True).start()
    with pytest.raises(train.WorkerGroupError, match="died"):
        TorchTrainer(kill_loop, train_loop_config={"dir": str(tmp_path)},
                     scaling_config=ScalingConfig(num_workers=2),
                     run_config=RunConfig(name="ft0", storage_path=str(tmp_path),
                                          callbacks=[_MarkReports(str(tmp_path))])).fit()
    assert killed


def lr_loop(config):
    w = torch.zeros(1, requires_grad=True)
    for epoch in range(3):
        loss = ((w - 3.0) ** 2).sum()
        loss.backward()
        with torch.no_grad():
            w -= config["lr"] * w.grad
            w.grad.zero_()
        train.report({"loss": float(((w - 3.0) ** 2).sum()), "epoch": epoch})


@pytest.mark.slow
def test_tuner_over_a_trainer(ray_module, tmp_path):
    trainer = TorchTrainer(lr_loop, train_loop_config={"lr": 0.0},
                           scaling_config=ScalingConfig(num_workers=1),
                           run_config=RunConfig(storage_path=str(tmp_path), name="tt"))
    tuner = tune.Tuner(trainer,
                       param_space={"train_loop_config": {"lr": tune.grid_search([0.01, 0.4])}},
                       tune_config=tune.TuneConfig(metric="loss", mode="min"))
    grid = tuner.fit()
    assert len(grid) == 2 and grid.errors == []
    best = grid.get_best_result()
    assert best.config["train_loop_config"]["lr"] == 0.4
    assert all(r.metrics["training_iteration"] == 3 and r.metrics["epoch"] == 2 for r in grid)
    assert grid.experiment_path == str(tmp_path / "tt")


@pytest.mark.slow
def test_tuner_over_a_failing_trainer_keeps_the_traceback_in_result_error(ray_module, tmp_path):
    trainer = TorchTrainer(failing_loop, scaling_config=ScalingConfig(num_workers=2),
                           run_config=RunConfig(storage_path=str(tmp_path), name="tf"))
    [result] = tune.Tuner(trainer).fit()
    assert isinstance(result.error, TrainingFailedError)
    assert "bad batch on purpose" in str(result.error) and "failing_loop" in str(result.error)
