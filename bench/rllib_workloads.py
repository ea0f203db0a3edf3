"""One PPO-on-CartPole run to mean return 450, for one backend (run in its own interpreter).

    python -m bench.rllib_workloads --backend minray|ray|sb3 [--seed 0]

All three use the same PPO settings (SETTINGS), one torch thread, 8 envs
stepped in the driver process, and the same success test: the mean return of
the last 100 finished episodes >= 450.  Prints one JSON line.
"""

import argparse
import json
import time

SETTINGS = dict(num_envs=8, steps_per_env=256, minibatch=256, epochs=10, lr=1e-3, gamma=0.99,
                gae_lambda=0.95, clip=0.2, vf_coeff=0.5, grad_clip=0.5, hiddens=[64, 64])
TARGET = 450.0
MAX_STEPS = 400_000
MAX_SECONDS = 900


def logged_cartpole(env_config=None):
    """CartPole-v1 that appends each finished episode's return to RETURNS.

    Every backend steps its envs in this (the driver) process, so one list sees
    all episodes."""
    import gymnasium as gym

    class EpisodeLog(gym.Wrapper):
        def reset(self, **kwargs):
            self.total = 0.0
            return self.env.reset(**kwargs)

        def step(self, action):
            obs, reward, terminated, truncated, info = self.env.step(action)
            self.total += reward
            if terminated or truncated:
                RETURNS.append(self.total)
            return obs, reward, terminated, truncated, info

    return EpisodeLog(gym.make("CartPole-v1"))


def _rllib_config(PPOConfig, seed):
    s = SETTINGS
    return (PPOConfig().environment("CartPoleLogged")
            .env_runners(num_env_runners=0, num_envs_per_env_runner=s["num_envs"])
            .training(lr=s["lr"], gamma=s["gamma"], lambda_=s["gae_lambda"],
                      train_batch_size_per_learner=s["num_envs"] * s["steps_per_env"],
                      minibatch_size=s["minibatch"], num_epochs=s["epochs"],
                      clip_param=s["clip"], vf_loss_coeff=s["vf_coeff"], grad_clip=s["grad_clip"],
                      vf_clip_param=float("inf"), use_kl_loss=False, entropy_coeff=0.0)
            .debugging(seed=seed))


RETURNS = []  # every finished episode's return, in order (filled by a callback)


def window_mean():
    """The success test for every backend: mean return of the last 100 finished episodes."""
    last = RETURNS[-100:]
    return sum(last) / len(last) if last else 0.0


def _train_loop(algo, start):
    while True:
        result = algo.train()
        ret = window_mean()
        steps = result["num_env_steps_sampled_lifetime"]
        if ret >= TARGET or steps >= MAX_STEPS or time.time() - start > MAX_SECONDS:
            return ret, steps, result["training_iteration"]


def run_minray(seed):
    import minray
    from minray.rllib.algorithms.ppo import PPOConfig
    from minray.tune.registry import register_env
    register_env("CartPoleLogged", logged_cartpole)
    minray.init(num_cpus=2)
    start = time.time()
    config = _rllib_config(PPOConfig, seed).training(model={"fcnet_hiddens": SETTINGS["hiddens"]})
    algo = config.build_algo()
    ret, steps, iters = _train_loop(algo, start)
    seconds = time.time() - start
    algo.stop()
    minray.shutdown()
    return seconds, ret, steps, iters


def run_ray(seed):
    import ray
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.tune.registry import register_env
    register_env("CartPoleLogged", logged_cartpole)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    start = time.time()
    config = _rllib_config(PPOConfig, seed).rl_module(
        model_config={"fcnet_hiddens": SETTINGS["hiddens"], "fcnet_activation": "tanh"})
    algo = config.build_algo()
    ret, steps, iters = _train_loop(algo, start)
    seconds = time.time() - start
    algo.stop()
    ray.shutdown()
    return seconds, ret, steps, iters


def run_sb3(seed):
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from torch import nn
    s = SETTINGS
    start = time.time()

    class StopAtTarget(BaseCallback):
        def _on_step(self):
            return True

        def _on_rollout_end(self):
            if window_mean() >= TARGET or time.time() - start > MAX_SECONDS:
                self.model._stop = True

        def _on_rollout_start(self):
            if getattr(self.model, "_stop", False):
                raise StopIteration

    env = make_vec_env(logged_cartpole, n_envs=s["num_envs"], seed=seed)
    model = PPO("MlpPolicy", env, n_steps=s["steps_per_env"], batch_size=s["minibatch"],
                n_epochs=s["epochs"], learning_rate=s["lr"], gamma=s["gamma"],
                gae_lambda=s["gae_lambda"], clip_range=s["clip"], vf_coef=s["vf_coeff"],
                ent_coef=0.0, max_grad_norm=s["grad_clip"], seed=seed, device="cpu",
                policy_kwargs=dict(net_arch=s["hiddens"], activation_fn=nn.Tanh))
    callback = StopAtTarget()
    try:
        model.learn(total_timesteps=MAX_STEPS, callback=callback)
    except StopIteration:
        pass
    seconds = time.time() - start
    ret = window_mean()
    iters = model.num_timesteps // (s["num_envs"] * s["steps_per_env"])
    return seconds, ret, int(model.num_timesteps), int(iters)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=("minray", "ray", "sb3"), required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import torch
    torch.set_num_threads(1)
    # Run from the importable module, not __main__: Ray pickles the env creator, and a
    # creator from __main__ would travel by value with its own copy of RETURNS.
    from bench import rllib_workloads as mod
    fn = {"minray": mod.run_minray, "ray": mod.run_ray, "sb3": mod.run_sb3}[args.backend]
    seconds, ret, steps, iters = fn(args.seed)
    print(json.dumps({"backend": args.backend, "seed": args.seed, "seconds": round(seconds, 2),
                      "episode_return_mean": round(float(ret), 1), "env_steps": int(steps),
                      "iterations": int(iters), "reached": bool(ret >= TARGET)}), flush=True)


if __name__ == "__main__":
    main()
