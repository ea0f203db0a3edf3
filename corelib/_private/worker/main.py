"""A worker process: runs tasks, or hosts one actor.

    submitter --TASK / ACTOR_CALL--> [worker socket] --> main thread runs the code
                                                    --> DONE / GEN_ITEM back
    node manager --PUSH become_actor / cancel / terminate--> client I/O thread
                                                    --> handed to the main thread

Plain tasks and single-threaded actors run inline on the main thread, one at a
time, in arrival order (so calls from one caller keep their order).  Threaded
actors (max_concurrency > 1) run calls on a thread pool per concurrency group;
async actors run them as coroutines on an event loop thread.
"""

import collections
import inspect
import os
import pickle
import signal
import socket
import logging
import sys
import threading
import time
import traceback


from minray import exceptions
from minray._private.lazy import lazy_module
from minray._private.net import protocol as P
from minray._private.objects import serialization
from minray._private import state
from minray._private.observability import task_events
from minray._private.net import transport
from minray._private.core import args as call_args, execution
from minray._private.core.execution import ActorExit  # noqa: F401  (exit_actor() raises it)
from minray._private.client.core_client import _EMPTY_ARGS, CoreClient
from minray._private.node.records import TASK_NAME_MARKER
from minray._private.objects.serialization import TAG_SHM

# Only async and threaded actors need these (about 35 ms of imports): off the
# path of a fresh runtime's first task. The zygote imports them when idle.
asyncio = lazy_module("asyncio", globals())
futures = lazy_module("concurrent.futures", globals())


class TaskContext:
    """What get_runtime_context() reports inside a task or actor call."""

    __slots__ = ("task_id", "name", "resources", "actor_id", "attempt", "placement_group_id",
                 "capture")

    def __init__(self, task_id, name, resources, actor_id=None, placement_group_id=None,
                 capture=False):
        self.task_id = task_id
        self.name = name
        self.resources = resources
        self.actor_id = actor_id
        self.placement_group_id = placement_group_id
        self.capture = capture     # child tasks run in placement_group_id too


