"""Running one task or actor call: what a worker and local mode both do.

    arguments (core.args.resolve) --> the user's function or method (sync, async, generator)
        --> a value:     store_returns() splits it into num_returns values and stores each
        --> a generator: drain() / drain_async() hand each item to the shell as it comes
        --> an exception: classify() --> Failure(kind, error record, retryable)
                          error_blob() --> the bytes every get() of the result raises

The shells differ only in where values go and how a failure travels: a worker
(worker/main.py) stores values in the object store and replies DONE over its
socket; local mode (local/client.py) keeps them in the caller's process.  Both
decide *what happened* here, so a failure looks the same to the user in both
backends (RayTaskError with the remote traceback, ``except ValueError`` still
working after ``get``; ActorDiedError once an actor exited; TaskCancelledError).

Example::

    >>> f = classify(ValueError("bad"), "f", pid=1, retry_exceptions=[ValueError])
    >>> f.kind, f.retryable, type(f.error.as_instanceof_cause()).__name__
    ('application_error', True, 'RayTaskError(ValueError)')
"""

from __future__ import annotations

import inspect
from minray._private.named import NamedTuple

from minray import exceptions
from minray._private.core import retry, validation
from minray._private.objects import serialization


class ActorExit(BaseException):
    """Raised by exit_actor() to leave the actor after the current call."""


# Failure kinds (Failure.kind)
APPLICATION_ERROR = "application_error"   # the user's code raised: RayTaskError
CANCELLED = "cancelled"                   # ray.cancel() interrupted it: TaskCancelledError
ACTOR_EXIT = "actor_exit"                 # exit_actor() in an actor call: ActorDiedError
PROCESS_EXIT = "process_exit"             # sys.exit() in the code: the process would end


class ActorIdentity(NamedTuple):
    """Which actor ran the call (for the error record's actor fields)."""
    class_name: str
    actor_id: Optional[str]   # hex
    repr: str                 # repr() of the instance, or the class name


class Failure(NamedTuple):
    kind: str                 # one of the kinds above
    error: BaseException      # the record the caller's get() raises
    retryable: bool           # retry_exceptions allows a retry (a crash always does)


def classify(exc, name, pid, retry_exceptions=False, cancel_requested=False,
             actor: Optional[ActorIdentity] = None) -> Failure:
    """What ``exc``, raised by the call ``name``, means for its caller.

    A KeyboardInterrupt is a cancellation when ray.cancel() asked for one (an
    actor call has no other source of it); otherwise it is the task's error.
    """
    actor_id = actor.actor_id if actor is not None else None
    if isinstance(exc, (ActorExit, exceptions.AsyncioActorExit)) and actor is not None:
        return Failure(ACTOR_EXIT, actor_exit_error(actor.class_name, actor_id), False)
    if isinstance(exc, KeyboardInterrupt) and (cancel_requested or actor is not None):
        return Failure(CANCELLED, None, False)
    if isinstance(exc, SystemExit):
        if actor is not None:
            err = exceptions.ActorDiedError(
                f"The actor {actor.class_name} exited (sys.exit({exc.code!r})) while running "
                f"{name}.", actor_id=actor_id)
        else:
            err = exceptions.WorkerCrashedError(
                f"The worker running {name} exited (sys.exit({exc.code!r})) while executing "
                "this task.")
        return Failure(PROCESS_EXIT, err, True)
    err = exceptions.task_error_from_exception(
        name, exc, pid=pid, actor_repr=actor.repr if actor is not None else None,
        actor_id=actor_id)
    # A KeyboardInterrupt nobody asked for is not one of the user's exceptions to retry.
    return Failure(APPLICATION_ERROR, err,
                   isinstance(exc, Exception) and retry.retryable(exc, retry_exceptions))


def cancelled_error(task_id):
    return exceptions.TaskCancelledError(task_id.hex())


def actor_exit_error(class_name, actor_id_hex):
    return exceptions.ActorDiedError(
        f"The actor {class_name} exited by calling exit_actor().", actor_id=actor_id_hex)


def creation_error(init_name, exc, actor_id_hex, pid):
    """The ActorDiedError every call of an actor gets whose constructor raised ``exc``."""
    err = exceptions.task_error_from_exception(init_name, exc, pid=pid)
    return exceptions.ActorDiedError(
        f"The actor died because of an error raised in its creation task, "
        f"{init_name}():\n{err}", actor_id=actor_id_hex, cause=err)


def error_blob(err):
    """serialization.error_blob, checked to load again: an exception whose __init__
    takes extra required arguments pickles but does not unpickle, and get() must
    raise the task's error, not pickle's TypeError."""
    blob = serialization.error_blob(err)
    try:
        serialization.loads_inline(blob)
    except Exception as exc:
        cause = getattr(err, "cause", None) or err
        fallback = exceptions.RayTaskError(
            getattr(err, "function_name", "<unknown>"),
            getattr(err, "traceback_str", "") or repr(err),
            RuntimeError(f"{type(cause).__name__}: {cause} (the original exception could "
                         f"not be unpickled: {type(exc).__name__}: {exc})"),
            pid=getattr(err, "pid", None))
        blob = serialization.error_blob(fallback)
    return blob


# ----------------------------------------------------------------- calling
def is_async_class(cls):
    """An actor class with any ``async def`` method runs as an async actor (Ray's rule)."""
    return any(inspect.iscoroutinefunction(m) or inspect.isasyncgenfunction(m)
               for _, m in inspect.getmembers(cls, inspect.isfunction))


async def construct_async(cls, args, kwargs):
    """An async actor's constructor runs on its event loop (so it may create tasks there)."""
    return cls(*args, **kwargs)


async def call_async(fn, args, kwargs):
    """Call an async actor's method: a coroutine is awaited, a plain result returned."""
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


def store_returns(name, result, num_returns, store):
    """Split ``result`` into ``num_returns`` values; ``store(i, value)`` keeps each.

    Returns what ``store`` returned, in order; a value that does not pickle fails
    the call with a TypeError naming it.
    """
    values = validation.split_returns(name, result, num_returns)
    out = []
    for i, v in enumerate(values):
        try:
            out.append(store(i, v))
        except TypeError as exc:
            raise TypeError(f"The return value of {name} could not be serialized: "
                            f"{exc}") from None
    return out


def drain(gen, emit, passthrough=()):
    """Hand each item of generator ``gen`` to ``emit(index, value)`` as it is yielded.

    Returns (items emitted, the Exception that ended it or None).  An error from
    ``emit`` (an item that does not pickle) ends the stream like one from the
    generator, except the ``passthrough`` classes (the caller's connection closed),
    which propagate.
    """
    i = 0
    try:
        for value in gen:
            emit(i, value)
            i += 1
    except Exception as exc:
        return _ended(i, exc, passthrough)
    return i, None


async def drain_async(agen, emit, passthrough=()):
    """drain() for an async generator."""
    n = 0
    try:
        async for value in agen:
            emit(n, value)
            n += 1
    except Exception as exc:
        return _ended(n, exc, passthrough)
    return n, None


def _ended(count, exc, passthrough):
    if isinstance(exc, passthrough):
        raise exc
    return count, exc
