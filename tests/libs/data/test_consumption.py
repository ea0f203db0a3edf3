"""Consuming datasets: rows, batches, aggregates, conversions, splits."""
import numpy as np
import pytest

import minray as ray
import minray.data

pytestmark = pytest.mark.usefixtures("ray_module")


def test_take_take_all_take_batch_show(capsys):
    ds = ray.data.range(30, override_num_blocks=4)
    assert ds.take(2) == [{"id": 0}, {"id": 1}]
    assert len(ds.take_all()) == 30
    with pytest.raises(ValueError, match="limit"):
        ds.take_all(limit=5)
    batch = ds.take_batch(5)
    assert batch["id"].tolist() == [0, 1, 2, 3, 4]
    assert ds.take_batch(3, batch_format="pandas")["id"].tolist() == [0, 1, 2]
    ds.show(3)
    assert capsys.readouterr().out.splitlines() == ["{'id': 0}", "{'id': 1}", "{'id': 2}"]


def test_count_schema_columns():
    ds = ray.data.from_items([{"x": 1.5, "n": 2, "s": "a", "t": np.zeros(2)}])
    schema = ds.schema()
    assert schema.names == ["x", "n", "s", "t"] == ds.columns()
    assert [str(t) for t in schema.types][:3] == ["double", "int64", "string"]
    assert "Column" in repr(schema) and "double" in repr(schema)
    assert ds.filter(lambda r: False).count() == 0
    assert ray.data.range(10, override_num_blocks=1).map_batches(
        lambda b: {"id": b["id"][:2]}).count() == 2


def test_column_aggregates():
    ds = ray.data.from_items([{"a": float(i), "b": i % 3} for i in range(10)],
                             override_num_blocks=3)
    assert ds.sum("a") == 45 and ds.min("a") == 0 and ds.max("a") == 9
    assert ds.mean("a") == 4.5
    assert ds.std("a") == pytest.approx(np.std(np.arange(10), ddof=1))
    assert ds.std("a", ddof=0) == pytest.approx(np.std(np.arange(10)))
    assert ds.sum(["a", "b"]) == {"sum(a)": 45, "sum(b)": 9}
    assert ray.data.range(10000).std("id") == pytest.approx(2886.89568, rel=1e-6)
    assert ray.data.range(0).sum("id") is None
    nan = ray.data.from_items([{"a": 1.0}, {"a": float("nan")}, {"a": 3.0}])
    assert nan.mean("a") == 2.0


def test_iter_rows_and_iter_batches():
    ds = ray.data.range(25, override_num_blocks=3)
    assert [r["id"] for r in ds.iter_rows()] == list(range(25))
    assert [r["id"] for r in ds.iterator()] == list(range(25))
    sizes = [len(b["id"]) for b in ds.iter_batches(batch_size=10)]
    assert sizes == [10, 10, 5]
    assert [len(b["id"]) for b in ds.iter_batches(batch_size=10, drop_last=True)] == [10, 10]
    assert sum(len(b["id"]) for b in ds.iter_batches(batch_size=None)) == 25
    frames = list(ds.iter_batches(batch_size=7, batch_format="pandas", prefetch_batches=4))
    assert [len(f) for f in frames] == [7, 7, 7, 4]
    shuffled = np.concatenate([b["id"] for b in ds.iter_batches(
        batch_size=5, local_shuffle_buffer_size=10, local_shuffle_seed=0)])
    assert sorted(shuffled.tolist()) == list(range(25)) and shuffled.tolist() != list(range(25))
    with pytest.raises(ValueError, match="batch_format"):
        next(ds.iter_batches(batch_format="arrowz"))


def test_iter_torch_batches():
    torch = pytest.importorskip("torch", reason="torch is optional")
    ds = ray.data.from_items([{"x": float(i), "y": i} for i in range(10)])
    batches = list(ds.iter_torch_batches(batch_size=4, dtypes={"x": torch.float32}))
    assert [len(b["x"]) for b in batches] == [4, 4, 2]
    assert batches[0]["x"].dtype == torch.float32 and batches[0]["y"].dtype == torch.int64
    assert batches[0]["x"].device.type == "cpu"
    one = next(ds.iter_torch_batches(batch_size=2, dtypes=torch.float64, device="cpu"))
    assert one["y"].dtype == torch.float64


def test_to_pandas_to_numpy_refs_materialize_stats():
    ds = ray.data.range(12, override_num_blocks=3).map(lambda r: {"id": r["id"], "h": r["id"] / 2})
    df = ds.to_pandas()
    assert df["id"].tolist() == list(range(12)) and list(df.columns) == ["id", "h"]
    assert len(ds.limit(5).to_pandas()) == 5 and len(ds.to_pandas(limit=12)) == 12
    with pytest.raises(ValueError, match="limit of 5"):
        ds.to_pandas(limit=5)
    refs = ds.to_numpy_refs()
    assert len(refs) == 3 and ray.get(refs[0])["id"].tolist() == [0, 1, 2, 3]
    assert ray.get(ds.to_numpy_refs(column="h")[1]).tolist() == [2.0, 2.5, 3.0, 3.5]
    mat = ds.materialize()
    assert mat.num_blocks() == 3 and mat.count() == 12
    text = mat.stats()
    assert "ReadRange->Map" in text and "12" in text
    assert "ReadRange->Map" in ds.stats()


