"""pytest-benchmark regression suite: ``pytest bench/ --benchmark-only``.

One benchmark per figure of docs/performance.md, named after ``ray
microbenchmark``'s cases.  Side-by-side numbers against Ray come from
``python -m bench.compare``; these track minray against its own history.
"""
import numpy as np
import pytest

import minray as ray

MiB = 1 << 20


def noop(x=None):
    return x


class Actor:
    def small_value(self, x=None):
        return b"ok"


class AsyncActor:
    async def small_value(self, x=None):
        return b"ok"


@pytest.fixture(scope="module")
def runtime():
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def f(runtime):
    fn = ray.remote(noop)
    ray.get([fn.remote() for _ in range(200)])
    return fn


def test_single_client_tasks_sync(benchmark, f):
    benchmark(lambda: ray.get(f.remote()))


def test_single_client_tasks_async(benchmark, f):
    benchmark.pedantic(lambda: ray.get([f.remote() for _ in range(1000)]), rounds=5)


def test_1_1_actor_calls_sync(benchmark, runtime):
    a = ray.remote(Actor).remote()
    ray.get(a.small_value.remote())
    benchmark(lambda: ray.get(a.small_value.remote()))


def test_1_1_actor_calls_async(benchmark, runtime):
    a = ray.remote(Actor).remote()
    ray.get(a.small_value.remote())
    benchmark.pedantic(lambda: ray.get([a.small_value.remote() for _ in range(1000)]), rounds=5)


def test_1_1_async_actor_calls_async(benchmark, runtime):
    a = ray.remote(AsyncActor).remote()
    ray.get(a.small_value.remote())
    benchmark.pedantic(lambda: ray.get([a.small_value.remote() for _ in range(1000)]), rounds=5)


def test_single_client_put_calls(benchmark, runtime):
    benchmark(lambda: ray.put(b"x" * 100))


def test_single_client_get_calls(benchmark, runtime):
    ref = ray.put(b"x" * 100)
    benchmark(lambda: ray.get(ref))


def test_single_client_put_100mib(benchmark, runtime):
    arr = np.ones(100 * MiB // 8)
    benchmark.pedantic(lambda: ray.put(arr), rounds=5)


@pytest.mark.parametrize("size_mib", [1, 100])
def test_single_client_get_large(benchmark, runtime, size_mib):
    ref = ray.put(np.ones(size_mib * MiB // 8))
    benchmark(lambda: ray.get(ref))


def test_single_client_wait_1k_refs(benchmark, f):
    def run():
        refs = [f.remote() for _ in range(1000)]
        ray.wait(refs, num_returns=1000)
    benchmark.pedantic(run, rounds=5)


def _sum_first(a):
    return float(a[0])


@pytest.mark.parametrize("size_mib", [1, 100])
def test_single_client_pass_large_to_task(benchmark, runtime, size_mib):
    """A stored array passed to a task: zero-copy, so flat in the size."""
    ref = ray.put(np.ones(size_mib * MiB // 8))
    g = ray.remote(_sum_first)
    ray.get(g.remote(ref))
    benchmark(lambda: ray.get(g.remote(ref)))


def test_many_tasks_submitted_then_gathered(benchmark, f):
    """The million-task figure at a fifth of the size (bench.compare runs the full one);
    extra_info holds the driver's memory per pending task."""
    import psutil
    n = 200_000

    def run():
        rss0 = psutil.Process().memory_info().rss
        refs = [f.remote() for _ in range(n)]
        benchmark.extra_info["bytes_per_pending_task"] = \
            (psutil.Process().memory_info().rss - rss0) / n
        ray.get(refs)
    benchmark.pedantic(run, rounds=1)


def test_cold_start(benchmark):
    """New interpreter: import, init, first task result (bench/workloads.py's code)."""
    import subprocess
    import sys
    from bench import workloads
    code = ("import minray as ray\nray.init(num_cpus=2)\n"
            "assert ray.get(ray.remote(lambda: 1).remote()) == 1\nray.shutdown()\n")
    benchmark.pedantic(lambda: subprocess.run([sys.executable, "-c", code], check=True),
                       rounds=3)
    benchmark.extra_info["workload"] = workloads.cold_start_seconds.__doc__


def test_idle_memory(benchmark, runtime):
    """USS of the runtime's processes, idle; the time measured is the reading itself."""
    from bench import workloads
    value, _ = benchmark.pedantic(lambda: workloads.idle_memory_bytes(ray, settle_s=0.5),
                                  rounds=1)
    benchmark.extra_info.update(value)


# -- the compiled hot path against its twins (bench/ext_micro.py) -------------
def _ext_cases():
    from bench import ext_micro
    cases = []
    for name, make in ext_micro.CASES.items():
        for impl in ("compiled", "twin"):
            cases.append(pytest.param(name, impl, make, id=f"{name}-{impl}"))
    return cases


@pytest.mark.parametrize("name,impl,make", _ext_cases())
def test_ext_hot_path_ops(benchmark, name, impl, make):
    import importlib
    module = importlib.import_module(f"minray._ext._{name}" if impl == "compiled"
                                     else f"minray._ext.{name}_py")
    title, fn, ops = make(module)[0]
    benchmark.extra_info["operation"] = title
    benchmark(fn)
