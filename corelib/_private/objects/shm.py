"""Shared-memory segments that hold large objects.

Byte layout of a segment (all integers little-endian)::

    0   8  magic  b"MRSEG001"
    8   4  number of out-of-band buffers (n)
    12  4  reserved (0)
    16  8  offset of the in-band pickle
    24  8  length of the in-band pickle
    32 16n (offset, length) of each out-of-band buffer
    ...    the pickle, then each buffer at a 64-byte aligned offset

Segments are POSIX shared memory objects (``/dev/shm/<name>``), the same
primitive ``multiprocessing.shared_memory.SharedMemory`` uses.  Before Python
3.13 that class registers every segment it *attaches* to with the resource
tracker, which unlinks it when the attaching process exits (gh-82300), and a
worker exiting would then destroy objects others still read.  So below 3.13 we
open segments with ``_posixshmem`` directly; from 3.13 on SharedMemory's
``track=False`` does the same thing.  Only the node manager unlinks a segment.
"""

import mmap
import os
import struct
import sys

try:
    import _posixshmem
except ImportError:  # pragma: no cover - Windows
    _posixshmem = None

MAGIC = b"MRSEG001"
_HEAD = struct.Struct("<8sIIQQ")
_BUF = struct.Struct("<QQ")
ALIGN = 64

_USE_TRACKLESS_CLASS = sys.version_info >= (3, 13)
if _USE_TRACKLESS_CLASS:
    from multiprocessing import shared_memory as _shared_memory


def _align(n):
    return (n + ALIGN - 1) & ~(ALIGN - 1)


def layout_size(inband_len, buffer_lens):
    """Total bytes needed for a pickle of ``inband_len`` and the given buffers."""
    pos = _align(_HEAD.size + _BUF.size * len(buffer_lens)) + inband_len
    for n in buffer_lens:
        pos = _align(pos) + n
    return max(pos, 1)


def create(name, size):
    """Create a segment and map it read-write. Returns the mmap."""
    if _USE_TRACKLESS_CLASS:
        seg = _shared_memory.SharedMemory(name=name, create=True, size=size, track=False)
        return seg._mmap
    fd = _posixshmem.shm_open("/" + name, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode=0o600)
    try:
        os.ftruncate(fd, size)
        return mmap.mmap(fd, size)
    except OSError:
        _posixshmem.shm_unlink("/" + name)
        raise
    finally:
        os.close(fd)


def create_fd(name, size):
    """Create a segment of ``size`` bytes and return its open file descriptor, not a
    mapping: a node manager pulling a copy writes it with os.pwrite, chunk by chunk,
    and never has the whole object in its own address space."""
    fd = _posixshmem.shm_open("/" + name, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode=0o600)
    try:
        os.ftruncate(fd, size)
    except OSError:
        os.close(fd)
        _posixshmem.shm_unlink("/" + name)
        raise
    return fd


def open_fd_rw(name):
    """An existing (pooled) segment's file descriptor, read-write, not mapped: a pull
    maps it window by window and receives the object's bytes into its existing pages."""
    return _posixshmem.shm_open("/" + name, os.O_RDWR, mode=0o600)


def open_fd(name):
    """An existing segment's file descriptor, read-only (for os.pread)."""
    return _posixshmem.shm_open("/" + name, os.O_RDONLY, mode=0o600)


def open_rw(name):
    """Map an existing (pooled) segment read-write, its pages mapped up front.

    A pooled segment's pages already exist in tmpfs; MAP_POPULATE maps them all
    in one call instead of one page fault per 4 KiB, which is most of the cost
    of writing a large object into shared memory.
    """
    fd = _posixshmem.shm_open("/" + name, os.O_RDWR, mode=0o600)
    try:
        size = os.fstat(fd).st_size
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        return mmap.mmap(fd, size, flags=flags)
    finally:
        os.close(fd)


def attach(name):
    """Map an existing segment read-only (numpy arrays built on it are read-only)."""
    fd = _posixshmem.shm_open("/" + name, os.O_RDONLY, mode=0o600)
    try:
        size = os.fstat(fd).st_size
        return mmap.mmap(fd, size, prot=mmap.PROT_READ)
    finally:
        os.close(fd)


def exists(name):
    """Whether the segment ``name`` still exists (it can be removed from outside)."""
    return os.path.exists("/dev/shm/" + name)


def unlink(name):
    """Remove a segment's name; memory stays until the last mapping goes away."""
    try:
        _posixshmem.shm_unlink("/" + name)
        return True
    except FileNotFoundError:
        return False


def _header(inband, buffers):
    """The segment's first block (magic, buffer table, padding up to the pickle) and
    each out-of-band buffer with its offset: the layout ``write`` and ``pwrite`` share."""
    n = len(buffers)
    inband_off = _align(_HEAD.size + _BUF.size * n)
    head = bytearray(inband_off)
    placed = []
    pos = inband_off + len(inband)
    for i, b in enumerate(buffers):
        raw = b.raw() if hasattr(b, "raw") else memoryview(b).cast("B")
        pos = _align(pos)
        _BUF.pack_into(head, _HEAD.size + _BUF.size * i, pos, raw.nbytes)
        placed.append((pos, raw))
        pos += raw.nbytes
    _HEAD.pack_into(head, 0, MAGIC, n, 0, inband_off, len(inband))
    return head, placed


