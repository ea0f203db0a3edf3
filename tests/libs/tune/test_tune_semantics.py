"""Where minray.tune must answer as Ray 2.60 does (issue #13, Core VI).

Each expectation below was checked against Ray 2.60 itself: which checkpoints
CheckpointConfig keeps, PBT's exploit and explore, Stopper.stop_all,
Trainable.cleanup, nested metrics and "a/b/c" stop keys, refusing trainables that
cannot be serialized and param spaces that are not dicts, and the callbacks'
``iteration``.
"""
import os
import tempfile
import threading
import time

import pytest

from minray import tune
from minray.tune import Checkpoint

pytestmark = pytest.mark.usefixtures("ray_module")


def _run(tmp_path, trainable, space=None, *, name="exp", tune_config=None, **run_kwargs):
    return tune.Tuner(trainable, param_space=space or {},
                      tune_config=tune_config or tune.TuneConfig(),
                      run_config=tune.RunConfig(name=name, storage_path=str(tmp_path),
                                                verbose=0, **run_kwargs)).fit()


# ---------------------------------------------------------------- CheckpointConfig
def scores_with_checkpoints(config):
    for score in config["scores"]:
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "score"), "w") as f:
                f.write(str(score))
            tune.report({"score": score}, checkpoint=Checkpoint.from_directory(d))


def _score_of(checkpoint):
    with open(os.path.join(checkpoint.path, "score")) as f:
        return int(f.read())


def test_checkpoint_config_keeps_the_best_not_the_latest(tmp_path):
    config = tune.CheckpointConfig(num_to_keep=2, checkpoint_score_attribute="score",
                                   checkpoint_score_order="max")
    (r,) = _run(tmp_path, scores_with_checkpoints, {"scores": [1, 5, 2, 4, 3]},
                checkpoint_config=config)
    assert _score_of(r.checkpoint) == 3                    # the latest, always kept
    assert [(m["score"], _score_of(c)) for c, m in r.best_checkpoints] == [(4, 4), (5, 5)]
    assert _score_of(r.get_best_checkpoint("score", "max")) == 5
    on_disk = sorted(_score_of(Checkpoint(os.path.join(r.path, d)))
                     for d in os.listdir(r.path) if d.startswith("checkpoint_"))
    assert on_disk == [3, 4, 5]
    restored = tune.Tuner.restore(str(tmp_path / "exp"), scores_with_checkpoints).get_results()
    assert [m["score"] for _, m in restored[0].best_checkpoints] == [4, 5]

    config = tune.CheckpointConfig(num_to_keep=1, checkpoint_score_attribute="score",
                                   checkpoint_score_order="min")
    (r,) = _run(tmp_path, scores_with_checkpoints, {"scores": [1, 5, 2, 4, 3]}, name="min",
                checkpoint_config=config)
    assert [m["score"] for _, m in r.best_checkpoints] == [1] and _score_of(r.checkpoint) == 3

    (r,) = _run(tmp_path, scores_with_checkpoints, {"scores": [1, 5, 2, 4, 3]}, name="newest",
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2))
    assert [m["score"] for _, m in r.best_checkpoints] == [4, 3]


# ---------------------------------------------------------------- Stopper.stop_all
class StopAllAfter(tune.Stopper):
    def __init__(self, n):
        self.n, self.seen = n, 0

    def __call__(self, trial_id, result):
        self.seen += 1
        return False

    def stop_all(self):
        return self.seen >= self.n


def many_reports(config):
    for i in range(200):      # fast: the worker runs ahead of the driver
        tune.report({"i": i})


def test_stopper_stop_all_ends_the_experiment_at_that_result(tmp_path):
    stopper = StopAllAfter(3)
    grid = _run(tmp_path, many_reports, {"x": tune.grid_search([1, 2, 3, 4])}, stop=stopper,
                tune_config=tune.TuneConfig(max_concurrent_trials=1))
    assert len(grid) == 1          # no further trial started
    assert grid[0].metrics["training_iteration"] == 3 and stopper.seen == 3
    assert grid[0].error is None
    # without a concurrency limit the other trials exist already; they end TERMINATED
    stopper = StopAllAfter(3)
    grid = _run(tmp_path, many_reports, {"x": tune.grid_search([1, 2, 3, 4, 5, 6])},
                name="all", stop=stopper, tune_config=tune.TuneConfig(reuse_actors=False),
                )
    assert len(grid) == 6 and grid.num_terminated == 6 and grid.num_errors == 0
    assert sum(r.metrics.get("training_iteration", 0) > 0 for r in grid) <= 4


