"""Dataset <-> dask DataFrame, through minray.util.dask (needs dask installed).

    ds.to_dask()            -> each block: a pandas DataFrame ObjectRef (a task)
                            -> one dask partition per block, each a delayed fetch of its ref
    ray.data.from_dask(df)  -> dask's partitions computed as minray tasks (ray_dask_get)
                            -> one block per partition

The partitions stay in the object store until dask needs them; under
``enable_dask_on_ray()`` the fetch runs inside a minray task, near the data.
"""

import minray as ray


def _require_dask():
    try:
        import dask  # noqa: F401
        import dask.dataframe  # noqa: F401
    except ImportError as exc:
        raise ImportError("to_dask/from_dask need dask: pip install 'dask[dataframe]'") \
            from exc


def _fetch(ref):
    return ray.get(ref)


def to_dask(ds, meta=None, verify_meta=True):
    """The dataset as a dask DataFrame, one partition per block.

    ``meta``: an empty DataFrame with the columns and dtypes (default: taken from
    the first block).  Example::

        ddf = ray.data.range(100, override_num_blocks=4).to_dask()
        ddf.npartitions == 4
    """
    _require_dask()
    import dask
    import dask.dataframe as dd
    refs = ds.to_pandas_refs()
    if not refs:
        raise ValueError("to_dask() of an empty dataset: it has no blocks to turn into "
                         "partitions")
    if meta is None:
        meta = ray.get(refs[0]).iloc[:0]
    parts = [dask.delayed(_fetch)(ref) for ref in refs]
    return dd.from_delayed(parts, meta=meta, verify_meta=verify_meta)


def from_dask(df):
    """A dataset from a dask DataFrame, one block per partition (computed on minray).

    Example::

        ds = ray.data.from_dask(dd.from_pandas(pdf, npartitions=4))
    """
    _require_dask()
    import dask
    from minray.util.dask import ray_dask_get
    from .read_api import from_pandas
    if not hasattr(df, "to_delayed"):
        raise TypeError(f"from_dask() takes a dask DataFrame, got {type(df).__name__}")
    partitions = dask.compute(*df.to_delayed(), scheduler=ray_dask_get)
    return from_pandas(list(partitions))