def write(buf, inband, buffers):
    """Write a pickle and its out-of-band buffers into ``buf`` (a writable mmap)."""
    head, placed = _header(inband, buffers)
    mv = memoryview(buf)
    off = len(head)
    mv[off:off + len(inband)] = inband
    for pos, raw in placed:
        ln = raw.nbytes
        if ln >= PARALLEL_COPY_BYTES:
            _parallel_copy(mv[pos:pos + ln], raw)
        else:
            mv[pos:pos + ln] = raw
    mv[:off] = head
    mv.release()


def pwrite(fd, inband, buffers):
    """Write the layout ``write`` makes into a new segment's file descriptor, with
    vectored ``pwritev`` calls instead of through a mapping.

    Into a fresh tmpfs file this is about twice as fast as copying into an mmap
    of it: the kernel allocates each page as it copies, with no page fault per
    4 KiB (7.7 against 15 ms for 17 MiB on the project's VM). Pages already in
    the file (a pooled segment) are as fast either way: use ``write`` there.
    """
    head, placed = _header(inband, buffers)
    iov = [head, inband]
    pos = len(head) + len(inband)
    for start, raw in placed:
        if start > pos:
            iov.append(bytes(start - pos))     # alignment padding
        iov.append(raw)
        pos = start + raw.nbytes
    _pwrite_all(fd, iov, 0)


_IOV_MAX = min(getattr(os, "IOV_MAX", 1024) or 1024, 1024)


def _pwrite_all(fd, iov, offset):
    """pwritev every buffer of ``iov`` from ``offset`` on, whatever the kernel takes
    per call (IOV_MAX buffers at most, and a call may write less than asked)."""
    iov = [memoryview(b).cast("B") for b in iov if len(b)]
    while iov:
        batch = iov[:_IOV_MAX]
        done = os.pwritev(fd, batch, offset)
        if done <= 0:
            raise OSError(f"pwritev wrote {done} bytes into a shared-memory segment")
        offset += done
        while done:
            first = iov[0]
            if done >= first.nbytes:
                done -= first.nbytes
                iov.pop(0)
            else:
                iov[0] = first[done:]
                done = 0


PARALLEL_COPY_BYTES = 32 << 20
_copy_pool = None


def _parallel_copy(dst, src):
    """Copy a large buffer with a few threads (numpy's copy releases the GIL).

    One core cannot saturate memory bandwidth with a single memcpy; Ray copies
    large objects with several threads for the same reason.
    """
    global _copy_pool
    import numpy as np
    workers = min(4, os.cpu_count() or 1)
    if workers < 2:
        dst[:] = src
        return
    if _copy_pool is None:
        import concurrent.futures
        _copy_pool = concurrent.futures.ThreadPoolExecutor(workers,
                                                           thread_name_prefix="minray-copy")
    d = np.frombuffer(dst, dtype=np.uint8)
    s = np.frombuffer(src, dtype=np.uint8)
    step = -(-len(s) // workers)

    def part(i):
        d[i:i + step] = s[i:i + step]
    list(_copy_pool.map(part, range(0, len(s), step)))


def read(buf):
    """Return (inband memoryview, [buffer memoryviews]) views into ``buf``; no copies."""
    mv = memoryview(buf)
    magic, n, _, inband_off, inband_len = _HEAD.unpack_from(mv, 0)
    if magic != MAGIC:
        raise ValueError("not a minray object segment (bad magic)")
    buffers = []
    for i in range(n):
        off, ln = _BUF.unpack_from(mv, _HEAD.size + _BUF.size * i)
        buffers.append(mv[off:off + ln])
    return mv[inband_off:inband_off + inband_len], buffers


def payload_size(fd, capacity):
    """Bytes of ``fd``'s segment that hold its object: a pooled segment can be up to
    twice as large as what was written into it (directory.ObjectDirectory.alloc),
    and a copy for another node needs only the written part. Raises ValueError
    for a segment that is not an object's.

    >>> payload_size(open_fd(name), os.fstat(open_fd(name)).st_size)  # doctest: +SKIP
    104857664
    """
    head = os.pread(fd, _HEAD.size, 0)
    if len(head) < _HEAD.size:
        raise ValueError("not a minray object segment (too short)")
    magic, n, _, inband_off, inband_len = _HEAD.unpack(head)
    if magic != MAGIC:
        raise ValueError("not a minray object segment (bad magic)")
    end = inband_off + inband_len
    table = os.pread(fd, _BUF.size * n, _HEAD.size) if n else b""
    if len(table) < _BUF.size * n:
        raise ValueError("not a minray object segment (truncated buffer table)")
    for i in range(n):
        off, ln = _BUF.unpack_from(table, _BUF.size * i)
        end = max(end, off + ln)
    if end > capacity:
        raise ValueError(f"a segment of {capacity} bytes claims {end}")
    return max(end, 1)


def list_segments(prefix):
    """Names of the segments in /dev/shm that start with ``prefix``."""
    try:
        return [n for n in os.listdir("/dev/shm") if n.startswith(prefix)]
    except FileNotFoundError:  # pragma: no cover - not Linux
        return []


def shm_free_bytes():
    try:
        st = os.statvfs("/dev/shm")
        return st.f_bavail * st.f_frsize
    except OSError:  # pragma: no cover
        return 0
