"""The core client: what a driver or a worker uses to submit work and hold objects.

    .remote() -> submit_task -> resolve top-level ref args -> SchedulingQueue
              -> lease a worker from the node manager -> TASK straight to the worker
    worker --DONE--> I/O thread -> ObjectState.blob set -> waiters woken -> get() returns

It is the *owner* (Ray's ownership model) of the tasks it submits and of the
objects they return or that it puts: it keeps their values (small ones inline,
in this process), counts local references, and tells the node manager when a
ref escapes to another process (export) or when it is freed.

Threads: the caller's thread submits and waits; one I/O thread (``Loop``) reads
every socket and completes objects.  ``self.lock`` guards the tables; it is
never held while calling user code or blocking.  One exception to "the I/O
thread reads": a caller that waits for the reply of the actor call it just made
reads that actor's socket itself while it waits (see ``_read_direct``), which
saves a thread wakeup per synchronous actor call.
"""

import collections
import itertools
import os
import select
import logging
import sys
import threading
import time
import weakref

from minray import _ext, exceptions
from minray._private.core.object_ref import ObjectRef, ObjectRefGenerator
from minray._private.core import args as call_args, ids, validation
from minray._private.objects import serialization, shm
from minray._private.net import transport
from minray._private.net import protocol as P
from minray._private.observability import task_events
from minray._private.objects.directory import POOL_MIN_BYTES
from minray._private.objects.serialization import TAG_DYNAMIC, TAG_ERROR, TAG_SHM

_get_ident = threading.get_ident
# Callers may read their own replies (see CoreClient._read_direct); needs poll().
_DIRECT_READS = hasattr(select, "poll")

IDLE_LEASE_S = 0.5
# Large segments a producer keeps mapped for reuse (see CoreClient._keep_write_map).
WRITE_MAP_MIN = 8 << 20
WRITE_MAP_BYTES = 512 << 20
WRITE_MAP_COUNT = 4
MAX_LEASE_REQUESTS = 16
# Tasks of a function measured as short (and never blocking in get; see
# FunctionInfo.pipelinable) are pipelined: up to PIPELINE_DEPTH of them wait in
# a worker's socket, which hides the round trip.  Anything else goes one at a
# time, so a long task never holds up short ones queued behind it, and a task
# never waits behind one it needs.
PIPELINE_DEPTH = 8
# A pipelined task that runs this much longer than its function's average (and
# at least STEAL_AFTER_S) is an overrun: the tasks queued behind it are taken back
# from the worker (unrun) and go to other workers.
STEAL_AFTER_S = 0.05
DONE_BLOCKED = 1    # DONE flags: the task blocked in get()/wait()
DONE_RETIRING = 2   # DONE flags: the worker exits after this task (max_calls)
STEAL_FACTOR = 20


class Waiter:
    """Wakes a blocked thread when ``count`` objects have become ready."""

    __slots__ = ("count", "lock", "mutex", "wake_fd", "reader")

    def __init__(self, count):
        self.count = count
        self.lock = threading.Lock()
        self.lock.acquire()
        # Objects complete on the I/O thread and on callers reading their own
        # replies, so two notifies can race: the countdown needs its own lock
        # (not for one object, which completes once).
        self.mutex = threading.Lock() if count > 1 else None
        self.wake_fd = None      # set while its thread reads a connection itself
        self.reader = None

    def notify(self):
        m = self.mutex
        if m is None:
            self.count -= 1
            done = self.count == 0
        else:
            with m:
                self.count -= 1
                done = self.count == 0
        if done:
            self.lock.release()
            fd = self.wake_fd
            if fd is not None and _get_ident() != self.reader:
                try:
                    os.write(fd, b"\1")   # wake the thread out of its poll
                except OSError:
                    pass

    def finish(self):
        """Wake the thread now, however many objects are still missing (a get()
        of several objects raises as soon as one of them is an error)."""
        with self.mutex:
            if self.count <= 0:
                return
            self.count = 0
        self.lock.release()
        fd = self.wake_fd
        if fd is not None and _get_ident() != self.reader:
            try:
                os.write(fd, b"\1")
            except OSError:
                pass

    def wait(self, timeout):
        if timeout is None:
            return self.lock.acquire()
        return self.lock.acquire(timeout=max(timeout, 0))


