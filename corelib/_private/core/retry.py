"""Whether a failed task runs again: the retry decision as pure functions.

    task failed (its exception, or its worker died) --> retryable(exc, retry_exceptions)
    (retries_left, retryable, cancelled) --> decide() --> RetryDecision(retry, retries_left)

Ray's rules: an application error is retried only when ``retry_exceptions``
allows it (True, or a list of exception classes it is an instance of); a crash
of the process running it (worker death, ``sys.exit``) is always retryable.
Either way a retry needs retries left: ``max_retries`` counts them down, and
``-1`` never runs out.  A cancelled task is never retried.

Example::

    >>> retryable(ValueError("x"), [ValueError])
    True
    >>> decide(retries_left=1, retryable=True)
    RetryDecision(retry=True, retries_left=0)
    >>> decide(retries_left=-1, retryable=True)
    RetryDecision(retry=True, retries_left=-1)
    >>> decide(retries_left=0, retryable=True)
    RetryDecision(retry=False, retries_left=0)
"""

from __future__ import annotations

import pickle
from minray._private.named import NamedTuple


class RetryDecision(NamedTuple):
    retry: bool          # run the task again
    retries_left: int    # what is left after this decision (-1: unlimited)


def retryable(exc, retry_exceptions) -> bool:
    """Does ``retry_exceptions`` (False, True, a list of classes, or that list
    pickled, as an actor method's option travels) allow retrying ``exc``?"""
    if not retry_exceptions:
        return False
    if retry_exceptions is True:
        return True
    try:
        if isinstance(retry_exceptions, bytes):
            retry_exceptions = pickle.loads(retry_exceptions)
        return isinstance(exc, tuple(retry_exceptions))
    except Exception:   # an unloadable list retries nothing rather than fail the reply
        return False


def decide(retries_left, retryable, cancelled=False) -> RetryDecision:
    """Retry a failure that is ``retryable`` while retries are left and it is not cancelled."""
    if not retryable or cancelled or retries_left == 0:
        return RetryDecision(False, retries_left)
    return RetryDecision(True, retries_left - 1 if retries_left > 0 else retries_left)
