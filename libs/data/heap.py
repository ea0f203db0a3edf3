"""Keep large freed buffers in a worker's heap, so the next block reuses them.

    first block:  np.full / x * 2 / ... -> fresh pages (a page fault per 4 KiB, zeroed)
    later blocks: the same sizes again   -> the heap's freed memory, already mapped

glibc serves an allocation above its mmap threshold (at most 32 MiB by default)
with a fresh ``mmap`` and returns it to the kernel on free, so every 64 MiB
batch a map function builds costs its page faults again: measured here, a third
to a half of the time of a simple numpy map (``np.full`` of 64 MiB: 19 ms fresh,
under 3 ms reused).  ``retain_freed_blocks`` raises the mmap threshold and the
heap's trim threshold of the process it runs in (a map task's worker), once,
to ``DataContext.worker_heap_cache_bytes``; 0 leaves malloc alone.  Other
allocators, or platforms without glibc's ``mallopt``, are left alone too.
"""

import ctypes

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

_applied = None


def retain_freed_blocks(cache_bytes):
    """Set this process's malloc thresholds once; returns whether they were set.

    Example::

        retain_freed_blocks(512 << 20)   # buffers up to 256 MiB come from the heap,
                                         # which keeps up to 512 MiB of freed memory
    """
    global _applied
    if _applied is not None or not cache_bytes:
        return bool(_applied)
    _applied = False
    try:
        mallopt = ctypes.CDLL(None).mallopt    # this process's libc (no ldconfig lookup)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    cache = min(int(cache_bytes), (1 << 31) - 1)
    _applied = bool(mallopt(M_MMAP_THRESHOLD, cache // 2) and
                    mallopt(M_TRIM_THRESHOLD, cache))
    return _applied
