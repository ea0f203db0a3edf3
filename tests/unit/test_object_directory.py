"""The object directory's reference counting, spilling and segment reuse (no processes)."""
import os

import pytest

from minray._private.objects import shm
from minray._private.objects.directory import ObjectDirectory

MiB = 1 << 20


@pytest.fixture
def directory(tmp_path):
    d = ObjectDirectory(capacity=8 * MiB, spill_dir=str(tmp_path / "spill"),
                        segment_prefix=f"mrtest{os.getpid()}_")
    yield d
    d.shutdown()


def make_segment(d, name, size, fill):
    buf = shm.create(name, size)
    buf[:] = bytes([fill]) * size
    buf.close()


def test_inline_object_lives_while_borrowed_and_held(directory):
    d = directory
    d.publish(b"o1", b"owner", b"P" + b"N.")
    d.borrow(b"o1", b"b1")
    d.hold([b"o1"], b"outer")
    assert d.owner_release(b"o1") == []
    assert d.unborrow(b"o1", b"b1") == []
    assert d.release_holds(b"outer") == [b"o1"]
    assert b"o1" not in d.entries


def test_waiters_are_answered_when_the_value_arrives(directory):
    d = directory
    assert d.locate(b"o2", "waiter") is None
    ready = d.publish(b"o2", b"owner", b"PX")
    assert ready == [("waiter", ("inline", b"PX"))]


def test_owner_death_fails_pending_objects(directory):
    d = directory
    d.locate(b"p", "w")
    d.publish(b"p", b"dead", None)
    ready, _ = d.fail_owned_by(b"dead", lambda oid: b"E" + oid)
    assert ready == [("w", ("inline", b"Ep"))]


def test_spill_and_restore_keep_bytes_exact(directory):
    d = directory
    names = []
    for i in range(5):
        name = f"{d.segment_prefix}{i}"
        make_segment(d, name, 3 * MiB, fill=i)
        names.append(name)
        d.seal(bytes([i]) * 20, name, 3 * MiB, b"owner")
    assert d.num_spilled >= 2 and d.used <= d.capacity
    for i in range(5):
        kind, seg, size = d.locate(bytes([i]) * 20, None)
        buf = shm.attach(seg)
        assert buf[:3 * MiB] == bytes([i]) * (3 * MiB)
        buf.close()
    assert d.num_restored >= 1


def test_freed_segment_is_reused_only_when_nobody_maps_it(directory):
    d = directory
    name = f"{d.segment_prefix}pool"
    make_segment(d, name, 2 * MiB, fill=7)
    d.seal(b"a" * 20, name, 2 * MiB, b"owner")
    d.mapped(name)                          # a reader still has a view of it
    d.owner_release(b"a" * 20)
    assert d.alloc(2 * MiB) is None         # not reusable while mapped
    d.unmapped(name)
    assert d.alloc(2 * MiB) == name         # now it is
    assert d.alloc(2 * MiB) is None
    shm.unlink(name)


def test_a_pointer_to_another_nodes_copy_becomes_one_pull(directory):
    """S<size>@ip:port records where the bytes are; the first locate starts the one
    pull, later ones wait on it, and the pulled segment answers them all."""
    from minray._private.objects import serialization
    d = directory
    size = 3 * MiB
    d.publish(b"r1", b"owner", serialization.remote_blob(size, "10.0.0.2:7000"))
    assert d.locate(b"r1", "w1") == ("remote", "10.0.0.2:7000", size)
    assert d.locate(b"r1", "w2") is None          # joins the pull under way
    assert d.want_pull(b"r1") is None             # and no second pull starts
    name = f"mrtest{os.getpid()}_pulled"
    make_segment(d, name, size, 7)
    ready = d.pulled(b"r1", name, size)
    assert [w for w, _ in ready] == ["w1", "w2"]
    assert ready[0][1] == ("shm", name, size)
    assert d.stats()["num_pulls"] == 1 and d.locate(b"r1", "w3") == ("shm", name, size)


def test_a_failed_pull_leaves_the_entry_pending_and_hands_back_its_waiters(directory):
    from minray._private.objects import serialization
    d = directory
    d.locate(b"r2", "w1")        # asked for before anyone said where it is
    d.publish(b"r2", b"owner", serialization.remote_blob(2 * MiB, "10.0.0.3:7000"))
    assert d.want_pull(b"r2") == ("remote", "10.0.0.3:7000", 2 * MiB)
    assert d.pull_failed(b"r2") == ["w1"]
    assert d.locate(b"r2", "w2") is None          # pending: a new pointer or an error


def test_freeing_an_object_others_copied_names_the_copies(directory):
    d = directory
    name = f"mrtest{os.getpid()}_src"
    make_segment(d, name, 2 * MiB, 1)
    d.seal(b"c1", name, 2 * MiB, b"owner")
    d.entries[b"c1"].copies = {"peer-b"}
    assert d.owner_release(b"c1") == [b"c1"]
    assert d.freed_copies == [(b"c1", {"peer-b"})]


def segments_named(prefix):
    return set(shm.list_segments(prefix))


def test_the_pool_bound_comes_from_its_knob_and_is_checked():
    from minray._private.objects.directory import pool_limit_from
    assert pool_limit_from(None, 8 * MiB) == 4 * MiB          # default: half the store
    assert pool_limit_from("", 8 * MiB) == 4 * MiB
    assert pool_limit_from("0", 8 * MiB) == 0                 # pooling off
    assert pool_limit_from(str(3 * MiB), 8 * MiB) == 3 * MiB
    assert pool_limit_from(str(64 * MiB), 8 * MiB) == 8 * MiB  # never past the store
    for bad in ("-1", "lots", "1.5"):
        with pytest.raises(ValueError, match="MINRAY_OBJECT_POOL_BYTES"):
            pool_limit_from(bad, 8 * MiB)


