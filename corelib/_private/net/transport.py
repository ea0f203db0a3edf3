"""Connections and the event loop that reads them.

Every process talks over stream sockets (Unix sockets on one node) carrying
frames from ``minray._ext.frame``: a 4-byte length, a 1-byte message kind, and a
payload that is a pickled tuple (see protocol.py for the kinds).

    sender thread --send()--> socket --> Loop thread: recv -> FrameReader -> handler(conn, kind, msg)

A connection made with ``direct_reads=True`` may instead be read, for a while, by a
thread that waits for a reply on it (``Loop.detach`` ... ``Loop.attach``): a
synchronous actor call then costs two wakeups instead of three.  Its ``rlock``
decides who reads; handlers must therefore also be safe on a caller thread.

A ``Loop`` is one selector in one thread.  Handlers run on that thread and must
not block.  ``Connection.send`` may be called from any thread: by default it
writes synchronously under a lock; connections owned by the node manager use
``buffered=True`` so a slow or stopped peer can never block the node manager,
whose writes then queue and drain when the socket becomes writable.

A handler that raises is a bug on our side: the loop logs it with its traceback
(logger ``minray.net``) and closes that connection, so the peer's close path fails
or retries the work it had in flight there (a silent drop would leave a ``get()``
waiting forever).  ``conn.info["handler_error"]`` keeps the error's repr.
"""

import collections
import heapq
import itertools
import math
import os
import pickle
import select
import selectors
import socket
import threading
import logging
import time

from minray._ext import frame as _frame
from minray._private import log as _log   # every runtime process: the minray logger's handler
from minray._private.net import protocol
from minray._private.net import spin as _spin

logger = logging.getLogger(_log.LOGGER_NAME + ".net")

ProtocolError = _frame.ProtocolError
_encode = _frame.encode
_dumps = pickle.dumps
_loads = pickle.loads

RECV_SIZE = 1 << 18
_EPOLLIN = getattr(select, "EPOLLIN", 1)
_EPOLLOUT = getattr(select, "EPOLLOUT", 4)
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


class ConnectionClosed(ConnectionError):
    pass


def record_frames(directory):
    """Debug hook: append every frame this process encodes to ``directory/<pid>.frames``.

    For tests that check what is sent (tests/core/test_wire_records.py). Runtime
    processes turn it on at import when MINRAY_DEBUG_RECORD_FRAMES names a
    directory (they inherit the driver's environment); a driver calls it itself.
    The file holds the frames as they went out; ``read_recorded_frames`` reads them.
    Costs nothing unless enabled: it swaps the module's encoder.
    """
    global _encode
    os.makedirs(directory, exist_ok=True)
    plain = _frame.encode
    lock = threading.Lock()

    def encode(kind, payload):
        data = plain(kind, payload)
        # The pid at call time: a worker forked from the zygote records to its own file.
        with lock, open(os.path.join(directory, f"{os.getpid()}.frames"), "ab") as f:
            f.write(data)
        return data

    _encode = encode


def read_recorded_frames(directory):
    """[(pid, kind, message)] for every frame ``record_frames`` saved under ``directory``."""
    out = []
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".frames"):
            continue
        with open(os.path.join(directory, name), "rb") as f:
            frames = _frame.FrameReader().feed(f.read())
        out.extend((int(name[:-7]), kind, _loads(payload)) for kind, payload in frames)
    return out


if os.environ.get("MINRAY_DEBUG_RECORD_FRAMES"):
    record_frames(os.environ["MINRAY_DEBUG_RECORD_FRAMES"])


def encode_msg(kind, msg):
    """One frame carrying the pickled tuple ``msg``."""
    return _encode(kind, _dumps(msg, 5))


