"""The lazy plan and the streaming executor.

    Plan(source, ops) --stages()--> [MapStage | LimitStage | BarrierStage, ...]
    source items (ReadTask or bundle) -> stage -> stage -> ... -> bundles to the consumer

A Dataset is a ``Plan``: a source plus a tuple of logical operators, nothing
runs until a consumer pulls.  ``stream(plan)`` chains one generator per stage;
each yields *bundles* ``(ObjectRef of a block, Meta)``.  Consecutive maps (and
the read that feeds them) fuse into one remote task per block.  A map stage
keeps at most a window of blocks in flight and submits more only as the
consumer pulls: that backpressure is what bounds memory, so a dataset larger
than the object store streams through.  Maps of a callable class run on an
autoscaling pool of actors instead of tasks.  All-to-all operators (sort,
shuffle, repartition, groupby) are barriers: they collect their input bundles
and run their own map/reduce tasks (shuffle.py).

Only public minray API is used: remote functions, actors, put/get/wait/kill.
"""

import collections
import os
import sys
import time

import minray as ray

from . import block as B
from . import transforms as T
from .context import ActorPoolStrategy, DataContext, TaskPoolStrategy
from .heap import retain_freed_blocks

Meta = collections.namedtuple("Meta", "num_rows size_bytes")


class ReadTask:
    """A deferred read: ``fn(*args)`` returns a block; run inside the first map task.

    ``num_rows`` is known up front for some sources (range, from_items), which
    lets ``count()`` skip execution.
    """

    def __init__(self, fn, *args, num_rows=None):
        self.fn, self.args, self.num_rows = fn, args, num_rows

    def __call__(self):
        return self.fn(*self.args)


# ---------------------------------------------------------------- sources
class ReadSource:
    def __init__(self, tasks, name):
        self.tasks, self.name = list(tasks), name

    def items(self):
        return iter(self.tasks)

    def known_rows(self):
        counts = [t.num_rows for t in self.tasks]
        return None if any(c is None for c in counts) else sum(counts)


class LazyReadSource(ReadSource):
    """A ReadSource whose tasks come from ``make_tasks()`` as the executor asks for them
    (read_csv's driver-side scan of each file then overlaps the first tasks' work).
    The tasks of the first complete pass are kept for later executions; ``tasks`` (the
    block count before execution) runs the whole generator at once.

    Example::

        LazyReadSource(lambda: (ReadTask(f, i) for i in range(3)), "ReadX")
    """

    def __init__(self, make_tasks, name):
        self._make, self._tasks, self.name = make_tasks, None, name

    @property
    def produced(self):
        """The tasks of a finished pass, or None before one (never runs the generator)."""
        return self._tasks

    @property
    def tasks(self):
        if self._tasks is None:
            self._tasks = list(self._make())
        return self._tasks

    def items(self):
        return iter(self._tasks) if self._tasks is not None else self._produce()

    def _produce(self):
        done = []
        for task in self._make():
            done.append(task)
            yield task
        self._tasks = done

    def known_rows(self):
        return None if self._tasks is None else super().known_rows()


class RefSource:
    """Already-computed blocks (from_items, from_numpy, a materialized dataset)."""
    name = "InputData"

    def __init__(self, bundles):
        self.bundles = list(bundles)

    def items(self):
        return iter(self.bundles)

    def known_rows(self):
        return sum(m.num_rows for _, m in self.bundles)


class UnionSource:
    name = "Union"

    def __init__(self, plans):
        self.plans = list(plans)

    def items(self):
        for plan in self.plans:
            yield from stream(plan)

    def known_rows(self):
        counts = [p.known_rows() for p in self.plans]
        return None if any(c is None for c in counts) else sum(counts)


# ---------------------------------------------------------------- logical ops
class MapOp:
    def __init__(self, transform, compute=None, remote_args=None):
        self.transform = transform
        self.compute = compute or TaskPoolStrategy()
        self.remote_args = dict(remote_args or {})
        self.name = transform.name

    def preserves_rows(self):
        return isinstance(self.transform, (T.MapRows, T.Project, T.AddColumn)) and type(
            self.transform) is not T.FlatMap and type(self.transform) is not T.Filter


class LimitOp:
    def __init__(self, n):
        self.n, self.name = n, f"Limit[{n}]"


