"""A head and two nodes, each its own process tree, on 127.0.0.1/.2/.3.

One cluster serves the module (nodes take a second each to start); the tests
that kill a node start their own. Every node is a real `minray start --block`
process; drivers are this test process (init with the cluster's address) or
scripts run as subprocesses.
"""

import os
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import minray as ray
from minray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

sys.path.insert(0, os.path.dirname(__file__))
from cluster_utils import Cluster, connected_cluster  # noqa: E402
from helpers import wait_until  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with connected_cluster(ray, tmp_path_factory.mktemp("cluster"), [
            ("127.0.0.2", dict(num_cpus=2, resources={"special": 2})),
            ("127.0.0.3", dict(num_cpus=1, resources={"other": 1}))]) as c:
        yield c


def wait_available(resource, amount, timeout=10):
    """Until the cluster has ``amount`` of ``resource`` free (earlier leases went back)."""
    assert wait_until(lambda: ray.available_resources().get(resource) == amount,
                      timeout=timeout), ray.available_resources()


def node_of():
    return ray.get_runtime_context().get_node_id()


def test_the_cluster_view_covers_every_node(cluster):
    nodes = {n["NodeManagerAddress"]: n for n in ray.nodes()}
    assert set(nodes) == {"127.0.0.1", "127.0.0.2", "127.0.0.3"}
    assert all(n["Alive"] for n in nodes.values())
    assert nodes["127.0.0.2"]["Resources"]["special"] == 2.0
    total = ray.cluster_resources()
    assert total["CPU"] == 4.0 and total["special"] == 2.0 and total["other"] == 1.0
    assert total["node:127.0.0.2"] == 1.0
    wait_available("CPU", 4.0)


def test_tasks_go_to_the_node_with_the_resource(cluster):
    by_ip = {n["NodeManagerAddress"]: n["NodeID"] for n in ray.nodes()}
    special = ray.remote(resources={"special": 1})(node_of)
    other = ray.remote(resources={"other": 1})(node_of)
    assert set(ray.get([special.remote() for _ in range(4)], timeout=60)) == \
        {by_ip["127.0.0.2"]}
    assert ray.get(other.remote(), timeout=60) == by_ip["127.0.0.3"]


def test_node_affinity_picks_the_named_node(cluster):
    by_ip = {n["NodeManagerAddress"]: n["NodeID"] for n in ray.nodes()}
    target = by_ip["127.0.0.3"]
    f = ray.remote(node_of).options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(target, soft=False))
    assert ray.get(f.remote(), timeout=60) == target


def test_tasks_spill_to_other_nodes_when_the_local_one_is_full(cluster):
    @ray.remote
    def slow(_):
        time.sleep(0.5)
        return node_of()

    used = ray.get([slow.remote(i) for i in range(8)], timeout=60)
    assert len(set(used)) >= 2, used


def test_spread_and_soft_affinity_across_nodes(cluster):
    by_ip = {n["NodeManagerAddress"]: n["NodeID"] for n in ray.nodes()}

    @ray.remote
    def where():
        time.sleep(0.2)
        return node_of()

    spread = ray.get([where.options(scheduling_strategy="SPREAD").remote()
                      for _ in range(6)], timeout=60)
    assert len(set(spread)) >= 2, spread
    wait_available("CPU", 4.0)     # idle leases went back
    time.sleep(0.6)    # and the nodes' heartbeats said so
    soft = NodeAffinitySchedulingStrategy(by_ip["127.0.0.3"], soft=True)
    assert ray.get(where.options(scheduling_strategy=soft).remote(), timeout=60) == \
        by_ip["127.0.0.3"]


def test_a_task_runs_where_its_large_argument_is(cluster):
    """Locality: a task whose large argument is in node B's store runs on B (it has
    room). (Small arguments give no preference: tests/unit/test_policy.py.)"""
    by_ip = {n["NodeManagerAddress"]: n["NodeID"] for n in ray.nodes()}
    b = by_ip["127.0.0.2"]
    on_b = NodeAffinitySchedulingStrategy(b, soft=False)

    @ray.remote
    def make(n):
        return np.ones(n, dtype=np.uint8)

    @ray.remote
    def where(x):
        return node_of(), len(x)

    big = make.options(scheduling_strategy=on_b).remote(16 << 20)   # > a transfer chunk
    ray.wait([big], timeout=60)
    wait_available("CPU", 4.0)
    time.sleep(0.6)    # the nodes' heartbeats said so
    assert ray.get(where.remote(big), timeout=60) == (b, 16 << 20)


def test_a_strict_spread_placement_group_spans_the_nodes(cluster):
    from minray.util.placement_group import placement_group, remove_placement_group
    from minray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    wait_available("CPU", 4.0)     # earlier leases went back
    pg = placement_group([{"CPU": 1}] * 3, strategy="STRICT_SPREAD")
    ray.get(pg.ready(), timeout=60)
    where = ray.remote(num_cpus=1)(node_of)
    placed = [ray.get(where.options(scheduling_strategy=PlacementGroupSchedulingStrategy(
        pg, i)).remote(), timeout=60) for i in range(3)]
    assert len(set(placed)) == 3, placed

    @ray.remote(num_cpus=1)
    class InBundle:
        def node(self):
            return node_of()

    a = InBundle.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 1)).remote()
    assert ray.get(a.node.remote(), timeout=60) == placed[1]
    ray.kill(a)
    remove_placement_group(pg)
    wait_available("CPU", 4.0)


