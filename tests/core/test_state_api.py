"""minray.util.state and the `minray list/summary/logs/memory` CLI against real runtimes.

The first tests share one local runtime (ray_module); the CLI tests run a head node
with `minray start --head` and drivers as separate processes, as a user would.
"""
import json
import os

import numpy as np
import pytest

import minray as ray
from minray.util import state
from minray._private.observability import task_events as te

from obs_head import Head, minray_cli


@ray.remote
def square(x):
    return x * x


@ray.remote
def explode():
    raise ValueError("boom from a task")


@ray.remote
def hold(started, release):
    import os
    import time
    open(started, "w").close()
    while not os.path.exists(release):
        time.sleep(0.01)
    return "released"


@ray.remote
class Greeter:
    def hello(self, who):
        print(f"hello {who} from the actor")
        return f"hello {who}"


def test_finished_and_failed_tasks_are_listed(ray_module):
    assert ray.get([square.remote(i) for i in range(3)]) == [0, 1, 4]
    with pytest.raises(ValueError):
        ray.get(explode.remote())
    done = state.list_tasks(filters=[("func_or_class_name", "=", "square")])
    assert len(done) == 3 and {t.state for t in done} == {"FINISHED"}
    assert all(t.type == "NORMAL_TASK" and t.worker_pid and t.node_id for t in done)
    assert done[0]["name"] == "square"                     # dict-style access, as Ray's
    [failed] = state.list_tasks(filters=[("state", "=", "FAILED"),
                                         ("func_or_class_name", "=", "explode")], detail=True)
    assert failed.error_type == "TASK_EXECUTION_EXCEPTION"
    assert "boom from a task" in failed.error_message
    assert failed.start_time_ms <= failed.end_time_ms
    states = [e["state"] for e in failed.events]
    assert states[0] == "PENDING_NODE_ASSIGNMENT" and states[-1] == "FAILED"
    # detail columns stay empty without detail=True, as in Ray
    assert state.list_tasks(filters=[("func_or_class_name", "=", "explode")])[0].events is None


def test_get_task_by_ref_and_limit(ray_module):
    ref = square.remote(7)
    assert ray.get(ref) == 49
    task = state.get_task(ref)
    assert task.state == "FINISHED" and task.task_id == ref.task_id().hex()
    assert state.get_task("00" * 16) is None
    assert len(state.list_tasks(limit=2)) == 2


def test_a_running_task_shows_as_running(ray_module, tmp_path):
    started, release = str(tmp_path / "started"), str(tmp_path / "release")
    ref = hold.remote(started, release)
    from helpers import wait_for_path
    wait_for_path(started)
    # The query makes every process flush its buffered events first: no sleep needed.
    [task] = state.list_tasks(filters=[("func_or_class_name", "=", "hold"),
                                       ("state", "=", "RUNNING")])
    assert task.worker_pid != os.getpid()
    open(release, "w").close()
    assert ray.get(ref) == "released"
    assert state.get_task(ref).state == "FINISHED"


def test_actors_summaries_and_logs(ray_module):
    g = Greeter.remote()
    assert ray.get(g.hello.remote("ann")) == "hello ann"
    actor_id = g._actor_id.hex()
    a = state.get_actor(actor_id)
    assert a.state == "ALIVE" and a.class_name == "Greeter" and a.pid
    assert actor_id in [x.actor_id for x in state.list_actors(filters=[("state", "=", "ALIVE")])]
    summary = state.summarize_actors()["cluster"]
    assert summary["summary"]["Greeter"]["state_counts"]["ALIVE"] >= 1
    tasks = state.summarize_tasks()["cluster"]
    assert tasks["summary"]["Greeter.hello"]["state_counts"] == {"FINISHED": 1}
    assert tasks["summary"]["Greeter.__init__"]["type"] == "ACTOR_CREATION_TASK"
    assert tasks["total_actor_tasks"] >= 1
    text = "".join(state.get_log(actor_id=actor_id))
    assert "hello ann from the actor" in text
    assert any(name.startswith("worker-") for name in state.list_logs()["worker_out"])
    ray.kill(g)
    from helpers import wait_until
    dead = wait_until(lambda: state.get_actor(actor_id).state == "DEAD")
    assert dead
    assert state.get_actor(actor_id, ).state == "DEAD"


