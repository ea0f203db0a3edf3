"""The frame codec: every minray message travels in one frame.

This docstring is THE documentation of minray's wire format; `_frame.pyx` is
the compiled twin of this module and behaves identically (same names, same
results, same exceptions and messages). `minray._ext.frame` is whichever of
the two `minray._ext` selected.

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

_MAX_LENGTH = 0xFFFFFFFF  # the largest N the 4-byte length field can hold


def _check_kind(kind):
    kind = _index(kind)  # TypeError for a float or a str, as in _frame.pyx
    if not 0 <= kind <= 255:
        raise ValueError(f"frame kind must be in 0..255, got {kind}")
    return kind


def _as_bytes_view(data, what):
    # Any C-contiguous buffer (bytes, bytearray, memoryview, numpy array) is
    # taken as its raw bytes, as the compiled twin's PyBUF_SIMPLE request does.
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(
            f"{what} must be a bytes-like object, got {type(data).__name__}"
        ) from None
    if not view.c_contiguous:
        raise BufferError(f"{what} must be a C-contiguous buffer")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def encode(kind, payload):
    """Return one frame carrying `payload` with message kind `kind`.

    `kind` must be an int in 0..255 (ValueError otherwise); `payload` is any
    bytes-like object.

    >>> encode(1, b"ab")
    b'\\x03\\x00\\x00\\x00\\x01ab'
    """
    kind = _check_kind(kind)
    view = _as_bytes_view(payload, "payload")
    length = view.nbytes + 1
    if length > _MAX_LENGTH:
        raise ValueError(
            f"payload of {view.nbytes} bytes does not fit in one frame "
            f"(at most {_MAX_LENGTH - 1} bytes)"
        )
    return length.to_bytes(4, "little") + bytes((kind,)) + view.tobytes()


def encode_many(frames):
    """Return the frames of an iterable of `(kind, payload)` pairs, concatenated.

    Equivalent to `b"".join(encode(k, p) for k, p in frames)`: one write for
    a whole batch of messages.

    >>> encode_many([(1, b"a"), (2, b"")])
    b'\\x02\\x00\\x00\\x00\\x01a\\x01\\x00\\x00\\x00\\x02'
    """
    return b"".join([encode(kind, payload) for kind, payload in frames])


class FrameReader:
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

    def __init__(self, max_frame_size=MAX_FRAME_SIZE):
        max_frame_size = _index(max_frame_size)
        if max_frame_size < 1:
            raise ValueError(
                f"max_frame_size must be at least 1, got {max_frame_size}"
            )
        self._max = max_frame_size
        self._buf = bytearray()
        self._error = None  # the message of the ProtocolError that poisoned us

    @property
    def max_frame_size(self):
        """The largest declared length N (kind byte + payload) accepted."""
        return self._max

    def pending(self):
        """Return the number of bytes received but not yet returned as frames."""
        return len(self._buf)

    def feed(self, data):
        """Add received bytes; return the frames they complete, in order.

        Returns a list of `(kind, payload)` tuples, `payload` being `bytes`.
        Raises ProtocolError on a declared length of 0 or above
        `max_frame_size`; frames completed earlier in the same call are then
        discarded with the rest of the stream.
        """
        if self._error is not None:
            raise ProtocolError(
                f"FrameReader is unusable after an earlier protocol error: "
                f"{self._error}"
            )
        buf = self._buf
        buf += _as_bytes_view(data, "data")
        frames = []
        pos = 0
        end = len(buf)
        while end - pos >= 4:
            length = int.from_bytes(buf[pos:pos + 4], "little")
            if length == 0 or length > self._max:
                self._poison(
                    f"frame declares length {length}, outside the allowed "
                    f"1..{self._max} (max_frame_size={self._max})"
                )
            if end - pos - 4 < length:
                break  # the rest of this frame has not arrived yet
            frames.append((buf[pos + 4], bytes(buf[pos + 5:pos + 4 + length])))
            pos += 4 + length
        if pos == end:
            self._buf = bytearray()  # release the memory of a large frame
        elif pos:
            del buf[:pos]
        return frames

    def _poison(self, message):
        self._error = message
        self._buf = bytearray()
        raise ProtocolError(message)