def test_large_values_cross_nodes_bit_exact(cluster):
    @ray.remote(resources={"special": 1})
    def roundtrip(a, b):
        return a * 2, b[::-1].copy()

    rng = np.random.default_rng(0)
    a = rng.random(300_000)            # 2.4 MB: goes through the driver's store
    b = ray.put(rng.random(200_000))   # a stored object passed by reference
    doubled, reversed_b = ray.get(roundtrip.options(num_returns=2).remote(a, b), timeout=60)
    assert np.array_equal(doubled, a * 2)
    assert np.array_equal(reversed_b, ray.get(b)[::-1])


def test_refs_inside_values_cross_nodes_both_ways(cluster):
    """Refs nested in arguments reach a task on another node (the driver owns them),
    and a ref a remote task puts and returns can be got by the driver."""
    @ray.remote(resources={"special": 1})
    def total(refs):
        return [float(np.asarray(ray.get(r)).sum()) for r in refs]

    @ray.remote(resources={"other": 1})
    def produce():
        return [ray.put(np.arange(10)), ray.put(np.ones(50_000))]

    small, big = ray.put(5), ray.put(np.ones(100_000))
    assert ray.get(total.remote([small, big]), timeout=60) == [5.0, 100000.0]
    inner_small, inner_big = ray.get(produce.remote(), timeout=60)
    assert ray.get(inner_small, timeout=30).tolist() == list(range(10))
    assert float(ray.get(inner_big, timeout=30).sum()) == 50000.0

    # Refs whose values are still being computed when they cross.
    @ray.remote
    def slow_value(x):
        time.sleep(0.5)
        return x

    @ray.remote(resources={"other": 1})
    def submit_and_return():
        return [slow_value.remote(7)]

    pending = slow_value.remote(np.ones(30_000))
    assert ray.get(total.remote([pending]), timeout=60) == [30000.0]
    (inner,) = ray.get(submit_and_return.remote(), timeout=60)
    assert ray.get(inner, timeout=60) == 7


def test_an_actor_on_another_node(cluster):
    """Placed where its resource is; calls, logs, named lookup, a restart after its
    process is SIGKILLed, and ray.kill, all from the driver's node."""
    by_ip = {n["NodeManagerAddress"]: n["NodeID"] for n in ray.nodes()}

    @ray.remote(resources={"special": 1}, max_restarts=1, max_task_retries=1)
    class Counter:
        def __init__(self):
            self.n = 0

        def add(self, k):
            self.n += k
            return self.n

        def where(self):
            return node_of(), os.getpid()

        def big(self):
            return np.arange(200_000)

    a = Counter.options(name="remote-counter").remote()
    assert [ray.get(a.add.remote(i), timeout=60) for i in range(4)] == [0, 1, 3, 6]
    node, pid = ray.get(a.where.remote(), timeout=30)
    assert node == by_ip["127.0.0.2"]
    assert ray.get(a.big.remote(), timeout=30).tolist() == list(range(200_000))
    assert ray.get(ray.get_actor("remote-counter").add.remote(10), timeout=30) == 16
    os.kill(pid, 9)
    assert ray.get(a.add.remote(1), timeout=60) == 1     # restarted: state is new
    assert ray.get(a.where.remote(), timeout=30)[1] != pid
    ray.kill(a)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(a.add.remote(1), timeout=30)
    wait_available("special", 2.0)


def test_named_actors_and_handles_are_cluster_wide(cluster, tmp_path):
    """A named actor kept by the head's node is found by a driver on another node, and
    a handle passed to a task on a third node works there."""
    @ray.remote
    class Board:
        def __init__(self):
            self.notes = []

        def post(self, note):
            self.notes.append(note)
            return len(self.notes)

        def read(self):
            return list(self.notes)

    board = Board.options(name="board", namespace="lr", lifetime="detached").remote()
    assert ray.get(board.post.remote("driver"), timeout=30) == 1

    @ray.remote(resources={"other": 1})
    def post_from_node3(handle):
        return ray.get(handle.post.remote("node 3"))

    assert ray.get(post_from_node3.remote(board), timeout=60) == 2
    script = tmp_path / "other_driver.py"
    script.write_text(textwrap.dedent("""
        import minray as ray
        ray.init(address="auto", _temp_dir=%r)
        b = ray.get_actor("board", namespace="lr")
        print("count:", ray.get(b.post.remote("node 2 driver")))
        try:
            ray.get_actor("no-such-board", namespace="lr")
        except ValueError as exc:
            print("missing:", "no-such-board" in str(exc))
    """ % cluster.nodes[1].temp_dir))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "count: 3" in out.stdout and "missing: True" in out.stdout
    assert ray.get(board.read.remote(), timeout=30) == ["driver", "node 3", "node 2 driver"]
    ray.kill(board)


