"""The scheduler's pure logic: leases, resources, placement groups, GPU ids (no processes)."""
from minray._private.scheduling.resources import LeaseRequest, PlacementGroupState, Scheduler


def req(key, pg=None, **res):
    return LeaseRequest(key, res, pg=pg)


def test_grants_in_order_while_resources_last_and_release_returns_them():
    s = Scheduler({"CPU": 2.0})
    for k in "abc":
        s.request(req(k, CPU=1.0))
    grants = s.schedule()
    assert [r.key for r, _ in grants] == ["a", "b"]
    assert s.available["CPU"] == 0.0 and list(s.queue) == ["c"]
    s.release(grants[0][1])
    assert [r.key for r, _ in s.schedule()] == ["c"]


def test_a_big_request_does_not_block_smaller_ones_behind_it():
    s = Scheduler({"CPU": 2.0})
    s.request(req("big", CPU=4.0))
    s.request(req("small", CPU=1.0))
    assert [r.key for r, _ in s.schedule()] == ["small"]
    assert [r.key for r in s.infeasible()] == ["big"]


def test_custom_resources_and_memory_are_counted():
    s = Scheduler({"CPU": 4.0, "accel": 1.0, "memory": 100.0})
    s.request(req("a", CPU=1.0, accel=1.0))
    s.request(req("b", CPU=1.0, accel=1.0))
    s.request(req("c", memory=60.0))
    s.request(req("d", memory=60.0))
    assert [r.key for r, _ in s.schedule()] == ["a", "c"]


def test_gpu_ids_whole_and_fractional():
    s = Scheduler({"CPU": 8.0, "GPU": 2.0})
    s.request(req("two", GPU=2.0))
    (_, charge), = s.schedule()
    assert Scheduler.gpu_ids(charge) == [0, 1]
    s.release(charge)
    s.request(req("half1", GPU=0.5))
    s.request(req("half2", GPU=0.5))
    s.request(req("one", GPU=1.0))
    grants = {r.key: Scheduler.gpu_ids(c) for r, c in s.schedule()}
    assert grants["half1"] == grants["half2"]          # two halves share one GPU
    assert grants["one"] and grants["one"] != grants["half1"]


def test_placement_group_reserves_bundles_and_leases_use_them():
    s = Scheduler({"CPU": 4.0})
    pg = PlacementGroupState(b"pg1", [{"CPU": 1.0}, {"CPU": 1.0}], "PACK")
    assert [p.pg_id for p in s.create_pg(pg)] == [b"pg1"]
    assert s.available["CPU"] == 2.0
    s.request(req("in0", pg=(b"pg1", 0), CPU=1.0))
    s.request(req("in0-again", pg=(b"pg1", 0), CPU=1.0))
    s.request(req("any", pg=(b"pg1", -1), CPU=1.0))
    grants = s.schedule()
    assert [r.key for r, _ in grants] == ["in0", "any"]
    assert s.available["CPU"] == 2.0                    # node resources untouched
    s.remove_pg(b"pg1")
    assert s.available["CPU"] == 4.0


def test_strict_spread_needs_as_many_nodes_as_bundles():
    s = Scheduler({"CPU": 4.0}, num_nodes=1)
    pg = PlacementGroupState(b"x", [{"CPU": 1.0}, {"CPU": 1.0}], "STRICT_SPREAD")
    assert s.create_pg(pg) == [] and pg.state == "PENDING"
    assert not s.pg_feasible(pg)


def test_pending_pg_is_placed_when_resources_free_up():
    s = Scheduler({"CPU": 2.0})
    s.request(req("hog", CPU=2.0))
    (_, charge), = s.schedule()
    pg = PlacementGroupState(b"later", [{"CPU": 2.0}], "PACK")
    assert s.create_pg(pg) == []
    s.release(charge)
    assert [p.pg_id for p in s.try_place_pgs()] == [b"later"]
