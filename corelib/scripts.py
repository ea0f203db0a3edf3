"""The ``minray`` command: demo, start, stop, status.

    minray demo                      a guided tour: tasks, objects, wait, actors, errors, Data, Pool
    minray start --head [--block]    start a node that outlives drivers (init(address="auto") joins it)
    minray status [--address A]      the cluster summary (ray status's layout), then this node
    minray stop [--force]            stop every node started with ``minray start`` on this machine
    minray list|get|summary|logs|memory|timeline   the state CLI (util/state/cli.py)
"""

import argparse
import json
import os
import pickle
import signal
import sys
import time

from minray._private.node import launch as _node
from minray._private.net import protocol as P
from minray._private.net import transport


def cmd_demo(args):
    # The guided tour lives in _tour.py (public API only, as a user's script).
    from ._tour import run_tour
    return run_tour(num_cpus=args.num_cpus)


def cmd_start(args):
    if not args.head and not args.address:
        print("minray start: pass --head to start a cluster's first node, or "
              "--address HOST:PORT to join the head at that address.", file=sys.stderr)
        return 2
    if args.node_ip_address is None:
        args.node_ip_address = _node.lan_address()
    resources = json.loads(args.resources) if args.resources else {}
    total = {"CPU": float(args.num_cpus if args.num_cpus is not None else os.cpu_count())}
    if args.num_gpus:
        total["GPU"] = float(args.num_gpus)
    total.update({k: float(v) for k, v in resources.items()})
    import psutil
    total["memory"] = float(int(psutil.virtual_memory().available * 0.7))
    store = args.object_store_memory or _node.default_object_store_memory()
    total["object_store_memory"] = float(store)
    session_dir = _node.make_session_dir(args.temp_dir)
    if args.head:
        token = _node.create_cluster_token(session_dir)
        head_address, port = None, args.port
    else:
        token = args.token or _node.read_cluster_token()
        if not token:
            print("minray start: joining a cluster needs its token: pass --token, or set "
                  "MINRAY_CLUSTER_TOKEN (`minray start --head` printed it).", file=sys.stderr)
            return 2
        with open(os.path.join(session_dir, _node.TOKEN_FILE), "w") as f:
            os.chmod(f.name, 0o600)
            f.write(token)
        head_address, port = args.address, 0
    try:
        session_dir, proc = _node.start_node(total, store, head=True, session_dir=session_dir,
                                             node_ip=args.node_ip_address, port=port,
                                             head_address=head_address, token=token,
                                             owner_pid=os.getpid() if args.block else None)
    except RuntimeError as exc:
        import shutil
        shutil.rmtree(session_dir, ignore_errors=True)   # a failed start leaves nothing
        print(f"minray start: {_start_failure(exc, args)}", file=sys.stderr)
        return 1
    with open(os.path.join(session_dir, "cluster.json")) as f:
        info = json.load(f)
    with open(os.path.join(session_dir, "head.json"), "w") as f:
        json.dump({"pid": proc.pid, "session_dir": session_dir, "port": info["port"],
                   "node_ip_address": args.node_ip_address, "head": bool(args.head),
                   "head_address": head_address,
                   "dashboard_port": args.dashboard_port}, f)
    address = f"{args.node_ip_address}:{info['port']}"
    if args.head:
        print(f"minray: started a head node at {address} (pid {proc.pid}, session "
              f"{session_dir}).")
        print(f"  Cluster token (other nodes and remote clients need it): {token}")
        print(f"  Join another node:  MINRAY_CLUSTER_TOKEN={token} minray start "
              f"--address {address}")
        print("  Connect a driver on this machine with: minray.init(address=\"auto\")")
    else:
        print(f"minray: started a node at {address} (pid {proc.pid}) that joined the head "
              f"at {head_address}.")
    if args.head and args.include_dashboard:
        _start_job_server(session_dir, args.dashboard_host, args.dashboard_port)
    print("  Stop it with: minray stop")
    if args.block:
        def stop(*_):
            proc.terminate()
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        proc.wait()
        from minray._private.jobs import server as job_server
        job_server.stop(session_dir)
    return 0


