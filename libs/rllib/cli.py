"""``minray rllib ...``: train an algorithm on an env, or evaluate a checkpoint.

    minray rllib train --algo PPO --env CartPole-v1 \\
        --stop '{"num_env_steps_sampled_lifetime": 100000}' [--config '{"lr": 0.001}']
    minray rllib evaluate CHECKPOINT [--episodes 10]

``train`` prints one line per iteration, stops when any ``--stop`` metric
reaches its value (nested keys as ``env_runners/episode_return_mean``), saves
a checkpoint and prints its path.  Both start a local runtime unless
``--address`` names a running one.
"""

import json
import sys
import time

DEFAULT_STOP = '{"num_env_steps_sampled_lifetime": 100000}'


def add_parser(sub):
    p = sub.add_parser("rllib", help="train / evaluate reinforcement-learning algorithms")
    rsub = p.add_subparsers(dest="rllib_command", required=True)
    t = rsub.add_parser("train", help="train an algorithm; save a checkpoint")
    t.add_argument("--algo", "--run", dest="algo", required=True, help="PPO, DQN or SAC")
    t.add_argument("--env", required=True, help="a gymnasium id such as CartPole-v1")
    t.add_argument("--stop", default=DEFAULT_STOP, help="JSON {metric: value}")
    t.add_argument("--config", default="{}", help="JSON of config settings (lr, gamma, ...)")
    t.add_argument("--num-env-runners", type=int, default=None,
                   help="env-runner actors (default: the algorithm's own)")
    t.add_argument("--seed", type=int, default=None, help="seed for a reproducible run")
    t.add_argument("--checkpoint-dir", default=None, help="where to save (default: a temp dir)")
    t.add_argument("--address", default=None, help="a cluster to join (default: a local runtime)")
    t.set_defaults(fn=cmd_train)
    e = rsub.add_parser("evaluate", help="run episodes with a checkpoint; print mean return")
    e.add_argument("checkpoint", help="a checkpoint folder written by `minray rllib train`")
    e.add_argument("--episodes", type=int, default=10, help="episodes to run")
    e.add_argument("--address", default=None, help="a cluster to join (default: a local runtime)")
    e.set_defaults(fn=cmd_evaluate)
    return p


def lookup(result, key):
    """``"env_runners/episode_return_mean"`` -> the nested value (None if absent)."""
    value = result
    for part in key.split("/"):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def should_stop(result, stop):
    """Pure: has any stop metric reached its target?"""
    for key, target in stop.items():
        value = lookup(result, key)
        if value is not None and value == value and value >= target:
            return True
    return False


def _json_arg(text, what):
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise SystemExit(f"--{what} must be JSON such as {DEFAULT_STOP}: {error}")
    if not isinstance(value, dict):
        raise SystemExit(f"--{what} must be a JSON object, got {text!r}")
    return value


def _init(address):
    import minray
    if not minray.is_initialized():
        minray.init(address=address) if address else minray.init()


def cmd_train(args):
    stop = _json_arg(args.stop, "stop")
    overrides = _json_arg(args.config, "config")
    import torch

    import minray
    from .algorithms.registry import get_algorithm_class
    config = get_algorithm_class(args.algo, return_config=True)
    if config is None:
        raise SystemExit(f"unknown --algo {args.algo!r}: use PPO, DQN or SAC")
    torch.set_num_threads(1)
    config.update_from_dict(overrides).environment(args.env)
    if args.num_env_runners is not None:
        config.env_runners(num_env_runners=args.num_env_runners)
    if args.seed is not None:
        config.debugging(seed=args.seed)
    _init(args.address)
    algo = config.build_algo()
    start = time.time()
    try:
        while True:
            result = algo.train()
            runners = result["env_runners"]
            print(f"iter {result['training_iteration']:4d}  "
                  f"steps {result['num_env_steps_sampled_lifetime']:8d}  "
                  f"return {runners['episode_return_mean']:8.2f}  "
                  f"len {runners['episode_len_mean']:7.1f}  "
                  f"time {time.time() - start:7.1f}s", flush=True)
            if should_stop(result, stop):
                break
        path = algo.save_to_path(args.checkpoint_dir)
        print(f"checkpoint saved to {path}")
    finally:
        algo.stop()
        minray.shutdown()
    return 0


def cmd_evaluate(args):
    import torch

    import minray
    from .algorithms.algorithm import Algorithm
    torch.set_num_threads(1)
    _init(args.address)
    try:
        algo = Algorithm.from_checkpoint(args.checkpoint)
        try:
            algo.config.evaluation_duration = args.episodes
            algo.config.evaluation_duration_unit = "episodes"
            metrics = algo.evaluate()["env_runners"]
        finally:
            algo.stop()
    finally:
        minray.shutdown()
    print(f"episodes {metrics['num_episodes']}  mean return {metrics['episode_return_mean']:.2f}"
          f"  mean length {metrics['episode_len_mean']:.1f}")
    return 0


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(prog="minray")
    add_parser(parser.add_subparsers(dest="command", required=True))
    ns = parser.parse_args()
    sys.exit(ns.fn(ns))
