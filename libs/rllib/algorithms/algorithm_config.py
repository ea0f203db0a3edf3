"""``AlgorithmConfig``: the builder every algorithm is configured with (RLlib 2.60's API).

    config = (PPOConfig()
              .environment("CartPole-v1")
              .env_runners(num_env_runners=2, num_envs_per_env_runner=4)
              .training(lr=3e-4, train_batch_size_per_learner=2000, model={"fcnet_hiddens": [64]})
              .debugging(seed=0))
    algo = config.build_algo()

Each section method (``environment``, ``env_runners``, ``training`` ...) sets only
the keywords it is given and returns the config, so calls chain.  Settings are
flat attributes (``config.num_env_runners``); ``to_dict()`` / ``update_from_dict()``
round-trip them, and a config also reads as a mapping, so ``Tuner("PPO",
param_space=config)`` and ``tune.run("PPO", config=config.to_dict())`` work.
"""

import copy

# section -> {keyword: attribute}; subclasses extend "training" with their own keywords
_SECTIONS = {
    "environment": {"env": "env", "env_config": "env_config",
                    "observation_space": "observation_space", "action_space": "action_space",
                    "clip_rewards": "clip_rewards", "disable_env_checking": "disable_env_checking",
                    "normalize_actions": "normalize_actions", "clip_actions": "clip_actions",
                    "is_atari": "is_atari", "render_env": "render_env"},
    "env_runners": {"num_env_runners": "num_env_runners",
                    "num_envs_per_env_runner": "num_envs_per_env_runner",
                    "rollout_fragment_length": "rollout_fragment_length",
                    "batch_mode": "batch_mode", "explore": "explore",
                    "num_cpus_per_env_runner": "num_cpus_per_env_runner",
                    "num_gpus_per_env_runner": "num_gpus_per_env_runner",
                    "create_env_on_local_worker": "create_env_on_local_worker",
                    "sample_timeout_s": "sample_timeout_s",
                    "observation_filter": "observation_filter",
                    "env_runner_cls": "env_runner_cls",
                    "compress_observations": "compress_observations",
                    "exploration_config": "exploration_config"},
    "training": {"gamma": "gamma", "lr": "lr", "train_batch_size": "train_batch_size",
                 "train_batch_size_per_learner": "train_batch_size",
                 "minibatch_size": "minibatch_size", "sgd_minibatch_size": "minibatch_size",
                 "num_epochs": "num_epochs", "num_sgd_iter": "num_epochs",
                 "model": "model_config", "grad_clip": "grad_clip",
                 "grad_clip_by": "grad_clip_by", "optimizer": "optimizer",
                 "shuffle_batch_per_epoch": "shuffle_batch_per_epoch"},
    "framework": {"framework": "framework_str", "eager_tracing": "eager_tracing",
                  "torch_compile_learner": "torch_compile_learner"},
    "resources": {"num_gpus": "num_gpus", "num_cpus_for_main_process": "num_cpus_for_main_process",
                  "num_cpus_per_worker": "num_cpus_per_env_runner",
                  "placement_strategy": "placement_strategy"},
    "learners": {"num_learners": "num_learners", "num_cpus_per_learner": "num_cpus_per_learner",
                 "num_gpus_per_learner": "num_gpus_per_learner"},
    "evaluation": {"evaluation_interval": "evaluation_interval",
                   "evaluation_duration": "evaluation_duration",
                   "evaluation_duration_unit": "evaluation_duration_unit",
                   "evaluation_parallel_to_training": "evaluation_parallel_to_training",
                   "evaluation_num_env_runners": "evaluation_num_env_runners",
                   "evaluation_config": "evaluation_config",
                   "evaluation_sample_timeout_s": "evaluation_sample_timeout_s"},
    "multi_agent": {"policies": "policies", "policy_mapping_fn": "policy_mapping_fn",
                    "policies_to_train": "policies_to_train",
                    "count_steps_by": "count_steps_by"},
    "offline_data": {"input_": "input_", "output": "output", "input_config": "input_config",
                     "output_write_episodes": "output_write_episodes",
                     "output_max_rows_per_file": "output_max_rows_per_file"},
    "callbacks": {"callbacks_class": "callbacks_class"},
    "debugging": {"seed": "seed", "log_level": "log_level", "logger_config": "logger_config"},
    "reporting": {"min_sample_timesteps_per_iteration": "min_sample_timesteps_per_iteration",
                  "min_time_s_per_iteration": "min_time_s_per_iteration",
                  "min_train_timesteps_per_iteration": "min_train_timesteps_per_iteration",
                  "metrics_num_episodes_for_smoothing": "metrics_num_episodes_for_smoothing",
                  "keep_per_episode_custom_metrics": "keep_per_episode_custom_metrics"},
    "fault_tolerance": {"restart_failed_env_runners": "restart_failed_env_runners",
                        "max_num_env_runner_restarts": "max_num_env_runner_restarts",
                        "ignore_env_runner_failures": "ignore_env_runner_failures",
                        "recreate_failed_env_runners": "restart_failed_env_runners"},
    "rl_module": {"rl_module_spec": "rl_module_spec", "model_config": "model_config"},
    "api_stack": {"enable_rl_module_and_learner": "enable_rl_module_and_learner",
                  "enable_env_runner_and_connector_v2": "enable_env_runner_and_connector_v2"},
}

