"""Local mode: every task and actor call runs in the caller's thread, at ``.remote()`` time.

    f.remote(x) -> LocalClient.submit_task -> args pickled, then unpickled (a private copy)
                -> f(*args) runs here, now, in this thread (so pdb and breakpoints work)
                -> each result pickled into an LocalObject -> ObjectRef returned, already ready
    get(ref)    -> a fresh unpickled copy of the value, or the task's error raised

The files of local mode: this one (objects, refs, get/wait, blocked calls,
tasks), local/actors.py (actors), local/head.py (the node manager's requests,
answered from head/tables.py and the Scheduler) and local/records.py (records).
A call runs through core/execution.py and core/retry.py, as in a worker process.

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

import collections
import contextlib
import itertools
import os
import logging
import threading
import time

from minray import exceptions
from minray._private.core.object_ref import ObjectRef, ObjectRefGenerator
from minray._private.core import args as call_args, execution, ids, retry, validation
from minray._private.head.tables import KVStore, NamedActorTable
from minray._private.objects import serialization
from minray._private.scheduling import resources as sched
from minray._private.objects.serialization import TAG_ERROR
from minray._private.local.actors import ActorsMixin
from minray._private.local.head import HeadMixin
from minray._private.local.records import (
    TOKEN_SUFFIX, NONE_BLOB, WARN_BLOCKED_GET_S, LocalObject, Stream, TaskContext, Frame,
    Prepared, ArgFailed, Outcome, Blocked, cancelled_outcome, environment, merged_env,
    with_gpus, error_item)


class LocalClient(ActorsMixin, HeadMixin):
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
        self.named = NamedActorTable()
        self.kv = KVStore()
        self.blocked = []                 # Blocked calls, in submission order
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
            frames.append(Frame(charge or held))
            cur.task_id, cur.ctx = ctx.task_id, ctx
            try:
                with environment(with_gpus(env_vars, charge or held)):
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
            with self.lock:
                freed = self._unreferenced(rq)
            orphaned = [o.token_of for o in freed if o.token_of is not None]
            a = None
            for actor_id in orphaned:
                a = self.actors.get(actor_id)
                if a is not None and not a.detached and a.state != "DEAD":
                    self._exit_actor(a, "all references to the actor were deleted")
            # Dropping the values drops the refs inside them, which queues more releases
            # (so no local name may keep one alive past this point).
            del freed, orphaned, a

    def _unreferenced(self, rq):
        """Count off the refs deleted since the last drain (all of ``rq``, one batch);
        returns the objects no ref names any more, removed from ``objects``."""
        drops = collections.Counter()
        while rq:
            drops[rq.popleft()] += 1
        freed = []
        for oid, n in drops.items():
            obj = self.objects.get(oid)
            if obj is not None:
                obj.refs -= n
                if obj.refs <= 0:
                    freed.append(self.objects.pop(oid))
        return freed

    def _new_ref(self, oid, blob, contained=(), dynamic=False):
        with self.lock:
            self.objects[oid] = LocalObject(blob, contained, dynamic, seq=next(self.done_seq))
        return ObjectRef(oid, self.client_id, self)

    def _token_ref(self, actor_id):
        oid = actor_id + TOKEN_SUFFIX
        with self.lock:
            if oid not in self.objects:
                self.objects[oid] = LocalObject(NONE_BLOB, token_of=actor_id)
        return ObjectRef(oid, self.client_id, self)

    def deserialize_ref(self, oid, owner):
        """A ref arrived inside a value (or a token was asked for): count it."""
        if oid.endswith(TOKEN_SUFFIX) and oid[:16] in self.actors:
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
            stream = Stream(task_id)
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
        args, kwargs, arg_refs = call_args.placeholders(args, kwargs, ObjectRef)
        if not args and not kwargs:
            return Prepared(None, arg_refs, [])
        try:
            sv = serialization.serialize((args, kwargs))
        except TypeError as exc:
            raise TypeError(str(exc).replace("the value", "an argument", 1)) from exc.__cause__
        return Prepared(sv.to_inline(), arg_refs, list(sv.refs))

    def _load_args(self, prepared):
        """A private copy of the arguments; raises ArgFailed if a ref argument failed."""
        for _, ref in prepared.arg_refs:
            obj = self.objects.get(ref._id)
            if obj is None:
                raise ArgFailed(execution.error_blob(exceptions.ObjectLostError(
                    ref.hex())))
            if obj.blob[0] == TAG_ERROR:
                raise ArgFailed(obj.blob)
        if prepared.blob is None:
            return (), {}
        args, kwargs = serialization.loads_inline(prepared.blob)
        if not prepared.arg_refs:
            return args, kwargs
        values = {pos: self._load(ref) for pos, ref in prepared.arg_refs}
        return call_args.resolve(args, kwargs, values)

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
        """Pickle a call's result into its return values (as a worker replies them)."""
        return Outcome("values", values=execution.store_returns(
            name, result, num_returns, lambda i, value: self._serialize(value)))

    def _collect(self, gen, items, name):
        """Pickle each item a generator yields, as it yields it; an error is the last item."""
        _, exc = execution.drain(gen, lambda i, value: items.append(self._serialize(value)))
        if exc is not None:
            items.append(error_item(name, exc))

    async def _collect_async(self, agen, items, name):
        _, exc = await execution.drain_async(
            agen, lambda i, value: items.append(self._serialize(value)))
        if exc is not None:
            items.append(error_item(name, exc))

    def _allocate(self, task_id, num_returns):
        """Pending return objects of a call: (what ``.remote()`` returns, its stream)."""
        if num_returns == "streaming":
            stream = Stream(task_id)
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
                self._fill(oid, NONE_BLOB)
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
                return self._new_ref(ids.object_id_for(ids.new_task_id(), 0), NONE_BLOB)
            oid = ids.object_id_for(ids.new_task_id(), 0)
            stream.done_refs.append(oid)
            return self._new_ref(oid, None)

    # ================================================================== tasks
    def submit_task(self, fn, args, kwargs, opts):
        self.drain_releases()
        task_id = ids.new_task_id()
        prepared = self._prepare_args(args, kwargs)
        return self._submit(task_id, opts.num_returns, prepared,
                            lambda: self._run_task(fn.obj, task_id, prepared, opts),
                            f"the task {opts.name}", pg=opts.pg, resources=opts.resources)

    def _submit(self, task_id, num_returns, prepared, body, what, pg=None, resources=None,
                actor_id=None):
        """Run ``body`` (-> its Outcome) now, or once nothing holds the call back;
        returns the call's refs (or generator), which get the outcome."""
        returned, stream = self._allocate(task_id, num_returns)

        def run():
            try:
                outcome = body()
            except KeyboardInterrupt:   # Ctrl-C in the call: it counts as cancelled
                self._finish(task_id, num_returns, cancelled_outcome(task_id), stream)
                raise
            self._finish(task_id, num_returns, outcome, stream)

        def cancel():
            self._finish(task_id, num_returns, cancelled_outcome(task_id), stream)
        self._run_or_block(Blocked(run, [r for _, r in prepared.arg_refs], pg, resources,
                                   actor_id=actor_id, task_id=task_id, cancel=cancel), what)
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
            return Outcome("error", error=execution.error_blob(
                exceptions.TaskUnschedulableError(f"The task {name} cannot run: {why}")))
        retries_left = opts.max_retries
        env = merged_env(self.env_vars, opts.env_vars)
        attempt = 0
        while True:
            try:
                args, kwargs = self._load_args(prepared)
            except ArgFailed as failed:
                return Outcome("error", error=failed.blob)
            ctx = TaskContext(task_id, name, opts.resources, attempt=attempt, pg=opts.pg)
            items = []
            with self._running(ctx, env, (opts.resources, opts.pg)):
                try:
                    result = fn(*args, **kwargs)
                    if n in ("streaming", "dynamic"):
                        self._collect(result, items, name)
                        return Outcome("stream", values=items)
                    return self._values_outcome(name, result, n)
                except (SystemExit, Exception) as exc:
                    # sys.exit() would end a worker: it is retried like a crash.
                    failure = execution.classify(exc, name, os.getpid(), opts.retry_exceptions)
                finally:
                    del args, kwargs
            decision = retry.decide(retries_left, failure.retryable)
            if decision.retry:
                retries_left = decision.retries_left
                attempt += 1
                continue
            blob = execution.error_blob(failure.error)
            if n == "streaming":
                return Outcome("stream", values=items + [(blob, ())])
            return Outcome("error", error=blob)

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
