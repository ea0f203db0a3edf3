"""DeploymentHandle: call a deployment from Python, in the driver or in a replica.

    handle = serve.get_app_handle("app")
    handle.remote(x).result(timeout_s=10)          # sync
    await handle.predict.remote(x)                 # async, a method by name
    m2.remote(m1.remote(x))                        # composition: m1's answer is passed on
    for chunk in handle.options(stream=True).gen.remote(): ...

Each call picks a replica by the power of two choices on this process's count
of its requests in flight at each replica, and is an actor call on that replica.
A DeploymentResponse passed as an argument travels as its ObjectRef, which the
runtime resolves to the value before the callee runs.
"""

import asyncio
import random
import threading
import time

import minray as ray
from minray.exceptions import ActorDiedError, ActorUnavailableError, GetTimeoutError

from .replica import RequestMeta

REFRESH_S = 1.0
MAX_ATTEMPTS = 3


def _controller():
    from .controller import CONTROLLER_NAME, NAMESPACE
    try:
        return ray.get_actor(CONTROLLER_NAME, namespace=NAMESPACE)
    except ValueError:
        raise RuntimeError("Serve is not running: call serve.run(app) or serve.start() "
                           "first.") from None


class _Router:
    """This process's view of one deployment's replicas, and its own load on each."""

    def __init__(self, app_name, deployment_name):
        self.key = (app_name, deployment_name)
        self.replicas = []            # [ReplicaEntry]
        self.ongoing = {}             # replica_id -> requests in flight from here
        self.fetched = 0.0
        self.refreshing = False
        self.lock = threading.Lock()

    def _fetch_blocking(self, timeout_s=60.0):
        controller = _controller()
        deadline = time.monotonic() + timeout_s
        while True:
            _, route = ray.get(controller.get_replicas.remote(*self.key))
            if route is None:
                raise RuntimeError(f"Deployment {self.key[1]!r} of application "
                                   f"{self.key[0]!r} does not exist.")
            self._apply(route)
            if self.replicas or time.monotonic() > deadline:
                return
            time.sleep(0.1)

    def _apply(self, route):
        with self.lock:
            self.replicas = list(route.replicas)
            self.fetched = time.monotonic()
            self.refreshing = False

    def _refresh_async(self):
        with self.lock:
            if self.refreshing:
                return
            self.refreshing = True
        try:
            ref = _controller().get_replicas.remote(*self.key)
        except Exception:
            self.refreshing = False
            return

        def done(fut):
            try:
                _, route = fut.result()
            except Exception:
                self.refreshing = False
                return
            if route is not None:
                self._apply(route)
            else:
                self.refreshing = False
        ref.future().add_done_callback(done)

    def choose(self, exclude=()):
        if not self.replicas:
            self._fetch_blocking()
        elif time.monotonic() - self.fetched > REFRESH_S:
            self._refresh_async()
        candidates = [r for r in self.replicas if r.replica_id not in exclude] or self.replicas
        if not candidates:
            raise RuntimeError(f"Deployment {self.key[1]!r} of application {self.key[0]!r} "
                               f"has no running replica.")
        if len(candidates) == 1:
            return candidates[0]
        a, b = random.sample(candidates, 2)
        return a if self.ongoing.get(a.replica_id, 0) <= self.ongoing.get(b.replica_id, 0) else b

    def track(self, replica, ref):
        rid = replica.replica_id
        with self.lock:
            self.ongoing[rid] = self.ongoing.get(rid, 0) + 1

        def done(_):
            with self.lock:
                self.ongoing[rid] -= 1
        ref.future().add_done_callback(done)

    def forget(self, replica):
        with self.lock:
            self.replicas = [r for r in self.replicas if r.replica_id != replica.replica_id]
        self._refresh_async()


_routers = {}
_routers_lock = threading.Lock()


def _router(app_name, deployment_name):
    key = (app_name, deployment_name)
    with _routers_lock:
        router = _routers.get(key)
        if router is None:
            router = _routers[key] = _Router(app_name, deployment_name)
        return router


def _invalidate(app_name):
    """Forget cached replicas of an app (after a redeploy) so the next call asks again."""
    with _routers_lock:
        for key, router in _routers.items():
            if key[0] == app_name:
                with router.lock:
                    router.replicas = []


def _reset_routers():
    with _routers_lock:
        _routers.clear()


def _unwrap(value):
    return value._object_ref_sync() if isinstance(value, DeploymentResponse) else value


