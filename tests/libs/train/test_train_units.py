"""The pure parts of minray.train: rank assignment, GPU visibility, report rounds,
config validation, and the shared Tune/Train objects."""
import pytest

import minray
from minray import train, tune
from minray.train.controller import ReportRounds
from minray.train.worker_group import RankInfo, WorkerInfo, assign_ranks, device_index


def test_train_and_tune_share_report_checkpoint_and_configs():
    assert train.report is tune.report
    assert train.get_checkpoint is tune.get_checkpoint
    assert train.Checkpoint is tune.Checkpoint
    assert train.RunConfig is tune.RunConfig
    assert train.CheckpointConfig is tune.CheckpointConfig
    assert train.FailureConfig is tune.FailureConfig


def test_legacy_air_names_are_the_train_and_tune_objects():
    from minray.air import Checkpoint, session
    from minray.air.config import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from minray.train.torch import TorchCheckpoint
    assert minray.air.session is session
    assert session.report is train.report and session.get_dataset_shard is \
        train.get_dataset_shard and session.get_checkpoint is train.get_checkpoint
    assert Checkpoint is train.Checkpoint and issubclass(TorchCheckpoint, Checkpoint)
    assert (ScalingConfig, RunConfig, CheckpointConfig, FailureConfig) == (
        train.ScalingConfig, train.RunConfig, train.CheckpointConfig, train.FailureConfig)


def test_calls_outside_a_worker_raise_with_a_hint():
    with pytest.raises(RuntimeError, match="outside a training worker"):
        train.get_dataset_shard("train")
    with pytest.raises(RuntimeError, match="outside"):
        train.report({"x": 1})


def test_scaling_config_validates_and_fills_defaults():
    with pytest.raises(ValueError, match="num_workers"):
        train.ScalingConfig(num_workers=0)
    with pytest.raises(ValueError, match="num_workers"):
        train.ScalingConfig(num_workers=1.5)
    with pytest.raises(ValueError, match="placement_strategy"):
        train.ScalingConfig(placement_strategy="NOPE")
    sc = train.ScalingConfig(num_workers=2, use_gpu=True, resources_per_worker={"cpu": 2})
    assert sc.bundles() == [{"CPU": 2, "GPU": 1}] * 2
    assert sc.actor_options() == {"num_cpus": 2, "num_gpus": 1}
    assert train.ScalingConfig(num_workers=3).actor_options() == {"num_cpus": 1}


def test_ranks_group_workers_by_node_and_share_the_nodes_gpus():
    infos = [WorkerInfo(10, "nodeB", "b", ["3"]), WorkerInfo(11, "nodeA", "a", ["1"]),
             WorkerInfo(12, "nodeB", "b", ["2"]), WorkerInfo(13, "nodeA", "a", ["0"])]
    ranks = assign_ranks(infos)
    # nodes in order of first appearance (B, A); within a node by GPU id
    assert [r.world_rank for r in ranks] == [1, 3, 0, 2]
    assert [r.local_rank for r in ranks] == [1, 1, 0, 0]
    assert [r.node_rank for r in ranks] == [0, 1, 0, 1]
    assert all(r.world_size == 4 and r.local_world_size == 2 for r in ranks)
    assert ranks[0].visible_devices == "2,3" and ranks[1].visible_devices == "0,1"
    # each worker's device is its own GPU's index among the node's visible ones
    assert device_index(ranks[0], ["3"]) == 1 and device_index(ranks[2], ["2"]) == 0
    cpu = assign_ranks([WorkerInfo(1, "n", "h", []), WorkerInfo(2, "n", "h", [])])
    assert [r.visible_devices for r in cpu] == [None, None]
    assert device_index(cpu[1], []) == 1


def test_report_rounds_pair_the_kth_report_of_every_rank():
    rounds = ReportRounds(2)
    rounds.add(1, [({"loss": 1.1}, {"path": "/c1"}), ({"loss": 0.9}, None)])
    assert rounds.ready() == []
    rounds.add(0, [({"loss": 1.0}, None)])
    [first] = rounds.ready()
    assert first.metrics == {"loss": 1.0} and first.checkpoint_path == "/c1"
    rounds.finish(0)
    assert not rounds.done and rounds.ready() == []
    rounds.finish(1)
    [left] = rounds.ready()  # rank 1 reported once more than rank 0: passed on
    assert left.metrics == {"loss": 0.9} and rounds.done


def test_checkpoint_dict_convenience(tmp_path):
    ckpt = train.Checkpoint.from_dict({"epoch": 3})
    assert ckpt.to_dict() == {"epoch": 3}
    out = ckpt.to_directory(str(tmp_path / "copy"))
    assert train.Checkpoint.from_directory(out).to_dict() == {"epoch": 3}
    with pytest.raises(ValueError, match="from_dict"):
        train.Checkpoint.from_directory(str(tmp_path)).to_dict()


def test_torch_checkpoint_round_trips_a_model_and_preprocessor():
    import torch
    from minray.train.torch import TorchCheckpoint, get_device, prepare_model
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    ckpt = TorchCheckpoint.from_model(model, preprocessor={"scale": 2})
    assert isinstance(ckpt, train.Checkpoint)
    restored = TorchCheckpoint(ckpt.path).get_model(torch.nn.Linear(3, 2))
    assert torch.equal(restored.weight, model.weight)
    assert TorchCheckpoint(ckpt.path).get_preprocessor() == {"scale": 2}
    # outside a worker group: the CPU, and no DDP wrapper for a single process
    assert get_device().type == "cpu"
    assert prepare_model(model) is model