class BarrierOp:
    """An all-to-all operator: ``fn(bundles) -> bundles`` on the driver."""

    def __init__(self, name, fn):
        self.name, self.fn = name, fn


class Plan:
    def __init__(self, source, ops=()):
        self.source, self.ops = source, tuple(ops)

    def with_op(self, op):
        return Plan(self.source, self.ops + (op,))

    def known_rows(self):
        rows = self.source.known_rows()
        if rows is None:
            return None
        for op in self.ops:
            if isinstance(op, LimitOp):
                rows = min(rows, op.n)
            elif isinstance(op, MapOp) and op.preserves_rows():
                continue
            elif isinstance(op, BarrierOp) and op.name.split("(")[0] in (
                    "Repartition", "RandomShuffle", "Sort", "RandomizeBlockOrder"):
                continue
            else:
                return None
        return rows

    def describe(self):
        return " -> ".join([self.source.name] + [op.name for op in self.ops])


# ---------------------------------------------------------------- remote work
def _meta(block):
    return Meta(B.num_rows(block), B.size_bytes(block))


@ray.remote(num_returns=2)
def _map_task(transforms, item, index, heap_cache=0):
    retain_freed_blocks(heap_cache)
    block = item() if isinstance(item, ReadTask) else item
    block = T.apply(transforms, block, index)
    return block, _meta(block)


@ray.remote
class _MapWorker:
    """One actor of a map stage's pool: builds the user's class once, then maps blocks."""

    def __init__(self, transforms, heap_cache=0):
        retain_freed_blocks(heap_cache)
        self.transforms = transforms
        for t in transforms:
            t.setup()

    def ready(self):
        return True

    @ray.method(num_returns=2)
    def run(self, item, index):
        block = item() if isinstance(item, ReadTask) else item
        block = T.apply(self.transforms, block, index)
        return block, _meta(block)


def run_map(transforms, item, index=0, **remote_args):
    """Submit one fused map task; returns (block_ref, meta_ref)."""
    fn = _map_task.options(**remote_args) if remote_args else _map_task
    return fn.remote(transforms, item, index)


# ---------------------------------------------------------------- stages
class Stats:
    """What one execution did, per stage (``Dataset.stats()``)."""

    def __init__(self):
        self.stages = []

    def add(self, name):
        rec = {"name": name, "blocks": 0, "rows": 0, "bytes": 0, "start": time.perf_counter(),
               "wall": 0.0, "actors": 0}
        self.stages.append(rec)
        return rec

    def summary(self):
        if not self.stages:
            return "The dataset has not been executed yet."
        lines = []
        for i, s in enumerate(self.stages, 1):
            lines.append(f"Operator {i} {s['name']}: {s['blocks']} blocks produced in "
                         f"{s['wall']:.3f}s")
            lines.append(f"* Output num rows: {s['rows']} total")
            lines.append(f"* Output size bytes: {s['bytes']} total")
            if s["actors"]:
                lines.append(f"* Actors used: {s['actors']}")
            lines.append("")
        return "\n".join(lines).rstrip()


