"""Env runners: step environments with a copy of the RL modules, return batches.

    algorithm --set_weights(ref)--> EnvRunner (an actor, or the local one)
              <--sample()-- SampleOutput(batches {module_id: columns}, episode summaries)

``SingleAgentEnvRunner`` steps ``num_envs_per_env_runner`` gymnasium envs in
lock-step: one batched forward pass per step, numpy everywhere else.
``MultiAgentEnvRunner`` does the same for ``MultiAgentEnv``s, mapping each
agent to a module with ``policy_mapping_fn``.

Batches hold one row per transition (``Columns``): obs, actions, rewards,
terminateds, truncateds, new_obs, action_logp.  Rows of one env (or one agent)
are contiguous; ``truncateds`` is also set where a fragment ends mid-episode,
so learners bootstrap from ``new_obs`` there.
"""

import dataclasses
import os
import uuid

import gymnasium as gym
import numpy as np

from ..core import DEFAULT_AGENT_ID, DEFAULT_MODULE_ID, Columns
from ..core.rl_module.rl_module import obs_dim
from .utils import check_reset, check_step, make_env


@dataclasses.dataclass
class RunnerSpec:
    """Everything an env runner needs, shipped once when it starts."""
    env_creator: object
    env_config: dict
    num_envs: int
    module_specs: dict
    worker_index: int = 0
    num_workers: int = 0
    seed: object = None
    policy_mapping_fn: object = None
    callbacks_class: object = None
    remote: bool = False
    multi_agent: bool = False


@dataclasses.dataclass
class EpisodeSummary:
    """A finished episode: what metrics and ``on_episode_end`` callbacks see."""
    id_: str
    episode_return: float
    length: int
    agent_returns: dict
    module_returns: dict
    env_index: int = 0
    custom_data: dict = dataclasses.field(default_factory=dict)

    def get_return(self):
        return self.episode_return

    def __len__(self):
        return self.length


@dataclasses.dataclass
class SampleOutput:
    batches: dict
    episodes: list
    env_steps: int
    agent_steps: int
    module_steps: dict
    worker_index: int = 0


class ObsEncoder:
    """One observation -> a flat float32 vector (one-hot for Discrete spaces)."""

    def __init__(self, space):
        self.space, self.dim = space, obs_dim(space)
        self.kind = ("discrete" if isinstance(space, gym.spaces.Discrete) else
                     "box" if isinstance(space, gym.spaces.Box) else "other")

    def __call__(self, obs):
        if self.kind == "box":
            return np.asarray(obs, dtype=np.float32).reshape(-1)
        if self.kind == "discrete":
            out = np.zeros(self.dim, np.float32)
            out[int(obs)] = 1.0
            return out
        return np.asarray(gym.spaces.flatten(self.space, obs), dtype=np.float32)


def _to_env_action(space, action):
    if isinstance(space, gym.spaces.Discrete):
        return int(action)
    if isinstance(space, gym.spaces.Box):
        if np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high)):
            # normalize_actions (RLlib's default): the module acts in [-1, 1]
            unit = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
            action = space.low + (unit + 1.0) * 0.5 * (space.high - space.low)
        return np.clip(action, space.low, space.high).astype(space.dtype).reshape(space.shape)
    return action


class _RunnerBase:
    def __init__(self, spec):
        if spec.remote:
            import torch
            torch.set_num_threads(1)  # runners are many; one thread each keeps a small box fast
        self.spec = spec
        self.worker_index = spec.worker_index
        self.env_name = spec.env_creator.name
        self.modules = {mid: s.build() for mid, s in spec.module_specs.items()}
        for module in self.modules.values():
            module.eval()
        base_seed = spec.seed
        self._rng = np.random.default_rng(None if base_seed is None else
                                          base_seed + 7919 * spec.worker_index)
        self._env_seeds = [None if base_seed is None else
                           base_seed + 1000 * spec.worker_index + i for i in range(spec.num_envs)]
        self.envs = [make_env(spec.env_creator, spec.env_config, spec.worker_index, i,
                              spec.num_workers) for i in range(spec.num_envs)]
        self.callbacks = spec.callbacks_class() if spec.callbacks_class else None
        self.global_vars = {"epsilon": 0.0}
        self._needs_reset = True

    # ---- the actor's interface
    def set_weights(self, weights, global_vars=None):
        for mid, state in weights.items():
            if mid in self.modules:
                self.modules[mid].set_state(state)
        if global_vars:
            self.global_vars.update(global_vars)

    def get_weights(self):
        return {mid: m.get_state() for mid, m in self.modules.items()}

    def ping(self):
        return os.getpid()

    def apply(self, fn, *args, **kwargs):
        return fn(self, *args, **kwargs)

    def stop(self):
        for env in self.envs:
            try:
                env.close()
            except Exception:  # noqa: BLE001 - a failing close must not hide the result
                pass

    @property
    def env(self):
        return self.envs[0]

    def _callback(self, name, **kwargs):
        if self.callbacks is not None:
            getattr(self.callbacks, name)(env_runner=self, **kwargs)


