"""Places where a user notices whether minray behaves like Ray 2.60 (issue 13).

Each test pins one semantic that Ray's own tests (python/ray/tests/test_basic*.py,
test_actor*.py, test_cancel.py, test_generators.py, test_runtime_context.py ...)
pin down, rewritten for minray. Most share one runtime (``ray_module``).
"""
import asyncio
import os
import time

import pytest

import minray as ray
from helpers import wait_until


@ray.remote
def _boom(msg="upstream"):
    raise ValueError(msg)


@ray.remote
class _Doubler:
    def f(self, x):
        return x * 2


# ------------------------------------------------- bugs that lose work (a)
def test_failed_argument_keeps_actor_call_order(ray_module):
    a = _Doubler.remote()
    bad = _boom.remote()
    first = a.f.remote(bad)
    queued = [a.f.remote(i) for i in range(3)]     # behind the failed call
    with pytest.raises(ValueError, match="upstream"):
        ray.get(first, timeout=30)
    assert ray.get(queued, timeout=30) == [0, 2, 4]
    with pytest.raises(ValueError, match="upstream"):
        ray.get(a.f.remote(x=bad), timeout=30)
    assert ray.get(a.f.remote(21), timeout=30) == 42
