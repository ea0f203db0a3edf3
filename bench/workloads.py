"""The benchmark workloads, written once against the Ray API.

Each workload takes a module with Ray's API (``minray`` or ``ray``) and returns
a figure (a rate, seconds or bytes).  ``compare.py`` runs them in a separate
interpreter per backend (Ray lives in its own virtual environment, never as a
dependency of minray) by running this file as a script:

    python bench/workloads.py --backend minray --workload sync_tasks

which prints one JSON line: {"workload": ..., "value": ..., "unit": ...}.
The names follow ``ray microbenchmark``'s cases where one exists.
"""

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

MiB = 1 << 20
SETTLE_S = 1.5   # after init, before a throughput workload starts (see main)


# Rates are measured the way Ray's own microbenchmark measures them (warm up, then several
# time-boxed trials), with shorter boxes: one 0.1-0.2 s burst per process, as these workloads
# used to be, swings 10-20% with a single wake-up and could not tell a 5% change from noise.
WARMUP_S = 0.5
TRIAL_S = 0.5
TRIALS = 5


def _trial_rate(step, units):
    """Run ``step`` (which does ``units`` operations) for WARMUP_S, then in TRIALS boxes of at
    least TRIAL_S each; the median box's rate, operations per second."""
    end = time.perf_counter() + WARMUP_S
    while time.perf_counter() < end:
        step()
    rates = []
    for _ in range(TRIALS):
        done, t = 0, time.perf_counter()
        while True:
            step()
            done += units
            elapsed = time.perf_counter() - t
            if elapsed >= TRIAL_S:
                break
        rates.append(done / elapsed)
    return statistics.median(rates)


def noop(x=None):
    return x


# --------------------------------------------------------------- tasks
def single_client_tasks_sync(ray, n=20):
    """get(f.remote()) in a loop: one task round trip at a time."""
    f = ray.remote(noop)
    ray.get([f.remote() for _ in range(200)])

    def step():
        for _ in range(n):
            ray.get(f.remote())
    return _trial_rate(step, n), "tasks/s"


def single_client_tasks_async(ray, n=5000):
    """Submit n tasks, then get them all."""
    f = ray.remote(noop)
    ray.get([f.remote() for _ in range(500)])
    return _trial_rate(lambda: ray.get([f.remote() for _ in range(n)]), n), "tasks/s"


def million_tasks(ray, n=1_000_000):
    """Submit n trivial tasks, then gather them: rate and driver memory per pending task."""
    import psutil
    f = ray.remote(noop)
    ray.get([f.remote() for _ in range(1000)])
    rss0 = psutil.Process().memory_info().rss
    t = time.perf_counter()
    refs = [f.remote() for _ in range(n)]
    rss1 = psutil.Process().memory_info().rss
    ray.get(refs)
    rate = n / (time.perf_counter() - t)
    return {"rate": rate, "bytes_per_pending_task": (rss1 - rss0) / n}, "tasks/s"


# --------------------------------------------------------------- actors
class _Actor:
    def small_value(self, x=None):
        return b"ok"


class _AsyncActor:
    async def small_value(self, x=None):
        return b"ok"


def actor_calls_sync(ray, n=20):
    a = ray.remote(_Actor).remote()
    ray.get([a.small_value.remote() for _ in range(100)])

    def step():
        for _ in range(n):
            ray.get(a.small_value.remote())
    return _trial_rate(step, n), "calls/s"


def actor_calls_async(ray, n=5000):
    a = ray.remote(_Actor).remote()
    ray.get([a.small_value.remote() for _ in range(100)])
    return _trial_rate(lambda: ray.get([a.small_value.remote() for _ in range(n)]), n), "calls/s"


def async_actor_calls_async(ray, n=5000):
    a = ray.remote(_AsyncActor).remote()
    ray.get([a.small_value.remote() for _ in range(100)])
    return _trial_rate(lambda: ray.get([a.small_value.remote() for _ in range(n)]), n), "calls/s"


# --------------------------------------------------------------- objects
def single_client_put_calls(ray, n=1000):
    value = b"x" * 100

    def step():
        for _ in range(n):
            ray.put(value)
    return _trial_rate(step, n), "puts/s"


def single_client_get_calls(ray, n=1000):
    ref = ray.put(b"x" * 100)

    def step():
        for _ in range(n):
            ray.get(ref)
    return _trial_rate(step, n), "gets/s"


