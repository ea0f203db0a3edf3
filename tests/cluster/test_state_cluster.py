"""The state API on a cluster: the head sees tasks that ran on other nodes (each node
passes its processes' task events on to the head)."""
import os
import sys

import pytest

import minray as ray
from minray.util import state

sys.path.insert(0, os.path.dirname(__file__))
from cluster_utils import connected_cluster  # noqa: E402
from helpers import wait_until  # noqa: E402

pytestmark = pytest.mark.slow


def test_head_lists_tasks_and_actors_of_other_nodes(tmp_path):
    with connected_cluster(ray, tmp_path, [("127.0.0.2", dict(num_cpus=1,
                                                              resources={"far": 1}))]):
        @ray.remote(resources={"far": 1})
        def where():
            return ray.get_runtime_context().get_node_id()

        @ray.remote(resources={"far": 0.5})
        class Remote:
            def node(self):
                return ray.get_runtime_context().get_node_id()

        far_node = ray.get(where.remote())
        actor = Remote.remote()
        assert ray.get(actor.node.remote()) == far_node

        def seen():
            rows = [t for t in state.list_tasks(filters=[("state", "=", "FINISHED")])
                    if t.func_or_class_name.endswith("where")]
            return rows and rows[0].node_id == far_node
        # The far node's batches reach the head within about a second.
        assert wait_until(seen, timeout=15), [(t.func_or_class_name, t.state, t.node_id) for t in state.list_tasks()]
        a = state.get_actor(actor._actor_id.hex())
        assert a.state == "ALIVE"
        assert len(state.list_nodes(filters=[("state", "=", "ALIVE")])) == 2
