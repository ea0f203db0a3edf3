"""Local mode: every task and actor call runs in the caller's thread, at ``.remote()`` time.

    f.remote(x) -> LocalClient.submit_task -> args pickled, then unpickled (a private copy)
                -> f(*args) runs here, now, in this thread (so pdb and breakpoints work)
                -> each result pickled into an _Object -> ObjectRef returned, already ready
    get(ref)    -> a fresh unpickled copy of the value, or the task's error raised

It is what ``init(local_mode=True)`` installs instead of the multi-process
CoreClient, and it offers the same interface to api.py, remote_function.py,
actor.py, object_ref.py and runtime_context.py.  It starts no process and no
thread.  Values still travel through ``serialization`` as in the real runtime,
so a task that mutates its argument does not change the caller's object, numpy
arrays come back read-only, and an unpicklable argument fails the same way.
Errors raised by user code are captured into the returned refs and raised on
``get`` (as RayTaskError instances of the original type), never at ``.remote()``.

A call can be held back, as in the real runtime, by resources that are busy
(held by actors, placement groups, or calls running in other threads) or that
no node could ever provide, and by a placement group that is not placed yet (so
``pg.ready()`` stays pending).  The calls running in the caller's thread do not
count: they are suspended while a nested call runs, and lend it their CPU, as a
worker blocked in ``get`` gives its CPU back.  A held call waits in ``blocked``,
its refs pending, with every call that takes one of those refs as an argument
and every later call to the same actor; they run in submission order, in
whichever thread frees the way (``ray.kill``, removing a group, a call or an
actor ending, or a ``get`` that lends its thread's CPU).  In one thread, a
``get`` on such a call waits forever, as it would in the real runtime.

Also different, by nature: a streaming generator runs to its end at
submission; ``cancel`` finds a task finished (a no-op, as Ray does for finished
tasks) unless it is held back; calls from several threads run concurrently,
each in its own thread (one actor's calls take turns), and a call's
runtime_env env_vars and CUDA_VISIBLE_DEVICES are set in ``os.environ`` while
it runs.
"""

import asyncio
import collections
import contextlib
import inspect
import itertools
import os
import socket
import logging
import threading
import time

from minray import exceptions
from minray._private.core.object_ref import ObjectRef, ObjectRefGenerator
from minray._private.core import ids, validation
from minray._private.objects import serialization
from minray._private.client.core_client import _ArgRef
from minray._private.scheduling import resources as sched
from minray._private.objects.serialization import TAG_ERROR

_TOKEN_SUFFIX = b"\xff\xff\xff\xff"   # an actor's token object: actor_id + this
_NONE_BLOB = b"PN."                   # pickle of None, as the node manager writes tokens
WARN_BLOCKED_GET_S = 10.0             # a get() waiting this long says why it may hang


class _Object:
    """One value this client holds: its blob, local ref count and the refs inside it."""

    __slots__ = ("blob", "refs", "contained", "dynamic", "token_of", "callbacks", "seq")

    def __init__(self, blob, contained=(), dynamic=False, token_of=None, seq=0):
        self.blob = blob              # inline blob (tag P, B or E); None while pending
        self.seq = seq                # when it got its value: wait() picks the earliest
        self.refs = 0                 # live ObjectRef instances naming it
        self.contained = contained    # ObjectRefs pickled inside it: kept alive with it
        self.dynamic = dynamic        # value is the item refs of a num_returns="dynamic" task
        self.token_of = token_of      # actor id, for an actor's token object
        self.callbacks = []           # on_ready futures waiting for a pending value


class _Stream:
    """The items of a streaming task (what ObjectRefGenerator reads)."""

    __slots__ = ("task_id", "items", "finished", "waiters", "error_blob", "done_refs")

    def __init__(self, task_id):
        self.task_id = task_id
        self.items = []
        self.finished = False
        self.waiters = []
        self.error_blob = None
        self.done_refs = []           # pending refs from completed(), filled at the end


class _TaskContext:
    """What get_runtime_context() reports (worker_main.TaskContext's fields, and the
    placement group that util.get_current_placement_group() reads)."""

    __slots__ = ("task_id", "name", "resources", "actor_id", "attempt",
                 "placement_group_id")

    def __init__(self, task_id, name, resources, actor_id=None, attempt=0, pg=None):
        self.task_id = task_id
        self.name = name
        self.resources = resources
        self.actor_id = actor_id
        self.attempt = attempt
        self.placement_group_id = pg[0] if pg else None


class _Frame:
    """A call running in a thread: the CPU it lends out while a nested call runs."""

    __slots__ = ("cpu", "lent")

    def __init__(self, charge):
        self.cpu = charge[1].get("CPU", 0.0) if charge and charge[0] == "node" else 0.0
        self.lent = False


class _Prepared:
    """A call's arguments, pickled once at submission."""

    __slots__ = ("blob", "arg_refs", "pins")

    def __init__(self, blob, arg_refs, pins):
        self.blob = blob            # None for a call without arguments
        self.arg_refs = arg_refs    # [(position, ObjectRef)]: replaced by their values
        self.pins = pins            # refs nested in the arguments, kept alive with them


class _ArgFailed(Exception):
    """A top-level ref argument holds an error: the call fails with it, unrun."""

    def __init__(self, blob):
        super().__init__()
        self.blob = blob


class _Outcome:
    """How a call ended: ``values`` [(blob, contained)], ``error`` blob, or ``stream``."""

    __slots__ = ("kind", "values", "error")

    def __init__(self, kind, values=None, error=None):
        self.kind = kind
        self.values = values
        self.error = error


class _Blocked:
    """A call held back by a pending placement group or busy resources, or its inputs."""

    __slots__ = ("run", "deps", "pg", "resources", "creation", "actor_id", "task_id",
                 "cancel")

    def __init__(self, run, deps, pg, resources, creation=False, actor_id=None,
                 task_id=None, cancel=None):
        self.run = run              # runs the call and fills its refs
        self.deps = deps            # ObjectRefs whose values it needs
        self.pg = pg                # (pg_id, bundle) it is scheduled into, or None
        self.resources = resources  # what it asks for (None: an actor call, nothing)
        self.creation = creation    # an actor's creation: waits until its resources fit
        self.actor_id = actor_id    # keeps one actor's calls in submission order
        self.task_id = task_id      # for cancel(); None for an actor's creation
        self.cancel = cancel        # fills its refs with TaskCancelledError instead


