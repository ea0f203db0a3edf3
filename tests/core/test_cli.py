"""The minray command: demo, and a head node that outlives its drivers."""
import os
import subprocess
import sys
import textwrap

import psutil
import pytest


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kw)


def test_demo_is_a_guided_tour_of_tasks_objects_actors_errors_and_libraries():
    out = run([sys.executable, "-m", "minray.scripts", "demo"])
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())                    # undo the tour's line wrapping
    steps = [line for line in out.stdout.splitlines() if line.startswith("[")]
    assert [s.split("]")[0] for s in steps] == [f"[{i}/8" for i in range(1, 9)]
    assert all(": " in s for s in steps)                   # each step says what it shows
    assert "sum 328350" in text                            # 100 squared tasks
    assert "in call order -> 45" in text                   # the actor's ordered calls
    assert "writeable=False" in text and "correct" in text
    assert "ValueError: raised inside a worker" in text
    assert "handed them back as they finished: [" in text
    assert "sum over 8 blocks = 99990000" in text          # minray.data
    assert "-> [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]" in text    # the Pool
    assert "the runtime shut down" in text


@pytest.fixture
def head_node(tmp_path):
    temp_dir = str(tmp_path / "sessions")
    out = run([sys.executable, "-m", "minray.scripts", "start", "--head", "--num-cpus", "2",
               "--temp-dir", temp_dir])
    assert out.returncode == 0, out.stderr
    yield temp_dir
    stop = run([sys.executable, "-m", "minray.scripts", "stop", "--temp-dir", temp_dir])
    assert "stopped 1 node" in stop.stdout


DRIVER_1 = textwrap.dedent("""
    import os, minray as ray
    ray.init(address="auto", namespace="lab", _temp_dir={temp!r})
    @ray.remote
    class Keeper:
        def __init__(self):
            self.value = 0
        def incr(self):
            self.value += 1
            return self.value, os.getpid()
    @ray.remote
    class Scratch:
        def pid(self):
            return os.getpid()
    keeper = Keeper.options(name="keeper", lifetime="detached").remote()
    scratch = Scratch.options(name="scratch").remote()
    print(ray.get(keeper.incr.remote())[1], ray.get(scratch.pid.remote()))
""")

DRIVER_2 = textwrap.dedent("""
    import minray as ray
    ray.init(address="auto", namespace="lab", _temp_dir={temp!r})
    keeper = ray.get_actor("keeper")
    value, pid = ray.get(keeper.incr.remote())
    try:
        ray.get_actor("scratch")
        scratch = "alive"
    except ValueError:
        scratch = "gone"
    print(value, pid, scratch, ray.cluster_resources()["CPU"])
""")


@pytest.mark.slow
def test_detached_actor_outlives_its_driver_on_a_head_node(head_node):
    env = dict(os.environ, RAY_ADDRESS="")
    first = run([sys.executable, "-c", DRIVER_1.format(temp=head_node)], env=env)
    assert first.returncode == 0, first.stderr
    keeper_pid, scratch_pid = map(int, first.stdout.split())
    # The first driver has exited: its non-detached actor went with it ...
    try:
        psutil.Process(scratch_pid).wait(timeout=10)
    except psutil.NoSuchProcess:
        pass                                  # gone already
    # ... while the detached one keeps its state for the next driver.
    second = run([sys.executable, "-c", DRIVER_2.format(temp=head_node)], env=env)
    assert second.returncode == 0, second.stderr
    value, pid, scratch, cpus = second.stdout.split()
    assert (int(value), int(pid), scratch, float(cpus)) == (2, keeper_pid, "gone", 2.0)
    status = run([sys.executable, "-m", "minray.scripts", "status", "--temp-dir", head_node])
    assert "Keeper" in status.stdout and " 0.0/2.0 CPU" in status.stdout.splitlines()


def test_status_without_a_node_says_how_to_start_one(tmp_path):
    out = run([sys.executable, "-m", "minray.scripts", "status", "--temp-dir", str(tmp_path)])
    assert out.returncode == 1
    assert "minray start --head" in out.stdout
