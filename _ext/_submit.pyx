# cython: language_level=3, boundscheck=False, wraparound=False
"""The submit queue's pump, compiled. Behaviour documented in the twin,
`submit_py.py` (same names and results; the instruction records are the
twin's, so both return the same types)."""

from minray._ext.submit_py import (MAX_LEASE_REQUESTS, PIPELINE_DEPTH, RequestLeases,
                                   SendTask, WithdrawLeases)

__all__ = ["PIPELINE_DEPTH", "MAX_LEASE_REQUESTS", "SendTask", "RequestLeases",
           "WithdrawLeases", "pump"]

cdef Py_ssize_t _DEPTH = PIPELINE_DEPTH
cdef Py_ssize_t _MAX_LEASES = MAX_LEASE_REQUESTS
# Records are made with tuple.__new__: the same NamedTuple, without the cost of
# its Python-level __new__ (about 300 ns on every task otherwise).
cdef object _new = tuple.__new__
cdef object _SendTask = SendTask
cdef object _RequestLeases = RequestLeases
cdef object _WithdrawLeases = WithdrawLeases


cdef bint _all_pipelined(dict inflight):
    for r in inflight.values():
        if not r.pipelined:
            return False
    return True


def pump(q, now):
    cdef list out = []
    cdef object tasks = q.tasks
    cdef list workers = q.workers
    cdef object best, w, rec
    cdef dict inflight
    cdef Py_ssize_t n, best_n, depth, want, left
    while tasks:
        best = None
        best_n = 0
        depth = _DEPTH if tasks[0].pipelined else 1
        for w in workers:
            inflight = <dict>w.inflight
            n = len(inflight)
            if n >= depth or w.returning or w.stealing:
                continue
            if n:
                if best is not None and n >= best_n:
                    continue
                if not _all_pipelined(inflight):
                    continue  # never queue behind a task that may run long
            if best is None or n < best_n:
                best = w
                best_n = n
        if best is None:
            break
        rec = tasks.popleft()
        if rec.cancelled:
            continue
        inflight = <dict>best.inflight
        if not inflight:
            best.last_progress = now
        inflight[rec.task_id] = rec
        best.idle_since = None
        rec.worker = best
        rec.sent_at = now
        out.append(_new(_SendTask, (best, rec)))
    left = len(tasks)
    want = (left if left < _MAX_LEASES else _MAX_LEASES) - <Py_ssize_t>q.lease_requests
    if want > 0:
        q.lease_requests += want
        out.append(_new(_RequestLeases, (q, want, None)))
    elif not left and q.lease_req_ids:
        out.append(_WithdrawLeases(q, list(q.lease_req_ids)))
    return out