def _start_failure(exc, args):
    """One line that says why a node did not start and what to change."""
    text = str(exc)
    if "Address already in use" in text:
        return (f"port {args.port} on {args.node_ip_address} is in use (another head?): "
                f"pick a free one with --port, or stop that node with 'minray stop'.")
    if "exited during start-up" in text:
        # The node manager's log ends with its error: "module.Error: message".
        last = [ln for ln in text.splitlines() if ln.strip()][-1]
        return last.split(": ", 1)[1] if ": " in last and "Error" in last.split(": ")[0] \
            else last
    return " ".join(text.split())


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every flag shows its default: argparse's, unless the help says it in words."""

    def _get_help_string(self, action):
        if "(default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _bool_arg(value):
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _start_job_server(session_dir, host, port):
    """The head's HTTP job server (minray/_private/job_server.py); a failure to
    start it leaves the head running and says why."""
    from minray._private.jobs import server as job_server
    try:
        url, _ = job_server.start(session_dir, host, port)
    except RuntimeError as exc:
        print(f"minray start: warning: {exc}. The head runs without the job API; pick "
              "another port with --dashboard-port.", file=sys.stderr)
        return None
    flag = "" if port == 8265 and host == "127.0.0.1" else f" --address {url}"
    print(f"  Job API (dashboard): {url}")
    print(f"  Submit a job:  minray job submit{flag} --working-dir . -- python script.py")
    return url


def _heads(temp_dir=None):
    root = temp_dir or _node.DEFAULT_TEMP_DIR
    out = []
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return out
    for name in names:
        path = os.path.join(root, name, "head.json")
        try:
            with open(path) as f:
                out.append(json.load(f))
        except (OSError, ValueError):
            continue
    return out


def cmd_stop(args):
    """Stop every node started with ``minray start`` under the temp dir, and say how
    many nodes and processes that was (as ``ray stop``). ``--force`` kills at once
    (SIGKILL) and removes their shared memory itself."""
    import shutil

    import psutil
    from minray._private.jobs import server as job_server
    nodes = processes = 0
    for head in _heads(args.temp_dir):
        session_dir = head["session_dir"]
        pid = head.get("pid")
        tree = []
        if pid and psutil.pid_exists(pid):
            try:
                root = psutil.Process(pid)
                tree = [root] + root.children(recursive=True)
            except psutil.NoSuchProcess:
                tree = []
        server = _job_server_process(session_dir)
        if not args.force:
            job_server.stop(session_dir)      # it stops the jobs still running
        elif server is not None:
            tree.append(server)
        if tree:
            sig = signal.SIGKILL if args.force else signal.SIGTERM
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
            if args.force:
                for p in tree[1:]:
                    try:
                        p.kill()
                    except psutil.NoSuchProcess:
                        pass
            gone, alive = psutil.wait_procs(tree, timeout=10)
            for p in alive:
                try:
                    p.kill()
                except psutil.NoSuchProcess:
                    pass
            nodes += 1
            processes += len(tree) + (server is not None and not args.force)
        if args.force:
            _unlink_segments(session_dir)
        shutil.rmtree(session_dir, ignore_errors=True)
    if nodes:
        print(f"minray: stopped {nodes} node(s), {processes} process(es) in all.")
    else:
        print("minray: stopped 0 node(s): none was running.")
    return 0


def _job_server_process(session_dir):
    import psutil
    try:
        with open(os.path.join(session_dir, "job_server.json")) as f:
            p = psutil.Process(int(json.load(f)["pid"]))
        if "minray._private.jobs.server" in " ".join(p.cmdline()):
            return p
    except (OSError, ValueError, KeyError, psutil.Error):
        pass
    return None


def _unlink_segments(session_dir):
    """What the node manager would have unlinked had it been asked to stop."""
    from minray._private.objects import shm
    prefix = "mr" + os.path.basename(session_dir)[-8:] + "_"
    for name in shm.list_segments(prefix):
        shm.unlink(name)


