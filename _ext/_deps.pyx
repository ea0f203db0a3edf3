# cython: language_level=3, boundscheck=False, wraparound=False
"""Dependency counting, compiled. Behaviour documented in the twin,
`deps_py.py` (same names, results, exceptions and messages)."""


cdef class DependencyTable:
    cdef dict _missing
    cdef dict _waiters

    def __init__(self):
        self._missing = {}
        self._waiters = {}

    def __len__(self):
        return len(self._missing)

    def __contains__(self, task):
        return task in self._missing

    def missing(self, task):
        return self._missing.get(task, 0)

    def watch(self, task, oids):
        if task in self._missing:
            raise ValueError(f"task {task!r} is already waiting for its arguments")
        cdef list new = []
        cdef Py_ssize_t count = 0
        cdef set seen = set()
        cdef object waiters
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
                (<list>waiters).append(task)
        if count:
            self._missing[task] = count
        return new

    def resolve(self, oid):
        cdef object waiters = self._waiters.pop(oid, None)
        cdef list ready = []
        cdef object left
        if not waiters:
            return ready
        for task in <list>waiters:
            left = self._missing.get(task)
            if left is None:
                continue
            if <Py_ssize_t>left == 1:
                del self._missing[task]
                ready.append(task)
            else:
                self._missing[task] = <Py_ssize_t>left - 1
        return ready

    def forget(self, task):
        return self._missing.pop(task, None) is not None
