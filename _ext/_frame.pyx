# cython: language_level=3, boundscheck=False, wraparound=False
"""The frame codec: every minray message travels in one frame.

This docstring is THE documentation of minray's wire format. The codec exists
twice with identical behaviour (same names, results, exceptions and messages):
`_frame.pyx`, compiled, and `frame_py.py`, its readable pure-Python twin.
`minray._ext.frame` is whichever of the two `minray._ext` selected.

Wire format
-----------
A connection carries a plain sequence of frames, with nothing between them::

    offset  size  field
    0       4     N: unsigned 32-bit little-endian, N = 1 + len(payload)
    4       1     kind: unsigned 8-bit message kind, 0..255
    5       N-1   payload: opaque bytes (the message body; may be empty)

N counts the kind byte, so the smallest frame is 5 bytes and N == 0 never
occurs on a healthy stream. A reader refuses N == 0 and N > max_frame_size
(default MAX_FRAME_SIZE = 1 GiB) as soon as the 4 length bytes have arrived,
before buffering the frame, so a corrupt or hostile peer can't make it
reserve memory it never sends. The codec gives `kind` no meaning: the message
layer maps kinds to handlers.

Data flow: the sender calls `encode`/`encode_many` and writes the bytes to the
socket; the receiver hands whatever `recv` returned to `FrameReader.feed`,
which returns the frames completed so far as `(kind, payload)` pairs and keeps
the partial tail for the next call.

>>> data = encode(7, b"hello") + encode(0, b"")
>>> data
b'\\x06\\x00\\x00\\x00\\x07hello\\x01\\x00\\x00\\x00\\x00'
>>> reader = FrameReader()
>>> reader.feed(data[:8])
[]
>>> reader.pending()
8
>>> reader.feed(data[8:])
[(7, b'hello'), (0, b'')]
"""

# How this twin is fast: `feed` parses frames straight out of the caller's
# buffer (no copy into an internal buffer) and copies into its bytearray only
# the unfinished tail, or the few bytes that complete a frame left unfinished
# by the previous call. So the buffer never holds more than one partial frame
# and never needs compacting. Each frame then costs one bytes allocation and
# one tuple; kinds are cached small ints.

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_CheckBuffer, PyObject_GetBuffer
from cpython.bytearray cimport (
    PyByteArray_AS_STRING,
    PyByteArray_FromStringAndSize,
    PyByteArray_GET_SIZE,
    PyByteArray_Resize,
)
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.long cimport PyLong_AsLongAndOverflow
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy

from operator import index as _index

from .errors import ProtocolError

__all__ = [
    "HEADER_SIZE",
    "MAX_FRAME_SIZE",
    "ProtocolError",
    "encode",
    "encode_many",
    "FrameReader",
]

HEADER_SIZE = 5  # 4 length bytes + 1 kind byte
MAX_FRAME_SIZE = 1 << 30  # default limit on N (the kind byte plus the payload)

cdef uint64_t _MAX_LENGTH = 0xFFFFFFFF  # the largest N the 4-byte length field can hold


cdef inline uint32_t _read_le32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] | (<uint32_t>p[1] << 8)
            | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24))


cdef inline void _write_header(uint8_t* p, uint32_t length, uint8_t kind) noexcept nogil:
    p[0] = length & 0xFF
    p[1] = (length >> 8) & 0xFF
    p[2] = (length >> 16) & 0xFF
    p[3] = (length >> 24) & 0xFF
    p[4] = kind


cdef int _check_kind(object kind) except -1:
    cdef int overflow = 0
    cdef long value
    if type(kind) is not int:
        kind = _index(kind)  # TypeError for a float or a str, as in frame_py
    value = PyLong_AsLongAndOverflow(kind, &overflow)
    if overflow or not 0 <= value <= 255:
        raise ValueError(f"frame kind must be in 0..255, got {kind}")
    return <int>value


