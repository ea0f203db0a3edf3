"""``Algorithm``: an RL algorithm as a Tune trainable.

    algo = PPOConfig().environment("CartPole-v1").build_algo()
    for _ in range(10):
        result = algo.train()                 # one iteration: sample, learn, sync weights
        print(result["env_runners"]["episode_return_mean"])
    path = algo.save_to_path("/tmp/ppo")      # later: Algorithm.from_checkpoint(path)
    algo.stop()

Flow of one ``train()``: ``step()`` repeats the algorithm's ``training_step()``
(sample on the EnvRunnerGroup -> learner update -> weights broadcast with
``minray.put``) until the iteration's minimum steps/time are met, then builds
RLlib 2.60's result dict (``env_runners/...``, ``learners/<module>/...``,
``num_env_steps_sampled_lifetime`` ...) and runs evaluation when it is due.
"""

import collections
import logging
import os
import pickle
import random
import tempfile
import time

import cloudpickle
import numpy as np
import torch

from minray.tune import Trainable

from ..callbacks.callbacks import RLlibCallback
from ..core import ALL_MODULES, DEFAULT_MODULE_ID
from ..core.rl_module.rl_module import RLModuleSpec
from ..env.env_runner import ObsEncoder, RunnerSpec
from ..env.env_runner_group import EnvRunnerGroup
from ..env.utils import check_env, is_multi_agent, make_env, resolve_env_creator
from ..offline.json_io import JsonReader, JsonWriter
from ..policy.policy import PolicySpec
from .algorithm_config import AlgorithmConfig

logger = logging.getLogger(__name__)
_STATE_FILE = "algorithm_state.pkl"


def _default_mapping(agent_id, episode, **kwargs):
    return DEFAULT_MODULE_ID


def _mean(values):
    return float(np.mean(values)) if len(values) else float("nan")


class _EpisodeWindow:
    """The last N finished episodes: what ``episode_return_mean`` etc. average over."""

    def __init__(self, size):
        self.returns = collections.deque(maxlen=size)
        self.lengths = collections.deque(maxlen=size)
        self.agent = collections.defaultdict(lambda: collections.deque(maxlen=size))
        self.module = collections.defaultdict(lambda: collections.deque(maxlen=size))

    def add(self, episodes):
        for ep in episodes:
            self.returns.append(ep.episode_return)
            self.lengths.append(ep.length)
            for a, r in ep.agent_returns.items():
                self.agent[a].append(r)
            for m, r in ep.module_returns.items():
                self.module[m].append(r)

    def metrics(self):
        return {
            "episode_return_mean": _mean(self.returns),
            "episode_return_max": float(max(self.returns)) if self.returns else float("nan"),
            "episode_return_min": float(min(self.returns)) if self.returns else float("nan"),
            "episode_len_mean": _mean(self.lengths),
            "episode_len_max": int(max(self.lengths)) if self.lengths else 0,
            "episode_len_min": int(min(self.lengths)) if self.lengths else 0,
            "agent_episode_returns_mean": {a: _mean(v) for a, v in self.agent.items()},
            "module_episode_returns_mean": {m: _mean(v) for m, v in self.module.items()},
        }


