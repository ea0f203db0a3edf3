"""Preprocessors: fit on a dataset, transform datasets and single batches."""
import numpy as np
import pytest

import minray as ray
import minray.data
from minray.data.preprocessors import (Chain, Concatenator, LabelEncoder, MinMaxScaler,
                                       OneHotEncoder, PreprocessorNotFittedException,
                                       SimpleImputer, StandardScaler)

pytestmark = pytest.mark.usefixtures("ray_module")


@pytest.fixture(scope="module")
def ds():
    return ray.data.from_items([{"x": float(i), "y": 2.0 * i, "color": "rgb"[i % 3],
                                 "label": ["cat", "dog"][i % 2]} for i in range(12)],
                               override_num_blocks=3)


def test_standard_scaler(ds):
    scaler = StandardScaler(columns=["x", "y"])
    out = scaler.fit_transform(ds)
    assert scaler.stats_["mean(x)"] == 5.5
    assert scaler.stats_["std(x)"] == pytest.approx(np.std(np.arange(12)))
    x = np.array([r["x"] for r in out.take_all()])
    assert x.mean() == pytest.approx(0) and x.std() == pytest.approx(1)
    batch = scaler.transform_batch({"x": np.array([5.5]), "y": np.array([11.0])})
    assert batch["x"].tolist() == [0.0] and batch["y"].tolist() == [0.0]
    pd = pytest.importorskip("pandas")
    frame = scaler.transform_batch(pd.DataFrame({"x": [5.5], "y": [11.0]}))
    assert type(frame).__name__ == "DataFrame" and frame["x"].tolist() == [0.0]


def test_min_max_scaler_and_output_columns(ds):
    out = MinMaxScaler(columns=["x"], output_columns=["x_scaled"]).fit_transform(ds)
    rows = out.take_all()
    assert rows[0]["x_scaled"] == 0.0 and rows[-1]["x_scaled"] == 1.0 and rows[-1]["x"] == 11.0


def test_one_hot_and_label_encoders(ds):
    enc = OneHotEncoder(columns=["color"]).fit(ds)
    assert enc.stats_["unique_values(color)"] == {"b": 0, "g": 1, "r": 2}
    assert enc.transform(ds).take(1)[0]["color"].tolist() == [0, 0, 1]
    unknown = enc.transform_batch({"color": np.array(["purple", "g"])})["color"]
    assert unknown.tolist() == [[0, 0, 0], [0, 1, 0]]
    lab = LabelEncoder(label_column="label").fit(ds)
    coded = lab.transform(ds)
    assert [r["label"] for r in coded.take(3)] == [0, 1, 0]
    back = lab.inverse_transform_batch({"label": np.array([1, 0])})
    assert back["label"].tolist() == ["dog", "cat"]
    with pytest.raises(ValueError, match="not seen during fit"):
        lab.transform_batch({"label": np.array(["bird"])})


def test_simple_imputer_strategies():
    data = ray.data.from_items([{"a": 1.0, "c": "u"}, {"a": float("nan"), "c": None},
                                {"a": 3.0, "c": "u"}, {"a": 5.0, "c": "v"}])
    mean = SimpleImputer(columns=["a"]).fit(data)
    assert [r["a"] for r in mean.transform(data).take_all()] == [1.0, 3.0, 3.0, 5.0]
    frequent = SimpleImputer(columns=["c"], strategy="most_frequent").fit(data)
    assert [r["c"] for r in frequent.transform(data).take_all()] == ["u", "u", "u", "v"]
    const = SimpleImputer(columns=["a"], strategy="constant", fill_value=-1.0)
    assert const.transform_batch({"a": np.array([np.nan])})["a"].tolist() == [-1.0]
    with pytest.raises(ValueError, match="strategy"):
        SimpleImputer(columns=["a"], strategy="median")


def test_concatenator_and_chain(ds):
    cat = Concatenator(columns=["x", "y"], output_column_name="features", dtype=np.float32)
    row = cat.transform(ds).take(2)[1]
    assert row["features"].tolist() == [1.0, 2.0] and "x" not in row
    chain = Chain(StandardScaler(columns=["x"]), Concatenator(columns=["x", "y"]))
    out = chain.fit_transform(ds).take(1)[0]
    assert out["concat_out"][0] == pytest.approx(-5.5 / np.std(np.arange(12)))
    assert chain.transform_batch({"x": np.array([5.5]), "y": np.array([1.0])})[
        "concat_out"].tolist() == [[0.0, 1.0]]


def test_errors_not_fitted_and_missing_column(ds):
    with pytest.raises(PreprocessorNotFittedException, match="fit"):
        StandardScaler(columns=["x"]).transform(ds)
    scaler = StandardScaler(columns=["x"]).fit(ds)
    with pytest.raises(KeyError, match="'nope'"):
        scaler.transform_batch({"nope": np.array([1.0])})
    with pytest.raises(KeyError, match="zz"):
        StandardScaler(columns=["zz"]).fit(ds)
