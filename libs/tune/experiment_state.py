"""The experiment's state on disk, so that ``Tuner.restore`` works even after the
driver was SIGKILLed.

    <storage_path>/<name>/
        tuner.pkl                  what fit() was called with (all but the trainable)
        search_state.pkl           the search algorithm, pickled after each new trial
        experiment_journal.jsonl   one JSON line per event: {"add": trial} or
                                   {"update": trial} (status, last result, checkpoint)
        <trial dir>/               params.json, result.json, progress.csv, checkpoints

The journal is append-only, so each event costs one small write (no fsync: a
killed process loses nothing the kernel has).  Restoring replays it; the last
line for each trial wins.  ``compact`` rewrites it with one line per trial.
"""

import json
import os
import pickle

import cloudpickle

from .trial import Trial

JOURNAL = "experiment_journal.jsonl"
SEARCH_STATE = "search_state.pkl"
TUNER_STATE = "tuner.pkl"


def _json_default(value):
    try:
        import numpy as np
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:  # pragma: no cover
        pass
    return repr(value)


def dumps(obj):
    return json.dumps(obj, default=_json_default)


def atomic_write(path, data):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class ExperimentState:
    """Writes (and reads back) one experiment directory's state."""

    def __init__(self, experiment_dir):
        self.dir = experiment_dir
        os.makedirs(experiment_dir, exist_ok=True)
        self._journal = None
        self._search_saved = False

    def _open(self):
        if self._journal is None:
            self._journal = open(os.path.join(self.dir, JOURNAL), "a")
        return self._journal

    def add_trial(self, trial, search_alg):
        f = self._open()
        f.write(dumps({"add": trial.to_state()}) + "\n")
        f.flush()
        # A generator whose state is just "how many trials so far" is saved once
        # (restore fast-forwards it to the journal's trial count).
        if not getattr(search_alg, "restores_by_count", False) or not self._search_saved:
            self.save_search(search_alg)
            self._search_saved = True

    def update_trial(self, trial):
        f = self._open()
        f.write(dumps({"update": trial.to_state()}) + "\n")

    def flush(self):
        if self._journal is not None:
            self._journal.flush()

    def save_search(self, search_alg):
        try:
            atomic_write(os.path.join(self.dir, SEARCH_STATE), cloudpickle.dumps(search_alg))
        except Exception:  # an unpicklable searcher only loses resumability of the search
            pass

    def save_tuner(self, state):
        atomic_write(os.path.join(self.dir, TUNER_STATE), cloudpickle.dumps(state))

    def compact(self, trials):
        data = "".join(dumps({"add": t.to_state()}) + "\n" for t in trials)
        self.close()
        atomic_write(os.path.join(self.dir, JOURNAL), data.encode())

    def close(self):
        if self._journal is not None:
            self._journal.close()
            self._journal = None


def exists(experiment_dir):
    return os.path.exists(os.path.join(experiment_dir, JOURNAL))


def load_trials(experiment_dir):
    """The trials of an experiment directory, in creation order."""
    states = {}
    path = os.path.join(experiment_dir, JOURNAL)
    with open(path) as f:
        for line in f:
            try:
                event = json.loads(line)
            except ValueError:  # a line cut short by a kill
                continue
            state = event.get("add") or event.get("update")
            if state is not None:
                states[state["trial_id"]] = state
    return [Trial.from_state(s, experiment_dir) for s in states.values()]


def load_search(experiment_dir):
    path = os.path.join(experiment_dir, SEARCH_STATE)
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        return pickle.load(f)


def load_tuner(experiment_dir):
    path = os.path.join(experiment_dir, TUNER_STATE)
    if not os.path.exists(path):
        raise ValueError(f"{experiment_dir!r} is not a Tune experiment directory (it has no "
                         f"{TUNER_STATE}); pass the folder <storage_path>/<name> that fit() "
                         "wrote.")
    with open(path, "rb") as f:
        return pickle.load(f)
