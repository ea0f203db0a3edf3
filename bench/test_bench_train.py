"""pytest-benchmark case for minray.train: ``pytest bench/test_bench_train.py --benchmark-only``.

A small version of bench/train_compare.py (the side-by-side figures against
plain DDP and Ray Train come from ``python -m bench.train_compare``).
"""
import pytest

import minray
from minray.train import RunConfig, ScalingConfig
from minray.train.torch import TorchTrainer

from bench.train_compare import _trainer_loop


@pytest.fixture(scope="module")
def runtime():
    if minray.is_initialized():
        minray.shutdown()
    minray.init(num_cpus=2)
    yield minray
    minray.shutdown()


def test_torch_trainer_2_workers_3_epochs(benchmark, runtime, tmp_path):
    def fit():
        return TorchTrainer(_trainer_loop, train_loop_config={"lib": "minray", "epochs": 3},
                            scaling_config=ScalingConfig(num_workers=2),
                            run_config=RunConfig(storage_path=str(tmp_path), verbose=0)).fit()
    result = benchmark.pedantic(fit, rounds=2, iterations=1)
    assert result.metrics["epoch"] == 2 and result.metrics["loss"] < 0.7
