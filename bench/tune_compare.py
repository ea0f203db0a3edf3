"""minray.tune vs Ray Tune 2.60, measured in one run on one machine.

    python -m bench.tune_compare [--ray-python /work/rayvenv/bin/python] [--repeat 1]

Each backend runs bench/tune_workloads.py in its own interpreter (Ray is never
a dependency of minray); the table gives both figures and their ratio.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

ROWS = [
    ("asha_200_trials", "200 trials of a trivial function, ASHA (wall time of fit())", False,
     ">= 5x less than Ray"),
    ("asha_200_trials_reuse_actors", "the same, both with TuneConfig(reuse_actors=True)", False,
     ""),
    ("results_per_second", "results/s from 8 concurrent trials (8 x 1,000 reports)", True,
     ">= 1,000/s"),
]


def run_backend(python, backend, timeout=1200):
    cmd = [python, "-m", "bench.tune_workloads", "--backend", backend]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    figures = {}
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            figures[row["workload"]] = row
    if out.returncode != 0 and not figures:
        tail = (out.stderr.strip().splitlines() or ["failed"])[-1]
        return {"error": tail}
    return figures


def find_ray_python(arg):
    for cand in (arg, os.environ.get("MINRAY_BENCH_RAY_PYTHON"),
                 os.path.join(ROOT, "..", "rayvenv", "bin", "python")):
        if cand and os.path.exists(cand):
            check = subprocess.run([cand, "-c", "import ray.tune, ray; print(ray.__version__)"],
                                   capture_output=True, text=True)
            if check.returncode == 0:
                return os.path.abspath(cand), check.stdout.strip()
    return None, None


def fmt(value, unit):
    if value is None:
        return "n/a"
    return f"{value:.2f} s" if unit == "s" else f"{value:,.0f}/s"


def best(runs, name, higher):
    values = [r[name]["value"] for r in runs if name in r]
    if not values:
        return None, ""
    unit = next(r[name]["unit"] for r in runs if name in r)
    return (max(values) if higher else min(values)), unit


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ray-python", default=None)
    parser.add_argument("--repeat", type=int, default=1, help="runs per backend (best kept)")
    args = parser.parse_args(argv)
    ray_python, ray_version = find_ray_python(args.ray_python)
    runs = {"minray": [], "ray": []}
    for _ in range(args.repeat):
        for backend, python in (("minray", sys.executable), ("ray", ray_python)):
            if python is None:
                continue
            print(f"  running {backend} ...", file=sys.stderr, flush=True)
            result = run_backend(python, backend)
            if "error" in result:
                print(f"  {backend} failed: {result['error']}", file=sys.stderr)
            else:
                runs[backend].append(result)
    lines = [f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
             f"{platform.python_version()}, Ray {ray_version or 'not installed'}; "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
             f"`python -m bench.tune_compare` (init(num_cpus=8), best of {args.repeat}).",
             "",
             "| figure | minray | Ray Tune 2.60 | minray vs Ray | target |",
             "|---|---|---|---|---|"]
    for name, title, higher, target in ROWS:
        mv, unit = best(runs["minray"], name, higher)
        rv, runit = best(runs["ray"], name, higher)
        unit = unit or runit
        ratio = "n/a"
        if mv and rv:
            ratio = f"{mv / rv:.1f}x more" if higher else f"{rv / mv:.1f}x less"
        lines.append(f"| {title} | {fmt(mv, unit)} | {fmt(rv, unit)} | {ratio} | {target} |")
    table = "\n".join(lines)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
