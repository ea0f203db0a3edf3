"""The state API: what runs where, as Ray 2.x's ``ray.util.state`` reports it.

    from minray.util.state import list_tasks, list_actors, summarize_tasks, get_log
    list_tasks(filters=[("state", "=", "RUNNING")], limit=10)
    summarize_tasks()["cluster"]["summary"]["f"]["state_counts"]   # {"FINISHED": 4}

Every call is one ``state_query`` request to the node manager (see
minray/_private/state_service.py); task and object queries first make every
process flush its buffered task events, so what just ran is in the answer.
Inside a driver the state API uses its connection; elsewhere pass ``address``
(a session directory, or "auto" for the newest node started with ``minray start``).
The CLI (``minray list tasks`` ...) is a thin layer over these functions (cli.py).
"""

import fnmatch
import os
import re
import time

from ._client import DEFAULT_TIMEOUT_S, StateApiError, connect
from .common import (DEFAULT_LIMIT, SCHEMAS, ActorState, JobState, NodeState, ObjectState,
                     PlacementGroupState, TaskState, WorkerState, check_filters,
                     summarize_actor_rows, summarize_object_rows, summarize_task_rows)

__all__ = [
    "list_actors", "list_tasks", "list_nodes", "list_objects", "list_jobs",
    "list_placement_groups", "list_workers", "get_actor", "get_task", "get_node",
    "get_placement_group", "get_worker", "get_objects", "get_job", "summarize_tasks",
    "summarize_actors", "summarize_objects", "list_logs", "get_log", "StateApiError",
    "report_library_state",
    "ActorState", "TaskState", "NodeState", "ObjectState", "WorkerState", "JobState",
    "PlacementGroupState",
]


def _list(resource, address, filters, limit, timeout, detail, raise_on_missing_output):
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 0):
        raise ValueError(f"limit must be a non-negative int, got {limit!r}.")
    filters = check_filters(resource, filters)
    client = connect(address, timeout)
    try:
        reply = client.query(resource, {"filters": filters, "limit": limit}, timeout=timeout)
    finally:
        client.close()
    schema = SCHEMAS[resource]
    return [schema.from_row(r, detail) for r in reply["result"]]


def list_actors(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=DEFAULT_TIMEOUT_S,
                detail=False, raise_on_missing_output=True, _explain=False):
    """Actors of the cluster (every state, DEAD ones included) as ActorState records.

    Example::

        alive = list_actors(filters=[("state", "=", "ALIVE")])
        print(alive[0].class_name, alive[0]["pid"])
    """
    return _list("actors", address, filters, limit, timeout, detail, raise_on_missing_output)


def list_tasks(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=DEFAULT_TIMEOUT_S,
               detail=False, raise_on_missing_output=True, _explain=False):
    """Tasks (normal tasks, actor calls, actor constructors) as TaskState records.

    A record's state is PENDING_ARGS_AVAIL, PENDING_NODE_ASSIGNMENT,
    SUBMITTED_TO_WORKER, RUNNING, FINISHED or FAILED. ``detail=True`` adds the
    timestamps (``start_time_ms``, ``end_time_ms``), ``events`` and ``error_message``.

    Example::

        ray.get(f.remote())
        [t] = list_tasks(filters=[("func_or_class_name", "=", "f")])
        assert t.state == "FINISHED"
    """
    return _list("tasks", address, filters, limit, timeout, detail, raise_on_missing_output)


def list_nodes(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=DEFAULT_TIMEOUT_S,
               detail=False, raise_on_missing_output=True, _explain=False):
    """Nodes of the cluster as NodeState records.

    Example::

        [head] = list_nodes(filters=[("is_head_node", "=", True)])
    """
    return _list("nodes", address, filters, limit, timeout, detail, raise_on_missing_output)


