"""The Serve controller: one named actor that owns every application's state.

    serve.run -> deploy_app(AppSpec) ----+
    serve.delete -> delete_apps(names) --+--> tables --> every 50 ms: reconcile() (pure,
                                                          controller_state.py) --> start /
    proxy, handles <- listen_for_routes(version) <--------- stop / reconfigure replicas
                    (long poll: answers when the routes change)

The decisions live in controller_state.py; this module only carries them out:
it creates replica actors, pings them (liveness, ``check_health``, load for the
autoscaler), drains and kills the ones to stop, and tells the proxy and the
handles which replicas to route to.
"""

import asyncio
import hashlib
import logging
import pickle
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import minray as ray
from minray.util.state import report_library_state

from .controller_state import (RUNNING, STARTING, STOPPING, AutoscaleState, Reconfigure,
                               ReplicaRecord, StartReplicas, StopReplica, app_status, autoscale,
                               deployment_status, reconcile)
from .replica import Replica, new_replica_id

logger = logging.getLogger("minray.serve")

CONTROLLER_NAME = "SERVE_CONTROLLER_ACTOR"
PROXY_NAME = "SERVE_PROXY_ACTOR"
NAMESPACE = "serve"
TICK_S = 0.05
PING_INTERVAL_S = 0.5
MAX_CONSTRUCTOR_FAILURES = 3


@dataclass
class ReplicaEntry:
    replica_id: str
    address: str
    actor: Any
    node_id: str = ""


@dataclass
class DeploymentRoute:
    max_ongoing_requests: int
    max_queued_requests: int
    replicas: List[ReplicaEntry]


@dataclass
class RoutingTable:
    version: int
    routes: Dict[str, Any]                    # route_prefix -> (app name, ingress deployment)
    deployments: Dict[Any, DeploymentRoute]   # (app, deployment) -> replicas to route to


@dataclass
class DeploymentState:
    app: str
    spec: Any                                  # deployment.DeploymentSpec
    target: int
    config_version: str
    replicas: Dict[str, ReplicaRecord] = field(default_factory=dict)
    autoscale: AutoscaleState = field(default_factory=AutoscaleState)
    last_sample: float = 0.0
    failures: int = 0
    failure_message: Optional[str] = None
    removed: bool = False                     # dropped from its app: stop, then forget


@dataclass
class AppState:
    spec: Any                                  # deployment.AppSpec
    deployed_at: float
    deleting: bool = False


def _config_version(user_config):
    return hashlib.sha1(pickle.dumps(user_config)).hexdigest()[:16]


