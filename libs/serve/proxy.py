"""The HTTP proxy: an actor running an HTTP/1.1 server (http1.py) that routes to replicas.

    client --HTTP--> ProxyActor._dispatch: longest route_prefix match -> deployment
                     -> pick a replica (power of two choices on ongoing requests,
                        at most max_ongoing_requests each; beyond: a queue of at
                        most max_queued_requests, then 503)
                     --wire.py frame, multiplexed on one Unix socket per replica--> Replica
                     <-- "full" frame, or "start" + "body" frames (streaming)
    routes and replicas: a long poll on the controller (listen_for_routes)

A replica that vanishes before answering (SIGKILL, crash) costs the request a
retry on another replica, never an error, and is dropped from this proxy's view
until the controller's next routing table.

The hot path allocates no task and no future: a request that finds a free local
replica is framed at once (_dispatch), and its "full" answer is written to the
client from the replica socket's reader (_Call.push).  Waiting for a replica,
retries, streamed answers and replicas on other nodes run as a coroutine (_serve).
"""

import asyncio
import json
import logging
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Deque, List, Optional

from . import http1, wire
from .http_util import build_scope

logger = logging.getLogger("minray.serve")

NO_REPLICA_WAIT_S = 30.0
MAX_ATTEMPTS = 3


class _ReplicaGone(Exception):
    """The replica's socket failed before a response began: safe to retry."""


class _Pending:
    """The frames of one request's answer, as the connection's reader delivers them."""
    __slots__ = ("frames", "waiter")

    def __init__(self):
        self.frames = deque()
        self.waiter = None

    def push(self, frame):            # None: the connection was lost
        self.frames.append(frame)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def next(self):
        """The next frame, None once the connection is lost."""
        while not self.frames:
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        return self.frames.popleft()


class _Conn(wire.FrameProtocol):
    """One Unix socket to a replica, every request of the proxy multiplexed on it."""

    def __init__(self):
        super().__init__()
        self.pending = {}
        self.next_id = 0
        self.closed = False
        self.close_when_idle = False      # the replica left the routing table

    def request(self, frame_tail, pending=None):
        """Send one request; its answer's frames go to ``pending.push`` (a _Pending
        unless given)."""
        rid = self.next_id
        self.next_id += 1
        if pending is None:
            pending = _Pending()
        self.pending[rid] = pending
        self.send((rid,) + frame_tail)
        return rid, pending

    def done(self, rid):
        self.pending.pop(rid, None)
        if self.close_when_idle and not self.pending:
            self.close()

    def frame_received(self, frame):
        pending = self.pending.get(frame[0])
        if pending is not None:
            pending.push(frame)

    def frames_lost(self):
        self.close()

    def close(self):
        if self.closed:
            return
        self.closed = True
        pending, self.pending = list(self.pending.values()), {}
        for p in pending:
            p.push(None)           # may retry on another replica: self.pending is new
        super().close()


@dataclass
class _Slot:
    replica_id: str
    address: str
    ongoing: int = 0
    conn: Optional[_Conn] = None
    connecting: Any = None            # a Future while the socket is being opened
    dead: bool = False
    remote_actor: Any = None          # set when the replica runs on another node


@dataclass
class _Target:
    max_ongoing: int
    max_queued: int
    slots: List[_Slot] = field(default_factory=list)
    waiters: Deque[Any] = field(default_factory=deque)
    queued: int = 0


class _Busy(Exception):
    pass


_TEXT = [("Content-Type", "text/plain; charset=utf-8")]
_JSON = [("Content-Type", "application/json")]


