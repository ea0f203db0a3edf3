"""Chapter 9, clusters: start a head and a second node with `minray start`, run work on both.

Everything runs on this machine: the head binds 127.0.0.1 and the second node 127.0.0.2
(Linux routes all of 127/8 to loopback), each with its own temp folder, exactly as two
machines on a LAN would be started (see docs/cluster.md; there, use the LAN addresses).
The script stops only the two nodes it started (`minray stop --temp-dir ...`).

Run: python docs/examples/ch09_clusters.py   (about 10 s; see docs/tutorials/clusters.md)
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import minray as ray
from minray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

MINRAY = [sys.executable, "-m", "minray.scripts"]     # the `minray` command


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def minray(*args, env=None):
    """Run a `minray ...` command, echo it, and return its output."""
    print("$ minray", " ".join(args))
    out = subprocess.run(MINRAY + list(args), capture_output=True, text=True, timeout=60,
                         env=env)
    if out.returncode != 0:
        raise RuntimeError(f"minray {args[0]} failed: {out.stderr}")
    return out.stdout


workdir = tempfile.mkdtemp(prefix="minray_ch09_")
head_dir, node_dir = os.path.join(workdir, "head"), os.path.join(workdir, "node")
port = free_port()
try:
    # 1. The head: it keeps the table of nodes; its token authenticates everyone else.
    out = minray("start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                 "--num-cpus", "2", "--dashboard-port", str(free_port()),
                 "--object-store-memory", str(256 << 20), "--temp-dir", head_dir)
    token = re.search(r"MINRAY_CLUSTER_TOKEN=(\S+)", out).group(1)
    print("  head started; join command printed with its token")

    # 2. A second node joins with the token (on a LAN: run this on the other machine).
    minray("start", "--address", f"127.0.0.1:{port}", "--node-ip-address", "127.0.0.2",
           "--num-cpus", "2", "--object-store-memory", str(256 << 20), "--temp-dir", node_dir,
           env=dict(os.environ, MINRAY_CLUSTER_TOKEN=token))

    # 3. A driver on the head's machine joins the cluster through its local node.
    ray.init(address="auto", _temp_dir=head_dir)
    alive = [n for n in ray.nodes() if n["Alive"]]
    print(f"cluster: {len(alive)} nodes, resources {ray.cluster_resources()['CPU']:g} CPUs")
    assert len(alive) == 2

    @ray.remote
    def where():
        time.sleep(0.2)     # long enough that the tasks overlap and each needs a worker
        return ray.util.get_node_ip_address()

    # 4. SPREAD places tasks on the nodes in turn. (Like Ray, a worker that finishes a task
    #    may be handed the next one of the same kind, so tasks that end at once can share.)
    ips = ray.get([where.options(scheduling_strategy="SPREAD").remote() for _ in range(8)])
    print("SPREAD tasks ran on:", sorted(set(ips)))
    assert set(ips) == {"127.0.0.1", "127.0.0.2"}

    # 5. An actor pinned to the second node; it is reached over TCP like a local one.
    other = next(n for n in alive if n["NodeManagerAddress"] == "127.0.0.2")

    @ray.remote
    class Greeter:
        def hello(self):
            return f"hello from {ray.util.get_node_ip_address()} (pid {os.getpid()})"

    greeter = Greeter.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        other["NodeID"], soft=False)).remote()
    print("actor:", ray.get(greeter.hello.remote()))

    # 6. A large array made on one node is pulled by a task on the other.
    @ray.remote
    def make(n):
        import numpy as np
        return np.ones(n, dtype=np.uint8)

    @ray.remote
    def total(array):
        return int(array.sum()), ray.util.get_node_ip_address()

    big = make.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        other["NodeID"], soft=False)).remote(16 << 20)
    head_id = next(n for n in alive if n["NodeManagerAddress"] == "127.0.0.1")["NodeID"]
    summed, ip = ray.get(total.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        head_id, soft=False)).remote(big))
    print(f"objects: a 16 MiB array made on 127.0.0.2 was summed on {ip}: {summed}")
    assert summed == 16 << 20

    ray.shutdown()
    print(minray("status", "--temp-dir", head_dir).rstrip())
finally:
    ray.shutdown()
    for folder in (node_dir, head_dir):      # the worker node first, then the head
        if os.path.isdir(folder):
            print(minray("stop", "--temp-dir", folder).rstrip())
    shutil.rmtree(workdir, ignore_errors=True)
print("ch09 ok")