def _query(session_dir, method, *args):
    sock = transport.connect_unix(os.path.join(session_dir, "nm.sock"), timeout=2)
    conn = transport.Connection(sock)
    conn.send(P.REQUEST, (1, method, args))
    sock.settimeout(5)
    while True:
        data = sock.recv(1 << 20)
        if not data:
            raise ConnectionError("the node manager closed the connection")
        for kind, payload in conn.reader.feed(data):
            if kind == P.REPLY:
                req_id, ok, value = pickle.loads(payload)
                sock.close()
                if not ok:
                    raise value
                return value


def cmd_status(args):
    """The cluster summary in ``ray status``'s layout, then this node's details."""
    if args.address:
        from .api import _resolve_address
        try:
            session = _resolve_address(args.address, args.temp_dir)
        except ConnectionError as exc:
            print(f"minray status: {exc}", file=sys.stderr)
            return 1
    else:
        session = _node.find_running_session(args.temp_dir)
    if session is None:
        print("minray: no running node found (start one with 'minray start --head').")
        return 1
    nodes = _query(session, "nodes")
    total = _query(session, "cluster_resources")
    avail = _query(session, "available_resources")
    st = _query(session, "status")
    print(format_cluster_status(nodes, total, avail, time.strftime("%Y-%m-%d %H:%M:%S")))
    print()
    print(f"This node: {st['node_id']}  (session {session}, up {st['uptime_s']:.0f} s)")
    print(f"  Workers: {st['workers']}")
    alive = [a for a in st["actors"] if a["state"] != "DEAD"]
    print(f"  Actors: {len(alive)} alive")
    for a in alive:
        print(f"    {a['class_name']} {a['actor_id'][:12]} {a['state']} name={a['name']!r} "
              f"pid={a['pid']}")
    o = st["objects"]
    print(f"  Objects: {o['num_objects']} shared, {o['shm_bytes'] / 2**20:.1f} MiB in shared "
          f"memory, {o['spilled_bytes'] / 2**20:.1f} MiB spilled")
    return 0


def _format_bytes(n):
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n:.0f}B"


def format_cluster_status(nodes, total, avail, now):
    """``ray status``'s summary: live and dead nodes, then resources used / total.

    >>> print(format_cluster_status([{"NodeID": "ab", "Alive": True}], {"CPU": 2.0},
    ...                             {"CPU": 1.0}, "2026-01-01 00:00:00").splitlines()[5])
     1 node_ab
    """
    rule = "-" * 63
    lines = [f"======== Cluster status: {now} ========", "Node status", rule, "Active:"]
    alive = [n for n in nodes if n["Alive"]]
    dead = [n for n in nodes if not n["Alive"]]
    lines += [f" 1 node_{n['NodeID']}" for n in alive] or [" (no active nodes)"]
    lines += ["Pending:", " (no pending nodes)", "Recent failures:"]
    lines += [f" node_{n['NodeID']} (dead)" for n in dead] or [" (no failures)"]
    lines += ["", "Resources", rule, "Usage:"]
    for key in sorted(total):
        if key.startswith("_") or key.startswith("node:"):
            continue
        used = max(total[key] - avail.get(key, 0.0), 0.0)
        if key in ("memory", "object_store_memory"):
            lines.append(f" {_format_bytes(used)}/{_format_bytes(total[key])} {key}")
        else:
            lines.append(f" {used:.1f}/{total[key]:.1f} {key}")
    lines += ["", "Demands:", " (no resource demands)"]
    return "\n".join(lines)


# The state CLI (util/state/cli.py) loads only when one of its commands runs.
STATE_COMMANDS = {
    "list": "list tasks, actors, nodes, objects, jobs, placement-groups or workers",
    "get": "one task, actor, node, ... by id", "summary": "summarize tasks, actors or objects",
    "logs": "list the node's log files, or print one",
    "memory": "objects referenced in the cluster, and store use",
    "timeline": "write a Chrome trace of task execution"}


