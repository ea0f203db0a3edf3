"""Copies of objects between nodes: pulling a copy in (start_pull ...) and
streaming one out (h_open_stream), the bytes on threads of their own
(objects/transfer.py), never on the node manager's loop.

A component of NodeManager (manager.py): its methods run on the node
manager's one loop thread, with the state the NodeManager holds.
"""

import logging
import os
import threading

from minray import exceptions
from minray._private.net import transport
from minray._private.node.records import TRANSFER_CHUNK_BYTES, Pull
from minray._private.objects import serialization, shm, transfer
from minray._private.objects.directory import LOST, POOL_MIN_BYTES, READY

log = logging.getLogger("minray")


class Transfers:
    """NodeManager's transfers component (see the module doc)."""

    # ---------------------------------------------- copies from other nodes
    # A process here needs an object whose bytes are in another node's store
    # (a pointer, see objects/directory.py). This node manager asks that node
    # manager to open_stream it over their authenticated TCP connection: it pins
    # the segment and answers with one-time tickets for its Outbox. Threads here
    # then stream the bytes into a new segment of this store (objects/transfer.py:
    # sendfile there, recv_into mapped windows here), so neither node manager's
    # loop touches the bytes, nor maps the whole object. Every request for the
    # object meanwhile waits on that one pull. If the other node dies or no
    # longer has the object, the half-written segment is removed and the requests
    # go the way of any lost object (on_object_lost: the owner rebuilds it, or an
    # error).
    def start_pull(self, oid, address, size):
        if self.cluster is None or address == self.tcp_address:
            return self.pull_failed(oid, f"object {oid.hex()} points at this node's own "
                                         "store, which no longer has it")
        free = shm.shm_free_bytes()
        if free and size > free:
            return self.pull_failed(oid, f"/dev/shm has only {free / 2**20:.1f} MiB free for "
                                         f"a copy of {size / 2**20:.1f} MiB")
        try:
            conn = self.cluster.peer(address, None, {})
        except (OSError, transport.AuthenticationError) as exc:
            return self.pull_failed(oid, f"cannot reach the node at {address}: {exc}")
        # The segment is chosen once the holder says how many bytes come (_on_offer).
        p = self.pulls[oid] = Pull(oid, conn, address, None, None, size)
        self.cluster.peer_request(conn, "open_stream", (oid, transfer.STREAMS),
                                  lambda ok, value: self._on_offer(p, ok, value))

    def _pull_segment(self, oid, size):
        """(name, fd, new) of the segment a pull of ``size`` bytes lands in: a pooled
        one whose pages exist already (a 1 GiB pull into a new segment spends about
        as long having tmpfs allocate its pages as copying the bytes), else a new
        one of exactly ``size`` bytes (``new``: its receivers allocate its pages up
        front, transfer.receive). A pooled segment keeps its size: a producer that
        wrote it last may still hold a mapping of all of it (client write maps), and
        the object's header says which bytes are the object's."""
        if size >= POOL_MIN_BYTES:
            name = self.objects.alloc(size)
            if name is not None:
                try:
                    return name, shm.open_fd_rw(name), False
                except FileNotFoundError:   # removed from /dev/shm from outside
                    pass
        self.objects.make_room(size)
        name = f"{self.segment_prefix}nm_p{next(self.pull_seq)}_{oid.hex()[-12:]}"
        return name, shm.create_fd(name, max(size, 1)), True

    def _on_offer(self, p, ok, value):
        if self.pulls.get(p.oid) is not p:
            return
        if not ok:
            return self._abort_pull(p, f"the node at {p.address} could not send it: {value}")
        port, size, parts = value
        try:
            p.name, p.fd, new = self._pull_segment(p.oid, size)
        except OSError as exc:
            return self._abort_pull(p, f"cannot create a segment of {size} bytes: {exc}")
        p.size, p.parts_left = size, len(parts)
        for key, offset, length in parts:
            threading.Thread(target=self._receive, args=(p, port, key, offset, length, new),
                             name="minray-object-in", daemon=True).start()

    def _receive(self, p, port, key, offset, length, new):
        """One stream's own thread: its part's bytes, then the rest back on the loop."""
        host = p.address.rsplit(":", 1)[0]
        try:
            windows = transfer.receive(host, port, self.cluster.token, key, p.fd, offset,
                                       length, transfer.aligned(TRANSFER_CHUNK_BYTES),
                                       allocate=new)
            error = None
        except (OSError, transport.AuthenticationError) as exc:
            windows, error = 0, exc
        self.loop.call_soon(self._on_received, p, windows, error)

    def _on_received(self, p, windows, error):
        """A part is in (or failed); once all are, the copy is sealed or dropped."""
        p.windows += windows
        p.error = p.error or error
        p.parts_left -= 1
        if p.parts_left:
            return
        if p.error is not None:
            return self._abort_pull(p, f"the stream from {p.address} broke: {p.error}")
        self.objects.num_pull_chunks += p.windows
        del self.pulls[p.oid]
        capacity = _close_segment(p)
        self.answer_waiters(self.objects.pulled(p.oid, p.name, p.size, capacity))
        self.on_freed(self.objects.maybe_free(p.oid))

    def _abort_pull(self, p, why):
        del self.pulls[p.oid]
        if p.fd is not None:
            capacity = _close_segment(p)
            if capacity > p.size:   # a pooled segment: free space again, half-written
                self.objects.recycle(p.name, capacity)
            else:
                shm.unlink(p.name)  # never leave a half-written copy behind
        self.pull_failed(p.oid, why)

    def pull_failed(self, oid, why):
        log.warning(f"minray: could not copy object {oid.hex()} from another node: {why}")
        e = self.objects.entries.get(oid)
        waiters = self.objects.pull_failed(oid)
        lost = serialization.error_blob(exceptions.ObjectLostError(oid.hex(), message=(
            f"Failed to retrieve object {oid.hex()}: its copy is on another node, and "
            f"copying it here failed ({why}); it cannot be rebuilt from here.")))
        for conn, req_id in waiters:
            if e is not None and self.clients.get(conn, {}).get("client_id") == e.owner:
                self.reply(conn, req_id, True, LOST)   # the owner rebuilds it from lineage
            else:
                self.reply(conn, req_id, True, ("inline", lost))

    # ---------------------------------------------- copies to other nodes
    def h_open_stream(self, conn, oid, streams=1):
        """Another node pulls a copy of an object in this store: pin its segment and
        offer it on the Outbox in up to ``streams`` parts. Returns (port, bytes to
        stream, [(ticket, offset, length) per part])."""
        e = self.objects.entries.get(oid)
        loc = self.objects.locate(oid, None) if e is not None and \
            e.state == READY and e.remote is None else None
        if loc is None or loc[0] != "shm":
            raise exceptions.ObjectLostError(oid.hex(), message=(
                f"node {self.node_id[:12]} no longer holds object {oid.hex()}"))
        name = loc[1]
        self.objects.mapped(name)   # never reused while the copy streams out
        try:
            fd = shm.open_fd(name)
        except FileNotFoundError:
            self.objects.unmapped(name)
            raise exceptions.ObjectLostError(oid.hex()) from None
        try:
            size = shm.payload_size(fd, loc[2])
        except (OSError, ValueError) as exc:
            os.close(fd)
            self.objects.unmapped(name)
            raise exceptions.ObjectLostError(oid.hex(), message=(
                f"object {oid.hex()}'s segment on node {self.node_id[:12]} is unreadable: "
                f"{exc}")) from None
        if e.copies is None:
            e.copies = set()
        e.copies.add(conn)
        if self.outbox is None:
            self.outbox = transfer.Outbox(self.node_ip, self.cluster.token,
                                          lambda t, err: self.loop.call_soon(self._sent, t))
        parts = []
        for i, part in enumerate(transfer.split(size, transfer.aligned(TRANSFER_CHUNK_BYTES),
                                                max(1, min(int(streams), 16)))):
            if i:       # each part its own fd and pin, let go when its stream ends
                self.objects.mapped(name)
                fd = os.dup(fd)
            key = self.outbox.offer(oid, name, fd, part.offset, part.size)
            self.loop.call_later(transfer.TICKET_TTL_S, self._withdraw_offer, key)
            parts.append((key, part.offset, part.size))
        return (self.outbox.port, size, parts)

    def _sent(self, ticket):
        os.close(ticket.fd)
        self.objects.unmapped(ticket.name)

    def _withdraw_offer(self, key):
        ticket = self.outbox.take(key)
        if ticket is not None:      # nobody came for it (the puller died): unpin
            self._sent(ticket)


def _close_segment(p):
    """Close a pull's segment fd; returns the segment's size in bytes."""
    try:
        return os.fstat(p.fd).st_size
    except OSError:
        return p.size
    finally:
        os.close(p.fd)
