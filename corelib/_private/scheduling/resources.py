"""Resource accounting and lease granting for one node: pure logic, no I/O.

    lease requests --> queue (FIFO, per request) --> grant when resources fit
    placement groups reserve bundles out of the node's resources; a request
    that names a bundle is charged against that bundle instead.

The node manager feeds events in (``request``, ``release``, ``create_pg`` ...)
and reads grants out of ``schedule()``; tests drive it without processes.
"""

from __future__ import annotations

import collections
from minray._private.named import NamedTuple

from minray._ext import resources as _resources

# The arithmetic on resource dicts is compiled (minray._ext.resources, with a
# pure-Python twin): every lease, release and placement decision pays it.
EPS = _resources.EPS
fits = _resources.fits
subtract = _resources.subtract
add = _resources.add
total_of = _resources.total


class NodeCharge(NamedTuple):
    """What a lease holds out of the node's own resources.

    ``kind`` comes first so that the old tuple layout ("node", resources, gpus)
    still reads the same; new code uses the names."""
    kind: str              # "node"
    resources: dict
    gpus: tuple            # ((gpu index, share), ...)


class BundleCharge(NamedTuple):
    """What a lease holds out of one placement-group bundle."""
    kind: str              # "pg"
    pg_id: bytes
    index: int
    resources: dict
    gpus: tuple


class LeaseKey(NamedTuple):
    """A task lease request's key in the queue."""
    seq: int
    kind = "lease"


class ActorKey(NamedTuple):
    """An actor's lease request (one per restart) in the queue."""
    actor_id: bytes
    restarts: int
    kind = "actor"


class LeasePayload(NamedTuple):
    """What the node manager keeps with a task lease request to answer it."""
    req_id: int
    job_id: Any
    env_key: Any
    env_vars: Optional[dict]


class RemoteBundle(NamedTuple):
    """A bundle of a placement group reserved on another node."""
    node_id: str
    address: str     # "ip:port" of that node's manager
    conn: Any        # the peer connection to it


def feasible(total, pgs, resources, pg):
    """Whether a node with ``total`` (and placement groups ``pgs``) could ever
    run a request for ``resources`` (in bundle ``pg``: (pg_id, index) or None)."""
    if pg is not None:
        group = pgs.get(pg[0])
        if group is None:
            return False
        idx = pg[1]
        bundles = group.bundles if idx < 0 else group.bundles[idx:idx + 1]
        return any(fits(b, resources) for b in bundles)
    return fits(total, resources)


class LeaseRequest:
    __slots__ = ("key", "resources", "pg", "owner", "payload", "warned")

    def __init__(self, key, resources, pg=None, owner=None, payload=None):
        self.key = key              # unique per request (LeaseKey, ActorKey, ...)
        self.resources = resources  # {"CPU": 1.0, ...}
        self.pg = pg                # None or (pg_id, bundle_index); -1 = any bundle
        self.owner = owner
        self.payload = payload
        self.warned = False


class PlacementGroupState:
    __slots__ = ("pg_id", "bundles", "strategy", "name", "state", "available",
                 "waiters", "lifetime", "owner", "remote", "remote_pending", "replan",
                 "shown")

    def __init__(self, pg_id, bundles, strategy, name="", lifetime=None, owner=None):
        self.pg_id = pg_id
        self.bundles = [dict(b) for b in bundles]
        self.strategy = strategy
        self.name = name
        self.state = "PENDING"
        self.available = [dict(b) for b in bundles]
        self.waiters = []
        self.lifetime = lifetime
        self.owner = owner
        # Many nodes: bundle index -> RemoteBundle for bundles reserved on other
        # nodes (their entries here are empty), and how many of those reservations
        # are not confirmed yet.
        self.remote = {}
        self.remote_pending = 0
        # Many nodes: no plan over the nodes fits it yet. The node manager plans it
        # again whenever the cluster view changes; meanwhile it is not placed here.
        self.replan = False
        self.shown = None   # (bundles, strategy) as created, when this holds a share


