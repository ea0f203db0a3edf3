"""One validated options object for tasks, actors and actor methods.

``@remote(...)``, ``.options(...)`` and the scheduler all go through
``validate()`` here, so every option is checked once, with one error message,
when it is given (at decoration time), never deep inside the runtime.
"""


_COMMON = {
    "num_cpus", "num_gpus", "resources", "memory", "accelerator_type", "runtime_env",
    "scheduling_strategy", "placement_group", "placement_group_bundle_index",
    "placement_group_capture_child_tasks", "name", "label_selector", "_metadata",
    "enable_task_events", "_labels", "object_store_memory",
}
TASK_OPTIONS = _COMMON | {"num_returns", "max_retries", "retry_exceptions", "max_calls",
                          "_generator_backpressure_num_objects"}
ACTOR_OPTIONS = _COMMON | {"namespace", "lifetime", "get_if_exists", "max_restarts",
                           "max_task_retries", "max_concurrency", "concurrency_groups",
                           "max_pending_calls", "allow_out_of_order_execution"}
METHOD_OPTIONS = {"num_returns", "concurrency_group", "max_task_retries", "retry_exceptions",
                  "name", "enable_task_events", "tensor_transport", "_generator_backpressure_num_objects"}


class OptionTypeError(ValueError, TypeError):
    """An option of the wrong type: a TypeError as in Ray, and a ValueError like
    every other invalid option, so either ``except`` catches it."""


def _type_error(key, expected, value):
    return OptionTypeError(f"The type of keyword '{key}' must be {expected}, but received "
                           f"type {type(value)} ({value!r}).")


