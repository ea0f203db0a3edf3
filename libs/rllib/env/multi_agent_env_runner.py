"""``MultiAgentEnvRunner``: samples ``MultiAgentEnv``s, one trajectory per agent.

Each step, the agents that received an observation act; their observations are
grouped by module (``policy_mapping_fn(agent_id, episode)``, fixed per agent for
the episode) so each module runs one batched forward pass.  An agent's
transition completes when its next observation arrives, or when it (or the
episode, ``__all__``) is done; rewards received in between are summed.
"""

import uuid

import numpy as np

from ..core import Columns
from .env_runner import (EpisodeSummary, ObsEncoder, SampleOutput, _RunnerBase,
                         _to_env_action)
from .utils import check_reset, check_step

_COLS = (Columns.OBS, Columns.ACTIONS, Columns.REWARDS, Columns.TERMINATEDS,
         Columns.TRUNCATEDS, Columns.NEXT_OBS, Columns.ACTION_LOGP)


class _Track:
    """One agent's open trajectory in one episode."""
    __slots__ = ("module_id", "rows", "pending", "reward", "obs", "done", "total")

    def __init__(self, module_id):
        self.module_id, self.rows, self.pending = module_id, [], None
        self.reward, self.obs, self.done, self.total = 0.0, None, False, 0.0


class _Episode:
    """What ``policy_mapping_fn`` gets as ``episode``."""

    def __init__(self):
        self.id_ = uuid.uuid4().hex[:12]
        self.tracks, self.length, self.env_return = {}, 0, 0.0