class ProxyActor:
    def __init__(self, host, port, controller):
        self._host, self._port = host, port
        self._server_addr = (host, port)
        self._controller = controller
        self._routes = []          # [(prefix, app, ingress)], longest prefix first
        self._targets = {}         # (app, deployment) -> _Target
        self._version = -1
        self._routes_ready = asyncio.Event()
        import minray as ray
        self._node_id = ray.get_runtime_context().get_node_id()
        self._connections = set()  # open http1.HttpConnection
        self._loop = loop = asyncio.get_running_loop()
        self._start_task = loop.create_task(self._start())
        self._poll_task = loop.create_task(self._poll_routes())
        self._idle_task = loop.create_task(http1.close_idle(self._connections))

    async def _start(self):
        self._listener = await self._loop.create_server(
            lambda: http1.HttpConnection(self._dispatch, self._connections),
            self._host, self._port, reuse_address=True, backlog=1024)
        return self._listener.sockets[0].getsockname()[:2]

    async def ready(self):
        """(host, port) once listening; raises if the port could not be bound."""
        addr = await self._start_task
        try:
            await asyncio.wait_for(self._routes_ready.wait(), 30)
        except asyncio.TimeoutError:
            pass
        return addr

    async def address(self):
        return self._host, self._port

    async def node_id(self):
        return self._node_id

    async def shutdown(self, timeout_s=1.0):
        """Stop listening; close each connection once its request is answered (or
        after ``timeout_s``)."""
        self._listener.close()
        deadline = self._loop.time() + timeout_s
        while True:
            for conn in list(self._connections):
                if not conn.busy:
                    conn.abort()
            if not self._connections or self._loop.time() > deadline:
                break
            await asyncio.sleep(0.05)
        for conn in list(self._connections):
            conn.abort()

    # ------------------------------------------------------------ routes
    async def _poll_routes(self):
        while True:
            try:
                table = await self._controller.listen_for_routes.remote(self._version)
            except Exception as exc:
                logger.debug("proxy: route poll failed (%s); retrying", exc)
                await asyncio.sleep(0.5)
                continue
            self._apply(table)

    def _apply(self, table):
        self._version = table.version
        self._routes = sorted(((p, a, i) for p, (a, i) in table.routes.items()),
                              key=lambda r: -len(r[0]))
        targets = {}
        for key, route in table.deployments.items():
            old = self._targets.get(key)
            t = _Target(route.max_ongoing_requests, route.max_queued_requests)
            if old is not None:
                t.waiters, t.queued = old.waiters, old.queued
            old_slots = {s.replica_id: s for s in (old.slots if old else [])}
            for entry in route.replicas:
                slot = old_slots.pop(entry.replica_id, None)
                if slot is None:
                    slot = _Slot(entry.replica_id, entry.address)
                    if entry.node_id and entry.node_id != self._node_id:
                        slot.remote_actor = entry.actor
                if not slot.dead:
                    t.slots.append(slot)
            for slot in old_slots.values():
                _retire(slot)
            targets[key] = t
            self._wake(t, all_=True)
        self._targets = targets
        self._routes_ready.set()

    def _match(self, path):
        for prefix, app, ingress in self._routes:
            if prefix == "/" or path == prefix or path.startswith(prefix + "/"):
                return prefix, app, ingress
        return None

    # ------------------------------------------------------------ replicas
    def _wake(self, target, all_=False):
        while target.waiters:
            fut = target.waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                if not all_:
                    return

    @staticmethod
    def _pick(target):
        """A replica with a free request slot (power of two choices), or None."""
        limit = target.max_ongoing
        free = [s for s in target.slots if s.ongoing < limit]
        if not free:
            return None
        n = len(free)
        if n == 1:
            slot = free[0]
        else:
            i = int(random.random() * n)
            j = int(random.random() * (n - 1))
            a, b = free[i], free[j + (j >= i)]
            slot = a if a.ongoing <= b.ongoing else b
        slot.ongoing += 1
        return slot

    async def _acquire(self, key):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + NO_REPLICA_WAIT_S
        while True:
            target = self._targets.get(key)
            if target is None:
                return None
            slot = self._pick(target)
            if slot is not None:
                return slot
            if target.slots and target.max_queued != -1 and target.queued >= target.max_queued:
                raise _Busy(target)
            if not target.slots and loop.time() > deadline:
                raise _Busy(target)
            fut = loop.create_future()
            target.waiters.append(fut)
            target.queued += 1
            try:
                if target.slots:
                    await fut
                else:
                    await asyncio.wait_for(fut, max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                pass
            finally:
                # A routing update while we waited made a new _Target that copied our
                # count: give the place back on the one now in use, else it leaks and
                # the next request is refused as if the queue were still full.
                self._targets.get(key, target).queued -= 1

    def _release(self, key, slot):
        slot.ongoing -= 1
        target = self._targets.get(key)
        if target is not None:
            self._wake(target)

    def _drop(self, key, slot):
        slot.dead = True
        _retire(slot)
        target = self._targets.get(key)
        if target is not None and slot in target.slots:
            target.slots.remove(slot)

    # ------------------------------------------------------------ requests
    def _dispatch(self, head, http):
        """One parsed request (http1.Head) from ``http``: answer it, now or later.

        The common case, a free local replica with an open socket, sends the frame
        here and answers from the socket's reader (_Call): no task, no future.
        Waiting for a replica, retries, streaming and remote replicas go through
        the coroutine _serve."""
        path = head.path
        if path.startswith("/-/"):
            if path == "/-/healthz":
                return http.full(200, _TEXT, b"success")
            if path == "/-/routes":
                return http.full(200, _JSON, json.dumps(
                    {p: a for p, a, _ in self._routes}).encode())
        match = self._match(path)
        if match is None:
            return http.full(404, _TEXT, (
                f"Path '{path}' not found. Ping http://{self._host}:{self._port}"
                f"/-/routes for the available routes.").encode())
        prefix, app, ingress = match
        key = (app, ingress)
        root = "" if prefix == "/" else prefix
        if root and path == root:
            path = root + "/"
        tail = (head.method, path, head.query, root, head.headers, http.peer, head.version,
                self._server_addr, head.body)
        target = self._targets.get(key)
        slot = self._pick(target) if target is not None else None
        if slot is not None and slot.remote_actor is None:
            conn = slot.conn
            if conn is not None and not conn.closed:
                call = _Call(self, key, slot, conn, http, tail)
                call.rid, _ = conn.request(tail, call)
                return
        self._loop.create_task(self._serve(key, tail, http, slot, MAX_ATTEMPTS))

    def _continue(self, call, frame):
        """A _Call whose answer is not one whole frame: stream it, or retry elsewhere."""
        if frame is None:
            logger.warning("proxy: replica %s of %s died; retrying the request",
                           call.slot.replica_id, call.key[1])
            self._drop(call.key, call.slot)
            self._release(call.key, call.slot)
            self._loop.create_task(self._serve(call.key, call.tail, call.http, None,
                                               MAX_ATTEMPTS - 1))
            return
        pending = call.conn.pending[call.rid] = _Pending()
        self._loop.create_task(self._stream(call, frame, pending))

    async def _stream(self, call, frame, pending):
        try:
            await self._answer(frame, pending, call.http, call.slot)
        except Exception:
            logger.exception("proxy: streaming the answer of %s failed", call.key[1])
            call.http.abort()
        finally:
            call.conn.done(call.rid)
            self._release(call.key, call.slot)

    async def _serve(self, key, tail, http, slot, attempts):
        try:
            await self._serve_attempts(key, tail, http, slot, attempts)
        except Exception:
            logger.exception("proxy: request %s %s failed in the proxy", tail[0], tail[1])
            if http.busy:
                if http.streaming:
                    http.abort()
                else:
                    http.full(500, _TEXT, b"Internal Server Error in the Serve proxy.")

    async def _serve_attempts(self, key, tail, http, slot, attempts):
        app, ingress = key
        for _ in range(attempts):
            try:
                if slot is None:
                    slot = await self._acquire(key)
            except _Busy as busy:
                t = busy.args[0]
                if not t.slots:
                    return http.full(503, _TEXT, (
                        f"Application '{app}': deployment '{ingress}' has no running replica "
                        f"(waited {NO_REPLICA_WAIT_S:.0f}s).").encode())
                return http.full(503, _TEXT, (
                    f"Request dropped: deployment '{ingress}' of application '{app}' is at "
                    f"capacity (max_ongoing_requests={t.max_ongoing} per replica x "
                    f"{len(t.slots)} replicas, max_queued_requests={t.max_queued}). Retry "
                    f"later, or raise those limits or num_replicas.").encode())
            if slot is None:
                return http.full(404, _TEXT, (f"Path '{tail[1]}' not found (application "
                                              f"'{app}' is gone).").encode())
            try:
                return await self._forward(slot, tail, http)
            except _ReplicaGone:
                logger.warning("proxy: replica %s of %s died; retrying the request",
                               slot.replica_id, ingress)
                self._drop(key, slot)
            finally:
                self._release(key, slot)
            slot = None
        return http.full(503, _TEXT, (
            f"Deployment '{ingress}' of application '{app}': {MAX_ATTEMPTS} replicas failed "
            f"in a row while handling this request.").encode())

    async def _connection(self, slot):
        conn = slot.conn
        if conn is not None and not conn.closed:
            return conn
        if slot.connecting is None:
            loop = asyncio.get_running_loop()
            slot.connecting = loop.create_future()
            try:
                _, slot.conn = await loop.create_unix_connection(_Conn, slot.address)
                slot.connecting.set_result(slot.conn)
            except OSError as exc:
                slot.connecting.set_exception(_ReplicaGone())
                slot.connecting.exception()      # retrieved: no "never retrieved" warning
                raise _ReplicaGone() from exc
            finally:
                slot.connecting = None
            return slot.conn
        return await asyncio.shield(slot.connecting)

    async def _forward_by_call(self, slot, tail, http):
        """A replica on another node: one actor call, the whole answer at once."""
        scope = build_scope(tail)
        try:
            frames = await slot.remote_actor.handle_http_frames.remote(scope, tail[-1])
        except Exception as exc:          # ActorDiedError and kin: try another replica
            raise _ReplicaGone() from exc
        first = frames[0]
        if first[1] == "full":
            return http.full(first[2], first[3], first[4])
        out = b"".join(f[2] for f in frames[1:])
        http.full(first[2], [(k, v) for k, v in first[3]
                             if k.lower() not in (b"content-length", b"transfer-encoding")], out)

    async def _forward(self, slot, tail, http):
        if slot.remote_actor is not None:
            return await self._forward_by_call(slot, tail, http)
        conn = slot.conn
        if conn is None or conn.closed:
            conn = await self._connection(slot)
        rid, pending = conn.request(tail)
        try:
            frame = await pending.next()
            if frame is None:
                raise _ReplicaGone()
            await self._answer(frame, pending, http, slot)
        finally:
            conn.done(rid)

    @staticmethod
    async def _answer(frame, pending, http, slot):
        """Relay a replica's answer (``frame`` its first) to the HTTP client."""
        if frame[1] == "full":        # headers: str pairs, length-free (wire.py)
            return http.full(frame[2], frame[3], frame[4])
        http.start(frame[2], frame[3])
        while True:
            frame = await pending.next()
            if frame is None:
                logger.warning("proxy: replica %s died while streaming its answer",
                               slot.replica_id)
                return http.abort()
            _, _, chunk, more = frame
            try:
                await http.write(chunk)
            except ConnectionResetError:
                return http.abort()
            if not more:
                return http.end()


class _Call:
    """A request sent to a local replica, answered from the socket's reader (push)."""
    __slots__ = ("proxy", "key", "slot", "conn", "http", "tail", "rid")

    def __init__(self, proxy, key, slot, conn, http, tail):
        self.proxy, self.key, self.slot, self.conn = proxy, key, slot, conn
        self.http, self.tail = http, tail
        self.rid = None

    def push(self, frame):            # None: the connection was lost
        if frame is not None and frame[1] == "full":
            self.conn.done(self.rid)
            self.proxy._release(self.key, self.slot)
            self.http.full(frame[2], frame[3], frame[4])
        else:
            self.proxy._continue(self, frame)


def _retire(slot):
    """No new requests for this replica; its answers in flight still come back."""
    conn = slot.conn
    if conn is None:
        return
    if conn.pending:
        conn.close_when_idle = True
    else:
        conn.close()
