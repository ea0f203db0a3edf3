"""minray.util.queue: a FIFO queue shared by tasks and actors.

    Queue (a small picklable handle) --method calls--> _QueueActor (an async actor)
                                                       holding one asyncio.Queue

Blocking ``put``/``get`` are coroutine methods of the actor: a ``get`` waiting on
an empty queue does not stop a ``put`` from another process from running, since
an async actor runs its calls concurrently on one event loop.  Errors raised in
the actor (``Empty``, ``Full``, ``asyncio.QueueFull``) come back as instances of
their own class, so ``except Empty`` works in the caller.  Semantics follow
``ray.util.queue``.
"""

import asyncio
from collections.abc import Iterable

from .. import api as _api


class Empty(Exception):
    """``get`` found the queue empty (non-blocking, or it timed out)."""


class Full(Exception):
    """``put`` found the queue full (non-blocking, or it timed out)."""


class Queue:
    """A first-in, first-out queue backed by an actor; pass it to tasks freely.

    ``maxsize=0`` means unbounded.  ``actor_options`` go to the queue actor's
    ``.options(...)`` (e.g. ``{"num_cpus": 1}`` or a name).

    Example::

        from minray.util.queue import Queue, Empty

        q = Queue(maxsize=10)

        @ray.remote
        def produce(q, n):
            for i in range(n):
                q.put(i)

        ray.get(produce.remote(q, 3))
        assert [q.get(timeout=1) for _ in range(3)] == [0, 1, 2]
    """

    def __init__(self, maxsize=0, actor_options=None):
        actor_options = actor_options or {}
        self.maxsize = maxsize
        self.actor = _api.remote(_QueueActor).options(**actor_options).remote(self.maxsize)

    def __len__(self):
        return self.size()

    def size(self):
        """The number of items in the queue."""
        return _api.get(self.actor.qsize.remote())

    def qsize(self):
        """The number of items in the queue."""
        return self.size()

    def empty(self):
        """Whether the queue is empty."""
        return _api.get(self.actor.empty.remote())

    def full(self):
        """Whether the queue is full."""
        return _api.get(self.actor.full.remote())

    def put(self, item, block=True, timeout=None):
        """Add ``item``; when full, wait (up to ``timeout`` s) unless ``block=False``.

        Raises Full when the queue stays full, ValueError for a negative timeout.
        """
        if not block:
            try:
                _api.get(self.actor.put_nowait.remote(item))
            except asyncio.QueueFull:
                raise Full from None
            return
        _check_timeout(timeout)
        _api.get(self.actor.put.remote(item, timeout))

    async def put_async(self, item, block=True, timeout=None):
        """``put`` for async code: ``await q.put_async(item)``."""
        if not block:
            try:
                await self.actor.put_nowait.remote(item)
            except asyncio.QueueFull:
                raise Full from None
            return
        _check_timeout(timeout)
        await self.actor.put.remote(item, timeout)

    def get(self, block=True, timeout=None):
        """Remove and return the oldest item; when empty, wait (up to ``timeout`` s)
        unless ``block=False``.

        Raises Empty when the queue stays empty, ValueError for a negative timeout.
        """
        if not block:
            try:
                return _api.get(self.actor.get_nowait.remote())
            except asyncio.QueueEmpty:
                raise Empty from None
        _check_timeout(timeout)
        return _api.get(self.actor.get.remote(timeout))

    async def get_async(self, block=True, timeout=None):
        """``get`` for async code: ``item = await q.get_async()``."""
        if not block:
            try:
                return await self.actor.get_nowait.remote()
            except asyncio.QueueEmpty:
                raise Empty from None
        _check_timeout(timeout)
        return await self.actor.get.remote(timeout)

    def put_nowait(self, item):
        """``put(item, block=False)``: raises Full at once if the queue is full."""
        return self.put(item, block=False)

    def put_nowait_batch(self, items):
        """Add all ``items`` in order, or none of them (Full) if they do not fit."""
        if not isinstance(items, Iterable):
            raise TypeError("Argument 'items' must be an Iterable")
        _api.get(self.actor.put_nowait_batch.remote(items))

    def get_nowait(self):
        """``get(block=False)``: raises Empty at once if the queue is empty."""
        return self.get(block=False)

    def get_nowait_batch(self, num_items):
        """Remove and return ``num_items`` items in order; Empty if there are fewer."""
        if not isinstance(num_items, int):
            raise TypeError("Argument 'num_items' must be an int")
        if num_items < 0:
            raise ValueError("'num_items' must be nonnegative")
        return _api.get(self.actor.get_nowait_batch.remote(num_items))

    def shutdown(self, force=False, grace_period_s=5):
        """Stop the queue's actor (and free what it holds).

        Without ``force`` it is asked to exit and killed only if it has not
        within ``grace_period_s`` seconds.
        """
        if self.actor:
            if force:
                _api.kill(self.actor, no_restart=True)
            else:
                done = self.actor.__ray_terminate__.remote()
                _, not_done = _api.wait([done], timeout=grace_period_s)
                if not_done:
                    _api.kill(self.actor, no_restart=True)
        self.actor = None


def _check_timeout(timeout):
    if timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")


class _QueueActor:
    """The queue's state: one asyncio.Queue, served by an async actor."""

    def __init__(self, maxsize):
        self.maxsize = maxsize
        self.queue = asyncio.Queue(self.maxsize)

    def qsize(self):
        return self.queue.qsize()

    def empty(self):
        return self.queue.empty()

    def full(self):
        return self.queue.full()

    async def put(self, item, timeout=None):
        try:
            await asyncio.wait_for(self.queue.put(item), timeout)
        except asyncio.TimeoutError:
            raise Full from None

    async def get(self, timeout=None):
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            raise Empty from None

    def put_nowait(self, item):
        self.queue.put_nowait(item)

    def put_nowait_batch(self, items):
        items = list(items)
        # maxsize 0 means unbounded: everything fits.
        if self.maxsize > 0 and len(items) + self.qsize() > self.maxsize:
            raise Full(f"Cannot add {len(items)} items to queue of size "
                       f"{self.qsize()} and maxsize {self.maxsize}.")
        for item in items:
            self.queue.put_nowait(item)

    def get_nowait(self):
        return self.queue.get_nowait()

    def get_nowait_batch(self, num_items):
        if num_items > self.qsize():
            raise Empty(f"Cannot get {num_items} items from queue of size "
                        f"{self.qsize()}.")
        return [self.queue.get_nowait() for _ in range(num_items)]
