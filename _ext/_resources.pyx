# cython: language_level=3, boundscheck=False, wraparound=False
"""Resource accounting, compiled. Behaviour documented in the twin,
`resources_py.py` (same names, results and exceptions)."""

EPS = 1e-9
cdef double _EPS = 1e-9


cpdef bint fits(dict available, dict request) except -1:
    cdef double v
    for k, value in request.items():
        v = value
        if v > _EPS and <double>available.get(k, 0.0) + _EPS < v:
            return False
    return True


cpdef subtract(dict available, dict request):
    cdef double v
    for k, value in request.items():
        v = value
        if v != 0.0:
            available[k] = <double>available.get(k, 0.0) - v


cpdef add(dict available, dict request):
    cdef double v
    for k, value in request.items():
        v = value
        if v != 0.0:
            available[k] = <double>available.get(k, 0.0) + v


def total(requests):
    cdef dict need = {}
    for r in requests:
        add(need, r)
    return need

