"""Action distributions over ``action_dist_inputs``: torch for learners, numpy for runners.

Discrete spaces: a categorical over logits.  Box spaces: a diagonal Gaussian
whose inputs are ``concat(mean, log_std)`` (RLlib's layout).
"""

import numpy as np
import torch


def _np_log_softmax(logits):
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def np_sample_categorical(logits, rng, explore=True):
    """Sample (Gumbel-max) or take the argmax; return (actions, log-probabilities)."""
    logp_all = _np_log_softmax(logits.astype(np.float64))
    if explore:
        actions = (logp_all + rng.gumbel(size=logp_all.shape)).argmax(-1)
    else:
        actions = logp_all.argmax(-1)
    return actions, logp_all[np.arange(len(actions)), actions].astype(np.float32)


def np_sample_gaussian(inputs, rng, explore=True):
    mean, log_std = np.split(inputs.astype(np.float64), 2, axis=-1)
    std = np.exp(log_std)
    actions = mean + std * rng.standard_normal(mean.shape) if explore else mean
    logp = (-0.5 * ((actions - mean) / std) ** 2 - log_std - 0.5 * np.log(2 * np.pi)).sum(-1)
    return actions.astype(np.float32), logp.astype(np.float32)


class TorchCategorical:
    def __init__(self, logits):
        self.logits = logits - logits.logsumexp(-1, keepdim=True)

    def logp(self, actions):
        return self.logits.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self):
        return -(self.logits.exp() * self.logits).sum(-1)

    def kl(self, other):
        return (self.logits.exp() * (self.logits - other.logits)).sum(-1)


class TorchDiagGaussian:
    def __init__(self, inputs):
        self.mean, self.log_std = torch.chunk(inputs, 2, dim=-1)

    def logp(self, actions):
        z = (actions - self.mean) / self.log_std.exp()
        return (-0.5 * z ** 2 - self.log_std - 0.5 * np.log(2 * np.pi)).sum(-1)

    def entropy(self):
        return (self.log_std + 0.5 * np.log(2 * np.pi * np.e)).sum(-1)

    def kl(self, other):
        var, ovar = (2 * self.log_std).exp(), (2 * other.log_std).exp()
        return (other.log_std - self.log_std + (var + (self.mean - other.mean) ** 2)
                / (2 * ovar) - 0.5).sum(-1)


__all__ = ["TorchCategorical", "TorchDiagGaussian", "np_sample_categorical",
           "np_sample_gaussian"]