def _nonneg_number(key, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _type_error(key, "int or float", value)
    if value < 0:
        raise ValueError(f"The option '{key}' must be a non-negative number, got {value!r}.")


def _int_at_least(key, value, low):
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(key, "int", value)
    if value < low:
        raise ValueError(f"The option '{key}' must be an integer >= {low}, got {value!r}.")


def validate(options, kind):
    """Check option names and values; returns a plain dict. Raises ValueError."""
    allowed = {"task": TASK_OPTIONS, "actor": ACTOR_OPTIONS, "method": METHOD_OPTIONS}[kind]
    for key in options:
        if key not in allowed:
            raise ValueError(f"Invalid option keyword {key!r} for {kind}s. Valid options "
                             f"are: {', '.join(sorted(k for k in allowed if not k.startswith('_')))}.")
    for key in ("num_cpus", "num_gpus", "memory", "object_store_memory"):
        if options.get(key) is not None:
            _nonneg_number(key, options[key])
    res = options.get("resources")
    if res is not None:
        if not isinstance(res, dict):
            raise _type_error("resources", "dict", res)
        for k, v in res.items():
            if k in ("CPU", "GPU", "memory"):
                raise ValueError(f"Use the '{k.lower() if k != 'memory' else 'memory'}' option "
                                 f"(num_cpus/num_gpus/memory) instead of resources={{'{k}': ...}}.")
            _nonneg_number(f"resources[{k!r}]", v)
    if "num_returns" in options:
        n = options["num_returns"]
        if n not in ("streaming", "dynamic", None):
            if isinstance(n, bool) or not isinstance(n, int):
                raise _type_error("num_returns", "a non-negative int, 'streaming' or "
                                  "'dynamic'", n)
            if n < 0:
                raise ValueError(f"The option 'num_returns' must be a non-negative int, "
                                 f"'streaming' or 'dynamic', got {n!r}.")
    for key, low in (("max_retries", -1), ("max_restarts", -1), ("max_task_retries", -1),
                     ("max_calls", 0), ("max_pending_calls", -1)):
        if options.get(key) is not None:
            _int_at_least(key, options[key], low)
    if options.get("max_concurrency") is not None:
        _int_at_least("max_concurrency", options["max_concurrency"], 1)
    re_ = options.get("retry_exceptions")
    if re_ is not None and not isinstance(re_, bool):
        if not isinstance(re_, (list, tuple)) or not all(
                isinstance(c, type) and issubclass(c, BaseException) for c in re_):
            raise ValueError("The option 'retry_exceptions' must be a bool or a list of "
                             f"exception classes, got {re_!r}.")
    lt = options.get("lifetime")
    if lt not in (None, "detached", "non_detached"):
        raise ValueError(f"The option 'lifetime' must be None, 'detached' or 'non_detached', "
                         f"got {lt!r}.")
    name = options.get("name")
    if name is not None and not isinstance(name, str):
        raise _type_error("name", "str", name)
    if kind == "actor" and name == "":
        raise ValueError("Actor name cannot be an empty string.")
    ns = options.get("namespace")
    if ns is not None and not isinstance(ns, str):
        raise _type_error("namespace", "str", ns)
    if ns is not None and not ns:
        raise ValueError(f"The option 'namespace' must be a non-empty string, got {ns!r}.")
    if options.get("get_if_exists") and not name:
        raise ValueError("get_if_exists=True requires a name: pass .options(name=..., "
                         "get_if_exists=True).")
    cg = options.get("concurrency_groups")
    if cg is not None:
        if not isinstance(cg, dict) or not all(
                isinstance(k, str) and isinstance(v, int) and v >= 1 for k, v in cg.items()):
            raise ValueError("The option 'concurrency_groups' must map group names to "
                             f"positive ints, got {cg!r}.")
    env = options.get("runtime_env")
    if env is not None:
        if not isinstance(env, dict):
            raise _type_error("runtime_env", "dict", env)
        ev = env.get("env_vars")
        if ev is not None and (not isinstance(ev, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in ev.items())):
            raise ValueError("runtime_env['env_vars'] must map str to str, got "
                             f"{ev!r}.")
    strategy = options.get("scheduling_strategy")
    if strategy is not None:
        from .util.scheduling_strategies import check_strategy
        check_strategy(strategy)
    return dict(options)


class Resolved:
    """Options turned into what the runtime needs, computed once per options set."""

    __slots__ = ("name", "num_returns", "max_retries", "retry_exceptions", "resources",
                 "pg", "env_vars", "env_key", "scheduling_key", "wire", "max_task_retries",
                 "raw", "strategy", "capture", "capturable", "_in_group")

    def __init__(self, raw, kind, default_name):
        self.raw = raw
        self.name = raw.get("name") or default_name
        self.num_returns = raw.get("num_returns", 1)
        self.max_retries = raw.get("max_retries", 3 if kind == "task" else 0)
        self.max_task_retries = raw.get("max_task_retries", 0)
        re_ = raw.get("retry_exceptions", False)
        self.retry_exceptions = re_
        # By value (cloudpickle): a class defined inside a function travels too.
        wire_re = re_ if isinstance(re_, (bool, bytes)) else _dumps_classes(tuple(re_))
        self.resources = _resources(raw, kind)
        self.pg, self.strategy = _placement(raw, self.resources)
        env = (raw.get("runtime_env") or {}).get("env_vars") or None
        self.env_vars = env
        self.env_key = tuple(sorted(env.items())) if env else None
        self.scheduling_key = (tuple(sorted(self.resources.items())), self.pg, self.env_key)
        self.capture = _captures(raw)
        # Work given no group of its own runs in its parent's group when the parent
        # captures child tasks (placement_group_capture_child_tasks, as Ray).
        self.capturable = self.pg is None and raw.get("placement_group") is None and \
            raw.get("scheduling_strategy") in (None, "DEFAULT")
        self._in_group = None
        # protocol.OptionsWire's fields, as a plain tuple (it travels in every TASK).
        self.wire = (self.name, self.resources, wire_re, raw.get("concurrency_group"),
                     raw.get("max_calls") or 0, self.pg[0] if self.pg else None,
                     self.capture)

    def in_group(self, pg_id):
        """These options inside placement group ``pg_id`` (any bundle): a child of a
        task that captures its child tasks. Computed once per group."""
        cached = self._in_group
        if cached is not None and cached.pg[0] == pg_id:
            return cached
        r = Resolved.__new__(Resolved)
        for slot in Resolved.__slots__:
            setattr(r, slot, getattr(self, slot))
        r.pg = (pg_id, -1)
        r.capture = r.capturable = True           # the grandchildren follow too
        r._in_group = None
        r.scheduling_key = (self.scheduling_key[0], r.pg, self.scheduling_key[2])
        r.wire = self.wire[:5] + (pg_id, True)
        self._in_group = r
        return r

    def actor_wire(self):
        r = self.raw
        return {"name": r.get("name"), "namespace": r.get("namespace"),
                "lifetime": r.get("lifetime"), "get_if_exists": r.get("get_if_exists", False),
                "max_restarts": r.get("max_restarts", 0),
                "max_task_retries": r.get("max_task_retries", 0),
                "max_concurrency": r.get("max_concurrency"),
                "capture_child_tasks": self.capture,
                "concurrency_groups": r.get("concurrency_groups")}


def _captures(raw):
    from .util.scheduling_strategies import PlacementGroupSchedulingStrategy
    strategy = raw.get("scheduling_strategy")
    if isinstance(strategy, PlacementGroupSchedulingStrategy):
        return bool(strategy.placement_group_capture_child_tasks)
    return bool(raw.get("placement_group_capture_child_tasks")) and \
        raw.get("placement_group") not in (None, "default")


def _dumps_classes(classes):
    import cloudpickle
    return cloudpickle.dumps(classes)


def _resources(raw, kind):
    res = {}
    cpus = raw.get("num_cpus")
    if cpus is None:
        cpus = 1 if kind == "task" else 0   # actors: 1 CPU to place, 0 to run (as Ray)
    if cpus:
        res["CPU"] = float(cpus)
    if raw.get("num_gpus"):
        res["GPU"] = float(raw["num_gpus"])
    if raw.get("memory"):
        res["memory"] = float(raw["memory"])
    for k, v in (raw.get("resources") or {}).items():
        if v:
            res[k] = float(v)
    from .util.scheduling_strategies import NodeAffinitySchedulingStrategy
    strategy = raw.get("scheduling_strategy")
    if isinstance(strategy, NodeAffinitySchedulingStrategy) and not strategy.soft:
        # Every node offers a hidden resource named after its id; ask for a sliver of it.
        res[f"_node_id:{strategy.node_id}"] = 0.001
    elif isinstance(strategy, NodeAffinitySchedulingStrategy):
        res[f"_prefer_node:{strategy.node_id}"] = HINT
    elif strategy == "SPREAD":
        res["_spread"] = HINT
    return res


# A placement hint rides in the resources as an amount too small to count: fits()
# ignores amounts <= EPS, so only the node managers of a cluster look at it.
HINT = 1e-12


def _placement(raw, resources):
    strategy = raw.get("scheduling_strategy")
    pg = None
    from .util.scheduling_strategies import PlacementGroupSchedulingStrategy
    if isinstance(strategy, PlacementGroupSchedulingStrategy) and strategy.placement_group:
        pg = (strategy.placement_group.id.binary(),
              strategy.placement_group_bundle_index if
              strategy.placement_group_bundle_index is not None else -1)
    elif raw.get("placement_group") not in (None, "default"):
        p = raw["placement_group"]
        idx = raw.get("placement_group_bundle_index", -1)
        pg = (p.id.binary(), -1 if idx is None else idx)
    if pg is not None:
        group = (strategy.placement_group if isinstance(strategy, PlacementGroupSchedulingStrategy)
                 else raw["placement_group"])
        _check_bundle(group, pg[1], resources)
    return pg, strategy


def _check_bundle(group, index, resources):
    """Ray's checks at submission: the bundle index exists and a bundle can hold the request."""
    try:
        specs = group.bundle_specs
    except Exception:   # the group's table is not reachable (e.g. no runtime yet)
        return
    count = len(specs)
    if not isinstance(index, int) or index < -1 or index >= count:
        raise ValueError(f"placement_group_bundle_index {index} is out of range: the "
                         f"placement group has {count} bundle(s) (valid: -1 for any, or "
                         f"0..{count - 1}).")
    need = {k: v for k, v in resources.items() if not k.startswith("_") and v}
    candidates = specs if index == -1 else [specs[index]]
    if need and not any(all(b.get(k, 0) + 1e-9 >= v for k, v in need.items())
                        for b in candidates):
        where = "any bundle" if index == -1 else f"bundle {index} ({specs[index]})"
        raise ValueError(f"The request {need} cannot fit into {where} of the placement "
                         f"group (bundles: {specs}). Ask for less, or create the group "
                         "with larger bundles.")
