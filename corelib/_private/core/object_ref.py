"""ObjectRef and ObjectRefGenerator: handles to values that live in the runtime.

An ObjectRef names an object (20 bytes: the creating task's id + return index)
and its owner (the process that created it).  Creating one counts a local
reference in the process's core client; deleting it un-counts it, and the
owner frees the value when nothing refers to it anymore.  Pickling a ref
inside a value lets the runtime see it leave, so the value stays alive for
whoever receives it.

These are the runtime's central types, so they live here, below every shell
that makes or reads them (client/, local/, worker/, core/validation.py); the
public ``minray.object_ref`` re-exports them (one class, one identity:
``minray.ObjectRef is minray._private.core.object_ref.ObjectRef``).
"""


from minray._private.objects import serialization
from minray._private import state


class ObjectRef:
    """A reference to a value in the object store, returned by ``.remote()`` and ``put``.

    Example::

        ref = ray.put([1, 2, 3])
        assert ray.get(ref) == [1, 2, 3]
        value = await ref          # inside async code
    """

    __slots__ = ("_id", "_owner", "_client", "__weakref__")

    def __init__(self, object_id, owner=b"", _client=None):
        self._id = object_id
        self._owner = owner
        self._client = _client
        if _client is not None:
            _client.add_local_ref(object_id)

    def __del__(self):
        client = self._client
        if client is not None:
            client.release_queue.append(self._id)

    def binary(self):
        return self._id

    def hex(self):
        return self._id.hex()

    def task_id(self):
        return self._id[:16]

    def owner_address(self):
        return self._owner

    def __hash__(self):
        return hash(self._id)

    def __eq__(self, other):
        return isinstance(other, ObjectRef) and other._id == self._id

    def __ne__(self, other):
        return not self.__eq__(other)

    def __repr__(self):
        return f"ObjectRef({self._id.hex()})"

    def __reduce__(self):
        serialization.record_ref(self)
        return (_rebuild_ref, (self._id, self._owner))

    def future(self):
        """A concurrent.futures.Future that completes with the value (or its error)."""
        import concurrent.futures  # here, not at import: `import minray` stays light
        fut = concurrent.futures.Future()
        client = state.require_client()
        client.on_ready(self, fut)
        return fut

    def __await__(self):
        import asyncio
        return asyncio.wrap_future(self.future()).__await__()

    def as_future(self):
        import asyncio
        return asyncio.wrap_future(self.future())

    def _on_completed(self, callback):
        fut = self.future()
        fut.add_done_callback(lambda f: callback(f.result()))


def _rebuild_ref(object_id, owner):
    client = state.current_client()
    if client is None:
        return ObjectRef(object_id, owner)
    return client.deserialize_ref(object_id, owner)


class ObjectRefGenerator:
    """What a ``num_returns="streaming"`` task returns: iterate it for ObjectRefs.

    Example::

        @ray.remote(num_returns="streaming")
        def gen(n):
            for i in range(n):
                yield i

        for ref in gen.remote(3):
            print(ray.get(ref))
    """

    def __init__(self, task_id, client, stream):
        self._task_id = task_id
        self._client = client
        self._stream = stream
        self._index = 0

    def __iter__(self):
        return self

    def __next__(self):
        ref = self._client.next_stream_item(self._stream, self._index, timeout=None)
        if ref is None:
            raise StopIteration
        self._index += 1
        return ref

    def next_ready(self, timeout=None):
        return self._client.next_stream_item(self._stream, self._index, timeout)

    def __aiter__(self):
        return self

    async def __anext__(self):
        import asyncio
        loop = asyncio.get_running_loop()
        ref = await loop.run_in_executor(None, self._client.next_stream_item,
                                         self._stream, self._index, None)
        if ref is None:
            raise StopAsyncIteration
        self._index += 1
        return ref

    def completed(self):
        return self._client.stream_done_ref(self._stream)

    def is_finished(self):
        return self._stream.finished and self._index >= len(self._stream.items)

    def task_id(self):
        return self._task_id

    def __repr__(self):
        return f"ObjectRefGenerator({self._task_id.hex()})"


class DynamicObjectRefGenerator:
    """The value of a ``num_returns="dynamic"`` task: iterate it for one ref per item.

    (Soft-deprecated in Ray since 2.8 in favour of ``"streaming"``; kept for old code.)
    """

    def __init__(self, refs):
        self._refs = list(refs)

    def __iter__(self):
        return iter(self._refs)

    def __len__(self):
        return len(self._refs)

    def __repr__(self):
        return f"DynamicObjectRefGenerator({len(self._refs)} refs)"
