"""Serve's public functions: start, run, status, delete, shutdown, handles.

    serve.start(http_options={"host": "127.0.0.1", "port": 8123})
    handle = serve.run(Model.bind(), name="m", route_prefix="/m")
    serve.status().applications["m"].status        # "RUNNING"
    serve.delete("m"); serve.shutdown()

The driver talks to two named detached actors in namespace "serve": the
controller (the state) and the HTTP proxy.  Everything else happens there.
"""

import logging
import time
from dataclasses import dataclass, field
from typing import Dict, Optional

import minray as ray

from .config import HTTPOptions
from .controller import CONTROLLER_NAME, NAMESPACE, PROXY_NAME, ServeController
from .application import build_app
from .handle import DeploymentHandle, _invalidate, _reset_routers
from .replica import current_context

logger = logging.getLogger("minray.serve")

DEPLOY_TIMEOUT_S = 600.0


@dataclass
class DeploymentStatusOverview:
    status: str
    status_trigger: str = ""
    replica_states: Dict[str, int] = field(default_factory=dict)
    message: str = ""


@dataclass
class ApplicationStatusOverview:
    status: str
    message: str = ""
    last_deployed_time_s: float = 0.0
    deployments: Dict[str, DeploymentStatusOverview] = field(default_factory=dict)
    route_prefix: Optional[str] = None


@dataclass
class ProxyStatusOverview:
    status: str
    host: str
    port: int


@dataclass
class ServeStatus:
    """What ``serve.status()`` returns."""
    proxies: Dict[str, ProxyStatusOverview] = field(default_factory=dict)
    applications: Dict[str, ApplicationStatusOverview] = field(default_factory=dict)
    target_capacity: Optional[float] = None


def _ensure_ray():
    if not ray.is_initialized():
        ray.init()


def _get_controller():
    try:
        return ray.get_actor(CONTROLLER_NAME, namespace=NAMESPACE)
    except ValueError:
        return None


_http = {"options": None}


def start(http_options=None, **_ignored):
    """Start Serve's controller and HTTP proxy (a no-op when they run already).

        serve.start(http_options={"host": "127.0.0.1", "port": 8000})
    """
    opts = HTTPOptions.from_value(http_options)
    _ensure_ray()
    controller = _get_controller()
    if controller is not None:
        if http_options is not None and _http["options"] not in (None, opts):
            logger.warning("Serve is already running with http_options=%s; the new ones "
                           "(%s) are ignored until serve.shutdown().", _http["options"], opts)
        return
    controller = ray.remote(ServeController).options(
        name=CONTROLLER_NAME, namespace=NAMESPACE, lifetime="detached", num_cpus=0,
        max_concurrency=100000, get_if_exists=True).remote()
    from .proxy import ProxyActor     # loaded only where Serve starts
    proxy = ray.remote(ProxyActor).options(
        name=PROXY_NAME, namespace=NAMESPACE, lifetime="detached", num_cpus=0,
        max_concurrency=100000).remote(opts.host, opts.port, controller)
    try:
        ray.get(proxy.ready.remote(), timeout=60)
    except Exception as exc:
        for actor in (proxy, controller):
            try:
                ray.kill(actor)
            except Exception:
                pass
        raise RuntimeError(f"Serve's HTTP proxy could not listen on {opts.host}:{opts.port}: "
                           f"{exc}. Is another server using the port? Pass "
                           f"serve.start(http_options={{'port': ...}}).") from None
    _http["options"] = opts
    logger.info("Serve started: HTTP proxy on http://%s:%s", opts.host, opts.port)


def run(target, *, name="default", route_prefix="/", blocking=False, _local_testing_mode=False,
        **_ignored):
    """Deploy an application and wait until it is RUNNING; returns its ingress handle.

        handle = serve.run(Model.bind(), name="m", route_prefix="/m")
        handle.remote(1).result()
    """
    start()
    controller = _get_controller()
    spec = build_app(target, name, route_prefix, lambda a, d: DeploymentHandle(d, a))
    ray.get(controller.deploy_app.remote(spec))
    _wait_running(controller, name)
    _invalidate(name)
    handle = DeploymentHandle(spec.ingress, name)
    if blocking:
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            logger.info("serve.run interrupted; the application keeps running until "
                        "serve.shutdown().")
    return handle