class MultiAgentEnvRunner(_RunnerBase):

    def __init__(self, spec):
        super().__init__(spec)
        env = self.envs[0]
        agents = list(getattr(env, "possible_agents", None) or getattr(env, "agents", []))
        self._encoders, self._spaces = {}, {}
        for agent in agents:
            self._encoders[agent] = ObsEncoder(env.get_observation_space(agent))
            self._spaces[agent] = env.get_action_space(agent)
        self._episodes = [None] * len(self.envs)
        self._finished_rows = {}

    def _space(self, agent):
        if agent not in self._spaces:
            self._encoders[agent] = ObsEncoder(self.envs[0].get_observation_space(agent))
            self._spaces[agent] = self.envs[0].get_action_space(agent)
        return self._spaces[agent]

    def _module_for(self, episode, agent):
        mid = self.spec.policy_mapping_fn(agent, episode)
        if mid not in self.modules:
            raise ValueError(f"policy_mapping_fn({agent!r}, episode) returned {mid!r}, which is "
                             f"not one of the configured policies {sorted(self.modules)}.")
        return mid

    def _reset(self, i):
        obs, _ = check_reset(self.envs[i].reset(seed=self._env_seeds[i]), self.env_name)
        self._env_seeds[i] = None
        if not isinstance(obs, dict):
            raise ValueError(f"Env {self.env_name!r}: reset() of a MultiAgentEnv must return "
                             f"(obs_dict, info_dict) keyed by agent id, got obs of type "
                             f"{type(obs).__name__}.")
        ep = self._episodes[i] = _Episode()
        for agent, o in obs.items():
            self._space(agent)
            track = ep.tracks[agent] = _Track(self._module_for(ep, agent))
            track.obs = self._encoders[agent](o)
        self._callback("on_episode_start", episode=ep, env=self.envs[i], env_index=i)

    def _emit(self, track, rows_out):
        if track.rows:
            if not track.rows[-1][3]:  # not terminated: a segment end to bootstrap from
                last = track.rows[-1]
                track.rows[-1] = last[:4] + (True,) + last[5:]
            rows_out.setdefault(track.module_id, []).append(track.rows)
            track.rows = []

    def sample(self, num_timesteps=None, num_episodes=None, explore=True, random_actions=False,
               force_reset=False):
        n = len(self.envs)
        if force_reset or num_episodes is not None or self._needs_reset:
            for i in range(n):
                self._reset(i)
            self._needs_reset = False
        keep = num_episodes is None
        steps = -(-int(num_timesteps) // n) if keep else 1 << 62
        rows_out, episodes = {}, []
        env_steps = agent_steps = 0
        module_steps = {mid: 0 for mid in self.modules}
        epsilon = self.global_vars.get("epsilon", 0.0)
        for _ in range(steps):
            # group acting agents by module: one forward pass per module
            groups = {}
            for i, ep in enumerate(self._episodes):
                for agent, track in ep.tracks.items():
                    if track.obs is not None and not track.done:
                        groups.setdefault(track.module_id, []).append((i, agent, track))
            action_dicts = [{} for _ in range(n)]
            for mid, members in groups.items():
                obs = np.stack([t.obs for _, _, t in members])
                if random_actions:
                    acts = [self._spaces[a].sample() for _, a, _ in members]
                    logps = np.zeros(len(members), np.float32)
                else:
                    acts, extras = self.modules[mid].compute_actions(obs, explore, self._rng,
                                                                     epsilon)
                    logps = extras.get(Columns.ACTION_LOGP, np.zeros(len(members), np.float32))
                for k, (i, agent, track) in enumerate(members):
                    track.pending = (obs[k], np.asarray(acts[k]), float(logps[k]))
                    track.obs, track.reward = None, 0.0
                    action_dicts[i][agent] = _to_env_action(self._spaces[agent], acts[k])
            for i, env in enumerate(self.envs):
                ep = self._episodes[i]
                if not action_dicts[i]:
                    raise ValueError(f"Env {self.env_name!r}: no agent has an observation to act "
                                     "on, but the episode is not over: step() must return an "
                                     "obs for the agents that act next, or set "
                                     "terminateds['__all__'] / truncateds['__all__'].")
                obs, rewards, terms, truncs, _ = check_step(env.step(action_dicts[i]),
                                                            self.env_name, multi_agent=True)
                env_steps += 1
                ep.length += 1
                all_term = bool(terms.get("__all__", False))
                all_done = all_term or bool(truncs.get("__all__", False))
                for agent in set(obs) | set(rewards):
                    if agent not in ep.tracks:
                        self._space(agent)
                        ep.tracks[agent] = _Track(self._module_for(ep, agent))
                for agent, r in rewards.items():
                    ep.tracks[agent].reward += r
                    ep.tracks[agent].total += r
                    ep.env_return += r
                for agent, track in ep.tracks.items():
                    if track.done:
                        continue
                    a_term = bool(terms.get(agent, False)) or all_term
                    a_done = a_term or bool(truncs.get(agent, False)) or all_done
                    new_obs = self._encoders[agent](obs[agent]) if agent in obs else None
                    if track.pending is not None and (new_obs is not None or a_done):
                        p_obs, p_act, p_logp = track.pending
                        nxt = new_obs if new_obs is not None else p_obs
                        track.rows.append((p_obs, p_act, track.reward, a_term,
                                           a_done and not a_term, nxt, p_logp))
                        track.pending, track.reward = None, 0.0
                        agent_steps += 1
                        module_steps[track.module_id] += 1
                    if a_done:
                        track.done = True
                        if keep:
                            self._emit(track, rows_out)
                    else:
                        track.obs = new_obs if new_obs is not None else track.obs
                if all_done:
                    if keep:
                        for track in ep.tracks.values():
                            self._emit(track, rows_out)
                    summary = EpisodeSummary(
                        ep.id_, ep.env_return, ep.length,
                        {a: t.total for a, t in ep.tracks.items()},
                        self._module_returns(ep), i)
                    self._callback("on_episode_end", episode=summary, env=env, env_index=i)
                    episodes.append(summary)
                    self._reset(i)
            if not keep and len(episodes) >= num_episodes:
                break
        if keep:
            for ep in self._episodes:
                for track in ep.tracks.values():
                    self._emit(track, rows_out)
        else:
            self._needs_reset = True
        batches = {mid: self._columns(segs) for mid, segs in rows_out.items()}
        self._callback("on_sample_end", samples=batches)
        return SampleOutput(batches, episodes, env_steps, agent_steps,
                            {m: s for m, s in module_steps.items() if s}, self.worker_index)

    @staticmethod
    def _module_returns(ep):
        out = {}
        for track in ep.tracks.values():
            out[track.module_id] = out.get(track.module_id, 0.0) + track.total
        return out

    @staticmethod
    def _columns(segments):
        rows = [row for seg in segments for row in seg]
        cols = list(zip(*rows))
        out = {}
        for name, values in zip(_COLS, cols):
            dtype = (np.float32 if name in (Columns.REWARDS, Columns.ACTION_LOGP) else
                     bool if name in (Columns.TERMINATEDS, Columns.TRUNCATEDS) else None)
            out[name] = np.asarray(values, dtype=dtype) if dtype else np.stack(values)
        return out


__all__ = ["MultiAgentEnvRunner"]
