"""get(), wait() and readiness callbacks, and reading values (inline, mapped, fetched).

Part of the core client (see core_client.py): a mixin of CoreClient,
sharing its tables and lock."""

import threading
import weakref

from minray import exceptions
from minray._private.core.object_ref import ObjectRef
from minray._private.core import validation
from minray._private.objects import serialization, shm
from minray._private.objects.serialization import TAG_ERROR, TAG_SHM
from minray._private.client.records import ObjectState, Waiter


class GetWaitMixin:
    """Waiting for objects and reading their values."""

    def _state_for_wait(self, ref):
        st = self.objects.get(ref._id)
        if st is None:
            # A ref whose state was dropped (e.g. built by hand): treat as borrowed.
            st = self.objects[ref._id] = ObjectState(ref._owner == self.client_id, ref._owner)
            st.local_refs = 0
        return st

    def get(self, refs, timeout=None):
        if self.release_queue:
            self.drain_releases()
        if type(refs) is ObjectRef:   # one ref: the common case, without lists
            st = self.objects.get(refs._id)
            if st is None or st.blob is None:
                self._wait_ready((refs,), 1, timeout, for_get=True)
            return self._deserialize(refs)
        refs, single = validation.check_get_refs(refs)
        failed = self._wait_ready(refs, len(refs), timeout, for_get=True)
        if type(failed) is ObjectRef:
            self._deserialize(failed)     # raises its error; the rest may still run
        values = [self._deserialize(r) for r in refs]
        return values[0] if single else values

    def _wait_ready(self, refs, num, timeout, for_get):
        fetch = []
        with self.lock:
            pending = []
            ready = 0
            for r in refs:
                st = self._state_for_wait(r)
                if st.blob is None:
                    pending.append(st)
                    if not st.owned:
                        fetch.append(r._id)
                else:
                    if for_get and st.blob[0] == TAG_ERROR:
                        return r      # get() raises as soon as one object is an error
                    ready += 1
            need = num - ready
            if need <= 0:
                return True
            waiter = Waiter(need)
            if for_get and need > 1:
                # Several to go: the first error wakes the caller at once (as Ray).
                waiter.mutex = waiter.mutex or threading.Lock()
                objects = self.objects

                def arrived(oid, _waiter=waiter):
                    st = objects.get(oid)
                    if st is not None and st.blob is not None and st.blob[0] == TAG_ERROR:
                        _waiter.finish()
                    else:
                        _waiter.notify()
                for st in pending:
                    st.waiters.append(arrived)
            else:
                arrived = waiter
                for st in pending:
                    st.waiters.append(waiter)
            direct = None
            if need == 1 and len(pending) == 1 and pending[0].owned:
                direct = self.direct.reply_conn(pending[0])
        for oid in fetch:
            self._fetch_borrowed(oid)
        if direct is None or direct.rlock is None:
            self.direct.hand_back()   # the I/O thread reads what we wait for
        blocked = self._enter_blocked()
        try:
            ok = None
            if direct is not None and direct.rlock is not None:
                ok = self._read_direct(direct, waiter, timeout)
            if ok is None:
                self.direct.hand_back()
                ok = waiter.wait(timeout)
        finally:
            if blocked:
                self._exit_blocked()
        if not ok:
            with self.lock:
                for st in pending:
                    try:
                        st.waiters.remove(arrived)
                    except ValueError:
                        pass
            if for_get:
                err = validation.get_timeout_error(timeout, need, len(refs))
                why = self._infeasible_reason(refs)
                if why:
                    err = exceptions.GetTimeoutError(
                        f"{err} A task it waits for can never be scheduled: "
                        f"{why.replace('Warning: ', '', 1)}")
                raise err
            return False
        if for_get and need > 1:
            with self.lock:
                for r in refs:
                    st = self.objects.get(r._id)
                    if st is not None and st.blob is not None and st.blob[0] == TAG_ERROR:
                        return r
        return True

    def _read_direct(self, conn, waiter, timeout):
        """Wait for ``waiter`` by reading ``conn`` on this thread: see direct_reads.py."""
        return self.direct.read(conn, waiter, timeout)

    def _enter_blocked(self):
        if self.kind != "worker" or getattr(self.current_task, "task_id", None) is None:
            return False
        self.blocked_depth += 1
        self.blocked_in_task = True
        if self.blocked_depth == 1:
            self.notice("worker_blocked", self.worker_id)
        return True

    def _exit_blocked(self):
        self.blocked_depth -= 1
        if self.blocked_depth == 0:
            self.notice("worker_unblocked", self.worker_id)

    def _deserialize(self, ref):
        st = self.objects.get(ref._id)
        blob = st.blob
        while blob is None:
            # Its store copy was lost after we waited, and the task runs again.
            self._wait_ready((ref,), 1, None, for_get=True)
            blob = st.blob
        tag = blob[0]
        if tag == TAG_ERROR:
            err = serialization.loads_inline(blob)
            if isinstance(err, exceptions.RayTaskError):
                raise err.as_instanceof_cause()
            raise err
        if tag == TAG_SHM:
            buf = st.segment_buf
            if buf is None:
                buf = st.segment_buf = self._attach(ref._id, blob)
            return serialization.loads_segment(buf)
        return serialization.loads_inline(blob)

    def _attach(self, oid, blob):
        """Map an object's segment read-only; the node manager learns who maps what,
        so it never reuses a segment while a process (or a numpy view) still maps it.

        A segment that is gone was spilled (the node manager restores it), or lost:
        then the owner runs the task that made it again (lineage reconstruction)
        and waits here for the new copy, and a borrower's request waits at the
        node manager until the owner has rebuilt it.
        """
        name = bytes(blob[9:]).decode()
        if not name or name[0] == "@":
            # In another node's store (or somewhere our node manager knows): it pulls
            # a copy into this node's store, once, and we map that copy.
            buf, name = self._locate_and_attach(oid, blob)
            weakref.finalize(buf, self._unmapped, name)
            return buf
        self.notice("mapped", name)
        try:
            buf = shm.attach(name)
        except FileNotFoundError:
            self.notice("unmapped", name)
            buf, name = self._locate_and_attach(oid)
        weakref.finalize(buf, self._unmapped, name)
        return buf

    def _locate_and_attach(self, oid, blob=None):
        blocked = self._enter_blocked()
        try:
            for _ in range(100):
                if blob is not None and serialization.remote_address(blob):
                    with self.lock:
                        st = self.objects.get(oid)
                        owner = st.owner if st is not None else None
                    self.notice("publish", oid, owner, bytes(blob))
                loc = self.call("get_object", oid)
                if loc[0] == "lost":
                    self._reconstruct(oid)
                    blob = self._wait_owned_blob(oid)
                    if blob[0] == TAG_SHM:
                        continue   # rebuilt: ask where the new copy is
                    loc = ("inline", blob)
                if loc[0] == "inline":
                    blob = loc[1]
                    if blob[0] == TAG_ERROR:
                        err = serialization.loads_inline(blob)
                        if isinstance(err, exceptions.RayTaskError):
                            raise err.as_instanceof_cause()
                        raise err
                    raise exceptions.ObjectLostError(oid.hex())
                name = loc[1]
                self.notice("mapped", name)
                try:
                    return shm.attach(name), name
                except FileNotFoundError:
                    self.notice("unmapped", name)   # lost again meanwhile: once more
            raise exceptions.ObjectLostError(oid.hex())
        finally:
            if blocked:
                self._exit_blocked()

    def _wait_owned_blob(self, oid):
        with self.lock:
            st = self.objects.get(oid)
            if st is None:
                raise exceptions.ObjectLostError(oid.hex())
            if st.blob is not None:
                return st.blob
            waiter = Waiter(1)
            st.waiters.append(waiter)
        waiter.wait(None)
        return st.blob

    def _unmapped(self, name):
        if not self.shutting_down:
            self.notice("unmapped", name)

    def wait(self, refs, num_returns=1, timeout=None, fetch_local=True):
        self.drain_releases()
        if not validation.check_wait_args(refs, num_returns, timeout):
            return [], []
        self._wait_ready(refs, num_returns, timeout, for_get=False)
        ready, not_ready = [], []
        with self.lock:
            for r in refs:
                st = self.objects.get(r._id)
                if st is not None and st.blob is not None and len(ready) < num_returns:
                    ready.append(r)
                else:
                    not_ready.append(r)
        return ready, not_ready

    def on_ready(self, ref, future):
        """Complete a concurrent Future with ``ref``'s value once it is ready."""
        def fire(_oid=None):
            try:
                future.set_result(self._deserialize(ref))
            except BaseException as exc:  # the task's error, delivered to the future
                future.set_exception(exc)

        def fire_off_loop(_oid):
            # Deserializing may call the node manager; never block the I/O thread on it.
            self._callbacks().submit(fire)
        with self.lock:
            st = self._state_for_wait(ref)
            ready = st.blob is not None
            if not ready:
                st.waiters.append(fire_off_loop)
                owned = st.owned
        if ready:
            fire()
            return
        self.direct.hand_back()
        if not owned:
            self._fetch_borrowed(ref._id)

    def _callbacks(self):
        ex = self.callback_executor
        if ex is None:
            import concurrent.futures
            with self.lock:
                if self.callback_executor is None:
                    self.callback_executor = concurrent.futures.ThreadPoolExecutor(
                        1, thread_name_prefix="minray-callbacks")
                ex = self.callback_executor
        return ex

    def is_ready(self, ref):
        st = self.objects.get(ref._id)
        return st is not None and st.blob is not None
