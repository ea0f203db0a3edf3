"""Requests to node managers (ours and other nodes'), and their pushes.

Part of the core client (see core_client.py): a mixin of CoreClient,
sharing its tables and lock."""

import os
import logging
import sys

from minray import exceptions
from minray._private.core import submit_queue as sq
from minray._private.objects import serialization
from minray._private.core import actor_calls
from minray._private.net import transport
from minray._private.net import protocol as P
from minray._private.client.records import Reply, Waiter


class RpcMixin:
    """Talking to node managers: requests with replies, notices, pushes."""

    def call(self, method, *args, timeout=None):
        """A request to the node manager, waiting for its reply."""
        reply = Reply()
        waiter = Waiter(1)

        def done(ok, value):
            reply.ok, reply.value = ok, value
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
        if reply.ok:
            return reply.value
        raise reply.value

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
                sq.pending_tasks(q)   # failed below, through self.tasks
            for aq in self.actor_queues.values():
                actor_calls.node_lost(aq, blob)
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

    def flush_logs(self, timeout=1.0):
        """Ask every node manager we use for the logs its workers wrote since its last
        poll (they arrive as pushes before the replies); wait up to ``timeout``."""
        conns = [self.nm] + [c for c in self.remote_nms.values() if not c.closed]
        waiter = Waiter(len(conns))
        for conn in conns:
            self.call_async("flush_logs", (), lambda ok, v: waiter.notify(), conn=conn)
        waiter.wait(timeout)
