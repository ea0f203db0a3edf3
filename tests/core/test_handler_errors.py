"""A handler that raises on an I/O loop closes its connection: no silent hang.

Before, the loop printed the traceback and went on, so the work in flight on that
connection was never answered and a ``get()`` waited forever. Now the loop logs
the error (logger ``minray.net``, with its traceback) and closes the connection;
the peer's close path fails (or retries) what it had in flight there.
"""

import logging
import os
import subprocess
import sys
import textwrap
import threading

import pytest

import minray as ray
from minray._private.net import protocol as P
from minray._private.net import transport

# A server process: one Loop whose handler raises on the first REQUEST it reads.
SERVER = textwrap.dedent("""
    import sys, threading
    from minray._private.net import transport
    path = sys.argv[1]
    loop = transport.Loop("test-server")
    done = threading.Event()

    def on_frame(conn, kind, msg):
        raise ValueError("handler bug: " + repr(msg))

    def on_accept(sock):
        conn = transport.Connection(sock)
        loop.add_connection(conn, on_frame, lambda c: done.set())

    loop.add_listener(transport.listen_unix(path), on_accept)
    loop.start()
    print("ready", flush=True)
    done.wait(30)
    loop.stop()
    loop.thread.join(5)
""")


def test_raising_handler_in_another_process_closes_the_connection(tmp_path):
    path = str(tmp_path / "s.sock")
    proc = subprocess.Popen([sys.executable, "-c", SERVER, path], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        client_loop = transport.Loop("test-client")
        closed = threading.Event()
        conn = transport.Connection(transport.connect_unix(path))
        client_loop.add_connection(conn, lambda c, k, m: None, lambda c: closed.set())
        client_loop.start()
        conn.send(P.REQUEST, (1, "anything", ()))
        # The peer's close path runs (instead of a reply that never comes).
        assert closed.wait(10), "the server kept the connection open after its handler raised"
        client_loop.stop()
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        # Logged with its traceback, through logging (the record names the frame kind).
        assert "the handler of a REQUEST frame" in err and "raised" in err, err
        assert "Traceback" in err and "ValueError: handler bug" in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_raising_handler_in_process_closes_and_logs(caplog):
    # The minray logger does not propagate (as Ray's "ray" logger): listen on it.
    logging.getLogger("minray").addHandler(caplog.handler)
    a, b = __import__("socket").socketpair()
    loop = transport.Loop("test-loop")
    closed = threading.Event()
    conn = transport.Connection(a)

    def on_frame(c, kind, msg):
        raise KeyError(msg)

    loop.add_connection(conn, on_frame, lambda c: closed.set())
    loop.start()
    try:
        with caplog.at_level(logging.ERROR, logger="minray.net"):
            transport.Connection(b).send(P.NOTICE, ("method", ()))
            assert closed.wait(10)
        assert conn.closed and "KeyError" in conn.info["handler_error"]
        assert b.recv(1) == b""      # the peer sees the close
        records = [r for r in caplog.records if r.name == "minray.net"]
        assert records and records[0].exc_info[0] is KeyError
    finally:
        logging.getLogger("minray").removeHandler(caplog.handler)
        loop.stop()
        loop.thread.join(5)
        b.close()


def test_driver_handler_bug_fails_the_get_instead_of_hanging(ray_start_regular):
    # End to end: the driver's handler for its worker's DONE frame raises (a bug in
    # the runtime, injected here). The driver closes that worker connection, and
    # the task fails with a typed error instead of a get() that never returns.
    client = ray._private.state.current_client()
    original = client._on_worker_frame
    fired = threading.Event()

    def buggy(conn, kind, msg):
        if kind == P.DONE and not fired.is_set():
            fired.set()
            raise RuntimeError("injected handler bug")
        return original(conn, kind, msg)

    client._on_worker_frame = buggy
    try:
        @ray.remote(max_retries=0)
        def f():
            return os.getpid()

        with pytest.raises(ray.exceptions.RayError) as info:
            ray.get(f.remote(), timeout=60)
        assert fired.is_set()
        # A typed failure of the task (the worker connection's close path), not the
        # get() running out of time.
        assert isinstance(info.value, ray.exceptions.WorkerCrashedError), info.value
    finally:
        client._on_worker_frame = original
    # The runtime still works afterwards.
    assert ray.get(ray.remote(lambda: 7).remote(), timeout=60) == 7


def test_node_manager_closes_a_connection_whose_notice_handler_raised(ray_start_regular):
    # A known notice with arguments its handler cannot take: the handler raises, the
    # node manager logs it and closes that connection (a notice has no reply to carry
    # the error). An unknown notice (a typo) only costs a warning.
    import pickle
    import socket

    from minray._ext import frame
    path = os.path.join(ray_start_regular["session_dir"], "nm.sock")
    typo = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    typo.connect(path)
    typo.sendall(frame.encode(P.NOTICE, pickle.dumps(("no_such_notice", ()))) +
                 frame.encode(P.REQUEST, pickle.dumps((1, "ping", ()))))
    typo.settimeout(10)
    [(kind, payload)] = frame.FrameReader().feed(typo.recv(4096))
    assert pickle.loads(payload) == (1, True, "pong")
    bad = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bad.connect(path)
    bad.sendall(frame.encode(P.NOTICE, pickle.dumps(("return_lease", ("too", "many", "args")))))
    bad.settimeout(10)
    assert bad.recv(4096) == b""           # closed by the node manager
    typo.close()
    bad.close()
    assert ray.get(ray.remote(lambda: 1).remote(), timeout=60) == 1


def test_the_loop_outlives_raising_close_handlers_and_readers():
    import socket
    loop = transport.Loop("test-loop")
    a, b = socket.socketpair()
    r, w = socket.socketpair()
    conn = transport.Connection(a)

    def on_close(c):
        raise RuntimeError("bug in a close handler")

    class Reader:
        def on_readable(self):
            raise RuntimeError("bug in a reader")

    loop.add_connection(conn, lambda c, k, m: None, on_close)
    loop.add_reader(r, Reader())
    loop.start()
    try:
        b.close()                 # EOF -> close -> on_close raises
        w.send(b"x")              # readable -> on_readable raises
        alive = threading.Event()
        loop.call_later(0.2, alive.set)
        assert alive.wait(10), "the loop thread died"
        assert loop.thread.is_alive() and conn.closed
    finally:
        loop.stop()
        loop.thread.join(5)
        r.close()
        w.close()
