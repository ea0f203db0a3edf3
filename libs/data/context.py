"""DataContext and the compute strategies: the knobs of the executor.

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False          # quiet, even on a terminal
    ds.map_batches(Model, compute=ray.data.ActorPoolStrategy(min_size=1, max_size=4))
"""


class DataContext:
    """Process-wide execution settings (``DataContext.get_current()``).

    Example::

        ctx = ray.data.DataContext.get_current()
        ctx.target_max_block_size = 64 * 1024 * 1024
    """
    _current = None

    def __init__(self):
        self.target_max_block_size = 128 * 1024 * 1024
        self.target_min_block_size = 1 * 1024 * 1024
        self.read_op_min_num_blocks = 200
        self.enable_progress_bars = True
        self.max_blocks_in_flight_per_cpu = 2   # the streaming window: bounds memory in flight
        # minray only: freed memory a map worker keeps for its next block instead of
        # returning it to the OS and faulting it in again (heap.py); 0 turns it off.
        self.worker_heap_cache_bytes = 512 * 1024 * 1024
        self.execution_options = ExecutionOptions()
        self.use_push_based_shuffle = False
        self.verbose_stats_logs = False

    @classmethod
    def get_current(cls):
        if cls._current is None:
            cls._current = cls()
        return cls._current

    @classmethod
    def _set_current(cls, ctx):
        cls._current = ctx


class ExecutionOptions:
    """Accepted for compatibility; ``preserve_order`` is always honoured (output is ordered)."""

    def __init__(self):
        self.preserve_order = True
        self.locality_with_output = False
        self.verbose_progress = False
        self.resource_limits = None


class ComputeStrategy:
    pass


class TaskPoolStrategy(ComputeStrategy):
    """Run a map as stateless tasks, at most ``size`` at a time (None: as many as CPUs allow).

    Example::

        ds.map_batches(fn, compute=ray.data.TaskPoolStrategy(size=2))
    """

    def __init__(self, size=None):
        if size is not None and (not isinstance(size, int) or size < 1):
            raise ValueError(f"TaskPoolStrategy size must be a positive int, got {size!r}.")
        self.size = size

    def __repr__(self):
        return f"TaskPoolStrategy(size={self.size})"


class ActorPoolStrategy(ComputeStrategy):
    """Run a map on a pool of actors: a fixed ``size`` or autoscaling ``min_size..max_size``.

    Example::

        ds.map_batches(Model, compute=ray.data.ActorPoolStrategy(size=2))
        ds.map_batches(Model, compute=ray.data.ActorPoolStrategy(min_size=1, max_size=4))
    """

    def __init__(self, *, size=None, min_size=None, max_size=None,
                 max_tasks_in_flight_per_actor=None, initial_size=None):
        if size is not None:
            if min_size is not None or max_size is not None:
                raise ValueError("Give either size or min_size/max_size to ActorPoolStrategy, "
                                 "not both.")
            min_size = max_size = size
        min_size = 1 if min_size is None else min_size
        for label, v in (("min_size", min_size), ("max_size", max_size)):
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ValueError(f"ActorPoolStrategy {label} must be a positive int, got {v!r}.")
        if max_size is not None and max_size < min_size:
            raise ValueError(f"ActorPoolStrategy min_size ({min_size}) must be <= max_size "
                             f"({max_size}).")
        self.min_size = min_size
        self.max_size = max_size
        self.initial_size = initial_size or min_size
        self.max_tasks_in_flight_per_actor = max_tasks_in_flight_per_actor or 2

    @property
    def size(self):
        return self.min_size if self.min_size == self.max_size else None

    def __repr__(self):
        return f"ActorPoolStrategy(min_size={self.min_size}, max_size={self.max_size})"


def resolve_compute(fn_is_class, compute, concurrency):
    """Turn map_batches' ``compute`` / ``concurrency`` arguments into a strategy."""
    if compute is not None and concurrency is not None:
        raise ValueError("Give either compute or concurrency to map_batches, not both.")
    if compute == "actors":
        compute = ActorPoolStrategy()
    elif compute == "tasks":
        compute = TaskPoolStrategy()
    if compute is not None:
        if not isinstance(compute, ComputeStrategy):
            raise ValueError(f"compute must be an ActorPoolStrategy or TaskPoolStrategy, got "
                             f"{compute!r}.")
        if fn_is_class and isinstance(compute, TaskPoolStrategy):
            raise ValueError("A callable class runs on actors: use concurrency=n or "
                             "compute=ActorPoolStrategy(...), not TaskPoolStrategy.")
        return compute
    if concurrency is None:
        if fn_is_class:
            raise ValueError("``concurrency`` must be specified when using a callable class, "
                             "e.g. map_batches(MyClass, concurrency=2) for a pool of 2 actors.")
        return TaskPoolStrategy()
    if isinstance(concurrency, tuple):
        if len(concurrency) != 2:
            raise ValueError(f"concurrency must be an int or a (min, max) tuple, got "
                             f"{concurrency!r}.")
        if not fn_is_class:
            return TaskPoolStrategy(size=concurrency[1])
        return ActorPoolStrategy(min_size=concurrency[0], max_size=concurrency[1])
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive int or a (min, max) tuple, got "
                         f"{concurrency!r}.")
    return ActorPoolStrategy(size=concurrency) if fn_is_class else TaskPoolStrategy(concurrency)
