"""Checks of what users pass to get/wait, and of what tasks return: one copy,
shared by the real client (core_client), local mode and the worker."""

from minray import exceptions
from minray._private.core.object_ref import ObjectRef, ObjectRefGenerator


def check_get_refs(refs):
    """Returns (list of refs, single?) or raises Ray's errors for bad input."""
    if isinstance(refs, ObjectRef):
        return [refs], True
    if isinstance(refs, ObjectRefGenerator):
        raise TypeError("get() received an ObjectRefGenerator; iterate it to get "
                        "ObjectRefs, then call get() on those.")
    if not isinstance(refs, (list, tuple)):
        raise exceptions.InvalidRefsError(
            f"Invalid type of object refs, {type(refs)}, is given. 'object_refs' must "
            "either be an ObjectRef or a list of ObjectRefs (as returned by .remote() "
            "or put()).")
    for r in refs:
        if not isinstance(r, ObjectRef):
            raise TypeError(f"Attempting to call `get` on the value {r!r}, which is not "
                            "an ObjectRef. Pass the refs returned by .remote() or put().")
    return refs, False


def check_wait_args(refs, num_returns, timeout):
    """Raises Ray's errors for bad wait() input; returns False for an empty list."""
    if isinstance(refs, ObjectRef):
        raise TypeError("wait() expects a list of ObjectRefs, got a single ObjectRef; "
                        "wrap it in a list: ray.wait([ref]).")
    if not isinstance(refs, (list, tuple)):
        raise TypeError(f"wait() expects a list of ObjectRefs, got {type(refs).__name__}")
    for r in refs:
        if not isinstance(r, ObjectRef):
            raise TypeError(f"wait() expects ObjectRefs, got a {type(r).__name__}: {r!r}")
    if not refs:
        return False
    if len(set(refs)) != len(refs):
        raise ValueError("wait() requires a list of unique object refs.")
    if isinstance(num_returns, bool) or not isinstance(num_returns, int) or num_returns <= 0:
        raise ValueError(f"Invalid number of objects to return {num_returns!r}: "
                         "num_returns must be an int >= 1.")
    if num_returns > len(refs):
        raise ValueError(f"num_returns ({num_returns}) cannot be greater than the number "
                         f"of refs passed to wait() ({len(refs)}).")
    if timeout is not None and timeout < 0:
        raise ValueError(f"timeout must be None or >= 0, got {timeout}")
    return True


def get_timeout_error(timeout, need, total):
    return exceptions.GetTimeoutError(
        f"get() timed out after {timeout} s: {need} of {total} object(s) were not ready. "
        "Raise the timeout, or use ray.wait() to poll.")


def split_returns(name, result, num_returns):
    """A task's result as the list of its ``num_returns`` return values."""
    if num_returns == 1:
        return [result]
    if num_returns == 0:
        return []
    try:
        values = list(result)
    except TypeError:
        values = None
    if values is None or len(values) != num_returns:
        got = "a non-iterable " + type(result).__name__ if values is None else len(values)
        raise ValueError(
            f"Task {name} was declared with num_returns={num_returns} but returned {got} "
            "values. Return a tuple/list of exactly num_returns items.")
    return values
