"""Tuner end to end on one shared runtime: trainables, results, files, errors,
checkpoints, resources, callbacks and stoppers (public API only)."""
import json
import os
import tempfile
import time

import pytest

import minray
from minray import tune
from minray.tune import Checkpoint


def counting(config):
    for step in range(config.get("steps", 5)):
        tune.report({"score": config["x"] * step, "step": step})


def run_tuner(tmp_path, trainable, space, **kw):
    stop = kw.pop("stop", None)
    callbacks = kw.pop("callbacks", None)
    failure = kw.pop("failure_config", None)
    ckpt = kw.pop("checkpoint_config", None)
    name = kw.pop("name", "exp")
    tuner = tune.Tuner(trainable, param_space=space,
                       tune_config=tune.TuneConfig(**kw),
                       run_config=tune.RunConfig(name=name, storage_path=str(tmp_path),
                                                 stop=stop, callbacks=callbacks,
                                                 failure_config=failure,
                                                 checkpoint_config=ckpt))
    return tuner.fit()


def test_function_trainable_results_and_best(ray_module, tmp_path):
    results = run_tuner(tmp_path, counting, {"x": tune.grid_search([1, 2, 3])},
                        metric="score", mode="max")
    assert len(results) == 3 and results.num_errors == 0
    assert sorted(r.config["x"] for r in results) == [1, 2, 3]
    for r in results:
        assert r.metrics["training_iteration"] == 5
        assert r.metrics["score"] == r.config["x"] * 4
        assert r.metrics["done"] is True
        assert r.metrics["config"] == r.config
        for key in ("time_total_s", "time_this_iter_s", "trial_id", "timestamp", "pid"):
            assert key in r.metrics
    best = results.get_best_result()
    assert best.config["x"] == 3
    assert results.get_best_result("score", "min").config["x"] == 1
    # scope="all" ranks by the best value ever reported
    assert results.get_best_result("step", "min", scope="all").metrics["step"] == 4


def test_unknown_metric_error_lists_metrics(ray_module, tmp_path):
    results = run_tuner(tmp_path, counting, {"x": 1.0})
    with pytest.raises(ValueError) as info:
        results.get_best_result(metric="accuracy", mode="max")
    message = str(info.value)
    assert "accuracy" in message and "'score'" in message and "'step'" in message
    with pytest.raises(ValueError, match="metric and a mode"):
        results.get_best_result()


def test_experiment_files_and_dataframes(ray_module, tmp_path):
    results = run_tuner(tmp_path, counting, {"x": tune.grid_search([1, 2]), "nested": {"a": 3}},
                        metric="score", mode="max")
    for r in results:
        assert os.path.isdir(r.path) and r.path.startswith(str(tmp_path / "exp"))
        with open(os.path.join(r.path, "params.json")) as f:
            assert json.load(f) == r.config
        with open(os.path.join(r.path, "result.json")) as f:
            lines = [json.loads(line) for line in f]
        assert [line["step"] for line in lines] == list(range(5))
        df = r.metrics_dataframe
        assert list(df["step"]) == list(range(5))
        assert "config/x" not in df.columns
    df = results.get_dataframe()
    assert len(df) == 2
    assert {"score", "config/x", "config/nested/a", "logdir"} <= set(df.columns)
    best_rows = results.get_dataframe(filter_metric="score", filter_mode="min")
    assert list(best_rows["score"]) == [0, 0]


def failing(config):
    tune.report({"score": 1})
    if config["x"] == 2:
        raise ValueError("trial two is broken")
    tune.report({"score": 2})


