from .ppo import PPO, PPOConfig, DefaultPPOTorchRLModule, PPOLearner

__all__ = ["DefaultPPOTorchRLModule", "PPO", "PPOConfig", "PPOLearner"]