def test_split_equal_and_unequal():
    ds = ray.data.range(10, override_num_blocks=3)
    shards = ds.split(3, equal=True)
    assert [s.count() for s in shards] == [3, 3, 3]
    seen = [r["id"] for s in shards for r in s.take_all()]
    assert len(set(seen)) == 9
    assert [s.count() for s in ds.split(3)] == [4, 3, 3]
    a, b, c = ds.split_at_indices([2, 7])
    assert [a.count(), b.count(), c.count()] == [2, 5, 3]
    parts = ds.split_proportionately([0.5, 0.2])
    assert [p.count() for p in parts] == [5, 2, 3]


def test_train_test_split():
    ds = ray.data.range(20)
    train, test = ds.train_test_split(0.25)
    assert train.count() == 15 and [r["id"] for r in test.take_all()] == list(range(15, 20))
    train, test = ds.train_test_split(4, shuffle=True, seed=1)
    assert test.count() == 4 and train.count() == 16
    ids = sorted(r["id"] for r in train.take_all() + test.take_all())
    assert ids == list(range(20))
    again = ds.train_test_split(4, shuffle=True, seed=1)[1]
    assert again.take_all() == test.take_all()
    with pytest.raises(ValueError, match="test_size"):
        ds.train_test_split(1.5)


@ray.remote
class Consumer:
    def consume(self, it, epochs):
        out = []
        for _ in range(epochs):
            out.append(sorted(int(v) for b in it.iter_batches(batch_size=4) for v in b["id"]))
        return out


def test_streaming_split_consumed_by_actors():
    ds = ray.data.range(30, override_num_blocks=6)
    its = ds.streaming_split(2, equal=True)
    consumers = [Consumer.remote() for _ in its]
    results = ray.get([c.consume.remote(it, 2) for c, it in zip(consumers, its)])
    for per_epoch in results:
        assert len(per_epoch) == 2 and all(len(ids) == 15 for ids in per_epoch)
    assert sorted(results[0][0] + results[1][0]) == list(range(30))
    dynamic = ds.streaming_split(2)
    got = ray.get([c.consume.remote(it, 1) for c, it in zip(consumers, dynamic)])
    assert sorted(got[0][0] + got[1][0]) == list(range(30))


def test_iter_torch_batches_without_torch_names_the_package(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match="pip install torch"):
        next(ray.data.range(3).iter_torch_batches())


def test_plan_helpers(capsys):
    ds = ray.data.range(100, override_num_blocks=4)
    assert ds.num_blocks() == 4 and ds.map(lambda r: r).num_blocks() == 4
    assert len(ds.get_internal_block_refs()) == 4
    sample = ds.random_sample(0.3, seed=1)
    n = sample.count()
    assert 10 < n < 60 and sample.count() == n
    ds.map(lambda r: r).explain()
    assert "ReadRange -> Map" in capsys.readouterr().out
    assert ray.data.DatasetContext is ray.data.DataContext


def test_iter_torch_batches_conversion_logic_with_a_stand_in_torch(monkeypatch):
    """Without torch installed, a stand-in module checks dtypes, device and collate_fn."""
    import sys
    import types

    class Tensor:
        def __init__(self, array, dtype=None, device="cpu"):
            self.array, self.dtype, self.device = array, dtype or str(array.dtype), device

        def to(self, target):
            if target in ("cpu", "cuda"):
                return Tensor(self.array, self.dtype, target)
            return Tensor(self.array.astype(target), target, self.device)

    fake = types.ModuleType("torch")
    fake.as_tensor = lambda array: Tensor(array)
    monkeypatch.setitem(sys.modules, "torch", fake)
    ds = ray.data.from_items([{"x": float(i), "y": i} for i in range(5)])
    batches = list(ds.iter_torch_batches(batch_size=2, dtypes={"x": "float32"}))
    assert [len(b["x"].array) for b in batches] == [2, 2, 1]
    assert batches[0]["x"].dtype == "float32" and batches[0]["y"].dtype == "int64"
    assert batches[0]["x"].array.flags.writeable
    on_gpu = next(ds.iter_torch_batches(batch_size=5, dtypes="float64", device="cuda"))
    assert on_gpu["y"].dtype == "float64" and on_gpu["y"].device == "cuda"
    collated = next(ds.iter_torch_batches(batch_size=5, collate_fn=lambda b: len(b["x"])))
    assert collated == 5
