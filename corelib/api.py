"""The Core API functions: init, shutdown, remote, get, put, wait, cancel, kill ...

Each is a thin call into the process's core client (``_private.state``); a
driver that calls any of them without ``init()`` starts a local runtime first,
as Ray does.
"""

import atexit
import inspect
import os
import shutil
import sys
import uuid

import psutil

from . import exceptions
from minray._private.node import launch as _node
from minray._private import address as _address
from minray._private import log as _log
from minray._private import state
from .actor import ActorClass, ActorHandle
from .object_ref import ObjectRef, ObjectRefGenerator
from .remote_function import RemoteFunction

_runtime = {}   # what this driver started: {"proc": Popen, "session_dir": str}


class RayContext(dict):
    """What ``init()`` returns: address info; usable as a context manager."""

    def __init__(self, info):
        super().__init__(info)
        self.address_info = info
        self.dashboard_url = info.get("webui_url")

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        shutdown()

    def disconnect(self):
        shutdown()


def _detect_gpus():
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip()])
    try:
        return len([d for d in os.listdir("/dev") if d.startswith("nvidia") and d[6:].isdigit()])
    except OSError:
        return 0


def init(address=None, *, num_cpus=None, num_gpus=None, resources=None,
         object_store_memory=None, local_mode=False, ignore_reinit_error=False,
         include_dashboard=None, dashboard_host="127.0.0.1", dashboard_port=None,
         namespace=None, runtime_env=None, log_to_driver=True, logging_level=None,
         logging_format=None, configure_logging=True, _temp_dir=None, labels=None,
         job_config=None, **kwargs):
    """Start minray on this machine (or connect to a running node) and return its info.

    Example::

        import minray as ray
        ray.init(num_cpus=4)
        ...
        ray.shutdown()

    ``local_mode=True`` runs every task and actor call serially in this process,
    so breakpoints and pdb work inside remote code.

    Logging, as Ray's: ``logging_level`` (an int or a name such as "debug";
    default INFO) and ``logging_format`` set the driver's ``minray`` logger and
    its handlers' format, unless ``configure_logging=False``. ``log_to_driver``
    False keeps the workers' stdout and stderr in their log files instead of
    echoing them here.
    """
    with state.init_lock():
        if state.current_client() is not None:
            if ignore_reinit_error:
                return RayContext(_runtime.get("info", {}))
            raise RuntimeError("Maybe you called ray.init twice by accident? This error can "
                               "be suppressed by passing in 'ignore_reinit_error=True' or by "
                               "calling 'ray.shutdown()' prior to 'ray.init()'.")
        unknown = set(kwargs) - {"_system_config", "_node_ip_address", "storage",
                                 "_enable_object_reconstruction", "_plasma_directory",
                                 "_metrics_export_port", "_redis_password",
                                 "_node_name", "_tracing_startup_hook", "_memory",
                                 "enable_resource_isolation", "system_reserved_cpu",
                                 "system_reserved_memory", "logging_config"}
        if unknown:
            raise TypeError(f"init() got unexpected keyword argument(s): {sorted(unknown)}")
        _validate_init(num_cpus, num_gpus, resources, object_store_memory, runtime_env,
                       namespace)
        if configure_logging:
            _log.configure(logging_level, logging_format)
        if runtime_env is None and os.environ.get("MINRAY_JOB_RUNTIME_ENV"):
            # A driver run by `minray job submit`: the job's runtime_env applies to
            # its tasks and actors too, as Ray's job submission does.
            import json
            try:
                job_env = json.loads(os.environ["MINRAY_JOB_RUNTIME_ENV"]) or {}
            except ValueError:
                job_env = {}
            # Its working_dir is already this process's cwd and sys.path, which tasks
            # inherit; its env_vars must reach them too.
            if job_env.get("env_vars"):
                runtime_env = {"env_vars": dict(job_env["env_vars"])}
        env_vars = dict((runtime_env or {}).get("env_vars") or {})
        if local_mode:
            from minray._private.local.client import LocalClient
            total = _total_resources(num_cpus, num_gpus, resources)
            client = LocalClient(total, namespace or _anonymous_namespace(), env_vars)
            state.set_client(client)
            info = {"node_ip_address": "127.0.0.1", "session_dir": None, "local_mode": True}
            _runtime.update(info=info)
            return RayContext(info)
        if address is None:
            address = os.environ.get("RAY_ADDRESS") or os.environ.get("MINRAY_ADDRESS")
        if address is None:
            address = _discover_cluster(_temp_dir, num_cpus, num_gpus, resources,
                                        object_store_memory)
        if address in (None, "local"):
            total = _total_resources(num_cpus, num_gpus, resources)
            store = object_store_memory or _node.default_object_store_memory()
            total.setdefault("object_store_memory", float(store))
            session_dir, proc = _node.start_node(total, store, temp_dir=_temp_dir,
                                                 owner_pid=os.getpid(),
                                                 system_config=kwargs.get("_system_config"),
                                                 while_starting=_import_client)
            _runtime.update(proc=proc, session_dir=session_dir)
        else:
            if num_cpus is not None or num_gpus is not None or resources:
                raise ValueError("When connecting to an existing cluster, num_cpus, num_gpus "
                                 "and resources must not be provided; set them on "
                                 "'minray start' instead.")
            session_dir = _resolve_address(address, _temp_dir)
            _runtime.update(proc=None, session_dir=session_dir)
        from minray._private.client.core_client import CoreClient
        job_cfg = {"sys_path": [p for p in sys.path if p], "cwd": os.getcwd(),
                   "env_vars": env_vars, "namespace": namespace or _anonymous_namespace(),
                   "log_to_driver": log_to_driver}
        try:
            client = CoreClient("driver", os.path.join(session_dir, "nm.sock"), job_cfg)
        except BaseException:
            _stop_owned_node()
            raise
        client.namespace = job_cfg["namespace"]
        client.runtime_env = runtime_env or {}
        state.set_client(client)
        info = {"node_ip_address": "127.0.0.1", "session_dir": session_dir,
                "node_id": client.node_id, "address": session_dir,
                "webui_url": None, "gcs_address": session_dir}
        _runtime["info"] = info
        return RayContext(info)


