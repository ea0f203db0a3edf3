"""A replica: one actor running one copy of a deployment's class or function.

    proxy --(Unix socket, wire.py frames)--> _ProxyConnection -> user __call__(request)
    DeploymentHandle --(actor call)--------> Replica.handle_request(meta, *args) -> user method

Both paths share one in-flight counter (what autoscaling reads) and one
semaphore of ``max_ongoing_requests``.  The controller drives the replica with
``ready``, ``ping`` (liveness, user ``check_health``, load), ``reconfigure`` and
``prepare_for_shutdown`` (drain, then the controller kills the actor).
"""

import asyncio
import inspect
import logging
import os
import sys
import traceback
import uuid
from dataclasses import dataclass
from typing import Any, Optional

from . import wire
from .multiplex import MODEL_ID_HEADER, set_model_id
from .http_util import (MalformedJSONError, Request, build_scope, encode_result, is_response,
                        Receive, text_response)

logger = logging.getLogger("minray.serve")


@dataclass
class ReplicaContext:
    """What ``serve.get_replica_context()`` returns inside a replica."""
    app_name: str
    deployment: str
    replica_tag: str
    servable_object: Any = None

    @property
    def replica_id(self):
        return self.replica_tag


@dataclass
class ReplicaInfo:
    pid: int
    address: str          # the replica's Unix socket (reachable from its own node only)
    node_id: str = ""


@dataclass
class RequestMeta:
    """Rides with every handle call: which method, streamed or not."""
    method_name: str = "__call__"
    multiplexed_model_id: str = ""


_context: Optional[ReplicaContext] = None
_MODEL_ID_HEADER = MODEL_ID_HEADER.encode()


def current_context():
    return _context


def _socket_address(replica_id):
    if sys.platform.startswith("linux"):   # abstract namespace: no file left behind
        return "\0minray-serve-" + replica_id
    import tempfile
    return os.path.join(tempfile.gettempdir(), f"mrs-{replica_id[:12]}.sock")


