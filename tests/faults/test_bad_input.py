"""Bad input reaching a live node manager, and who may reach it at all.

A peer that sends junk, a truncated frame, an oversized length or a malformed
message loses its own connection; the node manager and every other client go
on. The codec itself is fuzzed in tests/unit/test_fuzz_frame.py.
"""

import os
import pickle
import socket
import stat
import sys

import pytest

import minray as ray
from minray._ext import frame
from minray._private.net import protocol as P

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from helpers import wait_until  # noqa: E402

pytestmark = pytest.mark.slow


@ray.remote
def square(x):
    return x * x


def nm_socket(ctx):
    return os.path.join(ctx["session_dir"], "nm.sock")


def closed_by_peer(sock, timeout=5.0):
    """True once the other end closed the connection (recv returns b"")."""
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(1 << 16)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


ATTACKS = {
    "junk bytes": b"\xde\xad\xbe\xef" * 32,
    "zero length": b"\x00\x00\x00\x00\x01",
    "oversized length": (0xFFFFFFFF).to_bytes(4, "little") + b"\x01",
    "undecodable payload": frame.encode(P.REQUEST, b"\x80\x05not a pickle"),
    "request of the wrong shape": frame.encode(P.REQUEST, pickle.dumps("hello")),
    "method name not a string": frame.encode(P.REQUEST, pickle.dumps((1, 42, ()))),
    "notice with non-tuple args": frame.encode(P.NOTICE, pickle.dumps(("ping", 5))),
    "unknown message kind": frame.encode(99, pickle.dumps(())),
}


def test_malformed_frames_close_only_that_connection(ray_start_regular):
    path = nm_socket(ray_start_regular)
    for name, data in ATTACKS.items():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        s.sendall(data)
        assert closed_by_peer(s), f"the node manager kept a connection after: {name}"
        s.close()
        # The node manager and the driver's own connection are unharmed.
        assert ray.get(square.remote(7), timeout=30) == 49, name


def test_truncated_frame_then_hangup_is_harmless(ray_start_regular):
    path = nm_socket(ray_start_regular)
    good = frame.encode(P.REQUEST, pickle.dumps((1, "ping", ())))
    for cut in (1, 3, 4, 5, len(good) - 1):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        s.sendall(good[:cut])
        s.close()
    # A declared 512 MiB frame that never arrives costs the node manager nothing.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall((512 << 20).to_bytes(4, "little") + b"\x01" + b"x" * 1000)
    import psutil
    nm = [p for p in psutil.Process().children() if "minray._private.node.manager" in " ".join(p.cmdline())][0]
    assert nm.memory_info().rss < 400 << 20
    s.close()
    assert ray.get([square.remote(i) for i in range(20)], timeout=30) == \
        [i * i for i in range(20)]


def test_unknown_method_is_an_error_reply_not_a_hangup(ray_start_regular):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(nm_socket(ray_start_regular))
    s.sendall(frame.encode(P.NOTICE, pickle.dumps(("no_such_notice", ()))) +
              frame.encode(P.REQUEST, pickle.dumps((9, "no_such_method", ()))) +
              frame.encode(P.REQUEST, pickle.dumps((10, "ping", ()))))
    reader = frame.FrameReader()
    s.settimeout(5)
    frames = []
    while len(frames) < 2:
        frames += reader.feed(s.recv(4096))
    (req1, ok1, err), (req2, ok2, pong) = [pickle.loads(p) for _, p in frames]
    assert (req1, ok1, req2, ok2, pong) == (9, False, 10, True, "pong")
    assert "unknown request 'no_such_method'" in str(err)
    s.close()


def test_a_notice_handler_that_raises_closes_that_connection(ray_start_regular):
    """A notice has nobody to answer: a handler that raises must not leave its
    sender waiting on half-done work. The node manager logs it and closes the
    connection, so the sender's close path fails or retries; others go on."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(nm_socket(ray_start_regular))
    # Well-formed, but the handler fails on it ("unborrow" iterates its oids).
    s.sendall(frame.encode(P.NOTICE, pickle.dumps(("unborrow", (5,)))) +
              frame.encode(P.REQUEST, pickle.dumps((11, "ping", ()))))
    assert closed_by_peer(s), "the node manager kept the connection of a failed notice"
    s.close()
    assert ray.get(square.remote(6), timeout=30) == 36


def test_well_formed_request_from_a_raw_client_is_answered(ray_start_regular):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(nm_socket(ray_start_regular))
    s.sendall(frame.encode(P.REQUEST, pickle.dumps((5, "ping", ()))))
    reader = frame.FrameReader()
    s.settimeout(5)
    frames = []
    while not frames:
        frames = reader.feed(s.recv(4096))
    assert frames[0][0] == P.REPLY and pickle.loads(frames[0][1]) == (5, True, "pong")
    s.close()


# -- who can connect ---------------------------------------------------------------


def test_sockets_live_in_a_private_directory(ray_start_regular):
    session = ray_start_regular["session_dir"]
    for path in (os.path.dirname(session), session):
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert mode == 0o700, f"{path} has mode {oct(mode)}"
    assert stat.S_IMODE(os.stat(nm_socket(ray_start_regular)).st_mode) == 0o600
    assert os.stat(session).st_uid == os.getuid()
    # Workers' task sockets are in the same directory.
    assert wait_until(lambda: ray.get(square.remote(3)) == 9)
    socks = [n for n in os.listdir(session) if n.endswith(".sock")]
    assert len(socks) >= 2


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another user")
def test_another_local_user_cannot_connect(ray_start_regular):
    """A child that drops to user 'nobody' is refused by the file system."""
    path = nm_socket(ray_start_regular)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:   # pragma: no cover - child
        os.close(r)
        try:
            os.setgid(65534)
            os.setuid(65534)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                os.write(w, b"connected")
            except PermissionError:
                os.write(w, b"refused")
            except OSError as exc:
                os.write(w, f"error {exc!r}".encode())
        finally:
            os._exit(0)
    os.close(w)
    answer = os.read(r, 200)
    os.close(r)
    os.waitpid(pid, 0)
    assert answer == b"refused", answer
