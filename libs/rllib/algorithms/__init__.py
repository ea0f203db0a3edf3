"""Algorithms: PPO, DQN, SAC and their configs."""

from .algorithm import Algorithm
from .algorithm_config import AlgorithmConfig
from .dqn import DQN, DQNConfig
from .ppo import PPO, PPOConfig

__all__ = ["Algorithm", "AlgorithmConfig", "DQN", "DQNConfig", "PPO", "PPOConfig"]
