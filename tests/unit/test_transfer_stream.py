"""Object streams between node managers (objects/transfer.py), on real sockets and
real shared-memory segments: a holder's Outbox sends a segment with sendfile, a
puller receives it window by window into a new segment."""

import math
import os
import threading
import time
import uuid

import numpy as np
import pytest

from minray._private.net import transport
from minray._private.objects import shm, transfer

TOKEN = "t" * 32


@pytest.fixture
def segments():
    names = []

    def make(size, data=None):
        name = f"mrtest_{uuid.uuid4().hex[:12]}"
        names.append(name)
        fd = shm.create_fd(name, size)
        if data is not None:
            os.pwrite(fd, data, 0)
        return name, fd
    yield make
    for name in names:
        shm.unlink(name)


@pytest.fixture
def outbox():
    sent = []
    done = threading.Event()

    def on_sent(ticket, error):
        sent.append((ticket, error))
        done.set()
    box = transfer.Outbox("127.0.0.1", TOKEN, on_sent)
    box.sent, box.done = sent, done
    yield box
    box.close()


def wait_for(pred, timeout=10):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_split_cuts_whole_windows_into_at_most_n_parts():
    assert transfer.split(10, 4, 2) == [(0, 8), (8, 2)]
    assert transfer.split(8, 4, 4) == [(0, 4), (4, 4)]        # no more parts than windows
    assert transfer.split(1, 4, 4) == [(0, 1)]
    assert transfer.split(100, 4, 1) == [(0, 100)]
    for size, window, n in [(12345, 4096, 3), (1 << 20, 4096, 4), (5, 4096, 2)]:
        parts = transfer.split(size, window, n)
        assert len(parts) <= n and sum(p.size for p in parts) == size
        assert all(p.offset % window == 0 for p in parts)


def read_all(fd, size):
    return os.pread(fd, size, 0)


def test_payload_size_is_the_written_part_of_a_larger_segment(segments):
    arr = np.arange(1000, dtype=np.int64)
    inband = b"pickle-bytes"
    need = shm.layout_size(len(inband), [arr.nbytes])
    name, fd = segments(2 * need)
    buf = shm.open_rw(name)
    shm.write(buf, inband, [memoryview(arr)])
    buf.close()
    try:
        assert shm.payload_size(fd, 2 * need) == need
        with pytest.raises(ValueError, match="claims"):
            shm.payload_size(fd, need - 1)
    finally:
        os.close(fd)
    _, junk = segments(4096, b"not a segment at all")
    try:
        with pytest.raises(ValueError, match="bad magic"):
            shm.payload_size(junk, 4096)
    finally:
        os.close(junk)


