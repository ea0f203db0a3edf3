"""PPO: proximal policy optimisation (Schulman et al. 2017), RLlib 2.60's defaults.

    config = (PPOConfig().environment("CartPole-v1")
              .training(lr=3e-4, train_batch_size_per_learner=2000, minibatch_size=128,
                        num_epochs=10, lambda_=0.95))
    algo = config.build_algo()

Each iteration: sample ``train_batch_size`` env steps with the current policy;
the learner computes GAE advantages (bootstrapping from ``new_obs`` where a
fragment or episode was truncated), standardises them, and runs ``num_epochs``
passes of minibatch SGD on the clipped surrogate + clipped value loss -
entropy bonus (+ adaptive KL penalty); the new weights go to the env runners.
"""

import gymnasium as gym
import numpy as np
import torch

from ...core.distributions import (TorchCategorical, TorchDiagGaussian, np_sample_categorical,
                                   np_sample_gaussian)
from ...core.learner.learner import Learner
from ...core.rl_module.rl_module import RLModule, make_mlp, obs_dim
from ...utils.schedules import schedule_value
from ..algorithm import Algorithm
from ..algorithm_config import AlgorithmConfig


class PPOConfig(AlgorithmConfig):
    _extra_sections = {"training": {
        "lambda_": "lambda_", "use_critic": "use_critic", "use_gae": "use_gae",
        "use_kl_loss": "use_kl_loss", "kl_coeff": "kl_coeff", "kl_target": "kl_target",
        "vf_loss_coeff": "vf_loss_coeff", "entropy_coeff": "entropy_coeff",
        "clip_param": "clip_param", "vf_clip_param": "vf_clip_param",
        "entropy_coeff_schedule": "entropy_coeff", "lr_schedule": "lr"}}

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or PPO)
        self.lr = 5e-5
        self.train_batch_size = 4000
        self.minibatch_size = 128
        self.num_epochs = 30
        self.lambda_ = 1.0
        self.use_critic = True
        self.use_gae = True
        self.use_kl_loss = True
        self.kl_coeff = 0.2
        self.kl_target = 0.01
        self.vf_loss_coeff = 1.0
        self.entropy_coeff = 0.0
        self.clip_param = 0.3
        self.vf_clip_param = 10.0
        self.grad_clip = None


class DefaultPPOTorchRLModule(RLModule):
    """Policy net -> ``action_dist_inputs`` (logits, or mean and log-std); separate value net."""

    def setup(self):
        cfg = self.model_config
        in_dim = obs_dim(self.observation_space)
        hiddens, act = cfg.get("fcnet_hiddens", [256, 256]), cfg.get("fcnet_activation", "tanh")
        self.discrete = isinstance(self.action_space, gym.spaces.Discrete)
        out = int(self.action_space.n) if self.discrete else 2 * int(
            np.prod(self.action_space.shape))
        self.pi = make_mlp(in_dim, hiddens, act, out, out_init_std=0.01)
        self.vf = make_mlp(in_dim, hiddens, act, 1, out_init_std=1.0)

    def _forward(self, batch, **kwargs):
        return {"action_dist_inputs": self.pi(batch["obs"].float())}

    def forward_train(self, batch, **kwargs):
        obs = batch["obs"].float()
        return {"action_dist_inputs": self.pi(obs), "vf_preds": self.vf(obs).squeeze(-1)}

    def compute_values(self, batch):
        return self.vf(batch["obs"].float()).squeeze(-1)

    def action_dist(self, inputs):
        return TorchCategorical(inputs) if self.discrete else TorchDiagGaussian(inputs)

    def compute_actions(self, obs, explore, rng, epsilon=0.0):
        with torch.no_grad():
            inputs = self.pi(torch.from_numpy(obs)).numpy()
        sample = np_sample_categorical if self.discrete else np_sample_gaussian
        actions, logp = sample(inputs, rng, explore)
        return actions, {"action_logp": logp}


def gae(rewards, values, next_values, terminateds, ends, gamma, lambda_):
    """Generalised advantage estimates over contiguous segments (numpy, backwards)."""
    deltas = rewards + gamma * next_values * (1.0 - terminateds) - values
    advantages = np.zeros_like(deltas)
    running = 0.0
    decay = gamma * lambda_
    for t in range(len(deltas) - 1, -1, -1):
        if ends[t]:
            running = 0.0
        running = deltas[t] + decay * running
        advantages[t] = running
    return advantages


