"""The proxy <-> replica stream: length-prefixed pickled frames over a Unix socket.

    frame := u32 big-endian length | pickle(protocol 5)

proxy -> replica, one per request (a compact tuple; the replica builds the ASGI scope):
    (request_id, method, path, query_string, root_path, raw_headers, client,
     http_version, body)
replica -> proxy, per request:
    (request_id, "full", status, headers, body)        headers: [(str, str)], no
                                                       content-length/transfer-encoding
 or (request_id, "start", status, headers),            headers: ASGI [(bytes, bytes)]
    (request_id, "body", chunk, more_body)...

Both ends are plain asyncio Protocols (FrameProtocol): ``data_received`` cuts
every complete frame out of what arrived and hands it to ``frame_received``
synchronously, so a burst of answers costs one read and no coroutine per
frame; ``send`` coalesces the frames of one event-loop turn into one write
(one syscall, one wake-up of the peer, for many requests under load).

    class Echo(FrameProtocol):
        def frame_received(self, frame):
            self.send(frame)
"""

import asyncio
import pickle
import struct

_LEN = struct.Struct(">I")
_dumps, _loads = pickle.dumps, pickle.loads


def pack(obj):
    data = _dumps(obj, protocol=5)
    return _LEN.pack(len(data)) + data


class WriteFlowControl(asyncio.Protocol):
    """asyncio's write flow control for a protocol: while the transport's buffer
    is over its high-water mark, writers wait in ``writable()``."""

    _paused = None   # a Future while the transport's buffer is full

    def pause_writing(self):
        self._paused = asyncio.get_running_loop().create_future()

    def resume_writing(self):
        self._release_writers()
        self._paused = None

    def _release_writers(self):
        """Wake every writer (the buffer drained, or the connection is gone)."""
        if self._paused is not None and not self._paused.done():
            self._paused.set_result(None)

    async def writable(self):
        if self._paused is not None:
            await self._paused


class FrameProtocol(WriteFlowControl):
    """Frames in (``frame_received``), frames out (``send``), flow control (``drain``)."""

    def __init__(self):
        self.transport = None
        self._rest = bytearray()  # an incomplete frame carried to the next read
        self._need = 4            # bytes _rest must reach before a frame can be cut
        self._out = []
        self.lost = False

    # -- to override
    def frame_received(self, frame):
        raise TypeError(f"{type(self).__name__} must define frame_received(frame)")

    def frames_lost(self):
        """The connection ended (EOF or error)."""

    # -- asyncio.Protocol
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        if self._rest:
            rest = self._rest
            rest += data                  # a bytearray: a big frame costs linear copying
            if len(rest) < self._need:
                return
            data = rest
            self._rest = bytearray()
        end = len(data)
        pos = 0
        view = None
        while end - pos >= 4:
            stop = pos + 4 + _LEN.unpack_from(data, pos)[0]
            if stop > end:
                break
            if view is None:
                view = memoryview(data)
            self.frame_received(_loads(view[pos + 4:stop]))
            pos = stop
        if view is not None:
            view.release()
        if pos < end:
            self._rest = bytearray(data[pos:])
            self._need = (4 + _LEN.unpack_from(data, pos)[0]) if end - pos >= 4 else 4

    def connection_lost(self, exc):
        self.lost = True
        self._out.clear()
        self._release_writers()
        self.frames_lost()

    # -- output
    def send(self, obj):
        if self.lost:
            return
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        self._out.append(pack(obj))

    def _flush(self):
        if self._out:
            data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
            self._out.clear()
            if not self.transport.is_closing():
                self.transport.write(data)

    async def drain(self):
        self._flush()
        if self.lost:
            raise ConnectionResetError("the peer closed the frame stream")
        await self.writable()

    def close(self):
        self._flush()
        if self.transport is not None:
            self.transport.close()