def list_objects(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=DEFAULT_TIMEOUT_S,
                 detail=False, raise_on_missing_output=True, _explain=False):
    """Objects referenced by drivers and workers, as ObjectState records.

    Example::

        ref = ray.put(np.zeros(10**6))
        [o] = list_objects(filters=[("object_id", "=", ref.hex())])
        assert o.object_size >= 8 * 10**6
    """
    return _list("objects", address, filters, limit, timeout, detail, raise_on_missing_output)


def list_jobs(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=DEFAULT_TIMEOUT_S,
              detail=False, raise_on_missing_output=True, _explain=False):
    """Jobs: drivers connected to the node (type DRIVER) and jobs submitted with
    ``minray job submit`` (type SUBMISSION).

    Example::

        running = list_jobs(filters=[("status", "=", "RUNNING")])
    """
    return _list("jobs", address, filters, limit, timeout, detail, raise_on_missing_output)


def list_placement_groups(address=None, filters=None, limit=DEFAULT_LIMIT,
                          timeout=DEFAULT_TIMEOUT_S, detail=False,
                          raise_on_missing_output=True, _explain=False):
    """Placement groups as PlacementGroupState records.

    Example::

        pg = placement_group([{"CPU": 1}]); ray.get(pg.ready())
        assert list_placement_groups()[0].state == "CREATED"
    """
    return _list("placement_groups", address, filters, limit, timeout, detail,
                 raise_on_missing_output)


def list_workers(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=DEFAULT_TIMEOUT_S,
                 detail=False, raise_on_missing_output=True, _explain=False):
    """Worker and driver processes as WorkerState records.

    Example::

        alive = list_workers(filters=[("is_alive", "=", True)])
    """
    return _list("workers", address, filters, limit, timeout, detail, raise_on_missing_output)


def _get_one(resource, key, id, address, timeout):
    if not isinstance(id, str) or not id:
        raise ValueError(f"The id must be a non-empty hex string, got {id!r}.")
    rows = _list(resource, address, [(key, "=", id)], None, timeout, True, True)
    return rows


def get_actor(id, address=None, timeout=DEFAULT_TIMEOUT_S, _explain=False):
    """The ActorState of actor ``id`` (hex), or None.

    Example::

        a = Counter.remote()
        assert get_actor(a._actor_id.hex()).state in ("PENDING_CREATION", "ALIVE")
    """
    rows = _get_one("actors", "actor_id", id, address, timeout)
    return rows[0] if rows else None


def get_task(id, address=None, timeout=DEFAULT_TIMEOUT_S, _explain=False):
    """The TaskState of task ``id`` (hex, or an ObjectRef it returned), or None.

    Example::

        ref = f.remote(); ray.get(ref)
        assert get_task(ref).state == "FINISHED"
    """
    if hasattr(id, "task_id") and callable(getattr(id, "task_id")):
        tid = id.task_id()
        id = tid.hex() if hasattr(tid, "hex") else str(tid)
    rows = _get_one("tasks", "task_id", id, address, timeout)
    if not rows:
        return None
    return rows[0] if len(rows) == 1 else rows


def get_node(id, address=None, timeout=DEFAULT_TIMEOUT_S, _explain=False):
    """The NodeState of node ``id``, or None.

    Example::

        me = get_node(ray.get_runtime_context().get_node_id())
    """
    rows = _get_one("nodes", "node_id", id, address, timeout)
    return rows[0] if rows else None


def get_placement_group(id, address=None, timeout=DEFAULT_TIMEOUT_S, _explain=False):
    """The PlacementGroupState of placement group ``id``, or None."""
    rows = _get_one("placement_groups", "placement_group_id", id, address, timeout)
    return rows[0] if rows else None


def get_worker(id, address=None, timeout=DEFAULT_TIMEOUT_S, _explain=False):
    """The WorkerState of worker ``id``, or None."""
    rows = _get_one("workers", "worker_id", id, address, timeout)
    return rows[0] if rows else None


def get_objects(id, address=None, timeout=DEFAULT_TIMEOUT_S, _explain=False):
    """Every ObjectState entry of object ``id`` (a list, as Ray)."""
    return _get_one("objects", "object_id", id, address, timeout)


