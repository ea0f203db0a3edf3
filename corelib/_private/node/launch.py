"""Starting and finding node managers on this machine.

    init() -> start_node(): session dir (mode 0700) -> spawn the node manager
              -> wait for its "nm.ready" file -> connect the driver's core client
    init(address="auto") -> the newest live session recorded under the temp dir
"""

import json
import os
import subprocess
import sys
import tempfile
import time

import psutil

from minray._private.core import ids

DEFAULT_TEMP_DIR = os.path.join(tempfile.gettempdir(), "minray-sessions")


def default_object_store_memory():
    """30% of RAM, capped by what /dev/shm can hold (as Ray sizes its store)."""
    total = psutil.virtual_memory().total
    cap = int(total * 0.3)
    try:
        st = os.statvfs("/dev/shm")
        cap = min(cap, int(st.f_bavail * st.f_frsize * 0.9))
    except OSError:
        pass
    return max(cap, 64 * 1024 * 1024)


def lan_address():
    """This machine's address on its LAN (the one its default route leaves by), as
    ``ray start`` binds by default; 127.0.0.1 when there is no network.
    Connecting a UDP socket sends nothing: it only picks the route."""
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.254.254.254", 9))   # any routed address: nothing is sent
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def make_session_dir(temp_dir=None):
    root = temp_dir or DEFAULT_TEMP_DIR
    os.makedirs(root, mode=0o700, exist_ok=True)
    try:
        os.chmod(root, 0o700)
    except PermissionError:
        pass
    name = f"s{os.urandom(4).hex()}"
    path = os.path.join(root, name)
    os.makedirs(path, mode=0o700)
    os.makedirs(os.path.join(path, "logs"), mode=0o700)
    return path


def start_node(resources, object_store_memory, temp_dir=None, head=False, owner_pid=None,
               timeout=30.0, system_config=None, node_ip="127.0.0.1", port=None,
               head_address=None, token=None, session_dir=None, while_starting=None):
    """Spawn a node manager; returns (session_dir, process).

    ``system_config`` is init()'s ``_system_config``: the node manager reads
    ``object_spilling_config`` (Ray's JSON: {"type": "filesystem", "params":
    {"directory_path": ...}}) and the memory monitor's settings (see
    memory_monitor.py). ``while_starting()`` runs while the node manager starts
    (the driver imports its client meanwhile).
    """
    session_dir = session_dir or make_session_dir(temp_dir)
    node_id = ids.new_unique_id(14).hex()
    resources = dict(resources)
    resources.setdefault(f"node:{node_ip}", 1.0)
    if not head_address:
        resources.setdefault("node:__internal_head__", 1.0)
    resources[f"_node_id:{node_id}"] = 1000.0
    cmd = [sys.executable, "-m", "minray._private.node.manager",
           "--session-dir", session_dir, "--resources", json.dumps(resources),
           "--object-store-memory", str(int(object_store_memory)), "--node-id", node_id]
    if head:
        cmd.append("--head")
    if system_config:
        cmd += ["--system-config", json.dumps(system_config)]
    if owner_pid:
        cmd += ["--owner-pid", str(owner_pid)]
    env = None
    if port is not None or head_address:
        # A cluster node: TCP for other nodes, authenticated with the token
        # (passed in the environment, never on the command line).
        cmd += ["--node-ip-address", node_ip, "--port", str(port or 0)]
        if head_address:
            cmd += ["--head-address", head_address]
        env = dict(os.environ, MINRAY_CLUSTER_TOKEN=token or "")
    log = open(os.path.join(session_dir, "logs", "node_manager.log"), "ab")
    # A head started by `minray start` outlives its shell: a session of its own.
    # With an owner (init()'s driver, or `minray start --block`) it lives exactly as
    # long as that process: it asks Linux for SIGTERM when its parent dies (see
    # node_manager.main) and polls the owner. A --block node also leaves the
    # owner's process group, so that a SIGKILL of that group reaches it as the
    # SIGTERM that makes it clean up (workers, zygote, /dev/shm, ports).
    detached = head and not owner_pid
    own_group = head and bool(owner_pid)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            start_new_session=detached, close_fds=True, env=env,
                            process_group=0 if own_group else None)
    log.close()
    if while_starting is not None:
        try:
            while_starting()
        except BaseException:
            proc.kill()
            raise
    ready = os.path.join(session_dir, "nm.ready")
    deadline = time.monotonic() + timeout
    while not os.path.exists(ready):
        if proc.poll() is not None:
            with open(os.path.join(session_dir, "logs", "node_manager.log")) as f:
                tail = f.read()[-3000:]
            raise RuntimeError(f"The minray node manager exited during start-up "
                               f"(code {proc.returncode}). Its log:\n{tail}")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"The minray node manager did not start within {timeout}s; "
                               f"see {session_dir}/logs/node_manager.log")
        time.sleep(0.002)
    return session_dir, proc


