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

from .api import (ApplicationStatusOverview, DeploymentStatusOverview, ServeStatus, delete,
                  get_app_handle, get_deployment_handle, get_multiplexed_model_id,
                  get_replica_context, run, shutdown, start, status)
from .batching import batch
from .config import AutoscalingConfig, DeploymentConfig, HTTPOptions
from .deployment import Application, Deployment, deployment
from .handle import DeploymentHandle, DeploymentResponse, DeploymentResponseGenerator
from .ingress import ingress

__all__ = [
    "Application", "ApplicationStatusOverview", "AutoscalingConfig", "Deployment",
    "DeploymentConfig", "DeploymentHandle", "DeploymentResponse", "DeploymentResponseGenerator",
    "DeploymentStatusOverview", "HTTPOptions", "ServeStatus", "batch", "delete", "deployment",
    "get_app_handle", "get_deployment_handle", "get_multiplexed_model_id", "get_replica_context",
    "ingress", "run", "shutdown", "start", "status",
]
