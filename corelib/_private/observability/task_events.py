"""Task events: who ran what, where and when, recorded cheaply and merged at the node.

    owner (driver/worker)  submit_task ........ SUBMITTED (PENDING_ARGS_AVAIL or
                                                PENDING_NODE_ASSIGNMENT)
                           _task_frame ........ DISPATCHED (SUBMITTED_TO_WORKER)
                           _finish_with_error . OWNER_FAILED (a task that failed without running)
    executing worker       run_task ........... ERROR (if it raised), then RAN (start and
                                                end: one event per run; a run still going
                                                at a flush is reported there as RUNNING)
                 |
                 v   one deque per process (a ring buffer: the oldest events go when full)
    flusher (the process's I/O thread): every FLUSH_S, or when the node manager asks
                 |   NOTICE task_events(header, events, seq, objects)
                 v
    node manager: TaskTable.apply() merges them into one record per task (Ray's
    TaskState shape), bounded to MAX_TASKS; the state API, the CLI, the dashboard,
    /metrics and ``minray.timeline()`` read it.

The hot path pays one tuple and one ``deque.append`` per event (about 0.1 µs);
nothing is sent per task.  Events carry ``time.time()`` stamps: every process of a
node reads the same clock, so the table orders a task's events by time, and the
newest event decides the state (a retried task goes from FAILED back to RUNNING).
"""

import collections
import threading
import time

# Event kinds (the first field of every event tuple).
SUBMITTED, DISPATCHED, RUNNING, ERROR, END, OWNER_FAILED, RAN = range(7)

FLUSH_S = 1.0            # as Ray's task_events_report_interval_ms
MAX_BUFFERED = 100_000   # per process; beyond it the oldest events are dropped
MAX_TASKS = 10_000       # per node manager; the oldest tasks are forgotten first
MAX_OBJECTS_REPORTED = 10_000

NORMAL_TASK, ACTOR_TASK, ACTOR_CREATION_TASK = "NORMAL_TASK", "ACTOR_TASK", "ACTOR_CREATION_TASK"
TERMINAL = ("FINISHED", "FAILED")

_buf = collections.deque(maxlen=MAX_BUFFERED)
_append = _buf.append
_now = time.time
_client = None
_header = None
_flush_lock = threading.Lock()


# ------------------------------------------------------------------ recording (any process)
def submitted(task_id, name, func, ttype, actor_id, pending_args, resources=None):
    """The owner queued a task (its arguments still pending, or ready to schedule)."""
    _append((SUBMITTED, task_id, _now(), name, func, ttype, actor_id, pending_args, resources))


def dispatched(task_id, worker_id):
    """The owner sent the task to a leased worker (the worker's events say which)."""
    _append((DISPATCHED, task_id, _now()))


# Tasks this process is running: task_id -> (start, name, func, type, actor_id). A task
# that ends before the next flush costs one event (RAN, with its start); one still
# running at a flush is reported then as RUNNING (see flush).
_running = {}
_reported = set()


def running(task_id, name, func, ttype, actor_id):
    """The executing worker started the task."""
    _running[task_id] = (_now(), name, func, ttype, actor_id)


def error(task_id, exc):
    """The task raised (recorded before END, which then means FAILED)."""
    _append((ERROR, task_id, _now(), error_type_of(exc), _message(exc)))


def end(task_id):
    """The executing worker finished the task (FINISHED unless ERROR came first)."""
    r = _running.pop(task_id, None)
    if r is None:
        _append((END, task_id, _now()))
    else:
        _append((RAN, task_id, _now(), r))


def owner_failed(task_id, blob):
    """The owner failed a task that did not finish on a worker (crash, cancel, bad
    argument); ``blob`` is the error it stores as the task's result (rare: not the
    hot path, so decoding it here is fine)."""
    try:
        import pickle
        exc = pickle.loads(memoryview(blob)[1:])
    except Exception:
        exc = RuntimeError("the task failed")
    _append((OWNER_FAILED, task_id, _now(), error_type_of(exc), _message(exc)))


# Ray's TaskState.error_type values (its ErrorType enum), by the class that says it.
_ERROR_TYPES = (("TaskCancelledError", "TASK_CANCELLED"), ("KeyboardInterrupt", "TASK_CANCELLED"),
                ("OutOfMemoryError", "OUT_OF_MEMORY"), ("WorkerCrashedError", "WORKER_DIED"),
                ("ActorUnavailableError", "ACTOR_UNAVAILABLE"),
                ("RayActorError", "ACTOR_DIED"), ("OwnerDiedError", "OWNER_DIED"),
                ("ObjectLostError", "OBJECT_UNRECONSTRUCTABLE"))


