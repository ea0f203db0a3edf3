"""The submit queue's decisions (core/submit_queue.py), as tables: a state, an
event, the instructions that must come out. No process, socket or clock.

Each row builds a queue from a compact description:
    workers: {name: [inflight task names]}  ("*" suffix: a pipelined task)
    queued:  [task names waiting in the queue]
"""

import importlib
import random

import pytest

import minray._ext
from minray._ext import submit_py
from minray._private.core import submit_queue as sq
from minray._private.core.submit_queue import (FailTasks, LeasedWorker, RequestLeases,
                                               ReturnLease, SchedulingQueue, SendTask, Steal,
                                               Task, WithdrawLeases)


@pytest.fixture(params=["compiled", "twin"])
def pump(request):
    """sq.pump is the compiled one unless MINRAY_NO_EXTENSIONS=1; the tables run
    on both (the compiled one must be built, as in test_ext_hot_path)."""
    if request.param == "twin":
        return submit_py.pump
    if minray._ext.NO_EXTENSIONS:
        pytest.skip("MINRAY_NO_EXTENSIONS=1: testing the pure-Python twin only")
    try:
        return importlib.import_module("minray._ext._submit").pump
    except ImportError as exc:
        pytest.fail(f"minray._ext._submit is not built ({exc}); run "
                    "`python setup.py build_ext --inplace`", pytrace=False)


def _task(name):
    fast = name.endswith("*")
    return Task(name.rstrip("*").encode(), pipelined=fast, avg_s=0.001 if fast else 0.5)


def _queue(workers=None, queued=(), lease_requests=0, lease_req_ids=()):
    q = SchedulingQueue(("cpu",), {"CPU": 1}, None, None, None)
    for name, inflight in (workers or {}).items():
        w = LeasedWorker(name.encode(), "addr", 1, q)
        for t in map(_task, inflight):
            w.inflight[t.task_id] = t
            t.worker = w
        w.idle_since = None if inflight else 0.0
        q.workers.append(w)
    q.tasks.extend(map(_task, queued))
    q.lease_requests = lease_requests
    q.lease_req_ids = set(lease_req_ids)
    return q


def _show(out):
    """Instructions as comparable tuples of names."""
    shown = []
    for i in out:
        if type(i) is SendTask:
            shown.append(("send", i.worker.worker_id.decode(), i.task.task_id.decode()))
        elif type(i) is RequestLeases:
            shown.append(("lease", i.count, i.node))
        elif type(i) is WithdrawLeases:
            shown.append(("withdraw", sorted(i.req_ids)))
        elif type(i) is ReturnLease:
            shown.append(("return", i.worker.worker_id.decode()))
        elif type(i) is Steal:
            shown.append(("steal", i.worker.worker_id.decode(),
                          [t.decode() for t in i.task_ids], i.overrun.task_id.decode()))
        elif type(i) is FailTasks:
            shown.append(("fail", [t.task_id.decode() for t in i.tasks], i.reason))
        else:
            raise AssertionError(f"unknown instruction {i!r}")
    return shown


PUMP = [
    # (description, workers, queued, lease_requests, expected)
    ("no worker: ask for a lease per task",
     {}, ["a", "b"], 0, [("lease", 2, None)]),
    ("leases already asked for are not asked again",
     {}, ["a", "b"], 2, []),
    ("at most MAX_LEASE_REQUESTS in flight",
     {}, [f"t{i}" for i in range(20)], 10, [("lease", sq.MAX_LEASE_REQUESTS - 10, None)]),
    ("an idle worker takes the head task",
     {"w1": []}, ["a"], 0, [("send", "w1", "a")]),
    ("a slow task goes one at a time: the rest wait for leases",
     {"w1": []}, ["a", "b"], 0, [("send", "w1", "a"), ("lease", 1, None)]),
    ("a busy worker takes no slow task",
     {"w1": ["x"]}, ["a"], 1, []),
    ("pipelined tasks fill one worker up to PIPELINE_DEPTH",
     {"w1": []}, [f"p{i}*" for i in range(10)], 2,
     [("send", "w1", f"p{i}") for i in range(sq.PIPELINE_DEPTH)]),
    ("pipelined tasks go to the least loaded worker",
     {"w1": ["x*", "y*"], "w2": ["z*"]}, ["p*", "q*"], 0,
     [("send", "w2", "p"), ("send", "w1", "q")]),
    ("never behind a task that may run long",
     {"w1": ["slow"], "w2": []}, ["p*", "q*"], 0, [("send", "w2", "p"), ("send", "w2", "q")]),
    ("queue empty with leases outstanding: withdraw them",
     {}, [], 2, "withdraw"),
]


@pytest.mark.parametrize("why,workers,queued,lease_requests,expected", PUMP,
                         ids=[row[0] for row in PUMP])
def test_pump(pump, why, workers, queued, lease_requests, expected):
    ids = {7, 9} if expected == "withdraw" else ()
    q = _queue(workers, queued, lease_requests, ids)
    out = _show(pump(q, now=1.0))
    if expected == "withdraw":
        expected = [("withdraw", [7, 9])]
    assert out == expected
    for i in pump(q, now=1.0):   # a second pump changes nothing already decided
        assert type(i) is not SendTask


