"""minray.util.dask: dask graphs computed as minray tasks, and Data's to_dask/from_dask."""
import os

import pytest

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
pd = pytest.importorskip("pandas")

import numpy as np  # noqa: E402

import minray as ray  # noqa: E402
from minray.util.dask import (disable_dask_on_ray, enable_dask_on_ray,  # noqa: E402
                              ray_dask_get)


def frame(n=400):
    rng = np.random.default_rng(0)
    return pd.DataFrame({"k": rng.integers(0, 7, n), "v": rng.normal(size=n),
                         "w": np.arange(n)})


def where_it_ran(_):
    return os.getpid()


def test_dataframe_groupby_on_minray_equals_dasks_own(ray_module):
    df = dd.from_pandas(frame(), npartitions=4)
    agg = df.groupby("k").agg({"v": "sum", "w": "max"})
    expected = agg.compute(scheduler="sync")
    got = agg.compute(scheduler=ray_dask_get)
    pd.testing.assert_frame_equal(got.sort_index(), expected.sort_index())
    mean = df.groupby("k").v.mean().compute(scheduler=ray_dask_get)
    pd.testing.assert_series_equal(mean.sort_index(), frame().groupby("k").v.mean())


def test_graph_tasks_run_in_minray_workers(ray_module):
    bag = dask.delayed(where_it_ran)
    pids = dask.compute(*[bag(i) for i in range(8)], scheduler=ray_dask_get)
    assert os.getpid() not in pids


def test_enable_and_disable_switch_the_default_scheduler(ray_module):
    x = dask.delayed(where_it_ran)(0)
    with enable_dask_on_ray():
        assert dask.config.get("scheduler") is ray_dask_get
        assert x.compute() != os.getpid()
    enable_dask_on_ray()
    try:
        df = dd.from_pandas(frame(), npartitions=3)
        shuffled = df.set_index("k").v.sum().compute()   # a shuffle, task-based
        assert shuffled == pytest.approx(frame().v.sum())
    finally:
        disable_dask_on_ray()
    assert dask.config.get("scheduler", None) is None


def test_arrays_nested_keys_and_persist(ray_module):
    import dask.array as da
    x = da.arange(1000, chunks=100)
    assert x.sum().compute(scheduler=ray_dask_get) == sum(range(1000))
    a, b = dask.compute(x.mean(), x.max(), scheduler=ray_dask_get)
    assert (a, b) == (499.5, 999)
    np.testing.assert_array_equal((x * 2).compute(scheduler=ray_dask_get), np.arange(1000) * 2)
    refs = ray_dask_get({"a": 1, "b": (sum, ["a", "a"])}, ["b"], ray_persist=True)
    assert isinstance(refs[0], ray.ObjectRef) and ray.get(refs[0]) == 2


def test_errors_in_graph_tasks_reach_the_caller(ray_module):
    def bad(x):
        raise ArithmeticError(f"bad partition {x}")
    with pytest.raises(ArithmeticError, match="bad partition 3"):
        dask.delayed(bad)(3).compute(scheduler=ray_dask_get)
    with pytest.raises(KeyError, match="not in the dask graph"):
        ray_dask_get({"a": 1}, ["zzz"])