class _WakePipe:
    """One per thread that reads replies itself: a pipe other threads write to
    wake it, and the poll set it waits on."""

    __slots__ = ("r", "w", "poll", "view")

    def __init__(self):
        self.view = memoryview(bytearray(transport.RECV_SIZE))   # its receive buffer
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        os.set_blocking(self.w, False)
        self.poll = select.poll()
        self.poll.register(self.r, select.POLLIN)

    def drain(self):
        try:
            while os.read(self.r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def __del__(self):
        for fd in (self.r, self.w):
            try:
                os.close(fd)
            except OSError:
                pass


class ObjectState:
    __slots__ = ("remote_nms", "blob", "waiters", "local_refs", "owned", "owner", "exported",
                 "borrowed", "contained", "segment_buf", "fetching", "is_token", "dropped")

    def __init__(self, owned, owner):
        self.blob = None          # None while pending
        self.waiters = []         # Waiter objects or callables
        self.local_refs = 0
        self.owned = owned
        self.owner = owner
        self.exported = False
        self.remote_nms = None    # other nodes' NMs this value must be published to
        self.borrowed = False     # a borrow is registered with the node manager
        self.contained = False    # the node manager holds inner refs for this value
        self.segment_buf = None
        self.fetching = False
        self.is_token = False
        self.dropped = False      # owner let go while the value was pending and exported


class TaskRecord:
    __slots__ = ("task_id", "fn", "args_blob", "arg_refs", "arg_values", "pins",
                 "opts", "return_ids", "retries_left", "worker",
                 "cancelled", "stream", "actor_id", "method", "queue", "seq", "sent_at",
                 "on_error", "live_returns", "then", "lineage_args")

    def __init__(self, task_id, fn, args_blob, arg_refs, pins, opts, return_ids):
        self.task_id = task_id
        self.fn = fn
        self.args_blob = args_blob
        self.arg_refs = arg_refs          # [(position, ObjectRef)] top-level args
        self.arg_values = None
        self.pins = pins                  # refs kept alive while the task runs
        self.opts = opts
        self.return_ids = return_ids
        self.retries_left = opts.max_retries
        self.worker = None
        self.cancelled = False
        self.stream = None
        self.actor_id = None
        self.method = None
        self.queue = None
        self.seq = 0
        self.sent_at = 0.0
        self.on_error = None
        self.then = None                  # what runs once the ref arguments resolve
        self.live_returns = 0             # lineage: its returns in the store still referenced
        self.lineage_args = ()            # lineage: (oid, owner) of its arguments, unpinned


class Stream:
    """The items of a streaming generator task, as they arrive."""

    __slots__ = ("task_id", "items", "finished", "waiters", "error_blob")

    def __init__(self, task_id):
        self.task_id = task_id
        self.items = []
        self.finished = False
        self.waiters = []
        self.error_blob = None


class LeasedWorker:
    __slots__ = ("worker_id", "address", "pid", "conn", "queue", "inflight", "fn_ids",
                 "idle_since", "returning", "gpu_ids", "last_progress", "stealing", "nm",
                 "send_lock")

    def __init__(self, worker_id, address, pid, queue):
        self.worker_id = worker_id
        self.address = address
        self.pid = pid
        self.conn = None
        self.queue = queue
        self.inflight = {}
        self.fn_ids = set()
        self.idle_since = None
        self.returning = False
        self.gpu_ids = ()
        self.last_progress = 0.0   # when it last finished a task (or got one while idle)
        self.stealing = False
        self.nm = None             # the node manager that leased it, if not ours (a Connection)
        # Frames are built and written under this lock: a frame carries a function's
        # pickle only the first time (fn_ids), so two threads pumping the same worker
        # must not let the frame without the pickle overtake the one with it.
        self.send_lock = threading.Lock()


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
        self.lease_requests = 0
        self.lease_req_ids = set()   # request ids of leases asked for, not yet answered


class ActorQueue:
    """Calls to one actor from this process, sent in submission order."""

    __slots__ = ("actor_id", "state", "address", "conn", "pending", "inflight",
                 "subscribed", "cause", "max_task_retries", "num_restarts", "connecting")

    def __init__(self, actor_id, max_task_retries=0):
        self.actor_id = actor_id
        self.state = "UNKNOWN"
        self.address = None
        self.conn = None
        self.pending = collections.deque()
        self.inflight = {}
        self.subscribed = False
        self.cause = None
        self.max_task_retries = max_task_retries
        self.num_restarts = 0
        self.connecting = False


class CoreClient:
    def __init__(self, kind, nm_socket, job_config, worker_id=None, push_handlers=None):
        self.kind = kind
        self.push_handlers = push_handlers or {}
        self.client_id = ids.new_unique_id(12)
        self.worker_id = worker_id
        self.lock = threading.Lock()
        self.objects = {}
        self.deps = _ext.deps.DependencyTable()   # tasks waiting for ref arguments
        self.release_queue = collections.deque()
        self.tasks = {}
        # Lineage (as Ray's owner keeps it): finished tasks whose results live in
        # the object store, kept while those results are referenced, so a lost
        # copy can be rebuilt by running the task again (see _reconstruct).
        self.lineage = {}
        # Objects whose store copy was lost before the reply of the run that wrote
        # it reached us (see _reconstruct): rebuilt as soon as that reply arrives.
        self._lost_before_reply = set()
        self.infeasible = {}     # (resources, pg) -> the node manager's warning text
        self.nm_lost = False     # the node manager died under us
        self.queues = {}
        self.actor_queues = {}
        self.streams = {}
        self.requests = {}
        self.req_seq = itertools.count(1)
        self.put_index = 0
        self.shutting_down = False
        self.seg_seq = itertools.count(1)
        self.log_handler = None
        self.callback_executor = None
        self.blocked_depth = 0
        self.lease_pressure_until = 0.0
        self.creation_pins = {}
        self.inherited_env = None      # worker: the runtime_env env_vars it runs with
        self.blocked_in_task = False   # worker: did the current task block in get/wait?
        self.current_task = threading.local()
        self.last_actor_call = None    # (its object id, ActorQueue): see _read_direct
        # The return id of the last task submitted (never its state: a state can hold
        # a segment's mapping, which must go with the last ref).
        self._last_task_oid = None
        self.sticky = set()            # connections a caller left muted (_read_direct)
        self.loop = transport.Loop(f"minray-{kind}-io")
        self._dirty_queues = set()
        self.loop.batch_end = self._pump_dirty
        self.loop.start()
        self.job_config = job_config
        self.remote_nms = {}          # "tcp://ip:port" -> Connection to another node's NM
        self.remote_owners = {}       # owner client id -> its node manager's address
        self.write_maps = {}          # segment name -> mmap we wrote (see _keep_write_map)
        self.cluster_token = None     # read on first use (cluster.py, node.read_cluster_token)
        self.nm = transport.Connection(transport.connect_unix(nm_socket))
        self.loop.add_connection(self.nm, self._on_nm_frame, self._on_nm_closed)
        self.info = self.call("register_client", kind, self.client_id, os.getpid(),
                              worker_id, job_config)
        self.job_id = self.info["job_id"]
        store = self.info.get("resources", {}).get("object_store_memory", 0)
        # Drivers only: a pool of workers each keeping mappings could pin too much.
        self.write_map_budget = min(WRITE_MAP_BYTES, int(store) // 4) \
            if kind == "driver" else 0
        self.node_id = self.info["node_id"]
        self.nm_address = self.info.get("nm_address")   # "ip:port" in a cluster
        self.segment_prefix = f"{self.info['segment_prefix']}{os.getpid()}_"
        self.loop.call_later(0.1, self._periodic)
        task_events.attach(self)   # task events: buffered here, flushed every second

    # ================================================================ NM calls
    def call(self, method, *args, timeout=None):
        """A request to the node manager, waiting for its reply."""
        box = [None, None]
        waiter = Waiter(1)

        def done(ok, value):
            box[0], box[1] = ok, value
            waiter.notify()
        req_id = next(self.req_seq)
        self.requests[req_id] = done
        try:
            self.nm.send(P.REQUEST, (req_id, method, args))
        except transport.ConnectionClosed:
            self.requests.pop(req_id, None)
            raise exceptions.RaySystemError("the node manager is gone (minray was shut down "
                                            "or its node died)") from None
        if not waiter.wait(timeout):
            self.requests.pop(req_id, None)
            raise exceptions.GetTimeoutError(f"no reply to {method} within {timeout}s")
        if box[0]:
            return box[1]
        raise box[1]

    def call_async(self, method, args, callback, req_id=None, conn=None):
        """A request whose reply runs ``callback(ok, value)`` on the I/O thread
        (to our node manager, or to ``conn``: another node's)."""
        if req_id is None:
            req_id = next(self.req_seq)
        self.requests[req_id] = callback
        conn = conn or self.nm
        if conn is not self.nm:
            conn.info.setdefault("req_ids", set()).add(req_id)
        try:
            conn.send(P.REQUEST, (req_id, method, args))
        except transport.ConnectionClosed:
            self.requests.pop(req_id, None)
            callback(False, exceptions.RaySystemError("the node manager is gone"))
        return req_id

    def notice(self, method, *args):
        try:
            self.nm.send(P.NOTICE, (method, args))
        except transport.ConnectionClosed:
            pass

    def notice_to(self, conn, method, *args):
        """A notice to ``conn`` (another node's NM), or to ours when None."""
        if conn is None:
            return self.notice(method, *args)
        try:
            conn.send(P.NOTICE, (method, args))
        except transport.ConnectionClosed:
            pass

    # ============================================================ other nodes
    def _token(self):
        if self.cluster_token is None:
            from minray._private.node import launch as node
            self.cluster_token = node.read_cluster_token(self.info.get("session_dir")) or ""
        return self.cluster_token

    def _remote_nm(self, address):
        """A connection to another node's node manager (TCP, token proven), registered
        as a client there so its workers' logs come back to us."""
        conn = self.remote_nms.get(address)
        if conn is not None and not conn.closed:
            return conn
        sock = transport.connect(address, self._token(), timeout=5)
        conn = transport.Connection(sock)
        conn.info["address"] = address
        self.remote_nms[address] = conn
        self.loop.add_connection(conn, self._on_nm_frame, self._on_remote_nm_closed)
        if self.kind == "driver":
            config = dict(self.job_config or {})
        else:
            config = {"sys_path": list(sys.path), "cwd": os.getcwd(),
                      "env_vars": self.inherited_env}
        self.call_async("register_client", ("driver", self.client_id, os.getpid(), None,
                                            config), lambda ok, v: None, conn=conn)
        return conn

    def _on_remote_nm_closed(self, conn):
        """Another node went away: its pending lease requests fail (and are retried)."""
        self.remote_nms.pop(conn.info.get("address"), None)
        err = exceptions.WorkerCrashedError("the node that was to run the task died")
        for req_id in conn.info.get("req_ids", ()):
            cb = self.requests.pop(req_id, None)
            if cb is not None:
                cb(False, err)

    def _lease_elsewhere(self, q, address):
        """The node manager sent this lease request on: ask that node instead."""
        try:
            conn = self._remote_nm(address)
        except (OSError, transport.AuthenticationError) as exc:
            if not self.shutting_down:
                logging.getLogger("minray.client").warning("cannot reach the node at %s for a "
                                                       "lease: %s", address, exc)
            self.loop.call_later(0.2, self._pump, q)
            return
        req_id = next(self.req_seq)
        with self.lock:
            q.lease_requests += 1
            q.lease_req_ids.add(req_id)
        self.call_async("request_lease", (q.resources, q.pg, q.env_key, q.env_vars),
                        lambda ok, v, q=q, r=req_id, c=conn: self._on_lease(q, r, ok, v, c),
                        req_id=req_id, conn=conn)

    def _on_nm_frame(self, conn, kind, msg):
        if kind == P.REPLY:
            req_id, ok, value = msg
            cb = self.requests.pop(req_id, None)
            if cb is not None:
                cb(ok, value)
        elif kind == P.PUSH:
            event, args = msg
            handler = self.push_handlers.get(event) or getattr(self, "_push_" + event, None)
            if handler is not None:
                handler(*args)

    def _on_nm_closed(self, conn):
        if self.shutting_down:
            return
        err = exceptions.RaySystemError("lost the connection to the node manager")
        for cb in list(self.requests.values()):
            try:
                cb(False, err)
            except Exception:
                pass
        self.requests.clear()
        if self.kind == "worker":
            os._exit(1)
        # The node died with every worker and actor: fail what is pending, so that
        # get() raises instead of waiting for results that can never come.
        self.nm_lost = True
        self._fail_all_pending(serialization.error_blob(exceptions.RaySystemError(
            "lost the connection to the node manager: it died (killed, or crashed; see "
            "node_manager.log in the session directory) and took its workers and actors "
            "with it. Call ray.shutdown() and ray.init() to start again.")))

    def _fail_all_pending(self, blob):
        with self.lock:
            recs = [r for r in self.tasks.values()]
            for q in self.queues.values():
                q.tasks.clear()
            for aq in self.actor_queues.values():
                aq.pending.clear()
                aq.inflight.clear()
                aq.state, aq.cause = "DEAD", blob
        for rec in recs:
            self._finish_with_error(rec, blob)

    def _push_warning(self, text):
        logging.getLogger("minray.client").warning("%s", text)

    def _push_infeasible(self, resources, pg, text):
        self.infeasible[(tuple(sorted(resources.items())), pg)] = text
        logging.getLogger("minray.client").warning("%s", text)

    def _infeasible_reason(self, refs):
        """The infeasibility warning about one of ``refs``' pending tasks, if any."""
        if not self.infeasible:
            return None
        for r in refs:
            rec = self.tasks.get(r._id[:16])
            if rec is not None and rec.actor_id is None:
                key = (tuple(sorted(rec.opts.resources.items())), rec.opts.pg)
                if key in self.infeasible:
                    return self.infeasible[key]
        return None

    def _push_logs(self, records):
        handler = self.log_handler
        for pid, name, is_err, lines in records:
            prefix = f"({name} pid={pid}) " if name else f"(pid={pid}) "
            text = "".join(prefix + line + "\n" for line in lines)
            if handler is not None:
                handler(pid, name, is_err, lines)
                continue
            stream = sys.stderr if is_err else sys.stdout
            try:
                stream.write(text)
                stream.flush()
            except Exception:
                pass

    def _push_revoke_idle(self):
        # Others wait for resources: for a while, hand back workers as soon as idle.
        self.lease_pressure_until = time.monotonic() + 1.0
        for q in list(self.queues.values()):
            for w in list(q.workers):
                if not w.inflight and not q.tasks:
                    self._return_lease(w)

    def _periodic(self):
        if self.shutting_down:
            return
        self.drain_releases()
        now = time.monotonic()
        pnow = time.perf_counter()
        for q in list(self.queues.values()):
            for w in list(q.workers):
                if not w.inflight and w.idle_since is not None and \
                        now - w.idle_since > IDLE_LEASE_S and not q.tasks:
                    self._return_lease(w)
                elif len(w.inflight) > 1 and not w.stealing:
                    self._maybe_steal(w, pnow)
        self._unstick(only_busy=True)   # replies nobody reads (see _read_direct)
        self.loop.call_later(0.05, self._periodic)

    def _maybe_steal(self, w, now):
        """Take back the tasks queued behind an overrunning one (see STEAL_AFTER_S)."""
        recs = list(w.inflight.values())
        running = recs[0]
        if now - w.last_progress < max(STEAL_AFTER_S, STEAL_FACTOR * running.fn.avg_s):
            return
        running.fn.blocks = True   # its duration is not predictable: stop pipelining it
        w.stealing = True
        self.notice_to(w.nm, "steal_tasks", w.worker_id, [r.task_id for r in recs[1:]],
                    self.client_id)

    def _on_stolen(self, w, task_ids):
        with self.lock:
            w.stealing = False
            recs = [w.inflight.pop(t) for t in task_ids if t in w.inflight]
            q = w.queue
            q.tasks.extendleft(reversed(recs))   # back at the front, in order
        for rec in recs:
            rec.worker = None
        self._pump(q)

    # ========================================================= reference counts
    def add_local_ref(self, oid):
        with self.lock:
            st = self.objects.get(oid)
            if st is not None:
                st.local_refs += 1

    def new_owned_ref(self, oid):
        st = ObjectState(True, self.client_id)
        with self.lock:
            self.objects[oid] = st
        return ObjectRef(oid, self.client_id, self)

    def deserialize_ref(self, oid, owner):
        """A ref arrived inside a value: count it and, if we do not own it, borrow it."""
        register = False
        with self.lock:
            st = self.objects.get(oid)
            if st is None:
                # Not known here (or our own state was freed while the value that
                # contains it lived on): borrow it like anyone else's.
                st = self.objects[oid] = ObjectState(False, owner)
            if not st.owned and not st.borrowed:
                st.borrowed = register = True
        if register:
            if threading.current_thread() is self.loop.thread:
                # Never block the I/O thread on a reply only it can read.
                self.call_async("borrow", ([oid],), lambda ok, v: None)
            else:
                self.call("borrow", [oid])
        return ObjectRef(oid, owner, self)

    def drain_releases(self):
        rq = self.release_queue
        if not rq:
            return
        owner_release, unborrow, release_holds, forgotten = [], [], [], []
        elsewhere = []   # (node manager address, oid): released in another node's store
        with self.lock:
            while rq:
                oid = rq.popleft()
                st = self.objects.get(oid)
                if st is None:
                    continue
                st.local_refs -= 1
                if st.local_refs > 0:
                    continue
                if st.blob is None and st.owned and st.exported:
                    # Others hold it and wait for its value: keep the state until the
                    # value arrives and is published (see _complete), then let go.
                    st.dropped = True
                    continue
                del self.objects[oid]
                if st.owned:
                    if st.exported or st.is_token or (st.blob is not None and
                                                      st.blob[0] == TAG_SHM):
                        owner_release.append(oid)
                        if st.blob is not None and st.blob[0] == TAG_SHM:
                            forgotten.append(self._forget_lineage(oid))
                            where = serialization.remote_address(st.blob)
                            if where is not None:
                                elsewhere.append((where, oid))
                    if st.contained:
                        release_holds.append(oid)
                elif st.borrowed:
                    unborrow.append(oid)
        if owner_release:
            self.notice("owner_release", owner_release)
        if release_holds:
            self.notice("release_holds", release_holds)
        if unborrow:
            self.notice("unborrow", unborrow)
        for where, oid in elsewhere:
            # The primary copy is there; that node tells the nodes that copied it.
            try:
                self.notice_to(self._remote_nm("tcp://" + where), "owner_release", [oid])
            except (OSError, transport.AuthenticationError):
                pass   # that node is gone, and its copy with it
        # The forgotten tasks' pinned arguments are released (outside the lock).
        del forgotten

    def _forget_lineage(self, oid):
        """A result in the store was freed (lock held); drop its task's lineage with
        the last one. Returns the record dropped (release it outside the lock)."""
        rec = self.lineage.get(oid[:16])
        if rec is not None:
            rec.live_returns -= 1
            if rec.live_returns <= 0:
                return self.lineage.pop(oid[:16])
        return None

    def export_refs(self, refs):
        """Refs are leaving this process inside a value: make them findable by others."""
        self._unstick()   # others may wait for these values: read every reply
        publish = []
        with self.lock:
            for ref in refs:
                st = self.objects.get(ref._id)
                if st is None or not st.owned or st.exported:
                    continue
                st.exported = True
                publish.append((ref._id, st.blob))
        for oid, blob in publish:
            self.notice("publish", oid, self.client_id, blob)
        remote = getattr(self.current_task, "remote_conn", None)
        if remote is not None:
            for oid, blob in publish:
                if blob is None:
                    # Not computed yet: the submitter asks our node manager for it
                    # (published there when it completes), even after we are gone.
                    try:
                        remote.send(P.VALUE, (oid, self.client_id, None,
                                              getattr(self, "nm_tcp", None)))
                    except transport.ConnectionClosed:
                        pass
                    continue
                self._publish_remote(oid, blob, (("value", remote),))

    # ================================================================== objects
    def _store_value(self, oid, value, owner):
        """Serialize a value that will be object ``oid`` (owned by ``owner``).

        Returns (blob, has_contained_refs).  Large values go to shared memory
        and are sealed with the node manager.
        """
        sv = serialization.serialize(value)
        contained = False
        if sv.refs:
            self.export_refs(sv.refs)
            self.call("hold", [r._id for r in sv.refs], oid)
            contained = True
        remote = getattr(self.current_task, "force_inline", False)
        if not sv.is_large() or (remote and (self.nm_address is None or
                                             sv.shm_size() <= P.TRANSFER_CHUNK_BYTES)):
            return sv.to_inline(), contained
        blob = self._write_segment(oid, sv, owner)
        if remote:
            # For a submitter on another node: it stays in this node's store, and that
            # node pulls a copy when something there needs it.
            blob = serialization.remote_blob(len_of_shm(blob), self.nm_address)
        return blob, contained

    def _write_segment(self, oid, sv, owner):
        """Write a large value into shared memory and seal it; returns its S blob."""
        size = sv.shm_size()
        name = self.call("alloc_segment", size) if size >= POOL_MIN_BYTES else None
        buf = None
        if name is not None:
            buf = self.write_maps.pop(name, None)
            if buf is None:
                try:
                    buf = shm.open_rw(name)
                except FileNotFoundError:   # removed from /dev/shm by someone else
                    name = None
            if buf is not None:
                size = len(buf)
        if name is None:
            name = f"{self.segment_prefix}{next(self.seg_seq)}"
            _check_shm_space(size)
            buf = shm.create(name, size)
        try:
            sv.write_to(buf)
        finally:
            self._keep_write_map(name, buf)
        self.notice("seal", oid, name, size, owner)
        return serialization.shm_blob(size) + name.encode()

    def _keep_write_map(self, name, buf):
        """Keep a large segment we wrote mapped, for when the pool hands it back.

        Mapping 100 MiB costs as much as writing it (25,600 page-table entries, even
        with MAP_POPULATE), so a producer that puts large objects in a loop keeps its
        last few mappings. Safe: the node manager gives a pooled name to one writer
        at a time, only when nobody maps it, and names are never reused after
        removal. Bounded (WRITE_MAP_BYTES), oldest first out, closed at shutdown.
        """
        size = len(buf)
        if size < WRITE_MAP_MIN or size > self.write_map_budget:
            buf.close()
            return
        self.write_maps[name] = buf
        total = sum(len(b) for b in self.write_maps.values())
        while total > self.write_map_budget or len(self.write_maps) > WRITE_MAP_COUNT:
            old_name, old = next(iter(self.write_maps.items()))
            del self.write_maps[old_name]
            total -= len(old)
            old.close()

    def put(self, value, _owner=None):
        if isinstance(value, ObjectRef):
            raise TypeError("Calling put() on an ObjectRef is not allowed: put the value, "
                            "or pass the ref itself (refs can be nested in lists and dicts).")
        self.drain_releases()
        task_id = ids.new_task_id()
        oid = ids.object_id_for(task_id, 0)
        ref = self.new_owned_ref(oid)
        blob, contained = self._store_value(oid, value, self.client_id)
        self._complete(oid, blob, contained)
        return ref

    def _complete(self, oid, blob, contained=False):
        """An owned object got its value (I/O thread or caller thread)."""
        if blob[0] == TAG_DYNAMIC:
            blob = self._dynamic_value(oid, blob)
        with self.lock:
            st = self.objects.get(oid)
            if st is not None:
                if st.blob is not None:
                    return  # already complete (a duplicate reply)
                st.blob = blob
                st.contained = contained
                exported = st.exported
                waiters, st.waiters = st.waiters, []
            rebuild = False
            if self._lost_before_reply and oid in self._lost_before_reply:
                self._lost_before_reply.discard(oid)
                if st is not None and blob[0] == TAG_SHM:
                    st.waiters = waiters    # they wait for the rebuilt value
                    rebuild = True
        if rebuild:
            # The copy this reply points to is gone already: run the task again.
            self._reconstruct(oid)
            return
        if st is None:
            # Nobody refers to it anymore: free what the value holds.
            if blob[0] == TAG_SHM:
                self.notice("owner_release", [oid])
            if contained:
                self.notice("release_holds", [oid])
            return
        if st.remote_nms:
            self._publish_remote(oid, blob, st.remote_nms)
        if exported:
            self.notice("publish", oid, self.client_id, blob)
            if st.dropped:
                with self.lock:
                    if self.objects.get(oid) is st and st.local_refs <= 0:
                        del self.objects[oid]
                        if blob[0] == TAG_SHM:
                            forgotten = self._forget_lineage(oid)  # noqa: F841 (released here)
                self.notice("owner_release", [oid])
                if contained:
                    self.notice("release_holds", [oid])
        for w in waiters:
            if type(w) is Waiter:
                w.notify()
            else:
                w(oid)

    def _dynamic_value(self, oid, blob):
        """A dynamic generator's items arrived: own each, and make the generator value."""
        from minray._private.core.object_ref import DynamicObjectRefGenerator
        items = serialization.loads_inline(b"P" + bytes(blob[1:]))
        refs = []
        for item_oid, item_blob, item_contained in items:
            refs.append(self.new_owned_ref(item_oid))
            self._complete(item_oid, item_blob, item_contained)
        sv = serialization.serialize(DynamicObjectRefGenerator(refs))
        self.export_refs(sv.refs)
        if sv.refs:
            # The generator value holds its items, like any value holding refs.
            self.call_async("hold", ([r._id for r in sv.refs], oid), lambda ok, v: None)
        return sv.to_inline()

    def _fetch_borrowed(self, oid):
        """Ask the node manager for a value we do not own (once)."""
        with self.lock:
            st = self.objects.get(oid)
            if st is None or st.fetching or st.blob is not None:
                return
            st.fetching = True
            via = self.remote_owners.get(st.owner)

        def got(ok, value):
            if ok:
                blob = _blob_from_location(value)
            else:
                blob = serialization.error_blob(value)
            with self.lock:
                st2 = self.objects.get(oid)
                if st2 is None or st2.blob is not None:
                    return
                st2.blob = blob
                st2.fetching = False
                waiters, st2.waiters = st2.waiters, []
            for w in waiters:
                if type(w) is Waiter:
                    w.notify()
                else:
                    w(oid)
        conn = None
        if via is not None:
            try:
                conn = self._remote_nm(via)
            except (OSError, transport.AuthenticationError) as exc:
                got(False, exceptions.OwnerDiedError(oid.hex()))
                del exc
                return
        self.call_async("get_object", (oid,), got, conn=conn)

    def _state_for_wait(self, ref):
        st = self.objects.get(ref._id)
        if st is None:
            # A ref whose state was dropped (e.g. built by hand): treat as borrowed.
            st = self.objects[ref._id] = ObjectState(ref._owner == self.client_id, ref._owner)
            st.local_refs = 0
        return st

    def get(self, refs, timeout=None):
        if self.release_queue:
            self.drain_releases()
        if type(refs) is ObjectRef:   # one ref: the common case, without lists
            st = self.objects.get(refs._id)
            if st is None or st.blob is None:
                self._wait_ready((refs,), 1, timeout, for_get=True)
            return self._deserialize(refs)
        refs, single = validation.check_get_refs(refs)
        failed = self._wait_ready(refs, len(refs), timeout, for_get=True)
        if type(failed) is ObjectRef:
            self._deserialize(failed)     # raises its error; the rest may still run
        values = [self._deserialize(r) for r in refs]
        return values[0] if single else values

    def _wait_ready(self, refs, num, timeout, for_get):
        fetch = []
        with self.lock:
            pending = []
            ready = 0
            for r in refs:
                st = self._state_for_wait(r)
                if st.blob is None:
                    pending.append(st)
                    if not st.owned:
                        fetch.append(r._id)
                else:
                    if for_get and st.blob[0] == TAG_ERROR:
                        return r      # get() raises as soon as one object is an error
                    ready += 1
            need = num - ready
            if need <= 0:
                return True
            waiter = Waiter(need)
            if for_get and need > 1:
                # Several to go: the first error wakes the caller at once (as Ray).
                waiter.mutex = waiter.mutex or threading.Lock()
                objects = self.objects

                def arrived(oid, _waiter=waiter):
                    st = objects.get(oid)
                    if st is not None and st.blob is not None and st.blob[0] == TAG_ERROR:
                        _waiter.finish()
                    else:
                        _waiter.notify()
                for st in pending:
                    st.waiters.append(arrived)
            else:
                arrived = waiter
                for st in pending:
                    st.waiters.append(waiter)
            direct = None
            if need == 1 and len(pending) == 1 and pending[0].owned:
                direct = self._reply_conn(pending[0])
        for oid in fetch:
            self._fetch_borrowed(oid)
        if direct is None or direct.rlock is None:
            self._unstick()
        blocked = self._enter_blocked()
        try:
            ok = None
            if direct is not None and direct.rlock is not None:
                ok = self._read_direct(direct, waiter, timeout)
            if ok is None:
                self._unstick()
                ok = waiter.wait(timeout)
        finally:
            if blocked:
                self._exit_blocked()
        if not ok:
            with self.lock:
                for st in pending:
                    try:
                        st.waiters.remove(arrived)
                    except ValueError:
                        pass
            if for_get:
                err = validation.get_timeout_error(timeout, need, len(refs))
                why = self._infeasible_reason(refs)
                if why:
                    err = exceptions.GetTimeoutError(
                        f"{err} A task it waits for can never be scheduled: "
                        f"{why.replace('Warning: ', '', 1)}")
                raise err
            return False
        if for_get and need > 1:
            with self.lock:
                for r in refs:
                    st = self.objects.get(r._id)
                    if st is not None and st.blob is not None and st.blob[0] == TAG_ERROR:
                        return r
        return True

    def _reply_conn(self, st):
        """The connection the value of owned, pending ``st`` will arrive on, if known
        (lock held): the actor of the last call, or the worker running its task."""
        lc = self.last_actor_call
        if lc is not None and self.objects.get(lc[0]) is st:
            return lc[1].conn
        oid = self._last_task_oid
        if oid is not None and self.objects.get(oid) is st:
            rec = self.tasks.get(oid[:16])
            w = rec.worker if rec is not None else None
            return w.conn if w is not None else None
        return None

    def _read_direct(self, conn, waiter, timeout):
        """Wait for ``waiter`` by reading ``conn`` (an actor's socket) on this thread.

        A synchronous actor call's reply would otherwise wake the I/O thread,
        which then wakes this one.  Here the caller takes the connection from the
        loop (``Loop.detach``), polls it together with its wake pipe (other
        threads that complete the object, or close the connection, write there),
        runs the frames' handlers itself, and gives the connection back.
        Returns True/False like ``Waiter.wait``, or None when the connection could
        not be taken (then wait as usual).
        """
        rl = conn.rlock
        if _get_ident() == self.loop.thread.ident or not rl.acquire(False):
            return None
        loop = self.loop
        # Mute state changes only under self.lock: conn.muted says whether the loop
        # has stopped watching it; self.sticky holds the muted ones nobody reads.
        with self.lock:
            self.sticky.discard(conn)
            if not conn.muted:
                conn.muted = loop.detach(conn)
            taken = conn.muted
        if not taken:
            rl.release()
            return None
        tl = self.current_task
        wake = getattr(tl, "wake", None)
        if wake is None:
            wake = tl.wake = _WakePipe()
        poll = wake.poll
        fd = conn.fileno_
        poll.register(fd, select.POLLIN)
        waiter.reader = _get_ident()
        waiter.wake_fd = conn.direct_wake = wake.w
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0)
        ok = True
        try:
            while waiter.count > 0:
                if deadline is None:
                    events = poll.poll()
                else:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        ok = False
                        break
                    events = poll.poll(left * 1000.0)
                for efd, _ in events:
                    if efd == fd:
                        loop.read(conn, wake.view)
                        if self._dirty_queues:
                            self._pump_dirty()   # what the loop does after a batch
                    else:
                        wake.drain()
                if conn.close_requested or conn.sock is None:
                    break
        finally:
            poll.unregister(fd)
            waiter.wake_fd = conn.direct_wake = None
            if conn.close_requested and conn.sock is not None:
                loop.close_connection(conn)   # asked for while we read it
            # Nothing else in flight on it: leave it muted, betting that the next
            # call is waited for the same way (a synchronous loop then costs no
            # epoll change at all). Any other kind of wait unmutes it first
            # (_unstick), and so does _periodic as a safety net.
            with self.lock:
                if not _busy(conn) and conn.sock is not None and not conn.close_requested:
                    self.sticky.add(conn)
                else:
                    loop.attach(conn)
                    conn.muted = False
                rl.release()
        if ok and waiter.count > 0:
            return None   # the connection closed: its handlers settle the call
        if not ok:
            return False
        # Consume the wakeup the waiter's lock holds, as Waiter.wait would have.
        waiter.lock.acquire(False)
        return True

    def _unstick(self, only_busy=False):
        """Give the connections a caller left muted back to the I/O thread: some
        other wait (a future, a dependency, a borrower...) needs their replies read.
        A connection in ``sticky`` is never being read by a caller (a caller takes it
        out first, under the same lock), so it can be unmuted here at once."""
        if not self.sticky:
            return
        with self.lock:
            if only_busy:
                conns = [c for c in self.sticky if c.sock is None or _busy(c)]
                self.sticky.difference_update(conns)
            else:
                conns, self.sticky = list(self.sticky), set()
            for conn in conns:
                self.loop.attach(conn)
                conn.muted = False

    def _enter_blocked(self):
        if self.kind != "worker" or getattr(self.current_task, "task_id", None) is None:
            return False
        self.blocked_depth += 1
        self.blocked_in_task = True
        if self.blocked_depth == 1:
            self.notice("worker_blocked", self.worker_id)
        return True

    def _exit_blocked(self):
        self.blocked_depth -= 1
        if self.blocked_depth == 0:
            self.notice("worker_unblocked", self.worker_id)

    def _deserialize(self, ref):
        st = self.objects.get(ref._id)
        blob = st.blob
        while blob is None:
            # Its store copy was lost after we waited, and the task runs again.
            self._wait_ready((ref,), 1, None, for_get=True)
            blob = st.blob
        tag = blob[0]
        if tag == TAG_ERROR:
            err = serialization.loads_inline(blob)
            if isinstance(err, exceptions.RayTaskError):
                raise err.as_instanceof_cause()
            raise err
        if tag == TAG_SHM:
            buf = st.segment_buf
            if buf is None:
                buf = st.segment_buf = self._attach(ref._id, blob)
            return serialization.loads_segment(buf)
        return serialization.loads_inline(blob)

    def _attach(self, oid, blob):
        """Map an object's segment read-only; the node manager learns who maps what,
        so it never reuses a segment while a process (or a numpy view) still maps it.

        A segment that is gone was spilled (the node manager restores it), or lost:
        then the owner runs the task that made it again (lineage reconstruction)
        and waits here for the new copy, and a borrower's request waits at the
        node manager until the owner has rebuilt it.
        """
        name = bytes(blob[9:]).decode()
        if not name or name[0] == "@":
            # In another node's store (or somewhere our node manager knows): it pulls
            # a copy into this node's store, once, and we map that copy.
            buf, name = self._locate_and_attach(oid, blob)
            weakref.finalize(buf, self._unmapped, name)
            return buf
        self.notice("mapped", name)
        try:
            buf = shm.attach(name)
        except FileNotFoundError:
            self.notice("unmapped", name)
            buf, name = self._locate_and_attach(oid)
        weakref.finalize(buf, self._unmapped, name)
        return buf

    def _locate_and_attach(self, oid, blob=None):
        blocked = self._enter_blocked()
        try:
            for _ in range(100):
                if blob is not None and serialization.remote_address(blob):
                    with self.lock:
                        st = self.objects.get(oid)
                        owner = st.owner if st is not None else None
                    self.notice("publish", oid, owner, bytes(blob))
                loc = self.call("get_object", oid)
                if loc[0] == "lost":
                    self._reconstruct(oid)
                    blob = self._wait_owned_blob(oid)
                    if blob[0] == TAG_SHM:
                        continue   # rebuilt: ask where the new copy is
                    loc = ("inline", blob)
                if loc[0] == "inline":
                    blob = loc[1]
                    if blob[0] == TAG_ERROR:
                        err = serialization.loads_inline(blob)
                        if isinstance(err, exceptions.RayTaskError):
                            raise err.as_instanceof_cause()
                        raise err
                    raise exceptions.ObjectLostError(oid.hex())
                name = loc[1]
                self.notice("mapped", name)
                try:
                    return shm.attach(name), name
                except FileNotFoundError:
                    self.notice("unmapped", name)   # lost again meanwhile: once more
            raise exceptions.ObjectLostError(oid.hex())
        finally:
            if blocked:
                self._exit_blocked()

    def _wait_owned_blob(self, oid):
        with self.lock:
            st = self.objects.get(oid)
            if st is None:
                raise exceptions.ObjectLostError(oid.hex())
            if st.blob is not None:
                return st.blob
            waiter = Waiter(1)
            st.waiters.append(waiter)
        waiter.wait(None)
        return st.blob

    def _unmapped(self, name):
        if not self.shutting_down:
            self.notice("unmapped", name)

    def wait(self, refs, num_returns=1, timeout=None, fetch_local=True):
        self.drain_releases()
        if not validation.check_wait_args(refs, num_returns, timeout):
            return [], []
        self._wait_ready(refs, num_returns, timeout, for_get=False)
        ready, not_ready = [], []
        with self.lock:
            for r in refs:
                st = self.objects.get(r._id)
                if st is not None and st.blob is not None and len(ready) < num_returns:
                    ready.append(r)
                else:
                    not_ready.append(r)
        return ready, not_ready

    def on_ready(self, ref, future):
        """Complete a concurrent Future with ``ref``'s value once it is ready."""
        def fire(_oid=None):
            try:
                future.set_result(self._deserialize(ref))
            except BaseException as exc:  # the task's error, delivered to the future
                future.set_exception(exc)

        def fire_off_loop(_oid):
            # Deserializing may call the node manager; never block the I/O thread on it.
            self._callbacks().submit(fire)
        with self.lock:
            st = self._state_for_wait(ref)
            ready = st.blob is not None
            if not ready:
                st.waiters.append(fire_off_loop)
                owned = st.owned
        if ready:
            fire()
            return
        self._unstick()
        if not owned:
            self._fetch_borrowed(ref._id)

    def _callbacks(self):
        ex = self.callback_executor
        if ex is None:
            import concurrent.futures
            with self.lock:
                if self.callback_executor is None:
                    self.callback_executor = concurrent.futures.ThreadPoolExecutor(
                        1, thread_name_prefix="minray-callbacks")
                ex = self.callback_executor
        return ex

    def is_ready(self, ref):
        st = self.objects.get(ref._id)
        return st is not None and st.blob is not None

    # ================================================================== tasks
    def _prepare_args(self, args, kwargs):
        """Pickle (args, kwargs); top-level refs become placeholders resolved at dispatch."""
        args, kwargs, arg_refs = call_args.placeholders(args, kwargs, ObjectRef)
        if not args and not kwargs:
            return _EMPTY_ARGS, arg_refs, []
        try:
            sv = serialization.serialize((args, kwargs))
        except TypeError as exc:
            raise _argument_error(args, kwargs, exc) from exc.__cause__
        pins = list(sv.refs)
        if sv.refs:
            self.export_refs(sv.refs)
        if sv.is_large():
            # Large arguments travel through the object store, like ray.put.
            task_id = ids.new_task_id()
            oid = ids.object_id_for(task_id, 0)
            ref = self.new_owned_ref(oid)
            blob = self._write_segment(oid, sv, self.client_id)
            self._complete(oid, blob)
            pins.append(ref)
            return (oid, blob), arg_refs, pins
        return sv.to_inline(), arg_refs, pins

    def _captured(self, opts):
        """``opts``, or the same inside the caller's placement group when the calling
        task captures its child tasks (placement_group_capture_child_tasks)."""
        ctx = getattr(self.current_task, "ctx", None)
        if ctx is not None and ctx.capture and ctx.placement_group_id:
            return opts.in_group(ctx.placement_group_id)
        return opts

    def submit_task(self, fn, args, kwargs, opts):
        self.drain_releases()
        if opts.capturable and self.kind == "worker":
            opts = self._captured(opts)
        task_id = ids.new_task_id()
        args_blob, arg_refs, pins = self._prepare_args(args, kwargs)
        streaming = opts.num_returns == "streaming"
        n = 0 if streaming else (1 if opts.num_returns == "dynamic" else opts.num_returns)
        return_ids = [ids.object_id_for(task_id, i + 1) for i in range(n)]
        refs = [self.new_owned_ref(oid) for oid in return_ids]
        rec = TaskRecord(task_id, fn, args_blob, arg_refs, pins, opts, return_ids)
        if streaming:
            rec.stream = self.streams[task_id] = Stream(task_id)
        self.tasks[task_id] = rec
        task_events.submitted(task_id, opts.name, fn.name, task_events.NORMAL_TASK, None,
                              bool(arg_refs), opts.resources)
        if n == 1:
            self._last_task_oid = return_ids[0]   # what _reply_conn looks for next
        self._resolve_then(rec, self._enqueue_task)
        if streaming:
            return ObjectRefGenerator(task_id, self, rec.stream)
        if n == 1:
            return refs[0]
        return refs or None

    def _resolve_then(self, rec, then):
        """Call ``then(rec)`` once every top-level ref argument has a value.

        The counting lives in ``self.deps`` (minray._ext.deps, compiled): one
        subscription per object however many tasks wait for it.
        """
        if not rec.arg_refs:
            then(rec)
            return
        fetch = []
        with self.lock:
            missing = []
            for _, ref in rec.arg_refs:
                st = self._state_for_wait(ref)
                if st.blob is None:
                    missing.append(ref._id)
            if missing:
                rec.then = then
                for oid in self.deps.watch(rec, missing):
                    st = self.objects[oid]
                    st.waiters.append(self._dep_ready)
                    if not st.owned:
                        fetch.append(oid)
        for oid in fetch:
            self._fetch_borrowed(oid)
        if not missing:
            self._args_ready(rec, then)
        else:
            self._unstick()   # its arguments' replies must be read without a get()

    def _dep_ready(self, oid):
        with self.lock:
            ready = self.deps.resolve(oid)
        for rec in ready:
            self._args_ready(rec, rec.then)

    def _args_ready(self, rec, then):
        values = []
        for pos, ref in rec.arg_refs:
            blob = self.objects[ref._id].blob
            if blob[0] == TAG_ERROR:
                # An argument failed: this task fails with the same error, unrun.
                aq = self.actor_queues.get(rec.actor_id) if rec.actor_id else None
                if aq is not None:
                    # An ordered actor call: take it out of the queue, or the
                    # calls behind it would wait for its arguments forever.
                    with self.lock:
                        if rec in aq.pending:
                            aq.pending.remove(rec)
                self._finish_with_error(rec, blob)
                if aq is not None:
                    self._pump_actor(aq)
                return
            values.append((pos, ref._id, blob))
        rec.arg_values = values
        then(rec)

    def _scheduling_queue(self, opts):
        key = opts.scheduling_key
        env_vars, env_key = opts.env_vars, opts.env_key
        if env_vars is None and self.inherited_env:
            # A task submitted from a task inherits its parent's runtime_env (as Ray).
            env_vars, env_key = self.inherited_env, tuple(sorted(self.inherited_env.items()))
            key = key[:2] + (env_key,)
        q = self.queues.get(key)
        if q is None:
            q = self.queues[key] = SchedulingQueue(key, opts.resources, opts.pg,
                                                   env_key, env_vars)
        return q

    def _enqueue_task(self, rec):
        if rec.cancelled:
            return
        q = self._scheduling_queue(rec.opts)
        rec.queue = q
        with self.lock:
            q.tasks.append(rec)
        self._pump(q)

    def _pump(self, q):
        sends = []
        now = time.perf_counter()
        with self.lock:
            while q.tasks:
                best = None
                head = q.tasks[0]
                depth = PIPELINE_DEPTH if head.fn.pipelinable() and not head.opts.wire[4] \
                    else 1
                for w in q.workers:
                    n = len(w.inflight)
                    if w.conn is None or w.returning or n >= depth or w.stealing:
                        continue
                    if n and not all(r.fn.pipelinable() for r in w.inflight.values()):
                        continue  # never queue behind a task that may run long
                    if best is None or n < len(best.inflight):
                        best = w
                if best is None:
                    break
                rec = q.tasks.popleft()
                if rec.cancelled:
                    continue
                if not best.inflight:
                    best.last_progress = now
                best.inflight[rec.task_id] = rec
                best.idle_since = None
                rec.worker = best
                rec.sent_at = now
                sends.append((best, rec))
            want = min(len(q.tasks), MAX_LEASE_REQUESTS) - q.lease_requests
            if want > 0:
                q.lease_requests += want
                # Locality: where the head task's stored arguments are, and their sizes
                # ("ip:port" of another node's manager, or None for this node).
                head = q.tasks[0].arg_values
                arg_locs = [(serialization.remote_address(b), serialization.shm_size_of(b))
                            for _, _, b in head if b[0] == TAG_SHM] if head else ()
            withdraw = list(q.lease_req_ids) if not q.tasks and q.lease_req_ids else None
        for w, rec in sends:
            if rec.retries_left == 0:
                # The memory monitor spares workers whose task could not be retried.
                self.notice("unretriable_task", w.worker_id, rec.task_id, True)
        if self.sticky and (q.tasks or any(len(w.inflight) > 1 for w, _ in sends)):
            self._unstick()   # not a lone synchronous task: the I/O thread reads replies
        if len(sends) == 1:
            self._send_task(*sends[0])
        elif sends:
            by_worker = {}
            for w, rec in sends:
                by_worker.setdefault(w, []).append(rec)
            for w, recs in by_worker.items():
                with w.send_lock:
                    frames = [self._task_frame(w, rec) for rec in recs]
                    try:
                        w.conn.send_bytes(b"".join(frames))
                    except transport.ConnectionClosed:
                        pass  # the close handler retries or fails them
        if want > 0:
            for _ in range(want):
                req_id = next(self.req_seq)
                q.lease_req_ids.add(req_id)
                self.call_async("request_lease", (q.resources, q.pg, q.env_key, q.env_vars,
                                                  arg_locs),
                                lambda ok, v, q=q, r=req_id: self._on_lease(q, r, ok, v),
                                req_id=req_id)
        elif withdraw:
            # Nothing left to run: leases still asked for would only sit at the node
            # manager and make it reclaim idle workers (ours included) for nobody.
            self.notice("cancel_lease_requests", withdraw)

    def _task_frame(self, w, rec):
        fn = rec.fn
        fn_blob = None
        if fn.fn_id not in w.fn_ids:
            w.fn_ids.add(fn.fn_id)
            fn_blob = fn.blob
        o = rec.opts
        task_events.dispatched(rec.task_id, w.worker_id)
        args_blob, arg_values = rec.args_blob, rec.arg_values
        if w.nm is not None:
            # Another node cannot map our shared memory: small values travel inline,
            # large ones as pointers to our store (that node pulls a copy).
            args_blob, arg_values = self._args_for_node(args_blob, arg_values)
            if rec.pins:
                self._share_with_node(w.nm, rec.pins)
        return transport.encode_msg(P.TASK, (rec.task_id, fn.fn_id, fn_blob, args_blob,
                                             arg_values, o.num_returns, o.wire,
                                             w.gpu_ids))

    def _share_with_node(self, conn, refs):
        """Refs inside a task's arguments go to another node: publish our values there
        (inline: that node cannot map our shared memory), now or when they are ready."""
        ready = []
        with self.lock:
            for ref in refs:
                st = self.objects.get(ref._id)
                if st is None or not st.owned:
                    continue
                if st.remote_nms is None:
                    st.remote_nms = set()
                if ("nm", conn) in st.remote_nms:
                    continue
                st.remote_nms.add(("nm", conn))
                if st.blob is not None:
                    ready.append((ref._id, st.blob))
        for oid, blob in ready:
            self._publish_remote(oid, blob, (("nm", conn),))

    def _publish_remote(self, oid, blob, conns):
        if blob[0] == TAG_SHM:
            blob = self._blob_for_node(oid, blob)
        for how, conn in list(conns):
            if how == "nm":      # another node's manager: publish it there
                self.notice_to(conn, "publish", oid, self.client_id, blob)
            else:                # a submitter on another node: send it the value
                try:
                    conn.send(P.VALUE, (oid, self.client_id, blob, None))
                except transport.ConnectionClosed:
                    pass

    def _args_for_node(self, args_blob, arg_values):
        if type(args_blob) is tuple:
            oid, blob = args_blob
            blob = self._blob_for_node(oid, blob)
            args_blob = (oid, blob) if blob[0] == TAG_SHM else blob
        if arg_values:
            arg_values = [(pos, oid, self._blob_for_node(oid, blob) if blob[0] == TAG_SHM
                           else blob) for pos, oid, blob in arg_values]
        return args_blob, arg_values

    def _blob_for_node(self, oid, blob):
        """An S blob as another node can use it: the bytes (small values), or a pointer
        to the store that holds it ("S<size>@ip:port"), which that node pulls from."""
        if serialization.remote_address(blob):
            return blob
        size = len_of_shm(blob)
        if size > P.TRANSFER_CHUNK_BYTES and self.nm_address is not None:
            return serialization.remote_blob(size, self.nm_address)
        try:
            return serialization.inline_from_segment(self._attach(oid, blob))
        except Exception:   # lost meanwhile: the other side gets the error
            return serialization.error_blob(exceptions.ObjectLostError(oid.hex()))

    def _send_task(self, w, rec):
        with w.send_lock:
            try:
                w.conn.send_bytes(self._task_frame(w, rec))
            except transport.ConnectionClosed:
                pass  # the close handler retries or fails it

    def _on_lease(self, q, req_id, ok, value, via=None):
        with self.lock:
            q.lease_requests -= 1
            q.lease_req_ids.discard(req_id)
        if not ok and isinstance(value, exceptions.RaySystemError):
            # The node manager is gone: no retry storm; what waits here fails.
            with self.lock:
                doomed = list(q.tasks) if self.nm_lost or self.nm.closed else []
                for rec in doomed:
                    q.tasks.remove(rec)
            blob = serialization.error_blob(value)
            for rec in doomed:
                self._finish_with_error(rec, blob)
            return
        if not ok and isinstance(value, P.LeaseCancelled):
            # Withdrawn by us; tasks queued since then may have counted on it.
            self._pump(q)
            return
        if not ok:
            if isinstance(value, exceptions.TaskUnschedulableError):
                with self.lock:
                    doomed = list(q.tasks)
                    q.tasks.clear()
                blob = serialization.error_blob(value)
                for rec in doomed:
                    self._finish_with_error(rec, blob)
                return
            if not isinstance(value, exceptions.WorkerCrashedError) and not self.shutting_down:
                logging.getLogger("minray.client").warning("lease request failed: %r", value)
            self._pump(q)
            return
        if value[0] == "spill":
            self._lease_elsewhere(q, value[2])
            return
        worker_id, address, pid, gpu_ids = value
        w = LeasedWorker(worker_id, address, pid, q)
        w.gpu_ids = gpu_ids
        w.nm = via
        try:
            sock = transport.connect(address, self._token() if via else None, timeout=1)
        except OSError:
            self.notice_to(via, "return_lease", worker_id, True)
            self._pump(q)
            return
        w.conn = transport.Connection(sock, direct_reads=_DIRECT_READS)
        w.conn.info["worker"] = w
        w.conn.send(P.HELLO, (self.client_id,))
        self.loop.add_connection(w.conn, self._on_worker_frame, self._on_worker_closed)
        with self.lock:
            q.workers.append(w)
            w.idle_since = time.monotonic()
        self._pump(q)

    def _return_lease(self, w):
        q = w.queue
        with self.lock:
            if w.inflight or w.returning:
                return
            w.returning = True
            if w in q.workers:
                q.workers.remove(w)
        self.notice_to(w.nm, "return_lease", w.worker_id, False)
        conn = w.conn
        w.conn = None
        if conn is not None:
            conn.on_close = None
            self.loop.call_soon(self.loop.close_connection, conn)

    def _on_worker_frame(self, conn, kind, msg):
        if kind == P.DONE:
            self._on_task_done(conn.info["worker"], msg)
        elif kind == P.GEN_ITEM:
            self._on_gen_item(msg)
        elif kind == P.STOLEN:
            self._on_stolen(conn.info["worker"], msg[0])
        elif kind == P.VALUE:
            # A ref owned on another node came back inside a result: make its value
            # findable here, as its owner did on its own node.
            oid, owner, blob, nm_address = msg
            if blob is not None:
                self.notice("publish", oid, owner, blob)
            elif nm_address:
                self.remote_owners[owner] = nm_address   # fetch its objects there

    def _on_task_done(self, w, msg):
        task_id, results, contained, retryable, flags = msg
        with self.lock:
            rec = w.inflight.pop(task_id, None)
            if not w.inflight:
                w.idle_since = time.monotonic()
            if flags & DONE_RETIRING:
                # The worker reached max_calls and exits: send it nothing more.
                w.returning = True
                if w in w.queue.workers:
                    w.queue.workers.remove(w)
        if rec is None:
            return
        now = time.perf_counter()
        w.last_progress = now
        rec.fn.observe(now - rec.sent_at, bool(flags & DONE_BLOCKED))
        if rec.retries_left == 0:
            self.notice("unretriable_task", w.worker_id, task_id, False)
        if retryable and rec.retries_left != 0 and not rec.cancelled:
            if rec.retries_left > 0:
                rec.retries_left -= 1
            self._enqueue_task(rec)
            self._pump(w.queue)
            return
        self.tasks.pop(task_id, None)
        if rec.stream is not None:
            if results:
                rec.stream.error_blob = results[0]   # the error, after the items
            self._finish_stream(rec, results)
        else:
            rebuilt = rec.task_id in self.lineage
            self._keep_lineage(rec, results)
            for oid, blob, c in zip(rec.return_ids, results, contained):
                self._complete(oid, blob, c)
                if rebuilt and blob[0] != TAG_SHM:
                    # A rebuild that ended without a new store copy (it failed, or the
                    # value is small now): borrowers waiting at the node manager for
                    # the copy get this instead, never a hang.
                    self.notice("object_lost", oid, blob)
        if w.returning:
            return
        if not w.inflight and not w.queue.tasks and \
                time.monotonic() < self.lease_pressure_until:
            self._return_lease(w)
            return
        # Refill this worker after the whole batch of replies is read (one write).
        self._dirty_queues.add(w.queue)

    def _keep_lineage(self, rec, results):
        """Keep the spec of a task whose results went to the store, to rebuild them.

        Only the spec: its arguments are not pinned (as in Ray, lineage does not
        keep values alive). A rebuild needs them still referenced by someone
        here; otherwise it fails with ObjectReconstructionFailedError.
        """
        if rec.task_id in self.lineage:
            rec.pins = []            # a rebuild finished: let go of its arguments again
            return
        if rec.opts.num_returns == "dynamic" or rec.opts.max_retries == 0:
            return
        n = sum(1 for b in results if b[0] == TAG_SHM)
        if n:
            rec.live_returns = n
            refs = list(rec.pins) + [r for _, r in rec.arg_refs]
            rec.lineage_args = [(r._id, r._owner) for r in refs]   # unpinned
            rec.pins, rec.arg_refs = [], []
            with self.lock:
                self.lineage[rec.task_id] = rec

    def _pin_lineage_args(self, rec):
        """Re-pin a lineage task's arguments for a rebuild; False if one was freed."""
        with self.lock:
            alive = all(self.objects.get(oid) is not None for oid, _ in rec.lineage_args)
        if not alive:
            return False
        rec.pins = [ObjectRef(oid, owner, self) for oid, owner in rec.lineage_args]
        return True

    def _reconstruct(self, oid):
        """The store lost ``oid``'s value: run the task that made it again.

        Returns True when the value is on its way (the task was resubmitted, or
        is running already); otherwise the object now holds an ObjectLostError
        (a put, an actor call's result, retries used up) and the node manager is
        told, so that borrowers waiting for it get the error too.
        """
        task_id = oid[:16]
        resubmit = None
        with self.lock:
            st = self.objects.get(oid)
            if st is None:
                return False    # freed
            if st.blob is None:
                # The node manager asks only after a run sealed a copy that is now
                # gone, so that run's reply is still on its way to us (it may sit in
                # a socket that a caller reads itself): rebuild when it arrives.
                self._lost_before_reply.add(oid)
                return True
            rec = self.lineage.get(task_id)
            if task_id in self.tasks:
                st.blob, st.segment_buf = None, None
                return True
            if rec is not None and rec.retries_left != 0:
                resubmit = rec
        if resubmit is not None and self._pin_lineage_args(rec):
            with self.lock:
                if rec.retries_left > 0:
                    rec.retries_left -= 1
                st.blob, st.segment_buf = None, None
                rec.worker, rec.cancelled = None, False
                self.tasks[task_id] = rec
            self._enqueue_task(rec)
            return True
        if resubmit is not None:
            err = exceptions.ObjectReconstructionFailedError(oid.hex(), message=(
                f"Failed to retrieve object {oid.hex()}: its copy in the object store was "
                f"lost, and an argument of the task that made it ({rec.opts.name or 'a task'}"
                ") was freed meanwhile, so it cannot run again. Keep the arguments' refs "
                "alive while you may need the result rebuilt."))
        elif rec is not None:
            err = exceptions.ObjectReconstructionFailedError(oid.hex(), message=(
                f"Failed to retrieve object {oid.hex()}: its copy in the object store was "
                f"lost and the task that made it ({rec.opts.name or 'a task'}) has no "
                "retries left to run again (max_retries). Raise max_retries to allow more "
                "reconstructions."))
        elif st.owned and ids.index_of(oid) == 0:
            err = exceptions.ObjectLostError(oid.hex(), message=(
                f"Failed to retrieve object {oid.hex()}: its copy in the object store was "
                "lost, and objects made by ray.put() cannot be rebuilt (they have no "
                "lineage). Keep what must survive in the driver, or create it in a task."))
        else:
            err = exceptions.ObjectLostError(oid.hex(), message=(
                f"Failed to retrieve object {oid.hex()}: its copy in the object store was "
                "lost and it cannot be rebuilt: only results of tasks with retries left "
                "are (not those of actor calls, or of tasks with max_retries=0)."))
        blob = serialization.error_blob(err)
        with self.lock:
            st.blob, st.segment_buf = blob, None
            waiters, st.waiters = st.waiters, []
        self.notice("object_lost", oid, blob)
        for w in waiters:
            if type(w) is Waiter:
                w.notify()
            else:
                w(oid)
        return False

    def _push_reconstruct(self, oid):
        # A borrower found our object lost; the node manager holds its request.
        self._reconstruct(oid)

    def _pump_dirty(self):
        dirty = self._dirty_queues
        while dirty:
            try:
                q = dirty.pop()
            except KeyError:
                return   # a direct reader (another thread) took the last one
            self._pump(q)

    def _on_worker_closed(self, conn):
        w = conn.info.get("worker")
        if w is None:
            return
        q = w.queue
        with self.lock:
            lost = list(w.inflight.values())
            w.inflight.clear()
            if w in q.workers:
                q.workers.remove(w)
        for rec in lost:
            self._task_lost(rec, f"The worker (pid={w.pid}) running this task died "
                                 "unexpectedly: killed by a signal (SIGKILL, the OOM killer, "
                                 "ray.cancel(force=True)) or it crashed; see its log under "
                                 "the session's logs directory.", w.worker_id)
        self._pump(q)

    def _task_lost(self, rec, why, worker_id=None):
        if rec.cancelled:
            self._finish_with_error(rec, serialization.error_blob(
                exceptions.TaskCancelledError(rec.task_id.hex())))
        elif rec.retries_left != 0:
            if rec.retries_left > 0:
                rec.retries_left -= 1
            if rec.stream is not None:
                rec.stream.items.clear()
            self._enqueue_task(rec)
        elif worker_id is not None:
            # Out of retries: say OutOfMemoryError if the memory monitor killed it.
            def cause(ok, oom):
                if ok and oom:
                    err = exceptions.OutOfMemoryError(
                        f"Task {rec.opts.name or ''} failed: its worker was killed by the "
                        f"memory monitor and it has no retries left (max_retries). {oom}")
                else:
                    err = exceptions.WorkerCrashedError(why)
                self._finish_with_error(rec, serialization.error_blob(err))
            self.call_async("worker_exit_cause", (worker_id,), cause)
        else:
            self._finish_with_error(rec, serialization.error_blob(
                exceptions.WorkerCrashedError(why)))

    def _finish_with_error(self, rec, blob):
        self.tasks.pop(rec.task_id, None)
        task_events.owner_failed(rec.task_id, blob)
        if rec.on_error is not None:
            rec.on_error(blob)
            return
        if rec.stream is not None:
            rec.stream.error_blob = blob
            self._finish_stream(rec, None)
            return
        rebuilt = rec.task_id in self.lineage
        for oid in rec.return_ids:
            self._complete(oid, blob)
            if rebuilt:
                self.notice("object_lost", oid, blob)   # waiting borrowers: see above

    # ------------------------------------------------------------ streaming
    def _on_gen_item(self, msg):
        task_id, index, blob, contained = msg
        stream = self.streams.get(task_id)
        if stream is None:
            return
        oid = ids.object_id_for(task_id, index + 1)
        with self.lock:
            if index < len(stream.items):
                return  # a retried generator re-sent an item we have
            ref = None
        ref = self.new_owned_ref(oid)
        self._complete(oid, blob, contained)
        with self.lock:
            stream.items.append(ref)
            waiters, stream.waiters = stream.waiters, []
        for w in waiters:
            w.notify()

    def _finish_stream(self, rec, results):
        stream = rec.stream
        if stream.error_blob is not None:
            # The error surfaces as the next item, as Ray does.
            oid = ids.object_id_for(rec.task_id, len(stream.items) + 1)
            ref = self.new_owned_ref(oid)
            self._complete(oid, stream.error_blob)
            with self.lock:
                stream.items.append(ref)
        with self.lock:
            stream.finished = True
            waiters, stream.waiters = stream.waiters, []
        self.streams.pop(rec.task_id, None)
        for w in waiters:
            w.notify()

    def next_stream_item(self, stream, index, timeout):
        while True:
            with self.lock:
                if index < len(stream.items):
                    return stream.items[index]
                if stream.finished:
                    return None
                waiter = Waiter(1)
                stream.waiters.append(waiter)
            self._unstick()
            if not waiter.wait(timeout):
                raise exceptions.GetTimeoutError("no item from the generator within the timeout")

    def stream_done_ref(self, stream):
        return None

    # ================================================================ cancel
    def cancel(self, ref, force=False, recursive=True):
        if not isinstance(ref, (ObjectRef, ObjectRefGenerator)):
            raise TypeError(f"cancel() expects an ObjectRef, got {type(ref).__name__}")
        task_id = ref._task_id if isinstance(ref, ObjectRefGenerator) else ref.task_id()
        rec = self.tasks.get(task_id)
        if rec is None:
            return  # finished, or not ours: nothing to do
        if rec.actor_id is not None:
            if force:
                raise ValueError("force=True is not supported for actor tasks; use "
                                 "ray.kill(actor) to stop the actor.")
            self._cancel_actor_task(rec, recursive)
            return
        rec.cancelled = True
        with self.lock:
            w = rec.worker
            queued = w is None
            if rec.queue is not None and rec in rec.queue.tasks:
                rec.queue.tasks.remove(rec)
        if queued:
            self._finish_with_error(rec, serialization.error_blob(
                exceptions.TaskCancelledError(task_id.hex())))
            return
        self.call_async("cancel_task", (w.worker_id, task_id, force, recursive),
                        lambda ok, v: None, conn=w.nm)

    def cancel_children(self, parent_task_id):
        """Cancel every task this worker submitted (recursive cancel)."""
        for rec in list(self.tasks.values()):
            if rec.actor_id is None:
                try:
                    self.cancel(ObjectRef(ids.object_id_for(rec.task_id, 1)), False, True)
                except Exception:
                    pass

    # ================================================================= actors
    def create_actor(self, actor_id, cls_info, args, kwargs, opts, meta):
        self.drain_releases()
        if opts.capturable and self.kind == "worker":
            opts = self._captured(opts)
        args_blob, arg_refs, pins = self._prepare_args(args, kwargs)
        rec = TaskRecord(actor_id, cls_info, args_blob, arg_refs, pins, opts, [])
        box = {}
        done = threading.Event()

        def send(rec, extra=None):
            spec = {"class_blob": cls_info.blob, "class_id": cls_info.fn_id,
                    "args_blob": rec.args_blob, "arg_values": rec.arg_values,
                    "options": opts.actor_wire(), "resources": opts.resources,
                    "meta": meta, "pg": opts.pg, "env_vars": opts.env_vars}
            # Refs inside the constructor's arguments stay alive here until the
            # actor is built (released in _push_actor_state).
            self.creation_pins[actor_id] = rec.pins
            spec.update(extra or {})
            try:
                box["r"] = self.call("create_actor", actor_id, spec)
            except BaseException as exc:
                box["e"] = exc
            done.set()
        if arg_refs:
            # Creation waits for its arguments in the background, like a task. If one
            # of them failed, the actor is created dead, with that error as its cause.
            def failed(blob):
                rec.arg_values = []
                opts_spec = {"creation_error": blob}
                threading.Thread(target=send, args=(rec, opts_spec), daemon=True).start()
            rec.on_error = failed
            self._resolve_then(rec, lambda r: threading.Thread(target=send, args=(r,),
                                                               daemon=True).start())
            token = self.new_owned_ref(actor_id + b"\xff\xff\xff\xff")
            self.objects[token._id].is_token = True
            self.objects[token._id].blob = b"PN."
            return ("created", actor_id, meta, token)
        send(rec)
        if "e" in box:
            raise box["e"]
        status, real_id, real_meta = box["r"]
        tok_oid = real_id + b"\xff\xff\xff\xff"
        if status == "existing":
            st = ObjectState(False, None)
            st.borrowed = True
            st.blob = b"PN."
            with self.lock:
                if tok_oid in self.objects:
                    # already borrowed here: drop the extra borrow the NM counted
                    self.notice("unborrow", [tok_oid])
                else:
                    self.objects[tok_oid] = st
            token = ObjectRef(tok_oid, b"", self)
        else:
            token = self.new_owned_ref(tok_oid)
            self.objects[tok_oid].is_token = True
            self.objects[tok_oid].blob = b"PN."
        return (status, real_id, real_meta, token)

    def get_actor(self, name, namespace):
        actor_id, meta = self.call("get_actor", name, namespace)
        tok_oid = actor_id + b"\xff\xff\xff\xff"
        with self.lock:
            st = self.objects.get(tok_oid)
            extra = st is not None
            if st is None:
                st = self.objects[tok_oid] = ObjectState(False, None)
                st.borrowed = True
                st.blob = b"PN."
        if extra:
            self.notice("unborrow", [tok_oid])
        return actor_id, meta, ObjectRef(tok_oid, b"", self)

    def _actor_queue(self, actor_id):
        aq = self.actor_queues.get(actor_id)
        if aq is None:
            aq = self.actor_queues[actor_id] = ActorQueue(actor_id)
        if not aq.subscribed:
            aq.subscribed = True
            self.call_async("subscribe_actor", (actor_id,),
                            lambda ok, v: ok and v and self._push_actor_state(*v))
        return aq

    def submit_actor_task(self, actor_id, method, args, kwargs, opts, token):
        if self.release_queue:
            self.drain_releases()
        task_id = ids.new_task_id()
        args_blob, arg_refs, pins = self._prepare_args(args, kwargs)
        pins.append(token)
        streaming = opts.num_returns == "streaming"
        n = 0 if streaming else opts.num_returns
        return_ids = [ids.object_id_for(task_id, i + 1) for i in range(n)]
        refs = []
        states = []
        for oid in return_ids:   # new_owned_ref, inlined: this is every call's path
            st = ObjectState(True, self.client_id)
            st.local_refs = 1
            ref = ObjectRef(oid, self.client_id)
            ref._client = self
            refs.append(ref)
            states.append((oid, st))
        rec = TaskRecord(task_id, None, args_blob, arg_refs, pins, opts, return_ids)
        rec.actor_id, rec.method = actor_id, method
        rec.retries_left = opts.max_task_retries
        if streaming:
            rec.stream = self.streams[task_id] = Stream(task_id)
        self.tasks[task_id] = rec
        task_events.submitted(task_id, None, method, task_events.ACTOR_TASK, actor_id,
                              bool(arg_refs))
        aq = self.actor_queues.get(actor_id)
        if aq is None or not aq.subscribed:
            aq = self._actor_queue(actor_id)
        with self.lock:
            for oid, st in states:
                self.objects[oid] = st
            aq.pending.append(rec)
        if n == 1:
            self.last_actor_call = (return_ids[0], aq)   # see _wait_ready
        if arg_refs:
            self._resolve_then(rec, lambda r: self._pump_actor(aq))
        else:
            self._pump_actor(aq)
        if streaming:
            return ObjectRefGenerator(task_id, self, rec.stream)
        if n == 1:
            return refs[0]
        return refs or None

    def _pump_actor(self, aq):
        if aq.state == "DEAD":
            self._fail_actor_calls(aq)
            return
        sends = []
        with self.lock:
            if aq.conn is None or aq.state != "ALIVE":
                connect = aq.state == "ALIVE" and aq.address and not aq.connecting
                if connect:
                    aq.connecting = True
            else:
                connect = False
                while aq.pending:
                    rec = aq.pending[0]
                    if rec.arg_values is None and rec.arg_refs:
                        break  # keep order: wait for this call's arguments
                    aq.pending.popleft()
                    if rec.cancelled:
                        continue
                    aq.inflight[rec.task_id] = rec
                    rec.sent_at = time.monotonic()
                    sends.append(rec)
        if connect:
            self.loop.call_soon(self._connect_actor, aq)
            return
        conn = aq.conn
        if len(aq.inflight) > 1 and conn in self.sticky:
            self._unstick()   # pipelined calls: the I/O thread reads their replies
        remote = (aq.address or "").startswith("tcp://")
        for rec in sends:
            args_blob, arg_values = rec.args_blob, rec.arg_values
            if remote:   # an actor on another node: as for tasks (_task_frame)
                args_blob, arg_values = self._args_for_node(args_blob, arg_values)
            try:
                conn.send(P.ACTOR_CALL, (rec.task_id, rec.method, args_blob,
                                         arg_values, rec.opts.num_returns,
                                         rec.opts.wire))
            except transport.ConnectionClosed:
                pass

    def _connect_actor(self, aq):
        with self.lock:
            address = aq.address if aq.state == "ALIVE" else None
            if address is None:
                aq.connecting = False
                return   # it restarted or died meanwhile: its state update follows
        sock = None
        try:
            # One try: a live actor listens before it reports ready. Never wait here,
            # on the I/O thread that every get() in this process depends on.
            if address.startswith("tcp://"):
                sock = transport.connect(address, self._token(), timeout=2)
            else:
                sock = transport.connect_unix(address, timeout=0)
            conn = transport.Connection(sock, direct_reads=_DIRECT_READS)
            conn.info["actor"] = aq
            conn.send(P.HELLO, (self.client_id,))
        except OSError:    # transport.ConnectionClosed is one too
            # Refused, or accepted and then closed before our HELLO got through: the
            # actor is exiting (an actor pool shrinking, a kill). Same as refused.
            if sock is not None:
                sock.close()
            with self.lock:
                aq.connecting = False
                if aq.address == address:
                    aq.state = "DISCONNECTED"
            # The node manager has not seen it die yet: ask again shortly.
            self.loop.call_later(0.05, self._resubscribe_actor, aq)
            return
        self.loop.add_connection(conn, self._on_actor_frame, self._on_actor_closed)
        with self.lock:
            aq.conn = conn
            aq.connecting = False
        self._pump_actor(aq)

    def _resubscribe_actor(self, aq):
        if not self.shutting_down:
            self.call_async("subscribe_actor", (aq.actor_id,),
                            lambda ok, v: ok and v and self._push_actor_state(*v))

    def _on_actor_frame(self, conn, kind, msg):
        aq = conn.info["actor"]
        if kind == P.DONE:
            task_id, results, contained, retryable, _ = msg
            with self.lock:
                rec = aq.inflight.pop(task_id, None)
                if rec is not None and retryable and rec.retries_left != 0 and \
                        not rec.cancelled:
                    # retry_exceptions matched and max_task_retries allows: run it again.
                    if rec.retries_left > 0:
                        rec.retries_left -= 1
                    aq.pending.appendleft(rec)
                    rec = None
                    again = True
                else:
                    again = False
            if again:
                self._pump_actor(aq)
                return
            if rec is None:
                return
            self.tasks.pop(task_id, None)
            if rec.stream is not None:
                if results:
                    rec.stream.error_blob = results[0]   # the error, after the items
                self._finish_stream(rec, results)
            else:
                for oid, blob, c in zip(rec.return_ids, results, contained):
                    self._complete(oid, blob, c)
        elif kind == P.GEN_ITEM:
            self._on_gen_item(msg)

    def _on_actor_closed(self, conn):
        aq = conn.info["actor"]
        with self.lock:
            if aq.conn is conn:
                aq.conn = None
                if aq.state == "ALIVE":
                    aq.state = "DISCONNECTED"
        # Wait for the node manager to say whether it restarts or is dead.
        self._resubscribe_actor(aq)

    def _push_actor_state(self, actor_id, state, address, cause, num_restarts, died_at=0.0):
        if state in ("ALIVE", "DEAD"):
            self.creation_pins.pop(actor_id, None)
        aq = self.actor_queues.get(actor_id)
        if aq is None:
            return
        lost = []
        with self.lock:
            restarted = num_restarts > aq.num_restarts
            if state in ("DEAD", "RESTARTING") or restarted:
                lost = list(aq.inflight.values())
                aq.inflight.clear()
                if aq.conn is not None and (state != "ALIVE" or address != aq.address):
                    old, aq.conn = aq.conn, None
                    old.on_close = None
                    self.loop.call_soon(self.loop.close_connection, old)
            aq.num_restarts = num_restarts
            if aq.state == "DEAD":
                return
            aq.state, aq.address, aq.cause = state, address, cause
        retry = []
        for rec in lost:
            if state != "DEAD" and died_at and rec.sent_at > died_at:
                retry.append(rec)   # sent to a process already dead: never ran, resend
            elif state != "DEAD" and rec.retries_left != 0:
                if rec.retries_left > 0:
                    rec.retries_left -= 1
                retry.append(rec)
            else:
                self._finish_with_error(rec, cause if (state == "DEAD" and cause) else
                                        serialization.error_blob(exceptions.ActorDiedError(
                                            "The actor died while running this call (it is "
                                            "restarting; set max_task_retries to retry "
                                            "calls).", actor_id=actor_id.hex())))
        if retry:
            with self.lock:
                aq.pending.extendleft(reversed(retry))   # keep submission order
        self._pump_actor(aq)

    def _fail_actor_calls(self, aq):
        with self.lock:
            recs = list(aq.pending) + list(aq.inflight.values())
            aq.pending.clear()
            aq.inflight.clear()
        cause = aq.cause or serialization.error_blob(
            exceptions.ActorDiedError(actor_id=aq.actor_id.hex()))
        for rec in recs:
            self._finish_with_error(rec, cause)

    def _cancel_actor_task(self, rec, recursive):
        aq = self.actor_queues.get(rec.actor_id)
        if aq is None:
            return
        with self.lock:
            queued = rec in aq.pending
            if queued:
                aq.pending.remove(rec)
            conn = aq.conn if rec.task_id in aq.inflight else None
        rec.cancelled = True
        if queued:
            self._finish_with_error(rec, serialization.error_blob(
                exceptions.TaskCancelledError(rec.task_id.hex())))
        elif conn is not None:
            # Running: an async actor cancels its asyncio task; the reply follows.
            try:
                conn.send(P.CANCEL, (rec.task_id, recursive))
            except transport.ConnectionClosed:
                pass

    def kill_actor(self, actor_id, no_restart):
        return self.call("kill_actor", actor_id, no_restart)

    # ================================================================ shutdown
    def flush_logs(self, timeout=1.0):
        """Ask every node manager we use for the logs its workers wrote since its last
        poll (they arrive as pushes before the replies); wait up to ``timeout``."""
        conns = [self.nm] + [c for c in self.remote_nms.values() if not c.closed]
        waiter = Waiter(len(conns))
        for conn in conns:
            self.call_async("flush_logs", (), lambda ok, v: waiter.notify(), conn=conn)
        waiter.wait(timeout)

    def close(self):
        self.shutting_down = True
        for buf in self.write_maps.values():
            try:
                buf.close()
            except BufferError:
                pass
        self.write_maps.clear()
        try:
            self.drain_releases()
        except Exception:
            pass
        self.loop.stop()
        try:
            self.nm.close()
        except Exception:
            pass


_EMPTY_ARGS = serialization.dumps_inline(((), {}))


def _busy(conn):
    """Calls or tasks in flight on this actor or worker connection (lock held)."""
    owner = conn.info.get("actor") or conn.info.get("worker")
    return owner is None or bool(owner.inflight) or getattr(owner, "returning", False)


def _argument_error(args, kwargs, exc):
    """The serialization error of a task's arguments, naming the argument at fault."""
    named = [(f"argument {i} ({type(a).__name__})", a) for i, a in enumerate(args)]
    named += [(f"keyword argument {k!r} ({type(v).__name__})", v)
              for k, v in (kwargs or {}).items()]
    for what, value in named:
        try:
            serialization.serialize(value)
        except TypeError as inner:
            return TypeError(str(inner).replace("the value", what, 1))
    return TypeError(str(exc).replace("the value", "an argument", 1))


def len_of_shm(blob):
    return serialization.shm_size_of(blob)


def _blob_from_location(loc):
    if loc[0] == "inline":
        return loc[1]
    return serialization.shm_blob(loc[2]) + loc[1].encode()


def _check_shm_space(size):
    free = shm.shm_free_bytes()
    if free and size > free:
        raise exceptions.ObjectStoreFullError(
            f"Cannot store an object of {size / 2**20:.1f} MiB: /dev/shm has only "
            f"{free / 2**20:.1f} MiB free. An object must fit in shared memory whole "
            "(only objects already there can spill to disk). Free references to large "
            "objects (del ref), split the value into smaller objects, or make /dev/shm "
            "larger (e.g. docker --shm-size).")
