"""One minray runtime per test module; torch uses one thread (a 2-CPU box)."""
import pytest
import torch

import minray


@pytest.fixture(scope="module", autouse=True)
def rllib_runtime():
    if minray.is_initialized():
        minray.shutdown()
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    minray.init(num_cpus=4)
    yield
    minray.shutdown()
    torch.set_num_threads(previous)
