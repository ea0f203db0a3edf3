"""shm.pwrite writes the same segment layout as shm.write, through a real
shared-memory segment's file descriptor (objects/shm.py)."""

import os

import numpy as np
import pytest

from minray._private.objects import serialization, shm


@pytest.mark.parametrize("shapes", [
    [],                                   # in-band only
    [(1,)],                               # one tiny buffer
    [(1000,), (3,), (4097,)],             # sizes that need alignment padding
    [(17,)] * 1500,                       # more buffers than one pwritev takes (IOV_MAX)
    [(3 << 20,)],                         # a few MiB
])
def test_pwrite_lays_out_what_write_does(shapes):
    rng = np.random.default_rng(len(shapes))
    value = {"arrays": [rng.integers(0, 255, s, dtype=np.uint8) for s in shapes], "x": 42}
    sv = serialization.serialize(value)
    size = sv.shm_size()
    base = f"mrtest_pw_{os.getpid()}_{len(shapes)}"
    fd = shm.create_fd(base + "a", size)
    try:
        sv.pwrite_to(fd)
        by_fd = os.pread(fd, size, 0)
    finally:
        os.close(fd)
        shm.unlink(base + "a")
    buf = shm.create(base + "b", size)
    try:
        sv.write_to(buf)
        by_map = bytes(buf[:size])
    finally:
        buf.close()
        shm.unlink(base + "b")
    assert by_fd == by_map
    back = serialization.loads_segment(memoryview(bytearray(by_fd)))
    assert back["x"] == 42
    assert all(np.array_equal(a, b) for a, b in zip(back["arrays"], value["arrays"]))

