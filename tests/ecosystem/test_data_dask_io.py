"""minray.data's Dataset.to_dask() and from_dask(), computed on minray."""
import pytest

dd = pytest.importorskip("dask.dataframe")
pd = pytest.importorskip("pandas")

import numpy as np  # noqa: E402

import minray as ray  # noqa: E402
from minray.util.dask import ray_dask_get  # noqa: E402


def frame(n):
    return pd.DataFrame({"k": np.arange(n) % 7, "v": np.arange(n) * 0.5, "w": np.arange(n)})


def test_dataset_to_dask_and_from_dask(ray_module):
    ds = ray.data.from_pandas(frame(60), override_num_blocks=3)
    ddf = ds.to_dask()
    assert ddf.npartitions == 3
    pd.testing.assert_frame_equal(ddf.compute(scheduler=ray_dask_get).reset_index(drop=True),
                                  frame(60), check_dtype=False)
    back = ray.data.from_dask(dd.from_pandas(frame(50), npartitions=5))
    assert back.count() == 50 and back.num_blocks() == 5
    assert back.sum("w") == sum(range(50))
