"""Stoppers driven directly (no runtime needed)."""
import time

import pytest

from minray import tune
from minray.tune.stopper import (CombinedStopper, ExperimentPlateauStopper, FunctionStopper,
                                 MaximumIterationStopper, TimeoutStopper, TrialPlateauStopper,
                                 make_stopper)


def test_make_stopper_accepts_dict_function_and_stopper():
    assert make_stopper(None) is None
    dict_stop = make_stopper({"loss": 3})
    assert not dict_stop("t", {"loss": 2}) and dict_stop("t", {"loss": 3})
    assert isinstance(make_stopper(lambda tid, r: True), FunctionStopper)
    custom = MaximumIterationStopper(2)
    assert make_stopper(custom) is custom
    with pytest.raises(TypeError, match="dict, a function"):
        make_stopper(42)


def test_plateau_stoppers():
    stop = TrialPlateauStopper("m", std=0.01, num_results=3, grace_period=3)
    assert [stop("a", {"m": v}) for v in (5, 1, 1, 1)] == [False, False, False, True]
    assert not stop("b", {"m": 1})  # per trial
    exp = ExperimentPlateauStopper("m", top=2, std=0.001, mode="max", patience=1)
    results = [exp("t", {"m": v}) for v in (1.0, 2.0, 2.0, 2.0)]
    assert results == [False, False, False, True] and exp.stop_all()


def test_timeout_and_combined():
    timeout = TimeoutStopper(0.05)
    assert not timeout.stop_all()
    time.sleep(0.06)
    assert timeout.stop_all()
    combined = CombinedStopper(MaximumIterationStopper(3), FunctionStopper(
        lambda tid, r: r["x"] > 10))
    assert [combined("t", {"x": x}) for x in (1, 11)] == [False, True]
    assert combined("t", {"x": 0})  # the third result hits the iteration limit
    with pytest.raises(ValueError, match="positive"):
        TimeoutStopper(0)
    assert issubclass(MaximumIterationStopper, tune.Stopper)