class Scheduler:
    def __init__(self, total, num_nodes=1):
        self.total = dict(total)
        self.available = dict(total)
        # Which GPUs are free, by index (fractions for fractional requests).
        self.gpu_free = [1.0] * int(total.get("GPU", 0))
        self.queue = collections.OrderedDict()
        self.pgs = {}
        self.num_nodes = num_nodes

    # -- leases ------------------------------------------------------------
    def feasible(self, req):
        return feasible(self.total, self.pgs, req.resources, req.pg)

    def request(self, req):
        self.queue[req.key] = req

    def cancel(self, key):
        return self.queue.pop(key, None)

    def try_acquire(self, req):
        """Charge ``req`` if it fits now. Returns the charge (to release later) or None."""
        if req.pg is None:
            if fits(self.available, req.resources):
                subtract(self.available, req.resources)
                return NodeCharge("node", req.resources,
                                  self._take_gpus(req.resources.get("GPU", 0)))
            return None
        pg = self.pgs.get(req.pg[0])
        if pg is None or pg.state != "CREATED":
            return None
        idxs = range(len(pg.bundles)) if req.pg[1] < 0 else [req.pg[1]]
        for i in idxs:
            if i < len(pg.available) and fits(pg.available[i], req.resources):
                subtract(pg.available[i], req.resources)
                return BundleCharge("pg", req.pg[0], i, req.resources,
                                    self._take_gpus(req.resources.get("GPU", 0)))
        return None

    def _take_gpus(self, amount):
        """Pick GPU indices for ``amount`` GPUs: whole ones, or a share of one."""
        if amount <= EPS or not self.gpu_free:
            return ()
        if amount < 1:
            # Best fit: pack shares onto the fullest GPU that still has room.
            fitting = [i for i, f in enumerate(self.gpu_free) if f + EPS >= amount]
            if not fitting:
                return ()
            best = min(fitting, key=lambda i: self.gpu_free[i])
            self.gpu_free[best] -= amount
            return ((best, amount),)
        ids = [i for i, f in enumerate(self.gpu_free) if f >= 1 - EPS][:int(round(amount))]
        for i in ids:
            self.gpu_free[i] -= 1.0
        return tuple((i, 1.0) for i in ids)

    def _give_gpus(self, gpus):
        for i, share in gpus:
            if i < len(self.gpu_free):
                self.gpu_free[i] = min(1.0, self.gpu_free[i] + share)

    @staticmethod
    def gpu_ids(charge):
        """The GPU indices a charge holds (for CUDA_VISIBLE_DEVICES)."""
        if not charge:
            return []
        return [i for i, _ in charge.gpus]

    def release(self, charge):
        if charge is None:
            return
        self._give_gpus(charge.gpus)
        if charge.kind == "node":
            add(self.available, charge.resources)
        else:
            pg = self.pgs.get(charge.pg_id)
            if pg is not None and pg.state == "CREATED":
                add(pg.available[charge.index], charge.resources)

    def schedule(self, can_start=lambda req: True):
        """Grant every queued request that fits, in order; returns [(req, charge)]."""
        grants = []
        for key in list(self.queue):
            req = self.queue[key]
            if not can_start(req):
                continue
            charge = self.try_acquire(req)
            if charge is not None:
                del self.queue[key]
                grants.append((req, charge))
        return grants

    def infeasible(self):
        return [r for r in self.queue.values() if not self.feasible(r)]

    # -- placement groups ---------------------------------------------------
    def create_pg(self, pg):
        self.pgs[pg.pg_id] = pg
        return self.try_place_pgs()

    def pg_feasible(self, pg):
        if pg.strategy == "STRICT_SPREAD" and len(pg.bundles) > self.num_nodes:
            return False
        return fits(self.total, total_of(pg.bundles))

    def try_place_pgs(self):
        placed = []
        for pg in self.pgs.values():
            if pg.state != "PENDING" or pg.replan or not self.pg_feasible(pg):
                continue
            need = total_of(pg.bundles)
            if fits(self.available, need):
                subtract(self.available, need)
                pg.state = "CREATED"
                placed.append(pg)
        return placed

    def remove_pg(self, pg_id):
        pg = self.pgs.pop(pg_id, None)
        if pg is None:
            return None
        if pg.state == "CREATED":
            add(self.available, total_of(pg.bundles))
        pg.state = "REMOVED"
        return pg
