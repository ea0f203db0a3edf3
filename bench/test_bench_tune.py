"""pytest-benchmark cases for minray.tune: ``pytest bench/test_bench_tune.py --benchmark-only``.

Small versions of bench/tune_workloads.py (side-by-side figures against Ray
come from ``python -m bench.tune_compare``).
"""
import pytest

import minray
from minray import tune
from minray.tune.schedulers import ASHAScheduler


def trivial(config):
    for step in range(10):
        tune.report({"score": config["x"] * (step + 1)})


def chatty(config):
    for step in range(config["n"]):
        tune.report({"score": step})


@pytest.fixture(scope="module")
def runtime():
    if minray.is_initialized():
        minray.shutdown()
    minray.init(num_cpus=8)
    yield minray
    minray.shutdown()


def test_asha_50_trials(benchmark, runtime, tmp_path):
    def fit():
        return tune.Tuner(
            trivial, param_space={"x": tune.uniform(0, 1)},
            tune_config=tune.TuneConfig(metric="score", mode="max", num_samples=50,
                                        scheduler=ASHAScheduler(max_t=10)),
            run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0)).fit()
    results = benchmark.pedantic(fit, rounds=3, iterations=1)
    assert len(results) == 50 and results.num_errors == 0


def test_results_8_trials_x_500(benchmark, runtime, tmp_path):
    def fit():
        return tune.Tuner(
            chatty, param_space={"i": tune.grid_search(list(range(8))), "n": 500},
            run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0)).fit()
    results = benchmark.pedantic(fit, rounds=3, iterations=1)
    assert sum(r.metrics["training_iteration"] for r in results) == 4000
