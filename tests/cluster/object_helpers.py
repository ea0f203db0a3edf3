"""What the object-transfer tests share: run a function on node B, read a node's
object-store statistics, and fingerprint an array's bytes."""

import hashlib

import numpy as np

import minray as ray
from minray._private import state
from minray.util.scheduling_strategies import NodeAffinitySchedulingStrategy


def on_b(cluster, fn, **opts):
    """``fn`` as a task pinned to ``cluster.node_b`` (hard affinity)."""
    return ray.remote(**opts)(fn).options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(cluster.node_b, soft=False))


def store_stats():
    """This process's node manager's object store statistics."""
    return state.current_client().call("object_stats")


def stats_on_b(cluster):
    return ray.get(on_b(cluster, store_stats).remote(), timeout=60)


def digest(a):
    return hashlib.sha256(np.ascontiguousarray(a).view(np.uint8)).hexdigest()
