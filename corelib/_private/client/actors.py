"""Actors: creation, handles, per-actor call queues, connections and state.

Part of the core client (see core_client.py): a mixin of CoreClient,
sharing its tables and lock."""

import threading
import time

from minray import exceptions
from minray.object_ref import ObjectRef, ObjectRefGenerator
from minray._private.core import ids
from minray._private.core import ownership
from minray._private.objects import serialization
from minray._private.net import transport
from minray._private.net import protocol as P
from minray._private.observability import task_events
from minray._private.client.direct_reads import DIRECT_READS
from minray._private.client.records import ActorQueue, LastCall, ObjectState, Stream, TaskRecord
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
            self.direct.last_actor_call = LastCall(return_ids[0], aq)   # see direct_reads.py
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
        if len(aq.inflight) > 1:
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
            conn = transport.Connection(sock, direct_reads=DIRECT_READS)
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
                verdict = ownership.retry(rec.retries_left, True, rec.cancelled) \
                    if rec is not None and retryable else None
                if verdict is not None and verdict.again:
                    # retry_exceptions matched and max_task_retries allows: run it again.
                    rec.retries_left = verdict.retries_left
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
                rec.retries_left = ownership.retry(rec.retries_left, True, False).retries_left
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
