"""``@serve.deployment``, ``.options()``, ``.bind()`` and the application graph.

    @serve.deployment(num_replicas=2)
    class Model:
        def __call__(self, request): return "ok"

    app = Model.bind()          # an Application: the deployment and its init args
    serve.run(app, name="m", route_prefix="/m")

``bind`` arguments may themselves be Applications (model composition);
``build_app`` flattens the graph into one ``DeploymentSpec`` per deployment and
replaces every nested Application by a DeploymentHandle to it.
"""

import hashlib
import inspect
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import cloudpickle

from .config import DEPLOYMENT_OPTIONS, DeploymentConfig


class Deployment:
    """A class or function made servable by ``@serve.deployment``."""

    def __init__(self, func_or_class, name, config, version=None, route_prefix=None):
        self.func_or_class = func_or_class
        self._name = name
        self._config = config
        self._version = version
        self._route_prefix = route_prefix

    @property
    def name(self):
        return self._name

    @property
    def version(self):
        return self._version

    @property
    def num_replicas(self):
        return self._config.num_replicas

    @property
    def user_config(self):
        return self._config.user_config

    @property
    def max_ongoing_requests(self):
        return self._config.max_ongoing_requests

    @property
    def ray_actor_options(self):
        return self._config.ray_actor_options

    def options(self, **options):
        """A copy with some options changed: ``Model.options(num_replicas=3).bind()``."""
        _check_options(options)
        cfg = DeploymentConfig.from_options(options, base=self._config)
        return Deployment(self.func_or_class, options.get("name", self._name), cfg,
                          options.get("version", self._version),
                          options.get("route_prefix", self._route_prefix))

    def bind(self, *args, **kwargs):
        """An Application: this deployment with its constructor arguments."""
        return Application(self, args, kwargs)

    def __call__(self, *args, **kwargs):
        raise RuntimeError(f"Deployments cannot be constructed directly: use "
                           f"{self._name}.bind(...) and serve.run(app).")

    def __repr__(self):
        return f"Deployment(name={self._name!r})"


class Application:
    """A bound deployment (``Model.bind(...)``), the unit ``serve.run`` deploys."""

    def __init__(self, deployment, args, kwargs):
        self._deployment = deployment
        self._args = args
        self._kwargs = kwargs

    @property
    def deployment(self):
        return self._deployment

    def __repr__(self):
        return f"Application({self._deployment.name!r})"


def _check_options(options):
    unknown = set(options) - DEPLOYMENT_OPTIONS
    if unknown:
        raise TypeError(f"Unknown deployment option(s) {sorted(unknown)}; valid options are "
                        f"{sorted(DEPLOYMENT_OPTIONS)}.")


def deployment(_func_or_class=None, **options):
    """Turn a class or function into a Deployment (Ray's ``@serve.deployment``).

        @serve.deployment(num_replicas=2, ray_actor_options={"num_cpus": 0.5})
        class Summarizer: ...

        @serve.deployment
        def hello(request): return "hello"
    """
    _check_options(options)

    def decorate(obj):
        if not (inspect.isclass(obj) or callable(obj)):
            raise TypeError(f"@serve.deployment decorates a class or a function, got "
                            f"{type(obj).__name__}.")
        cfg = DeploymentConfig.from_options(options)
        name = options.get("name") or obj.__name__
        return Deployment(obj, name, cfg, options.get("version"), options.get("route_prefix"))

    if _func_or_class is not None:
        return decorate(_func_or_class)
    return decorate


@dataclass
class DeploymentSpec:
    """What the controller needs to run one deployment of an application."""
    name: str
    serialized_def: bytes           # cloudpickle of (func_or_class, init_args, init_kwargs)
    config: DeploymentConfig
    code_version: str               # changes => replicas are replaced (rolling update)
    is_function: bool
    is_asgi: bool = False
    methods: List[str] = field(default_factory=list)


@dataclass
class AppSpec:
    name: str
    route_prefix: Optional[str]
    ingress: str
    deployments: Dict[str, DeploymentSpec]