def test_failing_trial_does_not_stop_the_experiment(ray_module, tmp_path):
    results = run_tuner(tmp_path, failing, {"x": tune.grid_search([1, 2, 3])})
    assert len(results) == 3
    assert results.num_errors == 1
    error = results.errors[0]
    assert isinstance(error, ValueError)
    text = str(error)
    assert "trial two is broken" in text and "Traceback" in text and "failing" in text
    by_x = {r.config["x"]: r for r in results}
    assert by_x[2].error is error and by_x[2].metrics["score"] == 1
    assert by_x[1].error is None and by_x[1].metrics["score"] == 2
    assert os.path.exists(os.path.join(by_x[2].path, "error.txt"))
    # tune.run raises for failed trials unless told not to
    with pytest.raises(tune.TuneError, match="did not complete"):
        tune.run(failing, config={"x": 2}, storage_path=str(tmp_path))
    analysis = tune.run(failing, config={"x": 2}, storage_path=str(tmp_path),
                        raise_on_failed_trial=False)
    assert analysis.trials[0].status == "ERROR"


def test_fail_fast_raise(ray_module, tmp_path):
    tuner = tune.Tuner(failing, param_space={"x": 2}, run_config=tune.RunConfig(
        storage_path=str(tmp_path), failure_config=tune.FailureConfig(fail_fast="raise")))
    with pytest.raises(ValueError, match="trial two is broken"):
        tuner.fit()


def flaky_with_checkpoint(config):
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            start = int(open(os.path.join(d, "step")).read()) + 1
    for step in range(start, 6):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "step"), "w") as f:
                f.write(str(step))
            tune.report({"step": step, "resumed_from": start},
                        checkpoint=Checkpoint.from_directory(d))
        marker = os.path.join(config["dir"], "failed_once")
        if step == 2 and not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("transient failure")


def test_failure_config_retries_from_checkpoint(ray_module, tmp_path):
    results = run_tuner(tmp_path, flaky_with_checkpoint, {"dir": str(tmp_path)},
                        failure_config=tune.FailureConfig(max_failures=1))
    (r,) = list(results)
    assert r.error is None
    assert r.metrics["step"] == 5 and r.metrics["resumed_from"] == 3
    assert r.metrics["training_iteration"] == 6  # iterations continue from the checkpoint
    assert r.checkpoint is not None
    with r.checkpoint.as_directory() as d:
        assert open(os.path.join(d, "step")).read() == "5"
    assert r.checkpoint.path.startswith(r.path)


def test_checkpoint_num_to_keep(ray_module, tmp_path):
    def train(config):
        for step in range(5):
            with tempfile.TemporaryDirectory() as d:
                open(os.path.join(d, "x"), "w").write(str(step))
                tune.report({"loss": [3, 1, 4, 0, 5][step]},
                            checkpoint=Checkpoint.from_directory(d))
    results = run_tuner(tmp_path, train, {}, checkpoint_config=tune.CheckpointConfig(
        num_to_keep=2, checkpoint_score_attribute="loss", checkpoint_score_order="min"))
    (r,) = list(results)
    kept = sorted(d for d in os.listdir(r.path) if d.startswith("checkpoint_"))
    assert len(kept) == 3     # the best two (losses 0 and 1) and the latest (5), as in Ray
    assert [m["loss"] for _, m in r.best_checkpoints] == [1, 0]


class Quadratic(tune.Trainable):
    def setup(self, config):
        self.x = config["x0"]
        self.lr = config.get("lr", 0.1)

    def step(self):
        self.x -= self.lr * 2 * self.x
        return {"loss": self.x ** 2, "pid": os.getpid()}

    def save_checkpoint(self, checkpoint_dir):
        return {"x": self.x}

    def load_checkpoint(self, checkpoint):
        self.x = checkpoint["x"]


def test_class_trainable(ray_module, tmp_path):
    results = run_tuner(tmp_path, Quadratic, {"x0": tune.grid_search([1.0, 2.0])},
                        metric="loss", mode="min", stop={"training_iteration": 4},
                        checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=2,
                                                                checkpoint_at_end=True))
    assert len(results) == 2 and results.num_errors == 0
    for r in results:
        assert r.metrics["training_iteration"] == 4
        assert r.metrics["loss"] == pytest.approx((r.config["x0"] * 0.8 ** 4) ** 2)
        assert r.checkpoint is not None
    # restore a Trainable from its checkpoint directly
    t = Quadratic({"x0": 9.0})
    t.restore(results[0].checkpoint.path)
    assert t.iteration == 4 and t.x == pytest.approx(results[0].config["x0"] * 0.8 ** 4)


