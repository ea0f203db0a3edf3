"""The cluster policy (scheduling/policy.py): tables of (cluster, request) -> decision.

Every table runs twice: over the compiled kernels (minray._ext._policy) and
over their pure twin (policy_py); the two must decide the same. No process,
no socket: each row is a dict of nodes and one LeaseAsk.
"""

import importlib

import pytest

import minray._ext
from minray._ext import policy_py
from minray._private.scheduling.policy import (
    ArgLocation, ClusterPolicy, Here, Infeasible, LeaseAsk, NodeView, PgRef, Queue, RunLocal,
    SpillTo)
from minray._private.scheduling.resources import PlacementGroupState, RemoteBundle

MiB = 1 << 20


def _compiled():
    if minray._ext.NO_EXTENSIONS:
        pytest.skip("MINRAY_NO_EXTENSIONS=1: testing the pure-Python twins only")
    try:
        return importlib.import_module("minray._ext._policy")
    except ImportError as exc:
        pytest.fail(f"minray._ext._policy is not built ({exc})", pytrace=False)


@pytest.fixture(params=["compiled", "twin"])
def kernels(request):
    return _compiled() if request.param == "compiled" else policy_py


def cluster(local_free, **others):
    """Node "a" is this node (4 CPUs, ``local_free`` free); ``others`` map a node id
    to (total CPUs, free CPUs[, alive]). Each node also offers its hidden
    "_node_id:<id>" resource, as launch.py starts it."""
    here = Here("a", {"CPU": 4.0, "_node_id:a": 1000.0},
                {"CPU": float(local_free), "_node_id:a": 1000.0}, {}, "h:1")
    nodes = {"a": NodeView("a", "h:1", dict(here.total), dict(here.available))}
    for i, (node_id, spec) in enumerate(sorted(others.items())):
        total, free, alive = (tuple(spec) + (True,))[:3]
        nodes[node_id] = NodeView(node_id, f"h:{i + 2}",
                                  {"CPU": float(total), f"_node_id:{node_id}": 1000.0},
                                  {"CPU": float(free), f"_node_id:{node_id}": 1000.0}, alive)
    return here, nodes


CPU1 = {"CPU": 1.0}

# (id, local free CPUs, other nodes, request, expected decision type, expected node)
ROWS = [
    ("fits here: local", 2, dict(b=(4, 4)), LeaseAsk(CPU1), RunLocal, None),
    ("busy here, b free: spill to b", 0, dict(b=(4, 4)), LeaseAsk(CPU1), SpillTo, "b"),
    ("busy everywhere: queue here", 0, dict(b=(4, 0)), LeaseAsk(CPU1), Queue, None),
    ("most free CPU wins", 0, dict(b=(4, 1), c=(8, 6)), LeaseAsk(CPU1), SpillTo, "c"),
    ("never fits here, b has it: spill", 4, dict(b=(16, 16)),
     LeaseAsk({"CPU": 8.0}), SpillTo, "b"),
    ("never fits here, b busy: still b (it can ever)", 4, dict(b=(16, 0)),
     LeaseAsk({"CPU": 8.0}), SpillTo, "b"),
    ("nobody can ever: queue, infeasible", 4, dict(b=(4, 4)),
     LeaseAsk({"CPU": 64.0}), Queue, None),
    ("dead node is no target", 0, dict(b=(4, 4, False)), LeaseAsk(CPU1), Queue, None),
    ("forwarded from another node: never sent on", 0, dict(b=(4, 4)),
     LeaseAsk(CPU1, forwarded=True), Queue, None),
    # NodeAffinity
    ("hard affinity to b: b", 4, dict(b=(4, 4)),
     LeaseAsk({"CPU": 1.0, "_node_id:b": 0.001}), SpillTo, "b"),
    ("hard affinity to this node: local", 4, dict(b=(4, 4)),
     LeaseAsk({"CPU": 1.0, "_node_id:a": 0.001}), RunLocal, None),
    ("hard affinity to a dead node: infeasible", 4, dict(b=(4, 4, False)),
     LeaseAsk({"CPU": 1.0, "_node_id:b": 0.001}), Infeasible, None),
    ("hard affinity to an unknown node: infeasible", 4, dict(b=(4, 4)),
     LeaseAsk({"CPU": 1.0, "_node_id:zz": 0.001}), Infeasible, None),
    ("soft affinity to b with room: b", 4, dict(b=(4, 4)),
     LeaseAsk({"CPU": 1.0, "_prefer_node:b": 1e-12}), SpillTo, "b"),
    ("soft affinity to a dead node: local", 4, dict(b=(4, 4, False)),
     LeaseAsk({"CPU": 1.0, "_prefer_node:b": 1e-12}), RunLocal, None),
    ("soft affinity to a full node: local", 4, dict(b=(4, 0)),
     LeaseAsk({"CPU": 1.0, "_prefer_node:b": 1e-12}), RunLocal, None),
    # Locality
    ("large args on b: b", 4, dict(b=(4, 4)),
     LeaseAsk(CPU1, args=(ArgLocation("b", 8 * MiB),)), SpillTo, "b"),
    ("small args on b: no preference, local", 4, dict(b=(4, 4)),
     LeaseAsk(CPU1, args=(ArgLocation("b", 1000),)), RunLocal, None),
    ("large args on b, b full: local", 4, dict(b=(4, 0)),
     LeaseAsk(CPU1, args=(ArgLocation("b", 8 * MiB),)), RunLocal, None),
    ("large args here: local", 4, dict(b=(4, 4)),
     LeaseAsk(CPU1, args=(ArgLocation("a", 8 * MiB),)), RunLocal, None),
    ("most bytes win: c", 4, dict(b=(4, 4), c=(4, 4)),
     LeaseAsk(CPU1, args=(ArgLocation("b", 2 * MiB), ArgLocation("c", 3 * MiB))),
     SpillTo, "c"),
    ("bytes add up per node: b", 4, dict(b=(4, 4), c=(4, 4)),
     LeaseAsk(CPU1, args=(ArgLocation("b", MiB), ArgLocation("b", 2 * MiB),
                          ArgLocation("c", 2 * MiB))), SpillTo, "b"),
    ("tie on bytes: the less loaded, c", 4, dict(b=(4, 1), c=(4, 3)),
     LeaseAsk(CPU1, args=(ArgLocation("b", 4 * MiB), ArgLocation("c", 4 * MiB))),
     SpillTo, "c"),
    ("large args on a dead node: local", 4, dict(b=(4, 4, False)),
     LeaseAsk(CPU1, args=(ArgLocation("b", 8 * MiB),)), RunLocal, None),
    ("locality never overrides hard affinity", 4, dict(b=(4, 4), c=(4, 4)),
     LeaseAsk({"CPU": 1.0, "_node_id:c": 0.001}, args=(ArgLocation("b", 8 * MiB),)),
     SpillTo, "c"),
]


