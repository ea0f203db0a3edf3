"""minray.rllib: reinforcement learning on env-runner actors (RLlib 2.60's new-stack API).

    from minray.rllib.algorithms.ppo import PPOConfig

    config = (PPOConfig()
              .environment("CartPole-v1")
              .env_runners(num_env_runners=2, num_envs_per_env_runner=4)
              .training(lr=3e-4, train_batch_size_per_learner=2000))
    algo = config.build_algo()
    print(algo.train()["env_runners"]["episode_return_mean"])

Layout: algorithms/ (AlgorithmConfig, Algorithm = a Tune Trainable, PPO, DQN,
SAC) drive env/ (EnvRunnerGroup: env-runner actors that step gymnasium or
MultiAgentEnv environments) and core/ (RLModule networks, the Learner that
updates them); utils/ has replay buffers and schedules, offline/ JSON-lines
experience IO, cli.py the ``minray rllib`` commands.  Names load on first use
(torch is heavy), so ``minray rllib --help`` stays quick.
"""

import importlib as _importlib

_EXPORTS = {"Algorithm": "algorithms.algorithm", "AlgorithmConfig": "algorithms.algorithm_config",
            "MultiAgentEnv": "env.multi_agent_env", "PolicySpec": "policy.policy"}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(_importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'minray.rllib' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
