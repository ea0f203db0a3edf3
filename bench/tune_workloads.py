"""Tune benchmark workloads, written once against Ray Tune's API.

    python -m bench.tune_workloads --backend minray|ray [--workload NAME]

prints one JSON line per workload: {"workload", "value", "unit", ...}.
``bench/tune_compare.py`` runs both backends in separate interpreters (Ray
lives in its own virtual environment) and prints the table.

- asha_200_trials: 200 trials of a trivial function (up to 10 reports each)
  under ASHA; the figure is the wall time of ``Tuner.fit()``.
- asha_200_trials_reuse_actors: the same with ``reuse_actors=True`` for both.
- results_per_second: 8 concurrent trials, each reporting 1,000 results in a
  tight loop; the figure is results processed per second by the driver.
"""

import argparse
import importlib
import json
import os
import sys
import tempfile
import time


def trivial(config):
    from_ray = config["_backend"] == "ray"
    tune = importlib.import_module("ray.tune" if from_ray else "minray.tune")
    for step in range(10):
        tune.report({"score": config["x"] * (step + 1)})


def chatty(config):
    tune = importlib.import_module("ray.tune" if config["_backend"] == "ray" else "minray.tune")
    for step in range(config["n"]):
        tune.report({"score": step})


def _run_config(tune, storage):
    return tune.RunConfig(storage_path=storage, name="bench", verbose=0)


def asha_200_trials(ray, tune, backend, storage, num_trials=200, reuse_actors=None):
    from_mod = "ray.tune.schedulers" if backend == "ray" else "minray.tune.schedulers"
    ASHAScheduler = importlib.import_module(from_mod).ASHAScheduler
    tuner = tune.Tuner(
        trivial,
        param_space={"x": tune.uniform(0, 1), "_backend": backend},
        tune_config=tune.TuneConfig(metric="score", mode="max", num_samples=num_trials,
                                    scheduler=ASHAScheduler(max_t=10, grace_period=1,
                                                            reduction_factor=2),
                                    **({} if reuse_actors is None else
                                       {"reuse_actors": reuse_actors})),
        run_config=_run_config(tune, storage))
    t = time.perf_counter()
    results = tuner.fit()
    elapsed = time.perf_counter() - t
    if len(results) != num_trials or results.num_errors:
        raise RuntimeError(f"{len(results)} results, {results.num_errors} errors")
    reports = sum(r.metrics["training_iteration"] for r in results)
    return elapsed, "s", {"trials": num_trials, "results": reports}


def results_per_second(ray, tune, backend, storage, trials=8, per_trial=1000):
    tuner = tune.Tuner(
        chatty,
        param_space={"i": tune.grid_search(list(range(trials))), "n": per_trial,
                     "_backend": backend},
        tune_config=tune.TuneConfig(max_concurrent_trials=trials),
        run_config=_run_config(tune, storage))
    t = time.perf_counter()
    results = tuner.fit()
    elapsed = time.perf_counter() - t
    total = sum(r.metrics["training_iteration"] for r in results)
    if total != trials * per_trial:
        raise RuntimeError(f"expected {trials * per_trial} results, got {total}")
    return total / elapsed, "results/s", {"results": total, "seconds": elapsed}


def asha_200_trials_reuse_actors(ray, tune, backend, storage):
    """The same with TuneConfig(reuse_actors=True) (Ray's default is False;
    minray reuses function-trainable actors by default)."""
    return asha_200_trials(ray, tune, backend, storage, reuse_actors=True)


WORKLOADS = {"asha_200_trials": asha_200_trials,
             "asha_200_trials_reuse_actors": asha_200_trials_reuse_actors,
             "results_per_second": results_per_second}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="minray", choices=["minray", "ray"])
    parser.add_argument("--workload", default=None, choices=sorted(WORKLOADS))
    parser.add_argument("--num-cpus", type=int, default=8)
    args = parser.parse_args(argv)
    ray = importlib.import_module(args.backend)
    tune = importlib.import_module(f"{args.backend}.tune")
    kwargs = {"num_cpus": args.num_cpus}
    if args.backend == "ray":
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        kwargs.update(include_dashboard=False, log_to_driver=False)
    ray.init(**kwargs)
    try:
        names = [args.workload] if args.workload else list(WORKLOADS)
        for name in names:
            with tempfile.TemporaryDirectory() as storage:
                value, unit, extra = WORKLOADS[name](ray, tune, args.backend, storage)
            print(json.dumps({"workload": name, "value": value, "unit": unit, **extra}),
                  flush=True)
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