def put_large_bandwidth(ray, size=100 * MiB, reps=5):
    arr = np.random.default_rng(0).random(size // 8)
    ray.get(ray.put(arr))
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        ref = ray.put(arr)
        best = min(best, time.perf_counter() - t)
        del ref
        time.sleep(0.05)
    return size / best / MiB, "MiB/s"


def numpy_copy_bandwidth(ray=None, size=100 * MiB, reps=5):
    arr = np.random.default_rng(0).random(size // 8)
    out = np.empty_like(arr)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        np.copyto(out, arr)
        best = min(best, time.perf_counter() - t)
    return size / best / MiB, "MiB/s"


def get_large_seconds(ray, sizes=(1 * MiB, 10 * MiB, 100 * MiB), reps=20):
    """Seconds per get of a numpy array, by size: flat if get is zero-copy."""
    out = {}
    for size in sizes:
        ref = ray.put(np.ones(size // 8))
        ray.get(ref)
        t = time.perf_counter()
        for _ in range(reps):
            ray.get(ref)
        out[f"{size // MiB}MiB"] = (time.perf_counter() - t) / reps
    return out, "s"


def _array_sum_first(a):
    return float(a[0])


def pass_large_to_task_seconds(ray, sizes=(1 * MiB, 100 * MiB), reps=10):
    f = ray.remote(_array_sum_first)
    out = {}
    for size in sizes:
        ref = ray.put(np.ones(size // 8))
        ray.get(f.remote(ref))
        t = time.perf_counter()
        for _ in range(reps):
            ray.get(f.remote(ref))
        out[f"{size // MiB}MiB"] = (time.perf_counter() - t) / reps
    return out, "s"


def single_client_wait_1k_refs(ray):
    f = ray.remote(noop)

    def step():
        refs = [f.remote() for _ in range(1000)]
        ray.wait(refs, num_returns=1000)
    # Submitting is part of it in Ray's microbenchmark too; report waits/s.
    return _trial_rate(step, 1), "waits/s"


# --------------------------------------------------------------- process-level
def cold_start_seconds(ray_module_name, python=sys.executable):
    """New interpreter: import, init, first task result, in one process."""
    code = (
        "import time; t=time.perf_counter()\n"
        f"import {ray_module_name} as ray\n"
        "ray.init(num_cpus=2, include_dashboard=False)\n"
        "@ray.remote\n"
        "def f(): return 1\n"
        "assert ray.get(f.remote()) == 1\n"
        "print(time.perf_counter()-t)\n"
        "ray.shutdown()\n"
    )
    best = float("inf")
    for _ in range(3):
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-2000:])
        best = min(best, float(out.stdout.strip().splitlines()[-1]))
    return best, "s"


def idle_memory_bytes(ray, settle_s=3.0):
    """RSS of every process the runtime started (children of the driver), idle after init."""
    import psutil
    time.sleep(settle_s)
    me = psutil.Process()
    procs = me.children(recursive=True)
    total = 0
    for p in procs:
        try:
            total += p.memory_full_info().uss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return {"uss_bytes": total, "processes": len(procs)}, "bytes"


WORKLOADS = {
    "single_client_tasks_sync": single_client_tasks_sync,
    "single_client_tasks_async": single_client_tasks_async,
    "actor_calls_sync": actor_calls_sync,
    "actor_calls_async": actor_calls_async,
    "async_actor_calls_async": async_actor_calls_async,
    "single_client_put_calls": single_client_put_calls,
    "single_client_get_calls": single_client_get_calls,
    "put_large_bandwidth": put_large_bandwidth,
    "numpy_copy_bandwidth": numpy_copy_bandwidth,
    "get_large_seconds": get_large_seconds,
    "pass_large_to_task_seconds": pass_large_to_task_seconds,
    "single_client_wait_1k_refs": single_client_wait_1k_refs,
    "idle_memory_bytes": idle_memory_bytes,
    "million_tasks": million_tasks,
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", required=True)
    parser.add_argument("--workload", required=True)
    parser.add_argument("--num-cpus", type=int, default=2)
    args = parser.parse_args()
    if args.workload == "cold_start_seconds":
        value, unit = cold_start_seconds(args.backend)
        print(json.dumps({"workload": args.workload, "value": value, "unit": unit}))
        return
    ray = importlib.import_module(args.backend)
    kwargs = {"num_cpus": args.num_cpus}
    if args.backend == "ray":
        kwargs.update(include_dashboard=False, log_to_driver=False)
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    ray.init(**kwargs)
    # Steady state, for both backends alike: what a runtime does once after start-up
    # (Ray prestarts workers; minray's worker template loads numpy when idle) is the
    # cold-start figure's business, not the throughput figures'.
    if args.workload != "idle_memory_bytes":
        time.sleep(SETTLE_S)
    try:
        value, unit = WORKLOADS[args.workload](ray)
    finally:
        ray.shutdown()
    print(json.dumps({"workload": args.workload, "value": value, "unit": unit}))


if __name__ == "__main__":
    main()
