"""Cross-node workloads, written once against the Ray API (minray or Ray 2.60).

A driver on the head node (127.0.0.1) sends work to a second node (127.0.0.2)
that alone has the custom resource ``node_b``. ``bench/cluster_compare.py``
starts both nodes the way a user would, then runs this file as a script in the
backend's own interpreter:

    python bench/cluster_workloads.py --backend minray --address 127.0.0.1:6390 \\
        --node-b-root PID [--kill]

which prints one JSON line: {"figures": {...}, "kill": {...}}. With ``--kill``
the driver, after the figures, SIGKILLs node B's whole process group while B
runs work that may run elsewhere, and times how long that work takes to run
again on the head.

Bytes that cross into node B during the broadcast: for Ray, the kernel's
per-socket ``bytes_received`` (``ss -ti``) summed over every TCP socket of node
B's process tree (its raylet and workers: Ray's object manager keeps its
connections open); for minray, node B's pull statistics (``object_stats``),
since each pull streams on a connection of its own that is closed (and its
kernel counters gone) once the bytes are in.
"""

import argparse
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np

MiB = 1 << 20
GiB = 1 << 30
B_IP = "127.0.0.2"      # node B's address; the head's is 127.0.0.1


# --------------------------------------------------------- node B's traffic
def process_tree(root):
    """``root`` and every process descended from it (read from /proc: no psutil)."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(name))
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in tree:
            tree.add(pid)
            todo.extend(children.get(pid, ()))
    return tree


def tcp_bytes_received(pids):
    """Bytes the kernel delivered to the established TCP sockets of ``pids``, summed
    (``ss -tinp``: one socket is a line with users:(...pid=N...) and an info line)."""
    out = subprocess.run(["ss", "-tinpH", "state", "established"], capture_output=True,
                         text=True, check=True).stdout
    total, owner_hit = 0, False
    for line in out.splitlines():
        if not line.startswith(("\t", " ")):
            owner_hit = any(f"pid={p}," in line for p in _pids_in(line) & pids) \
                if "users:" in line else False
            continue
        if owner_hit:
            for field in line.split():
                if field.startswith("bytes_received:"):
                    total += int(field.split(":")[1])
    return total


def _pids_in(line):
    found = set()
    for part in line.split("pid=")[1:]:
        digits = part.split(",")[0]
        if digits.isdigit():
            found.add(int(digits))
    return found


class Traffic:
    """Bytes received by node B's processes since ``start()``."""

    def __init__(self, root):
        self.root = root

    def start(self):
        self.pids = process_tree(self.root)
        self.before = tcp_bytes_received(self.pids)

    def received(self):
        # Sockets of processes that started since (a new worker) count from zero.
        pids = self.pids | process_tree(self.root)
        return tcp_bytes_received(pids) - self.before


# --------------------------------------------------------- the workloads
def noop(x=None):
    return x


def first_byte(a):
    return int(a[0]) + a.nbytes * 0


def nbytes_of(a):
    return int(a.nbytes)


class Counter:
    def small_value(self, x=None):
        return b"ok"


def _rate(fn, n):
    t = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t)


def tasks_sync(ray, on_b, n=500):
    f = ray.remote(noop).options(**on_b)
    ray.get([f.remote() for _ in range(50)])

    def run():
        for _ in range(n):
            ray.get(f.remote())
    return _rate(run, n)


def tasks_async(ray, on_b, n=3000):
    f = ray.remote(noop).options(**on_b)
    ray.get([f.remote() for _ in range(200)])
    return _rate(lambda: ray.get([f.remote() for _ in range(n)]), n)


def actor_calls_sync(ray, on_b, n=1000):
    a = ray.remote(Counter).options(**on_b).remote()
    ray.get([a.small_value.remote() for _ in range(50)])

    def run():
        for _ in range(n):
            ray.get(a.small_value.remote())
    rate = _rate(run, n)
    ray.kill(a)
    return rate


