"""The shared task-execution path (core/args, core/retry, core/execution), as tables.

Both backends (a worker process and local mode) run calls through these pure
functions, so what a failure means is decided once; these rows pin it down.
"""
import asyncio
import pickle

import pytest

from minray import exceptions
from minray._private.core import args as call_args, execution, retry
from minray._private.core.execution import (ACTOR_EXIT, APPLICATION_ERROR, CANCELLED,
                                            PROCESS_EXIT, ActorIdentity)


class Ref(str):
    """A stand-in for ObjectRef: anything is_ref says is one."""


def is_ref(v):
    return type(v) is Ref


# ------------------------------------------------------------------- arguments
ARG_ROWS = [
    # (args, kwargs, expected placeholder args, kwargs, positions of refs)
    ((), {}, (), {}, []),
    ((1, 2), {"k": 3}, (1, 2), {"k": 3}, []),
    ((Ref("a"),), {}, (call_args.ArgRef(0),), {}, ["a"]),
    ((1, Ref("a"), Ref("b")), {"k": Ref("c"), "j": 4},
     (1, call_args.ArgRef(0), call_args.ArgRef(1)), {"k": call_args.ArgRef(2), "j": 4},
     ["a", "b", "c"]),
    (([Ref("nested")],), {}, ([Ref("nested")],), {}, []),   # nested refs stay refs
]


@pytest.mark.parametrize("args,kwargs,exp_args,exp_kwargs,refs", ARG_ROWS)
def test_placeholders_and_resolve_round_trip(args, kwargs, exp_args, exp_kwargs, refs):
    p = call_args.placeholders(args, kwargs, Ref)
    assert p.args == exp_args and p.kwargs == exp_kwargs
    assert [r for _, r in p.arg_refs] == refs
    assert [pos for pos, _ in p.arg_refs] == list(range(len(refs)))
    # Through pickle, as the arguments travel to a worker.
    a, k = pickle.loads(pickle.dumps((p.args, p.kwargs)))
    values = {pos: f"value-of-{r}" for pos, r in p.arg_refs}
    got_args, got_kwargs = call_args.resolve(a, k, values)

    def expect(v):
        return f"value-of-{v}" if is_ref(v) else v
    assert got_args == tuple(expect(v) for v in args)
    assert got_kwargs == {key: expect(v) for key, v in kwargs.items()}


def test_placeholders_leave_the_callers_kwargs_alone():
    kwargs = {"k": Ref("a")}
    call_args.placeholders((), kwargs, Ref)
    assert kwargs == {"k": Ref("a")}


# ----------------------------------------------------------------------- retry
class Custom(Exception):
    pass


RETRYABLE_ROWS = [
    (ValueError(), False, False),
    (ValueError(), None, False),
    (ValueError(), True, True),
    (ValueError(), [ValueError], True),
    (Custom(), [Exception], True),
    (ValueError(), [KeyError, TypeError], False),
    (ValueError(), pickle.dumps([ValueError]), True),     # an actor method's list, by value
    (ValueError(), pickle.dumps([KeyError]), False),
    (ValueError(), b"not a pickle", False),
]


@pytest.mark.parametrize("exc,retry_exceptions,expected", RETRYABLE_ROWS)
def test_retryable(exc, retry_exceptions, expected):
    assert retry.retryable(exc, retry_exceptions) is expected


DECIDE_ROWS = [
    # (retries_left, retryable, cancelled) -> (retry, retries_left)
    ((3, True, False), (True, 2)),
    ((1, True, False), (True, 0)),
    ((0, True, False), (False, 0)),
    ((-1, True, False), (True, -1)),     # max_retries=-1: forever
    ((3, False, False), (False, 3)),
    ((3, True, True), (False, 3)),       # a cancelled task never runs again
    ((-1, False, False), (False, -1)),
]


@pytest.mark.parametrize("state,expected", DECIDE_ROWS)
def test_retry_decision(state, expected):
    retries_left, retryable, cancelled = state
    assert tuple(retry.decide(retries_left, retryable, cancelled)) == expected


# -------------------------------------------------------------------- classify
ACTOR = ActorIdentity("Counter", "ab" * 8, "Counter(3)")


def _raised(exc):
    try:
        raise exc
    except BaseException as e:
        return e


