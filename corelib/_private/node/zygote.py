"""The worker template ("zygote"): a warm process that forks new workers.

    node manager --("fork", worker_id, spec)--> zygote --os.fork()--> worker
    node manager --("preload", names)--> zygote     (imported when next idle)
    node manager <--("forked", worker_id, pid) / ("exited", pid, status)-- zygote

The node manager forks the zygote once at start-up, before it runs any thread.
The zygote imports what every worker needs (numpy, cloudpickle, the worker
code) once, so a new worker starts in about a millisecond instead of paying
for an interpreter and its imports.  The zygote is single-threaded, which is
what makes ``fork`` safe here.  It reaps its children and reports their exit
status, so the node manager can tell a user *how* a worker died.

Some imports only some workers need: asyncio (with ssl, 3.3 MiB) only async
actors. The zygote loads those on demand: the first async actor on a node asks
(via the node manager) for ``ON_DEMAND`` modules, and the zygote imports them
when next idle, so later async actors start with them and share their pages.
An idle runtime does not carry them.

Numeric libraries get one thread per worker, as in Ray: the zygote sets
``OMP_NUM_THREADS=1`` before it imports numpy (so OpenBLAS starts no thread pool,
and the zygote stays single-threaded), unless the user's environment sets it;
each worker then sets it to its task's whole CPUs (``worker.main.omp_num_threads``).
"""

import ctypes
import os
import pickle
import select
import signal
import socket
import struct
import logging
import sys

_LEN = struct.Struct("<I")
PR_SET_PDEATHSIG = 1
# Modules a worker may ask the zygote to preload: standard library only (an import
# runs code, and the zygote must stay single-threaded and side-effect free).
# Async actor start, fresh runtime: 26 ms without asyncio in the zygote, 11 ms with.
ON_DEMAND = frozenset({"asyncio"})
# Whether OMP_NUM_THREADS came from the user's environment (then no worker changes
# it): read in the node manager, whose environment the zygote inherits.
OMP_FROM_USER = "OMP_NUM_THREADS" in os.environ


def preload_request(names, loaded):
    """The modules of ``names`` to ask the zygote for: allowed ones not asked before.

    >>> preload_request(["asyncio", "os"], set())
    ('asyncio',)
    >>> preload_request(["asyncio"], {"asyncio"})
    ()
    """
    return tuple(n for n in dict.fromkeys(names) if n in ON_DEMAND and n not in loaded)


def die_with_parent(sig=signal.SIGKILL):
    """Ask Linux to kill this process when its parent dies (no orphans)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def send_msg(sock, msg):
    data = pickle.dumps(msg, 5)
    sock.sendall(_LEN.pack(len(data)) + data)


class MessageReader:
    def __init__(self):
        self.buf = bytearray()

    def feed(self, data):
        self.buf += data
        out = []
        while len(self.buf) >= 4:
            (n,) = _LEN.unpack_from(self.buf, 0)
            if len(self.buf) < 4 + n:
                break
            out.append(pickle.loads(bytes(self.buf[4:4 + n])))
            del self.buf[:4 + n]
        return out


def zygote_main(sock, preload=("numpy", "concurrent.futures")):
    """Run in the forked child of the node manager; never returns."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")      # before numpy: see the docstring
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    from minray._private.worker import main as worker_main  # noqa: F401  (warm the worker's imports)
    import cloudpickle  # noqa: F401  (every worker unpickles functions; see serialization)
    # Heavy optional imports (numpy: ~0.1 s) are loaded when the zygote is idle,
    # never while a fork request waits: the first task of a fresh runtime must
    # not wait for them (cold start). Workers forked before then import numpy
    # themselves if they use it.
    pending_preload = list(preload)
    reader = MessageReader()
    children = set()
    while True:
        try:
            r, _, _ = select.select([sock], [], [], 0.3 if pending_preload else 0.2)
        except InterruptedError:
            r = []
        if not r and pending_preload:
            try:
                __import__(pending_preload.pop(0))
            except ImportError:
                pass
            continue
        if r:
            data = sock.recv(1 << 16)
            if not data:
                os._exit(0)
            for msg in reader.feed(data):
                if msg[0] == "fork":
                    _, worker_id, spec = msg
                    pid = os.fork()
                    if pid == 0:
                        sock.close()
                        _run_worker(spec)
                        os._exit(0)
                    children.add(pid)
                    send_msg(sock, ("forked", worker_id, pid))
                elif msg[0] == "preload":
                    pending_preload.extend(n for n in msg[1] if n in ON_DEMAND
                                           and n not in sys.modules)
                elif msg[0] == "exit":
                    os._exit(0)
        for pid in list(children):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                children.discard(pid)
                continue
            if done:
                children.discard(pid)
                try:
                    send_msg(sock, ("exited", pid, status))
                except OSError:
                    os._exit(0)


def _run_worker(spec):
    """Become a worker: logs, environment, then the worker's main loop."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from minray._private.core import ids
    ids.reset_after_fork()
    out = os.open(spec["stdout"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    err = os.open(spec["stderr"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(out, 1)
    os.dup2(err, 2)
    os.close(out)
    os.close(err)
    try:
        sys.stdout.reconfigure(line_buffering=True)
        sys.stderr.reconfigure(line_buffering=True)
    except AttributeError:  # pragma: no cover
        pass
    os.environ.update(spec.get("env_vars") or {})
    spec["omp_fixed"] = OMP_FROM_USER or "OMP_NUM_THREADS" in (spec.get("env_vars") or {})
    for p in reversed(spec.get("sys_path") or []):
        if p not in sys.path:
            sys.path.insert(0, p)
    cwd = spec.get("cwd")
    if cwd:
        try:
            os.chdir(cwd)
        except OSError:
            pass
    from minray._private.worker import main as worker_main
    code = 0
    try:
        worker_main.main(spec)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    except BaseException:
        logging.getLogger("minray.worker").exception(
            "the worker raised outside any task")
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
    os._exit(code)


def start_zygote():
    """Fork the zygote from the calling (single-threaded) process. Returns (pid, socket)."""
    parent_sock, child_sock = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        parent_sock.close()
        try:
            zygote_main(child_sock)
        finally:
            os._exit(0)
    child_sock.close()
    return pid, parent_sock
