"""minray Serve vs Ray Serve 2.60 vs a plain aiohttp server, measured in one run.

    python -m bench.serve_compare [--ray-python /work/rayvenv/bin/python]
                                  [--clients 32] [--duration 5] [--repeat 1]

For each workload (a no-op deployment, and one that awaits 1 ms) every backend
serves from its own interpreter (bench/serve_workloads.py; Ray is never a
dependency of minray), and an aiohttp load client keeps ``--clients``
keep-alive connections busy for ``--duration`` seconds after a 1 s warm-up.
Backends alternate within each repeat, so a busy machine hurts them alike.
The table gives requests/s, p50 and p99 latency, minray/Ray throughput, and the
p50 the proxy adds over plain aiohttp; a last row per backend sends the no-op
from a single client, where p50 is the bare cost of one request's path.
"""

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORKLOADS = ("noop", "sleep1ms")
SINGLE = "noop, 1 client"


@dataclass
class LoadResult:
    backend: str
    workload: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    load_avg: float = 0.0     # the 1-minute load average as the run began (shared boxes)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def drive(url, clients, duration_s, warmup_s=1.0):
    """Closed-loop load: ``clients`` tasks, each one request at a time."""
    import aiohttp
    latencies, errors = [], 0
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        loop = asyncio.get_running_loop()
        start = loop.time()
        measure_from = start + warmup_s
        stop_at = measure_from + duration_s

        async def client():
            nonlocal errors
            while True:
                t0 = loop.time()
                if t0 >= stop_at:
                    return
                try:
                    async with session.get(url) as r:
                        await r.read()
                        ok = r.status == 200
                except aiohttp.ClientError:
                    ok = False
                t1 = loop.time()
                if t0 >= measure_from:
                    if ok:
                        latencies.append(t1 - t0)
                    else:
                        errors += 1
        await asyncio.gather(*[client() for _ in range(clients)])
    latencies.sort()
    n = len(latencies)
    return n, errors, (latencies[n // 2] if n else float("nan")), \
        (latencies[min(n - 1, int(n * 0.99))] if n else float("nan"))


def run_one(python, backend, workload, clients, duration_s):
    port = free_port()
    proc = subprocess.Popen(
        [python, "-m", "bench.serve_workloads", "--backend", backend, "--workload", workload,
         "--port", str(port)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        line = ""
        deadline = time.monotonic() + 180
        while "READY" not in line:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None or time.monotonic() > deadline:
                return None
        load = os.getloadavg()[0]
        n, errors, p50, p99 = asyncio.run(drive(f"http://127.0.0.1:{port}/", clients,
                                                duration_s))
        return LoadResult(backend, workload, n / duration_s, p50 * 1e3, p99 * 1e3, errors, n,
                          load)
    finally:
        try:
            proc.stdin.close()
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def find_ray_python(arg):
    for cand in (arg, os.environ.get("MINRAY_BENCH_RAY_PYTHON"),
                 os.path.join(ROOT, "..", "rayvenv", "bin", "python"), "/work/rayvenv/bin/python"):
        if cand and os.path.exists(cand):
            check = subprocess.run([cand, "-c", "import ray.serve, ray; print(ray.__version__)"],
                                   capture_output=True, text=True)
            if check.returncode == 0:
                return os.path.abspath(cand), check.stdout.strip()
    return None, None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ray-python", default=None)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured per run")
    parser.add_argument("--repeat", type=int, default=1, help="runs per backend (median kept)")
    parser.add_argument("--json", default=None, help="also write every run to this file")
    args = parser.parse_args(argv)
    ray_python, ray_version = find_ray_python(args.ray_python)
    backends = [("minray", sys.executable), ("ray", ray_python), ("plain", sys.executable)]
    runs = []
    configs = [(w, w, args.clients) for w in WORKLOADS] + [(SINGLE, "noop", 1)]
    for _ in range(args.repeat):
        for label, workload, clients in configs:
            for backend, python in backends:
                if python is None:
                    continue
                print(f"  {label}: {backend} ...", file=sys.stderr, flush=True)
                result = run_one(python, backend, workload, clients, args.duration)
                if result is not None:
                    result.workload = label
                    runs.append(result)
                    print(f"    {result.requests_per_s:,.0f} req/s  p50 {result.p50_ms:.2f} ms"
                          f"  p99 {result.p99_ms:.2f} ms  errors {result.errors}"
                          f"  (load {result.load_avg:.1f})",
                          file=sys.stderr, flush=True)
    print(f"\nServe at {args.clients} concurrent clients, {args.duration:g} s per run "
          f"(median of {args.repeat}); {platform.node()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, Ray {ray_version or 'not found'}\n")
    print("| workload | backend | requests/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|")
    med = {}
    for workload in WORKLOADS + (SINGLE,):
        for backend, _ in backends:
            rs = [r for r in runs if r.backend == backend and r.workload == workload]
            if not rs:
                continue
            m = (statistics.median(r.requests_per_s for r in rs),
                 statistics.median(r.p50_ms for r in rs), statistics.median(r.p99_ms for r in rs),
                 sum(r.errors for r in rs))
            med[(workload, backend)] = m
            print(f"| {workload} | {backend} | {m[0]:,.0f} | {m[1]:.2f} | {m[2]:.2f} | {m[3]} |")
    print("\nEvery run, req/s @ p50 ms (load average):")
    for workload in WORKLOADS + (SINGLE,):
        for backend, _ in backends:
            rs = [r for r in runs if r.backend == backend and r.workload == workload]
            if rs:
                print(f"  {workload} {backend}: " + " · ".join(
                    f"{r.requests_per_s:,.0f} @ {r.p50_ms:.2f} ({r.load_avg:.1f})" for r in rs))
    print()
    for workload in WORKLOADS + (SINGLE,):
        mine, ray_, plain = (med.get((workload, b)) for b in ("minray", "ray", "plain"))
        if mine and ray_:
            print(f"{workload}: minray/Ray throughput {mine[0] / ray_[0]:.2f}x (target >= 2x)")
        if mine and plain:
            print(f"{workload}: minray proxy adds {mine[1] - plain[1]:+.2f} ms p50 over plain "
                  f"aiohttp (target < 1 ms)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) for r in runs], f, indent=1)


if __name__ == "__main__":
    main()
