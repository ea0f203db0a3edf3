"""``RLModule``: the torch network an algorithm trains and env runners act with.

    module = algo.get_module()                  # the default policy
    out = module.forward_inference({"obs": torch.tensor(obs_batch)})
    out["action_dist_inputs"]                   # logits (PPO) / Q-values (DQN)

Every module offers three forward passes (inference: greedy serving;
exploration: what env runners sample with; train: what the loss needs) and
``compute_actions(obs, explore, rng, epsilon)``, the numpy-in/numpy-out path
env runners call once per vectorised step.

``RLModuleSpec(module_class=..., model_config=...)`` says which class to build
with which model settings; algorithms fill in the spaces.
"""

import dataclasses

import gymnasium as gym
import numpy as np
import torch
from torch import nn

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "swish": nn.SiLU, "silu": nn.SiLU,
                "elu": nn.ELU, "linear": nn.Identity, None: nn.Identity}


def obs_dim(space):
    """Length of the flat float vector an observation of ``space`` becomes."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.Box):
        return int(np.prod(space.shape))
    return int(gym.spaces.flatdim(space))


def make_mlp(in_dim, hiddens, activation, out_dim=None, out_init_std=0.01):
    """Fully connected layers ``in_dim -> hiddens... (-> out_dim)``."""
    if activation not in _ACTIVATIONS:
        raise ValueError(f"Unknown fcnet_activation {activation!r}; use one of "
                         f"{sorted(k for k in _ACTIVATIONS if k)}.")
    layers, last = [], in_dim
    for size in hiddens:
        layer = nn.Linear(last, size)
        nn.init.orthogonal_(layer.weight, gain=np.sqrt(2))
        nn.init.zeros_(layer.bias)
        layers += [layer, _ACTIVATIONS[activation]()]
        last = size
    if out_dim is not None:
        head = nn.Linear(last, out_dim)
        nn.init.normal_(head.weight, std=out_init_std)
        nn.init.zeros_(head.bias)
        layers.append(head)
    return nn.Sequential(*layers)


class RLModule(nn.Module):
    """Base class.  Subclasses implement ``setup()`` and the forward passes."""

    def __init__(self, observation_space=None, action_space=None, model_config=None,
                 inference_only=False, **kwargs):
        super().__init__()
        self.observation_space = observation_space
        self.action_space = action_space
        self.model_config = dict(model_config or {})
        self.inference_only = inference_only
        self.setup()

    def setup(self):
        pass

    def forward_inference(self, batch, **kwargs):
        with torch.no_grad():
            return self._forward(batch, **kwargs)

    def forward_exploration(self, batch, **kwargs):
        with torch.no_grad():
            return self._forward(batch, **kwargs)

    def forward_train(self, batch, **kwargs):
        return self._forward(batch, **kwargs)

    def _forward(self, batch, **kwargs):
        raise TypeError(f"{type(self).__name__} must define _forward(batch) or override "
                        "forward_inference/forward_exploration/forward_train.")

    def forward(self, batch, **kwargs):
        return self.forward_train(batch, **kwargs)

    def get_state(self):
        return {k: v.detach().cpu().numpy() for k, v in self.state_dict().items()}

    def set_state(self, state):
        self.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in state.items()})

    def compute_actions(self, obs, explore, rng, epsilon=0.0):
        """numpy obs batch -> (actions, extra columns to record)."""
        out = self.forward_exploration({"obs": torch.from_numpy(obs)})
        logits = out["action_dist_inputs"].numpy()
        if isinstance(self.action_space, gym.spaces.Discrete):
            return logits.argmax(-1), {}
        return logits, {}


@dataclasses.dataclass
class RLModuleSpec:
    """Which RLModule class to build, for which spaces, with which ``model_config``."""
    module_class: type = None
    observation_space: object = None
    action_space: object = None
    model_config: dict = None
    inference_only: bool = False

    def build(self):
        if self.module_class is None:
            raise ValueError("RLModuleSpec.build() needs module_class.")
        return self.module_class(observation_space=self.observation_space,
                                 action_space=self.action_space,
                                 model_config=dict(self.model_config or {}),
                                 inference_only=self.inference_only)


@dataclasses.dataclass
class MultiRLModuleSpec:
    """One ``RLModuleSpec`` per module id."""
    rl_module_specs: dict = None


__all__ = ["MultiRLModuleSpec", "RLModule", "RLModuleSpec", "make_mlp", "obs_dim"]
