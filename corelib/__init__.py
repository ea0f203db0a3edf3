"""minray: Ray's programming model on the machines people have.

    import minray as ray
    ray.init()
    @ray.remote
    def f(x): return x * 2
    ray.get([f.remote(i) for i in range(4)])

This module is the one curated namespace: the Ray-compatible names and nothing
else.  The libraries (data, tune, train, rllib, serve) load on first use, so
``import minray`` stays fast.
"""

import importlib as _importlib

from . import exceptions
from .actor import method
from .api import (available_resources, cancel, cluster_resources, get, get_actor, init,
                  is_initialized, kill, nodes, put, remote, shutdown, timeline, wait)
from .object_ref import DynamicObjectRefGenerator, ObjectRef, ObjectRefGenerator
from .runtime_context import get_runtime_context

__version__ = "0.1.0"

_LAZY = {"data", "tune", "train", "rllib", "serve", "util", "actor", "job_config",
         "runtime_context", "air"}

__all__ = [
    "ObjectRef", "ObjectRefGenerator", "DynamicObjectRefGenerator", "available_resources",
    "cancel", "cluster_resources", "exceptions", "get", "get_actor", "get_runtime_context",
    "init", "is_initialized", "kill", "method", "nodes", "put", "remote", "shutdown",
    "timeline", "wait", "__version__",
]


def __getattr__(name):
    if name in _LAZY:
        module = _importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'minray' has no attribute {name!r}")


def __dir__():
    return sorted(set(__all__) | _LAZY)