def build_parser():
    """The ``minray`` command line: every flag has help text that shows its default."""
    fmt = _HelpFormatter
    parser = argparse.ArgumentParser(prog="minray", description="minray: Ray's API on one "
                                     "machine first.", formatter_class=fmt)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="a guided tour of the core (a few seconds)",
                       formatter_class=fmt)
    p.add_argument("--num-cpus", type=int, default=None,
                   help="CPUs of the demo's runtime (default: all of this machine's)")
    p.set_defaults(fn=cmd_demo)
    p = sub.add_parser("start", help="start a node", formatter_class=fmt)
    p.add_argument("--head", action="store_true", help="start a cluster's first node")
    p.add_argument("--address", default=None, help="HOST:PORT of the head to join")
    p.add_argument("--token", default=None,
                   help="the cluster token to join with (default: $MINRAY_CLUSTER_TOKEN)")
    p.add_argument("--port", type=int, default=6379,
                   help="the head's TCP port for other nodes and remote drivers")
    p.add_argument("--node-ip-address", default=None,
                   help="the address this node binds and advertises (default: this machine's "
                        "LAN address, as ray start; the cluster token protects it)")
    p.add_argument("--dashboard-host", default="127.0.0.1",
                   help="the address the head's HTTP job server binds")
    p.add_argument("--dashboard-port", type=int, default=8265,
                   help="the head's HTTP service (jobs, dashboard)")
    p.add_argument("--num-cpus", type=int, default=None,
                   help="CPUs this node offers (default: all of this machine's)")
    p.add_argument("--num-gpus", type=int, default=None, help="GPUs this node offers")
    p.add_argument("--resources", default=None,
                   help='custom resources as JSON, e.g. \'{"custom": 2}\'')
    p.add_argument("--object-store-memory", type=int, default=None,
                   help="bytes of shared memory for objects (default: 30%% of RAM, "
                        "capped by /dev/shm)")
    p.add_argument("--temp-dir", default=None,
                   help=f"where sessions live (default: {_node.DEFAULT_TEMP_DIR})")
    p.add_argument("--block", action="store_true",
                   help="stay in the foreground; the node lives exactly as long as this "
                        "process")
    p.add_argument("--include-dashboard", type=_bool_arg, default=True, metavar="BOOL",
                   help="run the head's HTTP job server on --dashboard-port")
    p.add_argument("--disable-usage-stats", action="store_true",
                   help="accepted for Ray compatibility (minray collects no usage stats)")
    p.set_defaults(fn=cmd_start)
    p = sub.add_parser("stop", help="stop nodes started with 'minray start'",
                       formatter_class=fmt)
    p.add_argument("--temp-dir", default=None,
                   help=f"where sessions live (default: {_node.DEFAULT_TEMP_DIR})")
    p.add_argument("-f", "--force", action="store_true",
                   help="kill at once (SIGKILL) instead of a clean shutdown")
    p.set_defaults(fn=cmd_stop)
    p = sub.add_parser("status", help="the cluster summary and this node's details",
                       formatter_class=fmt)
    p.add_argument("--address", default=None,
                   help="HOST:PORT of the cluster, or a session directory (default: the "
                        "newest node on this machine)")
    p.add_argument("--temp-dir", default=None,
                   help=f"where sessions live (default: {_node.DEFAULT_TEMP_DIR})")
    p.set_defaults(fn=cmd_status)
    from .job_submission import cli as job_cli
    job_cli.add_parser(sub, fmt)
    for name, text in STATE_COMMANDS.items():   # listed here; parsed by util/state/cli.py
        sub.add_parser(name, help=text)
    from .serve import cli as serve_cli    # minray.serve is loaded only here, lazily
    serve_cli.add_parser(sub)
    from .rllib import cli as rllib_cli  # light: torch loads only when a command runs
    rllib_cli.add_parser(sub)
    _show_defaults(parser)
    return parser


def _show_defaults(parser):
    """Every (sub)command's help shows each flag's default, the libraries' too."""
    parser.formatter_class = _HelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _show_defaults(child)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in STATE_COMMANDS:
        from .util.state import cli
        return cli.main(argv)
    args = build_parser().parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
