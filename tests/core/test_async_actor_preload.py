"""The zygote loads asyncio only once a node has an async actor (zygote.ON_DEMAND):
an idle runtime does not carry it, and async actors after the first start with it."""

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import sys, time
    import minray as ray

    @ray.remote
    class Probe:
        def asyncio_loaded(self):
            return "asyncio" in sys.modules

    @ray.remote
    class Async:
        async def f(self):
            return 1

    ray.init(num_cpus=2)
    # A fresh worker (each actor gets one) of an idle runtime: no asyncio.
    p = Probe.remote()
    print("before", ray.get(p.asyncio_loaded.remote()))
    ray.kill(p)
    a = Async.remote()
    assert ray.get(a.f.remote()) == 1
    # The zygote imports it when next idle; workers forked after that have it.
    deadline = time.monotonic() + 20
    while True:
        p = Probe.remote()
        loaded = ray.get(p.asyncio_loaded.remote())
        ray.kill(p)
        if loaded or time.monotonic() > deadline:
            break
        time.sleep(0.5)   # the zygote imports only when no fork came for 0.3 s
    print("after", loaded)
    ray.shutdown()
""")


def test_asyncio_is_preloaded_after_the_first_async_actor():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.split()
    assert lines[lines.index("before") + 1] == "False", out.stdout
    assert lines[lines.index("after") + 1] == "True", out.stdout
