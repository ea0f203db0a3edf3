"""Search algorithms: ``from minray.tune.search import BasicVariantGenerator`` (Ray's names).

``BayesOptSearch`` (built in, numpy only), ``OptunaSearch`` and ``HyperOptSearch``
(need the optuna / hyperopt packages) load on first use.
"""

import importlib

from .basic_variant import BasicVariantGenerator
from .searcher import ConcurrencyLimiter, Repeater, SearchAlgorithm, Searcher, SearchGenerator

_LAZY = {"BayesOptSearch": ".bayesopt", "OptunaSearch": ".optuna",
         "HyperOptSearch": ".hyperopt"}

__all__ = ["BasicVariantGenerator", "ConcurrencyLimiter", "Repeater", "SearchAlgorithm",
           "Searcher", "SearchGenerator"] + sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name], __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
