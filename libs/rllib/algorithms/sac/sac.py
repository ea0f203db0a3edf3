"""SAC: soft actor-critic (Haarnoja et al. 2018), for Box or Discrete action spaces.

    config = (SACConfig().environment("Pendulum-v1")
              .training(actor_lr=3e-4, critic_lr=3e-4, train_batch_size_per_learner=256))

Off-policy like DQN (replay buffer, n-step rows, ``training_intensity``): each
learner update fits twin Q-networks to the soft Bellman target (min of two
target critics minus alpha * log-prob), moves the policy toward actions with
high Q and high entropy, tunes alpha toward ``target_entropy``, and Polyak-
averages the target critics with ``tau``.  Continuous actions use a
tanh-squashed Gaussian in [-1, 1] (env runners rescale to the env's bounds);
discrete actions use a categorical policy with per-action Q-values.
"""

import copy

import gymnasium as gym
import numpy as np
import torch
from torch.nn import functional as F

from ...core.distributions import np_sample_categorical
from ...core.learner.learner import Learner
from ...core.rl_module.rl_module import RLModule, make_mlp, obs_dim
from ..dqn.dqn import DQN, DQNConfig

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


class SACConfig(DQNConfig):
    _extra_sections = {"training": dict(DQNConfig._extra_sections["training"], **{
        "actor_lr": "actor_lr", "critic_lr": "critic_lr", "alpha_lr": "alpha_lr",
        "twin_q": "twin_q", "initial_alpha": "initial_alpha",
        "target_entropy": "target_entropy"})}

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or SAC)
        self.lr = 3e-4
        self.actor_lr, self.critic_lr, self.alpha_lr = 3e-5, 3e-4, 3e-4
        self.twin_q = True
        self.tau = 5e-3
        self.initial_alpha = 1.0
        self.target_entropy = "auto"
        self.train_batch_size = 256
        self.num_steps_sampled_before_learning_starts = 1500
        self.target_network_update_freq = 0
        self.rollout_fragment_length = 1
        self.min_sample_timesteps_per_iteration = 100
        self.replay_buffer_config = dict(self.replay_buffer_config, capacity=1_000_000)
        self.epsilon = [(0, 0.0)]
        self.model_config = dict(self.model_config, fcnet_hiddens=[256, 256],
                                 fcnet_activation="relu")


class DefaultSACTorchRLModule(RLModule):
    """Policy net and twin Q nets (``Q(s, a)`` for Box actions, ``Q(s, .)`` for Discrete)."""

    def setup(self):
        cfg = self.model_config
        hiddens, act = cfg.get("fcnet_hiddens", [256, 256]), cfg.get("fcnet_activation", "relu")
        in_dim = obs_dim(self.observation_space)
        self.discrete = isinstance(self.action_space, gym.spaces.Discrete)
        if self.discrete:
            n = int(self.action_space.n)
            self.pi = make_mlp(in_dim, hiddens, act, n)
            self.qf = make_mlp(in_dim, hiddens, act, n, out_init_std=0.1)
            self.qf_twin = make_mlp(in_dim, hiddens, act, n, out_init_std=0.1)
        else:
            self.act_dim = int(np.prod(self.action_space.shape))
            self.pi = make_mlp(in_dim, hiddens, act, 2 * self.act_dim)
            self.qf = make_mlp(in_dim + self.act_dim, hiddens, act, 1, out_init_std=0.1)
            self.qf_twin = make_mlp(in_dim + self.act_dim, hiddens, act, 1, out_init_std=0.1)

    def _forward(self, batch, **kwargs):
        inputs = self.pi(batch["obs"].float())
        if self.discrete:
            return {"action_dist_inputs": inputs, "actions": inputs.argmax(-1)}
        mean = inputs[..., :self.act_dim]
        return {"action_dist_inputs": inputs, "actions": torch.tanh(mean)}

    def policy_sample(self, obs):
        """Continuous: reparameterised tanh-Gaussian (actions, log-probs)."""
        mean, log_std = torch.chunk(self.pi(obs), 2, dim=-1)
        log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        u = mean + log_std.exp() * torch.randn_like(mean)
        a = torch.tanh(u)
        logp = (-0.5 * ((u - mean) / log_std.exp()) ** 2 - log_std
                - 0.5 * np.log(2 * np.pi)).sum(-1)
        logp = logp - torch.log(1 - a ** 2 + 1e-6).sum(-1)
        return a, logp

    def q(self, net, obs, actions=None):
        if self.discrete:
            return net(obs)
        return net(torch.cat([obs, actions], -1)).squeeze(-1)

    def compute_actions(self, obs, explore, rng, epsilon=0.0):
        with torch.no_grad():
            inputs = self.pi(torch.from_numpy(obs)).numpy()
        if self.discrete:
            actions, _ = np_sample_categorical(inputs, rng, explore)
            return actions, {}
        mean, log_std = np.split(inputs.astype(np.float64), 2, axis=-1)
        if explore:
            std = np.exp(np.clip(log_std, LOG_STD_MIN, LOG_STD_MAX))
            mean = mean + std * rng.standard_normal(mean.shape)
        return np.tanh(mean).astype(np.float32), {}


