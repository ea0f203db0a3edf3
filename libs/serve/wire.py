"""The proxy <-> replica stream: length-prefixed pickled frames over a Unix socket.

    frame := u32 big-endian length | pickle(protocol 5)

proxy -> replica, one per request:   (request_id, scope, body)
replica -> proxy, per request:       (request_id, "full", status, headers, body)
                                  or (request_id, "start", status, headers),
                                     (request_id, "body", chunk, more_body)...
The proxy keeps one connection per replica and multiplexes every request over
it, so the hot path never looks an actor up or dials; FrameWriter coalesces the
frames of one event-loop turn into one send (one syscall, one wake-up of the
peer, for many requests under load).
"""

import pickle
import struct

_LEN = struct.Struct(">I")


def pack(obj):
    data = pickle.dumps(obj, protocol=5)
    return _LEN.pack(len(data)) + data


class FrameWriter:
    """Frames queued during one loop iteration leave in a single write."""

    def __init__(self, writer, loop):
        self._writer = writer
        self._loop = loop
        self._buf = []

    def send(self, obj):
        if not self._buf:
            self._loop.call_soon(self._flush)
        self._buf.append(pack(obj))

    def _flush(self):
        if self._buf:
            data = b"".join(self._buf)
            self._buf.clear()
            if not self._writer.is_closing():
                self._writer.write(data)

    async def drain(self):
        self._flush()
        await self._writer.drain()

    def close(self):
        self._flush()
        self._writer.close()


async def read_frame(reader):
    """The next frame from an asyncio StreamReader (IncompleteReadError at EOF)."""
    head = await reader.readexactly(4)
    return pickle.loads(await reader.readexactly(_LEN.unpack(head)[0]))
