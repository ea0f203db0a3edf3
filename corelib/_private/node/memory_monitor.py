"""The memory monitor: kill one worker before the node runs out of memory.

    node manager timer (every refresh_ms) -> MemoryMonitor.usage(worker pids)
        used > threshold * total -> pick_victim(candidates) -> the node manager
        records why (so the task fails with OutOfMemoryError, not a plain crash)
        and SIGKILLs that worker; it waits for that process to go before the next

This is Ray's OOM killer: the kernel's would pick the biggest process, which
may be the node manager or the driver; this one only ever kills a worker, the
newest retriable task first (the least work lost; submitters tell the node
manager which running tasks have no retries left), so the driver and the node
manager survive. A killed task is retried while its max_retries allow, then ``get``
raises OutOfMemoryError.

Settings (``init(_system_config={...})`` or Ray's environment variables):

    memory_usage_threshold     RAY_memory_usage_threshold     0.95  fraction of the node
    memory_monitor_refresh_ms  RAY_memory_monitor_refresh_ms  250   0 turns it off
    memory_monitor_capacity_bytes  (minray only)              None  pretend the node has
        this much memory and count as used the memory this node's workers hold
        (unique set size): a budget for the work minray runs (a container's share,
        or a test that must not exhaust the real machine).

``pick_victim`` is pure (plain tuples in, one out) and tested without processes.
"""

import os

from minray._private.lazy import lazy_module

psutil = lazy_module("psutil", globals())   # imported at the first check, after start-up

DEFAULT_THRESHOLD = 0.95
DEFAULT_REFRESH_MS = 250


class Candidate:
    """A worker the monitor may kill."""

    __slots__ = ("key", "is_actor", "retriable", "since")

    def __init__(self, key, is_actor, retriable, since):
        self.key = key                  # what the caller uses to find the worker
        self.is_actor = is_actor
        self.retriable = retriable      # its tasks can be retried / the actor restarted
        self.since = since              # when it got its current work (monotonic)


def pick_victim(candidates):
    """The worker to kill, as Ray's policy: retriable work first (tasks before
    restartable actors), the newest first; then what cannot be retried, tasks
    first, the newest first. None when there is no candidate.

    >>> c = [Candidate("old", False, True, 1.0), Candidate("new", False, True, 2.0),
    ...      Candidate("last", False, False, 3.0), Candidate("actor", True, True, 4.0)]
    >>> pick_victim(c).key
    'new'
    """
    def rank(c):
        return (c.retriable, not c.is_actor, c.since)
    return max(candidates, key=rank, default=None)


class MemoryMonitor:
    def __init__(self, threshold=DEFAULT_THRESHOLD, refresh_ms=DEFAULT_REFRESH_MS,
                 capacity_bytes=None):
        if not 0 < threshold <= 1:
            raise ValueError(f"memory_usage_threshold must be in (0, 1], got {threshold}")
        self.threshold = float(threshold)
        self.refresh_ms = int(refresh_ms)
        self.capacity_bytes = int(capacity_bytes) if capacity_bytes else None
        self.num_kills = 0

    @classmethod
    def from_config(cls, system_config, environ=os.environ):
        """Settings from ``_system_config`` first, then RAY_* variables, then defaults."""
        def setting(name, default, convert):
            if name in system_config:
                return convert(system_config[name])
            env = environ.get("RAY_" + name)
            return convert(env) if env not in (None, "") else default
        return cls(setting("memory_usage_threshold", DEFAULT_THRESHOLD, float),
                   setting("memory_monitor_refresh_ms", DEFAULT_REFRESH_MS, int),
                   setting("memory_monitor_capacity_bytes", None, int))

    @property
    def enabled(self):
        return self.refresh_ms > 0

    def usage(self, worker_pids):
        """(used bytes, total bytes) of the node, or of the budget when one is set."""
        if self.capacity_bytes is None:
            vm = psutil.virtual_memory()
            return vm.total - vm.available, vm.total
        used = 0
        for pid in worker_pids:
            # USS: the memory only this worker holds. RSS would count the pages
            # every worker shares with the worker template once per worker.
            try:
                used += psutil.Process(pid).memory_full_info().uss
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                pass
            except psutil.AccessDenied:
                try:
                    used += psutil.Process(pid).memory_info().rss
                except psutil.Error:
                    pass
        return used, self.capacity_bytes

    def over(self, used, total):
        return used > self.threshold * total

    def describe(self, used, total, pid):
        return (f"the node ran low on memory: {used / 2**20:.0f} MiB used of "
                f"{total / 2**20:.0f} MiB, over the memory monitor's threshold "
                f"({self.threshold:.0%}), so the newest task's worker (pid={pid}) was "
                "killed to keep the node alive. Use less memory per task, lower the "
                "number of tasks running at once (num_cpus=... or memory=... in "
                "options), or raise RAY_memory_usage_threshold.")
