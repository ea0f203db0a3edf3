"""Pool, joblib and dask across the nodes of a real cluster (head + one node, each its
own `minray start` process tree on its own loopback address)."""
import os
import sys

import pytest

import minray as ray
from minray.util.multiprocessing import Pool

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "cluster"))
from cluster_utils import connected_cluster  # noqa: E402

pytestmark = pytest.mark.slow


def where(_):
    return ray.get_runtime_context().get_node_id(), os.getpid()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with connected_cluster(ray, tmp_path_factory.mktemp("pool-cluster"),
                           [("127.0.0.2", dict(num_cpus=2))], head_cpus=2) as c:
        yield c


def test_pool_spans_the_clusters_nodes(cluster):
    with Pool() as pool:              # processes: the cluster's 4 CPUs
        places = pool.map(where, range(40), chunksize=1)
    nodes = {node for node, _ in places}
    assert len(nodes) == 2            # SPREAD put the pool's actors on both nodes
    assert len({pid for _, pid in places}) == 4
    with pytest.raises(ValueError, match="only 4 CPUs"):
        Pool(processes=5)


def test_imap_and_apply_across_nodes(cluster):
    with Pool(processes=4) as pool:
        assert list(pool.imap(abs, range(-20, 0), chunksize=3)) == list(range(20, 0, -1))
        with pytest.raises(ZeroDivisionError) as info:
            pool.apply(divmod, (1, 0))
        assert "divmod" in str(info.value.__cause__) or info.value.__cause__ is not None


SECOND_DRIVER = """
import os, minray as ray
from minray.util.multiprocessing import Pool
pool = Pool()                     # RAY_ADDRESS=auto: join the running head, use its CPUs
print(int(ray.cluster_resources()["CPU"]), len(set(pool.map(lambda _: os.getpid(),
                                                             range(12), chunksize=1))))
pool.terminate()
pool.join()
"""


def test_pool_in_another_driver_joins_a_running_head_through_ray_address():
    import shutil
    import subprocess
    import tempfile

    from cluster_utils import free_port
    if ray.is_initialized():
        ray.shutdown()
    # Its sessions live in a folder of its own (short: Unix socket paths are limited to
    # 108 bytes, and pytest's tmp_path is long).
    short_tmp = tempfile.mkdtemp(prefix="mrp", dir="/tmp")
    env = dict(os.environ, TMPDIR=short_tmp)
    minray = [sys.executable, "-m", "minray.scripts"]
    start = subprocess.run(minray + ["start", "--head", "--num-cpus", "3", "--port",
                                     str(free_port()), "--dashboard-port", str(free_port())],
                           env=env, capture_output=True, text=True, timeout=60)
    assert start.returncode == 0, start.stderr
    try:
        out = subprocess.run([sys.executable, "-c", SECOND_DRIVER],
                             env=dict(env, RAY_ADDRESS="auto"), capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["3", "3"]       # the head's 3 CPUs -> 3 pool processes
    finally:
        stop = subprocess.run(minray + ["stop"], env=env, capture_output=True, text=True,
                              timeout=60)
        shutil.rmtree(short_tmp, ignore_errors=True)
        assert "stopped 1 node" in stop.stdout, stop.stdout + stop.stderr
