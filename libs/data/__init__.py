"""minray.data: streaming datasets over tasks and actors (Ray Data's API).

    import minray as ray
    ds = ray.data.range(1000).map_batches(lambda b: {"id": b["id"] * 2})
    ds.filter(lambda row: row["id"] % 3 == 0).take(3)

Modules, in the order data flows through them:

    read_api.py    range / from_* / read_*: a Dataset over a source
    datasource.py  path expansion, file readers and writers
    dataset.py     Dataset: lazy transforms and the consumers that run them
    executor.py    the plan, operator fusion and the streaming executor
    transforms.py  what a fused map task does to one block
    shuffle.py     all-to-all operators: sort, shuffle, repartition, splits, zip
    aggregate.py / grouped.py   aggregations and groupby
    iterator.py    batches, torch batches, streaming_split
    block.py       blocks (dicts of numpy arrays), batch formats, schema
    preprocessor.py  the Preprocessor base class (Ray's path)
    preprocessors/ StandardScaler, OneHotEncoder, ... (fit / transform)

Only public ``minray`` names are used: a block is an ObjectRef, a map worker
is an actor.
"""

import importlib as _importlib

from . import aggregate
from .aggregate import AggregateFn
from .block import Schema
from .context import ActorPoolStrategy, DataContext, ExecutionOptions, TaskPoolStrategy
from .dataset import Dataset, MaterializedDataset
from .grouped import GroupedData
from .iterator import DataIterator

DatasetContext = DataContext        # older name, still exported by Ray
DatasetIterator = DataIterator
from .read_api import from_dask  # noqa: E402
from .read_api import (from_arrow, from_arrow_refs, from_items, from_numpy, from_numpy_refs,
                       from_pandas, from_pandas_refs, from_torch, range, range_tensor,
                       read_binary_files, read_csv, read_images, read_json, read_numpy,
                       read_parquet, read_text)

_LAZY = {"preprocessor", "preprocessors"}

__all__ = [
    "ActorPoolStrategy", "AggregateFn", "DataContext", "DataIterator", "Dataset",
    "DatasetContext", "DatasetIterator",
    "ExecutionOptions", "GroupedData", "MaterializedDataset", "Schema", "TaskPoolStrategy",
    "aggregate", "from_arrow", "from_arrow_refs", "from_dask", "from_items", "from_numpy",
    "from_numpy_refs", "from_pandas", "from_pandas_refs", "from_torch", "range",
    "range_tensor", "read_binary_files", "read_csv", "read_images", "read_json", "read_numpy",
    "read_parquet", "read_text",
]


def __getattr__(name):
    if name in _LAZY:
        module = _importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'minray.data' has no attribute {name!r}")
