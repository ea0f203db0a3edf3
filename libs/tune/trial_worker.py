"""The actor that runs one trial at a time (and is reused for the next one).

    driver (runner.py)                      TrialWorker actor (max_concurrency=3)
    run.remote(spec)  ------------------->  thread 1: the function trainable runs here;
                                            tune.report() appends to `pending`
    poll.remote() ---> [results...] <-----  thread 2: waits for results, returns them all
    stop.remote() ------------------------> thread 3: next tune.report() ends the function

A function trainable may run ahead of the driver by up to ``max_pending``
results (reports then block); the driver discards what comes after a STOP or
PAUSE decision, so decisions still apply at the exact result that caused them.
Class trainables are stepped in lockstep (``setup``/``train``/``save``), as
their save/restore points must match the driver's decisions.
"""

import os
import shutil
import threading
import time

from . import session as session_mod
from .checkpoint import Checkpoint
from .trainable import auto_fields


class _StopTrial(BaseException):
    """Raised inside tune.report() to end a function trainable the driver stopped
    (BaseException, so a trainable's ``except Exception`` does not swallow it)."""


def persist_checkpoint(checkpoint, trial_dir, iteration, dir_name=None):
    """Copy a reported checkpoint into the trial folder; return the copy's path."""
    src = checkpoint.path
    dest = os.path.join(trial_dir, dir_name or f"checkpoint_{iteration:06d}")
    if os.path.abspath(src) == os.path.abspath(dest):
        return dest
    if os.path.exists(dest):
        shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest)
    return dest


class _Session:
    def __init__(self, worker, spec):
        self.worker = worker
        self.info = spec["info"]
        ckpt = spec.get("checkpoint")
        self.checkpoint = Checkpoint(ckpt["path"]) if ckpt else None
        self.iteration = ckpt["iteration"] if ckpt else 0
        self.time_total = ckpt["time_total"] if ckpt else 0.0
        self.last_time = time.time()
        self.restore_iters = 0
        self.restore_time = 0.0

    def report(self, metrics, checkpoint, checkpoint_dir_name):
        worker = self.worker
        if worker.stop_requested:
            raise _StopTrial()
        now = time.time()
        elapsed = now - self.last_time
        self.iteration += 1
        self.restore_iters += 1
        self.time_total += elapsed
        self.restore_time += elapsed
        result = auto_fields(dict(metrics), self.iteration, self.last_time, self.time_total,
                             self.info, self.restore_iters, self.restore_time)
        saved = None
        if checkpoint is not None:
            path = persist_checkpoint(checkpoint, self.info["trial_dir"], self.iteration,
                                      checkpoint_dir_name)
            saved = {"path": path, "iteration": self.iteration, "time_total": self.time_total}
        worker.push((result, saved))
        self.last_time = time.time()


class TrialWorker:
    """One trial at a time; created by the runner as a minray actor.

    ``session_class`` is what ``tune.report`` talks to inside ``run``; minray.train's
    worker actors subclass this class and swap it for their own.
    """

    session_class = _Session

    def __init__(self):
        self.cond = threading.Condition()
        self.pending = []
        self.finished = None  # None while running; "done" / "stopped" / an exception
        self.stop_requested = False
        self.max_pending = 1
        self.trainable = None
        self.run_id = None

    # ---- function trainables
    def push(self, item):
        with self.cond:
            self.pending.append(item)
            self.cond.notify_all()
            while len(self.pending) >= self.max_pending and not self.stop_requested:
                self.cond.wait()
        if self.stop_requested:
            raise _StopTrial()

    def run(self, fn, config, spec):
        """Run a function trainable to its end (its reports go to poll())."""
        with self.cond:
            self.pending, self.finished, self.stop_requested = [], None, False
            self.max_pending = spec.get("max_pending", 1)
            self.run_id = spec["run_id"]
            self.cond.notify_all()
        session = self.session_class(self, spec)
        session_mod._set_session(session)
        outcome = "done"
        try:
            value = fn(config)
            if isinstance(value, dict):  # a returned dict is the final result
                session.report(value, None, None)
        except _StopTrial:
            outcome = "stopped"
        except BaseException as exc:  # noqa: B902 - shipped to the driver by poll()
            outcome = exc
        finally:
            session_mod._set_session(None)
            with self.cond:
                self.finished = outcome
                self.cond.notify_all()

    def poll(self, run_id):
        """Every result reported since the last poll: ``(results, finished)``.

        ``finished`` is None while the trainable runs, else "done"/"stopped";
        an exception the trainable raised is re-raised here, after its results.
        Calls may run out of order on this threaded actor, so a poll for
        ``run_id`` first waits for that run to have started.
        """
        with self.cond:
            while self.run_id != run_id or (not self.pending and self.finished is None):
                self.cond.wait()
            results, self.pending = self.pending, []
            self.cond.notify_all()
            finished = self.finished
        if not results and isinstance(finished, BaseException):
            self.finished = "failed"
            raise finished
        if isinstance(finished, BaseException):
            finished = None  # the error comes with the next poll
        return results, finished

    def stop(self, run_id):
        with self.cond:
            if run_id == self.run_id:
                self.stop_requested = True
                self.cond.notify_all()

    # ---- class trainables (lockstep)
    def setup(self, cls, config, spec):
        info = spec["info"]
        session_mod._set_session(_Session(self, spec))
        self.trainable = cls(config, _trial_info=info)
        ckpt = spec.get("checkpoint")
        if ckpt:
            self.trainable.restore(ckpt["path"])
        return True

    def train(self):
        return self.trainable.train()

    def save(self, trial_dir):
        t = self.trainable
        path = os.path.join(trial_dir, f"checkpoint_{t.iteration:06d}")
        t.save(path)
        return {"path": path, "iteration": t.iteration, "time_total": t._time_total}

    def reset(self, config, spec):
        """Reuse this trainable for a new config (PBT); False if it cannot."""
        t = self.trainable
        if t is None or not t.reset_config(config):
            return False
        t.config = dict(config)
        t._info = spec["info"]
        ckpt = spec.get("checkpoint")
        if ckpt:
            t.restore(ckpt["path"])
        return True

    def teardown(self):
        if self.trainable is not None:
            try:
                self.trainable.stop()
            finally:
                self.trainable = None
                session_mod._set_session(None)
        return True

    def ping(self):
        return os.getpid()