class _Actor:
    """One actor instance living in this process.

    ``actor`` and ``actor_meta`` are the names worker_main.WorkerServer uses, so
    exit_actor() and the runtime context find the current actor through
    ``client.worker_server`` unchanged.
    """

    def __init__(self, actor_id, cls, prepared, opts, meta, namespace, owner):
        wire = opts.actor_wire()
        self.actor_id = actor_id
        self.cls = cls
        self.prepared = prepared          # constructor arguments, kept for restarts
        self.opts = opts
        self.meta = meta
        self.class_name = meta.get("class_name") or cls.__name__
        self.name = wire["name"]
        self.namespace = namespace
        self.actor_meta = dict(meta, name=self.name) if self.name else meta
        self.detached = wire["lifetime"] == "detached"
        self.max_restarts = wire["max_restarts"] or 0
        self.owner = owner                # the actor whose code created it, or None
        self.num_restarts = 0
        self.state = "PENDING_CREATION"
        self.cause = None                 # error blob that calls get once it is DEAD
        self.actor = None                 # the instance
        self.loop = None                  # private event loop of an async actor
        self.incarnation = 0
        self.charge = None
        self.is_async = any(inspect.iscoroutinefunction(m) or inspect.isasyncgenfunction(m)
                            for _, m in inspect.getmembers(cls, inspect.isfunction))
        # Calls from several threads take turns, as in the actor's one worker thread
        # (or event loop); a threaded actor (max_concurrency > 1) lets them overlap.
        threaded = not self.is_async and ((wire["max_concurrency"] or 1) > 1 or
                                          wire["concurrency_groups"])
        self.call_lock = contextlib.nullcontext() if threaded else threading.RLock()


