"""Transforms: row and batch maps, actor pools, column ops, all-to-all operators, errors."""
import os

import numpy as np
import pytest

import minray as ray
import minray.data
from minray.data.aggregate import AggregateFn, Count, Max, Mean, Min, Std, Sum

pytestmark = pytest.mark.usefixtures("ray_module")


def ids(ds, col="id"):
    return [r[col] for r in ds.take_all()]


def test_map_flat_map_filter():
    ds = ray.data.range(20, override_num_blocks=3)
    assert ids(ds.map(lambda r: {"id": r["id"] * 2})) == [2 * i for i in range(20)]
    assert ids(ds.flat_map(lambda r: [r, r]))[:4] == [0, 0, 1, 1]
    assert ids(ds.filter(lambda r: r["id"] % 5 == 0)) == [0, 5, 10, 15]
    assert ids(ds.filter(expr="id > 17")) == [18, 19]
    assert ids(ds.map(lambda r, k: {"id": r["id"] + k}, fn_args=(100,)))[0] == 100


@pytest.mark.parametrize("fmt", ["default", "numpy", "pandas"])
def test_map_batches_formats(fmt):
    pytest.importorskip("pandas")

    def fn(batch):
        if fmt == "pandas":
            assert type(batch).__name__ == "DataFrame"
            return batch.assign(id=batch["id"] + 1)
        assert isinstance(batch, dict) and isinstance(batch["id"], np.ndarray)
        return {"id": batch["id"] + 1}

    assert ids(ray.data.range(10).map_batches(fn, batch_format=fmt)) == list(range(1, 11))


def test_map_batches_batch_size_and_writable_batches():
    sizes = ray.data.range(100, override_num_blocks=2).map_batches(
        lambda b: {"n": [len(b["id"])]}, batch_size=16)
    assert sorted(ids(sizes, "n")) == sorted([16, 16, 16, 2] * 2)

    def inplace(batch):
        batch["id"] *= 3            # zero_copy_batch=False: the batch is a private copy
        return batch

    mat = ray.data.range(5).materialize()
    assert ids(mat.map_batches(inplace, zero_copy_batch=False)) == [0, 3, 6, 9, 12]
    assert ids(mat) == [0, 1, 2, 3, 4]
    whole = ray.data.range(10, override_num_blocks=2).map_batches(
        lambda b: {"n": [len(b["id"])]})          # batch_size=None: whole blocks
    assert ids(whole, "n") == [5, 5]


class AddPid:
    def __init__(self, offset=0):
        self.offset = offset
        self.calls = 0

    def __call__(self, batch):
        self.calls += 1
        n = len(batch["id"])
        return {"id": batch["id"] + self.offset, "pid": np.full(n, os.getpid()),
                "calls": np.full(n, self.calls)}


def test_callable_class_runs_on_fixed_actor_pool():
    ds = ray.data.range(200, override_num_blocks=8).map_batches(
        AddPid, concurrency=2, batch_size=25, fn_constructor_args=(1000,))
    rows = ds.take_all()
    assert sorted(r["id"] for r in rows) == list(range(1000, 1200))
    pids = {r["pid"] for r in rows}
    assert 1 <= len(pids) <= 2 and os.getpid() not in pids
    assert max(r["calls"] for r in rows) >= 2        # constructed once, called many times


def test_callable_class_autoscaling_pool_and_resources():
    ds = ray.data.range(60, override_num_blocks=6).map_batches(
        AddPid, concurrency=(1, 3), num_cpus=0.5)
    rows = ds.take_all()
    assert len(rows) == 60 and 1 <= len({r["pid"] for r in rows}) <= 3
    strategy = ray.data.ActorPoolStrategy(min_size=1, max_size=2)
    assert ray.data.range(10).map_batches(AddPid, compute=strategy).count() == 10


def test_callable_class_needs_concurrency():
    with pytest.raises(ValueError, match="concurrency"):
        ray.data.range(3).map_batches(AddPid)
    with pytest.raises(ValueError, match="positive int"):
        ray.data.range(3).map_batches(lambda b: b, concurrency=0)
    with pytest.raises(ValueError, match="min_size"):
        ray.data.ActorPoolStrategy(min_size=3, max_size=2)


def test_row_map_with_class_and_task_concurrency():
    class Plus:
        def __call__(self, row):
            return {"id": row["id"] + 1}

    assert ids(ray.data.range(4).map(Plus, concurrency=1)) == [1, 2, 3, 4]
    assert ids(ray.data.range(4).map_batches(lambda b: b, concurrency=2)) == [0, 1, 2, 3]


