"""The trial runner: the driver-side loop that runs an experiment.

    search_alg --configs--> Trial (PENDING) --scheduler.choose_trial_to_run--> start:
        a TrialWorker actor per running trial (idle workers are reused)
    loop: wait on every running trial's outstanding call (poll / train / setup)
        -> results -> stopper, scheduler (CONTINUE | PAUSE | STOP), searcher,
           callbacks, per-trial files, journal
        -> errors and dead actors -> retry (FailureConfig) or ERROR

Every state change goes to the experiment journal (experiment_state.py) as it
happens, so a killed driver can be resumed with ``Tuner.restore``.
"""

import logging
import os
import shutil
import time
import traceback
import uuid

import minray

from . import experiment_state
from .logger import TrialFiles, flatten_dict
from .progress import ProgressReporter
from .schedulers.trial_scheduler import TrialScheduler
from .search.basic_variant import BasicVariantGenerator
from .search.searcher import FINISHED
from .trial import Trial
from .trial_worker import TrialWorker

# How far a function trainable may run ahead of the driver (results buffered in
# the worker).  Decisions still apply at the exact result; see trial_worker.py.
MAX_PENDING_RESULTS = int(os.environ.get("MINRAY_TUNE_MAX_PENDING_RESULTS", "64"))
STOP_GRACE_S = 2.0  # a stopped function trainable gets this long to reach tune.report()
RESULT_SAVE_PERIOD_S = 1.0
TEARDOWN_TIMEOUT_S = 30.0  # how long Trainable.cleanup() may take when a trial stops
logger = logging.getLogger(__name__)

_WorkerActor = None


def _worker_class():
    global _WorkerActor
    if _WorkerActor is None:
        _WorkerActor = minray.remote(TrialWorker)
    return _WorkerActor


class _Live:
    """A started trial's worker and outstanding call."""

    __slots__ = ("worker", "key", "ref", "kind", "files", "run_id")

    def __init__(self, worker, key, files, run_id):
        self.worker, self.key, self.files, self.run_id = worker, key, files, run_id
        self.ref = None
        self.kind = None