class ServeController:
    def __init__(self):
        self._apps: Dict[str, AppState] = {}
        self._deps: Dict[Any, DeploymentState] = {}
        self._version = 0
        self._changed = asyncio.Event()
        self._tasks = set()
        self._replica_cls = None
        self._published = None      # the dashboard's table, as last reported
        self._loop_task = asyncio.get_running_loop().create_task(self._run())

    # ------------------------------------------------------------------ API
    async def deploy_app(self, spec):
        for other in self._apps.values():
            if (other.spec.name != spec.name and not other.deleting
                    and other.spec.route_prefix == spec.route_prefix
                    and spec.route_prefix is not None):
                raise ValueError(f"Prefix {spec.route_prefix!r} is already used by application "
                                 f"{other.spec.name!r}: pick another route_prefix.")
        old = self._apps.get(spec.name)
        if old is not None and old.deleting:
            raise ValueError(f"Application {spec.name!r} is being deleted; wait for "
                             f"serve.delete to finish.")
        self._apps[spec.name] = AppState(spec, time.time())
        for name, dspec in spec.deployments.items():
            cfg = dspec.config
            ds = self._deps.get((spec.name, name))
            cv = _config_version(cfg.user_config)
            if ds is None or ds.removed:
                self._deps[(spec.name, name)] = DeploymentState(
                    spec.name, dspec, cfg.initial_target(), cv)
                continue
            ds.spec, ds.config_version = dspec, cv
            ds.failures, ds.failure_message = 0, None
            if cfg.autoscaling_config is None:
                ds.target = cfg.num_replicas
            else:
                a = cfg.autoscaling_config
                ds.target = max(a.min_replicas, min(a.max_replicas, ds.target))
        if old is not None:
            for name in old.spec.deployments:
                if name not in spec.deployments:
                    ds = self._deps[(spec.name, name)]
                    ds.removed, ds.target = True, 0
        self._bump()

    async def delete_apps(self, names):
        for name in names:
            app = self._apps.get(name)
            if app is None:
                continue
            app.deleting = True
            for (a, _), ds in self._deps.items():
                if a == name:
                    ds.removed, ds.target = True, 0
        self._bump()

    async def wait_for_app(self, name, timeout_s):
        """Until the app is RUNNING (returns the status) or failed (raises)."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            st = self._app_status(name)
            if st is None:
                raise RuntimeError(f"Application {name!r} was deleted while deploying.")
            if st["status"] == "RUNNING":
                return st
            if st["status"] == "DEPLOY_FAILED":
                raise RuntimeError(f"Deploying application {name!r} failed: {st['message']}")
            await self._wait_change(0.5)
        raise TimeoutError(f"Application {name!r} did not reach RUNNING in {timeout_s}s: "
                           f"{self._app_status(name)}")

    async def wait_for_deleted(self, names, timeout_s):
        deadline = time.time() + timeout_s
        while any(n in self._apps for n in names) and time.time() < deadline:
            await self._wait_change(0.5)
        return [n for n in names if n in self._apps]

    async def get_status(self):
        return {name: self._app_status(name) for name in list(self._apps)}

    async def get_ingress(self, app_name):
        app = self._apps.get(app_name)
        if app is None or app.deleting:
            raise KeyError(f"Application {app_name!r} does not exist; running applications: "
                           f"{sorted(a for a, s in self._apps.items() if not s.deleting)}.")
        return app.spec.ingress

    async def listen_for_routes(self, known_version, timeout_s=10.0):
        if known_version == self._version:
            await self._wait_change(timeout_s)
        return self._routing_table()

    async def get_replicas(self, app_name, deployment_name):
        table = self._routing_table()
        return table.version, table.deployments.get((app_name, deployment_name))

    async def graceful_shutdown(self, timeout_s=30.0):
        await self.delete_apps(list(self._apps))
        return await self.wait_for_deleted(list(self._apps), timeout_s)

    async def list_replica_pids(self, app_name, deployment_name):
        ds = self._deps.get((app_name, deployment_name))
        if ds is None:
            return []
        return sorted(r.pid for r in ds.replicas.values() if r.state == RUNNING)

    # ------------------------------------------------------------------ state
    def _bump(self):
        self._version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_change(self, timeout_s):
        try:
            await asyncio.wait_for(self._changed.wait(), timeout_s)
        except asyncio.TimeoutError:
            pass

    def _routing_table(self):
        routes, deployments = {}, {}
        for name, app in self._apps.items():
            if app.deleting:
                continue
            if app.spec.route_prefix is not None:
                routes[app.spec.route_prefix] = (name, app.spec.ingress)
        for key, ds in self._deps.items():
            cfg = ds.spec.config
            deployments[key] = DeploymentRoute(
                cfg.max_ongoing_requests, cfg.max_queued_requests,
                [ReplicaEntry(r.replica_id, r.address, r.actor, r.node_id)
                 for r in ds.replicas.values() if r.state == RUNNING])
        return RoutingTable(self._version, routes, deployments)

    def _app_status(self, name):
        app = self._apps.get(name)
        if app is None:
            return None
        deps, statuses, failure = {}, [], None
        for dname in app.spec.deployments:
            ds = self._deps.get((name, dname))
            if ds is None:
                continue
            st, states = deployment_status(ds.target, ds.spec.code_version,
                                           list(ds.replicas.values()), ds.failure_message,
                                           ds.config_version)
            statuses.append(st)
            failure = failure or ds.failure_message
            deps[dname] = {"status": st, "replica_states": states,
                           "message": ds.failure_message or "",
                           "status_trigger": "CONFIG_UPDATE_COMPLETED" if st == "HEALTHY"
                           else "CONFIG_UPDATE_STARTED"}
        status = app_status(statuses, app.deleting, failure)
        return {"status": status, "message": failure or "", "deployments": deps,
                "last_deployed_time_s": app.deployed_at, "route_prefix": app.spec.route_prefix}

    # ------------------------------------------------------------------ loop
    async def _run(self):
        while True:
            try:
                self._tick(time.monotonic())
            except Exception:
                logger.exception("serve controller: reconcile step failed")
            await asyncio.sleep(TICK_S)

    def _spawn(self, coro):
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _tick(self, now):
        for key in list(self._deps):
            ds = self._deps[key]
            if ds.removed and not ds.replicas:
                del self._deps[key]
                self._bump()
                continue
            self._autoscale(ds, now)
            self._ping(ds, now)
            if ds.failure_message:
                actions = [a for a in self._reconcile(ds) if not isinstance(a, StartReplicas)]
            else:
                actions = self._reconcile(ds)
            for action in actions:
                if isinstance(action, StartReplicas):
                    for _ in range(action.count):
                        self._start_replica(ds, now)
                elif isinstance(action, StopReplica):
                    self._stop_replica(ds, ds.replicas[action.replica_id])
                elif isinstance(action, Reconfigure):
                    self._reconfigure(ds, ds.replicas[action.replica_id])
        for name in [n for n, a in self._apps.items() if a.deleting]:
            if not any(a == name for a, _ in self._deps):
                del self._apps[name]
                self._bump()
        self._publish()

    def _publish(self):
        """The dashboard's Serve table (one row per deployment), when it changes."""
        rows = []
        for name in list(self._apps):
            st = self._app_status(name)
            for dname, dep in st["deployments"].items():
                rows.append({"application": name, "route_prefix": st["route_prefix"] or "",
                             "status": st["status"], "deployment": dname,
                             "deployment_status": dep["status"],
                             "replicas": ", ".join(f"{n} {s}" for s, n in
                                                   sorted(dep["replica_states"].items()))})
        if rows == self._published:
            return
        self._published = rows
        try:
            report_library_state("serve", rows)
        except Exception as exc:    # the dashboard is a view: never stop reconciling
            logger.debug("could not publish Serve's state for the dashboard: %s", exc)

    def _reconcile(self, ds):
        return reconcile(ds.target, ds.spec.code_version, ds.config_version,
                         list(ds.replicas.values()))

    def _autoscale(self, ds, now):
        cfg = ds.spec.config.autoscaling_config
        if cfg is None or ds.removed or now - ds.last_sample < 0.25:
            return
        running = [r for r in ds.replicas.values() if r.state == RUNNING]
        if not running and ds.target > 0:
            return
        ds.last_sample = now
        total = sum(r.ongoing for r in running)
        new_target, ds.autoscale = autoscale(cfg, ds.target, total, now, ds.autoscale)
        if new_target != ds.target:
            logger.info("serve: autoscaling %s/%s from %d to %d replicas (ongoing=%d)",
                        ds.app, ds.spec.name, ds.target, new_target, total)
            ds.target = new_target
            self._bump()

    # ------------------------------------------------------------------ replicas
    def _start_replica(self, ds, now):
        if self._replica_cls is None:
            self._replica_cls = ray.remote(Replica)
        cfg = ds.spec.config
        opts = dict(cfg.ray_actor_options)
        opts.setdefault("num_cpus", 1)
        opts["max_concurrency"] = 100000
        rid = new_replica_id()
        try:
            actor = self._replica_cls.options(**opts).remote(
                ds.app, ds.spec.name, rid, ds.spec.serialized_def, cfg, ds.spec.is_function)
        except Exception as exc:      # e.g. ray_actor_options the runtime refuses
            ds.failure_message = (f"Deployment {ds.spec.name!r}: its replicas cannot be "
                                  f"created: {type(exc).__name__}: {exc}")
            self._bump()
            return
        rec = ReplicaRecord(rid, ds.spec.code_version, ds.config_version, STARTING, now,
                            actor=actor, last_ping=now, last_health_check=now)
        ds.replicas[rid] = rec
        self._spawn(self._await_ready(ds, rec))

    async def _await_ready(self, ds, rec):
        try:
            info = await rec.actor.ready.remote()
        except Exception as exc:
            if ds.replicas.pop(rec.replica_id, None) is None:
                return
            _kill(rec.actor)
            ds.failures += 1
            logger.error("serve: replica %s of %s failed to start: %s", rec.replica_id,
                         ds.spec.name, exc)
            if ds.failures >= MAX_CONSTRUCTOR_FAILURES:
                ds.failure_message = (f"Deployment {ds.spec.name!r}: the replica constructor "
                                      f"failed {ds.failures} times; last error:\n{exc}")
            self._bump()
            return
        if rec.state == STARTING and rec.replica_id in ds.replicas:
            rec.state, rec.pid, rec.address = RUNNING, info.pid, info.address
            rec.node_id = info.node_id
            ds.failures = 0
            self._bump()

    def _stop_replica(self, ds, rec):
        rec.state = STOPPING
        self._bump()
        self._spawn(self._drain_and_kill(ds, rec))

    async def _drain_and_kill(self, ds, rec):
        timeout = ds.spec.config.graceful_shutdown_timeout_s
        try:
            await asyncio.wait_for(rec.actor.prepare_for_shutdown.remote(timeout), timeout + 5)
        except Exception:
            pass      # already dead, or it would not drain in time: kill it anyway
        _kill(rec.actor)
        ds.replicas.pop(rec.replica_id, None)
        self._bump()

    def _reconfigure(self, ds, rec):
        rec.reconfiguring = True
        self._spawn(self._do_reconfigure(ds, rec, ds.spec.config.user_config,
                                         ds.config_version))

    async def _do_reconfigure(self, ds, rec, user_config, version):
        try:
            await rec.actor.reconfigure.remote(user_config)
        except Exception as exc:
            logger.error("serve: reconfigure of %s replica %s failed: %s", ds.spec.name,
                         rec.replica_id, exc)
            ds.failure_message = f"reconfigure() failed: {exc}"
        rec.config_version = version
        rec.reconfiguring = False
        self._bump()

    def _ping(self, ds, now):
        cfg = ds.spec.config
        for rec in list(ds.replicas.values()):
            if rec.state != RUNNING or rec.pinging:
                continue
            if now - rec.last_ping < PING_INTERVAL_S:
                continue
            health = now - rec.last_health_check >= cfg.health_check_period_s
            rec.last_ping = now
            if health:
                rec.last_health_check = now
            rec.pinging = True
            self._spawn(self._do_ping(ds, rec, health, cfg.health_check_timeout_s))

    async def _do_ping(self, ds, rec, health, timeout_s):
        try:
            rec.ongoing = await asyncio.wait_for(rec.actor.ping.remote(health), timeout_s)
        except Exception as exc:
            if rec.state != RUNNING:
                return
            logger.warning("serve: replica %s of %s (pid %s) is unhealthy, replacing it: %s",
                           rec.replica_id, ds.spec.name, rec.pid, exc)
            ds.replicas.pop(rec.replica_id, None)
            _kill(rec.actor)
            self._bump()
        finally:
            rec.pinging = False


def _kill(actor):
    try:
        ray.kill(actor)
    except Exception:
        pass
