"""Checkpoint (directory-backed, no runtime needed) and the trial context."""
import os

import pytest

from minray import tune
from minray.tune import Checkpoint


def test_checkpoint_directory_round_trip(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "weights").write_text("42")
    ckpt = Checkpoint.from_directory(str(src))
    assert ckpt.path == str(src) and "Checkpoint" in repr(ckpt)
    with ckpt.as_directory() as d:
        assert open(os.path.join(d, "weights")).read() == "42"
    copy = ckpt.to_directory(str(tmp_path / "copy"))
    assert open(os.path.join(copy, "weights")).read() == "42"
    temp = ckpt.to_directory()
    assert os.path.exists(os.path.join(temp, "weights"))
    ckpt.set_metadata({"epoch": 1})
    ckpt.update_metadata({"loss": 0.5})
    assert ckpt.get_metadata() == {"epoch": 1, "loss": 0.5}
    assert Checkpoint.from_directory(str(src)) == ckpt
    with pytest.raises(ValueError, match="existing directory"):
        Checkpoint.from_directory(str(tmp_path / "missing"))


def context_reporter(config):
    ctx = tune.get_context()
    tune.report({"trial_id": ctx.get_trial_id(), "dir": ctx.get_trial_dir(),
                 "name": ctx.get_trial_name(), "exp": ctx.get_experiment_name()})


def test_trial_context(ray_module, tmp_path):
    results = tune.Tuner(context_reporter, run_config=tune.RunConfig(
        name="ctx", storage_path=str(tmp_path))).fit()
    m = results[0].metrics
    assert m["dir"] == results[0].path and m["exp"] == "ctx"
    assert m["name"].endswith(m["trial_id"])
    with pytest.raises(RuntimeError, match="outside a Tune trial"):
        tune.get_checkpoint()
