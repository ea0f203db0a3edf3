"""``minray serve ...``: run, deploy, status and shutdown from the shell.

    minray serve run module:app [--name N] [--route-prefix /p] [--port 8000] [--non-blocking]
    minray serve deploy config.yaml          # Ray's config file schema (YAML or JSON)
    minray serve status
    minray serve shutdown [-y]

``run`` joins the cluster running on this machine (``minray start --head``) or
starts a local one, deploys and, unless --non-blocking, serves until Ctrl-C.
``deploy``, ``status`` and ``shutdown`` talk to a running cluster.

Config file (Ray's schema)::

    http_options: {host: 127.0.0.1, port: 8000}
    applications:
      - name: app1
        route_prefix: /a
        import_path: my_module:app          # an Application, or a builder f(args) -> it
        args: {model: small}
        deployments:
          - {name: Model, num_replicas: 2, user_config: {threshold: 0.5}}
"""

import importlib
import json
import os
import sys
import time


def add_parser(sub):
    p = sub.add_parser("serve", help="deploy and manage Serve applications")
    ssub = p.add_subparsers(dest="serve_command", required=True)

    def common(q):
        q.add_argument("--address", "-a", default=None,
                       help="the cluster to use (default: the one on this machine)")
        q.add_argument("--temp-dir", default=None, help=argparse_hidden())
    q = ssub.add_parser("run", help="deploy module:app and serve it")
    q.add_argument("import_path", help="module:attribute of an Application (Model.bind())")
    q.add_argument("--name", default="default", help="the application's name")
    q.add_argument("--route-prefix", default="/", help="the HTTP path the app answers under")
    q.add_argument("--host", default="127.0.0.1", help="the address the HTTP proxy binds")
    q.add_argument("--port", type=int, default=8000, help="the HTTP proxy's port")
    q.add_argument("--app-dir", default=".", help="put this directory on sys.path first")
    q.add_argument("--non-blocking", action="store_true",
                   help="return once the app is RUNNING (it keeps running on a cluster)")
    common(q)
    q.set_defaults(fn=cmd_run)
    q = ssub.add_parser("deploy", help="deploy the applications of a config file")
    q.add_argument("config_file", help="a Serve config (YAML with PyYAML installed, else JSON)")
    q.add_argument("--app-dir", default=".", help="put this directory on sys.path first")
    common(q)
    q.set_defaults(fn=cmd_deploy)
    q = ssub.add_parser("status", help="print the applications and their deployments")
    common(q)
    q.set_defaults(fn=cmd_status)
    q = ssub.add_parser("shutdown", help="delete every application and stop Serve")
    q.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    common(q)
    q.set_defaults(fn=cmd_shutdown)


def argparse_hidden():
    import argparse
    return argparse.SUPPRESS


def _connect(args, start_local=False):
    import minray as ray
    if ray.is_initialized():
        return
    kw = {"_temp_dir": args.temp_dir} if args.temp_dir else {}
    try:
        ray.init(address=args.address or "auto", **kw)
    except ConnectionError:
        if not start_local or args.address:
            raise SystemExit("minray serve: no running minray cluster found on this machine. "
                             "Start one with `minray start --head`, or use "
                             "`minray serve run module:app` to run a local one.")
        ray.init(**kw)


def _import_attr(import_path, app_dir):
    if app_dir and os.path.abspath(app_dir) not in sys.path:
        sys.path.insert(0, os.path.abspath(app_dir))
    if ":" in import_path:
        module_name, attr = import_path.split(":", 1)
    elif "." in import_path:
        module_name, attr = import_path.rsplit(".", 1)
    else:
        raise SystemExit(f"minray serve: import path {import_path!r} must be 'module:attribute' "
                         f"(e.g. my_app:app).")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"minray serve: cannot import {module_name!r}: {exc} (run from the "
                         f"directory that holds it, or pass --app-dir).")
    import cloudpickle
    # The code travels by value, so replicas need not import it from this directory.
    cloudpickle.register_pickle_by_value(module)
    from .application import register_by_value
    register_by_value(module_name)
    try:
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise SystemExit(f"minray serve: module {module_name!r} has no attribute {attr!r}.")
    return obj


