"""A worker killed with SIGKILL leaves no shared memory behind."""
import os
import signal
import time

import numpy as np

import minray as ray


def _segments(prefix):
    return {n for n in os.listdir("/dev/shm") if n.startswith(prefix)}


@ray.remote
class Holder:
    def make(self):
        from minray._private.objects import shm
        from minray._private import state
        client = state.current_client()
        # A value this worker owns (256 KiB: below the reuse pool's size) ...
        self.ref = ray.put(np.ones(256 * 1024 // 8))
        # ... and a segment left unsealed, as a crash in the middle of a put leaves it.
        shm.create(f"{client.segment_prefix}unsealed", 4096).close()
        return os.getpid(), client.segment_prefix


def test_sigkilled_worker_leaves_no_segments(ray_start_regular):
    holder = Holder.remote()
    pid, prefix = ray.get(holder.make.remote())
    assert len(_segments(prefix)) == 2
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _segments(prefix) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _segments(prefix) == set()
