"""Two nodes on one machine: minray against Ray 2.60, side by side, in one run.

    python -m bench.cluster_compare [--ray-python /path/to/venv/bin/python] [--repeat 3]

Each run starts a cluster the way a user starts one, for both backends alike: a
head on 127.0.0.1 (`minray start --head --block` / `ray start --head --block`,
2 CPUs) and a second node on 127.0.0.2 (`... start --address --block`, 2 CPUs and
the custom resource ``node_b`` that only it has), each node its own process
group. A driver on the head then runs bench/cluster_workloads.py against node B,
ends by SIGKILLing B's process group, and the whole cluster is stopped. Runs
alternate backends; every run's figure is listed and the table shows the
medians.

Linux routes all of 127/8 over loopback, so "the link" is the loopback device.
Its limit is a raw TCP copy of the same 1 GiB from 127.0.0.1 to a receiver
process on 127.0.0.2 that reads it into a fresh buffer with recv_into; the
driver makes one just before each pull, and each pull is compared with its own
raw copy (on a shared machine, figures from different moments do not compare).
Ray 2.60 replaces a head address of 127.0.0.1 by the machine's own address
(also loopback-routed): its head listens there.
"""

import argparse
import json
import os
import platform
import shutil
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cluster_workloads as W  # noqa: E402

WORKLOADS_PY = os.path.join(HERE, "cluster_workloads.py")
HEAD_IP, B_IP = "127.0.0.1", W.B_IP
GiB = 1 << 30
STORE_BYTES = int(2.25 * GiB)     # per node: the 1 GiB object and its copy fit


def free_port(host=HEAD_IP):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ clusters
class NodeProc:
    """One node: a `start --block` process, leader of its own process group."""

    def __init__(self, proc, log_path):
        self.proc, self.log_path = proc, log_path
        self.pgid = proc.pid

    def tree(self):
        return W.process_tree(self.proc.pid)

    def log_tail(self, n=2000):
        with open(self.log_path, errors="replace") as f:
            return f.read()[-n:]


def _spawn(cmd, log_path, env=None):
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    log.close()
    return NodeProc(proc, log_path)


def _wait(pred, node, what, timeout=90):
    deadline = time.monotonic() + timeout
    while not pred():
        if node.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start:\n{node.log_tail()}")
        time.sleep(0.1)