cdef int _get_view(object data, Py_buffer* view, str what) except -1:
    # PyBUF_SIMPLE: any C-contiguous buffer, taken as its raw bytes.
    if not PyObject_CheckBuffer(data):
        raise TypeError(f"{what} must be a bytes-like object, got {type(data).__name__}")
    try:
        PyObject_GetBuffer(data, view, PyBUF_SIMPLE)
    except BufferError:
        raise BufferError(f"{what} must be a C-contiguous buffer") from None
    return 0


cdef inline int _check_payload_size(Py_ssize_t n) except -1:
    if <uint64_t>n + 1 > _MAX_LENGTH:
        raise ValueError(
            f"payload of {n} bytes does not fit in one frame "
            f"(at most {_MAX_LENGTH - 1} bytes)"
        )
    return 0


def encode(kind, payload):
    """Return one frame carrying `payload` with message kind `kind`.

    `kind` must be an int in 0..255 (ValueError otherwise); `payload` is any
    bytes-like object.

    >>> encode(1, b"ab")
    b'\\x03\\x00\\x00\\x00\\x01ab'
    """
    cdef uint8_t k = <uint8_t>_check_kind(kind)
    cdef Py_buffer view
    cdef bytes out
    cdef uint8_t* o
    _get_view(payload, &view, "payload")
    try:
        _check_payload_size(view.len)
        out = PyBytes_FromStringAndSize(NULL, view.len + 5)
        o = <uint8_t*>PyBytes_AS_STRING(out)
        _write_header(o, <uint32_t>(view.len + 1), k)
        memcpy(o + 5, view.buf, view.len)
        return out
    finally:
        PyBuffer_Release(&view)


def encode_many(frames):
    """Return the frames of an iterable of `(kind, payload)` pairs, concatenated.

    Equivalent to `b"".join(encode(k, p) for k, p in frames)`: one write for
    a whole batch of messages.

    >>> encode_many([(1, b"a"), (2, b"")])
    b'\\x02\\x00\\x00\\x00\\x01a\\x01\\x00\\x00\\x00\\x02'
    """
    cdef list items = frames if type(frames) is list else list(frames)
    cdef Py_ssize_t count = len(items)
    cdef Py_ssize_t i, acquired = 0, total = 0
    cdef bytes out
    cdef uint8_t* o
    # Every payload's buffer is held from the sizing pass to the copying pass,
    # so none can change size in between (a held bytearray refuses to resize).
    cdef Py_buffer* views = <Py_buffer*>PyMem_Malloc((count + 1) * sizeof(Py_buffer))
    cdef uint8_t* kinds = <uint8_t*>PyMem_Malloc(count + 1)
    if views == NULL or kinds == NULL:
        PyMem_Free(views)
        PyMem_Free(kinds)
        raise MemoryError()
    try:
        for i in range(count):
            kind, payload = items[i]
            kinds[i] = <uint8_t>_check_kind(kind)
            _get_view(payload, &views[i], "payload")
            acquired += 1
            _check_payload_size(views[i].len)
            total += views[i].len + 5
        out = PyBytes_FromStringAndSize(NULL, total)
        o = <uint8_t*>PyBytes_AS_STRING(out)
        for i in range(count):
            _write_header(o, <uint32_t>(views[i].len + 1), kinds[i])
            memcpy(o + 5, views[i].buf, views[i].len)
            o += views[i].len + 5
        return out
    finally:
        for i in range(acquired):
            PyBuffer_Release(&views[i])
        PyMem_Free(views)
        PyMem_Free(kinds)