class Connection:
    """One socket with a frame reader; safe to send from many threads."""

    __slots__ = ("sock", "reader", "lock", "closed", "buffered", "outbuf", "loop",
                 "on_frame", "on_close", "peer", "info", "fileno_", "rlock",
                 "close_requested", "direct_wake", "muted", "__weakref__")

    def __init__(self, sock, buffered=False, max_frame_size=_frame.MAX_FRAME_SIZE,
                 direct_reads=False):
        self.sock = sock
        self.reader = _frame.FrameReader(max_frame_size)
        self.lock = threading.Lock()
        self.closed = False
        self.buffered = buffered
        self.outbuf = collections.deque()
        self.loop = None
        self.on_frame = None
        self.on_close = None
        self.peer = None
        self.info = {}
        self.fileno_ = sock.fileno()
        # Who reads (see Loop.detach): the loop thread, or one waiting caller.
        self.rlock = threading.RLock() if direct_reads else None
        self.close_requested = False
        self.direct_wake = None     # the direct reader's wake pipe while it reads
        self.muted = False          # detached from the loop (its owner tracks this)

    def fileno(self):
        return self.fileno_

    def send(self, kind, msg):
        self.send_bytes(_encode(kind, _dumps(msg, 5)))

    def send_bytes(self, data):
        if self.closed:
            raise ConnectionClosed("connection is closed")
        if self.buffered:
            with self.lock:
                was_empty = not self.outbuf
                self.outbuf.append(data)
            if was_empty and self.loop is not None:
                self.loop.want_write(self)
            return
        with self.lock:
            sock = self.sock
            if sock is None:
                raise ConnectionClosed("connection is closed")
            try:
                sock.sendall(data)
            except OSError as exc:
                self.closed = True
                raise ConnectionClosed(str(exc)) from exc

    def flush_some(self):
        """Write queued bytes without blocking. Returns True when the queue is empty."""
        with self.lock:
            while self.outbuf:
                data = self.outbuf[0]
                try:
                    n = self.sock.send(data)
                except (BlockingIOError, InterruptedError):
                    return False
                except OSError:
                    self.outbuf.clear()
                    return True
                if n < len(data):
                    self.outbuf[0] = data[n:]
                    return False
                self.outbuf.popleft()
            return True

    def close(self):
        if self.closed and self.sock is None:
            return
        self.closed = True
        sock, self.sock = self.sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass


