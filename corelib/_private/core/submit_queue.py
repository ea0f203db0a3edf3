"""The submit queue: which leased worker runs which queued task, and when to ask
for, give back or steal from a leased worker. Pure decisions, no I/O.

    submit_task -> task_queued ─┐                       ┌─> SendTask(worker, task)
    lease reply -> lease_* ─────┤                       ├─> RequestLeases(queue, n, node)
    DONE        -> task_done ───┼──> SchedulingQueue ───┼─> WithdrawLeases(queue, req_ids)
    STOLEN      -> tasks_stolen ┤    LeasedWorker       ├─> ReturnLease(worker)
    socket lost -> worker_lost ─┤    (state records)    ├─> Steal(worker, task_ids, overrun)
    timer       -> tick ────────┘                       └─> FailTasks(tasks, reason)

One ``SchedulingQueue`` per scheduling class (resource shape, placement group,
runtime environment) holds the ready tasks of that class and the workers leased
for it. The client (``minray._private.client``) is the shell: it owns the lock,
the sockets and the clock; it calls these functions with its lock held, passing
``now`` (``time.monotonic()``), and carries out the instructions they return
after releasing the lock. Nothing here sends, sleeps or reads a clock.

A *task* is any object with the attributes ``task_id``, ``cancelled``,
``worker`` and ``sent_at`` (written here), ``pipelined`` (bool: short and never
blocking, so several may wait in one worker's socket) and ``avg_s`` (its
function's measured average duration). The client's TaskRecord is one.

Policy, as Ray's direct task submitter has it, with pipelining added:
- A pipelined task may wait behind at most PIPELINE_DEPTH - 1 others in one
  worker; anything else goes one at a time, so a long task never holds up
  short ones, and a task never waits behind one it needs.
- Leases are asked for while tasks wait (at most MAX_LEASE_REQUESTS in flight
  per class); when the queue empties, the ones still asked for are withdrawn.
- A worker idle for IDLE_LEASE_S (or at once, while others wait for
  resources) is given back.
- A pipelined task that overruns (STEAL_FACTOR x its average, at least
  STEAL_AFTER_S) has the tasks queued behind it taken back (stolen) so other
  workers run them.

``pump``, the decision every task pays for, is compiled (``_ext/_submit.pyx``)
with a readable twin (``_ext/submit_py.py``), like the other hot paths; the
rest is plain Python.

>>> q = SchedulingQueue(("k",), {"CPU": 1}, None, None, None)
>>> t = Task(b"t1")
>>> [type(i).__name__ for i in task_queued(q, t)]
['RequestLeases']
>>> w = LeasedWorker(b"w1", "addr", 1, q)
>>> worker_joined(q, w, now=0.0)
[SendTask(worker=<LeasedWorker b'w1'>, task=Task(b't1'))]
"""

from __future__ import annotations

import collections
from minray._private.named import NamedTuple

from minray import _ext
# pump's instructions and limits are defined with it, in _ext/submit_py.py.
from minray._ext.submit_py import (MAX_LEASE_REQUESTS, PIPELINE_DEPTH, RequestLeases,
                                   SendTask, WithdrawLeases)

__all__ = [
    "IDLE_LEASE_S", "MAX_LEASE_REQUESTS", "PIPELINE_DEPTH", "STEAL_AFTER_S", "STEAL_FACTOR",
    "SendTask", "RequestLeases", "WithdrawLeases", "ReturnLease", "Steal", "FailTasks",
    "LEASE_NODE_GONE", "LEASE_WITHDRAWN", "LEASE_UNSCHEDULABLE", "LEASE_FAILED",
    "LEASE_DROPPED", "SchedulingQueue", "LeasedWorker", "Task", "pump", "task_queued",
    "tasks_requeued", "cancel_queued", "lease_answered", "worker_joined", "lease_spilled",
    "lease_refused", "task_done", "give_back_after_done", "return_lease", "revoke_idle", "tick",
    "tasks_stolen", "worker_lost", "pending_tasks"]

IDLE_LEASE_S = 0.5
STEAL_AFTER_S = 0.05
STEAL_FACTOR = 20


