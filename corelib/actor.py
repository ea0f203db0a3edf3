"""Actors: ``@ray.remote`` classes, their handles and their methods.

    Cls.remote(*args) -> client.create_actor -> node manager starts a dedicated
                         worker, which builds the instance
    handle.method.remote(*args) -> client.submit_actor_task -> straight to that worker

A handle holds the actor's id, its method table and a *token* ref: the actor
lives while any process holds a handle (or a call to it is pending), exactly
like an object lives while a ref to it exists; then it exits.  Detached actors
ignore tokens and live until killed.
"""

import functools
import inspect
import types

from . import options as _options
from minray._private.core import ids
from minray._private import state
from minray._private.core.signature import ArgSpec
from .remote_function import FunctionInfo


def method(*args, **kwargs):
    """Set options for one actor method: ``@ray.method(num_returns=2)``.

    Example::

        @ray.remote
        class Pair:
            @ray.method(num_returns=2)
            def two(self):
                return 1, 2
    """
    if args and callable(args[0]) and len(args) == 1 and not kwargs:
        return args[0]
    if args:
        raise TypeError("ray.method takes keyword arguments only, e.g. "
                        "@ray.method(num_returns=2).")
    opts = _options.validate(kwargs, "method")

    def decorate(fn):
        fn.__ray_method_options__ = opts
        return fn
    return decorate


def _method_table(cls):
    table = {}
    for name, member in inspect.getmembers(cls):
        fn = member
        if isinstance(inspect.getattr_static(cls, name, None), (staticmethod, classmethod)):
            fn = member
        elif not inspect.isfunction(member):
            continue
        opts = dict(getattr(fn, "__ray_method_options__", {}))
        if isinstance(opts.get("retry_exceptions"), (list, tuple)):
            # By value now: the table travels with the actor's metadata, and a class
            # defined inside a function only pickles with cloudpickle.
            opts["retry_exceptions"] = _options._dumps_classes(tuple(opts["retry_exceptions"]))
        if "num_returns" not in opts and (inspect.isgeneratorfunction(fn) or
                                          inspect.isasyncgenfunction(fn)):
            opts["num_returns"] = "streaming"
        table[name] = opts
    table["__ray_terminate__"] = {}
    return table


def _proxy(fn):
    @functools.wraps(fn)
    def proxy(*args, **kwargs):
        return fn(*args, **kwargs)
    return proxy


def _signatures(cls):
    """{method: ArgSpec} for the constructor ("__init__") and every method: the
    shapes ``.remote()`` checks its arguments against."""
    specs = {}
    for name, member in inspect.getmembers(cls):
        if name.startswith("__") and name != "__init__":
            continue
        static = inspect.getattr_static(cls, name, None)
        if isinstance(static, (staticmethod, classmethod)):
            spec = ArgSpec.of(member, name=f"{cls.__name__}.{name}")   # no self
        elif inspect.isfunction(member):
            spec = ArgSpec.of(member, drop_first=True, name=f"{cls.__name__}.{name}")
        else:
            continue
        if spec is not None:
            specs[name] = spec
    return specs


class ActorClass:
    """What ``@ray.remote`` makes of a class: call ``.remote()`` to start an actor.

    Example::

        @ray.remote
        class Counter:
            def __init__(self):
                self.n = 0
            def incr(self):
                self.n += 1
                return self.n

        c = Counter.remote()
        assert ray.get(c.incr.remote()) == 1
    """

    def __init__(self, cls, actor_options):
        self._cls = cls
        self._default_options = _options.validate(actor_options, "actor")
        self._name = cls.__name__
        self._info = None
        self._methods = _method_table(cls)
        self._signatures = _signatures(cls)
        self.__doc__ = cls.__doc__
        self.__name__ = cls.__name__
        self.__qualname__ = cls.__qualname__
        self.__module__ = cls.__module__

    def __getattr__(self, name):
        # Class attributes and static methods stay reachable through the decorated
        # class (as Ray): ``Cls.LIMIT``, ``Cls.helper()``, from the driver and from
        # the actor's own methods. Dunder names are not forwarded (pickle asks).
        cls = self.__dict__.get("_cls")
        if cls is None or (name.startswith("__") and name.endswith("__")):
            raise AttributeError(name)
        try:
            value = getattr(cls, name)
        except AttributeError:
            raise AttributeError(f"'{self.__dict__.get('_name')}' actor class has no "
                                 f"attribute {name!r}") from None
        if isinstance(value, types.FunctionType):
            # A stand-in, never the function itself: cloudpickle pickles a function by
            # reference when ``module.Class.method`` leads back to it, and every actor
            # process would then import the driver's module to run the class.
            return _proxy(value)
        return value

    def __call__(self, *args, **kwargs):
        raise TypeError(f"Actors cannot be instantiated directly. Instead of "
                        f"'{self._name}()', use '{self._name}.remote()'.")

    def remote(self, *args, **kwargs):
        """Start the actor; returns its ActorHandle at once (creation is asynchronous)."""
        return self._create(self._default_options, args, kwargs)

    def options(self, **actor_options):
        """A copy of this class with options overridden for the next ``.remote()``."""
        merged = dict(self._default_options)
        merged.update(_options.validate(actor_options, "actor"))
        return _ActorClassOptions(self, merged)

    def bind(self, *args, **kwargs):
        raise NotImplementedError("DAG building (.bind) is not part of minray's core API.")

    def _create(self, raw, args, kwargs):
        client = state.require_client()
        init = self._signatures.get("__init__")
        if init is not None:
            init.check(args, kwargs)      # TypeError at .remote(), as Ray
        if self._info is None:
            self._info = FunctionInfo(self._cls, self._name)
        resolved = _options.Resolved(raw, "actor", self._name)
        meta = {"class_name": self._name, "methods": self._methods, "name": raw.get("name"),
                "module": self._cls.__module__,
                "method_groups": {m: o.get("concurrency_group")
                                  for m, o in self._methods.items()
                                  if o.get("concurrency_group")},
                "max_task_retries": raw.get("max_task_retries", 0),
                "signatures": {k: v for k, v in self._signatures.items() if k != "__init__"}}
        actor_id = ids.new_task_id()
        status, actor_id, meta, token = client.create_actor(
            actor_id, self._info, args, kwargs, resolved, meta)
        return ActorHandle(actor_id, meta, token)

    @property
    def __ray_actor_class__(self):
        return self._cls


