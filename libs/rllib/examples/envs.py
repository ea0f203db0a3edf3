"""The "Learning Ray" maze as gymnasium and multi-agent environments.

    from minray.rllib.examples.envs import MazeEnv, MultiAgentMaze

A seeker starts in a corner of a ``size`` x ``size`` grid and walks (down,
left, up, right) to the goal in the opposite corner: reward 1 there (the
episode or the agent is done), 0 elsewhere; walls keep it in place and an
episode is truncated after ``max_steps``.  Observations are one-hot cells.
"""

import gymnasium as gym
import numpy as np

from ..env.multi_agent_env import MultiAgentEnv

MOVES = ((1, 0), (0, -1), (-1, 0), (0, 1))  # down, left, up, right


def _move(cell, action, size):
    dr, dc = MOVES[int(action)]
    return min(max(cell[0] + dr, 0), size - 1), min(max(cell[1] + dc, 0), size - 1)


def _one_hot(cell, size):
    obs = np.zeros(size * size, np.float32)
    obs[cell[0] * size + cell[1]] = 1.0
    return obs


class MazeEnv(gym.Env):
    """Single seeker from (0, 0) to (size-1, size-1); ``env_config``: size, max_steps."""

    def __init__(self, config=None):
        config = config or {}
        self.size = int(config.get("size", 5))
        self.max_steps = int(config.get("max_steps", 50))
        self.observation_space = gym.spaces.Box(0.0, 1.0, (self.size ** 2,), np.float32)
        self.action_space = gym.spaces.Discrete(4)
        self.goal = (self.size - 1, self.size - 1)
        self.cell, self.steps = (0, 0), 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.cell, self.steps = (0, 0), 0
        return _one_hot(self.cell, self.size), {}

    def step(self, action):
        self.cell = _move(self.cell, action, self.size)
        self.steps += 1
        terminated = self.cell == self.goal
        truncated = self.steps >= self.max_steps and not terminated
        return _one_hot(self.cell, self.size), float(terminated), terminated, truncated, {}


class MultiAgentMaze(MultiAgentEnv):
    """Seekers 1 (bottom-left) and 2 (top-right) race to the bottom-right goal."""

    def __init__(self, config=None):
        super().__init__()
        config = config or {}
        self.size = int(config.get("size", 5))
        self.max_steps = int(config.get("max_steps", 50))
        self.possible_agents = [1, 2]
        self.agents = list(self.possible_agents)
        space = gym.spaces.Box(0.0, 1.0, (self.size ** 2,), np.float32)
        self.observation_spaces = {a: space for a in self.possible_agents}
        self.action_spaces = {a: gym.spaces.Discrete(4) for a in self.possible_agents}
        self.goal = (self.size - 1, self.size - 1)

    def reset(self, *, seed=None, options=None):
        self.cells = {1: (self.size - 1, 0), 2: (0, self.size - 1)}
        self.agents, self.steps = list(self.possible_agents), 0
        return {a: _one_hot(c, self.size) for a, c in self.cells.items()}, {}

    def step(self, action_dict):
        self.steps += 1
        obs, rewards, terminateds, truncateds = {}, {}, {}, {}
        for agent, action in action_dict.items():
            self.cells[agent] = _move(self.cells[agent], action, self.size)
            done = self.cells[agent] == self.goal
            obs[agent] = _one_hot(self.cells[agent], self.size)
            rewards[agent], terminateds[agent] = float(done), done
        self.agents = [a for a in self.agents if not terminateds.get(a, False)]
        terminateds["__all__"] = not self.agents
        truncateds["__all__"] = self.steps >= self.max_steps and bool(self.agents)
        return obs, rewards, terminateds, truncateds, {}


def greedy_steps_to_goal(choose_action, env=None, limit=50):
    """Steps a greedy ``choose_action(obs)`` needs to reach the goal (None if it never does)."""
    env = env or MazeEnv({"max_steps": limit})
    obs, _ = env.reset()
    for step in range(1, limit + 1):
        obs, reward, terminated, truncated, _ = env.step(choose_action(obs))
        if terminated:
            return step
        if truncated:
            return None
    return None


__all__ = ["MazeEnv", "MultiAgentMaze", "greedy_steps_to_goal"]