def connect_unix(path, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def listen_unix(path, backlog=512):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    os.chmod(path, 0o600)
    s.listen(backlog)
    return s


# -- TCP between machines: authenticated before a single frame is read ---------
#
# Every TCP connection starts with a mutual HMAC challenge-response over the
# cluster token (as multiprocessing.connection does with its authkey), before
# any frame is read, so nothing from an unauthenticated peer is ever unpickled:
#
#   server -> client   MAGIC (8) + server challenge (32)
#   client -> server   HMAC-SHA256(token, b"client" + server challenge) (32)
#                      + client challenge (32)
#   server -> client   HMAC-SHA256(token, b"server" + client challenge) (32)
#
# A wrong answer closes the socket at once. The client checks the server's
# answer too, so a driver never sends tasks to an impostor.
import hashlib
import hmac

HANDSHAKE_MAGIC = b"MINRAY1\n"
CHALLENGE_SIZE = 32
HANDSHAKE_TIMEOUT_S = 5.0


class AuthenticationError(ConnectionError):
    """The peer did not prove it knows the cluster token."""


def _mac(token, role, challenge):
    key = token.encode() if isinstance(token, str) else token
    return hmac.new(key, role + challenge, hashlib.sha256).digest()


def recv_exactly(sock, n, closed=None):
    """``n`` bytes from a blocking socket; ``closed`` (an exception) if the peer
    closes first (default: an AuthenticationError, as in the handshake)."""
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise closed or AuthenticationError(
                "the peer closed the connection during the handshake")
        buf += chunk
    return bytes(buf)


def server_handshake(sock, token, timeout=HANDSHAKE_TIMEOUT_S):
    """Authenticate a freshly accepted TCP socket; raises AuthenticationError."""
    sock.settimeout(timeout)
    try:
        challenge = os.urandom(CHALLENGE_SIZE)
        sock.sendall(HANDSHAKE_MAGIC + challenge)
        answer = recv_exactly(sock, 2 * CHALLENGE_SIZE)
        if not hmac.compare_digest(answer[:CHALLENGE_SIZE], _mac(token, b"client", challenge)):
            raise AuthenticationError("wrong cluster token")
        sock.sendall(_mac(token, b"server", answer[CHALLENGE_SIZE:]))
    except (OSError, socket.timeout) as exc:
        if isinstance(exc, AuthenticationError):
            raise
        raise AuthenticationError(f"handshake failed: {exc}") from exc
    sock.settimeout(None)


def connect_tcp(host, port, token, timeout=10.0):
    """Connect to a minray TCP service and prove the cluster token; returns the socket."""
    if not token:
        raise AuthenticationError(
            "No cluster token: pass the token printed by `minray start --head` in the "
            "MINRAY_CLUSTER_TOKEN environment variable (or use --token).")
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        hello = recv_exactly(sock, len(HANDSHAKE_MAGIC) + CHALLENGE_SIZE)
        if not hello.startswith(HANDSHAKE_MAGIC):
            raise AuthenticationError(f"{host}:{port} is not a minray node")
        mine = os.urandom(CHALLENGE_SIZE)
        sock.sendall(_mac(token, b"client", hello[len(HANDSHAKE_MAGIC):]) + mine)
        try:
            proof = recv_exactly(sock, CHALLENGE_SIZE)
        except AuthenticationError:
            raise AuthenticationError(
                f"{host}:{port} refused the cluster token: use the token printed by "
                "`minray start --head` on the head (MINRAY_CLUSTER_TOKEN)") from None
        if not hmac.compare_digest(proof, _mac(token, b"server", mine)):
            raise AuthenticationError(f"{host}:{port} does not know the cluster token")
        sock.settimeout(None)
        return sock
    except BaseException:
        sock.close()
        raise


def listen_tcp(host, port, backlog=512):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(backlog)
    return s


def parse_address(address):
    """'tcp://HOST:PORT' or 'HOST:PORT' -> ("tcp", host, port); a path -> ("unix", path)."""
    if address.startswith("tcp://"):
        address = address[len("tcp://"):]
    elif address.startswith("unix:"):
        return ("unix", address[len("unix:"):])
    if "/" not in address and address.count(":") == 1:
        host, port = address.rsplit(":", 1)
        if port.isdigit():
            return ("tcp", host, int(port))
    return ("unix", address)


def connect(address, token=None, timeout=10.0):
    """A connected socket to `address` (a Unix socket path or tcp://HOST:PORT)."""
    parsed = parse_address(address)
    if parsed[0] == "unix":
        return connect_unix(parsed[1], timeout=timeout)
    return connect_tcp(parsed[1], parsed[2], token, timeout=timeout)


READ = selectors.EVENT_READ
WRITE = selectors.EVENT_WRITE


def _fd_of(fileobj):
    fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
    if fd < 0:
        raise ValueError(f"invalid file descriptor: {fileobj!r}")
    return fd


class _EpollPoller:
    """What Loop needs of a selector, straight on epoll (Linux).

    ``selectors.EpollSelector`` builds a key object per registration and a list of
    (key, mask) per wakeup in Python; this keeps a plain dict and also lets a
    waiting caller mute one fd (``mute``/``unmute``: see Loop.detach) without
    forgetting it.  ``select`` returns ``[(data, mask, fileobj)]``.
    """

    def __init__(self, spin_s=0.0):
        self._ep = select.epoll()
        self._map = {}   # fd -> (fileobj, data, events)
        # Busy-poll this long before a blocking wait, while the gate allows (spin.py).
        self.spin_s = spin_s
        self.gate = _spin.SpinGate() if spin_s else None

    @staticmethod
    def _bits(events):
        return (select.EPOLLIN if events & READ else 0) | \
            (select.EPOLLOUT if events & WRITE else 0)

    def register(self, fileobj, events, data):
        fd = _fd_of(fileobj)
        if fd in self._map:
            raise KeyError(f"{fileobj!r} is already registered")
        self._ep.register(fd, self._bits(events))
        self._map[fd] = (fileobj, data, events)

    def modify(self, fileobj, events, data):
        fd = _fd_of(fileobj)
        if fd not in self._map:
            raise KeyError(f"{fileobj!r} is not registered")
        self._ep.modify(fd, self._bits(events))
        self._map[fd] = (fileobj, data, events)

    def unregister(self, fileobj):
        fd = _fd_of(fileobj)
        del self._map[fd]
        try:
            self._ep.unregister(fd)
        except OSError:
            pass   # already closed: the kernel dropped it

    def mute(self, fd):
        if fd not in self._map:
            raise KeyError(fd)
        self._ep.modify(fd, 0)

    def unmute(self, fd):
        entry = self._map.get(fd)
        if entry is not None:
            self._ep.modify(fd, self._bits(entry[2]))

    def select(self, timeout):
        if timeout is None:
            timeout = -1
        elif timeout > 0:
            timeout = math.ceil(timeout * 1e3) * 1e-3   # epoll has ms resolution
        else:
            timeout = 0
        n = len(self._map) or 1
        try:
            spin_s = self.spin_s
            events = None
            if spin_s and (timeout < 0 or timeout > spin_s):
                events = _spin.poll_first(self.gate, self._ep.poll, (n,), spin_s)
            if not events:
                events = self._ep.poll(timeout, n)
        except InterruptedError:
            return []
        ready = []
        get = self._map.get
        for fd, ev in events:
            entry = get(fd)
            if entry is not None:
                mask = (WRITE if ev & ~_EPOLLIN else 0) | (READ if ev & ~_EPOLLOUT else 0)
                ready.append((entry[1], mask & entry[2], entry[0]))
        return ready

    def entries(self):
        return [(fileobj, data) for fileobj, data, _ in self._map.values()]

    def close(self):
        self._ep.close()


class _SelectorsPoller:
    """The same interface over ``selectors`` (platforms without epoll)."""

    spin_s = 0.0   # no busy-polling here (net/spin.py needs epoll's poll(0))

    def __init__(self):
        self._sel = selectors.DefaultSelector()

    def register(self, fileobj, events, data):
        self._sel.register(fileobj, events, data)

    def modify(self, fileobj, events, data):
        self._sel.modify(fileobj, events, data)

    def unregister(self, fileobj):
        self._sel.unregister(fileobj)

    def mute(self, fd):
        self._sel.unregister(fd)   # forgets it; unmute cannot bring it back

    def unmute(self, fd):
        raise KeyError(fd)

    def select(self, timeout):
        return [(key.data, mask, key.fileobj) for key, mask in self._sel.select(timeout)]

    def entries(self):
        return [(key.fileobj, key.data) for key in self._sel.get_map().values()]

    def close(self):
        self._sel.close()


class Loop:
    """A selector loop in one thread: reads connections, runs timers and callbacks."""

    def __init__(self, name="minray-io", spin=False):
        self.name = name
        # spin: busy-poll briefly before each blocking wait (net/spin.py), for
        # loops that answer synchronous calls (a worker's, a client's).
        self.sel = (_EpollPoller(_spin.BUDGET_S if spin else 0.0) if hasattr(select, "epoll")
                    else _SelectorsPoller())
        self._view = memoryview(bytearray(RECV_SIZE))   # the loop thread's (see read)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.sel.register(self._wake_r, READ, None)
        self._callbacks = collections.deque()
        self._timers = []
        self._timer_seq = itertools.count()
        self._stopping = False
        self.thread = None
        self._woken = False
        # Called after each batch of ready sockets is read: lets handlers that
        # queued replies send them with one write per peer instead of one each.
        self.batch_end = None

    def stop_spinning(self):
        """Block at once from now on (no busy-polling; see net/spin.py)."""
        self.sel.spin_s = 0.0

    # --- called from any thread ------------------------------------------
    def call_soon(self, fn, *args):
        self._callbacks.append((fn, args))
        self._wake()

    def call_later(self, delay, fn, *args):
        self.call_soon(self._add_timer, time.monotonic() + delay, fn, args)

    def add_connection(self, conn, on_frame, on_close=None):
        conn.on_frame = on_frame
        conn.on_close = on_close
        conn.loop = self
        if threading.current_thread() is self.thread:
            self._register(conn)
        else:
            self.call_soon(self._register, conn)

    def add_listener(self, sock, on_accept):
        sock.setblocking(False)
        self.call_soon(lambda: self.sel.register(sock, READ, ("listen", on_accept)))

    def add_reader(self, sock, reader):
        """Watch a raw socket; ``reader.on_readable()`` runs on the loop thread."""
        sock.setblocking(False)
        self.call_soon(lambda: self.sel.register(sock, READ, reader))

    def want_write(self, conn):
        if threading.current_thread() is self.thread:
            self._arm_write(conn)
        else:
            self.call_soon(self._arm_write, conn)

    def detach(self, conn):
        """Stop watching ``conn`` (any thread; the caller must hold ``conn.rlock``).

        The caller then reads it itself with ``read(conn)`` and gives it back with
        ``attach``.  False when the connection is closed or not registered.
        """
        sock = conn.sock
        if sock is None or conn.close_requested:
            return False
        try:
            self.sel.mute(conn.fileno_)   # one cheap syscall; the entry stays
        except (KeyError, ValueError, OSError):
            return False
        return True

    def attach(self, conn):
        """Watch ``conn`` again after ``detach`` (any thread)."""
        sock = conn.sock
        if sock is None:
            return
        try:
            try:
                self.sel.unmute(conn.fileno_)
            except KeyError:
                self.sel.register(sock, READ, conn)
        except (KeyError, ValueError, OSError):
            pass   # closed meanwhile (its close handler ran on the loop thread)

    def stop(self):
        self._stopping = True
        self._wake()

    def start(self, daemon=True):
        self.thread = threading.Thread(target=self.run, name=self.name, daemon=daemon)
        self.thread.start()
        return self.thread

    # --- loop thread ------------------------------------------------------
    def _wake(self):
        if self._woken:
            return
        self._woken = True
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass

    def _add_timer(self, when, fn, args):
        heapq.heappush(self._timers, (when, next(self._timer_seq), fn, args))

    def _register(self, conn):
        if conn.closed or conn.sock is None:
            if conn.on_close:
                conn.on_close(conn)
            return
        events = READ
        if conn.outbuf:
            events |= WRITE
        if conn.buffered:
            conn.sock.setblocking(False)
        self.sel.register(conn.sock, events, conn)

    def _arm_write(self, conn):
        if conn.sock is None:
            return
        try:
            self.sel.modify(conn.sock, READ | WRITE, conn)
        except (KeyError, ValueError):
            pass

    def close_connection(self, conn):
        rl = conn.rlock
        if rl is not None and not rl.acquire(False):
            # Another thread is reading it (detach): that thread closes it, never
            # under its feet.
            conn.close_requested = True
            wake = conn.direct_wake
            if wake is not None:
                try:
                    os.write(wake, b"\1")
                except OSError:
                    pass
            return
        try:
            self._close_connection(conn)
        finally:
            if rl is not None:
                rl.release()

    def _close_connection(self, conn):
        if conn.sock is not None:
            try:
                self.sel.unregister(conn.sock)
            except (KeyError, ValueError):
                pass
        already = conn.closed and conn.sock is None
        conn.close()
        if not already and conn.on_close is not None:
            cb, conn.on_close = conn.on_close, None
            try:
                cb(conn)
            except Exception:   # the loop outlives a bug in a close handler
                logger.exception("%s: the close handler of %s raised", self.name,
                                 conn.peer or "a connection")

    def run(self):
        self.thread = threading.current_thread()
        sel = self.sel
        while not self._stopping:
            timeout = None
            if self._callbacks:
                timeout = 0
            elif self._timers:
                timeout = max(0.0, self._timers[0][0] - time.monotonic())
            events = sel.select(timeout)
            for data, mask, fileobj in events:
                if data is None:
                    try:
                        self._wake_r.recv(4096)
                    except BlockingIOError:
                        pass
                    self._woken = False
                elif type(data) is tuple:
                    try:
                        self._accept(fileobj, data[1])
                    except Exception:   # a bug in on_accept must not stop the loop
                        logger.exception("%s: accepting a connection raised", self.name)
                elif type(data) is not Connection:
                    try:
                        data.on_readable()
                    except Exception:
                        logger.exception("%s: reader %r raised; no longer watching it",
                                         self.name, data)
                        try:
                            sel.unregister(fileobj)
                        except (KeyError, ValueError, OSError):
                            pass
                else:
                    if mask & WRITE and data.buffered:
                        if data.flush_some() and data.sock is not None:
                            try:
                                sel.modify(data.sock, READ, data)
                            except (KeyError, ValueError):
                                pass
                    if mask & READ:
                        self._read(data)
            if self.batch_end is not None and events:
                try:
                    self.batch_end()
                except Exception:
                    logger.exception("%s: the batch-end handler raised", self.name)
            self._woken = False
            while self._callbacks:
                fn, args = self._callbacks.popleft()
                try:
                    fn(*args)
                except Exception:
                    logger.exception("%s: callback %r raised", self.name, fn)
            if self._timers:
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    _, _, fn, args = heapq.heappop(self._timers)
                    try:
                        fn(*args)
                    except Exception:
                        logger.exception("%s: timer %r raised", self.name, fn)
        for _, data in sel.entries():
            if isinstance(data, Connection):
                conn = data
                if conn.outbuf and conn.sock is not None:
                    # Last words (e.g. the reply to "shutdown") still go out.
                    try:
                        conn.sock.settimeout(1.0)
                        conn.sock.sendall(b"".join(conn.outbuf))
                    except OSError:
                        pass
                conn.close()
        sel.close()

    def _accept(self, lsock, on_accept):
        while True:
            try:
                s, _ = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            s.setblocking(True)
            on_accept(s)

    def _read(self, conn):
        rl = conn.rlock
        if rl is None:
            self.read(conn)
        elif rl.acquire(False):
            try:
                self.read(conn)
            finally:
                rl.release()
        # else: a caller reads it now (detach); it was readable before that.

    def _handler_failed(self, conn, kind, exc):
        """A frame handler raised: log it and close the connection (see the module doc)."""
        conn.info["handler_error"] = repr(exc)
        logger.error("%s: the handler of a %s frame from %s raised; closing that connection "
                     "so its peer fails or retries the work in flight there",
                     self.name, protocol.KIND_NAMES.get(kind, kind), conn.peer or "a peer",
                     exc_info=exc)
        self.close_connection(conn)

    def read(self, conn, view=None):
        """Read what ``conn`` has and run its handlers (its reader thread only).

        ``view`` is the reading thread's receive buffer (a memoryview; the loop's
        own by default). Bytes land there, never in a fresh object: a 256 KiB
        ``recv()`` allocation alone costs ~20 us (malloc maps and unmaps it).
        Never blocks, even on a blocking socket: readiness the selector reported
        may be gone (a caller reading its own reply took the bytes meanwhile).
        """
        sock = conn.sock
        if sock is None:
            return
        if view is None:
            view = self._view
        try:
            n = sock.recv_into(view, 0, _DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            n = 0
        if not n:
            self.close_connection(conn)
            return
        try:
            frames = conn.reader.feed(view[:n])
        except ProtocolError as exc:
            conn.info["protocol_error"] = str(exc)
            self.close_connection(conn)
            return
        on_frame = conn.on_frame
        for kind, payload in frames:
            try:
                msg = _loads(payload)
            except Exception as exc:  # undecodable payload: drop only this peer
                conn.info["protocol_error"] = f"undecodable message: {exc!r}"
                self.close_connection(conn)
                return
            try:
                on_frame(conn, kind, msg)
            except Exception as exc:
                self._handler_failed(conn, kind, exc)
                return
            if conn.sock is None:
                return

