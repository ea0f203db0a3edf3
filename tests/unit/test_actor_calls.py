"""Actor call ordering (core/actor_calls.py) as tables: a queue's state, an
event, the instructions that must come out. No process, socket or clock."""

import pytest

from minray._private.core import actor_calls as ac
from minray._private.core.actor_calls import (ActorQueue, Call, CloseConnection, Connect,
                                              FailCalls, SendCalls)

CONN = "conn-1"


def _queue(state=ac.ALIVE, conn=CONN, address="/tmp/a.sock", pending=(), inflight=(),
           connecting=False, num_restarts=0):
    aq = ActorQueue(b"A")
    aq.state, aq.conn, aq.address, aq.connecting = state, conn, address, connecting
    aq.num_restarts = num_restarts
    for c in pending:
        aq.pending.append(c)
    for c in inflight:
        aq.inflight[c.task_id] = c
    return aq


def _calls(spec):
    """'a' a call, 'a!' one whose args are pending, 'a~' cancelled, 'a3' 3 retries,
    'a@5' sent at 5.0."""
    out = []
    for s in spec:
        c = Call(s[0].encode())
        c.args_pending = "!" in s
        c.cancelled = "~" in s
        if s[1:2].isdigit():
            c.retries_left = int(s[1])
        if "@" in s:
            c.sent_at = float(s.split("@")[1])
        out.append(c)
    return out


def _show(out):
    shown = []
    for i in out:
        if type(i) is SendCalls:
            shown.append(("send", [c.task_id.decode() for c in i.calls]))
        elif type(i) is Connect:
            shown.append(("connect",))
        elif type(i) is CloseConnection:
            shown.append(("close", i.conn))
        elif type(i) is FailCalls:
            shown.append(("fail", [c.task_id.decode() for c in i.calls], i.reason))
        else:
            raise AssertionError(f"unknown instruction {i!r}")
    return shown


PUMP = [
    # (why, queue kwargs, pending, expected, left pending)
    ("connected and alive: send all, in order", {}, "abc", [("send", ["a", "b", "c"])], ""),
    ("order kept: stop at a call waiting for its arguments", {}, ["a", "b!", "c"],
     [("send", ["a"])], "bc"),
    ("cancelled calls are dropped", {}, ["a~", "b"], [("send", ["b"])], ""),
    ("alive, not connected: connect first", {"conn": None}, "ab", [("connect",)], "ab"),
    ("already connecting: wait", {"conn": None, "connecting": True}, "ab", [], "ab"),
    ("restarting: wait for the new incarnation", {"state": ac.RESTARTING, "conn": None},
     "ab", [], "ab"),
    ("state not known yet: wait", {"state": ac.UNKNOWN, "conn": None}, "a", [], "a"),
    ("dead: every call fails with its cause", {"state": ac.DEAD}, "ab",
     [("fail", ["a", "b"], ac.FAIL_DEAD)], ""),
    ("nothing to send", {}, "", [], ""),
]


@pytest.mark.parametrize("why,kw,pending,expected,left", PUMP, ids=[r[0] for r in PUMP])
def test_pump(why, kw, pending, expected, left):
    aq = _queue(pending=_calls(pending), **kw)
    assert _show(ac.pump(aq, now=3.0)) == expected
    assert "".join(c.task_id.decode() for c in aq.pending) == left
    for c in aq.inflight.values():
        assert c.sent_at == 3.0


QUEUED = [
    # (why, queue kwargs, pending before, the new call, expected, left pending)
    ("nothing ahead, connected: it goes at once", {}, "", "x", [("send", ["x"])], ""),
    ("calls ahead: it goes behind them, in order", {}, ["a!"], "x", [], "ax"),
    ("its own arguments pending: it waits", {}, "", "x!", [], "x"),
    ("not connected: connect first, it waits", {"conn": None}, "", "x", [("connect",)], "x"),
    ("restarting: it waits", {"state": ac.RESTARTING, "conn": None}, "", "x", [], "x"),
    ("dead: it fails", {"state": ac.DEAD}, "", "x", [("fail", ["x"], ac.FAIL_DEAD)], ""),
]


@pytest.mark.parametrize("why,kw,pending,call,expected,left", QUEUED,
                         ids=[r[0] for r in QUEUED])
def test_call_queued(why, kw, pending, call, expected, left):
    aq = _queue(pending=_calls(pending), **kw)
    (new,) = _calls([call])
    assert _show(ac.call_queued(aq, new, now=4.0)) == expected
    assert "".join(c.task_id.decode() for c in aq.pending) == left
    if expected and expected[0][0] == "send":
        assert aq.inflight[new.task_id] is new and new.sent_at == 4.0


def test_arguments_resolved_later_keep_the_order():
    aq = _queue()
    a, b, c = _calls(["a", "b!", "c"])
    for call in (a, b, c):
        ac.call_queued(aq, call, now=1.0)
    assert list(aq.inflight) == [b"a"]
    b.args_pending = False
    assert _show(ac.call_queued(aq, None, now=2.0)) == [("send", ["b", "c"])]
    assert list(aq.inflight) == [b"a", b"b", b"c"]


