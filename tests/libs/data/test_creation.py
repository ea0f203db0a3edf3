"""Creating datasets: synthetic sources, in-memory data, and files (read and write)."""
import json
import os
import sys

import numpy as np
import pytest

import minray as ray
import minray.data

pytestmark = pytest.mark.usefixtures("ray_module")


def test_range_rows_blocks_and_schema():
    ds = ray.data.range(100, override_num_blocks=7)
    assert ds.count() == 100
    assert ds.take(3) == [{"id": 0}, {"id": 1}, {"id": 2}]
    assert ds.materialize().num_blocks() == 7
    assert ds.schema().names == ["id"] and str(ds.schema().types[0]) == "int64"
    assert ray.data.range(0).count() == 0 and ray.data.range(0).take_all() == []
    with pytest.raises(ValueError, match="non-negative"):
        ray.data.range(-1)


def test_range_tensor():
    ds = ray.data.range_tensor(6, shape=(2, 3))
    rows = ds.take_all()
    assert len(rows) == 6
    assert rows[4]["data"].shape == (2, 3) and (rows[4]["data"] == 4).all()
    assert str(ds.schema().types[0]) == "ArrowTensorTypeV2(shape=(2, 3), dtype=int64)"


def test_from_items_dicts_and_plain_values():
    ds = ray.data.from_items([{"a": 1, "b": "x"}, {"a": 2, "b": "y"}])
    assert ds.take_all() == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    assert [str(t) for t in ds.schema().types] == ["int64", "string"]
    assert ray.data.from_items([1, 2, 3]).take_all() == [{"item": 1}, {"item": 2}, {"item": 3}]
    tensors = ray.data.from_items([{"v": np.ones(3) * i} for i in range(4)])
    assert tensors.take_batch(4)["v"].shape == (4, 3)


def test_from_numpy_and_refs():
    ds = ray.data.from_numpy(np.arange(12).reshape(6, 2))
    assert ds.count() == 6 and ds.take(1)[0]["data"].tolist() == [0, 1]
    two = ray.data.from_numpy([np.zeros(3), np.ones(2)])
    assert two.materialize().num_blocks() == 2 and two.sum("data") == 2
    assert ray.data.from_numpy_refs(ray.put(np.arange(4))).sum("data") == 6
    with pytest.raises(TypeError, match="numpy arrays"):
        ray.data.from_numpy([1, 2])


def test_from_pandas_and_to_pandas():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    ds = ray.data.from_pandas(df)
    out = ds.to_pandas()
    assert out["a"].tolist() == [1, 2, 3] and out["b"].tolist() == ["x", "y", "z"]
    assert ray.data.from_pandas([df, df]).count() == 6
    assert ray.data.from_pandas(df, override_num_blocks=3).materialize().num_blocks() == 3
    assert ray.data.from_pandas_refs([ray.put(df)]).count() == 3


def test_from_arrow_when_installed():
    pa = pytest.importorskip("pyarrow", reason="pyarrow is optional: pip install pyarrow")
    ds = ray.data.from_arrow(pa.table({"a": [1, 2], "s": ["u", "v"]}))
    assert ds.take_all() == [{"a": 1, "s": "u"}, {"a": 2, "s": "v"}]
    batch = ds.take_batch(2, batch_format="pyarrow")
    assert batch.num_rows == 2


