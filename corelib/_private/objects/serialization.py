"""Values to bytes and back: pickle protocol 5 with out-of-band buffers.

An encoded value ("blob") starts with one tag byte::

    b"P" + pickle            a small value, everything in-band
    b"B" + u32 n + n*u64 lengths + u64 pickle length + pickle + buffers
                             a small value with out-of-band buffers (read zero-copy)
    b"E" + pickle            an error (a RayTaskError or another RayError) to raise on get
    b"S" + u64 size          the value lives in a shared-memory segment (see shm.py)

Large values (>= INLINE_LIMIT bytes in all) go to shared memory, where numpy
arrays are rebuilt as read-only views of the segment.

ObjectRefs found inside a value are collected while pickling (``SerializationContext``)
so the runtime can keep them alive as long as the value that contains them.
"""

import pickle
import struct
import sys
import threading
import types

from minray._private.objects import shm
from minray._private.lazy import lazy_module

# The node manager seldom pickles functions: it imports cloudpickle when it first does.
cloudpickle = lazy_module("cloudpickle", globals())

INLINE_LIMIT = 100 * 1024

TAG_PICKLE = 0x50  # "P"
TAG_BUFFERS = 0x42  # "B"
TAG_ERROR = 0x45  # "E"
TAG_SHM = 0x53  # "S"
TAG_DYNAMIC = 0x44  # "D": a dynamic generator's items, [(oid, blob, contained)] (worker -> owner)

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

_FAST_TYPES = frozenset([int, float, str, bytes, bool, type(None)])

_local = threading.local()


class SerializationContext:
    """Collects the ObjectRefs (and actor handles) pickled inside one value."""

    __slots__ = ("refs",)

    def __init__(self):
        self.refs = []


def record_ref(ref):
    ctx = getattr(_local, "ctx", None)
    if ctx is not None:
        ctx.refs.append(ref)


class SerializedValue:
    """A pickled value: its in-band bytes, out-of-band buffers and contained refs."""

    __slots__ = ("inband", "buffers", "refs", "total")

    def __init__(self, inband, buffers, refs):
        self.inband = inband
        self.buffers = buffers
        self.refs = refs
        self.total = len(inband) + sum(b.raw().nbytes for b in buffers)

    def is_large(self):
        return self.total >= INLINE_LIMIT

    def to_inline(self):
        if not self.buffers:
            return b"P" + self.inband
        raws = [b.raw() for b in self.buffers]
        parts = [b"B", _U32.pack(len(raws))]
        parts.extend(_U64.pack(r.nbytes) for r in raws)
        parts.append(_U64.pack(len(self.inband)))
        parts.append(self.inband)
        parts.extend(raws)
        return b"".join(parts)

    def shm_size(self):
        return shm.layout_size(len(self.inband), [b.raw().nbytes for b in self.buffers])

    def write_to(self, buf):
        shm.write(buf, self.inband, self.buffers)

    def pwrite_to(self, fd):
        """Write into a new segment's file descriptor (shm.pwrite: faster for fresh pages)."""
        shm.pwrite(fd, self.inband, self.buffers)


def small_inline(value):
    """The inline blob of a small value of a plain type, or None (then use serialize)."""
    if type(value) in _FAST_TYPES:
        data = pickle.dumps(value, 5)
        if len(data) < INLINE_LIMIT:
            return b"P" + data
    return None


def serialize(value):
    """Pickle ``value``; raises a TypeError that names what could not be pickled."""
    if type(value) in _FAST_TYPES:
        return SerializedValue(pickle.dumps(value, 5), [], [])
    buffers = []
    ctx = SerializationContext()
    prev = getattr(_local, "ctx", None)
    _local.ctx = ctx
    try:
        inband = cloudpickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    except Exception as exc:
        raise unserializable_error(value, exc) from None
    finally:
        _local.ctx = prev
    return SerializedValue(inband, buffers, ctx.refs)


def dumps_function(obj):
    """Pickle a function or class for workers, remembering its source file.

    cloudpickle >= 3.1 renames the code of functions pickled by value to
    "<dynamic-code>", which would strip the source lines from remote tracebacks;
    the worker puts the real file name back (``loads_function``).
    """
    return cloudpickle.dumps((obj, _source_file(obj)), protocol=5)


def loads_function(blob):
    obj, filename = cloudpickle.loads(blob)
    if filename:
        for fn in _functions_of(obj):
            fn.__code__ = _with_filename(fn.__code__, filename)
    return obj


def _functions_of(obj):
    if hasattr(obj, "__code__"):
        return [obj]
    if isinstance(obj, type):
        found = []
        for value in vars(obj).values():
            fn = getattr(value, "__func__", value)
            if hasattr(fn, "__code__"):
                found.append(fn)
        return found
    return []


def _source_file(obj):
    for fn in _functions_of(obj):
        return fn.__code__.co_filename
    return None


def _with_filename(code, filename):
    if code.co_filename != "<dynamic-code>":
        return code
    consts = tuple(_with_filename(c, filename) if isinstance(c, types.CodeType) else c
                   for c in code.co_consts)
    return code.replace(co_filename=filename, co_consts=consts)


def dumps_inline(value):
    """Serialize a value that is known to be small into an inline blob."""
    return serialize(value).to_inline()


