"""Side-by-side comparison: minray vs Ray 2.60 vs multiprocessing.Pool, in one run.

    python -m bench.compare [--ray-python /path/to/venv/bin/python] [--write docs/performance.md]
                            [--baseline-python /path/to/old-minray/venv/bin/python]

With --baseline-python (an older minray in its own venv, e.g. a `git worktree` of
the commit before a change, installed there), that minray takes its turn in the
same alternation on the same workloads, and a before/after table is added: the
way to show a change costs no figure more than a few percent.

Ray is never a dependency of minray: install ``ray==2.60.0`` in a separate
virtual environment and pass its interpreter (or set MINRAY_BENCH_RAY_PYTHON).
Each backend runs each workload in a fresh interpreter (bench/workloads.py),
so runtimes never share a process; throughput workloads start 1.5 s after init
for both backends (steady state; start-up has its own cold-start figure).  Figures are ratios measured in the same
run, on the same machine: the only fair comparison on a shared, noisy box.
"""

import argparse
import importlib.util
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import sysconfig
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS_PY = os.path.join(HERE, "workloads.py")

# (workload, title, higher_is_better, target text)
ROWS = [
    ("single_client_tasks_sync", "sync task round trips (get(f.remote()) loop)", True,
     ">= 10x Ray, >= 50% of Pool.apply"),
    ("single_client_tasks_async", "async tasks (submit 5k, then get all)", True,
     ">= 5x Ray, >= 80% of Pool.apply_async"),
    ("actor_calls_sync", "sync actor calls", True, ">= 10x Ray"),
    ("actor_calls_async", "async actor calls (sync actor)", True, ">= 3x Ray"),
    ("async_actor_calls_async", "async actor calls (async actor)", True, ">= 3x Ray"),
    ("single_client_put_calls", "put of a small object", True, ">= 3x Ray"),
    ("single_client_get_calls", "get of a small object", True, ">= Ray"),
    ("put_large_bandwidth", "put of a 100 MiB numpy array", True,
     ">= 80% of numpy copy bandwidth"),
    ("single_client_wait_1k_refs", "wait on 1,000 refs (incl. submitting them)", True,
     ">= 5x Ray"),
    ("cold_start_seconds", "cold start: interpreter+import+init+first task", False,
     "<= 0.5 s and <= 1/10 of Ray"),
    ("idle_memory_bytes", "memory (USS) of runtime processes, idle", False, "<= 1/5 of Ray"),
]
EXTRA = ["get_large_seconds", "pass_large_to_task_seconds", "million_tasks"]
# Figures whose target is about minray alone (Ray would take many minutes here).
MINRAY_ONLY = {"million_tasks"}


# Whole-runtime figures measured again on the pure-Python twins (MINRAY_NO_EXTENSIONS=1).
TWIN_ROWS = ["single_client_tasks_sync", "single_client_tasks_async", "actor_calls_sync"]