# ---------------------------------------------------------------- instructions
# SendTask(worker, task), RequestLeases(queue, count, node) and
# WithdrawLeases(queue, req_ids) come with pump, from _ext/submit_py.py.
class ReturnLease(NamedTuple):
    """Give ``worker`` back to its node manager (already out of queue.workers)."""
    worker: Any


class Steal(NamedTuple):
    """Take ``task_ids`` back from ``worker``: they wait behind ``overrun``,
    which runs far longer than expected (stop pipelining its function)."""
    worker: Any
    task_ids: List[bytes]
    overrun: Any


class FailTasks(NamedTuple):
    """Finish ``tasks`` with the lease error: ``reason`` is one of
    LEASE_NODE_GONE or LEASE_UNSCHEDULABLE."""
    tasks: List[Any]
    reason: str


# How a lease request ended without a worker (lease_refused's ``reason``).
LEASE_NODE_GONE = "node_gone"          # our node manager died: fail what waits
LEASE_WITHDRAWN = "withdrawn"          # we cancelled it (WithdrawLeases)
LEASE_UNSCHEDULABLE = "unschedulable"  # can never run (e.g. its placement group was removed)
LEASE_FAILED = "failed"                # anything else (a node died): ask again
LEASE_DROPPED = "dropped"              # its connection is closing: its close path decides


# ---------------------------------------------------------------- state records
class SchedulingQueue:
    """Ready tasks of one scheduling class (resource shape, placement, environment)."""

    __slots__ = ("key", "resources", "pg", "env_key", "env_vars", "tasks", "workers",
                 "lease_requests", "lease_req_ids")

    def __init__(self, key, resources, pg, env_key, env_vars):
        self.key = key
        self.resources = resources
        self.pg = pg
        self.env_key = env_key
        self.env_vars = env_vars
        self.tasks = collections.deque()
        self.workers = []
        self.lease_requests = 0      # asked for, not yet answered
        self.lease_req_ids = set()   # their request ids (the shell fills it in)


class LeasedWorker:
    """A worker leased for one queue, and the tasks sent to it (in order)."""

    __slots__ = ("worker_id", "address", "pid", "conn", "queue", "inflight", "fn_ids",
                 "idle_since", "returning", "gpu_ids", "last_progress", "stealing", "nm",
                 "send_lock")

    def __init__(self, worker_id, address, pid, queue):
        self.worker_id = worker_id
        self.address = address
        self.pid = pid
        self.queue = queue
        self.inflight = {}           # task_id -> task, in the order sent
        self.idle_since = None
        self.returning = False       # given back (or retiring): send it nothing
        self.last_progress = 0.0     # when it last finished a task (or got one while idle)
        self.stealing = False        # a Steal is on its way
        # The shell's: its connection, the node manager that leased it (None: ours),
        # the functions it has, its GPUs, and the lock its frames are written under.
        self.conn = None
        self.nm = None
        self.fn_ids = set()
        self.gpu_ids = ()
        self.send_lock = None

    def __repr__(self):
        return f"<LeasedWorker {self.worker_id!r}>"


class Task:
    """A task as the queue sees it (tests and examples; the client uses TaskRecord).

    >>> Task(b"t").pipelined
    False
    """

    __slots__ = ("task_id", "cancelled", "worker", "sent_at", "pipelined", "avg_s")

    def __init__(self, task_id, pipelined=False, avg_s=0.0):
        self.task_id = task_id
        self.cancelled = False
        self.worker = None
        self.sent_at = 0.0
        self.pipelined = pipelined
        self.avg_s = avg_s

    def __repr__(self):
        return f"Task({self.task_id!r})"


# ---------------------------------------------------------------- transitions
# The hot decision, compiled with a readable twin (_ext/_submit.pyx, _ext/submit_py.py).
pump = _ext.submit.pump


def task_queued(q, task, now=0.0):
    """A task is ready to run (its arguments resolved): queue it and pump."""
    q.tasks.append(task)
    return pump(q, now)


def tasks_requeued(q, tasks, now=0.0):
    """Tasks taken back (stolen, or never run) go back to the front, in order."""
    q.tasks.extendleft(reversed(tasks))
    for t in tasks:
        t.worker = None
    return pump(q, now)


