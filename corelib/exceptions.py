"""minray.exceptions: the errors a user of the Ray API can catch.

The names and the class hierarchy follow ``ray.exceptions`` so that
``except ray.exceptions.RayTaskError`` and ``except ValueError`` both keep
working after ``get``: a failed task's error is re-raised as an instance of a
class that derives from *both* RayTaskError and the original exception's type,
and it carries the remote traceback as text.
"""

import traceback as _traceback


class RayError(Exception):
    """Base class of every error raised by minray."""


class RaySystemError(RayError):
    """An internal error of the runtime (not of the user's code)."""

    def __init__(self, client_exc, traceback_str=None):
        self.client_exc = client_exc
        self.traceback_str = traceback_str
        super().__init__(client_exc)

    def __str__(self):
        text = f"System error: {self.client_exc}"
        if self.traceback_str:
            text += f"\ntraceback: {self.traceback_str}"
        return text


class RayTaskError(RayError):
    """A task or actor method raised an exception.

    ``get`` raises an instance of a class that is a subclass of both this
    class and the type of the original exception, so either can be caught::

        @ray.remote
        def f():
            raise ValueError("bad")

        try:
            ray.get(f.remote())
        except ValueError as e:          # also a RayTaskError
            print(e.traceback_str)
    """

    def __init__(self, function_name, traceback_str, cause, proctitle=None,
                 pid=None, ip=None, actor_repr=None, actor_id=None):
        self.function_name = function_name
        self.traceback_str = traceback_str
        self.cause = cause
        self.proctitle = proctitle
        self.pid = pid
        self.ip = ip
        self.actor_repr = actor_repr
        self.actor_id = actor_id
        # Exception.args is what pickle rebuilds from; keep it complete.
        Exception.__init__(self, function_name, traceback_str, cause,
                           proctitle, pid, ip, actor_repr, actor_id)

    def __reduce__(self):
        return (RayTaskError, (self.function_name, self.traceback_str,
                               self.cause, self.proctitle, self.pid, self.ip,
                               self.actor_repr, self.actor_id))

    def __str__(self):
        where = f"ray::{self.function_name}()"
        if self.pid is not None:
            where += f" (pid={self.pid}, ip={self.ip or '127.0.0.1'})"
        lines = [where]
        if self.actor_repr:
            lines.append(f"  actor: {self.actor_repr}")
        lines.append(self.traceback_str.rstrip())
        return "\n".join(lines)

    def as_instanceof_cause(self):
        """Return an error that is an instance of both this class and the cause's type."""
        cause_cls = type(self.cause) if self.cause is not None else None
        if cause_cls is None or issubclass(cause_cls, RayTaskError):
            return self
        if not _can_derive(cause_cls):
            return self
        name = f"RayTaskError({cause_cls.__name__})"
        try:
            cls = _DUAL_CLASSES[cause_cls]
        except KeyError:
            def __init__(inner_self, task_error):
                inner_self.__dict__.update(task_error.__dict__)
                # args of the cause, so str(e)/e.args look like the original.
                inner_self.args = getattr(task_error.cause, "args", ())

            def __getattr__(inner_self, name):
                # Attributes of the original exception (e.g. e.errno) stay reachable.
                cause = inner_self.__dict__.get("cause")
                if cause is None:
                    raise AttributeError(name)
                return getattr(cause, name)

            def __reduce__(inner_self):
                return (_rebuild_dual, (RayTaskError.__reduce__(inner_self)[1],))

            cls = type(name, (RayTaskError, cause_cls), {
                "__init__": __init__,
                "__getattr__": __getattr__,
                "__str__": RayTaskError.__str__,
                "__reduce__": __reduce__,
                "__module__": __name__,
            })
            _DUAL_CLASSES[cause_cls] = cls
        return cls(self)


_DUAL_CLASSES = {}


def _can_derive(cls):
    try:
        type("_probe", (RayTaskError, cls), {})
        return True
    except TypeError:  # e.g. layout conflicts with some builtin exceptions
        return False


def _rebuild_dual(args):
    return RayTaskError(*args).as_instanceof_cause()