@pytest.mark.parametrize("name,free,others,ask,kind,node", ROWS, ids=[r[0] for r in ROWS])
def test_decide(kernels, name, free, others, ask, kind, node):
    here, nodes = cluster(free, **others)
    decision = ClusterPolicy("a", kernels).decide(ask, here, nodes)
    assert type(decision) is kind, decision
    if kind is SpillTo:
        assert decision.node_id == node
        assert decision.address == nodes[node].address
    if kind is Queue:
        assert decision.infeasible == (name.endswith("infeasible")), decision


@pytest.mark.parametrize("others,request_,expected", [
    ({}, CPU1, [None, None, None]),
    (dict(b=(4, 4), c=(4, 4)), CPU1, [None, "b", "c", None, "b"]),
    (dict(b=(4, 4), c=(4, 4, False)), CPU1, [None, "b", None, "b"]),
    (dict(b=(4, 0), c=(4, 4)), CPU1, [None, "c", None]),
    # This node full: only the others take turns.
    (dict(b=(4, 4), c=(4, 4)), {"CPU": 8.0}, [None, None]),
], ids=["one node", "round robin", "dead node skipped", "full node skipped", "none fit"])
def test_spread_takes_live_nodes_with_room_in_turn(kernels, others, request_, expected):
    here, nodes = cluster(4, **others)
    pol = ClusterPolicy("a", kernels)
    got = []
    for _ in expected:
        d = pol.decide(LeaseAsk(dict(request_, _spread=1e-12)), here, nodes)
        got.append(d.node_id if type(d) is SpillTo else None)
    assert got == expected


def test_spread_round_robin_when_this_node_is_busy(kernels):
    here, nodes = cluster(0, b=(4, 4), c=(4, 4))
    pol = ClusterPolicy("a", kernels)
    got = [pol.decide(LeaseAsk({"CPU": 1.0, "_spread": 1e-12}), here, nodes).node_id
           for _ in range(4)]
    assert got == ["b", "c", "b", "c"]


def _pg(here, nodes, remote):
    """A group of 3 one-CPU bundles: those in ``remote`` kept on other nodes."""
    pg = PlacementGroupState(b"pg1", [{"CPU": 1.0}] * 3, "SPREAD")
    pg.state = "CREATED"
    for i, node_id in remote.items():
        pg.available[i] = {}
        pg.remote[i] = RemoteBundle(node_id, nodes[node_id].address, None)
    here.pgs[b"pg1"] = pg
    return pg


