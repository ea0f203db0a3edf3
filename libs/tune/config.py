"""The configuration records: ``TuneConfig``, ``RunConfig``, ``CheckpointConfig``,
``FailureConfig`` (Ray's field names and defaults)."""

import dataclasses
import datetime
from typing import Any, Callable, List, Optional, Union


@dataclasses.dataclass
class CheckpointConfig:
    """Which checkpoints to keep and when class trainables save one::

        CheckpointConfig(num_to_keep=2, checkpoint_score_attribute="loss",
                         checkpoint_score_order="min", checkpoint_frequency=5)
    """

    num_to_keep: Optional[int] = None
    checkpoint_score_attribute: Optional[str] = None
    checkpoint_score_order: str = "max"
    checkpoint_frequency: int = 0
    checkpoint_at_end: Optional[bool] = None

    def __post_init__(self):
        if self.num_to_keep is not None and self.num_to_keep <= 0:
            raise ValueError(f"num_to_keep must be positive or None, got {self.num_to_keep}.")
        if self.checkpoint_score_order not in ("min", "max"):
            raise ValueError(f"checkpoint_score_order must be 'min' or 'max', got "
                             f"{self.checkpoint_score_order!r}.")


@dataclasses.dataclass
class FailureConfig:
    """How often a failed trial is retried (-1: forever) and whether one failure
    ends the experiment (``fail_fast=True``, or ``"raise"`` to re-raise it)."""

    max_failures: int = 0
    fail_fast: Union[bool, str] = False

    def __post_init__(self):
        if self.fail_fast not in (True, False, "raise"):
            raise ValueError(f"fail_fast must be True, False or 'raise', got "
                             f"{self.fail_fast!r}.")


@dataclasses.dataclass
class RunConfig:
    """Where results go and when trials stop::

        tune.RunConfig(name="exp", storage_path="/tmp/results",
                       stop={"training_iteration": 10},
                       failure_config=tune.FailureConfig(max_failures=2))

    ``storage_path`` defaults to ``~/ray_results``.
    """

    name: Optional[str] = None
    storage_path: Optional[str] = None
    storage_filesystem: Any = None
    failure_config: Optional[FailureConfig] = None
    checkpoint_config: Optional[CheckpointConfig] = None
    sync_config: Any = None
    verbose: Optional[int] = None
    stop: Any = None
    callbacks: Optional[List[Any]] = None
    progress_reporter: Any = None
    log_to_file: Any = False


@dataclasses.dataclass
class TuneConfig:
    """What to search and how::

        tune.TuneConfig(metric="loss", mode="min", num_samples=20,
                        scheduler=ASHAScheduler(), max_concurrent_trials=4)

    ``reuse_actors`` None (the default here) reuses a finished trial's actor
    for the next trial of a function trainable, which saves an actor start per
    trial (Ray's default is False: a fresh actor each time).
    """

    mode: Optional[str] = None
    metric: Optional[str] = None
    search_alg: Any = None
    scheduler: Any = None
    num_samples: int = 1
    max_concurrent_trials: Optional[int] = None
    time_budget_s: Optional[Union[int, float, datetime.timedelta]] = None
    reuse_actors: Optional[bool] = None
    trial_name_creator: Optional[Callable] = None
    trial_dirname_creator: Optional[Callable] = None

    def __post_init__(self):
        if self.mode is not None and self.mode not in ("min", "max"):
            raise ValueError(f"TuneConfig(mode=...) must be 'min' or 'max', got {self.mode!r}.")
        if self.max_concurrent_trials is not None and self.max_concurrent_trials < 1:
            raise ValueError(f"max_concurrent_trials must be at least 1, got "
                             f"{self.max_concurrent_trials}.")