def _wait_running(controller, name):
    """Until the app is RUNNING; says why once when it takes long (e.g. no free CPU)."""
    deadline = time.monotonic() + DEPLOY_TIMEOUT_S
    warned = False
    while True:
        try:
            return ray.get(controller.wait_for_app.remote(name, 10.0))
        except TimeoutError as exc:  # the controller's "not RUNNING yet", as a task error
            if time.monotonic() > deadline:
                raise TimeoutError(f"Application {name!r} did not become RUNNING within "
                                   f"{DEPLOY_TIMEOUT_S:.0f}s: {exc}") from None
            if not warned:
                warned = True
                logger.warning(
                    "Application %r is not RUNNING after 10s. If its replicas cannot be "
                    "scheduled, free resources (serve.delete other apps) or lower their "
                    "ray_actor_options; available now: %s. Still waiting: %s", name,
                    ray.available_resources(), str(exc).splitlines()[-1])


def _deploy_specs(specs):
    """Deploy several prepared AppSpecs (the CLI's ``serve deploy``)."""
    start()
    controller = _get_controller()
    for spec in specs:
        ray.get(controller.deploy_app.remote(spec))
    for spec in specs:
        _wait_running(controller, spec.name)


def status():
    """The state of Serve: applications, their deployments and replica counts."""
    controller = _get_controller() if ray.is_initialized() else None
    if controller is None:
        return ServeStatus()
    raw = ray.get(controller.get_status.remote())
    apps = {}
    for name, st in raw.items():
        if st is None:
            continue
        deps = {d: DeploymentStatusOverview(**v) for d, v in st["deployments"].items()}
        apps[name] = ApplicationStatusOverview(st["status"], st["message"],
                                               st["last_deployed_time_s"], deps,
                                               st["route_prefix"])
    proxies = {}
    try:
        proxy = ray.get_actor(PROXY_NAME, namespace=NAMESPACE)
        host, port = ray.get(proxy.address.remote(), timeout=10)
        node = ray.get(proxy.node_id.remote(), timeout=10)
        proxies[node] = ProxyStatusOverview("HEALTHY", host, port)
    except Exception as exc:     # gone, or not answering: say so rather than fail
        proxies["unknown"] = ProxyStatusOverview(f"UNHEALTHY: {exc}", "", 0)
    return ServeStatus(proxies=proxies, applications=apps)


def delete(name, _blocking=True):
    """Delete an application: its replicas drain and stop, its route goes away."""
    controller = _get_controller() if ray.is_initialized() else None
    if controller is None:
        return
    ray.get(controller.delete_apps.remote([name]))
    if _blocking:
        left = ray.get(controller.wait_for_deleted.remote([name], 120))
        if left:
            raise TimeoutError(f"Application {name!r} was not deleted within 120s.")


def shutdown():
    """Stop every application, the proxy and the controller."""
    if not ray.is_initialized():
        return
    controller = _get_controller()
    try:
        proxy = ray.get_actor(PROXY_NAME, namespace=NAMESPACE)
    except ValueError:
        proxy = None
    if proxy is not None:
        try:
            ray.get(proxy.shutdown.remote(), timeout=10)
        except Exception:
            pass
        ray.kill(proxy)
    if controller is not None:
        try:
            ray.get(controller.graceful_shutdown.remote(), timeout=60)
        except Exception:
            logger.exception("serve.shutdown: the controller did not stop its replicas cleanly")
        ray.kill(controller)
    _wait_gone(CONTROLLER_NAME)
    _wait_gone(PROXY_NAME)
    _reset_routers()
    _http["options"] = None


def _wait_gone(name, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            ray.get_actor(name, namespace=NAMESPACE)
        except ValueError:
            return
        time.sleep(0.05)


def get_app_handle(name):
    """The handle to an application's ingress deployment."""
    controller = _get_controller() if ray.is_initialized() else None
    if controller is None:
        raise RuntimeError("Serve is not running: call serve.run(app) first.")
    try:
        ingress = ray.get(controller.get_ingress.remote(name))
    except KeyError as exc:
        raise KeyError(str(exc).strip('"')) from None
    return DeploymentHandle(ingress, name)


def get_deployment_handle(deployment_name, app_name=None):
    """A handle to any deployment of an application (default: the current app)."""
    if app_name is None:
        ctx = current_context()
        app_name = ctx.app_name if ctx is not None else "default"
    return DeploymentHandle(deployment_name, app_name)


def get_replica_context():
    """Inside a replica: its app name, deployment name and replica tag."""
    ctx = current_context()
    if ctx is None:
        raise RuntimeError("serve.get_replica_context() may only be called from within a "
                           "Serve replica.")
    return ctx

