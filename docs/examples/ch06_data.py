"""Chapter 6, data processing with Data: the code of docs/tutorials/data.md as one script.

The tutorial's code blocks, in order (each block runs as it stands
after the first one's imports); only the output folders differ: a temporary folder
instead of fixed paths under /tmp.

Run: python docs/examples/ch06_data.py   (a few seconds)
"""
import os
import shutil
import tempfile

WORKDIR = tempfile.mkdtemp(prefix="minray_example_")

import numpy as np
import minray as ray
import minray.data

ray.init(num_cpus=4)

ds = ray.data.range(10000)          # rows are dicts: {"id": 0}, {"id": 1}, ...
assert ds.count() == 10000
print(ds.take(3))                   # [{'id': 0}, {'id': 1}, {'id': 2}]
print(ds.schema())
# Column  Type
# ------  ----
# id      int64

ds = ray.data.from_items([{"id": "abc", "value": 1}, {"id": "def", "value": 2}])
assert [str(t) for t in ds.schema().types] == ["string", "int64"]
df = ds.to_pandas()                 # needs pandas (pip install "minray[data]")

ray.data.range(10000).write_csv(os.path.join(WORKDIR, "local_dir"))      # one file per block
ds = ray.data.read_csv(os.path.join(WORKDIR, "local_dir"))
assert sorted(r["id"] for r in ds.take_all()) == list(range(10000))
# fewer, bigger files: consecutive blocks join until a file has >= 4000 rows
ray.data.range(10000).write_parquet(os.path.join(WORKDIR, "big_files"), min_rows_per_file=4000)

ds1 = ray.data.range(10000)
ds2 = ray.data.range(10000)
ds3 = ds1.union(ds2)                                  # 20000 rows
ds3 = ds3.filter(lambda row: row["id"] % 2 == 0)      # 10000 rows
ds3 = ds3.sort("id")                                  # a key is required
print(ds3.take(5))     # [{'id': 0}, {'id': 0}, {'id': 2}, {'id': 2}, {'id': 4}]

ds1 = ray.data.range(10000, override_num_blocks=20)
ds3 = ds1.union(ray.data.range(10000, override_num_blocks=20))
assert ds3.materialize().num_blocks() == 40
assert ds3.repartition(20).materialize().num_blocks() == 20

items = ray.data.from_items([{"k": i % 3, "v": float(i)} for i in range(30)])
print(items.groupby("k").mean("v").take_all())
# [{'k': 0, 'mean(v)': 13.5}, {'k': 1, 'mean(v)': 14.5}, {'k': 2, 'mean(v)': 15.5}]

from minray.data.aggregate import Count, Max
print(items.groupby("k").aggregate(Count(), Max("v")).take(1))
# [{'k': 0, 'count()': 10, 'max(v)': 27.0}]
print(ray.data.range(10000).std("id"))      # 2886.89568 (ddof=1)

ds = ray.data.range(10000).map(lambda row: {"id": row["id"] ** 2})

ds = ray.data.range(10000).map_batches(lambda batch: {"id": np.square(batch["id"])})
ds = ray.data.range(1000).map_batches(lambda df: df.assign(id=df["id"] * 3),
                                      batch_format="pandas", batch_size=256)

class MLModel:
    def __init__(self):
        self.weight = 2                      # load_model() would go here

    def __call__(self, batch):
        return {"id": batch["id"], "pred": batch["id"] * self.weight}

ds = ray.data.range(1000, override_num_blocks=10)
preds = ds.map_batches(MLModel, batch_size=50, concurrency=2)    # 2 actors
preds = ds.map_batches(MLModel, concurrency=(1, 4))              # autoscale 1..4
preds = ds.map_batches(MLModel, compute=ray.data.ActorPoolStrategy(size=2),
                       num_cpus=0.5)

def explode(row):
    if row["id"] == 13:
        raise ZeroDivisionError("boom")
    return row

try:
    ray.data.range(20, override_num_blocks=4).map(explode).take_all()
except ZeroDivisionError as err:
    print(err)    # ... minray.data: Map(explode) failed on block 2, row 3; ...

ds = ray.data.range(25)
for batch in ds.iter_batches(batch_size=10):         # 10, 10, 5 rows
    ...
for row in ds.iter_rows():
    ...
first = ds.take_batch(5)                              # {"id": array([0, 1, 2, 3, 4])}
df = ds.to_pandas()
refs = ds.to_numpy_refs()                             # one ObjectRef per block
# torch: ds.iter_torch_batches(batch_size=8, dtypes=torch.float32)

@ray.remote
class TrainingWorker:
    def __init__(self):
        self.rows = 0

    def train(self, shard, epochs=3):
        for _ in range(epochs):
            for batch in shard.iter_batches(batch_size=16):
                self.rows += len(batch["x"])
        return self.rows

data = ray.data.from_items([{"x": float(i), "label": i % 2} for i in range(90)])
workers = [TrainingWorker.remote() for _ in range(3)]
shards = data.random_shuffle(seed=0).split(3, equal=True)
print(ray.get([w.train.remote(s) for w, s in zip(workers, shards)]))   # [90, 90, 90]

iterators = data.streaming_split(3, equal=True)
print(ray.get([w.train.remote(it) for w, it in zip(workers, iterators)]))  # [180, 180, 180]

from minray.data.preprocessors import Chain, Concatenator, OneHotEncoder, StandardScaler

ds = ray.data.from_items([{"x": float(i), "y": i * 2.0, "color": "rgb"[i % 3]}
                          for i in range(12)])
prep = Chain(StandardScaler(columns=["x", "y"]), OneHotEncoder(columns=["color"]),
             Concatenator(columns=["x", "y"], output_column_name="features"))
train = prep.fit_transform(ds)
print(prep.transform_batch({"x": np.array([5.5]), "y": np.array([11.0]),
                            "color": np.array(["g"])}))

from minray.data.preprocessor import Preprocessor

class Center(Preprocessor):
    def _fit(self, ds):
        self.stats_ = {"mean": ds.mean("x")}
        return self

    def _transform_pandas(self, df):
        df["x"] = df["x"] - self.stats_["mean"]
        return df

print(Center().fit_transform(ds).take(1))    # [{'x': -5.5, ...}]

ray.shutdown()
shutil.rmtree(WORKDIR, ignore_errors=True)
print("ch06 ok")
