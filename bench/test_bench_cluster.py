"""pytest-benchmark cases across two nodes: ``pytest bench/test_bench_cluster.py``.

A head (127.0.0.1) and node B (127.0.0.2, the only node with the resource
``node_b``), started as bench/cluster_compare.py starts them; this process is
the driver. The same workloads as bench/cluster_workloads.py at smaller sizes
(a 256 MiB pull, a 32 MiB broadcast); side-by-side figures against Ray 2.60 and a
raw TCP copy come from ``python -m bench.cluster_compare``.
"""
import os
import shutil
import tempfile

import numpy as np
import pytest

import minray as ray
from bench import cluster_compare as C
from bench import cluster_workloads as W

MiB = 1 << 20
ON_B = {"resources": {"node_b": 0.001}}


def _connect(cluster):
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address=cluster.address, _temp_dir=os.path.join(cluster.workdir, "head"),
             log_to_driver=False)
    ids = {}
    for _ in range(300):
        ids = {n["NodeManagerAddress"]: n["NodeID"] for n in ray.nodes() if n["Alive"]}
        if W.B_IP in ids and ray.cluster_resources().get("node_b"):
            return ids[W.B_IP]
        import time
        time.sleep(0.1)
    raise AssertionError(f"node B never joined: {ray.nodes()}")


@pytest.fixture(scope="module")
def two_nodes():
    import sys
    workdir = tempfile.mkdtemp(prefix="mrcl-bench-")
    cluster = C.Cluster("minray", sys.executable, workdir).start()
    try:
        cluster.node_b = _connect(cluster)
        yield cluster
    finally:
        ray.shutdown()
        left = cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        assert not left, f"processes outlived the cluster: {left}"


def _b_stats():
    from minray._private import state
    return state.current_client().call("object_stats")


def test_cross_node_tasks_sync(benchmark, two_nodes):
    f = ray.remote(W.noop).options(**ON_B)
    ray.get([f.remote() for _ in range(50)])
    benchmark(lambda: ray.get(f.remote()))


def test_cross_node_tasks_async(benchmark, two_nodes):
    f = ray.remote(W.noop).options(**ON_B)
    ray.get([f.remote() for _ in range(200)])
    benchmark.pedantic(lambda: ray.get([f.remote() for _ in range(1000)]), rounds=5)


def test_cross_node_actor_calls_sync(benchmark, two_nodes):
    a = ray.remote(W.Counter).options(**ON_B).remote()
    ray.get(a.small_value.remote())
    benchmark(lambda: ray.get(a.small_value.remote()))
    ray.kill(a)


def test_cross_node_pull_256mib(benchmark, two_nodes):
    f = ray.remote(W.nbytes_of).options(**ON_B)
    size = 256 * MiB

    def setup():
        return (ray.put(np.full(size, 3, dtype=np.uint8)),), {}

    def pull(ref):
        assert ray.get(f.remote(ref), timeout=120) == size
    benchmark.pedantic(pull, setup=setup, rounds=3)


def test_cross_node_broadcast_one_pull(benchmark, two_nodes):
    """32 MiB to 4 tasks on node B: timed, and node B pulled it once per round."""
    size, n = 32 * MiB, 4
    f = ray.remote(W.first_byte).options(num_cpus=0.5, **ON_B)
    stats = ray.remote(_b_stats).options(**ON_B)
    ray.get([f.remote(np.zeros(8, dtype=np.uint8)) for _ in range(n)])
    pulls = []

    def setup():
        ref = ray.put(np.full(size, 7, dtype=np.uint8))
        pulls.append(ray.get(stats.remote())["num_pulls"])
        return (ref,), {}

    def broadcast(ref):
        assert ray.get([f.remote(ref) for _ in range(n)], timeout=120) == [7] * n
    benchmark.pedantic(broadcast, setup=setup, rounds=3)
    pulls.append(ray.get(stats.remote())["num_pulls"])
    # one pull per round (counted before each round, and once after), not one per task
    assert [b - a for a, b in zip(pulls, pulls[1:])] == [1] * (len(pulls) - 1), pulls


def test_node_sigkill_to_tasks_rerunning(benchmark, tmp_path):
    """A fresh cluster (node B dies): seconds from SIGKILL of B's process group to
    its two tasks running again on the head."""
    import sys
    result = {}

    def run():
        workdir = tempfile.mkdtemp(prefix="mrcl-bench-kill-")
        cluster = C.Cluster("minray", sys.executable, workdir).start()
        try:
            node_b = _connect(cluster)
            result.update(W.kill_and_recover(ray, node_b, cluster.b.pgid,
                                             str(tmp_path / f"m{len(result)}")))
        finally:
            ray.shutdown()
            left = cluster.stop()
            shutil.rmtree(workdir, ignore_errors=True)
            assert not left, f"processes outlived the cluster: {left}"
        return result["all_rerun_s"]
    benchmark.pedantic(run, rounds=1)
    benchmark.extra_info.update(result)    # the figure: all_rerun_s (the time is startup too)
    assert result["ips"] == ["127.0.0.1"], result