def test_remote_errors_keep_their_type_and_traceback(cluster):
    @ray.remote(resources={"other": 1})
    def fails():
        raise KeyError("missing on node 3")

    with pytest.raises(KeyError) as info:
        ray.get(fails.remote(), timeout=60)
    assert "missing on node 3" in str(info.value)
    assert "fails" in str(info.value)   # the remote traceback names the function


def test_a_script_with_address_auto_sees_the_cluster(cluster, tmp_path):
    script = tmp_path / "chapter9.py"
    script.write_text(textwrap.dedent("""
        import minray as ray
        ray.init(address="auto", _temp_dir=%r)
        print("CPUs:", ray.cluster_resources()["CPU"])

        @ray.remote(resources={"special": 1})
        def hello(i):
            print("hello from a task", i)
            return i * i

        print("sum:", sum(ray.get([hello.remote(i) for i in range(10)])))
    """ % cluster.nodes[1].temp_dir))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "CPUs: 4.0" in out.stdout and "sum: 285" in out.stdout
    # Worker output from the node that ran the tasks reaches the driver.
    assert "hello from a task" in out.stdout + out.stderr


def test_an_unauthenticated_connection_is_refused_and_logged(cluster):
    with socket.create_connection(("127.0.0.1", cluster.port), timeout=5) as s:
        hello = s.recv(64)
        assert hello.startswith(b"MINRAY1")
        s.sendall(b"\0" * 64)           # not the HMAC of the challenge
        s.settimeout(5)
        assert s.recv(64) == b""         # closed: nothing was ever read as a message
    assert wait_until(lambda: "refused a TCP connection" in cluster.head.log(), timeout=5), \
        cluster.head.log()
    assert "wrong cluster token" in cluster.head.log()
    # The head is still fine.
    assert len([n for n in ray.nodes() if n["Alive"]]) == 3


def test_a_node_with_the_wrong_token_cannot_join(cluster):
    out = subprocess.run(
        [sys.executable, "-m", "minray.scripts", "start", "--address", cluster.address,
         "--node-ip-address", "127.0.0.4", "--temp-dir", str(cluster.tmp_path / "bad"),
         "--token", "not-the-token"], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "token" in (out.stdout + out.stderr).lower()
    assert len([n for n in ray.nodes() if n["Alive"]]) == 3


def test_sigkill_of_a_node_mid_workload(tmp_path):
    """The head notices within seconds; the tasks that were running there run again
    elsewhere and every result is right."""
    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(tmp_path)
    try:
        c.start_head(num_cpus=2)
        victim = c.add_node("127.0.0.2", num_cpus=2)
        ray.init(address=c.address, _temp_dir=c.head.temp_dir)
        c.wait_for_nodes(ray, 2)
        marker = tmp_path / "started"

        @ray.remote(max_retries=3)
        def work(i, marker):
            if ray.get_runtime_context().get_node_id() != head_id:
                open(marker, "a").close()
            time.sleep(1.0)
            return i * 10

        head_id = ray.get_runtime_context().get_node_id()
        refs = [work.remote(i, str(marker)) for i in range(8)]
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert time.monotonic() < deadline, "no task reached the second node"
            time.sleep(0.05)
        t_kill = time.monotonic()
        c.kill_node(victim)
        assert ray.get(refs, timeout=90) == [i * 10 for i in range(8)]
        while any(n["Alive"] for n in ray.nodes() if n["NodeManagerAddress"] == "127.0.0.2"):
            assert time.monotonic() - t_kill < 10, "the dead node is still listed alive"
            time.sleep(0.1)
        assert ray.cluster_resources()["CPU"] == 2.0
    finally:
        ray.shutdown()
        c.shutdown()


def test_an_actor_on_a_killed_node_restarts_on_another(tmp_path):
    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(tmp_path)
    try:
        c.start_head(num_cpus=1)
        victim = c.add_node("127.0.0.2", num_cpus=1)
        ray.init(address=c.address, _temp_dir=c.head.temp_dir)
        c.wait_for_nodes(ray, 2)
        head_id = ray.get_runtime_context().get_node_id()

        @ray.remote
        def hold(seconds):
            time.sleep(seconds)
            return True

        held = hold.remote(3.0)           # the head's only CPU is busy for a while
        assert wait_until(lambda: ray.available_resources().get("CPU", 0) <= 1.0)

        @ray.remote(num_cpus=1, max_restarts=1, max_task_retries=-1)
        class Where:
            def node(self):
                return node_of()

        a = Where.remote()
        first = ray.get(a.node.remote(), timeout=60)
        assert first != head_id
        c.kill_node(victim)
        assert ray.get(a.node.remote(), timeout=60) == head_id
        assert ray.get(held, timeout=30)
    finally:
        ray.shutdown()
        c.shutdown()
