"""Chapter 1, an overview: one script touching Core, Data and Tune.

Run: python docs/examples/ch01_overview.py   (about 5 s; see docs/tutorials/overview.md)
"""
import tempfile

import minray as ray
from minray import tune

ray.init(num_cpus=4)

# Core: a Python function becomes a task; .remote() returns an ObjectRef at once.
@ray.remote
def square(x):
    return x * x

print("core:", ray.get([square.remote(i) for i in range(5)]))

# Data: a lazy, streaming dataset; transforms run as tasks when a consumer asks.
items = [{"id": i, "value": i * 10} for i in range(100)]
ds = ray.data.from_items(items)
evens = ds.filter(lambda row: row["id"] % 2 == 0).map(lambda row: {**row, "half": row["value"] // 2})
print("data: count", evens.count(), "first rows", evens.take(2))

# Tune: every trial runs in its own actor; the best config is found by grid search.
def objective(config):
    return {"score": (config["x"] - 3) ** 2}

with tempfile.TemporaryDirectory() as storage:
    analysis = tune.run(objective, config={"x": tune.grid_search([1, 2, 3, 4])},
                        storage_path=storage, verbose=0)
    best = analysis.get_best_config(metric="score", mode="min")
print("tune: best config", best)
assert best == {"x": 3}

ray.shutdown()
print("ch01 ok")
