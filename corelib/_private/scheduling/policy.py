"""Cluster policy: where a lease request runs. Pure: no sockets, no clocks.

    LeaseAsk (resources, strategy hint, placement group, argument locations)
        + Here (this node: total, available, placement groups)
        + nodes (the cluster view, node_id -> node; None on one machine)
    --> ClusterPolicy.decide --> RunLocal | Queue | SpillTo(node) | Infeasible(reason)

The node manager's lease handler parses a request into a ``LeaseAsk``, asks
``decide`` and carries the decision out (queue it in the local Scheduler,
answer "ask that node", or fail it); it no longer decides anything itself.

The order of the rules (the first that applies wins):

1. A request that came from another node (``forwarded``), or any request on
   one machine, is never sent on (no ping-pong): skip to 5.
2. A placement-group request goes to the node holding its bundle; "any
   bundle" (-1) stays here while a local bundle has room, else takes the
   nodes of the other bundles in turn.
3. Strategies: SPREAD takes the live nodes with room now in turn (this one
   included); soft NodeAffinity goes to its node when that node has room now.
4. Locality (DEFAULT only): the live node holding the most argument bytes,
   at least ``locality_min_bytes``, runs it when it has room now (ties: the
   less loaded). Otherwise: here when it fits here now; a node with room now
   when this one is busy; any node that can ever run it when this one never
   can.
5. Hard NodeAffinity to a node that is not alive: Infeasible. Otherwise it
   queues here: RunLocal if it fits now, Queue if it waits (``infeasible``
   when this node can never run it: the submitter is warned).

The loops over nodes are the compiled kernels of ``minray._ext.policy``
(pure twin ``policy_py``), passed in as ``kernels`` so tests drive both.

>>> here = Here("a", {"CPU": 1.0}, {"CPU": 0.0})
>>> b = NodeView("b", "10.0.0.2:7000", {"CPU": 4.0}, {"CPU": 4.0})
>>> ClusterPolicy("a").decide(LeaseAsk({"CPU": 1.0}), here, {"a": here, "b": b})
SpillTo(node_id='b', address='10.0.0.2:7000', why='busy here')
"""

from __future__ import annotations

from minray._private.named import NamedTuple

from minray._ext import policy as _kernels
from minray._private.scheduling import placement
from minray._private.scheduling.resources import feasible, fits

DEFAULT = _kernels.DEFAULT
SPREAD = _kernels.SPREAD
AFFINITY_HARD = _kernels.AFFINITY_HARD
AFFINITY_SOFT = _kernels.AFFINITY_SOFT

# Arguments smaller than this in total are cheaper to move than to chase: a
# task goes to the node holding its arguments only from 1 MiB on.
LOCALITY_MIN_BYTES = 1 << 20


# ------------------------------------------------------------------ records in
class NodeView(NamedTuple):
    """One node as the policy sees it (the node manager passes its own records,
    which have the same attributes)."""
    node_id: str
    address: str            # "ip:port" of its node manager
    total: dict
    available: dict
    alive: bool = True
    draining: bool = False


class Here(NamedTuple):
    """This node: its live resource dicts and placement groups."""
    node_id: str
    total: dict
    available: dict
    pgs: Mapping[bytes, Any] = {}   # pg_id -> resources.PlacementGroupState
    address: Optional[str] = None
    alive: bool = True
    draining: bool = False


class PgRef(NamedTuple):
    """A placement group bundle a request names; index -1 is any bundle."""
    pg_id: bytes
    index: int


class ArgLocation(NamedTuple):
    """Where one argument's bytes are: a node, and how many."""
    node_id: str
    size: int


class LeaseAsk(NamedTuple):
    resources: dict
    pg: Optional[PgRef] = None
    args: Tuple[ArgLocation, ...] = ()
    forwarded: bool = False   # sent here by another node: never sent on again


# ------------------------------------------------------------- decisions out
class RunLocal(NamedTuple):
    """Queue it here; it fits now."""
    why: str = "fits here"


class Queue(NamedTuple):
    """Queue it here; it waits for resources. ``infeasible``: this node can
    never run it (warn the submitter; it waits for a node that can)."""
    infeasible: bool = False


class SpillTo(NamedTuple):
    """The submitter should ask the node manager of ``node_id`` instead."""
    node_id: str
    address: str
    why: str


class Infeasible(NamedTuple):
    """Fail the request: no node can ever run it."""
    reason: str


def pg_ref(pg):
    """The wire's (pg_id, index) pair as a PgRef (None stays None)."""
    return None if pg is None else PgRef(pg[0], pg[1])


