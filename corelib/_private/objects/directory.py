"""The node's object directory: every object that left its owner, and every
object in shared memory, with its location, its holders and its spill file.

    producer --seal(oid, segment)--> directory <--get_object(oid)-- any process
    owner    --export(oid, value)-->           <--borrow/unborrow-- borrowers
    owner    --owner_release(oid)->  frees when the owner, every borrower and
                                     every containing object let go

Objects that never leave their owner and are small live only in the owner's
memory and never reach this table (the fast path).  The table holds no
sockets: waiting requests are opaque ``waiter`` values handed back in the
``ready`` list that the node manager answers.

An object whose bytes are in another node's store is first recorded as a
pointer (``remote``: that node manager's address and the size; from a blob
``S<size>@ip:port``, see serialization.remote_blob). The first ``locate`` of it
turns it into a pull: the entry is pending while the node manager streams it in
chunks into a segment of this store (``pulled``), and every request meanwhile
waits on that one transfer. The node a copy was pulled from records the puller
in ``copies`` and tells it when the object is freed there.

When the shared-memory bytes exceed ``capacity``, the least recently used
segments are copied to ``spill_dir`` and unlinked; ``locate`` restores them.

Freed segments are kept in a bounded pool and handed to the next producer of a
large object of about the same size (``alloc``), and to the next pull of one
from another node: writing into pages that already exist is several times
faster than having tmpfs allocate fresh ones (a 1 GiB pull written into a new
segment spends about as long allocating its pages as copying its bytes). A
segment is reused only once no process maps it anymore (processes report
``mapped`` / ``unmapped``), so a numpy array that outlived its ref never sees
new data.

The pool is part of the store's memory: it holds at most ``pool_limit`` bytes
(``MINRAY_OBJECT_POOL_BYTES``, default half the store's capacity), a segment
joins it only while the objects' bytes and the pool together stay within the
capacity, the whole pool is let go as soon as they would not (a seal that needs
the room), and at shutdown.

    >>> pool_limit_from(None, capacity=1 << 30)   # MINRAY_OBJECT_POOL_BYTES unset
    536870912
"""

import collections
import os
import time

from minray._private.objects import serialization, shm

PENDING, READY = 0, 1
LOST = ("lost",)   # what locate() returns for an object whose store copy is gone
POOL_MIN_BYTES = 1 << 20   # smaller segments are cheap to make afresh


def pool_limit_from(text, capacity):
    """The pool's bound in bytes: ``text`` (MINRAY_OBJECT_POOL_BYTES) when set, else
    half of ``capacity``; never more than the capacity. 0 turns pooling off.

    >>> pool_limit_from(None, 1000), pool_limit_from("100", 1000), pool_limit_from("5000", 1000)
    (500, 100, 1000)
    """
    if text is None or text == "":
        return capacity // 2
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError("MINRAY_OBJECT_POOL_BYTES must be a whole number of bytes >= 0 "
                         "(0 turns the pool of freed segments off; default half the object "
                         f"store's capacity), got {text!r}.")
    return min(value, capacity)


class Entry:
    __slots__ = ("oid", "state", "blob", "segment", "size", "owner", "owner_released",
                 "borrowers", "held_by", "holds", "waiters", "spill_path", "last_use",
                 "remote", "pulling", "copies")

    def __init__(self, oid):
        self.oid = oid
        self.state = PENDING
        self.blob = None         # inline blob (P/B/E) when not in shared memory
        self.segment = None      # segment name when in shared memory
        self.size = 0
        self.owner = None
        self.owner_released = False
        self.borrowers = collections.Counter()
        self.held_by = collections.Counter()  # outer oid -> count: values containing this one
        self.holds = []          # inner oids this object's value keeps alive
        self.waiters = []
        self.spill_path = None
        self.last_use = time.monotonic()
        self.remote = None       # (node manager "ip:port", size): a copy on another node
        self.pulling = False     # a pull of that copy into this store is under way
        self.copies = None       # peer connections that pulled a copy from this store

    def describe(self):
        where = "shm" if self.segment else ("spilled" if self.spill_path else "inline")
        return {"object_id": self.oid.hex(), "state": "READY" if self.state else "PENDING",
                "size": self.size, "where": where}


