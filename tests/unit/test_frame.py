"""The frame codec, compiled (`minray._ext._frame`) and twin (`minray._ext.frame_py`).

Every behavioural test runs against both implementations through the `codec`
fixture; the property tests at the end feed both the same random streams and
require identical results. The compiled parametrization fails (it does not
skip) when the extension is not built, unless MINRAY_NO_EXTENSIONS=1 asks for
the twins only.
"""

import array
import doctest
import importlib
import os
import subprocess
import sys
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minray._ext
from minray._ext import errors
from minray._ext import frame_py as twin

NO_EXTENSIONS_REASON = "MINRAY_NO_EXTENSIONS=1: testing the pure-Python twins only"


def load_compiled():
    if minray._ext.NO_EXTENSIONS:
        pytest.skip(NO_EXTENSIONS_REASON)
    try:
        return importlib.import_module("minray._ext._frame")
    except ImportError as exc:
        pytest.fail(
            f"the compiled frame codec is not built ({exc}); build it with "
            f"`pip install -e .` or `python setup.py build_ext --inplace`, "
            f"or set MINRAY_NO_EXTENSIONS=1 to test the twins only",
            pytrace=False,
        )


@pytest.fixture(params=["compiled", "twin"])
def codec(request):
    return load_compiled() if request.param == "compiled" else twin


@pytest.fixture
def compiled():
    return load_compiled()


def decode_all(codec, data, chunk_sizes=None, **reader_options):
    """Feed `data` to a fresh reader (whole, or in chunks) and return all frames."""
    reader = codec.FrameReader(**reader_options)
    if chunk_sizes is None:
        frames = reader.feed(data)
    else:
        frames, pos = [], 0
        for size in chunk_sizes:
            frames += reader.feed(data[pos:pos + size])
            pos += size
        frames += reader.feed(data[pos:])
    assert reader.pending() == 0
    return frames


SAMPLE = [(0, b""), (1, b"a"), (7, b"hello world"), (255, bytes(range(256))), (42, b"\x00" * 5)]


# -- the public surface -------------------------------------------------------


def test_constants_and_shared_error_class(codec):
    assert codec.HEADER_SIZE == 5
    assert codec.MAX_FRAME_SIZE == 1 << 30
    assert codec.ProtocolError is errors.ProtocolError
    assert issubclass(codec.ProtocolError, Exception)
    assert codec.FrameReader().max_frame_size == 1 << 30
    assert set(codec.__all__) == set(twin.__all__)


def test_module_docstrings_are_the_same_wire_format_documentation(compiled):
    # The compiled docstring names itself differently in its first paragraph only.
    def wire_format(doc):
        return doc[doc.index("Wire format"):]

    assert "Wire format" in twin.__doc__
    assert wire_format(compiled.__doc__) == wire_format(twin.__doc__)


def test_twin_doctests():
    for module in (twin, errors, minray._ext):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, module.__name__


# -- encode ---------------------------------------------------------------------


def test_encode_layout(codec):
    assert codec.encode(7, b"hello") == b"\x06\x00\x00\x00\x07hello"
    assert codec.encode(0, b"") == b"\x01\x00\x00\x00\x00"
    big = bytes(70000)
    assert codec.encode(255, big) == (70001).to_bytes(4, "little") + b"\xff" + big


def test_encode_accepts_any_contiguous_buffer(codec):
    expected = codec.encode(3, b"abcdef")
    assert codec.encode(3, bytearray(b"abcdef")) == expected
    assert codec.encode(3, memoryview(b"xxabcdefxx")[2:-2]) == expected
    ints = array.array("i", [1, 2])
    assert codec.encode(3, ints) == codec.encode(3, ints.tobytes())


def test_encode_rejects_non_buffers(codec):
    with pytest.raises(TypeError):
        codec.encode(1, "text")
    with pytest.raises(TypeError):
        codec.encode(1, None)
    with pytest.raises(BufferError):
        codec.encode(1, memoryview(b"abcdef")[::2])


