"""DQN with RLlib 2.60's defaults: double Q, dueling heads, n-step returns and
prioritized replay (Mnih et al. 2015; van Hasselt 2016; Wang 2016; Schaul 2016).

    config = (DQNConfig().environment("CartPole-v1")
              .training(lr=1e-3, n_step=3, target_network_update_freq=500,
                        replay_buffer_config={"capacity": 50_000}))
    algo = config.build_algo()

Each ``training_step``: sample ``rollout_fragment_length`` steps per env with
epsilon-greedy actions, store their n-step transitions in a replay buffer per
module, and - once ``num_steps_sampled_before_learning_starts`` steps were
sampled - run learner updates on prioritized replay batches (as many as
``training_intensity`` asks for), refreshing priorities with the TD errors;
the target network is copied every ``target_network_update_freq`` steps.
"""

import copy

import gymnasium as gym
import numpy as np
import torch
from torch.nn import functional as F

from ...core.learner.learner import Learner
from ...core.rl_module.rl_module import RLModule, make_mlp, obs_dim
from ...utils.replay_buffers import PrioritizedReplayBuffer, ReplayBuffer, n_step_transitions
from ...utils.schedules import schedule_value
from ..algorithm import Algorithm
from ..algorithm_config import AlgorithmConfig

_BUFFER_DEFAULTS = {"type": "PrioritizedEpisodeReplayBuffer", "capacity": 50_000,
                    "alpha": 0.6, "beta": 0.4}


class DQNConfig(AlgorithmConfig):
    _extra_sections = {"training": {
        "target_network_update_freq": "target_network_update_freq",
        "replay_buffer_config": "replay_buffer_config",
        "num_steps_sampled_before_learning_starts": "num_steps_sampled_before_learning_starts",
        "n_step": "n_step", "double_q": "double_q", "dueling": "dueling",
        "training_intensity": "training_intensity", "tau": "tau",
        "td_error_loss_fn": "td_error_loss_fn", "epsilon": "epsilon",
        "hiddens": "hiddens", "noisy": "noisy", "num_atoms": "num_atoms",
        "categorical_distribution_temperature": "categorical_distribution_temperature"}}

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or DQN)
        self.lr = 5e-4
        self.train_batch_size = 32
        self.target_network_update_freq = 500
        self.replay_buffer_config = dict(_BUFFER_DEFAULTS)
        self.num_steps_sampled_before_learning_starts = 1000
        self.n_step = 1
        self.double_q = True
        self.dueling = True
        self.training_intensity = None
        self.tau = 1.0
        self.td_error_loss_fn = "huber"
        self.epsilon = [(0, 1.0), (10000, 0.05)]
        self.hiddens = [256]
        self.noisy, self.num_atoms = False, 1
        self.categorical_distribution_temperature = 1.0
        self.min_sample_timesteps_per_iteration = 1000
        self.model_config = dict(self.model_config, fcnet_hiddens=[256], fcnet_activation="relu")

    def training(self, **kwargs):
        rb = kwargs.get("replay_buffer_config")
        if rb is not None:
            kwargs["replay_buffer_config"] = dict(self.replay_buffer_config, **rb)
        if kwargs.get("num_atoms", 1) != 1 or kwargs.get("noisy"):
            raise ValueError("distributional (num_atoms > 1) and noisy DQN are not available "
                             "in minray.rllib; leave num_atoms=1, noisy=False.")
        return super().training(**kwargs)


class DefaultDQNTorchRLModule(RLModule):
    """Encoder -> Q head, or dueling value + advantage heads."""

    def setup(self):
        cfg = self.model_config
        if not isinstance(self.action_space, gym.spaces.Discrete):
            raise ValueError(f"DQN needs a Discrete action space, got {self.action_space}; "
                             "use SAC or PPO for continuous actions.")
        n = int(self.action_space.n)
        hiddens = cfg.get("fcnet_hiddens", [256])
        act = cfg.get("fcnet_activation", "relu")
        self.encoder = make_mlp(obs_dim(self.observation_space), hiddens, act)
        last = hiddens[-1] if hiddens else obs_dim(self.observation_space)
        head = cfg.get("head_hiddens", [256])
        self.dueling = cfg.get("dueling", True)
        self.advantages = make_mlp(last, head, "relu", n, out_init_std=0.01)
        if self.dueling:
            self.value = make_mlp(last, head, "relu", 1, out_init_std=0.01)

    def q_values(self, obs):
        z = self.encoder(obs.float())
        a = self.advantages(z)
        if self.dueling:
            return self.value(z) + a - a.mean(-1, keepdim=True)
        return a

    def _forward(self, batch, **kwargs):
        q = self.q_values(batch["obs"])
        return {"qf_preds": q, "action_dist_inputs": q, "actions": q.argmax(-1)}

    def compute_actions(self, obs, explore, rng, epsilon=0.0):
        with torch.no_grad():
            actions = self.q_values(torch.from_numpy(obs)).argmax(-1).numpy()
        if explore and epsilon > 0:
            flip = rng.random(len(actions)) < epsilon
            actions = np.where(flip, rng.integers(0, self.action_space.n, len(actions)), actions)
        return actions, {}


