"""Bundle placement (scheduling/placement.py): tables of (nodes, bundles, strategy) -> plan."""

import pytest

from minray._private.scheduling.placement import plan_bundles, spread_pick
from minray._private.scheduling.policy import NodeView


def nodes(**cpus):
    """Node id -> free CPUs (or (free, total, alive)); "a" is this node."""
    out = []
    for node_id, spec in cpus.items():
        free, total, alive = (spec, spec, True) if not isinstance(spec, tuple) else \
            (spec + (True,))[:3]
        out.append(NodeView(node_id, f"h:{node_id}", {"CPU": float(total)},
                            {"CPU": float(free)}, alive))
    return out


B1 = {"CPU": 1.0}

# (id, nodes, bundles, strategy, expected node per bundle or None)
ROWS = [
    ("PACK: all here while it fits", nodes(a=4, b=4), [B1] * 3, "PACK", "aaa"),
    ("PACK: here first, then the next", nodes(a=2, b=4), [B1] * 3, "PACK", "aab"),
    ("PACK: this node first whatever the order", nodes(b=4, a=4), [B1] * 2, "PACK", "aa"),
    ("PACK: infeasible", nodes(a=1, b=1), [B1] * 3, "PACK", None),
    ("SPREAD: one per node", nodes(a=4, b=4, c=4), [B1] * 3, "SPREAD", "abc"),
    ("SPREAD: wraps onto used nodes", nodes(a=4, b=4), [B1] * 3, "SPREAD", "aba"),
    ("SPREAD: skips a full node", nodes(a=0, b=4, c=4), [B1] * 2, "SPREAD", "bc"),
    ("SPREAD: infeasible", nodes(a=0, b=1), [B1] * 2, "SPREAD", None),
    ("STRICT_PACK: one node", nodes(a=1, b=4), [B1] * 3, "STRICT_PACK", "bbb"),
    ("STRICT_PACK: here when it fits", nodes(a=3, b=4), [B1] * 3, "STRICT_PACK", "aaa"),
    ("STRICT_PACK: infeasible (fits only split)", nodes(a=2, b=2), [B1] * 3,
     "STRICT_PACK", None),
    ("STRICT_SPREAD: one per node", nodes(a=1, b=1, c=1), [B1] * 3, "STRICT_SPREAD", "abc"),
    ("STRICT_SPREAD: infeasible (too few nodes)", nodes(a=4, b=4), [B1] * 3,
     "STRICT_SPREAD", None),
    ("STRICT_SPREAD: dead node does not count", nodes(a=4, b=4, c=(4, 4, False)), [B1] * 3,
     "STRICT_SPREAD", None),
    ("STRICT_SPREAD: mixed bundle shapes", nodes(a=1, b=4), [{"CPU": 4.0}, B1],
     "STRICT_SPREAD", "ba"),
]


@pytest.mark.parametrize("name,rows,bundles,strategy,expected", ROWS,
                         ids=[r[0] for r in ROWS])
def test_plan_bundles(name, rows, bundles, strategy, expected):
    plan = plan_bundles(bundles, strategy, rows, "a")
    if expected is None:
        assert plan is None
    else:
        assert "".join(r.node_id for r in plan) == expected


@pytest.mark.parametrize("strategy", ["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"])
def test_total_plans_for_an_idle_cluster(strategy):
    rows = nodes(a=(0, 2), b=(0, 2))
    assert plan_bundles([B1, B1], strategy, rows, "a") is None
    assert plan_bundles([B1, B1], strategy, rows, "a", key="total") is not None


def test_planning_changes_no_node():
    rows = nodes(a=2, b=2)
    plan_bundles([B1] * 4, "PACK", rows, "a")
    assert [r.available for r in rows] == [{"CPU": 2.0}, {"CPU": 2.0}]


def test_unknown_strategy_is_a_clear_error():
    with pytest.raises(ValueError, match="STRICT_SPREAD"):
        plan_bundles([B1], "PACKED", nodes(a=1), "a")


def test_spread_pick_takes_turns_and_names_this_node_none():
    rows = nodes(a=1, b=1, c=1)
    rr, got = -1, []
    for _ in range(4):
        pick = spread_pick(rows, "b", rr)
        rr = pick.rr
        got.append(pick.node.node_id if pick.node is not None else None)
    assert got == ["a", None, "c", "a"]
    assert spread_pick([], "a", 5) == (None, 5)
