"""Failures of processes: a trial's actor SIGKILLed, the driver SIGKILLed."""
import os
import signal
import subprocess
import sys
import time

import pytest

import minray
from minray import tune

from helpers import wait_until

HERE = os.path.dirname(os.path.abspath(__file__))


def dies_once(config):
    marker = os.path.join(config["dir"], f"died_{config['i']}")
    tune.report({"phase": 0})
    if not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)  # the trial's actor process dies
    tune.report({"phase": 1})


@pytest.mark.slow
def test_killed_trial_actor_is_retried(ray_start_regular, tmp_path):
    tuner = tune.Tuner(
        dies_once, param_space={"dir": str(tmp_path), "i": tune.grid_search([0, 1])},
        run_config=tune.RunConfig(storage_path=str(tmp_path),
                                  failure_config=tune.FailureConfig(max_failures=1)))
    results = tuner.fit()
    assert results.num_errors == 0
    assert [r.metrics["phase"] for r in results] == [1, 1]
    # without retries the dead actor is the trial's error; the others go on
    os.makedirs(tmp_path / "again")
    tuner = tune.Tuner(
        dies_once, param_space={"dir": str(tmp_path / "again"), "i": tune.grid_search([0, 1])},
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="no_retry"))
    results = tuner.fit()
    assert results.num_errors == 2
    assert all(isinstance(e, minray.exceptions.RayActorError) for e in results.errors)


@pytest.mark.slow
def test_restore_after_driver_sigkill(shutdown_only, tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    storage = tmp_path / "results"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([HERE] + [p for p in env.get("PYTHONPATH", "").split(
        os.pathsep) if p])
    if minray.is_initialized():
        minray.shutdown()
    log = open(tmp_path / "driver.log", "w")
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "restore_driver.py"),
                             str(storage), str(markers)], env=env, stdout=log, stderr=log)
    try:
        ok = wait_until(lambda: len([m for m in os.listdir(markers)
                                     if m.startswith("done_")]) >= 2, timeout=60)
        assert ok, (tmp_path / "driver.log").read_text()
        time.sleep(0.2)  # let the driver record what it has seen
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert len([m for m in os.listdir(markers) if m.startswith("done_")]) < 6

    sys.path.insert(0, HERE)
    try:
        from restore_driver import slow_trial
    finally:
        sys.path.remove(HERE)
    minray.init(num_cpus=4)
    path = storage / "killed"
    assert tune.Tuner.can_restore(path)
    tuner = tune.Tuner.restore(str(path), slow_trial)
    # what the killed driver had recorded as finished (a trainable that wrote its
    # done marker but whose end the driver had not seen yet is rightly rerun)
    done_before = {str(r.config["i"]) for r in tuner.get_results() if r.metrics.get("done")}
    assert done_before
    results = tuner.fit()
    assert len(results) == 6 and results.num_errors == 0
    assert sorted(r.config["i"] for r in results) == list(range(6))
    assert all(r.metrics["step"] == 2 for r in results)
    starts = {}
    for m in os.listdir(markers):
        if m.startswith("start_"):
            starts.setdefault(m.split("_")[1], []).append(m)
    for i in done_before:  # finished trials were not run again
        assert len(starts[i]) == 1, (i, starts)
    assert set(starts) == {str(i) for i in range(6)}
