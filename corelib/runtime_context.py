"""``get_runtime_context()``: where the calling code runs (job, task, actor, node)."""

from minray._private import state


class RuntimeContext:
    """Ids and resources of the current driver, task or actor.

    Example::

        @ray.remote
        def where():
            ctx = ray.get_runtime_context()
            return ctx.get_task_id(), ctx.get_node_id()
    """

    def __init__(self, client):
        self._client = client

    def _ctx(self):
        return getattr(self._client.current_task, "ctx", None)

    def get_job_id(self):
        return f"{self._client.job_id:08x}"

    @property
    def job_id(self):
        return JobID(self._client.job_id)

    def get_node_id(self):
        return self._client.node_id

    @property
    def node_id(self):
        return NodeID(self._client.node_id)

    def get_worker_id(self):
        return self._client.worker_id or self._client.client_id.hex()

    def get_task_id(self):
        ctx = self._ctx()
        if ctx is None or ctx.task_id is None:
            return None
        return ctx.task_id.hex()

    @property
    def task_id(self):
        ctx = self._ctx()
        return None if ctx is None or ctx.task_id is None else TaskID(ctx.task_id)

    def get_task_name(self):
        ctx = self._ctx()
        return None if ctx is None else ctx.name

    def get_actor_id(self):
        actor_id = getattr(self._client, "actor_id", None)
        return actor_id.hex() if actor_id else None

    @property
    def actor_id(self):
        actor_id = getattr(self._client, "actor_id", None)
        from .actor import ActorID
        return ActorID(actor_id) if actor_id else None

    def get_actor_name(self):
        server = getattr(self._client, "worker_server", None)
        spec_name = None
        if server is not None and server.actor_meta is not None:
            spec_name = server.actor_meta.get("name")
        return spec_name

    @property
    def namespace(self):
        return self._client.namespace

    def get_assigned_resources(self):
        ctx = self._ctx()
        if ctx is None:
            return {}
        return {k: v for k, v in ctx.resources.items() if not k.startswith("_")}

    def get_accelerator_ids(self):
        import os
        gpus = os.environ.get("CUDA_VISIBLE_DEVICES")
        return {"GPU": [g for g in gpus.split(",") if g] if gpus else []}

    def get_namespace(self):
        return self.namespace

    def get_placement_group_id(self):
        """The hex id of the placement group this task or actor runs in, or None."""
        ctx = self._ctx()
        pg = getattr(ctx, "placement_group_id", None)
        return pg.hex() if pg else None

    @property
    def current_placement_group_id(self):
        from .util.placement_group import PlacementGroupID
        ctx = self._ctx()
        pg = getattr(ctx, "placement_group_id", None)
        return PlacementGroupID(pg) if pg else PlacementGroupID.nil()

    @property
    def should_capture_child_tasks_in_placement_group(self):
        """True inside work started with placement_group_capture_child_tasks=True."""
        return bool(getattr(self._ctx(), "capture", False))

    def get_resource_ids(self):
        """Accelerator ids assigned to this worker, as Ray's ``{"GPU": [...]}``."""
        return self.get_accelerator_ids()

    def get_task_function_name(self):
        ctx = self._ctx()
        return None if ctx is None or ctx.task_id is None else ctx.name

    def get_node_labels(self):
        return {"ray.io/node_id": self.get_node_id()}

    @property
    def runtime_env(self):
        import json
        return json.loads(self.get_runtime_env_string())

    @property
    def was_current_actor_reconstructed(self):
        return bool(getattr(self._client, "actor_restarts", 0))

    def get_runtime_env_string(self):
        import json
        return json.dumps(getattr(self._client, "runtime_env", {}) or {})

    @property
    def current_actor(self):
        actor_id = getattr(self._client, "actor_id", None)
        if actor_id is None:
            raise RuntimeError("This method is only available in an actor.")
        from .actor import ActorHandle
        server = self._client.worker_server
        tok = self._client.deserialize_ref(actor_id + b"\xff\xff\xff\xff", b"")
        return ActorHandle(actor_id, server.actor_meta, tok)

    @property
    def gcs_address(self):
        return self._client.info.get("session_dir")

    def get(self):
        return {"job_id": self.job_id, "node_id": self.node_id, "namespace": self.namespace,
                "task_id": self.task_id, "actor_id": self.actor_id}


class _BaseID:
    def __init__(self, value):
        self._value = value

    def hex(self):
        v = self._value
        return v.hex() if isinstance(v, bytes) else (f"{v:08x}" if isinstance(v, int) else v)

    def binary(self):
        v = self._value
        return v if isinstance(v, bytes) else self.hex().encode()

    def __eq__(self, other):
        return type(other) is type(self) and other._value == self._value

    def __hash__(self):
        return hash(self._value)

    def __repr__(self):
        return f"{type(self).__name__}({self.hex()})"


class JobID(_BaseID):
    pass


class NodeID(_BaseID):
    pass


class TaskID(_BaseID):
    pass


def get_runtime_context():
    """The RuntimeContext of the calling driver, task or actor."""
    return RuntimeContext(state.require_client())
