"""The proxy <-> replica stream: length-prefixed pickled frames over a Unix socket.

    frame := u32 big-endian length | pickle(protocol 5)

proxy -> replica, one per request:   (scope, body)
replica -> proxy, per request:       ("full", status, headers, body)
                                  or ("start", status, headers), ("body", chunk, more_body)...
One request at a time per connection; the proxy keeps a pool of idle
connections per replica, so the hot path never looks an actor up or dials.
"""

import pickle
import struct

_LEN = struct.Struct(">I")


def pack(obj):
    data = pickle.dumps(obj, protocol=5)
    return _LEN.pack(len(data)) + data


async def read_frame(reader):
    """The next frame from an asyncio StreamReader (IncompleteReadError at EOF)."""
    head = await reader.readexactly(4)
    return pickle.loads(await reader.readexactly(_LEN.unpack(head)[0]))
