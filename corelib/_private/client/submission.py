"""Task submission: the shell around core/submit_queue.py.

Part of the core client (see core_client.py): a mixin of CoreClient,
sharing its tables and lock."""

import logging
import threading
import time

from minray import exceptions
from minray._private.core.object_ref import ObjectRef, ObjectRefGenerator
from minray._private.core import args as call_args, ids
from minray._private.core import actor_calls, ownership
from minray._private.core import submit_queue as sq
from minray._private.core.submit_queue import (FailTasks, LeasedWorker, RequestLeases,
                                               ReturnLease, SchedulingQueue, SendTask, Steal,
                                               WithdrawLeases)
from minray._private.objects import serialization
from minray._private.net import transport
from minray._private.net import protocol as P
from minray._private.observability import task_events
from minray._private.objects.serialization import TAG_ERROR, TAG_SHM
from minray._private.client.direct_reads import DIRECT_READS
from minray._private.client.records import (_argument_error, DONE_BLOCKED,
                                            DONE_RETIRING, _EMPTY_ARGS, len_of_shm, PUBLISH_NM,
                                            PublishTo, Stream, TaskRecord)


class SubmissionMixin:
    """Submitting tasks and carrying out the submit queue's instructions."""

    def _lease_elsewhere(self, q, address):
        """The node manager sent this lease request on: ask that node instead
        (already counted in q.lease_requests)."""
        try:
            conn = self._remote_nm(address)
        except (OSError, transport.AuthenticationError) as exc:
            if not self.shutting_down:
                logging.getLogger("minray.client").warning("cannot reach the node at %s for a "
                                                       "lease: %s", address, exc)
            with self.lock:
                q.lease_requests -= 1
            self.loop.call_later(0.2, self._pump, q)
            return
        req_id = next(self.req_seq)
        q.lease_req_ids.add(req_id)
        self.call_async("request_lease", (q.resources, q.pg, q.env_key, q.env_vars),
                        lambda ok, v, q=q, r=req_id, c=conn: self._on_lease(q, r, ok, v, c),
                        req_id=req_id, conn=conn)

    def _push_revoke_idle(self):
        # Others wait for resources: for a while, hand back workers as soon as idle.
        self.lease_pressure_until = time.monotonic() + 1.0
        for q in list(self.queues.values()):
            with self.lock:
                out = sq.revoke_idle(q)
            if out:
                self._carry_out(out)

    def _periodic(self):
        if self.shutting_down:
            return
        self.drain_releases()
        now = time.monotonic()
        for q in list(self.queues.values()):
            with self.lock:
                out = sq.tick(q, now)
            if out:
                self._carry_out(out)
        self.direct.hand_back_busy()   # replies nobody reads (see direct_reads.py)
        self.loop.call_later(0.05, self._periodic)

    def _prepare_args(self, args, kwargs):
        """Pickle (args, kwargs); top-level refs become placeholders resolved at dispatch."""
        if not args and not kwargs:
            return _EMPTY_ARGS, [], []
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
            self.direct.last_task_oid = return_ids[0]   # what reply_conn looks for next
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
            self.direct.hand_back()   # its arguments' replies must be read without a get()

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
                        actor_calls.cancel_call(aq, rec)
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
            out = sq.task_queued(q, rec, time.monotonic())
        if out:
            self._carry_out(out)

    def _pump(self, q):
        with self.lock:
            out = sq.pump(q, time.monotonic())
        if out:
            self._carry_out(out)

    def _carry_out(self, out, error=None):
        """Carry out the submit queue's instructions (lock not held): the task
        frames first, then the lease traffic. ``error`` is the exception a
        FailTasks instruction reports."""
        if len(out) == 1 and type(out[0]) is SendTask:   # the usual case
            self._send_tasks(out)
            return
        sends = [i for i in out if type(i) is SendTask]
        if sends:
            self._send_tasks(sends)
            if len(sends) == len(out):
                return
        for ins in out:
            kind = type(ins)
            if kind is SendTask:
                continue
            if kind is RequestLeases:
                q = ins.queue
                if ins.node is not None:
                    self._lease_elsewhere(q, ins.node)
                    continue
                arg_locs = _arg_locations(q)
                for _ in range(ins.count):
                    req_id = next(self.req_seq)
                    q.lease_req_ids.add(req_id)
                    self.call_async("request_lease", (q.resources, q.pg, q.env_key,
                                                      q.env_vars, arg_locs),
                                    lambda ok, v, q=q, r=req_id: self._on_lease(q, r, ok, v),
                                    req_id=req_id)
            elif kind is WithdrawLeases:
                self.notice("cancel_lease_requests", ins.req_ids)
            elif kind is ReturnLease:
                w = ins.worker
                self.notice_to(w.nm, "return_lease", w.worker_id, False)
                conn = w.conn
                w.conn = None
                if conn is not None:
                    conn.on_close = None
                    self.loop.call_soon(self.loop.close_connection, conn)
            elif kind is Steal:
                ins.overrun.fn.blocks = True   # unpredictable duration: stop pipelining it
                w = ins.worker
                self.notice_to(w.nm, "steal_tasks", w.worker_id, ins.task_ids,
                               self.client_id)
            elif kind is FailTasks:
                blob = serialization.error_blob(error)
                for rec in ins.tasks:
                    self._finish_with_error(rec, blob)

    def _send_tasks(self, sends):
        for w, rec in sends:
            if rec.retries_left == 0:
                # The memory monitor spares workers whose task could not be retried.
                self.notice("unretriable_task", w.worker_id, rec.task_id, True)
        if self.direct.muted and (sends[0].worker.queue.tasks or
                                  any(len(w.inflight) > 1 for w, _ in sends)):
            self.direct.hand_back()   # not a lone synchronous task: the I/O thread reads
        if len(sends) == 1:
            self._send_task(*sends[0])
            return
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
                target = PublishTo(PUBLISH_NM, conn)
                if target in st.remote_nms:
                    continue
                st.remote_nms.add(target)
                if st.blob is not None:
                    ready.append((ref._id, st.blob))
        for oid, blob in ready:
            self._publish_remote(oid, blob, (PublishTo(PUBLISH_NM, conn),))

    def _publish_remote(self, oid, blob, conns):
        if blob[0] == TAG_SHM:
            blob = self._blob_for_node(oid, blob)
        for how, conn in list(conns):
            if how == PUBLISH_NM:      # another node's manager: publish it there
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
            sq.lease_answered(q, req_id)
        if not ok:
            if isinstance(value, exceptions.RaySystemError):
                # The node manager is gone: no retry storm; what waits here fails.
                reason = sq.LEASE_NODE_GONE if self.nm_lost or self.nm.closed \
                    else sq.LEASE_DROPPED
            elif isinstance(value, P.LeaseCancelled):
                reason = sq.LEASE_WITHDRAWN   # tasks queued since then may count on it
            elif isinstance(value, exceptions.TaskUnschedulableError):
                reason = sq.LEASE_UNSCHEDULABLE
            else:
                reason = sq.LEASE_FAILED
                if not isinstance(value, exceptions.WorkerCrashedError) and \
                        not self.shutting_down:
                    logging.getLogger("minray.client").warning("lease request failed: %r", value)
            with self.lock:
                out = sq.lease_refused(q, reason, time.monotonic())
            if out:
                self._carry_out(out, error=value)
            return
        if value[0] == "spill":
            with self.lock:
                out = sq.lease_spilled(q, value[2])
            self._carry_out(out)
            return
        worker_id, address, pid, gpu_ids = value
        w = LeasedWorker(worker_id, address, pid, q)
        w.send_lock = threading.Lock()
        w.gpu_ids = gpu_ids
        w.nm = via
        try:
            sock = transport.connect(address, self._token() if via else None, timeout=1)
        except OSError:
            self.notice_to(via, "return_lease", worker_id, True)
            self._pump(q)
            return
        w.conn = transport.Connection(sock, direct_reads=DIRECT_READS)
        w.conn.info["worker"] = w
        w.conn.send(P.HELLO, (self.client_id,))
        self.loop.add_connection(w.conn, self._on_worker_frame, self._on_worker_closed)
        with self.lock:
            out = sq.worker_joined(q, w, time.monotonic())
        if out:
            self._carry_out(out)

    def _on_worker_frame(self, conn, kind, msg):
        if kind == P.DONE:
            self._on_task_done(conn.info["worker"], msg)
        elif kind == P.GEN_ITEM:
            self._on_gen_item(msg)
        elif kind == P.STOLEN:
            w = conn.info["worker"]
            with self.lock:
                out = sq.tasks_stolen(w.queue, w, msg[0], time.monotonic())
            if out:
                self._carry_out(out)
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
        q = w.queue
        now = time.monotonic()
        with self.lock:
            rec = sq.task_done(q, w, task_id, flags & DONE_RETIRING, now)
        if rec is None:
            return
        rec.fn.observe(now - rec.sent_at, bool(flags & DONE_BLOCKED))
        if rec.retries_left == 0:
            self.notice("unretriable_task", w.worker_id, task_id, False)
        verdict = ownership.retry(rec.retries_left, True, rec.cancelled) if retryable else None
        if verdict is not None and verdict.again:
            rec.retries_left = verdict.retries_left
            self._enqueue_task(rec)
            return
        self.tasks.pop(task_id, None)
        if rec.stream is not None:
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
        if sq.give_back_after_done(q, w, now, self.lease_pressure_until):
            with self.lock:
                out = sq.return_lease(q, w)
            if out:
                self._carry_out(out)
        else:
            # Refill it after the whole batch of replies is read (one write per worker).
            self._dirty_queues.add(q)

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
            lost = sq.worker_lost(q, w)
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
            rec.retries_left = ownership.retry(rec.retries_left, True, False).retries_left
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


def _arg_locations(q):
    """For the cluster policy's locality: where the queue's first task's stored
    arguments are ("ip:port" of another node's manager, or None for this node)
    and their sizes; () when it has none."""
    head = q.tasks[0].arg_values if q.tasks else None
    if not head:
        return ()
    return [(serialization.remote_address(b), serialization.shm_size_of(b))
            for _, _, b in head if b[0] == TAG_SHM]
