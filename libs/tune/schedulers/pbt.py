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
import json
import math
import os
import random
import shutil

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
                if isinstance(old, bool):
                    value = bool(value)
                elif isinstance(old, int):
                    value = int(round(value))
                new[key] = value
        else:
            raise TypeError(f"hyperparam_mutations[{key!r}] must be a list, a tune search "
                            f"space (tune.uniform...) or a function, got "
                            f"{type(distribution).__name__}.")
    if custom_explore_fn is not None:
        new = custom_explore_fn(new)
        if new is None:
            raise ValueError("custom_explore_fn must return the new config, got None.")
    return new


def log_policy(experiment_dir, trial, donor, new_config):
    """Record one exploit as Ray's PBT does with ``log_config=True``: a JSON line
    ``[trial tag, donor tag, trial iteration, donor iteration, donor config, new config]``
    appended to ``<experiment>/pbt_global.txt`` and to the trial's
    ``pbt_policy_<trial_id>.txt``, which first takes a copy of the donor's policy (so
    each file is the schedule of configs that led to that trial's current state)."""
    if not experiment_dir:
        return
    line = json.dumps([trial.experiment_tag, donor.experiment_tag,
                       trial.last_result.get("training_iteration", 0),
                       donor.last_result.get("training_iteration", 0),
                       donor.config, new_config], default=repr) + "\n"
    os.makedirs(experiment_dir, exist_ok=True)
    with open(os.path.join(experiment_dir, "pbt_global.txt"), "a") as f:
        f.write(line)
    own = os.path.join(experiment_dir, f"pbt_policy_{trial.trial_id}.txt")
    theirs = os.path.join(experiment_dir, f"pbt_policy_{donor.trial_id}.txt")
    if os.path.exists(theirs):
        shutil.copyfile(theirs, own)
    with open(own, "a") as f:
        f.write(line)


