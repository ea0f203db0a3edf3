"""Chapter 4 of "Learning Ray" with minray.rllib: the code of docs/tutorials/rllib.md.

    python docs/examples/ch04_rllib.py        # about 30 s on 2 CPUs
"""
import os
import tempfile

import gymnasium as gym
import numpy as np
import torch

import minray as ray
from minray import tune
from minray.rllib.algorithms.algorithm import Algorithm
from minray.rllib.algorithms.dqn import DQNConfig
from minray.rllib.algorithms.ppo import PPOConfig
from minray.rllib.env.multi_agent_env import MultiAgentEnv
from minray.tune.registry import register_env

torch.set_num_threads(1)      # small networks: one thread per process is fastest
ray.init(num_cpus=4)

# --- 1. The maze as a gymnasium environment ---------------------------------
SIZE, MAX_STEPS = 5, 50
MOVES = {0: (1, 0), 1: (0, -1), 2: (-1, 0), 3: (0, 1)}      # down, left, up, right


def one_hot(cell):
    obs = np.zeros(SIZE * SIZE, np.float32)
    obs[cell[0] * SIZE + cell[1]] = 1.0
    return obs


def walk(cell, action):
    dr, dc = MOVES[int(action)]
    return min(max(cell[0] + dr, 0), SIZE - 1), min(max(cell[1] + dc, 0), SIZE - 1)


class Maze(gym.Env):
    """Find the way from the top-left corner to the goal in the bottom-right one."""

    def __init__(self, env_config=None):
        self.observation_space = gym.spaces.Box(0.0, 1.0, (SIZE * SIZE,), np.float32)
        self.action_space = gym.spaces.Discrete(4)
        self.goal = (SIZE - 1, SIZE - 1)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.seeker, self.steps = (0, 0), 0
        return one_hot(self.seeker), {}

    def step(self, action):
        self.seeker = walk(self.seeker, action)
        self.steps += 1
        at_goal = self.seeker == self.goal
        truncated = self.steps >= MAX_STEPS and not at_goal
        return one_hot(self.seeker), float(at_goal), at_goal, truncated, {}


# --- 2. Train DQN on it, evaluate, checkpoint --------------------------------
config = (DQNConfig()
          .environment(Maze)
          .env_runners(num_env_runners=0, rollout_fragment_length=25)
          .reporting(min_sample_timesteps_per_iteration=500)
          .training(lr=2e-3, train_batch_size_per_learner=64, n_step=3,
                    training_intensity=8, target_network_update_freq=200,
                    num_steps_sampled_before_learning_starts=200,
                    epsilon=[(0, 1.0), (2000, 0.05)],
                    model={"fcnet_hiddens": [64]}, hiddens=[64])
          .evaluation(evaluation_duration=5)
          .debugging(seed=3))
algo = config.build_algo()
for i in range(8):
    result = algo.train()
    print(f"DQN iteration {result['training_iteration']}: "
          f"mean return {result['env_runners']['episode_return_mean']:.2f}, "
          f"mean length {result['env_runners']['episode_len_mean']:.1f}")
print("evaluation:", algo.evaluate()["env_runners"]["episode_len_mean"], "steps to the goal")

checkpoint = algo.save_to_path(os.path.join(tempfile.mkdtemp(), "maze_dqn"))
algo.stop()
restored = Algorithm.from_checkpoint(checkpoint)

env = Maze()
obs, _ = env.reset()
done, steps = False, 0
while not done:
    action = restored.compute_single_action(obs)
    obs, reward, terminated, truncated, _ = env.step(action)
    steps, done = steps + 1, terminated or truncated
print(f"restored policy reaches the goal: {bool(reward)} in {steps} steps")
q_values = restored.get_module().forward_inference({"obs": torch.eye(SIZE * SIZE)})["qf_preds"]
print("greedy action per cell:\n", q_values.argmax(-1).reshape(SIZE, SIZE).numpy())
restored.stop()

# --- 3. PPO on env-runner actors, the env registered by name -----------------
register_env("maze", lambda env_config: Maze(env_config))
ppo = (PPOConfig()
       .environment("maze")
       .env_runners(num_env_runners=1, num_envs_per_env_runner=4)
       .training(lr=3e-3, train_batch_size_per_learner=1000, minibatch_size=250,
                 num_epochs=6, gamma=0.9, entropy_coeff=0.01, model={"fcnet_hiddens": [32]})
       .debugging(seed=1)
       .build_algo())
for _ in range(4):
    result = ppo.train()
print("PPO on an env-runner actor:", result["env_runners"]["episode_return_mean"],
      "mean return after", result["num_env_steps_sampled_lifetime"], "steps")
ppo.stop()


# --- 4. Two seekers, two policies ---------------------------------------------
class TwoSeekers(MultiAgentEnv):
    """Seeker 1 starts bottom-left, seeker 2 top-right; both head for the goal."""

    def __init__(self, env_config=None):
        super().__init__()
        self.possible_agents = [1, 2]
        self.agents = [1, 2]
        self.observation_spaces = {a: gym.spaces.Box(0.0, 1.0, (SIZE * SIZE,), np.float32)
                                   for a in self.agents}
        self.action_spaces = {a: gym.spaces.Discrete(4) for a in self.agents}

    def reset(self, *, seed=None, options=None):
        self.cells, self.agents, self.steps = {1: (SIZE - 1, 0), 2: (0, SIZE - 1)}, [1, 2], 0
        return {a: one_hot(c) for a, c in self.cells.items()}, {}

    def step(self, action_dict):
        self.steps += 1
        obs, rewards, terminateds = {}, {}, {}
        for agent, action in action_dict.items():
            self.cells[agent] = walk(self.cells[agent], action)
            done = self.cells[agent] == (SIZE - 1, SIZE - 1)
            obs[agent] = one_hot(self.cells[agent])
            rewards[agent], terminateds[agent] = float(done), done
        self.agents = [a for a in self.agents if not terminateds[a]]
        terminateds["__all__"] = not self.agents
        truncateds = {"__all__": self.steps >= MAX_STEPS and bool(self.agents)}
        return obs, rewards, terminateds, truncateds, {}


multi = (PPOConfig()
         .environment(TwoSeekers)
         .training(lr=3e-3, train_batch_size_per_learner=1000, minibatch_size=250,
                   num_epochs=6, gamma=0.9, entropy_coeff=0.01, model={"fcnet_hiddens": [32]})
         .multi_agent(policies={"policy_1", "policy_2"},
                      policy_mapping_fn=lambda agent_id, episode, **kwargs: f"policy_{agent_id}")
         .debugging(seed=1)
         .build_algo())
for _ in range(6):
    result = multi.train()
print("per-policy mean returns:", result["env_runners"]["module_episode_returns_mean"])
multi.stop()

# --- 5. Tune runs algorithms by name ------------------------------------------
grid = tune.Tuner(
    "PPO",
    param_space=PPOConfig().environment(Maze).training(
        lr=tune.grid_search([1e-3, 3e-3]), train_batch_size_per_learner=500,
        minibatch_size=250, num_epochs=3, model={"fcnet_hiddens": [16]}),
    run_config=tune.RunConfig(stop={"training_iteration": 2}, verbose=0),
).fit()
for r in grid:
    print("lr", r.config["lr"], "->", r.metrics["env_runners"]["episode_return_mean"])

ray.shutdown()