class WorkerServer:
    def __init__(self, spec):
        self.spec = spec
        self.worker_id = spec["worker_id"]
        self.address = os.path.join(spec["session_dir"], f"w-{self.worker_id}.sock")
        self.listener = transport.listen_unix(self.address)
        self.loop = transport.Loop("minray-worker-main", spin=True)
        self.loop.thread = threading.current_thread()
        self.fns = {}
        self.fn_blobs = {}      # fn_id -> pickled function that came with a stolen task
        self.actor = None
        self.actor_id = None
        self.actor_meta = None
        self.actor_resources = {}
        self.actor_name = ""
        self.actor_mode = "sync"
        self.sync_contexts = {}   # method -> its TaskContext (see _call_context)
        self.actor_pg = None
        self.actor_capture = False
        self.executors = {}
        self.async_loop = None
        self.async_sems = {}
        self.last_name = None
        self.running_task = None
        self.cancel_requested = set()
        self.async_calls = {}     # task id -> the future of an async actor call
        self.exiting = False
        self.exit_called = False   # an async call ran exit_actor(); exit_actor() follows
        # Replies of short tasks that arrived together are written together.
        self.outq = {}
        self.in_plain_task = False
        self.last_fn = None
        self.last_fast = False
        self.loop.batch_end = self.flush_all
        # Tasks a submitter took back before they started (see on_steal):
        # task id -> the connection the STOLEN answer went to (None: none yet).
        self.steal_lock = threading.Lock()
        self.stolen = {}
        self.started = collections.OrderedDict()
        self.conns_by_client = {}
        self.calls = collections.Counter()   # fn_id -> calls run here (for max_calls)
        self.retiring = False
        handlers = {
            "become_actor": lambda *a: self.loop.call_soon(self.become_actor, *a),
            "cancel": self.on_cancel,
            "terminate": lambda: self.loop.call_soon(self.terminate),
            "steal": self.on_steal,
        }
        config = {"address": self.address}
        self.tcp_listener = None
        if spec.get("cluster"):
            # Submitters on other nodes push tasks here over TCP (authenticated).
            self.tcp_listener = transport.listen_tcp(spec["node_ip"], 0)
            port = self.tcp_listener.getsockname()[1]
            config["tcp_address"] = f"tcp://{spec['node_ip']}:{port}"
            threading.Thread(target=self._accept_tcp, name="minray-worker-tcp",
                             daemon=True).start()
        self.client = CoreClient("worker", spec["nm_socket"], config,
                                 worker_id=self.worker_id, push_handlers=handlers)
        self.client.worker_server = self
        self.client.namespace = spec.get("namespace")   # the job's, as in the driver
        self.client.nm_tcp = spec.get("nm_tcp")   # where other nodes find our objects
        self.client.inherited_env = spec.get("task_env_vars") or None
        # OMP_NUM_THREADS follows each task's CPUs unless the user set it (zygote.py).
        self.omp_fixed = spec.get("omp_fixed", True)
        self.omp_cpus = -1             # the CPU count OMP_NUM_THREADS was last set for
        state.set_client(self.client)
        self.loop.add_listener(self.listener, self.on_accept)

    def on_accept(self, sock, remote=False):
        conn = transport.Connection(sock)
        # A submitter on another node cannot map this node's shared memory:
        # results for it travel inline (see CoreClient.force_inline).
        conn.info["remote"] = remote
        self.loop.add_connection(conn, self.on_frame, self.on_task_conn_closed)

    def _accept_tcp(self):
        token = os.environ.get("MINRAY_CLUSTER_TOKEN", "")
        while True:
            try:
                sock, peer = self.tcp_listener.accept()
            except OSError:
                return
            try:
                transport.server_handshake(sock, token)
            except transport.AuthenticationError as exc:
                logging.getLogger("minray.worker").warning("worker refused a connection from "
                                                       "%s: %s", peer[0], exc)
                sock.close()
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.loop.call_soon(self.on_accept, sock, True)

    def run(self):
        self.loop.run()

    # ----------------------------------------------------------------- frames
    def on_frame(self, conn, kind, msg):
        if kind == P.TASK:
            self.run_task(conn, msg)
        elif kind == P.ACTOR_CALL:
            self.dispatch_actor_call(conn, msg)
        elif kind == P.CANCEL:
            self.cancel_actor_call(*msg)
        elif kind == P.HELLO:
            conn.info["client_id"] = msg[0]
            self.conns_by_client[msg[0]] = conn

    def on_steal(self, task_ids, client_id):
        """A submitter takes back tasks queued here behind a long one (client I/O thread).

        The steal comes through the node manager, the tasks and the HELLO that
        names their submitter on the task socket, which the main loop reads: under
        load the steal may overtake them, so that this worker does not know the
        socket yet (a fresh lease) or still maps the submitter to the socket of an
        earlier lease (given back, closing). The answer then goes nowhere, or to
        the wrong socket: ``run_task`` answers again, on the socket a skipped task
        came on (see claim), or the submitter would wait for those tasks forever.
        """
        conn = self.conns_by_client.get(client_id)
        if conn is not None and conn.closed:
            conn = None
        with self.steal_lock:
            given = [t for t in task_ids if t not in self.started]
            for t in given:
                self.stolen[t] = conn
        if conn is not None:
            try:
                conn.send(P.STOLEN, (given,))
            except transport.ConnectionClosed:
                with self.steal_lock:
                    for t in given:
                        if t in self.stolen:
                            self.stolen[t] = None

    def claim(self, task_id, conn=None):
        """Mark a task as started, unless it was stolen. Returns True to run it,
        False to skip it (the submitter has its STOLEN answer), or None to skip it
        and answer STOLEN on ``conn``, the socket it came on (see on_steal)."""
        with self.steal_lock:
            if task_id in self.stolen:
                told = self.stolen.pop(task_id)
                return False if told is conn and conn is not None else None
            self.started[task_id] = None
            if len(self.started) > 4096:
                self.started.popitem(last=False)
            return True

    def on_task_conn_closed(self, conn):
        """A submitter's task socket closed (lease given back): forget it, so a
        late steal is answered where the tasks arrive (see on_steal)."""
        client_id = conn.info.get("client_id")
        if client_id is not None and self.conns_by_client.get(client_id) is conn:
            del self.conns_by_client[client_id]

    def reply_done(self, conn, msg):
        task_events.end(msg[0])   # before the reply: whoever saw the result sees FINISHED
        if not self.in_plain_task:
            self.flush(conn)
            conn.send(P.DONE, msg)
            return
        q = self.outq.get(conn)
        if q is None:
            q = self.outq[conn] = []
        q.append(transport.encode_msg(P.DONE, msg))
        if len(q) >= 32:
            self.flush(conn)

    def done_flags(self):
        flags = 1 if self.client.blocked_in_task else 0
        return flags | (2 if self.retiring else 0)

    def flush(self, conn):
        q = self.outq.pop(conn, None)
        if q:
            try:
                conn.send_bytes(b"".join(q))
            except transport.ConnectionClosed:
                pass

    def flush_all(self):
        for conn in list(self.outq):
            self.flush(conn)

    def set_name(self, name):
        if name != self.last_name:
            self.last_name = name
            marker = TASK_NAME_MARKER + name + "\n"
            try:
                sys.stdout.flush()
                sys.stderr.flush()
                os.write(1, marker.encode())
                os.write(2, marker.encode())
            except OSError:
                pass

    # ------------------------------------------------------------------ tasks
    def load_args(self, args_blob, arg_values):
        if args_blob == _EMPTY_ARGS and not arg_values:
            return (), {}   # a call without arguments: nothing to unpickle
        if type(args_blob) is tuple:  # (oid, S blob): large args in the store
            oid, blob = args_blob
            buf = self.client._attach(oid, blob)
            args, kwargs = serialization.loads_segment(buf)
        else:
            args, kwargs = serialization.loads_inline(args_blob)
        if not arg_values:
            return args, kwargs
        values = {}
        for pos, oid, blob in arg_values:
            if blob[0] == TAG_SHM:
                values[pos] = serialization.loads_segment(self.client._attach(oid, blob))
            else:
                values[pos] = serialization.loads_inline(blob)
        return call_args.resolve(args, kwargs, values)

    def run_task(self, conn, msg):
        task_id, fn_id, fn_blob, args_blob, arg_values, num_returns, wire, gpu_ids = msg
        if fn_blob is not None and fn_id not in self.fns:
            # Keep the function even if this task was stolen back before it started:
            # the submitter counts it as sent here and will not send it again.
            self.fn_blobs[fn_id] = fn_blob
        run = self.claim(task_id, conn)
        if not run:
            if run is None:   # stolen, but the submitter's answer went nowhere
                try:
                    conn.send(P.STOLEN, ([task_id],))
                except transport.ConnectionClosed:
                    pass
            return
        name, resources, retry_exc, max_calls = wire[0], wire[1], wire[2], wire[4]
        if max_calls:
            self.calls[fn_id] += 1
            self.retiring = self.calls[fn_id] >= max_calls
        owner = conn.info.get("client_id")
        fn = self.fns.get(fn_id)
        try:
            if fn is None:
                fn_blob = fn_blob or self.fn_blobs.pop(fn_id, None)
                if fn_blob is None:
                    raise exceptions.RaySystemError("function missing from the worker cache")
                fn = self.fns[fn_id] = serialization.loads_function(fn_blob)
                self.fn_blobs.pop(fn_id, None)
        except BaseException as exc:
            self.reply_failure(conn, task_id, name, exc, num_returns)
            return
        if self.outq and not (fn_id == self.last_fn and self.last_fast):
            # The next task may be long: do not hold earlier results behind it.
            self.flush_all()
        self.set_name(name)
        ctx = TaskContext(task_id, name, resources, placement_group_id=wire[5],
                          capture=len(wire) > 6 and wire[6])
        _set_visible_gpus(gpu_ids)   # "" when none, as Ray does
        if not self.omp_fixed:
            cpus = resources.get("CPU") if resources else None
            if cpus != self.omp_cpus:                  # most tasks: as the one before
                self.omp_cpus = cpus
                _set_omp_threads(resources)
        self.in_plain_task = True
        started = time.perf_counter()
        self.client.current_task.task_id = task_id
        self.client.current_task.ctx = ctx
        self.client.current_task.force_inline = conn.info.get("remote", False)
        self.client.current_task.remote_conn = conn if conn.info.get("remote") else None
        self.client.blocked_in_task = False
        self.running_task = task_id
        task_events.running(task_id, name, getattr(fn, "__qualname__", name),
                            task_events.NORMAL_TASK, None)
        try:
            args, kwargs = self.load_args(args_blob, arg_values)
            result = fn(*args, **kwargs)
            if num_returns == "streaming":
                self.stream(conn, task_id, result, owner, retry_exc=retry_exc)
                return
            if num_returns == "dynamic":
                self.reply_dynamic(conn, task_id, name, result, owner)
                return
            self.reply_results(conn, task_id, name, result, num_returns, owner)
        except (KeyboardInterrupt, Exception) as exc:
            self.reply_failure(conn, task_id, name, exc, num_returns, retry_exc,
                               cancel_requested=task_id in self.cancel_requested)
        finally:
            self.in_plain_task = False
            self.last_fn = fn_id
            self.last_fast = time.perf_counter() - started < 0.001
            self.running_task = None
            self.cancel_requested.discard(task_id)
            self.client.current_task.task_id = None
            self.client.current_task.ctx = None
        if self.retiring:
            # max_calls reached: leave (a fresh worker takes the next task), as Ray.
            self.flush_all()
            self.client.call("ping")
            os._exit(0)

    def reply_results(self, conn, task_id, name, result, num_returns, owner,
                      actor_repr=None):
        if num_returns == 1:
            blob = serialization.small_inline(result)
            if blob is not None:   # the common small reply: no store, no refs inside
                try:
                    self.reply_done(conn, (task_id, [blob], [False], False,
                                           self.done_flags()))
                except transport.ConnectionClosed:
                    pass
                return

        def store(i, value):
            return self.client._store_value(task_id + (i + 1).to_bytes(4, "big"), value, owner)
        stored = execution.store_returns(name, result, num_returns, store)
        blobs = [blob for blob, _ in stored]
        contained = [c for _, c in stored]
        try:
            self.reply_done(conn, (task_id, blobs, contained, False,
                                   self.done_flags()))
        except transport.ConnectionClosed:
            pass

    def reply_dynamic(self, conn, task_id, name, result, owner):
        """num_returns="dynamic": store each yielded item, send them in one reply."""
        items = []
        for i, value in enumerate(result):
            oid = task_id + (i + 2).to_bytes(4, "big")   # index 1 is the generator itself
            blob, c = self.client._store_value(oid, value, owner)
            items.append((oid, blob, c))
        blob = b"D" + pickle.dumps(items, 5)
        self.reply_done(conn, (task_id, [blob], [False], False, self.done_flags()))

    def stream(self, conn, task_id, gen, owner, name="", retry_exc=False):
        self.flush(conn)
        try:
            _, exc = execution.drain(gen, self._stream_emitter(conn, task_id, owner),
                                     transport.ConnectionClosed)
        except transport.ConnectionClosed:
            return
        self._end_stream(conn, task_id, name or self.last_name, exc, retry_exc)

    def _stream_emitter(self, conn, task_id, owner):
        def emit(i, value):
            oid = task_id + (i + 1).to_bytes(4, "big")
            blob, c = self.client._store_value(oid, value, owner)
            conn.send(P.GEN_ITEM, (task_id, i, blob, c))
        return emit

    def _end_stream(self, conn, task_id, name, exc, retry_exc):
        """The generator ended (``exc``: the error that ended it): its error rides in
        DONE, and the submitter retries (retry_exceptions) or shows it after the items."""
        retryable, results = False, []
        if exc is not None:
            failure = execution.classify(exc, name, os.getpid(), retry_exc)
            retryable, results = failure.retryable, [execution.error_blob(failure.error)]
        task_events.end(task_id)
        try:
            conn.send(P.DONE, (task_id, results, [False] * len(results), retryable,
                               self.done_flags()))
        except transport.ConnectionClosed:
            pass

    def reply_failure(self, conn, task_id, name, exc, num_returns, retry_exc=False,
                      cancel_requested=False, actor=None):
        """The call raised ``exc``: reply its error record; returns the Failure."""
        failure = execution.classify(exc, name, os.getpid(), retry_exc, cancel_requested,
                                     actor)
        if failure.kind == execution.CANCELLED:
            err = execution.cancelled_error(task_id)
        else:
            err = failure.error
        if failure.kind != execution.ACTOR_EXIT:
            task_events.error(task_id, exc)
        self.reply_blob(conn, task_id, execution.error_blob(err), num_returns, failure.retryable)
        return failure

    def reply_blob(self, conn, task_id, blob, num_returns, retryable):
        n = 1 if num_returns in ("streaming", "dynamic") else max(num_returns, 1)
        if num_returns == "streaming":
            # A stream's error rides in DONE: the submitter shows it after the items
            # that came before it (cancellation too).
            task_events.end(task_id)
            try:
                conn.send(P.DONE, (task_id, [blob], [False], retryable, self.done_flags()))
            except transport.ConnectionClosed:
                pass
            return
        try:
            self.reply_done(conn, (task_id, [blob] * n, [False] * n, retryable,
                                   self.done_flags()))
        except transport.ConnectionClosed:
            pass

    def on_cancel(self, task_id, recursive):
        """Node manager asks to cancel ``task_id`` (client I/O thread)."""
        if recursive:
            self.client.cancel_children(task_id)
        if self.running_task == task_id:
            self.cancel_requested.add(task_id)
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    # ----------------------------------------------------------------- actors
    def become_actor(self, actor_id, spec, num_restarts):
        self.actor_id = actor_id
        self.actor_meta = spec["meta"]
        self.actor_resources = dict(spec.get("resources") or {})
        opts = spec["options"]
        name = spec["meta"].get("class_name", "Actor")
        self.actor_name = name
        self.set_name(name)
        ctx = TaskContext(actor_id + b"\x00" * 0, f"{name}.__init__", spec["resources"],
                          actor_id=actor_id)
        ctx.attempt = num_restarts
        self.actor_pg = (spec.get("pg") or (None,))[0]
        self.actor_capture = bool(opts.get("capture_child_tasks"))
        ctx.placement_group_id = self.actor_pg
        ctx.capture = self.actor_capture
        if spec.get("gpu_ids"):
            _set_visible_gpus(spec["gpu_ids"])
        if not self.omp_fixed:
            self.omp_cpus = self.actor_resources.get("CPU")
            _set_omp_threads(self.actor_resources)
        self.client.current_task.task_id = None
        self.client.current_task.ctx = ctx
        self.client.actor_id = actor_id
        self.client.actor_restarts = num_restarts
        task_events.running(actor_id, f"{name}.__init__", f"{name}.__init__",
                            task_events.ACTOR_CREATION_TASK, actor_id)
        try:
            cls = serialization.loads_function(spec["class_blob"])
            args, kwargs = self.load_args(spec["args_blob"], spec["arg_values"])
            self.setup_concurrency(cls, opts)
            if self.actor_mode == "async":
                self.actor = self.run_coro_blocking(execution.construct_async(cls, args, kwargs))
            else:
                self.actor = cls(*args, **kwargs)
        except BaseException as exc:
            cause = execution.creation_error(f"{name}.__init__", exc, actor_id.hex(),
                                             os.getpid())
            task_events.error(actor_id, exc)
            task_events.end(actor_id)
            self.client.notice("actor_failed", actor_id, execution.error_blob(cause))
            return
        task_events.end(actor_id)
        self.client.notice("actor_ready", actor_id, self.address)

    def setup_concurrency(self, cls, opts):
        is_async = execution.is_async_class(cls)
        max_conc = opts.get("max_concurrency")
        groups = opts.get("concurrency_groups") or {}
        if is_async or (max_conc or 1) > 1 or groups:
            # Calls run on other threads, which need the GIL the loop thread
            # would keep taking while it spins: block at once instead.
            self.loop.stop_spinning()
        if is_async:
            self.actor_mode = "async"
            # Later async actors on this node start with asyncio loaded (zygote.ON_DEMAND).
            self.client.notice("preload_modules", ["asyncio"])
            self.async_loop = asyncio.new_event_loop()
            t = threading.Thread(target=self.async_loop.run_forever, name="minray-actor-async",
                                 daemon=True)
            t.start()
            limit = max_conc or 1000
            self.async_sems = {None: limit}
            self.async_sems.update(groups)
            self.async_sems = {k: self._make_sem(v) for k, v in self.async_sems.items()}
        elif (max_conc or 1) > 1 or groups:
            self.actor_mode = "threaded"
            self.executors[None] = futures.ThreadPoolExecutor(
                max_conc or 1, thread_name_prefix="minray-actor")
            for g, n in groups.items():
                self.executors[g] = futures.ThreadPoolExecutor(
                    n, thread_name_prefix=f"minray-actor-{g}")

    def _make_sem(self, n):
        async def make():
            return asyncio.Semaphore(n)
        return self.run_coro_blocking(make())

    def run_coro_blocking(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.async_loop).result()

    def dispatch_actor_call(self, conn, msg):
        if self.actor is None:
            self.reply_failure(conn, msg[0], msg[1], exceptions.RayActorError(
                "the actor is not ready (its constructor failed)"), msg[4],
                actor=self._identity(with_repr=False))
            return
        method = msg[1]
        group = self.actor_meta.get("method_groups", {}).get(method)
        wire = msg[5]
        if len(wire) > 3 and wire[3]:
            group = wire[3]
        if self.actor_mode == "sync" or method == "__ray_terminate__":
            self.run_actor_call(conn, msg)
        elif self.actor_mode == "threaded":
            ex = self.executors.get(group) or self.executors[None]
            ex.submit(self.run_actor_call, conn, msg)
        else:
            sem = self.async_sems.get(group) or self.async_sems[None]
            self.async_calls[msg[0]] = asyncio.run_coroutine_threadsafe(
                self.run_async_call(conn, msg, sem), self.async_loop)

    def _call_context(self, task_id, method, conn=None):
        # Methods see the actor's resources, as in Ray (get_assigned_resources()).
        # A sync actor runs one call at a time: one context per method, reused.
        ctx = self.sync_contexts.get(method) if self.actor_mode == "sync" else None
        if ctx is None:
            ctx = TaskContext(task_id, f"{self.actor_name}.{method}", self.actor_resources,
                              actor_id=self.actor_id,
                              placement_group_id=self.actor_pg, capture=self.actor_capture)
            if self.actor_mode == "sync":
                self.sync_contexts[method] = ctx
        else:
            ctx.task_id = task_id
        cur = self.client.current_task
        cur.task_id = task_id
        cur.ctx = ctx
        remote = conn is not None and conn.info.get("remote", False)
        cur.force_inline = remote
        cur.remote_conn = conn if remote else None

    def run_actor_call(self, conn, msg):
        task_id, method, args_blob, arg_values, num_returns, wire = msg
        owner = conn.info.get("client_id")
        name = f"{self.actor_name}.{method}"
        if method == "__ray_terminate__":
            self.reply_results(conn, task_id, name, None, num_returns, owner)
            self.exit_actor("__ray_terminate__ was called")
            return
        self._call_context(task_id, method, conn)
        self.running_task = task_id
        task_events.running(task_id, name, name, task_events.ACTOR_TASK, self.actor_id)
        try:
            args, kwargs = self.load_args(args_blob, arg_values)
            fn = getattr(self.actor, method)
            result = fn(*args, **kwargs)
            if num_returns == "streaming":
                self.stream(conn, task_id, result, owner, name, retry_exc=wire[2])
                return
            self.reply_results(conn, task_id, name, result, num_returns, owner)
        except (ActorExit, KeyboardInterrupt, Exception) as exc:
            failure = self.reply_failure(conn, task_id, name, exc, num_returns, wire[2],
                                         actor=self._identity())
            if failure.kind == execution.ACTOR_EXIT:
                self.exit_actor("exit_actor() was called")
        finally:
            self.running_task = None
            self.client.current_task.task_id = None

    async def run_async_call(self, conn, msg, sem):
        try:
            await self._run_async_call(conn, msg, sem)
        except asyncio.CancelledError:
            # ray.cancel() of a call still waiting for its concurrency slot.
            self.reply_blob(conn, msg[0], execution.error_blob(
                execution.cancelled_error(msg[0])), msg[4], False)
        finally:
            self.async_calls.pop(msg[0], None)

    def cancel_actor_call(self, task_id, recursive):
        """A caller cancels one of its calls (``ray.cancel``; worker I/O thread). An
        async actor's call has its asyncio task cancelled, as Ray does; a running
        call of a sync actor is not interrupted. With ``recursive`` the tasks the
        call submitted are cancelled too."""
        if recursive:
            self.client.cancel_children(task_id)
        fut = self.async_calls.get(task_id)
        if fut is not None:
            fut.cancel()

    async def _run_async_call(self, conn, msg, sem):
        task_id, method, args_blob, arg_values, num_returns, wire = msg
        owner = conn.info.get("client_id")
        name = f"{self.actor_name}.{method}"
        async with sem:
            if self.exiting or self.exit_called:
                # exit_actor() ran in an earlier call; the process leaves shortly.
                self.reply_blob(conn, task_id, execution.error_blob(execution.actor_exit_error(
                    self.actor_name, self.actor_id.hex())), num_returns, False)
                return
            self._call_context(task_id, method, conn)
            task_events.running(task_id, name, name, task_events.ACTOR_TASK, self.actor_id)
            try:
                args, kwargs = self.load_args(args_blob, arg_values)
                fn = getattr(self.actor, method)
                if inspect.isasyncgenfunction(fn) and num_returns == "streaming":
                    await self.stream_async(conn, task_id, fn(*args, **kwargs), owner, name,
                                            wire[2])
                    return
                result = await execution.call_async(fn, args, kwargs)
                if num_returns == "streaming":
                    self.stream(conn, task_id, result, owner, name, retry_exc=wire[2])
                    return
                self.reply_results(conn, task_id, name, result, num_returns, owner)
            except (ActorExit, Exception) as exc:
                failure = self.reply_failure(conn, task_id, name, exc, num_returns, wire[2],
                                             actor=self._identity())
                if failure.kind == execution.ACTOR_EXIT:
                    self.exit_called = True
                    self.loop.call_soon(self.exit_actor, "exit_actor() was called")

    async def stream_async(self, conn, task_id, agen, owner, name, retry_exc=False):
        try:
            _, exc = await execution.drain_async(
                agen, self._stream_emitter(conn, task_id, owner), transport.ConnectionClosed)
        except transport.ConnectionClosed:
            return
        self._end_stream(conn, task_id, name, exc, retry_exc)

    def _identity(self, with_repr=True):
        return execution.ActorIdentity(self.actor_name, self.actor_id.hex() if self.actor_id
                                       else None, self._actor_repr() if with_repr else None)

    def _actor_repr(self):
        try:
            return repr(self.actor)
        except Exception:
            return self.actor_name

    def exit_actor(self, reason):
        if self.exiting:
            return
        self.exiting = True
        self.client.notice("actor_exiting", self.actor_id, reason)
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
        # Let the notice reach the node manager before the socket closes.
        self.client.call("ping")
        try:
            import atexit
            atexit._run_exitfuncs()   # as a normal interpreter exit would (Ray does)
        except Exception:
            logging.getLogger("minray.worker").exception("an atexit function raised")
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
        os._exit(0)

    def terminate(self):
        """All handles to this actor are gone: leave once queued calls are done."""
        self.exit_actor("all references to the actor were deleted")


def _set_visible_gpus(gpu_ids):
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in gpu_ids)


def omp_num_threads(resources):
    """OMP_NUM_THREADS for a task or actor holding ``resources``, as Ray sets it: its
    whole CPUs, at least one (a fractional or zero CPU request gets one thread).

    >>> omp_num_threads({"CPU": 4}), omp_num_threads({"CPU": 0.5}), omp_num_threads({})
    ('4', '1', '1')
    """
    return str(max(1, int((resources or {}).get("CPU", 0))))


def _set_omp_threads(resources):
    value = omp_num_threads(resources)
    if os.environ.get("OMP_NUM_THREADS") != value:     # most tasks: no change
        os.environ["OMP_NUM_THREADS"] = value


def main(spec):
    server = WorkerServer(spec)
    server.run()


def current_server():
    client = state.current_client()
    return getattr(client, "worker_server", None)


def format_exc():  # pragma: no cover - debugging aid
    return traceback.format_exc()