def run_workload(python, backend, workload, timeout=900, twins=False):
    cmd = [python, WORKLOADS_PY, "--backend", backend, "--workload", workload]
    env = dict(os.environ)
    env.pop("MINRAY_NO_EXTENSIONS", None)
    if twins:
        env["MINRAY_NO_EXTENSIONS"] = "1"
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1:] or ["failed"]}
    for line in reversed(out.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {"error": ["no result"]}


def _pool_noop(x=None):
    return x


POOL_ROWS = ("single_client_tasks_sync", "single_client_tasks_async")


def pool_figure(name):
    """The same workload on a fresh multiprocessing.Pool(2): tasks/s."""
    with mp.Pool(2) as pool:
        pool.apply(_pool_noop)
        if name == "single_client_tasks_sync":
            n = 2000
            t = time.perf_counter()
            for _ in range(n):
                pool.apply(_pool_noop)
            return n / (time.perf_counter() - t)
        n = 5000
        t = time.perf_counter()
        rs = [pool.apply_async(_pool_noop) for _ in range(n)]
        for r in rs:
            r.get()
        return n / (time.perf_counter() - t)


def median_run(runs, key=None):
    """The run whose figure is the median of ``runs`` (errors only if all failed),
    with every run's figure kept under "runs"."""
    ok = [r for r in runs if scalar(r, key) is not None]
    if not ok:
        return runs[-1] if runs else None
    ok.sort(key=lambda r: scalar(r, key))
    best = dict(ok[(len(ok) - 1) // 2])
    best["runs"] = [scalar(r, key) for r in ok]
    return best


def scalar(result, key=None):
    if not result or "error" in result:
        return None
    v = result["value"]
    if isinstance(v, dict):
        return v.get(key) if key else None
    return v


def install_warning():
    """Why minray's figures here would not be a user's (cold start most of all), or None."""
    import minray
    why = []
    if os.environ.get("PYTHONDONTWRITEBYTECODE") and \
            not os.path.exists(importlib.util.cache_from_source(minray.__file__)):
        why.append("PYTHONDONTWRITEBYTECODE is set and minray has no cached bytecode, so "
                   "every process compiles it again")
    site = os.path.realpath(sysconfig.get_paths()["purelib"])
    if not os.path.realpath(minray.__file__).startswith(site):
        why.append("minray is an editable install (an import hook in every process)")
    if not why:
        return None
    return ("; ".join(why) + ". Run it from a regular install in its own venv "
            "(see docs/performance.md) for figures a user would see.")


def find_ray_python(arg):
    for cand in (arg, os.environ.get("MINRAY_BENCH_RAY_PYTHON"),
                 os.path.join(os.path.dirname(HERE), "..", "rayvenv", "bin", "python")):
        if cand and os.path.exists(cand):
            check = subprocess.run([cand, "-c", "import ray; print(ray.__version__)"],
                                   capture_output=True, text=True)
            if check.returncode == 0:
                return os.path.abspath(cand), check.stdout.strip()
    return None, None


def fmt(v, unit):
    if v is None:
        return "n/a"
    if unit == "bytes":
        return f"{v / 2**20:.0f} MiB"
    if unit == "s":
        return f"{v:.3f} s"
    if unit == "MiB/s":
        return f"{v:,.0f} MiB/s"
    return f"{v:,.0f}/s"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ray-python", default=None)
    parser.add_argument("--write", default=None, help="write the table to this markdown file")
    parser.add_argument("--skip-million", action="store_true")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each table row per backend, alternating backends; "
                             "the median is reported (default 3)")
    parser.add_argument("--baseline-python", default=None,
                        help="an older minray's interpreter: measured in the same alternation, "
                             "with a before/after table")
    parser.add_argument("--only", default=None,
                        help="comma-separated workload names: run just these rows")
    args = parser.parse_args(argv)
    ray_python, ray_version = find_ray_python(args.ray_python)
    setup_warning = install_warning()
    if setup_warning:
        print("warning: " + setup_warning, file=sys.stderr, flush=True)
    me = sys.executable
    results = {"minray": {}, "ray": {}, "pool": {}, "baseline": {}}
    baseline = args.baseline_python
    names = [r[0] for r in ROWS] + [n for n in EXTRA if not (args.skip_million and
                                                              n == "million_tasks")]
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    table_rows = {r[0] for r in ROWS}
    for name in names:
        key = "uss_bytes" if name == "idle_memory_bytes" else None
        repeat = max(1, args.repeat) if name in table_rows else 1
        runs = {"minray": [], "ray": [], "pool": [], "baseline": []}
        for i in range(repeat):
            sides = [("minray", me), ("ray", ray_python)]
            if baseline and name in table_rows:
                sides.insert(i % 2, ("baseline", baseline))   # before and after take turns
            for backend, python in sides:
                if python is None or (backend == "ray" and name in MINRAY_ONLY):
                    continue
                print(f"  {backend:6s} {name} ({i + 1}/{repeat}) ...", file=sys.stderr,
                      flush=True)
                runs[backend].append(run_workload(
                    python, "minray" if backend == "baseline" else backend, name))
            if name in POOL_ROWS:   # the Pool takes its turn in the same alternation
                runs["pool"].append({"value": pool_figure(name), "unit": "tasks/s"})
        for backend, got in runs.items():
            if got:
                results[backend][name] = median_run(got, key)
    results["minray"]["numpy_copy_bandwidth"] = run_workload(me, "minray", "numpy_copy_bandwidth")
    twins = {}
    for name in TWIN_ROWS if not args.only else []:
        print(f"  twins  {name} ...", file=sys.stderr, flush=True)
        twins[name] = run_workload(me, "minray", name, twins=True)
    pool = {n: scalar(r) for n, r in results["pool"].items()}

    lines = []
    lines.append(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, "
                 f"Python {platform.python_version()}, Ray {ray_version or 'not installed'}; "
                 f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.")
    if setup_warning:
        lines.append("")
        lines.append("Warning: " + setup_warning)
    lines.append("")
    lines.append("| figure | minray | Ray 2.60 | minray / Ray | other reference | target |")
    lines.append("|---|---|---|---|---|---|")
    for name, title, higher, target in ROWS:
        m = results["minray"].get(name)
        r = results["ray"].get(name)
        key = "uss_bytes" if name == "idle_memory_bytes" else None
        mv, rv = scalar(m, key), scalar(r, key)
        unit = (m or {}).get("unit") or (r or {}).get("unit") or ""
        ratio = "n/a"
        if mv and rv:
            ratio = f"{mv / rv:.1f}x" if higher else f"{rv / mv:.1f}x less"
        other = ""
        if pool.get(name):
            other = f"Pool: {fmt(pool[name], unit)} ({mv / pool[name] * 100:.0f}%)" if mv else ""
        if name == "put_large_bandwidth":
            npc = scalar(results["minray"]["numpy_copy_bandwidth"])
            if mv and npc:
                other = f"numpy copy: {fmt(npc, 'MiB/s')} ({mv / npc * 100:.0f}%)"
        if name == "idle_memory_bytes":
            mp_ = (m or {}).get("value", {}) if m and "error" not in m else {}
            rp_ = (r or {}).get("value", {}) if r and "error" not in r else {}
            other = f"processes: {mp_.get('processes', '?')} vs {rp_.get('processes', '?')}"
        if m and "error" in m:
            mv_s = "error: " + " ".join(m["error"])[:60]
        else:
            mv_s = fmt(mv, unit)
        lines.append(f"| {title} | {mv_s} | {fmt(rv, unit)} | {ratio} | {other} | {target} |")
    lines.append("")
    if args.repeat > 1:
        lines.append(f"Each row is the median of {args.repeat} runs per backend, the backends "
                     "alternating; every run's figure:")
        lines.append("")
        for name, title, _, _ in ROWS:
            per = []
            for backend in ("minray", "ray", "pool"):
                res = results[backend].get(name)
                if res and res.get("runs"):
                    unit = res.get("unit", "")
                    per.append(f"{backend} " + ", ".join(fmt(v, unit) for v in res["runs"]))
            if per:
                lines.append(f"- {title}: " + "; ".join(per))
        lines.append("")
    for name in EXTRA:
        for backend in ("minray", "ray"):
            res = results[backend].get(name)
            if res and "error" not in res:
                lines.append(f"- {name} [{backend}]: {json.dumps(res['value'])}")
            elif res:
                lines.append(f"- {name} [{backend}]: error {res['error']}")
    if baseline:
        lines.extend(_before_after(results, baseline))
    lines.append("")
    lines.append("Compiled hot path (`_ext`) against the pure-Python twins "
                 "(MINRAY_NO_EXTENSIONS=1), whole runtime:")
    lines.append("")
    lines.append("| figure | compiled | twins | compiled / twins |")
    lines.append("|---|---|---|---|")
    titles = {r[0]: r[1] for r in ROWS}
    for name in TWIN_ROWS:
        cv, tv = scalar(results["minray"].get(name)), scalar(twins.get(name))
        ratio = f"{cv / tv:.2f}x" if cv and tv else "n/a"
        lines.append(f"| {titles[name]} | {fmt(cv, '')} | {fmt(tv, '')} | {ratio} |")
    lines.append("")
    lines.append("and operation by operation (`python -m bench.ext_micro`, ns per operation):")
    lines.append("")
    from bench import ext_micro
    lines.append(ext_micro.table(ext_micro.measure()))
    table = "\n".join(lines)
    print(table)
    if args.write:
        with open(args.write, "w") as f:
            f.write(_DOC_HEAD + table + "\n" + _DOC_TAIL)
    return 0


def _before_after(results, baseline):
    """The table of this minray against the --baseline-python one (same run)."""
    out = ["", f"This minray against the baseline minray ({baseline}), same run, same "
           "alternation (change: positive is better):", "",
           "| figure | before | after | change |", "|---|---|---|---|"]
    for name, title, higher, _ in ROWS:
        key = "uss_bytes" if name == "idle_memory_bytes" else None
        b, a = results["baseline"].get(name), results["minray"].get(name)
        bv, av = scalar(b, key), scalar(a, key)
        unit = (a or {}).get("unit") or (b or {}).get("unit") or ""
        change = "n/a"
        if bv and av:
            pct = (av / bv - 1) * 100 if higher else (bv / av - 1) * 100
            change = f"{pct:+.1f}%"
        out.append(f"| {title} | {fmt(bv, unit)} | {fmt(av, unit)} | {change} |")
    out.append("")
    for name, title, _, _ in ROWS:
        res = results["baseline"].get(name)
        if res and res.get("runs"):
            out.append(f"- before, {title}: " + ", ".join(fmt(v, res.get("unit", ""))
                                                          for v in res["runs"]))
    return out


_DOC_HEAD = """# Performance

minray against Ray 2.60 and `multiprocessing.Pool`, measured in one run on one machine, each
side installed in its own virtual environment with a regular (not editable) install:
`python3 -m venv ../rayvenv && ../rayvenv/bin/pip install ray==2.60.0 numpy psutil`,
`python3 -m venv ../mrvenv && ../mrvenv/bin/pip install -c constraints.txt .`, then
`../mrvenv/bin/python -m bench.compare --ray-python ../rayvenv/bin/python --write FILE`.
Ratios are the figures to trust: the machine is shared and noisy, so absolute numbers drift
between runs while ratios measured side by side hold.

"""


_DOC_TAIL = """
How to read it: rates are per second (higher is better); cold start and memory are lower-is-
better, and their ratio column says how many times less than Ray. Memory is the unique set
size (USS) of every process the runtime started, three seconds after `init(num_cpus=2)`.
`get_large_seconds` and `pass_large_to_task_seconds` show seconds per call by object size:
flat means zero-copy. The pytest-benchmark suite (`pytest bench/ --benchmark-only`) tracks the
same workloads for regressions.
"""


if __name__ == "__main__":
    sys.exit(main())