def error_type_of(exc):
    """Ray's error_type for an exception: TASK_EXECUTION_EXCEPTION unless the system
    failed the task (cancelled, worker or actor died, out of memory)."""
    names = {c.__name__ for c in type(exc).__mro__}
    for cls_name, kind in _ERROR_TYPES:
        if cls_name in names:
            return kind
    return "TASK_EXECUTION_EXCEPTION"


def _message(exc):
    try:
        text = str(exc)
    except Exception:
        text = repr(type(exc))
    return f"{type(exc).__name__}: {text}"[:2000]


def _disabled():
    import os
    return (os.environ.get("MINRAY_TASK_EVENTS", "1") == "0"
            or os.environ.get("RAY_task_events_report_interval_ms") == "0")


if _disabled():
    # Recording off (as Ray's RAY_task_events_report_interval_ms=0): every hook is a no-op.
    def _off(*args):
        pass
    submitted = dispatched = running = error = end = owner_failed = _off


def drain():
    """Take every buffered event (called on the flushing thread)."""
    out = []
    pop = _buf.popleft
    try:
        for _ in range(len(_buf)):
            out.append(pop())
    except IndexError:
        pass
    return out


# ------------------------------------------------------------------ flushing (I/O thread)
def attach(client, worker_id=None, node_id=None):
    """Start flushing this process's events through ``client`` (a CoreClient).

    Called once per process when its core client has registered: a timer on the
    client's I/O loop sends what was recorded every FLUSH_S, and the node
    manager can ask for an immediate flush (push ``flush_task_events``) before it
    answers a state query.
    """
    global _client, _header
    import os
    _client = client
    _header = {"pid": os.getpid(), "kind": client.kind,
               "worker_id": worker_id or client.worker_id or client.client_id.hex(),
               "node_id": node_id or client.node_id, "job_id": client.job_id}
    client.push_handlers["flush_task_events"] = _flush_requested
    client.loop.call_later(FLUSH_S, _tick)


_flushers = []   # callables returning metric points to report, or None (util/metrics.py)


def add_flusher(fn):
    """Have ``fn()`` polled at every flush; what it returns (a list of metric points)
    goes to the node manager as a ``metrics_report`` notice."""
    if fn not in _flushers:
        _flushers.append(fn)


def _tick():
    client = _client
    if client is None or client.shutting_down:
        return
    if _buf or _flushers:
        flush()
    client.loop.call_later(FLUSH_S, _tick)


def _flush_requested(seq, want_objects):
    flush(seq, want_objects)


def flush(seq=None, want_objects=False):
    """Send the buffered events now (and, when asked, this process's objects)."""
    client = _client
    if client is None:
        return
    with _flush_lock:   # the I/O thread's timer and a caller's state query may meet
        _flush(client, seq, want_objects)


def _flush(client, seq, want_objects):
    for fn in list(_flushers):
        try:
            points = fn()
        except Exception:   # a metric must never break the runtime
            points = None
        if points:
            client.notice("metrics_report", _header, points)
    events = drain()
    if _running or _reported:
        events.extend(_running_events())
    objects = _owned_objects(client) if want_objects else None
    if events or seq is not None:
        client.notice("task_events", _header, events, seq, objects)


def _running_events():
    """RUNNING events for the tasks running now that no flush reported yet."""
    out = []
    now_running = list(_running.items())    # one atomic copy (the main thread adds and pops)
    live = set()
    for task_id, (start, name, func, ttype, actor_id) in now_running:
        live.add(task_id)
        if task_id not in _reported:
            out.append((RUNNING, task_id, start, name, func, ttype, actor_id))
    _reported.intersection_update(live)
    _reported.update(live)
    return out


def settle(client, timeout=2.0):
    """Before a driver leaves a node that outlives it: send our events and have every
    process of the node send theirs (the workers of this job are stopped next)."""
    try:
        flush()
        client.call("state_query", "task_counts", {}, timeout=timeout)
    except Exception:
        pass


def _owned_objects(client):
    """(oid hex, pending?, local refs, size or None, in shared memory?) of owned objects."""
    out = []
    for oid, st in list(client.objects.items()):
        if not st.owned or getattr(st, "is_token", False):
            continue
        blob = st.blob
        size = None
        shm = False
        if blob is not None:
            shm = blob[:1] == b"S"
            size = None if shm else len(blob)
        out.append((oid.hex(), blob is None, st.local_refs, size, shm))
        if len(out) >= MAX_OBJECTS_REPORTED:
            break
    return out


