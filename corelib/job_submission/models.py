"""The job table's types: JobStatus, JobType, DriverInfo, JobDetails."""

import dataclasses
import enum
from typing import Any, Dict, Optional


class JobStatus(str, enum.Enum):
    """Where a submitted job is in its life."""

    PENDING = "PENDING"        # accepted; its runtime_env is being set up
    RUNNING = "RUNNING"        # the entrypoint is running
    STOPPED = "STOPPED"        # stopped by stop_job (or the head shut down)
    SUCCEEDED = "SUCCEEDED"    # the entrypoint exited with 0
    FAILED = "FAILED"          # it exited with another code, or could not start

    def __str__(self):
        return self.value

    def is_terminal(self):
        return self in (JobStatus.STOPPED, JobStatus.SUCCEEDED, JobStatus.FAILED)


class JobType(str, enum.Enum):
    SUBMISSION = "SUBMISSION"
    DRIVER = "DRIVER"

    def __str__(self):
        return self.value


@dataclasses.dataclass
class DriverInfo:
    id: Optional[str] = None
    node_ip_address: Optional[str] = None
    pid: Optional[str] = None


@dataclasses.dataclass
class JobDetails:
    """One job, as the head's job server reports it. Times are ms since the epoch."""

    type: JobType = JobType.SUBMISSION
    entrypoint: str = ""
    status: JobStatus = JobStatus.PENDING
    job_id: Optional[str] = None
    submission_id: Optional[str] = None
    driver_info: Optional[DriverInfo] = None
    message: Optional[str] = None
    error_type: Optional[str] = None
    start_time: Optional[int] = None
    end_time: Optional[int] = None
    metadata: Dict[str, str] = dataclasses.field(default_factory=dict)
    runtime_env: Dict[str, Any] = dataclasses.field(default_factory=dict)
    driver_agent_http_address: Optional[str] = None
    driver_node_id: Optional[str] = None
    driver_exit_code: Optional[int] = None
    entrypoint_num_cpus: Optional[float] = None
    entrypoint_num_gpus: Optional[float] = None
    entrypoint_memory: Optional[int] = None
    entrypoint_resources: Optional[Dict[str, float]] = None

    @classmethod
    def from_dict(cls, data):
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in data.items() if k in names}
        kw["status"] = JobStatus(kw.get("status", "PENDING"))
        kw["type"] = JobType(kw.get("type", "SUBMISSION"))
        if isinstance(kw.get("driver_info"), dict):
            kw["driver_info"] = DriverInfo(**{k: v for k, v in kw["driver_info"].items()
                                              if k in ("id", "node_ip_address", "pid")})
        kw["metadata"] = kw.get("metadata") or {}
        kw["runtime_env"] = kw.get("runtime_env") or {}
        return cls(**kw)

    def dict(self):
        out = dataclasses.asdict(self)
        out["status"], out["type"] = self.status.value, self.type.value
        return out


# Ray's name for the stored record; the fields are the same here.
JobInfo = JobDetails
