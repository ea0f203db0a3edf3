"""The node manager: one process per node, and on one machine the head too.

A thin NodeManager composes its components (one file each, under node/):

    workers.py           worker processes and the zygote
    memory.py            the memory monitor's hook
    leases.py            lease requests: a shell over scheduling/policy.py
    object_store.py      objects in this node's store, borrows, actor tokens
    transfers.py         copies of objects between nodes
    actors.py            actors, restarts, actors hosted or kept elsewhere
    tables.py            the KV store and named actors
    placement_groups.py  placement groups (scheduling/placement.py plans them)
    logs.py              worker logs to drivers
    cluster.py           Membership: the cluster view, heartbeats, peers (called
                         by the node manager; it reports back through events)

    drivers, workers --REQUEST/NOTICE--> NodeManager.handlers[...] --REPLY/PUSH--> clients
                                             |
               Scheduler (resources, leases) | ObjectDirectory (shared objects, spill)
               actors table, named actors    | KV store, placement groups
                                             |
                          zygote --fork--> workers (one per lease; one per actor)

It never runs user code and never blocks: a single thread runs a selector
loop, every write is buffered (a stopped peer cannot stall it), and each
message kind is one method in the ``handlers`` table below.

Started by ``minray.init()`` as a child of the driver (and then it exits with
that driver), or by ``minray start --head`` as a node that outlives drivers.
"""

import argparse
import collections
import itertools
import json
import logging
import os
import shutil
import signal
import socket
import time

from minray._private.lazy import lazy_module
from minray._private.net import protocol as P
from minray._private.net import transport
from minray._private.objects import shm
from minray._private.node import zygote
from minray._private.node.actors import Actors
from minray._private.node.leases import Leases
from minray._private.node.logs import Logs
from minray._private.node.memory import MemoryHook
from minray._private.node.memory_monitor import MemoryMonitor
from minray._private.node.object_store import ObjectStore
from minray._private.node.placement_groups import PlacementGroups
from minray._private.node.records import DEFERRED as _DEFERRED
from minray._private.node.records import IDLE_WORKER_LIMIT_FACTOR, LOG_POLL_S
from minray._private.node.tables import Tables
from minray._private.node.transfers import Transfers
from minray._private.node.workers import ZygoteReader, Workers
from minray._private.objects.directory import ObjectDirectory
from minray._private.observability import state_service
from minray._private.scheduling import policy
from minray._private.scheduling import resources as sched

log = logging.getLogger("minray")
cluster = lazy_module("minray._private.node.cluster", globals())   # many nodes only


