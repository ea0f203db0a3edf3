"""``@serve.batch``: concurrent calls to one method become one call on a list.

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def predict(self, inputs: list) -> list:
        return [2 * x for x in inputs]

    await self.predict(3)       # each caller passes one item and gets its own answer

A batch starts when the first item arrives and closes when it holds
``max_batch_size`` items or ``batch_wait_timeout_s`` has passed; the wrapped
function must return one result per input, in order.
"""

import asyncio
import functools
import inspect
from dataclasses import dataclass
from typing import Any


@dataclass
class _Item:
    value: Any
    future: Any


class _BatchQueue:
    def __init__(self, fn, max_batch_size, timeout_s):
        self.fn = fn
        self.max_batch_size = max_batch_size
        self.timeout_s = timeout_s
        self.queue = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def _next_batch(self):
        batch = [await self.queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        while len(batch) < self.max_batch_size:
            left = deadline - loop.time()
            if left <= 0:
                while len(batch) < self.max_batch_size and not self.queue.empty():
                    batch.append(self.queue.get_nowait())
                break
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), left))
            except asyncio.TimeoutError:
                break
        return batch

    async def _loop(self):
        while True:
            batch = await self._next_batch()
            try:
                result = self.fn([item.value for item in batch])
                if inspect.isawaitable(result):
                    result = await result
                results = list(result)
                if len(results) != len(batch):
                    raise TypeError(f"@serve.batch function {self.fn.__name__!r} returned "
                                    f"{len(results)} results for a batch of {len(batch)} "
                                    f"inputs: return exactly one per input, in order.")
                for item, value in zip(batch, results):
                    if not item.future.done():
                        item.future.set_result(value)
            except Exception as exc:
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)


def batch(_func=None, *, max_batch_size=10, batch_wait_timeout_s=0.01):
    """Batch concurrent calls of an async function or method (Ray's ``serve.batch``)."""
    if not isinstance(max_batch_size, int) or max_batch_size < 1:
        raise ValueError(f"max_batch_size must be an int >= 1, got {max_batch_size!r}.")
    if not isinstance(batch_wait_timeout_s, (int, float)) or batch_wait_timeout_s < 0:
        raise ValueError(f"batch_wait_timeout_s must be a number >= 0, got "
                         f"{batch_wait_timeout_s!r}.")

    def decorate(fn):
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"@serve.batch needs an async function; make {fn.__name__!r} "
                            f"'async def'.")
        params = list(inspect.signature(fn).parameters)
        is_method = bool(params) and params[0] == "self"
        queues = {}

        def queue_for(owner):
            key = (id(owner), id(asyncio.get_running_loop()))
            q = queues.get(key)
            if q is None:
                bound = functools.partial(fn, owner) if is_method else fn
                q = queues[key] = _BatchQueue(bound, max_batch_size, batch_wait_timeout_s)
            return q

        if is_method:
            @functools.wraps(fn)
            async def wrapper(self, item):
                fut = asyncio.get_running_loop().create_future()
                queue_for(self).queue.put_nowait(_Item(item, fut))
                return await fut
        else:
            @functools.wraps(fn)
            async def wrapper(item):
                fut = asyncio.get_running_loop().create_future()
                queue_for(None).queue.put_nowait(_Item(item, fut))
                return await fut
        wrapper._serve_batch = (max_batch_size, batch_wait_timeout_s)
        return wrapper

    if _func is not None:
        return decorate(_func)
    return decorate