class Cluster:
    """A head and node B of one backend; ``stop()`` ends every process it started."""

    def __init__(self, backend, python, workdir):
        self.backend, self.python, self.workdir = backend, python, workdir
        self.port = free_port()
        self.address = f"{HEAD_IP}:{self.port}"
        self.nodes = []
        self.pids = set()
        self.token = secrets.token_hex(32)

    def start(self):
        try:
            (self._start_minray if self.backend == "minray" else self._start_ray)()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_minray(self):
        common = ["--block", "--num-cpus", "2", "--object-store-memory", str(STORE_BYTES),
                  "--include-dashboard", "false"]
        head_dir = os.path.join(self.workdir, "head")
        head = _spawn([self.python, "-m", "minray.scripts", "start", "--head",
                       "--port", str(self.port), "--node-ip-address", HEAD_IP,
                       "--temp-dir", head_dir, *common],
                      os.path.join(self.workdir, "head.log"))
        self.nodes.append(head)
        _wait(lambda: _session_file(head_dir, "cluster.json"), head, "minray head")
        with open(_session_file(head_dir, "cluster_token")) as f:
            token = f.read().strip()
        b_dir = os.path.join(self.workdir, "b")
        b = _spawn([self.python, "-m", "minray.scripts", "start", "--address", self.address,
                    "--node-ip-address", B_IP, "--resources", json.dumps({"node_b": 2}),
                    "--temp-dir", b_dir, *common],
                   os.path.join(self.workdir, "b.log"),
                   env=dict(os.environ, MINRAY_CLUSTER_TOKEN=token))
        self.nodes.append(b)
        _wait(lambda: _session_file(b_dir, "cluster.json"), b, "minray node B")

    def _start_ray(self):
        ray_bin = os.path.join(os.path.dirname(self.python), "ray")
        common = ["--block", "--num-cpus", "2", "--object-store-memory", str(STORE_BYTES),
                  "--disable-usage-stats"]
        env = self.env()
        head_log = os.path.join(self.workdir, "head.log")
        head = _spawn([ray_bin, "start", "--head", "--port", str(self.port),
                       "--node-ip-address", HEAD_IP, "--include-dashboard=false",
                       "--temp-dir", os.path.join(self.workdir, "ray"), *common],
                      head_log, env=env)
        self.nodes.append(head)
        _wait(lambda: "Ray runtime started" in head.log_tail(100000), head, "Ray head")
        b_log = os.path.join(self.workdir, "b.log")
        b = _spawn([ray_bin, "start", "--address", self.address, "--node-ip-address", B_IP,
                    "--resources", json.dumps({"node_b": 2}), *common], b_log, env=env)
        self.nodes.append(b)
        _wait(lambda: "Ray runtime started" in b.log_tail(100000), b, "Ray node B")

    def env(self):
        """The environment of this cluster's processes and its driver. Ray 2.60 turns on
        token authentication for `ray start --head`: every process gets the cluster's
        token, as minray's nodes get theirs (MINRAY_CLUSTER_TOKEN)."""
        env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
        env.pop("MINRAY_NO_EXTENSIONS", None)
        if self.backend == "ray":
            env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token)
        return env

    @property
    def b(self):
        return self.nodes[1]

    def snapshot(self):
        for n in self.nodes:
            self.pids |= n.tree()

    def stop(self):
        """SIGTERM each node's group, then SIGKILL whatever of its processes is left."""
        self.snapshot()
        for n in self.nodes:
            _signal_group(n.pgid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for n in self.nodes:
            try:
                n.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for n in self.nodes:
            _signal_group(n.pgid, signal.SIGKILL)
            try:
                n.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        left = set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            left = {p for p in self.pids if _alive(p)}
            if not left:
                break
            time.sleep(0.1)
        for p in left:   # processes of ours that left the group (only those)
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return sorted(left)


def _signal_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _session_file(temp_dir, name):
    try:
        sessions = [n for n in os.listdir(temp_dir) if n.startswith("s")]
    except FileNotFoundError:
        return None
    for s in sessions:
        path = os.path.join(temp_dir, s, name)
        if os.path.exists(path):
            return path
    return None


def run_backend(backend, python, kill=True, timeout=600, only=None, size=GiB):
    """Start a cluster of ``backend``, run the driver against it, stop it: the result."""
    workdir = tempfile.mkdtemp(prefix=f"mrcl-{backend}-")
    cluster = None
    try:
        cluster = Cluster(backend, python, workdir).start()
        cmd = [python, WORKLOADS_PY, "--backend", backend, "--address", cluster.address,
               "--node-b-root", str(cluster.b.proc.pid), "--size", str(size),
               "--marker-dir", os.path.join(workdir, "markers")]
        if backend == "minray":
            cmd += ["--temp-dir", os.path.join(workdir, "head")]
        if kill:
            cmd.append("--kill")
        if only:
            cmd += ["--only", only]
        env = cluster.env()
        cluster.snapshot()
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                             cwd=workdir)
        cluster.snapshot()
        for line in reversed(out.stdout.strip().splitlines()):
            if line.startswith("{"):
                return json.loads(line)
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-3:]}
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return {"error": [str(exc)[-600:]]}
    finally:
        if cluster is not None:
            left = cluster.stop()
            if left:
                print(f"warning: {backend}: processes {left} outlived their node's group "
                      "and were killed one by one", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)


# ------------------------------------------------------------------ the table
def pick(result, path):
    cur = result
    for key in path:
        if not isinstance(cur, dict) or key not in cur:
            return None
        cur = cur[key]
    return cur


