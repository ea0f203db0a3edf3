"""The process's one core client (driver, worker or local mode) and its lookup.

Everything in the process that needs the runtime asks here: the public API
(api.py, remote_function.py, actor.py, object_ref.py, util/) and the shells
(worker/main.py sets the worker's client). This module imports nothing of
minray, so it sits at the bottom of the import graph; the one policy that
belongs to the public API, "start a runtime on first use, as Ray
auto-initialises", is handed in by the package (``set_auto_init``) instead of
imported from api.py (that import closed an 11-module cycle).

Example::

    from minray._private import state
    client = state.require_client()     # auto-initialises if nothing runs yet
"""

import threading

_client = None
_lock = threading.RLock()
_auto_init = None


def current_client():
    return _client


def set_client(client):
    global _client
    _client = client


def set_auto_init(init):
    """Register the zero-argument call that starts a runtime for ``require_client``."""
    global _auto_init
    _auto_init = init


def require_client():
    """The connected client, starting a local runtime first as Ray auto-initialises."""
    client = _client
    if client is not None:
        return client
    with _lock:
        if _client is None:
            if _auto_init is None:
                raise RuntimeError("minray is not initialised: call minray.init() first.")
            _auto_init()
        return _client


def current_worker_server():
    """The worker shell running this process's tasks (or local mode's stand-in), else None."""
    return getattr(_client, "worker_server", None)


def init_lock():
    return _lock
