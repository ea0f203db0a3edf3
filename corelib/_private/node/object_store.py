"""Objects in this node's store: seal, publish, get, borrow and release,
lost objects, segments mapped by clients, and the borrows this node holds at
the keeper of actors created elsewhere (their handle tokens).

A component of NodeManager (manager.py): its methods run on the node
manager's one loop thread, with the state the NodeManager holds.
"""

import collections
import logging

from minray import exceptions
from minray._private.net import protocol as P
from minray._private.net import transport
from minray._private.node.records import DEFERRED as _DEFERRED, TOKEN_SUFFIX as _TOKEN_SUFFIX, TRANSFER_CHUNK_BYTES
from minray._private.objects import serialization, shm
from minray._private.objects.directory import LOST

log = logging.getLogger("minray")


class ObjectStore:
    """NodeManager's object store component (see the module doc)."""

    def _owner_died_blob(self, oid):
        return serialization.error_blob(exceptions.OwnerDiedError(oid.hex()))

    # ----------------------------------------------------------------- objects
    def h_seal(self, conn, oid, segment, size, owner):
        self.answer_waiters(self.objects.seal(oid, segment, size, owner))
        if self.objects.spill_error != self.spill_warned:
            self.warn_spill_failed()

    def warn_spill_failed(self):
        """Spilling failed (a full disk): tell the drivers once per distinct cause."""
        o = self.objects
        self.spill_warned = o.spill_error
        text = (f"Warning: minray could not spill objects to disk: {o.spill_error}. "
                f"The object store holds {o.used / 2**20:.0f} MiB, over its capacity of "
                f"{o.capacity / 2**20:.0f} MiB; objects stay in shared memory and nothing "
                "is lost, but /dev/shm may fill up. Free disk space (or point "
                "_system_config['object_spilling_config'] elsewhere), or free references "
                "to large objects.")
        log.warning(text)
        for job in self.jobs.values():
            if job["end"] is None:
                self.push(job["driver"], "warning", (text,))

    def h_publish(self, conn, oid, owner, blob):
        self.answer_waiters(self.objects.publish(oid, owner, blob))
        if blob is not None and blob[0] == serialization.TAG_SHM:
            loc = self.objects.want_pull(oid)   # requests waited for this pointer
            if loc is not None:
                self.start_pull(oid, loc[1], loc[2])

    def h_owner_release(self, conn, oids):
        for oid in oids:
            self.on_freed(self.objects.owner_release(oid))

    def h_borrow(self, conn, oids):
        cid = self.clients[conn].get("client_id")
        deferred = False
        for oid in oids:
            self.objects.borrow(oid, cid)
            if oid[-4:] == _TOKEN_SUFFIX:
                # Answered once the actor's keeper counts this node's handles, so a
                # creator that lets go right after cannot end the actor meanwhile.
                deferred |= self.sync_token(oid, (conn, self.current_req_id))
        return _DEFERRED if deferred else True

    def h_unborrow(self, conn, oids):
        cid = self.clients[conn].get("client_id")
        for oid in oids:
            self.on_freed(self.objects.unborrow(oid, cid))
            if oid[-4:] == _TOKEN_SUFFIX:
                self.sync_token(oid)

    def h_hold(self, conn, inner, outer):
        self.objects.hold(inner, outer)
        for oid in inner:
            if oid[-4:] == _TOKEN_SUFFIX:
                self.sync_token(oid)
        return True

    def h_release_holds(self, conn, outers):
        for outer in outers:
            self.on_freed(self.objects.release_holds(outer))
        self.sync_tokens()

    # -- handles of actors kept by another node ---------------------------------
    # An actor lives while a handle to it exists anywhere (unless detached). Its
    # keeper (the node that created it) counts the handles on its own node in its
    # token's entry; every other node counts its own, and while it has any it
    # holds one borrow of the token at the keeper, as a client of the keeper. That
    # borrow ends when the node's last handle goes, or with the node (its
    # connection to the keeper closes), and the keeper ends the actor as for any
    # last handle.
    def _kept_elsewhere(self, oid):
        if self.cluster is None:
            return False
        a = self.actors.get(oid[:16])
        return a is None or a.mirror_of is not None or bool(a.spec.get("hosted"))

    def sync_token(self, oid, waiter=None):
        """Hold or drop this node's borrow at the keeper to match the handles here.
        True when ``waiter`` (a borrow request) is answered later, once it holds."""
        if not self._kept_elsewhere(oid):
            return False
        e = self.objects.entries.get(oid)
        want = e is not None and bool(e.borrowers or e.held_by)
        tb = self.token_borrows.get(oid)
        if want and tb is None:
            tb = self.token_borrows[oid] = {"conn": None, "held": False, "waiters": []}
            self.cluster.locate_actor(oid[:16], lambda found: self._borrow_at_keeper(
                oid, tb, found))
        if tb is None:
            return False
        if not tb["held"]:
            if waiter is not None:
                tb["waiters"].append(waiter)
                return True
            return False
        if not want:
            del self.token_borrows[oid]
            if tb["conn"] is not None and not tb["conn"].closed:
                tb["conn"].send(P.NOTICE, ("unborrow", ([oid],)))
        return False

    def _borrow_at_keeper(self, oid, tb, found):
        conn = None
        if found is not None:
            try:
                conn = self.cluster.peer(found[1], None, {})
            except (OSError, transport.AuthenticationError):
                conn = None   # the keeper's node is gone, and the actor with it
        if conn is None:
            return self._token_held(oid, tb, None)
        self.cluster.peer_request(conn, "borrow", ([oid],),
                                  lambda ok, v: self._token_held(oid, tb, conn if ok else None))

    def _token_held(self, oid, tb, conn):
        tb["conn"], tb["held"] = conn, True
        waiters, tb["waiters"] = tb["waiters"], []
        for c, req_id in waiters:
            self.reply(c, req_id, True, True)
        if self.token_borrows.get(oid) is tb:
            self.sync_token(oid)    # the handles here may all have gone meanwhile

    def sync_tokens(self):
        for oid in list(self.token_borrows):
            self.sync_token(oid)

    def h_get_object(self, conn, oid):
        req_id = self.current_req_id
        loc = self.objects.locate(oid, (conn, req_id))
        if loc is None:
            return _DEFERRED
        if loc[0] == "remote":
            self.start_pull(oid, loc[1], loc[2])
            return _DEFERRED
        if loc is LOST:
            return self.on_object_lost(conn, req_id, oid)
        return self.location_for(conn, loc)

    def on_object_lost(self, conn, req_id, oid):
        """The store copy of ``oid`` is gone: its owner rebuilds it from lineage.

        The owner asking is told at once and rebuilds it itself; a borrower's
        request waits here while the owner does (``reconstruct``), and gets the
        new copy from the seal, or the owner's error (``object_lost``).
        """
        e = self.objects.entries[oid]
        if e.owner == self.clients[conn].get("client_id"):
            return LOST
        owner = self.client_conns.get(e.owner)
        if owner is None:
            self.objects.fail(oid, self._owner_died_blob(oid))
            return self.objects.locate(oid, None)
        e.waiters.append((conn, req_id))
        self.push(owner, "reconstruct", (oid,))
        return _DEFERRED

    def h_object_lost(self, conn, oid, blob):
        self.answer_waiters(self.objects.fail(oid, blob))

    def h_alloc_segment(self, conn, size):
        return self.objects.alloc(size)

    def h_mapped(self, conn, name):
        self.objects.mapped(name)
        self.clients[conn].setdefault("mapped", collections.Counter())[name] += 1

    def h_unmapped(self, conn, name):
        self.objects.unmapped(name)
        m = self.clients[conn].get("mapped")
        if m is not None:
            m[name] -= 1
            if m[name] <= 0:
                del m[name]

    def answer_waiters(self, ready):
        for (conn, req_id), loc in ready:
            self.reply(conn, req_id, True, self.location_for(conn, loc))

    def location_for(self, conn, loc):
        """A requester on another node cannot map our shared memory: it gets a small
        value's bytes, and for a large one a blob that says "pull it from here"."""
        if loc is None or loc is LOST or not conn.info.get("tcp") or loc[0] != "shm":
            return loc
        if loc[2] > TRANSFER_CHUNK_BYTES:
            return ("inline", serialization.remote_blob(loc[2], self.tcp_address))
        buf = shm.attach(loc[1])
        try:
            return ("inline", serialization.inline_from_segment(buf))
        finally:
            buf.close()

    def on_freed(self, oids):
        copies, self.objects.freed_copies = self.objects.freed_copies, []
        for oid, conns in copies:
            for c in conns:     # nodes that pulled a copy from here drop theirs
                self.push(c, "free_copy", (oid,))
        for oid in oids:
            if oid[-4:] == b"\xff\xff\xff\xff":
                a = self.actors.get(oid[:16])
                if a is not None and not a.detached and a.state != "DEAD":
                    self.kill_actor(a, "all references to the actor were deleted",
                                    no_restart=True, graceful=True)

    def h_object_stats(self, conn):
        return self.objects.stats()

    def h_object_info(self, conn, oid):
        """Reference-count detail of one object (for debugging leaks)."""
        e = self.objects.entries.get(oid)
        if e is None:
            return None
        return {"state": e.state, "owner_released": e.owner_released,
                "borrowers": dict(e.borrowers), "held_by": dict(e.held_by),
                "waiters": len(e.waiters), "segment": e.segment}
