"""The process's one core client (driver, worker or local mode) and its lookup."""

import threading

_client = None
_lock = threading.RLock()


def current_client():
    return _client


def set_client(client):
    global _client
    _client = client


def require_client():
    """The connected client, starting a local runtime first as Ray auto-initialises."""
    client = _client
    if client is not None:
        return client
    with _lock:
        if _client is None:
            from .. import api
            api.init()
        return _client


def init_lock():
    return _lock