# ---------------------------------------------------------------- Trainable.cleanup
class CleansUp(tune.Trainable):
    def setup(self, config):
        self.i = 0

    def step(self):
        self.i += 1
        return {"i": self.i}

    def cleanup(self):
        with open(os.path.join(self.config["marker_dir"], self.trial_id), "w") as f:
            f.write(str(self.i))


def test_trainable_cleanup_runs_when_a_trial_stops(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    grid = _run(tmp_path, CleansUp, {"marker_dir": str(markers), "k": tune.grid_search([1, 2])},
                stop={"training_iteration": 3})
    assert sorted(os.listdir(markers)) == sorted(r.metrics["trial_id"] for r in grid)
    assert {(markers / name).read_text() for name in os.listdir(markers)} == {"3"}
    # used directly, outside Tune: train() works and stop() calls cleanup()
    trainable = CleansUp(config={"marker_dir": str(markers)})
    assert trainable.train()["trial_id"] == "default"
    trainable.stop()
    assert (markers / "default").read_text() == "1"


# ---------------------------------------------------------------- nested metrics
def nested_reports(config):
    for i in range(10):
        tune.report({"a": {"b": {"c": i}}, "loss": {"val": 10 - i}})


def test_nested_metrics_and_slash_stop_keys(tmp_path):
    grid = _run(tmp_path, nested_reports, stop={"a/b/c": 3},
                tune_config=tune.TuneConfig(metric="loss/val", mode="min"))
    (r,) = grid
    assert r.metrics["training_iteration"] == 4 and r.metrics["a"] == {"b": {"c": 3}}
    assert grid.get_best_result().metrics["loss"] == {"val": 7}
    assert {"a/b/c", "loss/val"} <= set(grid.get_dataframe().columns)
    (r,) = _run(tmp_path, nested_reports, name="second", stop={"loss/val": 8})
    assert r.metrics["training_iteration"] == 1
    with pytest.raises(ValueError, match="a/b/x"):
        _run(tmp_path, nested_reports, name="third", stop={"a/b/x": 1})


# ---------------------------------------------------------------- refused inputs
def test_unserializable_trainable_and_non_dict_param_space_are_refused(tmp_path):
    lock = threading.Lock()

    def holds_a_lock(config):
        with lock:
            tune.report({"x": 1})

    with pytest.raises(TypeError, match="The provided trainable is not serializable"):
        tune.Tuner(holds_a_lock)
    assert not os.listdir(tmp_path)
    for bad in ([1, 2], 3, "abc", (("x", 1),)):
        with pytest.raises(TypeError, match="The `param_space` passed to the `Tuner` must be "
                                            "a dict"):
            tune.Tuner(many_reports, param_space=bad)
        with pytest.raises(ValueError):        # Ray's own exception type
            tune.Tuner(many_reports, param_space=bad)
    with pytest.raises(TypeError, match="`config` passed to `tune.run"):
        tune.run(many_reports, config=[1], storage_path=str(tmp_path))


# ---------------------------------------------------------------- callbacks
class Iterations(tune.Callback):
    def __init__(self):
        self.results = []
        self.steps = []
        self.saves = []

    def on_step_begin(self, iteration, trials, **info):
        self.steps.append(iteration)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.results.append(iteration)

    def on_trial_save(self, iteration, trials, trial, **info):
        self.saves.append(trial.trial_id)


def three_reports(config):
    for i in range(3):
        tune.report({"i": i})


def test_callback_iteration_counts_every_result(tmp_path):
    cb = Iterations()
    _run(tmp_path, three_reports, {"x": tune.grid_search([1, 2])}, callbacks=[cb])
    assert len(cb.results) == 6
    assert cb.results == sorted(set(cb.results))        # one step per result, increasing
    assert cb.steps == sorted(cb.steps)
    # on_trial_save: after each save the runner asks of a class trainable
    cb = Iterations()
    _run(tmp_path, CleansUp, {"marker_dir": str(tmp_path)}, name="saves", callbacks=[cb],
         stop={"training_iteration": 4},
         checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=2))
    assert len(cb.saves) == 2


