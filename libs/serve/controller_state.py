"""The controller's decisions as pure functions: no actors, no sockets, no clocks.

    actions = reconcile(target=3, code_version="v2", config_version="c1", replicas=records)
    # -> [StartReplicas(count=...), StopReplica(replica_id=...), Reconfigure(...)]

The controller actor (controller.py) is the thin shell around these: it feeds in
what it observed (replica records, request counts, the time) and carries out the
instructions that come back.  Rolling updates fall out of ``reconcile``: replicas
of the new code version are started first, and an old replica is stopped only
once a new one is RUNNING to take its place.
"""

import math
from dataclasses import dataclass, field
from typing import Any, List, Optional

STARTING, RUNNING, STOPPING = "STARTING", "RUNNING", "STOPPING"


@dataclass
class ReplicaRecord:
    """What the controller knows about one replica."""
    replica_id: str
    code_version: str
    config_version: str
    state: str = STARTING
    started_at: float = 0.0
    pid: Optional[int] = None
    address: Optional[str] = None
    node_id: str = ""
    actor: Any = None               # the ActorHandle (opaque here)
    ongoing: int = 0                # last reported ongoing requests
    last_ping: float = 0.0
    last_health_check: float = 0.0
    reconfiguring: bool = False
    pinging: bool = False


@dataclass
class StartReplicas:
    count: int


@dataclass
class StopReplica:
    replica_id: str


@dataclass
class Reconfigure:
    replica_id: str


def reconcile(target, code_version, config_version, replicas):
    """Instructions that move ``replicas`` toward ``target`` replicas of ``code_version``.

    - too few replicas of the current code: start the difference;
    - too many: stop the extras, the ones still starting first;
    - replicas of older code stay until enough new ones are RUNNING (rolling update);
    - RUNNING replicas of the current code with an old user_config: reconfigure.
    """
    live = [r for r in replicas if r.state != STOPPING]
    new = [r for r in live if r.code_version == code_version]
    old = [r for r in live if r.code_version != code_version]
    actions: List[Any] = []
    stopped = set()
    if len(new) < target:
        actions.append(StartReplicas(target - len(new)))
    elif len(new) > target:
        # Stop replicas still starting first, then the youngest running ones.
        order = sorted(new, key=lambda r: (r.state == RUNNING, -r.started_at))
        for r in order[:len(new) - target]:
            actions.append(StopReplica(r.replica_id))
            stopped.add(r.replica_id)
    new_running = sum(1 for r in new if r.state == RUNNING and r.replica_id not in stopped)
    keep_old = max(0, target - new_running)
    old_order = sorted(old, key=lambda r: (r.state != RUNNING, r.started_at))
    for r in old_order[keep_old:]:
        actions.append(StopReplica(r.replica_id))
    for r in new:
        if (r.state == RUNNING and r.replica_id not in stopped and not r.reconfiguring
                and r.config_version != config_version):
            actions.append(Reconfigure(r.replica_id))
    return actions


def deployment_status(target, code_version, replicas, failure_message=None,
                      config_version=None):
    """(status, replica_states) of one deployment, in Ray's words."""
    states = {}
    for r in replicas:
        states[r.state] = states.get(r.state, 0) + 1
    if failure_message:
        return "UNHEALTHY", states
    live = [r for r in replicas if r.state != STOPPING]
    running_new = sum(1 for r in live if r.state == RUNNING and r.code_version == code_version)
    configured = all(r.config_version == config_version for r in live
                     if config_version is not None)
    if running_new == target and len(live) == target and configured:
        return "HEALTHY", states
    if running_new > target or len(live) > target:
        return "DOWNSCALING" if all(r.code_version == code_version for r in live) \
            else "UPDATING", states
    return "UPDATING", states


def app_status(deployment_statuses, deleting=False, failure_message=None):
    """An application's status from its deployments' statuses."""
    if deleting:
        return "DELETING"
    if failure_message:
        return "DEPLOY_FAILED"
    if all(s == "HEALTHY" for s in deployment_statuses):
        return "RUNNING"
    if any(s == "UNHEALTHY" for s in deployment_statuses):
        return "UNHEALTHY"
    return "DEPLOYING"


@dataclass
class AutoscaleState:
    """Memory between autoscaling decisions: samples and a pending direction."""
    samples: List[Any] = field(default_factory=list)    # (time, total ongoing requests)
    direction: int = 0
    since: float = 0.0


def autoscale(cfg, current, total_ongoing, now, state):
    """The new target replica count given one more sample of ongoing requests.

    Ray's rule: desired = ceil(mean ongoing over look_back_period_s /
    target_ongoing_requests), clamped to [min_replicas, max_replicas]; a change
    happens only after it was wanted continuously for upscale_delay_s (or
    downscale_delay_s).  Returns (target, state).
    """
    state.samples.append((now, total_ongoing))
    horizon = now - cfg.look_back_period_s
    state.samples = [s for s in state.samples if s[0] >= horizon]
    mean = sum(v for _, v in state.samples) / len(state.samples)
    desired = math.ceil(mean / cfg.target_ongoing_requests - 1e-9) if mean > 0 else 0
    if desired > current and cfg.upscaling_factor:
        desired = current + math.ceil((desired - current) * cfg.upscaling_factor)
    if desired < current and cfg.downscaling_factor:
        desired = current - math.ceil((current - desired) * cfg.downscaling_factor)
    desired = max(cfg.min_replicas, min(cfg.max_replicas, desired))
    if desired == current:
        state.direction = 0
        return current, state
    direction = 1 if desired > current else -1
    if state.direction != direction:
        state.direction, state.since = direction, now
    delay = cfg.upscale_delay_s if direction > 0 else cfg.downscale_delay_s
    if now - state.since >= delay:
        state.direction = 0
        return desired, state
    return current, state
