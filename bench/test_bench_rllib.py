"""pytest-benchmark cases for minray.rllib: ``pytest bench/test_bench_rllib.py --benchmark-only``.

Sampling throughput of one vectorised env runner, and one PPO iteration
(sample + learn + weight sync).  The wall time to solve CartPole against RLlib
and SB3 comes from ``python -m bench.rllib_compare``.
"""
import pytest
import torch

import minray
from minray.rllib.algorithms.ppo import PPOConfig


@pytest.fixture(scope="module")
def algo():
    if minray.is_initialized():
        minray.shutdown()
    torch.set_num_threads(1)
    minray.init(num_cpus=2)
    algo = (PPOConfig().environment("CartPole-v1")
            .env_runners(num_env_runners=0, num_envs_per_env_runner=8)
            .training(train_batch_size_per_learner=2048, minibatch_size=256, num_epochs=10,
                      model={"fcnet_hiddens": [64, 64]})
            .debugging(seed=0).build_algo())
    yield algo
    algo.stop()
    minray.shutdown()


def test_sample_2048_steps(benchmark, algo):
    runner = algo.env_runner_group.local_env_runner
    out = benchmark(runner.sample, 2048)
    assert out.env_steps == 2048


def test_one_ppo_iteration(benchmark, algo):
    result = benchmark.pedantic(algo.train, rounds=3, iterations=1)
    assert result["env_runners"]["num_env_steps_sampled"] == 2048
