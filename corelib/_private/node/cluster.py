"""Many nodes: the head's table of nodes, and each node manager's link to it.

    worker node's NM --TCP, token handshake--> head NM
        register_node(node_id, ip, port, total)   -> the cluster view
        heartbeat(node_id, available)  every HEARTBEAT_S -> the cluster view
    head: a node silent for NODE_TIMEOUT_S is dead; it leaves the view and every
          client hears ("node_died", node_id), so its leases and actors fail over.

``ClusterView`` is pure bookkeeping (events in, answers out; tests drive it
without sockets). ``Membership`` is the thin shell a node manager owns: the TCP
listener with its authentication, the head's handlers, and a worker node's
heartbeat loop. On a single machine without ``--port``/``--address`` none of
this runs and the node manager behaves as a one-node cluster.

The node manager calls Membership; Membership never calls the node manager:
it reports through the callbacks of a ``MembershipEvents`` record it is given
(one direction: NodeManager -> Membership -> events).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from minray._private.named import NamedTuple

from minray._private.net import protocol as P
from minray._private.net import transport

log = logging.getLogger("minray")

HEARTBEAT_S = 0.5
NODE_TIMEOUT_S = float(os.environ.get("MINRAY_NODE_TIMEOUT_S", "4.0"))


class NodeRecord:
    __slots__ = ("node_id", "ip", "port", "total", "available", "last_seen", "alive",
                 "is_head", "session_dir", "draining")

    def __init__(self, node_id, ip, port, total, available, now, is_head=False,
                 session_dir=None):
        self.node_id = node_id
        self.ip = ip
        self.port = port
        self.total = dict(total)
        self.available = dict(available)
        self.last_seen = now
        self.alive = True
        self.is_head = is_head
        self.session_dir = session_dir
        self.draining = False    # takes no new work (the cluster policy skips it)

    @property
    def address(self):
        return f"{self.ip}:{self.port}"

    def as_dict(self):
        return {"node_id": self.node_id, "ip": self.ip, "port": self.port,
                "total": dict(self.total), "available": dict(self.available),
                "alive": self.alive, "is_head": self.is_head}


class ClusterView:
    """Every node this node knows of, with resources as last reported."""

    def __init__(self, timeout_s=NODE_TIMEOUT_S):
        self.nodes = {}
        self.timeout_s = timeout_s

    def upsert(self, node_id, ip, port, total, available, now, is_head=False):
        rec = self.nodes.get(node_id)
        if rec is None or not rec.alive:
            rec = self.nodes[node_id] = NodeRecord(node_id, ip, port, total, available, now,
                                                   is_head)
        else:
            rec.ip, rec.port, rec.total = ip, port, dict(total)
            rec.available, rec.last_seen = dict(available), now
        return rec

    def heartbeat(self, node_id, available, now):
        """Returns False for a node the view does not know (or declared dead)."""
        rec = self.nodes.get(node_id)
        if rec is None or not rec.alive:
            return False
        rec.available, rec.last_seen = dict(available), now
        return True

    def expire(self, now, keep=()):
        """Declare dead every node silent for longer than the timeout; returns their ids."""
        dead = []
        for rec in self.nodes.values():
            if rec.alive and rec.node_id not in keep and now - rec.last_seen > self.timeout_s:
                rec.alive = False
                dead.append(rec.node_id)
        return dead

    def mark_dead(self, node_id):
        rec = self.nodes.get(node_id)
        if rec is not None and rec.alive:
            rec.alive = False
            return True
        return False

    def alive(self):
        return [r for r in self.nodes.values() if r.alive]

    def snapshot(self):
        return [r.as_dict() for r in self.nodes.values()]

    def replace(self, snapshot, now):
        """Adopt the head's snapshot (a worker node's view)."""
        self.nodes = {}
        for d in snapshot:
            rec = NodeRecord(d["node_id"], d["ip"], d["port"], d["total"], d["available"],
                             now, d.get("is_head", False))
            rec.alive = d["alive"]
            self.nodes[rec.node_id] = rec

    def total(self, key="total"):
        out = {}
        for rec in self.alive():
            for k, v in getattr(rec, key).items():
                out[k] = out.get(k, 0.0) + v
        return out


class MembershipEvents(NamedTuple):
    """What Membership needs from its node manager, as callbacks (no back-reference)."""
    loop: object                          # the node manager's transport.Loop
    node_id: str
    node_ip: str
    session_dir: str
    resources: Callable[[], tuple]        # () -> (total, available as reported)
    is_stopping: Callable[[], bool]
    on_accept: Callable                   # (sock) an authenticated TCP connection
    on_view_changed: Callable[[], None]   # the cluster view changed (heartbeat)
    on_lost_head: Callable[[], None]      # a worker node lost the head: shut down
    on_node_died: Callable[[str], None]   # tell this node's clients (push node_died)
    on_peer_push: Callable                # (conn, event, args) from another node manager
    on_peer_closed: Callable              # (conn) a peer connection closed


class Membership:
    """A node manager's part in a cluster: listener, head handlers, heartbeats."""

    def __init__(self, events, token, port, head_address=None):
        self.ev = events
        self.loop = events.loop
        self.token = token
        self.port = port
        self.head_address = head_address       # None on the head itself
        self.view = ClusterView()
        self.head_conn = None
        self.req_seq = 0
        self.pending = {}
        self.listener = None
        self.node_conns = {}                   # node_id -> conn (on the head)
        self.peers = {}                        # (address, job_id) -> conn to another NM
        self.actor_dir = {}                    # head: actor_id -> (meta, "ip:port" keeping it)
        self.names = {}                        # head: (namespace, name) -> actor_id

    @property
    def is_head(self):
        return self.head_address is None

    # -- start ----------------------------------------------------------------
    @property
    def handlers(self):
        """The requests other nodes send (merged into the node manager's table)."""
        return {
            "register_node": self.h_register_node,
            "heartbeat": self.h_heartbeat,
            "register_actor": self.h_register_actor,
            "unregister_actor": self.h_unregister_actor,
            "locate_actor": self.h_locate_actor,
            "lookup_actor": self.h_lookup_actor,
        }

    def start(self):
        ev = self.ev
        self.listener = transport.listen_tcp(ev.node_ip, self.port)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept_loop, name="minray-tcp-accept",
                         daemon=True).start()
        total, available = ev.resources()
        self.view.upsert(ev.node_id, ev.node_ip, self.port, total, available,
                         time.monotonic(), is_head=self.is_head)
        if not self.is_head:
            self._join_head()
        self.loop.call_later(HEARTBEAT_S, self.tick)

    def _accept_loop(self):
        while True:
            try:
                sock, peer = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._authenticate, args=(sock, peer),
                             daemon=True).start()

    def _authenticate(self, sock, peer):
        try:
            transport.server_handshake(sock, self.token)
        except transport.AuthenticationError as exc:
            log.warning("minray: refused a TCP connection from %s:%s: %s", peer[0], peer[1],
                        exc)
            sock.close()
            return
        sock.setsockopt(transport.socket.IPPROTO_TCP, transport.socket.TCP_NODELAY, 1)
        self.loop.call_soon(self.ev.on_accept, sock)

    def _join_head(self):
        host, port = self.head_address.rsplit(":", 1)
        sock = transport.connect_tcp(host, int(port), self.token)
        conn = transport.Connection(sock, buffered=True)
        self.head_conn = conn
        self.loop.add_connection(conn, self._on_head_frame, self._on_head_closed)
        ev = self.ev
        total, available = ev.resources()
        self.request("register_node", (ev.node_id, ev.node_ip, self.port, dict(total),
                                       dict(available), ev.session_dir), self._on_view)

    # -- a worker node talking to the head --------------------------------------
    def request(self, method, args, callback):
        """A request to the head; ``callback(value)`` runs with its answer."""
        def answered(ok, value):
            if ok:
                callback(value)
            else:
                log.warning("minray: the head refused a request: %r", value)
        self.peer_request(self.head_conn, method, args, answered)

    def _on_head_frame(self, conn, kind, msg):
        if kind == P.REPLY:
            self._on_reply(msg, conn)
        elif kind == P.PUSH:
            event, args = msg
            if event == "node_died":
                self.on_node_died(*args)

    def _on_head_closed(self, conn):
        log.warning("minray: lost the connection to the head node; shutting down this node")
        self.loop.call_soon(self.ev.on_lost_head)

    def _on_view(self, snapshot):
        self.view.replace(snapshot, time.monotonic())
        self._refresh_self()
        self.ev.on_view_changed()

    def _refresh_self(self):
        rec = self.view.nodes.get(self.ev.node_id)
        if rec is not None:
            total, available = self.ev.resources()
            rec.total, rec.available = dict(total), dict(available)

    # -- the head's handlers ----------------------------------------------------
    def h_register_node(self, conn, node_id, ip, port, total, available, session_dir):
        if not self.is_head:
            raise ValueError("this node is not the head; join the head's address instead")
        rec = self.view.upsert(node_id, ip, port, total, available, time.monotonic())
        rec.session_dir = session_dir
        self.node_conns[node_id] = conn
        conn.info["node_id"] = node_id
        log.warning("minray: node %s joined from %s:%s with %s", node_id[:12], ip, port,
                    _public(total))
        return self.snapshot()

    def h_heartbeat(self, conn, node_id, available):
        if not self.view.heartbeat(node_id, available, time.monotonic()):
            raise ValueError(f"node {node_id} is not part of this cluster (declared dead)")
        return self.snapshot()

    def snapshot(self):
        self._refresh_self()
        return self.view.snapshot()

    def on_node_conn_closed(self, conn):
        node_id = conn.info.get("node_id")
        if node_id and self.view.mark_dead(node_id):
            self.announce_death(node_id, "its connection to the head closed")

    def close_peers_of(self, node_id):
        """A dead node's connections end here too, even if its socket never closed."""
        rec = self.view.nodes.get(node_id)
        if rec is None:
            return
        for (address, _), conn in list(self.peers.items()):
            if address == rec.address and not conn.closed:
                self.loop.close_connection(conn)

    def announce_death(self, node_id, why):
        log.warning("minray: node %s died: %s", node_id[:12], why)
        self.close_peers_of(node_id)
        self.ev.on_node_died(node_id)

    def on_node_died(self, node_id):
        self.view.mark_dead(node_id)
        self.close_peers_of(node_id)
        self.ev.on_node_died(node_id)

    # -- every HEARTBEAT_S --------------------------------------------------------
    def tick(self):
        ev = self.ev
        if ev.is_stopping():
            return
        self.loop.call_later(HEARTBEAT_S, self.tick)
        now = time.monotonic()
        if self.is_head:
            self._refresh_self()
            self.view.nodes[ev.node_id].last_seen = now
            for node_id in self.view.expire(now, keep=(ev.node_id,)):
                self.announce_death(node_id, f"no heartbeat for {self.view.timeout_s:g} s")
                conn = self.node_conns.pop(node_id, None)
                if conn is not None:
                    self.loop.close_connection(conn)
            ev.on_view_changed()
        elif self.head_conn is not None and not self.head_conn.closed:
            self.request("heartbeat", (ev.node_id, ev.resources()[1]), self._on_view)

    # -- connections to other nodes' managers (actors hosted there) ---------------
    def peer(self, address, job_id, job_config):
        """A connection to the node manager at ``address`` on behalf of one of our jobs:
        registered there as that job's driver, so its workers' logs come back here."""
        key = (address, job_id)
        conn = self.peers.get(key)
        if conn is not None and not conn.closed:
            return conn
        host, port = address.rsplit(":", 1)
        sock = transport.connect_tcp(host, int(port), self.token, timeout=5)
        conn = transport.Connection(sock, buffered=True)
        conn.info["job_id"] = job_id
        self.peers[key] = conn
        self.loop.add_connection(conn, self._on_peer_frame, self._on_peer_closed)
        client_id = (self.ev.node_id.encode() + b"/" + str(job_id).encode())[-24:]
        conn.send(P.REQUEST, (0, "register_client", ("driver", client_id, os.getpid(), None,
                                                     dict(job_config))))
        return conn

    def peer_request(self, conn, method, args, callback=None):
        """A request to another node manager (the head or a peer); ``callback(ok,
        value)`` runs with the reply, or with an error if the connection is gone."""
        self.req_seq += 1
        if callback is not None:
            self.pending[self.req_seq] = callback
            conn.info.setdefault("req_ids", set()).add(self.req_seq)
        try:
            conn.send(P.REQUEST, (self.req_seq, method, args))
        except transport.ConnectionClosed:
            self.pending.pop(self.req_seq, None)
            if callback is not None:
                callback(False, ConnectionError("the node is gone"))

    def _on_reply(self, msg, conn):
        req_id, ok, value = msg
        conn.info.get("req_ids", set()).discard(req_id)
        cb = self.pending.pop(req_id, None)
        if cb is not None:
            cb(ok, value)

    def _on_peer_frame(self, conn, kind, msg):
        if kind == P.REPLY:
            self._on_reply(msg, conn)
        elif kind == P.PUSH:
            event, args = msg
            self.ev.on_peer_push(conn, event, args)

    def _on_peer_closed(self, conn):
        for key, c in list(self.peers.items()):
            if c is conn:
                del self.peers[key]
        # Requests it never answered fail now (a pull from a dead node ends here).
        for req_id in conn.info.get("req_ids", ()):
            cb = self.pending.pop(req_id, None)
            if cb is not None:
                cb(False, ConnectionError("the node closed its connection (it died?)"))
        self.ev.on_peer_closed(conn)

    # -- the head's actor directory: where each actor is kept, and names -----------
    def register_actor(self, actor_id, name, namespace, meta):
        entry = (actor_id, name, namespace, meta, f"{self.ev.node_ip}:{self.port}")
        if self.is_head:
            self.h_register_actor(None, *entry)
        else:
            self.head_conn.send(P.NOTICE, ("register_actor", entry))

    def unregister_actor(self, actor_id, name, namespace):
        if self.is_head:
            self.h_unregister_actor(None, actor_id, name, namespace)
        elif self.head_conn is not None and not self.head_conn.closed:
            self.head_conn.send(P.NOTICE, ("unregister_actor", (actor_id, name, namespace)))

    def h_register_actor(self, conn, actor_id, name, namespace, meta, address):
        self.actor_dir[actor_id] = (meta, address)
        if name:
            self.names[(namespace, name)] = actor_id

    def h_unregister_actor(self, conn, actor_id, name, namespace):
        self.actor_dir.pop(actor_id, None)
        if name and self.names.get((namespace, name)) == actor_id:
            del self.names[(namespace, name)]

    def h_locate_actor(self, conn, actor_id):
        return self.actor_dir.get(actor_id)

    def h_lookup_actor(self, conn, name, namespace):
        actor_id = self.names.get((namespace, name))
        if actor_id is None or actor_id not in self.actor_dir:
            return None
        meta, address = self.actor_dir[actor_id]
        return (actor_id, meta, address)

    def locate_actor(self, actor_id, callback):
        """``callback((meta, "ip:port" of its keeper) or None)``; None also when the
        head cannot be asked (waiting requests must never hang on it)."""
        if self.is_head:
            return callback(self.h_locate_actor(None, actor_id))
        self.peer_request(self.head_conn, "locate_actor", (actor_id,),
                          lambda ok, value: callback(value if ok else None))

    def lookup_actor(self, name, namespace, callback):
        if self.is_head:
            return callback(self.h_lookup_actor(None, name, namespace))
        self.request("lookup_actor", (name, namespace), callback)

    # -- what the node manager asks ------------------------------------------------
    def nodes(self):
        self._refresh_self()
        return list(self.view.nodes.values())

    def close(self):
        if self.listener is not None:
            try:
                self.listener.close()
            except OSError:
                pass


def _public(resources):
    return {k: v for k, v in resources.items()
            if not k.startswith("_") and not k.startswith("node:")}
