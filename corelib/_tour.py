"""``minray demo``: a guided tour of the core, a few seconds long.

    TOUR = [Step(title, shows, run), ...]  ->  for each step: print its title and what it
    shows, run it, print the lines it returns (the evidence)  ->  a pointer to the tutorials

Each step uses only the public API, as a user's script would, and returns the lines it
prints, so the tour reads as a sequence of small claims each followed by its proof.
``tests/core/test_cli.py`` checks the figures (sums, orders, flags) in its output.
"""

import os
import textwrap
import time
from typing import Callable, List, NamedTuple


class Step(NamedTuple):
    title: str
    shows: str                       # what the step demonstrates, in one or two sentences
    run: Callable[[dict], List[str]]  # takes the tour's shared state, returns result lines


def _ms(seconds):
    return f"{seconds * 1000:.0f} ms"


def _start(state):
    import minray as ray
    t0 = time.perf_counter()
    ray.init(num_cpus=state["num_cpus"])
    cpus = ray.cluster_resources().get("CPU", 0)
    return [f"minray {ray.__version__}: a local runtime started in "
            f"{_ms(time.perf_counter() - t0)} with {cpus:g} CPUs "
            f"(driver pid {os.getpid()})"]


def _tasks(state):
    import minray as ray

    @ray.remote
    def square(x):
        return x * x

    @ray.remote
    def nap(seconds):
        time.sleep(seconds)
        return os.getpid()

    t0 = time.perf_counter()
    squares = ray.get([square.remote(i) for i in range(100)])
    t_squares = time.perf_counter() - t0
    workers = max(1, min(4, int(ray.cluster_resources().get("CPU", 1))))
    t0 = time.perf_counter()
    pids = ray.get([nap.remote(0.25) for _ in range(workers)])
    t_naps = time.perf_counter() - t0
    return [f"100 tasks squared 0..99 -> sum {sum(squares)} in {_ms(t_squares)}",
            f"{workers} tasks that each sleep 250 ms finished together in {_ms(t_naps)}, "
            f"in {len(set(pids))} worker processes (not the driver)"]


def _objects(state):
    import numpy as np

    import minray as ray

    @ray.remote
    def column_means(matrix):
        return matrix.mean(axis=0)

    big = np.arange(2048 * 4096, dtype=np.float64).reshape(2048, 4096)
    t0 = time.perf_counter()
    ref = ray.put(big)
    t_put = time.perf_counter() - t0
    t0 = time.perf_counter()
    view = ray.get(ref)
    t_get = time.perf_counter() - t0
    means = ray.get(column_means.remote(ref))
    ok = bool(np.allclose(means, big.mean(axis=0)))
    state["ok"] = state["ok"] and ok
    return [f"put a {big.nbytes / 2**20:.0f} MiB array in {_ms(t_put)}; get returned a "
            f"zero-copy read-only view in {t_get * 1000:.2f} ms "
            f"(writeable={view.flags.writeable})",
            f"a task given the ref computed the column means from shared memory: "
            f"{'correct' if ok else 'WRONG'}"]


def _wait(state):
    import minray as ray

    @ray.remote
    def sleepy(seconds):
        time.sleep(seconds)
        return seconds

    pending = [sleepy.remote(s) for s in (0.3, 0.05, 0.15)]
    order = []
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        order.append(ray.get(done[0]))
    return [f"submitted sleeps of 0.3, 0.05, 0.15 s; wait() handed them back as they "
            f"finished: {order}"]


def _actors(state):
    import minray as ray

    @ray.remote
    class Counter:
        def __init__(self):
            self.count = 0

        def add(self, n):
            self.count += n
            return self.count, os.getpid()

    counter = Counter.remote()
    for i in range(10):
        counter.add.remote(i)
    total, pid = ray.get(counter.add.remote(0))
    return [f"a Counter actor (pid {pid}) summed 0..9 in call order -> {total}"]


def _errors(state):
    import minray as ray

    @ray.remote
    def fails():
        raise ValueError("raised inside a worker")

    try:
        ray.get(fails.remote())
    except ValueError as exc:
        lines = str(exc).splitlines()
        return [f"get() re-raised the task's error as {type(exc).__name__} (still a "
                f"ValueError), with the remote traceback ({len(lines)} lines) ending in: "
                f"{lines[-1]}"]
    state["ok"] = False
    return ["WRONG: the task's error was not raised"]


def _data(state):
    import minray as ray
    ds = ray.data.range(10_000, override_num_blocks=8)
    doubled = ds.map_batches(lambda batch: {"id": batch["id"] * 2})
    t0 = time.perf_counter()
    total = doubled.sum("id")
    return [f"range(10000) -> map_batches(x2) -> sum over 8 blocks = {total} "
            f"in {_ms(time.perf_counter() - t0)}"]


def _pool(state):
    from minray.util.multiprocessing import Pool
    with Pool(processes=2) as pool:
        out = pool.map(abs, range(-5, 5))
    return [f"Pool(2).map(abs, range(-5, 5)) on two actors -> {out}"]


TOUR = [
    Step("Start a runtime",
         "ray.init() starts a node manager and a pool of worker processes on this machine; "
         "the script that called it is the driver.", _start),
    Step("Tasks",
         "@ray.remote turns a function into tasks that run in worker processes, in "
         "parallel; .remote() returns an ObjectRef at once and ray.get() waits for values.",
         _tasks),
    Step("Objects",
         "ray.put() stores a value once; large arrays live in shared memory, so get() and "
         "tasks on this node read them without copying.", _objects),
    Step("wait()",
         "ray.wait() returns refs as they finish, so a driver can use the first results "
         "while the rest still run.", _wait),
    Step("Actors",
         "@ray.remote on a class starts a process holding one instance; its methods run "
         "there one at a time, in the order each caller sent them.", _actors),
    Step("Errors",
         "an exception in a task comes back from get(), with its original type and the "
         "worker's traceback.", _errors),
    Step("Libraries: Data",
         "minray.data streams blocks through tasks: a lazy plan runs when consumed.", _data),
    Step("Ecosystem: multiprocessing.Pool",
         "minray.util.multiprocessing.Pool is multiprocessing.Pool on actors (joblib and "
         "dask have drop-ins too).", _pool),
]


def run_tour(num_cpus=None, out=print):
    """Run every step, printing what it shows and what it found; 0 if all checks held.

    Example::

        from minray._tour import run_tour
        run_tour(num_cpus=4)
    """
    import minray as ray
    state = {"num_cpus": num_cpus, "ok": True}
    out(f"minray demo: a guided tour in {len(TOUR)} steps. Each says what it shows, "
        f"then what happened.")
    started = time.perf_counter()
    try:
        for number, step in enumerate(TOUR, 1):
            out("")
            out(textwrap.fill(f"[{number}/{len(TOUR)}] {step.title}: {step.shows}",
                              width=92, subsequent_indent="      "))
            for line in step.run(state):
                out(textwrap.fill(line, width=92, initial_indent="      -> ",
                                  subsequent_indent="         "))
    finally:
        ray.shutdown()
    out("")
    out(f"done in {time.perf_counter() - started:.1f} s: the runtime shut down and removed "
        f"its processes and shared memory.")
    out("Next: docs/tutorials/README.md (the \"Learning Ray\" chapters) and "
        "docs/examples/ (each chapter as a script).")
    return 0 if state["ok"] else 1
