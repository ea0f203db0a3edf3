"""Local mode's records and helpers: the values, calls and actors LocalClient keeps.

Plain classes with no behaviour of their own (see local/client.py for the
runtime that fills them), and the few functions that set up a call's
surroundings: its environment variables, its GPUs, and an async actor's loop.
"""

import asyncio
import contextlib
import os
import threading

from minray._private.client import records as client_records
from minray._private.core import execution
from minray._private.scheduling import resources as sched

TOKEN_SUFFIX = b"\xff\xff\xff\xff"   # an actor's token object: actor_id + this
NONE_BLOB = b"PN."                   # pickle of None, as the node manager writes tokens
WARN_BLOCKED_GET_S = 10.0             # a get() waiting this long says why it may hang


class LocalObject:
    """One value this client holds: its blob, local ref count and the refs inside it."""

    __slots__ = ("blob", "refs", "contained", "dynamic", "token_of", "callbacks", "seq")

    def __init__(self, blob, contained=(), dynamic=False, token_of=None, seq=0):
        self.blob = blob              # inline blob (tag P, B or E); None while pending
        self.seq = seq                # when it got its value: wait() picks the earliest
        self.refs = 0                 # live ObjectRef instances naming it
        self.contained = contained    # ObjectRefs pickled inside it: kept alive with it
        self.dynamic = dynamic        # value is the item refs of a num_returns="dynamic" task
        self.token_of = token_of      # actor id, for an actor's token object
        self.callbacks = []           # on_ready futures waiting for a pending value


class Stream(client_records.Stream):
    """The items of a streaming task (what ObjectRefGenerator reads), as the
    process runtime keeps them, plus the refs that completed() handed out."""

    __slots__ = ("done_refs",)

    def __init__(self, task_id):
        super().__init__(task_id)
        self.done_refs = []           # pending refs from completed(), filled at the end


class TaskContext:
    """What get_runtime_context() reports (worker_main.TaskContext's fields, and the
    placement group that util.get_current_placement_group() reads)."""

    __slots__ = ("task_id", "name", "resources", "actor_id", "attempt",
                 "placement_group_id")

    def __init__(self, task_id, name, resources, actor_id=None, attempt=0, pg=None):
        self.task_id = task_id
        self.name = name
        self.resources = resources
        self.actor_id = actor_id
        self.attempt = attempt
        self.placement_group_id = pg[0] if pg else None


class Frame:
    """A call running in a thread: the CPU it lends out while a nested call runs."""

    __slots__ = ("cpu", "lent")

    def __init__(self, charge):
        self.cpu = charge[1].get("CPU", 0.0) if charge and charge[0] == "node" else 0.0
        self.lent = False


class Prepared:
    """A call's arguments, pickled once at submission."""

    __slots__ = ("blob", "arg_refs", "pins")

    def __init__(self, blob, arg_refs, pins):
        self.blob = blob            # None for a call without arguments
        self.arg_refs = arg_refs    # [(position, ObjectRef)]: replaced by their values
        self.pins = pins            # refs nested in the arguments, kept alive with them


class ArgFailed(Exception):
    """A top-level ref argument holds an error: the call fails with it, unrun."""

    def __init__(self, blob):
        super().__init__()
        self.blob = blob


class Outcome:
    """How a call ended: ``values`` [(blob, contained)], ``error`` blob, or ``stream``."""

    __slots__ = ("kind", "values", "error")

    def __init__(self, kind, values=None, error=None):
        self.kind = kind
        self.values = values
        self.error = error


class Blocked:
    """A call held back by a pending placement group or busy resources, or its inputs."""

    __slots__ = ("run", "deps", "pg", "resources", "creation", "actor_id", "task_id",
                 "cancel")

    def __init__(self, run, deps, pg, resources, creation=False, actor_id=None,
                 task_id=None, cancel=None):
        self.run = run              # runs the call and fills its refs
        self.deps = deps            # ObjectRefs whose values it needs
        self.pg = pg                # (pg_id, bundle) it is scheduled into, or None
        self.resources = resources  # what it asks for (None: an actor call, nothing)
        self.creation = creation    # an actor's creation: waits until its resources fit
        self.actor_id = actor_id    # keeps one actor's calls in submission order
        self.task_id = task_id      # for cancel(); None for an actor's creation
        self.cancel = cancel        # fills its refs with TaskCancelledError instead