def with_data(config, data=None, offset=0):
    tune.report({"total": sum(data) + offset + config["x"]})


def test_with_parameters_and_with_resources(ray_module, tmp_path):
    big = list(range(1000))
    trainable = tune.with_resources(tune.with_parameters(with_data, data=big, offset=1),
                                    {"cpu": 2})
    results = run_tuner(tmp_path, trainable, {"x": tune.grid_search([0, 10, 20])})
    assert sorted(r.metrics["total"] for r in results) == [sum(big) + 1 + x for x in (0, 10, 20)]


def report_times(config):
    start = time.time()
    time.sleep(0.15)
    tune.report({"start": start, "end": time.time(),
                 "trial_cpus": tune.get_context().get_trial_resources().get("num_cpus")})


def _overlap(results):
    events = sorted([(r.metrics["start"], 1) for r in results] +
                    [(r.metrics["end"], -1) for r in results])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def test_resources_and_max_concurrent_limit_parallelism(ray_module, tmp_path):
    trainable = tune.with_resources(report_times, {"cpu": 2})
    results = run_tuner(tmp_path, trainable, {"i": tune.grid_search(list(range(4)))})
    assert _overlap(results) <= 2  # 4 CPUs / 2 per trial
    assert all(r.metrics["trial_cpus"] == 2 for r in results)
    results = run_tuner(tmp_path, report_times, {"i": tune.grid_search(list(range(4)))},
                        max_concurrent_trials=1, name="serial")
    assert _overlap(results) == 1


class Recorder(tune.Callback):
    def __init__(self):
        self.events = []

    def setup(self, **info):
        self.events.append(("setup",))

    def on_trial_start(self, iteration, trials, trial, **info):
        self.events.append(("start", trial.trial_id))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.events.append(("result", trial.trial_id, result.get("step")))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.events.append(("complete", trial.trial_id))

    def on_trial_error(self, iteration, trials, trial, **info):
        self.events.append(("error", trial.trial_id))

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        self.events.append(("checkpoint", trial.trial_id))

    def on_experiment_end(self, trials, **info):
        self.events.append(("end", len(trials)))


def test_callbacks_see_every_event(ray_module, tmp_path):
    cb = Recorder()
    results = run_tuner(tmp_path, counting, {"x": tune.grid_search([1, 2])}, callbacks=[cb])
    ids = [r.metrics["trial_id"] for r in results]
    assert cb.events[0] == ("setup",) and cb.events[-1] == ("end", 2)
    for tid in ids:
        mine = [e for e in cb.events if len(e) > 1 and e[1] == tid]
        assert mine[0] == ("start", tid) and mine[-1] == ("complete", tid)
        assert [e[2] for e in mine if e[0] == "result"] == list(range(5))
    cb = Recorder()
    run_tuner(tmp_path, failing, {"x": 2}, callbacks=[cb], name="errors")
    assert [e[0] for e in cb.events if e[0] in ("error", "complete")] == ["error"]


class AboveThree(tune.Stopper):
    def __call__(self, trial_id, result):
        return result["step"] >= 3

    def stop_all(self):
        return False


def endless(config):
    step = 0
    while True:
        tune.report({"step": step, "score": step})
        step += 1
        time.sleep(config.get("sleep", 0))


def test_stoppers(ray_module, tmp_path):
    r = run_tuner(tmp_path, endless, {}, stop={"step": 7}, name="d")[0]
    assert r.metrics["step"] == 7 and r.metrics["training_iteration"] == 8
    r = run_tuner(tmp_path, endless, {}, stop=lambda tid, res: res["step"] >= 2, name="f")[0]
    assert r.metrics["step"] == 2
    r = run_tuner(tmp_path, endless, {}, stop=AboveThree(), name="c")[0]
    assert r.metrics["step"] == 3
    r = run_tuner(tmp_path, endless, {}, stop=tune.stopper.MaximumIterationStopper(5),
                  name="m")[0]
    assert r.metrics["training_iteration"] == 5
    with pytest.raises(ValueError, match="not in the trial's results"):
        run_tuner(tmp_path, endless, {}, stop={"epochs": 3}, name="bad")