def _import_client():
    from minray._private.client import core_client  # noqa: F401


def _anonymous_namespace():
    return str(uuid.uuid4())


def _validate_init(num_cpus, num_gpus, resources, object_store_memory, runtime_env, namespace):
    for key, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 0):
            raise ValueError(f"init({key}=...) must be a non-negative int, got {value!r}.")
    if resources is not None:
        if not isinstance(resources, dict):
            raise ValueError(f"init(resources=...) must be a dict, got {resources!r}.")
        for k, v in resources.items():
            if k in ("CPU", "GPU"):
                raise ValueError(f"Use init(num_{k.lower()}s=...) instead of resources={{'{k}': ...}}.")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"init(resources={{{k!r}: {v!r}}}): amounts must be "
                                 "non-negative numbers.")
    if object_store_memory is not None and (not isinstance(object_store_memory, int) or
                                            object_store_memory < 1024 * 1024):
        raise ValueError("init(object_store_memory=...) must be an int number of bytes of at "
                         f"least 1 MiB, got {object_store_memory!r}.")
    if runtime_env is not None and not isinstance(runtime_env, dict):
        raise ValueError(f"init(runtime_env=...) must be a dict, got {runtime_env!r}.")
    if namespace is not None and (not isinstance(namespace, str) or not namespace):
        raise ValueError(f"init(namespace=...) must be a non-empty string, got {namespace!r}.")


def _total_resources(num_cpus, num_gpus, resources):
    total = {"CPU": float(os.cpu_count() or 1 if num_cpus is None else num_cpus)}
    gpus = _detect_gpus() if num_gpus is None else num_gpus
    if gpus:
        total["GPU"] = float(gpus)
    total["memory"] = float(int(psutil.virtual_memory().available * 0.7))
    for k, v in (resources or {}).items():
        total[k] = float(v)
    return total