def get_job(id, address=None, timeout=DEFAULT_TIMEOUT_S, _explain=False):
    """The JobState of job ``id`` (job id or submission id), or None."""
    rows = [j for j in list_jobs(address, limit=None, timeout=timeout, detail=True)
            if id in (j.job_id, j.submission_id)]
    return rows[0] if rows else None


def summarize_tasks(address=None, timeout=DEFAULT_TIMEOUT_S, raise_on_missing_output=True,
                    _explain=False):
    """Task counts per function (or actor method) and state, as Ray's dict.

    Example::

        s = summarize_tasks()["cluster"]
        print(s["total_tasks"], s["summary"]["f"]["state_counts"])
    """
    rows = [t.asdict() for t in list_tasks(address, limit=None, timeout=timeout)]
    return summarize_task_rows(rows)


def summarize_actors(address=None, timeout=DEFAULT_TIMEOUT_S, raise_on_missing_output=True,
                     _explain=False):
    """Actor counts per class and state.

    Example::

        summarize_actors()["cluster"]["summary"]["Counter"]["state_counts"]  # {"ALIVE": 2}
    """
    rows = [a.asdict() for a in list_actors(address, limit=None, timeout=timeout)]
    return summarize_actor_rows(rows)


def summarize_objects(address=None, timeout=DEFAULT_TIMEOUT_S, raise_on_missing_output=True,
                      _explain=False):
    """Object counts and sizes (grouped by call site; call sites are not recorded,
    so everything is under "disabled", as Ray without RAY_record_ref_creation_sites).

    Example::

        summarize_objects()["cluster"]["total_objects"]
    """
    rows = [o.asdict() for o in list_objects(address, limit=None, timeout=timeout)]
    return summarize_object_rows(rows)


# ------------------------------------------------------------------ logs
def _log_info(address, timeout):
    client = connect(address, timeout)
    try:
        return client.query("logs", {}, timeout=timeout)
    finally:
        client.close()


def list_logs(address=None, node_id=None, node_ip=None, glob_filter=None,
              timeout=DEFAULT_TIMEOUT_S):
    """Log files of the node, by category (worker_out, worker_err, job_driver, other).

    Example::

        logs = list_logs(glob_filter="worker-*")
        print(logs["worker_out"][:3])
    """
    info = _log_info(address, timeout)
    _check_node(info, node_id)
    out = {"worker_out": [], "worker_err": [], "job_driver": [], "other": []}
    for name, _size in info["files"]:
        if glob_filter and not fnmatch.fnmatch(name, glob_filter):
            continue
        if name.startswith("worker-") and name.endswith(".out"):
            out["worker_out"].append(name)
        elif name.startswith("worker-") and name.endswith(".err"):
            out["worker_err"].append(name)
        elif name.startswith("job-driver-"):
            out["job_driver"].append(name)
        else:
            out["other"].append(name)
    return {k: v for k, v in out.items() if v}


def get_log(address=None, node_id=None, node_ip=None, filename=None, actor_id=None,
            task_id=None, pid=None, follow=False, tail=-1, timeout=DEFAULT_TIMEOUT_S,
            suffix="out", encoding="utf-8", errors="strict", submission_id=None,
            attempt_number=0, _interval=None):
    """Yield the text of a log: a file by name, or the log of an actor, a task's
    worker, a worker pid, or a submitted job. ``tail=N``: only the last N lines;
    ``follow=True``: keep yielding what is appended until the file stops growing
    and its process is gone (or the caller stops iterating).

    Example::

        for chunk in get_log(actor_id=actor_id_hex, tail=100):
            print(chunk, end="")
    """
    if suffix not in ("out", "err"):
        raise ValueError(f"suffix must be 'out' or 'err', got {suffix!r}.")
    info = _log_info(address, timeout)
    _check_node(info, node_id)
    path = _log_path(info, filename, actor_id, task_id, pid, suffix, submission_id,
                     address, timeout)
    return _read_log(path, tail, follow, encoding, errors)


