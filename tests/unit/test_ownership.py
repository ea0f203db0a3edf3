"""Ownership decisions (core/ownership.py) as tables: when an object is freed and
what its owner tells the node manager, lineage kept or forgotten, retries, and
whether a lost object can be rebuilt. No process, socket or clock."""

import pytest

from minray._private.core import ownership
from minray._private.core.ownership import Release

F, T = False, True

RELEASE = [
    # (why, owned, exported, is_token, in_store, pending, contained, borrowed, expected)
    ("owned small value, never shared: just drop it",
     T, F, F, F, F, F, F, Release(F, F, F, F, F)),
    ("owned value in the store: free the copy, forget a lineage result",
     T, F, F, T, F, F, F, Release(F, T, T, F, F)),
    ("owned, exported, inline value: borrowers are told",
     T, T, F, F, F, F, F, Release(F, T, F, F, F)),
    ("owned, exported, still being computed: keep until published",
     T, T, F, F, T, F, F, ownership.KEEP),
    ("owned, pending, never exported: drop at once",
     T, F, F, F, T, F, F, Release(F, F, F, F, F)),
    ("an actor handle's token: the node manager counts it",
     T, F, T, F, F, F, F, Release(F, T, F, F, F)),
    ("owned value holding refs: release the nested refs",
     T, F, F, F, F, T, F, Release(F, F, F, T, F)),
    ("stored value holding refs: both",
     T, T, F, T, F, T, F, Release(F, T, T, T, F)),
    ("a borrowed ref: end the borrow",
     F, F, F, T, F, F, T, Release(F, F, F, F, T)),
    ("a ref of another owner, never registered: nothing to say",
     F, F, F, F, F, F, F, ownership.DROP),
]


@pytest.mark.parametrize("why,owned,exported,is_token,in_store,pending,contained,borrowed,"
                         "expected", RELEASE, ids=[r[0] for r in RELEASE])
def test_release(why, owned, exported, is_token, in_store, pending, contained, borrowed,
                 expected):
    assert ownership.release(owned, exported, is_token, in_store, pending, contained,
                             borrowed) == expected


LATE = [
    # (in_store, contained, exported, expected)
    (T, F, F, Release(F, T, F, F, F)),   # freed while pending: free its store copy
    (F, T, F, Release(F, F, F, T, F)),   # ...and the refs inside it
    (F, F, F, Release(F, F, F, F, F)),   # an inline value: nothing held
    (T, F, T, Release(F, T, T, F, F)),   # kept for borrowers, now published: let go
    (F, T, T, Release(F, T, F, T, F)),
]


@pytest.mark.parametrize("in_store,contained,exported,expected", LATE)
def test_late_value(in_store, contained, exported, expected):
    assert ownership.late_value(in_store, contained, exported) == expected


@pytest.mark.parametrize("dynamic,max_retries,stored,expected", [
    (F, 3, 1, T), (F, -1, 2, T), (F, 0, 1, F), (F, 3, 0, F), (T, 3, 1, F)])
def test_keep_lineage(dynamic, max_retries, stored, expected):
    assert ownership.keep_lineage(dynamic, max_retries, stored) is expected


@pytest.mark.parametrize("live,expected", [(2, F), (1, F), (0, T), (-1, T)])
def test_lineage_released(live, expected):
    assert ownership.lineage_released(live) is expected


RETRY = [
    # (retries_left, failed_retryably, cancelled, expected)
    (3, T, F, (T, 2)),
    (1, T, F, (T, 0)),
    (0, T, F, (F, 0)),
    (-1, T, F, (T, -1)),     # max_retries=-1: forever
    (3, F, F, (F, 3)),       # an application error retry_exceptions does not match
    (3, T, T, (F, 3)),       # cancelled: never again
]


@pytest.mark.parametrize("left,retryable,cancelled,expected", RETRY)
def test_retry(left, retryable, cancelled, expected):
    assert tuple(ownership.retry(left, retryable, cancelled)) == expected


RECONSTRUCT = [
    # (why, known, pending, running, lineage, retries, args_alive, owned, put, expected)
    ("freed meanwhile", F, F, F, F, 0, F, F, F, ownership.FREED),
    ("the writing run's reply is still on its way", T, T, F, T, 3, T, T, F,
     ownership.REBUILD_WHEN_REPLIED),
    ("its task runs already", T, F, T, T, 3, T, T, F, ownership.RUNNING),
    ("lineage with retries and live args: resubmit", T, F, F, T, 2, T, T, F,
     ownership.RESUBMIT),
    ("unlimited retries", T, F, F, T, -1, T, T, F, ownership.RESUBMIT),
    ("an argument was freed", T, F, F, T, 2, F, T, F, ownership.LOST_ARGS_FREED),
    ("retries used up", T, F, F, T, 0, T, T, F, ownership.LOST_NO_RETRIES),
    ("a ray.put value", T, F, F, F, 0, T, T, T, ownership.LOST_PUT),
    ("an actor call's result", T, F, F, F, 0, T, T, F, ownership.LOST_NO_LINEAGE),
]


@pytest.mark.parametrize("why,known,pending,running,lineage,retries,args_alive,owned,put,"
                         "expected", RECONSTRUCT, ids=[r[0] for r in RECONSTRUCT])
def test_reconstruct(why, known, pending, running, lineage, retries, args_alive, owned, put,
                     expected):
    assert ownership.reconstruct(known, pending, running, lineage, retries, args_alive,
                                 owned, put) == expected


@pytest.mark.parametrize("owned,borrowed,expected", [(F, F, T), (F, T, F), (T, F, F)])
def test_needs_borrow(owned, borrowed, expected):
    assert ownership.needs_borrow(owned, borrowed) is expected