def _discover_cluster(temp_dir, num_cpus, num_gpus, resources, object_store_memory):
    """init() with no address, as Ray: the newest node started with `minray start`
    on this machine, if one runs; otherwise None (start a private runtime).

    Ray refuses resource arguments when it joins a running cluster; here a call that
    sizes its own runtime (num_cpus=..., ...) gets a private one instead, with a
    warning, so a stray node never captures it. ``address="local"`` (or
    RAY_ADDRESS=local) always starts a private runtime.
    """
    found = _node.find_running_session(temp_dir)
    if found is None:
        return None
    if num_cpus is not None or num_gpus is not None or resources or object_store_memory:
        import logging
        logging.getLogger("minray").warning(
            "A minray node runs on this machine (%s), but init() was given resources, so "
            "it starts a private runtime. Pass address='auto' to join the node (without "
            "resource arguments), or address='local' to silence this.", found)
        return None
    return found


# Where init(address=...) and the CLI connect: minray._private.address (util.state
# uses it too, without importing this module).
_resolve_address = _address.resolve_address


def _stop_owned_node():
    proc = _runtime.pop("proc", None)
    session_dir = _runtime.pop("session_dir", None)
    if proc is not None:
        try:
            proc.terminate()
            proc.wait(timeout=10)
        except Exception:
            try:
                proc.kill()
                proc.wait(timeout=5)
            except Exception:
                pass
        if session_dir:
            # A node manager that was killed (SIGKILL) could not unlink its segments.
            from minray._private.objects import shm
            for name in shm.list_segments("mr" + os.path.basename(session_dir)[-8:] + "_"):
                shm.unlink(name)
        if session_dir and not os.environ.get("MINRAY_KEEP_SESSION"):
            # Worker output already reached the driver; keep the dir only when asked to.
            shutil.rmtree(session_dir, ignore_errors=True)


def is_initialized():
    """True once init() (or the first remote call) has started or joined a runtime."""
    return state.current_client() is not None


def shutdown(_exiting_interpreter=False):
    """Disconnect this driver; stop the local runtime it started (workers, store, files)."""
    with state.init_lock():
        client = state.current_client()
        if client is None:
            return
        state.set_client(None)
        owned = _runtime.get("proc") is not None
        if hasattr(client, "flush_logs"):
            # What workers printed just before the end still reaches this terminal.
            try:
                client.flush_logs(timeout=1.0)
            except Exception:
                pass
        if not owned and hasattr(client, "flush_logs"):
            # A node that outlives this driver keeps its task records (state API,
            # dashboard): collect them from its workers before they are stopped.
            from minray._private.observability import task_events
            task_events.settle(client)
        client.shutting_down = True
        if owned and hasattr(client, "call"):
            try:
                client.call("shutdown", timeout=10)
            except Exception:
                pass
        try:
            client.close()
        except Exception:
            pass
        _stop_owned_node()
        _runtime.clear()


atexit.register(shutdown, True)


def remote(*args, **kwargs):
    """Make a function a task, or a class an actor.

    Example::

        @ray.remote
        def f(x):
            return x * 2

        @ray.remote(num_cpus=2, max_retries=1)
        def g(): ...

        @ray.remote
        class Counter: ...
    """
    if len(args) == 1 and not kwargs and (inspect.isfunction(args[0]) or
                                          inspect.isclass(args[0]) or callable(args[0])):
        return _make_remote(args[0], {})
    if args:
        raise TypeError("The @ray.remote decorator must be applied either with no arguments "
                        "and no parentheses, for example '@ray.remote', or it must be applied "
                        "using only keyword arguments, for example "
                        "'@ray.remote(num_returns=2)'.")

    def decorate(obj):
        return _make_remote(obj, kwargs)
    return decorate


