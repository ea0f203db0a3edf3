"""``Trial``: one configuration's record in the driver (config, status, results).

Statuses move PENDING -> RUNNING -> (PAUSED -> RUNNING)* -> TERMINATED | ERROR.
A trial is plain data: ``to_state``/``from_state`` write it to the experiment
journal, and the runner alone changes it.
"""

import os
import re


class Trial:
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    TERMINATED = "TERMINATED"
    ERROR = "ERROR"

    def __init__(self, trial_id, config, trainable_name, experiment_dir, index=0,
                 resources=None, local_dir_name=None):
        self.trial_id = trial_id
        self.config = config
        self.trainable_name = trainable_name
        self.experiment_tag = str(index)
        self.index = index
        self.status = Trial.PENDING
        self.last_result = {}
        self.metric_analysis = {}  # metric -> {"max", "min", "avg", "last", "n", "window"}
        self.checkpoint = None  # {"path", "iteration", "time_total"} of the latest one
        self.num_failures = 0
        self.error = None  # the exception (driver side)
        self.error_msg = None  # its text with the remote traceback
        self.resources = resources or {}
        self.dir_name = local_dir_name or _dir_name(trainable_name, trial_id, index, config)
        self.experiment_dir = experiment_dir
        self.results_seen = 0
        self.start_time = None
        self.stopping_reason = None
        self.custom_name = None  # TuneConfig(trial_name_creator=...)

    # Ray-compatible accessors
    @property
    def path(self):
        return os.path.join(self.experiment_dir, self.dir_name)

    local_path = path
    logdir = path

    @property
    def trial_name(self):
        return f"{self.trainable_name}_{self.trial_id}"

    @property
    def error_file(self):
        return os.path.join(self.path, "error.txt") if self.error_msg else None

    def is_finished(self):
        return self.status in (Trial.TERMINATED, Trial.ERROR)

    def update_metric_analysis(self, result):
        analysis = self.metric_analysis
        for key, value in result.items():
            if type(value) not in _NUMBERS or key in _NOT_RANKED:  # bools are not metrics
                continue
            stats = analysis.get(key)
            if stats is None:
                analysis[key] = {"max": value, "min": value, "avg": value, "last": value,
                                 "n": 1, "window": [value]}
                continue
            n = stats["n"] = stats["n"] + 1
            if value > stats["max"]:
                stats["max"] = value
            if value < stats["min"]:
                stats["min"] = value
            stats["avg"] += (value - stats["avg"]) / n
            stats["last"] = value
            window = stats["window"]
            window.append(value)
            if len(window) > 30:  # keep the last 10 (trimmed now and then)
                del window[:-10]

    def metric_value(self, metric, scope="last"):
        """A metric's value in ``scope`` (last, avg, max, min, last-5-avg, last-10-avg, all)."""
        if scope in ("last", "all"):
            return _nested_get(self.last_result, metric)
        stats = self.metric_analysis.get(metric)
        if stats is None:
            return None
        if scope in ("last-5-avg", "last-10-avg"):
            window = stats["window"][-(5 if scope == "last-5-avg" else 10):]
            return sum(window) / len(window)
        return stats.get(scope)

    def to_state(self):
        return {
            "trial_id": self.trial_id, "config": self.config, "index": self.index,
            "config_pickle": _pickle_b64(self.config),
            "trainable_name": self.trainable_name, "status": self.status,
            "last_result": self.last_result, "metric_analysis": self.metric_analysis,
            "checkpoint": self.checkpoint, "num_failures": self.num_failures,
            "error_msg": self.error_msg, "resources": self.resources,
            "dir_name": self.dir_name, "custom_name": self.custom_name,
            "kept_checkpoints": [[c, m] for c, m in self.__dict__.get("_checkpoints", [])],
        }

    @classmethod
    def from_state(cls, state, experiment_dir):
        config = state["config"]
        if state.get("config_pickle"):  # exact values (numpy, objects) when they pickled
            import base64
            import pickle
            config = pickle.loads(base64.b64decode(state["config_pickle"]))
        trial = cls(state["trial_id"], config, state["trainable_name"], experiment_dir,
                    state["index"], state.get("resources"), state["dir_name"])
        for key in ("status", "last_result", "metric_analysis", "checkpoint", "num_failures",
                    "error_msg", "custom_name"):
            setattr(trial, key, state.get(key, getattr(trial, key)))
        # the checkpoints CheckpointConfig kept: Result.best_checkpoints after a restore,
        # and the ranking a resumed trial goes on with
        trial._checkpoints = [(c, m) for c, m in state.get("kept_checkpoints") or []]
        return trial

    def __repr__(self):
        return self.trial_name

    def __str__(self):
        return self.custom_name or self.trial_name


_NUMBERS = (int, float)
_NOT_RANKED = frozenset(("pid", "timestamp", "time_since_restore", "iterations_since_restore",
                         "time_this_iter_s"))


def _pickle_b64(value):
    import base64
    try:
        import cloudpickle
        return base64.b64encode(cloudpickle.dumps(value)).decode()
    except Exception:  # the JSON form (with reprs) is what restore gets then
        return None


def _nested_get(result, metric):
    if metric in result:
        return result[metric]
    value = result
    for part in metric.split("/"):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _dir_name(trainable_name, trial_id, index, config):
    parts = []
    for key, value in config.items():
        if isinstance(value, dict):
            continue
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        parts.append(f"{key}={text}")
    tag = re.sub(r"[^\w.=-]+", "_", ",".join(parts))[:80]
    return f"{trainable_name}_{trial_id}_{index}" + (f"_{tag}" if tag else "")
