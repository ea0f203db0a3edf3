"""The node manager's state service: rows for the state API, the CLI, the dashboard.

    processes --NOTICE task_events--> StateService.h_task_events --> TaskTable
    state API / CLI / dashboard --REQUEST state_query(resource, options)-->
        StateService.h_state_query: (tasks, objects, timeline: first ask every
        process to flush its task events, wait for them, up to FLUSH_WAIT_S)
        --> rows in Ray 2.x's state-API shapes, filtered and limited --> REPLY
    user metrics --NOTICE metrics_report--> MetricsStore (metrics_store.py)
    on a cluster node that is not the head: both are passed on to the head too

It adds handlers to the node manager's table (``NodeManager.handlers``) and
only reads the node manager's tables; it never changes them.
"""

import collections
import glob
import json
import os
import time

from minray._private.net import protocol as P
from minray._private.observability import task_events as te
from minray._private.net import transport

FLUSH_WAIT_S = 1.0
FRESH = {"tasks", "objects", "timeline", "task_counts", "metrics"}   # need a flush round first


class StateService:
    def __init__(self, nm):
        self.nm = nm
        self.tasks = te.TaskTable()
        self.flush_seq = 0
        self.rounds = {}        # seq -> (waiting conns, [callbacks])
        self.metrics = None     # MetricsStore, made on the first report
        self.handlers = {
            "task_events": self.h_task_events,
            "state_query": self.h_state_query,
            "metrics_report": self.h_metrics_report,
        }

    # ------------------------------------------------------------- events in
    def h_task_events(self, conn, header, events, seq, objects):
        if events:
            self.tasks.apply(header, events)
            self._to_head("task_events", (header, events, None, None))
        if objects is not None:
            conn.info["owned_objects"] = (header, objects)
        if seq is not None:
            rnd = self.rounds.get(seq)
            if rnd is not None:
                rnd[0].discard(conn)
                if not rnd[0]:
                    self._end_round(seq)

    def h_metrics_report(self, conn, header, points):
        if self.metrics is None:
            from minray._private.observability.metrics_store import MetricsStore
            self.metrics = MetricsStore()
        self.metrics.apply(header, points)
        self._to_head("metrics_report", (header, points))

    def _to_head(self, method, args):
        """A node of a cluster passes what its processes report on to the head, so the
        head's state API and dashboard see every node's tasks (within about a second)."""
        cl = self.nm.cluster
        if cl is None or cl.is_head:
            return
        head = cl.head_conn
        if head is not None and not head.closed:
            try:
                head.send(P.NOTICE, (method, args))
            except transport.ConnectionClosed:
                pass

    # ------------------------------------------------------------- queries
    def h_state_query(self, conn, resource, options):
        """``resource``: nodes, actors, tasks, objects, jobs, placement_groups,
        workers, timeline, logs, metrics, cluster; ``options``: {"filters": [(key,
        "=" | "!=", value)], "limit": int}. Replies {"result", "total",
        "num_after_truncation", "num_filtered"} (the shape of Ray's ListApiResponse)."""
        options = dict(options or {})
        builder = getattr(self, "rows_" + str(resource), None)
        if builder is None:
            raise ValueError(f"unknown state resource {resource!r}; expected one of "
                             "nodes, actors, tasks, objects, jobs, placement_groups, "
                             "workers, logs, timeline, metrics, cluster")
        if resource not in FRESH:
            return self._answer(builder, options)
        req_id = self.nm.current_req_id

        def answer():
            try:
                value, ok = self._answer(builder, options), True
            except Exception as exc:   # a bug here must reach the caller, not hang it
                value, ok = exc, False
            self.nm.reply(conn, req_id, ok, value)
        self.flush_round(answer, want_objects=resource == "objects")
        return self.nm_deferred()

    def nm_deferred(self):
        # The node manager's own module (it may run as __main__): its reply-later marker.
        import sys
        return sys.modules[type(self.nm).__module__]._DEFERRED

    def _answer(self, builder, options):
        rows = builder(options)
        if not isinstance(rows, list):
            return rows
        total = len(rows)
        rows = filter_rows(rows, options.get("filters") or ())
        num_filtered = len(rows)
        limit = options.get("limit")
        if limit is not None:
            # "tail": the newest rows (the dashboard's recent tasks), else the first ones.
            rows = rows[-int(limit):] if options.get("tail") and limit else rows[:int(limit)]
        return {"result": rows, "total": total, "num_filtered": num_filtered,
                "num_after_truncation": len(rows)}

    def flush_round(self, then, want_objects=False):
        """Ask every driver and worker to send its buffered task events now; run
        ``then()`` when all have answered or after FLUSH_WAIT_S."""
        self.flush_seq += 1
        seq = self.flush_seq
        waiting = set()
        for conn, info in list(self.nm.clients.items()):
            if info.get("kind") in ("driver", "worker") and not conn.closed:
                waiting.add(conn)
                self.nm.push(conn, "flush_task_events", (seq, want_objects))
        self.rounds[seq] = (waiting, then)
        if not waiting:
            self._end_round(seq)
        else:
            self.nm.loop.call_later(FLUSH_WAIT_S, self._end_round, seq)

    def _end_round(self, seq):
        rnd = self.rounds.pop(seq, None)
        if rnd is not None:
            rnd[1]()

    # ------------------------------------------------------------- rows
    def rows_tasks(self, options):
        return self.tasks.rows()

    def rows_task_counts(self, options):
        return {"states": dict(self.tasks.state_counts()), "counts": dict(self.tasks.counts),
                "dropped": self.tasks.num_dropped}

    def rows_timeline(self, options):
        return self.tasks.trace_events(self.nm.node_ip)

    def rows_nodes(self, options):
        nm = self.nm
        out = []
        for n in nm.h_nodes(None):
            me = n["NodeID"] == nm.node_id
            out.append({
                "node_id": n["NodeID"], "node_ip": n["NodeManagerAddress"],
                "is_head_node": bool(nm.head or nm.cluster is None) if me else False,
                "state": "ALIVE" if n["Alive"] else "DEAD", "state_message": None,
                "node_name": n["NodeName"], "resources_total": n["Resources"],
                "resources_available": (_public(nm.sched.available) if me else None),
                "labels": {"ray.io/node_id": n["NodeID"]},
                "start_time_ms": int(nm.start_time * 1000) if me else None,
                "end_time_ms": None})
        if nm.cluster is not None:
            for row in out:   # the head marks itself
                rec = nm.cluster.view.nodes.get(row["node_id"]) \
                    if hasattr(nm.cluster.view, "nodes") else None
                if rec is not None:
                    row["is_head_node"] = bool(getattr(rec, "is_head", row["is_head_node"]))
        return out

    def rows_actors(self, options):
        nm = self.nm
        out = []
        for a in nm.actors.values():
            opts = a.spec.get("options") or {}
            w = a.worker
            out.append({
                "actor_id": a.actor_id.hex(), "class_name": a.meta.get("class_name"),
                "state": a.state, "job_id": _job_hex(a.job_id), "name": a.name or "",
                "node_id": nm.node_id if (w is not None or a.host is None) else None,
                "pid": w.pid if w is not None else None,
                "ray_namespace": a.namespace,
                "serialized_runtime_env": json.dumps(opts.get("runtime_env") or {}),
                "required_resources": _public(a.spec.get("resources") or {}),
                "death_cause": _death_cause(a) if a.state == "DEAD" else None,
                "is_detached": a.detached,
                "placement_group_id": a.pg[0].hex() if a.pg else None,
                "repr_name": "", "num_restarts": a.num_restarts,
                "num_restarts_due_to_lineage_reconstruction": 0,
                "num_restarts_due_to_node_preemption": 0, "call_site": None,
                "label_selector": None, "fallback_strategy": None})
        return out

    def rows_workers(self, options):
        nm = self.nm
        out = []
        for info in nm.clients.values():
            if info.get("kind") == "driver":
                job = nm.jobs.get(info.get("job_id"), {})
                out.append(_worker_row(info.get("client_id", b"").hex(), True, "DRIVER",
                                       None, nm, info.get("pid"), job.get("start"), None))
        for w in nm.workers.values():
            alive = w.state != "dead"
            exit_type = None
            detail = None
            if not alive:
                killed = nm.oom_kills.get(w.worker_id)
                exit_type = "SYSTEM_ERROR" if killed else "INTENDED_SYSTEM_EXIT"
                detail = killed or _exit_detail(w.exit_status)
            out.append(_worker_row(w.worker_id, alive, "WORKER", exit_type, nm, w.pid,
                                   time.time() - (time.monotonic() - w.started), detail))
        return out

    def rows_jobs(self, options):
        nm = self.nm
        out = []
        for job_id, job in nm.jobs.items():
            cfg = job.get("config") or {}
            env = cfg.get("env_vars") or {}
            out.append({
                "job_id": _job_hex(job_id), "submission_id": None, "type": "DRIVER",
                "status": "RUNNING" if job.get("end") is None else "SUCCEEDED",
                "entrypoint": "", "message": None, "error_type": None,
                "start_time": int(job["start"] * 1000),
                "end_time": int(job["end"] * 1000) if job.get("end") else None,
                "metadata": {}, "runtime_env": {"env_vars": env} if env else {},
                "driver_info": {"id": _job_hex(job_id), "node_ip_address": nm.node_ip,
                                "pid": str(job.get("pid"))},
                "driver_agent_http_address": None, "driver_node_id": nm.node_id,
                "driver_exit_code": None})
        for path in sorted(glob.glob(os.path.join(nm.session_dir, "jobs", "*.json"))):
            try:
                with open(path) as f:
                    rec = json.load(f)
            except (OSError, ValueError):
                continue
            rec = dict(rec)
            rec["type"] = "SUBMISSION"
            rec.setdefault("job_id", rec.get("submission_id"))
            out.append(rec)
        return out

    def rows_placement_groups(self, options):
        nm = self.nm
        out = []
        for pg in nm.sched.pgs.values():
            bundles, strategy = pg.shown or (pg.bundles, pg.strategy)
            state = "PENDING" if pg.remote_pending and pg.state == "CREATED" else pg.state
            out.append({
                "placement_group_id": pg.pg_id.hex(), "name": pg.name or "",
                "creator_job_id": _job_hex(pg.owner), "state": state,
                "bundles": [{"bundle_id": i, "node_id": (pg.remote[i][0] if i in pg.remote
                                                          else nm.node_id),
                             "unit_resources": dict(b)} for i, b in enumerate(bundles)],
                "is_detached": pg.lifetime == "detached", "strategy": strategy,
                "stats": None})
        return out

    def rows_objects(self, options):
        nm = self.nm
        directory = nm.objects.entries
        out = []
        seen = set()
        self.tasks.merge()
        task_states = self.tasks.tasks
        for conn, info in list(nm.clients.items()):
            owned = conn.info.get("owned_objects")
            if not owned or conn.closed:
                continue
            header, objects = owned
            for oid_hex, pending, local_refs, size, in_shm in objects:
                oid = bytes.fromhex(oid_hex)
                e = directory.get(oid)
                if e is not None:
                    size = e.size
                task = task_states.get(oid[:-4])
                seen.add(oid)
                out.append({
                    "object_id": oid_hex, "object_size": size if size is not None else -1,
                    "task_status": (task.state if task else
                                    ("PENDING_NODE_ASSIGNMENT" if pending else "NIL")),
                    "attempt_number": max(task.runs - 1, 0) if task else 0,
                    "reference_type": ("LOCAL_REFERENCE" if local_refs else
                                       "PINNED_IN_MEMORY" if in_shm else "CAPTURED_IN_OBJECT"),
                    "call_site": "disabled",
                    "type": "DRIVER" if header.get("kind") == "driver" else "WORKER",
                    "pid": header.get("pid"), "ip": nm.node_ip,
                    "node_id": nm.node_id, "in_shared_memory": bool(in_shm or e),
                    "spilled": bool(e is not None and e.spill_path)})
        for oid, e in list(directory.items()):
            if oid in seen or len(oid) < 4 or oid[-4:] == b"\xff\xff\xff\xff":
                continue
            out.append({
                "object_id": oid.hex(), "object_size": e.size, "task_status": "NIL",
                "attempt_number": 0,
                "reference_type": "USED_BY_PENDING_TASK" if e.borrowers else "PINNED_IN_MEMORY",
                "call_site": "disabled", "type": "WORKER", "pid": None, "ip": nm.node_ip,
                "node_id": nm.node_id, "in_shared_memory": True,
                "spilled": bool(e.spill_path)})
        return out

    def rows_logs(self, options):
        """{"files": [(name, size)], "logs_dir", "targets": {pid, actor_id, task_id -> file}}."""
        nm = self.nm
        files = []
        for name in sorted(os.listdir(nm.logs_dir)):
            try:
                files.append((name, os.path.getsize(os.path.join(nm.logs_dir, name))))
            except OSError:
                pass
        by_pid = {w.pid: os.path.basename(w.log_out)[:-4] for w in nm.workers.values()
                  if w.pid}
        by_actor = {a.actor_id.hex(): os.path.basename(a.worker.log_out)[:-4]
                    for a in nm.actors.values() if a.worker is not None}
        by_worker = {w.worker_id: os.path.basename(w.log_out)[:-4]
                     for w in nm.workers.values()}
        return {"files": files, "logs_dir": nm.logs_dir, "by_pid": by_pid,
                "by_actor": by_actor, "by_worker": by_worker, "node_id": nm.node_id}

    def rows_cluster(self, options):
        """Totals for the dashboard's header and /metrics."""
        nm = self.nm
        stats = nm.objects.stats()
        actors = collections.Counter(a.state for a in nm.actors.values())
        workers = collections.Counter(w.state for w in nm.workers.values())
        return {"node_id": nm.node_id, "session_dir": nm.session_dir,
                "uptime_s": time.time() - nm.start_time,
                "resources_total": _public(nm.h_cluster_resources(None)),
                "resources_available": _public(nm.h_available_resources(None)),
                "object_store": stats, "actors": dict(actors), "workers": dict(workers),
                "task_states": dict(self.tasks.state_counts()),
                "task_counts": dict(self.tasks.counts), "tasks_dropped": self.tasks.num_dropped,
                "task_events_dropped": self.tasks.num_events_dropped,
                "pending_leases": len(nm.sched.queue),
                "jobs": sum(1 for j in nm.jobs.values() if j.get("end") is None),
                "kv": {k: v for k, v in nm.kv.items()
                       if isinstance(k, (str, bytes)) and _kv_key(k).startswith(LIB_PREFIX)}}

    def rows_metrics(self, options):
        return self.metrics.snapshot() if self.metrics is not None else []


