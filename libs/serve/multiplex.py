"""Model multiplexing: many models per deployment, a few loaded per replica.

    @serve.deployment
    class Models:
        @serve.multiplexed(max_num_models_per_replica=2)
        async def get_model(self, model_id: str):
            return load(model_id)

        async def __call__(self, request):
            model = await self.get_model(serve.get_multiplexed_model_id())

Callers name the model with ``handle.options(multiplexed_model_id="a")`` or the
HTTP header ``serve_multiplexed_model_id``; each replica keeps the most recently
used models (LRU) and loads the others on demand.
"""

import asyncio
import contextvars
import functools
import inspect
from collections import OrderedDict

MODEL_ID_HEADER = "serve_multiplexed_model_id"
_model_id = contextvars.ContextVar("serve_multiplexed_model_id", default="")


def get_multiplexed_model_id():
    """The model id of the request being handled ("" when none was given)."""
    return _model_id.get()


def set_model_id(model_id):
    _model_id.set(model_id or "")


def multiplexed(_func=None, *, max_num_models_per_replica=3):
    """Cache what an async ``load(model_id)`` returns, at most N models per replica."""
    if not isinstance(max_num_models_per_replica, int) or (
            max_num_models_per_replica < 1 and max_num_models_per_replica != -1):
        raise ValueError(f"max_num_models_per_replica must be an int >= 1 (or -1: no limit), "
                         f"got {max_num_models_per_replica!r}.")

    def decorate(fn):
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"@serve.multiplexed needs an async function; make "
                            f"{fn.__name__!r} 'async def'.")
        caches = {}

        @functools.wraps(fn)
        async def wrapper(*args):
            owner, model_id = (args[0], args[1]) if len(args) == 2 else (None, args[0])
            if not isinstance(model_id, str):
                raise TypeError(f"a multiplexed model id must be a str, got {model_id!r}.")
            cache = caches.setdefault(id(owner), OrderedDict())
            entry = cache.get(model_id)
            if entry is None:
                entry = cache[model_id] = asyncio.ensure_future(fn(*args))
                while max_num_models_per_replica != -1 and len(cache) > \
                        max_num_models_per_replica:
                    cache.popitem(last=False)
            cache.move_to_end(model_id)
            try:
                return await asyncio.shield(entry)
            except Exception:
                cache.pop(model_id, None)     # a failed load is retried next time
                raise
        return wrapper

    if _func is not None:
        return decorate(_func)
    return decorate
