"""Pulls that land in pooled segments: a node's freed segments (its pool) take the
next copy pulled from another node, so tmpfs need not allocate its pages again.

A head (127.0.0.1) and node B (127.0.0.2), each a `minray start --block` process
tree with a 256 MiB store and a pool of at most 64 MiB (MINRAY_OBJECT_POOL_BYTES).
Each test reads B's object-store statistics (pulls, reuses, pool and object bytes)
and checks the bytes that arrive; at the end neither node leaves a segment behind.
"""

import os
import sys

import numpy as np
import pytest

import minray as ray

sys.path.insert(0, os.path.dirname(__file__))
from cluster_utils import connected_cluster  # noqa: E402
from helpers import wait_until  # noqa: E402
from object_helpers import digest, on_b, stats_on_b  # noqa: E402

pytestmark = pytest.mark.slow

MiB = 1 << 20
POOL = 64 * MiB


def prefix_of(node):
    return "mr" + os.path.basename(node.session_dir)[-8:] + "_"


def segments_of(node):
    return {n for n in os.listdir("/dev/shm") if n.startswith(prefix_of(node))}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    old = os.environ.get("MINRAY_OBJECT_POOL_BYTES")
    os.environ["MINRAY_OBJECT_POOL_BYTES"] = str(POOL)     # both nodes inherit it
    try:
        with connected_cluster(ray, tmp_path_factory.mktemp("cluster"),
                               [("127.0.0.2", dict(num_cpus=2))]) as c:
            c.node_b = {n["NodeManagerAddress"]: n["NodeID"]
                        for n in ray.nodes()}["127.0.0.2"]
            yield c
            nodes = list(c.nodes)
    finally:
        if old is None:
            os.environ.pop("MINRAY_OBJECT_POOL_BYTES", None)
        else:
            os.environ["MINRAY_OBJECT_POOL_BYTES"] = old
    # Stopped: no object, pull or pooled segment of either node is left in /dev/shm.
    for node in nodes:
        assert segments_of(node) == set(), f"{node.ip} left {segments_of(node)}"


def check(a):
    return digest(a), a.nbytes


def pull_to_b(cluster, nbytes, seed):
    """Put ``nbytes`` of random bytes here, read them in a task on B: (ref, digest)."""
    arr = np.random.default_rng(seed).integers(0, 256, nbytes, dtype=np.uint8)
    ref = ray.put(arr)
    assert ray.get(on_b(cluster, check).remote(ref), timeout=120) == (digest(arr), nbytes)
    return ref


def freed_on_b(cluster, before):
    """Wait until B holds no object bytes again; its stats then."""
    assert wait_until(lambda: stats_on_b(cluster)["shm_bytes"] == before, timeout=20), \
        stats_on_b(cluster)
    return stats_on_b(cluster)


@pytest.mark.parametrize("nbytes", [0, 1, 4097, (9 << 20) + 3],
                         ids=["0B", "1B", "page+1", "9MiB+3"])
def test_objects_of_odd_sizes_reach_the_other_node_bit_exact(cluster, nbytes):
    ref = pull_to_b(cluster, nbytes, seed=nbytes)
    del ref


def test_a_pull_reuses_a_freed_segment_of_the_pulling_node(cluster):
    base = freed_on_b(cluster, 0)
    first = pull_to_b(cluster, (40 * MiB) - 12345, seed=1)
    cap = stats_on_b(cluster)["shm_bytes"]
    assert 40 * MiB - 12345 < cap < 40 * MiB + MiB
    del first
    s = freed_on_b(cluster, 0)
    assert wait_until(lambda: stats_on_b(cluster)["pool_bytes"] >= cap, timeout=20), \
        (stats_on_b(cluster), segments_of(cluster.nodes[1]))
    s = stats_on_b(cluster)
    # A smaller object of an odd size lands in that segment: bit-exact, one reuse,
    # and the store counts the whole segment while it holds the object.
    second = pull_to_b(cluster, (36 * MiB) + 1, seed=2)
    t = stats_on_b(cluster)
    assert t["num_pulls"] - s["num_pulls"] == 1
    assert t["num_reused"] - s["num_reused"] == 1
    assert t["pool_bytes"] == s["pool_bytes"] - cap
    assert t["shm_bytes"] == cap
    assert 36 * MiB < t["pulled_bytes"] - s["pulled_bytes"] < 37 * MiB
    # A second task on B reads B's copy in the reused segment, no new pull.
    assert ray.get(on_b(cluster, check).remote(second), timeout=60)[1] == 36 * MiB + 1
    del second
    freed_on_b(cluster, 0)
    assert base["num_reused"] < stats_on_b(cluster)["num_reused"]


def test_the_pool_of_the_pulling_node_stays_within_its_bound(cluster):
    """Two 40 MiB copies freed on B: a 64 MiB pool cannot keep both, and what B
    leaves in /dev/shm is exactly its pool, within the bound."""
    freed_on_b(cluster, 0)
    refs = [pull_to_b(cluster, 40 * MiB, seed=10 + i) for i in range(2)]
    assert stats_on_b(cluster)["shm_bytes"] >= 80 * MiB
    del refs
    freed_on_b(cluster, 0)
    b = cluster.nodes[1]

    def on_disk():
        return sum(os.path.getsize("/dev/shm/" + n) for n in segments_of(b))
    # Workers let go of their mappings asynchronously: wait for the pool to settle.
    assert wait_until(lambda: on_disk() == stats_on_b(cluster)["pool_bytes"], timeout=20), \
        (on_disk(), stats_on_b(cluster))
    s = stats_on_b(cluster)
    assert 40 * MiB <= s["pool_bytes"] <= POOL
    assert on_disk() == s["pool_bytes"] and s["shm_bytes"] == 0
