"""Chapter 11, the ecosystem: code written for multiprocessing, joblib/scikit-learn and dask
runs on minray with one line changed.

Run: python docs/examples/ch11_ecosystem.py   (about 15 s; see docs/tutorials/ecosystem.md)
Needs scikit-learn, joblib and dask[dataframe] (the test extras install them).
"""
import os

import minray as ray

ray.init(num_cpus=4)


# 1. multiprocessing.Pool -> minray.util.multiprocessing.Pool (same API, actors underneath).
from minray.util.multiprocessing import Pool


def collatz_steps(n):
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


with Pool(processes=4) as pool:
    steps = pool.map(collatz_steps, range(1, 2001))
    print(f"Pool.map: the longest Collatz run below 2001 starts at {steps.index(max(steps)) + 1} "
          f"({max(steps)} steps)")
    pids = set(pool.map(lambda _: os.getpid(), range(40), chunksize=1))
    print(f"          computed by {len(pids)} actor processes, not this one ({os.getpid()})")
    lazy = pool.imap(collatz_steps, range(1, 6))
    print("Pool.imap:", list(lazy))
    def strict(n):
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        return collatz_steps(n)

    try:
        pool.apply(strict, (0,))
    except ValueError as exc:
        print(f"Pool.apply re-raised the actor's ValueError: {exc}")
        print("  its __cause__ holds the actor's traceback, ending:",
              exc.__cause__.tb.strip().splitlines()[-1])

# 2. joblib / scikit-learn: register the "ray" backend and use n_jobs as usual.
import joblib
from sklearn.datasets import load_iris
from sklearn.model_selection import GridSearchCV
from sklearn.svm import SVC

from minray.util.joblib import register_ray

register_ray()
X, y = load_iris(return_X_y=True)
with joblib.parallel_backend("ray"):
    search = GridSearchCV(SVC(), {"C": [0.1, 1, 10], "gamma": ["scale", 0.1]}, cv=3,
                          n_jobs=-1).fit(X, y)
print(f"GridSearchCV on minray: best {search.best_params_}, "
      f"accuracy {search.best_score_:.3f}")

# 3. dask: run any dask graph as minray tasks.
import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd

from minray.util.dask import disable_dask_on_ray, enable_dask_on_ray, ray_dask_get

sales = pd.DataFrame({"store": np.arange(1000) % 5, "amount": np.arange(1000) * 0.5})
ddf = dd.from_pandas(sales, npartitions=4)
per_store = ddf.groupby("store").amount.sum().compute(scheduler=ray_dask_get)
assert per_store.sort_index().equals(sales.groupby("store").amount.sum())
print("dask groupby on minray:", per_store.sort_index().round(1).to_dict())

enable_dask_on_ray()             # now every .compute() uses minray
print("dask mean with enable_dask_on_ray():", ddf.amount.mean().compute())
disable_dask_on_ray()

# 4. minray.data <-> dask DataFrames.
ds = ray.data.from_dask(ddf)
print(f"from_dask: {ds.count()} rows in {ds.num_blocks()} blocks")
back = ds.map_batches(lambda b: {**b, "amount": b["amount"] * 2}).to_dask()
print("to_dask: total doubled amount", back.amount.sum().compute(scheduler=ray_dask_get))

ray.shutdown()
print("ch11 ok")