def median(values):
    vs = sorted(v for v in values if v is not None)
    return vs[(len(vs) - 1) // 2] if vs else None


# (title, path in a run's result, unit, higher is better, target)
ROWS = [
    ("task round trips to the other node (sync)", ("figures", "tasks_sync"), "/s", True,
     ">= 5x Ray"),
    ("async tasks to the other node (3k in flight)", ("figures", "tasks_async"), "/s", True,
     ""),
    ("sync actor calls across nodes", ("figures", "actor_calls_sync"), "/s", True, ""),
    ("1 GiB object pulled across", ("figures", "transfer", "gb_per_s"), "GB/s", True,
     ">= 70% of raw TCP, >= 2x Ray"),
    ("100 MiB broadcast to 4 tasks on the other node", ("figures", "broadcast", "seconds"),
     "s", False, "one pull per node"),
    ("SIGKILL of a node to its tasks running elsewhere", ("kill", "all_rerun_s"), "s", False,
     ""),
]


def fmt(v, unit):
    if v is None:
        return "n/a"
    if unit == "/s":
        return f"{v:,.0f}/s"
    if unit == "GB/s":
        return f"{v:.2f} GB/s"
    return f"{v:.2f} s"


def table(runs, ray_version, loads):
    lines = [f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
             f"{platform.python_version()}, Ray {ray_version or 'not installed'}; "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; two nodes on one "
             "machine (127.0.0.1 and 127.0.0.2), 2 CPUs each.", ""]
    lines.append("| figure | minray | Ray 2.60 | minray / Ray | other reference | target |")
    lines.append("|---|---|---|---|---|---|")
    for title, path, unit, higher, target in ROWS:
        mv = median(pick(r, path) for r in runs["minray"])
        rv = median(pick(r, path) for r in runs["ray"])
        ratio = "n/a"
        if mv and rv:
            ratio = f"{mv / rv:.1f}x" if higher else f"{rv / mv:.1f}x less"
        other = ""
        if path[-1] == "gb_per_s":
            parts = []
            for b in ("minray", "ray"):
                of = median(pick(r, ("figures", "transfer", "of_raw")) for r in runs[b])
                tcp = median(pick(r, ("figures", "transfer", "raw_gb_per_s"))
                             for r in runs[b])
                if of is not None:
                    parts.append(f"{b} {of * 100:.0f}% (raw {tcp:.2f} GB/s)")
            other = "of a raw TCP copy just before it: " + ", ".join(parts)
        if path[-1] == "seconds" and "broadcast" in path:
            parts = []
            for b in ("minray", "ray"):
                c = median(pick(r, ("figures", "broadcast", "copies_received"))
                           for r in runs[b])
                if c is not None:
                    parts.append(f"{b}: {c:.2f}")
            pulls = median(pick(r, ("figures", "broadcast", "num_pulls"))
                           for r in runs["minray"])
            other = ("copies received by node B " + ", ".join(parts) +
                     (f"; minray pulls: {pulls}" if pulls is not None else ""))
        lines.append(f"| {title} | {fmt(mv, unit)} | {fmt(rv, unit)} | {ratio} | {other} | "
                     f"{target} |")
    lines.append("")
    lines.append("Every run (backends alternating):")
    lines.append("")
    for title, path, unit, _, _ in ROWS:
        per = []
        for b in ("minray", "ray"):
            vals = [pick(r, path) for r in runs[b]]
            if vals:
                per.append(f"{b} " + ", ".join(fmt(v, unit) for v in vals))
        if path[-1] == "gb_per_s":
            for b in ("minray", "ray"):
                per.append(f"{b} of raw TCP (paired) " + ", ".join(
                    "n/a" if pick(r, ("figures", "transfer", "of_raw")) is None else
                    f"{pick(r, ('figures', 'transfer', 'of_raw')) * 100:.0f}%"
                    for r in runs[b]))
        lines.append(f"- {title}: " + "; ".join(per))
    for b in ("minray", "ray"):
        for i, r in enumerate(runs[b]):
            if "error" in r:
                lines.append(f"- {b} run {i + 1} failed: {' '.join(r['error'])[:300]}")
            elif isinstance(r.get("kill"), dict) and "error" in r["kill"]:
                lines.append(f"- {b} run {i + 1}: the kill test failed: {r['kill']['error']}")
    lines.append(f"- load averages (1/5/15 min) before each run: {loads}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ray-python", default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size", type=int, default=GiB, help="bytes of the pulled object")
    parser.add_argument("--only", default=None,
                        help="comma-separated: tasks_sync,tasks_async,actor_calls_sync,"
                             "transfer,broadcast (the kill test runs unless --no-kill)")
    parser.add_argument("--no-kill", action="store_true")
    parser.add_argument("--backends", default="minray,ray")
    parser.add_argument("--json", default=None, help="also write every run's result here")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.dirname(HERE))
    from bench.compare import find_ray_python
    ray_python, ray_version = find_ray_python(args.ray_python)
    backends = args.backends.split(",")
    runs = {"minray": [], "ray": []}
    loads = []
    for i in range(args.repeat):
        for backend in backends:
            loads.append(" ".join(f"{x:.2f}" for x in os.getloadavg()))
            print(f"  {backend} run {i + 1}/{args.repeat} (load {loads[-1]}) ...",
                  file=sys.stderr, flush=True)
            python = sys.executable if backend == "minray" else ray_python
            if python is None:
                continue
            res = run_backend(backend, python, kill=not args.no_kill, only=args.only,
                              size=args.size)
            print(f"    {json.dumps(res)}", file=sys.stderr, flush=True)
            runs[backend].append(res)
    out = table(runs, ray_version, loads)
    print(out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": runs, "loads": loads}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
