"""How the state API reaches a node manager's ``state_query`` handler.

    in a driver or worker: its own core client (after sending its own buffered
        task events, so what it just ran is in the answer)
    anywhere else (the CLI, the dashboard): a plain connection to the session's
        nm.sock, found from ``address`` (None/"auto": the newest node started with
        ``minray start``; or a session directory)
"""

import os
import pickle
import socket

from minray._private.net import protocol as P
from minray._private.net import transport

DEFAULT_TIMEOUT_S = 30


class StateApiError(RuntimeError):
    """A state query failed (no running minray, or the node manager refused it)."""


class SessionClient:
    """A blocking request/reply connection to a node manager's socket (no registration:
    it is neither a driver nor a worker, so it starts no job).

    Example::

        c = SessionClient("/tmp/minray-sessions/session_...")
        nodes = c.query("nodes", {})["result"]
    """

    def __init__(self, session_dir, timeout=DEFAULT_TIMEOUT_S):
        self.session_dir = session_dir
        self.timeout = timeout
        path = os.path.join(session_dir, "nm.sock")
        if not os.path.exists(path):
            raise StateApiError(f"No minray node runs in session {session_dir} (no nm.sock); "
                                "start one with 'minray start --head'.")
        try:
            self.sock = transport.connect_unix(path, timeout=min(timeout, 2))
        except OSError as exc:
            raise StateApiError(f"Cannot reach the minray node of session {session_dir} "
                                f"({exc}); is it still running?") from None
        self.conn = transport.Connection(self.sock)
        self.seq = 0

    def call(self, method, *args, timeout=None):
        self.seq += 1
        req = self.seq
        self.conn.send(P.REQUEST, (req, method, args))
        self.sock.settimeout(timeout or self.timeout)
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except socket.timeout:
                raise StateApiError(f"the node manager did not answer {method} within "
                                    f"{timeout or self.timeout} s") from None
            if not data:
                raise StateApiError("the node manager closed the connection (did minray stop?)")
            for kind, payload in self.conn.reader.feed(data):
                if kind != P.REPLY:
                    continue   # pushes are for registered clients only
                req_id, ok, value = pickle.loads(payload)
                if req_id != req:
                    continue
                if not ok:
                    raise value
                return value

    def query(self, resource, options, timeout=None):
        return self.call("state_query", resource, options, timeout=timeout)

    def close(self):
        self.conn.close()


class DriverClient:
    """The state API inside a running driver or worker: its core client's connection."""

    def __init__(self, client, timeout=DEFAULT_TIMEOUT_S):
        self.client = client
        self.timeout = timeout
        self.session_dir = (client.info or {}).get("session_dir")

    def call(self, method, *args, timeout=None):
        return self.client.call(method, *args, timeout=timeout or self.timeout)

    def query(self, resource, options, timeout=None):
        from minray._private.observability import task_events
        task_events.flush()   # ours first: the reply then includes what we just did
        return self.call("state_query", resource, options, timeout=timeout)

    def close(self):
        pass


def connect(address=None, timeout=DEFAULT_TIMEOUT_S):
    """A client for ``address`` (see the module docstring)."""
    from minray._private import state
    if address is None:
        client = state.current_client()
        if client is not None and hasattr(client, "nm"):
            return DriverClient(client, timeout)
        if client is not None:
            raise StateApiError("The state API needs a real runtime: init(local_mode=True) "
                                "runs everything in this process and records no state.")
    return SessionClient(resolve_session(address), timeout)


def resolve_session(address=None, temp_dir=None):
    from minray._private.node import launch as _node
    if address in (None, "auto"):
        env = os.environ.get("RAY_ADDRESS") or os.environ.get("MINRAY_ADDRESS")
        if env and env != "auto" and os.path.isdir(env):
            return env
        found = _node.find_running_session(temp_dir)
        if found is None:
            raise StateApiError("Could not find a running minray node. Start one with "
                                "'minray start --head', or pass --address <session dir>.")
        return found
    if os.path.isdir(address) and os.path.exists(os.path.join(address, "nm.sock")):
        return address
    if address.startswith("http://") or address.startswith("https://"):
        raise StateApiError(f"{address!r} is the dashboard's address; the state API "
                            "needs the session directory or 'auto'.")
    try:
        from minray._private.address import resolve_address
        return resolve_address(address, temp_dir)
    except ConnectionError as exc:
        raise StateApiError(str(exc)) from None
