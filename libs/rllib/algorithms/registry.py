"""Built-in algorithm names, for ``tune.Tuner("PPO", ...)`` and the CLI."""

import importlib

ALGORITHMS = {"PPO": ("ppo", "PPO"), "DQN": ("dqn", "DQN"), "SAC": ("sac", "SAC")}


def get_algorithm_class(name, return_config=False):
    """``"PPO"`` -> the PPO class (or its default config), None if unknown."""
    entry = ALGORITHMS.get(str(name).upper())
    if entry is None:
        return None
    module = importlib.import_module(f"minray.rllib.algorithms.{entry[0]}")
    cls = getattr(module, entry[1])
    return cls.get_default_config() if return_config else cls


__all__ = ["ALGORITHMS", "get_algorithm_class"]
