"""Trainables: what a trial runs.  A function ``train(config)`` that calls
``tune.report``, or a ``tune.Trainable`` subclass stepped by the runner.

``with_parameters`` and ``with_resources`` wrap either kind; ``TrainableSpec``
is the runner's normalised view (kind, name, resources for a config).
"""

import functools
import inspect
import os
import pickle
import socket
import time

import minray

_DICT_CHECKPOINT = "_dict_checkpoint.pkl"


def auto_fields(result, iteration, iter_start, time_total, info, restore_iters, restore_time):
    """Add Tune's automatic fields to a reported result (in place)."""
    now = time.time()
    result.setdefault("done", False)
    result["training_iteration"] = iteration
    result["trial_id"] = info.get("trial_id", "default")
    result["date"] = time.strftime("%Y-%m-%d_%H-%M-%S", time.localtime(now))
    result["timestamp"] = int(now)
    result["time_this_iter_s"] = now - iter_start
    result["time_total_s"] = time_total
    result["pid"] = os.getpid()
    result["hostname"] = _HOST
    result["node_ip"] = "127.0.0.1"
    result["time_since_restore"] = restore_time
    result["iterations_since_restore"] = restore_iters
    return result


_HOST = socket.gethostname()


class Trainable:
    """Base class of class-based trainables: the runner calls ``step()`` once per
    result and ``save_checkpoint``/``load_checkpoint`` for checkpoints::

        class Quadratic(tune.Trainable):
            def setup(self, config):
                self.x = config["x0"]
            def step(self):
                self.x -= 0.1 * 2 * self.x
                return {"loss": self.x ** 2}
            def save_checkpoint(self, checkpoint_dir):
                return {"x": self.x}
            def load_checkpoint(self, checkpoint):
                self.x = checkpoint["x"]
    """

    def __init__(self, config=None, logger_creator=None, storage=None, _trial_info=None):
        self.config = dict(config or {})
        info = _trial_info or {}
        self._info = info
        self._iteration = 0
        self._time_total = 0.0
        self._restore_iters = 0
        self._restore_time = 0.0
        self.setup(self.config)

    # ---- what subclasses override
    def setup(self, config):
        pass

    def step(self):
        raise NotImplementedError(f"{type(self).__name__} must implement step() returning a "
                                  "dict of metrics.")

    def save_checkpoint(self, checkpoint_dir):
        return None

    def load_checkpoint(self, checkpoint):
        pass

    def cleanup(self):
        pass

    def reset_config(self, new_config):
        return False

    @classmethod
    def default_resource_request(cls, config):
        return None

    # ---- what the runner (and users) call
    @property
    def iteration(self):
        return self._iteration

    @property
    def training_iteration(self):
        return self._iteration

    @property
    def trial_id(self):
        return self._info.get("trial_id", "default")

    @property
    def trial_name(self):
        return self._info.get("trial_name", "default")

    @property
    def logdir(self):
        return self._info.get("trial_dir")

    def train(self):
        """Run one ``step()`` and return its result with Tune's automatic fields."""
        start = time.time()
        result = self.step()
        if not isinstance(result, dict):
            raise TypeError(f"{type(self).__name__}.step() must return a dict of metrics, got "
                            f"{type(result).__name__}.")
        result = dict(result)
        self._iteration += 1
        self._restore_iters += 1
        elapsed = time.time() - start
        self._time_total += elapsed
        self._restore_time += elapsed
        return auto_fields(result, self._iteration, start, self._time_total, self._info,
                           self._restore_iters, self._restore_time)

    def save(self, checkpoint_dir):
        """Write a checkpoint into ``checkpoint_dir`` (created); return the directory."""
        os.makedirs(checkpoint_dir, exist_ok=True)
        state = self.save_checkpoint(checkpoint_dir)
        if isinstance(state, dict):
            with open(os.path.join(checkpoint_dir, _DICT_CHECKPOINT), "wb") as f:
                pickle.dump(state, f)
        with open(os.path.join(checkpoint_dir, ".tune_state.pkl"), "wb") as f:
            pickle.dump({"iteration": self._iteration, "time_total": self._time_total}, f)
        return checkpoint_dir

    def restore(self, checkpoint_dir):
        """Load a checkpoint written by ``save`` (a directory path or Checkpoint)."""
        checkpoint_dir = getattr(checkpoint_dir, "path", checkpoint_dir)
        state_file = os.path.join(checkpoint_dir, ".tune_state.pkl")
        if os.path.exists(state_file):
            with open(state_file, "rb") as f:
                state = pickle.load(f)
            self._iteration, self._time_total = state["iteration"], state["time_total"]
        self._restore_iters = 0
        self._restore_time = 0.0
        dict_file = os.path.join(checkpoint_dir, _DICT_CHECKPOINT)
        if os.path.exists(dict_file):
            with open(dict_file, "rb") as f:
                self.load_checkpoint(pickle.load(f))
        else:
            self.load_checkpoint(checkpoint_dir)

    def stop(self):
        self.cleanup()


