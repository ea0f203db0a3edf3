"""minray.data vs Ray Data 2.60 vs single-process pandas, in one run.

    python -m bench.data_compare --ray-python /work/rayvenv/bin/python [--scale 1.0]

Each (backend, workload) runs bench/data_workloads.py in a fresh interpreter;
Ray runs under its own virtual environment's interpreter (never a dependency of
minray).  ``--repeat n`` runs the backends n times, interleaved, and keeps each
one's best time: on a shared, noisy machine the minimum is the least disturbed.  Prints a markdown table of seconds and ratios: "Ray / minray" above
1 means minray is faster; "pandas / minray" above 1 means minray beats one
pandas process.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ROWS = [
    ("map_batches", "map_batches, 1 GiB of float32 rows (2 fused maps + iter_batches)"),
    ("groupby", "groupby(k).aggregate(Count, Sum, Mean), 10M rows, 1000 keys"),
    ("sort", "sort 10M rows by a random float key"),
    ("read_csv", "read_csv of a 500 MB numeric CSV file (materialized)"),
]


def run_one(python, backend, workload, scale, timeout):
    cmd = [python, "-m", "bench.data_workloads", "--backend", backend, "--workload", workload,
           "--scale", str(scale)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout}s"}
    for line in reversed(out.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}


def summarize(runs):
    """Median and best seconds of one backend's runs, with every run listed."""
    times = sorted(r["seconds"] for r in runs if "seconds" in r)
    if not times:
        return {"error": runs[-1].get("error", "failed"), "runs": []}
    listed = [f"{r['seconds']:.2f}" if "seconds" in r else "error" for r in runs]
    return {"seconds": times[len(times) // 2], "best": times[0], "runs": listed}


def _fmt(result):
    if "seconds" not in result:
        return f"error: {result['error']}"
    return f"{result['seconds']:.2f} ({', '.join(result['runs'])})"


def _ratio(a, b, key="seconds"):
    if key not in a or key not in b:
        return "n/a"
    return f"{a[key] / b[key]:.2f}x"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ray-python", default=os.environ.get("MINRAY_BENCH_RAY_PYTHON"))
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--workloads", default=",".join(w for w, _ in ROWS))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    chosen = args.workloads.split(",")
    results = {}
    for workload, _ in ROWS:
        if workload not in chosen:
            continue
        pythons = {"minray": sys.executable, "pandas": sys.executable, "ray": args.ray_python}
        if workload == "read_csv":
            pythons["pandas-1t"] = sys.executable   # pandas 3.1 reads big CSVs threaded
        runs = {backend: [] for backend in pythons}
        load_before = os.getloadavg()[0]
        for _ in range(max(1, args.repeat)):
            for backend, python in pythons.items():
                if python is None:
                    runs[backend].append({"error": "no --ray-python"})
                    continue
                runs[backend].append(run_one(python, backend, workload, args.scale,
                                             args.timeout))
        results[workload] = {b: summarize(rs) for b, rs in runs.items()}
        results[workload]["load"] = (load_before, os.getloadavg()[0])
        print(json.dumps({workload: results[workload]}), file=sys.stderr)
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"Command: `python -m bench.data_compare --ray-python {args.ray_python} "
        f"--scale {args.scale} --repeat {args.repeat}` (median of {args.repeat} interleaved "
        f"runs, every run in brackets)",
        "",
        "| workload | minray s | Ray Data 2.60 s | pandas (1 process) s | Ray / minray | "
        "pandas / minray |",
        "|---|---|---|---|---|---|",
    ]
    for workload, title in ROWS:
        if workload not in results:
            continue
        r = results[workload]
        lines.append(f"| {title} | {_fmt(r['minray'])} | {_fmt(r['ray'])} | "
                     f"{_fmt(r['pandas'])} | {_ratio(r['ray'], r['minray'])} | "
                     f"{_ratio(r['pandas'], r['minray'])} |")
    lines.append("")
    for workload, title in ROWS:
        r = results.get(workload, {})
        if "pandas-1t" in r:
            lines.append(f"- {workload}: pandas with one thread (mode.max_threads=1): "
                         f"{_fmt(r['pandas-1t'])} s; pandas one thread / minray "
                         f"{_ratio(r['pandas-1t'], r['minray'])}")
    for workload, title in ROWS:
        if workload in results:
            r = results[workload]
            lines.append(f"- {workload}: best of {args.repeat}: Ray / minray "
                         f"{_ratio(r['ray'], r['minray'], 'best')}, pandas / minray "
                         f"{_ratio(r['pandas'], r['minray'], 'best')}; load average "
                         f"{r['load'][0]:.1f} -> {r['load'][1]:.1f}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
