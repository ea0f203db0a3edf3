"""What recording task events costs the hot path: sync task and actor round trips,
with the CPU time of every process of the runtime (driver, node manager, workers).

    PYTHONPATH=<a copy of one build> python -m bench.observability_overhead
    python -m bench.observability_overhead --micro   # the hooks alone, min of repeats

CPU microseconds per call, summed over all the runtime's processes, is the steadier
figure on a shared machine (throughput moves with other people's load); run two
builds alternately and compare medians.
"""
import json
import sys
import time

import psutil


def _cpu(procs):
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def measure(n=3000):
    import minray as ray
    ray.init(num_cpus=2)

    @ray.remote
    def f():
        return 1

    @ray.remote
    class A:
        def m(self):
            return 1

    a = A.remote()
    ray.get([f.remote() for _ in range(50)])
    ray.get([a.m.remote() for _ in range(50)])
    time.sleep(1.0)
    me = psutil.Process()
    procs = [me] + me.children(recursive=True)
    out = {}
    for name, call in (("task_sync", lambda: ray.get(f.remote())),
                       ("actor_sync", lambda: ray.get(a.m.remote()))):
        c0, t0 = _cpu(procs), time.perf_counter()
        for _ in range(n):
            call()
        wall = time.perf_counter() - t0
        time.sleep(1.2)      # let the once-a-second flush of this phase happen
        cpu = _cpu(procs) - c0
        out[name] = {"per_s": n / wall, "cpu_us_per_call": 1e6 * cpu / n}
    ray.shutdown()
    return out


def micro(n=100_000):
    """The hooks one task pays, timed alone (min of 7 repeats: steady on a busy box),
    and what a batch costs to pickle in its process and unpickle at the node."""
    import os
    import pickle
    import timeit
    from minray._private.observability import task_events as te
    tid, res = os.urandom(16), {"CPU": 1.0}

    def owner():
        te.submitted(tid, "f", "f", te.NORMAL_TASK, None, False, res)
        te.dispatched(tid, "w")

    def worker():
        te.running(tid, "f", "f", te.NORMAL_TASK, None)
        te.end(tid)

    out = {}
    for name, fn in (("owner_hooks_us", owner), ("worker_hooks_us", worker)):
        out[name] = min(timeit.repeat(fn, number=n, repeat=7)) / n * 1e6
        te.drain()
    for _ in range(1000):
        owner()
        worker()
    batch = te.drain()
    blob = pickle.dumps(batch, 5)
    out["pickle_per_task_us"] = min(timeit.repeat(lambda: pickle.dumps(batch, 5), number=20,
                                                  repeat=7)) / 20 / 1000 * 1e6
    out["unpickle_per_task_us"] = min(timeit.repeat(lambda: pickle.loads(blob), number=20,
                                                    repeat=7)) / 20 / 1000 * 1e6
    out["bytes_per_task"] = len(blob) / 1000
    return out


if __name__ == "__main__":
    if "--micro" in sys.argv:
        print(json.dumps(micro()))
    else:
        print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)))
