"""Large objects between nodes: pulled in chunks by the node manager that needs them.

A head (127.0.0.1) and one node (127.0.0.2), each its own `minray start --block`
process tree. Each test reads the object-store statistics of the node managers
involved (pulls, chunks, bytes) and checks the bytes that arrive.
"""

import math
import os
import sys

import numpy as np
import pytest

import minray as ray

sys.path.insert(0, os.path.dirname(__file__))
from cluster_utils import connected_cluster  # noqa: E402
from helpers import wait_until  # noqa: E402
from object_helpers import digest, on_b, stats_on_b, store_stats  # noqa: E402

pytestmark = pytest.mark.slow

CHUNK = 8 << 20   # protocol.TRANSFER_CHUNK_BYTES


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with connected_cluster(ray, tmp_path_factory.mktemp("cluster"),
                           [("127.0.0.2", dict(num_cpus=2))]) as c:
        c.node_b = {n["NodeManagerAddress"]: n["NodeID"] for n in ray.nodes()}["127.0.0.2"]
        yield c


def peak_rss_reset(pid):
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")          # resets VmHWM, the peak resident set size


def peak_rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_a_large_put_reaches_a_task_on_another_node_in_chunks(cluster):
    """~300 MiB put by the driver on the head, read by a task on node B: bit-exact, one
    pull of ceil(size / chunk) chunks, and B's node manager never held it in memory."""
    b_pid = cluster.nodes[1].nm_pid
    arr = np.random.default_rng(1).integers(0, 2**63, size=(300 << 20) // 8, dtype=np.int64)
    ref = ray.put(arr)
    before = stats_on_b(cluster)
    peak_rss_reset(b_pid)
    rss_before = peak_rss(b_pid)

    def check(a):
        return digest(a), a.nbytes, a.flags.writeable

    got, nbytes, writeable = ray.get(on_b(cluster, check).remote(ref), timeout=120)
    assert (got, nbytes) == (digest(arr), arr.nbytes)
    assert not writeable          # a read-only view of B's shared memory, as on one node
    after = stats_on_b(cluster)
    assert after["num_pulls"] - before["num_pulls"] == 1
    pulled = after["pulled_bytes"] - before["pulled_bytes"]
    assert arr.nbytes <= pulled < arr.nbytes + (1 << 20)
    assert after["num_pull_chunks"] - before["num_pull_chunks"] == math.ceil(pulled / CHUNK)
    # Chunks went straight into the segment: B's manager's peak RSS grew by far less
    # than the object (an inline copy would have added 300 MiB at least once).
    grown = peak_rss(b_pid) - rss_before
    print(f"B's node manager: peak RSS grew by {grown / 2**20:.1f} MiB for a 300 MiB pull")
    assert grown < 100 << 20, f"B's node manager grew by {grown >> 20} MiB"
    # A second task on B maps B's copy: no new transfer.
    assert ray.get(on_b(cluster, check).remote(ref), timeout=60)[0] == digest(arr)
    assert stats_on_b(cluster)["num_pulls"] == after["num_pulls"]
    # Freeing the object frees B's copy too.
    held = after["shm_bytes"]
    del ref
    assert wait_until(lambda: stats_on_b(cluster)["shm_bytes"] <= held - (300 << 20),
                      timeout=20), stats_on_b(cluster)


def test_two_tasks_on_a_node_share_one_transfer(cluster):
    arr = np.arange((64 << 20) // 8, dtype=np.int64)
    ref = ray.put(arr)
    before = stats_on_b(cluster)

    def total(a):
        return int(a.sum())

    f = on_b(cluster, total, num_cpus=1)
    assert ray.get([f.remote(ref), f.remote(ref)], timeout=120) == [int(arr.sum())] * 2
    after = stats_on_b(cluster)
    assert after["num_pulls"] - before["num_pulls"] == 1
    assert arr.nbytes <= after["pulled_bytes"] - before["pulled_bytes"] < 2 * arr.nbytes


def test_the_driver_gets_a_large_value_made_on_another_node(cluster):
    def make():
        return np.random.default_rng(7).random((96 << 20) // 8)

    before = store_stats()
    got = ray.get(on_b(cluster, make).remote(), timeout=120)
    assert digest(got) == digest(np.random.default_rng(7).random((96 << 20) // 8))
    after = store_stats()
    assert after["num_pulls"] - before["num_pulls"] == 1
    assert after["pulled_bytes"] - before["pulled_bytes"] >= got.nbytes


def test_a_copy_of_an_object_in_a_reused_larger_segment_moves_only_the_object(cluster):
    """The head's store hands a freed segment of 60 MiB or more (its pool holds up to
    half the store) to the next put of 48 MiB; node B's copy is the 48 MiB that
    were written, not the whole segment."""
    big = ray.put(np.ones((60 << 20) // 8))
    del big
    assert wait_until(lambda: store_stats()["pool_bytes"] >= 60 << 20, timeout=20), \
        store_stats()
    reused = store_stats()["num_reused"]
    arr = np.arange((48 << 20) // 8, dtype=np.int64)
    ref = ray.put(arr)
    assert store_stats()["num_reused"] == reused + 1     # the larger segment, reused
    before = stats_on_b(cluster)

    def check(a):
        return digest(a)

    assert ray.get(on_b(cluster, check).remote(ref), timeout=120) == digest(arr)
    after = stats_on_b(cluster)
    assert after["num_pulls"] - before["num_pulls"] == 1
    assert arr.nbytes <= after["pulled_bytes"] - before["pulled_bytes"] < arr.nbytes + 4096
