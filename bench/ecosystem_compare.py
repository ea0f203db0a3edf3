"""Side by side: minray.util.multiprocessing.Pool vs Ray 2.60's vs the standard library's,
and the joblib / dask integrations vs those libraries' own schedulers, in one run.

    python -m bench.ecosystem_compare [--ray-python /work/rayvenv/bin/python] [--runs 3]

Every (backend, workload) runs in a fresh interpreter; the backends take turns within
each round, so a noisy, shared machine slows them alike.  Figures are medians of the
runs, every run listed.  Ray is never a dependency: it runs from its own venv.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap

WORKLOAD = textwrap.dedent('''
    import json, sys, time
    backend, name = sys.argv[1], sys.argv[2]

    def square(x):
        return x * x

    out = {}
    if backend in ("minray", "ray"):
        if backend == "minray":
            import minray as ray
            from minray.util.multiprocessing import Pool
        else:
            import ray
            from ray.util.multiprocessing import Pool
        ray.init(num_cpus=2, include_dashboard=False)
    else:
        import multiprocessing
        Pool = multiprocessing.get_context("fork").Pool
    if name == "pool":
        t0 = time.perf_counter()
        pool = Pool(processes=2)
        pool.map(square, range(2))
        out["create_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        pool.map(square, range(20000))
        out["map_items_per_s"] = 20000 / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        list(pool.imap(square, range(1000)))
        out["imap_items_per_s"] = 1000 / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i in range(200):
            pool.apply(square, (i,))
        out["apply_calls_per_s"] = 200 / (time.perf_counter() - t0)
        pool.terminate()
    elif name == "gridsearch":
        import joblib
        from sklearn.datasets import make_classification
        from sklearn.model_selection import GridSearchCV
        from sklearn.svm import SVC
        X, y = make_classification(n_samples=600, n_features=20, random_state=0)
        grid = {"C": [0.1, 1, 10, 100], "gamma": ["scale", 0.01, 0.1]}
        if backend == "minray":
            from minray.util.joblib import register_ray
            register_ray()
            ctx = joblib.parallel_backend("ray")
        else:
            ctx = joblib.parallel_backend("loky")
        t0 = time.perf_counter()
        with ctx:
            GridSearchCV(SVC(), grid, cv=5, n_jobs=2).fit(X, y)
        out["fit_s"] = time.perf_counter() - t0
    elif name == "dask_groupby":
        import dask.dataframe as dd, numpy as np, pandas as pd
        n = 400_000
        df = dd.from_pandas(pd.DataFrame({"k": np.arange(n) % 100, "v": np.ones(n)}),
                            npartitions=8)
        if backend == "minray":
            from minray.util.dask import ray_dask_get as scheduler
        else:
            scheduler = "threads"
        df.groupby("k").v.sum().compute(scheduler=scheduler)      # warm up the workers
        t0 = time.perf_counter()
        df.groupby("k").v.sum().compute(scheduler=scheduler)
        out["groupby_s"] = time.perf_counter() - t0
    if backend in ("minray", "ray"):
        ray.shutdown()
    print(json.dumps(out))
''')

PLAN = {   # workload -> the backends it compares
    "pool": ["minray", "ray", "stdlib"],
    "gridsearch": ["minray", "loky"],
    "dask_groupby": ["minray", "dask-threads"],
}


def run_one(python, backend, name):
    code_backend = {"dask-threads": "stdlib", "loky": "stdlib"}.get(backend, backend)
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    out = subprocess.run([python, "-c", WORKLOAD, code_backend, name], capture_output=True,
                         text=True, timeout=600, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{backend}/{name} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ray-python", default=os.environ.get("MINRAY_BENCH_RAY_PYTHON",
                                                               "/work/rayvenv/bin/python"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default=None, help="one workload of " + ", ".join(PLAN))
    args = parser.parse_args()
    results = {}
    for _ in range(args.runs):
        for name, backends in PLAN.items():
            if args.only and name != args.only:
                continue
            for backend in backends:
                python = args.ray_python if backend == "ray" else sys.executable
                if backend == "ray" and not os.path.exists(python):
                    continue
                for metric, value in run_one(python, backend, name).items():
                    results.setdefault((name, metric), {}).setdefault(backend, []).append(value)
    for (name, metric), per_backend in results.items():
        cells = [f"{b}: {statistics.median(v):.3g} (runs: {', '.join(f'{x:.3g}' for x in v)})"
                 for b, v in per_backend.items()]
        print(f"{name}.{metric:18s} " + " | ".join(cells))


if __name__ == "__main__":
    main()
