"""The state API's records, in the shapes of Ray 2.x's ``ray.util.state.common``.

Each record is a dataclass that also reads like a dict (``task["state"]``,
``task.get("name")``, ``task.asdict()``), as Ray's do. Columns marked detail are
None unless the query asked for ``detail=True``.
"""

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

DEFAULT_LIMIT = 100


class StateSchema:
    FILTERABLE = frozenset()
    DETAIL = frozenset()

    def asdict(self):
        return dataclasses.asdict(self)

    def __getitem__(self, key):
        return getattr(self, key)

    def __setitem__(self, key, value):
        setattr(self, key, value)

    def get(self, key, default=None):
        return getattr(self, key, default)

    @classmethod
    def columns(cls, detail=True):
        return [f.name for f in dataclasses.fields(cls)
                if detail or f.name not in cls.DETAIL]

    @classmethod
    def from_row(cls, row, detail=False):
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in row.items() if k in names}
        if not detail:
            for k in cls.DETAIL:
                kwargs[k] = None
        return cls(**kwargs)


def _f():
    return field(default=None)


@dataclass
class ActorState(StateSchema):
    actor_id: str = _f()
    class_name: str = _f()
    state: str = _f()
    job_id: str = _f()
    name: Optional[str] = _f()
    node_id: Optional[str] = _f()
    pid: Optional[int] = _f()
    ray_namespace: Optional[str] = _f()
    serialized_runtime_env: Optional[str] = _f()
    required_resources: Optional[dict] = _f()
    death_cause: Optional[dict] = _f()
    is_detached: Optional[bool] = _f()
    placement_group_id: Optional[str] = _f()
    repr_name: Optional[str] = _f()
    num_restarts: int = _f()
    num_restarts_due_to_lineage_reconstruction: int = _f()
    num_restarts_due_to_node_preemption: int = _f()
    call_site: Optional[str] = _f()
    label_selector: Optional[dict] = _f()
    fallback_strategy: Optional[dict] = _f()
    FILTERABLE = frozenset({"actor_id", "class_name", "state", "job_id", "name", "node_id",
                            "pid", "ray_namespace", "placement_group_id", "repr_name"})
    DETAIL = frozenset({"serialized_runtime_env", "required_resources", "death_cause",
                        "is_detached", "placement_group_id", "repr_name", "num_restarts",
                        "num_restarts_due_to_lineage_reconstruction",
                        "num_restarts_due_to_node_preemption", "call_site",
                        "label_selector", "fallback_strategy"})


@dataclass
class TaskState(StateSchema):
    task_id: str = _f()
    attempt_number: int = _f()
    name: str = _f()
    state: str = _f()
    job_id: str = _f()
    actor_id: Optional[str] = _f()
    type: str = _f()
    func_or_class_name: str = _f()
    parent_task_id: Optional[str] = _f()
    node_id: Optional[str] = _f()
    worker_id: Optional[str] = _f()
    worker_pid: Optional[int] = _f()
    error_type: Optional[str] = _f()
    language: Optional[str] = _f()
    required_resources: Optional[dict] = _f()
    runtime_env_info: Optional[dict] = _f()
    placement_group_id: Optional[str] = _f()
    events: Optional[list] = _f()
    profiling_data: Optional[dict] = _f()
    creation_time_ms: Optional[int] = _f()
    start_time_ms: Optional[int] = _f()
    end_time_ms: Optional[int] = _f()
    task_log_info: Optional[dict] = _f()
    error_message: Optional[str] = _f()
    is_debugger_paused: Optional[bool] = _f()
    call_site: Optional[str] = _f()
    FILTERABLE = frozenset({"task_id", "attempt_number", "name", "state", "job_id",
                            "actor_id", "type", "func_or_class_name", "parent_task_id",
                            "node_id", "worker_id", "worker_pid", "error_type", "language",
                            "placement_group_id", "is_debugger_paused"})
    DETAIL = frozenset({"language", "required_resources", "runtime_env_info",
                        "placement_group_id", "events", "profiling_data", "creation_time_ms",
                        "start_time_ms", "end_time_ms", "task_log_info", "error_message",
                        "is_debugger_paused", "call_site"})


@dataclass
class NodeState(StateSchema):
    node_id: str = _f()
    node_ip: str = _f()
    is_head_node: bool = _f()
    state: str = _f()
    state_message: Optional[str] = _f()
    node_name: str = _f()
    resources_total: dict = _f()
    labels: dict = _f()
    start_time_ms: Optional[int] = _f()
    end_time_ms: Optional[int] = _f()
    FILTERABLE = frozenset({"node_id", "node_ip", "is_head_node", "state", "node_name"})
    DETAIL = frozenset({"start_time_ms", "end_time_ms"})


@dataclass
class WorkerState(StateSchema):
    worker_id: str = _f()
    is_alive: bool = _f()
    worker_type: str = _f()
    exit_type: Optional[str] = _f()
    node_id: str = _f()
    ip: str = _f()
    pid: int = _f()
    exit_detail: Optional[str] = _f()
    worker_launch_time_ms: Optional[int] = _f()
    worker_launched_time_ms: Optional[int] = _f()
    start_time_ms: Optional[int] = _f()
    end_time_ms: Optional[int] = _f()
    debugger_port: Optional[int] = _f()
    num_paused_threads: Optional[int] = _f()
    FILTERABLE = frozenset({"worker_id", "is_alive", "worker_type", "exit_type", "node_id",
                            "ip", "pid", "debugger_port", "num_paused_threads"})
    DETAIL = frozenset({"exit_detail", "worker_launch_time_ms", "worker_launched_time_ms",
                        "start_time_ms", "end_time_ms", "debugger_port",
                        "num_paused_threads"})