@pytest.mark.parametrize("call", [
    lambda tmp: ray.data.from_arrow([]),
    lambda tmp: ray.data.read_parquet(str(tmp)),
    lambda tmp: ray.data.range(3).write_parquet(str(tmp)),
])
def test_missing_pyarrow_names_the_package(monkeypatch, tmp_path, call):
    for mod in [m for m in sys.modules if m == "pyarrow" or m.startswith("pyarrow.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match="pip install pyarrow"):
        call(tmp_path)


def test_missing_pillow_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    with pytest.raises(ImportError, match="pip install pillow"):
        ray.data.read_images(str(tmp_path))


def test_from_torch_with_a_map_style_dataset():
    class Pairs:                      # anything with __len__ and __getitem__, as torch's
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return (np.array([i, i]), i % 2)

    rows = ray.data.from_torch(Pairs()).take_all()
    assert len(rows) == 3 and rows[2]["item"][0].tolist() == [2, 2] and rows[2]["item"][1] == 0


def test_from_torch():
    torch = pytest.importorskip("torch", reason="torch is optional")

    class Squares(torch.utils.data.Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return torch.tensor([i * i])

    ds = ray.data.from_torch(Squares())
    assert [int(r["item"][0]) for r in ds.take_all()] == [0, 1, 4, 9, 16]


# ---------------------------------------------------------------- files
def test_csv_roundtrip_directory_glob_and_single_file(tmp_path):
    out = str(tmp_path / "csv")
    ray.data.range(50, override_num_blocks=3).map(
        lambda r: {"id": r["id"], "name": f"n{r['id']}"}).write_csv(out)
    files = sorted(os.listdir(out))
    assert len(files) == 3 and all(f.endswith(".csv") for f in files)
    ds = ray.data.read_csv(out)
    assert sorted(r["id"] for r in ds.take_all()) == list(range(50))
    assert ds.schema().names == ["id", "name"]
    assert ray.data.read_csv(os.path.join(out, "*.csv")).count() == 50
    assert ray.data.read_csv(os.path.join(out, files[0])).count() > 0
    with_paths = ray.data.read_csv(out, include_paths=True).take(1)[0]
    assert with_paths["path"].startswith(out)


def test_big_csv_reads_in_parallel_ranges(tmp_path, monkeypatch):
    from minray.data import csv_io
    path = tmp_path / "big.csv"
    path.write_text("a,b\n" + "".join(f"{i},{i * 2}\n" for i in range(5000)))
    monkeypatch.setattr(csv_io, "CSV_SPLIT_BYTES", 4096)
    ds = ray.data.read_csv(str(path))
    mat = ds.materialize()
    assert mat.num_blocks() > 5
    rows = mat.take_all()
    assert [r["a"] for r in rows] == list(range(5000))
    assert all(r["b"] == 2 * r["a"] for r in rows)


def test_read_missing_path_raises_file_not_found(tmp_path):
    for reader in (ray.data.read_csv, ray.data.read_json, ray.data.read_text,
                   ray.data.read_numpy):
        with pytest.raises(FileNotFoundError, match="nope"):
            reader(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="no files match"):
        ray.data.read_csv(str(tmp_path / "*.nope"))


def test_json_lines_roundtrip(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"a": i, "b": str(i)}) + "\n" for i in range(10)))
    ds = ray.data.read_json(str(src))
    assert ds.count() == 10 and ds.take(1) == [{"a": 0, "b": "0"}]
    out = str(tmp_path / "out")
    ds.write_json(out)
    back = ray.data.read_json(out)
    assert sorted(r["a"] for r in back.take_all()) == list(range(10))
    array_file = tmp_path / "array.json"
    array_file.write_text(json.dumps([{"a": 1}, {"a": 2}]))
    assert ray.data.read_json(str(array_file)).sum("a") == 3


def test_read_text(tmp_path):
    (tmp_path / "a.txt").write_text("hello\n\nworld\n")
    (tmp_path / "b.txt").write_text("again\n")
    ds = ray.data.read_text(str(tmp_path))      # Ray 2.60 drops empty lines by default
    assert [r["text"] for r in ds.take_all()] == ["hello", "world", "again"]
    assert ray.data.read_text(str(tmp_path), drop_empty_lines=False).count() == 4


def test_numpy_roundtrip(tmp_path):
    out = str(tmp_path / "npy")
    ray.data.range_tensor(10, shape=(2,), override_num_blocks=2).write_numpy(out, column="data")
    assert len(os.listdir(out)) == 2
    ds = ray.data.read_numpy(out)
    assert ds.count() == 10 and sorted(int(r["data"][0]) for r in ds.take_all()) == list(range(10))
    with pytest.raises(KeyError, match="nope"):
        ray.data.range(3).write_numpy(str(tmp_path / "x"), column="nope")


def test_parquet_roundtrip(tmp_path):
    pytest.importorskip("pyarrow", reason="pyarrow is optional: pip install pyarrow")
    out = str(tmp_path / "pq")
    ray.data.from_items([{"a": i, "s": str(i)} for i in range(20)]).write_parquet(out)
    ds = ray.data.read_parquet(out)
    assert sorted(r["a"] for r in ds.take_all()) == list(range(20))
    assert ray.data.read_parquet(out, columns=["s"]).columns() == ["s"]


def test_read_images(tmp_path):
    Image = pytest.importorskip("PIL.Image", reason="Pillow is optional: pip install pillow")
    for i in range(3):
        Image.fromarray(np.full((8, 6, 3), i * 40, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    ds = ray.data.read_images(str(tmp_path))
    rows = ds.take_all()
    assert len(rows) == 3 and rows[0]["image"].shape == (8, 6, 3)
    small = ray.data.read_images(str(tmp_path), size=(4, 4), mode="L", include_paths=True)
    row = small.take(1)[0]
    assert row["image"].shape == (4, 4) and row["path"].endswith(".png")
