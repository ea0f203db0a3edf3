"""minray.util.dask: a dask scheduler that runs every graph task as a minray task.

    dask.compute(x, scheduler=ray_dask_get)     (or enable_dask_on_ray() once)
      graph {key: task} -> dependencies, topological order
      -> each task: _run_graph_task.remote(task, dep_keys, *dep_refs) -> ObjectRef
         (its dependencies' ObjectRefs are top-level arguments: minray resolves them
          where the task runs, so partitions move between nodes through the object
          store and never through the driver)
      -> the requested keys: ray.get (or, with ray_persist=True, their ObjectRefs),
         packed in the nested shape dask asked for

Graphs come in two forms.  dask >= 2024.12 hands schedulers ``dask._task_spec``
nodes (``Task``, ``Alias``, ``DataNode``, each knowing its dependencies and callable
with a dict of their values); older dask hands tuples ``(func, *args)``.  Both are
handled: the node's own ``__call__`` in the first case, ``dask.core``'s task executor
in the second.  An ``Alias`` costs no task (it is the ObjectRef of its target).

Semantics follow ``ray.util.dask`` in Ray 2.60: ``enable_dask_on_ray()`` makes
``ray_dask_get`` dask's default scheduler and the task-based shuffle its shuffle
method (it also works as a context manager), ``disable_dask_on_ray()`` undoes it, and
``ray_remote_args`` / ``ray_persist`` can be passed to ``compute``.
"""

import logging
from typing import Any, Dict, List, NamedTuple

from .. import api as _api

logger = logging.getLogger(__name__)

__all__ = ["ray_dask_get", "enable_dask_on_ray", "disable_dask_on_ray", "ray_dask_get_sync"]


class _GraphTask(NamedTuple):
    """One graph entry as the scheduler sees it."""
    key: Any
    node: Any                # a dask._task_spec node, or a legacy task / literal
    dependencies: frozenset


def _dask():
    try:
        import dask
    except ImportError as exc:
        raise ImportError("minray.util.dask needs dask: pip install 'dask[dataframe]'") \
            from exc
    return dask


def _task_spec():
    try:
        from dask import _task_spec
        return _task_spec
    except ImportError:   # dask < 2024.12: legacy tuple graphs
        return None


def _graph_tasks(dsk) -> List[_GraphTask]:
    """The graph's entries with their dependencies, in an order that respects them."""
    from collections.abc import Mapping

    from dask.core import toposort
    from dask.utils import ensure_dict
    if not isinstance(dsk, Mapping) and hasattr(dsk, "__dask_graph__"):
        dsk = dsk.__dask_graph__()     # dask >= 2025 hands schedulers an expression
    dsk = ensure_dict(dsk) if not isinstance(dsk, dict) else dict(dsk)
    spec = _task_spec()
    if spec is not None:
        graph = spec.convert_legacy_graph(dsk)
        deps = {key: frozenset(node.dependencies) for key, node in graph.items()}
    else:
        from dask.core import get_dependencies
        graph = dsk
        deps = {key: frozenset(get_dependencies(dsk, key)) for key in dsk}
    order = toposort(graph, dependencies=deps)
    return [_GraphTask(key, graph[key], deps[key]) for key in order]


def _run_graph_task(node, dep_keys, *dep_values):
    """Run one graph entry inside a minray worker, its dependencies' values given."""
    values = dict(zip(dep_keys, dep_values))
    spec = _task_spec()
    if spec is not None:
        return node(values)
    from dask.core import _execute_task
    return _execute_task(node, values)


_remote_run = None


def _runner():
    global _remote_run
    if _remote_run is None:
        _remote_run = _api.remote(_run_graph_task)
    return _remote_run


def _alias_target(node):
    spec = _task_spec()
    if spec is not None and isinstance(node, spec.Alias):
        return node.target
    return None


