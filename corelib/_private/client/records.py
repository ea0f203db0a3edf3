"""The client's records: object and task state, waiters, actor call queues,
and the small helpers the client's parts share. Data only; the client
(core_client.py and its parts) holds the lock and does the I/O."""

from __future__ import annotations

from minray._private.named import NamedTuple
import os
import threading

from minray._private.core import args as call_args
from minray import exceptions
from minray._private.objects import serialization, shm


_get_ident = threading.get_ident

# Large segments a producer keeps mapped for reuse (see CoreClient._keep_write_map).
WRITE_MAP_MIN = 8 << 20
WRITE_MAP_BYTES = 512 << 20
WRITE_MAP_COUNT = 4
# Pipelining, lease and steal policy: see core/submit_queue.py.
DONE_BLOCKED = 1    # DONE flags: the task blocked in get()/wait()
DONE_RETIRING = 2   # DONE flags: the worker exits after this task (max_calls)


class Waiter:
    """Wakes a blocked thread when ``count`` objects have become ready."""

    __slots__ = ("count", "lock", "mutex", "wake_fd", "reader")

    def __init__(self, count):
        self.count = count
        self.lock = threading.Lock()
        self.lock.acquire()
        # Objects complete on the I/O thread and on callers reading their own
        # replies, so two notifies can race: the countdown needs its own lock
        # (not for one object, which completes once).
        self.mutex = threading.Lock() if count > 1 else None
        self.wake_fd = None      # set while its thread reads a connection itself
        self.reader = None

    def notify(self):
        m = self.mutex
        if m is None:
            self.count -= 1
            done = self.count == 0
        else:
            with m:
                self.count -= 1
                done = self.count == 0
        if done:
            self.lock.release()
            fd = self.wake_fd
            if fd is not None and _get_ident() != self.reader:
                try:
                    os.write(fd, b"\1")   # wake the thread out of its poll
                except OSError:
                    pass

    def finish(self):
        """Wake the thread now, however many objects are still missing (a get()
        of several objects raises as soon as one of them is an error)."""
        with self.mutex:
            if self.count <= 0:
                return
            self.count = 0
        self.lock.release()
        fd = self.wake_fd
        if fd is not None and _get_ident() != self.reader:
            try:
                os.write(fd, b"\1")
            except OSError:
                pass

    def wait(self, timeout):
        if timeout is None:
            return self.lock.acquire()
        return self.lock.acquire(timeout=max(timeout, 0))


class PublishTo(NamedTuple):
    """Where an owned value must also go once ready: another node's manager
    (``NM``: it publishes there) or a submitter on another node (``VALUE``: sent to
    it directly)."""
    how: str
    conn: Any


PUBLISH_NM = "nm"
PUBLISH_VALUE = "value"


class Reply:
    """The answer to a blocking request, filled in on the I/O thread."""

    __slots__ = ("ok", "value")

    def __init__(self):
        self.ok = None
        self.value = None


class ObjectState:
    __slots__ = ("remote_nms", "blob", "waiters", "local_refs", "owned", "owner", "exported",
                 "borrowed", "contained", "segment_buf", "fetching", "is_token", "dropped")

    def __init__(self, owned, owner):
        self.blob = None          # None while pending
        self.waiters = []         # Waiter objects or callables
        self.local_refs = 0
        self.owned = owned
        self.owner = owner
        self.exported = False
        self.remote_nms = None    # other nodes' NMs this value must be published to
        self.borrowed = False     # a borrow is registered with the node manager
        self.contained = False    # the node manager holds inner refs for this value
        self.segment_buf = None
        self.fetching = False
        self.is_token = False
        self.dropped = False      # owner let go while the value was pending and exported


class TaskRecord:
    __slots__ = ("task_id", "fn", "args_blob", "arg_refs", "arg_values", "pins",
                 "opts", "return_ids", "retries_left", "worker",
                 "cancelled", "stream", "actor_id", "method", "queue", "seq", "sent_at",
                 "on_error", "live_returns", "then", "lineage_args")

    def __init__(self, task_id, fn, args_blob, arg_refs, pins, opts, return_ids):
        self.task_id = task_id
        self.fn = fn
        self.args_blob = args_blob
        self.arg_refs = arg_refs          # [(position, ObjectRef)] top-level args
        self.arg_values = None
        self.pins = pins                  # refs kept alive while the task runs
        self.opts = opts
        self.return_ids = return_ids
        self.retries_left = opts.max_retries
        self.worker = None
        self.cancelled = False
        self.stream = None
        self.actor_id = None
        self.method = None
        self.queue = None
        self.seq = 0
        self.sent_at = 0.0
        self.on_error = None
        self.then = None                  # what runs once the ref arguments resolve
        self.live_returns = 0             # lineage: its returns in the store still referenced
        self.lineage_args = ()            # lineage: (oid, owner) of its arguments, unpinned

    @property
    def pipelined(self):
        """Short and never blocking (FunctionInfo.pipelinable), and not on a
        worker that retires after max_calls: may wait in a worker's socket."""
        return self.fn.pipelinable() and not self.opts.raw.get("max_calls")

    @property
    def args_pending(self):
        """Its ref arguments are not resolved yet (an actor call waits in order)."""
        return self.arg_values is None and bool(self.arg_refs)

    @property
    def avg_s(self):
        return self.fn.avg_s


class Stream:
    """The items of a streaming generator task, as they arrive."""

    __slots__ = ("task_id", "items", "finished", "waiters", "error_blob")

    def __init__(self, task_id):
        self.task_id = task_id
        self.items = []
        self.finished = False
        self.waiters = []
        self.error_blob = None


# A top-level ObjectRef argument's stand-in inside the pickled args: one class for
# the submitter, the worker and local mode (core/args.py), or the worker would not
# recognise the placeholders.
_ArgRef = call_args.ArgRef


_EMPTY_ARGS = serialization.dumps_inline(((), {}))


def _argument_error(args, kwargs, exc):
    """The serialization error of a task's arguments, naming the argument at fault."""
    named = [(f"argument {i} ({type(a).__name__})", a) for i, a in enumerate(args)]
    named += [(f"keyword argument {k!r} ({type(v).__name__})", v)
              for k, v in (kwargs or {}).items()]
    for what, value in named:
        try:
            serialization.serialize(value)
        except TypeError as inner:
            return TypeError(str(inner).replace("the value", what, 1))
    return TypeError(str(exc).replace("the value", "an argument", 1))


def len_of_shm(blob):
    return serialization.shm_size_of(blob)


def _blob_from_location(loc):
    if loc[0] == "inline":
        return loc[1]
    return serialization.shm_blob(loc[2]) + loc[1].encode()


def _check_shm_space(size):
    free = shm.shm_free_bytes()
    if free and size > free:
        raise exceptions.ObjectStoreFullError(
            f"Cannot store an object of {size / 2**20:.1f} MiB: /dev/shm has only "
            f"{free / 2**20:.1f} MiB free. An object must fit in shared memory whole "
            "(only objects already there can spill to disk). Free references to large "
            "objects (del ref), split the value into smaller objects, or make /dev/shm "
            "larger (e.g. docker --shm-size).")
