"""minray.timeline(): a Chrome trace of task execution per worker."""
import json

import pytest

import minray as ray


@ray.remote
def nap(ms):
    import time
    time.sleep(ms / 1000)
    return ms


@ray.remote
class Clock:
    def tick(self):
        return 1


def test_timeline_file_is_a_chrome_trace_with_every_task(ray_init, tmp_path):
    ray_init(num_cpus=2)
    assert ray.get([nap.remote(20) for _ in range(4)]) == [20] * 4
    clock = Clock.remote()
    assert ray.get(clock.tick.remote()) == 1
    path = tmp_path / "trace.json"
    assert ray.timeline(str(path)) is None
    with open(path) as f:
        doc = json.load(f)                     # parses as JSON ...
    events = doc["traceEvents"]                # ... in Chrome's object format
    naps = [e for e in events if e["name"] == "nap"]
    assert len(naps) == 4
    for e in naps:
        assert e["ph"] == "X" and e["cat"] == "task::normal_task"
        assert isinstance(e["ts"], float) and e["dur"] >= 20_000 * 0.9   # microseconds
        assert e["pid"] == "Node 127.0.0.1" and e["tid"].startswith("worker:")
        assert e["args"]["state"] == "FINISHED" and len(e["args"]["task_id"]) == 32
    # Two CPUs: the naps ran on (at most) two workers, each a row of its own.
    assert 1 <= len({e["tid"] for e in naps}) <= 2
    # One worker never runs two tasks at once: its events do not overlap.
    by_tid = {}
    for e in sorted(naps, key=lambda e: e["ts"]):
        prev = by_tid.get(e["tid"])
        assert prev is None or prev["ts"] + prev["dur"] <= e["ts"] + 1
        by_tid[e["tid"]] = e
    names = {e["name"] for e in events}
    assert {"Clock.__init__", "Clock.tick"} <= names
    # Without a filename: the list of events itself, as Ray returns it.
    listed = ray.timeline()
    assert isinstance(listed, list) and {e["name"] for e in listed} == names


def test_timeline_needs_a_runtime():
    if ray.is_initialized():
        ray.shutdown()
    with pytest.raises(RuntimeError, match="init"):
        ray.timeline()
