"""Serve on a real two-node cluster: the proxy reaches a replica on another node."""
import os
import sys

import pytest
import requests

import minray as ray
from minray import serve

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "cluster"))
from cluster_utils import connected_cluster, free_port  # noqa: E402

pytestmark = pytest.mark.slow


@serve.deployment(ray_actor_options={"num_cpus": 0, "resources": {"far": 1}})
class Far:
    def __call__(self, request):
        return {"node": ray.get_runtime_context().get_node_id(), "pid": os.getpid()}

    def where(self):
        return ray.get_runtime_context().get_node_id()


def test_http_and_handles_reach_a_replica_on_another_node(tmp_path):
    with connected_cluster(ray, tmp_path, [("127.0.0.2", dict(num_cpus=1,
                                                              resources={"far": 1}))]):
        port = free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        try:
            handle = serve.run(Far.bind(), name="far", route_prefix="/far")
            by_ip = {n["NodeManagerAddress"]: n["NodeID"] for n in ray.nodes()}
            far_node = handle.where.remote().result(timeout_s=60)
            assert far_node == by_ip["127.0.0.2"]
            proxy = ray.get_actor("SERVE_PROXY_ACTOR", namespace="serve")
            assert ray.get(proxy.node_id.remote()) == by_ip["127.0.0.1"]  # the other node
            r = requests.get(f"http://127.0.0.1:{port}/far", timeout=60)
            assert r.status_code == 200 and r.json()["node"] == far_node
        finally:
            serve.shutdown()
