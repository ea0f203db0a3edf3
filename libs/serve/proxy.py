"""The HTTP proxy: an actor running an aiohttp server that routes to replicas.

    client --HTTP--> ProxyActor._handle: longest route_prefix match -> deployment
                     -> pick a replica (power of two choices on ongoing requests,
                        at most max_ongoing_requests each; beyond: a queue of at
                        most max_queued_requests, then 503)
                     --wire.py frame, multiplexed on one Unix socket per replica--> Replica
                     <-- "full" frame, or "start" + "body" frames (streaming)
    routes and replicas: a long poll on the controller (listen_for_routes)

A replica that vanishes before answering (SIGKILL, crash) costs the request a
retry on another replica, never an error, and is dropped from this proxy's view
until the controller's next routing table.
"""

import asyncio
import logging
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Deque, List, Optional

from aiohttp import HttpVersion11, web
from multidict import CIMultiDict

from . import wire
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

    def request(self, frame_tail):
        rid = self.next_id
        self.next_id += 1
        pending = self.pending[rid] = _Pending()
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
        for pending in self.pending.values():
            pending.push(None)
        self.pending.clear()
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


def _text(status, text):
    return web.Response(status=status, text=text)


def _headers(raw, drop=()):
    out = CIMultiDict()
    for k, v in raw:
        k = k.decode("latin-1") if isinstance(k, bytes) else k
        if k.lower() in drop:
            continue
        out.add(k, v.decode("latin-1") if isinstance(v, bytes) else v)
    return out


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
        loop = asyncio.get_running_loop()
        self._start_task = loop.create_task(self._start())
        self._poll_task = loop.create_task(self._poll_routes())

    async def _start(self):
        self._server = web.Server(self._handle, access_log=None)
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(self._server, self._host, self._port,
                                                  reuse_address=True, backlog=1024)
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

    async def shutdown(self):
        self._listener.close()
        await self._server.shutdown(1.0)

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
    async def _handle(self, request):
        path = request.path
        if path.startswith("/-/"):
            if path == "/-/healthz":
                return _text(200, "success")
            if path == "/-/routes":
                return web.json_response({p: a for p, a, _ in self._routes})
        match = self._match(path)
        if match is None:
            return _text(404, f"Path '{path}' not found. Ping http://{self._host}:{self._port}"
                              f"/-/routes for the available routes.")
        prefix, app, ingress = match
        key = (app, ingress)
        body = await request.read() if request.can_read_body else b""
        root = "" if prefix == "/" else prefix
        if root and path == root:
            path = root + "/"
        transport = request.transport
        version = request.version
        request_tail = (request.method, path, request.query_string.encode(), root,
                        request.raw_headers,
                        transport.get_extra_info("peername") if transport else None,
                        "1.1" if version == HttpVersion11 else f"{version[0]}.{version[1]}",
                        self._server_addr, body)
        for _ in range(MAX_ATTEMPTS):
            target = self._targets.get(key)
            slot = self._pick(target) if target is not None else None
            try:
                if slot is None:
                    slot = await self._acquire(key)
            except _Busy as busy:
                t = busy.args[0]
                if not t.slots:
                    return _text(503, f"Application '{app}': deployment '{ingress}' has no "
                                      f"running replica (waited {NO_REPLICA_WAIT_S:.0f}s).")
                return _text(503, f"Request dropped: deployment '{ingress}' of application "
                                  f"'{app}' is at capacity (max_ongoing_requests="
                                  f"{t.max_ongoing} per replica x {len(t.slots)} replicas, "
                                  f"max_queued_requests={t.max_queued}). Retry later, or "
                                  f"raise those limits or num_replicas.")
            if slot is None:
                return _text(404, f"Path '{path}' not found (application '{app}' is gone).")
            try:
                return await self._forward(slot, request_tail, request)
            except _ReplicaGone:
                logger.warning("proxy: replica %s of %s died; retrying the request",
                               slot.replica_id, ingress)
                self._drop(key, slot)
            finally:
                self._release(key, slot)
        return _text(503, f"Deployment '{ingress}' of application '{app}': {MAX_ATTEMPTS} "
                          f"replicas failed in a row while handling this request.")

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

    async def _forward_by_call(self, slot, request_tail):
        """A replica on another node: one actor call, the whole answer at once."""
        scope = build_scope(request_tail)
        try:
            frames = await slot.remote_actor.handle_http_frames.remote(scope, request_tail[-1])
        except Exception as exc:          # ActorDiedError and kin: try another replica
            raise _ReplicaGone() from exc
        first = frames[0]
        if first[1] == "full":
            _, _, status, headers, out = first
            return web.Response(status=status, body=out, headers=headers)
        _, _, status, headers = first
        out = b"".join(f[2] for f in frames[1:])
        return web.Response(status=status, body=out,
                            headers=_headers(headers, ("content-length", "transfer-encoding")))

    async def _forward(self, slot, request_tail, request):
        if slot.remote_actor is not None:
            return await self._forward_by_call(slot, request_tail)
        conn = slot.conn
        if conn is None or conn.closed:
            conn = await self._connection(slot)
        rid, pending = conn.request(request_tail)
        try:
            frame = await pending.next()
            if frame is None:
                raise _ReplicaGone()
            if frame[1] == "full":        # headers: str pairs, length-free (wire.py)
                return web.Response(status=frame[2], body=frame[4], headers=frame[3])
            _, _, status, headers = frame
            response = web.StreamResponse(status=status,
                                          headers=_headers(headers, ("transfer-encoding",)))
            await response.prepare(request)
            while True:
                frame = await pending.next()
                if frame is None:
                    raise ConnectionResetError(f"replica {slot.replica_id} died while "
                                               f"streaming its answer")
                _, _, chunk, more = frame
                if chunk:
                    await response.write(chunk)
                if not more:
                    break
            await response.write_eof()
            return response
        finally:
            conn.done(rid)


def _retire(slot):
    """No new requests for this replica; its answers in flight still come back."""
    conn = slot.conn
    if conn is None:
        return
    if conn.pending:
        conn.close_when_idle = True
    else:
        conn.close()
