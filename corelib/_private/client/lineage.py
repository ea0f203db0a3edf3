"""Lineage and reconstruction: rebuilding lost store copies by running their task again.

Part of the core client (see core_client.py): a mixin of CoreClient,
sharing its tables and lock."""


from minray import exceptions
from minray._private.core.object_ref import ObjectRef
from minray._private.core import ids
from minray._private.core import ownership
from minray._private.objects import serialization
from minray._private.objects.serialization import TAG_SHM
from minray._private.client.records import Waiter


# Why a lost object cannot be rebuilt, by ownership.reconstruct's verdict: the
# error and the rest of its message ("Failed to retrieve object X: its copy in
# the object store was lost" comes first).
_LOST = {
    ownership.LOST_ARGS_FREED: (
        exceptions.ObjectReconstructionFailedError,
        ", and an argument of the task that made it ({task}) was freed meanwhile, so it "
        "cannot run again. Keep the arguments' refs alive while you may need the result "
        "rebuilt."),
    ownership.LOST_NO_RETRIES: (
        exceptions.ObjectReconstructionFailedError,
        " and the task that made it ({task}) has no retries left to run again "
        "(max_retries). Raise max_retries to allow more reconstructions."),
    ownership.LOST_PUT: (
        exceptions.ObjectLostError,
        ", and objects made by ray.put() cannot be rebuilt (they have no lineage). Keep "
        "what must survive in the driver, or create it in a task."),
    None: (
        exceptions.ObjectLostError,
        " and it cannot be rebuilt: only results of tasks with retries left are (not "
        "those of actor calls, or of tasks with max_retries=0)."),
}


class LineageMixin:
    """Keeping finished tasks' specs and running them again to rebuild lost values."""

    def _keep_lineage(self, rec, results):
        """Keep the spec of a task whose results went to the store, to rebuild them.

        Only the spec: its arguments are not pinned (as in Ray, lineage does not
        keep values alive). A rebuild needs them still referenced by someone
        here; otherwise it fails with ObjectReconstructionFailedError.
        """
        if rec.task_id in self.lineage:
            rec.pins = []            # a rebuild finished: let go of its arguments again
            return
        n = sum(1 for b in results if b[0] == TAG_SHM)
        if ownership.keep_lineage(rec.opts.num_returns == "dynamic", rec.opts.max_retries, n):
            rec.live_returns = n
            refs = list(rec.pins) + [r for _, r in rec.arg_refs]
            rec.lineage_args = [(r._id, r._owner) for r in refs]   # unpinned
            rec.pins, rec.arg_refs = [], []
            with self.lock:
                self.lineage[rec.task_id] = rec

    def _reconstruct(self, oid):
        """The store lost ``oid``'s value: run the task that made it again.

        Returns True when the value is on its way (the task was resubmitted, or
        is running already); otherwise the object now holds an ObjectLostError
        (a put, an actor call's result, retries used up) and the node manager is
        told, so that borrowers waiting for it get the error too.
        """
        task_id = oid[:16]
        with self.lock:
            st = self.objects.get(oid)
            rec = self.lineage.get(task_id)
            args_alive = rec is not None and all(
                self.objects.get(arg) is not None for arg, _ in rec.lineage_args)
            verdict = ownership.reconstruct(
                st is not None, st is not None and st.blob is None, task_id in self.tasks,
                rec is not None, rec.retries_left if rec is not None else 0, args_alive,
                st is not None and st.owned, ids.index_of(oid) == 0)
            if verdict == ownership.FREED:
                return False
            if verdict == ownership.REBUILD_WHEN_REPLIED:
                # It may sit in a socket that a caller reads itself: rebuild on arrival.
                self._lost_before_reply.add(oid)
                return True
            if verdict == ownership.RUNNING:
                st.blob, st.segment_buf = None, None
                return True
        if verdict == ownership.RESUBMIT:
            # Re-pin the arguments (outside the lock: a ref counts itself under it).
            rec.pins = [ObjectRef(arg, owner, self) for arg, owner in rec.lineage_args]
            with self.lock:
                rec.retries_left = ownership.retry(rec.retries_left, True, False).retries_left
                st.blob, st.segment_buf = None, None
                rec.worker, rec.cancelled = None, False
                self.tasks[task_id] = rec
            self._enqueue_task(rec)
            return True
        cls, why = _LOST.get(verdict, _LOST[None])
        err = cls(oid.hex(), message=(
            f"Failed to retrieve object {oid.hex()}: its copy in the object store was lost"
            + why.format(task=(rec.opts.name if rec is not None else "") or "a task")))
        blob = serialization.error_blob(err)
        with self.lock:
            st.blob, st.segment_buf = blob, None
            waiters, st.waiters = st.waiters, []
        self.notice("object_lost", oid, blob)
        for w in waiters:
            if type(w) is Waiter:
                w.notify()
            else:
                w(oid)
        return False

    def _push_reconstruct(self, oid):
        # A borrower found our object lost; the node manager holds its request.
        self._reconstruct(oid)
