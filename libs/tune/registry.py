"""Names for trainables and environments (Ray's ``ray.tune.registry``).

    from minray.tune.registry import register_env, register_trainable
    register_env("my_env", lambda env_config: MyEnv(env_config))
    register_trainable("my_train", train_fn)
    tune.Tuner("my_train", ...)          # resolved by name

The registry lives in the driver process.  Tune resolves a trainable's name
once, in the driver, and ships the function or class itself to the trials;
RLlib resolves an env name in the driver and ships the creator to its
env-runner actors, so worker processes never need the registry.

RLlib's algorithm names ("PPO", "DQN", ...) resolve lazily: the first lookup of
an unknown name asks ``minray.rllib`` for its built-in algorithms.
"""

import importlib

_TRAINABLES = {}
_ENVS = {}


def register_trainable(name, trainable):
    """Register a function or ``tune.Trainable`` subclass under ``name``."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"register_trainable needs a non-empty name, got {name!r}.")
    if not callable(trainable):
        raise TypeError(f"register_trainable({name!r}, ...) needs a function or Trainable "
                        f"class, got {type(trainable).__name__}.")
    _TRAINABLES[name] = trainable


def register_env(name, env_creator):
    """Register ``env_creator(env_config) -> env`` under ``name`` (for RLlib)."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"register_env needs a non-empty name, got {name!r}.")
    if not callable(env_creator):
        raise TypeError(f"register_env({name!r}, ...) needs a callable env_config -> env, got "
                        f"{type(env_creator).__name__}.")
    _ENVS[name] = env_creator


def _builtin_trainable(name):
    try:
        registry = importlib.import_module("minray.rllib.algorithms.registry")
    except ImportError:
        return None
    return registry.get_algorithm_class(name)


def get_trainable_cls(name):
    """The trainable registered (or built in, e.g. "PPO") under ``name``."""
    if name not in _TRAINABLES:
        builtin = _builtin_trainable(name)
        if builtin is None:
            known = sorted(_TRAINABLES)
            raise ValueError(f"Unknown trainable {name!r}: register it first with "
                             f"tune.registry.register_trainable({name!r}, fn). "
                             f"Registered: {known}.")
        _TRAINABLES[name] = builtin
    return _TRAINABLES[name]


def get_env_creator(name):
    """The creator registered with ``register_env(name, ...)``, or None."""
    return _ENVS.get(name)


def env_registered(name):
    return name in _ENVS


__all__ = ["get_env_creator", "get_trainable_cls", "register_env", "register_trainable",
           "env_registered"]