def test_a_stream_copies_every_byte_window_by_window(segments, outbox):
    size = (20 << 20) + 12345          # not a whole number of windows
    data = np.random.default_rng(3).integers(0, 256, size, dtype=np.uint8).tobytes()
    src_name, src = segments(size, data)
    _, dst = segments(size)
    parts = transfer.split(size, 3 << 20, 3)
    assert [p.size for p in parts] == [9 << 20, 9 << 20, size - (18 << 20)]
    keys = [outbox.offer(b"oid", src_name, src, p.offset, p.size) for p in parts]
    got = [0] * len(parts)

    def pull(i):        # the parts in parallel, as a node manager pulls them
        got[i] = transfer.receive("127.0.0.1", outbox.port, TOKEN, keys[i], dst,
                                  parts[i].offset, parts[i].size, 3 << 20)
    threads = [threading.Thread(target=pull, args=(i,)) for i in range(len(parts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(got) == math.ceil(size / (3 << 20))
    assert read_all(dst, size) == data
    assert wait_for(lambda: len(outbox.sent) == len(parts))
    assert all(error is None for _, error in outbox.sent)
    assert sorted((t.offset, t.size) for t, _ in outbox.sent) == \
        [(p.offset, p.size) for p in parts]
    key = keys[0]
    assert outbox.take(key) is None     # a ticket is good for one stream only
    os.close(src)
    os.close(dst)


def test_a_wrong_token_or_an_unknown_ticket_gets_no_bytes(segments, outbox):
    src_name, src = segments(1 << 20, b"x" * (1 << 20))
    _, dst = segments(1 << 20)
    key = outbox.offer(b"oid", src_name, src, 0, 1 << 20)
    with pytest.raises(transport.AuthenticationError):
        transfer.receive("127.0.0.1", outbox.port, "w" * 32, key, dst, 0, 1 << 20, 1 << 20)
    with pytest.raises(ConnectionError, match="closed the stream at 0 of"):
        transfer.receive("127.0.0.1", outbox.port, TOKEN, b"k" * 32, dst, 0, 1 << 20,
                         1 << 20)
    # The offer is still there for the puller that has the ticket.
    assert transfer.receive("127.0.0.1", outbox.port, TOKEN, key, dst, 0, 1 << 20,
                            1 << 20) == 1
    assert read_all(dst, 1 << 20) == b"x" * (1 << 20)
    os.close(src)
    os.close(dst)


def test_a_stream_cut_short_fails_on_both_sides(segments, outbox):
    """The holder's segment ends before the bytes it offered: the sender reports the
    error and the receiver sees the stream close early (as when a node dies)."""
    src_name, src = segments(1 << 20, b"y" * (1 << 20))
    _, dst = segments(4 << 20)
    key = outbox.offer(b"oid", src_name, src, 0, 4 << 20)
    with pytest.raises(ConnectionError, match=f"closed the stream at {1 << 20} of"):
        transfer.receive("127.0.0.1", outbox.port, TOKEN, key, dst, 0, 4 << 20, 1 << 20)
    assert outbox.done.wait(10)
    (_, error), = outbox.sent
    assert isinstance(error, ConnectionError) and "segment ended" in str(error)
    os.close(src)
    os.close(dst)


def test_the_number_of_streams_is_checked():
    assert transfer._streams(None) == 4 and transfer._streams("3") == 3
    for bad in ("0", "17", "many"):
        with pytest.raises(ValueError, match="MINRAY_TRANSFER_STREAMS must be"):
            transfer._streams(bad)


@pytest.mark.parametrize("size", [0, 1, 4097, (3 << 20) + 5],
                         ids=["0B", "1B", "page+1", "3MiB+5"])
def test_a_stream_into_a_reused_larger_segment_writes_exactly_its_bytes(segments, outbox,
                                                                         size):
    """A pull that lands in a pooled segment (larger, holding an old object's bytes)
    overwrites exactly its own part, in two parallel parts, and leaves the segment's
    size alone (a producer may still map all of it)."""
    cap = max(2 * size, 8192)
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    src_name, src = segments(max(size, 1), data)
    old = b"\xee" * cap
    dst_name, dst0 = segments(cap, old)
    os.close(dst0)
    dst = shm.open_fd_rw(dst_name)      # as a pull opens a pooled segment
    parts = transfer.split(size, 4096, 2)
    keys = [outbox.offer(b"oid", src_name, src, p.offset, p.size) for p in parts]
    threads = [threading.Thread(target=transfer.receive, args=(
        "127.0.0.1", outbox.port, TOKEN, key, dst, p.offset, p.size, 4096))
        for key, p in zip(keys, parts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert wait_for(lambda: len(outbox.sent) == len(parts))
        assert all(error is None for _, error in outbox.sent)
        assert os.fstat(dst).st_size == cap
        got = os.pread(dst, cap, 0)
        assert got[:size] == data and got[size:] == old[size:]
    finally:
        os.close(src)
        os.close(dst)


def test_the_holder_lets_go_of_its_segment_only_once_the_puller_has_every_byte(
        segments, outbox):
    """sendfile returns while the last bytes still sit in socket buffers that refer to
    the segment's pages: on_sent (which unpins the segment, so it may be reused)
    waits for the puller's word that all arrived, and a puller that vanishes first
    is an error, not a success."""
    size = 2 << 20
    src_name, src = segments(size, b"z" * size)
    for answer in (True, False):
        outbox.done.clear()
        outbox.sent.clear()
        key = outbox.offer(b"oid", src_name, src, 0, size)
        sock = transport.connect_tcp("127.0.0.1", outbox.port, TOKEN)
        try:
            sock.sendall(key)
            got = bytearray()
            while len(got) < size:
                chunk = sock.recv(size - len(got))
                assert chunk
                got += chunk
            assert bytes(got) == b"z" * size
            # Everything arrived, but the holder has not heard so: still pinned.
            assert not outbox.done.wait(0.3)
            if answer:
                sock.sendall(transfer.DONE)
        finally:
            sock.close()
        assert outbox.done.wait(10)
        (ticket, error), = outbox.sent
        assert ticket.name == src_name
        if answer:
            assert error is None
        else:
            assert isinstance(error, ConnectionError), error
    os.close(src)


def test_a_stream_into_a_new_segment_allocates_its_part_up_front(segments, outbox):
    """allocate=True (a new segment): each part's pages are allocated before its bytes
    arrive (one fallocate), and the bytes land exactly as without it."""
    size = (5 << 20) + 7
    data = np.random.default_rng(5).integers(0, 256, size, dtype=np.uint8).tobytes()
    src_name, src = segments(size, data)
    _, dst = segments(size)
    assert os.fstat(dst).st_blocks == 0         # a new segment has no pages yet
    parts = transfer.split(size, 1 << 20, 2)
    keys = [outbox.offer(b"oid", src_name, src, p.offset, p.size) for p in parts]
    for key, p in zip(keys, parts):
        transfer.receive("127.0.0.1", outbox.port, TOKEN, key, dst, p.offset, p.size,
                         1 << 20, allocate=True)
    try:
        assert os.fstat(dst).st_blocks * 512 >= size
        assert read_all(dst, size) == data
        assert wait_for(lambda: len(outbox.sent) == len(parts))
        assert all(error is None for _, error in outbox.sent)
    finally:
        os.close(src)
        os.close(dst)
