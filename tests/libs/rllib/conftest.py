"""One minray runtime per test module; torch uses one thread (a 2-CPU box).

Env classes defined in these test modules are pickled by reference, so env-runner
actors must import them: this folder goes on PYTHONPATH before the runtime starts.
"""
import os

import pytest
import torch

import minray


@pytest.fixture(scope="module", autouse=True)
def rllib_runtime():
    if minray.is_initialized():
        minray.shutdown()
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.environ.get("PYTHONPATH", "")
    if here not in path.split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, path) if p)
    minray.init(num_cpus=4)
    yield
    minray.shutdown()
    torch.set_num_threads(previous)
