"""Two hosts with their own IP addresses: Linux network namespaces joined by a veth pair.

    netns mr-a (10.77.0.1) --veth-- netns mr-b (10.77.0.2)
    head + driver in mr-a           a node that joins the head over 10.77.0.0/24

Traffic between the nodes can only cross the veth pair: each namespace has its
own loopback, and nothing is routed outside 10.77.0.0/24. Needs root and
iproute2 (CI runs as root); skipped, with the reason, where namespaces cannot
be created.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

pytestmark = pytest.mark.slow

PREFIX = "10.77.0"


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@pytest.fixture
def two_hosts():
    if shutil.which("ip") is None:
        pytest.skip("iproute2 (`ip`) is not installed: apt-get install iproute2")
    if os.geteuid() != 0:
        pytest.skip("creating network namespaces needs root")
    tag = uuid.uuid4().hex[:6]
    a, b = f"mr-a-{tag}", f"mr-b-{tag}"
    va, vb = f"va{tag}", f"vb{tag}"
    try:
        _ip("netns", "add", a)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot create a network namespace here: {exc.stderr.strip()}")
    try:
        _ip("netns", "add", b)
        _ip("link", "add", va, "type", "veth", "peer", "name", vb)
        _ip("link", "set", va, "netns", a)
        _ip("link", "set", vb, "netns", b)
        for ns, dev, addr in ((a, va, f"{PREFIX}.1"), (b, vb, f"{PREFIX}.2")):
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield a, b
    finally:
        for ns in (a, b):
            # Whatever still runs in the namespace goes with it.
            pids = _ip("netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
            _ip("netns", "del", ns, check=False)


def _in(ns, *cmd, **kw):
    return ["ip", "netns", "exec", ns, *cmd]


def _wait_file(path, proc, timeout=30):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None:
            raise AssertionError(f"process exited: {proc.stdout.read()}")
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def _session(temp_dir):
    for _ in range(300):
        names = [n for n in os.listdir(temp_dir)] if os.path.isdir(temp_dir) else []
        if names:
            return os.path.join(temp_dir, names[0])
        time.sleep(0.05)
    raise AssertionError(f"no session under {temp_dir}")


def test_nodes_on_two_hosts_run_one_workload(two_hosts, tmp_path):
    ns_a, ns_b = two_hosts
    head_dir, node_dir = str(tmp_path / "head"), str(tmp_path / "node")
    py = sys.executable
    head = subprocess.Popen(
        _in(ns_a, py, "-m", "minray.scripts", "start", "--head", "--block",
            "--node-ip-address", f"{PREFIX}.1", "--port", "6379", "--num-cpus", "1",
            "--temp-dir", head_dir, "--object-store-memory", str(256 << 20)),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    node = None
    try:
        head_session = _session(head_dir)
        _wait_file(os.path.join(head_session, "cluster.json"), head)
        token = open(os.path.join(head_session, "cluster_token")).read().strip()
        node = subprocess.Popen(
            _in(ns_b, py, "-m", "minray.scripts", "start", "--block",
                "--address", f"{PREFIX}.1:6379", "--node-ip-address", f"{PREFIX}.2",
                "--num-cpus", "2", "--resources", json.dumps({"host_b": 2}),
                "--temp-dir", node_dir, "--object-store-memory", str(256 << 20)),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=dict(os.environ, MINRAY_CLUSTER_TOKEN=token))
        _wait_file(os.path.join(_session(node_dir), "cluster.json"), node)
        with open(os.path.join(_session(node_dir), "cluster.json")) as f:
            assert json.load(f)["node_ip_address"] == f"{PREFIX}.2"

        driver = textwrap.dedent(f"""
            import numpy as np
            import minray as ray
            ray.init(address="{PREFIX}.1:6379", _temp_dir={head_dir!r})
            ips = sorted(n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"])
            print("nodes:", ips)

            @ray.remote(resources={{"host_b": 1}})
            def on_b(a):
                import socket
                return ray.util.get_node_ip_address(), float(a.sum()), a * 3

            a = np.arange(100_000, dtype=np.float64)
            ip, total, tripled = ray.get(on_b.remote(a), timeout=60)
            assert np.array_equal(tripled, a * 3)
            print("ran on:", ip, total)
        """)
        out = subprocess.run(_in(ns_a, py, "-c", driver), capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"nodes: ['{PREFIX}.1', '{PREFIX}.2']" in out.stdout
        assert f"ran on: {PREFIX}.2 {float(sum(range(100_000)))}" in out.stdout
        # The head never saw the node from anywhere but its 10.77.0.2 address.
        log = open(os.path.join(head_session, "logs", "node_manager.log")).read()
        assert f"joined from {PREFIX}.2:" in log
    finally:
        for p in (node, head):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