def is_class_trainable(obj):
    return inspect.isclass(obj) and issubclass(obj, Trainable)


def with_parameters(trainable, **kwargs):
    """Pass large objects to every trial through the object store, once::

        data = np.zeros(10**7)
        tuner = tune.Tuner(tune.with_parameters(train, data=data), ...)
        # train(config, data) receives the array

    Function trainables get the values as keyword arguments; a Trainable's
    ``setup(config, **kwargs)`` receives them.
    """
    if not minray.is_initialized():
        minray.init()
    refs = {k: minray.put(v) for k, v in kwargs.items()}
    resources = getattr(trainable, "_tune_resources", None)
    if is_class_trainable(trainable):
        base = trainable

        class _WithParameters(base):
            def setup(self, config):
                values = {k: minray.get(r) for k, r in refs.items()}
                base.setup(self, config, **values)
        _WithParameters.__name__ = base.__name__
        _WithParameters.__qualname__ = base.__qualname__
        wrapped = _WithParameters
    elif callable(trainable):
        @functools.wraps(trainable)
        def wrapped(config):
            values = {k: minray.get(r) for k, r in refs.items()}
            return trainable(config, **values)
        wrapped._tune_param_refs = refs  # keeps the objects alive with the wrapper
    else:
        raise TypeError(f"with_parameters() needs a function or tune.Trainable subclass, got "
                        f"{type(trainable).__name__}.")
    if resources is not None:
        wrapped._tune_resources = resources
    return wrapped


def with_resources(trainable, resources):
    """Set each trial's resources: a dict such as ``{"cpu": 2, "gpu": 0.5}``, a
    ``PlacementGroupFactory``, or a function of the config returning either::

        tuner = tune.Tuner(tune.with_resources(train, {"cpu": 2}), ...)
    """
    if is_class_trainable(trainable):
        wrapped = type(trainable.__name__, (trainable,), {"_tune_resources": resources})
        wrapped.__qualname__ = trainable.__qualname__
        wrapped.__module__ = trainable.__module__
        return wrapped

    @functools.wraps(trainable)
    def wrapped(config, **kwargs):
        return trainable(config, **kwargs)
    wrapped._tune_resources = resources
    return wrapped


def normalize_resources(resources):
    """``{"cpu": 2, "gpu": 0, "custom": 1}`` -> actor options (num_cpus, num_gpus, resources)."""
    if resources is None:
        return {"num_cpus": 1}
    bundles = getattr(resources, "bundles", None)
    if bundles is not None:  # a PlacementGroupFactory: the trial's actor takes the first bundle
        resources = dict(bundles[0]) if bundles else {}
    if not isinstance(resources, dict):
        raise TypeError(f"trial resources must be a dict such as {{'cpu': 1}}, got "
                        f"{type(resources).__name__}.")
    options = {"num_cpus": 0, "num_gpus": 0}
    custom = {}
    for key, value in resources.items():
        k = key.lower()
        if k in ("cpu", "num_cpus"):
            options["num_cpus"] = value
        elif k in ("gpu", "num_gpus"):
            options["num_gpus"] = value
        elif k == "memory":
            options["memory"] = value
        else:
            custom[key] = value
    if custom:
        options["resources"] = custom
    if not options["num_gpus"]:
        del options["num_gpus"]
    return options


class TrainableSpec:
    """The runner's view of a trainable: its kind, name and per-trial resources."""

    def __init__(self, trainable, resources_per_trial=None):
        if isinstance(trainable, str):  # a registered name ("PPO", register_trainable(...))
            from .registry import get_trainable_cls
            trainable = get_trainable_cls(trainable)
        if not callable(trainable):
            raise TypeError(f"trainable must be a function or tune.Trainable subclass, got "
                            f"{type(trainable).__name__}.")
        self.trainable = trainable
        self.kind = "class" if is_class_trainable(trainable) else "function"
        self.name = getattr(trainable, "__name__", type(trainable).__name__)
        self._resources = getattr(trainable, "_tune_resources", None) or resources_per_trial
        if self._resources is None and self.kind == "class":
            self._resources = trainable.default_resource_request({}) or None

    def resources(self, config):
        res = self._resources(config) if callable(self._resources) and not hasattr(
            self._resources, "bundles") else self._resources
        return normalize_resources(res)