def test_pump_records_the_send_on_task_and_worker(pump):
    q = _queue({"w1": []}, ["a"])
    [send] = pump(q, now=5.0)
    assert send.task.worker is send.worker and send.task.sent_at == 5.0
    assert send.worker.inflight == {b"a": send.task}
    assert send.worker.idle_since is None and send.worker.last_progress == 5.0


def test_cancelled_task_is_skipped(pump):
    q = _queue({"w1": []}, ["a", "b"])
    q.tasks[0].cancelled = True
    assert _show(pump(q, 0.0)) == [("send", "w1", "b")]


def test_returning_or_stealing_worker_takes_nothing(pump):
    q = _queue({"w1": [], "w2": ["x*", "y*"]}, ["p*"], lease_requests=1)
    q.workers[0].returning = True
    q.workers[1].stealing = True
    assert pump(q, 0.0) == []


LEASE_REFUSED = [
    (sq.LEASE_NODE_GONE, [("fail", ["a", "b"], sq.LEASE_NODE_GONE)]),
    (sq.LEASE_UNSCHEDULABLE, [("fail", ["a", "b"], sq.LEASE_UNSCHEDULABLE)]),
    (sq.LEASE_DROPPED, []),
    (sq.LEASE_WITHDRAWN, [("lease", 2, None)]),
    (sq.LEASE_FAILED, [("lease", 2, None)]),
]


@pytest.mark.parametrize("reason,expected", LEASE_REFUSED, ids=[r[0] for r in LEASE_REFUSED])
def test_lease_refused(reason, expected):
    q = _queue({}, ["a", "b"], lease_requests=2, lease_req_ids={1, 2})
    sq.lease_answered(q, 1)
    sq.lease_answered(q, 2)
    assert q.lease_requests == 0 and not q.lease_req_ids
    assert _show(sq.lease_refused(q, reason)) == expected
    failed = expected and expected[0][0] == "fail"
    assert len(q.tasks) == (0 if failed else 2)


def test_lease_spilled_asks_the_named_node():
    q = _queue({}, ["a"], lease_requests=1, lease_req_ids={1})
    sq.lease_answered(q, 1)
    assert _show(sq.lease_spilled(q, "tcp://10.0.0.2:7000")) == [
        ("lease", 1, "tcp://10.0.0.2:7000")]
    assert q.lease_requests == 1
    # the spilled request counts: a pump asks for no extra lease meanwhile
    assert sq.pump(q, 0.0) == []


def test_worker_joined_takes_tasks():
    q = _queue({}, ["a", "b"], lease_requests=2)
    w = LeasedWorker(b"w1", "addr", 1, q)
    assert _show(sq.worker_joined(q, w, now=3.0)) == [("send", "w1", "a")]
    assert w in q.workers


DONE = [
    # (why, inflight, retiring, pressure, queued, give back after done)
    ("more work: refill", ["a"], False, False, ["b"], False),
    ("idle, no pressure: keep it (the timer gives it back)", ["a"], False, False, [], False),
    ("idle while others wait for resources: give it back", ["a"], False, True, [], True),
    ("busy still: keep", ["a", "x"], False, True, [], False),
    ("more work under pressure: keep", ["a"], False, True, ["b"], False),
]


@pytest.mark.parametrize("why,inflight,retiring,pressure,queued,give_back", DONE,
                         ids=[r[0] for r in DONE])
def test_task_done(why, inflight, retiring, pressure, queued, give_back):
    q = _queue({"w1": inflight}, queued)
    w = q.workers[0]
    rec = sq.task_done(q, w, b"a", retiring, now=2.0)
    assert rec.task_id == b"a" and w.last_progress == 2.0
    assert w.idle_since == (None if w.inflight else 2.0)
    assert sq.give_back_after_done(q, w, now=2.0,
                                   pressure_until=3.0 if pressure else 0.0) is give_back


def test_retiring_worker_leaves_the_queue():
    q = _queue({"w1": ["a"]}, ["b"])
    w = q.workers[0]
    sq.task_done(q, w, b"a", True, now=1.0)
    assert w.returning and w not in q.workers
    assert sq.pump(q, 1.0) == [RequestLeases(q, 1, None)]


def test_task_done_unknown_task_is_ignored():
    q = _queue({"w1": ["a"]})
    assert sq.task_done(q, q.workers[0], b"zz", False, now=1.0) is None
    assert q.workers[0].last_progress == 0.0


TICK = [
    # (why, inflight, idle_since, last_progress, now, queued, expected)
    ("idle past IDLE_LEASE_S: give back", [], 0.0, 0.0, sq.IDLE_LEASE_S + 0.1, [],
     [("return", "w1")]),
    ("idle, not long enough: keep", [], 0.0, 0.0, sq.IDLE_LEASE_S - 0.1, [], []),
    ("idle but tasks wait (a lease is coming for them): keep", [], 0.0, 0.0, 10.0, ["a"],
     []),
    ("pipelined overrun: steal the tasks behind it", ["a*", "b*", "c*"], None, 0.0,
     sq.STEAL_AFTER_S + 0.01, [], [("steal", "w1", ["b", "c"], "a")]),
    ("pipelined, on time: leave", ["a*", "b*"], None, 0.0, sq.STEAL_AFTER_S / 2, [], []),
    ("one task only: nothing to steal", ["a*"], None, 0.0, 100.0, [], []),
]


