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

__version__ = "0.1.0"

# Every public name, and the module that defines it. Nothing is imported until
# first use (a module __getattr__, as concurrent.futures does), so `import
# minray` costs a few milliseconds, and the runtime's own processes (the node
# manager) import only the internals they need.
_EXPORTS = {
    "exceptions": ("exceptions", None),
    "method": ("actor", "method"),
    "available_resources": ("api", "available_resources"),
    "cancel": ("api", "cancel"),
    "cluster_resources": ("api", "cluster_resources"),
    "get": ("api", "get"),
    "get_actor": ("api", "get_actor"),
    "init": ("api", "init"),
    "is_initialized": ("api", "is_initialized"),
    "kill": ("api", "kill"),
    "nodes": ("api", "nodes"),
    "put": ("api", "put"),
    "remote": ("api", "remote"),
    "shutdown": ("api", "shutdown"),
    "timeline": ("api", "timeline"),
    "wait": ("api", "wait"),
    "DynamicObjectRefGenerator": ("object_ref", "DynamicObjectRefGenerator"),
    "ObjectRef": ("object_ref", "ObjectRef"),
    "ObjectRefGenerator": ("object_ref", "ObjectRefGenerator"),
    "get_runtime_context": ("runtime_context", "get_runtime_context"),
}

_LAZY = {"data", "tune", "train", "rllib", "serve", "util", "actor", "job_config",
         "runtime_context", "air", "job_submission"}

__all__ = [
    "ObjectRef", "ObjectRefGenerator", "DynamicObjectRefGenerator", "available_resources",
    "cancel", "cluster_resources", "exceptions", "get", "get_actor", "get_runtime_context",
    "init", "is_initialized", "kill", "method", "nodes", "put", "remote", "shutdown",
    "timeline", "wait", "__version__",
]


def __getattr__(name):
    if name in _EXPORTS:
        module_name, attr = _EXPORTS[name]
        module = _importlib.import_module(f"{__name__}.{module_name}")
        value = module if attr is None else getattr(module, attr)
        globals()[name] = value
        return value
    if name in _LAZY:
        module = _importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'minray' has no attribute {name!r}")


def _auto_init():
    """What the runtime does when used before init(): start one, as Ray does."""
    __getattr__("init")()


# state.py sits at the bottom of the import graph; the package hands it the
# auto-init policy instead of state.py importing api.py (tests/unit/test_import_graph.py).
from minray._private import state as _state  # noqa: E402  (stdlib-only, light)
_state.set_auto_init(_auto_init)


def __dir__():
    return sorted(set(__all__) | _LAZY)