def test_column_operations():
    ds = ray.data.from_items([{"a": i, "b": i * 10, "c": "x"} for i in range(4)])
    assert ds.drop_columns(["c"]).columns() == ["a", "b"]
    assert ds.select_columns(["c", "a"]).take(1) == [{"c": "x", "a": 0}]
    assert ds.rename_columns({"a": "alpha"}).columns() == ["alpha", "b", "c"]
    assert ds.rename_columns(["x", "y", "z"]).columns() == ["x", "y", "z"]
    added = ds.add_column("d", lambda df: df["a"] + df["b"])
    assert ids(added, "d") == [0, 11, 22, 33]
    assert ids(ds.add_column("e", lambda b: b["a"] * 2, batch_format="numpy"), "e") == [0, 2, 4, 6]


def test_missing_column_raises_key_error_naming_known_columns():
    ds = ray.data.from_items([{"a": 1, "b": 2}])
    for bad in (lambda: ds.select_columns(["zz"]).take_all(),
                lambda: ds.drop_columns(["zz"]).take_all(),
                lambda: ds.sort("zz").take_all(),
                lambda: ds.groupby("zz").count().take_all(),
                lambda: ds.sum("zz")):
        with pytest.raises(KeyError) as info:
            bad()
        assert "zz" in str(info.value) and "['a', 'b']" in str(info.value)


def test_user_function_error_names_function_and_block():
    def explode(row):
        if row["id"] == 13:
            raise ZeroDivisionError("boom")
        return row

    ds = ray.data.range(20, override_num_blocks=4).map(explode)
    with pytest.raises(ZeroDivisionError) as info:
        ds.take_all()
    text = str(info.value)
    assert "explode" in text and "block 2" in text and "row 3" in text and "boom" in text
    assert isinstance(info.value, ray.exceptions.RayTaskError)

    def bad_batch(batch):
        raise ValueError("bad batch")

    with pytest.raises(ValueError, match="(?s)bad batch.*bad_batch.*block 0"):
        ray.data.range(5).map_batches(bad_batch).take_all()
    with pytest.raises(TypeError, match="must return a dict"):
        ray.data.range(3).map(lambda r: r["id"]).take_all()


def test_limit_is_lazy_and_streams():
    calls = ray.data.range(10 ** 9, override_num_blocks=10 ** 5)
    assert calls.limit(3).take_all() == [{"id": 0}, {"id": 1}, {"id": 2}]
    assert ray.data.range(100).limit(0).count() == 0
    assert ray.data.range(100, override_num_blocks=4).map(lambda r: r).limit(30).count() == 30


def test_repartition_union_and_block_order():
    ds = ray.data.range(100, override_num_blocks=3)
    rep = ds.repartition(7).materialize()
    assert rep.num_blocks() == 7 and ids(rep) == list(range(100))
    assert ds.repartition(2, shuffle=True).materialize().num_blocks() == 2
    by_rows = ds.repartition(target_num_rows_per_block=30).materialize()
    assert by_rows.num_blocks() == 4 and ids(by_rows) == list(range(100))
    with pytest.raises(ValueError, match="exactly one"):
        ds.repartition()
    union = ds.union(ray.data.range(5), ray.data.from_items([{"id": -1}]))
    assert union.count() == 106 and ids(union)[-1] == -1
    shuffled = ds.randomize_block_order(seed=3).materialize()
    assert sorted(ids(shuffled)) == list(range(100))


def test_random_shuffle_seeded():
    ds = ray.data.range(200, override_num_blocks=4)
    a = ids(ds.random_shuffle(seed=7))
    assert sorted(a) == list(range(200)) and a != list(range(200))
    assert ids(ds.random_shuffle(seed=7)) == a
    assert ids(ds.random_shuffle(seed=8)) != a


def test_sort_keys_and_descending():
    rng = np.random.default_rng(0)
    items = [{"a": int(v), "b": int(w), "s": f"k{v:03d}"}
             for v, w in zip(rng.integers(0, 50, 300), rng.integers(0, 5, 300))]
    ds = ray.data.from_items(items, override_num_blocks=5)
    assert ids(ds.sort("a"), "a") == sorted(i["a"] for i in items)
    assert ids(ds.sort("a", descending=True), "a") == sorted((i["a"] for i in items), reverse=True)
    assert ids(ds.sort("s"), "s") == sorted(i["s"] for i in items)
    pairs = [(r["b"], r["a"]) for r in ds.sort(["b", "a"]).take_all()]
    assert pairs == sorted((i["b"], i["a"]) for i in items)
    assert ray.data.range(0).sort("id").take_all() == []