MODEL_DEFAULTS = {"fcnet_hiddens": [256, 256], "fcnet_activation": "tanh",
                  "vf_share_layers": False, "head_fcnet_hiddens": [],
                  "head_fcnet_activation": "relu"}

# keys update_from_dict accepts besides the attributes themselves
_ALIASES = {"lambda": "lambda_", "input": "input_", "model": "model_config",
            "train_batch_size_per_learner": "train_batch_size", "num_sgd_iter": "num_epochs",
            "sgd_minibatch_size": "minibatch_size", "framework": "framework_str",
            "callbacks": "callbacks_class", "num_workers": "num_env_runners",
            "num_rollout_workers": "num_env_runners"}


class AlgorithmConfig:
    """Settings of an algorithm; subclasses (PPOConfig, DQNConfig ...) add their own."""

    _extra_sections = {}

    def __init__(self, algo_class=None):
        self.algo_class = algo_class
        # environment
        self.env, self.env_config = None, {}
        self.observation_space = self.action_space = None
        self.clip_rewards = None
        self.disable_env_checking = False
        self.normalize_actions, self.clip_actions = True, False
        self.is_atari, self.render_env = False, False
        # env runners
        self.num_env_runners = 0
        self.num_envs_per_env_runner = 1
        self.rollout_fragment_length = "auto"
        self.batch_mode = "truncate_episodes"
        self.explore = True
        self.num_cpus_per_env_runner, self.num_gpus_per_env_runner = 1, 0
        self.create_env_on_local_worker = False
        self.sample_timeout_s = 60.0
        self.observation_filter = "NoFilter"
        self.env_runner_cls = None
        self.compress_observations = False
        self.exploration_config = {}
        # training
        self.gamma, self.lr = 0.99, 0.001
        self.train_batch_size = 32
        self.minibatch_size = None
        self.num_epochs = 1
        self.model_config = dict(MODEL_DEFAULTS)
        self.grad_clip, self.grad_clip_by = None, "global_norm"
        self.optimizer = {}
        self.shuffle_batch_per_epoch = True
        # framework / resources / learners
        self.framework_str, self.eager_tracing, self.torch_compile_learner = "torch", True, False
        self.num_gpus, self.num_cpus_for_main_process = 0, 1
        self.placement_strategy = "PACK"
        self.num_learners, self.num_cpus_per_learner, self.num_gpus_per_learner = 0, 1, 0
        # evaluation
        self.evaluation_interval = None
        self.evaluation_duration = 10
        self.evaluation_duration_unit = "episodes"
        self.evaluation_parallel_to_training = False
        self.evaluation_num_env_runners = 0
        self.evaluation_config = None
        self.evaluation_sample_timeout_s = 120.0
        # multi-agent
        self.policies = {"default_policy"}
        self.policy_mapping_fn = None
        self.policies_to_train = None
        self.count_steps_by = "env_steps"
        # offline
        self.input_, self.output, self.input_config = None, None, {}
        self.output_write_episodes = True
        self.output_max_rows_per_file = None
        # callbacks / debugging / reporting / fault tolerance / rl_module
        self.callbacks_class = None
        self.seed, self.log_level, self.logger_config = None, "WARN", None
        self.min_sample_timesteps_per_iteration = 0
        self.min_time_s_per_iteration = None
        self.min_train_timesteps_per_iteration = 0
        self.metrics_num_episodes_for_smoothing = 100
        self.keep_per_episode_custom_metrics = False
        self.restart_failed_env_runners = True
        self.max_num_env_runner_restarts = 1000
        self.ignore_env_runner_failures = False
        self.rl_module_spec = None
        self.enable_rl_module_and_learner = True
        self.enable_env_runner_and_connector_v2 = True

    # ---- section setters
    def _set(self, section, kwargs):
        table = dict(_SECTIONS.get(section, {}))
        table.update(type(self)._extra_sections.get(section, {}))
        for key, value in kwargs.items():
            if key not in table:
                raise TypeError(f"{type(self).__name__}.{section}() got an unexpected keyword "
                                f"{key!r}; it takes {sorted(table)}.")
            attr = table[key]
            if attr == "model_config":
                if not isinstance(value, dict):
                    raise TypeError(f"model must be a dict such as {{'fcnet_hiddens': [64, 64]}},"
                                    f" got {type(value).__name__}.")
                merged = dict(self.model_config)
                merged.update(value)
                value = merged
            setattr(self, attr, value)
        return self

    def environment(self, env=None, **kwargs):
        if env is not None:
            kwargs["env"] = env
        return self._set("environment", kwargs)

    def env_runners(self, **kwargs):
        return self._set("env_runners", kwargs)

    rollouts = env_runners

    def training(self, **kwargs):
        return self._set("training", kwargs)

    def framework(self, framework=None, **kwargs):
        if framework is not None:
            if framework != "torch":
                raise ValueError(f"framework {framework!r} is not available: minray.rllib "
                                 "learns with torch only; use framework('torch').")
            kwargs["framework"] = framework
        return self._set("framework", kwargs)

    def resources(self, **kwargs):
        return self._set("resources", kwargs)

    def learners(self, **kwargs):
        return self._set("learners", kwargs)

    def evaluation(self, **kwargs):
        return self._set("evaluation", kwargs)

    def multi_agent(self, **kwargs):
        return self._set("multi_agent", kwargs)

    def offline_data(self, **kwargs):
        return self._set("offline_data", kwargs)

    def callbacks(self, callbacks_class=None, **kwargs):
        if callbacks_class is not None:
            kwargs["callbacks_class"] = callbacks_class
        return self._set("callbacks", kwargs)

    def debugging(self, **kwargs):
        return self._set("debugging", kwargs)

    def reporting(self, **kwargs):
        return self._set("reporting", kwargs)

    def fault_tolerance(self, **kwargs):
        return self._set("fault_tolerance", kwargs)

    def rl_module(self, **kwargs):
        return self._set("rl_module", kwargs)

    def api_stack(self, **kwargs):
        return self._set("api_stack", kwargs)

    def checkpointing(self, **kwargs):
        return self

    # ---- derived values
    @property
    def train_batch_size_per_learner(self):
        return self.train_batch_size

    @property
    def total_train_batch_size(self):
        return self.train_batch_size

    @property
    def model(self):
        return self.model_config

    @property
    def is_multi_agent(self):
        return set(self.policies) != {"default_policy"} or self.policy_mapping_fn is not None

    def get_rollout_fragment_length(self):
        """``"auto"``: the train batch split evenly over all vectorised envs."""
        if self.rollout_fragment_length != "auto":
            return int(self.rollout_fragment_length)
        envs = self.num_envs_per_env_runner * max(1, self.num_env_runners)
        return max(1, -(-int(self.train_batch_size) // envs))

    # ---- building
    def build_algo(self, env=None, logger_creator=None, use_copy=True):
        if env is not None:
            self.env = env
        if self.algo_class is None:
            raise ValueError("This config has no algorithm class: use PPOConfig(), DQNConfig() "
                             "or SACConfig(), or pass algo_class=.")
        return self.algo_class(config=self.copy() if use_copy else self,
                               logger_creator=logger_creator)

    build = build_algo

    def copy(self, copy_frozen=None):
        return copy.deepcopy(self)

    def validate(self):
        if self.num_env_runners < 0:
            raise ValueError(f"num_env_runners must be >= 0, got {self.num_env_runners}.")
        if self.num_envs_per_env_runner < 1:
            raise ValueError("num_envs_per_env_runner must be >= 1, got "
                             f"{self.num_envs_per_env_runner}.")
        if self.evaluation_duration_unit not in ("episodes", "timesteps"):
            raise ValueError("evaluation_duration_unit must be 'episodes' or 'timesteps', got "
                             f"{self.evaluation_duration_unit!r}.")

    # ---- dict view (Tune)
    def to_dict(self):
        return {k: v for k, v in vars(self).items()}

    def update_from_dict(self, config_dict):
        for key, value in dict(config_dict).items():
            attr = _ALIASES.get(key, key)
            if attr == "model_config" and isinstance(value, dict):
                merged = dict(self.model_config)
                merged.update(value)
                value = merged
            if attr == "env_config" and value is None:
                value = {}
            setattr(self, attr, value)
        return self

    @classmethod
    def from_dict(cls, config_dict):
        return cls().update_from_dict(config_dict)

    def keys(self):
        return self.to_dict().keys()

    def __getitem__(self, key):
        return getattr(self, _ALIASES.get(key, key))

    def __contains__(self, key):
        return hasattr(self, _ALIASES.get(key, key))

    def get(self, key, default=None):
        return getattr(self, _ALIASES.get(key, key), default)

    def __iter__(self):
        return iter(self.to_dict())

    def __len__(self):
        return len(vars(self))

    def __repr__(self):
        name = self.algo_class.__name__ if self.algo_class else "?"
        return f"{type(self).__name__}(algo={name}, env={self.env!r})"


class NotProvided:
    """Marker for "keyword not given" (RLlib's name; our setters use **kwargs instead)."""


__all__ = ["AlgorithmConfig", "MODEL_DEFAULTS", "NotProvided"]