def test_the_pool_is_bounded_and_counted_in_the_stores_memory(tmp_path, monkeypatch):
    """Freed segments join the pool only up to its bound and while objects plus pool
    fit the capacity; a seal that needs the room lets the whole pool go; shutdown
    removes the pool's segments from /dev/shm."""
    monkeypatch.setenv("MINRAY_OBJECT_POOL_BYTES", str(5 * MiB))
    prefix = f"mrtest{os.getpid()}b_"
    d = ObjectDirectory(capacity=8 * MiB, spill_dir=str(tmp_path / "spill"),
                        segment_prefix=prefix)
    try:
        assert d.pool_limit == 5 * MiB
        for i in range(3):
            make_segment(d, f"{prefix}s{i}", 2 * MiB, fill=i)
            d.seal(bytes([i]) * 20, f"{prefix}s{i}", 2 * MiB, b"owner")
        assert d.used == 6 * MiB
        for i in range(3):
            d.owner_release(bytes([i]) * 20)
        # Two fit the 5 MiB bound; the third was removed, not kept.
        assert (d.used, d.pool_bytes, d.stats()["pool_bytes"]) == (0, 4 * MiB, 4 * MiB)
        assert segments_named(prefix) == {f"{prefix}s0", f"{prefix}s1"}
        # 6 MiB of new objects + 4 MiB of pool > 8 MiB: the pool goes first.
        make_segment(d, f"{prefix}big", 6 * MiB, fill=9)
        d.seal(b"big" * 7, f"{prefix}big", 6 * MiB, b"owner")
        assert d.pool_bytes == 0 and d.used == 6 * MiB and d.num_spilled == 0
        assert segments_named(prefix) == {f"{prefix}big"}
        d.owner_release(b"big" * 7)
        assert d.pool_bytes == 0      # 6 MiB is past the 5 MiB bound: removed
        make_segment(d, f"{prefix}p", 2 * MiB, fill=1)
        d.seal(b"p" * 20, f"{prefix}p", 2 * MiB, b"owner")
        d.owner_release(b"p" * 20)
        assert d.pool_bytes == 2 * MiB
    finally:
        d.shutdown()
    assert segments_named(prefix) == set()


def test_a_pull_lands_in_a_pooled_segment_and_keeps_its_size(directory):
    """alloc hands a pull a pooled segment of size .. 2*size; the sealed entry counts
    the whole segment (it is all in use) while pulled_bytes counts the object."""
    from minray._private.objects import serialization
    d = directory
    name = f"{d.segment_prefix}old"
    make_segment(d, name, 3 * MiB, fill=5)
    d.seal(b"o" * 20, name, 3 * MiB, b"owner")
    d.owner_release(b"o" * 20)
    assert d.pool_bytes == 3 * MiB
    payload = 2 * MiB + 12345
    d.publish(b"r3", b"owner", serialization.remote_blob(payload, "10.0.0.2:7000"))
    assert d.locate(b"r3", "w1")[0] == "remote"
    assert d.alloc(payload) == name and d.pool_bytes == 0 and d.num_reused == 1
    ready = d.pulled(b"r3", name, payload, 3 * MiB)
    assert ready == [("w1", ("shm", name, 3 * MiB))]
    assert d.used == 3 * MiB and d.pulled_bytes == payload
    d.owner_release(b"r3")
    assert d.pool_bytes == 3 * MiB and d.used == 0     # back in the pool


def test_a_segment_of_a_pull_nobody_wants_goes_back_to_the_pool(directory):
    d = directory
    name = f"{d.segment_prefix}half"
    make_segment(d, name, 2 * MiB, fill=3)
    d.recycle(name, 2 * MiB)            # a failed pull's pooled segment
    assert d.pool_bytes == 2 * MiB and shm.exists(name)
    tiny = f"{d.segment_prefix}tiny"
    make_segment(d, tiny, 4096, fill=3)
    d.recycle(tiny, 4096)               # below POOL_MIN_BYTES: removed
    assert not shm.exists(tiny)
    # A pull that finished after its object was freed: its segment is free space.
    other = f"{d.segment_prefix}late"
    make_segment(d, other, 2 * MiB, fill=4)
    assert d.pulled(b"gone", other, 2 * MiB) == []
    assert d.pool_bytes == 4 * MiB and shm.exists(other)


def test_a_new_segment_that_would_not_fit_beside_the_pool_lets_the_pool_go(directory):
    d = directory                       # 8 MiB store, pool of at most 4 MiB
    name = f"{d.segment_prefix}kept"
    make_segment(d, name, 3 * MiB, fill=2)
    d.seal(b"k" * 20, name, 3 * MiB, b"owner")
    d.owner_release(b"k" * 20)
    assert d.pool_bytes == 3 * MiB
    d.make_room(5 * MiB)                # 0 + 3 + 5 <= 8: the pool stays
    assert d.pool_bytes == 3 * MiB and shm.exists(name)
    d.make_room(6 * MiB)                # 3 + 6 > 8: its pages go back to tmpfs first
    assert d.pool_bytes == 0 and not shm.exists(name)
