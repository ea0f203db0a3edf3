"""Making environments from what ``config.environment(env=...)`` names, and checking
that what they return has gymnasium's shape.

``resolve_env_creator`` runs in the driver (where ``register_env`` names live)
and returns a picklable ``EnvCreator`` that env-runner actors call.
"""

import dataclasses
import inspect

import gymnasium as gym

from .env_context import EnvContext
from .multi_agent_env import MultiAgentEnv

STEP_SIGNATURE = "step(action) -> (obs, reward, terminated, truncated, info)"
MA_STEP_SIGNATURE = ("step(action_dict) -> (obs, rewards, terminateds, truncateds, infos), "
                     "each a dict keyed by agent id")
RESET_SIGNATURE = "reset(*, seed=None, options=None) -> (obs, info)"


@dataclasses.dataclass
class EnvCreator:
    """A picklable recipe: ``kind`` is "registered", "gym_id", "class" or "callable"."""
    name: str
    kind: str
    target: object

    def __call__(self, env_context):
        if self.kind == "gym_id":
            return gym.make(self.target, **dict(env_context))
        if self.kind == "class" and not _takes_arguments(self.target):
            return self.target()  # an env class whose __init__ takes no env_config
        return self.target(env_context)


def _takes_arguments(cls):
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
               for p in params)


def resolve_env_creator(env):
    """``env`` as given to ``config.environment`` -> EnvCreator (a clear error if unknown)."""
    from minray.tune.registry import get_env_creator
    if env is None:
        raise ValueError("No environment set: call config.environment(env=...) with a gymnasium "
                         "id such as 'CartPole-v1', an env class, or a name registered with "
                         "minray.tune.registry.register_env.")
    if isinstance(env, str):
        creator = get_env_creator(env)
        if creator is not None:
            return EnvCreator(env, "registered", creator)
        if env in gym.registry:
            return EnvCreator(env, "gym_id", env)
        raise ValueError(f"Unknown env {env!r}: it is neither registered with "
                         f"minray.tune.registry.register_env({env!r}, creator) nor a gymnasium "
                         "id (gymnasium.registry).")
    if isinstance(env, type):
        return EnvCreator(env.__name__, "class", env)
    if callable(env):
        return EnvCreator(getattr(env, "__name__", repr(env)), "callable", env)
    raise TypeError(f"config.environment(env=...) takes a gymnasium id, an env class or a "
                    f"registered name, got {type(env).__name__}.")


def make_env(creator, env_config, worker_index=0, vector_index=0, num_workers=0):
    env = creator(EnvContext(env_config, worker_index, vector_index, num_workers))
    if not isinstance(env, (gym.Env, MultiAgentEnv)) and not hasattr(env, "step"):
        raise TypeError(f"env {creator.name!r} built a {type(env).__name__}, which is not an "
                        "environment: return a gymnasium.Env or MultiAgentEnv.")
    return env


def is_multi_agent(env):
    return isinstance(env, MultiAgentEnv)


def _describe(result):
    if isinstance(result, tuple):
        return f"a tuple of {len(result)} values ({', '.join(type(v).__name__ for v in result)})"
    return f"a {type(result).__name__}"


def check_step(result, env_name, multi_agent=False):
    """Raise ValueError unless ``result`` is gymnasium's 5-tuple."""
    if isinstance(result, tuple) and len(result) == 5:
        if multi_agent and not isinstance(result[1], dict):
            raise ValueError(f"Env {env_name!r}: step() of a MultiAgentEnv returned rewards as "
                             f"{type(result[1]).__name__}; expected {MA_STEP_SIGNATURE}.")
        return result
    hint = (" It looks like the old gym API (obs, reward, done, info): split done into "
            "terminated and truncated." if isinstance(result, tuple) and len(result) == 4 else "")
    signature = MA_STEP_SIGNATURE if multi_agent else STEP_SIGNATURE
    raise ValueError(f"Env {env_name!r}: step() returned {_describe(result)}; expected "
                     f"gymnasium's signature {signature}.{hint}")


def check_reset(result, env_name):
    if isinstance(result, tuple) and len(result) == 2:
        return result
    raise ValueError(f"Env {env_name!r}: reset() returned {_describe(result)}; expected "
                     f"gymnasium's signature {RESET_SIGNATURE}.")


def check_env(env, env_name):
    """One reset and one random step, as RLlib does when it builds an algorithm."""
    multi = is_multi_agent(env)
    obs, _ = check_reset(env.reset(), env_name)
    if multi:
        actions = {a: env.get_action_space(a).sample() for a in obs}
    else:
        actions = env.action_space.sample()
    check_step(env.step(actions), env_name, multi)


__all__ = ["EnvCreator", "check_env", "check_reset", "check_step", "is_multi_agent",
           "make_env", "resolve_env_creator"]
