"""Ownership decisions: when an object can be freed, what its owner tells the
node manager then, when a task's lineage is kept or forgotten, whether a task
runs again, and whether a lost object can be rebuilt. Pure functions, no I/O.

    last local ref dropped ──> release(...)      ──> Release(keep | owner_release,
                                                        forget_lineage, release_holds, unborrow)
    value of a freed object ──> late_value(...)  ──> Release(...)
    task finished ──────────> keep_lineage(...)  ──> bool
    result freed ───────────> lineage_released() ──> forget the task's spec?
    task failed / lost ─────> retry(...)         ──> Retry(again, retries_left)
    store copy lost ────────> reconstruct(...)   ──> one of the REBUILD_* / LOST_* outcomes

The model is Ray's: the process that submits a task (or puts a value) *owns*
its results. The owner counts the refs its own process holds (``local_refs``,
one per live ObjectRef); refs that leave inside a value are *exported* (the
node manager then counts the borrowers); a process that receives a ref it does
not own *borrows* it (registered once). The arguments of a task are pinned by
the task's record while it may still run (its ``pins``: refs, counted like any
other). When the last local ref goes, the owner frees what it holds: its store
copy (``owner_release``), the refs nested inside the value (``release_holds``),
or, as a borrower, its borrow (``unborrow``). A value still being computed that
others wait for outlives the owner's last ref until it is published.

Lineage: a finished task whose results went to the object store keeps its spec
(not its arguments' values) while one of those results is referenced, so a lost
copy can be rebuilt by running it again, up to ``max_retries`` times.

The client (``minray._private.client``) is the shell: it holds the tables and
the lock, and sends the notices these decisions name.

>>> release(owned=True, exported=False, is_token=False, in_store=True,
...         value_pending=False, contained=False, borrowed=False)
Release(keep=False, owner_release=True, forget_lineage=True, release_holds=False, unborrow=False)
>>> retry(retries_left=3, failed_retryably=True, cancelled=False)
Retry(again=True, retries_left=2)
"""

from __future__ import annotations

from minray._private.named import NamedTuple


class Release(NamedTuple):
    """What an owner (or borrower) does when its last local ref to an object goes."""
    keep: bool            # keep the state: others wait for a value still being computed
    owner_release: bool   # tell the node manager the owner let go (store copy, borrowers)
    forget_lineage: bool  # one fewer live result of the task that made it
    release_holds: bool   # the refs nested inside the value are released
    unborrow: bool        # a borrower: end the borrow


KEEP = Release(True, False, False, False, False)
DROP = Release(False, False, False, False, False)
UNBORROW = Release(False, False, False, False, True)
# Every owned outcome, made once (release runs for every ref dropped):
# _OWNED[owner_release][in_store][contained]; in_store implies owner_release. The
# outcome with nothing to do is DROP itself, so a caller can test it with ``is``.
_OWNED = tuple(tuple(tuple(Release(False, rel, rel and store, holds, False)
                           if (rel, store, holds) != (False, False, False) else DROP
                           for holds in (False, True))
                     for store in (False, True))
               for rel in (False, True))


def release(owned, exported, is_token, in_store, value_pending, contained, borrowed):
    """The last local ref to an object went: what to free.

    ``in_store``: its value lives in the object store (shared memory), not
    inline in this process. ``value_pending``: no value yet.

    >>> release(owned=True, exported=True, is_token=False, in_store=False,
    ...         value_pending=True, contained=False, borrowed=False).keep
    True
    >>> release(owned=False, exported=False, is_token=False, in_store=False,
    ...         value_pending=False, contained=False, borrowed=True).unborrow
    True
    """
    if owned:
        if exported:
            if value_pending:
                # Others hold it and wait for its value: keep the state until the
                # value arrives and is published, then let go (late_value).
                return KEEP
        elif not (is_token or in_store or contained):
            return DROP       # the common case (a put or a result nobody else saw)
        return _OWNED[bool(exported or is_token or in_store)][bool(in_store)][bool(contained)]
    if borrowed:
        return UNBORROW
    return DROP


def late_value(in_store, contained, exported):
    """A value arrived for an owned object nobody here refers to any more (freed,
    or kept only until published): free what the value holds.

    >>> late_value(in_store=True, contained=False, exported=False).owner_release
    True
    """
    return Release(False, in_store or exported, in_store and exported, contained, False)


def keep_lineage(dynamic, max_retries, results_in_store):
    """Keep a finished task's spec to rebuild its results? Only when some of
    them went to the object store (inline values live with their refs), it may
    run again, and its returns are fixed (not a dynamic generator).

    >>> keep_lineage(dynamic=False, max_retries=3, results_in_store=1)
    True
    >>> keep_lineage(dynamic=False, max_retries=0, results_in_store=1)
    False
    """
    return results_in_store > 0 and not dynamic and max_retries != 0


def lineage_released(live_returns):
    """One of a lineage task's stored results was freed (``live_returns`` is what
    is left): forget the task once none is referenced.

    >>> lineage_released(0)
    True
    """
    return live_returns <= 0


class Retry(NamedTuple):
    again: bool
    retries_left: int


def retry(retries_left, failed_retryably, cancelled):
    """Run a task (or actor call) again after it failed? ``retries_left`` < 0
    means unlimited (max_retries=-1). A cancelled task never runs again.

    >>> retry(-1, True, False)
    Retry(again=True, retries_left=-1)
    >>> retry(0, True, False)
    Retry(again=False, retries_left=0)
    """
    if not failed_retryably or cancelled or retries_left == 0:
        return Retry(False, retries_left)
    return Retry(True, retries_left - 1 if retries_left > 0 else retries_left)


# What to do when the store lost an owned object's copy (reconstruct's outcomes).
FREED = "freed"                        # nobody refers to it: nothing to rebuild
REBUILD_WHEN_REPLIED = "when_replied"  # the reply of the run that wrote it is on its way
RUNNING = "running"                    # its task is running (again) already
RESUBMIT = "resubmit"                  # run its task again from lineage
LOST_ARGS_FREED = "args_freed"         # lineage, but an argument was freed meanwhile
LOST_NO_RETRIES = "no_retries"         # lineage, but max_retries is used up
LOST_PUT = "put"                       # ray.put values have no lineage
LOST_NO_LINEAGE = "no_lineage"         # actor call results, tasks with max_retries=0


def reconstruct(known, value_pending, running, has_lineage, retries_left, args_alive,
                owned, is_put):
    """The object store lost an object's copy: can its owner rebuild it?

    >>> reconstruct(known=True, value_pending=False, running=False, has_lineage=True,
    ...             retries_left=2, args_alive=True, owned=True, is_put=False)
    'resubmit'
    >>> reconstruct(known=True, value_pending=False, running=False, has_lineage=False,
    ...             retries_left=0, args_alive=True, owned=True, is_put=True)
    'put'
    """
    if not known:
        return FREED
    if value_pending:
        # The node manager asks only after a run sealed a copy that is now gone,
        # so that run's reply is still on its way to us: rebuild when it arrives.
        return REBUILD_WHEN_REPLIED
    if running:
        return RUNNING
    if has_lineage:
        if retries_left == 0:
            return LOST_NO_RETRIES
        return RESUBMIT if args_alive else LOST_ARGS_FREED
    if owned and is_put:
        return LOST_PUT
    return LOST_NO_LINEAGE


def needs_borrow(owned, borrowed):
    """A ref arrived inside a value: register a borrow with the node manager?
    Once per object, and never for our own.

    >>> needs_borrow(owned=False, borrowed=False)
    True
    """
    return not owned and not borrowed
