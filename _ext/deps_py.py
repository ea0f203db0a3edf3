"""Dependency counting: the pure-Python twin of `_deps.pyx`.

A task waits for the values of its object-ref arguments. The table counts,
per task, the distinct objects it still waits for, and lists, per object,
the tasks waiting for it. When an object's value arrives, `resolve(oid)`
returns the tasks that have nothing left to wait for, in the order they
started waiting, so they run in submission order.

    watch(task, oids)  -> the oids not watched before (subscribe to these)
    resolve(oid)       -> [tasks now ready]
    forget(task)       -> stop counting for a cancelled task

>>> d = DependencyTable()
>>> d.watch("t1", [b"a", b"b", b"a"]), d.watch("t2", [b"b"])
([b'a', b'b'], [])
>>> d.resolve(b"b"), d.resolve(b"a"), len(d)
(['t2'], ['t1'], 0)
"""


class DependencyTable:
    def __init__(self):
        self._missing = {}   # task -> number of distinct objects still missing
        self._waiters = {}   # oid -> [task, ...] in the order they started waiting

    def __len__(self):
        """The number of tasks still waiting."""
        return len(self._missing)

    def __contains__(self, task):
        return task in self._missing

    def missing(self, task):
        """How many distinct objects `task` still waits for (0 if none or unknown)."""
        return self._missing.get(task, 0)

    def watch(self, task, oids):
        """Start counting `task`'s missing objects; return the oids new to the table.

        A task with no oids is not recorded (it is ready). Watching a task
        twice is an error: its count would be wrong.
        """
        if task in self._missing:
            raise ValueError(f"task {task!r} is already waiting for its arguments")
        new = []
        count = 0
        seen = set()
        for oid in oids:
            if oid in seen:
                continue
            seen.add(oid)
            count += 1
            waiters = self._waiters.get(oid)
            if waiters is None:
                self._waiters[oid] = [task]
                new.append(oid)
            else:
                waiters.append(task)
        if count:
            self._missing[task] = count
        return new

    def resolve(self, oid):
        """`oid` has its value: return the tasks that now wait for nothing."""
        waiters = self._waiters.pop(oid, None)
        if not waiters:
            return []
        ready = []
        for task in waiters:
            left = self._missing.get(task)
            if left is None:
                continue   # forgotten (cancelled) meanwhile
            if left == 1:
                del self._missing[task]
                ready.append(task)
            else:
                self._missing[task] = left - 1
        return ready

    def forget(self, task):
        """Stop counting for `task` (cancelled); True if it was waiting."""
        return self._missing.pop(task, None) is not None
