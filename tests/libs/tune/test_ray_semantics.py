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

    config = tune.CheckpointConfig(num_to_keep=1, checkpoint_score_attribute="score",
                                   checkpoint_score_order="min")
    (r,) = _run(tmp_path, scores_with_checkpoints, {"scores": [1, 5, 2, 4, 3]}, name="min",
                checkpoint_config=config)
    assert [m["score"] for _, m in r.best_checkpoints] == [1] and _score_of(r.checkpoint) == 3

    (r,) = _run(tmp_path, scores_with_checkpoints, {"scores": [1, 5, 2, 4, 3]}, name="newest",
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2))
    assert [m["score"] for _, m in r.best_checkpoints] == [4, 3]
