"""An env runner SIGKILLed mid-training is replaced; a malformed env gets a clear error."""
import os
import signal

import gymnasium as gym
import numpy as np
import pytest

import minray
from minray.rllib.algorithms.ppo import PPOConfig
from minray.rllib.examples.envs import MazeEnv


@pytest.mark.slow
def test_killed_env_runner_is_replaced_and_training_continues():
    algo = (PPOConfig().environment(MazeEnv)
            .env_runners(num_env_runners=2)
            .training(train_batch_size_per_learner=400, minibatch_size=100, num_epochs=1,
                      model={"fcnet_hiddens": [16]})
            .build_algo())
    try:
        first = algo.train()
        assert first["fault_tolerance"] == {"num_healthy_workers": 2,
                                            "num_remote_worker_restarts": 0}
        pids = algo.env_runner_group.foreach_env_runner(lambda r: os.getpid(),
                                                        local_env_runner=False)
        assert len(set(pids)) == 2 and os.getpid() not in pids
        os.kill(pids[0], signal.SIGKILL)
        second = algo.train()  # the dead runner's share is lost, the other's is used
        assert second["training_iteration"] == 2
        assert second["fault_tolerance"]["num_remote_worker_restarts"] == 1
        assert second["env_runners"]["num_env_steps_sampled"] >= 200
        third = algo.train()  # the replacement samples again
        assert third["env_runners"]["num_env_steps_sampled"] >= 400
        new_pids = algo.env_runner_group.foreach_env_runner(lambda r: os.getpid(),
                                                            local_env_runner=False)
        assert len(new_pids) == 2 and pids[0] not in new_pids and pids[1] in new_pids
    finally:
        algo.stop()


class OldGymStepEnv(gym.Env):
    """Returns the pre-gymnasium 4-tuple (obs, reward, done, info)."""
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, False, {}


SIGNATURE = r"\(obs, reward, terminated, truncated, info\)"


def test_bad_step_tuple_is_rejected_at_build_naming_the_env():
    with pytest.raises(ValueError, match=rf"OldGymStepEnv.*4 values.*{SIGNATURE}"):
        PPOConfig().environment(OldGymStepEnv).build_algo()


def test_bad_step_tuple_inside_a_runner_actor_reaches_the_driver():
    config = (PPOConfig().environment(OldGymStepEnv, disable_env_checking=True)
              .env_runners(num_env_runners=1)
              .training(train_batch_size_per_learner=64, model={"fcnet_hiddens": [8]}))
    algo = config.build_algo()
    try:
        with pytest.raises(ValueError, match=rf"OldGymStepEnv.*{SIGNATURE}"):
            algo.train()
        assert algo.env_runner_group.num_restarts == 0  # an env bug is not a runner crash
    finally:
        algo.stop()


def test_unknown_env_name_says_how_to_register():
    with pytest.raises(ValueError, match="register_env"):
        PPOConfig().environment("NoSuchEnv-v0").build_algo()


def test_runner_actors_end_with_the_algorithm():
    algo = (PPOConfig().environment(MazeEnv).env_runners(num_env_runners=1)
            .training(train_batch_size_per_learner=64, model={"fcnet_hiddens": [8]}).build_algo())
    runner = algo.env_runner_group.remote_env_runners()[1]
    algo.stop()
    with pytest.raises(minray.exceptions.RayActorError):
        minray.get(runner.ping.remote(), timeout=30)