@pytest.mark.parametrize("why,inflight,idle_since,last_progress,now,queued,expected", TICK,
                         ids=[r[0] for r in TICK])
def test_tick(why, inflight, idle_since, last_progress, now, queued, expected):
    q = _queue({"w1": inflight}, queued)
    w = q.workers[0]
    w.idle_since, w.last_progress = idle_since, last_progress
    assert _show(sq.tick(q, now)) == expected
    if expected and expected[0][0] == "steal":
        assert w.stealing and sq.tick(q, now + 1) == []   # one steal at a time
    if expected and expected[0][0] == "return":
        assert w.returning and w not in q.workers


def test_steal_waits_longer_for_a_slow_function():
    q = _queue({"w1": ["a*", "b*"]})
    w = q.workers[0]
    w.inflight[b"a"].avg_s = 0.01   # STEAL_FACTOR x 10 ms = 200 ms
    assert sq.tick(q, now=0.1) == []
    assert len(sq.tick(q, now=0.25)) == 1


def test_stolen_tasks_go_back_first_in_order():
    q = _queue({"w1": ["a*", "b*", "c*"], "w2": []}, ["d*"])
    w1, w2 = q.workers
    w1.stealing = True
    out = _show(sq.tasks_stolen(q, w1, [b"b", b"c", b"gone"], now=1.0))
    # w1 is eligible again, but w2 is idle: the least loaded takes each in turn
    assert out == [("send", "w2", "b"), ("send", "w1", "c"), ("send", "w2", "d")]
    assert not w1.stealing


def test_idle_worker_is_no_longer_stolen_from():
    # The steal's answer never came (every task it named had started): once the
    # worker has finished them all, it takes queued tasks again instead of
    # sitting out of pump while holding its lease (the queue would then wait
    # for leases the node manager cannot grant: a hang).
    q = _queue({"w1": ["a*", "b*"]}, ["c*"])
    w1 = q.workers[0]
    w1.stealing = True
    assert sq.task_done(q, w1, b"a", False, now=1.0).task_id == b"a"
    assert w1.stealing                     # b may still come back as STOLEN
    sq.task_done(q, w1, b"b", False, now=1.1)
    assert not w1.stealing
    assert _show(sq.pump(q, 1.2))[0] == ("send", "w1", "c")
    assert _show(sq.tasks_stolen(q, w1, [b"b"], now=1.3)) == []   # a late answer


def test_return_lease_only_when_idle():
    q = _queue({"w1": ["a"], "w2": []})
    w1, w2 = q.workers
    assert sq.return_lease(q, w1) == []
    assert _show(sq.return_lease(q, w2)) == [("return", "w2")]
    assert sq.return_lease(q, w2) == []   # once
    assert _show(sq.revoke_idle(_queue({"w1": [], "w2": ["x"]}))) == [("return", "w1")]


def test_worker_lost_hands_back_its_tasks():
    q = _queue({"w1": ["a", "b"], "w2": []})
    w1 = q.workers[0]
    assert [t.task_id for t in sq.worker_lost(q, w1)] == [b"a", b"b"]
    assert w1 not in q.workers and not w1.inflight


def test_cancel_queued():
    q = _queue({}, ["a", "b"])
    a = q.tasks[0]
    assert sq.cancel_queued(q, a) and not sq.cancel_queued(q, a)
    assert [t.task_id for t in q.tasks] == [b"b"]


def _random_queue(seed):
    rng = random.Random(seed)
    spec = {f"w{i}": [f"x{i}{j}" + ("*" if rng.random() < 0.7 else "")
                      for j in range(rng.randrange(0, 4))]
            for i in range(rng.randrange(0, 4))}
    queued = [f"t{i}" + ("*" if rng.random() < 0.7 else "") for i in range(rng.randrange(30))]
    q = _queue(spec, queued, rng.randrange(0, 20), {1, 2} if rng.random() < 0.5 else ())
    for w in q.workers:
        w.returning = rng.random() < 0.1
        w.stealing = rng.random() < 0.1
    for t in q.tasks:
        t.cancelled = rng.random() < 0.05
    return q


def test_pump_twins_agree_on_random_queues():
    """Parity on random states: same sends, same lease traffic, same state after."""
    if minray._ext.NO_EXTENSIONS:
        pytest.skip("MINRAY_NO_EXTENSIONS=1: testing the pure-Python twin only")
    compiled = importlib.import_module("minray._ext._submit").pump
    for seed in range(300):
        results = []
        for impl in (compiled, submit_py.pump):
            q = _random_queue(seed)
            out = _show(impl(q, 1.0))
            results.append((out, q.lease_requests, [t.task_id for t in q.tasks],
                            [sorted(w.inflight) for w in q.workers]))
        assert results[0] == results[1], seed
