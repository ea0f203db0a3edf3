"""PPO: solves CartPole, trains two policies on the multi-agent maze, round-trips
checkpoints, is reproducible under a seed, and runs as a Tune trainable by name."""
import math

import numpy as np
import pytest
import torch

from minray import tune
from minray.rllib.algorithms.algorithm import Algorithm
from minray.rllib.algorithms.ppo import PPO, PPOConfig
from minray.rllib.examples.envs import MazeEnv, MultiAgentMaze
from minray.rllib.policy.policy import PolicySpec


def fast_cartpole(**env_runners):
    """Settings that solve CartPole in ~60k steps on a 2-CPU box."""
    runners = dict(num_env_runners=0, num_envs_per_env_runner=8)
    runners.update(env_runners)
    return (PPOConfig().environment("CartPole-v1").env_runners(**runners)
            .training(lr=1e-3, train_batch_size_per_learner=2048, minibatch_size=256,
                      num_epochs=10, lambda_=0.95, clip_param=0.2, vf_clip_param=float("inf"),
                      vf_loss_coeff=0.5, use_kl_loss=False, model={"fcnet_hiddens": [64, 64]})
            .debugging(seed=0))


@pytest.mark.slow
def test_ppo_solves_cartpole_within_budget():
    algo = fast_cartpole().build_algo()
    try:
        result = algo.train()
        while result["env_runners"]["episode_return_mean"] < 450:
            assert result["num_env_steps_sampled_lifetime"] < 150_000, "step budget exceeded"
            result = algo.train()
        assert result["env_runners"]["episode_return_mean"] >= 450
        evaluation = algo.evaluate()["env_runners"]
        assert evaluation["episode_return_mean"] >= 450 and evaluation["num_episodes"] >= 10
    finally:
        algo.stop()


def test_result_keys_and_reproducible_seeded_runs():
    def run():
        algo = (PPOConfig().environment("CartPole-v1")
                .training(train_batch_size_per_learner=400, minibatch_size=100, num_epochs=2,
                          model={"fcnet_hiddens": [16]})
                .debugging(seed=11).build_algo())
        try:
            return [algo.train() for _ in range(2)]
        finally:
            algo.stop()
    first, second = run(), run()
    r = first[-1]
    assert r["training_iteration"] == 2 and isinstance(r["time_this_iter_s"], float)
    assert r["num_env_steps_sampled_lifetime"] == 800
    runners = r["env_runners"]
    for key in ("episode_return_mean", "episode_len_mean", "episode_return_max",
                "num_env_steps_sampled", "num_episodes", "num_env_steps_sampled_lifetime"):
        assert key in runners, key
    for key in ("total_loss", "policy_loss", "vf_loss", "entropy", "mean_kl_loss",
                "curr_kl_coeff", "vf_explained_var", "num_module_steps_trained"):
        assert math.isfinite(r["learners"]["default_policy"][key]), key
    assert r["learners"]["__all_modules__"]["num_env_steps_trained"] == 400
    for a, b in zip(first, second):
        assert a["env_runners"]["episode_return_mean"] == b["env_runners"]["episode_return_mean"]
        assert a["learners"]["default_policy"]["total_loss"] == \
            b["learners"]["default_policy"]["total_loss"]