def _make_remote(obj, options):
    if inspect.isclass(obj):
        return ActorClass(obj, options)
    if callable(obj):
        return RemoteFunction(obj, options)
    raise TypeError(f"@ray.remote applies to functions and classes, not {type(obj).__name__}.")


def get(object_refs, *, timeout=None):
    """Block until the value(s) of ``object_refs`` are ready and return them.

    Example::

        assert ray.get(f.remote(1)) == 2
        a, b = ray.get([f.remote(1), f.remote(2)])
    """
    if timeout is not None and (isinstance(timeout, bool) or
                                not isinstance(timeout, (int, float)) or timeout < 0):
        raise ValueError(f"get(timeout=...) must be None or a number >= 0, got {timeout!r}")
    return state.require_client().get(object_refs, timeout)


def put(value, *, _owner=None):
    """Store ``value`` in the object store and return its ObjectRef.

    Example::

        ref = ray.put(np.zeros(10**6))   # large arrays are shared, not copied, by tasks
    """
    return state.require_client().put(value)


def wait(object_refs, *, num_returns=1, timeout=None, fetch_local=True):
    """Return (ready, not_ready) once ``num_returns`` refs are ready or ``timeout`` passes.

    Example::

        ready, pending = ray.wait(refs, num_returns=2, timeout=1.0)
    """
    return state.require_client().wait(object_refs, num_returns, timeout, fetch_local)


def cancel(object_ref, *, force=False, recursive=True):
    """Cancel the task that makes ``object_ref``; ``get`` then raises TaskCancelledError.

    A queued task is dropped; a running one gets KeyboardInterrupt (or, with
    ``force=True``, its worker is killed).
    """
    return state.require_client().cancel(object_ref, force, recursive)


def kill(actor, *, no_restart=True):
    """Kill an actor's process now; pending calls fail with ActorDiedError.

    With ``no_restart=False`` the actor is restarted if it has restarts left.
    """
    if not isinstance(actor, ActorHandle):
        raise ValueError(f"ray.kill() only supported for actors. For tasks, try "
                         f"ray.cancel(). Got: {type(actor).__name__}.")
    return state.require_client().kill_actor(actor._actor_id, no_restart)


def get_actor(name, namespace=None):
    """The handle of the named actor ``name``; ValueError if there is none.

    Example::

        Counter.options(name="c", lifetime="detached").remote()
        c = ray.get_actor("c")
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"get_actor() needs a non-empty actor name, got {name!r}.")
    actor_id, meta, token = state.require_client().get_actor(name, namespace)
    return ActorHandle(actor_id, meta, token)


def available_resources():
    """Resources not in use right now, summed over the cluster."""
    return state.require_client().call("available_resources")


def cluster_resources():
    """All resources of the cluster, summed over its nodes."""
    return state.require_client().call("cluster_resources")


def nodes():
    """One dict per node: NodeID, Alive, Resources, addresses."""
    return state.require_client().call("nodes")


def timeline(filename=None):
    """A Chrome trace of task execution: one complete ("X") event per task run, per
    worker process (pid: the node, tid: the worker), times in microseconds.

    Returns the list of events when ``filename`` is None (as Ray does); otherwise
    writes ``{"traceEvents": [...]}`` to ``filename`` for chrome://tracing or
    https://ui.perfetto.dev and returns None.

    Example::

        ray.get([f.remote() for _ in range(10)])
        ray.timeline("trace.json")
    """
    if not is_initialized():
        raise RuntimeError("timeline() needs a running minray: call minray.init() first.")
    from .util.state import timeline_events
    events = timeline_events()
    if filename is None:
        return events
    import json
    with open(filename, "w") as f:
        json.dump({"traceEvents": events, "displayTimeUnit": "ms"}, f)
    return None


__all__ = ["init", "shutdown", "is_initialized", "remote", "get", "put", "wait", "cancel",
           "kill", "get_actor", "available_resources", "cluster_resources", "nodes",
           "ObjectRef", "ObjectRefGenerator", "exceptions"]