class Replica:
    """The actor class behind every replica (the controller applies ray.remote)."""

    def __init__(self, app_name, deployment_name, replica_id, serialized_def, config,
                 is_function):
        global _context
        self._app, self._name, self._id = app_name, deployment_name, replica_id
        self._config = config
        from .application import load_definition
        obj, args, kwargs = load_definition(serialized_def)
        self._is_function = is_function
        _context = ReplicaContext(app_name, deployment_name, replica_id)
        if is_function:
            self._callable = obj
            self._asgi = None
        else:
            self._callable = obj(*args, **kwargs)
            self._asgi = None
            if getattr(obj, "__serve_asgi_app__", None) is not None:
                from .asgi import bind_asgi_app
                self._asgi = bind_asgi_app(obj, self._callable)
        _context.servable_object = self._callable
        self._ongoing = 0
        self._sem = asyncio.Semaphore(config.max_ongoing_requests)
        self._address = _socket_address(replica_id)
        self._server_task = asyncio.get_running_loop().create_task(self._start_server())

    async def _start_server(self):
        if self._config.user_config is not None:
            await self.reconfigure(self._config.user_config)
        if not self._address.startswith("\0"):
            try:
                os.unlink(self._address)
            except FileNotFoundError:
                pass
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(lambda: _ProxyConnection(self),
                                                     path=self._address)

    async def ready(self):
        await self._server_task
        import minray as ray
        return ReplicaInfo(os.getpid(), self._address, ray.get_runtime_context().get_node_id())

    # ------------------------------------------------------------- control
    async def ping(self, run_health_check):
        """Ongoing requests; runs the user's check_health first when asked."""
        if run_health_check and not self._is_function:
            check = getattr(self._callable, "check_health", None)
            if check is not None:
                result = check()
                if inspect.isawaitable(result):
                    await result
        return self._ongoing

    async def reconfigure(self, user_config):
        fn = getattr(self._callable, "reconfigure", None)
        if fn is None:
            raise ValueError(f"Deployment {self._name!r} has a user_config but no "
                             f"reconfigure(self, config) method to receive it.")
        result = fn(user_config)
        if inspect.isawaitable(result):
            await result
        self._config.user_config = user_config

    async def prepare_for_shutdown(self, timeout_s, wait_loop_s=0.05):
        """Wait (up to timeout_s) for the in-flight requests to finish."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        await asyncio.sleep(min(0.2, timeout_s))   # requests routed just before removal
        while self._ongoing and loop.time() < deadline:
            await asyncio.sleep(wait_loop_s)
        server = getattr(self, "_server", None)
        if server is not None:
            server.close()
        if not self._is_function:
            fn = getattr(self._callable, "__del__", None)
            if fn is not None:
                try:
                    result = fn()
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    logger.exception("%s.__del__ failed", self._name)
        return self._ongoing

    # ------------------------------------------------------------- handle calls
    def _method(self, name):
        if self._is_function:
            return self._callable
        fn = getattr(self._callable, name, None)
        if fn is None:
            raise AttributeError(f"Deployment {self._name!r} has no method {name!r}.")
        return fn

    async def _call(self, method_name, args, kwargs):
        """Run the user's method (sync or async) and return its result."""
        result = self._method(method_name)(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def handle_request(self, meta, *args, **kwargs):
        set_model_id(meta.multiplexed_model_id)
        self._ongoing += 1
        try:
            async with self._sem:
                return await self._call(meta.method_name, args, kwargs)
        except Exception:
            logger.error("Request to %s.%s failed:\n%s", self._name, meta.method_name,
                         traceback.format_exc())
            raise
        finally:
            self._ongoing -= 1

    async def handle_request_streaming(self, meta, *args, **kwargs):
        set_model_id(meta.multiplexed_model_id)
        self._ongoing += 1
        try:
            async with self._sem:
                result = await self._call(meta.method_name, args, kwargs)
                if hasattr(result, "__aiter__"):
                    async for item in result:
                        yield item
                else:
                    for item in result:
                        yield item
        finally:
            self._ongoing -= 1

    # ------------------------------------------------------------- HTTP
    async def handle_http_frames(self, scope, body):
        """The HTTP path as an actor call, for a proxy on another node: all frames."""
        out = _FrameList()
        await self._handle_http(0, scope, body, out)
        return out.frames

    async def _handle_http(self, rid, scope, body, out):
        for key, value in scope["headers"]:
            if key == _MODEL_ID_HEADER:
                set_model_id(value.decode("latin-1"))
        self._ongoing += 1
        started = False
        receive = Receive(body)

        async def send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                out.send((rid, "start", message["status"], list(message.get("headers", ()))))
            elif message["type"] == "http.response.body":
                more = message.get("more_body", False)
                out.send((rid, "body", message.get("body", b""), more))
                if more:
                    await out.drain()
        try:
            async with self._sem:
                if self._asgi is not None:
                    await self._asgi(scope, receive, send)
                    return
                request = Request(scope, receive)
                result = self._method("__call__")(request)
                if inspect.isawaitable(result):
                    result = await result
                if is_response(result):
                    await result(scope, receive, send)
                else:
                    status, headers, payload = encode_result(result)
                    out.send((rid, "full", status, headers, payload))
        except MalformedJSONError as exc:
            if not started:
                out.send((rid,) + text_response(400, f"{exc.msg} (at character {exc.pos})."))
        except Exception as exc:
            tb = traceback.format_exc()
            logger.error("HTTP request to %s (%s %s) failed:\n%s", self._name,
                         scope.get("method"), scope.get("path"), tb)
            if not started:
                out.send((rid,) + text_response(
                    500, f"Internal Server Error: {type(exc).__name__}: {exc}\n\n"
                         f"Traceback (in replica {self._id} of deployment {self._name!r}):\n"
                         f"{tb}"))
            else:
                out.send((rid, "body", b"", False))
        finally:
            receive.close()
            self._ongoing -= 1
            out.request_done(rid)


class _ProxyConnection(wire.FrameProtocol):
    """The replica's end of one proxy's socket: a task per request frame."""

    def __init__(self, replica):
        super().__init__()
        self._replica = replica
        self._tasks = {}          # rid -> its task (the loop holds tasks only weakly)

    def frame_received(self, frame):
        # (rid, method, path, query_string, root, raw_headers, peer, http_version, server, body)
        rid = frame[0]
        self._tasks[rid] = asyncio.get_running_loop().create_task(
            self._replica._handle_http(rid, build_scope(frame[1:]), frame[-1], self))

    def request_done(self, rid):
        """_handle_http's last step (cheaper than a done callback: no extra loop turn)."""
        self._tasks.pop(rid, None)

    def frames_lost(self):
        self.close()


class _FrameList:
    """FrameWriter's interface, collecting the frames instead of sending them."""

    def __init__(self):
        self.frames = []

    def send(self, obj):
        self.frames.append(obj)

    def request_done(self, rid):
        pass

    async def drain(self):
        pass


def new_replica_id():
    return uuid.uuid4().hex[:12]