@pytest.mark.parametrize("kind", [-1, 256, 1000, -(2**70), 2**70])
def test_kind_out_of_range_is_value_error(codec, kind):
    with pytest.raises(ValueError, match=f"0..255, got {kind}"):
        codec.encode(kind, b"")
    with pytest.raises(ValueError, match="0..255"):
        codec.encode_many([(1, b"ok"), (kind, b"")])


@pytest.mark.parametrize("kind", [1.0, "1", None, b"\x01"])
def test_kind_of_wrong_type_is_type_error(codec, kind):
    with pytest.raises(TypeError):
        codec.encode(kind, b"")


def test_kind_accepts_index_types(codec):
    class Kind:
        def __index__(self):
            return 9

    assert codec.encode(Kind(), b"x") == codec.encode(9, b"x")
    assert codec.encode(True, b"x") == codec.encode(1, b"x")


def test_encode_many_is_concatenation(codec):
    assert codec.encode_many([]) == b""
    expected = b"".join(codec.encode(k, p) for k, p in SAMPLE)
    assert codec.encode_many(SAMPLE) == expected
    assert codec.encode_many(tuple(SAMPLE)) == expected
    assert codec.encode_many(iter(SAMPLE)) == expected
    assert codec.encode_many([(k, bytearray(p)) for k, p in SAMPLE]) == expected


def test_encode_many_rejects_malformed_items(codec):
    with pytest.raises(ValueError):
        codec.encode_many([(1,)])
    with pytest.raises(TypeError):
        codec.encode_many([(1, "text")])
    with pytest.raises(TypeError):
        codec.encode_many([5])


# -- FrameReader: reassembly --------------------------------------------------------


def test_round_trip(codec):
    data = codec.encode_many(SAMPLE)
    assert decode_all(codec, data) == SAMPLE
    for kind, payload in SAMPLE:
        assert decode_all(codec, codec.encode(kind, payload)) == [(kind, payload)]


def test_frames_are_tuples_of_int_and_bytes(codec):
    ((kind, payload),) = codec.FrameReader().feed(bytearray(codec.encode(5, b"ab")))
    assert type(kind) is int and type(payload) is bytes


def test_split_at_every_byte_boundary(codec):
    data = codec.encode_many(SAMPLE)
    for cut in range(len(data) + 1):
        assert decode_all(codec, data, [cut]) == SAMPLE, cut


def test_split_at_every_pair_of_boundaries(codec):
    data = codec.encode_many(SAMPLE[:3])
    for first in range(len(data) + 1):
        for second in range(len(data) - first + 1):
            assert decode_all(codec, data, [first, second]) == SAMPLE[:3]


def test_one_byte_at_a_time(codec):
    data = codec.encode_many(SAMPLE)
    reader = codec.FrameReader()
    frames = []
    for i in range(len(data)):
        got = reader.feed(data[i:i + 1])
        frames += got
        if got:
            assert reader.pending() == 0
    assert frames == SAMPLE


def test_many_frames_in_one_feed(codec):
    sent = [(i % 256, i.to_bytes(4, "little") * (i % 7)) for i in range(10000)]
    data = codec.encode_many(sent)
    assert decode_all(codec, data) == sent
    assert decode_all(codec, data, [3, 1000, 77777]) == sent


