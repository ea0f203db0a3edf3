"""Streaming generator tasks: items as they arrive.

Part of the core client (see core_client.py): a mixin of CoreClient,
sharing its tables and lock."""


from minray import exceptions
from minray._private.core import ids
from minray._private.client.records import Waiter


class StreamsMixin:
    """The items of streaming generator tasks."""

    def _on_gen_item(self, msg):
        task_id, index, blob, contained = msg
        stream = self.streams.get(task_id)
        if stream is None:
            return
        oid = ids.object_id_for(task_id, index + 1)
        with self.lock:
            if index < len(stream.items):
                return  # a retried generator re-sent an item we have
            ref = None
        ref = self.new_owned_ref(oid)
        self._complete(oid, blob, contained)
        with self.lock:
            stream.items.append(ref)
            waiters, stream.waiters = stream.waiters, []
        for w in waiters:
            w.notify()

    def _finish_stream(self, rec, results):
        """A streaming task ended; ``results`` (from its DONE) holds at most its
        error, which surfaces after the items."""
        stream = rec.stream
        if results:
            stream.error_blob = results[0]
        if stream.error_blob is not None:
            # The error surfaces as the next item, as Ray does.
            oid = ids.object_id_for(rec.task_id, len(stream.items) + 1)
            ref = self.new_owned_ref(oid)
            self._complete(oid, stream.error_blob)
            with self.lock:
                stream.items.append(ref)
        with self.lock:
            stream.finished = True
            waiters, stream.waiters = stream.waiters, []
        self.streams.pop(rec.task_id, None)
        for w in waiters:
            w.notify()

    def next_stream_item(self, stream, index, timeout):
        while True:
            with self.lock:
                if index < len(stream.items):
                    return stream.items[index]
                if stream.finished:
                    return None
                waiter = Waiter(1)
                stream.waiters.append(waiter)
            self.direct.hand_back()
            if not waiter.wait(timeout):
                raise exceptions.GetTimeoutError("no item from the generator within the timeout")

    def stream_done_ref(self, stream):
        return None