def error_blob(error):
    try:
        blob = b"E" + cloudpickle.dumps(error, protocol=5)
        # Some exceptions pickle but cannot be rebuilt (an __init__ that needs more
        # arguments than .args holds): check now, so get() raises the task's error.
        pickle.loads(memoryview(blob)[1:])
        return blob
    except Exception:
        # The exception itself does not pickle: keep its text and traceback.
        from minray.exceptions import RayTaskError
        cause = getattr(error, "cause", error)
        fallback = RayTaskError(
            getattr(error, "function_name", "<unknown>"),
            getattr(error, "traceback_str", "") or repr(error),
            RuntimeError(f"{type(cause).__name__}: {cause} (the original exception "
                         "could not be pickled)"),
            pid=getattr(error, "pid", None))
        return b"E" + cloudpickle.dumps(fallback, protocol=5)


def shm_blob(size):
    return b"S" + _U64.pack(size)


# An S blob names a segment of this node's store: S<u64 size><segment name>.
# One whose name is "@ip:port" is in the store of the node manager at that address
# (another node): a process that needs it asks its own node manager, which pulls a
# copy in chunks (node_manager.py, "copies from other nodes"). An empty name means
# "ask the node manager where it is".
def remote_blob(size, address):
    return shm_blob(size) + b"@" + address.encode()


def remote_address(blob):
    """The "ip:port" of the node whose store holds an S blob's value, or None (here)."""
    if blob[0] != TAG_SHM or len(blob) < 10 or blob[9] != 0x40:   # "@"
        return None
    return bytes(blob[10:]).decode()


def shm_size_of(blob):
    return _U64.unpack_from(blob, 1)[0]


def loads_inline(blob):
    """Rebuild a value from an inline blob (tag P or B). Errors are returned, not raised."""
    tag = blob[0]
    if tag == TAG_PICKLE:
        return pickle.loads(memoryview(blob)[1:])
    if tag == TAG_BUFFERS:
        mv = memoryview(blob)
        n = _U32.unpack_from(mv, 1)[0]
        pos = 5
        lens = []
        for _ in range(n):
            lens.append(_U64.unpack_from(mv, pos)[0])
            pos += 8
        inband_len = _U64.unpack_from(mv, pos)[0]
        pos += 8
        inband = mv[pos:pos + inband_len]
        pos += inband_len
        bufs = []
        for ln in lens:
            bufs.append(mv[pos:pos + ln])
            pos += ln
        return pickle.loads(inband, buffers=bufs)
    if tag == TAG_ERROR:
        return pickle.loads(memoryview(blob)[1:])
    raise ValueError(f"cannot decode an inline blob with tag {tag!r}")


def inline_from_segment(buf):
    """The inline (B) blob of a value stored in a segment: for a peer on another node."""
    inband, buffers = shm.read(buf)
    return SerializedValue(bytes(inband), [pickle.PickleBuffer(b) for b in buffers],
                           []).to_inline()


def loads_segment(buf):
    inband, buffers = shm.read(buf)
    return pickle.loads(inband, buffers=buffers)


def unserializable_error(value, exc, what=None):
    """A TypeError naming the part of ``value`` that could not be pickled, and the fix."""
    subject = what or "the value"
    if isinstance(exc, RecursionError) or "recursion" in str(exc):
        err = TypeError(
            f"{subject} ({type(value).__qualname__}) could not be serialized: it is nested "
            f"too deeply (RecursionError past sys.getrecursionlimit()="
            f"{sys.getrecursionlimit()}). Fix: flatten it (e.g. a linked list or a deep "
            "tree into a list or arrays), or raise sys.setrecursionlimit() in the driver "
            "and in the task.")
        err.__cause__ = exc
        return err
    path = _find_unpicklable(value, "", 0, set())
    if path:
        where, culprit = path
        detail = (f"{subject} could not be serialized: {where or 'the object itself'} "
                  f"of type {type(culprit).__module__}.{type(culprit).__qualname__} "
                  f"cannot be pickled ({type(exc).__name__}: {exc}).")
    else:
        detail = (f"{subject} ({type(value).__qualname__}) could not be serialized: "
                  f"{type(exc).__name__}: {exc}.")
    err = TypeError(detail + " Fix: pass something picklable instead (create locks, "
                    "sockets, files and clients inside the task or actor), or define "
                    "__reduce__ for the class.")
    err.__cause__ = exc
    return err


def _pickles(obj):
    try:
        cloudpickle.dumps(obj, protocol=5, buffer_callback=lambda b: None)
        return True
    except Exception:
        return False


def _find_unpicklable(obj, path, depth, seen):
    """Depth-first search for the innermost attribute or item that fails to pickle."""
    if depth > 6 or id(obj) in seen:
        return None
    seen.add(id(obj))
    children = []
    if isinstance(obj, dict):
        children = [(f"{path}[{k!r}]", v) for k, v in list(obj.items())[:200]]
    elif isinstance(obj, (list, tuple, set, frozenset)):
        children = [(f"{path}[{i}]", v) for i, v in enumerate(list(obj)[:200])]
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        children = [(f"{path}.{k}" if path else f"attribute '{k}'", v)
                    for k, v in list(vars(obj).items())[:200]]
    for child_path, child in children:
        if not _pickles(child):
            inner = _find_unpicklable(child, child_path, depth + 1, seen)
            return inner or (child_path, child)
    return None