class ClusterPolicy:
    """The decisions, with the two round-robin counters they keep (SPREAD's
    turn and the "any bundle" turn). Deterministic: same inputs, same answers."""

    def __init__(self, node_id, kernels=None, locality_min_bytes=LOCALITY_MIN_BYTES):
        self.node_id = node_id
        self.k = kernels if kernels is not None else _kernels
        self.locality_min_bytes = locality_min_bytes
        self.spread_rr = -1
        self.pg_rr = -1

    # -- the decision -------------------------------------------------------
    def decide(self, ask, here, nodes):
        """RunLocal / Queue / SpillTo / Infeasible for ``ask`` (see the module doc)."""
        kind, named = self.k.strategy_of(ask.resources)
        if nodes is not None and not ask.forwarded:
            if ask.pg is not None:
                target, why = self.pg_target(ask, here, nodes), "placement group bundle"
            else:
                target, why = self.spill_target(ask, here, nodes, kind, named)
            if target is not None:
                return SpillTo(target.node_id, target.address, why)
        if kind == AFFINITY_HARD:
            missing = self.missing_node(named, here, nodes)
            if missing is not None:
                return Infeasible(
                    f"The task requires node {missing} (NodeAffinitySchedulingStrategy with "
                    "soft=False), which is not part of this cluster. Use a node id from "
                    "ray.nodes(), or soft=True to allow other nodes.")
        if not feasible(here.total, here.pgs, ask.resources, ask.pg):
            return Queue(infeasible=True)
        if ask.pg is None and fits(here.available, ask.resources):
            return RunLocal()
        if ask.pg is not None and _bundle_has_room(here.pgs.get(ask.pg[0]), ask):
            return RunLocal("bundle has room")
        return Queue()

    def missing_node(self, named, here, nodes):
        """The node a hard NodeAffinity names, if no live node is it; else None."""
        if named is None or "_node_id:" + named in here.total:
            return None
        rec = nodes.get(named) if nodes is not None else None
        if rec is None or not rec.alive:
            return named
        return None

    def spill_target(self, ask, here, nodes, kind=None, named=None):
        """(node, why) a request without a placement group should go to, or
        (None, "") when it stays here."""
        res = ask.resources
        if kind is None:
            kind, named = self.k.strategy_of(res)
        if kind == SPREAD:
            return self.spread_target(res, here, nodes), "spread"
        if kind == AFFINITY_SOFT and named != here.node_id:
            rec = nodes.get(named)
            if rec is not None and rec.alive and not rec.draining and \
                    fits(rec.available, res):
                return rec, "soft node affinity"
        if fits(here.total, res):
            if kind == DEFAULT and ask.args:
                rec = self.locality_target(ask, here, nodes)
                if rec is not None:
                    return rec, "locality"
            if fits(here.available, res):
                return None, ""
            return self.free_remote(res, here, nodes), "busy here"
        return self.k.pick_node(nodes.values(), res, here.node_id), "infeasible here"

    def locality_target(self, ask, here, nodes):
        """The other node holding the request's large arguments, if it has room now."""
        node_id = self.k.locality_pick(ask.args, _with_here(nodes, here),
                                       self.locality_min_bytes)
        if node_id is None or node_id == here.node_id:
            return None
        rec = nodes[node_id]
        return rec if fits(rec.available, ask.resources) else None

    def spread_target(self, res, here, nodes):
        """SPREAD: the live nodes with room now, in turn; None on this node's turn."""
        fitting = self.k.fitting_now(_with_here(nodes, here).values(), res)
        pick = placement.spread_pick(fitting, here.node_id, self.spread_rr)
        self.spread_rr = pick.rr
        return pick.node

    def free_remote(self, res, here, nodes):
        """Another node with ``res`` free now, or None."""
        rec = self.k.pick_node(nodes.values(), res, here.node_id)
        if rec is not None and fits(rec.available, res):
            return rec
        return None

    def pg_target(self, ask, here, nodes):
        """The node holding the bundle a request names, if not this one.

        For "any bundle" (index -1): here while a local bundle has room, else
        the nodes holding the group's other bundles in turn (they queue if full).
        """
        pg = here.pgs.get(ask.pg[0])
        if pg is None or not pg.remote:
            return None
        idx = ask.pg[1]
        if idx >= 0:
            where = pg.remote.get(idx)
            return nodes.get(where.node_id) if where is not None else None
        local = [i for i in range(len(pg.bundles)) if i not in pg.remote]
        if any(fits(pg.available[i], ask.resources) for i in local):
            return None
        places = sorted({where.node_id for where in pg.remote.values()})
        self.pg_rr = (self.pg_rr + 1) % len(places)
        return nodes.get(places[self.pg_rr])

    def respill(self, ask, here, nodes):
        """A request queued here: SpillTo a node with room now, or None.

        Asked whenever the cluster view changes. Requests for a placement
        group, forwarded ones and ones that fit here now stay.
        """
        if nodes is None or ask.pg is not None or ask.forwarded or \
                fits(here.available, ask.resources):
            return None
        rec = self.free_remote(ask.resources, here, nodes)
        return SpillTo(rec.node_id, rec.address, "busy here") if rec is not None else None


def _with_here(nodes, here):
    """The cluster view with this node's entry replaced by its live resources."""
    if nodes.get(here.node_id) is here:
        return nodes
    out = dict(nodes)
    out[here.node_id] = here
    return out


def _bundle_has_room(pg, ask):
    if pg is None or pg.state != "CREATED":
        return False
    idxs = range(len(pg.bundles)) if ask.pg[1] < 0 else [ask.pg[1]]
    return any(i < len(pg.available) and fits(pg.available[i], ask.resources)
               for i in idxs)