class PPOLearner(Learner):

    def build(self):
        self.kl_coeffs = {mid: float(self.setting(mid, "kl_coeff")) for mid in self.modules}

    def update_module(self, mid, batch, timestep):
        module = self.modules[mid]
        s = lambda name: self.setting(mid, name)  # noqa: E731 - short local accessor
        obs = torch.from_numpy(np.asarray(batch["obs"], np.float32))
        new_obs = torch.from_numpy(np.asarray(batch["new_obs"], np.float32))
        actions = torch.from_numpy(np.asarray(batch["actions"]))
        old_logp = torch.from_numpy(np.asarray(batch["action_logp"], np.float32))
        rewards = np.asarray(batch["rewards"], np.float64)
        terms = np.asarray(batch["terminateds"], np.float64)
        ends = np.asarray(batch["terminateds"], bool) | np.asarray(batch["truncateds"], bool)
        with torch.no_grad():
            values = module.compute_values({"obs": obs}).numpy().astype(np.float64)
            next_values = module.compute_values({"obs": new_obs}).numpy().astype(np.float64)
        if not s("use_critic"):
            values, next_values = np.zeros_like(values), np.zeros_like(next_values)
        lam = s("lambda_") if s("use_gae") else 1.0
        adv = gae(rewards, values, next_values, terms, ends, s("gamma"), lam)
        targets = torch.from_numpy((adv + values).astype(np.float32))
        adv = (adv - adv.mean()) / max(adv.std(), 1e-4)
        adv = torch.from_numpy(adv.astype(np.float32))
        size = len(rewards)
        mb = int(s("minibatch_size") or size)
        clip, vf_clip = s("clip_param"), s("vf_clip_param")
        ent_coeff = schedule_value(s("entropy_coeff"), timestep)
        totals, n_updates = {}, 0
        gen = torch.Generator().manual_seed(int(timestep) + 17)
        for _ in range(int(s("num_epochs"))):
            order = torch.randperm(size, generator=gen) if self.config.shuffle_batch_per_epoch \
                else torch.arange(size)
            for start in range(0, size, mb):
                idx = order[start:start + mb]
                if len(idx) < max(1, mb // 2) and start > 0:
                    continue  # skip a tiny remainder minibatch
                out = module.forward_train({"obs": obs[idx]})
                dist = module.action_dist(out["action_dist_inputs"])
                logp = dist.logp(actions[idx])
                log_ratio = logp - old_logp[idx]
                ratio = log_ratio.exp()
                surrogate = torch.min(ratio * adv[idx], ratio.clamp(1 - clip, 1 + clip) * adv[idx])
                policy_loss = -surrogate.mean()
                vf_err = (out["vf_preds"] - targets[idx]) ** 2
                vf_loss = vf_err.clamp(0, vf_clip).mean() if vf_clip else vf_err.mean()
                entropy = dist.entropy().mean()
                kl = ((ratio - 1) - log_ratio).mean()  # low-variance KL(old || new) estimate
                loss = policy_loss - ent_coeff * entropy
                if s("use_critic"):
                    loss = loss + s("vf_loss_coeff") * vf_loss
                if s("use_kl_loss"):
                    loss = loss + self.kl_coeffs[mid] * kl
                norm = self.apply_gradients(mid, loss, timestep)
                step = {"total_loss": loss.item(), "policy_loss": policy_loss.item(),
                        "vf_loss": vf_loss.item(), "vf_loss_unclipped": vf_err.mean().item(),
                        "entropy": entropy.item(), "mean_kl_loss": kl.item()}
                if norm is not None:
                    step["gradients_default_optimizer_global_norm"] = norm
                for k, v in step.items():
                    totals[k] = totals.get(k, 0.0) + v
                n_updates += 1
        stats = {k: v / max(1, n_updates) for k, v in totals.items()}
        var_y = float(targets.var())
        stats["vf_explained_var"] = 1.0 - float((targets - torch.from_numpy(
            values.astype(np.float32))).var()) / var_y if var_y > 0 else 0.0
        if s("use_kl_loss"):  # adapt the KL coefficient towards kl_target
            kl_mean = stats.get("mean_kl_loss", 0.0)
            if kl_mean > 2.0 * s("kl_target"):
                self.kl_coeffs[mid] *= 1.5
            elif kl_mean < 0.5 * s("kl_target"):
                self.kl_coeffs[mid] *= 0.5
        stats["curr_kl_coeff"] = self.kl_coeffs[mid]
        stats["curr_entropy_coeff"] = ent_coeff
        stats["num_minibatch_updates"] = n_updates
        return stats

    def extra_state(self):
        return {"kl_coeffs": dict(self.kl_coeffs)}

    def set_extra_state(self, state):
        self.kl_coeffs.update(state.get("kl_coeffs", {}))


class PPO(Algorithm):
    """Proximal policy optimisation (see PPOConfig for the settings)."""

    config_class = PPOConfig
    module_class = DefaultPPOTorchRLModule
    learner_class = PPOLearner

    def training_step(self):
        batches = self.sample(self.config.train_batch_size)
        self.learn(batches)
        self._sync_weights()


__all__ = ["DefaultPPOTorchRLModule", "PPO", "PPOConfig", "PPOLearner", "gae"]
