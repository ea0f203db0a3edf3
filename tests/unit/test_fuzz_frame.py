"""Fuzzing the message decoder: the frame codec (compiled and twin) and the
transport loop that turns frames into messages.

What must hold for any byte stream a peer can send:

* the codec returns frames or raises ProtocolError, nothing else, and the
  compiled module and its twin agree byte for byte (``test_frame.py`` checks
  well-formed streams; here the streams are hostile: corrupt lengths, junk,
  truncation, declared sizes far beyond what arrives);
* it never buffers more than it actually received;
* a ``transport.Loop`` fed such a stream closes only that connection (with the
  reason in ``conn.info["protocol_error"]``) and keeps serving the others.

The live node manager gets the same treatment in tests/faults/test_bad_input.py.
A coverage-guided atheris run (if atheris is installed) ends the file.
"""

import socket
import subprocess
import sys
import textwrap
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minray._ext
from minray._ext import errors
from minray._ext import frame_py as twin
from minray._private.net import transport


def codecs():
    out = [twin]
    if not minray._ext.NO_EXTENSIONS:
        import importlib
        out.append(importlib.import_module("minray._ext._frame"))
    return out


def run(codec, chunks, max_frame_size):
    """Feed ``chunks``; return ("ok", frames, pending) or ("error", message, frames)."""
    reader = codec.FrameReader(max_frame_size=max_frame_size)
    frames = []
    fed = 0
    for chunk in chunks:
        fed += len(chunk)
        try:
            frames += reader.feed(chunk)
        except errors.ProtocolError as exc:
            # Poisoned: every later feed raises too, and nothing stays buffered.
            assert reader.pending() == 0
            with pytest.raises(errors.ProtocolError):
                reader.feed(b"\x01\x00\x00\x00\x00")
            return ("error", str(exc), frames)
        # Never more buffered than received (no pre-allocation of a declared size).
        assert reader.pending() <= fed
        assert reader.pending() <= max_frame_size + 4
    return ("ok", frames, reader.pending())


def hostile_chunk():
    """Frames that are valid, oversized, zero-length, truncated, or plain junk."""
    good = st.builds(lambda k, p: twin.encode(k, p), st.integers(0, 255),
                     st.binary(max_size=64))
    bad_len = st.builds(lambda n, k: n.to_bytes(4, "little") + bytes([k]),
                        st.sampled_from([0, 0xFFFFFFFF, 1 << 31, (1 << 30) + 1, 70000, 65]),
                        st.integers(0, 255))
    truncated = good.map(lambda b: b[:max(1, len(b) // 2)])
    return st.one_of(good, bad_len, truncated, st.binary(max_size=32))


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(hostile_chunk(), max_size=12), st.sampled_from([1, 64, 1 << 16, 1 << 30]),
       st.data())
def test_hostile_streams_give_frames_or_protocol_error_identically(chunks, limit, data):
    # Re-chunk the stream at random boundaries: the result must not depend on them.
    stream = b"".join(chunks)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    pieces = [stream[a:b] for a, b in zip([0] + cuts, cuts + [len(stream)])]
    results = [run(codec, pieces, limit) for codec in codecs()]
    whole = run(twin, [stream], limit)
    for r in results:
        assert r == results[0]
    # Same verdict as feeding it in one piece (frames before an error are dropped
    # with the stream when the error is in the same feed, so compare verdicts only).
    assert whole[0] == results[0][0]


@pytest.mark.parametrize("codec", codecs(), ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_declared_huge_frame_costs_only_what_arrived(codec):
    import tracemalloc
    reader = codec.FrameReader()
    tracemalloc.start()
    try:
        reader.feed((1 << 30).to_bytes(4, "little") + b"\x03" + b"x" * 1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reader.pending() == 1005
    assert peak < 1 << 20


# -- the transport loop: one bad peer never harms the others -------------------


class LoopHarness:
    def __init__(self):
        self.loop = transport.Loop("fuzz-loop")
        self.loop.start()
        self.received = []
        self.closed = []

    def pair(self):
        a, b = socket.socketpair()
        conn = transport.Connection(b, buffered=True)
        self.loop.add_connection(conn, self.on_frame, self.closed.append)
        return a, conn

    def on_frame(self, conn, kind, msg):
        self.received.append((conn, kind, msg))

    def stop(self):
        self.loop.stop()
        self.loop.thread.join(5)


@pytest.fixture
def harness():
    h = LoopHarness()
    yield h
    h.stop()


def wait_for(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(hostile_chunk(), min_size=1, max_size=8))
def test_loop_survives_any_stream_and_closes_only_the_bad_peer(chunks):
    h = LoopHarness()
    try:
        bad, bad_conn = h.pair()
        good, good_conn = h.pair()
        for c in chunks:
            try:
                bad.sendall(c)
            except OSError:
                break  # the loop closed it already
        bad.close()   # truncation at the end of the stream, too
        assert wait_for(lambda: bad_conn in h.closed)
        # Frames that made it through are (kind, msg) pairs; junk payloads closed it.
        assert all(conn is bad_conn for conn, _, _ in h.received)
        # The other connection still works, on the same loop thread.
        good.sendall(transport.encode_msg(7, ("still", "alive")))
        assert wait_for(lambda: any(c is good_conn for c, _, _ in h.received))
        assert good_conn not in h.closed
        assert h.loop.thread.is_alive()
        good.close()
    finally:
        h.stop()


def test_undecodable_payload_closes_with_a_reason(harness):
    sock, conn = harness.pair()
    sock.sendall(transport.encode_msg(1, ("ok",)) + minray._ext.frame.encode(1, b"\x80junk"))
    assert wait_for(lambda: conn in harness.closed)
    assert "undecodable message" in conn.info["protocol_error"]
    assert [m for _, _, m in harness.received] == [("ok",)]
    sock.close()


def test_oversized_declared_length_closes_with_a_reason(harness):
    sock, conn = harness.pair()
    sock.sendall((0xFFFFFFFF).to_bytes(4, "little") + b"\x01")
    assert wait_for(lambda: conn in harness.closed)
    assert "outside the allowed" in conn.info["protocol_error"]
    sock.close()


# -- atheris (coverage-guided), when it is installed ------------------------------

ATHERIS_HARNESS = textwrap.dedent("""
    import sys, atheris
    with atheris.instrument_imports():
        from minray._ext import frame_py as twin
        from minray._ext import errors
    import importlib, minray._ext
    codecs = [twin]
    if not minray._ext.NO_EXTENSIONS:
        codecs.append(importlib.import_module("minray._ext._frame"))

    def one(codec, data, limit):
        r = codec.FrameReader(max_frame_size=limit)
        out = []
        try:
            for i in range(0, len(data), 7):
                out += r.feed(data[i:i + 7])
                assert r.pending() <= len(data)
        except errors.ProtocolError as exc:
            return ("error", str(exc))
        return ("ok", out, r.pending())

    def test_one_input(data):
        limit = 1 + (data[0] if data else 0) * 4
        results = [one(c, data[1:], limit) for c in codecs]
        assert all(r == results[0] for r in results), results

    atheris.Setup([sys.argv[0], "-runs=20000", "-max_len=256"], test_one_input)
    atheris.Fuzz()
""")


def test_atheris_fuzz_compiled_and_twin_agree(tmp_path):
    pytest.importorskip("atheris")
    script = tmp_path / "fuzz_frame.py"
    script.write_text(ATHERIS_HARNESS)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Done 20000 runs" in proc.stderr
