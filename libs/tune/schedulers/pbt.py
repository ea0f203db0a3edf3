"""``PopulationBasedTraining``: exploit good trials, explore around them.

Every ``perturbation_interval`` (in ``time_attr`` units) a trial is ranked
against the others by its last ``metric``.  A trial in the bottom
``quantile_fraction`` copies a random top trial: its latest checkpoint
(exploit) and its config, with the ``hyperparam_mutations`` perturbed
(explore: resampled with ``resample_probability``, else multiplied by one of
``perturbation_factors`` or moved to a neighbouring list value).  The runner
then restarts the trial from that checkpoint with the new config, so function
trainables must report checkpoints and resume from ``tune.get_checkpoint()``.
"""

import copy
import random

from ..search import sample
from .trial_scheduler import TrialScheduler


def explore(config, mutations, resample_probability, perturbation_factors, custom_explore_fn):
    """A copy of ``config`` with the ``mutations`` keys perturbed."""
    new = copy.deepcopy(config)
    for key, distribution in mutations.items():
        if isinstance(distribution, dict):
            new[key] = explore(config.get(key, {}), distribution, resample_probability,
                               perturbation_factors, None)
            continue
        old = config.get(key)
        resample = random.random() < resample_probability
        if isinstance(distribution, (list, tuple)):
            values = list(distribution)
            if resample or old not in values:
                new[key] = random.choice(values)
            else:
                index = values.index(old) + random.choice([-1, 1])
                new[key] = values[min(max(index, 0), len(values) - 1)]
        elif isinstance(distribution, sample.Categorical):
            values = distribution.categories
            if resample or old not in values:
                new[key] = distribution.sample()
            else:
                index = values.index(old) + random.choice([-1, 1])
                new[key] = values[min(max(index, 0), len(values) - 1)]
        elif isinstance(distribution, sample.Domain) or callable(distribution):
            draw = distribution.sample if isinstance(distribution, sample.Domain) else \
                distribution
            if resample or old is None:
                new[key] = draw()
            else:
                factor = random.choice(perturbation_factors)
                value = old * factor
                new[key] = int(value) if isinstance(old, int) else value
        else:
            raise TypeError(f"hyperparam_mutations[{key!r}] must be a list, a tune search "
                            f"space (tune.uniform...) or a function, got "
                            f"{type(distribution).__name__}.")
    if custom_explore_fn is not None:
        new = custom_explore_fn(new)
        if new is None:
            raise ValueError("custom_explore_fn must return the new config, got None.")
    return new


class PopulationBasedTraining(TrialScheduler):
    """Population Based Training (Jaderberg et al. 2017)::

        pbt = PopulationBasedTraining(
            time_attr="training_iteration", metric="loss", mode="min",
            perturbation_interval=4,
            hyperparam_mutations={"lr": tune.loguniform(1e-4, 1e-1), "batch": [16, 32, 64]})
    """

    # Ranking needs the trials' results interleaved as they happen, not in batches.
    supports_buffered_results = False

    def __init__(self, time_attr="time_total_s", metric=None, mode=None,
                 perturbation_interval=60.0, burn_in_period=0.0, hyperparam_mutations=None,
                 quantile_fraction=0.25, resample_probability=0.25,
                 perturbation_factors=(1.2, 0.8), custom_explore_fn=None, log_config=True,
                 require_attrs=True, synch=False):
        if not hyperparam_mutations and custom_explore_fn is None:
            raise ValueError("PopulationBasedTraining needs hyperparam_mutations or "
                             "custom_explore_fn (what to change when exploring).")
        if not 0 <= quantile_fraction <= 0.5:
            raise ValueError(f"quantile_fraction must be in [0, 0.5], got {quantile_fraction}.")
        if perturbation_interval <= 0:
            raise ValueError(f"perturbation_interval must be positive, got "
                             f"{perturbation_interval}.")
        if mode is not None and mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}.")
        self._time_attr, self._metric, self._mode = time_attr, metric, mode
        self._interval = perturbation_interval
        self._burn_in = burn_in_period
        self._mutations = hyperparam_mutations or {}
        self._quantile = quantile_fraction
        self._resample_p = resample_probability
        self._factors = perturbation_factors
        self._custom_explore = custom_explore_fn
        self._require_attrs = require_attrs
        self._state = {}  # trial -> {"last_perturb": t, "last_score": s}
        self._num_perturbations = 0
        self.history = []  # (trial_id, donor_trial_id, old_config, new_config)

    def on_trial_add(self, runner, trial):
        self._need_metric()
        self._state[trial] = {"last_perturb": 0, "last_score": None}

    def on_trial_result(self, runner, trial, result):
        if self._time_attr not in result or self._metric not in result:
            if self._require_attrs:
                missing = [k for k in (self._time_attr, self._metric) if k not in result]
                raise ValueError(f"PopulationBasedTraining needs {missing} in every result; "
                                 "report them, or pass require_attrs=False.")
            return TrialScheduler.CONTINUE
        state = self._state.setdefault(trial, {"last_perturb": 0, "last_score": None})
        now = result[self._time_attr]
        sign = 1.0 if self._mode == "max" else -1.0
        state["last_score"] = sign * result[self._metric]
        if now < self._burn_in or now - state["last_perturb"] < self._interval:
            return TrialScheduler.CONTINUE
        state["last_perturb"] = now
        lower, upper = self._quantiles()
        if trial in upper:
            runner.ensure_checkpoint(trial)
            return TrialScheduler.CONTINUE
        if trial in lower:
            donors = [t for t in upper if t.checkpoint or runner.ensure_checkpoint(t)]
            if not donors:
                return TrialScheduler.CONTINUE
            donor = random.choice(donors)
            new_config = explore(donor.config, self._mutations, self._resample_p,
                                 self._factors, self._custom_explore)
            self.history.append((trial.trial_id, donor.trial_id, trial.config, new_config))
            self._num_perturbations += 1
            runner.exploit_trial(trial, new_config, donor.checkpoint)
            return TrialScheduler.PAUSE
        return TrialScheduler.CONTINUE

    def _quantiles(self):
        scored = [t for t, s in self._state.items()
                  if s["last_score"] is not None and not t.is_finished()]
        scored.sort(key=lambda t: self._state[t]["last_score"])
        if len(scored) <= 1:
            return [], []
        n = int(len(scored) * self._quantile + 0.999999)
        n = min(n, len(scored) // 2)
        return scored[:n], scored[-n:] if n else []

    def on_trial_complete(self, runner, trial, result):
        self._state.pop(trial, None)

    def on_trial_remove(self, runner, trial):
        self._state.pop(trial, None)

    def on_trial_error(self, runner, trial):
        self._state.pop(trial, None)

    def debug_string(self):
        return f"PopulationBasedTraining: {self._num_perturbations} perturbations"
