"""DQN (double, dueling, n-step, prioritized replay) learns the book's maze; offline
experiences written as JSON lines train a second DQN with no env at all."""
import glob
import json
import math

import numpy as np

from minray.rllib.algorithms.dqn import DQNConfig
from minray.rllib.examples.envs import MazeEnv, greedy_steps_to_goal

SHORTEST = 8  # (0, 0) -> (4, 4)


def maze_dqn(**training):
    settings = dict(lr=2e-3, train_batch_size_per_learner=64, n_step=3, double_q=True,
                    dueling=True, target_network_update_freq=200, training_intensity=8,
                    num_steps_sampled_before_learning_starts=200, epsilon=[(0, 1.0), (2000, 0.05)],
                    model={"fcnet_hiddens": [64]}, hiddens=[64])
    settings.update(training)
    return (DQNConfig().environment(MazeEnv)
            .env_runners(num_env_runners=0, rollout_fragment_length=25)
            .reporting(min_sample_timesteps_per_iteration=500)
            .training(**settings)
            .debugging(seed=3))


def greedy(algo):
    return lambda obs: algo.compute_single_action(obs)


def test_dqn_learns_the_maze():
    algo = maze_dqn().build_algo()
    try:
        steps = None
        for _ in range(12):
            result = algo.train()
            steps = greedy_steps_to_goal(greedy(algo))
            if steps == SHORTEST and result["env_runners"]["episode_return_mean"] > 0.9:
                break
        learner = result["learners"]["default_policy"]
        assert math.isfinite(learner["qf_loss"])
        assert learner["num_module_steps_trained_lifetime"] > 1000
        assert steps == SHORTEST, f"greedy policy needs {steps} steps"
        assert result["env_runners"]["episode_return_mean"] > 0.9
        assert algo.evaluate()["env_runners"]["episode_len_mean"] == SHORTEST
    finally:
        algo.stop()


def test_offline_write_then_train(tmp_path):
    out_dir = tmp_path / "maze-experiences"
    # Write: an exploring DQN whose epsilon stays at 1 (a random walk) logs its transitions.
    writer = (maze_dqn(epsilon=[(0, 1.0)], num_steps_sampled_before_learning_starts=10 ** 9)
              .offline_data(output=str(out_dir)).build_algo())
    try:
        for _ in range(6):
            writer.train()
    finally:
        writer.stop()
    files = glob.glob(str(out_dir / "*.json"))
    assert files
    rows = [json.loads(line) for f in files for line in open(f)]
    assert len(rows) == 3000
    assert {"obs", "actions", "rewards", "terminateds", "truncateds", "new_obs"} <= set(rows[0])
    assert sum(r["rewards"] for r in rows) > 0  # a random walk does find the goal sometimes

    # Train: Q-learning is off-policy, so random-walk data is enough to find the shortest path.
    reader = (maze_dqn(num_steps_sampled_before_learning_starts=0)
              .offline_data(input_=str(out_dir)).build_algo())
    try:
        assert reader.env_runner_group is None  # no env runners: no env interaction
        for _ in range(15):
            result = reader.train()
            if greedy_steps_to_goal(greedy(reader)) == SHORTEST:
                break
        assert result["learners"]["default_policy"]["num_module_steps_trained_lifetime"] > 0
        assert greedy_steps_to_goal(greedy(reader)) == SHORTEST
        assert np.isnan(result["env_runners"]["episode_return_mean"])  # it played no episode
    finally:
        reader.stop()
