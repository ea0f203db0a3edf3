"""Bundle placement over the nodes of a cluster: pure functions, no I/O.

    plan_bundles(bundles, strategy, nodes, local_id)  -> [node per bundle] or None
    spread_pick(fitting, local_id, rr)                -> SpreadPick(node or None, rr)

A node is any object with `node_id`, `total`, `available`, `alive` (and
`draining`) attributes: the cluster view's records in the node manager, or
``NodeView`` rows in tests. Nothing here changes a node; the node manager
charges the plan it carries out.

The four placement-group strategies (as Ray 2.60):

    PACK           bundles on as few nodes as possible: this node first, then
                   the others in a fixed order (by id), first fit per bundle
    SPREAD         each bundle on a node no earlier bundle took, while one has
                   room; then any node with room
    STRICT_PACK    every bundle on one node, or not placed
    STRICT_SPREAD  every bundle on a different node, or not placed

>>> from minray._private.scheduling.policy import NodeView
>>> a = NodeView("a", "h:1", {"CPU": 2.0}, {"CPU": 2.0})
>>> b = NodeView("b", "h:2", {"CPU": 2.0}, {"CPU": 2.0})
>>> [n.node_id for n in plan_bundles([{"CPU": 1}] * 2, "STRICT_SPREAD", [a, b], "a")]
['a', 'b']
>>> plan_bundles([{"CPU": 2}] * 2, "STRICT_PACK", [a, b], "a") is None
True
"""

from __future__ import annotations

from minray._private.named import NamedTuple

from minray._private.scheduling.resources import fits, total_of

STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


class SpreadPick(NamedTuple):
    """SPREAD's choice for one request: ``node`` None means this node."""
    node: Optional[Any]
    rr: int


def _usable(nodes):
    return [r for r in nodes if r.alive and not getattr(r, "draining", False)]


def plan_bundles(bundles, strategy, nodes, local_id, key="available"):
    """Which node takes each bundle, by ``strategy``, against each node's
    ``key`` resources ("available": free now; "total": on an idle cluster).

    Returns one node per bundle (the objects passed in), or None when the
    group cannot be placed that way.

    >>> from minray._private.scheduling.policy import NodeView
    >>> a = NodeView("a", "h:1", {"CPU": 1.0}, {"CPU": 1.0})
    >>> b = NodeView("b", "h:2", {"CPU": 4.0}, {"CPU": 4.0})
    >>> [n.node_id for n in plan_bundles([{"CPU": 1}] * 3, "PACK", [b, a], "a")]
    ['a', 'b', 'b']
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown placement strategy {strategy!r}; use one of "
                         f"{', '.join(STRATEGIES)}")
    ordered = sorted(_usable(nodes), key=lambda r: (r.node_id != local_id, r.node_id))
    free = {r.node_id: dict(getattr(r, key)) for r in ordered}
    if strategy == "STRICT_PACK":
        need = total_of(bundles)
        for r in ordered:
            if fits(free[r.node_id], need):
                return [r] * len(bundles)
        return None
    plan = []
    used = set()
    for b in bundles:
        if strategy == "PACK":
            order = ordered
        else:   # SPREAD / STRICT_SPREAD: nodes no bundle took yet come first
            order = [r for r in ordered if r.node_id not in used]
            if strategy == "SPREAD":
                order += [r for r in ordered if r.node_id in used]
        for r in order:
            room = free[r.node_id]
            if fits(room, b):
                for k, v in b.items():
                    room[k] = room.get(k, 0.0) - v
                plan.append(r)
                used.add(r.node_id)
                break
        else:
            return None
    return plan


def spread_pick(fitting, local_id, rr):
    """SPREAD for tasks: the nodes with room now (``fitting``, sorted by id),
    taken in turn. ``rr`` is the turn counter the caller keeps.

    >>> from minray._private.scheduling.policy import NodeView
    >>> rows = [NodeView(i, "", {}, {}) for i in "abc"]
    >>> pick = spread_pick(rows, "a", -1); pick.node, pick.rr
    (None, 0)
    >>> spread_pick(rows, "a", pick.rr).node.node_id
    'b'
    """
    if not fitting:
        return SpreadPick(None, rr)
    rr = (rr + 1) % len(fitting)
    chosen = fitting[rr]
    return SpreadPick(None if chosen.node_id == local_id else chosen, rr)