def transfer(ray, on_b, size=GiB, reps=3, raw=None):
    """Seconds for a task on node B to get a ``size``-byte array put by the driver on
    the head (the object pulled across, plus one task round trip). With ``raw`` (a
    RawTcp), each pull is paired with a raw TCP copy of as many bytes on the same
    link just before it: on a shared, noisy machine the ratio of a pair holds where
    figures from different moments do not."""
    f = ray.remote(nbytes_of).options(**on_b)
    ray.get(f.remote(np.zeros(8, dtype=np.uint8)))
    times, raw_times = [], []
    for i in range(reps):
        arr = np.full(size, i + 1, dtype=np.uint8)
        ref = ray.put(arr)
        if raw is not None:
            raw_times.append(raw.copy(arr))
        del arr
        t = time.perf_counter()
        assert ray.get(f.remote(ref), timeout=300) == size
        times.append(time.perf_counter() - t)
        del ref
        time.sleep(1.0)     # both nodes free their copies before the next one
    out = {"seconds": min(times), "gb_per_s": size / min(times) / 1e9, "runs_s": times}
    if raw_times:
        ratios = sorted(r / t for r, t in zip(raw_times, times))
        out.update(raw_runs_s=raw_times, raw_gb_per_s=size / min(raw_times) / 1e9,
                   of_raw=ratios[(len(ratios) - 1) // 2])
    return out


# --------------------------------------------------------- the link's limit
def raw_receiver(port_file, host=B_IP):
    """A plain TCP receiver on ``host``: per connection, an 8-byte length, then that
    many bytes read with recv_into into a fresh buffer, then a 1-byte answer."""
    srv = socket.socket()
    srv.bind((host, 0))
    srv.listen(4)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(srv.getsockname()[1]))
    os.rename(port_file + ".tmp", port_file)
    while True:
        conn, _ = srv.accept()
        with conn:
            head = conn.recv(8, socket.MSG_WAITALL)
            if len(head) < 8:
                return          # the sender is done
            size = int.from_bytes(head, "little")
            buf = np.empty(size, dtype=np.uint8)     # fresh, as a new copy would be
            view, got = memoryview(buf), 0
            while got < size:
                n = conn.recv_into(view[got:])
                if not n:
                    raise ConnectionError("sender closed early")
                got += n
            del view
            conn.sendall(b"k")


class RawTcp:
    """A receiver process on node B's address, and copies to it from the head's."""

    def __init__(self, python=sys.executable, head_ip="127.0.0.1"):
        import tempfile
        self.head_ip = head_ip
        self.port_file = tempfile.mktemp(prefix="mrcl-port-")
        code = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r});"
                f" import cluster_workloads as W; W.raw_receiver({self.port_file!r})")
        self.proc = subprocess.Popen([python, "-c", code])
        deadline = time.monotonic() + 30
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError("the raw TCP receiver did not start")
            time.sleep(0.02)
        with open(self.port_file) as f:
            self.port = int(f.read())

    def copy(self, data):
        """Seconds to send ``data`` (a numpy array) and hear that it all arrived."""
        data = memoryview(np.ascontiguousarray(data)).cast("B")
        t = time.perf_counter()
        with socket.create_connection((B_IP, self.port),
                                      source_address=(self.head_ip, 0)) as s:
            s.sendall(len(data).to_bytes(8, "little"))
            s.sendall(data)
            if s.recv(1) != b"k":
                raise ConnectionError("no answer from the raw TCP receiver")
        return time.perf_counter() - t

    def close(self):
        if self.proc.poll() is None:
            try:
                socket.create_connection((B_IP, self.port), timeout=5).close()
                self.proc.wait(timeout=10)
            except (OSError, AttributeError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)


def broadcast(ray, on_b, traffic, n_tasks=4, size=100 * MiB, extra=None):
    """One ``size``-byte object read by ``n_tasks`` tasks on node B at once."""
    f = ray.remote(first_byte).options(num_cpus=0.5, **on_b)
    # Warm: the workers that will run the tasks exist before the clock starts.
    ray.get([f.remote(np.zeros(8, dtype=np.uint8)) for _ in range(n_tasks)])
    ref = ray.put(np.full(size, 7, dtype=np.uint8))
    before = extra() if extra else None
    traffic.start()
    t = time.perf_counter()
    assert ray.get([f.remote(ref) for _ in range(n_tasks)], timeout=300) == [7] * n_tasks
    seconds = time.perf_counter() - t
    received = traffic.received()
    out = {"seconds": seconds, "tasks": n_tasks, "socket_bytes": received,
           "copies_received": round(received / size, 2), "counted_by": "socket counters"}
    if extra:
        # minray pulls each copy on a connection of its own, closed once the bytes
        # are in: gone before ss can read its counters. Its store counts them.
        after = extra()
        out["num_pulls"] = after["num_pulls"] - before["num_pulls"]
        out["pulled_bytes"] = after["pulled_bytes"] - before["pulled_bytes"]
        out["copies_received"] = round(out["pulled_bytes"] / size, 2)
        out["counted_by"] = "node B's pull statistics"
    del ref
    time.sleep(0.5)
    return out


def where(marker_dir, i, t_sleep):
    """Runs on node B until B is killed; once retried elsewhere, returns at once."""
    started = time.time()
    ip = _node_ip()
    if ip == B_IP:
        with open(os.path.join(marker_dir, f"started-{i}"), "w") as f:
            f.write(str(started))
        time.sleep(t_sleep)     # never finishes on B: B is killed first
    return ip, started


