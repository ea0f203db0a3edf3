"""Remote functions: what ``@ray.remote`` makes of a plain function.

    f.remote(*args) -> options resolved once -> client.submit_task -> ObjectRef(s)

The function is pickled once (cloudpickle), identified by a hash of its bytes,
and sent to each worker the first time that worker runs it.
"""

import functools
import hashlib
import inspect


from . import options as _options
from minray._private.objects import serialization
from minray._private import state
from minray._private.core.signature import ArgSpec


# Tasks of a function measured as short (and never blocking in get) are
# pipelined by the submitter: several wait in one worker's socket, which hides
# the round trip.  See core_client._pump.
FAST_TASK_S = 0.002
FAST_AFTER_SAMPLES = 3


class FunctionInfo:
    """A function (or class), pickled on first use and identified by a hash of
    its bytes: shipped once per worker.  Local mode uses ``obj`` directly."""

    __slots__ = ("obj", "name", "_blob", "_fn_id", "samples", "avg_s", "blocks")

    def __init__(self, obj, name):
        self.obj = obj
        self.name = name
        self._blob = None
        self._fn_id = None
        self.samples = 0       # completed runs observed by this submitter
        self.avg_s = 0.0       # their moving average duration (submit to done)
        self.blocks = False    # did a run ever block in get()/wait()?

    def observe(self, seconds, blocked):
        self.samples += 1
        self.avg_s = seconds if self.samples == 1 else 0.8 * self.avg_s + 0.2 * seconds
        self.blocks = self.blocks or blocked

    def pipelinable(self):
        """Short and never blocking: safe to queue several on one worker."""
        return (self.samples >= FAST_AFTER_SAMPLES and not self.blocks and
                self.avg_s < FAST_TASK_S)

    def _pickle(self):
        try:
            self._blob = serialization.dumps_function(self.obj)
        except Exception as exc:
            from minray._private.objects.serialization import unserializable_error
            raise unserializable_error(self.obj, exc, what=f"'{self.name}'") from None
        self._fn_id = hashlib.blake2b(self._blob, digest_size=16).digest()

    @property
    def blob(self):
        if self._blob is None:
            self._pickle()
        return self._blob

    @property
    def fn_id(self):
        if self._fn_id is None:
            self._pickle()
        return self._fn_id


class RemoteFunction:
    """A function that runs as a task: call ``.remote()`` on it.

    Example::

        @ray.remote(num_cpus=1)
        def add(a, b):
            return a + b

        assert ray.get(add.remote(1, 2)) == 3
        ref = add.options(name="sum").remote(3, 4)
    """

    def __init__(self, function, task_options):
        if inspect.isclass(function):
            raise TypeError("RemoteFunction wraps functions; use @ray.remote on the class.")
        self._function = function
        self._default_options = _options.validate(task_options, "task")
        if inspect.isgeneratorfunction(function) and "num_returns" not in self._default_options:
            # Ray 2.x: generator functions stream their items by default.
            self._default_options["num_returns"] = "streaming"
        self._name = getattr(function, "__qualname__", getattr(function, "__name__", "task"))
        self._info = None
        self._resolved = None
        self._spec = ArgSpec.of(function, name=self._name)
        functools.update_wrapper(self, function, updated=())

    def __call__(self, *args, **kwargs):
        raise TypeError(f"Remote functions cannot be called directly. Instead of running "
                        f"'{self._name}()', try '{self._name}.remote()'.")

    def _function_info(self):
        info = self._info
        if info is None:
            info = self._info = FunctionInfo(self._function, self._name)
        return info

    def _resolved_options(self):
        r = self._resolved
        if r is None:
            r = self._resolved = _options.Resolved(self._default_options, "task", self._name)
        return r

    def remote(self, *args, **kwargs):
        """Submit the task; returns an ObjectRef (a list for num_returns > 1)."""
        client = state.require_client()
        if self._spec is not None:
            self._spec.check(args, kwargs)     # TypeError now, as Ray
        return client.submit_task(self._function_info(), args, kwargs,
                                  self._resolved_options())

    def options(self, **task_options):
        """A copy of this function with some options overridden, for the next call(s)."""
        merged = dict(self._default_options)
        merged.update(_options.validate(task_options, "task"))
        return _BoundOptions(self, merged)

    def bind(self, *args, **kwargs):
        raise NotImplementedError("DAG building (.bind) is not part of minray's core API; "
                                  "call .remote() instead.")

    @property
    def underlying_function(self):
        return self._function


class _BoundOptions:
    """``f.options(...)``: remembers the options; ``.remote()`` submits with them."""

    def __init__(self, remote_function, merged):
        self._rf = remote_function
        self._resolved = _options.Resolved(merged, "task", merged.get("name") or
                                           remote_function._name)

    def remote(self, *args, **kwargs):
        client = state.require_client()
        if self._rf._spec is not None:
            self._rf._spec.check(args, kwargs)
        return client.submit_task(self._rf._function_info(), args, kwargs, self._resolved)

    def options(self, **more):
        merged = dict(self._resolved.raw)
        merged.update(_options.validate(more, "task"))
        return _BoundOptions(self._rf, merged)

    def __call__(self, *args, **kwargs):
        return self._rf(*args, **kwargs)