def test_objects_nodes_workers_jobs_and_placement_groups(ray_module):
    big = ray.put(np.zeros(300_000))            # 2.4 MB: in shared memory
    small = ray.put("small")
    objs = {o.object_id: o for o in state.list_objects()}
    assert objs[big.hex()].object_size >= 2_400_000
    assert objs[big.hex()].reference_type == "LOCAL_REFERENCE"
    assert objs[small.hex()].type == "DRIVER" and objs[small.hex()].pid == os.getpid()
    assert state.summarize_objects()["cluster"]["total_objects"] >= 2
    [node] = state.list_nodes()
    assert node.state == "ALIVE" and node.is_head_node and node.resources_total["CPU"] == 4
    assert state.get_node(node.node_id).node_ip == node.node_ip
    kinds = {w.worker_type for w in state.list_workers(filters=[("is_alive", "=", True)])}
    assert kinds == {"DRIVER", "WORKER"}
    [job] = state.list_jobs(filters=[("status", "=", "RUNNING")])
    assert job.type == "DRIVER" and job.job_id == ray.get_runtime_context().get_job_id()
    from minray.util import placement_group, remove_placement_group
    pg = placement_group([{"CPU": 1}], name="obs_pg")
    ray.get(pg.ready())
    [row] = state.list_placement_groups(filters=[("name", "=", "obs_pg")], detail=True)
    assert row.state == "CREATED" and row.bundles[0]["unit_resources"] == {"CPU": 1}
    remove_placement_group(pg)
    del big, small


def test_bad_filters_and_limits_say_what_is_wrong(ray_module):
    with pytest.raises(ValueError, match="filter column bogus is not supported"):
        state.list_tasks(filters=[("bogus", "=", 1)])
    with pytest.raises(ValueError, match="predicate"):
        state.list_actors(filters=[("state", ">", "ALIVE")])
    with pytest.raises(ValueError, match="limit"):
        state.list_nodes(limit=-1)
    with pytest.raises(ValueError, match="one of filename"):
        list(state.get_log())


def test_task_table_merges_out_of_order_events_and_retries():
    """The node's merge logic alone (no processes): ordering, retries, eviction."""
    t = te.TaskTable(max_tasks=4)
    worker = {"pid": 11, "worker_id": "w1", "node_id": "n1", "job_id": 1, "kind": "worker"}
    owner = {"pid": 10, "worker_id": "d1", "node_id": "n1", "job_id": 1, "kind": "driver"}
    # The worker's batch arrives before the owner's: the newest event still decides.
    t.apply(worker, [(te.RUNNING, b"a", 2.0, "f", "f", te.NORMAL_TASK, None),
                     (te.ERROR, b"a", 2.1, "TASK_EXECUTION_EXCEPTION", "ValueError: x"),
                     (te.END, b"a", 2.2)])
    t.apply(owner, [(te.SUBMITTED, b"a", 1.0, "f", "f", te.NORMAL_TASK, None, False, None),
                    (te.DISPATCHED, b"a", 1.5, "w1")])
    [row] = t.rows()
    assert row["state"] == "FAILED" and row["worker_pid"] == 11 and row["job_id"] == "00000001"
    # A retry runs it again and it finishes: attempt 1, FINISHED.
    t.apply(worker, [(te.RUNNING, b"a", 3.0, "f", "f", te.NORMAL_TASK, None), (te.END, b"a", 3.5)])
    [row] = t.rows()
    assert row["state"] == "FINISHED" and row["attempt_number"] == 1 and row["error_type"] is None
    # One event per run (RAN); a run a flush already reported as RUNNING is not counted
    # twice, and its ERROR (sent just before) still makes it FAILED.
    t.apply(worker, [(te.RUNNING, b"r", 5.0, "h", "h", te.NORMAL_TASK, None)])
    assert {r["task_id"]: r["state"] for r in t.rows()}[b"r".hex()] == "RUNNING"
    t.apply(worker, [(te.ERROR, b"r", 5.4, "TASK_CANCELLED", "cancelled"),
                     (te.RAN, b"r", 5.5, (5.0, "h", "h", te.NORMAL_TASK, None))])
    r = [r for r in t.rows() if r["task_id"] == b"r".hex()][0]
    assert r["state"] == "FAILED" and r["attempt_number"] == 0 and r["end_time_ms"] == 5500
    assert r["error_type"] == "TASK_CANCELLED"
    for tid in (b"b", b"c", b"d"):
        t.apply(owner, [(te.SUBMITTED, tid, 4.0, "g", "g", te.NORMAL_TASK, None, True, None)])
    # Oldest first by creation time (r started at 5.0, after b, c, d were submitted at 4.0).
    assert [r["task_id"] for r in t.rows()] == [x.hex() for x in (b"b", b"c", b"d", b"r")]
    assert t.rows()[0]["state"] == "PENDING_ARGS_AVAIL" and t.num_dropped == 1
    # Unread batches beyond 4 events per table slot: the oldest go, the counters stay.
    for k in range(5):
        t.apply(worker, [(te.END, bytes([k, j]), 5.0) for j in range(10)])
    assert t.num_events_dropped >= 30
    assert t.counts["finished"] == 1 + 50 and t.counts["failed"] == 2