def test_groupby_aggregations():
    items = [{"k": i % 3, "v": float(i), "name": "abc"[i % 3]} for i in range(30)]
    ds = ray.data.from_items(items, override_num_blocks=4)
    assert ds.groupby("k").count().take_all() == [{"k": k, "count()": 10} for k in range(3)]
    sums = ds.groupby("k").sum("v").take_all()
    assert sums == [{"k": k, "sum(v)": float(sum(range(k, 30, 3)))} for k in range(3)]
    assert [r["min(v)"] for r in ds.groupby("k").min("v").take_all()] == [0.0, 1.0, 2.0]
    assert [r["max(v)"] for r in ds.groupby("k").max("v").take_all()] == [27.0, 28.0, 29.0]
    assert [r["mean(v)"] for r in ds.groupby("k").mean("v").take_all()] == [13.5, 14.5, 15.5]
    std = ds.groupby("k").std("v").take_all()[0]["std(v)"]
    assert std == pytest.approx(np.std(np.arange(0, 30, 3), ddof=1))
    multi = ds.groupby("name").aggregate(Count(), Sum("v"), Max("v"), Mean("v"), Min("v"),
                                         Std("v", ddof=0)).take_all()
    assert [r["name"] for r in multi] == ["a", "b", "c"] and multi[0]["count()"] == 10
    assert ds.groupby(["k", "name"]).count().count() == 3


def test_groupby_custom_aggregate_and_map_groups():
    ds = ray.data.from_items([{"k": i % 2, "v": i} for i in range(10)])
    total = AggregateFn(init=lambda k: 0, accumulate_row=lambda a, r: a + r["v"],
                        merge=lambda a, b: a + b, name="total")
    assert ds.groupby("k").aggregate(total).take_all() == [{"k": 0, "total": 20},
                                                          {"k": 1, "total": 25}]
    assert ds.aggregate(total) == {"total": 45}
    groups = ds.groupby("k").map_groups(
        lambda g: {"k": g["k"][:1], "n": np.array([len(g["v"])]), "top": g["v"][-1:]})
    assert groups.take_all() == [{"k": 0, "n": 5, "top": 8}, {"k": 1, "n": 5, "top": 9}]
    pandas_groups = ds.groupby("k").map_groups(lambda df: df.head(1), batch_format="pandas")
    assert pandas_groups.take_all() == [{"k": 0, "v": 0}, {"k": 1, "v": 1}]


def test_zip_and_unique():
    a = ray.data.range(10, override_num_blocks=3)
    b = ray.data.range(10, override_num_blocks=2).map(lambda r: {"sq": r["id"] ** 2})
    zipped = a.zip(b).take_all()
    assert zipped[3] == {"id": 3, "sq": 9} and len(zipped) == 10
    assert a.zip(a).columns() == ["id", "id_1"]
    with pytest.raises(ValueError, match="different number of rows"):
        a.zip(ray.data.range(3)).take_all()
    assert ray.data.from_items([{"c": x} for x in "abcab"]).unique("c") == ["a", "b", "c"]


def test_transforms_are_lazy(tmp_path):
    marker = tmp_path / "ran"

    def touch(batch):
        marker.write_text("yes")
        return batch

    ds = ray.data.range(5).map_batches(touch).filter(lambda r: True).sort("id")
    assert not marker.exists()
    assert ds.count() == 5 and marker.exists()


def test_actor_pool_larger_than_the_cluster_uses_the_actors_that_start():
    cpus = int(ray.cluster_resources()["CPU"])
    ds = ray.data.range(40, override_num_blocks=8).map_batches(AddPid, concurrency=cpus + 2)
    rows = ds.take_all()
    assert len(rows) == 40 and len({r["pid"] for r in rows}) <= cpus


def test_actor_constructor_error_surfaces():
    class Broken:
        def __init__(self):
            raise RuntimeError("no model file")

        def __call__(self, batch):
            return batch

    with pytest.raises(Exception, match="no model file"):
        ray.data.range(4).map_batches(Broken, concurrency=1).take_all()