def cancel_queued(q, task):
    """Take a cancelled task out of the queue; True if it was still queued
    (it never reached a worker)."""
    try:
        q.tasks.remove(task)
    except ValueError:
        return False
    return True


def lease_answered(q, req_id):
    """Bookkeeping for any answer to lease request ``req_id`` (call first)."""
    q.lease_requests -= 1
    q.lease_req_ids.discard(req_id)


def worker_joined(q, w, now):
    """A granted lease's worker is connected: it takes tasks from now on."""
    q.workers.append(w)
    w.idle_since = now
    return pump(q, now)


def lease_spilled(q, node):
    """The node manager sent the request on to ``node``: ask there instead."""
    q.lease_requests += 1
    return [RequestLeases(q, 1, node)]


def lease_refused(q, reason, now=0.0):
    """A lease request ended without a worker. Tasks that can never get one
    fail; otherwise the queue asks again (pump)."""
    if reason == LEASE_NODE_GONE or reason == LEASE_UNSCHEDULABLE:
        doomed = pending_tasks(q)
        return [FailTasks(doomed, reason)] if doomed else []
    if reason == LEASE_DROPPED:
        return []
    return pump(q, now)


def task_done(q, w, task_id, retiring, now):
    """``w`` finished ``task_id`` (a DONE frame). Returns the task, or None
    when it is no longer ours (stolen, or the worker was given back)."""
    rec = w.inflight.pop(task_id, None)
    if not w.inflight:
        w.idle_since = now
        # Nothing left to take back: a steal whose answer never comes (every
        # task had started) must not keep the worker out of pump for good;
        # a late STOLEN names no task in flight and changes nothing.
        w.stealing = False
    if retiring:
        # The worker reached max_calls and exits: send it nothing more.
        w.returning = True
        if w in q.workers:
            q.workers.remove(w)
    if rec is not None:
        w.last_progress = now
    return rec


def give_back_after_done(q, w, now, pressure_until):
    """Once a finished task's results are delivered: give ``w`` back now (it is
    idle while others wait for resources: return_lease next)? Otherwise the
    shell refills it with queued tasks (pump). Reads only, so the shell may ask
    without its lock, on every task."""
    return not w.inflight and not q.tasks and now < pressure_until


def return_lease(q, w):
    """Give ``w`` back if it is idle; it leaves the queue at once."""
    if w.inflight or w.returning:
        return []
    w.returning = True
    if w in q.workers:
        q.workers.remove(w)
    return [ReturnLease(w)]


def revoke_idle(q):
    """Others wait for resources: give back every idle worker of ``q``."""
    out = []
    if not q.tasks:
        for w in list(q.workers):
            if not w.inflight:
                out += return_lease(q, w)
    return out


def tick(q, now, idle_s=IDLE_LEASE_S):
    """The periodic check: give back workers idle for ``idle_s``, and steal the
    tasks queued behind an overrunning one."""
    out = []
    for w in list(q.workers):
        if not w.inflight:
            if w.idle_since is not None and now - w.idle_since > idle_s and not q.tasks:
                out += return_lease(q, w)
        elif len(w.inflight) > 1 and not w.stealing:
            running = next(iter(w.inflight.values()))
            if now - w.last_progress >= max(STEAL_AFTER_S, STEAL_FACTOR * running.avg_s):
                w.stealing = True
                rest = list(w.inflight)[1:]
                out.append(Steal(w, rest, running))
    return out


def tasks_stolen(q, w, task_ids, now=0.0):
    """The worker gave back ``task_ids`` unrun: they go first to other workers."""
    w.stealing = False
    inflight = w.inflight
    recs = [inflight.pop(t) for t in task_ids if t in inflight]
    return tasks_requeued(q, recs, now)


def worker_lost(q, w):
    """``w``'s connection closed: returns the tasks it held (the shell retries
    or fails them), and it leaves the queue."""
    lost = list(w.inflight.values())
    w.inflight.clear()
    if w in q.workers:
        q.workers.remove(w)
    return lost


def pending_tasks(q):
    """Everything still queued (a node manager loss fails them all)."""
    doomed = list(q.tasks)
    q.tasks.clear()
    return doomed