def _application(obj, app_args):
    from .application import Application, Deployment
    if isinstance(obj, Deployment):
        obj = obj.bind()
    elif not isinstance(obj, Application) and callable(obj):
        obj = obj(app_args or {})              # an application builder
    if not isinstance(obj, Application):
        raise SystemExit(f"minray serve: the import path must name an Application "
                         f"(Model.bind(...)) or a function returning one, got "
                         f"{type(obj).__name__}.")
    return obj


def cmd_run(args):
    from . import api
    _connect(args, start_local=True)
    app = _application(_import_attr(args.import_path, args.app_dir), None)
    api.start(http_options={"host": args.host, "port": args.port})
    api.run(app, name=args.name, route_prefix=args.route_prefix)
    print(f"Application {args.name!r} is RUNNING at http://{args.host}:{args.port}"
          f"{args.route_prefix}", flush=True)
    if args.non_blocking:
        return 0
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        print("Shutting down Serve.", flush=True)
        api.shutdown()
    return 0


def load_config(path):
    """The parsed config file: YAML when PyYAML is installed, else JSON."""
    with open(path) as f:
        text = f.read()
    try:
        import yaml
    except ImportError:
        yaml = None
    if yaml is not None:
        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SystemExit(f"minray serve: {path} is not valid YAML: {exc}")
    else:
        try:
            config = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"minray serve: {path} is not JSON and PyYAML is not installed "
                             f"to read it as YAML ({exc}). `pip install pyyaml`, or write the "
                             f"config as JSON.")
    if not isinstance(config, dict) or not isinstance(config.get("applications"), list):
        raise SystemExit(f"minray serve: {path} needs a top-level 'applications:' list "
                         f"(Ray's Serve config schema).")
    return config


def build_specs(config, app_dir="."):
    """AppSpecs for a parsed config, with the per-deployment overrides applied."""
    import dataclasses
    import hashlib

    from .config import DeploymentConfig
    from .application import build_app
    from .handle import DeploymentHandle
    specs = []
    for i, entry in enumerate(config["applications"]):
        if "import_path" not in entry:
            raise SystemExit(f"minray serve: applications[{i}] has no import_path.")
        name = entry.get("name", "default")
        app = _application(_import_attr(entry["import_path"], app_dir), entry.get("args"))
        spec = build_app(app, name, entry.get("route_prefix", "/"),
                         lambda a, d: DeploymentHandle(d, a))
        for override in entry.get("deployments") or []:
            dname = override.get("name")
            if dname not in spec.deployments:
                raise SystemExit(f"minray serve: application {name!r} has no deployment "
                                 f"{dname!r} (it has {sorted(spec.deployments)}).")
            d = spec.deployments[dname]
            opts = {k: v for k, v in override.items() if k != "name"}
            try:
                cfg = DeploymentConfig.from_options(opts, base=d.config)
            except (TypeError, ValueError) as exc:
                raise SystemExit(f"minray serve: deployment {dname!r}: {exc}")
            version = d.code_version
            if "ray_actor_options" in opts:
                version = hashlib.sha1((version + repr(sorted(cfg.ray_actor_options.items())))
                                       .encode()).hexdigest()[:16]
            spec.deployments[dname] = dataclasses.replace(d, config=cfg, code_version=version)
        specs.append(spec)
    return specs


def cmd_deploy(args):
    from . import api
    config = load_config(args.config_file)
    _connect(args)
    specs = build_specs(config, args.app_dir)
    api.start(http_options=config.get("http_options"))
    api._deploy_specs(specs)
    print(f"Deployed {', '.join(repr(s.name) for s in specs)}.", flush=True)
    return 0


def cmd_status(args):
    from . import api
    _connect(args)
    st = api.status()
    out = {"proxies": {k: v.status for k, v in st.proxies.items()}, "applications": {}}
    for name, app in st.applications.items():
        out["applications"][name] = {
            "status": app.status, "message": app.message, "route_prefix": app.route_prefix,
            "deployments": {d: {"status": v.status, "replica_states": v.replica_states,
                                "message": v.message} for d, v in app.deployments.items()}}
    try:
        import yaml
        print(yaml.safe_dump(out, sort_keys=False), end="")
    except ImportError:
        print(json.dumps(out, indent=2))
    return 0


def cmd_shutdown(args):
    from . import api
    if not args.yes:
        answer = input("This deletes every Serve application. Continue? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 1
    _connect(args)
    api.shutdown()
    print("Serve is shut down.", flush=True)
    return 0
