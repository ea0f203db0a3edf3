"""RL modules: the networks algorithms train and serve."""

from .rl_module import MultiRLModuleSpec, RLModule, RLModuleSpec

__all__ = ["MultiRLModuleSpec", "RLModule", "RLModuleSpec"]
