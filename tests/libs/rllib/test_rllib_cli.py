"""``minray rllib train`` / ``evaluate`` as a user runs them (real subprocesses)."""
import re
import subprocess
import sys

import pytest

from minray.rllib.cli import should_stop


def test_stop_criteria_read_nested_metrics():
    result = {"env_runners": {"episode_return_mean": 200.0}, "training_iteration": 3}
    assert should_stop(result, {"env_runners/episode_return_mean": 150})
    assert not should_stop(result, {"env_runners/episode_return_mean": 250,
                                    "training_iteration": 4})
    assert not should_stop({"env_runners": {"episode_return_mean": float("nan")}},
                           {"env_runners/episode_return_mean": 0})


def minray_cli(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "minray.scripts", *args], capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
def test_train_then_evaluate_checkpoint(tmp_path):
    out = minray_cli("rllib", "train", "--algo", "PPO", "--env", "CartPole-v1",
                     "--stop", '{"num_env_steps_sampled_lifetime": 2000}',
                     "--config", '{"train_batch_size": 1000, "num_epochs": 2, '
                                 '"model": {"fcnet_hiddens": [16]}}',
                     "--seed", "1", "--checkpoint-dir", str(tmp_path / "ckpt"))
    assert out.returncode == 0, out.stderr
    lines = [l for l in out.stdout.splitlines() if l.startswith("iter")]
    assert len(lines) == 2 and "steps     2000" in lines[-1]
    match = re.search(r"checkpoint saved to (\S+)", out.stdout)
    assert match and match.group(1) == str(tmp_path / "ckpt")

    out = minray_cli("rllib", "evaluate", match.group(1), "--episodes", "3")
    assert out.returncode == 0, out.stderr
    mean = float(re.search(r"mean return ([0-9.]+)", out.stdout).group(1))
    assert "episodes 3" in out.stdout and 8 <= mean <= 500


def test_bad_stop_json_is_a_clear_error():
    out = minray_cli("rllib", "train", "--algo", "PPO", "--env", "CartPole-v1",
                     "--stop", "{not json")
    assert out.returncode != 0 and "--stop must be JSON" in out.stderr


def test_cli_parser_does_not_import_torch():
    code = ("import sys, argparse, minray.scripts\n"
            "from minray.rllib import cli\n"
            "p = argparse.ArgumentParser(); cli.add_parser(p.add_subparsers())\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