# ---------------------------------------------------------------- PBT
class Accumulator(tune.Trainable):
    """Adds lr each step; remembers whose checkpoint it was restored from."""

    def setup(self, config):
        self.value, self.restored_from = 0.0, None

    def step(self):
        self.value += self.config["lr"]
        return {"value": self.value, "restored_from": self.restored_from}

    def save_checkpoint(self, checkpoint_dir):
        return {"value": self.value, "lr": self.config["lr"]}

    def load_checkpoint(self, checkpoint):
        self.value, self.restored_from = checkpoint["value"], checkpoint["lr"]


@pytest.mark.slow      # about 10 s: every pause restarts a class trial's actor
def test_pbt_exploits_and_explores_fast_class_trials(tmp_path):
    from minray.tune.schedulers import PopulationBasedTraining

    def tag(config):
        return dict(config, tag="explored")

    pbt = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=2,
                                  custom_explore_fn=tag, quantile_fraction=0.5)
    # four fast trials, two at a time (2 of the 4 CPUs each): a trial at its interval
    # yields to the waiting ones, so the population advances together and the weak half
    # copies the strong half
    trainable = tune.with_resources(Accumulator, {"cpu": 2})
    grid = _run(tmp_path, trainable, {"lr": tune.grid_search([0.1, 1.0, 10.0, 100.0]),
                                        "tag": "original"},
                tune_config=tune.TuneConfig(metric="value", mode="max", scheduler=pbt),
                stop={"training_iteration": 6})
    assert grid.num_errors == 0 and pbt.history
    for trial_id, donor_id, old, new in pbt.history:
        assert new["tag"] == "explored" and trial_id != donor_id
    explored = [r for r in grid if r.config["tag"] == "explored"]
    assert explored
    for r in explored:       # restarted from a checkpoint that a stronger trial saved
        assert r.metrics["restored_from"] is not None
        assert r.metrics["training_iteration"] == 6
    assert max(r.metrics["value"] for r in grid) == pytest.approx(600.0)


def accumulate_with_checkpoints(config):
    value, start = 0.0, 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            with open(os.path.join(d, "state")) as f:
                value, start = f.read().split()
        value, start = float(value), int(start)
    for step in range(start, 12):
        value += config["lr"]
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "state"), "w") as f:
                f.write(f"{value} {step + 1}")
            tune.report({"value": value}, checkpoint=Checkpoint.from_directory(d))


def test_pbt_synch_mutations_shift_to_a_neighbour(tmp_path):
    from minray.tune.schedulers import PopulationBasedTraining
    lrs = [0.1, 1.0, 10.0, 100.0]
    pbt = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=3,
                                  hyperparam_mutations={"lr": lrs}, resample_probability=0.0,
                                  quantile_fraction=0.5, synch=True)
    grid = _run(tmp_path, accumulate_with_checkpoints, {"lr": tune.grid_search(lrs)},
                tune_config=tune.TuneConfig(metric="value", mode="max", scheduler=pbt))
    assert grid.num_errors == 0
    # synch: every trial is ranked at t = 3, 6, 9 and 12, and each time the bottom two
    # copy the top two
    assert len(pbt.history) == 8
    for _, _, _, new in pbt.history:       # no resampling: a value of the list
        assert new["lr"] in lrs
    # the two weak trials (lr 0.1 and 1.0, at most 12 alone) took a strong checkpoint
    assert min(r.metrics["value"] for r in grid) > 12
    # log_config (on by default): one JSON line per exploit, globally and per trial
    import json
    with open(tmp_path / "exp" / "pbt_global.txt") as f:
        lines = [json.loads(line) for line in f]
    assert len(lines) == 8 and all(len(line) == 6 for line in lines)
    assert [line[5] for line in lines] == [h[3] for h in pbt.history]
    assert any(name.startswith("pbt_policy_") for name in os.listdir(tmp_path / "exp"))
    assert all(r.metrics["training_iteration"] == 12 for r in grid)