@pytest.mark.parametrize("remote,index,expected", [
    ({}, 0, [None]),                                 # all bundles here
    ({1: "b", 2: "c"}, 0, [None]),                   # bundle 0 is here
    ({1: "b", 2: "c"}, 1, ["b", "b"]),               # bundle 1 is on b
    ({1: "b", 2: "c"}, 2, ["c"]),
    ({1: "b", 2: "c"}, -1, [None, None]),            # any bundle: local one has room
    ({0: "b", 1: "b", 2: "c"}, -1, ["b", "c", "b"]),  # none here: the others in turn
], ids=["local group", "bundle here", "bundle on b", "bundle on c", "any: here",
        "any: round robin"])
def test_placement_group_bundle_routing(kernels, remote, index, expected):
    here, nodes = cluster(4, b=(4, 4), c=(4, 4))
    _pg(here, nodes, remote)
    pol = ClusterPolicy("a", kernels)
    got = []
    for _ in expected:
        d = pol.decide(LeaseAsk(CPU1, pg=PgRef(b"pg1", index)), here, nodes)
        assert type(d) in (SpillTo, RunLocal), d
        got.append(d.node_id if type(d) is SpillTo else None)
    assert got == expected


def test_bundle_too_small_and_unknown_group_queue_as_infeasible(kernels):
    here, nodes = cluster(4, b=(4, 4))
    _pg(here, nodes, {})
    pol = ClusterPolicy("a", kernels)
    assert pol.decide(LeaseAsk({"CPU": 2.0}, pg=PgRef(b"pg1", 0)), here, nodes) == \
        Queue(infeasible=True)
    assert pol.decide(LeaseAsk(CPU1, pg=PgRef(b"nope", -1)), here, nodes) == \
        Queue(infeasible=True)


def test_one_machine_never_spills(kernels):
    here, _ = cluster(0)
    pol = ClusterPolicy("a", kernels)
    assert pol.decide(LeaseAsk(CPU1), here, None) == Queue()
    assert type(pol.decide(LeaseAsk({"CPU": 1.0, "_node_id:b": 0.001}), here, None)) is \
        Infeasible
    assert pol.decide(LeaseAsk({"CPU": 1.0, "_spread": 1e-12}), here, None) == Queue()


@pytest.mark.parametrize("free,others,ask,expected", [
    (0, dict(b=(4, 4)), LeaseAsk(CPU1), "b"),
    (2, dict(b=(4, 4)), LeaseAsk(CPU1), None),                       # fits here now
    (0, dict(b=(4, 0)), LeaseAsk(CPU1), None),                       # nobody has room
    (0, dict(b=(4, 4)), LeaseAsk(CPU1, forwarded=True), None),       # came from a node
    (0, dict(b=(4, 4)), LeaseAsk(CPU1, pg=PgRef(b"x", 0)), None),    # bundles stay
])
def test_respill_of_queued_requests(kernels, free, others, ask, expected):
    here, nodes = cluster(free, **others)
    d = ClusterPolicy("a", kernels).respill(ask, here, nodes)
    assert (d.node_id if d is not None else None) == expected


def test_draining_node_takes_no_new_work(kernels):
    here, nodes = cluster(0, b=(4, 4), c=(4, 2))
    nodes["b"] = nodes["b"]._replace(draining=True)
    d = ClusterPolicy("a", kernels).decide(LeaseAsk(CPU1), here, nodes)
    assert d.node_id == "c"


def test_kernels_agree_on_random_clusters():
    """The compiled kernels and the twin pick the same nodes."""
    import random
    compiled = _compiled()
    rng = random.Random(7)
    for _ in range(300):
        nodes = {f"n{i}": NodeView(f"n{i}", "", {"CPU": float(rng.randint(0, 8))},
                                   {"CPU": float(rng.randint(0, 8))}, rng.random() > 0.2,
                                   rng.random() > 0.9) for i in range(rng.randint(0, 6))}
        req = {"CPU": float(rng.randint(0, 6))}
        args = [(f"n{rng.randint(0, 6)}", rng.randint(0, 4 * MiB)) for _ in range(3)]
        ex = rng.choice(list(nodes) or ["n0"])
        assert compiled.pick_node(nodes.values(), req, ex) is \
            policy_py.pick_node(nodes.values(), req, ex)
        assert compiled.fitting_now(nodes.values(), req) == \
            policy_py.fitting_now(nodes.values(), req)
        assert compiled.locality_pick(args, nodes, MiB) == \
            policy_py.locality_pick(args, nodes, MiB)
        res = dict(req, **rng.choice([{}, {"_spread": 1e-12}, {"_node_id:x": 0.001},
                                      {"_prefer_node:y": 1e-12}]))
        assert compiled.strategy_of(res) == policy_py.strategy_of(res)
