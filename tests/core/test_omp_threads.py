"""OMP_NUM_THREADS in workers, as Ray sets it (ray-project/ray#30496, #33891).

- A task or actor sees its whole CPUs, at least one: num_cpus=2 -> "2", the
  default and fractional requests -> "1"; each task sees its own, whatever ran
  on the worker before.
- The user's own setting wins: in the driver's environment, or in runtime_env's
  env_vars.
- Numeric libraries imported by the zygote start no thread pool: numpy's OpenBLAS
  in a default worker adds no thread to the process.
"""

import os
import subprocess
import sys
import textwrap
import time

import pytest

import minray as ray
from minray._private.worker.main import omp_num_threads


def _env():
    return os.environ.get("OMP_NUM_THREADS")


@pytest.mark.parametrize("resources, want", [
    ({"CPU": 1.0}, "1"), ({"CPU": 2.0}, "2"), ({"CPU": 2.5}, "2"), ({"CPU": 0.5}, "1"),
    ({}, "1"), (None, "1"), ({"CPU": 0, "GPU": 1}, "1"),
])
def test_omp_num_threads_rule(resources, want):
    assert omp_num_threads(resources) == want


def test_tasks_and_actors_see_their_cpus(ray_start_regular):
    if "OMP_NUM_THREADS" in os.environ:
        pytest.skip("OMP_NUM_THREADS is set in this environment: workers keep it (tested "
                    "in test_the_users_setting_wins)")
    f = ray.remote(_env)
    # one worker, so that each task runs where the one before it set something else
    got = [ray.get(f.options(num_cpus=n).remote()) for n in (1, 2, 0.5, 1, 2)]
    assert got == ["1", "2", "1", "1", "2"]

    @ray.remote
    class A:
        def env(self):
            return _env()

    assert ray.get(A.remote().env.remote()) == "1"              # actors hold 0 CPUs
    assert ray.get(A.options(num_cpus=2).remote().env.remote()) == "2"
    pinned = f.options(num_cpus=2, runtime_env={"env_vars": {"OMP_NUM_THREADS": "3"}})
    assert ray.get(pinned.remote()) == "3"


def test_the_zygote_imports_numpy_without_a_thread_pool(ray_start_regular):
    # The zygote (every worker's parent) preloads numpy when idle; OpenBLAS would
    # start a thread per CPU there, and the zygote must stay single-threaded to fork.
    if "OMP_NUM_THREADS" in os.environ:
        pytest.skip("OMP_NUM_THREADS is set in this environment")

    @ray.remote
    def zygote_state():
        zygote = os.getppid()
        with open(f"/proc/{zygote}/maps") as f:
            has_numpy = "numpy" in f.read()
        return has_numpy, len(os.listdir(f"/proc/{zygote}/task"))

    deadline = time.monotonic() + 30
    while True:
        has_numpy, threads = ray.get(zygote_state.remote())
        if has_numpy or time.monotonic() > deadline:
            break
        time.sleep(0.05)                    # polling the zygote's state, an event
    assert has_numpy, "the zygote did not preload numpy within 30 s"
    assert threads == 1

    @ray.remote
    class Blas:
        def threads_before_and_after(self):
            import numpy as np
            before = len(os.listdir(f"/proc/{os.getpid()}/task"))
            a = np.ones((300, 300))
            float((a @ a).sum())                            # a BLAS call
            return before, len(os.listdir(f"/proc/{os.getpid()}/task"))

    before, after = ray.get(Blas.remote().threads_before_and_after.remote())
    assert after == before                  # a worker forked after the preload: no pool


def test_the_users_setting_wins(tmp_path):
    script = tmp_path / "omp.py"
    script.write_text(textwrap.dedent("""
        import os, minray as ray
        ray.init(num_cpus=2, include_dashboard=False)
        f = ray.remote(lambda: os.environ.get("OMP_NUM_THREADS"))
        print(ray.get([f.remote(), f.options(num_cpus=2).remote()]))
        ray.shutdown()
    """))
    env = dict(os.environ, OMP_NUM_THREADS="5")
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "['5', '5']"