class SACLearner(Learner):

    def build(self):
        self.targets, self.log_alpha, self.opts, self.target_entropy = {}, {}, {}, {}
        for mid in self.modules_to_train:
            module = self.modules[mid]
            self.targets[mid] = copy.deepcopy(module).requires_grad_(False)
            self.log_alpha[mid] = torch.tensor(float(np.log(self.setting(mid, "initial_alpha"))),
                                               requires_grad=True)
            critics = list(module.qf.parameters()) + list(module.qf_twin.parameters())
            self.opts[mid] = {
                "actor": torch.optim.Adam(module.pi.parameters(), self.setting(mid, "actor_lr")),
                "critic": torch.optim.Adam(critics, self.setting(mid, "critic_lr")),
                "alpha": torch.optim.Adam([self.log_alpha[mid]], self.setting(mid, "alpha_lr"))}
            target = self.setting(mid, "target_entropy")
            if target == "auto":
                target = (0.98 * np.log(module.action_space.n) if module.discrete
                          else -float(module.act_dim))
            self.target_entropy[mid] = float(target)
        self.last_td_errors = {}

    @staticmethod
    def _step(opt, loss):
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def update_module(self, mid, batch, timestep):
        module, target = self.modules[mid], self.targets[mid]
        t = {k: torch.from_numpy(np.asarray(batch[k])) for k in
             ("obs", "actions", "rewards", "new_obs", "terminateds", "discounts", "weights")}
        obs, new_obs = t["obs"].float(), t["new_obs"].float()
        alpha = self.log_alpha[mid].exp().detach()
        twin = self.setting(mid, "twin_q")
        not_done = 1.0 - t["terminateds"].float()
        with torch.no_grad():
            if module.discrete:
                logp_next = F.log_softmax(module.pi(new_obs), -1)
                q_next = target.q(target.qf, new_obs)
                if twin:
                    q_next = torch.min(q_next, target.q(target.qf_twin, new_obs))
                v_next = (logp_next.exp() * (q_next - alpha * logp_next)).sum(-1)
            else:
                a_next, logp_next = module.policy_sample(new_obs)
                q_next = target.q(target.qf, new_obs, a_next)
                if twin:
                    q_next = torch.min(q_next, target.q(target.qf_twin, new_obs, a_next))
                v_next = q_next - alpha * logp_next
            y = t["rewards"] + t["discounts"] * not_done * v_next
        if module.discrete:
            idx = t["actions"].long().unsqueeze(-1)
            q1 = module.q(module.qf, obs).gather(-1, idx).squeeze(-1)
            q2 = module.q(module.qf_twin, obs).gather(-1, idx).squeeze(-1)
        else:
            actions = t["actions"].float().reshape(len(obs), -1)
            q1, q2 = module.q(module.qf, obs, actions), module.q(module.qf_twin, obs, actions)
        critic_loss = (t["weights"] * F.huber_loss(q1, y, reduction="none")).mean()
        if twin:
            twin_loss = F.huber_loss(q2, y, reduction="none")
            critic_loss = critic_loss + (t["weights"] * twin_loss).mean()
        self._step(self.opts[mid]["critic"], critic_loss)
        # policy: high Q and high entropy
        if module.discrete:
            logp = F.log_softmax(module.pi(obs), -1)
            with torch.no_grad():
                q_all = module.q(module.qf, obs)
                if twin:
                    q_all = torch.min(q_all, module.q(module.qf_twin, obs))
            actor_loss = (logp.exp() * (alpha * logp - q_all)).sum(-1).mean()
            entropy_term = -(logp.exp() * logp).sum(-1).detach()
            alpha_loss = self.log_alpha[mid] * (entropy_term - self.target_entropy[mid]).mean()
            logp_mean = -entropy_term.mean()
        else:
            a_new, logp = module.policy_sample(obs)
            q_pi = module.q(module.qf, obs, a_new)
            if twin:
                q_pi = torch.min(q_pi, module.q(module.qf_twin, obs, a_new))
            actor_loss = (alpha * logp - q_pi).mean()
            alpha_loss = -(self.log_alpha[mid] * (logp.detach() + self.target_entropy[mid])).mean()
            logp_mean = logp.detach().mean()
        self._step(self.opts[mid]["actor"], actor_loss)
        self._step(self.opts[mid]["alpha"], alpha_loss)
        self.last_td_errors[mid] = (q1 - y).detach().abs().numpy()
        return {"qf_loss": critic_loss.item(), "policy_loss": actor_loss.item(),
                "alpha_loss": alpha_loss.item(), "alpha_value": float(alpha),
                "total_loss": (critic_loss + actor_loss).item(),
                "qf_mean": q1.mean().item(), "logp_mean": float(logp_mean)}

    def update_targets(self, tau):
        for mid, target in self.targets.items():
            with torch.no_grad():
                for p_t, p in zip(target.parameters(), self.modules[mid].parameters()):
                    p_t.mul_(1.0 - tau).add_(tau * p)

    def extra_state(self):
        return {"targets": {m: t.state_dict() for m, t in self.targets.items()},
                "log_alpha": {m: float(a) for m, a in self.log_alpha.items()},
                "opts": {m: {k: o.state_dict() for k, o in d.items()}
                         for m, d in self.opts.items()}}

    def set_extra_state(self, state):
        for mid, sd in state.get("targets", {}).items():
            self.targets[mid].load_state_dict(sd)
        with torch.no_grad():
            for mid, value in state.get("log_alpha", {}).items():
                self.log_alpha[mid].fill_(value)
        for mid, opts in state.get("opts", {}).items():
            for k, sd in opts.items():
                self.opts[mid][k].load_state_dict(sd)


class SAC(DQN):
    """Soft actor-critic (see SACConfig); sampling and replay as DQN's."""

    config_class = SACConfig
    module_class = DefaultSACTorchRLModule
    learner_class = SACLearner

    def module_model_config(self, model_config):
        return model_config

    def global_vars(self):
        return {}


__all__ = ["DefaultSACTorchRLModule", "SAC", "SACConfig", "SACLearner"]
