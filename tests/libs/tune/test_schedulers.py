"""Schedulers: their decisions driven directly, then inside a Tuner."""
import os
import tempfile
import time

import pytest

from minray import tune
from minray.tune import Checkpoint
from minray.tune.schedulers import (ASHAScheduler, FIFOScheduler, HyperBandScheduler,
                                    MedianStoppingRule, PopulationBasedTraining,
                                    TrialScheduler)
from minray.tune.schedulers.pbt import explore

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP


class FakeTrial:
    def __init__(self, trial_id):
        self.trial_id = trial_id
        self.status = "RUNNING"
        self.config = {}
        self.checkpoint = None

    def is_finished(self):
        return self.status in ("TERMINATED", "ERROR")


def test_asha_stops_below_the_rung_quantile():
    asha = ASHAScheduler(metric="m", mode="max", max_t=9, grace_period=1, reduction_factor=3)
    trials = [FakeTrial(str(i)) for i in range(4)]
    for t in trials:
        asha.on_trial_add(None, t)
    # rung at t=1: the first trial always goes on; the cutoff is the 2/3 quantile
    assert asha.on_trial_result(None, trials[0], {"training_iteration": 1, "m": 5}) == CONTINUE
    assert asha.on_trial_result(None, trials[1], {"training_iteration": 1, "m": 1}) == STOP
    assert asha.on_trial_result(None, trials[2], {"training_iteration": 1, "m": 9}) == CONTINUE
    assert asha.on_trial_result(None, trials[2], {"training_iteration": 2, "m": 0}) == CONTINUE
    assert asha.on_trial_result(None, trials[2], {"training_iteration": 9, "m": 9}) == STOP
    with pytest.raises(ValueError, match="metric and a mode"):
        ASHAScheduler().on_trial_result(None, trials[3], {"training_iteration": 1})
    with pytest.raises(ValueError, match="reduction_factor"):
        ASHAScheduler(reduction_factor=1)


def test_median_stopping_rule():
    rule = MedianStoppingRule(time_attr="t", metric="m", mode="max", grace_period=1,
                              min_samples_required=2)
    good = [FakeTrial("a"), FakeTrial("b")]
    for t in good:
        for step in range(1, 4):
            assert rule.on_trial_result(None, t, {"t": step, "m": 10}) == CONTINUE
    bad = FakeTrial("c")
    assert rule.on_trial_result(None, bad, {"t": 0, "m": 1}) == CONTINUE  # grace period
    assert rule.on_trial_result(None, bad, {"t": 1, "m": 1}) == STOP


def test_pbt_explore_perturbs_and_resamples():
    import random
    random.seed(0)
    mutations = {"lr": tune.uniform(0.0, 1.0), "bs": [16, 32, 64], "inner": {"k": [1, 2]}}
    seen = set()
    for _ in range(50):
        new = explore({"lr": 0.5, "bs": 32, "inner": {"k": 1}, "fixed": 3}, mutations,
                      0.25, (1.2, 0.8), None)
        assert new["fixed"] == 3 and new["bs"] in (16, 32, 64) and new["inner"]["k"] in (1, 2)
        seen.add(round(new["lr"], 3))
    assert {0.6, 0.4} <= seen and len(seen) > 3  # perturbed by factors, and resampled
    with pytest.raises(ValueError, match="hyperparam_mutations"):
        PopulationBasedTraining()


def steps(config):
    for step in range(config.get("steps", 20)):
        tune.report({"score": config["w"] * (step + 1)})


def run(tmp_path, scheduler, space, n=1, **kw):
    return tune.Tuner(steps, param_space=space, tune_config=tune.TuneConfig(
        metric="score", mode="max", scheduler=scheduler, num_samples=n, **kw),
        run_config=tune.RunConfig(storage_path=str(tmp_path))).fit()


def test_asha_in_a_tuner(ray_module, tmp_path):
    # Best first: each later trial meets better results at the rungs, so ASHA cuts it
    # whatever the timing (worst first, every new trial is the best so far and only
    # trials that happen to overlap can be cut).
    space = {"w": tune.grid_search([3.0, 2.0, 1.0, 0.5, 0.4, 0.3, 0.2, 0.1])}
    results = run(tmp_path, ASHAScheduler(max_t=16, grace_period=2, reduction_factor=2), space)
    iters = {r.config["w"]: r.metrics["training_iteration"] for r in results}
    assert max(iters.values()) == 16 and min(iters.values()) < 16
    assert all(r.metrics["score"] == pytest.approx(r.config["w"] * r.metrics[
        "training_iteration"]) for r in results)
    assert iters[3.0] == 16  # the best trial is never cut


def test_hyperband_in_a_tuner(ray_module, tmp_path):
    # max_t=9, eta=3: the first bracket takes 3 trials straight to 9; the second
    # takes 5 trials to 3 (pausing them there), keeps the best 2 and runs them to 9.
    ws = [0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    results = run(tmp_path, HyperBandScheduler(max_t=9, reduction_factor=3),
                  {"w": tune.grid_search(ws)})
    iters = {r.config["w"]: r.metrics["training_iteration"] for r in results}
    assert iters == {0.5: 9, 1.0: 9, 2.0: 9, 3.0: 3, 4.0: 3, 5.0: 3, 6.0: 9, 7.0: 9}
    assert all(r.error is None and r.metrics["score"] == pytest.approx(
        r.config["w"] * r.metrics["training_iteration"]) for r in results)


def test_median_stopping_and_fifo_in_a_tuner(ray_module, tmp_path):
    space = {"w": tune.grid_search([1.0, 2.0, 3.0, 0.01])}
    rule = MedianStoppingRule(time_attr="training_iteration", grace_period=3,
                              min_samples_required=2)
    results = run(tmp_path, rule, space, max_concurrent_trials=1)
    by_w = {r.config["w"]: r.metrics["training_iteration"] for r in results}
    assert by_w[0.01] < 20 and by_w[3.0] == 20
    results = run(tmp_path, FIFOScheduler(), {"w": 1.0})
    assert results[0].metrics["training_iteration"] == 20


def pbt_trainable(config):
    # the state is `value`, restored from the checkpoint PBT hands over
    value, start = 0.0, 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            value, start = map(float, open(os.path.join(d, "state")).read().split())
    for step in range(int(start), 20):
        time.sleep(0.02)
        value += config["lr"]
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "state"), "w") as f:
                f.write(f"{value} {step + 1}")
            tune.report({"value": value, "lr": config["lr"], "restored": bool(checkpoint)},
                        checkpoint=Checkpoint.from_directory(d))


def test_pbt_exploits_with_checkpoint_transfer(ray_module, tmp_path):
    pbt = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=2,
                                  hyperparam_mutations={"lr": [0.1, 1.0, 10.0]},
                                  quantile_fraction=0.5, resample_probability=0.0)
    results = tune.Tuner(
        pbt_trainable, param_space={"lr": tune.grid_search([0.1, 10.0])},
        tune_config=tune.TuneConfig(metric="value", mode="max", scheduler=pbt),
        run_config=tune.RunConfig(storage_path=str(tmp_path))).fit()
    assert results.num_errors == 0 and pbt.history
    # the weak trial was restarted from the strong one's checkpoint: its value jumped
    weak = [r for r in results if r.metrics["restored"]]
    assert weak
    for r in weak:
        assert r.metrics["value"] > 20 * 0.1 + 1
        assert r.config["lr"] in (1.0, 10.0)
