"""minray.util: helpers built on the core API (actor pools, queues, placement groups).

    from minray.util import ActorPool, placement_group, remove_placement_group
    from minray.util.queue import Queue, Empty, Full
    from minray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
    from minray.util.multiprocessing import Pool        # multiprocessing.Pool on actors
    from minray.util.joblib import register_ray         # joblib's "ray" backend
    from minray.util.dask import enable_dask_on_ray     # dask graphs as minray tasks

``import minray`` does not load this package; ``minray.util`` loads it on first
use.  Its placement-group functions are plain calls into the node manager's
``create_pg`` / ``wait_pg`` / ``remove_pg`` / ``pg_table`` handlers; ActorPool and
Queue use only public API (actors, get, wait), as a library would.  The queue
module (it imports asyncio) loads on first use of ``minray.util.queue``.

As in Ray, scheduling strategies live only in ``minray.util.scheduling_strategies``.
"""

import importlib as _importlib

from .actor_pool import ActorPool
from .placement_group import (get_current_placement_group, get_placement_group,
                              placement_group, placement_group_table,
                              remove_placement_group)
from .serialization import deregister_serializer, register_serializer

_LAZY_SUBMODULES = {"queue", "scheduling_strategies", "actor_pool", "multiprocessing",
                    "joblib", "dask", "state", "metrics"}

__all__ = [
    "ActorPool", "deregister_serializer", "get_current_placement_group", "get_node_ip_address",
    "get_placement_group", "list_named_actors", "placement_group", "placement_group_table",
    "register_serializer", "remove_placement_group",
]


def list_named_actors(all_namespaces=False):
    """Names of the live named actors in this job's namespace.

    With ``all_namespaces=True``: a list of ``{"name": ..., "namespace": ...}``
    dicts covering every namespace.

    Example::

        Counter.options(name="c").remote()
        assert "c" in ray.util.list_named_actors()
    """
    from minray._private import state
    return state.require_client().call("list_named_actors", bool(all_namespaces))


def get_node_ip_address(address="8.8.8.8:53"):
    """The IP address of the node this process runs on (its node manager's
    --node-ip-address; 127.0.0.1 for a local runtime).

    Example::

        ip = ray.util.get_node_ip_address()
    """
    from minray._private import state
    client = state.current_client()
    info = getattr(client, "info", None) or {}
    return info.get("node_ip", "127.0.0.1")


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        module = _importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'minray.util' has no attribute {name!r}")


def __dir__():
    return sorted(set(__all__) | _LAZY_SUBMODULES)