@cython.final
cdef class FrameReader:
    """Reassembles frames from a byte stream that arrives in arbitrary chunks.

    `feed` never keeps a reference to the data it is given (the caller may
    reuse its receive buffer) and buffers only bytes actually received: a
    header declaring a huge frame does not make it reserve that much memory.
    After a ProtocolError the reader is poisoned: it drops its buffer and
    every later `feed` raises ProtocolError.

    >>> reader = FrameReader(max_frame_size=64)
    >>> reader.feed(b"\\x02\\x00\\x00")
    []
    >>> reader.feed(b"\\x00\\x05!\\x01\\x00\\x00\\x00\\x06")
    [(5, b'!'), (6, b'')]
    """

    cdef bytearray _buf      # the unfinished frame (at most one), else empty
    cdef uint64_t _limit     # max_frame_size, clipped to what N can express
    cdef object _max         # max_frame_size as given, for messages
    cdef object _error       # the message of the ProtocolError that poisoned us

    def __cinit__(self):
        self._buf = bytearray()
        self._limit = MAX_FRAME_SIZE
        self._max = MAX_FRAME_SIZE
        self._error = None

    def __init__(self, max_frame_size=MAX_FRAME_SIZE):
        max_frame_size = _index(max_frame_size)
        if max_frame_size < 1:
            raise ValueError(f"max_frame_size must be at least 1, got {max_frame_size}")
        self._max = max_frame_size
        self._limit = min(max_frame_size, _MAX_LENGTH)

    @property
    def max_frame_size(self):
        """The largest declared length N (kind byte + payload) accepted."""
        return self._max

    def pending(self):
        """Return the number of bytes received but not yet returned as frames."""
        return PyByteArray_GET_SIZE(self._buf)

    def feed(self, data):
        """Add received bytes; return the frames they complete, in order.

        Returns a list of `(kind, payload)` tuples, `payload` being `bytes`.
        Raises ProtocolError on a declared length of 0 or above
        `max_frame_size`; frames completed earlier in the same call are then
        discarded with the rest of the stream.
        """
        cdef Py_buffer view
        if self._error is not None:
            raise ProtocolError(
                f"FrameReader is unusable after an earlier protocol error: {self._error}"
            )
        _get_view(data, &view, "data")
        try:
            return self._feed(<const uint8_t*>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    cdef list _feed(self, const uint8_t* p, Py_ssize_t n):
        cdef list frames = []
        cdef Py_ssize_t pos = 0
        cdef Py_ssize_t have = PyByteArray_GET_SIZE(self._buf)
        cdef Py_ssize_t need, take
        cdef uint32_t length
        cdef const uint8_t* b
        if have:
            # Complete the frame the previous call left unfinished, copying
            # only the bytes it still lacks.
            if have < 4:
                take = min(4 - have, n)
                self._append(p, take)
                pos = take
                have += take
                if have < 4:
                    return frames
            length = _read_le32(<const uint8_t*>PyByteArray_AS_STRING(self._buf))
            self._check_length(length)
            need = 4 + <Py_ssize_t>length - have
            take = min(need, n - pos)
            self._append(p + pos, take)
            pos += take
            if take < need:
                return frames
            b = <const uint8_t*>PyByteArray_AS_STRING(self._buf)
            frames.append((b[4], PyBytes_FromStringAndSize(<const char*>b + 5, length - 1)))
            self._buf = bytearray()  # also releases the memory of a large frame
        # Whole frames straight from the caller's buffer.
        while n - pos >= 4:
            length = _read_le32(p + pos)
            self._check_length(length)
            if <uint64_t>(n - pos - 4) < length:
                break  # the rest of this frame has not arrived yet
            frames.append((p[pos + 4], PyBytes_FromStringAndSize(<const char*>p + pos + 5, length - 1)))
            pos += 4 + <Py_ssize_t>length
        if pos < n:
            self._buf = PyByteArray_FromStringAndSize(<char*>p + pos, n - pos)
        return frames

    cdef inline int _check_length(self, uint32_t length) except -1:
        if length == 0 or length > self._limit:
            message = (
                f"frame declares length {length}, outside the allowed "
                f"1..{self._max} (max_frame_size={self._max})"
            )
            self._error = message
            self._buf = bytearray()
            raise ProtocolError(message)
        return 0

    cdef int _append(self, const uint8_t* p, Py_ssize_t count) except -1:
        cdef Py_ssize_t old = PyByteArray_GET_SIZE(self._buf)
        if count > 0:
            # bytearray grows geometrically, so a large frame arriving in
            # small chunks is copied O(1) times per byte on average.
            PyByteArray_Resize(self._buf, old + count)
            memcpy(PyByteArray_AS_STRING(self._buf) + old, p, count)
        return 0
