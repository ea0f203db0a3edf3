"""Evaluation (on the driver or parallel on its own runner actor), callbacks, registered envs."""
import os

from minray.rllib.algorithms.dqn import DQNConfig
from minray.rllib.algorithms.ppo import PPOConfig
from minray.rllib.callbacks.callbacks import RLlibCallback
from minray.rllib.examples.envs import MazeEnv
from minray.tune.registry import register_env


class Recorder(RLlibCallback):
    def on_algorithm_init(self, *, algorithm, **kwargs):
        algorithm.init_seen = True

    def on_train_result(self, *, algorithm, result, **kwargs):
        result["custom_iteration_tag"] = algorithm.iteration + 1

    def on_episode_end(self, *, episode, env_runner=None, **kwargs):
        env_runner.episode_pids = getattr(env_runner, "episode_pids", set()) | {os.getpid()}


def test_parallel_evaluation_on_its_own_runner_and_callbacks():
    register_env("small_maze", lambda cfg: MazeEnv({"size": cfg.get("size", 3)}))
    config = (PPOConfig().environment("small_maze", env_config={"size": 3})
              .env_runners(num_env_runners=1)
              .training(train_batch_size_per_learner=200, minibatch_size=100, num_epochs=1,
                        model={"fcnet_hiddens": [8]})
              .evaluation(evaluation_interval=2, evaluation_duration=4,
                          evaluation_parallel_to_training=True, evaluation_num_env_runners=1)
              .callbacks(Recorder))
    algo = config.build_algo()
    try:
        assert algo.init_seen
        first, second = algo.train(), algo.train()
        assert "evaluation" not in first and first["custom_iteration_tag"] == 1
        evaluation = second["evaluation"]["env_runners"]
        assert evaluation["num_episodes"] >= 4
        assert 1 <= evaluation["episode_len_mean"] <= 50
        eval_pids = algo.eval_env_runner_group.foreach_env_runner(
            lambda r: getattr(r, "episode_pids", set()), local_env_runner=False)[0]
        train_pids = algo.env_runner_group.foreach_env_runner(
            lambda r: r.episode_pids, local_env_runner=False)[0]
        assert eval_pids and train_pids and not eval_pids & train_pids
        assert os.getpid() not in eval_pids | train_pids
    finally:
        algo.stop()


def test_evaluate_timesteps_unit_on_the_driver():
    algo = (DQNConfig().environment(MazeEnv)
            .reporting(min_sample_timesteps_per_iteration=64)
            .evaluation(evaluation_duration=100, evaluation_duration_unit="timesteps")
            .build_algo())
    try:
        algo.train()
        out = algo.evaluate()["env_runners"]
        assert out["num_env_steps_sampled"] == 100
    finally:
        algo.stop()