def find_running_session(temp_dir=None):
    """The socket of the newest node manager running on this machine, or None."""
    root = temp_dir or DEFAULT_TEMP_DIR
    best = None
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return None
    for name in names:
        ready = os.path.join(root, name, "nm.ready")
        head = os.path.join(root, name, "head.json")
        if not os.path.exists(ready) or not os.path.exists(head):
            continue
        try:
            pid = int(open(ready).read().strip() or 0)
        except (OSError, ValueError):
            continue
        if not psutil.pid_exists(pid):
            continue
        mtime = os.path.getmtime(ready)
        if best is None or mtime > best[0]:
            best = (mtime, os.path.join(root, name))
    return best[1] if best else None


# -- the cluster token --------------------------------------------------------
# `minray start --head` creates it; every TCP connection to the cluster (node
# managers, remote drivers, the job HTTP API) must prove it knows it. It lives in
# the head's session dir, readable by its user only, and travels to other
# machines by hand (the `minray start --head` banner prints it) or in the
# MINRAY_CLUSTER_TOKEN environment variable.
TOKEN_FILE = "cluster_token"
TOKEN_ENV = "MINRAY_CLUSTER_TOKEN"


def create_cluster_token(session_dir):
    """Write a fresh random token into the session dir (mode 0600); return it."""
    token = os.urandom(24).hex()
    path = os.path.join(session_dir, TOKEN_FILE)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)
    return token


def read_cluster_token(session_dir=None):
    """The token: MINRAY_CLUSTER_TOKEN if set, else the one of `session_dir` (or of
    the newest head running on this machine); None if neither exists."""
    token = os.environ.get(TOKEN_ENV)
    if token:
        return token.strip()
    if session_dir is None:
        session_dir = find_running_session()
        if session_dir is None:
            return None
    try:
        with open(os.path.join(session_dir, TOKEN_FILE)) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def find_cluster_session(head_address, temp_dir=None):
    """The session of a live node on this machine that belongs to the cluster whose
    head is at ``head_address`` (the head itself, or a node that joined it)."""
    roots = [temp_dir or DEFAULT_TEMP_DIR]
    best = None
    for root in roots:
        try:
            names = os.listdir(root)
        except FileNotFoundError:
            continue
        for name in names:
            path = os.path.join(root, name)
            try:
                with open(os.path.join(path, "cluster.json")) as f:
                    info = json.load(f)
                pid = int(open(os.path.join(path, "nm.ready")).read().strip() or 0)
            except (OSError, ValueError):
                continue
            own = f"{info.get('node_ip_address')}:{info.get('port')}"
            # The head of this machine answers to its loopback names too.
            local = {own, f"127.0.0.1:{info.get('port')}", f"localhost:{info.get('port')}"} \
                if info.get("head_address") is None else {own}
            if (head_address not in local and head_address != info.get("head_address")) \
                    or not psutil.pid_exists(pid):
                continue
            is_head = info.get("head_address") is None
            rank = (is_head, os.path.getmtime(os.path.join(path, "nm.ready")))
            if best is None or rank > best[0]:
                best = (rank, path)
    return best[1] if best else None