class _ActorClassOptions:
    def __init__(self, actor_class, merged):
        self._ac = actor_class
        self._raw = merged

    def remote(self, *args, **kwargs):
        return self._ac._create(self._raw, args, kwargs)

    def options(self, **more):
        merged = dict(self._raw)
        merged.update(_options.validate(more, "actor"))
        return _ActorClassOptions(self._ac, merged)


class ActorHandle:
    """A reference to a running actor; pass it to tasks and other actors freely."""

    def __init__(self, actor_id, meta, token):
        self._actor_id = actor_id
        self._meta = meta
        self._token = token
        self._method_cache = {}

    def __getattr__(self, name):
        if name.startswith("__") and name != "__ray_terminate__":
            raise AttributeError(name)
        methods = self.__dict__.get("_meta", {}).get("methods", {})
        if name not in methods:
            raise AttributeError(f"'{self._meta.get('class_name')}' actor has no method "
                                 f"'{name}'. Its methods are: "
                                 f"{', '.join(sorted(m for m in methods if not m.startswith('__')))}.")
        # Cached in the instance dict, so the next access is a plain attribute
        # lookup. The method holds the actor's id and lifetime token, never the
        # handle itself: no handle <-> method cycle keeps the actor alive.
        m = ActorMethod(self, name, methods[name], self._method_cache)
        self.__dict__[name] = m
        return m

    def __reduce__(self):
        return (ActorHandle, (self._actor_id, self._meta, self._token))

    def __repr__(self):
        return f"Actor({self._meta.get('class_name')}, {self._actor_id.hex()})"

    def __hash__(self):
        return hash(self._actor_id)

    def __eq__(self, other):
        return isinstance(other, ActorHandle) and other._actor_id == self._actor_id

    @property
    def _ray_actor_id(self):
        return ActorID(self._actor_id)


class ActorID:
    def __init__(self, binary):
        self._binary = binary

    def hex(self):
        return self._binary.hex()

    def binary(self):
        return self._binary

    def __eq__(self, other):
        return isinstance(other, ActorID) and other._binary == self._binary

    def __hash__(self):
        return hash(self._binary)

    def __repr__(self):
        return f"ActorID({self.hex()})"


class ActorMethod:
    """``handle.method``: call ``.remote()`` on it, or ``.options(...)`` first."""

    def __init__(self, handle, name, method_options, cache=None):
        self._actor_id = handle._actor_id
        self._token = handle._token
        self._class_name = handle._meta.get("class_name")
        self._name = name
        resolved = cache.get(name) if cache is not None else None
        if resolved is None:
            raw = dict(method_options)
            raw.setdefault("max_task_retries", handle._meta.get("max_task_retries", 0))
            resolved = _resolve_method(raw, f"{self._class_name}.{name}")
            if cache is not None:
                cache[name] = resolved
        self._raw = resolved.raw
        self._resolved = resolved
        self._spec = (handle._meta.get("signatures") or {}).get(name)

    def remote(self, *args, **kwargs):
        if self._spec is not None:
            self._spec.check(args, kwargs)      # TypeError at .remote(), as Ray
        return state.require_client().submit_actor_task(
            self._actor_id, self._name, args, kwargs, self._resolved, self._token)

    def options(self, **method_options):
        raw = dict(self._raw)
        raw.update(_options.validate(method_options, "method"))
        m = ActorMethod.__new__(ActorMethod)
        m._actor_id, m._token, m._class_name = self._actor_id, self._token, self._class_name
        m._name, m._raw, m._spec = self._name, raw, self._spec
        m._resolved = _resolve_method(raw, f"{self._class_name}.{self._name}")
        return m

    def __call__(self, *args, **kwargs):
        raise TypeError(f"Actor methods cannot be called directly. Instead of running "
                        f"'{self._name}()', try '{self._name}.remote()'.")

    def bind(self, *args, **kwargs):
        raise NotImplementedError("DAG building (.bind) is not part of minray's core API.")


def _resolve_method(raw, name):
    task_raw = {k: v for k, v in raw.items() if k in ("num_returns", "retry_exceptions",
                                                      "name")}
    r = _options.Resolved(task_raw, "method", name)
    r.raw = dict(raw)
    r.max_task_retries = raw.get("max_task_retries", 0)
    r.wire = (r.name, {}, r.wire[2], raw.get("concurrency_group"), 0, None, False)
    return r


def exit_actor():
    """Leave the current actor after this call; later calls raise ActorDiedError.

    Example::

        @ray.remote
        class Worker:
            def stop(self):
                ray.actor.exit_actor()
    """
    from minray._private.core.execution import ActorExit   # light only once it runs
    server = state.current_worker_server()
    if server is None or server.actor is None:
        raise TypeError("exit_actor() can only be called inside an actor method.")
    raise ActorExit()
