"""Where minray.data must answer as Ray 2.60 does (issue #13, Core VI).

Each expectation below was checked against Ray 2.60 itself: the preprocessor module at
Ray's path, multi-key sorts with one direction per key, whole-dataset aggregations of
empty data and of nulls, write_*(min_rows_per_file=...), read_text's line handling and
split_proportionately's validation.
"""
import glob
import json
import math
import os

import numpy as np
import pytest

import minray as ray
import minray.data
from minray.data.aggregate import Count, Mean, Std, Sum

pytestmark = pytest.mark.usefixtures("ray_module")


# ---------------------------------------------------------------- preprocessor module
def test_preprocessor_module_at_rays_path_custom_subclass():
    from minray.data.preprocessor import Preprocessor, PreprocessorNotFittedException
    from minray.data import preprocessors
    assert issubclass(PreprocessorNotFittedException, RuntimeError)
    assert preprocessors.PreprocessorNotFittedException is PreprocessorNotFittedException
    assert preprocessors.StandardScaler.__mro__[-2] is Preprocessor

    class Center(Preprocessor):      # Ray's custom-preprocessor pattern: no super().__init__
        def __init__(self, column):
            self.column = column

        def _fit(self, ds):
            self.stats_ = {"mean": ds.mean(self.column)}
            return self

        def _transform_pandas(self, df):
            df[self.column] = df[self.column] - self.stats_["mean"]
            return df

    ds = ray.data.from_items([{"x": 1.0}, {"x": 3.0}])
    center = Center("x")
    assert center.fit_status() == Preprocessor.FitStatus.NOT_FITTED == "NOT_FITTED"
    with pytest.raises(PreprocessorNotFittedException, match="`fit` must be called before "
                                                             "`transform`"):
        center.transform(ds)
    with pytest.raises(PreprocessorNotFittedException, match="transform_batch"):
        center.transform_batch({"x": np.array([1.0])})
    assert center.fit(ds) is center and center.stats_ == {"mean": 2.0}
    assert center.fit_status() == "FITTED"
    assert center.transform(ds).take_all() == [{"x": -1.0}, {"x": 1.0}]
    assert center.transform_batch({"x": np.array([5.0])})["x"].tolist() == [3.0]

    class Double(Preprocessor):
        _is_fittable = False

        def _transform_numpy(self, batch):
            return {"x": batch["x"] * 2}

    assert Double().fit_status() == "NOT_FITTABLE"
    assert Double().transform(ds).take_all() == [{"x": 2.0}, {"x": 6.0}]

    class NoFit(Preprocessor):
        def _transform_numpy(self, batch):
            return batch

    with pytest.raises(PreprocessorNotFittedException):
        NoFit().transform(ds)
    with pytest.raises(TypeError, match="_fit"):
        NoFit().fit(ds)


def test_builtin_preprocessor_unfitted_raises_and_status():
    from minray.data.preprocessor import PreprocessorNotFittedException
    from minray.data.preprocessors import Chain, Concatenator, StandardScaler
    ds = ray.data.from_items([{"x": 1.0, "y": 2.0}, {"x": 3.0, "y": 4.0}])
    scaler = StandardScaler(columns=["x"])
    with pytest.raises(PreprocessorNotFittedException):
        scaler.transform(ds)
    chain = Chain(scaler, Concatenator(columns=["x", "y"]))
    assert chain.fit_status() == "NOT_FITTED"
    with pytest.raises(PreprocessorNotFittedException):
        chain.transform_batch({"x": np.array([1.0]), "y": np.array([1.0])})
    chain.fit(ds)
    assert chain.fit_status() == "FITTED" and scaler.fit_status() == "FITTED"
    # Ray's keywords: transform(batch_size, num_cpus, memory, concurrency) and
    # fit_transform(transform_batch_size, ...)
    out = scaler.transform(ds, batch_size=1, num_cpus=1, concurrency=1).take_all()
    assert [r["x"] for r in out] == [-1.0, 1.0]
    out = StandardScaler(columns=["y"]).fit_transform(ds, transform_batch_size=1,
                                                      transform_concurrency=2)
    assert [r["y"] for r in out.take_all()] == [-1.0, 1.0]


