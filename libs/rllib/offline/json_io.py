"""Experiences as JSON lines: ``offline_data(output=dir)`` writes, ``input_=dir`` reads.

One line per transition::

    {"module_id": "default_policy", "obs": [...], "actions": 1, "rewards": 0.0,
     "terminateds": false, "truncateds": false, "new_obs": [...], "action_logp": -0.69}

Rows of one trajectory segment are consecutive and the segment's last row has
``terminateds`` or ``truncateds`` set, so readers can rebuild n-step returns
and advantages.
"""

import glob
import json
import os
import time

import numpy as np

from ..core import Columns

_COLUMNS = (Columns.OBS, Columns.ACTIONS, Columns.REWARDS, Columns.TERMINATEDS,
            Columns.TRUNCATEDS, Columns.NEXT_OBS, Columns.ACTION_LOGP)


class JsonWriter:
    """Appends batches to ``<dir>/output-<time>-<pid>.json`` (new file every max_rows)."""

    def __init__(self, path, max_rows_per_file=None):
        self.path = os.path.abspath(os.path.expanduser(path))
        os.makedirs(self.path, exist_ok=True)
        self.max_rows = max_rows_per_file
        self._file, self._rows, self._index = None, 0, 0

    def _open(self):
        if self._file is not None:
            self._file.close()
        stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
        name = f"output-{stamp}_worker-{os.getpid()}_{self._index}.json"
        self._index += 1
        self._file = open(os.path.join(self.path, name), "w")
        self._rows = 0

    def write(self, batches):
        for mid, batch in batches.items():
            cols = {c: np.asarray(batch[c]) for c in _COLUMNS if c in batch}
            size = len(cols[Columns.REWARDS])
            for i in range(size):
                if self._file is None or (self.max_rows and self._rows >= self.max_rows):
                    self._open()
                row = {"module_id": mid}
                row.update({c: v[i].tolist() for c, v in cols.items()})
                self._file.write(json.dumps(row) + "\n")
                self._rows += 1
        if self._file is not None:
            self._file.flush()

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None


def _files(input_):
    paths = input_ if isinstance(input_, (list, tuple)) else [input_]
    found = []
    for path in paths:
        path = os.path.expanduser(str(path))
        if os.path.isdir(path):
            found += sorted(glob.glob(os.path.join(path, "*.json")) +
                            glob.glob(os.path.join(path, "*.jsonl")))
        else:
            found += sorted(glob.glob(path))
    return found


class JsonReader:
    """Reads every row of ``input_`` (a dir, file, glob, or list) and serves chunks in order."""

    def __init__(self, input_):
        files = _files(input_)
        if not files:
            raise ValueError(f"offline_data(input_={input_!r}): no *.json / *.jsonl files there; "
                             "write some first with offline_data(output=dir).")
        rows = {}
        for name in files:
            with open(name) as f:
                for n, line in enumerate(f, 1):
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as error:
                        raise ValueError(f"{name}:{n} is not a JSON line ({error}).") from None
                    missing = {Columns.OBS, Columns.ACTIONS, Columns.REWARDS} - set(row)
                    if missing:
                        raise ValueError(f"{name}:{n} lacks the columns {sorted(missing)}.")
                    rows.setdefault(row.get("module_id", "default_policy"), []).append(row)
        self.batches = {mid: self._to_columns(rs) for mid, rs in rows.items()}
        self._pos = {mid: 0 for mid in self.batches}

    @staticmethod
    def _to_columns(rows):
        out = {}
        for c in _COLUMNS:
            if c in rows[0]:
                dtype = (np.float32 if c in (Columns.OBS, Columns.NEXT_OBS, Columns.REWARDS,
                                            Columns.ACTION_LOGP) else
                         bool if c in (Columns.TERMINATEDS, Columns.TRUNCATEDS) else None)
                out[c] = np.asarray([r[c] for r in rows], dtype=dtype)
        size = len(rows)
        out.setdefault(Columns.TERMINATEDS, np.zeros(size, bool))
        out.setdefault(Columns.TRUNCATEDS, np.zeros(size, bool))
        if Columns.NEXT_OBS not in out:  # rebuild from the following row inside a segment
            obs = out[Columns.OBS]
            out[Columns.NEXT_OBS] = np.concatenate([obs[1:], obs[-1:]])
        out[Columns.TRUNCATEDS][-1] |= ~out[Columns.TERMINATEDS][-1]
        return out

    @property
    def num_rows(self):
        return sum(len(b[Columns.REWARDS]) for b in self.batches.values())

    def next(self, num_rows):
        """The next ``num_rows`` rows per module (cycling), the last one marked a segment end."""
        out = {}
        for mid, batch in self.batches.items():
            size = len(batch[Columns.REWARDS])
            idx = (self._pos[mid] + np.arange(min(num_rows, size))) % size
            self._pos[mid] = int((idx[-1] + 1) % size)
            chunk = {k: v[idx] for k, v in batch.items()}
            chunk[Columns.TRUNCATEDS] = chunk[Columns.TRUNCATEDS].copy()
            chunk[Columns.TRUNCATEDS][-1] |= ~chunk[Columns.TERMINATEDS][-1]
            wrap = np.nonzero(np.diff(idx) < 0)[0]  # the row before a wrap-around ends a segment
            chunk[Columns.TRUNCATEDS][wrap] |= ~chunk[Columns.TERMINATEDS][wrap]
            out[mid] = chunk
        return out


__all__ = ["JsonReader", "JsonWriter"]
