"""SAC learns a continuous control task (a tanh-Gaussian policy, actions rescaled to the
env's bounds) and, with a categorical policy, the discrete maze."""
import gymnasium as gym
import numpy as np

from minray.rllib.algorithms.sac import SACConfig
from minray.rllib.examples.envs import MazeEnv, greedy_steps_to_goal


class PointAtTarget(gym.Env):
    """One-step episodes: observe a target in [-1, 1], act in [-3, 3];
    reward -|action - 2 * target|."""
    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Box(-3.0, 3.0, (1,), np.float32)

    def __init__(self, config=None):
        self.rng = np.random.default_rng(0)

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.target = self.rng.uniform(-1, 1)
        return np.array([self.target], np.float32), {}

    def step(self, action):
        assert self.action_space.contains(action), action
        reward = -abs(float(action[0]) - 2 * self.target)
        return np.array([self.target], np.float32), reward, True, False, {}


def test_sac_learns_continuous_control():
    config = (SACConfig().environment(PointAtTarget)
              .env_runners(rollout_fragment_length=8)
              .reporting(min_sample_timesteps_per_iteration=400)
              .training(actor_lr=3e-3, critic_lr=3e-3, alpha_lr=3e-3, gamma=0.0,
                        train_batch_size_per_learner=64, training_intensity=4,
                        num_steps_sampled_before_learning_starts=200, initial_alpha=0.1,
                        model={"fcnet_hiddens": [32, 32]})
              .debugging(seed=0))
    algo = config.build_algo()
    try:
        targets = np.linspace(-0.9, 0.9, 7)

        def errors():
            actions = [algo.compute_single_action(np.array([x], np.float32)) for x in targets]
            # greedy actions live in [-1, 1]; the env sees them rescaled to [-3, 3]
            return [abs(3 * float(a[0]) - 2 * x) for a, x in zip(actions, targets)]
        for _ in range(8):
            result = algo.train()
            if max(errors()) < 0.4:
                break
        learner = result["learners"]["default_policy"]
        assert np.isfinite(learner["qf_loss"]) and learner["alpha_value"] > 0
        assert max(errors()) < 0.4, errors()  # a random policy is off by ~1.5 on average
        assert result["env_runners"]["episode_return_mean"] > -0.6
    finally:
        algo.stop()


def test_discrete_sac_learns_the_maze():
    config = (SACConfig().environment(MazeEnv)
              .env_runners(rollout_fragment_length=25)
              .reporting(min_sample_timesteps_per_iteration=500)
              .training(actor_lr=1e-3, critic_lr=2e-3, alpha_lr=1e-3, n_step=3,
                        train_batch_size_per_learner=64, training_intensity=8, initial_alpha=0.1,
                        num_steps_sampled_before_learning_starts=200, tau=0.02,
                        model={"fcnet_hiddens": [64]})
              .debugging(seed=2))
    algo = config.build_algo()
    try:
        for _ in range(10):
            algo.train()
            steps = greedy_steps_to_goal(lambda o: algo.compute_single_action(o))
            if steps == 8:
                break
        assert steps == 8
    finally:
        algo.stop()