def _check_node(info, node_id):
    if node_id is not None and node_id != info["node_id"]:
        raise StateApiError(f"Node {node_id} is not this node ({info['node_id']}); minray "
                            "reads the logs of the node it runs on.")


def _log_path(info, filename, actor_id, task_id, pid, suffix, submission_id, address,
              timeout):
    logs_dir = info["logs_dir"]
    base = None
    if filename is not None:
        name = os.path.basename(filename)
        if name != filename or name in ("", ".", ".."):
            raise ValueError(f"filename must be a file name from list_logs(), got {filename!r}.")
        return os.path.join(logs_dir, name)
    if submission_id is not None:
        return os.path.join(logs_dir, f"job-driver-{submission_id}.log")
    if actor_id is not None:
        base = info["by_actor"].get(actor_id)
        if base is None:
            raise StateApiError(f"No log for actor {actor_id}: it is unknown here or has "
                                "not started a process yet.")
    elif task_id is not None:
        if hasattr(task_id, "hex"):
            task_id = task_id.hex()
        t = get_task(task_id, address, timeout)
        t = t[-1] if isinstance(t, list) else t
        if t is None or not t.worker_id:
            raise StateApiError(f"No log for task {task_id}: it is unknown or has not run.")
        base = info["by_worker"].get(t.worker_id)
        if base is None:
            raise StateApiError(f"Task {task_id} ran in {t.worker_id}, a process that is not "
                                "a worker of this node (a driver's output is its own).")
    elif pid is not None:
        base = info["by_pid"].get(int(pid))
        if base is None:
            raise StateApiError(f"No worker with pid {pid} on this node.")
    else:
        raise ValueError("get_log needs one of filename, actor_id, task_id, pid or "
                         "submission_id.")
    return os.path.join(logs_dir, f"{base}.{suffix}")


_MARKER = "\x1e:task_name:"


def _lines(text):
    # Not str.splitlines(): it also splits at the marker's \x1e (a record separator).
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


def _read_log(path, tail, follow, encoding, errors):
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise StateApiError(f"The log file {os.path.basename(path)} does not exist "
                            "(see list_logs()).") from None
    with f:
        data = f.read()
        lines = [ln for ln in _lines(data.decode(encoding, errors))
                 if not ln.startswith(_MARKER)]
        if tail is not None and tail >= 0:
            lines = lines[-tail:] if tail else []
        if lines:
            yield "".join(lines)
        idle = 0.0
        while follow and idle < 5.0:
            more = f.read()
            if more:
                idle = 0.0
                text = "".join(ln for ln in _lines(more.decode(encoding, errors))
                               if not ln.startswith(_MARKER))
                if text:
                    yield text
            else:
                time.sleep(0.2)
                idle += 0.2


def timeline_events(address=None, timeout=DEFAULT_TIMEOUT_S):
    """Chrome trace "X" events of every task run the node recorded (see minray.timeline)."""
    client = connect(address, timeout)
    try:
        return client.query("timeline", {"limit": None}, timeout=timeout)["result"]
    finally:
        client.close()


LIBRARY_STATE_PREFIX = "__minray_dashboard__:"


def report_library_state(library, value):
    """Publish a library's state (Serve applications, Tune experiments ...) for the
    dashboard, which shows it under ``library``; ``value`` must be JSON-serialisable:
    a list of flat dicts is drawn as a table. The last value reported wins.

    It goes into the node's internal KV store (key ``__minray_dashboard__:<library>``),
    so libraries publish through this public call and the dashboard never imports them.

    Example::

        report_library_state("tune", [{"trial_id": "a1", "status": "RUNNING", "loss": 0.3}])
    """
    import json
    if not isinstance(library, str) or not library:
        raise ValueError(f"library must be a non-empty name, got {library!r}.")
    try:
        text = json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"report_library_state({library!r}, ...): the value must be "
                        f"JSON-serialisable ({exc}).") from None
    from minray._private import state
    client = state.require_client()
    client.call("kv_put", LIBRARY_STATE_PREFIX + library, text, True)
