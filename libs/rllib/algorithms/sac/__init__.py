from .sac import SAC, DefaultSACTorchRLModule, SACConfig, SACLearner

__all__ = ["DefaultSACTorchRLModule", "SAC", "SACConfig", "SACLearner"]