# ---------------------------------------------------------------- sort
def test_sort_multi_key_one_direction_per_key():
    items = [{"a": a, "b": b} for a in [1, 2, 3] for b in [3, 1, 2]]
    ds = ray.data.from_items(items).repartition(3)
    pairs = [(r["a"], r["b"]) for r in ds.sort(["a", "b"], descending=[True, False]).take_all()]
    assert pairs == [(3, 1), (3, 2), (3, 3), (2, 1), (2, 2), (2, 3), (1, 1), (1, 2), (1, 3)]
    pairs = [(r["a"], r["b"]) for r in ds.sort(["a", "b"], descending=(False, True)).take_all()]
    assert pairs == [(1, 3), (1, 2), (1, 1), (2, 3), (2, 2), (2, 1), (3, 3), (3, 2), (3, 1)]
    strings = ray.data.from_items([{"s": "b", "n": 1}, {"s": "a", "n": 2}, {"s": "b", "n": 0}])
    assert strings.sort(["s", "n"], descending=[True, False]).take_all() == [
        {"s": "b", "n": 0}, {"s": "b", "n": 1}, {"s": "a", "n": 2}]
    with pytest.raises(ValueError, match="Length of `descending` .* length of the key"):
        ds.sort(["a", "b"], descending=[True])


# ---------------------------------------------------------------- aggregations
def test_global_aggregations_of_empty_data():
    empty = ray.data.range(10).filter(lambda r: r["id"] > 100)
    for method in ("sum", "min", "max", "mean", "std"):
        assert getattr(empty, method)("id") is None, method
    assert empty.aggregate(Sum("id"), Count()) == {"sum(id)": None, "count()": 0}
    assert empty.unique("id") == []
    assert empty.count() == 0
    one = ray.data.from_items([{"x": 1}])
    assert math.isnan(one.std("x")) and one.std("x", ddof=0) == 0.0


def test_global_aggregations_with_nulls():
    floats = ray.data.from_items([{"x": 1.0}, {"x": None}, {"x": 3.0}], override_num_blocks=3)
    ints = ray.data.from_items([{"x": 1}, {"x": None}, {"x": 3}])
    for ds, total in ((floats, 4.0), (ints, 4)):
        assert ds.sum("x") == total and type(ds.sum("x")) is type(total)
        assert (ds.min("x"), ds.max("x"), ds.mean("x")) == (1, 3, 2.0)
        assert ds.std("x") == pytest.approx(math.sqrt(2))
        for method in ("sum", "min", "max", "mean", "std"):
            assert getattr(ds, method)("x", ignore_nulls=False) is None, method
    all_null = ray.data.from_items([{"x": None}, {"x": None}])
    for method in ("sum", "min", "max", "mean", "std"):
        assert getattr(all_null, method)("x") is None, method
        assert getattr(all_null, method)("x", ignore_nulls=False) is None, method
    assert floats.aggregate(Count("x")) == {"count(x)": 3}
    assert floats.aggregate(Count("x", ignore_nulls=True)) == {"count(x)": 2}
    assert floats.aggregate(Mean("x", ignore_nulls=False), Std("x")) == {
        "mean(x)": None, "std(x)": pytest.approx(math.sqrt(2))}


# ---------------------------------------------------------------- writes
@pytest.mark.parametrize("kind", ["csv", "json", "parquet", "numpy"])
def test_write_min_rows_per_file(tmp_path, kind):
    if kind == "parquet":
        pytest.importorskip("pyarrow")
    ds = ray.data.range(10, override_num_blocks=5)
    extra = {"column": "id"} if kind == "numpy" else {}

    def rows_per_file(out):
        counts = []
        for f in glob.glob(os.path.join(out, "*")):
            if kind == "numpy":
                counts.append(len(np.load(f)))
            elif kind == "parquet":
                import pyarrow.parquet as pq
                counts.append(pq.read_table(f).num_rows)
            else:
                with open(f) as fh:
                    counts.append(sum(1 for _ in fh) - (kind == "csv"))
        return sorted(counts)

    getattr(ds, f"write_{kind}")(str(tmp_path / "a"), min_rows_per_file=4, **extra)
    assert rows_per_file(str(tmp_path / "a")) == [2, 4, 4]
    getattr(ds, f"write_{kind}")(str(tmp_path / "b"), min_rows_per_file=100, **extra)
    assert rows_per_file(str(tmp_path / "b")) == [10]
    getattr(ds, f"write_{kind}")(str(tmp_path / "c"), **extra)
    assert rows_per_file(str(tmp_path / "c")) == [2, 2, 2, 2, 2]
    with pytest.raises(ValueError, match="min_rows_per_file must be a positive integer"):
        getattr(ds, f"write_{kind}")(str(tmp_path / "d"), min_rows_per_file=0, **extra)
    if kind == "json":
        back = sorted(r["id"] for r in ray.data.read_json(str(tmp_path / "a")).take_all())
        assert back == list(range(10))


