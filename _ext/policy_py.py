"""Cluster policy kernels: the pure-Python twin of `_policy.pyx`.

The loops the cluster policy (minray._private.scheduling.policy) runs for
every lease request on a cluster: which hint a request carries, which node
has room for it, which nodes SPREAD may take, and which node holds most of
its argument bytes. A node is any object with the attributes `node_id`,
`total`, `available` (resource dicts), `alive` and `draining` (bools).

    strategy_of(resources)                    -> (kind, node_id or None)
    pick_node(nodes, request, exclude)        -> a node, or None
    fitting_now(nodes, request)               -> [nodes with room now], by id
    locality_pick(args, nodes, min_bytes)     -> node_id, or None

>>> strategy_of({"CPU": 1.0, "_prefer_node:n2": 1e-12})
(3, 'n2')
>>> locality_pick([("a", 10), ("b", 300), ("b", 300)], {}, 100) is None  # unknown nodes
True
"""

EPS = 1e-9

# Scheduling strategies, as the hidden resource keys of a request carry them
# (options.py): none, "_spread", "_node_id:<id>" (hard), "_prefer_node:<id>".
DEFAULT = 0
SPREAD = 1
AFFINITY_HARD = 2
AFFINITY_SOFT = 3


def strategy_of(resources):
    """The scheduling strategy a request's hidden keys name: (kind, node_id)."""
    for k in resources:
        if k[:1] != "_":
            continue
        if k == "_spread":
            return SPREAD, None
        if k.startswith("_node_id:"):
            return AFFINITY_HARD, k[9:]
        if k.startswith("_prefer_node:"):
            return AFFINITY_SOFT, k[13:]
    return DEFAULT, None


def _fits(available, request):
    for k, v in request.items():
        if v > EPS and available.get(k, 0.0) + EPS < v:
            return False
    return True


def pick_node(nodes, request, exclude):
    """A live, undrained node other than `exclude` for `request`.

    One with the resources free now (the most free CPU first; the first such
    in `nodes` order on ties), else the first that has them at all. None if
    no node ever can.
    """
    best_now = None
    best_cpu = 0.0
    best_ever = None
    for rec in nodes:
        if not rec.alive or rec.draining or rec.node_id == exclude:
            continue
        if _fits(rec.available, request):
            cpu = rec.available.get("CPU", 0.0)
            if best_now is None or cpu > best_cpu:
                best_now, best_cpu = rec, cpu
        elif best_ever is None and _fits(rec.total, request):
            best_ever = rec
    return best_now if best_now is not None else best_ever


def fitting_now(nodes, request):
    """The live, undrained nodes with `request` free now, sorted by node id."""
    out = [r for r in nodes if r.alive and not r.draining and _fits(r.available, request)]
    out.sort(key=_node_id)
    return out


def _node_id(rec):
    return rec.node_id


def locality_pick(args, nodes, min_bytes):
    """The live node holding the most argument bytes, if at least `min_bytes`.

    `args` are (node_id, size) pairs (one per argument copy); `nodes` maps
    node_id -> node. Ties go to the node with the most free CPU, then the
    smaller id. None when no live node holds `min_bytes` or more.
    """
    held = {}
    for node_id, size in args:
        held[node_id] = held.get(node_id, 0) + size
    best = None
    best_bytes = 0
    best_cpu = 0.0
    for node_id, n in held.items():
        if n < min_bytes or n < best_bytes:
            continue
        rec = nodes.get(node_id)
        if rec is None or not rec.alive or rec.draining:
            continue
        cpu = rec.available.get("CPU", 0.0)
        if best is None or n > best_bytes or cpu > best_cpu or \
                (cpu == best_cpu and node_id < best):
            best, best_bytes, best_cpu = node_id, n, cpu
    return best
