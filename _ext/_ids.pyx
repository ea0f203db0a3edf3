# cython: language_level=3, boundscheck=False, wraparound=False
"""Task and object ids, compiled. The layout and the behaviour are documented
in the twin, `ids_py.py` (same names, results, exceptions and messages)."""

import os

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy


TASK_ID_SIZE = 16
OBJECT_ID_SIZE = 20
PREFIX_SIZE = 8
MAX_INDEX = 0xFFFFFFFF


cdef inline void _check_id(object value, Py_ssize_t size, str what) except *:
    if type(value) is not bytes:
        raise TypeError(f"{what} must be bytes, got {type(value).__name__}")
    if PyBytes_GET_SIZE(value) != size:
        raise ValueError(f"{what} must be {size} bytes, got {PyBytes_GET_SIZE(value)}")


cdef inline uint32_t _check_index(object index, str what) except? 0:
    if type(index) is not int:
        raise TypeError(f"{what} must be an int, got {type(index).__name__}")
    if not 0 <= index <= MAX_INDEX:
        raise ValueError(f"{what} must be in 0..{MAX_INDEX}, got {index}")
    return <uint32_t>index


cdef inline void _put_be32(char* p, uint32_t v):
    p[0] = <char>((v >> 24) & 0xFF)
    p[1] = <char>((v >> 16) & 0xFF)
    p[2] = <char>((v >> 8) & 0xFF)
    p[3] = <char>(v & 0xFF)


cdef inline bytes _object_id(bytes task_id, uint32_t index):
    cdef bytes out = PyBytes_FromStringAndSize(NULL, 20)
    cdef char* p = PyBytes_AS_STRING(out)
    memcpy(p, PyBytes_AS_STRING(task_id), 16)
    _put_be32(p + 16, index)
    return out


cdef class IdGenerator:
    cdef bytes _prefix
    cdef uint64_t _counter

    def __init__(self, prefix=None):
        if prefix is None:
            prefix = os.urandom(PREFIX_SIZE)
        _check_id(prefix, PREFIX_SIZE, "prefix")
        self._prefix = prefix
        self._counter = 0

    @property
    def prefix(self):
        return self._prefix

    @property
    def counter(self):
        return self._counter

    def new_task_id(self):
        cdef bytes out = PyBytes_FromStringAndSize(NULL, 16)
        cdef char* p = PyBytes_AS_STRING(out)
        cdef uint64_t c
        cdef int i
        self._counter += 1
        c = self._counter
        memcpy(p, PyBytes_AS_STRING(self._prefix), 8)
        for i in range(7, -1, -1):
            p[8 + i] = <char>(c & 0xFF)
            c >>= 8
        return out


def object_id_for(task_id, index):
    _check_id(task_id, TASK_ID_SIZE, "task_id")
    cdef uint32_t i = _check_index(index, "index")
    return _object_id(task_id, i)


def task_id_of(object_id):
    _check_id(object_id, OBJECT_ID_SIZE, "object_id")
    return PyBytes_FromStringAndSize(PyBytes_AS_STRING(object_id), 16)


def index_of(object_id):
    _check_id(object_id, OBJECT_ID_SIZE, "object_id")
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(object_id) + 16
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]
