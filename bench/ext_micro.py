"""The compiled hot path against its pure-Python twins, operation by operation.

    python -m bench.ext_micro

Times the operations every task or actor call pays (and read_csv's parser),
once per implementation (`minray._ext._<name>` and `minray._ext.<name>_py`), in
this one process, and prints a markdown table with the ratio. `bench.compare` includes it, beside
the whole-runtime figure (a task round trip with MINRAY_NO_EXTENSIONS=1).
"""

import importlib
import sys
import timeit

from minray._ext import csvnum_py, deps_py, frame_py, ids_py, policy_py, resources_py, submit_py

TWINS = {"frame": frame_py, "ids": ids_py, "resources": resources_py, "deps": deps_py,
         "policy": policy_py, "submit": submit_py, "csvnum": csvnum_py}


def _frame_cases(m):
    payload = b"x" * 120
    stream = m.encode_many([(3, payload)] * 64)
    return [
        ("frame: encode a 120-byte message", lambda: m.encode(3, payload), 1),
        ("frame: decode 64 frames from one read", lambda: m.FrameReader().feed(stream), 64),
    ]


def _ids_cases(m):
    gen = m.IdGenerator(b"prefix!!")
    tid = gen.new_task_id()
    oid = m.object_id_for(tid, 1)
    return [
        ("ids: new task id", gen.new_task_id, 1),
        ("ids: task id and index of an object id",
         lambda: (m.task_id_of(oid), m.index_of(oid)), 1),
    ]


def _resources_cases(m):
    avail = {"CPU": 4.0, "GPU": 1.0, "memory": 8e9, "object_store_memory": 2e9}
    req = {"CPU": 1.0, "memory": 1e8}

    def lease_cycle():
        if m.fits(avail, req):
            m.subtract(avail, req)
            m.add(avail, req)
    return [("resources: fits + subtract + add (one lease)", lease_cycle, 1)]


def _deps_cases(m):
    oids = [bytes([i]) * 20 for i in range(4)]

    def cycle():
        d = m.DependencyTable()
        d.watch(1, oids[:2])
        d.watch(2, oids[1:])
        for o in oids:
            d.resolve(o)
    return [("deps: 2 tasks over 4 objects, watch + resolve", cycle, 2)]


def _policy_cases(m):
    # One lease decision on a 16-node cluster, through the whole ClusterPolicy
    # with `m` as its kernels (what a node manager pays per lease request).
    from minray._private.scheduling.policy import (ArgLocation, ClusterPolicy, Here,
                                                   LeaseAsk, NodeView)
    here = Here("n00", {"CPU": 8.0}, {"CPU": 0.0})
    nodes = {f"n{i:02d}": NodeView(f"n{i:02d}", f"h:{i}", {"CPU": 8.0, "GPU": 1.0},
                                   {"CPU": float(i % 5), "GPU": 0.0}) for i in range(16)}
    nodes["n00"] = here
    pol = ClusterPolicy("n00", m)
    busy = LeaseAsk({"CPU": 1.0})
    spread = LeaseAsk({"CPU": 1.0, "_spread": 1e-12})
    local = LeaseAsk({"CPU": 1.0}, args=tuple(ArgLocation(f"n{i % 16:02d}", 3 << 20)
                                              for i in range(8)))
    alone = Here("n00", {"CPU": 8.0}, {"CPU": 8.0})
    rows = list(nodes.values())
    return [
        ("policy kernel: pick_node over 16 nodes",
         lambda: m.pick_node(rows, busy.resources, "n00"), 1),
        ("policy kernel: locality_pick, 8 args",
         lambda: m.locality_pick(local.args, nodes, 1 << 20), 1),
        ("policy: decide, one machine (the common lease)",
         lambda: pol.decide(busy, alone, None), 1),
        ("policy: decide, busy here -> spill (16 nodes)",
         lambda: pol.decide(busy, here, nodes), 1),
        ("policy: decide, SPREAD (16 nodes)", lambda: pol.decide(spread, here, nodes), 1),
        ("policy: decide, locality over 8 args (16 nodes)",
         lambda: pol.decide(local, here, nodes), 1),
    ]


def _submit_cases(m):
    from minray._private.core.submit_queue import LeasedWorker, SchedulingQueue, Task
    q = SchedulingQueue(("cpu",), {"CPU": 1}, None, None, None)
    workers = [LeasedWorker(bytes([i]), "addr", 1, q) for i in range(4)]
    q.workers.extend(workers)
    sync_task = Task(b"s")
    pipelined = [Task(bytes([i]) * 2, pipelined=True) for i in range(32)]

    def sync_round():   # get(f.remote()): one task to one idle worker, then done
        q.tasks.append(sync_task)
        m.pump(q, 1.0)
        workers[0].inflight.clear()

    def pipelined_batch():   # 32 short tasks over 4 workers (8 deep), lease math
        q.tasks.extend(pipelined)
        m.pump(q, 1.0)
        for w in workers:
            w.inflight.clear()
        q.lease_requests = 0
    return [("submit: pump one task to an idle worker", sync_round, 1),
            ("submit: pump 32 pipelined tasks over 4 workers", pipelined_batch, 32)]


def _csvnum_cases(m):
    # 1,000 records like the read_csv benchmark's: an int, four decimals, a small int
    body = "".join(f"{i},{i * 0.4567:.4f},{i * 1.5:.4f},{i / 7:.4f},{i * 9.25:.4f},{i % 100}\n"
                   for i in range(1000)).encode()
    return [("csvnum: parse a record of 6 numbers (of 1,000)", lambda: m.parse(body, 6), 1000)]


CASES = {"frame": _frame_cases, "ids": _ids_cases, "resources": _resources_cases,
         "deps": _deps_cases, "policy": _policy_cases, "submit": _submit_cases,
         "csvnum": _csvnum_cases}


def _per_op_ns(fn, ops, budget_s=0.2):
    timer = timeit.Timer(fn)
    n, _ = timer.autorange()
    reps = max(3, int(budget_s / max(timer.timeit(n) / n, 1e-9) / n))
    best = min(timer.repeat(repeat=reps if reps < 7 else 7, number=n))
    return best / n / ops * 1e9


def measure():
    """[(case, compiled ns/op, twin ns/op)] for every module that is built."""
    rows = []
    for name, cases in CASES.items():
        try:
            compiled = importlib.import_module(f"minray._ext._{name}")
        except ImportError:
            compiled = None
        twin_cases = cases(TWINS[name])
        comp_cases = cases(compiled) if compiled else [None] * len(twin_cases)
        for twin_case, comp_case in zip(twin_cases, comp_cases):
            title, fn, ops = twin_case
            t_ns = _per_op_ns(fn, ops)
            c_ns = _per_op_ns(comp_case[1], ops) if comp_case else None
            rows.append((title, c_ns, t_ns))
    return rows


def table(rows):
    lines = ["| operation | compiled | pure-Python twin | twin / compiled |",
             "|---|---|---|---|"]
    for title, c_ns, t_ns in rows:
        if c_ns is None:
            lines.append(f"| {title} | not built | {t_ns:,.0f} ns | n/a |")
        else:
            lines.append(f"| {title} | {c_ns:,.0f} ns | {t_ns:,.0f} ns | {t_ns / c_ns:.1f}x |")
    return "\n".join(lines)


def main():
    print(table(measure()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