def test_multi_agent_maze_two_policies_learn():
    config = (PPOConfig().environment(MultiAgentMaze)
              .env_runners(num_env_runners=1, num_envs_per_env_runner=2)
              .training(lr=3e-3, train_batch_size_per_learner=1000, minibatch_size=250,
                        num_epochs=6, gamma=0.9, entropy_coeff=0.01,
                        model={"fcnet_hiddens": [32]})
              .multi_agent(policies={"seeker_1": PolicySpec(), "seeker_2": PolicySpec()},
                           policy_mapping_fn=lambda agent_id, episode, **kw: f"seeker_{agent_id}")
              .debugging(seed=1))
    algo = config.build_algo()
    try:
        for _ in range(15):
            result = algo.train()
            returns = result["env_runners"]["module_episode_returns_mean"]
            if min(returns.values()) > 0.95:
                break
        assert set(result["learners"]) >= {"seeker_1", "seeker_2"}
        steps = result["env_runners"]["num_module_steps_sampled"]
        assert set(steps) == {"seeker_1", "seeker_2"}
        assert set(result["env_runners"]["agent_episode_returns_mean"]) == {1, 2}
        assert min(returns.values()) > 0.95, returns
        # each policy walks its own seeker to the goal in 4 greedy moves
        env = MultiAgentMaze()
        obs, _ = env.reset()
        for _ in range(4):
            actions = {a: algo.compute_single_action(o, policy_id=f"seeker_{a}")
                       for a, o in obs.items()}
            obs, rewards, terminateds, truncateds, _ = env.step(actions)
        assert terminateds["__all__"]
        assert algo.get_module("seeker_1") is not algo.get_module("seeker_2")
    finally:
        algo.stop()


def test_checkpoint_round_trip_gives_identical_actions(tmp_path):
    algo = fast_cartpole().build_algo()
    try:
        algo.train()
        path = algo.save_to_path(str(tmp_path / "ckpt"))
        rng = np.random.default_rng(0)
        observations = rng.normal(size=(64, 4)).astype(np.float32)
        before = [algo.compute_single_action(o) for o in observations]
        logits = algo.get_module().forward_inference(
            {"obs": torch.from_numpy(observations)})["action_dist_inputs"]
    finally:
        algo.stop()
    restored = Algorithm.from_checkpoint(path)
    try:
        assert isinstance(restored, PPO) and restored.iteration == 1
        assert [restored.compute_single_action(o) for o in observations] == before
        again = restored.get_module().forward_inference(
            {"obs": torch.from_numpy(observations)})["action_dist_inputs"]
        assert torch.equal(logits, again)
        assert restored.train()["num_env_steps_sampled_lifetime"] == 2 * 2048
    finally:
        restored.stop()


@pytest.mark.slow
def test_tuner_and_tune_run_resolve_algorithm_names(tmp_path):
    config = (PPOConfig().environment(MazeEnv)
              .training(train_batch_size_per_learner=200, minibatch_size=100, num_epochs=1,
                        lr=tune.grid_search([1e-3, 1e-4]), model={"fcnet_hiddens": [8]}))
    grid = tune.Tuner("PPO", param_space=config,
                      run_config=tune.RunConfig(stop={"training_iteration": 2},
                                                storage_path=str(tmp_path))).fit()
    assert len(grid) == 2 and not grid.errors
    lrs = sorted(r.config["lr"] for r in grid)
    assert lrs == [1e-4, 1e-3]
    for r in grid:
        assert r.metrics["training_iteration"] == 2
        assert r.metrics["num_env_steps_sampled_lifetime"] == 400

    analysis = tune.run("DQN", config={"env": MazeEnv, "min_sample_timesteps_per_iteration": 100,
                                       "num_steps_sampled_before_learning_starts": 50},
                        stop={"training_iteration": 1}, storage_path=str(tmp_path))
    trial = analysis.trials[0]
    assert trial.last_result["learners"]["default_policy"]["num_module_steps_trained"] > 0


def test_ppo_gaussian_policy_on_box_actions():
    from test_sac import PointAtTarget  # asserts every action lies inside the env's bounds
    algo = (PPOConfig().environment(PointAtTarget)
            .training(lr=3e-3, gamma=0.0, train_batch_size_per_learner=512, minibatch_size=128,
                      num_epochs=4, model={"fcnet_hiddens": [32]})
            .debugging(seed=0).build_algo())
    try:
        first = algo.train()["env_runners"]["episode_return_mean"]
        for _ in range(7):
            result = algo.train()
        assert math.isfinite(result["learners"]["default_policy"]["entropy"])
        assert result["env_runners"]["episode_return_mean"] > first  # it learns to point
        action = algo.compute_single_action(np.array([0.5], np.float32))
        assert action.shape == (1,)  # the mean; env runners rescale [-1, 1] to the bounds
    finally:
        algo.stop()