CLASSIFY_ROWS = [
    # (exception, retry_exceptions, cancel_requested, actor) -> kind, error type, retryable
    (ValueError("x"), False, False, None, APPLICATION_ERROR, ValueError, False),
    (ValueError("x"), True, False, None, APPLICATION_ERROR, ValueError, True),
    (ValueError("x"), [KeyError], False, None, APPLICATION_ERROR, ValueError, False),
    (ValueError("x"), True, False, ACTOR, APPLICATION_ERROR, ValueError, True),
    (KeyboardInterrupt(), True, True, None, CANCELLED, type(None), False),
    (KeyboardInterrupt(), True, False, None, APPLICATION_ERROR, KeyboardInterrupt, False),
    (KeyboardInterrupt(), False, False, ACTOR, CANCELLED, type(None), False),
    (execution.ActorExit(), False, False, ACTOR, ACTOR_EXIT, exceptions.ActorDiedError, False),
    (exceptions.AsyncioActorExit(), True, False, ACTOR, ACTOR_EXIT,
     exceptions.ActorDiedError, False),
    (SystemExit(3), False, False, None, PROCESS_EXIT, exceptions.WorkerCrashedError, True),
    (SystemExit(3), False, False, ACTOR, PROCESS_EXIT, exceptions.ActorDiedError, True),
]


@pytest.mark.parametrize("exc,retry_exc,cancel,actor,kind,err_type,retryable", CLASSIFY_ROWS)
def test_classify(exc, retry_exc, cancel, actor, kind, err_type, retryable):
    f = execution.classify(_raised(exc), "f", 123, retry_exc, cancel, actor)
    assert f.kind == kind
    assert f.retryable is retryable
    if kind == APPLICATION_ERROR:
        assert isinstance(f.error, exceptions.RayTaskError)
        assert isinstance(f.error.cause, err_type)     # get() raises it as this type too
        assert isinstance(f.error.as_instanceof_cause(), err_type)
        assert f.error.pid == 123
        assert "raise exc" in f.error.traceback_str     # the remote traceback
        if actor is not None:
            assert f.error.actor_id == actor.actor_id
    else:
        assert isinstance(f.error, err_type)


class NeedsTwo(Exception):
    def __init__(self, a, b):
        super().__init__(a)


def test_error_blob_of_an_exception_that_does_not_unpickle():
    err = execution.classify(_raised(NeedsTwo(1, 2)), "f", 1).error
    from minray._private.objects import serialization
    loaded = serialization.loads_inline(execution.error_blob(err))
    assert isinstance(loaded, exceptions.RayTaskError)
    assert "NeedsTwo: 1" in str(loaded.cause) and "could not be" in str(loaded.cause)


def test_creation_error_names_the_constructor():
    err = execution.creation_error("A.__init__", _raised(ValueError("no")), "cd" * 8, 7)
    assert isinstance(err, exceptions.ActorDiedError)
    assert "A.__init__()" in str(err) and "no" in str(err)


# ------------------------------------------------------------- calls, returns
@pytest.mark.parametrize("result,n,expected", [
    (5, 1, [5]), ((1, 2), 2, [1, 2]), (None, 0, []), ([1, 2, 3], 3, [1, 2, 3]),
])
def test_store_returns(result, n, expected):
    stored = execution.store_returns("f", result, n, lambda i, v: (i, v))
    assert stored == list(enumerate(expected))


def test_store_returns_names_an_unpicklable_value():
    def store(i, v):
        raise TypeError("cannot pickle lock")
    with pytest.raises(TypeError, match="The return value of f could not be serialized"):
        execution.store_returns("f", 1, 1, store)


def _gen(n, fail_at=None):
    for i in range(n):
        if i == fail_at:
            raise ValueError(i)
        yield i


@pytest.mark.parametrize("n,fail_at,count,err", [(3, None, 3, None), (3, 1, 1, ValueError),
                                                 (0, None, 0, None)])
def test_drain(n, fail_at, count, err):
    items = []
    got, exc = execution.drain(_gen(n, fail_at), lambda i, v: items.append((i, v)))
    assert got == count and items == [(i, i) for i in range(count)]
    assert (exc is None) if err is None else isinstance(exc, err)

    async def agen():
        for v in _gen(n, fail_at):
            yield v
    items.clear()
    got, exc = asyncio.run(execution.drain_async(agen(), lambda i, v: items.append((i, v))))
    assert got == count and items == [(i, i) for i in range(count)]
    assert (exc is None) if err is None else isinstance(exc, err)


def test_drain_passes_the_shells_own_errors_through():
    class Closed(Exception):
        pass

    def emit(i, v):
        raise Closed()
    with pytest.raises(Closed):
        execution.drain(_gen(2), emit, Closed)
    got, exc = execution.drain(_gen(2), emit)       # otherwise it ends the stream
    assert got == 0 and isinstance(exc, Closed)


def test_async_helpers():
    class A:
        async def m(self):
            return 1

    class B:
        def m(self):
            return 2
    assert execution.is_async_class(A) and not execution.is_async_class(B)
    assert asyncio.run(execution.call_async(A().m, (), {})) == 1
    assert asyncio.run(execution.call_async(B().m, (), {})) == 2
    assert type(asyncio.run(execution.construct_async(B, (), {}))) is B
