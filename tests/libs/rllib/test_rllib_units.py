"""Pure pieces: GAE, n-step returns, replay, schedules, config round trips."""
import numpy as np
import pytest

from minray.rllib.algorithms.dqn import DQNConfig
from minray.rllib.algorithms.ppo import PPOConfig
from minray.rllib.algorithms.ppo.ppo import gae
from minray.rllib.utils.replay_buffers import PrioritizedReplayBuffer, n_step_transitions
from minray.rllib.utils.schedules import schedule_value


def test_gae_matches_discounted_returns_with_lambda_one():
    rewards = np.array([1.0, 1.0, 1.0, 5.0, 5.0])
    terms = np.array([0, 0, 1, 0, 0], float)
    ends = np.array([0, 0, 1, 0, 1], bool)
    values = np.zeros(5)
    next_values = np.array([0, 0, 0, 0, 10.0])  # the second segment is cut: bootstrap 10
    adv = gae(rewards, values, next_values, terms, ends, gamma=0.5, lambda_=1.0)
    assert adv[:3].tolist() == [1 + 0.5 + 0.25, 1 + 0.5, 1.0]
    assert adv[3:].tolist() == [5 + 0.5 * (5 + 0.5 * 10), 5 + 0.5 * 10]


def test_n_step_stops_at_segment_ends():
    batch = {"obs": np.arange(4.0)[:, None], "new_obs": np.arange(1.0, 5.0)[:, None],
             "actions": np.zeros(4), "rewards": np.array([1.0, 2.0, 3.0, 4.0], np.float32),
             "terminateds": np.array([0, 1, 0, 0], bool),
             "truncateds": np.array([0, 0, 0, 1], bool)}
    out = n_step_transitions(batch, 3, 0.5)
    assert out["rewards"].tolist() == [1 + 0.5 * 2, 2.0, 3 + 0.5 * 4, 4.0]
    assert out["new_obs"][:, 0].tolist() == [2.0, 2.0, 4.0, 4.0]
    assert out["terminateds"].tolist() == [True, True, False, False]
    assert out["discounts"].tolist() == [0.25, 0.5, 0.25, 0.5]


def test_prioritized_replay_prefers_high_priorities_and_weights_them_down():
    buf = PrioritizedReplayBuffer(capacity=100, alpha=1.0, beta=1.0, seed=0)
    buf.add({"x": np.arange(10.0)})
    buf.update_priorities(np.arange(10), np.array([100.0] + [1.0] * 9))
    sample = buf.sample(1000)
    share = np.mean(sample["x"] == 0)
    assert 0.8 < share < 0.96  # 100 / 109
    assert sample["weights"][sample["x"] == 0].max() < sample["weights"][sample["x"] != 0].min()
    assert len(buf) == 10


def test_schedule_interpolates():
    assert schedule_value(0.1, 5) == 0.1
    spec = [(0, 1.0), (100, 0.0)]
    assert schedule_value(spec, 50) == 0.5 and schedule_value(spec, 1000) == 0.0


def test_config_chains_round_trips_and_rejects_unknown_keywords():
    config = (PPOConfig().environment("CartPole-v1", env_config={"a": 1})
              .env_runners(num_env_runners=2, num_envs_per_env_runner=3)
              .training(lr=0.01, lambda_=0.9, model={"fcnet_hiddens": [8]}))
    d = config.to_dict()
    assert d["num_env_runners"] == 2 and d["lambda_"] == 0.9
    assert d["model_config"]["fcnet_hiddens"] == [8]
    assert d["model_config"]["fcnet_activation"] == "tanh"  # defaults kept
    again = PPOConfig.from_dict(d)
    assert again.lr == 0.01 and again.env_config == {"a": 1}
    assert dict(config)["lr"] == 0.01 and config["lambda"] == 0.9  # mapping view (Tune)
    assert config.get_rollout_fragment_length() == 4000 // 6 + 1
    with pytest.raises(TypeError, match="unexpected keyword 'lrr'"):
        PPOConfig().training(lrr=1)
    with pytest.raises(ValueError, match="torch"):
        PPOConfig().framework("tf2")
    assert DQNConfig().replay_buffer_config["capacity"] == 50_000
    assert DQNConfig().training(replay_buffer_config={"capacity": 10}).replay_buffer_config == {
        "type": "PrioritizedEpisodeReplayBuffer", "capacity": 10, "alpha": 0.6, "beta": 0.4}
