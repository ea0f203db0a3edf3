"""Placement groups that wait for room across nodes, and actor handles held on other
nodes: a head (127.0.0.1) and a node (127.0.0.2), then a third node (127.0.0.3) that
joins in the middle of the module. Real `minray start --block` process trees."""

import os
import sys
import time

import pytest

import minray as ray
from minray.util.placement_group import (placement_group, placement_group_table,
                                         remove_placement_group)
from minray.util.scheduling_strategies import (NodeAffinitySchedulingStrategy,
                                               PlacementGroupSchedulingStrategy)

sys.path.insert(0, os.path.dirname(__file__))
from cluster_utils import connected_cluster  # noqa: E402
from helpers import wait_until  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with connected_cluster(ray, tmp_path_factory.mktemp("cluster"),
                           [("127.0.0.2", dict(num_cpus=1, resources={"room": 1}))]) as c:
        yield c


def node_id():
    return ray.get_runtime_context().get_node_id()


def node_ids():
    return {n["NodeManagerAddress"]: n["NodeID"] for n in ray.nodes() if n["Alive"]}


def bundle_nodes(pg, n):
    where = ray.remote(num_cpus=0.1)(node_id)
    return ray.get([where.options(scheduling_strategy=PlacementGroupSchedulingStrategy(
        pg, placement_group_bundle_index=i)).remote() for i in range(n)], timeout=60)


def test_a_strict_spread_group_waits_for_a_third_node(cluster):
    pg = placement_group([{"CPU": 0.5}] * 3, strategy="STRICT_SPREAD")
    ready, _ = ray.wait([pg.ready()], timeout=2)
    assert not ready
    row = placement_group_table(pg)
    assert row["state"] == "PENDING" and row["strategy"] == "STRICT_SPREAD"

    @ray.remote(num_cpus=0.1)
    class InBundle:
        def where(self):
            return node_id()
    # Queued for bundles before the group has a place: they must follow the bundles.
    early = [InBundle.options(scheduling_strategy=PlacementGroupSchedulingStrategy(
        pg, placement_group_bundle_index=i)).remote() for i in range(3)]
    cluster.add_node("127.0.0.3", num_cpus=1)
    cluster.wait_for_nodes(ray, 3)
    ray.get(pg.ready(), timeout=30)
    assert placement_group_table(pg)["state"] == "CREATED"
    nodes = bundle_nodes(pg, 3)
    assert sorted(nodes) == sorted(node_ids().values())
    assert ray.get([a.where.remote() for a in early], timeout=60) == nodes
    for a in early:
        ray.kill(a)
    remove_placement_group(pg)


def test_a_group_is_placed_once_an_actor_frees_its_room(cluster):
    @ray.remote(resources={"room": 1}, num_cpus=0)
    class Squatter:
        def where(self):
            return node_id()

    squatter = Squatter.remote()
    assert ray.get(squatter.where.remote(), timeout=60) == node_ids()["127.0.0.2"]
    time.sleep(1.0)       # B's heartbeat reports the room taken
    pg = placement_group([{"room": 1, "CPU": 0.1}], strategy="PACK")
    ready, _ = ray.wait([pg.ready()], timeout=2)
    assert not ready and placement_group_table(pg)["state"] == "PENDING"
    ray.kill(squatter)
    ray.get(pg.ready(), timeout=30)
    assert bundle_nodes(pg, 1) == [node_ids()["127.0.0.2"]]
    remove_placement_group(pg)


def test_a_handle_held_on_another_node_keeps_the_actor_alive(cluster):
    """The driver's handle goes; a handle stored by an actor on node B keeps the actor
    (kept by the head) alive, and it ends a few seconds after B drops that handle."""
    import psutil

    @ray.remote(num_cpus=0)
    class Target:
        def ping(self):
            return os.getpid()

    @ray.remote(num_cpus=0)
    class Holder:
        def keep(self, handle):
            self.handle = handle
            return True

        def ping_target(self):
            return ray.get(self.handle.ping.remote(), timeout=30)

        def drop(self):
            self.handle = None
            return True

    b = NodeAffinitySchedulingStrategy(node_ids()["127.0.0.2"], soft=False)
    holder = Holder.options(scheduling_strategy=b).remote()
    target = Target.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        node_ids()["127.0.0.1"], soft=False)).remote()
    pid = ray.get(target.ping.remote(), timeout=60)
    assert ray.get(holder.keep.remote(target), timeout=60)
    del target
    time.sleep(2.0)   # without B's handle counted, the actor would end now
    assert psutil.pid_exists(pid)
    assert ray.get(holder.ping_target.remote(), timeout=60) == pid
    assert ray.get(holder.drop.remote(), timeout=30)

    def gone():
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True
    assert wait_until(gone, timeout=15), "the actor outlived its last handle"
    ray.kill(holder)