class ActorRecord:
    """One actor instance living in this process.

    ``actor`` and ``actor_meta`` are the names worker_main.WorkerServer uses, so
    exit_actor() and the runtime context find the current actor through
    ``client.worker_server`` unchanged.
    """

    def __init__(self, actor_id, cls, prepared, opts, meta, namespace, owner):
        wire = opts.actor_wire()
        self.actor_id = actor_id
        self.cls = cls
        self.prepared = prepared          # constructor arguments, kept for restarts
        self.opts = opts
        self.meta = meta
        self.class_name = meta.get("class_name") or cls.__name__
        self.name = wire["name"]
        self.namespace = namespace
        self.actor_meta = dict(meta, name=self.name) if self.name else meta
        self.detached = wire["lifetime"] == "detached"
        self.max_restarts = wire["max_restarts"] or 0
        self.owner = owner                # the actor whose code created it, or None
        self.num_restarts = 0
        self.state = "PENDING_CREATION"
        self.cause = None                 # error blob that calls get once it is DEAD
        self.actor = None                 # the instance
        self.loop = None                  # private event loop of an async actor
        self.incarnation = 0
        self.charge = None
        self.is_async = execution.is_async_class(cls)
        # Calls from several threads take turns, as in the actor's one worker thread
        # (or event loop); a threaded actor (max_concurrency > 1) lets them overlap.
        threaded = not self.is_async and ((wire["max_concurrency"] or 1) > 1 or
                                          wire["concurrency_groups"])
        self.call_lock = contextlib.nullcontext() if threaded else threading.RLock()


STREAMED = object()   # _async_call already collected an async generator's items


def cancelled_outcome(task_id):
    return Outcome("error", error=execution.error_blob(execution.cancelled_error(task_id)))


def run_coroutine(loop, coro):
    """Run ``coro`` to completion on ``loop`` in this thread, even inside a running loop.

    An async actor's calls run on its private loop, in the caller's thread, so a
    breakpoint in ``async def`` code stops the driver.  When the caller is itself
    async code (an async driver, or another async actor's method), its loop is
    set aside for the call, since asyncio refuses to run two loops in one thread
    at once (asyncio._get/_set_running_loop are the documented low-level hooks).
    """
    temporary = loop.is_running()
    if temporary:   # a call back into the same async actor from inside one of its calls
        loop = asyncio.new_event_loop()
    outer = asyncio._get_running_loop()
    if outer is not None:
        asyncio._set_running_loop(None)
    try:
        return loop.run_until_complete(coro)
    finally:
        if outer is not None:
            asyncio._set_running_loop(outer)
        if temporary:
            loop.close()


@contextlib.contextmanager
def environment(env_vars):
    """Set a call's runtime_env env_vars while it runs, as its worker would have them."""
    if not env_vars:
        yield
        return
    saved = {k: os.environ.get(k) for k in env_vars}
    os.environ.update(env_vars)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def merged_env(job_env, call_env):
    if not call_env:
        return job_env
    return dict(job_env, **call_env)


def with_gpus(env_vars, charge):
    """A call holding GPUs sees only those, in CUDA_VISIBLE_DEVICES (as its worker would)."""
    gpu_ids = sched.Scheduler.gpu_ids(charge)
    if not gpu_ids:
        return env_vars
    return dict(env_vars, CUDA_VISIBLE_DEVICES=",".join(str(i) for i in gpu_ids))


def error_item(name, exc):
    """A generator's error, as the last item of its stream."""
    return (execution.error_blob(execution.classify(exc, name, os.getpid()).error), ())


def actor_repr(a):
    try:
        return repr(a.actor)
    except Exception:
        return a.class_name
