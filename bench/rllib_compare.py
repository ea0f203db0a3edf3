"""Wall time for PPO to reach mean return 450 on CartPole-v1: minray vs RLlib 2.60 vs SB3.

    python -m bench.rllib_compare [--repeat 1] [--seed 0]
        [--ray-python /work/rayvenv/bin/python] [--sb3-python /work/sb3venv/bin/python]

Each run is a fresh interpreter running bench/rllib_workloads.py (neither Ray
nor Stable-Baselines3 is a dependency of minray); the backends alternate within
each repeat, all with the same seed and PPO settings, and the table lists every
run and the medians.  Targets: faster than RLlib, within 1.5x of SB3.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BACKENDS = ("minray", "ray", "sb3")


def find_python(arg, env_var, default, probe):
    for cand in (arg, os.environ.get(env_var), default):
        if cand and os.path.exists(cand):
            check = subprocess.run([cand, "-c", probe], capture_output=True, text=True)
            if check.returncode == 0:
                return os.path.abspath(cand), check.stdout.strip()
    return None, None


def run_once(python, backend, seed, timeout=1200):
    cmd = [python, "-m", "bench.rllib_workloads", "--backend", backend, "--seed", str(seed)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"backend": backend, "error": f"timed out after {timeout}s"}
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
    return {"backend": backend, "error": tail}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ray-python", default=None)
    parser.add_argument("--sb3-python", default=None)
    args = parser.parse_args(argv)
    pythons = {"minray": (sys.executable, "this interpreter")}
    ray_py, ray_v = find_python(args.ray_python, "MINRAY_BENCH_RAY_PYTHON",
                                os.path.join(ROOT, "..", "rayvenv", "bin", "python"),
                                "import ray.rllib, ray; print(ray.__version__)")
    sb3_py, sb3_v = find_python(args.sb3_python, "MINRAY_BENCH_SB3_PYTHON",
                                os.path.join(ROOT, "..", "sb3venv", "bin", "python"),
                                "import stable_baselines3 as s; print(s.__version__)")
    if ray_py:
        pythons["ray"] = (ray_py, f"ray {ray_v}")
    if sb3_py:
        pythons["sb3"] = (sb3_py, f"stable-baselines3 {sb3_v}")
    runs = {b: [] for b in pythons}
    for rep in range(args.repeat):
        order = list(pythons)[rep % len(pythons):] + list(pythons)[:rep % len(pythons)]
        for backend in order:
            row = run_once(pythons[backend][0], backend, args.seed)
            runs[backend].append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    print(f"PPO on CartPole-v1 to mean return 450 (last 100 episodes), seed {args.seed}, "
          f"{os.cpu_count()} CPUs, {platform.python_version()}")
    print("| backend | runs (s; env steps) | median s | ratio to minray |")
    print("|---|---|---|---|")
    medians = {}
    for backend, rows in runs.items():
        ok = [r for r in rows if r.get("reached")]
        cells = ", ".join(f"{r['seconds']:.1f} ({r['env_steps']:,})" if "seconds" in r
                          else r["error"] for r in rows)
        medians[backend] = statistics.median(r["seconds"] for r in ok) if ok else None
        base = medians.get("minray")
        ratio = (f"{medians[backend] / base:.2f}x" if medians[backend] and base else "n/a")
        med = f"{medians[backend]:.1f}" if medians[backend] else "not reached"
        print(f"| {pythons[backend][1] if backend != 'minray' else 'minray'} | {cells} | "
              f"{med} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