class TrialRunner:
    def __init__(self, spec, search_alg, scheduler, stopper, callbacks, experiment_dir,
                 experiment_name, *, metric=None, mode=None, max_concurrent=None,
                 time_budget_s=None, max_failures=0, fail_fast=False, checkpoint_config=None,
                 verbose=1, trials=None, reuse_actors=None, num_samples=None,
                 progress_reporter=None, trial_name_creator=None,
                 trial_dirname_creator=None):
        self.spec = spec
        self.search_alg = search_alg
        self.scheduler = scheduler
        self.stopper = stopper
        self.callbacks = list(callbacks or [])
        self.experiment_dir = experiment_dir
        self.experiment_name = experiment_name
        self.metric, self.mode = metric, mode
        self.max_concurrent = max_concurrent
        self.time_budget_s = time_budget_s
        self.max_failures = max_failures
        self.fail_fast = fail_fast
        self.checkpoint_config = checkpoint_config
        self.reuse_actors = spec.kind == "function" if reuse_actors is None else reuse_actors
        self.num_samples = num_samples
        self.state = experiment_state.ExperimentState(experiment_dir)
        self.trials = list(trials or [])
        self.experiment_id = uuid.uuid4().hex[:5]
        self._next_index = len(self.trials)
        self._live = {}  # trial -> _Live
        self._owner = {}  # ref -> (trial or None, kind, payload)
        self._idle = {}  # resource key -> [worker]
        self._draining = {}  # ref -> (worker, key, deadline, run_id)
        self._used = {}  # resource -> amount held by live + draining + idle workers
        self._worker_res = {}  # worker -> resource dict
        self._exploit = {}  # trial -> (config, checkpoint)
        self._dirty = set()
        self._last_save = time.monotonic()
        self._iteration = 0
        self._stopping = False
        self._search_done = False
        self._fn_ref = None
        self._fail_fast_error = None
        self._name_creator = trial_name_creator
        self._dirname_creator = trial_dirname_creator
        self._progress = ProgressReporter(verbose, metric, mode, progress_reporter,
                                          experiment=experiment_name)
        self._total = minray.cluster_resources()

    # ---- what schedulers and callbacks may call
    def get_trials(self):
        return self.trials

    def get_live_trials(self):
        return [t for t in self.trials if not t.is_finished()]

    def stop_trial(self, trial):
        """Stop ``trial`` (TERMINATED) wherever it is."""
        if trial.is_finished():
            return
        if trial in self._live:
            self._release(trial)
        self._complete(trial)

    def pause_trial(self, trial):
        if trial in self._live:
            if self.spec.kind == "class" and trial not in self._exploit:
                self.ensure_checkpoint(trial)
            self._release(trial)
        self._set_status(trial, Trial.PAUSED)

    def resume_trial(self, trial):
        if trial.status == Trial.PAUSED:
            self._set_status(trial, Trial.PENDING)

    def exploit_trial(self, trial, new_config, checkpoint):
        """PBT: restart ``trial`` with ``new_config`` from ``checkpoint`` (a dict)."""
        self._exploit[trial] = (new_config, checkpoint)

    def ensure_checkpoint(self, trial):
        """The trial's latest checkpoint; class trainables save one now if running."""
        live = self._live.get(trial)
        saved = (trial.checkpoint or {}).get("iteration")
        if saved is not None and saved == trial.__dict__.get("_at_iteration"):
            return trial.checkpoint   # already saved at the result being handled
        if live is not None and self.spec.kind == "class" and live.kind != "setup":
            # A lockstep worker: its last train() call has returned (we are processing it).
            if live.ref is not None:
                minray.wait([live.ref])
            ckpt = minray.get(live.worker.save.remote(trial.path))
            self._on_checkpoint(trial, ckpt)
            for cb in self.callbacks:   # a save the runner asked for, as Ray's on_trial_save
                cb.on_trial_save(self._iteration, self.trials, trial)
        return trial.checkpoint

    # ---- the loop
    def run(self):
        for cb in self.callbacks:
            cb.setup(stop=self.stopper, num_samples=self.num_samples,
                     total_num_samples=self.search_alg.total_samples())
        for trial in self.trials:  # restored trials
            if not trial.is_finished():
                self.scheduler.on_trial_add(self, trial)
        start = time.monotonic()
        deadline = start + self.time_budget_s if self.time_budget_s else None
        try:
            while True:
                self._iteration += 1
                for cb in self.callbacks:
                    cb.on_step_begin(self._iteration, self.trials)
                if not self._stopping and (
                        (deadline and time.monotonic() >= deadline) or
                        (self.stopper is not None and self.stopper.stop_all())):
                    self._stop_all()
                if not self._stopping:
                    self._fill()
                if not self._owner and not self._draining:
                    break
                timeout = 0.5
                if deadline and not self._stopping:
                    timeout = max(0.0, min(timeout, deadline - time.monotonic()))
                refs = list(self._owner) + list(self._draining)
                ready, _ = minray.wait(refs, num_returns=1, timeout=timeout)
                if ready and len(refs) > 1:
                    ready, _ = minray.wait(refs, num_returns=len(refs), timeout=0)
                for ref in ready:
                    self._handle(ref)
                self._expire_draining()
                for cb in self.callbacks:
                    cb.on_step_end(self._iteration, self.trials)
                if self._fail_fast_error is not None:
                    break
                self._periodic()
        finally:
            self._shutdown()
        for cb in self.callbacks:
            cb.on_experiment_end(self.trials)
        self._progress.final(self.trials, self.scheduler)
        if self._fail_fast_error is not None and self.fail_fast == "raise":
            raise self._fail_fast_error
        return self.trials

    def _periodic(self):
        now = time.monotonic()
        if now - self._last_save >= RESULT_SAVE_PERIOD_S:
            self._last_save = now
            for trial in self._dirty:
                self.state.update_trial(trial)
            self._dirty.clear()
            self.state.flush()
        self._progress.maybe_print(self.trials, self.scheduler)

    # ---- starting trials
    def _fill(self):
        self._add_pending()
        while self.max_concurrent is None or len(self._live) < self.max_concurrent:
            trial = self.scheduler.choose_trial_to_run(self)
            if trial is None:
                if not self._create_trial():
                    return
                continue
            if not self._make_room(trial):
                return
            self._start(trial)

    def _add_pending(self):
        """Create trials ahead of the resources, as Ray does for grid and random search
        (up to TUNE_MAX_PENDING_TRIALS_PG, default 200, PENDING at once): schedulers
        then see the whole population (PBT ranks and round-robins it).  Other
        searchers suggest one trial at a time, when one can start, so each suggestion
        sees the results before it."""
        if self._search_done or not isinstance(self.search_alg, BasicVariantGenerator):
            return
        limit = _max_pending_trials(self._total.get("CPU", 1))
        while True:
            pending = sum(1 for t in self.trials if t.status == Trial.PENDING)
            unfinished = sum(1 for t in self.trials if not t.is_finished())
            if pending >= limit or (self.max_concurrent is not None and
                                    unfinished >= self.max_concurrent):
                return
            if not self._create_trial():
                return

    def _create_trial(self):
        if self._search_done:
            return False
        trial_id = f"{self.experiment_id}_{self._next_index:05d}"
        config = self.search_alg.next_config(trial_id)
        if config == FINISHED:
            self._search_done = True
            return False
        if config is None:
            return False
        trial = Trial(trial_id, config, self.spec.name, self.experiment_dir, self._next_index,
                      self.spec.resources(config))
        self._next_index += 1
        if self._name_creator is not None:
            trial.custom_name = str(self._name_creator(trial))
        if self._dirname_creator is not None:
            trial.dir_name = str(self._dirname_creator(trial))
        self.trials.append(trial)
        self.state.add_trial(trial, self.search_alg)
        self.scheduler.on_trial_add(self, trial)
        return True

    def _fits(self, need):
        for key, amount in need.items():
            if amount and self._used.get(key, 0) + amount > self._total.get(key, 0) + 1e-9:
                return False
        return True

    def _make_room(self, trial):
        need = _resource_vector(trial.resources)
        key = _key(trial.resources, self.spec.kind)
        if self._idle.get(key):
            return True
        if not any(need.values()) and len(self._live) >= max(1, int(self._total.get("CPU", 1))):
            return False  # zero-resource trials: still no more than one per CPU at once
        while not self._fits(need):
            victim = next(((k, ws) for k, ws in self._idle.items() if ws), None)
            if victim is None:
                if not self._live and not self._draining:
                    raise ValueError(f"a trial needs {trial.resources}, more than the cluster "
                                     f"has ({self._total}); lower the trial's resources.")
                return False
            self._kill_worker(victim[1].pop())
        return True

    def _start(self, trial):
        opts = trial.resources
        key = _key(opts, self.spec.kind)
        idle = self._idle.get(key)
        if idle:
            worker = idle.pop()
        else:
            concurrency = 3 if self.spec.kind == "function" else 1
            worker = _worker_class().options(max_concurrency=concurrency, **opts).remote()
            res = _resource_vector(opts)
            self._worker_res[worker] = res
            for k, v in res.items():
                self._used[k] = self._used.get(k, 0) + v
        restoring = trial.checkpoint is not None
        exploit = self._exploit.pop(trial, None)
        if exploit is not None:
            self._apply_exploit(trial, *exploit)
            restoring = True
        trial.start_time = time.time()
        files = TrialFiles(trial)
        run_id = f"{trial.trial_id}:{trial.num_failures}:{time.monotonic()}"
        live = _Live(worker, key, files, run_id)
        self._live[trial] = live
        self._set_status(trial, Trial.RUNNING)
        spec = {"info": {"trial_id": trial.trial_id, "trial_name": trial.trial_name,
                         "trial_dir": trial.path, "experiment_name": self.experiment_name,
                         "resources": trial.resources},
                "checkpoint": trial.checkpoint, "max_pending": self._max_pending(),
                "run_id": run_id}
        if self.spec.kind == "function":
            if self._fn_ref is None:
                self._fn_ref = minray.put(self.spec.trainable)
            worker.run.remote(self._fn_ref, trial.config, spec)
            self._submit(trial, live, "poll")
        else:
            live.ref = worker.setup.remote(self.spec.trainable, trial.config, spec)
            live.kind = "setup"
            self._owner[live.ref] = (trial, "setup")
        for cb in self.callbacks:
            if restoring:
                cb.on_trial_restore(self._iteration, self.trials, trial)
            cb.on_trial_start(self._iteration, self.trials, trial)

    def _max_pending(self):
        if not getattr(self.scheduler, "supports_buffered_results", True):
            return 1
        return MAX_PENDING_RESULTS

    def _submit(self, trial, live, kind):
        if kind == "poll":
            live.ref = live.worker.poll.remote(live.run_id)
        else:
            live.ref = live.worker.train.remote()
        live.kind = kind
        self._owner[live.ref] = (trial, kind)

    def _apply_exploit(self, trial, new_config, checkpoint):
        trial.config = new_config
        if checkpoint is not None:
            dest = os.path.join(trial.path, f"checkpoint_exploit_{time.monotonic_ns()}")
            shutil.copytree(checkpoint["path"], dest)
            trial.checkpoint = dict(checkpoint, path=dest)

    # ---- handling what comes back
    def _handle(self, ref):
        owner = self._owner.pop(ref, None)
        if owner is None:
            drain = self._draining.pop(ref, None)
            if drain is not None:
                self._handle_drain(ref, drain)
            return
        trial, kind = owner
        live = self._live.get(trial)
        if live is None or live.ref != ref:
            return
        live.ref = None
        try:
            value = minray.get(ref)
        except minray.exceptions.RayActorError as exc:
            self._on_failure(trial, exc, actor_died=True)
            return
        except Exception as exc:  # the trainable raised (a RayTaskError)
            self._on_failure(trial, exc, actor_died=False)
            return
        if kind == "poll":
            results, finished = value
            for i, (result, ckpt) in enumerate(results):
                decision = self._on_result(trial, result, ckpt)
                if decision != TrialScheduler.CONTINUE or trial not in self._live:
                    self._discard(trial, results[i + 1:])
                    self._act(trial, decision, finished)
                    return
            if finished is None:  # still running (an error arrives with the next poll)
                self._submit(trial, live, "poll")
            else:  # the function returned
                self._finish_worker(trial, reusable=True)
                self._complete(trial)
        elif kind == "setup":
            self._submit(trial, live, "train")
        else:  # train (class trainables)
            decision = self._on_result(trial, value, None)
            if trial not in self._live:
                return
            if decision != TrialScheduler.PAUSE:   # a pause saves anyway (Ray: the same)
                self._maybe_save(trial, value)
            if trial not in self._live:
                return
            if decision == TrialScheduler.CONTINUE:
                self._submit(trial, live, "train")
            else:
                self._act(trial, decision, None)

    def _discard(self, trial, rest):
        keep = (trial.checkpoint or {}).get("path")
        for _, ckpt in rest:
            if ckpt and ckpt["path"] != keep:
                shutil.rmtree(ckpt["path"], ignore_errors=True)

    def _act(self, trial, decision, finished):
        if trial not in self._live:
            return
        if decision == TrialScheduler.PAUSE:
            exploit = trial in self._exploit
            if not exploit and self.spec.kind == "class":
                self.ensure_checkpoint(trial)   # resume where it paused, as Ray does
            self._release(trial, finished)
            self._set_status(trial, Trial.PENDING if exploit else Trial.PAUSED)
        else:  # STOP
            if self.spec.kind == "class" and self._checkpoint_at_end():
                self.ensure_checkpoint(trial)
            self._release(trial, finished)
            self._complete(trial)

    def _on_result(self, trial, result, ckpt):
        """One result: bookkeeping, then the decision (CONTINUE, PAUSE or STOP).

        As in Ray, the stopper and callbacks see the result as reported (nested dicts
        kept); stop criteria, the scheduler, the searcher and the metric statistics see
        it flattened (``{"a": {"b": 1}}`` -> ``"a/b"``).  Every result is one step of
        ``iteration`` (Ray handles one event per step), and ``Stopper.stop_all()`` is
        asked after every result.
        """
        self._iteration += 1
        trial._at_iteration = result.get("training_iteration")
        result["config"] = trial.config
        flat = flat_result(result)
        if ckpt is not None:
            self._on_checkpoint(trial, ckpt, result)
        if trial.results_seen == 0:
            self._check_metric(trial, flat)
        trial.results_seen += 1
        decision = TrialScheduler.CONTINUE
        if result.get("done") or (self.stopper is not None and
                                  self.stopper(trial.trial_id, result)):
            decision = TrialScheduler.STOP
        else:
            decision = self.scheduler.on_trial_result(self, trial, flat)
        if decision == TrialScheduler.STOP:
            result["done"] = True
            flat["done"] = True
        self.search_alg.on_trial_result(trial.trial_id, flat)
        trial.last_result = result
        trial.update_metric_analysis(flat)
        live = self._live.get(trial)
        if live is not None:
            live.files.write(result)
        self._dirty.add(trial)
        for cb in self.callbacks:
            cb.on_trial_result(iteration=self._iteration, trials=self.trials, trial=trial,
                               result=result)
        if decision == TrialScheduler.NOOP:
            decision = TrialScheduler.CONTINUE
        if not self._stopping and self.stopper is not None and self.stopper.stop_all():
            self._stop_all()   # ends every trial, this one too: no more results are used
        return decision

    def _check_metric(self, trial, result):
        for owner in (self.scheduler, self.search_alg):
            metric = getattr(owner, "metric", None)
            if metric and metric not in result and not type(owner).__name__.startswith(
                    ("FIFO", "BasicVariant")) and "/" not in metric:
                raise ValueError(
                    f"Trial {trial.trial_id} reported a result without the metric "
                    f"{metric!r} that {type(owner).__name__} uses; it reported: "
                    f"{sorted(k for k in result if k != 'config')}. Report it with "
                    f"tune.report({{{metric!r}: ...}}) or fix the metric name.")

    def _on_checkpoint(self, trial, ckpt, result=None):
        """A new checkpoint with the result it came with: it becomes the latest, and
        CheckpointConfig decides which older ones stay on disk."""
        previous = trial.checkpoint
        trial.checkpoint = ckpt
        metrics = dict(result if result is not None else trial.last_result)
        metrics.pop("config", None)
        history = trial.__dict__.setdefault("_checkpoints", [])
        history.append((ckpt, metrics))
        kept = kept_checkpoints(history, self.checkpoint_config)
        keep_paths = {c["path"] for c, _ in kept} | {ckpt["path"]}
        for old, _ in history:
            if old["path"] not in keep_paths:
                shutil.rmtree(old["path"], ignore_errors=True)
        if previous and previous["path"] not in keep_paths:
            shutil.rmtree(previous["path"], ignore_errors=True)
        history[:] = kept
        self._dirty.add(trial)
        for cb in self.callbacks:
            cb.on_checkpoint(self._iteration, self.trials, trial, ckpt)

    def _checkpoint_at_end(self):
        cfg = self.checkpoint_config
        return bool(cfg is not None and getattr(cfg, "checkpoint_at_end", False))

    def _maybe_save(self, trial, result):
        cfg = self.checkpoint_config
        freq = getattr(cfg, "checkpoint_frequency", 0) if cfg is not None else 0
        if (freq and result["training_iteration"] % freq == 0) or result.get("should_checkpoint"):
            self.ensure_checkpoint(trial)

    # ---- ending trials
    def _complete(self, trial):
        """TERMINATED: tell scheduler, searcher and callbacks."""
        if trial.is_finished():
            return
        if trial.last_result:
            trial.last_result["done"] = True
        self._set_status(trial, Trial.TERMINATED)
        self.scheduler.on_trial_complete(self, trial, trial.last_result)
        self.search_alg.on_trial_complete(trial.trial_id, result=trial.last_result)
        for cb in self.callbacks:
            cb.on_trial_complete(self._iteration, self.trials, trial)

    def _on_failure(self, trial, exc, actor_died):
        self._finish_worker(trial, reusable=not actor_died and self.spec.kind == "function",
                            dead=actor_died)
        trial.num_failures += 1
        if self.max_failures < 0 or trial.num_failures <= self.max_failures:
            trial.results_seen = 0
            self._set_status(trial, Trial.PENDING)
            for cb in self.callbacks:
                cb.on_trial_recover(self._iteration, self.trials, trial)
            return
        trial.error = exc
        text = str(exc)
        if not text.strip():
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        trial.error_msg = f"{type(exc).__name__}: {text}"
        try:
            os.makedirs(trial.path, exist_ok=True)
            with open(os.path.join(trial.path, "error.txt"), "w") as f:
                f.write(trial.error_msg)
        except OSError:
            pass
        self._set_status(trial, Trial.ERROR)
        self.scheduler.on_trial_error(self, trial)
        self.search_alg.on_trial_complete(trial.trial_id, result=None, error=True)
        for cb in self.callbacks:
            cb.on_trial_error(self._iteration, self.trials, trial)
        if self.fail_fast:
            self._fail_fast_error = exc
            self._stop_all()

    def _stop_all(self):
        """End the experiment (stop_all, time budget, fail_fast): as Ray, every trial not
        yet finished is stopped (TERMINATED), running, paused or pending alike, and the
        search makes no more."""
        self._stopping = True
        self._search_done = True
        for trial in list(self._live):
            self.stop_trial(trial)
        for trial in list(self.trials):
            if not trial.is_finished():
                self.stop_trial(trial)

    def _set_status(self, trial, status):
        trial.status = status
        self.state.update_trial(trial)
        self.state.flush()
        self._dirty.discard(trial)

    # ---- workers
    def _release(self, trial, finished=None):
        """Take the worker away from a trial (stop, pause): reuse it if it can be."""
        live = self._live.get(trial)
        if live is None:
            return
        if live.ref is not None:
            self._owner.pop(live.ref, None)
        if self.spec.kind == "function" and self.reuse_actors:
            if finished in ("done", "stopped"):
                self._finish_worker(trial, reusable=True)
                return
            live.worker.stop.remote(live.run_id)
            ref = live.ref if live.ref is not None else live.worker.poll.remote(live.run_id)
            self._draining[ref] = (live.worker, live.key, time.monotonic() + STOP_GRACE_S,
                                   live.run_id)
            live.files.close()
            del self._live[trial]
            return
        self._finish_worker(trial, reusable=False)

    def _finish_worker(self, trial, reusable, dead=False):
        live = self._live.pop(trial, None)
        if live is None:
            return
        if live.ref is not None:
            self._owner.pop(live.ref, None)
        live.files.close()
        if self.spec.kind == "class" and not dead:
            self._teardown(live.worker)
        if reusable and self.reuse_actors and not self._stopping:
            self._idle.setdefault(live.key, []).append(live.worker)
        else:
            self._kill_worker(live.worker, dead)

    def _teardown(self, worker):
        """Trainable.stop() -> cleanup() before a class trainable's actor goes (Ray calls
        it on stop, pause and the end of the experiment); a hung or raising cleanup
        does not hold the experiment up past TEARDOWN_TIMEOUT_S."""
        try:
            minray.get(worker.teardown.remote(), timeout=TEARDOWN_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - the trial's outcome is already decided
            logger.warning("Trainable.cleanup() did not finish: %s", exc)

    def _handle_drain(self, ref, drain):
        worker, key, deadline, run_id = drain
        try:
            _, finished = minray.get(ref)
        except minray.exceptions.RayActorError:
            self._kill_worker(worker, dead=True)
            return
        except Exception:  # the stopped trainable raised on its way out: reusable
            finished = "failed"
        if finished is None:
            self._draining[worker.poll.remote(run_id)] = drain
        elif self._stopping or not self.reuse_actors:
            self._kill_worker(worker)
        else:
            self._idle.setdefault(key, []).append(worker)

    def _expire_draining(self):
        if not self._draining:
            return
        now = time.monotonic()
        for ref, (worker, _, deadline, _) in list(self._draining.items()):
            if now >= deadline:
                del self._draining[ref]
                self._kill_worker(worker)

    def _kill_worker(self, worker, dead=False):
        res = self._worker_res.pop(worker, None)
        if res is None:
            return
        for k, v in res.items():
            self._used[k] = self._used.get(k, 0) - v
        if not dead:
            try:
                minray.kill(worker)
            except Exception:
                pass

    def _shutdown(self):
        for trial in list(self._live):
            self._finish_worker(trial, reusable=False)
            if not trial.is_finished():
                self._set_status(trial, Trial.PENDING)
        for ref, (worker, *_rest) in list(self._draining.items()):
            self._kill_worker(worker)
        self._draining.clear()
        for workers in self._idle.values():
            for worker in workers:
                self._kill_worker(worker)
        self._idle.clear()
        self._owner.clear()
        for trial in self._dirty:
            self.state.update_trial(trial)
        self._dirty.clear()
        self.state.compact(self.trials)


def _max_pending_trials(cluster_cpus):
    value = os.environ.get("TUNE_MAX_PENDING_TRIALS_PG", "auto")
    if value != "auto":
        return max(1, int(value))
    return max(200, int(cluster_cpus * 1.1))


def flat_result(result):
    """``result`` with nested metric dicts flattened to "a/b/c" keys (``config`` kept as
    is); the result itself when nothing in it is nested."""
    if not any(isinstance(v, dict) and v and k != "config" for k, v in result.items()):
        return result
    flat = flatten_dict({k: v for k, v in result.items() if k != "config"})
    if "config" in result:
        flat["config"] = result["config"]
    return flat


def kept_checkpoints(history, config):
    """Which of a trial's checkpoints ``[(checkpoint, metrics)]`` (oldest first) to keep,
    as Ray's checkpoint manager does: with ``num_to_keep`` and a
    ``checkpoint_score_attribute``, the best ``num_to_keep`` by that metric (a checkpoint
    without it ranks last); with ``num_to_keep`` alone, the newest ones; else all.  The
    result is ordered worst to best (by time without a score).  The runner also keeps the
    latest checkpoint on disk, kept here or not, so a trial can always resume.

    Example::

        scores 1, 5, 2, 4, 3 with num_to_keep=2, attribute "score", order "max"
        -> keeps the checkpoints of 4 and 5 (and 3 on disk, the latest)
    """
    keep = getattr(config, "num_to_keep", None) if config is not None else None
    attr = getattr(config, "checkpoint_score_attribute", None) if config is not None else None
    if attr:
        sign = -1.0 if getattr(config, "checkpoint_score_order", "max") == "min" else 1.0

        def priority(indexed):
            index, (_, metrics) = indexed
            value = _lookup(metrics, attr)
            if not isinstance(value, (int, float)) or value != value:
                return (0, 0.0, index)
            return (1, sign * value, index)
        ranked = [entry for _, entry in sorted(enumerate(history), key=priority)]
        return ranked[-keep:] if keep else ranked
    return list(history[-keep:]) if keep else list(history)


def _lookup(metrics, key):
    """``metrics[key]``, where ``"a/b"`` also finds ``metrics["a"]["b"]``."""
    if key in metrics:
        return metrics[key]
    value = metrics
    for part in key.split("/"):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _key(opts, kind):
    return (kind,) + tuple(sorted((k, str(v)) for k, v in opts.items()))


def _resource_vector(opts):
    res = {"CPU": opts.get("num_cpus", 0) or 0, "GPU": opts.get("num_gpus", 0) or 0}
    for k, v in (opts.get("resources") or {}).items():
        res[k] = v
    return res
