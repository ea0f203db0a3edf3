"""``MultiAgentEnv``: several agents in one environment, everything keyed by agent id.

    class Race(MultiAgentEnv):
        def __init__(self, config=None):
            super().__init__()
            self.possible_agents = self.agents = [1, 2]
            self.observation_spaces = {a: Box(0, 1, (4,)) for a in self.agents}
            self.action_spaces = {a: Discrete(2) for a in self.agents}
        def reset(self, *, seed=None, options=None):
            return {a: obs_of(a) for a in self.agents}, {}
        def step(self, action_dict):          # only agents that got an obs act
            ...
            return obs, rewards, terminateds, truncateds, infos   # dicts per agent

``terminateds["__all__"]`` / ``truncateds["__all__"]`` end the episode.  An agent
whose own ``terminateds[agent]`` is True gets no further observation.
"""

import gymnasium as gym


class MultiAgentEnv:
    """Base class of multi-agent environments (RLlib's new-stack API)."""

    observation_space = None
    action_space = None

    def __init__(self):
        if not hasattr(self, "possible_agents"):
            self.possible_agents = []
        if not hasattr(self, "agents"):
            self.agents = []
        if not hasattr(self, "observation_spaces"):
            self.observation_spaces = {}
        if not hasattr(self, "action_spaces"):
            self.action_spaces = {}

    def reset(self, *, seed=None, options=None):
        """Return ``(obs_dict, info_dict)``."""
        raise TypeError(f"{type(self).__name__} must define reset(*, seed=None, options=None) "
                        "returning (obs_dict, info_dict).")

    def step(self, action_dict):
        """Return ``(obs, rewards, terminateds, truncateds, infos)``, each a dict by agent id."""
        raise TypeError(f"{type(self).__name__} must define step(action_dict) returning "
                        "(obs, rewards, terminateds, truncateds, infos) dicts.")

    def get_observation_space(self, agent_id):
        if self.observation_spaces and agent_id in self.observation_spaces:
            return self.observation_spaces[agent_id]
        if isinstance(self.observation_space, gym.spaces.Dict) and \
                agent_id in self.observation_space.spaces:
            return self.observation_space[agent_id]
        if self.observation_space is not None:
            return self.observation_space
        raise ValueError(f"{type(self).__name__} has no observation space for agent "
                         f"{agent_id!r}: set self.observation_spaces = {{agent_id: space}}.")

    def get_action_space(self, agent_id):
        if self.action_spaces and agent_id in self.action_spaces:
            return self.action_spaces[agent_id]
        if isinstance(self.action_space, gym.spaces.Dict) and agent_id in self.action_space.spaces:
            return self.action_space[agent_id]
        if self.action_space is not None:
            return self.action_space
        raise ValueError(f"{type(self).__name__} has no action space for agent {agent_id!r}: "
                         "set self.action_spaces = {agent_id: space}.")

    @property
    def num_agents(self):
        return len(self.agents)

    @property
    def max_num_agents(self):
        return len(self.possible_agents)

    def render(self):
        return None

    def close(self):
        pass


__all__ = ["MultiAgentEnv"]
