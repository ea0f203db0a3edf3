"""ray.cancel for tasks.

Part of the core client (see core_client.py): a mixin of CoreClient,
sharing its tables and lock."""


from minray import exceptions
from minray._private.core.object_ref import ObjectRef, ObjectRefGenerator
from minray._private.core import ids
from minray._private.core import submit_queue as sq
from minray._private.objects import serialization


class CancelMixin:
    """Cancelling tasks (actor calls: see actors.py)."""

    def cancel(self, ref, force=False, recursive=True):
        if not isinstance(ref, (ObjectRef, ObjectRefGenerator)):
            raise TypeError(f"cancel() expects an ObjectRef, got {type(ref).__name__}")
        task_id = ref._task_id if isinstance(ref, ObjectRefGenerator) else ref.task_id()
        rec = self.tasks.get(task_id)
        if rec is None:
            return  # finished, or not ours: nothing to do
        if rec.actor_id is not None:
            if force:
                raise ValueError("force=True is not supported for actor tasks; use "
                                 "ray.kill(actor) to stop the actor.")
            self._cancel_actor_task(rec, recursive)
            return
        rec.cancelled = True
        with self.lock:
            w = rec.worker
            queued = w is None
            if rec.queue is not None:
                sq.cancel_queued(rec.queue, rec)
        if queued:
            self._finish_with_error(rec, serialization.error_blob(
                exceptions.TaskCancelledError(task_id.hex())))
            return
        self.call_async("cancel_task", (w.worker_id, task_id, force, recursive),
                        lambda ok, v: None, conn=w.nm)

    def cancel_children(self, parent_task_id):
        """Cancel every task this worker submitted (recursive cancel)."""
        for rec in list(self.tasks.values()):
            if rec.actor_id is None:
                try:
                    self.cancel(ObjectRef(ids.object_id_for(rec.task_id, 1)), False, True)
                except Exception:
                    pass