@dataclass
class _ModuleRef:
    """A deployment's class or function found again by import in the replica."""
    module: str
    qualname: str

    def load(self):
        import importlib
        obj = importlib.import_module(self.module)
        for part in self.qualname.split("."):
            obj = getattr(obj, part)
        return obj.func_or_class if isinstance(obj, Deployment) else obj


_BY_VALUE = set()


def register_by_value(module_name):
    """Ship this module's deployments by value (the CLI: replicas need not import it)."""
    _BY_VALUE.add(module_name)


def _by_reference(dep):
    """Pickle the user's class by reference when its module can be imported.

    ``@serve.deployment`` replaces the module's name for the class with the
    Deployment, so cloudpickle alone would copy the class by value (and with it
    e.g. a FastAPI app whose routes then point at other function objects).
    """
    import sys
    obj = dep.func_or_class
    module = getattr(obj, "__module__", None)
    if module in (None, "__main__") or module not in sys.modules or module in _BY_VALUE:
        return obj
    found = sys.modules[module]
    for part in getattr(obj, "__qualname__", "").split("."):
        found = getattr(found, part, None)
    if isinstance(found, Deployment) and found.func_or_class is obj or found is obj:
        return _ModuleRef(module, obj.__qualname__)
    return obj


def load_definition(blob):
    obj, args, kwargs = cloudpickle.loads(blob)
    if isinstance(obj, _ModuleRef):
        obj = obj.load()
    return obj, args, kwargs


def build_app(app, name, route_prefix, make_handle):
    """Flatten an Application graph into an AppSpec (pure apart from pickling).

    ``make_handle(app_name, deployment_name)`` builds the handle that stands in for
    a nested Application in its parent's constructor arguments.
    """
    if isinstance(app, Deployment):
        raise TypeError(f"serve.run takes an Application: call {app.name}.bind() first.")
    if not isinstance(app, Application):
        raise TypeError(f"serve.run takes an Application (Model.bind(...)), got "
                        f"{type(app).__name__}.")
    specs = {}
    seen = {}

    def visit(node):
        if id(node) in seen:
            return seen[id(node)]
        dep = node.deployment
        if dep.name in specs:
            raise ValueError(f"Application {name!r} binds two deployments named {dep.name!r}: "
                             f"give one another name, e.g. "
                             f"{dep.name}.options(name=\"{dep.name}2\").bind(...).")
        args = tuple(_replace(a, visit) for a in node._args)
        kwargs = {k: _replace(v, visit) for k, v in node._kwargs.items()}
        blob = cloudpickle.dumps((_by_reference(dep), args, kwargs))
        opts_blob = cloudpickle.dumps(sorted(dep.ray_actor_options.items()))
        version = dep.version or hashlib.sha1(blob + opts_blob).hexdigest()[:16]
        obj = dep.func_or_class
        specs[dep.name] = DeploymentSpec(
            name=dep.name, serialized_def=blob, config=dep._config, code_version=version,
            is_function=not inspect.isclass(obj),
            is_asgi=getattr(obj, "__serve_asgi_app__", None) is not None)
        handle = make_handle(name, dep.name)
        seen[id(node)] = handle
        return handle

    def _replace(value, visit_fn):
        if isinstance(value, Application):
            return visit_fn(value)
        if isinstance(value, list):
            return [_replace(v, visit_fn) for v in value]
        if isinstance(value, tuple):
            return tuple(_replace(v, visit_fn) for v in value)
        if isinstance(value, dict):
            return {k: _replace(v, visit_fn) for k, v in value.items()}
        return value

    visit(app)
    prefix = route_prefix if route_prefix is not None else (app.deployment._route_prefix or "/")
    if prefix is not None and not (isinstance(prefix, str) and prefix.startswith("/")):
        raise ValueError(f"route_prefix must start with '/', got {prefix!r}.")
    if prefix and prefix != "/" and prefix.endswith("/"):
        raise ValueError(f"route_prefix must not end with '/', got {prefix!r}.")
    return AppSpec(name=name, route_prefix=prefix, ingress=app.deployment.name, deployments=specs)