class NodeManager(Workers, MemoryHook, Leases, ObjectStore, Transfers, Actors, Tables,
                  PlacementGroups, Logs):
    """The node manager's state and its message loop; the components' methods
    (the base classes, one file each) act on it."""

    def __init__(self, session_dir, resources, object_store_memory, node_id, head=False,
                 node_ip="127.0.0.1", system_config=None, tcp_port=None, head_address=None,
                 token=None):
        self.session_dir = session_dir
        # Many nodes (cluster.py): a TCP port to listen on, and for a worker node
        # the head's address. None on a single machine.
        self.cluster = None
        self.policy = policy.ClusterPolicy(node_id)   # where lease requests run
        self.node_id = node_id
        self.node_ip = node_ip
        self.head = head
        self.socket_path = os.path.join(session_dir, "nm.sock")
        self.logs_dir = os.path.join(session_dir, "logs")
        os.makedirs(self.logs_dir, exist_ok=True)
        self.segment_prefix = "mr" + os.path.basename(session_dir)[-8:] + "_"
        self.system_config = dict(system_config or {})
        self.objects = ObjectDirectory(object_store_memory,
                                       _spill_dir(session_dir, self.system_config),
                                       self.segment_prefix + "nm_")
        self.spill_warned = None
        self.memory_monitor = MemoryMonitor.from_config(self.system_config)
        self.oom_kills = collections.OrderedDict()   # worker_id -> why it was killed
        self.oom_victim = None                       # the last victim, until it is gone
        self.sched = sched.Scheduler(resources)
        self.loop = transport.Loop("minray-node-manager")
        if tcp_port is not None or head_address:
            self.cluster = cluster.Membership(self._membership_events(), token,
                                              tcp_port or 0, head_address)
        self.clients = {}            # conn -> info dict
        self.client_conns = {}       # client_id -> conn
        self.workers = {}            # worker_id -> WorkerInfo
        self.workers_by_pid = {}
        self.actors = {}
        self.init_tables()           # self.kv, self.named (tables.py)
        self.jobs = {}               # job_id -> {"config":..., "driver": conn, "start": t}
        self.job_seq = itertools.count(1)
        self.worker_seq = itertools.count(1)
        self.lease_seq = itertools.count(1)
        self.pg_waiters = collections.defaultdict(list)
        self.exit_statuses = {}
        self.stopping = False
        self.start_time = time.time()
        self.owner_pid = None
        self.current_req_id = None
        self.revoke_timer = False
        self.pulls = {}              # oid -> Pull: copies streaming in from other nodes
        self.outbox = None           # transfer.Outbox: copies streaming out (made on demand)
        self.token_borrows = {}      # token oid -> our borrow at the actor's keeper node
        self.pull_seq = itertools.count(1)
        self.zygote_preloads = set()  # modules the zygote was asked to import (workers.py)
        self.state_service = state_service.StateService(self)   # state API, task events, metrics
        self.handlers = {
            "register_client": self.h_register_client,
            "request_lease": self.h_request_lease,
            "cancel_lease_requests": self.h_cancel_lease_requests,
            "return_lease": self.h_return_lease,
            "worker_blocked": self.h_worker_blocked,
            "worker_unblocked": self.h_worker_unblocked,
            "cancel_task": self.h_cancel_task,
            "steal_tasks": self.h_steal_tasks,
            "seal": self.h_seal,
            "publish": self.h_publish,
            "owner_release": self.h_owner_release,
            "borrow": self.h_borrow,
            "unborrow": self.h_unborrow,
            "hold": self.h_hold,
            "release_holds": self.h_release_holds,
            "get_object": self.h_get_object,
            "open_stream": self.h_open_stream,
            "object_lost": self.h_object_lost,
            "alloc_segment": self.h_alloc_segment,
            "mapped": self.h_mapped,
            "unmapped": self.h_unmapped,
            "object_stats": self.h_object_stats,
            "object_info": self.h_object_info,
            "create_actor": self.h_create_actor,
            "subscribe_actor": self.h_subscribe_actor,
            "actor_ready": self.h_actor_ready,
            "actor_failed": self.h_actor_failed,
            "actor_exiting": self.h_actor_exiting,
            "kill_actor": self.h_kill_actor,
            "get_actor": self.h_get_actor,
            "list_named_actors": self.h_list_named_actors,
            "list_actors": self.h_list_actors,
            "create_pg": self.h_create_pg,
            "wait_pg": self.h_wait_pg,
            "remove_pg": self.h_remove_pg,
            "pg_table": self.h_pg_table,
            "kv_put": self.h_kv_put,
            "kv_get": self.h_kv_get,
            "kv_del": self.h_kv_del,
            "kv_keys": self.h_kv_keys,
            "cluster_resources": self.h_cluster_resources,
            "available_resources": self.h_available_resources,
            "nodes": self.h_nodes,
            "status": self.h_status,
            "shutdown": self.h_shutdown,
            "worker_exit_cause": self.h_worker_exit_cause,
            "preload_modules": self.h_preload_modules,
            "unretriable_task": self.h_unretriable_task,
            "ping": lambda conn: "pong",
            "flush_logs": self.h_flush_logs,
            **self.state_service.handlers,   # task_events, state_query, metrics_report
        }

    # ------------------------------------------------------------------ start
    def start(self):
        # Fork the zygote first, while this process still has a single thread.
        self.zygote_pid, zsock = zygote.start_zygote()
        self.zygote = transport.Connection(zsock, buffered=True)
        self.zreader = zygote.MessageReader()
        self.listener = transport.listen_unix(self.socket_path)
        self.loop.add_listener(self.listener, self.on_accept)
        self.loop.add_reader(zsock, ZygoteReader(self))
        self.loop.call_soon(self._arm_zygote_writes)
        self.loop.call_later(LOG_POLL_S, self.poll_logs)
        self.loop.call_later(0.5, self.housekeeping)
        if self.cluster is not None:
            self.handlers.update(self.cluster.handlers)
            self.cluster.start()
        if self.memory_monitor.enabled:
            self.loop.call_later(self.memory_monitor.refresh_ms / 1000, self.check_memory)

    def _membership_events(self):
        """The callbacks through which Membership (cluster.py) reports to us."""
        def node_died(node_id):
            for conn in list(self.clients):
                if not conn.closed:
                    self.push(conn, "node_died", (node_id,))
        return cluster.MembershipEvents(
            loop=self.loop, node_id=self.node_id, node_ip=self.node_ip,
            session_dir=self.session_dir,
            resources=lambda: (self.sched.total, self.reported_available()),
            is_stopping=lambda: self.stopping,
            on_accept=lambda sock: self.on_accept(sock, True),
            on_view_changed=self.respill_queued, on_lost_head=self.shutdown,
            on_node_died=node_died, on_peer_push=self.on_peer_push,
            on_peer_closed=self.on_peer_closed)

    def on_accept(self, sock, tcp=False):
        conn = transport.Connection(sock, buffered=True)
        conn.info["tcp"] = tcp
        self.clients[conn] = {"kind": None}
        self.loop.add_connection(conn, self.on_frame, self.on_disconnect)

    def on_frame(self, conn, kind, msg):
        bad = _malformed(kind, msg, self.handlers)
        if bad:
            # A peer that breaks the protocol cannot be trusted with anything else:
            # drop only that connection (its objects and leases are cleaned up as
            # for any disconnect), never the node manager.
            conn.info["protocol_error"] = bad
            log.warning(f"minray: closing a connection that sent a malformed message: {bad}")
            self.loop.close_connection(conn)
            return
        try:
            if kind == P.REQUEST:
                req_id, method, args = msg
                self.current_req_id = req_id
                handler = self.handlers.get(method)
                if handler is None:
                    raise ValueError(f"unknown request {method!r}")
                result = handler(conn, *args) if args else handler(conn)
                if result is not _DEFERRED:
                    self.reply(conn, req_id, True, result)
            elif kind == P.NOTICE:
                method, args = msg
                handler = self.handlers.get(method)
                if handler is None:
                    # A typo in a client must not cost it its connection (as for an
                    # unknown request, which gets an error reply).
                    log.warning("minray: ignored an unknown notice %.80r", method)
                    return
                handler(conn, *args)
            else:
                raise transport.ProtocolError(f"unexpected message kind {kind}")
        except Exception as exc:
            if kind == P.REQUEST:
                try:
                    self.reply(conn, msg[0], False, exc)
                except Exception:
                    self.reply(conn, msg[0], False, RuntimeError(repr(exc)))
            else:
                # A notice has nobody to answer: a handler that raised may have left
                # the work it carried half done. Log it and close the connection, so
                # the peer's close path fails or retries that work (no silent hang).
                log.error("node manager: the %r notice handler raised; closing that "
                          "connection", msg[0] if type(msg) is tuple else msg,
                          exc_info=True)
                self.loop.close_connection(conn)

    def reply(self, conn, req_id, ok, value):
        if not conn.closed:
            try:
                conn.send(P.REPLY, (req_id, ok, value))
            except transport.ConnectionClosed:
                pass

    def push(self, conn, event, args):
        if conn is not None and not conn.closed:
            try:
                conn.send(P.PUSH, (event, args))
            except transport.ConnectionClosed:
                pass

    # ---------------------------------------------------------------- clients
    def h_register_client(self, conn, kind, client_id, pid, worker_id, job_config):
        info = self.clients[conn]
        info.update(kind=kind, client_id=client_id, pid=pid, worker_id=worker_id)
        self.client_conns[client_id] = conn
        if kind == "driver":
            job_id = next(self.job_seq)
            info["job_id"] = job_id
            self.jobs[job_id] = {"config": job_config, "driver": conn, "start": time.time(),
                                 "pid": pid, "end": None}
            if self.owner_pid is None and not self.head:
                self.owner_pid = pid
        else:
            w = self.workers.get(worker_id)
            if w is None:
                raise ValueError(f"unknown worker {worker_id!r}")
            info["job_id"] = w.job_id
            w.conn, w.pid, w.address = conn, pid, job_config["address"]
            w.tcp_address = job_config.get("tcp_address")
            self.workers_by_pid[pid] = w
            self.loop.call_soon(self.on_worker_ready, w)
        return {"node_id": self.node_id, "job_id": info["job_id"],
                "session_dir": self.session_dir, "segment_prefix": self.segment_prefix,
                "resources": dict(self.sched.total), "node_ip": self.node_ip,
                "nm_address": self.tcp_address}

    @property
    def tcp_address(self):
        """"ip:port" where other nodes reach this node manager (None on one machine)."""
        return f"{self.node_ip}:{self.cluster.port}" if self.cluster is not None else None

    def on_disconnect(self, conn):
        if self.cluster is not None and "node_id" in conn.info:
            self.cluster.on_node_conn_closed(conn)
        info = self.clients.pop(conn, None)
        if not info or info.get("kind") is None:
            return
        client_id = info.get("client_id")
        self.client_conns.pop(client_id, None)
        # Segments it mapped are free of it now.
        for name, n in (info.get("mapped") or {}).items():
            for _ in range(n):
                self.objects.unmapped(name)
        # Objects it owned fail; its borrows end.
        ready, freed = self.objects.fail_owned_by(client_id, self._owner_died_blob)
        self.answer_waiters(ready)
        self.on_freed(freed)
        self.sync_tokens()
        # Leases it held go back; waiting lease requests from it are dropped.
        for w in list(self.workers.values()):
            if w.state == "leased" and w.lease is conn:
                self.release_worker(w)
        for key, req in list(self.sched.queue.items()):
            if req.owner is conn:
                self.sched.cancel(key)
        # Actors it owned die with it (unless detached).
        for a in list(self.actors.values()):
            a.subscribers.discard(conn)
            if a.owner == client_id and not a.detached and a.state != "DEAD":
                self.kill_actor(a, "the owner of the actor (the process that created it) died",
                                no_restart=True)
        if info["kind"] == "driver":
            self.end_job(info["job_id"])
            if self.owner_pid == info.get("pid"):
                self.shutdown()
                return
        else:
            w = self.workers.get(info.get("worker_id"))
            if w is not None:
                self.on_worker_death(w)
        self.schedule()

    def end_job(self, job_id):
        job = self.jobs.get(job_id)
        if job:
            job["end"] = time.time()
        # Its placement groups go with it, unless detached (as Ray).
        for pg in list(self.sched.pgs.values()):
            if pg.owner == job_id and pg.lifetime != "detached":
                self.h_remove_pg(None, pg.pg_id)
        for w in list(self.workers.values()):
            if w.job_id == job_id and w.state != "actor":
                self.kill_worker(w)
        for a in list(self.actors.values()):
            if a.job_id == job_id and not a.detached and a.state != "DEAD":
                self.kill_actor(a, "the job that created the actor finished", no_restart=True)

    def h_cluster_resources(self, conn):
        total = self.cluster.view.total() if self.cluster else self.sched.total
        return {k: v for k, v in total.items() if v and not k.startswith("_")}

    def h_available_resources(self, conn):
        if self.cluster is not None:
            self.cluster.nodes()   # refresh this node's own entry
            avail = self.cluster.view.total("available")
        else:
            avail = self.reported_available()
        return {k: v for k, v in avail.items() if v > 1e-9 and not k.startswith("_")}

    def reported_available(self):
        """What this node reports free: the scheduler's resources, with
        object_store_memory less the bytes objects hold in the store (as Ray)."""
        avail = dict(self.sched.available)
        total = self.sched.total.get("object_store_memory")
        if total is not None:
            avail["object_store_memory"] = float(max(total - self.objects.used, 0))
        return avail

    def h_nodes(self, conn):
        if self.cluster is None:
            return [self._node_info(self.node_id, self.node_ip, True, self.sched.total,
                                    self.socket_path)]
        return [self._node_info(r.node_id, r.ip, r.alive, r.total,
                                self.socket_path if r.node_id == self.node_id else None,
                                r.port)
                for r in self.cluster.nodes()]

    @staticmethod
    def _node_info(node_id, ip, alive, total, socket_path, port=None):
        resources = {k: v for k, v in total.items() if v and not k.startswith("_")}
        return {"NodeID": node_id, "Alive": alive, "NodeManagerAddress": ip,
                "NodeManagerHostname": socket.gethostname() if socket_path else ip,
                "NodeName": ip, "Resources": resources, "alive": alive,
                "NodeManagerPort": port, "ObjectStoreSocketName": socket_path,
                "RayletSocketName": socket_path, "MetricsExportPort": 0}

    def h_status(self, conn):
        workers = collections.Counter(w.state for w in self.workers.values())
        return {"node_id": self.node_id, "resources_total": dict(self.sched.total),
                "resources_available": dict(self.sched.available),
                "workers": dict(workers), "actors": self.h_list_actors(conn),
                "objects": self.objects.stats(), "pending_leases": len(self.sched.queue),
                "jobs": len(self.jobs), "uptime_s": time.time() - self.start_time}

    def h_shutdown(self, conn):
        self.loop.call_soon(self.shutdown)
        return True

    # ------------------------------------------------------------ housekeeping
    def housekeeping(self):
        # Trim idle workers beyond a small pool, oldest first.
        idle = sorted((w for w in self.workers.values() if w.state == "idle"),
                      key=lambda w: w.idle_since)
        limit = max(int(self.sched.total.get("CPU", 1)), 1) * IDLE_WORKER_LIMIT_FACTOR
        for w in idle[:max(0, len(idle) - limit)]:
            self.kill_worker(w)
        if self.owner_pid is not None and not _pid_alive(self.owner_pid):
            self.shutdown()
            return
        if not self.stopping:
            self.loop.call_later(0.5, self.housekeeping)

    def shutdown(self):
        if self.stopping:
            return
        self.stopping = True
        if self.outbox is not None:
            self.outbox.close()
        for w in list(self.workers.values()):
            if w.pid:
                try:
                    os.kill(w.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            os.kill(self.zygote_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.objects.shutdown()
        for name in shm.list_segments(self.segment_prefix):
            shm.unlink(name)
        shutil.rmtree(self.objects.spill_dir, ignore_errors=True)
        for path in (self.socket_path,):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self.loop.stop()


def _malformed(kind, msg, handlers):
    """Why a decoded message breaks the protocol (see protocol.py), or None."""
    if kind == P.REQUEST:
        if type(msg) is not tuple or len(msg) != 3:
            return f"a REQUEST must be (req_id, method, args), got {type(msg).__name__}"
        method, args = msg[1], msg[2]
    elif kind == P.NOTICE:
        if type(msg) is not tuple or len(msg) != 2:
            return f"a NOTICE must be (method, args), got {type(msg).__name__}"
        method, args = msg
    else:
        return f"unexpected message kind {kind} for the node manager"
    if type(method) is not str:
        return f"a method name must be a str, got {type(method).__name__}"
    # (A well-formed request for an unknown method gets an error reply instead:
    # a typo in a client must not cost it its connection.)
    if type(args) is not tuple:
        return f"the arguments of {method} must be a tuple, got {type(args).__name__}"
    return None


def _spill_dir(session_dir, system_config):
    """The session's spill folder: under the session, or under Ray's
    ``object_spilling_config`` directory_path (a folder of its own, removed at
    shutdown)."""
    cfg = system_config.get("object_spilling_config")
    if cfg:
        if isinstance(cfg, str):
            cfg = json.loads(cfg)
        path = (cfg.get("params") or {}).get("directory_path")
        if isinstance(path, list):
            path = path[0]
        if path:
            return os.path.join(path, "minray-spill-" + os.path.basename(session_dir))
    return os.path.join(session_dir, "spill")


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def main(argv=None):
    parser = argparse.ArgumentParser(prog="minray-node-manager")
    parser.add_argument("--session-dir", required=True)
    parser.add_argument("--resources", required=True)
    parser.add_argument("--object-store-memory", type=int, required=True)
    parser.add_argument("--node-id", required=True)
    parser.add_argument("--head", action="store_true")
    parser.add_argument("--owner-pid", type=int, default=None)
    parser.add_argument("--system-config", default=None)
    parser.add_argument("--node-ip-address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=None,
                        help="listen for other nodes and remote clients on this TCP port")
    parser.add_argument("--head-address", default=None, help="HOST:PORT of the head to join")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if args.owner_pid:
        zygote.die_with_parent(signal.SIGTERM)
    nm = NodeManager(args.session_dir, json.loads(args.resources), args.object_store_memory,
                     args.node_id, head=args.head, node_ip=args.node_ip_address,
                     system_config=json.loads(args.system_config or "{}"),
                     tcp_port=args.port, head_address=args.head_address,
                     token=os.environ.get("MINRAY_CLUSTER_TOKEN"))
    nm.owner_pid = args.owner_pid
    signal.signal(signal.SIGTERM, lambda *a: nm.loop.call_soon(nm.shutdown))
    nm.start()
    if nm.cluster is not None:
        with open(os.path.join(args.session_dir, "cluster.json"), "w") as f:
            json.dump({"node_id": nm.node_id, "node_ip_address": nm.node_ip,
                       "port": nm.cluster.port, "head_address": nm.cluster.head_address}, f)
    with open(os.path.join(args.session_dir, "nm.ready"), "w") as f:
        f.write(str(os.getpid()))
    nm.loop.run()


if __name__ == "__main__":
    main()