def test_large_frame_in_small_chunks(codec):
    payload = os.urandom(1 << 20)
    data = codec.encode(9, payload) + codec.encode(10, b"after")
    assert decode_all(codec, data, [4096] * (len(data) // 4096)) == [(9, payload), (10, b"after")]


def test_pending_counts_unreturned_bytes(codec):
    data = codec.encode(1, b"abc") + codec.encode(2, b"de")
    reader = codec.FrameReader()
    assert reader.pending() == 0
    assert reader.feed(data[:2]) == []
    assert reader.pending() == 2
    assert reader.feed(data[2:10]) == [(1, b"abc")]
    assert reader.pending() == 2
    assert reader.feed(b"") == []
    assert reader.pending() == 2
    assert reader.feed(data[10:]) == [(2, b"de")]
    assert reader.pending() == 0


def test_accepts_bytes_like_data(codec):
    data = codec.encode_many(SAMPLE)
    assert decode_all(codec, bytearray(data)) == SAMPLE
    assert decode_all(codec, memoryview(data)) == SAMPLE
    assert decode_all(codec, memoryview(b"junk" + data)[4:]) == SAMPLE
    with pytest.raises(TypeError):
        codec.FrameReader().feed("text")


def test_keeps_no_reference_to_fed_data(codec):
    data = codec.encode(1, b"abcdef")
    received = bytearray(data[:7])
    reader = codec.FrameReader()
    assert reader.feed(received) == []
    received[:] = b"\xff" * len(received)  # the caller reuses its receive buffer
    assert reader.feed(data[7:]) == [(1, b"abcdef")]


def test_does_not_preallocate_the_declared_length(codec):
    header = (1 << 30).to_bytes(4, "little") + b"\x01"
    reader = codec.FrameReader()
    tracemalloc.start()
    try:
        assert reader.feed(header + bytes(100)) == []
        assert reader.feed(bytes(1000)) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reader.pending() == 1105
    assert peak < 64 * 1024


# -- FrameReader: protocol errors ---------------------------------------------------


def test_oversize_length_raises_naming_length_and_limit(codec):
    reader = codec.FrameReader(max_frame_size=10)
    assert reader.feed(codec.encode(1, bytes(9))) == [(1, bytes(9))]  # N == 10: allowed
    with pytest.raises(codec.ProtocolError, match=r"length 11\b.*1\.\.10 \(max_frame_size=10\)"):
        reader.feed(codec.encode(1, bytes(10)))


def test_default_limit_is_one_gib(codec):
    with pytest.raises(codec.ProtocolError, match=str((1 << 30) + 1)):
        codec.FrameReader().feed(((1 << 30) + 1).to_bytes(4, "little"))
    assert codec.FrameReader().feed((1 << 30).to_bytes(4, "little")) == []


def test_zero_length_raises(codec):
    with pytest.raises(codec.ProtocolError, match="length 0,"):
        codec.FrameReader().feed(b"\x00\x00\x00\x00")


def test_error_is_raised_as_soon_as_the_length_arrives(codec):
    reader = codec.FrameReader(max_frame_size=100)
    for byte in b"\xff\xff\xff":
        assert reader.feed(bytes([byte])) == []
    with pytest.raises(codec.ProtocolError, match="4294967295"):
        reader.feed(b"\xff")


def test_error_after_good_frames_in_the_same_feed(codec):
    data = codec.encode(1, b"good") + b"\x00\x00\x00\x00" + codec.encode(2, b"never")
    with pytest.raises(codec.ProtocolError):
        codec.FrameReader().feed(data)


def test_error_while_completing_a_buffered_header(codec):
    reader = codec.FrameReader(max_frame_size=8)
    assert reader.feed(codec.encode(1, b"ok") + b"\x09\x00") == [(1, b"ok")]
    with pytest.raises(codec.ProtocolError, match="length 9,"):
        reader.feed(b"\x00\x00\x01")


def test_reader_is_poisoned_after_an_error(codec):
    reader = codec.FrameReader(max_frame_size=4)
    assert reader.feed(codec.encode(1, b"abc") + b"\x05\x00") == [(1, b"abc")]
    with pytest.raises(codec.ProtocolError, match="length 5,"):
        reader.feed(b"\x00\x00\x01")
    for data in (b"", codec.encode(1, b"ok"), b"\x01"):
        with pytest.raises(codec.ProtocolError, match="unusable after an earlier protocol error"):
            reader.feed(data)
    assert reader.pending() == 0


@pytest.mark.parametrize("size", [0, -1, -(2**70)])
def test_max_frame_size_must_be_positive(codec, size):
    with pytest.raises(ValueError, match=f"at least 1, got {size}"):
        codec.FrameReader(max_frame_size=size)


def test_max_frame_size_type_and_huge_values(codec):
    with pytest.raises(TypeError):
        codec.FrameReader(max_frame_size="10")
    with pytest.raises(TypeError):
        codec.FrameReader(max_frame_size=10.0)
    reader = codec.FrameReader(max_frame_size=2**70)  # larger than N can express
    assert reader.max_frame_size == 2**70
    assert reader.feed(b"\xff\xff\xff\xff\x00") == []
    assert reader.pending() == 5


# -- selection between compiled and twin --------------------------------------------


def selected(env_value):
    env = {k: v for k, v in os.environ.items() if k != "MINRAY_NO_EXTENSIONS"}
    if env_value is not None:
        env["MINRAY_NO_EXTENSIONS"] = env_value
    code = "import minray._ext as e; print(e.frame.__name__, e.USING_EXTENSIONS)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.split()


def test_no_extensions_selects_the_twin():
    assert selected("1") == ["minray._ext.frame_py", "False"]


def test_extensions_are_used_by_default(compiled):
    assert selected(None) == ["minray._ext._frame", "True"]
    assert selected("0") == ["minray._ext._frame", "True"]


# -- compiled and twin agree on random inputs ---------------------------------------

KINDS = st.integers(0, 255)
FRAMES = st.lists(st.tuples(KINDS, st.binary(max_size=80)), max_size=16)
LIMITS = st.one_of(st.integers(1, 300), st.sampled_from([1 << 30, 2**32 - 1, 2**40]))
BUFFER_TYPES = st.sampled_from([bytes, bytearray, memoryview])


@st.composite
def streams(draw):
    """A byte stream (valid, damaged or garbage) cut into random chunks."""
    data = twin.encode_many(draw(FRAMES))
    damage = draw(st.sampled_from(["none", "garbage tail", "garbage", "flipped byte"]))
    if damage == "garbage tail":
        data += draw(st.binary(max_size=40))
    elif damage == "garbage":
        data = draw(st.binary(max_size=120))
    elif damage == "flipped byte" and data:
        i = draw(st.integers(0, len(data) - 1))
        data = data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1:]
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    bounds = [0, *cuts, len(data)]
    return [draw(BUFFER_TYPES)(data[a:b]) for a, b in zip(bounds, bounds[1:])]


def outcomes(codec, chunks, max_frame_size):
    """What a reader returns, or the ProtocolError it raises, for each feed."""
    reader = codec.FrameReader(max_frame_size=max_frame_size)
    results = []
    for chunk in [*chunks, b""]:  # the last, empty feed shows any poisoning
        try:
            results.append(("frames", reader.feed(chunk), reader.pending()))
        except errors.ProtocolError as exc:
            results.append(("ProtocolError", str(exc), reader.pending()))
    return results


@settings(max_examples=200, deadline=None)
@given(chunks=streams(), max_frame_size=LIMITS)
def test_compiled_and_twin_read_streams_identically(chunks, max_frame_size):
    compiled = load_compiled()
    assert outcomes(compiled, chunks, max_frame_size) == outcomes(twin, chunks, max_frame_size)


@settings(max_examples=200, deadline=None)
@given(frames=st.lists(st.tuples(st.integers(-300, 600), st.binary(max_size=80)), max_size=8))
def test_compiled_and_twin_encode_identically(frames):
    compiled = load_compiled()

    def attempt(codec):
        try:
            return codec.encode_many(frames), [codec.encode(k, p) for k, p in frames]
        except ValueError as exc:
            return "ValueError", str(exc)

    assert attempt(compiled) == attempt(twin)


# The codec fixture is a module, the same for every example.
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(frames=FRAMES, data=st.data())
def test_round_trip_in_random_chunks(codec, frames, data):
    stream = codec.encode_many(frames)
    sizes = data.draw(st.lists(st.integers(0, len(stream) + 1), max_size=10))
    assert decode_all(codec, stream, sizes) == frames
