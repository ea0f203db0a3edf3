"""A node that dies while another node pulls a large object from it: the pull fails
cleanly (no half-written segment stays), and the object is rebuilt from lineage
where it can be, else get() raises ObjectLostError. Own cluster: the node dies."""

import os
import signal
import sys
import threading

import numpy as np
import pytest

import minray as ray
from minray._private.objects import serialization
from minray._private import state
from minray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

sys.path.insert(0, os.path.dirname(__file__))
from cluster_utils import Cluster  # noqa: E402
from helpers import wait_until  # noqa: E402

pytestmark = pytest.mark.slow

SIZE = (160 << 20) // 8


def make(seed):
    return np.random.default_rng(seed).random(SIZE)


def head_segments(cluster):
    """The head's segments in /dev/shm: objects, pulls under way, its pool."""
    prefix = "mr" + os.path.basename(cluster.head.session_dir)[-8:] + "_"
    return {n for n in os.listdir("/dev/shm") if n.startswith(prefix)}


def head_stats():
    return state.current_client().call("object_stats")


def test_a_node_dying_mid_transfer(tmp_path):
    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(tmp_path)
    try:
        c.start_head(num_cpus=2)
        c.add_node("127.0.0.2", num_cpus=2)   # room for both tasks below
        ray.init(address=c.address, _temp_dir=c.head.temp_dir)
        c.wait_for_nodes(ray, 2)
        node_b = {n["NodeManagerAddress"]: n["NodeID"]
                  for n in ray.nodes()}["127.0.0.2"]
        hard_b = NodeAffinitySchedulingStrategy(node_b, soft=False)
        soft_b = NodeAffinitySchedulingStrategy(node_b, soft=True)
        once = ray.remote(make).options(scheduling_strategy=hard_b, max_retries=0)
        rebuildable = ray.remote(make).options(scheduling_strategy=soft_b, max_retries=2)
        lost = once.remote(1)
        ray.wait([lost], timeout=60)
        kept = rebuildable.remote(2)
        ray.wait([kept], timeout=60)
        # Both values stay in B's store; the driver holds pointers to them there.
        client = state.current_client()
        for ref in (lost, kept):
            blob = client.objects[ref._id].blob
            assert serialization.remote_address(blob).startswith("127.0.0.2:"), blob[:40]

        # One pull from B first: the head's connection to B's node manager exists.
        assert ray.get(once.remote(3), timeout=60)[0] == make(3)[0]
        # Its copy is freed (into the head's pool, which a later pull may take).
        assert wait_until(lambda: head_stats()["shm_bytes"] == 0, timeout=20), head_stats()
        before, pulls = head_segments(c), head_stats()["num_pulls"]
        box = {}
        # B's node manager stops answering (as a host does that froze or lost its
        # link), so the head's pull is under way, and stays so, when B dies.
        os.kill(c.nodes[1].nm_pid, signal.SIGSTOP)

        def get_lost():
            try:
                box["value"] = ray.get(lost, timeout=60)
            except Exception as exc:   # noqa: BLE001 - the test checks which
                box["error"] = exc
        t = threading.Thread(target=get_lost)
        t.start()
        assert wait_until(lambda: head_stats()["num_pulls"] > pulls, timeout=30), \
            "the pull never started"
        c.kill_node(c.nodes[1])
        t.join(60)
        assert not t.is_alive(), "get() hung after the node died mid-transfer"
        assert isinstance(box.get("error"), ray.exceptions.ObjectLostError), box
        # No half-written copy stays: a new segment is removed, a pooled one goes back.
        assert wait_until(lambda: head_segments(c) <= before, timeout=10), \
            (head_segments(c) - before)
        assert head_stats()["shm_bytes"] == 0
        # Made by a task with retries left: rebuilt on the head, bit-exact.
        assert np.array_equal(ray.get(kept, timeout=120), make(2))
    finally:
        ray.shutdown()
        c.shutdown()