class DQNLearner(Learner):

    def build(self):
        self.targets = {mid: copy.deepcopy(self.modules[mid]) for mid in self.modules_to_train}
        for target in self.targets.values():
            target.requires_grad_(False)
        self.last_td_errors = {}

    def update_module(self, mid, batch, timestep):
        module, target = self.modules[mid], self.targets[mid]
        t = {k: torch.from_numpy(np.asarray(batch[k])) for k in
             ("obs", "actions", "rewards", "new_obs", "terminateds", "discounts", "weights")}
        q = module.q_values(t["obs"])
        q_taken = q.gather(-1, t["actions"].long().unsqueeze(-1)).squeeze(-1)
        with torch.no_grad():
            q_next_target = target.q_values(t["new_obs"])
            if self.setting(mid, "double_q"):
                best = module.q_values(t["new_obs"]).argmax(-1, keepdim=True)
                q_next = q_next_target.gather(-1, best).squeeze(-1)
            else:
                q_next = q_next_target.max(-1).values
            y = t["rewards"] + t["discounts"] * (1.0 - t["terminateds"].float()) * q_next
        td = q_taken - y
        if self.setting(mid, "td_error_loss_fn") == "mse":
            per = 0.5 * td ** 2
        else:
            per = F.huber_loss(q_taken, y, reduction="none")
        loss = (t["weights"] * per).mean()
        self.apply_gradients(mid, loss, timestep)
        self.last_td_errors[mid] = td.detach().abs().numpy()
        return {"qf_loss": loss.item(), "total_loss": loss.item(),
                "qf_mean": q_taken.mean().item(), "qf_max": q_taken.max().item(),
                "qf_min": q_taken.min().item(), "td_error_mean": td.mean().item()}

    def update_targets(self, tau):
        for mid, target in self.targets.items():
            with torch.no_grad():
                for p_t, p in zip(target.parameters(), self.modules[mid].parameters()):
                    p_t.mul_(1.0 - tau).add_(tau * p)

    def extra_state(self):
        return {"targets": {mid: t.state_dict() for mid, t in self.targets.items()}}

    def set_extra_state(self, state):
        for mid, sd in state.get("targets", {}).items():
            if mid in self.targets:
                self.targets[mid].load_state_dict(sd)


class DQN(Algorithm):
    """Deep Q-learning (see DQNConfig for the settings)."""

    config_class = DQNConfig
    module_class = DefaultDQNTorchRLModule
    learner_class = DQNLearner

    def module_model_config(self, model_config):
        return dict(model_config, dueling=self.config.dueling, head_hiddens=self.config.hiddens)

    def setup(self, config):
        super().setup(config)
        rb = dict(self.config.replay_buffer_config)
        kind = rb.pop("type", "PrioritizedEpisodeReplayBuffer")
        cls = PrioritizedReplayBuffer if "Prioritized" in str(kind) else ReplayBuffer
        seed = self.config.seed
        self.replay_buffers = {mid: cls(seed=None if seed is None else seed + i, **rb)
                               for i, mid in enumerate(sorted(self.modules_to_train))}
        self._last_target_update = 0
        self._update_credit = 0.0

    def global_vars(self):
        return {"epsilon": schedule_value(self.config.epsilon, self.num_env_steps_sampled_lifetime)}

    def training_step(self):
        config = self.config
        steps = config.get_rollout_fragment_length() * config.num_envs_per_env_runner * \
            max(1, config.num_env_runners)
        batches = self.sample(steps)
        for mid, batch in batches.items():
            if mid in self.replay_buffers:
                self.replay_buffers[mid].add(n_step_transitions(
                    batch, int(self.learner.setting(mid, "n_step")),
                    self.learner.setting(mid, "gamma")))
        sampled = self.num_env_steps_sampled_lifetime
        if sampled >= config.num_steps_sampled_before_learning_starts and \
                any(len(b) for b in self.replay_buffers.values()):
            if config.training_intensity:
                self._update_credit += steps * config.training_intensity / config.train_batch_size
                updates = int(self._update_credit)
                self._update_credit -= updates
            else:
                updates = 1
            for _ in range(updates):
                train = {mid: buf.sample(config.train_batch_size)
                         for mid, buf in self.replay_buffers.items() if len(buf)}
                self.learn(train)
                for mid, batch in train.items():
                    if mid in self.learner.last_td_errors:
                        self.replay_buffers[mid].update_priorities(
                            batch["indices"], self.learner.last_td_errors[mid])
            if sampled - self._last_target_update >= config.target_network_update_freq:
                self.learner.update_targets(config.tau)
                self._last_target_update = sampled
        self._sync_weights()

    def extra_state(self):
        return {"last_target_update": self._last_target_update}

    def set_extra_state(self, state):
        self._last_target_update = state.get("last_target_update", 0)


__all__ = ["DQN", "DQNConfig", "DQNLearner", "DefaultDQNTorchRLModule"]
