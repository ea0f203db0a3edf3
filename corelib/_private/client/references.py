"""Reference counts and owned values: local refs, borrows, exports, puts, completion.

Part of the core client (see core_client.py): a mixin of CoreClient,
sharing its tables and lock."""

import mmap
import os
import threading

from minray import exceptions
from minray._private.core.object_ref import ObjectRef
from minray._private.core import ids
from minray._private.core import ownership
from minray._private.core.ownership import DROP
from minray._private.objects import serialization, shm
from minray._private.net import transport
from minray._private.net import protocol as P
from minray._private.objects.directory import POOL_MIN_BYTES
from minray._private.objects.serialization import TAG_DYNAMIC, TAG_SHM
from minray._private.client.records import (_blob_from_location, _check_shm_space, len_of_shm,
                                            ObjectState, PUBLISH_VALUE, PublishTo, Waiter,
                                            WRITE_MAP_COUNT, WRITE_MAP_MIN)


class ReferencesMixin:
    """Counting refs and holding owned values (decisions: core/ownership.py)."""

    def add_local_ref(self, oid):
        with self.lock:
            st = self.objects.get(oid)
            if st is not None:
                st.local_refs += 1

    def new_owned_ref(self, oid):
        st = ObjectState(True, self.client_id)
        with self.lock:
            self.objects[oid] = st
        return ObjectRef(oid, self.client_id, self)

    def deserialize_ref(self, oid, owner):
        """A ref arrived inside a value: count it and, if we do not own it, borrow it."""
        register = False
        with self.lock:
            st = self.objects.get(oid)
            if st is None:
                # Not known here (or our own state was freed while the value that
                # contains it lived on): borrow it like anyone else's.
                st = self.objects[oid] = ObjectState(False, owner)
            if ownership.needs_borrow(st.owned, st.borrowed):
                st.borrowed = register = True
        if register:
            if threading.current_thread() is self.loop.thread:
                # Never block the I/O thread on a reply only it can read.
                self.call_async("borrow", ([oid],), lambda ok, v: None)
            else:
                self.call("borrow", [oid])
        return ObjectRef(oid, owner, self)

    def drain_releases(self):
        rq = self.release_queue
        if not rq:
            return
        owner_release, unborrow, release_holds, forgotten = [], [], [], []
        elsewhere = []   # (node manager address, oid): released in another node's store
        with self.lock:
            while rq:
                oid = rq.popleft()
                st = self.objects.get(oid)
                if st is None:
                    continue
                st.local_refs -= 1
                if st.local_refs > 0:
                    continue
                blob = st.blob
                act = ownership.release(st.owned, st.exported, st.is_token,
                                        blob is not None and blob[0] == TAG_SHM,
                                        blob is None, st.contained, st.borrowed)
                if act is DROP:
                    del self.objects[oid]
                    continue
                if act.keep:
                    st.dropped = True   # let go once published (see _complete)
                    continue
                del self.objects[oid]
                if act.owner_release:
                    owner_release.append(oid)
                if act.forget_lineage:
                    forgotten.append(self._forget_lineage(oid))
                    where = serialization.remote_address(blob)
                    if where is not None:
                        elsewhere.append((where, oid))
                if act.release_holds:
                    release_holds.append(oid)
                if act.unborrow:
                    unborrow.append(oid)
        if owner_release:
            self.notice("owner_release", owner_release)
        if release_holds:
            self.notice("release_holds", release_holds)
        if unborrow:
            self.notice("unborrow", unborrow)
        for where, oid in elsewhere:
            # The primary copy is there; that node tells the nodes that copied it.
            try:
                self.notice_to(self._remote_nm("tcp://" + where), "owner_release", [oid])
            except (OSError, transport.AuthenticationError):
                pass   # that node is gone, and its copy with it
        # The forgotten tasks' pinned arguments are released (outside the lock).
        del forgotten

    def _forget_lineage(self, oid):
        """A result in the store was freed (lock held); drop its task's lineage with
        the last one. Returns the record dropped (release it outside the lock)."""
        rec = self.lineage.get(oid[:16])
        if rec is not None:
            rec.live_returns -= 1
            if ownership.lineage_released(rec.live_returns):
                return self.lineage.pop(oid[:16])
        return None

    def export_refs(self, refs):
        """Refs are leaving this process inside a value: make them findable by others."""
        self.direct.hand_back()   # others may wait for these values: read every reply
        publish = []
        with self.lock:
            for ref in refs:
                st = self.objects.get(ref._id)
                if st is None or not st.owned or st.exported:
                    continue
                st.exported = True
                publish.append((ref._id, st.blob))
        for oid, blob in publish:
            self.notice("publish", oid, self.client_id, blob)
        remote = getattr(self.current_task, "remote_conn", None)
        if remote is not None:
            for oid, blob in publish:
                if blob is None:
                    # Not computed yet: the submitter asks our node manager for it
                    # (published there when it completes), even after we are gone.
                    try:
                        remote.send(P.VALUE, (oid, self.client_id, None,
                                              getattr(self, "nm_tcp", None)))
                    except transport.ConnectionClosed:
                        pass
                    continue
                self._publish_remote(oid, blob, (PublishTo(PUBLISH_VALUE, remote),))

    def _store_value(self, oid, value, owner):
        """Serialize a value that will be object ``oid`` (owned by ``owner``).

        Returns (blob, has_contained_refs).  Large values go to shared memory
        and are sealed with the node manager.
        """
        sv = serialization.serialize(value)
        contained = False
        if sv.refs:
            self.export_refs(sv.refs)
            self.call("hold", [r._id for r in sv.refs], oid)
            contained = True
        remote = getattr(self.current_task, "force_inline", False)
        if not sv.is_large() or (remote and (self.nm_address is None or
                                             sv.shm_size() <= P.TRANSFER_CHUNK_BYTES)):
            return sv.to_inline(), contained
        blob = self._write_segment(oid, sv, owner)
        if remote:
            # For a submitter on another node: it stays in this node's store, and that
            # node pulls a copy when something there needs it.
            blob = serialization.remote_blob(len_of_shm(blob), self.nm_address)
        return blob, contained

    def _write_segment(self, oid, sv, owner):
        """Write a large value into shared memory and seal it; returns its S blob."""
        size = sv.shm_size()
        name = self.call("alloc_segment", size) if size >= POOL_MIN_BYTES else None
        buf = None
        if name is not None:
            buf = self.write_maps.pop(name, None)
            if buf is None:
                try:
                    buf = shm.open_rw(name)
                except FileNotFoundError:   # removed from /dev/shm by someone else
                    name = None
            if buf is not None:
                size = len(buf)
        if name is None:
            # A fresh segment: written through its file descriptor (twice as fast as
            # faulting in its pages through a mapping, shm.pwrite), then mapped only
            # to be kept for when the pool hands it back (_keep_write_map).
            name = f"{self.segment_prefix}{next(self.seg_seq)}"
            _check_shm_space(size)
            fd = shm.create_fd(name, size)
            try:
                sv.pwrite_to(fd)
                keep = WRITE_MAP_MIN <= size <= self.write_map_budget
                buf = mmap.mmap(fd, size) if keep else None
            except BaseException:
                shm.unlink(name)
                raise
            finally:
                os.close(fd)
            if buf is not None:
                self._keep_write_map(name, buf)
        else:
            try:
                sv.write_to(buf)
            finally:
                self._keep_write_map(name, buf)
        self.notice("seal", oid, name, size, owner)
        return serialization.shm_blob(size) + name.encode()

    def _keep_write_map(self, name, buf):
        """Keep a large segment we wrote mapped, for when the pool hands it back.

        Mapping 100 MiB costs as much as writing it (25,600 page-table entries, even
        with MAP_POPULATE), so a producer that puts large objects in a loop keeps its
        last few mappings. Safe: the node manager gives a pooled name to one writer
        at a time, only when nobody maps it, and names are never reused after
        removal. Bounded (WRITE_MAP_BYTES), oldest first out, closed at shutdown.
        """
        size = len(buf)
        if size < WRITE_MAP_MIN or size > self.write_map_budget:
            buf.close()
            return
        self.write_maps[name] = buf
        total = sum(len(b) for b in self.write_maps.values())
        while total > self.write_map_budget or len(self.write_maps) > WRITE_MAP_COUNT:
            old_name, old = next(iter(self.write_maps.items()))
            del self.write_maps[old_name]
            total -= len(old)
            old.close()

    def put(self, value, _owner=None):
        if isinstance(value, ObjectRef):
            raise TypeError("Calling put() on an ObjectRef is not allowed: put the value, "
                            "or pass the ref itself (refs can be nested in lists and dicts).")
        self.drain_releases()
        task_id = ids.new_task_id()
        oid = ids.object_id_for(task_id, 0)
        ref = self.new_owned_ref(oid)
        blob, contained = self._store_value(oid, value, self.client_id)
        self._complete(oid, blob, contained)
        return ref

    def _complete(self, oid, blob, contained=False):
        """An owned object got its value (I/O thread or caller thread)."""
        if blob[0] == TAG_DYNAMIC:
            blob = self._dynamic_value(oid, blob)
        with self.lock:
            st = self.objects.get(oid)
            if st is not None:
                if st.blob is not None:
                    return  # already complete (a duplicate reply)
                st.blob = blob
                st.contained = contained
                exported = st.exported
                waiters, st.waiters = st.waiters, []
            rebuild = False
            if self._lost_before_reply and oid in self._lost_before_reply:
                self._lost_before_reply.discard(oid)
                if st is not None and blob[0] == TAG_SHM:
                    st.waiters = waiters    # they wait for the rebuilt value
                    rebuild = True
        if rebuild:
            # The copy this reply points to is gone already: run the task again.
            self._reconstruct(oid)
            return
        if st is None:
            # Nobody refers to it anymore: free what the value holds.
            self._late_release(oid, ownership.late_value(blob[0] == TAG_SHM, contained,
                                                         False))
            return
        if st.remote_nms:
            self._publish_remote(oid, blob, st.remote_nms)
        if exported:
            self.notice("publish", oid, self.client_id, blob)
            if st.dropped:
                act = ownership.late_value(blob[0] == TAG_SHM, contained, True)
                with self.lock:
                    if self.objects.get(oid) is st and st.local_refs <= 0:
                        del self.objects[oid]
                        if act.forget_lineage:
                            forgotten = self._forget_lineage(oid)  # noqa: F841 (released here)
                self._late_release(oid, act)
        for w in waiters:
            if type(w) is Waiter:
                w.notify()
            else:
                w(oid)

    def _late_release(self, oid, act):
        if act.owner_release:
            self.notice("owner_release", [oid])
        if act.release_holds:
            self.notice("release_holds", [oid])

    def _dynamic_value(self, oid, blob):
        """A dynamic generator's items arrived: own each, and make the generator value."""
        from minray._private.core.object_ref import DynamicObjectRefGenerator
        items = serialization.loads_inline(b"P" + bytes(blob[1:]))
        refs = []
        for item_oid, item_blob, item_contained in items:
            refs.append(self.new_owned_ref(item_oid))
            self._complete(item_oid, item_blob, item_contained)
        sv = serialization.serialize(DynamicObjectRefGenerator(refs))
        self.export_refs(sv.refs)
        if sv.refs:
            # The generator value holds its items, like any value holding refs.
            self.call_async("hold", ([r._id for r in sv.refs], oid), lambda ok, v: None)
        return sv.to_inline()

    def _fetch_borrowed(self, oid):
        """Ask the node manager for a value we do not own (once)."""
        with self.lock:
            st = self.objects.get(oid)
            if st is None or st.fetching or st.blob is not None:
                return
            st.fetching = True
            via = self.remote_owners.get(st.owner)

        def got(ok, value):
            if ok:
                blob = _blob_from_location(value)
            else:
                blob = serialization.error_blob(value)
            with self.lock:
                st2 = self.objects.get(oid)
                if st2 is None or st2.blob is not None:
                    return
                st2.blob = blob
                st2.fetching = False
                waiters, st2.waiters = st2.waiters, []
            for w in waiters:
                if type(w) is Waiter:
                    w.notify()
                else:
                    w(oid)
        conn = None
        if via is not None:
            try:
                conn = self._remote_nm(via)
            except (OSError, transport.AuthenticationError) as exc:
                got(False, exceptions.OwnerDiedError(oid.hex()))
                del exc
                return
        self.call_async("get_object", (oid,), got, conn=conn)