def _submit_graph(dsk, remote_args) -> Dict[Any, Any]:
    """Submit every entry of the graph; return {key: ObjectRef}."""
    run = _runner()
    if remote_args:
        run = run.options(**remote_args)
    refs = {}
    for task in _graph_tasks(dsk):
        target = _alias_target(task.node)
        if target is not None and target in refs:
            refs[task.key] = refs[target]
            continue
        dep_keys = sorted(task.dependencies, key=repr)
        refs[task.key] = run.remote(task.node, dep_keys, *[refs[k] for k in dep_keys])
    return refs


def _pack(keys, refs, fetch):
    """The results in the nested list shape of ``keys``."""
    if isinstance(keys, list):
        return [_pack(k, refs, fetch) for k in keys]
    return fetch(refs[keys])


def _flatten(keys):
    if isinstance(keys, list):
        for k in keys:
            yield from _flatten(k)
    else:
        yield keys


def ray_dask_get(dsk, keys, *, ray_remote_args=None, ray_persist=False, **kwargs):
    """A dask scheduler: run the graph ``dsk`` as minray tasks, return ``keys``' values.

    ``ray_remote_args`` (e.g. ``{"num_cpus": 2}``) go to every graph task;
    with ``ray_persist=True`` the ObjectRefs are returned instead of the values.
    Other dask scheduler keywords (``num_workers``, ``pool``...) are accepted and
    ignored, as minray decides where tasks run.

    Example::

        import dask.array as da
        from minray.util.dask import ray_dask_get

        x = da.ones((1000, 1000), chunks=(100, 100))
        assert x.sum().compute(scheduler=ray_dask_get) == 1_000_000
    """
    _dask()
    if not _api.is_initialized():
        _api.init()
    for name in kwargs:
        if name not in ("num_workers", "pool", "optimize_graph", "rerun_exceptions_locally",
                        "chunksize", "callbacks", "raise_exception", "get_id", "pack_exception"):
            logger.debug("ray_dask_get ignores the keyword %r", name)
    refs = _submit_graph(dsk, ray_remote_args)
    wanted = list(_flatten(keys))
    missing = [k for k in wanted if k not in refs]
    if missing:
        raise KeyError(f"keys {missing!r} are not in the dask graph")
    if ray_persist:
        return _pack(keys, refs, lambda ref: ref)
    values = dict(zip(wanted, _api.get([refs[k] for k in wanted])))
    return _pack(keys, {k: k for k in wanted}, values.__getitem__)


def ray_dask_get_sync(dsk, keys, **kwargs):
    """Like ``ray_dask_get``, one graph task at a time (for debugging a graph)."""
    refs = {}
    run = _runner()
    for task in _graph_tasks(dsk):
        dep_keys = sorted(task.dependencies, key=repr)
        ref = run.remote(task.node, dep_keys, *[refs[k] for k in dep_keys])
        _api.wait([ref])
        refs[task.key] = ref
    wanted = list(_flatten(keys))
    values = dict(zip(wanted, _api.get([refs[k] for k in wanted])))
    return _pack(keys, {k: k for k in wanted}, values.__getitem__)


def enable_dask_on_ray(shuffle="tasks", use_shuffle_optimization=True):
    """Make ``ray_dask_get`` dask's scheduler and ``shuffle`` its shuffle method.

    Returns dask's config context, so ``with enable_dask_on_ray(): ...`` limits it
    to a block.  ``use_shuffle_optimization`` is accepted for Ray's signature; the
    task-based shuffle is the one used.

    Example::

        enable_dask_on_ray()
        df.groupby("k").v.sum().compute()     # runs on minray
        disable_dask_on_ray()
    """
    dask = _dask()
    if shuffle not in ("tasks", "disk", None):
        raise ValueError(f"shuffle must be 'tasks' or 'disk', got {shuffle!r}")
    return dask.config.set({"scheduler": ray_dask_get, "dataframe.shuffle.method": shuffle})


def disable_dask_on_ray():
    """Give dask its default scheduler and shuffle method back.

    Example::

        disable_dask_on_ray()
    """
    dask = _dask()
    return dask.config.set({"scheduler": None, "dataframe.shuffle.method": None})
