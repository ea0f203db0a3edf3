from .dqn import DQN, DQNConfig, DQNLearner, DefaultDQNTorchRLModule

__all__ = ["DQN", "DQNConfig", "DQNLearner", "DefaultDQNTorchRLModule"]