def _node_ip():
    try:
        import minray
        return minray.util.get_node_ip_address()
    except ImportError:
        import ray
        return ray.util.get_node_ip_address()


def kill_and_recover(ray, node_b_id, b_pgid, marker_dir, n_tasks=2, timeout=120):
    """Tasks preferring node B (soft affinity) run there; SIGKILL B's process group;
    the time until each runs again elsewhere (its start on the head) and returns."""
    strategy = importlib.import_module(
        ray.__name__ + ".util.scheduling_strategies").NodeAffinitySchedulingStrategy
    f = ray.remote(where).options(num_cpus=1, max_retries=3,
                                  scheduling_strategy=strategy(node_b_id, soft=True))
    # The head has n_tasks CPUs free for the retries; warm its workers first.
    g = ray.remote(noop).options(num_cpus=1)
    ray.get([g.remote() for _ in range(n_tasks)])
    os.makedirs(marker_dir, exist_ok=True)
    refs = [f.remote(marker_dir, i, 600) for i in range(n_tasks)]
    deadline = time.monotonic() + 60
    while len(os.listdir(marker_dir)) < n_tasks:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the tasks never all started on node B: "
                               f"{os.listdir(marker_dir)}")
        # Soft affinity may place a task elsewhere while the scheduler still counts
        # B's CPUs as busy (the previous workload's): it returns at once, with no
        # marker; submit it again until all run on B.
        for i, ref in enumerate(refs):
            if not os.path.exists(os.path.join(marker_dir, f"started-{i}")) and \
                    ray.wait([ref], timeout=0)[0]:
                refs[i] = f.remote(marker_dir, i, 600)
        time.sleep(0.05)
    t_kill = time.time()
    os.killpg(b_pgid, signal.SIGKILL)
    got = ray.get(refs, timeout=timeout)
    t_done = time.time()
    starts = sorted(s for ip, s in got)
    return {"tasks": n_tasks, "ips": sorted({ip for ip, _ in got}),
            "first_rerun_s": starts[0] - t_kill, "all_rerun_s": starts[-1] - t_kill,
            "all_done_s": t_done - t_kill}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", required=True, choices=("minray", "ray"))
    parser.add_argument("--address", required=True)
    parser.add_argument("--node-b-root", type=int, required=True,
                        help="pid of node B's `start --block` process (its group leader)")
    parser.add_argument("--temp-dir", default=None, help="minray: the head's --temp-dir")
    parser.add_argument("--marker-dir", default=None,
                        help="a fresh folder for the kill test's markers")
    parser.add_argument("--size", type=int, default=GiB)
    parser.add_argument("--only", default=None)
    parser.add_argument("--kill", action="store_true")
    args = parser.parse_args()
    ray = importlib.import_module(args.backend)
    if args.backend == "ray":
        ray.init(address=args.address, log_to_driver=False)
    else:
        ray.init(address=args.address, log_to_driver=False, _temp_dir=args.temp_dir)
    deadline = time.monotonic() + 90
    while True:     # node B may still be joining
        nodes = {n["NodeManagerAddress"]: n["NodeID"] for n in ray.nodes() if n["Alive"]}
        if B_IP in nodes and ray.cluster_resources().get("node_b"):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"node B ({B_IP}) never joined: {ray.nodes()}")
        time.sleep(0.2)
    node_b = nodes[B_IP]
    on_b = {"resources": {"node_b": 0.001}}
    traffic = Traffic(args.node_b_root)
    extra = None
    if args.backend == "minray":
        from minray._private import state

        def stats():
            return state.current_client().call("object_stats")

        b_stats = ray.remote(stats).options(**on_b)
        def extra():
            return ray.get(b_stats.remote())
    figures = {}
    only = set(args.only.split(",")) if args.only else None
    raw = RawTcp() if only is None or "transfer" in only else None
    todo = [("tasks_sync", lambda: tasks_sync(ray, on_b)),
            ("tasks_async", lambda: tasks_async(ray, on_b)),
            ("actor_calls_sync", lambda: actor_calls_sync(ray, on_b)),
            ("transfer", lambda: transfer(ray, on_b, size=args.size, raw=raw)),
            ("broadcast", lambda: broadcast(ray, on_b, traffic, extra=extra))]
    for name, fn in todo:
        if only is None or name in only:
            print(f"    {args.backend} {name} ...", file=sys.stderr, flush=True)
            figures[name] = fn()
    if raw is not None:
        raw.close()
    result = {"figures": figures}
    if args.kill:
        print(f"    {args.backend} kill ...", file=sys.stderr, flush=True)
        try:
            result["kill"] = kill_and_recover(ray, node_b, os.getpgid(args.node_b_root),
                                              args.marker_dir)
        except Exception as exc:    # noqa: BLE001 - the figures above still count
            result["kill"] = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result), flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