class SingleAgentEnvRunner(_RunnerBase):
    """Vectorised sampling of gymnasium envs for the module ``default_policy``."""

    def __init__(self, spec):
        super().__init__(spec)
        self.module = self.modules[DEFAULT_MODULE_ID]
        self.encoder = ObsEncoder(self.envs[0].observation_space)
        self.action_space = self.envs[0].action_space
        n = spec.num_envs
        self._obs = np.zeros((n, self.encoder.dim), np.float32)
        self._ep_return = np.zeros(n)
        self._ep_len = np.zeros(n, np.int64)
        self._ep_ids = [None] * n

    def _reset(self, i):
        obs, _ = check_reset(self.envs[i].reset(seed=self._env_seeds[i]), self.env_name)
        self._env_seeds[i] = None  # seed only the first episode; the env's RNG carries on
        self._obs[i] = self.encoder(obs)
        self._ep_return[i], self._ep_len[i] = 0.0, 0
        self._ep_ids[i] = uuid.uuid4().hex[:12]
        self._callback("on_episode_start", episode=None, env=self.envs[i], env_index=i)

    def sample(self, num_timesteps=None, num_episodes=None, explore=True, random_actions=False,
               force_reset=False):
        """Step every env ``ceil(num_timesteps / num_envs)`` times, or until
        ``num_episodes`` episodes finished (fresh episodes, no batches kept)."""
        n = len(self.envs)
        if force_reset or num_episodes is not None or self._needs_reset:
            for i in range(n):
                self._reset(i)
            self._needs_reset = False
        keep = num_episodes is None
        steps = -(-int(num_timesteps) // n) if keep else 1 << 62
        cols = {Columns.OBS: [], Columns.ACTIONS: [], Columns.REWARDS: [],
                Columns.TERMINATEDS: [], Columns.TRUNCATEDS: [], Columns.NEXT_OBS: [],
                Columns.ACTION_LOGP: []}
        episodes, env_steps = [], 0
        epsilon = self.global_vars.get("epsilon", 0.0)
        space, encoder, envs = self.action_space, self.encoder, self.envs
        for _ in range(steps):
            obs = self._obs.copy()
            if random_actions:
                actions = np.array([space.sample() for _ in range(n)])
                extras = {Columns.ACTION_LOGP: np.zeros(n, np.float32)}
            else:
                actions, extras = self.module.compute_actions(obs, explore, self._rng, epsilon)
            rewards = np.zeros(n, np.float32)
            terms, truncs = np.zeros(n, bool), np.zeros(n, bool)
            next_obs = np.empty_like(obs)
            for i, env in enumerate(envs):
                o, r, term, trunc, _ = check_step(env.step(_to_env_action(space, actions[i])),
                                                  self.env_name)
                next_obs[i] = encoder(o)
                rewards[i], terms[i], truncs[i] = r, term, trunc
                self._ep_return[i] += r
                self._ep_len[i] += 1
                if term or trunc:
                    ep = EpisodeSummary(self._ep_ids[i], float(self._ep_return[i]),
                                        int(self._ep_len[i]),
                                        {DEFAULT_AGENT_ID: float(self._ep_return[i])},
                                        {DEFAULT_MODULE_ID: float(self._ep_return[i])}, i)
                    self._callback("on_episode_end", episode=ep, env=env, env_index=i)
                    episodes.append(ep)
                    self._reset(i)
                else:
                    self._obs[i] = next_obs[i]
            env_steps += n
            if keep:
                cols[Columns.OBS].append(obs)
                cols[Columns.ACTIONS].append(np.asarray(actions))
                cols[Columns.REWARDS].append(rewards)
                cols[Columns.TERMINATEDS].append(terms)
                cols[Columns.TRUNCATEDS].append(truncs)
                cols[Columns.NEXT_OBS].append(next_obs)
                cols[Columns.ACTION_LOGP].append(extras.get(Columns.ACTION_LOGP,
                                                            np.zeros(n, np.float32)))
            elif len(episodes) >= num_episodes:
                break
        batches = {}
        if keep and env_steps:
            cols[Columns.TRUNCATEDS][-1] = cols[Columns.TRUNCATEDS][-1] | \
                ~cols[Columns.TERMINATEDS][-1]  # fragment end: bootstrap from new_obs
            # time-major (T, n, ...) -> env-major rows, so each env's steps are contiguous
            batches[DEFAULT_MODULE_ID] = {k: np.swapaxes(np.stack(v), 0, 1).reshape(
                (env_steps,) + np.stack(v).shape[2:]) for k, v in cols.items()}
        else:
            self._needs_reset = True  # evaluation episodes leave envs mid-episode
        self._callback("on_sample_end", samples=batches)
        return SampleOutput(batches, episodes, env_steps, env_steps,
                            {DEFAULT_MODULE_ID: env_steps}, self.worker_index)


__all__ = ["EpisodeSummary", "ObsEncoder", "RunnerSpec", "SampleOutput",
           "SingleAgentEnvRunner"]