class DeploymentHandle:
    """A handle to a deployment (``serve.get_deployment_handle(name, app)``)."""

    def __init__(self, deployment_name, app_name="default", *, method_name="__call__",
                 stream=False, multiplexed_model_id=""):
        self.deployment_name = deployment_name
        self.app_name = app_name
        self._method = method_name
        self._stream = stream
        self._model_id = multiplexed_model_id

    def options(self, *, method_name=None, stream=None, multiplexed_model_id=None,
                use_new_handle_api=True, **_ignored):
        """A copy with other call options, e.g. ``handle.options(stream=True)``."""
        return DeploymentHandle(
            self.deployment_name, self.app_name,
            method_name=self._method if method_name is None else method_name,
            stream=self._stream if stream is None else stream,
            multiplexed_model_id=self._model_id if multiplexed_model_id is None
            else multiplexed_model_id)

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self.options(method_name=name)

    def remote(self, *args, **kwargs):
        """Send one request; returns a DeploymentResponse (or ...Generator if streaming)."""
        args = tuple(_unwrap(a) for a in args)
        kwargs = {k: _unwrap(v) for k, v in kwargs.items()}
        router = _router(self.app_name, self.deployment_name)
        meta = RequestMeta(self._method, self._model_id)
        stream = self._stream

        def submit(exclude=()):
            replica = router.choose(exclude)
            if stream:
                gen = replica.actor.handle_request_streaming.options(
                    num_returns="streaming").remote(meta, *args, **kwargs)
                return replica, gen
            ref = replica.actor.handle_request.remote(meta, *args, **kwargs)
            router.track(replica, ref)
            return replica, ref
        if stream:
            return DeploymentResponseGenerator(submit()[1])
        return DeploymentResponse(submit, router)

    def __reduce__(self):
        return _rebuild_handle, (self.deployment_name, self.app_name, self._method,
                                 self._stream, self._model_id)

    def __repr__(self):
        return (f"DeploymentHandle(deployment={self.deployment_name!r}, "
                f"app={self.app_name!r})")


def _rebuild_handle(deployment_name, app_name, method_name, stream, model_id):
    return DeploymentHandle(deployment_name, app_name, method_name=method_name, stream=stream,
                            multiplexed_model_id=model_id)


def _in_event_loop():
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False


class DeploymentResponse:
    """The future answer of one handle call: ``await`` it or call ``result()``."""

    def __init__(self, submit, router):
        self._submit = submit
        self._router = router
        self._replica, self._ref = submit()
        self._tried = {self._replica.replica_id}

    def _retry(self):
        self._router.forget(self._replica)
        self._replica, self._ref = self._submit(self._tried)
        self._tried.add(self._replica.replica_id)

    def result(self, timeout_s=None):
        """Block until the answer is there (TimeoutError after ``timeout_s``)."""
        if _in_event_loop():
            raise RuntimeError("Sync methods should not be called from within an asyncio "
                               "event loop: use `await response` instead of "
                               "`response.result()`.")
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for attempt in range(MAX_ATTEMPTS):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return ray.get(self._ref, timeout=left)
            except GetTimeoutError:
                raise TimeoutError(f"Timed out after {timeout_s}s waiting for the answer of "
                                   f"{self._router.key[1]!r}.") from None
            except (ActorDiedError, ActorUnavailableError):
                if attempt == MAX_ATTEMPTS - 1:
                    raise
                self._retry()

    def __await__(self):
        return self._await().__await__()

    async def _await(self):
        for attempt in range(MAX_ATTEMPTS):
            try:
                return await self._ref
            except (ActorDiedError, ActorUnavailableError):
                if attempt == MAX_ATTEMPTS - 1:
                    raise
                self._retry()

    def _object_ref_sync(self):
        return self._ref

    def _to_object_ref_sync(self, **_):
        return self._ref

    async def _to_object_ref(self, **_):
        return self._ref

    def cancel(self):
        ray.cancel(self._ref)


class DeploymentResponseGenerator:
    """The answers of a streaming call: iterate (sync) or ``async for``."""

    def __init__(self, ref_generator):
        self._gen = ref_generator

    def __iter__(self):
        return self

    def __next__(self):
        if _in_event_loop():
            raise RuntimeError("Use `async for` on a streaming DeploymentResponse inside an "
                               "event loop.")
        return ray.get(next(self._gen))

    def __aiter__(self):
        return self

    async def __anext__(self):
        ref = await self._gen.__anext__()
        return await ref

    def cancel(self):
        ray.cancel(self._gen)