def test_local_mode_has_no_state_to_report(ray_init):
    ray_init(local_mode=True)
    with pytest.raises(state.StateApiError, match="local_mode"):
        state.list_tasks()


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    h = Head(tmp_path_factory.mktemp("state_cli"))
    yield h
    h.stop()


def test_cli_lists_summarizes_and_prints_logs(head):
    out = head.driver("""
        @ray.remote
        def add(a, b):
            return a + b
        @ray.remote
        def fail():
            raise KeyError("nope")
        @ray.remote
        class Keeper:
            def note(self, text):
                print("keeper noted", text)
                return text
        assert ray.get([add.remote(i, 1) for i in range(4)]) == [1, 2, 3, 4]
        try:
            ray.get(fail.remote())
        except KeyError:
            pass
        k = Keeper.options(name="keeper", lifetime="detached").remote()
        ray.get(k.note.remote("milk"))
        print("ACTOR=" + k._actor_id.hex())
    """)
    [actor_id] = [ln[6:] for ln in out.splitlines() if ln.startswith("ACTOR=")]
    addr = head.session_dir
    res = minray_cli("list", "tasks", "--address", addr, "--filter", "func_or_class_name=add",
                     "--format", "json")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert len(rows) == 4 and {r["state"] for r in rows} == {"FINISHED"}
    res = minray_cli("list", "tasks", "--address", addr, "--filter", "state=FAILED")
    assert res.returncode == 0 and "fail" in res.stdout and "TASK_EXECUTION_EXCEPTION" in res.stdout
    res = minray_cli("list", "tasks", "--address", addr, "--filter", "state!=FINISHED",
                     "--format", "json")
    assert {r["func_or_class_name"] for r in json.loads(res.stdout)} == {"fail"}
    res = minray_cli("list", "actors", "--address", addr, "--filter", "state=ALIVE")
    assert "Keeper" in res.stdout and actor_id in res.stdout
    assert len(json.loads(minray_cli("list", "tasks", "--address", addr, "--limit", "2",
                                     "--format", "json").stdout)) == 2
    res = minray_cli("summary", "tasks", "--address", addr)
    assert "FINISHED: 4" in res.stdout and "add" in res.stdout
    res = minray_cli("summary", "actors", "--address", addr)
    assert "Keeper" in res.stdout and "ALIVE: 1" in res.stdout
    res = minray_cli("get", "actors", actor_id, "--address", addr)
    assert res.returncode == 0 and "state: ALIVE" in res.stdout
    res = minray_cli("logs", "--address", addr, "--actor-id", actor_id)
    assert "keeper noted milk" in res.stdout
    res = minray_cli("logs", "--address", addr)
    assert "worker_out:" in res.stdout
    for what in ("nodes", "jobs", "objects", "placement-groups", "workers"):
        res = minray_cli("list", what, "--address", addr)
        assert res.returncode == 0, (what, res.stderr)
    res = minray_cli("memory", "--address", addr)
    assert res.returncode == 0 and "Object store" in res.stdout
    res = minray_cli("list", "nodes", "--address", addr, "--filter", "bogus=1")
    assert res.returncode == 1 and "not supported" in res.stderr
    res = minray_cli("list", "tasks", "--address", addr, "--filter", "state")
    assert res.returncode == 1 and "KEY=VALUE" in res.stderr