class PopulationBasedTraining(TrialScheduler):
    """Population Based Training (Jaderberg et al. 2017)::

        pbt = PopulationBasedTraining(
            time_attr="training_iteration", metric="loss", mode="min",
            perturbation_interval=4,
            hyperparam_mutations={"lr": tune.loguniform(1e-4, 1e-1), "batch": [16, 32, 64]})

    As in Ray: at each ``perturbation_interval`` a trial records its score; a trial in
    the top quantile saves a checkpoint, and a trial in the bottom quantile takes a top
    trial's config (explored) and that checkpoint, then restarts from it.  When other
    trials wait (PENDING or PAUSED) the trial pauses to give them their turn, and
    ``choose_trial_to_run`` resumes the one furthest behind, so a population larger
    than the cluster still advances together.  ``synch=True`` waits for every trial to
    reach the interval before anyone is ranked.  ``log_config=True`` (the default)
    writes each exploit to ``pbt_global.txt`` and ``pbt_policy_<trial_id>.txt`` in the
    experiment directory.
    """

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
        self._log_config = log_config
        self._synch = synch
        self._next_sync = max(perturbation_interval, burn_in_period)
        self._state = {}  # trial -> _new_state()
        self._num_perturbations = 0
        self._num_checkpoints = 0
        self.history = []  # (trial_id, donor_trial_id, old_config, new_config)

    # Trials advance one perturbation interval at a time, so a buffered result after a
    # PAUSE would be wasted work.
    supports_buffered_results = False

    @staticmethod
    def _new_state():
        return {"last_perturb": 0, "last_score": None, "last_train_time": 0,
                "checkpoint": None}

    def on_trial_add(self, runner, trial):
        self._need_metric()
        self._state[trial] = self._new_state()

    def on_trial_result(self, runner, trial, result):
        if self._time_attr not in result or self._metric not in result:
            if self._require_attrs:
                missing = [k for k in (self._time_attr, self._metric) if k not in result]
                raise RuntimeError(f"PopulationBasedTraining needs {missing} in every "
                                   f"result; report them, or pass require_attrs=False.")
            return TrialScheduler.CONTINUE
        state = self._state.setdefault(trial, self._new_state())
        now = result[self._time_attr]
        if now < self._burn_in or now - state["last_perturb"] < self._interval:
            return TrialScheduler.CONTINUE
        sign = 1.0 if self._mode == "max" else -1.0
        state["last_score"] = sign * result[self._metric]
        state["last_train_time"] = now
        if not self._synch:
            state["last_perturb"] = now
            lower, upper = self._quantiles()
            others_wait = any(t is not trial and t.status in ("PENDING", "PAUSED")
                              for t in runner.get_trials())
            if self._checkpoint_or_exploit(runner, trial, upper, lower):
                return TrialScheduler.PAUSE
            return TrialScheduler.PAUSE if others_wait else TrialScheduler.CONTINUE
        # synch: rank only once every live trial has reached the sync point
        if any(self._state.get(t, {}).get("last_train_time", 0) < self._next_sync
               for t in runner.get_live_trials() if t is not trial):
            return TrialScheduler.PAUSE
        lower, upper = self._quantiles()
        middle = [t for t in runner.get_trials() if t not in lower and t not in upper
                  and t in self._state]
        for t in upper + middle + lower:   # donors save before anyone copies them
            self._state[t]["last_perturb"] = now
            self._checkpoint_or_exploit(runner, t, upper, lower)
        times = [s["last_train_time"] for s in self._state.values()]
        self._next_sync = max(self._next_sync + self._interval, max(times, default=0))
        return TrialScheduler.PAUSE

    def _checkpoint_or_exploit(self, runner, trial, upper, lower):
        """Top trials save a checkpoint; a bottom trial copies a top one. True when
        ``trial`` is to restart from a donor."""
        state = self._state[trial]
        if trial in upper:
            state["checkpoint"] = (trial.checkpoint if trial.status == "PAUSED"
                                   else runner.ensure_checkpoint(trial))
            self._num_checkpoints += 1
        else:
            state["checkpoint"] = None
        if trial not in lower:
            return False
        donor = random.choice(upper)
        checkpoint = self._state[donor]["checkpoint"]
        if not checkpoint:   # the donor has nothing to copy yet (as Ray: skip this time)
            return False
        new_config = explore(donor.config, self._mutations, self._resample_p,
                             self._factors, self._custom_explore)
        self.history.append((trial.trial_id, donor.trial_id, trial.config, new_config))
        self._num_perturbations += 1
        if self._log_config:
            log_policy(getattr(runner, "experiment_dir", None), trial, donor, new_config)
        runner.exploit_trial(trial, new_config, checkpoint)
        return True

    def choose_trial_to_run(self, runner):
        """The waiting trial that is furthest behind (in synch mode: behind the sync
        point), so every trial gets its share of time."""
        candidates = [t for t in runner.get_trials() if t.status in ("PENDING", "PAUSED")]
        if self._synch:
            candidates = [t for t in candidates
                          if self._state.get(t, {}).get("last_train_time", 0) < self._next_sync]
        if not candidates:
            return None
        return min(candidates, key=lambda t: self._state.get(t, {}).get("last_train_time", 0))

    def _quantiles(self):
        scored = [t for t, s in self._state.items()
                  if s["last_score"] is not None and s["last_score"] == s["last_score"]
                  and not t.is_finished()]
        scored.sort(key=lambda t: self._state[t]["last_score"])
        if len(scored) <= 1:
            return [], []
        n = int(math.ceil(len(scored) * self._quantile))
        if n > len(scored) / 2:
            n = int(math.floor(len(scored) / 2))
        return scored[:n], scored[-n:] if n else []

    def on_trial_complete(self, runner, trial, result):
        self._state.pop(trial, None)

    def on_trial_remove(self, runner, trial):
        self._state.pop(trial, None)

    def on_trial_error(self, runner, trial):
        self._state.pop(trial, None)

    def debug_string(self):
        return f"PopulationBasedTraining: {self._num_perturbations} perturbations"
