"""Actors: creation, handles, per-actor call queues, connections and state.

Part of the core client (see core_client.py): a mixin of CoreClient,
sharing its tables and lock."""

import threading
import time

from minray import exceptions
from minray._private.core.object_ref import ObjectRef, ObjectRefGenerator
from minray._private.core import ids
from minray._private.core import actor_calls
from minray._private.objects import serialization
from minray._private.net import transport
from minray._private.net import protocol as P
from minray._private.observability import task_events
from minray._private.client.direct_reads import DIRECT_READS
from minray._private.client.records import ObjectState, Stream, TaskRecord


class ActorsMixin:
    """Creating actors and sending them calls, in order, over one connection each."""

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
            aq = self.actor_queues[actor_id] = actor_calls.ActorQueue(actor_id)
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
            out = actor_calls.call_queued(aq, rec, time.monotonic())
        if n == 1:
            direct = self.direct   # the call a get() may read the reply of itself
            direct.last_call_oid, direct.last_call_queue = return_ids[0], aq
        if out:
            # Before a later pump can send this call. The common answer, one SendCalls,
            # is carried out here directly.
            if len(out) == 1 and type(out[0]) is actor_calls.SendCalls:
                self._send_calls(aq, out[0].calls)
            else:
                self._carry_out_actor(out)
        if arg_refs:
            self._resolve_then(rec, lambda r: self._pump_actor(aq))
        if streaming:
            return ObjectRefGenerator(task_id, self, rec.stream)
        if n == 1:
            return refs[0]
        return refs or None

    def _pump_actor(self, aq):
        with self.lock:
            out = actor_calls.pump(aq, time.monotonic())
        if out:
            self._carry_out_actor(out)

    def _carry_out_actor(self, out):
        """Carry out actor_calls' instructions (lock not held)."""
        for ins in out:
            kind = type(ins)
            if kind is actor_calls.SendCalls:
                self._send_calls(ins.queue, ins.calls)
            elif kind is actor_calls.Connect:
                self.loop.call_soon(self._connect_actor, ins.queue)
            elif kind is actor_calls.CloseConnection:
                ins.conn.on_close = None
                self.loop.call_soon(self.loop.close_connection, ins.conn)
            elif kind is actor_calls.FailCalls:
                for rec in ins.calls:
                    self._finish_with_error(rec, self._actor_call_error(rec, ins.reason))

    def _actor_call_error(self, rec, reason):
        aq = self.actor_queues.get(rec.actor_id)
        if reason == actor_calls.FAIL_DEAD and aq is not None and aq.cause:
            return aq.cause
        if reason == actor_calls.FAIL_DEAD:
            return serialization.error_blob(exceptions.ActorDiedError(
                actor_id=rec.actor_id.hex()))
        return serialization.error_blob(exceptions.ActorDiedError(
            "The actor died while running this call (it is restarting; set "
            "max_task_retries to retry calls).", actor_id=rec.actor_id.hex()))

    def _send_calls(self, aq, sends):
        conn = aq.conn
        if len(aq.inflight) > 1 and self.direct.muted:
            self.direct.pipelined(conn)   # the I/O thread reads their replies
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
            address = actor_calls.connecting_to(aq)
        if address is None:
            return   # it restarted or died meanwhile: its state update follows
        sock = None
        try:
            # One try: a live actor listens before it reports ready. Never wait here,
            # on the I/O thread that every get() in this process depends on.
            if address.startswith("tcp://"):
                sock = transport.connect(address, self._token(), timeout=2)
            else:
                sock = transport.connect_unix(address, timeout=0)
            conn = transport.Connection(sock, direct_reads=DIRECT_READS)
            conn.info["actor"] = aq
            conn.send(P.HELLO, (self.client_id,))
        except OSError:    # transport.ConnectionClosed is one too
            # Refused, or accepted and then closed before our HELLO got through: the
            # actor is exiting (an actor pool shrinking, a kill). Same as refused.
            if sock is not None:
                sock.close()
            with self.lock:
                actor_calls.connect_failed(aq, address)
            # The node manager has not seen it die yet: ask again shortly.
            self.loop.call_later(0.05, self._resubscribe_actor, aq)
            return
        self.loop.add_connection(conn, self._on_actor_frame, self._on_actor_closed)
        with self.lock:
            actor_calls.connected(aq, conn)
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
                rec = actor_calls.call_done(aq, task_id, retryable)
            if rec is actor_calls.RETRIED:   # retry_exceptions matched, retries left
                self._pump_actor(aq)
                return
            if rec is None:
                return
            self.tasks.pop(task_id, None)
            if rec.stream is not None:
                self._finish_stream(rec, results)
            else:
                for oid, blob, c in zip(rec.return_ids, results, contained):
                    self._complete(oid, blob, c)
        elif kind == P.GEN_ITEM:
            self._on_gen_item(msg)

    def _on_actor_closed(self, conn):
        aq = conn.info["actor"]
        with self.lock:
            actor_calls.connection_closed(aq, conn)
        # Wait for the node manager to say whether it restarts or is dead.
        self._resubscribe_actor(aq)

    def _push_actor_state(self, actor_id, state, address, cause, num_restarts, died_at=0.0):
        if state in (actor_calls.ALIVE, actor_calls.DEAD):
            self.creation_pins.pop(actor_id, None)
        aq = self.actor_queues.get(actor_id)
        if aq is None:
            return
        with self.lock:
            out = actor_calls.state_changed(aq, state, address, cause, num_restarts,
                                            time.monotonic(), died_at)
        if out:
            self._carry_out_actor(out)

    def _cancel_actor_task(self, rec, recursive):
        aq = self.actor_queues.get(rec.actor_id)
        if aq is None:
            return
        with self.lock:
            where = actor_calls.cancel_call(aq, rec)
            conn = aq.conn if where == "running" else None
        rec.cancelled = True
        if where == "queued":
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