DONE = [
    # (why, inflight, task, retryable, expected call, retried, pending after)
    ("finished", ["a1"], "a", False, "a", False, ""),
    ("application error retry_exceptions matched, retries left: again, first",
     ["a1"], "a", True, None, True, "a"),
    ("retryable but no retries left: finished", ["a0"], "a", True, "a", False, ""),
    ("unknown task: nothing", ["a1"], "z", False, None, False, ""),
]


@pytest.mark.parametrize("why,inflight,task,retryable,call,retried,after", DONE,
                         ids=[r[0] for r in DONE])
def test_call_done(why, inflight, task, retryable, call, retried, after):
    aq = _queue(inflight=_calls(inflight))
    done = ac.call_done(aq, task.encode(), retryable)
    if retried:
        assert done is ac.RETRIED
    else:
        assert (done.task_id.decode() if done is not None else None) == call
    assert "".join(c.task_id.decode() for c in aq.pending) == after


STATE = [
    # (why, queue kwargs, inflight, push (state, address, cause, restarts, died_at),
    #  expected, pending after)
    ("restarting: running call with retries goes back first, connection closed",
     {}, ["a1@5", "b0@5"], (ac.RESTARTING, None, None, 1, 0.0),
     [("close", CONN), ("fail", ["b"], ac.FAIL_DIED_RUNNING)], "a"),
    ("restarted elsewhere: calls sent after it died never ran, resend them",
     {}, ["a0@9"], (ac.ALIVE, "/tmp/b.sock", None, 1, 8.0),
     [("close", CONN), ("connect",)], "a"),
    ("dead with a cause: running calls fail with it",
     {}, ["a3@1"], (ac.DEAD, None, b"cause", 0, 0.0),
     [("close", CONN), ("fail", ["a"], ac.FAIL_DEAD)], ""),
    ("dead without a cause: the restarting message", {}, ["a@1"],
     (ac.DEAD, None, None, 0, 0.0), [("close", CONN), ("fail", ["a"], ac.FAIL_DIED_RUNNING)],
     ""),
    ("alive, same address, same incarnation: nothing lost", {}, ["a@1"],
     (ac.ALIVE, "/tmp/a.sock", None, 0, 0.0), [], ""),
    ("first ALIVE push: connect", {"state": ac.UNKNOWN, "conn": None, "address": None}, [],
     (ac.ALIVE, "/tmp/a.sock", None, 0, 0.0), [("connect",)], ""),
    ("already dead: later pushes change nothing", {"state": ac.DEAD, "conn": None}, [],
     (ac.ALIVE, "/tmp/x.sock", None, 3, 0.0), [], ""),
]


@pytest.mark.parametrize("why,kw,inflight,push,expected,left", STATE,
                         ids=[r[0] for r in STATE])
def test_state_changed(why, kw, inflight, push, expected, left):
    aq = _queue(inflight=_calls(inflight), **kw)
    state, address, cause, restarts, died_at = push
    out = ac.state_changed(aq, state, address, cause, restarts, now=10.0, died_at=died_at)
    assert _show(out) == expected
    assert "".join(c.task_id.decode() for c in aq.pending) == left


def test_retry_spends_one_retry():
    aq = _queue(inflight=_calls(["a2@1"]))
    ac.state_changed(aq, ac.RESTARTING, None, None, 1, now=2.0)
    assert aq.pending[0].retries_left == 1


def test_connection_lifecycle():
    aq = _queue(conn=None)
    assert _show(ac.pump(aq, 0.0)) == [("connect",)] and aq.connecting
    assert ac.connecting_to(aq) == "/tmp/a.sock"
    ac.connect_failed(aq, "/tmp/a.sock")
    assert aq.state == ac.DISCONNECTED and not aq.connecting
    assert ac.connecting_to(aq) is None
    aq.state = ac.ALIVE
    ac.connected(aq, "c2")
    assert aq.conn == "c2" and not aq.connecting
    ac.connection_closed(aq, "other")          # an old connection: ignored
    assert aq.conn == "c2"
    ac.connection_closed(aq, "c2")
    assert aq.conn is None and aq.state == ac.DISCONNECTED


def test_cancel_call():
    a, b = _calls("ab")
    aq = _queue(pending=[a], inflight=[b])
    assert ac.cancel_call(aq, a) == "queued" and not aq.pending
    assert ac.cancel_call(aq, b) == "running"
    assert ac.cancel_call(aq, Call(b"z")) is None


def test_node_lost():
    aq = _queue(pending=_calls("a"), inflight=_calls("b"))
    ac.node_lost(aq, b"blob")
    assert aq.state == ac.DEAD and aq.cause == b"blob" and not aq.pending and not aq.inflight
