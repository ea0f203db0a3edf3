"""minray.tune: hyperparameter search, each trial a minray actor (Ray Tune's API).

    from minray import tune

    def train(config):
        for step in range(10):
            tune.report({"score": config["x"] * step})

    tuner = tune.Tuner(train, param_space={"x": tune.uniform(0, 1)},
                       tune_config=tune.TuneConfig(metric="score", mode="max", num_samples=4))
    print(tuner.fit().get_best_result().config)

Layout: tuner.py (Tuner) and analysis.py (tune.run) build a runner.py
TrialRunner, which drives trial_worker.py actors and consults search/,
schedulers/, stopper.py and callback.py; experiment_state.py and logger.py
write the experiment directory; result_grid.py reads the outcome.
"""

from . import schedulers, search
from .analysis import ExperimentAnalysis, TuneError, run
from .callback import Callback
from .checkpoint import Checkpoint
from .config import CheckpointConfig, FailureConfig, RunConfig, TuneConfig
from .progress import CLIReporter
from .result_grid import Result, ResultGrid
from .search.sample import (choice, grid_search, lograndint, loguniform, qlograndint,
                            qloguniform, qrandint, qrandn, quniform, randint, randn,
                            sample_from, uniform)
from .session import TuneContext, get_checkpoint, get_context, report
from .stopper import Stopper
from .trainable import Trainable, with_parameters, with_resources
from .tuner import Tuner


class PlacementGroupFactory:
    """Resources of one trial as bundles; the trial's actor takes the first bundle::

        tune.with_resources(train, tune.PlacementGroupFactory([{"CPU": 2}]))
    """

    def __init__(self, bundles, strategy="PACK", **kwargs):
        self.bundles = [dict(b) for b in bundles]
        self.strategy = strategy

    def required_resources(self):
        total = {}
        for bundle in self.bundles:
            for k, v in bundle.items():
                total[k] = total.get(k, 0) + v
        return total


__all__ = [
    "CLIReporter", "Callback", "Checkpoint", "CheckpointConfig", "ExperimentAnalysis",
    "FailureConfig", "PlacementGroupFactory", "Result", "ResultGrid", "RunConfig", "Stopper",
    "Trainable", "TuneConfig", "TuneContext", "TuneError", "Tuner", "choice",
    "get_checkpoint", "get_context", "grid_search", "lograndint", "loguniform",
    "qlograndint", "qloguniform", "qrandint", "qrandn", "quniform", "randint", "randn",
    "report", "run", "sample_from", "schedulers", "search", "uniform", "with_parameters",
    "with_resources",
]
