"""The object store under pressure: ten times its capacity through it, and a
full spill disk. Every value reads back bit-exact; nothing is left behind.
"""

import hashlib
import json
import os
import subprocess

import numpy as np
import pytest

import minray as ray

pytestmark = pytest.mark.slow

MiB = 1 << 20


def digest(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def spill_config(path):
    return {"object_spilling_config": json.dumps(
        {"type": "filesystem", "params": {"directory_path": str(path)}})}


@ray.remote
def make(seed, nbytes):
    return np.random.default_rng(seed).integers(0, 255, nbytes, dtype=np.uint8)


@ray.remote
def checksum(a):
    return digest(a)


def test_ten_times_the_capacity_spills_and_restores_bit_exact(ray_init, tmp_path):
    capacity = 32 * MiB
    ray_init(num_cpus=2, object_store_memory=capacity,
             _system_config=spill_config(tmp_path))
    refs, sums = [], []
    # Half from put, half from tasks; 10x the store's capacity in all.
    for i in range(40):
        if i % 2:
            a = np.random.default_rng(i).integers(0, 255, 8 * MiB, dtype=np.uint8)
            refs.append(ray.put(a))
        else:
            refs.append(make.remote(i, 8 * MiB))
            a = np.random.default_rng(i).integers(0, 255, 8 * MiB, dtype=np.uint8)
        sums.append(digest(a))
        if i % 8 == 7:
            # Reading old objects back in the middle of the loop (restore) works too.
            assert digest(ray.get(refs[i - 7])) == sums[i - 7]
    stats = ray._private.state.current_client().call("object_stats")
    assert stats["num_spilled"] > 0
    assert stats["shm_bytes"] <= capacity * 1.01
    spill_root = [p for p in tmp_path.iterdir() if p.name.startswith("minray-spill-")]
    assert spill_root and any(spill_root[0].iterdir())
    # Every value, in a shuffled order, in the driver and in a worker.
    order = np.random.default_rng(0).permutation(len(refs))
    for i in order:
        assert digest(ray.get(refs[i])) == sums[i], i
    assert ray.get([checksum.remote(refs[i]) for i in order[:10]]) == \
        [sums[i] for i in order[:10]]
    assert ray._private.state.current_client().call("object_stats")["num_restored"] > 0
    ray.shutdown()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("minray-spill-")], \
        "the spill directory was not removed at shutdown"


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs: a disk that fills up for real (ENOSPC)."""
    path = tmp_path / "disk"
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(path)],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.decode().strip()}")
    yield path
    ray.shutdown()
    subprocess.run(["umount", "-l", str(path)])


def test_full_spill_disk_keeps_objects_in_memory_and_warns(ray_init, small_disk, capfd):
    capacity = 16 * MiB
    ray_init(num_cpus=2, object_store_memory=capacity,
             _system_config=spill_config(small_disk))
    arrays = [np.full(6 * MiB, i, dtype=np.uint8) for i in range(8)]
    refs = [ray.put(a) for a in arrays]
    stats = ray._private.state.current_client().call("object_stats")
    assert stats["num_spill_failures"] > 0
    assert "No space left on device" in stats["spill_error"]
    # Nothing is lost: what did not fit on the disk stayed in shared memory.
    for a, r in zip(arrays, refs):
        assert np.array_equal(ray.get(r), a)
    assert ray.get(checksum.remote(refs[-1])) == digest(arrays[-1])
    err = capfd.readouterr().err
    assert "could not spill objects to disk" in err and "No space left on device" in err
