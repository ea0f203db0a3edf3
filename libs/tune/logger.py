"""Per-trial files and ``pretty_print``.

Each trial folder gets ``params.json`` (its config), ``result.json`` (one JSON
line per result) and ``progress.csv`` (the flattened results, columns fixed by
the first result), as Ray writes them.  ``TrialFiles`` keeps the files open
while the trial runs; the runner flushes them once per batch of results.
"""

import csv
import json
import os

from .experiment_state import _json_default


def flatten_dict(d, prefix="", delimiter="/"):
    """``{"a": {"b": 1}}`` -> ``{"a/b": 1}``."""
    out = {}
    for key, value in d.items():
        name = f"{prefix}{delimiter}{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(flatten_dict(value, name, delimiter))
        else:
            out[name] = value
    return out


def pretty_print(result, exclude=None):
    """A result dict as indented ``key: value`` lines (YAML-like)::

        print(pretty_print(result.metrics))
    """
    exclude = set(exclude or ())
    lines = []

    def emit(d, indent):
        for key, value in d.items():
            if key in exclude or value is None:
                continue
            if isinstance(value, dict):
                if value:
                    lines.append(f"{'  ' * indent}{key}:")
                    emit(value, indent + 1)
                else:
                    lines.append(f"{'  ' * indent}{key}: {{}}")
            else:
                if isinstance(value, float):
                    text = repr(round(value, 6)) if abs(value) < 1e15 else repr(value)
                else:
                    text = str(value)
                lines.append(f"{'  ' * indent}{key}: {text}")
    emit(dict(result), 0)
    return "\n".join(lines) + "\n"


class TrialFiles:
    """result.json / progress.csv / params.json of one trial."""

    def __init__(self, trial):
        self.dir = trial.path
        os.makedirs(self.dir, exist_ok=True)
        with open(os.path.join(self.dir, "params.json"), "w") as f:
            json.dump(trial.config, f, indent=2, sort_keys=True, default=_json_default)
        self._json = open(os.path.join(self.dir, "result.json"), "a")
        csv_path = os.path.join(self.dir, "progress.csv")
        self._csv_file = open(csv_path, "a", newline="")
        self._csv = csv.writer(self._csv_file)
        self._columns = None  # fixed by the first row (later new keys are left out)
        if os.path.getsize(csv_path) > 0:  # resuming: keep the existing header
            with open(csv_path, newline="") as f:
                self._columns = next(csv.reader(f), None)

    def write(self, result):
        self._json.write(json.dumps(result, default=_json_default) + "\n")
        row = flatten_dict({k: v for k, v in result.items() if k != "config"})
        if self._columns is None:
            self._columns = list(row)
            self._csv.writerow(self._columns)
        self._csv.writerow([row.get(k, "") for k in self._columns])

    def flush(self):
        self._json.flush()
        self._csv_file.flush()

    def close(self):
        self._json.close()
        self._csv_file.close()
