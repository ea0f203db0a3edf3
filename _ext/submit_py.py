"""The submit queue's hot decision, `pump`: which leased worker takes which
queued task, and how many leases to ask for or withdraw. Readable twin of
`_submit.pyx` (same names, results and records).

The policy and the state records are documented in
`minray._private.core.submit_queue`, which re-exports what is here; this
module holds only the part every task pays for, and the instruction records
it returns (defined once, here, and used by the compiled module too).

``q`` is a queue with ``tasks`` (a deque), ``workers`` (a list),
``lease_requests`` (int) and ``lease_req_ids`` (a set); a worker has
``inflight`` (a dict, in send order), ``returning``, ``stealing``,
``idle_since`` and ``last_progress``; a task has ``task_id``, ``cancelled``,
``pipelined``, ``worker`` and ``sent_at``.

>>> import collections, types
>>> t = types.SimpleNamespace(task_id=b"t", cancelled=False, pipelined=False)
>>> w = types.SimpleNamespace(inflight={}, returning=False, stealing=False)
>>> q = types.SimpleNamespace(tasks=collections.deque([t]), workers=[w],
...                           lease_requests=0, lease_req_ids=set())
>>> [type(i).__name__ for i in pump(q, 1.0)], t.worker is w
(['SendTask'], True)
"""

from __future__ import annotations

from minray._private import named

__all__ = ["PIPELINE_DEPTH", "MAX_LEASE_REQUESTS", "SendTask", "RequestLeases",
           "WithdrawLeases", "pump"]

PIPELINE_DEPTH = 8
MAX_LEASE_REQUESTS = 16


class SendTask(named.NamedTuple):
    """Send ``task`` to ``worker`` (it is already counted in worker.inflight)."""
    worker: Any
    task: Any


class RequestLeases(named.NamedTuple):
    """Ask for ``count`` more workers for ``queue`` (already counted in
    queue.lease_requests), from ``node`` (an address) or our own node (None)."""
    queue: Any
    count: int
    node: Optional[str]


class WithdrawLeases(named.NamedTuple):
    """Cancel the lease requests ``req_ids``: nothing is left to run on them."""
    queue: Any
    req_ids: List[int]


def pump(q, now):
    """Hand queued tasks to leased workers with room; ask for or withdraw leases.

    Each task goes to the least loaded worker that may take it: one with fewer
    than the task's depth in flight (PIPELINE_DEPTH when it and everything in
    the worker are pipelined, else 1), not returning and not being stolen from.
    """
    out = []
    tasks = q.tasks
    while tasks:
        best = None
        best_n = 0
        depth = PIPELINE_DEPTH if tasks[0].pipelined else 1
        for w in q.workers:
            inflight = w.inflight
            n = len(inflight)
            if n >= depth or w.returning or w.stealing:
                continue
            if n:
                if best is not None and n >= best_n:
                    continue
                if not all(r.pipelined for r in inflight.values()):
                    continue  # never queue behind a task that may run long
            if best is None or n < best_n:
                best, best_n = w, n
        if best is None:
            break
        rec = tasks.popleft()
        if rec.cancelled:
            continue
        if not best.inflight:
            best.last_progress = now
        best.inflight[rec.task_id] = rec
        best.idle_since = None
        rec.worker = best
        rec.sent_at = now
        out.append(SendTask(best, rec))
    want = min(len(tasks), MAX_LEASE_REQUESTS) - q.lease_requests
    if want > 0:
        q.lease_requests += want
        out.append(RequestLeases(q, want, None))
    elif not tasks and q.lease_req_ids:
        # Nothing left to run: leases still asked for would only sit at the node
        # manager and make it reclaim idle workers (ours included) for nobody.
        out.append(WithdrawLeases(q, list(q.lease_req_ids)))
    return out