LIB_PREFIX = "__minray_dashboard__:"   # libraries publish their state under this KV prefix


def _kv_key(k):
    return k.decode("utf-8", "replace") if isinstance(k, bytes) else k


def filter_rows(rows, filters):
    """Keep the rows that match every (key, "=" | "!=", value); strings compare
    case-insensitively (as Ray's state API)."""
    if not filters:
        return rows
    checks = []
    for f in filters:
        if len(f) != 3 or f[1] not in ("=", "!="):
            raise ValueError(f"A filter must be (key, '=' or '!=', value), got {f!r}.")
        checks.append((f[0], f[1] == "=", _norm(f[2])))
    return [r for r in rows if all((_norm(r.get(k)) == v) == eq for k, eq, v in checks)]


def _norm(v):
    if isinstance(v, bool):
        return str(v).lower()
    return str(v).lower() if v is not None else "none"


def _public(resources):
    return {k: v for k, v in (resources or {}).items() if not k.startswith("_")}


def _job_hex(job_id):
    return f"{job_id:08x}" if isinstance(job_id, int) else job_id


def _death_cause(a):
    cause = a.cause
    if cause is None:
        return None
    if isinstance(cause, (bytes, bytearray)):
        try:
            import pickle
            exc = pickle.loads(memoryview(cause)[1:])
            text = str(exc)
        except Exception:
            text = "the actor died"
    else:
        text = str(cause)
    return {"actor_died_error_context": {"error_message": text[:2000]}}


def _exit_detail(status):
    if status is None:
        return None
    return f"exit status {status}"


def _worker_row(worker_id, alive, kind, exit_type, nm, pid, started, detail):
    return {"worker_id": worker_id, "is_alive": alive, "worker_type": kind,
            "exit_type": exit_type, "node_id": nm.node_id, "ip": nm.node_ip, "pid": pid,
            "exit_detail": detail,
            "worker_launch_time_ms": int(started * 1000) if started else None,
            "worker_launched_time_ms": int(started * 1000) if started else None,
            "start_time_ms": int(started * 1000) if started else None,
            "end_time_ms": None, "debugger_port": None, "num_paused_threads": None}
