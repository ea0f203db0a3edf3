"""The node manager: one process per node, and on one machine the head too.

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
import os
import shutil
import signal
import socket
import logging
import time

from minray import exceptions
from minray._private.net import protocol as P
from minray._private.scheduling import resources as sched
from minray._private.objects import serialization, shm
from minray._private.observability import state_service
from minray._private.net import transport
from minray._private.node import zygote
from minray._private.lazy import lazy_module
from minray._private.node.memory_monitor import Candidate, MemoryMonitor, pick_victim
from minray._private.objects.directory import LOST, READY, ObjectDirectory

ACTOR_TOKEN_INDEX = 0xFFFFFFFF
LOG_POLL_S = 0.1
IDLE_WORKER_LIMIT_FACTOR = 2
TASK_NAME_MARKER = P.TASK_NAME_MARKER
TRANSFER_CHUNK_BYTES = P.TRANSFER_CHUNK_BYTES

cluster = lazy_module(__package__ + ".cluster", globals())   # many nodes only


def token_oid(actor_id):
    return actor_id + ACTOR_TOKEN_INDEX.to_bytes(4, "big")


class WorkerInfo:
    __slots__ = ("worker_id", "pid", "job_id", "env_key", "address", "conn", "state",
                 "lease", "charge", "blocked_charge", "actor_id", "log_out", "log_err",
                 "log_pos", "task_name", "started", "idle_since", "exit_status", "leased_at",
                 "tcp_address", "unretriable")

    def __init__(self, worker_id, job_id, env_key, log_out, log_err):
        self.worker_id = worker_id
        self.pid = None
        self.job_id = job_id
        self.env_key = env_key
        self.address = None
        self.tcp_address = None   # "tcp://ip:port" on a cluster node, for remote submitters
        self.conn = None
        self.state = "starting"   # starting | idle | leased | actor | dead
        self.lease = None         # (client conn, req_id) waiting for this worker, or holder conn
        self.charge = None
        self.blocked_charge = None
        self.actor_id = None
        self.log_out = log_out
        self.log_err = log_err
        self.log_pos = [0, 0]
        self.task_name = ["", ""]
        self.started = time.monotonic()
        self.idle_since = None
        self.exit_status = None
        self.leased_at = 0.0      # when it got its current lease (memory monitor: newest)
        self.unretriable = set()  # running tasks with no retries left (memory monitor)


class ActorInfo:
    __slots__ = ("actor_id", "spec", "owner", "job_id", "name", "namespace", "detached",
                 "max_restarts", "num_restarts", "state", "worker", "address", "cause",
                 "subscribers", "exit_intended", "lease_key", "meta", "pg", "died_at",
                 "host", "mirror_of")

    def __init__(self, actor_id, spec, owner, job_id):
        opts = spec["options"]
        self.actor_id = actor_id
        self.spec = spec
        self.owner = owner
        self.job_id = job_id
        self.name = opts.get("name")
        self.namespace = opts.get("namespace")
        self.detached = opts.get("lifetime") == "detached"
        self.max_restarts = opts.get("max_restarts", 0)
        self.num_restarts = 0
        self.state = "PENDING_CREATION"
        self.worker = None
        self.address = None
        self.cause = None
        self.subscribers = set()
        self.exit_intended = False
        self.lease_key = None
        self.meta = spec["meta"]
        self.pg = spec.get("pg")
        self.died_at = 0.0     # time.monotonic() when its last process was seen dying
        self.host = None       # the connection to the node that runs it, if not this one
        self.mirror_of = None  # a copy of an actor another node keeps: that node's conn

    def state_msg(self):
        return ("actor_state", (self.actor_id, self.state, self.address, self.cause,
                                self.num_restarts, self.died_at))


class Pull:
    """A copy of an object streaming in from another node (NodeManager.start_pull)."""
    __slots__ = ("oid", "conn", "address", "name", "fd", "size", "offset")

    def __init__(self, oid, conn, address, name, fd, size):
        self.oid, self.conn, self.address = oid, conn, address
        self.name, self.fd, self.size, self.offset = name, fd, size, 0


class NodeManager:
    def __init__(self, session_dir, resources, object_store_memory, node_id, head=False,
                 node_ip="127.0.0.1", system_config=None, tcp_port=None, head_address=None,
                 token=None):
        self.session_dir = session_dir
        # Many nodes (cluster.py): a TCP port to listen on, and for a worker node
        # the head's address. None on a single machine.
        self.cluster = None
        self.pg_rr = -1        # "any bundle" requests take remote bundles' nodes in turn
        if tcp_port is not None or head_address:
            self.cluster = cluster.Membership(self, token, tcp_port or 0, head_address)
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
        self.clients = {}            # conn -> info dict
        self.client_conns = {}       # client_id -> conn
        self.workers = {}            # worker_id -> WorkerInfo
        self.workers_by_pid = {}
        self.actors = {}
        self.named = {}              # (namespace, name) -> actor_id
        self.kv = {}
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
        self.token_borrows = {}      # token oid -> our borrow at the actor's keeper node
        self.pull_seq = itertools.count(1)
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
            "read_object": self.h_read_object,
            "end_read": self.h_end_read,
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
        self.loop.add_reader(zsock, _ZygoteReader(self))
        self.loop.call_soon(self._arm_zygote_writes)
        self.loop.call_later(LOG_POLL_S, self.poll_logs)
        self.loop.call_later(0.5, self.housekeeping)
        if self.cluster is not None:
            self.cluster.start()
        if self.memory_monitor.enabled:
            self.loop.call_later(self.memory_monitor.refresh_ms / 1000, self.check_memory)

    def check_memory(self):
        """The memory monitor's tick (see memory_monitor.py)."""
        if self.stopping:
            return
        mon = self.memory_monitor
        self.loop.call_later(mon.refresh_ms / 1000, self.check_memory)
        victim = self.oom_victim
        if victim is not None and victim.state != "dead":
            return   # wait for the last victim's memory to come back first
        live = [w for w in self.workers.values() if w.pid and w.state in ("leased", "actor")]
        used, total = mon.usage([w.pid for w in self.workers.values() if w.pid])
        if not mon.over(used, total):
            return
        cands = []
        for w in live:
            a = self.actors.get(w.actor_id) if w.actor_id is not None else None
            restartable = a is not None and (a.max_restarts == -1 or
                                             a.num_restarts < a.max_restarts)
            retriable = restartable if a is not None else not w.unretriable
            cands.append(Candidate(w, a is not None, retriable, w.leased_at or w.started))
        chosen = pick_victim(cands)
        if chosen is None:
            return
        w = chosen.key
        why = mon.describe(used, total, w.pid)
        self.oom_kills[w.worker_id] = why
        while len(self.oom_kills) > 1000:
            self.oom_kills.popitem(last=False)
        mon.num_kills += 1
        self.oom_victim = w
        logging.getLogger("minray.node").warning("memory monitor: %s", why)
        self.kill_worker(w)

    def h_unretriable_task(self, conn, worker_id, task_id, running):
        """A submitter runs (or finished) a task with no retries left on ``worker_id``."""
        w = self.workers.get(worker_id)
        if w is not None:
            if running:
                w.unretriable.add(task_id)
            else:
                w.unretriable.discard(task_id)

    def h_worker_exit_cause(self, conn, worker_id):
        """Why the memory monitor killed ``worker_id``, or None if it did not."""
        return self.oom_kills.get(worker_id)

    def _arm_zygote_writes(self):
        # Writes to the zygote are rare and tiny: send them synchronously.
        self.zygote.buffered = False
        self.zygote.sock.setblocking(True)

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
            logging.getLogger("minray.node").warning("closing a connection that sent a malformed "
                                                 "message: %s", bad)
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
                    raise ValueError(f"unknown notice {method!r:.80}")
                handler(conn, *args)
            else:
                raise transport.ProtocolError(f"unexpected message kind {kind}")
        except Exception as exc:
            if kind == P.REQUEST:
                try:
                    self.reply(conn, msg[0], False, exc)
                except Exception:
                    self.reply(conn, msg[0], False, RuntimeError(repr(exc)))
            elif kind == P.NOTICE and msg[0] in self.handlers:
                raise   # a bug in a notice's handler: the loop logs it, closes the connection
            else:   # an unknown notice (a client's typo) costs no connection
                logging.getLogger("minray.node").warning("dropped a notice: %s", exc)

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
        for oid in list(conn.info.get("serving", ())):
            self.h_end_read(conn, oid)
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

    def _owner_died_blob(self, oid):
        return serialization.error_blob(exceptions.OwnerDiedError(oid.hex()))

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

    # ---------------------------------------------------------------- workers
    def start_worker(self, job_id, env_key, env_vars, purpose):
        worker_id = f"{next(self.worker_seq):04d}{os.urandom(4).hex()}"
        out = os.path.join(self.logs_dir, f"worker-{worker_id}.out")
        err = os.path.join(self.logs_dir, f"worker-{worker_id}.err")
        w = WorkerInfo(worker_id, job_id, env_key, out, err)
        self.workers[worker_id] = w
        job = self.jobs.get(job_id, {}).get("config", {}) or {}
        env = dict(job.get("env_vars") or {})
        env.update(env_vars or {})
        spec = {
            "worker_id": worker_id, "job_id": job_id, "nm_socket": self.socket_path,
            "session_dir": self.session_dir, "stdout": out, "stderr": err,
            "env_vars": env, "task_env_vars": dict(env_vars or {}),
            "sys_path": job.get("sys_path"), "cwd": job.get("cwd"),
            "namespace": job.get("namespace"), "node_id": self.node_id, "purpose": purpose,
            "segment_prefix": self.segment_prefix,
            "node_ip": self.node_ip, "cluster": self.cluster is not None,
            "nm_tcp": (f"tcp://{self.node_ip}:{self.cluster.port}"
                       if self.cluster is not None else None),
        }
        self.zygote.send_bytes(_zygote_frame(("fork", worker_id, spec)))
        return w

    def on_zygote_msg(self, msg):
        if msg[0] == "forked":
            w = self.workers.get(msg[1])
            if w is not None and w.pid is None:
                w.pid = msg[2]
                self.workers_by_pid[msg[2]] = w
        elif msg[0] == "exited":
            _, pid, status = msg
            self.exit_statuses[pid] = status
            w = self.workers_by_pid.get(pid)
            if w is not None:
                w.exit_status = status
                if w.state != "dead" and w.conn is None:
                    self.on_worker_death(w)  # died before it connected

    def on_worker_ready(self, w):
        if w.state == "dead":
            return
        if w.actor_id is not None:
            a = self.actors.get(w.actor_id)
            if a is None or a.state == "DEAD":
                self.kill_worker(w)
                return
            w.state = "actor"
            spec = dict(a.spec, gpu_ids=sched.Scheduler.gpu_ids(w.charge))
            self.push(w.conn, "become_actor", (a.actor_id, spec, a.num_restarts))
            return
        if w.lease is not None:
            holder, req_id = w.lease
            w.state = "leased"
            w.leased_at = time.monotonic()
            w.lease = holder
            self.reply(holder, req_id, True, (w.worker_id, self.worker_address(w, holder),
                                              w.pid, sched.Scheduler.gpu_ids(w.charge)))
            return
        self.make_idle(w)

    def make_idle(self, w):
        w.state, w.lease, w.idle_since = "idle", None, time.monotonic()
        self.schedule()

    def release_charge(self, w):
        """Give a worker's resources back to the pool, exactly once.

        A worker blocked in get() has already lent its CPUs back (h_worker_blocked):
        take that loan back first, or a worker that dies or is released while
        blocked would credit its CPUs twice and the node would overcommit.
        """
        if w.blocked_charge is not None:
            sched.subtract(self.sched.available, w.blocked_charge)
            w.blocked_charge = None
        self.sched.release(w.charge)
        w.charge = None

    def release_worker(self, w):
        w.unretriable.clear()
        self.release_charge(w)
        if w.state != "dead":
            self.make_idle(w)

    def kill_worker(self, w, sig=signal.SIGKILL):
        if w.pid:
            try:
                os.kill(w.pid, sig)
            except ProcessLookupError:
                pass
        if w.state != "dead" and w.conn is None:
            self.on_worker_death(w)

    def on_worker_death(self, w):
        if w.state == "dead":
            return
        prev = w.state
        w.state = "dead"
        self.workers.pop(w.worker_id, None)
        self.release_charge(w)
        self.flush_log(w)
        if w.pid:
            for name in shm.list_segments(f"{self.segment_prefix}{w.pid}_"):
                if not self._segment_known(name):
                    shm.unlink(name)
        if prev == "starting" and w.lease is not None and w.actor_id is None:
            holder, req_id = w.lease
            self.reply(holder, req_id, False, exceptions.WorkerCrashedError(
                f"A worker process (pid={w.pid}) died while starting; see its log {w.log_err}"))
        if w.actor_id is not None:
            a = self.actors.get(w.actor_id)
            if a is not None and a.worker is w:
                self.on_actor_process_died(a, w)
        self.schedule()

    def _segment_known(self, name):
        o = self.objects
        return (name in o.retired or any(n == name for _, n in o.pool) or
                any(e.segment == name for e in o.entries.values()))

    def describe_exit(self, w):
        status = w.exit_status if w.exit_status is not None else self.exit_statuses.get(w.pid)
        if status is None:
            return f"the process (pid={w.pid}) exited unexpectedly"
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else sig
            hint = " (killed with SIGKILL: by a user, the OOM killer, or ray.kill)" if sig == 9 else ""
            return f"the process (pid={w.pid}) was killed by signal {name}{hint}"
        return f"the process (pid={w.pid}) exited with code {os.WEXITSTATUS(status)}"

    # ----------------------------------------------------------------- leases
    def h_request_lease(self, conn, resources, pg, env_key, env_vars):
        req_id = self.current_req_id
        info = self.clients[conn]
        key = ("lease", next(self.lease_seq))
        req = sched.LeaseRequest(key, resources, pg=pg, owner=conn,
                                 payload=(req_id, info["job_id"], env_key, env_vars))
        if self.cluster is not None and not conn.info.get("tcp"):
            target = self.pg_target(req) if pg is not None else self.spill_target(req)
            if target is not None:
                # Another node should run it: the submitter asks that node directly
                # (a request that came over TCP is never sent on again: no ping-pong).
                return self.spill_to(target, req)
        missing = self.missing_node(resources)
        if missing:
            raise exceptions.TaskUnschedulableError(
                f"The task requires node {missing} (NodeAffinitySchedulingStrategy with "
                "soft=False), which is not part of this cluster. Use a node id from "
                "ray.nodes(), or soft=True to allow other nodes.")
        if not self.sched.feasible(req):
            self.warn_infeasible(conn, resources, pg)
        self.sched.request(req)
        self.schedule()
        if key in self.sched.queue:
            self.revoke_idle_leases()
        return _DEFERRED

    def spill_target(self, req):
        """The node a lease request should go to instead of this one, or None.

        Another node is chosen when this one can never run the request (it lacks
        a resource, or the request names another node), or cannot run it now
        while another node reported it free at its last heartbeat.
        """
        res = req.resources
        if "_spread" in res:
            return self.cluster.spread_target(res)
        for k in res:
            if k.startswith("_prefer_node:") and k[13:] != self.node_id:
                rec = self.cluster.view.nodes.get(k[13:])
                if rec is not None and rec.alive and sched.fits(rec.available, res):
                    return rec                 # soft affinity: there if it has room
        if self.sched.feasible(req):
            if sched.fits(self.sched.available, res):
                return None                    # it runs here, now
            return self._free_remote(req)      # busy here: a node with room now, if any
        return self.cluster.remote_node_for(res)

    def pg_target(self, req):
        """The node holding the placement group bundle a request names, if not this one.

        For "any bundle" (index -1): here while a local bundle has room, else the
        nodes holding the group's other bundles in turn (they queue if full).
        """
        pg = self.sched.pgs.get(req.pg[0])
        if pg is None or not pg.remote:
            return None
        idx = req.pg[1]
        if idx >= 0:
            where = pg.remote.get(idx)
        else:
            local = [i for i in range(len(pg.bundles)) if i not in pg.remote]
            if any(sched.fits(pg.available[i], req.resources) for i in local):
                return None
            places = sorted(set(pg.remote.values()), key=lambda w: w[0])
            self.pg_rr = (self.pg_rr + 1) % len(places)
            where = places[self.pg_rr]
        if where is None:
            return None
        return self.cluster.view.nodes.get(where[0])
    @staticmethod
    def spill_to(target, req):
        """The answer that sends a lease request on to ``target``. The request counts
        against that node until its next heartbeat says otherwise, so a burst spreads
        instead of piling onto one node."""
        sched.subtract(target.available, req.resources)
        return ("spill", target.node_id, f"tcp://{target.address}")

    def respill_queued(self):
        """Lease requests waiting here while another node has room go there (the
        cluster view just changed: every heartbeat); pending placement groups are
        planned again."""
        if any(pg.replan for pg in self.sched.pgs.values()):
            self.replan_pgs()
        for key, req in list(self.sched.queue.items()):
            if key[0] != "lease" or req.pg is not None or req.owner is None or \
                    req.owner.info.get("tcp") or sched.fits(self.sched.available,
                                                            req.resources):
                continue
            target = self._free_remote(req)
            if target is None:
                continue
            self.sched.cancel(key)
            self.reply(req.owner, req.payload[0], True, self.spill_to(target, req))

    def replan_pgs(self):
        """Placement groups no plan fitted when they were created: plan them again
        against the cluster view just received (nodes freed resources, or joined)."""
        for pg in [p for p in self.sched.pgs.values() if p.replan and p.state == "PENDING"]:
            plan = self.cluster.plan_bundles(pg.bundles, pg.strategy)
            if plan is None:
                continue
            if all(r.node_id == self.node_id for r in plan):
                pg.replan = False     # it fits here now: the local scheduler places it
                continue
            del self.sched.pgs[pg.pg_id]
            self.create_pg_across_nodes(pg.pg_id, pg.bundles, pg.strategy, pg.name,
                                        pg.lifetime, pg.owner, plan)
            # Lease requests and actors that waited here for one of its bundles go
            # to its node.
            for key, req in list(self.sched.queue.items()):
                if req.pg is None or req.pg[0] != pg.pg_id:
                    continue
                if key[0] == "lease" and req.owner is not None and \
                        not req.owner.info.get("tcp"):
                    target = self.pg_target(req)
                    if target is not None:
                        self.sched.cancel(key)
                        self.reply(req.owner, req.payload[0], True, self.spill_to(target, req))
                elif key[0] == "actor":
                    a = self.actors.get(key[1])
                    if a is None or a.spec.get("hosted") or a.lease_key != key:
                        continue
                    target = self.pg_target(req)
                    if target is not None and self.host_remotely(a, target):
                        self.sched.cancel(key)
                        a.lease_key = None
        self.schedule()

    def _free_remote(self, req):
        rec = self.cluster.remote_node_for(req.resources)
        if rec is not None and sched.fits(rec.available, req.resources):
            return rec
        return None

    def missing_node(self, resources):
        """The node a hard NodeAffinitySchedulingStrategy names, if no live node is it."""
        for k in resources:
            if k.startswith("_node_id:") and k not in self.sched.total:
                node_id = k[len("_node_id:"):]
                rec = self.cluster.view.nodes.get(node_id) if self.cluster else None
                if rec is None or not rec.alive:
                    return node_id
        return None

    def h_cancel_lease_requests(self, conn, req_ids):
        """The client no longer needs these leases (its queue drained): drop them."""
        wanted = set(req_ids)
        for key, req in list(self.sched.queue.items()):
            if req.owner is conn and req.payload and req.payload[0] in wanted:
                self.sched.cancel(key)
                self.reply(conn, req.payload[0], False, P.LeaseCancelled())

    def warn_infeasible(self, conn, resources, pg):
        if pg:
            idx = "any bundle" if pg[1] < 0 else f"bundle {pg[1]}"
            what = f"placement group {pg[0].hex()} ({idx})"
        else:
            what = "this node"
        total = {k: v for k, v in self.sched.total.items() if not k.startswith("_")}
        text = (f"Warning: a task or actor requests {resources}, which {what} can never "
                f"provide (total: {total}). It stays pending until a node with "
                "these resources joins. Lower the request or start minray with more "
                "resources (init(num_cpus=..., resources={...})).")
        # The client prints it at once and names it again if get() times out on it.
        self.push(conn, "infeasible", (dict(resources), pg, text))

    def revoke_idle_leases(self):
        holders = {}
        for w in self.workers.values():
            if w.state == "leased" and w.lease is not None and w.charge is not None:
                holders.setdefault(w.lease, []).append(w.charge[1])
        # Whom the waiting requests come from, and for what. A holder that waits only
        # for the shapes it already holds would use its own idle workers for them: its
        # requests are left over from a burst and are withdrawn once its queue drains.
        # Asking it to hand workers back would only make it lease one per task.
        waiting = {}
        for req in self.sched.queue.values():
            waiting.setdefault(req.owner, []).append(req.resources)
        for conn, shapes in holders.items():
            own = waiting.get(conn)
            if own is not None and len(waiting) == 1 and all(r in shapes for r in own):
                continue
            self.push(conn, "revoke_idle", ())
        if holders and not self.revoke_timer:
            # Holders busy now may go idle soon: ask again while requests wait.
            self.revoke_timer = True
            self.loop.call_later(0.05, self._revoke_again)

    def _revoke_again(self):
        self.revoke_timer = False
        if self.sched.queue and not self.stopping:
            self.revoke_idle_leases()

    def schedule(self):
        if self.stopping:
            return
        self.sched.try_place_pgs()
        for pg_id in list(self.pg_waiters):
            pg = self.sched.pgs.get(pg_id)
            if pg is not None and pg.state == "CREATED" and not pg.remote_pending:
                for conn, req_id in self.pg_waiters.pop(pg_id, []):
                    self.reply(conn, req_id, True, True)
        for req, charge in self.sched.schedule():
            if req.key[0] == "actor":
                self.start_actor_worker(req.key[1], charge)
                continue
            req_id, job_id, env_key, env_vars = req.payload
            holder = req.owner
            if holder.closed:
                self.sched.release(charge)
                continue
            w = self._idle_worker(job_id, env_key)
            if w is None:
                w = self.start_worker(job_id, env_key, env_vars, "task")
                w.lease, w.charge = (holder, req_id), charge
            else:
                w.state, w.lease, w.charge = "leased", holder, charge
                w.leased_at = time.monotonic()
                self.reply(holder, req_id, True, (w.worker_id, self.worker_address(w, holder),
                                                  w.pid, sched.Scheduler.gpu_ids(charge)))

    @staticmethod
    def worker_address(w, holder):
        """Where ``holder`` reaches ``w``: its Unix socket, or TCP from another node."""
        if holder.info.get("tcp") and w.tcp_address:
            return w.tcp_address
        return w.address

    def _idle_worker(self, job_id, env_key):
        for w in self.workers.values():
            if w.state == "idle" and w.job_id == job_id and w.env_key == env_key:
                return w
        return None

    def h_return_lease(self, conn, worker_id, kill):
        w = self.workers.get(worker_id)
        if w is None or w.state != "leased":
            return
        if kill:
            self.kill_worker(w)
            return
        self.release_worker(w)

    def h_worker_blocked(self, conn, worker_id):
        w = self.workers.get(worker_id)
        if w is None or w.charge is None or w.blocked_charge is not None:
            return
        if w.charge[0] == "node":
            cpu = {k: v for k, v in w.charge[1].items() if k == "CPU"}
            if cpu:
                sched.add(self.sched.available, cpu)
                w.blocked_charge = cpu
                self.schedule()

    def h_worker_unblocked(self, conn, worker_id):
        w = self.workers.get(worker_id)
        if w is None or w.blocked_charge is None:
            return
        sched.subtract(self.sched.available, w.blocked_charge)
        w.blocked_charge = None

    def h_cancel_task(self, conn, worker_id, task_id, force, recursive):
        w = self.workers.get(worker_id)
        if w is None:
            return False
        if force:
            self.kill_worker(w)
        else:
            self.push(w.conn, "cancel", (task_id, recursive))
        return True

    def h_steal_tasks(self, conn, worker_id, task_ids, client_id):
        w = self.workers.get(worker_id)
        if w is not None and w.conn is not None:
            self.push(w.conn, "steal", (task_ids, client_id))

    # ----------------------------------------------------------------- objects
    def h_seal(self, conn, oid, segment, size, owner):
        self.answer_waiters(self.objects.seal(oid, segment, size, owner))
        if self.objects.spill_error != self.spill_warned:
            self.warn_spill_failed()

    def warn_spill_failed(self):
        """Spilling failed (a full disk): tell the drivers once per distinct cause."""
        o = self.objects
        self.spill_warned = o.spill_error
        text = (f"Warning: minray could not spill objects to disk: {o.spill_error}. "
                f"The object store holds {o.used / 2**20:.0f} MiB, over its capacity of "
                f"{o.capacity / 2**20:.0f} MiB; objects stay in shared memory and nothing "
                "is lost, but /dev/shm may fill up. Free disk space (or point "
                "_system_config['object_spilling_config'] elsewhere), or free references "
                "to large objects.")
        logging.getLogger("minray.node").warning("%s", text)
        for job in self.jobs.values():
            if job["end"] is None:
                self.push(job["driver"], "warning", (text,))

    def h_publish(self, conn, oid, owner, blob):
        self.answer_waiters(self.objects.publish(oid, owner, blob))
        if blob is not None and blob[0] == serialization.TAG_SHM:
            loc = self.objects.want_pull(oid)   # requests waited for this pointer
            if loc is not None:
                self.start_pull(oid, loc[1], loc[2])

    def h_owner_release(self, conn, oids):
        for oid in oids:
            self.on_freed(self.objects.owner_release(oid))

    def h_borrow(self, conn, oids):
        cid = self.clients[conn].get("client_id")
        deferred = False
        for oid in oids:
            self.objects.borrow(oid, cid)
            if oid[-4:] == _TOKEN_SUFFIX:
                # Answered once the actor's keeper counts this node's handles, so a
                # creator that lets go right after cannot end the actor meanwhile.
                deferred |= self.sync_token(oid, (conn, self.current_req_id))
        return _DEFERRED if deferred else True

    def h_unborrow(self, conn, oids):
        cid = self.clients[conn].get("client_id")
        for oid in oids:
            self.on_freed(self.objects.unborrow(oid, cid))
            if oid[-4:] == _TOKEN_SUFFIX:
                self.sync_token(oid)

    def h_hold(self, conn, inner, outer):
        self.objects.hold(inner, outer)
        for oid in inner:
            if oid[-4:] == _TOKEN_SUFFIX:
                self.sync_token(oid)
        return True

    def h_release_holds(self, conn, outers):
        for outer in outers:
            self.on_freed(self.objects.release_holds(outer))
        self.sync_tokens()

    # -- handles of actors kept by another node ---------------------------------
    # An actor lives while a handle to it exists anywhere (unless detached). Its
    # keeper (the node that created it) counts the handles on its own node in its
    # token's entry; every other node counts its own, and while it has any it
    # holds one borrow of the token at the keeper, as a client of the keeper. That
    # borrow ends when the node's last handle goes, or with the node (its
    # connection to the keeper closes), and the keeper ends the actor as for any
    # last handle.
    def _kept_elsewhere(self, oid):
        if self.cluster is None:
            return False
        a = self.actors.get(oid[:16])
        return a is None or a.mirror_of is not None or bool(a.spec.get("hosted"))

    def sync_token(self, oid, waiter=None):
        """Hold or drop this node's borrow at the keeper to match the handles here.
        True when ``waiter`` (a borrow request) is answered later, once it holds."""
        if not self._kept_elsewhere(oid):
            return False
        e = self.objects.entries.get(oid)
        want = e is not None and bool(e.borrowers or e.held_by)
        tb = self.token_borrows.get(oid)
        if want and tb is None:
            tb = self.token_borrows[oid] = {"conn": None, "held": False, "waiters": []}
            self.cluster.locate_actor(oid[:16], lambda found: self._borrow_at_keeper(
                oid, tb, found))
        if tb is None:
            return False
        if not tb["held"]:
            if waiter is not None:
                tb["waiters"].append(waiter)
                return True
            return False
        if not want:
            del self.token_borrows[oid]
            if tb["conn"] is not None and not tb["conn"].closed:
                tb["conn"].send(P.NOTICE, ("unborrow", ([oid],)))
        return False

    def _borrow_at_keeper(self, oid, tb, found):
        conn = None
        if found is not None:
            try:
                conn = self.cluster.peer(found[1], None, {})
            except (OSError, transport.AuthenticationError):
                conn = None   # the keeper's node is gone, and the actor with it
        if conn is None:
            return self._token_held(oid, tb, None)
        self.cluster.peer_request(conn, "borrow", ([oid],),
                                  lambda ok, v: self._token_held(oid, tb, conn if ok else None))

    def _token_held(self, oid, tb, conn):
        tb["conn"], tb["held"] = conn, True
        waiters, tb["waiters"] = tb["waiters"], []
        for c, req_id in waiters:
            self.reply(c, req_id, True, True)
        if self.token_borrows.get(oid) is tb:
            self.sync_token(oid)    # the handles here may all have gone meanwhile

    def sync_tokens(self):
        for oid in list(self.token_borrows):
            self.sync_token(oid)

    def h_get_object(self, conn, oid):
        req_id = self.current_req_id
        loc = self.objects.locate(oid, (conn, req_id))
        if loc is None:
            return _DEFERRED
        if loc[0] == "remote":
            self.start_pull(oid, loc[1], loc[2])
            return _DEFERRED
        if loc is LOST:
            return self.on_object_lost(conn, req_id, oid)
        return self.location_for(conn, loc)

    def on_object_lost(self, conn, req_id, oid):
        """The store copy of ``oid`` is gone: its owner rebuilds it from lineage.

        The owner asking is told at once and rebuilds it itself; a borrower's
        request waits here while the owner does (``reconstruct``), and gets the
        new copy from the seal, or the owner's error (``object_lost``).
        """
        e = self.objects.entries[oid]
        if e.owner == self.clients[conn].get("client_id"):
            return LOST
        owner = self.client_conns.get(e.owner)
        if owner is None:
            self.objects.fail(oid, self._owner_died_blob(oid))
            return self.objects.locate(oid, None)
        e.waiters.append((conn, req_id))
        self.push(owner, "reconstruct", (oid,))
        return _DEFERRED

    def h_object_lost(self, conn, oid, blob):
        self.answer_waiters(self.objects.fail(oid, blob))

    def h_alloc_segment(self, conn, size):
        return self.objects.alloc(size)

    def h_mapped(self, conn, name):
        self.objects.mapped(name)
        self.clients[conn].setdefault("mapped", collections.Counter())[name] += 1

    def h_unmapped(self, conn, name):
        self.objects.unmapped(name)
        m = self.clients[conn].get("mapped")
        if m is not None:
            m[name] -= 1
            if m[name] <= 0:
                del m[name]

    def answer_waiters(self, ready):
        for (conn, req_id), loc in ready:
            self.reply(conn, req_id, True, self.location_for(conn, loc))

    def location_for(self, conn, loc):
        """A requester on another node cannot map our shared memory: it gets a small
        value's bytes, and for a large one a blob that says "pull it from here"."""
        if loc is None or loc is LOST or not conn.info.get("tcp") or loc[0] != "shm":
            return loc
        if loc[2] > TRANSFER_CHUNK_BYTES:
            return ("inline", serialization.remote_blob(loc[2], self.tcp_address))
        buf = shm.attach(loc[1])
        try:
            return ("inline", serialization.inline_from_segment(buf))
        finally:
            buf.close()

    def on_freed(self, oids):
        copies, self.objects.freed_copies = self.objects.freed_copies, []
        for oid, conns in copies:
            for c in conns:     # nodes that pulled a copy from here drop theirs
                self.push(c, "free_copy", (oid,))
        for oid in oids:
            if oid[-4:] == b"\xff\xff\xff\xff":
                a = self.actors.get(oid[:16])
                if a is not None and not a.detached and a.state != "DEAD":
                    self.kill_actor(a, "all references to the actor were deleted",
                                    no_restart=True, graceful=True)

    # ---------------------------------------------- copies from other nodes
    # A process here needs an object whose bytes are in another node's store
    # (a pointer, see object_directory.py). This node manager pulls it from that
    # node manager over their authenticated TCP connection, one chunk per request
    # (read_object), each chunk written straight into a new segment of this store
    # with pwrite. So at most one chunk is in memory besides the segment, on each
    # side, and neither node manager maps the whole object. Every request for the
    # object meanwhile waits on that one pull. If the other node dies or no longer
    # has the object, the half-written segment is removed and the requests go the
    # way of any lost object (on_object_lost: the owner rebuilds it, or an error).
    def start_pull(self, oid, address, size):
        if self.cluster is None or address == self.tcp_address:
            return self.pull_failed(oid, f"object {oid.hex()} points at this node's own "
                                         "store, which no longer has it")
        free = shm.shm_free_bytes()
        if free and size > free:
            return self.pull_failed(oid, f"/dev/shm has only {free / 2**20:.1f} MiB free for "
                                         f"a copy of {size / 2**20:.1f} MiB")
        try:
            conn = self.cluster.peer(address, None, {})
        except (OSError, transport.AuthenticationError) as exc:
            return self.pull_failed(oid, f"cannot reach the node at {address}: {exc}")
        name = f"{self.segment_prefix}nm_p{next(self.pull_seq)}_{oid.hex()[-12:]}"
        try:
            fd = shm.create_fd(name, max(size, 1))
        except OSError as exc:
            return self.pull_failed(oid, f"cannot create a segment of {size} bytes: {exc}")
        p = self.pulls[oid] = Pull(oid, conn, address, name, fd, size)
        self._request_chunk(p)

    def _request_chunk(self, p):
        n = min(TRANSFER_CHUNK_BYTES, p.size - p.offset)
        self.cluster.peer_request(p.conn, "read_object", (p.oid, p.offset, n),
                                  lambda ok, value: self._on_chunk(p, n, ok, value))

    def _on_chunk(self, p, n, ok, data):
        if self.pulls.get(p.oid) is not p:
            return
        if not ok or type(data) is not bytes or len(data) != n:
            why = data if not ok else f"a chunk of {len(data)} bytes, not {n}"
            return self._abort_pull(p, f"the node at {p.address} could not send it: {why}")
        try:
            view = memoryview(data)
            written = 0
            while written < n:
                written += os.pwrite(p.fd, view[written:], p.offset + written)
        except OSError as exc:
            return self._abort_pull(p, f"writing the copy failed: {exc}")
        p.offset += n
        self.objects.num_pull_chunks += 1
        if p.offset < p.size:
            return self._request_chunk(p)
        del self.pulls[p.oid]
        os.close(p.fd)
        self.answer_waiters(self.objects.pulled(p.oid, p.name, p.size))
        self.on_freed(self.objects.maybe_free(p.oid))

    def _abort_pull(self, p, why):
        del self.pulls[p.oid]
        os.close(p.fd)
        shm.unlink(p.name)          # never leave a half-written copy behind
        if not p.conn.closed:
            try:
                p.conn.send(P.NOTICE, ("end_read", (p.oid,)))
            except transport.ConnectionClosed:
                pass
        self.pull_failed(p.oid, why)

    def pull_failed(self, oid, why):
        logging.getLogger("minray.node").warning("could not copy object %s from another node: "
                                               "%s", oid.hex(), why)
        e = self.objects.entries.get(oid)
        waiters = self.objects.pull_failed(oid)
        lost = serialization.error_blob(exceptions.ObjectLostError(oid.hex(), message=(
            f"Failed to retrieve object {oid.hex()}: its copy is on another node, and "
            f"copying it here failed ({why}); it cannot be rebuilt from here.")))
        for conn, req_id in waiters:
            if e is not None and self.clients.get(conn, {}).get("client_id") == e.owner:
                self.reply(conn, req_id, True, LOST)   # the owner rebuilds it from lineage
            else:
                self.reply(conn, req_id, True, ("inline", lost))

    def h_read_object(self, conn, oid, offset, length):
        """A chunk of an object in this store, for a node pulling a copy."""
        serving = conn.info.setdefault("serving", {})
        src = serving.get(oid)
        if src is None:
            e = self.objects.entries.get(oid)
            loc = self.objects.locate(oid, None) if e is not None and \
                e.state == READY and e.remote is None else None
            if loc is None or loc[0] != "shm" or offset != 0:
                raise exceptions.ObjectLostError(oid.hex(), message=(
                    f"node {self.node_id[:12]} no longer holds object {oid.hex()}"))
            name, size = loc[1], loc[2]
            self.objects.mapped(name)   # never reused while the copy streams out
            try:
                fd = shm.open_fd(name)
            except FileNotFoundError:
                self.objects.unmapped(name)
                raise exceptions.ObjectLostError(oid.hex()) from None
            src = serving[oid] = (name, size, fd)
            if e.copies is None:
                e.copies = set()
            e.copies.add(conn)
        name, size, fd = src
        if offset < 0 or length < 0 or offset + length > size:
            raise ValueError(f"read_object: bytes {offset}..{offset + length} are outside "
                             f"object {oid.hex()} of {size} bytes")
        data = os.pread(fd, length, offset)
        if offset + length >= size:
            self.h_end_read(conn, oid)
        return data

    def h_end_read(self, conn, oid):
        src = conn.info.get("serving", {}).pop(oid, None)
        if src is not None:
            os.close(src[2])
            self.objects.unmapped(src[0])

    def h_object_stats(self, conn):
        return self.objects.stats()

    def h_object_info(self, conn, oid):
        """Reference-count detail of one object (for debugging leaks)."""
        e = self.objects.entries.get(oid)
        if e is None:
            return None
        return {"state": e.state, "owner_released": e.owner_released,
                "borrowers": dict(e.borrowers), "held_by": dict(e.held_by),
                "waiters": len(e.waiters), "segment": e.segment}

    # ------------------------------------------------------------------ actors
    def h_create_actor(self, conn, actor_id, spec):
        info = self.clients[conn]
        opts = spec["options"]
        name = opts.get("name")
        ns = opts.get("namespace") or self.jobs.get(info["job_id"], {}).get(
            "config", {}).get("namespace")
        opts["namespace"] = ns
        if name:
            existing = self.named.get((ns, name))
            if existing is not None and self.actors[existing].state != "DEAD":
                if opts.get("get_if_exists"):
                    a = self.actors[existing]
                    self.objects.borrow(token_oid(existing), info["client_id"])
                    return ("existing", existing, a.meta)
                raise ValueError(f"The name {name} (namespace={ns}) is already taken by "
                                 "another actor. Pick another name, pass "
                                 "get_if_exists=True, or kill the existing actor first.")
        a = ActorInfo(actor_id, spec, info["client_id"], info["job_id"])
        self.actors[actor_id] = a
        a.subscribers.add(conn)
        if name:
            self.named[(ns, name)] = actor_id
        tok = self.objects.entry(token_oid(actor_id))
        tok.owner, tok.state, tok.blob = info["client_id"], 1, b"P" + b"N."
        if spec.get("creation_error"):
            err = serialization.loads_inline(spec["creation_error"])
            self.mark_actor_dead(a, serialization.error_blob(exceptions.ActorDiedError(
                f"The actor {a.meta.get('class_name')} could not be created: an argument "
                f"of its constructor failed:\n{err}", actor_id=actor_id.hex(), cause=err)))
            return ("created", actor_id, a.meta)
        missing = self.missing_node(spec["resources"])
        if missing:
            self.mark_actor_dead(a, serialization.error_blob(exceptions.ActorUnschedulableError(
                f"The actor {a.meta.get('class_name')} requires node {missing} "
                "(NodeAffinitySchedulingStrategy with soft=False), which is not part of "
                "this cluster.")))
            return ("created", actor_id, a.meta)
        if self.cluster is not None and not spec.get("hosted"):
            self.cluster.register_actor(actor_id, name, ns, a.meta)
        self.queue_actor_lease(a)
        return ("created", actor_id, a.meta)

    def queue_actor_lease(self, a):
        resources = a.spec["resources"]
        req = sched.LeaseRequest(("actor", a.actor_id, a.num_restarts), resources,
                                 pg=a.pg, owner=None)
        if self.cluster is not None and not a.spec.get("hosted"):
            target = self.pg_target(req) if a.pg is not None else self.spill_target(req)
            if target is not None and self.host_remotely(a, target):
                return
        if not self.sched.feasible(req):
            owner = self.client_conns.get(a.owner)
            if owner is not None:
                self.warn_infeasible(owner, resources, a.pg)
        a.lease_key = req.key
        self.sched.request(req)
        self.schedule()
        if req.key in self.sched.queue:
            self.revoke_idle_leases()

    def start_actor_worker(self, actor_id, charge):
        a = self.actors.get(actor_id)
        if a is None or a.state == "DEAD":
            self.sched.release(charge)
            return
        w = self.start_worker(a.job_id, "actor", a.spec.get("env_vars"), "actor")
        w.actor_id, w.charge = actor_id, charge
        a.worker = w

    def h_actor_ready(self, conn, actor_id, address):
        a = self.actors.get(actor_id)
        if a is None or a.state == "DEAD":
            return
        if a.spec.get("hosted") and a.worker is not None and a.worker.tcp_address:
            address = a.worker.tcp_address   # its callers live on other nodes
        a.state, a.address, a.cause = "ALIVE", address, None
        self.publish_actor(a)

    def h_actor_failed(self, conn, actor_id, cause_blob):
        a = self.actors.get(actor_id)
        if a is None:
            return
        a.exit_intended = True
        self.mark_actor_dead(a, cause_blob)
        if a.worker is not None:
            self.kill_worker(a.worker)

    def h_actor_exiting(self, conn, actor_id, reason):
        a = self.actors.get(actor_id)
        if a is not None:
            a.exit_intended = True
            a.cause = serialization.error_blob(exceptions.ActorDiedError(
                f"The actor {actor_id.hex()} exited: {reason}", actor_id=actor_id.hex()))

    def on_actor_process_died(self, a, w):
        a.died_at = a.died_at if a.died_at > w.started else time.monotonic()
        if a.state == "DEAD":
            return
        if not a.exit_intended and (a.max_restarts == -1 or a.num_restarts < a.max_restarts):
            a.num_restarts += 1
            a.state, a.address, a.worker = "RESTARTING", None, None
            self.publish_actor(a)
            self.queue_actor_lease(a)
            return
        how = self.oom_kills.get(w.worker_id) or self.describe_exit(w)
        cause = a.cause or serialization.error_blob(exceptions.ActorDiedError(
            f"The actor {a.actor_id.hex()} ({a.meta.get('class_name')}) died: "
            f"{how}; restarts used {a.num_restarts} of max_restarts="
            f"{a.max_restarts}. Worker logs: {w.log_err}", actor_id=a.actor_id.hex()))
        self.mark_actor_dead(a, cause)

    def mark_actor_dead(self, a, cause_blob):
        a.state, a.address, a.cause = "DEAD", None, cause_blob
        if a.lease_key is not None:
            self.sched.cancel(a.lease_key)
        if a.name and self.named.get((a.namespace, a.name)) == a.actor_id:
            del self.named[(a.namespace, a.name)]
        if self.cluster is not None and a.mirror_of is None and not a.spec.get("hosted"):
            self.cluster.unregister_actor(a.actor_id, a.name, a.namespace)
        self.publish_actor(a)

    def publish_actor(self, a):
        event, args = a.state_msg()
        for conn in list(a.subscribers):
            self.push(conn, event, args)

    def kill_actor(self, a, reason, no_restart=True, graceful=False):
        if a.state == "DEAD":
            return
        if no_restart:
            a.exit_intended = True
            a.cause = serialization.error_blob(exceptions.ActorDiedError(
                f"The actor {a.actor_id.hex()} ({a.meta.get('class_name')}) was killed: "
                f"{reason}.", actor_id=a.actor_id.hex()))
        if a.mirror_of is not None:
            self.cluster.peer_request(a.mirror_of, "kill_actor", (a.actor_id, no_restart))
            return
        if a.host is not None:
            # Its process runs on another node: that node kills it and reports it
            # dead; a restart (no_restart=False) then follows from here.
            try:
                a.host.send(P.REQUEST, (0, "kill_actor", (a.actor_id, True)))
            except transport.ConnectionClosed:
                pass
            if no_restart:
                a.host.info.get("hosted", set()).discard(a.actor_id)
                a.host = None
                self.mark_actor_dead(a, a.cause)
            return
        w = a.worker
        if w is None or w.state == "dead":
            if no_restart:
                self.mark_actor_dead(a, a.cause)
            return
        if graceful and w.conn is not None:
            self.push(w.conn, "terminate", ())
            self.loop.call_later(5.0, self.kill_worker, w)
            return
        # Calls sent after this instant never ran: callers resend them for free.
        a.died_at = time.monotonic()
        self.kill_worker(w)
        if no_restart:
            # Dead now, not when its socket closes: the name is free at once.
            self.mark_actor_dead(a, a.cause)

    # -------------------------------------------------- actors on other nodes
    # The node that created an actor keeps its record (name, token, restarts,
    # subscribers); another node only hosts its process: it creates a plain,
    # unnamed, never-restarted "hosted" actor and pushes its state back here.
    def host_remotely(self, a, target):
        job = self.jobs.get(a.job_id, {})
        try:
            conn = self.cluster.peer(target.address, a.job_id, job.get("config") or {})
        except (OSError, transport.AuthenticationError) as exc:
            logging.getLogger("minray.node").warning("cannot reach node %s to start an actor "
                                                 "there: %s", target.address, exc)
            return False
        sched.subtract(target.available, a.spec["resources"])
        opts = dict(a.spec["options"], name=None, lifetime=None, max_restarts=0,
                    get_if_exists=False)
        spec = dict(a.spec, options=opts, hosted=True)
        a.host = conn
        conn.info.setdefault("hosted", set()).add(a.actor_id)
        conn.send(P.REQUEST, (0, "create_actor", (a.actor_id, spec)))
        return True

    def on_peer_push(self, conn, event, args):
        """What a node hosting our actors tells us."""
        if event == "actor_state":
            a = self.actors.get(args[0])
            if a is not None and a.mirror_of is conn:
                a.state, a.address, a.cause, a.num_restarts, a.died_at = args[1:6]
                self.publish_actor(a)
            else:
                self.on_hosted_state(conn, *args)
        elif event == "free_copy":
            # The node we pulled this copy from freed its own: the owner let go.
            self.on_freed(self.objects.owner_release(args[0]))
        elif event in ("logs", "warning"):
            job = self.jobs.get(conn.info.get("job_id"))
            if job and job["end"] is None:
                self.push(job["driver"], event, args)

    def on_hosted_state(self, conn, actor_id, state, address, cause, num_restarts, died_at):
        a = self.actors.get(actor_id)
        if a is None or a.host is not conn or a.state == "DEAD":
            return
        if state == "ALIVE":
            a.state, a.address, a.cause = "ALIVE", address, None
            self.publish_actor(a)
        elif state == "DEAD":
            self.on_hosted_died(a, cause)

    def on_hosted_died(self, a, cause_blob):
        a.host.info.get("hosted", set()).discard(a.actor_id)
        a.host = None
        a.died_at = time.monotonic()
        if not a.exit_intended and (a.max_restarts == -1 or a.num_restarts < a.max_restarts):
            a.num_restarts += 1
            a.state, a.address = "RESTARTING", None
            self.publish_actor(a)
            self.queue_actor_lease(a)
            return
        self.mark_actor_dead(a, a.cause or cause_blob)

    def on_peer_closed(self, conn):
        """The node hosting some of our actors is gone: they died with it."""
        for actor_id in list(conn.info.get("hosted", ())):
            a = self.actors.get(actor_id)
            if a is not None and a.host is conn and a.state != "DEAD":
                self.on_hosted_died(a, serialization.error_blob(exceptions.ActorDiedError(
                    f"The actor {actor_id.hex()} ({a.meta.get('class_name')}) died: the "
                    "node that ran it died or lost its connection.",
                    actor_id=actor_id.hex())))

    def h_subscribe_actor(self, conn, actor_id):
        a = self.actors.get(actor_id)
        if a is None:
            if self.cluster is None or conn.info.get("tcp"):
                return None
            # A handle that came from another node: mirror the actor from its node.
            req_id = self.current_req_id
            self.cluster.locate_actor(actor_id, lambda found: self._mirror_then(
                found, actor_id, lambda a: self._answer_subscribe(conn, req_id, a)))
            return _DEFERRED
        a.subscribers.add(conn)
        return a.state_msg()[1]

    def _answer_subscribe(self, conn, req_id, a):
        if a is None:
            self.reply(conn, req_id, True, None)
            return
        a.subscribers.add(conn)
        self.reply(conn, req_id, True, a.state_msg()[1])

    def _mirror_then(self, found, actor_id, then):
        """Make a local copy of an actor kept by another node, subscribed to its state
        there; ``then(actor or None)`` once its current state is known."""
        a = self.actors.get(actor_id)
        if a is not None:
            return then(a)
        if found is None:
            return then(None)
        meta, address = found
        try:
            peer = self.cluster.peer(address, None, {})
        except (OSError, transport.AuthenticationError):
            return then(None)
        spec = {"options": {}, "meta": meta, "resources": {}}
        a = ActorInfo(actor_id, spec, None, None)
        a.mirror_of = peer
        a.detached = True        # its lifetime is decided where it is kept
        self.actors[actor_id] = a

        def subscribed(ok, state):
            if ok and state is not None:
                a.state, a.address, a.cause, a.num_restarts, a.died_at = state[1:6]
            elif a.state != "DEAD":
                a.state = "DEAD"
            then(a)
        self.cluster.peer_request(peer, "subscribe_actor", (actor_id,), subscribed)

    def h_kill_actor(self, conn, actor_id, no_restart):
        a = self.actors.get(actor_id)
        if a is None:
            raise ValueError(f"no actor with id {actor_id.hex()}")
        self.kill_actor(a, "ray.kill() was called on it", no_restart=no_restart)
        return True

    def h_get_actor(self, conn, name, namespace):
        info = self.clients[conn]
        ns = namespace if namespace is not None else self.jobs.get(
            info["job_id"], {}).get("config", {}).get("namespace")
        actor_id = self.named.get((ns, name))
        if (actor_id is None or self.actors[actor_id].state == "DEAD") and \
                self.cluster is not None and not conn.info.get("tcp"):
            req_id = self.current_req_id

            def found(entry):
                if entry is None:
                    return self.reply(conn, req_id, False, ValueError(
                        f"Failed to look up actor with name '{name}' in namespace '{ns}'. "
                        "Check the name and namespace (get_actor(name, namespace=...)), and "
                        "that the actor is still alive."))
                actor_id, meta, address = entry
                self._mirror_then((meta, address), actor_id, lambda a: self.reply(
                    conn, req_id, True, (actor_id, meta)) if a is not None else self.reply(
                        conn, req_id, False, ValueError(f"the actor named '{name}' is gone")))
            self.cluster.lookup_actor(name, ns, found)
            return _DEFERRED
        if actor_id is None or self.actors[actor_id].state == "DEAD":
            raise ValueError(f"Failed to look up actor with name '{name}' in namespace "
                             f"'{ns}'. Check the name and namespace (get_actor(name, "
                             "namespace=...)), and that the actor is still alive.")
        self.objects.borrow(token_oid(actor_id), info["client_id"])
        return actor_id, self.actors[actor_id].meta

    def h_list_named_actors(self, conn, all_namespaces):
        ns = self.jobs.get(self.clients[conn]["job_id"], {}).get("config", {}).get("namespace")
        out = []
        for (n, name), aid in self.named.items():
            if self.actors[aid].state == "DEAD":
                continue
            if all_namespaces:
                out.append({"name": name, "namespace": n})
            elif n == ns:
                out.append(name)
        return out

    def h_list_actors(self, conn):
        return [{"actor_id": a.actor_id.hex(), "class_name": a.meta.get("class_name"),
                 "state": a.state, "name": a.name or "", "namespace": a.namespace,
                 "pid": a.worker.pid if a.worker else None,
                 "num_restarts": a.num_restarts} for a in self.actors.values()]

    # ----------------------------------------------------------- placement groups
    def h_create_pg(self, conn, pg_id, bundles, strategy, name, lifetime):
        job_id = self.clients[conn].get("job_id")
        pg = sched.PlacementGroupState(pg_id, bundles, strategy, name, lifetime,
                                       owner=job_id)
        if self.cluster is not None and not conn.info.get("tcp"):
            plan = self.cluster.plan_bundles(bundles, strategy)
            if plan is not None and any(r.node_id != self.node_id for r in plan):
                return self.create_pg_across_nodes(pg_id, bundles, strategy, name,
                                                   lifetime, job_id, plan)
            if plan is None:
                # Not now: it stays PENDING here and is planned again over the nodes
                # at every change of the cluster view (replan_pgs).
                pg.replan = True
                if self.cluster.plan_bundles(bundles, strategy, key="total") is None:
                    self.push(conn, "warning", (
                        f"Warning: placement group {name or pg_id.hex()} with bundles "
                        f"{bundles} and strategy {strategy} cannot be placed on this "
                        f"cluster as it is ({len(self.cluster.view.alive())} live node(s), "
                        f"resources {self.cluster.view.total()}); it stays pending until "
                        "nodes that fit it join.",))
                self.sched.create_pg(pg)
                return True
        if self.cluster is not None and conn.info.get("tcp"):
            pg.strategy = "PACK"   # this node's share of a group placed by another node
        if not self.sched.pg_feasible(pg):
            self.push(conn, "warning", (
                f"Warning: placement group {name or pg_id.hex()} with bundles {bundles} and "
                f"strategy {strategy} cannot be placed on this cluster (resources "
                f"{self.sched.total}, {self.sched.num_nodes} node(s)); it stays pending.",))
        self.sched.create_pg(pg)
        self.schedule()
        return True

    def create_pg_across_nodes(self, pg_id, bundles, strategy, name, lifetime, job_id, plan):
        """Bundles on several nodes: ours reserved here, the others by their nodes
        (an empty bundle stands in for each of those here); ready once all confirm."""
        local = [dict(b) if r.node_id == self.node_id else {} for b, r in zip(bundles, plan)]
        pg = sched.PlacementGroupState(pg_id, local, strategy, name, lifetime, owner=job_id)
        pg.strategy = "PACK"   # the local share; the plan already honoured the strategy
        pg.shown = ([dict(b) for b in bundles], strategy)
        job = self.jobs.get(job_id, {})
        by_node = collections.defaultdict(dict)
        for i, (b, r) in enumerate(zip(bundles, plan)):
            if r.node_id != self.node_id:
                by_node[r.node_id][i] = (b, r)
        for node_id, items in by_node.items():
            rec = next(iter(items.values()))[1]
            conn = self.cluster.peer(rec.address, job_id, job.get("config") or {})
            share = [dict(items[i][0]) if i in items else {} for i in range(len(bundles))]
            for i, (b, _) in items.items():
                pg.remote[i] = (node_id, rec.address, conn)
                sched.subtract(rec.available, b)
            pg.remote_pending += 1
            def created(ok, value, pg=pg, conn=conn):
                if not ok:
                    return self.on_remote_bundles(pg, ok, value)
                # Reserved there once placed there: wait for it.
                self.cluster.peer_request(conn, "wait_pg", (pg.pg_id,),
                                          lambda ok, v, pg=pg: self.on_remote_bundles(pg, ok, v))
            self.cluster.peer_request(conn, "create_pg", (pg_id, share, "PACK", name, None),
                                      created)
        self.sched.create_pg(pg)
        self.schedule()
        return True

    def on_remote_bundles(self, pg, ok, value):
        if self.sched.pgs.get(pg.pg_id) is not pg:
            return   # removed meanwhile
        if not ok:
            logging.getLogger("minray.node").warning("a node refused bundles of placement group "
                                                 "%s: %r", pg.pg_id.hex(), value)
            return
        pg.remote_pending -= 1
        self.schedule()

    def h_wait_pg(self, conn, pg_id):
        req_id = self.current_req_id
        pg = self.sched.pgs.get(pg_id)
        if pg is None:
            raise ValueError(f"placement group {pg_id.hex()} does not exist (removed?)")
        if pg.state == "CREATED" and not pg.remote_pending:
            return True
        self.pg_waiters[pg_id].append((conn, req_id))
        return _DEFERRED

    def h_remove_pg(self, conn, pg_id):
        pg = self.sched.remove_pg(pg_id)
        if pg is None:
            return False
        for peer in {where[2] for where in pg.remote.values()}:
            self.cluster.peer_request(peer, "remove_pg", (pg_id,))
        for a in list(self.actors.values()):
            if a.pg and a.pg[0] == pg_id and a.state != "DEAD":
                self.kill_actor(a, "its placement group was removed", no_restart=True)
        for w in list(self.workers.values()):
            if w.charge and w.charge[0] == "pg" and w.charge[1] == pg_id:
                w.charge = None
                self.kill_worker(w)
        for c, req_id in self.pg_waiters.pop(pg_id, []):
            self.reply(c, req_id, False, ValueError("the placement group was removed"))
        self.schedule()
        return True

    def h_pg_table(self, conn, pg_id):
        def row(pg):
            bundles, strategy = pg.shown or (pg.bundles, pg.strategy)
            state = "PENDING" if pg.remote_pending and pg.state == "CREATED" else pg.state
            return {"placement_group_id": pg.pg_id.hex(), "name": pg.name,
                    "bundles": {i: dict(b) for i, b in enumerate(bundles)},
                    "strategy": strategy, "state": state}
        if pg_id is not None:
            pg = self.sched.pgs.get(pg_id)
            return row(pg) if pg else {"placement_group_id": pg_id.hex(), "state": "REMOVED"}
        return {pg.pg_id.hex(): row(pg) for pg in self.sched.pgs.values()}

    # ---------------------------------------------------------------- KV, info
    def h_kv_put(self, conn, key, value, overwrite):
        if not overwrite and key in self.kv:
            return False
        self.kv[key] = value
        return True

    def h_kv_get(self, conn, key):
        return self.kv.get(key)

    def h_kv_del(self, conn, key):
        return self.kv.pop(key, None) is not None

    def h_kv_keys(self, conn, prefix):
        return [k for k in self.kv if k.startswith(prefix)]

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

    # ------------------------------------------------------------------- logs
    def poll_logs(self):
        by_job = collections.defaultdict(list)
        for w in list(self.workers.values()):
            self._read_log(w, by_job)
        for job_id, records in by_job.items():
            job = self.jobs.get(job_id)
            if job and job["end"] is None and job.get("config", {}).get("log_to_driver", True):
                self.push(job["driver"], "logs", (records,))
        if not self.stopping:
            self.loop.call_later(LOG_POLL_S, self.poll_logs)

    def h_flush_logs(self, conn):
        """A driver is about to leave: send it what its workers wrote since the last poll."""
        job_id = self.clients.get(conn, {}).get("job_id")
        by_job = collections.defaultdict(list)
        for w in list(self.workers.values()):
            if w.job_id == job_id:
                self._read_log(w, by_job)
        records = by_job.get(job_id)
        job = self.jobs.get(job_id)
        if records and job and job.get("config", {}).get("log_to_driver", True):
            self.push(conn, "logs", (records,))
        return True

    def flush_log(self, w):
        by_job = collections.defaultdict(list)
        self._read_log(w, by_job)
        for job_id, records in by_job.items():
            job = self.jobs.get(job_id)
            if job and job["end"] is None:
                self.push(job["driver"], "logs", (records,))

    def _read_log(self, w, by_job):
        for i, path in enumerate((w.log_out, w.log_err)):
            try:
                size = os.path.getsize(path)
            except OSError:
                continue
            if size <= w.log_pos[i]:
                continue
            with open(path, "rb") as f:
                f.seek(w.log_pos[i])
                data = f.read(min(size - w.log_pos[i], 1 << 20))
            cut = data.rfind(b"\n")
            if cut < 0:
                if len(data) < (1 << 16) and w.state != "dead":
                    continue
                cut = len(data) - 1
            data = data[:cut + 1]
            w.log_pos[i] += len(data)
            lines = []
            for line in data.decode("utf-8", "replace").split("\n")[:-1]:
                if line.startswith(TASK_NAME_MARKER):
                    if lines:
                        by_job[w.job_id].append((w.pid, w.task_name[i], i == 1, lines))
                        lines = []
                    w.task_name[i] = line[len(TASK_NAME_MARKER):]
                    continue
                lines.append(line)
            if lines:
                by_job[w.job_id].append((w.pid, w.task_name[i], i == 1, lines))

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


_DEFERRED = object()
_TOKEN_SUFFIX = ACTOR_TOKEN_INDEX.to_bytes(4, "big")


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


class _ZygoteReader:
    """Reads the zygote's socket (length-prefixed pickles, not frames)."""

    def __init__(self, nm):
        self.nm = nm

    def on_readable(self):
        nm = self.nm
        try:
            data = nm.zygote.sock.recv(1 << 16)
        except BlockingIOError:
            return
        if not data:
            if not nm.stopping:
                logging.getLogger("minray.node").error("the worker template process died; "
                                                   "shutting down")
                nm.shutdown()
            return
        for msg in nm.zreader.feed(data):
            nm.on_zygote_msg(msg)


def _zygote_frame(msg):
    import pickle
    data = pickle.dumps(msg, 5)
    return zygote._LEN.pack(len(data)) + data


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