class ObjectDirectory:
    def __init__(self, capacity, spill_dir, segment_prefix, pool_limit=None):
        self.capacity = capacity
        self.spill_dir = spill_dir
        self.segment_prefix = segment_prefix
        self.entries = {}
        self.used = 0
        self.spilled_bytes = 0
        self.num_spilled = 0
        self.num_restored = 0
        self._restore_seq = 0
        self.mappers = collections.Counter()   # segment name -> processes mapping it
        self.retired = {}                       # freed but still mapped: name -> size
        self.pool = []                          # [(size, name)] free for reuse
        self.pool_bytes = 0
        self.pool_limit = pool_limit_from(os.environ.get("MINRAY_OBJECT_POOL_BYTES"),
                                          capacity) if pool_limit is None else pool_limit
        self.num_reused = 0
        self.spill_error = None        # why the last spill failed (e.g. disk full)
        self.spill_blocked_until = 0.0  # no new try before then (a full disk stays full)
        self.num_spill_failures = 0
        self.num_lost = 0
        self.num_pulls = 0              # objects pulled in from other nodes
        self.num_pull_chunks = 0
        self.pulled_bytes = 0
        self.freed_copies = []          # [(oid, copies)] freed here: tell those nodes

    def entry(self, oid):
        e = self.entries.get(oid)
        if e is None:
            e = self.entries[oid] = Entry(oid)
        return e

    # -- values arriving ------------------------------------------------------
    def seal(self, oid, segment, size, owner):
        """A producer wrote ``oid`` into ``segment``. Returns waiters to answer."""
        e = self.entry(oid)
        if e.owner is None:
            e.owner = owner
        if e.segment is not None or e.spill_path is not None:
            # A retried task wrote the value again: keep the first copy.
            shm.unlink(segment)
            return []
        e.segment, e.size, e.state = segment, size, READY
        self.used += size
        self.spill_if_needed(keep=oid)
        return self._take_waiters(e)

    def publish(self, oid, owner, blob):
        """The owner exported ``oid``; ``blob`` is its inline value, or None while pending."""
        e = self.entry(oid)
        if owner is not None:
            e.owner = owner
        if blob is None or e.state == READY or e.pulling:
            return []
        if blob[0] == serialization.TAG_SHM:
            where = serialization.remote_address(blob)
            if where is not None and e.segment is None and e.spill_path is None:
                e.remote, e.size = (where, serialization.shm_size_of(blob)), \
                    serialization.shm_size_of(blob)
                if not e.waiters:
                    e.state = READY   # pulled by the first locate
            return []  # else the segment's seal brings the value
        e.blob, e.size, e.state = blob, len(blob), READY
        return self._take_waiters(e)

    def fail_owned_by(self, owner, make_error_blob):
        """The owner died: pending objects it owned become errors; it lets go of the rest."""
        ready, freed = [], []
        for e in list(self.entries.values()):
            if e.owner != owner:
                if owner in e.borrowers:
                    del e.borrowers[owner]
                    freed.extend(self._maybe_free(e))
                continue
            if e.state == PENDING:
                e.blob, e.state = make_error_blob(e.oid), READY
                ready.extend(self._take_waiters(e))
            e.owner_released = True
            freed.extend(self._maybe_free(e))
        return ready, freed

    # -- reference counting ------------------------------------------------
    def owner_release(self, oid):
        e = self.entries.get(oid)
        if e is None:
            return []
        e.owner_released = True
        return self._maybe_free(e)

    def borrow(self, oid, client):
        self.entry(oid).borrowers[client] += 1

    def unborrow(self, oid, client):
        e = self.entries.get(oid)
        if e is None:
            return []
        if e.borrowers[client] <= 1:
            e.borrowers.pop(client, None)
        else:
            e.borrowers[client] -= 1
        return self._maybe_free(e)

    def hold(self, inner_oids, outer):
        self.entry(outer).holds.extend(inner_oids)
        for oid in inner_oids:
            self.entry(oid).held_by[outer] += 1

    def release_holds(self, outer):
        e = self.entries.get(outer)
        if e is None:
            return []
        freed = []
        inner, e.holds = e.holds, []
        for oid in inner:
            ie = self.entries.get(oid)
            if ie is None:
                continue
            if ie.held_by[outer] <= 1:
                ie.held_by.pop(outer, None)
            else:
                ie.held_by[outer] -= 1
            freed.extend(self._maybe_free(ie))
        freed.extend(self._maybe_free(e))
        return freed

    def maybe_free(self, oid):
        e = self.entries.get(oid)
        return self._maybe_free(e) if e is not None else []

    def _maybe_free(self, e):
        if not e.owner_released or e.borrowers or e.held_by or e.waiters:
            return []
        return self.free(e.oid)

    def free(self, oid):
        """Drop ``oid`` now. Returns the oids freed (this one and values it held)."""
        e = self.entries.pop(oid, None)
        if e is None:
            return []
        if e.segment is not None:
            self.used -= e.size
            self._retire_segment(e.segment, e.size)
        if e.spill_path is not None:
            _remove(e.spill_path)
            self.spilled_bytes -= e.size
        if e.copies:
            self.freed_copies.append((oid, e.copies))
        freed = [oid]
        for ioid in e.holds:
            ie = self.entries.get(ioid)
            if ie is None:
                continue
            left = ie.held_by.get(oid, 0) - 1
            if left <= 0:
                ie.held_by.pop(oid, None)
            else:
                ie.held_by[oid] = left
            freed.extend(self._maybe_free(ie))
        return freed

    # -- reading ---------------------------------------------------------------
    def locate(self, oid, waiter):
        """Return ("inline", blob) / ("shm", segment), or None after queueing ``waiter``.

        Returns LOST when the object's copy is gone (its segment was removed from
        /dev/shm, its spill file deleted or cut short): the entry is then pending
        again, ready to take the copy that reconstruction seals.
        """
        e = self.entry(oid)
        if e.state == PENDING:
            e.waiters.append(waiter)
            return None
        if e.remote is not None and e.segment is None and e.spill_path is None:
            e.waiters.append(waiter)
            return self.start_pull(e)
        if self._is_lost(e):
            self.mark_lost(e)
            return LOST
        try:
            return self._location(e)
        except (FileNotFoundError, EOFError):
            self.mark_lost(e)
            return LOST

    # -- copies from other nodes ---------------------------------------------------
    def want_pull(self, oid):
        """A pointer that requests wait on and no pull serves yet: start one."""
        e = self.entries.get(oid)
        if e is None or e.remote is None or e.pulling or not e.waiters:
            return None
        return self.start_pull(e)

    def start_pull(self, e):
        """The entry waits for its pull; returns ("remote", address, size) to fetch."""
        e.state, e.pulling = PENDING, True
        self.num_pulls += 1
        return ("remote",) + e.remote

    def pulled(self, oid, segment, size, capacity=None):
        """A pull of ``size`` bytes finished into ``segment`` (of ``capacity`` bytes,
        more than ``size`` when it came from the pool). Returns the waiters to answer."""
        capacity = size if capacity is None else capacity
        e = self.entries.get(oid)
        if e is None:
            self.recycle(segment, capacity)
            return []
        e.remote, e.pulling = None, False
        self.pulled_bytes += size
        e.state = PENDING
        return self.seal(oid, segment, capacity, e.owner)

    def pull_failed(self, oid):
        """A pull failed (its node died or no longer has it); the entry is pending,
        without a copy anywhere we know of. Returns the waiters to answer."""
        e = self.entries.get(oid)
        if e is None:
            return []
        e.remote, e.pulling, e.state = None, False, PENDING
        self.num_lost += 1
        waiters, e.waiters = e.waiters, []
        return waiters

    def _is_lost(self, e):
        if e.segment is not None:
            return not shm.exists(e.segment)
        if e.spill_path is not None:
            try:
                return os.path.getsize(e.spill_path) < e.size
            except OSError:
                return True
        return False

    def mark_lost(self, e):
        """Forget the lost copy of ``e``; it waits for a new one (seal) or an error."""
        if e.segment is not None:
            self.used -= e.size
            self.mappers.pop(e.segment, None)
            e.segment = None
        if e.spill_path is not None:
            _remove(e.spill_path)
            self.spilled_bytes -= e.size
            e.spill_path = None
        e.state, e.blob = PENDING, None
        self.num_lost += 1

    def fail(self, oid, blob):
        """The owner cannot rebuild ``oid``: it becomes an error. Returns waiters."""
        e = self.entries.get(oid)
        if e is None or e.state == READY:
            return []
        e.blob, e.size, e.state = blob, len(blob), READY
        return self._take_waiters(e)

    def _location(self, e):
        e.last_use = time.monotonic()
        if e.segment is not None:
            return ("shm", e.segment, e.size)
        if e.spill_path is not None:
            self.restore(e)
            return ("shm", e.segment, e.size)
        return ("inline", e.blob)

    def _take_waiters(self, e):
        waiters, e.waiters = e.waiters, []
        loc = self._location(e)
        return [(w, loc) for w in waiters]

    # -- segment reuse --------------------------------------------------------
    def _retire_segment(self, name, size):
        if self.mappers.get(name):
            self.retired[name] = size
            return
        if size >= POOL_MIN_BYTES and self.pool_bytes + size <= self.pool_limit and \
                self.used + self.pool_bytes + size <= self.capacity:
            self.pool.append((size, name))
            self.pool_bytes += size
        else:
            shm.unlink(name)

    def recycle(self, name, size):
        """A segment of ``size`` bytes that holds no object (a pull that failed or
        is no longer wanted): into the pool if it fits there, else removed."""
        self._retire_segment(name, size)

    def alloc(self, size):
        """A pooled segment of ``size`` to ``2*size`` bytes for a producer or a pull,
        or None. The caller owns it: it seals an object into it or recycles it."""
        best = None
        for i, (cap, name) in enumerate(self.pool):
            if size <= cap <= 2 * size and (best is None or cap < self.pool[best][0]):
                best = i
        if best is None:
            return None
        cap, name = self.pool.pop(best)
        self.pool_bytes -= cap
        self.num_reused += 1
        return name

    def make_room(self, size):
        """About to create a new segment of ``size`` bytes: if the objects, the pool
        and it would not fit the capacity together, let the pool go first, so its
        pages are back in tmpfs before the new ones are allocated."""
        if self.pool and self.used + self.pool_bytes + size > self.capacity:
            self.drain_pool()

    def mapped(self, name):
        self.mappers[name] += 1

    def unmapped(self, name):
        left = self.mappers[name] - 1
        if left > 0:
            self.mappers[name] = left
            return
        self.mappers.pop(name, None)
        size = self.retired.pop(name, None)
        if size is not None:
            self._retire_segment(name, size)

    def drain_pool(self):
        for _, name in self.pool:
            shm.unlink(name)
        self.pool, self.pool_bytes = [], 0

    # -- spilling ---------------------------------------------------------------
    def spill_if_needed(self, keep=None):
        if self.used + self.pool_bytes > self.capacity:
            self.drain_pool()
        if self.used <= self.capacity or time.monotonic() < self.spill_blocked_until:
            return 0
        target = self.capacity * 0.8
        victims = sorted((e for e in self.entries.values()
                          if e.segment is not None and e.oid != keep),
                         key=lambda e: e.last_use)
        n = 0
        for e in victims:
            if self.used <= target:
                break
            done = self.spill(e)
            if done is False:
                break
            n += bool(done)
        return n

    def spill(self, e):
        """Copy ``e``'s segment to the spill directory and unlink it.

        Returns False when the disk refuses (full, read-only, gone): the object
        then stays in shared memory, over the capacity, and nothing is lost;
        ``spill_error`` says why and spilling pauses for a second. Returns None
        (skipped) when the segment itself is gone.
        """
        path = os.path.join(self.spill_dir, e.oid.hex())
        if not shm.exists(e.segment):
            return None   # removed from /dev/shm: nothing to copy (locate reports it lost)
        try:
            os.makedirs(self.spill_dir, exist_ok=True)
            buf = shm.attach(e.segment)
            try:
                with open(path, "wb") as f:
                    f.write(buf)
            finally:
                buf.close()
        except OSError as exc:
            _remove(path)
            self.spill_error = (f"{type(exc).__name__}: {exc.strerror or exc} "
                                f"(spill directory {self.spill_dir})")
            self.num_spill_failures += 1
            self.spill_blocked_until = time.monotonic() + 1.0
            return False
        # Unlink, never pool: a stale S blob elsewhere still names this segment,
        # and must find it gone (and ask where the object went), not reused.
        shm.unlink(e.segment)
        self.used -= e.size
        self.spilled_bytes += e.size
        self.num_spilled += 1
        e.segment, e.spill_path = None, path
        return True

    def restore(self, e):
        self._restore_seq += 1
        name = f"{self.segment_prefix}r{self._restore_seq}_{e.oid.hex()[-12:]}"
        size = os.path.getsize(e.spill_path)
        free = shm.shm_free_bytes()
        if free and size > free:
            # Writing past a full tmpfs would kill this process with SIGBUS.
            from minray.exceptions import ObjectStoreFullError
            raise ObjectStoreFullError(
                f"Cannot restore a spilled object of {size / 2**20:.1f} MiB: /dev/shm has "
                f"only {free / 2**20:.1f} MiB free. Free references to large objects.")
        buf = shm.create(name, max(size, 1))
        try:
            with open(e.spill_path, "rb") as f:
                f.readinto(memoryview(buf)[:size])
        finally:
            buf.close()
        _remove(e.spill_path)
        self.spilled_bytes -= e.size
        self.num_restored += 1
        e.spill_path, e.segment = None, name
        self.used += e.size
        self.spill_if_needed(keep=e.oid)

    def stats(self):
        return {"num_objects": len(self.entries), "shm_bytes": self.used,
                "capacity": self.capacity, "spilled_bytes": self.spilled_bytes,
                "num_spilled": self.num_spilled, "num_restored": self.num_restored,
                "pool_bytes": self.pool_bytes, "num_reused": self.num_reused,
                "num_spill_failures": self.num_spill_failures, "spill_error": self.spill_error,
                "num_lost": self.num_lost, "num_pulls": self.num_pulls,
                "num_pull_chunks": self.num_pull_chunks, "pulled_bytes": self.pulled_bytes}

    def shutdown(self):
        self.drain_pool()
        for name in list(self.retired):
            shm.unlink(name)
        for e in list(self.entries.values()):
            if e.segment is not None:
                shm.unlink(e.segment)
            if e.spill_path is not None:
                _remove(e.spill_path)
        self.entries.clear()


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