class Algorithm(Trainable):
    """Base class of PPO, DQN, SAC: subclasses set ``config_class``, ``module_class``,
    ``learner_class`` and implement ``training_step()``."""

    config_class = AlgorithmConfig
    module_class = None
    learner_class = None

    @classmethod
    def get_default_config(cls):
        return cls.config_class(algo_class=cls)

    def __init__(self, config=None, env=None, logger_creator=None, **kwargs):
        if isinstance(config, AlgorithmConfig):
            self._algo_config = config
        else:
            self._algo_config = self.get_default_config().update_from_dict(config or {})
        self._algo_config.algo_class = type(self)
        if env is not None:
            self._algo_config.env = env
        info = kwargs.get("_trial_info") or {"trial_id": "default", "trial_name": "default"}
        super().__init__(config=None, logger_creator=logger_creator, _trial_info=info)

    # ---- setup
    def setup(self, config):
        self.config = config = self._algo_config
        config.validate()
        if config.seed is not None:
            random.seed(config.seed)
            np.random.seed(config.seed)
            torch.manual_seed(config.seed)
        self._env_creator = resolve_env_creator(config.env)
        probe = make_env(self._env_creator, config.env_config)
        try:
            if not config.disable_env_checking:
                check_env(probe, self._env_creator.name)
            self._multi_agent = is_multi_agent(probe)
            self.module_specs, self._mapping_fn = self._module_specs(probe)
        finally:
            try:
                probe.close()
            except Exception:  # noqa: BLE001 - closing a probe env must not fail setup
                pass
        trainable = config.policies_to_train
        if trainable is None:
            self.modules_to_train = set(self.module_specs)
        elif callable(trainable):
            self.modules_to_train = {m for m in self.module_specs if trainable(m, None)}
        else:
            self.modules_to_train = set(trainable)
        self.learner = self.learner_class(config, self.module_specs, self.modules_to_train)
        self._offline_reader = JsonReader(config.input_) if config.input_ else None
        self._offline_writer = (JsonWriter(config.output, config.output_max_rows_per_file)
                                if config.output else None)
        self.env_runner_group = None
        if self._offline_reader is None:
            self.env_runner_group = self._make_group(config.num_env_runners, evaluation=False)
        self.eval_env_runner_group = None
        self._window = _EpisodeWindow(config.metrics_num_episodes_for_smoothing)
        self._counters = collections.Counter()
        self._module_sampled_lifetime = collections.Counter()
        self._new_iteration()
        self._sync_weights()
        self.callbacks = (config.callbacks_class or RLlibCallback)()
        self.callbacks.on_algorithm_init(algorithm=self)

    def _module_specs(self, env):
        config = self.config
        model_config = dict(config.model_config)
        base = config.rl_module_spec
        if not self._multi_agent:
            if set(config.policies) - {DEFAULT_MODULE_ID}:
                raise ValueError(f"multi_agent(policies={sorted(config.policies)}) needs a "
                                 f"MultiAgentEnv, but {self._env_creator.name!r} is a single-agent "
                                 "gymnasium env.")
            spaces = {DEFAULT_MODULE_ID: (config.observation_space or env.observation_space,
                                          config.action_space or env.action_space)}
            mapping = None
        else:
            mapping = config.policy_mapping_fn or _default_mapping
            policies = config.policies
            spaces = {}
            for agent in list(getattr(env, "possible_agents", None) or env.agents):
                mid = mapping(agent, None)
                spaces.setdefault(mid, (env.get_observation_space(agent),
                                        env.get_action_space(agent)))
            if isinstance(policies, dict):
                overrides = {}
                for mid, pspec in policies.items():
                    if isinstance(pspec, (tuple, list)):
                        pspec = PolicySpec(*pspec)
                    if isinstance(pspec, PolicySpec):
                        obs_s = pspec.observation_space or spaces.get(mid, (None, None))[0]
                        act_s = pspec.action_space or spaces.get(mid, (None, None))[1]
                        spaces[mid] = (obs_s, act_s)
                        overrides[mid] = dict(pspec.config or {})
                config._policy_overrides = overrides
            ids = list(policies)
            missing = [m for m in ids if m not in spaces or None in spaces[m]]
            if missing:
                raise ValueError(f"policies {missing} get no agent from policy_mapping_fn, so "
                                 "their spaces are unknown: map an agent to them or give "
                                 "PolicySpec(observation_space=..., action_space=...).")
            spaces = {m: spaces[m] for m in ids}
        specs = {}
        for mid, (obs_space, act_space) in spaces.items():
            module_class = self.module_class
            module_cfg = model_config
            if isinstance(base, RLModuleSpec):
                module_class = base.module_class or module_class
                module_cfg = dict(model_config, **(base.model_config or {}))
            elif isinstance(base, dict) and mid in base:  # MultiRLModuleSpec-like dict
                module_class = base[mid].module_class or module_class
            specs[mid] = RLModuleSpec(module_class, obs_space, act_space,
                                      self.module_model_config(module_cfg))
        return specs, mapping

    def module_model_config(self, model_config):
        """Hook: what an algorithm adds to a module's model_config (e.g. DQN's dueling)."""
        return model_config

    def _make_group(self, num_remote, evaluation):
        config = self.config
        env_config = dict(config.env_config)
        eval_over = (config.evaluation_config or {}) if evaluation else {}
        env_config.update(eval_over.get("env_config", {}))
        num_envs = eval_over.get("num_envs_per_env_runner", config.num_envs_per_env_runner)
        seed = config.seed
        if seed is not None and evaluation:
            seed = seed + 100_003

        def make_spec(index):
            return RunnerSpec(self._env_creator, env_config, num_envs, self.module_specs, index,
                              num_remote, seed, self._mapping_fn, config.callbacks_class,
                              remote=index > 0, multi_agent=self._multi_agent)

        local = num_remote == 0 or (config.create_env_on_local_worker and not evaluation)
        return EnvRunnerGroup(make_spec, num_remote, local=local,
                              num_cpus_per_env_runner=config.num_cpus_per_env_runner,
                              restart_failed=config.restart_failed_env_runners,
                              max_restarts=config.max_num_env_runner_restarts,
                              multi_agent=self._multi_agent)

    # ---- helpers for training_step()
    def global_vars(self):
        """What env runners need besides weights (e.g. DQN's epsilon)."""
        return {}

    def _sync_weights(self):
        if self.env_runner_group is not None:
            self.env_runner_group.sync_weights(self.learner.get_weights(), self.global_vars())

    def sample(self, num_timesteps, random_actions=False):
        """Sample ``num_timesteps`` env steps in total; record metrics; return batches
        per module (rows of all runners concatenated)."""
        t0 = time.perf_counter()
        if self._offline_reader is not None:
            batches = self._offline_reader.next(num_timesteps)
            steps = max(len(b["rewards"]) for b in batches.values())
            self._count_sampled(steps, steps, {m: len(b["rewards"]) for m, b in batches.items()},
                                [])
            return batches
        outputs = self.env_runner_group.sample(num_timesteps=num_timesteps,
                                               explore=self.config.explore,
                                               random_actions=random_actions)
        batches = {}
        for mid in {m for o in outputs for m in o.batches}:
            parts = [o.batches[mid] for o in outputs if mid in o.batches]
            batches[mid] = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        module_steps = collections.Counter()
        for o in outputs:
            module_steps.update(o.module_steps)
        self._count_sampled(sum(o.env_steps for o in outputs),
                            sum(o.agent_steps for o in outputs), module_steps,
                            [ep for o in outputs for ep in o.episodes])
        if self._offline_writer is not None:
            self._offline_writer.write(batches)
        self._timers["env_runner_sampling_timer"] += time.perf_counter() - t0
        return batches

    def _count_sampled(self, env_steps, agent_steps, module_steps, episodes):
        it = self._iter_stats
        it["env_steps"] += env_steps
        it["agent_steps"] += agent_steps
        it["module_steps"].update(module_steps)
        it["episodes"] += len(episodes)
        self._counters["num_env_steps_sampled_lifetime"] += env_steps
        self._counters["num_agent_steps_sampled_lifetime"] += agent_steps
        self._counters["num_episodes_lifetime"] += len(episodes)
        self._module_sampled_lifetime.update(module_steps)
        self._window.add(episodes)

    def learn(self, batches):
        """One learner update on ``batches``; keeps its stats for the result."""
        t0 = time.perf_counter()
        stats = self.learner.update(batches, self._counters["num_env_steps_sampled_lifetime"])
        trained = sum(len(b["rewards"]) for m, b in batches.items() if m in stats)
        self._counters["num_env_steps_trained_lifetime"] += trained
        self._iter_stats["trained"] += trained
        self._iter_stats["learner"].update(stats)
        self._timers["learner_update_timer"] += time.perf_counter() - t0
        return stats

    @property
    def num_env_steps_sampled_lifetime(self):
        return self._counters["num_env_steps_sampled_lifetime"]

    def training_step(self):
        raise TypeError(f"{type(self).__name__} must define training_step().")

    # ---- one iteration
    def _new_iteration(self):
        self._timers = collections.Counter()
        self._iter_stats = {"env_steps": 0, "agent_steps": 0, "module_steps": collections.Counter(),
                            "episodes": 0, "trained": 0, "learner": {}}

    def step(self):
        config = self.config
        t0 = time.time()
        self._new_iteration()
        eval_due = bool(config.evaluation_interval) and \
            (self.iteration + 1) % config.evaluation_interval == 0
        eval_refs = None
        if eval_due and config.evaluation_parallel_to_training:
            eval_refs = self._start_evaluation()
        calls = 0
        while True:
            self.training_step()
            calls += 1
            sampled = self._iter_stats["env_steps"]
            enough_steps = sampled >= config.min_sample_timesteps_per_iteration
            enough_time = not config.min_time_s_per_iteration or \
                time.time() - t0 >= config.min_time_s_per_iteration
            if enough_steps and enough_time:
                break
        result = self._result(calls)
        if eval_due:
            result["evaluation"] = (self._finish_evaluation(eval_refs) if eval_refs is not None
                                    else self.evaluate())
        self.callbacks.on_train_result(algorithm=self, result=result)
        return result

    def _result(self, calls):
        it, c = self._iter_stats, self._counters
        group = self.env_runner_group
        runners = self._window.metrics()
        runners.update({
            "num_episodes": it["episodes"],
            "num_episodes_lifetime": c["num_episodes_lifetime"],
            "num_env_steps_sampled": it["env_steps"],
            "num_env_steps_sampled_lifetime": c["num_env_steps_sampled_lifetime"],
            "num_agent_steps_sampled": it["agent_steps"],
            "num_agent_steps_sampled_lifetime": c["num_agent_steps_sampled_lifetime"],
            "num_module_steps_sampled": dict(it["module_steps"]),
            "num_module_steps_sampled_lifetime": dict(self._module_sampled_lifetime),
            "sample": self._timers["env_runner_sampling_timer"],
        })
        learners = {mid: dict(s) for mid, s in it["learner"].items()}
        learners[ALL_MODULES] = {
            "num_env_steps_trained": it["trained"],
            "num_env_steps_trained_lifetime": c["num_env_steps_trained_lifetime"],
            "num_trainable_parameters": sum(p.numel() for m in self.modules_to_train
                                            for p in self.learner.modules[m].parameters()),
        }
        restarts = group.num_restarts if group else 0
        return {
            "env_runners": runners,
            "learners": learners,
            "num_env_steps_sampled_lifetime": c["num_env_steps_sampled_lifetime"],
            "num_agent_steps_sampled_lifetime": c["num_agent_steps_sampled_lifetime"],
            "num_env_steps_trained_lifetime": c["num_env_steps_trained_lifetime"],
            "num_episodes_lifetime": c["num_episodes_lifetime"],
            "num_training_step_calls_per_iteration": calls,
            "fault_tolerance": {
                "num_healthy_workers": group.num_healthy_remote_workers if group else 0,
                "num_remote_worker_restarts": restarts},
            "env_runner_group": {"actor_manager_num_outstanding_async_reqs": 0},
            "timers": {k: float(v) for k, v in self._timers.items()},
        }

    # ---- evaluation
    def _eval_group(self):
        if self.eval_env_runner_group is None:
            self.eval_env_runner_group = self._make_group(self.config.evaluation_num_env_runners,
                                                          evaluation=True)
        self.eval_env_runner_group.sync_weights(self.learner.get_weights(), self.global_vars())
        return self.eval_env_runner_group

    def _eval_amounts(self):
        duration = self.config.evaluation_duration
        if duration == "auto":
            duration = 10
        if self.config.evaluation_duration_unit == "episodes":
            return None, int(duration)
        return int(duration), None

    def _start_evaluation(self):
        group = self._eval_group()
        if not group.num_remote_env_runners:
            return None
        timesteps, episodes = self._eval_amounts()
        explore = (self.config.evaluation_config or {}).get("explore", False)
        return group, group.sample_async(timesteps, episodes, explore)

    def _finish_evaluation(self, handle):
        group, refs = handle
        return self._eval_result(group.collect(refs))

    def evaluate(self):
        """Run ``evaluation_duration`` episodes (or timesteps) greedily; return
        ``{"env_runners": {...}}`` over those episodes only."""
        self.callbacks.on_evaluate_start(algorithm=self)
        group = self._eval_group()
        timesteps, episodes = self._eval_amounts()
        explore = (self.config.evaluation_config or {}).get("explore", False)
        result = self._eval_result(group.sample(timesteps, episodes, explore))
        self.callbacks.on_evaluate_end(algorithm=self, evaluation_metrics=result)
        return result

    def _eval_result(self, outputs):
        window = _EpisodeWindow(10 ** 9)
        episodes = [ep for o in outputs for ep in o.episodes]
        window.add(episodes)
        metrics = window.metrics()
        metrics.update(num_episodes=len(episodes),
                       num_env_steps_sampled=sum(o.env_steps for o in outputs),
                       num_agent_steps_sampled=sum(o.agent_steps for o in outputs))
        return {"env_runners": metrics}

    # ---- serving
    def get_module(self, module_id=DEFAULT_MODULE_ID):
        if module_id not in self.learner.modules:
            raise KeyError(f"no module {module_id!r}; this algorithm has "
                           f"{sorted(self.learner.modules)}.")
        return self.learner.modules[module_id]

    def get_policy(self, policy_id=DEFAULT_MODULE_ID):
        return self.get_module(policy_id)

    def compute_single_action(self, observation, state=None, *, policy_id=DEFAULT_MODULE_ID,
                              explore=False, **kwargs):
        """The action the module picks for one observation (greedy unless explore=True)."""
        module = self.get_module(policy_id)
        encoder = ObsEncoder(self.module_specs[policy_id].observation_space)
        rng = getattr(self, "_serve_rng", None) or np.random.default_rng(self.config.seed)
        self._serve_rng = rng
        actions, _ = module.compute_actions(encoder(observation)[None], explore, rng,
                                            self.global_vars().get("epsilon", 0.0) if explore
                                            else 0.0)
        action = actions[0]
        return int(action) if np.ndim(action) == 0 else np.asarray(action)

    def compute_actions(self, observations, *, policy_id=DEFAULT_MODULE_ID, explore=False, **kw):
        return {k: self.compute_single_action(o, policy_id=policy_id, explore=explore)
                for k, o in observations.items()}

    # ---- checkpoints
    def save_checkpoint(self, checkpoint_dir):
        state = {"algorithm_class": type(self), "config": self.config,
                 "counters": dict(self._counters),
                 "module_sampled_lifetime": dict(self._module_sampled_lifetime),
                 "window": (list(self._window.returns), list(self._window.lengths)),
                 "extra": self.extra_state()}
        with open(os.path.join(checkpoint_dir, _STATE_FILE), "wb") as f:
            cloudpickle.dump(state, f)
        torch.save(self.learner.get_state(), os.path.join(checkpoint_dir, "learner_state.pt"))
        return None

    def load_checkpoint(self, checkpoint_dir):
        with open(os.path.join(checkpoint_dir, _STATE_FILE), "rb") as f:
            state = pickle.load(f)
        self._counters = collections.Counter(state["counters"])
        self._module_sampled_lifetime = collections.Counter(state["module_sampled_lifetime"])
        returns, lengths = state["window"]
        self._window.returns.extend(returns)
        self._window.lengths.extend(lengths)
        self.set_extra_state(state.get("extra") or {})
        self.learner.set_state(torch.load(os.path.join(checkpoint_dir, "learner_state.pt"),
                                          weights_only=False))
        self._sync_weights()
        self.callbacks.on_checkpoint_loaded(algorithm=self)

    def extra_state(self):
        return {}

    def set_extra_state(self, state):
        pass

    def save_to_path(self, path=None, **kwargs):
        """Write a checkpoint directory (a fresh temp dir if ``path`` is None); return its path."""
        path = path or tempfile.mkdtemp(prefix=f"{type(self).__name__.lower()}_checkpoint_")
        return self.save(os.path.abspath(os.path.expanduser(str(path))))

    def save(self, checkpoint_dir=None):
        if checkpoint_dir is None:
            checkpoint_dir = tempfile.mkdtemp(prefix=f"{type(self).__name__.lower()}_ckpt_")
        return super().save(checkpoint_dir)

    def restore_from_path(self, path, **kwargs):
        self.restore(path)

    @classmethod
    def from_checkpoint(cls, path, **kwargs):
        """Build the algorithm a checkpoint was saved from, with its config and state."""
        path = getattr(path, "path", path)
        state_file = os.path.join(path, _STATE_FILE)
        if not os.path.exists(state_file):
            raise ValueError(f"{path!r} is not an algorithm checkpoint (no {_STATE_FILE}); "
                             "write one with algo.save_to_path(path).")
        with open(state_file, "rb") as f:
            state = pickle.load(f)
        algo = state["algorithm_class"](config=state["config"])
        algo.restore(path)
        return algo

    # ---- teardown
    def cleanup(self):
        for group in (self.env_runner_group, self.eval_env_runner_group):
            if group is not None:
                group.stop()
        self.env_runner_group = self.eval_env_runner_group = None
        if self._offline_writer is not None:
            self._offline_writer.close()

    @classmethod
    def default_resource_request(cls, config):
        return {"cpu": 1}


__all__ = ["Algorithm"]
