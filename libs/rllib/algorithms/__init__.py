"""Algorithms: PPO, DQN, SAC and their configs."""

from .algorithm import Algorithm
from .algorithm_config import AlgorithmConfig
from .dqn import DQN, DQNConfig
from .ppo import PPO, PPOConfig
from .sac import SAC, SACConfig

__all__ = ["Algorithm", "AlgorithmConfig", "DQN", "DQNConfig", "PPO", "PPOConfig", "SAC",
           "SACConfig"]
