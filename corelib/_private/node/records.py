"""The node manager's records: workers, actors, pulls, and a few constants.

    WorkerInfo   one worker process: starting | idle | leased | actor | dead
    ActorInfo    one actor this node keeps (or mirrors, or hosts)
    Pull         a copy of an object streaming in from another node
"""

from __future__ import annotations

import time
from minray._private.named import NamedTuple

from minray._private.net import protocol as P

ACTOR_TOKEN_INDEX = 0xFFFFFFFF
LOG_POLL_S = 0.1
IDLE_WORKER_LIMIT_FACTOR = 2
TASK_NAME_MARKER = "\x1e:task_name:"
TRANSFER_CHUNK_BYTES = P.TRANSFER_CHUNK_BYTES

def token_oid(actor_id):
    return actor_id + ACTOR_TOKEN_INDEX.to_bytes(4, "big")


class PendingLease(NamedTuple):
    """A lease granted to a worker still starting: who to answer once it is up."""
    holder: Any      # the client connection that asked
    req_id: int


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
        self.lease = None         # PendingLease while starting, then the holder's conn
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
    __slots__ = ("oid", "conn", "address", "name", "fd", "size", "parts_left", "windows",
                 "error")

    def __init__(self, oid, conn, address, name, fd, size):
        self.oid, self.conn, self.address = oid, conn, address
        self.name, self.fd, self.size = name, fd, size
        self.parts_left, self.windows, self.error = 0, 0, None


# A handler that returns DEFERRED answers later (the node manager sends no reply now).
DEFERRED = object()
TOKEN_SUFFIX = ACTOR_TOKEN_INDEX.to_bytes(4, "big")