@dataclass
class ObjectState(StateSchema):
    object_id: str = _f()
    object_size: int = _f()
    task_status: str = _f()
    attempt_number: int = _f()
    reference_type: str = _f()
    call_site: str = _f()
    type: str = _f()
    pid: int = _f()
    ip: str = _f()
    FILTERABLE = frozenset({"object_id", "object_size", "task_status", "attempt_number",
                            "reference_type", "call_site", "type", "pid", "ip"})
    DETAIL = frozenset()


@dataclass
class PlacementGroupState(StateSchema):
    placement_group_id: str = _f()
    name: str = _f()
    creator_job_id: str = _f()
    state: str = _f()
    bundles: Optional[list] = _f()
    is_detached: Optional[bool] = _f()
    stats: Optional[dict] = _f()
    FILTERABLE = frozenset({"placement_group_id", "name", "creator_job_id", "state",
                            "is_detached"})
    DETAIL = frozenset({"bundles", "is_detached", "stats"})


@dataclass
class JobState(StateSchema):
    job_id: Optional[str] = _f()
    submission_id: Optional[str] = _f()
    type: str = _f()
    status: str = _f()
    entrypoint: str = _f()
    message: Optional[str] = _f()
    error_type: Optional[str] = _f()
    start_time: Optional[int] = _f()
    end_time: Optional[int] = _f()
    metadata: Optional[dict] = _f()
    runtime_env: Optional[dict] = _f()
    driver_info: Optional[Any] = _f()
    driver_agent_http_address: Optional[str] = _f()
    driver_node_id: Optional[str] = _f()
    driver_exit_code: Optional[int] = _f()
    FILTERABLE = frozenset({"job_id", "submission_id", "type", "status", "entrypoint"})
    DETAIL = frozenset()


SCHEMAS = {"actors": ActorState, "tasks": TaskState, "nodes": NodeState,
           "workers": WorkerState, "objects": ObjectState,
           "placement_groups": PlacementGroupState, "jobs": JobState}


def check_filters(resource, filters):
    """Normalise ``filters`` and refuse a column that cannot be filtered (as Ray)."""
    schema = SCHEMAS[resource]
    out = []
    for f in filters or ():
        if not isinstance(f, (tuple, list)) or len(f) != 3:
            raise ValueError(f"A filter must be a (key, predicate, value) tuple such as "
                             f"('state', '=', 'RUNNING'), got {f!r}.")
        key, pred, value = f
        if pred not in ("=", "!="):
            raise ValueError(f"Unsupported filter predicate {pred!r} in {f!r}: use '=' or "
                             "'!='.")
        if key not in schema.FILTERABLE:
            raise ValueError(f"The given filter column {key} is not supported. Supported "
                             f"filter columns: {sorted(schema.FILTERABLE)}")
        out.append((key, pred, value))
    return out


# ------------------------------------------------------------------ summaries (pure)
def summarize_task_rows(rows):
    """Ray's summarize_tasks() body: counts per function/class name and state."""
    summary = {}
    total_actor_tasks = total_actor_scheduled = 0
    for r in rows:
        key = r.get("func_or_class_name") or r.get("name") or ""
        ent = summary.setdefault(key, {"func_or_class_name": key, "type": r.get("type"),
                                       "state_counts": {}})
        st = r.get("state")
        ent["state_counts"][st] = ent["state_counts"].get(st, 0) + 1
        if r.get("type") == "ACTOR_TASK":
            total_actor_tasks += 1
        elif r.get("type") == "ACTOR_CREATION_TASK":
            total_actor_scheduled += 1
    return {"cluster": {"summary": summary, "total_tasks": len(rows),
                        "total_actor_tasks": total_actor_tasks,
                        "total_actor_scheduled": total_actor_scheduled,
                        "summary_by": "func_name"}}


def summarize_actor_rows(rows):
    summary = {}
    for r in rows:
        key = r.get("class_name") or ""
        ent = summary.setdefault(key, {"class_name": key, "state_counts": {}})
        st = r.get("state")
        ent["state_counts"][st] = ent["state_counts"].get(st, 0) + 1
    return {"cluster": {"summary": summary, "total_actors": len(rows),
                        "summary_by": "class"}}


def summarize_object_rows(rows):
    summary = {}
    total_size = 0
    for r in rows:
        key = r.get("call_site") or "disabled"
        ent = summary.setdefault(key, {"total_objects": 0, "total_size_mb": 0.0,
                                       "total_num_workers": 0, "total_num_nodes": 0,
                                       "task_state_counts": {},
                                       "task_attempt_number_counts": {},
                                       "ref_type_counts": {}, "_pids": set(),
                                       "_nodes": set()})
        size = max(r.get("object_size") or 0, 0)
        total_size += size
        ent["total_objects"] += 1
        ent["total_size_mb"] += size / 2**20
        ent["_pids"].add(r.get("pid"))
        ent["_nodes"].add(r.get("ip"))
        for col, key2 in (("task_state_counts", r.get("task_status")),
                          ("ref_type_counts", r.get("reference_type")),
                          ("task_attempt_number_counts", str(r.get("attempt_number")))):
            ent[col][key2] = ent[col].get(key2, 0) + 1
    for ent in summary.values():
        ent["total_num_workers"] = len(ent.pop("_pids"))
        ent["total_num_nodes"] = len(ent.pop("_nodes"))
    return {"cluster": {"summary": summary, "total_objects": len(rows),
                        "total_size_mb": total_size / 2**20, "callsite_enabled": False,
                        "summary_by": "callsite"}}