# ------------------------------------------------------------------ merging (node manager)
_RANK = {"PENDING_ARGS_AVAIL": 0, "PENDING_NODE_ASSIGNMENT": 1, "SUBMITTED_TO_WORKER": 2,
         "RUNNING": 3, "FINISHED": 4, "FAILED": 4}
PENDING_PER_TASK = 4           # unread events kept: about one task's worth per table slot
MAX_STATE_EVENTS = 16          # per task, in TaskState.events


class _Task:
    """One task's merged record (compact: the public dict is built only for a query)."""
    __slots__ = ("task_id", "job_id", "name", "func", "type", "actor_id", "state", "t",
                 "runs", "err", "error_type", "error_message", "created", "start", "end",
                 "node_id", "worker_id", "pid", "resources", "events")

    def __init__(self, task_id, job_id):
        self.task_id = task_id
        self.job_id = job_id
        self.name = self.func = ""
        self.type = NORMAL_TASK
        self.actor_id = self.state = self.err = self.error_type = self.error_message = None
        self.t = 0.0
        self.runs = 0
        self.created = self.start = self.end = None
        self.node_id = self.worker_id = self.pid = self.resources = None
        self.events = []


class TaskTable:
    """One record per task, in Ray's TaskState shape, merged from every process's events.

    Pure: ``apply(header, events)`` in, rows out; no I/O (tests drive it directly).
    ``apply`` only queues a batch (the node manager's loop stays cheap while tasks
    stream by); queued batches are merged when someone reads. Past
    PENDING_PER_TASK * max_tasks unread events the oldest batches are dropped (they
    would be evicted anyway), as Ray drops task events under pressure. Counters (for
    /metrics) are kept at apply time, so they never miss a task.

    Example::

        table = TaskTable()
        table.apply({"pid": 7, "worker_id": "w1", "node_id": "n1", "job_id": 1,
                     "kind": "worker"}, [(RUNNING, b"t1", 1.0, "f", "f", "NORMAL_TASK", None),
                                        (END, b"t1", 1.5)])
        assert table.rows()[0]["state"] == "FINISHED"
    """

    def __init__(self, max_tasks=MAX_TASKS):
        self.max_tasks = max_tasks
        self.tasks = collections.OrderedDict()   # task_id bytes -> _Task, oldest first
        self.num_dropped = 0
        self.counts = collections.Counter()      # "submitted", "ended", "errors"
        self.pending = collections.deque()       # (header, events) not merged yet
        self.num_pending = 0
        self.max_pending = PENDING_PER_TASK * max_tasks
        self.num_events_dropped = 0

    def apply(self, header, events):
        """Queue a batch of one process's events (merged on the next read)."""
        self.pending.append((header, events))
        self.num_pending += len(events)
        kinds = collections.Counter(ev[0] for ev in events)
        c = self.counts
        c["submitted"] += kinds[SUBMITTED]
        c["finished"] += kinds[END] + kinds[RAN] - kinds[ERROR]
        c["failed"] += kinds[ERROR] + kinds[OWNER_FAILED]
        if self.num_pending > self.max_pending:
            # Nobody is reading and the table keeps only max_tasks tasks anyway: drop
            # the oldest unread batches instead of merging what would be evicted.
            while self.pending and self.num_pending > self.max_pending // 2:
                _, old = self.pending.popleft()
                self.num_pending -= len(old)
                self.num_events_dropped += len(old)

    def merge(self):
        while self.pending:
            header, events = self.pending.popleft()
            self._merge(header, events)
        self.num_pending = 0

    def _get(self, task_id, job_id):
        rec = self.tasks.get(task_id)
        if rec is None:
            rec = self.tasks[task_id] = _Task(task_id, job_id)
            if len(self.tasks) > self.max_tasks:
                self.tasks.popitem(last=False)   # O(1), unlike deleting a dict's first key
                self.num_dropped += 1
        return rec

    @staticmethod
    def _set_state(rec, state, t):
        ev = rec.events
        ev.append((state, t))
        if len(ev) > MAX_STATE_EVENTS:
            del ev[1]
        if t > rec.t or (t == rec.t and _RANK[state] >= _RANK.get(rec.state, -1)):
            rec.t = t
            rec.state = state

    def _merge(self, header, events):
        job_id = header.get("job_id")
        get, set_state = self._get, self._set_state
        for ev in events:
            kind, t = ev[0], ev[2]
            rec = get(ev[1], job_id)
            if kind == SUBMITTED:
                _, _, _, name, func, ttype, actor_id, pending, resources = ev
                rec.name = rec.name or name or ""
                rec.func = rec.func or func or ""
                rec.type = ttype
                if actor_id:
                    rec.actor_id = actor_id
                rec.resources = resources
                rec.created = t
                set_state(rec, "PENDING_ARGS_AVAIL" if pending else "PENDING_NODE_ASSIGNMENT",
                          t)
            elif kind == DISPATCHED:
                set_state(rec, "SUBMITTED_TO_WORKER", t)
            elif kind == RAN:
                start, name, func, ttype, actor_id = ev[3]
                if rec.start != start:   # not reported as RUNNING by an earlier flush
                    err = rec.err        # this run's ERROR came just before (same stream)
                    self._ran(rec, header, start, name, func, ttype, actor_id)
                    rec.err = err
                self._ended(rec, t)
            elif kind == RUNNING:
                self._ran(rec, header, t, *ev[3:])
            elif kind == ERROR:
                rec.err = (ev[3], ev[4])
            elif kind == END:
                self._ended(rec, t)
            elif kind == OWNER_FAILED:
                rec.error_type, rec.error_message = ev[3], ev[4]
                if rec.end is None:
                    rec.end = t
                set_state(rec, "FAILED", t)

    def _ran(self, rec, header, t, name, func, ttype, actor_id):
        rec.name = rec.name or name
        rec.func = func or rec.func
        rec.type = ttype
        if actor_id:
            rec.actor_id = actor_id
        rec.runs += 1
        rec.err = rec.error_type = rec.error_message = rec.end = None
        rec.node_id = header.get("node_id")
        rec.worker_id = header.get("worker_id")
        rec.pid = header.get("pid")
        rec.start = t
        if rec.created is None:
            rec.created = t
        self._set_state(rec, "RUNNING", t)

    def _ended(self, rec, t):
        rec.end = t
        if rec.err:
            rec.error_type, rec.error_message = rec.err
            rec.err = None
            self._set_state(rec, "FAILED", t)
        else:
            self._set_state(rec, "FINISHED", t)

    def rows(self):
        """Every known task, oldest first (by creation time), as TaskState dicts."""
        self.merge()
        recs = [rec for rec in self.tasks.values() if rec.state is not None]
        recs.sort(key=lambda r: r.created if r.created is not None else r.t)
        return [public(rec) for rec in recs]

    def state_counts(self):
        self.merge()
        return collections.Counter(rec.state for rec in self.tasks.values()
                                   if rec.state is not None)

    def trace_events(self, node_ip="127.0.0.1", now=None):
        """Chrome trace "X" events: one per task run that started (see timeline())."""
        self.merge()
        now = time.time() if now is None else now
        out = []
        for rec in self.tasks.values():
            start = rec.start
            if start is None:
                continue
            end = rec.end if rec.end is not None else now
            out.append({
                "cat": "task::" + (rec.type or NORMAL_TASK).lower(),
                "name": rec.func or rec.name,
                "ph": "X",
                "pid": f"Node {node_ip}",
                "tid": f"worker:{rec.pid}",
                "ts": start * 1e6,
                "dur": max(end - start, 0.0) * 1e6,
                "args": {"task_id": rec.task_id.hex(), "name": rec.name, "state": rec.state,
                         "job_id": _job_hex(rec.job_id),
                         "actor_id": rec.actor_id.hex() if rec.actor_id else None,
                         "worker_id": rec.worker_id, "node_id": rec.node_id,
                         "attempt_number": max(rec.runs - 1, 0),
                         "error_type": rec.error_type},
            })
        out.sort(key=lambda e: e["ts"])
        return out


def _ms(t):
    return int(t * 1000) if t is not None else None


def public(rec):
    """A _Task as Ray's TaskState dict."""
    return {
        "task_id": rec.task_id.hex(), "attempt_number": max(rec.runs - 1, 0),
        "name": rec.name or rec.func, "state": rec.state, "job_id": _job_hex(rec.job_id),
        "actor_id": rec.actor_id.hex() if rec.actor_id else None, "type": rec.type,
        "func_or_class_name": rec.func or rec.name, "parent_task_id": None,
        "node_id": rec.node_id, "worker_id": rec.worker_id, "worker_pid": rec.pid,
        "error_type": rec.error_type, "language": "PYTHON",
        "required_resources": rec.resources, "runtime_env_info": None,
        "placement_group_id": None,
        "events": [{"state": st, "created_ms": _ms(t)} for st, t in rec.events],
        "profiling_data": None, "creation_time_ms": _ms(rec.created),
        "start_time_ms": _ms(rec.start), "end_time_ms": _ms(rec.end),
        "task_log_info": None, "error_message": rec.error_message,
        "is_debugger_paused": None, "call_site": None}


def _job_hex(job_id):
    if isinstance(job_id, int):
        return f"{job_id:08x}"
    return job_id
