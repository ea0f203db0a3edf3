"""Every frame the runtime sends matches its documented record in protocol.py.

A real workload (tasks, nested tasks, actors, objects small and large, a streaming
generator, a placement group, cancel) runs while every process records the frames
it encodes (transport.record_frames: in this driver directly, in the node manager
and the workers through MINRAY_DEBUG_RECORD_FRAMES, which they inherit). Then
each message is checked against protocol.RECORDS: its kind is known, its arity
is the record's, and the cheap-to-check field types hold.
"""

import time

import pytest

import minray as ray
from minray._private.net import protocol as P
from minray._private.net import transport

# field name -> the types a value may have (checked where cheap and certain).
FIELD_TYPES = {
    "req_id": int, "method": str, "event": str, "ok": bool, "task_id": bytes,
    "fn_id": bytes, "client_id": bytes, "recursive": bool, "index": int, "flags": int,
    "results": list, "task_ids": list, "retryable": bool, "oid": bytes, "owner": bytes,
}
# (REQUEST and NOTICE: the node manager accepts only a tuple of arguments.)
ARGS_TUPLE = {P.REQUEST, P.NOTICE}


def check_message(kind, msg):
    """The problems with one recorded message (empty when it matches its record)."""
    record = P.RECORDS.get(kind)
    if record is None:
        return [f"unknown kind {kind}"]
    name = P.KIND_NAMES[kind]
    if type(msg) is not tuple:   # a record on the wire would cost 13x to pickle
        return [f"{name}: a {type(msg).__name__}, not a plain tuple"]
    if len(msg) != len(record._fields):
        return [f"{name}: {len(msg)} fields, the record {record.__name__} has "
                f"{len(record._fields)} {record._fields}: {msg!r:.200}"]
    problems = []
    for field, value in zip(record._fields, msg):
        want = FIELD_TYPES.get(field)
        if want is not None and not isinstance(value, want):
            problems.append(f"{name}.{field} is {type(value).__name__}: {value!r:.80}")
    if kind in ARGS_TUPLE and type(msg[-1]) is not tuple:
        problems.append(f"{name}.args is {type(msg[-1]).__name__}, not a tuple")
    if kind in (P.TASK, P.ACTOR_CALL):
        opts = msg[record._fields.index("opts")]
        if not isinstance(opts, tuple) or len(opts) != len(P.OptionsWire._fields):
            problems.append(f"{name}.opts does not match OptionsWire: {opts!r:.120}")
    return problems


def test_checker_catches_drift():
    assert check_message(P.DONE, (b"t", [], [], False, 0)) == []
    assert check_message(P.DONE, (b"t", [], [])) != []           # the old 3 fields
    assert check_message(P.REQUEST, (1, 2, ())) != []            # method not a str
    assert check_message(99, ()) != []
    assert check_message(P.REQUEST, P.Request(1, "ping", ())) != []   # a record, not a tuple
    assert check_message(P.NOTICE, ("m", [1])) != []
    # A record names the fields of a received message.
    assert P.Done._make((b"t", [b"r"], [False], True, 0)).retryable is True


def _workload(tmp_path):
    @ray.remote
    def add(a, b):
        return a + b

    @ray.remote
    def nested(x):
        return ray.get(add.remote(x, 1)) + 1

    @ray.remote(num_returns="streaming")
    def gen(n):
        for i in range(n):
            yield i

    @ray.remote
    class Counter:
        def __init__(self):
            self.n = 0

        def incr(self, k=1):
            self.n += k
            return self.n

        def slow(self, path):
            deadline = time.monotonic() + 30
            while not (tmp_path / path).exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            return "slow"

    @ray.remote
    def sleeper():
        time.sleep(60)

    big = ray.put(b"x" * (2 << 20))
    assert ray.get(add.remote(1, 2)) == 3
    assert ray.get(nested.remote(1)) == 3
    assert len(ray.get(add.remote(big, b"y"))) == (2 << 20) + 1
    assert [ray.get(r) for r in gen.remote(3)] == [0, 1, 2]
    c = Counter.remote()
    assert ray.get([c.incr.remote() for _ in range(3)]) == [1, 2, 3]
    # Cancel an actor call queued behind a slow one (a CANCEL frame to the actor).
    first = c.slow.remote("go")
    queued = c.incr.remote(10)
    ray.cancel(queued)
    (tmp_path / "go").touch()
    assert ray.get(first) == "slow"
    try:   # cancelled, or already run: either way the CANCEL frame went out
        ray.get(queued, timeout=30)
    except ray.exceptions.TaskCancelledError:
        pass
    # Cancel a running task.
    s = sleeper.remote()
    ray.wait([s], timeout=0.5)
    ray.cancel(s, force=True)
    with pytest.raises((ray.exceptions.TaskCancelledError, ray.exceptions.WorkerCrashedError)):
        ray.get(s, timeout=30)
    from minray.util.placement_group import placement_group, remove_placement_group
    from minray.util.scheduling_strategies import PlacementGroupSchedulingStrategy
    pg = placement_group([{"CPU": 1}])
    assert pg.wait(30)
    strategy = PlacementGroupSchedulingStrategy(placement_group=pg)
    assert ray.get(add.options(scheduling_strategy=strategy).remote(2, 2)) == 4
    remove_placement_group(pg)
    ray.kill(c)


def test_every_sent_frame_matches_its_record(tmp_path, monkeypatch, shutdown_only):
    frames_dir = str(tmp_path / "frames")
    monkeypatch.setenv("MINRAY_DEBUG_RECORD_FRAMES", frames_dir)
    plain = transport._encode
    transport.record_frames(frames_dir)
    try:
        ray.init(num_cpus=2)
        _workload(tmp_path)
        ray.shutdown()
    finally:
        transport._encode = plain
    frames = transport.read_recorded_frames(frames_dir)
    pids = {pid for pid, _, _ in frames}
    assert len(pids) >= 3, "expected frames from the driver, the node manager and workers"
    problems = sorted({p for _, kind, msg in frames for p in check_message(kind, msg)})
    assert not problems, "\n".join(problems)
    seen = {P.KIND_NAMES[kind] for _, kind, _ in frames}
    expected = {"REQUEST", "REPLY", "NOTICE", "PUSH", "HELLO", "TASK", "ACTOR_CALL",
                "DONE", "GEN_ITEM", "CANCEL"}
    assert expected <= seen, expected - seen
