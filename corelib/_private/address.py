"""Resolve an ``init(address=...)`` / ``--address`` value to a session directory.

Shared by the public API (api.init), the CLI (scripts.py) and the state API
(util/state), which must not import api.py for it.
"""

import os

from minray._private.net import transport as _transport
from minray._private.node import launch as _node


def resolve_address(address, temp_dir=None):
    """The session directory a driver connects to for ``init(address=...)``.

    Example::

        resolve_address("auto")          # the newest node on this machine
        resolve_address("10.0.0.1:6379") # this machine's node of that cluster
    """
    if address == "auto":
        # As Ray: "auto" means RAY_ADDRESS when it is set (a job's driver gets it).
        env = os.environ.get("RAY_ADDRESS") or os.environ.get("MINRAY_ADDRESS")
        if env and env not in ("auto", "local") and not env.startswith("http"):
            return resolve_address(env, temp_dir)
        found = _node.find_running_session(temp_dir)
        if found is None:
            raise ConnectionError("Could not find any running minray instance. Start one with "
                                  "'minray start --head', or call init() without an address "
                                  "to start a local one.")
        return found
    if os.path.isdir(address) and os.path.exists(os.path.join(address, "nm.sock")):
        return address
    if address.startswith("ray://"):
        raise ConnectionError(f"Cannot connect to {address!r}: minray has no Ray Client "
                              "(ray://); run the driver on a node of the cluster and use "
                              "address='auto' or 'HOST:PORT'.")
    parsed = _transport.parse_address(address)
    if parsed[0] == "tcp":
        # A driver talks to the node manager of its own machine, which belongs to the
        # cluster at HOST:PORT (as a Ray driver needs a local raylet).
        found = _node.find_cluster_session(f"{parsed[1]}:{parsed[2]}", temp_dir)
        if found is None:
            raise ConnectionError(
                f"No node of the cluster at {address} runs on this machine. Join it first "
                f"with `minray start --address {parsed[1]}:{parsed[2]}` (and the cluster "
                "token), then init(address='auto') or this address again.")
        return found
    raise ConnectionError(f"Cannot connect to {address!r}: pass address='auto' for the node "
                          "running on this machine, 'HOST:PORT' of its cluster's head, or a "
                          "session directory.")
