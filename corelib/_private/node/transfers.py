"""Copies of objects between nodes, one chunk per request over the node
managers' authenticated TCP connection: pulling a copy in (start_pull ...) and
serving one out (h_read_object, h_end_read).

A component of NodeManager (manager.py): its methods run on the node
manager's one loop thread, with the state the NodeManager holds.
"""

import logging
import os

from minray import exceptions
from minray._private.net import protocol as P
from minray._private.net import transport
from minray._private.node.records import TRANSFER_CHUNK_BYTES, Pull, Serving
from minray._private.objects import serialization, shm
from minray._private.objects.directory import LOST, READY

log = logging.getLogger("minray")


class Transfers:
    """NodeManager's transfers component (see the module doc)."""

    # ---------------------------------------------- copies from other nodes
    # A process here needs an object whose bytes are in another node's store
    # (a pointer, see object_directory.py). This node manager pulls it from that
    # node manager over their authenticated TCP connection, one chunk per request
    # (read_object), each chunk written straight into a new segment of this store
    # with pwrite. So at most one chunk is in memory besides the segment, on each
    # side, and neither node manager maps the whole object. Every request for the
    # object meanwhile waits on that one pull. If the other node dies or no longer
    # has the object, the half-written segment is removed and the requests go the
    # way of any lost object (on_object_lost: the owner rebuilds it, or an error).
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
        name = f"{self.segment_prefix}nm_p{next(self.pull_seq)}_{oid.hex()[-12:]}"
        try:
            fd = shm.create_fd(name, max(size, 1))
        except OSError as exc:
            return self.pull_failed(oid, f"cannot create a segment of {size} bytes: {exc}")
        p = self.pulls[oid] = Pull(oid, conn, address, name, fd, size)
        self._request_chunk(p)

    def _request_chunk(self, p):
        n = min(TRANSFER_CHUNK_BYTES, p.size - p.offset)
        self.cluster.peer_request(p.conn, "read_object", (p.oid, p.offset, n),
                                  lambda ok, value: self._on_chunk(p, n, ok, value))

    def _on_chunk(self, p, n, ok, data):
        if self.pulls.get(p.oid) is not p:
            return
        if not ok or type(data) is not bytes or len(data) != n:
            why = data if not ok else f"a chunk of {len(data)} bytes, not {n}"
            return self._abort_pull(p, f"the node at {p.address} could not send it: {why}")
        try:
            view = memoryview(data)
            written = 0
            while written < n:
                written += os.pwrite(p.fd, view[written:], p.offset + written)
        except OSError as exc:
            return self._abort_pull(p, f"writing the copy failed: {exc}")
        p.offset += n
        self.objects.num_pull_chunks += 1
        if p.offset < p.size:
            return self._request_chunk(p)
        del self.pulls[p.oid]
        os.close(p.fd)
        self.answer_waiters(self.objects.pulled(p.oid, p.name, p.size))
        self.on_freed(self.objects.maybe_free(p.oid))

    def _abort_pull(self, p, why):
        del self.pulls[p.oid]
        os.close(p.fd)
        shm.unlink(p.name)          # never leave a half-written copy behind
        if not p.conn.closed:
            try:
                p.conn.send(P.NOTICE, ("end_read", (p.oid,)))
            except transport.ConnectionClosed:
                pass
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

    def h_read_object(self, conn, oid, offset, length):
        """A chunk of an object in this store, for a node pulling a copy."""
        serving = conn.info.setdefault("serving", {})
        src = serving.get(oid)
        if src is None:
            e = self.objects.entries.get(oid)
            loc = self.objects.locate(oid, None) if e is not None and \
                e.state == READY and e.remote is None else None
            if loc is None or loc[0] != "shm" or offset != 0:
                raise exceptions.ObjectLostError(oid.hex(), message=(
                    f"node {self.node_id[:12]} no longer holds object {oid.hex()}"))
            name, size = loc[1], loc[2]
            self.objects.mapped(name)   # never reused while the copy streams out
            try:
                fd = shm.open_fd(name)
            except FileNotFoundError:
                self.objects.unmapped(name)
                raise exceptions.ObjectLostError(oid.hex()) from None
            src = serving[oid] = Serving(name, size, fd)
            if e.copies is None:
                e.copies = set()
            e.copies.add(conn)
        name, size, fd = src
        if offset < 0 or length < 0 or offset + length > size:
            raise ValueError(f"read_object: bytes {offset}..{offset + length} are outside "
                             f"object {oid.hex()} of {size} bytes")
        data = os.pread(fd, length, offset)
        if offset + length >= size:
            self.h_end_read(conn, oid)
        return data

    def h_end_read(self, conn, oid):
        src = conn.info.get("serving", {}).pop(oid, None)
        if src is not None:
            os.close(src.fd)
            self.objects.unmapped(src.segment)
