"""``Checkpoint``: a directory of files that a trial saves and restores from.

A trial reports one with ``tune.report(metrics, checkpoint=Checkpoint.from_directory(d))``;
the trial's worker copies it into the trial's folder in the experiment directory
(so the trainable may delete ``d`` afterwards) and the Result carries the copy.
Kept free of Tune internals so a future ``minray.train`` can re-export it.
"""

import contextlib
import json
import os
import pickle
import shutil
import tempfile

_METADATA_FILE = ".metadata.json"
_DICT_FILE = "dict_checkpoint.pkl"


class Checkpoint:
    """A checkpoint stored in a local (or shared) directory::

        with tempfile.TemporaryDirectory() as d:
            torch.save(state, os.path.join(d, "model.pt"))
            tune.report({"loss": loss}, checkpoint=Checkpoint.from_directory(d))

        checkpoint = tune.get_checkpoint()
        if checkpoint:
            with checkpoint.as_directory() as d:
                state = torch.load(os.path.join(d, "model.pt"))
    """

    def __init__(self, path, filesystem=None):
        self.path = os.fspath(path)
        self.filesystem = filesystem

    @classmethod
    def from_directory(cls, path):
        """A checkpoint of the files in ``path`` (a directory that exists)."""
        path = os.fspath(path)
        if not os.path.isdir(path):
            raise ValueError(f"Checkpoint.from_directory needs an existing directory, got "
                             f"{path!r}.")
        return cls(os.path.abspath(path))

    @classmethod
    def from_dict(cls, data):
        """A checkpoint holding ``data`` (a picklable dict) in a new temp directory::

            ckpt = Checkpoint.from_dict({"epoch": 3, "weights": w})
            ckpt.to_dict()["epoch"]   # 3
        """
        if not isinstance(data, dict):
            raise TypeError(f"Checkpoint.from_dict needs a dict, got {type(data).__name__}.")
        path = tempfile.mkdtemp(prefix="checkpoint_")
        with open(os.path.join(path, _DICT_FILE), "wb") as f:
            pickle.dump(data, f)
        return cls(path)

    def to_dict(self):
        """The dict a ``from_dict`` checkpoint holds."""
        try:
            with open(os.path.join(self.path, _DICT_FILE), "rb") as f:
                return pickle.load(f)
        except FileNotFoundError:
            raise ValueError(f"{self!r} was not made by Checkpoint.from_dict (it has no "
                             f"{_DICT_FILE}); read its files with as_directory().") from None

    def to_directory(self, path=None):
        """Copy the checkpoint's files into ``path`` (a new temp dir if None); return it."""
        path = os.fspath(path) if path is not None else tempfile.mkdtemp(prefix="checkpoint_")
        os.makedirs(path, exist_ok=True)
        shutil.copytree(self.path, path, dirs_exist_ok=True)
        return path

    @contextlib.contextmanager
    def as_directory(self):
        """A local directory with the checkpoint's files (the checkpoint's own one here)."""
        yield self.path

    def get_metadata(self):
        try:
            with open(os.path.join(self.path, _METADATA_FILE)) as f:
                return json.load(f)
        except FileNotFoundError:
            return {}

    def set_metadata(self, metadata):
        with open(os.path.join(self.path, _METADATA_FILE), "w") as f:
            json.dump(metadata, f)

    def update_metadata(self, metadata):
        merged = self.get_metadata()
        merged.update(metadata)
        self.set_metadata(merged)

    def __eq__(self, other):
        return isinstance(other, Checkpoint) and other.path == self.path

    def __hash__(self):
        return hash(self.path)

    def __repr__(self):
        return f"Checkpoint(filesystem=local, path={self.path})"