def test_time_budget_ends_the_experiment(ray_module, tmp_path):
    start = time.monotonic()
    results = run_tuner(tmp_path, endless, {"sleep": 0.01, "i": tune.grid_search([0, 1])},
                        time_budget_s=4)   # room for a loaded machine to start the trials
    assert time.monotonic() - start < 40  # endless trainables, yet fit() returns
    assert any(r.metrics.get("training_iteration", 0) >= 1 for r in results)
    assert all(r.error is None for r in results)


def test_tune_run_analysis(ray_module, tmp_path):
    analysis = tune.run(counting, config={"x": tune.grid_search([1, 2])}, metric="score",
                        mode="max", storage_path=str(tmp_path))
    assert analysis.best_config == {"x": 2}
    assert analysis.best_trial.last_result["score"] == 8
    assert analysis.get_best_config("score", "min") == {"x": 1}
    assert analysis.best_result["score"] == 8
    df = analysis.results_df
    assert len(df) == 2 and "config/x" in df.columns and df.index.name == "trial_id"
    assert set(analysis.results) == {t.trial_id for t in analysis.trials}
    assert len(analysis.trial_dataframes) == 2
    assert tune.logger.pretty_print({"a": 1, "b": {"c": 2.5}}) == "a: 1\nb:\n  c: 2.5\n"


def test_report_outside_a_trial_explains():
    with pytest.raises(RuntimeError, match="outside a Tune trial"):
        tune.report({"x": 1})
    with pytest.raises(TypeError, match="takes a dict"):
        tune.report(3)


def test_progress_table(ray_module, tmp_path, capsys):
    reporter = tune.CLIReporter(metric_columns=["score"], max_report_frequency=0)
    tune.Tuner(counting, param_space={"x": tune.grid_search([1, 2])},
               run_config=tune.RunConfig(storage_path=str(tmp_path),
                                         progress_reporter=reporter)).fit()
    out = capsys.readouterr().out
    assert "== Status == 2 trials: 2 TERMINATED" in out
    assert "Trial name" in out and "score" in out and "counting_" in out
    # quiet when stdout is not a terminal and no reporter was asked for
    tune.Tuner(counting, param_space={"x": 1},
               run_config=tune.RunConfig(storage_path=str(tmp_path))).fit()
    assert "== Status ==" not in capsys.readouterr().out


def test_restore_a_finished_experiment_reads_its_results(ray_module, tmp_path):
    run_tuner(tmp_path, counting, {"x": tune.grid_search([1, 2])}, name="done")
    tuner = tune.Tuner.restore(str(tmp_path / "done"), counting)
    results = tuner.get_results()
    assert sorted(r.metrics["score"] for r in results) == [4, 8]
    again = tuner.fit()  # nothing left to run
    assert sorted(r.metrics["score"] for r in again) == [4, 8]
    with pytest.raises(ValueError, match="not a Tune experiment directory"):
        tune.Tuner.restore(str(tmp_path), counting)


def test_trial_name_and_dirname_creators(ray_module, tmp_path):
    results = tune.Tuner(
        counting, param_space={"x": tune.grid_search([1, 2])},
        tune_config=tune.TuneConfig(
            trial_name_creator=lambda t: f"run-x{t.config['x']}",
            trial_dirname_creator=lambda t: f"dir_{t.config['x']}"),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="names")).fit()
    assert sorted(os.path.basename(r.path) for r in results) == ["dir_1", "dir_2"]
    assert all(os.path.exists(os.path.join(r.path, "progress.csv")) for r in results)
