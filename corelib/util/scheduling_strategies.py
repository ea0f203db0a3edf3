"""Scheduling strategies accepted by ``.options(scheduling_strategy=...)``.

Example::

    pg = placement_group([{"CPU": 1}])
    f.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg)).remote()
"""


class PlacementGroupSchedulingStrategy:
    """Run the task or actor in a bundle of ``placement_group`` (any bundle by default)."""

    def __init__(self, placement_group, placement_group_bundle_index=-1,
                 placement_group_capture_child_tasks=None):
        self.placement_group = placement_group
        self.placement_group_bundle_index = placement_group_bundle_index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks

    def __repr__(self):
        return (f"PlacementGroupSchedulingStrategy({self.placement_group!r}, "
                f"bundle={self.placement_group_bundle_index})")


class NodeAffinitySchedulingStrategy:
    """Run on the node ``node_id``; with ``soft=True`` fall back to another node."""

    def __init__(self, node_id, soft, _spill_on_unavailable=False, _fail_on_unavailable=False):
        self.node_id = node_id
        self.soft = soft
        self._spill_on_unavailable = _spill_on_unavailable
        self._fail_on_unavailable = _fail_on_unavailable

    def __repr__(self):
        return f"NodeAffinitySchedulingStrategy(node_id={self.node_id!r}, soft={self.soft})"


class NodeLabelSchedulingStrategy:
    """Run on nodes whose labels match ``hard`` (and prefer ``soft``)."""

    def __init__(self, hard, *, soft=None):
        self.hard = hard
        self.soft = soft


def check_strategy(strategy):
    if strategy in ("DEFAULT", "SPREAD"):
        return
    if isinstance(strategy, (PlacementGroupSchedulingStrategy, NodeAffinitySchedulingStrategy,
                             NodeLabelSchedulingStrategy)):
        if isinstance(strategy, NodeAffinitySchedulingStrategy) and not isinstance(
                strategy.node_id, str):
            raise ValueError("NodeAffinitySchedulingStrategy needs node_id as a hex string "
                             f"(ray.get_runtime_context().get_node_id()), got {strategy.node_id!r}.")
        return
    raise ValueError(f"Invalid scheduling_strategy {strategy!r}: use 'DEFAULT', 'SPREAD', "
                     "PlacementGroupSchedulingStrategy or NodeAffinitySchedulingStrategy.")
