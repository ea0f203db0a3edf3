"""Map workers keep freed block-sized buffers (heap.py): the next block's arrays reuse
them instead of faulting fresh pages in (the cost that held map_batches at Ray's speed)."""
import resource
import subprocess
import sys

import numpy as np
import pytest

import minray as ray
import minray.data

pytestmark = pytest.mark.usefixtures("ray_module")

_REALLOC_FAULTS = """
import resource, sys
import numpy as np
from minray.data.heap import retain_freed_blocks
applied = retain_freed_blocks(int(sys.argv[1]))
np.ones(64 << 18, dtype=np.float32)             # 64 MiB, freed at once
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
np.ones(64 << 18, dtype=np.float32)
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(cache):
    out = subprocess.run([sys.executable, "-c", _REALLOC_FAULTS, str(cache)],
                         capture_output=True, text=True, check=True).stdout.split()
    return out[0] == "True", int(out[1])


def test_retained_heap_reuses_a_freed_block_without_page_faults():
    applied, faults = _faults(512 << 20)
    assert applied
    off_applied, off_faults = _faults(0)
    assert not off_applied
    assert faults < 16 <= off_faults, (faults, off_faults)


def _second_alloc_faults(batch):
    np.ones(64 << 18, dtype=np.float32)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    np.ones(64 << 18, dtype=np.float32)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    return {"faults": np.full(len(batch["id"]), faults)}


def test_map_tasks_run_with_the_retained_heap():
    assert ray.data.DataContext.get_current().worker_heap_cache_bytes > 64 << 20
    faults = ray.data.range(4, override_num_blocks=2).map_batches(
        _second_alloc_faults).take_all()
    assert all(r["faults"] < 16 for r in faults), faults