def task_error_from_exception(function_name, exc, pid=None, actor_repr=None,
                              actor_id=None):
    """Build the RayTaskError for ``exc`` raised by ``function_name`` here."""
    tb_obj = exc.__traceback__
    # Start at the user's code: skip the runtime's own frames on top.
    while tb_obj is not None and _is_runtime_frame(tb_obj.tb_frame.f_code.co_filename):
        tb_obj = tb_obj.tb_next
    tb = "".join(_traceback.format_exception(type(exc), exc, tb_obj or exc.__traceback__))
    if isinstance(exc, RayTaskError):
        # A nested task's error propagating through this task: keep the cause.
        cause = exc.cause
    else:
        cause = exc
    return RayTaskError(function_name, tb, cause, pid=pid,
                        actor_repr=actor_repr, actor_id=actor_id)


def _is_runtime_frame(filename):
    import os
    return os.sep + "_private" + os.sep in filename and (
        "minray" in filename or "corelib" in filename)


class InvalidRefsError(ValueError, TypeError):
    """get() was given something that is neither an ObjectRef nor a list of them.

    A ValueError as in Ray, and a TypeError too, since it is one.
    """


class WorkerCrashedError(RayError):
    """The worker process running the task died unexpectedly."""

    def __init__(self, message="The worker died unexpectedly while executing this task."):
        super().__init__(message)


class TaskCancelledError(RayError):
    """The task was cancelled with ``ray.cancel``."""

    def __init__(self, task_id=None, message=None):
        self.task_id = task_id
        super().__init__(message or f"Task {task_id} was cancelled.")


class RayActorError(RayError):
    """The actor died, or could not be created."""

    def __init__(self, message="The actor died unexpectedly before finishing this task.",
                 actor_id=None, cause=None):
        self.actor_id = actor_id
        self.error_msg = message
        self.cause = cause
        super().__init__(message)

    def __reduce__(self):
        return (type(self), (self.error_msg, self.actor_id, self.cause))


class ActorDiedError(RayActorError):
    """The actor died: its process exited, was killed, or its constructor raised."""


class ActorUnavailableError(RayActorError):
    """The actor is temporarily unreachable (for example while it restarts)."""


class ActorUnschedulableError(RayError):
    """The actor cannot be scheduled (its resources can never be satisfied)."""


class GetTimeoutError(RayError, TimeoutError):
    """``get`` did not finish within its timeout."""


class ObjectLostError(RayError):
    """The object's value was lost and could not be rebuilt."""

    def __init__(self, object_ref_hex="", owner_address="", call_site="", message=None):
        self.object_ref_hex = object_ref_hex
        super().__init__(message or (
            f"Failed to retrieve object {object_ref_hex}. All copies of it are lost "
            "and it cannot be rebuilt from its lineage."))

    def __reduce__(self):
        # Rebuilt with its own message, not a message wrapped in the default one.
        return (type(self), (self.object_ref_hex, "", "", str(self)))


class ObjectFetchTimedOutError(ObjectLostError):
    """Fetching the object from another node timed out."""


class ReferenceCountingAssertionError(ObjectLostError):
    """The object was freed while a reference to it still existed."""


class OwnerDiedError(ObjectLostError):
    """The process that owned the object (created or submitted it) died."""

    def __init__(self, object_ref_hex="", owner_address="", call_site="", message=None):
        super().__init__(object_ref_hex, owner_address, call_site, message or (
            f"Failed to retrieve object {object_ref_hex}: the worker that owned it "
            "(the process that called .remote() or put()) died. Keep the driver "
            "holding refs that must outlive worker processes."))


class ObjectReconstructionFailedError(ObjectLostError):
    """The object was lost and rebuilding it failed."""


class ObjectStoreFullError(RayError):
    """The object store and its spill directory cannot hold the object."""


class OutOfDiskError(ObjectStoreFullError):
    """The spill directory ran out of space."""


class OutOfMemoryError(RayError):
    """The task's worker was killed because the node ran low on memory."""


class NodeDiedError(RayError):
    """The node running the task or holding the object died."""


class RuntimeEnvSetupError(RayError):
    """The task's runtime_env could not be set up."""


class TaskUnschedulableError(RayError):
    """The task cannot be scheduled (for example its placement group was removed)."""


class PendingCallsLimitExceeded(RayError):
    """Too many calls are queued on an actor (max_pending_calls)."""


class CrossLanguageError(RayError):
    """Kept for API compatibility; minray runs only Python."""


class AsyncioActorExit(RayError):
    """Raised inside an async actor by ``exit_actor()``."""


__all__ = [name for name, value in list(globals().items())
           if isinstance(value, type) and issubclass(value, BaseException)]
