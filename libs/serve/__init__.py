"""minray.serve: Ray Serve 2.60's API on minray actors.

    from minray import serve

    @serve.deployment(num_replicas=2)
    class Hello:
        def __call__(self, request):
            return f"hello {request.query_params['name']}"

    serve.run(Hello.bind(), route_prefix="/hello")   # curl 'localhost:8000/hello?name=x'
    serve.shutdown()

See docs/tutorials/serve.md.
"""

import importlib as _importlib

# Every public name and the submodule that defines it; loaded on first use, so the
# `minray` command (which hooks in serve's CLI) does not import aiohttp or starlette.
_EXPORTS = {
    "ApplicationStatusOverview": "api", "DeploymentStatusOverview": "api", "ServeStatus": "api",
    "delete": "api", "get_app_handle": "api", "get_deployment_handle": "api",
    "get_multiplexed_model_id": "multiplex", "get_replica_context": "api", "run": "api",
    "shutdown": "api", "start": "api", "status": "api",
    "batch": "batching",
    "AutoscalingConfig": "config", "DeploymentConfig": "config", "HTTPOptions": "config",
    "Application": "application", "Deployment": "application", "deployment": "application",
    "DeploymentHandle": "handle", "DeploymentResponse": "handle",
    "DeploymentResponseGenerator": "handle",
    "ingress": "asgi",
    "multiplexed": "multiplex",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'minray.serve' has no attribute {name!r}")
    value = getattr(_importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