# ---------------------------------------------------------------- read_text
def test_read_text_lines(tmp_path):
    (tmp_path / "x.txt").write_bytes(b"a\nb\n\nc\r\nd\n  \n\te \n")
    (tmp_path / "blank.txt").write_bytes(b"\n\n")
    (tmp_path / "none.txt").write_bytes(b"")
    (tmp_path / "one.txt").write_bytes(b"only")
    rows = ray.data.read_text(str(tmp_path / "x.txt")).take_all()
    assert rows == [{"text": t} for t in ["a", "b", "c", "d", "\te "]]
    rows = ray.data.read_text(str(tmp_path / "x.txt"), drop_empty_lines=False).take_all()
    assert [r["text"] for r in rows] == ["a", "b", "", "c", "d", "  ", "\te "]
    assert ray.data.read_text(str(tmp_path / "blank.txt")).take_all() == []
    assert ray.data.read_text(str(tmp_path / "blank.txt"),
                              drop_empty_lines=False).take_all() == [{"text": ""}] * 2
    assert ray.data.read_text(str(tmp_path / "none.txt")).count() == 0
    assert ray.data.read_text(str(tmp_path / "one.txt")).take_all() == [{"text": "only"}]
    assert ray.data.read_text(str(tmp_path)).count() == 6
    assert ray.data.read_text(str(tmp_path / "one.txt")).columns() == ["text"]


# ---------------------------------------------------------------- split_proportionately
def test_split_proportionately_validation():
    ds = ray.data.range(10)
    assert [d.count() for d in ds.split_proportionately([0.2, 0.3])] == [2, 3, 5]
    assert [d.count() for d in ds.split_proportionately([0.999])] == [9, 1]
    with pytest.raises(ValueError, match="at least of length 1"):
        ds.split_proportionately([])
    for bad in ([0.5, 0.5], [0.6, 0.5], [1.0]):
        with pytest.raises(ValueError, match="sum to less than 1"):
            ds.split_proportionately(bad)
    for bad in ([0], [-0.1, 0.5], [0.2, 0.0]):
        with pytest.raises(ValueError, match="bigger than 0"):
            ds.split_proportionately(bad)
    with pytest.raises(TypeError, match="list"):
        ds.split_proportionately(0.5)


def test_groupby_aggregations_with_nulls():
    rows = [{"k": i % 2, "x": None if i % 3 == 0 else float(i)} for i in range(8)]
    ds = ray.data.from_items(rows, override_num_blocks=3)

    def by_key(out, name):
        return [r[name] for r in sorted(out.take_all(), key=lambda r: r["k"])]

    grouped = ds.groupby("k")
    assert by_key(grouped.sum("x"), "sum(x)") == [6.0, 13.0]
    assert by_key(grouped.min("x"), "min(x)") == [2.0, 1.0]
    assert by_key(grouped.max("x"), "max(x)") == [4.0, 7.0]
    assert by_key(grouped.mean("x"), "mean(x)") == pytest.approx([3.0, 13 / 3])
    assert by_key(grouped.std("x"), "std(x)") == pytest.approx([math.sqrt(2), 3.0550504633])
    for method in ("sum", "min", "max", "mean", "std"):
        assert by_key(getattr(grouped, method)("x", ignore_nulls=False),
                      f"{method}(x)") == [None, None], method
    assert by_key(grouped.count(), "count()") == [4, 4]
    # a group whose values are all null gets None; the other group its value
    some = ray.data.from_items([{"k": "a", "x": None}, {"k": "b", "x": 2},
                                {"k": "b", "x": 5}])
    assert by_key(some.groupby("k").sum("x"), "sum(x)") == [None, 7]
    assert by_key(some.groupby("k").max("x"), "max(x)") == [None, 5]
    words = ray.data.from_items([{"k": 1, "w": "b"}, {"k": 1, "w": None}, {"k": 1, "w": "a"}])
    assert by_key(words.groupby("k").min("w"), "min(w)") == ["a"]


def test_sort_with_boundaries_partitions_at_them():
    ds = ray.data.range(10, override_num_blocks=2)
    out = ds.sort("id", boundaries=[3, 6]).materialize()
    blocks = [b["id"].tolist() for b in out.iter_batches(batch_size=None)]
    assert blocks == [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]
    out = ds.sort("id", descending=True, boundaries=[3, 6]).materialize()
    blocks = [b["id"].tolist() for b in out.iter_batches(batch_size=None)]
    assert blocks == [[9, 8, 7, 6], [5, 4, 3], [2, 1, 0]]
    with pytest.raises(ValueError, match="boundaries"):
        ds.sort("id", boundaries=[6, 3])
