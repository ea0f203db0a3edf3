"""minray.air: the Ray AIR names that "Learning Ray" (chapters 7 and 10) uses,
as aliases of today's minray.train / minray.tune objects (no copies)::

    from minray.air import session, Checkpoint
    from minray.air.config import ScalingConfig, RunConfig

Everything loads on first use.
"""

import importlib as _importlib

_EXPORTS = {
    "Checkpoint": ("minray.train", "Checkpoint"),
    "Result": ("minray.train", "Result"),
    "ScalingConfig": ("minray.train", "ScalingConfig"),
    "RunConfig": ("minray.train", "RunConfig"),
    "CheckpointConfig": ("minray.train", "CheckpointConfig"),
    "FailureConfig": ("minray.train", "FailureConfig"),
    "DatasetConfig": ("minray.train", "DataConfig"),
}
_SUBMODULES = ("session", "config")


def __getattr__(name):
    if name in _EXPORTS:
        module, attr = _EXPORTS[name]
        value = getattr(_importlib.import_module(module), attr)
    elif name in _SUBMODULES:
        value = _importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(_EXPORTS) | set(_SUBMODULES))


__all__ = sorted(_EXPORTS) + list(_SUBMODULES)
