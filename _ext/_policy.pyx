# cython: language_level=3, boundscheck=False, wraparound=False
"""Cluster policy kernels, compiled. Behaviour documented in the twin,
`policy_py.py` (same names, results and exceptions)."""

EPS = 1e-9
cdef double _EPS = 1e-9

DEFAULT = 0
SPREAD = 1
AFFINITY_HARD = 2
AFFINITY_SOFT = 3


def strategy_of(dict resources):
    cdef str k
    for k in resources:
        if not k or k[0] != "_":
            continue
        if k == "_spread":
            return SPREAD, None
        if k.startswith("_node_id:"):
            return AFFINITY_HARD, k[9:]
        if k.startswith("_prefer_node:"):
            return AFFINITY_SOFT, k[13:]
    return DEFAULT, None


cdef bint _fits(dict available, dict request) except -1:
    cdef double v
    for k, value in request.items():
        v = value
        if v > _EPS and <double>available.get(k, 0.0) + _EPS < v:
            return False
    return True


def pick_node(nodes, dict request, exclude):
    best_now = None
    cdef double best_cpu = 0.0, cpu
    best_ever = None
    for rec in nodes:
        if not rec.alive or rec.draining or rec.node_id == exclude:
            continue
        if _fits(rec.available, request):
            cpu = rec.available.get("CPU", 0.0)
            if best_now is None or cpu > best_cpu:
                best_now = rec
                best_cpu = cpu
        elif best_ever is None and _fits(rec.total, request):
            best_ever = rec
    return best_now if best_now is not None else best_ever


def _node_id(rec):
    return rec.node_id


def fitting_now(nodes, dict request):
    cdef list out = []
    for r in nodes:
        if r.alive and not r.draining and _fits(r.available, request):
            out.append(r)
    out.sort(key=_node_id)
    return out


def locality_pick(args, dict nodes, min_bytes):
    cdef dict held = {}
    for node_id, size in args:
        held[node_id] = held.get(node_id, 0) + size
    best = None
    best_bytes = 0
    cdef double best_cpu = 0.0, cpu
    for node_id, n in held.items():
        if n < min_bytes or n < best_bytes:
            continue
        rec = nodes.get(node_id)
        if rec is None or not rec.alive or rec.draining:
            continue
        cpu = rec.available.get("CPU", 0.0)
        if best is None or n > best_bytes or cpu > best_cpu or \
                (cpu == best_cpu and node_id < best):
            best = node_id
            best_bytes = n
            best_cpu = cpu
    return best