class LocalClient:
    """The core client of ``init(local_mode=True)``: runs everything serially, here.

    Example::

        import minray as ray
        ray.init(local_mode=True)

        @ray.remote
        def f(x):
            breakpoint()      # stops right here, in the driver's terminal
            return x + 1

        assert ray.get(f.remote(1)) == 2
    """

    kind = "local"

    def __init__(self, total_resources, namespace, env_vars=None):
        self.client_id = ids.new_unique_id(12)
        self.worker_id = None
        self.job_id = 1
        self.node_id = ids.new_unique_id(14).hex()
        self.namespace = namespace
        self.env_vars = dict(env_vars or {})
        self.runtime_env = {"env_vars": dict(self.env_vars)} if self.env_vars else {}
        self.shutting_down = False
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)   # a value, stream or group is ready
        self.objects = {}
        self.release_queue = collections.deque()
        self.current_task = threading.local()
        self.actors = {}
        self.named = {}                   # (namespace, name) -> actor_id
        self.kv = {}
        self.blocked = []                 # _Blocked calls, in submission order
        self.warned_shapes = set()
        self.charge_keys = itertools.count(1)
        self.done_seq = itertools.count(1)
        self.start_time = time.time()
        total = dict(total_resources)
        total.setdefault("node:127.0.0.1", 1.0)
        total.setdefault("node:__internal_head__", 1.0)
        total[f"_node_id:{self.node_id}"] = 1000.0    # NodeAffinitySchedulingStrategy
        if "object_store_memory" not in total:
            from minray._private.node.launch import default_object_store_memory
            total["object_store_memory"] = float(default_object_store_memory())
        self.sched = sched.Scheduler(total)
        self.info = {"node_id": self.node_id, "job_id": self.job_id, "session_dir": None,
                     "resources": dict(total), "node_ip": "127.0.0.1", "local_mode": True}
        self.handlers = {
            "cluster_resources": self._h_cluster_resources,
            "available_resources": self._h_available_resources,
            "nodes": self._h_nodes,
            "status": self._h_status,
            "object_stats": self._h_object_stats,
            "kv_put": self._h_kv_put,
            "kv_get": self._h_kv_get,
            "kv_del": self._h_kv_del,
            "kv_keys": self._h_kv_keys,
            "list_named_actors": self._h_list_named_actors,
            "list_actors": self._h_list_actors,
            "get_actor": lambda name, ns: self.get_actor(name, ns)[:2],
            "kill_actor": self.kill_actor,
            "create_pg": self._h_create_pg,
            "wait_pg": self._h_wait_pg,
            "remove_pg": self._h_remove_pg,
            "pg_table": self._h_pg_table,
            "ping": lambda: "pong",
            "shutdown": lambda: True,
        }

    # ======================================================= the current call
    @property
    def actor_id(self):
        """The id of the actor whose code runs in this thread now (None outside actors)."""
        ctx = getattr(self.current_task, "ctx", None)
        return None if ctx is None else ctx.actor_id

    @property
    def worker_server(self):
        """The current actor's record (``.actor``, ``.actor_meta``), as a worker's server."""
        actor_id = self.actor_id
        return None if actor_id is None else self.actors.get(actor_id)

    @property
    def actor_restarts(self):
        a = self.worker_server
        return a.num_restarts if a is not None else 0

    @contextlib.contextmanager
    def _running(self, ctx, env_vars, charge_request=None, held=None):
        """Run a call's code: its runtime context, environment and resource charge.

        The calls already running in this thread are suspended meanwhile, like a
        worker blocked in get(): their CPU is lent out until this call returns.
        ``held`` is what an actor holds for life (its calls charge nothing more).
        """
        cur = self.current_task
        frames = getattr(cur, "frames", None)
        if frames is None:
            frames = cur.frames = []
        saved = (getattr(cur, "task_id", None), getattr(cur, "ctx", None))
        lent = self._lend_cpu(frames)
        try:
            charge = self._acquire(*charge_request) if charge_request is not None else None
            frames.append(_Frame(charge or held))
            cur.task_id, cur.ctx = ctx.task_id, ctx
            try:
                with _environment(_with_gpus(env_vars, charge or held)):
                    yield
            finally:
                frames.pop()
                cur.task_id, cur.ctx = saved
                if charge is not None:
                    self._release(charge)
        finally:
            self._take_back_cpu(lent)

    def _lend_cpu(self, frames):
        """Give back the CPU of this thread's suspended calls (node_manager's
        worker_blocked); returns the frames to take it back from afterwards."""
        lent = [f for f in frames if f.cpu and not f.lent]
        if lent:
            with self.lock:
                for f in lent:
                    f.lent = True
                    self.sched.available["CPU"] = self.sched.available.get("CPU", 0.0) + f.cpu
                self.changed.notify_all()
        return lent

    def _take_back_cpu(self, lent):
        if lent:
            with self.lock:
                for f in lent:
                    f.lent = False
                    self.sched.available["CPU"] -= f.cpu   # may dip below 0, as in a worker

    def _cpu_credit(self):
        """CPU this thread's running calls would lend to a call that runs nested now."""
        frames = getattr(self.current_task, "frames", None) or ()
        return sum(f.cpu for f in frames if not f.lent)

    # ==================================================== resource accounting
    def _acquire(self, resources, pg):
        """Charge ``resources``; None if another thread took them since the call was
        found runnable (it runs uncharged then, rather than wait a second time)."""
        with self.lock:
            lease = sched.LeaseRequest(("local", next(self.charge_keys)), resources, pg=pg)
            return self.sched.try_acquire(lease)

    def _release(self, charge):
        with self.lock:
            self.sched.release(charge)
            if self.sched.try_place_pgs():
                self.changed.notify_all()
        self._pump()   # an actor or a group may fit now

    # ======================================================= reference counts
    def add_local_ref(self, oid):
        with self.lock:
            obj = self.objects.get(oid)
            if obj is not None:
                obj.refs += 1

    def drain_releases(self):
        """Un-count deleted refs; free values (and end actors) nothing refers to."""
        rq = self.release_queue
        while rq:
            freed, orphaned = [], []
            with self.lock:
                while rq:
                    oid = rq.popleft()
                    obj = self.objects.get(oid)
                    if obj is None:
                        continue
                    obj.refs -= 1
                    if obj.refs > 0:
                        continue
                    del self.objects[oid]
                    freed.append(obj)
                    if obj.token_of is not None:
                        orphaned.append(obj.token_of)
            obj = a = None
            for actor_id in orphaned:
                a = self.actors.get(actor_id)
                if a is not None and not a.detached and a.state != "DEAD":
                    self._exit_actor(a, "all references to the actor were deleted")
            # Dropping the values drops the refs inside them, which queues more releases
            # (so no local name may keep one alive past this point).
            del freed, orphaned, obj, a

    def _new_ref(self, oid, blob, contained=(), dynamic=False):
        with self.lock:
            self.objects[oid] = _Object(blob, contained, dynamic, seq=next(self.done_seq))
        return ObjectRef(oid, self.client_id, self)

    def _token_ref(self, actor_id):
        oid = actor_id + _TOKEN_SUFFIX
        with self.lock:
            if oid not in self.objects:
                self.objects[oid] = _Object(_NONE_BLOB, token_of=actor_id)
        return ObjectRef(oid, self.client_id, self)

    def deserialize_ref(self, oid, owner):
        """A ref arrived inside a value (or a token was asked for): count it."""
        if oid.endswith(_TOKEN_SUFFIX) and oid[:16] in self.actors:
            return self._token_ref(oid[:16])
        return ObjectRef(oid, owner, self)

    def export_refs(self, refs):
        pass  # nothing leaves this process

    # ================================================================ objects
    def _serialize(self, value):
        """(blob, contained refs) of ``value``; raises TypeError if it does not pickle."""
        sv = serialization.serialize(value)
        return sv.to_inline(), list(sv.refs)

    def _fill(self, oid, blob, contained=(), dynamic=False):
        """A pending object got its value: wake waiters and whatever was blocked on it."""
        with self.lock:
            obj = self.objects.get(oid)
            if obj is None:
                return   # every ref to it is gone already
            obj.blob, obj.contained, obj.dynamic = blob, contained, dynamic
            obj.seq = next(self.done_seq)
            callbacks, obj.callbacks = obj.callbacks, []
            self.changed.notify_all()
        for ref, future in callbacks:
            self._resolve_future(ref, future)

    def put(self, value, _owner=None):
        if isinstance(value, ObjectRef):
            raise TypeError("Calling put() on an ObjectRef is not allowed: put the value, "
                            "or pass the ref itself (refs can be nested in lists and dicts).")
        self.drain_releases()
        oid = ids.object_id_for(ids.new_task_id(), 0)
        blob, contained = self._serialize(value)
        return self._new_ref(oid, blob, contained)

    def _is_done(self, oid):
        obj = self.objects.get(oid)
        return obj is None or obj.blob is not None   # a missing one fails at once on get

    def _load(self, ref):
        """A fresh copy of ``ref``'s (ready) value; raises its error."""
        obj = self.objects.get(ref._id)
        if obj is None:
            raise exceptions.ObjectLostError(ref.hex(), message=(
                f"Failed to retrieve object {ref.hex()}: local mode no longer holds it (it "
                "was freed, or it belongs to a runtime that was shut down)."))
        blob = obj.blob
        if blob[0] == TAG_ERROR:
            err = serialization.loads_inline(blob)
            if isinstance(err, exceptions.RayTaskError):
                raise err.as_instanceof_cause()
            raise err
        value = serialization.loads_inline(blob)
        if obj.dynamic:
            task_id = ids.task_id_of(ref._id)
            stream = _Stream(task_id)
            stream.items, stream.finished = value, True
            return ObjectRefGenerator(task_id, self, stream)
        return value

    def _wait_ready(self, refs, num, timeout, warn=False):
        """Wait until ``num`` of ``refs`` are ready (only a blocked call delays one).

        Like a worker blocked in get(), this thread lends out its calls' CPU
        meanwhile, and first runs what that lets run.
        """
        def enough():
            return sum(1 for r in refs if self._is_done(r._id)) >= num
        if enough():
            return True
        start = time.monotonic()
        deadline = None if timeout is None else start + timeout
        lent = self._lend_cpu(getattr(self.current_task, "frames", None) or ())
        try:
            self._pump()
            with self.changed:
                while not enough():
                    now = time.monotonic()
                    left = None if deadline is None else deadline - now
                    if left is not None and left <= 0:
                        return False
                    if warn and now - start > WARN_BLOCKED_GET_S:
                        warn = False
                        logging.getLogger("minray.local").warning(
                              f"get() has waited {now - start:.0f} s for calls that "
                              "wait for resources (held by actors or placement groups) or "
                              "for a placement group to be placed. In local mode nothing "
                              "runs in the background: only another thread can free them "
                              "(ray.kill an actor, remove a placement group), so this may "
                              "wait forever, as it would in the real runtime.")
                    self.changed.wait(min(left or WARN_BLOCKED_GET_S, WARN_BLOCKED_GET_S))
            return True
        finally:
            self._take_back_cpu(lent)

    def get(self, refs, timeout=None):
        self.drain_releases()
        refs, single = validation.check_get_refs(refs)
        if not self._wait_ready(refs, len(refs), timeout, warn=True):
            need = sum(1 for r in refs if not self._is_done(r._id))
            raise validation.get_timeout_error(timeout, need, len(refs))
        values = [self._load(r) for r in refs]
        return values[0] if single else values

    def wait(self, refs, num_returns=1, timeout=None, fetch_local=True):
        self.drain_releases()
        if not validation.check_wait_args(refs, num_returns, timeout):
            return [], []
        self._wait_ready(refs, num_returns, timeout)
        with self.lock:
            # Of the ready refs, those that got their values first, as in the real
            # runtime (there, the earliest finished are the ones ready when wait looks).
            done = sorted((r for r in refs if self._is_done(r._id)), key=self._done_seq)
            chosen = set(done[:num_returns])
        ready = [r for r in refs if r in chosen]
        return ready, [r for r in refs if r not in chosen]

    def _done_seq(self, ref):
        obj = self.objects.get(ref._id)
        return -1 if obj is None else obj.seq

    def is_ready(self, ref):
        return self._is_done(ref._id)

    def on_ready(self, ref, future):
        """Complete a concurrent Future with ``ref``'s value once it is ready."""
        with self.lock:
            obj = self.objects.get(ref._id)
            if obj is not None and obj.blob is None:
                obj.callbacks.append((ref, future))
                return
        self._resolve_future(ref, future)

    def _resolve_future(self, ref, future):
        try:
            future.set_result(self._load(ref))
        except BaseException as exc:  # the task's error, delivered to the future
            future.set_exception(exc)

    # ============================================================== arguments
    def _prepare_args(self, args, kwargs):
        """Pickle (args, kwargs); top-level refs become placeholders for their values."""
        arg_refs = []
        if any(type(a) is ObjectRef for a in args):
            new_args = []
            for a in args:
                if type(a) is ObjectRef:
                    new_args.append(_ArgRef(len(arg_refs)))
                    arg_refs.append((len(arg_refs), a))
                else:
                    new_args.append(a)
            args = tuple(new_args)
        if kwargs and any(type(v) is ObjectRef for v in kwargs.values()):
            kwargs = dict(kwargs)
            for k, v in kwargs.items():
                if type(v) is ObjectRef:
                    kwargs[k] = _ArgRef(len(arg_refs))
                    arg_refs.append((len(arg_refs), v))
        if not args and not kwargs:
            return _Prepared(None, arg_refs, [])
        try:
            sv = serialization.serialize((args, kwargs))
        except TypeError as exc:
            raise TypeError(str(exc).replace("the value", "an argument", 1)) from exc.__cause__
        return _Prepared(sv.to_inline(), arg_refs, list(sv.refs))

    def _load_args(self, prepared):
        """A private copy of the arguments; raises _ArgFailed if a ref argument failed."""
        for _, ref in prepared.arg_refs:
            obj = self.objects.get(ref._id)
            if obj is None:
                raise _ArgFailed(_error_blob(exceptions.ObjectLostError(
                    ref.hex())))
            if obj.blob[0] == TAG_ERROR:
                raise _ArgFailed(obj.blob)
        if prepared.blob is None:
            return (), {}
        args, kwargs = serialization.loads_inline(prepared.blob)
        if not prepared.arg_refs:
            return args, kwargs
        values = {pos: self._load(ref) for pos, ref in prepared.arg_refs}
        args = tuple(values[a.pos] if type(a) is _ArgRef else a for a in args)
        if kwargs:
            kwargs = {k: values[v.pos] if type(v) is _ArgRef else v for k, v in kwargs.items()}
        return args, kwargs

    # ======================================================== blocked calls
    def _run_or_block(self, b, what):
        """Run the call ``b`` now if nothing holds it back, else queue it in ``blocked``."""
        with self.lock:
            wait = (b.actor_id is not None and
                    any(o.actor_id == b.actor_id for o in self.blocked)) or \
                not self._runnable(b, ())
            if wait:   # (an actor's calls stay in submission order behind its creation)
                self.blocked.append(b)
                if b.resources is not None:
                    self._warn_if_infeasible(what, b.resources, b.pg)
        if not wait:
            b.run()

    def _runnable(self, b, stalled_actors):
        if b.actor_id is not None:
            if b.actor_id in stalled_actors:
                return False
            a = self.actors.get(b.actor_id)
            if b.creation and a is not None and a.state == "DEAD":
                return True   # a creation that will not happen any more
        if not all(self._is_done(r._id) for r in b.deps):
            return False
        if b.pg is not None:
            pg = self.sched.pgs.get(b.pg[0])
            if pg is None:
                return True   # removed: the call fails when it runs
            if pg.state == "PENDING":
                return False
        if b.resources is not None and self._unschedulable(b.resources) is None:
            # It waits until its resources fit (forever if they never can), counting
            # the CPU the calls running in this thread lend out while it runs.
            if not self.sched.feasible(sched.LeaseRequest(None, b.resources, pg=b.pg)):
                return False
            if not self._fits_now(b.resources, b.pg):
                return False
        return True

    def _unschedulable(self, resources):
        """Why a hard node affinity can never be met (Ray fails such work at once)."""
        for k in resources:
            if k.startswith("_node_id:") and k != f"_node_id:{self.node_id}":
                return (f"it has a hard NodeAffinitySchedulingStrategy to node "
                        f"{k[len('_node_id:'):]}, which does not exist (local mode has one "
                        f"node, {self.node_id}).")
        return None

    def _warn_if_infeasible(self, what, resources, pg):
        if pg is not None and pg[0] not in self.sched.pgs:
            return
        if self.sched.feasible(sched.LeaseRequest(None, resources, pg=pg)):
            return
        shape = (tuple(sorted(resources.items())), pg)
        if shape in self.warned_shapes:
            return
        self.warned_shapes.add(shape)
        where = f"placement group bundle {pg}" if pg else "this node"
        logging.getLogger("minray.local").warning(
              f"{what} requests {resources}, which {where} can never provide "
              f"(total: {self.sched.total}). It stays pending until a node with these "
              "resources joins. Lower the request or start minray with more resources "
              "(init(num_cpus=..., resources={...})).")

    def _fits_now(self, resources, pg):
        if pg is None:
            credit = self._cpu_credit()
            available = self.sched.available
            if credit:
                available = dict(available, CPU=available.get("CPU", 0.0) + credit)
            return sched.fits(available, resources)
        group = self.sched.pgs[pg[0]]
        idxs = range(len(group.bundles)) if pg[1] < 0 else [pg[1]]
        return any(i < len(group.available) and sched.fits(group.available[i], resources)
                   for i in idxs)

    def _pump(self):
        """Run the blocked calls that can run now, in order, in this thread.

        Re-entrant: a call it runs may pump again (from get(), or as it frees
        resources); each blocked call is taken out of ``blocked`` before it runs.
        """
        while True:
            with self.lock:
                stalled = set()
                found = None
                for b in self.blocked:
                    if self._runnable(b, stalled):
                        found = b
                        break
                    if b.actor_id is not None:
                        stalled.add(b.actor_id)
                if found is None:
                    return
                self.blocked.remove(found)
            found.run()

    # ================================================================= results
    def _values_outcome(self, name, result, num_returns):
        """Pickle a call's result into its return values (as worker_main.reply_results)."""
        values = validation.split_returns(name, result, num_returns)
        out = []
        for v in values:
            try:
                out.append(self._serialize(v))
            except TypeError as exc:
                raise TypeError(f"The return value of {name} could not be serialized: "
                                f"{exc}") from None
        return _Outcome("values", values=out)

    def _collect(self, gen, items, name):
        """Pickle each item a generator yields, as it yields it; an error is the last item."""
        try:
            for value in gen:
                items.append(self._serialize(value))
        except Exception as exc:
            items.append(self._error_item(name, exc))

    async def _collect_async(self, agen, items, name):
        try:
            async for value in agen:
                items.append(self._serialize(value))
        except Exception as exc:
            items.append(self._error_item(name, exc))

    @staticmethod
    def _error_item(name, exc):
        err = exceptions.task_error_from_exception(name, exc, pid=os.getpid())
        return (_error_blob(err), ())

    def _allocate(self, task_id, num_returns):
        """Pending return objects of a call: (what ``.remote()`` returns, its stream)."""
        if num_returns == "streaming":
            stream = _Stream(task_id)
            return ObjectRefGenerator(task_id, self, stream), stream
        if num_returns == "dynamic":
            return self._new_ref(ids.object_id_for(task_id, 0), None), None
        refs = [self._new_ref(ids.object_id_for(task_id, i + 1), None)
                for i in range(num_returns)]
        return (refs[0] if num_returns == 1 else refs or None), None

    def _finish(self, task_id, num_returns, outcome, stream):
        """Give a call's pending return objects their values (or its error)."""
        if num_returns == "dynamic" and outcome.kind == "error":
            self._fill(ids.object_id_for(task_id, 0), outcome.error)
            return
        values = outcome.values
        if outcome.kind == "error":
            values = [(outcome.error, ())] * (1 if num_returns == "streaming" else num_returns)
        if num_returns in ("streaming", "dynamic"):
            items = [self._new_ref(ids.object_id_for(task_id, i + 1), blob, contained)
                     for i, (blob, contained) in enumerate(values)]
            if num_returns == "dynamic":
                # One ref whose value is a generator of the item refs (Ray's "dynamic").
                blob, contained = self._serialize(items)
                self._fill(ids.object_id_for(task_id, 0), blob, contained, dynamic=True)
                return
            with self.lock:
                stream.items = items
                stream.finished = True
                done, stream.done_refs = stream.done_refs, []
                self.changed.notify_all()
            for oid in done:
                self._fill(oid, _NONE_BLOB)
            return
        for i, (blob, contained) in enumerate(values):
            self._fill(ids.object_id_for(task_id, i + 1), blob, contained)

    def next_stream_item(self, stream, index, timeout):
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.changed:
            while index >= len(stream.items) and not stream.finished:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise exceptions.GetTimeoutError(
                        "no item from the generator within the timeout")
                self.changed.wait(left)
            return stream.items[index] if index < len(stream.items) else None

    def stream_done_ref(self, stream):
        """A ref that is ready (holding None) once the generator has finished."""
        with self.lock:
            if stream.finished:
                return self._new_ref(ids.object_id_for(ids.new_task_id(), 0), _NONE_BLOB)
            oid = ids.object_id_for(ids.new_task_id(), 0)
            stream.done_refs.append(oid)
            return self._new_ref(oid, None)

    # ================================================================== tasks
    def submit_task(self, fn, args, kwargs, opts):
        self.drain_releases()
        task_id = ids.new_task_id()
        prepared = self._prepare_args(args, kwargs)
        returned, stream = self._allocate(task_id, opts.num_returns)

        def run():
            try:
                outcome = self._run_task(fn.obj, task_id, prepared, opts)
            except KeyboardInterrupt:   # Ctrl-C in the task: it counts as cancelled
                self._finish(task_id, opts.num_returns, _cancelled(task_id), stream)
                raise
            self._finish(task_id, opts.num_returns, outcome, stream)

        def cancel():
            self._finish(task_id, opts.num_returns, _cancelled(task_id), stream)
        self._run_or_block(_Blocked(run, [r for _, r in prepared.arg_refs], opts.pg,
                                    opts.resources, task_id=task_id, cancel=cancel),
                           f"the task {opts.name}")
        return returned

    def _pg_removed(self, pg):
        return pg is not None and pg[0] not in self.sched.pgs

    def _run_task(self, fn, task_id, prepared, opts):
        name = opts.name
        n = opts.num_returns
        why = self._unschedulable(opts.resources)
        if why is None and self._pg_removed(opts.pg):
            why = f"its placement group {opts.pg[0].hex()} was removed (or never existed)."
        if why is not None:
            return _Outcome("error", error=_error_blob(
                exceptions.TaskUnschedulableError(f"The task {name} cannot run: {why}")))
        retries_left = opts.max_retries
        env = _merged_env(self.env_vars, opts.env_vars)
        attempt = 0
        while True:
            try:
                args, kwargs = self._load_args(prepared)
            except _ArgFailed as failed:
                return _Outcome("error", error=failed.blob)
            ctx = _TaskContext(task_id, name, opts.resources, attempt=attempt, pg=opts.pg)
            items = []
            with self._running(ctx, env, (opts.resources, opts.pg)):
                try:
                    result = fn(*args, **kwargs)
                    if n in ("streaming", "dynamic"):
                        self._collect(result, items, name)
                        return _Outcome("stream", values=items)
                    return self._values_outcome(name, result, n)
                except Exception as exc:
                    if retries_left != 0 and _retryable(exc, opts.retry_exceptions):
                        retries_left -= 1
                        attempt += 1
                        continue
                    failure = exceptions.task_error_from_exception(name, exc, pid=os.getpid())
                except SystemExit as exc:
                    # In a worker this ends the process: the task is retried like a crash.
                    if retries_left != 0:
                        retries_left -= 1
                        attempt += 1
                        continue
                    failure = exceptions.WorkerCrashedError(
                        f"The worker running {name} exited (sys.exit({exc.code!r})) while "
                        "executing this task.")
                finally:
                    del args, kwargs
            blob = _error_blob(failure)
            if n == "streaming":
                return _Outcome("stream", values=items + [(blob, ())])
            return _Outcome("error", error=blob)

    def cancel(self, ref, force=False, recursive=True):
        if not isinstance(ref, (ObjectRef, ObjectRefGenerator)):
            raise TypeError(f"cancel() expects an ObjectRef, got {type(ref).__name__}")
        task_id = ref._task_id if isinstance(ref, ObjectRefGenerator) else ref.task_id()
        with self.lock:
            waiting = next((b for b in self.blocked if b.task_id == task_id), None)
            if waiting is not None:
                if waiting.actor_id is not None and force:
                    raise ValueError("force=True is not supported for actor tasks; use "
                                     "ray.kill(actor) to stop the actor.")
                self.blocked.remove(waiting)
        if waiting is not None:   # still waiting for a placement group: dropped, unrun
            waiting.cancel()
            self._pump()
        # Anything else finished when it was submitted: nothing to do (as Ray does).

    def cancel_children(self, parent_task_id):
        pass

    # ================================================================= actors
    def create_actor(self, actor_id, cls_info, args, kwargs, opts, meta):
        self.drain_releases()
        prepared = self._prepare_args(args, kwargs)
        wire = opts.actor_wire()
        name = wire["name"]
        ns = wire["namespace"] or self.namespace
        with self.lock:
            if name:
                existing = self.named.get((ns, name))
                if existing is not None and self.actors[existing].state != "DEAD":
                    if wire["get_if_exists"]:
                        a = self.actors[existing]
                        return ("existing", existing, a.meta, self._token_ref(existing))
                    raise ValueError(f"The name {name} (namespace={ns}) is already taken by "
                                     "another actor. Pick another name, pass "
                                     "get_if_exists=True, or kill the existing actor first.")
            a = _Actor(actor_id, cls_info.obj, prepared, opts, meta, ns, self.actor_id)
            self.actors[actor_id] = a
            if name:
                self.named[(ns, name)] = actor_id
        token = self._token_ref(actor_id)

        def run():
            if a.state == "DEAD":
                return   # killed (or its group removed) before it could start
            why = self._unschedulable(opts.resources)
            if why is not None:
                self._mark_dead(a, exceptions.ActorUnschedulableError(
                    f"The actor {a.class_name} cannot be scheduled: {why}"))
                return
            if self._pg_removed(opts.pg):
                self._mark_dead(a, exceptions.ActorDiedError(
                    f"The actor {actor_id.hex()} ({a.class_name}) cannot start: its "
                    "placement group was removed.", actor_id=actor_id.hex()))
                return
            a.charge = self._acquire(opts.resources, opts.pg)
            self._construct(a)
        self._run_or_block(_Blocked(run, [r for _, r in prepared.arg_refs], opts.pg,
                                    opts.resources, creation=True, actor_id=actor_id),
                           f"the actor {a.class_name}")
        return ("created", actor_id, meta, token)

    def _construct(self, a):
        init_name = f"{a.class_name}.__init__"
        try:
            args, kwargs = self._load_args(a.prepared)
        except _ArgFailed as failed:
            err = serialization.loads_inline(failed.blob)
            self._mark_dead(a, exceptions.ActorDiedError(
                f"The actor died because an argument of its creation task, {init_name}(), "
                f"failed:\n{err}", actor_id=a.actor_id.hex(), cause=err))
            return
        ctx = _TaskContext(a.actor_id, init_name, a.opts.resources, actor_id=a.actor_id,
                           attempt=a.num_restarts, pg=a.opts.pg)
        with self._running(ctx, _merged_env(self.env_vars, a.opts.env_vars), held=a.charge):
            try:
                if a.is_async:
                    a.loop = asyncio.new_event_loop()
                    instance = _run_coroutine(a.loop, _construct_async(a.cls, args, kwargs))
                else:
                    instance = a.cls(*args, **kwargs)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                err = exceptions.task_error_from_exception(init_name, exc, pid=os.getpid())
                self._mark_dead(a, exceptions.ActorDiedError(
                    f"The actor died because of an error raised in its creation task, "
                    f"{init_name}():\n{err}", actor_id=a.actor_id.hex(), cause=err))
                return
            finally:
                del args, kwargs
        a.actor = instance
        a.state = "ALIVE"

    def submit_actor_task(self, actor_id, method, args, kwargs, opts, token):
        self.drain_releases()
        task_id = ids.new_task_id()
        prepared = self._prepare_args(args, kwargs)
        returned, stream = self._allocate(task_id, opts.num_returns)

        def run():
            a = self.actors.get(actor_id)
            if a is None or a.state == "DEAD":
                cause = a.cause if a is not None else None
                outcome = _Outcome("error", error=cause or _error_blob(
                    exceptions.ActorDiedError(actor_id=actor_id.hex())))
            elif method == "__ray_terminate__":
                outcome = self._values_outcome(method, None, opts.num_returns)
                self._exit_actor(a, "__ray_terminate__ was called")
            else:
                try:
                    outcome = self._run_actor_call(a, task_id, method, prepared, opts)
                except KeyboardInterrupt:   # Ctrl-C in the call: it counts as cancelled
                    self._finish(task_id, opts.num_returns, _cancelled(task_id), stream)
                    raise
            self._finish(task_id, opts.num_returns, outcome, stream)

        def cancel():
            self._finish(task_id, opts.num_returns, _cancelled(task_id), stream)
        self._run_or_block(_Blocked(run, [r for _, r in prepared.arg_refs], None, None,
                                    actor_id=actor_id, task_id=task_id, cancel=cancel),
                           "an actor call")
        return returned

    def _run_actor_call(self, a, task_id, method, prepared, opts):
        name = f"{a.class_name}.{method}"
        n = opts.num_returns
        try:
            args, kwargs = self._load_args(prepared)
        except _ArgFailed as failed:
            return _Outcome("error", error=failed.blob)
        incarnation = a.incarnation
        ctx = _TaskContext(task_id, name, a.opts.resources, actor_id=a.actor_id,
                           attempt=a.num_restarts, pg=a.opts.pg)
        items = []
        failure = None
        env = _merged_env(self.env_vars, a.opts.env_vars)
        with a.call_lock, self._running(ctx, env, held=a.charge):
            try:
                fn = getattr(a.actor, method)
                if a.loop is not None:
                    result = _run_coroutine(a.loop, self._async_call(fn, args, kwargs, n,
                                                                    items, name))
                else:
                    result = fn(*args, **kwargs)
                if n in ("streaming", "dynamic"):
                    if result is not _STREAMED:
                        self._collect(result, items, name)
                    outcome = _Outcome("stream", values=items)
                else:
                    outcome = self._values_outcome(name, result, n)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                failure = self._actor_call_failed(a, name, exc)
                if failure is None:
                    raise
                incarnation = a.incarnation
            finally:
                del args, kwargs
        if failure is None and a.incarnation != incarnation and a.cause is not None:
            # Killed while this call ran (e.g. ray.kill on itself): the call is lost.
            return _Outcome("error", error=a.cause)
        if failure is None:
            return outcome
        blob = _error_blob(failure)
        if n == "streaming":
            return _Outcome("stream", values=items + [(blob, ())])
        return _Outcome("error", error=blob)

    def _actor_call_failed(self, a, name, exc):
        """The error a failed actor call returns; ends the actor if the call exited it."""
        actor_hex = a.actor_id.hex()
        if isinstance(exc, SystemExit):
            # In a worker this ends the process: the actor restarts if it may.
            self._crash_actor(a, f"its process exited (sys.exit({exc.code!r}))")
            return exceptions.ActorDiedError(
                f"The actor {a.class_name} exited (sys.exit({exc.code!r})) while running "
                f"{name}.", actor_id=actor_hex)
        if _is_actor_exit(exc):
            self._exit_actor(a, "exit_actor() was called")
            return exceptions.ActorDiedError(
                f"The actor {a.class_name} exited by calling exit_actor().", actor_id=actor_hex)
        if isinstance(exc, Exception):
            return exceptions.task_error_from_exception(
                name, exc, pid=os.getpid(), actor_repr=_actor_repr(a), actor_id=actor_hex)
        return None

    async def _async_call(self, fn, args, kwargs, n, items, name):
        if n in ("streaming", "dynamic") and inspect.isasyncgenfunction(fn):
            await self._collect_async(fn(*args, **kwargs), items, name)
            return _STREAMED
        result = fn(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    def get_actor(self, name, namespace):
        self.drain_releases()
        ns = namespace if namespace is not None else self.namespace
        with self.lock:
            actor_id = self.named.get((ns, name))
            if actor_id is None or self.actors[actor_id].state == "DEAD":
                raise ValueError(f"Failed to look up actor with name '{name}' in namespace "
                                 f"'{ns}'. Check the name and namespace (get_actor(name, "
                                 "namespace=...)), and that the actor is still alive.")
            meta = self.actors[actor_id].meta
        return actor_id, meta, self._token_ref(actor_id)

    def kill_actor(self, actor_id, no_restart=True):
        a = self.actors.get(actor_id)
        if a is None:
            raise ValueError(f"no actor with id {actor_id.hex()}")
        if a.state == "DEAD":
            return True
        if no_restart or a.state == "PENDING_CREATION":
            self._mark_dead(a, exceptions.ActorDiedError(
                f"The actor {actor_id.hex()} ({a.class_name}) was killed: ray.kill() was "
                "called on it.", actor_id=actor_id.hex()))
        else:
            self._crash_actor(a, "it was killed by ray.kill(no_restart=False)")
        return True

    def _crash_actor(self, a, why):
        """The actor's process died: restart it if it has restarts left, else it is dead."""
        if a.max_restarts == -1 or a.num_restarts < a.max_restarts:
            a.num_restarts += 1
            self._drop_instance(a)
            a.state = "RESTARTING"
            self._construct(a)
            return
        self._mark_dead(a, exceptions.ActorDiedError(
            f"The actor {a.actor_id.hex()} ({a.class_name}) died: {why}; restarts used "
            f"{a.num_restarts} of max_restarts={a.max_restarts}.",
            actor_id=a.actor_id.hex()))

    def _exit_actor(self, a, reason):
        self._mark_dead(a, exceptions.ActorDiedError(
            f"The actor {a.actor_id.hex()} exited: {reason}", actor_id=a.actor_id.hex()))

    def _mark_dead(self, a, cause):
        with self.lock:
            if a.state == "DEAD":
                return
            a.state = "DEAD"
            a.cause = _error_blob(cause)
            if a.name and self.named.get((a.namespace, a.name)) == a.actor_id:
                del self.named[(a.namespace, a.name)]
            charge, a.charge = a.charge, None
            owned = [o for o in self.actors.values()
                     if o.owner == a.actor_id and not o.detached and o.state != "DEAD"]
        self._drop_instance(a)
        if charge is not None:
            self._release(charge)
        for o in owned:   # an actor's non-detached children die with it (ownership)
            self._mark_dead(o, exceptions.ActorDiedError(
                f"The actor {o.actor_id.hex()} ({o.class_name}) died: the actor that "
                f"created it ({a.class_name}) died.", actor_id=o.actor_id.hex()))
        self._pump()   # calls waiting behind it now fail with the cause

    def _drop_instance(self, a):
        a.incarnation += 1
        instance, a.actor = a.actor, None
        loop, a.loop = a.loop, None
        del instance  # the actor's own refs and handles go with it
        if loop is not None and not loop.is_running():
            loop.close()

    # ===================================================== node manager calls
    def call(self, method, *args, timeout=None):
        """A request CoreClient sends to the node manager, answered here."""
        handler = self.handlers.get(method)
        if handler is None:
            raise ValueError(f"unknown request {method!r}")
        if method == "wait_pg":
            return self._h_wait_pg(*args, timeout=timeout)
        return handler(*args)

    def notice(self, method, *args):
        pass

    def _h_cluster_resources(self):
        return {k: v for k, v in self.sched.total.items() if v and not k.startswith("_")}

    def _h_available_resources(self):
        with self.lock:
            return {k: v for k, v in self.sched.available.items()
                    if v > 1e-9 and not k.startswith("_")}

    def _h_nodes(self):
        return [{"NodeID": self.node_id, "Alive": True, "NodeManagerAddress": "127.0.0.1",
                 "NodeManagerHostname": socket.gethostname(), "NodeName": "127.0.0.1",
                 "Resources": self._h_cluster_resources(), "alive": True,
                 "ObjectStoreSocketName": None, "RayletSocketName": None,
                 "MetricsExportPort": 0}]

    def _h_object_stats(self):
        with self.lock:
            values = [o for o in self.objects.values()
                      if o.token_of is None and o.blob is not None]
            size = sum(len(o.blob) for o in values)
        return {"num_objects": len(values), "shm_bytes": 0, "inline_bytes": size,
                "capacity": 0, "spilled_bytes": 0, "num_spilled": 0, "num_restored": 0}

    def _h_status(self):
        return {"node_id": self.node_id, "resources_total": dict(self.sched.total),
                "resources_available": self._h_available_resources(), "workers": {},
                "actors": self._h_list_actors(), "objects": self._h_object_stats(),
                "pending_leases": len(self.blocked), "jobs": 1,
                "uptime_s": time.time() - self.start_time, "local_mode": True}

    def _h_kv_put(self, key, value, overwrite=True):
        with self.lock:
            if not overwrite and key in self.kv:
                return False
            self.kv[key] = value
            return True

    def _h_kv_get(self, key):
        return self.kv.get(key)

    def _h_kv_del(self, key):
        with self.lock:
            return self.kv.pop(key, None) is not None

    def _h_kv_keys(self, prefix):
        with self.lock:
            return [k for k in self.kv if k.startswith(prefix)]

    def _h_list_named_actors(self, all_namespaces=False):
        with self.lock:
            out = []
            for (ns, name), actor_id in self.named.items():
                if self.actors[actor_id].state == "DEAD":
                    continue
                if all_namespaces:
                    out.append({"name": name, "namespace": ns})
                elif ns == self.namespace:
                    out.append(name)
            return out

    def _h_list_actors(self):
        with self.lock:
            return [{"actor_id": a.actor_id.hex(), "class_name": a.class_name,
                     "state": a.state, "name": a.name or "", "namespace": a.namespace,
                     "pid": os.getpid() if a.state == "ALIVE" else None,
                     "num_restarts": a.num_restarts} for a in self.actors.values()]

    def _h_create_pg(self, pg_id, bundles, strategy, name="", lifetime=None):
        pg = sched.PlacementGroupState(pg_id, bundles, strategy, name, lifetime,
                                       owner=self.client_id)
        with self.lock:
            if not self.sched.pg_feasible(pg):
                logging.getLogger("minray.local").warning(
                      f"placement group {name or pg_id.hex()} with bundles {bundles} "
                      f"and strategy {strategy} cannot be placed on this cluster (resources "
                      f"{self.sched.total}, 1 node); it stays pending.")
            self.sched.create_pg(pg)
            self.changed.notify_all()
        return True

    def _h_wait_pg(self, pg_id, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.changed:
            while True:
                pg = self.sched.pgs.get(pg_id)
                if pg is None:
                    raise ValueError(f"placement group {pg_id.hex()} does not exist (removed?)")
                if pg.state == "CREATED":
                    return True
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise exceptions.GetTimeoutError(f"no reply to wait_pg within {timeout}s")
                # Only another thread can free resources now; this one waits for it.
                self.changed.wait(left)

    def _h_remove_pg(self, pg_id):
        with self.lock:
            pg = self.sched.remove_pg(pg_id)
            if pg is None:
                return False
            doomed = [a for a in self.actors.values()
                      if a.opts.pg and a.opts.pg[0] == pg_id and a.state != "DEAD"]
        for a in doomed:
            a.charge = None   # its bundle went with the group
            self._mark_dead(a, exceptions.ActorDiedError(
                f"The actor {a.actor_id.hex()} ({a.class_name}) was killed: its placement "
                "group was removed.", actor_id=a.actor_id.hex()))
        with self.lock:
            self.sched.try_place_pgs()
            self.changed.notify_all()
        self._pump()
        return True

    def _h_pg_table(self, pg_id=None):
        def row(pg):
            return {"placement_group_id": pg.pg_id.hex(), "name": pg.name,
                    "bundles": {i: b for i, b in enumerate(pg.bundles)},
                    "strategy": pg.strategy, "state": pg.state}
        with self.lock:
            if pg_id is not None:
                pg = self.sched.pgs.get(pg_id)
                return row(pg) if pg else {"placement_group_id": pg_id.hex(),
                                           "state": "REMOVED"}
            return {pg.pg_id.hex(): row(pg) for pg in self.sched.pgs.values()}

    # =============================================================== shutdown
    def close(self):
        """End every actor (detached ones too: they lived in this process) and free values."""
        self.shutting_down = True
        with self.lock:
            self.blocked.clear()
        for a in list(self.actors.values()):
            try:
                self._mark_dead(a, exceptions.ActorDiedError(
                    "minray was shut down.", actor_id=a.actor_id.hex()))
            except Exception:
                pass
        with self.lock:
            objects, self.objects = self.objects, {}
            self.named.clear()
            self.changed.notify_all()
        del objects
        self.release_queue.clear()


_STREAMED = object()   # _async_call already collected an async generator's items


def _cancelled(task_id):
    return _Outcome("error", error=_error_blob(
        exceptions.TaskCancelledError(task_id.hex())))


async def _construct_async(cls, args, kwargs):
    return cls(*args, **kwargs)


def _run_coroutine(loop, coro):
    """Run ``coro`` to completion on ``loop`` in this thread, even inside a running loop.

    An async actor's calls run on its private loop, in the caller's thread, so a
    breakpoint in ``async def`` code stops the driver.  When the caller is itself
    async code (an async driver, or another async actor's method), its loop is
    set aside for the call, since asyncio refuses to run two loops in one thread
    at once (asyncio._get/_set_running_loop are the documented low-level hooks).
    """
    temporary = loop.is_running()
    if temporary:   # a call back into the same async actor from inside one of its calls
        loop = asyncio.new_event_loop()
    outer = asyncio._get_running_loop()
    if outer is not None:
        asyncio._set_running_loop(None)
    try:
        return loop.run_until_complete(coro)
    finally:
        if outer is not None:
            asyncio._set_running_loop(outer)
        if temporary:
            loop.close()


@contextlib.contextmanager
def _environment(env_vars):
    """Set a call's runtime_env env_vars while it runs, as its worker would have them."""
    if not env_vars:
        yield
        return
    saved = {k: os.environ.get(k) for k in env_vars}
    os.environ.update(env_vars)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _merged_env(job_env, call_env):
    if not call_env:
        return job_env
    return dict(job_env, **call_env)


def _error_blob(err):
    """serialization.error_blob, checked to load again: an exception whose __init__
    takes extra required arguments pickles but does not unpickle, and get() must
    raise the task's error, not pickle's TypeError."""
    blob = serialization.error_blob(err)
    try:
        serialization.loads_inline(blob)
    except Exception as exc:
        cause = getattr(err, "cause", None) or err
        fallback = exceptions.RayTaskError(
            getattr(err, "function_name", "<unknown>"),
            getattr(err, "traceback_str", "") or repr(err),
            RuntimeError(f"{type(cause).__name__}: {cause} (the original exception could "
                         f"not be unpickled: {type(exc).__name__}: {exc})"),
            pid=getattr(err, "pid", None))
        blob = serialization.error_blob(fallback)
    return blob


def _with_gpus(env_vars, charge):
    """A call holding GPUs sees only those, in CUDA_VISIBLE_DEVICES (as its worker would)."""
    gpu_ids = sched.Scheduler.gpu_ids(charge)
    if not gpu_ids:
        return env_vars
    return dict(env_vars, CUDA_VISIBLE_DEVICES=",".join(str(i) for i in gpu_ids))


def _retryable(exc, retry_exceptions):
    if not retry_exceptions:
        return False
    if isinstance(retry_exceptions, bytes):     # an actor method's list, by value
        import pickle
        retry_exceptions = pickle.loads(retry_exceptions)
    if retry_exceptions is True:
        return True
    return isinstance(exc, tuple(retry_exceptions))


def _is_actor_exit(exc):
    """exit_actor() raised state.ActorExit (or an async actor's AsyncioActorExit)."""
    from minray._private.state import ActorExit
    return isinstance(exc, (ActorExit, exceptions.AsyncioActorExit))


def _actor_repr(a):
    try:
        return repr(a.actor)
    except Exception:
        return a.class_name
