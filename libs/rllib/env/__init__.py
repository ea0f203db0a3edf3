"""Environments: ``MultiAgentEnv``, ``EnvContext`` and the env runners that sample them."""

from .env_context import EnvContext
from .multi_agent_env import MultiAgentEnv

__all__ = ["EnvContext", "MultiAgentEnv"]