class ProgressBars:
    """One bar per operator on stderr, redrawn in place; silent unless stderr is a TTY.

        - ReadRange->Map(f): [##########----------] 4/8 blocks, 5000 rows
    """
    WIDTH = 20

    def __init__(self, names, totals):
        ctx = DataContext.get_current()
        self.enabled = bool(ctx.enable_progress_bars and hasattr(sys.stderr, "isatty")
                            and sys.stderr.isatty())
        self.names, self.totals = list(names), list(totals)
        self.rows, self.blocks = [0] * len(names), [0] * len(names)
        self.drawn, self.last = False, 0.0

    def update(self, index, rows):
        self.rows[index] += rows
        self.blocks[index] += 1
        now = time.monotonic()
        if self.enabled and now - self.last > 0.1:
            self.last = now
            self.draw()

    def _line(self, i):
        total, done = self.totals[i], self.blocks[i]
        if total:
            filled = min(self.WIDTH, self.WIDTH * done // total)
            bar = f"[{'#' * filled}{'-' * (self.WIDTH - filled)}] {done}/{total} blocks"
        else:
            bar = f"{done} blocks"
        return f"\r\x1b[K- {self.names[i]}: {bar}, {self.rows[i]} rows\n"

    def draw(self):
        out = [] if not self.drawn else [f"\x1b[{len(self.names)}A"]
        out += [self._line(i) for i in range(len(self.names))]
        sys.stderr.write("".join(out))
        sys.stderr.flush()
        self.drawn = True

    def close(self):
        if self.enabled:
            self.draw()


def _total_cpus(start=True):
    """CPUs of the cluster.  Executing starts a runtime if there is none (as the first
    remote call would); merely building a dataset (``start=False``) never does, so a
    module may create datasets before its ``ray.init(...)``."""
    if not ray.is_initialized():
        if not start:
            return os.cpu_count() or 1
        ray.init()
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


class MapStage:
    """Fused maps: one task (or one actor call) per input block, a bounded window in flight."""

    def __init__(self, ops):
        self.ops = list(ops)
        self.compute = next((op.compute for op in ops if isinstance(op.compute,
                                                                     ActorPoolStrategy)),
                            ops[0].compute if ops else TaskPoolStrategy())
        self.remote_args = {}
        for op in ops:
            self.remote_args.update(op.remote_args)
        self.name = "->".join(op.name for op in ops) or "ReadData"

    def accepts(self, op):
        if not isinstance(op, MapOp):
            return False
        mine = isinstance(self.compute, ActorPoolStrategy)
        theirs = isinstance(op.compute, ActorPoolStrategy)
        if mine and theirs:
            return False
        if theirs or mine:
            return True
        return op.remote_args == self.remote_args and op.compute.size == self.compute.size

    def add(self, op):
        self.ops.append(op)
        if isinstance(op.compute, ActorPoolStrategy):
            self.compute = op.compute
        self.remote_args.update(op.remote_args)
        self.name = "->".join(o.name for o in self.ops)

    def run(self, items, rec, bars, index):
        transforms = [op.transform for op in self.ops]
        per_cpu = DataContext.get_current().max_blocks_in_flight_per_cpu
        if isinstance(self.compute, ActorPoolStrategy):
            runner = _ActorRunner(transforms, self.compute, self.remote_args)
            window = runner.window
        else:
            runner = _TaskRunner(transforms, self.remote_args)
            cpus = self.remote_args.get("num_cpus", 1) or 1
            window = max(2, int(_total_cpus() * per_cpu / max(cpus, 0.25)))
            if self.compute.size:
                window = self.compute.size
        pending = collections.deque()
        try:
            for i, item in enumerate(items):
                source = item if isinstance(item, ReadTask) else item[0]
                pending.append(runner.submit(source, i))
                while len(pending) >= window:
                    yield self._finish(runner, pending.popleft(), rec, bars, index)
            while pending:
                yield self._finish(runner, pending.popleft(), rec, bars, index)
        finally:
            rec["actors"] = getattr(runner, "num_actors", 0)
            runner.shutdown()

    @staticmethod
    def _finish(runner, refs, rec, bars, index):
        block_ref, meta_ref = refs
        meta = ray.get(meta_ref)
        runner.done(refs)
        _record(rec, meta, bars, index)
        return block_ref, meta


def _record(rec, meta, bars, index):
    rec["blocks"] += 1
    rec["rows"] += meta.num_rows
    rec["bytes"] += meta.size_bytes
    rec["wall"] = time.perf_counter() - rec["start"]
    bars.update(index, meta.num_rows)


class _TaskRunner:
    def __init__(self, transforms, remote_args):
        # Put the (possibly closure-heavy) transforms once; each task gets them by ref.
        self.transforms = ray.put(transforms) if transforms else transforms
        self.fn = _map_task.options(**remote_args) if remote_args else _map_task
        self.heap_cache = DataContext.get_current().worker_heap_cache_bytes

    def submit(self, item, index):
        return self.fn.remote(self.transforms, item, index, self.heap_cache)

    def done(self, refs):
        pass

    def shutdown(self):
        pass


class _ActorRunner:
    """An autoscaling actor pool: starts ``min_size`` actors, adds one (up to ``max_size``)
    whenever every running actor already has its quota of blocks in flight.

    Blocks go only to actors whose constructor has finished, so a pool larger than the
    free CPUs degrades to the actors that could start instead of hanging on the rest.
    """

    def __init__(self, transforms, strategy, remote_args):
        args = {"num_cpus": 1}
        args.update(remote_args)
        self.cls = _MapWorker.options(**args)
        self.transforms = transforms
        self.per_actor = strategy.max_tasks_in_flight_per_actor
        self.max_size = strategy.max_size or max(strategy.min_size, _total_cpus())
        self.window = self.max_size * self.per_actor
        self.actors, self.load, self.owner = [], [], {}
        self.starting = {}              # ready ref -> actor index, until the actor is up
        self.running = []               # indexes of actors whose constructor finished
        for _ in range(strategy.initial_size):
            self._add_actor()

    @property
    def num_actors(self):
        return len(self.actors)

    def _add_actor(self):
        actor = self.cls.remote(self.transforms,
                                DataContext.get_current().worker_heap_cache_bytes)
        self.actors.append(actor)
        self.load.append(0)
        self.starting[actor.ready.remote()] = len(self.actors) - 1

    def _poll_started(self, block):
        if not self.starting:
            return
        ready, _ = ray.wait(list(self.starting), num_returns=1 if block else len(self.starting),
                            timeout=None if block else 0)
        for ref in ready:
            ray.get(ref)                # a constructor that raised surfaces here
            self.running.append(self.starting.pop(ref))

    def submit(self, item, index):
        self._poll_started(block=False)
        busy = all(self.load[i] >= self.per_actor for i in self.running)
        if busy and len(self.actors) < self.max_size and not self.starting:
            self._add_actor()
        if not self.running:
            self._poll_started(block=True)
        i = min(self.running, key=self.load.__getitem__)
        refs = self.actors[i].run.remote(item, index)
        self.load[i] += 1
        self.owner[refs[1]] = i
        return refs

    def done(self, refs):
        i = self.owner.pop(refs[1], None)
        if i is not None:
            self.load[i] -= 1

    def shutdown(self):
        for actor in self.actors:
            try:
                ray.kill(actor)
            except Exception:
                pass
        self.actors = []


class LimitStage:
    def __init__(self, n):
        self.n, self.name = n, f"Limit[{n}]"

    def run(self, items, rec, bars, index):
        seen = 0
        if self.n <= 0:
            return
        for block_ref, meta in items:
            if seen + meta.num_rows > self.n:
                keep = self.n - seen
                block_ref, meta_ref = run_map([T.Slice(0, keep)], block_ref)
                meta = ray.get(meta_ref)
            seen += meta.num_rows
            _record(rec, meta, bars, index)
            yield block_ref, meta
            if seen >= self.n:
                return


class BarrierStage:
    def __init__(self, op):
        self.op, self.name = op, op.name

    def run(self, items, rec, bars, index):
        bundles = list(items)
        rec["start"] = time.perf_counter()
        for bundle in self.op.fn(bundles):
            _record(rec, bundle[1], bars, index)
            yield bundle


def build_stages(plan):
    stages = []
    for op in plan.ops:
        if isinstance(op, MapOp):
            if stages and isinstance(stages[-1], MapStage) and stages[-1].accepts(op):
                stages[-1].add(op)
            else:
                stages.append(MapStage([op]))
        elif isinstance(op, LimitOp):
            stages.append(LimitStage(op.n))
        else:
            stages.append(BarrierStage(op))
    if isinstance(plan.source, ReadSource):
        if stages and isinstance(stages[0], MapStage):
            stages[0].name = f"{plan.source.name}->{stages[0].name}"
        else:
            first = MapStage([])
            first.name = plan.source.name
            stages.insert(0, first)
    return stages


def stream(plan, stats=None):
    """Execute ``plan`` lazily: a generator of (block_ref, Meta) bundles, in order."""
    stats = stats if stats is not None else Stats()
    stages = build_stages(plan)
    bars = ProgressBars([s.name for s in stages], _expected_blocks(plan.source, stages))
    items = plan.source.items()
    for i, stage in enumerate(stages):
        items = stage.run(items, stats.add(stage.name), bars, i)
    try:
        yield from items
    finally:
        bars.close()
        items.close() if hasattr(items, "close") else None


def _expected_blocks(source, stages):
    """Blocks each stage will produce, where known up front (maps keep the count)."""
    if isinstance(source, LazyReadSource):      # counting would run its scan up front
        known = len(source.produced or ()) or None
    else:
        known = len(getattr(source, "tasks", getattr(source, "bundles", ())) or ()) or None
    totals = []
    for stage in stages:
        if not isinstance(stage, MapStage):
            known = None
        totals.append(known)
    return totals


def execute(plan, stats=None):
    """Run ``plan`` to completion; returns the list of bundles."""
    return list(stream(plan, stats))
