"""Placement groups: reserve bundles of resources, then run tasks and actors in them.

    placement_group(bundles) --create_pg--> node manager reserves the bundles
                                            (state PENDING -> CREATED)
    pg.wait(t)               --wait_pg----> reply once CREATED (or time out here)
    pg.ready()               -> a zero-CPU task scheduled in the group: its ref
                                resolves (to the group) once the group is placed
    .options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg)) -> leases
                                are charged to a bundle, not to the node
    remove_placement_group   --remove_pg--> bundles freed; actors in it killed

Semantics and validation messages follow ``ray.util.placement_group``.
"""

from .. import api as _api
from minray._private.core import ids as _ids
from minray._private import state as _state
from ..exceptions import GetTimeoutError as _GetTimeoutError

VALID_PLACEMENT_GROUP_STRATEGIES = {"PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"}

_ID_SIZE = 18   # as Ray's PlacementGroupID
BUNDLE_RESOURCE_NAME = "bundle"   # reserved, as in Ray


class PlacementGroupID:
    """The id of a placement group: ``binary()`` (18 bytes) and ``hex()``."""

    __slots__ = ("_binary",)

    def __init__(self, binary):
        self._binary = binary

    @classmethod
    def nil(cls):
        return cls(b"\xff" * _ID_SIZE)

    @classmethod
    def from_random(cls):
        return cls(_ids.new_unique_id(_ID_SIZE))

    @classmethod
    def from_hex(cls, hex_id):
        return cls(bytes.fromhex(hex_id))

    def binary(self):
        return self._binary

    def hex(self):
        return self._binary.hex()

    def is_nil(self):
        return self._binary == b"\xff" * _ID_SIZE

    def __eq__(self, other):
        return isinstance(other, PlacementGroupID) and other._binary == self._binary

    def __hash__(self):
        return hash(self._binary)

    def __reduce__(self):
        return (PlacementGroupID, (self._binary,))

    def __repr__(self):
        return f"PlacementGroupID({self.hex()})"


class PlacementGroup:
    """A handle to a placement group; pickles to a few bytes, so pass it anywhere.

    Example::

        pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="PACK")
        ray.get(pg.ready())
        strategy = PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=0)
        ray.get(f.options(scheduling_strategy=strategy).remote())
    """

    @staticmethod
    def empty():
        return PlacementGroup(PlacementGroupID.nil())

    def __init__(self, id, bundle_cache=None):
        self.id = id
        self.bundle_cache = bundle_cache

    @property
    def is_empty(self):
        return self.id.is_nil()

    def ready(self):
        """An ObjectRef that resolves (to this group) once the group is placed.

        Works with ``get``, ``wait`` and ``await``::

            ray.get(pg.ready(), timeout=10)
            ready, _ = ray.wait([pg.ready()], timeout=0)
        """
        if self.is_empty:
            return _api.put(self)
        from .scheduling_strategies import PlacementGroupSchedulingStrategy
        # A zero-resource task can only be granted inside a CREATED group.
        return _ready_check().options(
            num_cpus=0,
            scheduling_strategy=PlacementGroupSchedulingStrategy(self)).remote(self)

    def wait(self, timeout_seconds=30):
        """True once the group is placed; False if it is not within ``timeout_seconds``.

        Example::

            assert pg.wait(timeout_seconds=10)
        """
        if self.is_empty:
            return True
        client = _state.require_client()
        try:
            return bool(client.call("wait_pg", self.id.binary(),
                                    timeout=max(float(timeout_seconds), 0.0)))
        except _GetTimeoutError:
            return False

    @property
    def bundle_specs(self):
        """The bundles (resource dicts) the group was created with."""
        self._fill_bundle_cache_if_needed()
        return self.bundle_cache or []

    @property
    def bundle_count(self):
        """How many bundles the group has."""
        return len(self.bundle_specs)

    def _fill_bundle_cache_if_needed(self):
        if self.bundle_cache is None and not self.is_empty:
            row = _state.require_client().call("pg_table", self.id.binary())
            bundles = row.get("bundles") or {}
            self.bundle_cache = [dict(bundles[i]) for i in sorted(bundles)]

    def __eq__(self, other):
        return isinstance(other, PlacementGroup) and self.id == other.id

    def __hash__(self):
        return hash(self.id)

    def __reduce__(self):
        return (PlacementGroup, (self.id, self.bundle_cache))

    def __repr__(self):
        return f"PlacementGroup(id={self.id.hex()})"


_READY_CHECK = None


def _ready_check():
    # Made once per process (as Ray does) so its function is shipped to a
    # worker only once.
    global _READY_CHECK
    if _READY_CHECK is None:
        def bundle_reservation_check(placement_group):
            return placement_group
        _READY_CHECK = _api.remote(num_cpus=0, max_retries=0)(bundle_reservation_check)
    return _READY_CHECK


def validate_placement_group(bundles, strategy="PACK", lifetime=None):
    """Raise ValueError if ``placement_group(bundles, strategy, lifetime=...)`` is invalid."""
    if not isinstance(bundles, list):
        raise ValueError(f"Placement group bundles must be a list, got {type(bundles)}.")
    if len(bundles) == 0:
        raise ValueError("Bundles must be a non-empty list of resource dictionaries. "
                         'For example: `[{"CPU": 1.0}, {"GPU": 1.0}]`. Got empty list '
                         "instead.")
    for bundle in bundles:
        if (not isinstance(bundle, dict)
                or not all(isinstance(k, str) for k in bundle)
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                           for v in bundle.values())):
            raise ValueError("Bundles must be a non-empty list of resource dictionaries. "
                             'For example: `[{"CPU": 1.0}, {"GPU": 1.0}]`.')
        if len(bundle) == 0 or all(v == 0 for v in bundle.values()):
            raise ValueError("Bundles cannot be an empty dictionary or resources with only "
                             f"0 values. Bundles: {bundles}")
        if BUNDLE_RESOURCE_NAME in bundle:
            raise ValueError(f"'{BUNDLE_RESOURCE_NAME}' is a resource name the system "
                             f"reserves (bundles: {bundles}); name yours otherwise.")
        hidden = [k for k in bundle if k.startswith("_") or k.startswith("node:__")]
        if hidden:
            raise ValueError(f"Bundles cannot ask for the runtime's internal resources "
                             f"{hidden}; use NodeAffinitySchedulingStrategy to pick a node.")
        negative = {k: v for k, v in bundle.items() if v < 0}
        if negative:
            raise ValueError(f"Bundle resource amounts must be non-negative, got {negative} "
                             f"in bundles {bundles}.")
    if strategy not in VALID_PLACEMENT_GROUP_STRATEGIES:
        raise ValueError(f"Invalid placement group strategy {strategy}. Supported strategies "
                         f"are: {VALID_PLACEMENT_GROUP_STRATEGIES}.")
    if lifetime not in (None, "detached"):
        raise ValueError("Placement group `lifetime` argument must be either `None` or "
                         f"'detached'. Got {lifetime}.")


def placement_group(bundles, strategy="PACK", name="", lifetime=None,
                    _soft_target_node_id=None, bundle_label_selector=None,
                    fallback_strategy=None):
    """Reserve ``bundles`` (a list of resource dicts) as one group; returns at once.

    ``strategy``: "PACK" (as few nodes as possible), "SPREAD" (spread where
    possible), "STRICT_PACK" (one node), "STRICT_SPREAD" (one node per bundle).
    ``lifetime="detached"`` keeps the group after its creator exits.

    Example::

        pg = placement_group([{"CPU": 1}] * 2, strategy="STRICT_PACK")
        ray.get(pg.ready())
    """
    validate_placement_group(bundles, strategy, lifetime)
    if not isinstance(name, str):
        raise ValueError(f"Placement group name must be a string, got {name!r}.")
    clean = [{k: float(v) for k, v in b.items() if v} for b in bundles]
    pg_id = PlacementGroupID.from_random()
    _state.require_client().call("create_pg", pg_id.binary(), clean, strategy, name,
                                 lifetime)
    return PlacementGroup(pg_id, bundle_cache=[dict(b) for b in bundles])


def remove_placement_group(placement_group):
    """Free the group's bundles; tasks and actors running in it are killed.

    Example::

        remove_placement_group(pg)
    """
    if not isinstance(placement_group, PlacementGroup):
        raise TypeError("remove_placement_group() takes a PlacementGroup, got "
                        f"{type(placement_group).__name__}.")
    _state.require_client().call("remove_pg", placement_group.id.binary())


def get_placement_group(placement_group_name):
    """The live placement group named ``placement_group_name``; ValueError if none.

    Example::

        placement_group([{"CPU": 1}], name="workers")
        pg = get_placement_group("workers")
    """
    if not placement_group_name:
        raise ValueError("Please supply a non-empty value to get_placement_group")
    table = _state.require_client().call("pg_table", None)
    for row in table.values():
        if row.get("name") == placement_group_name and row.get("state") != "REMOVED":
            bundles = row.get("bundles") or {}
            return PlacementGroup(PlacementGroupID.from_hex(row["placement_group_id"]),
                                  [dict(bundles[i]) for i in sorted(bundles)])
    raise ValueError(f"Failed to look up placement group with name: {placement_group_name}")


def placement_group_table(placement_group=None):
    """State of one placement group (a dict), or of all of them keyed by hex id.

    Each row has placement_group_id, name, bundles ({index: resources}),
    bundles_to_node_id, strategy and state ("PENDING", "CREATED" or "REMOVED").
    """
    client = _state.require_client()
    if placement_group is not None:
        return _with_nodes(client, client.call("pg_table", placement_group.id.binary()))
    table = client.call("pg_table", None)
    return {k: _with_nodes(client, row) for k, row in table.items()}


def _with_nodes(client, row):
    row = dict(row)
    if row.get("state") == "CREATED":
        # One node: every bundle of a placed group is on it.
        row.setdefault("bundles_to_node_id", {i: client.node_id for i in row["bundles"]})
    else:
        row.setdefault("bundles_to_node_id", {})
    return row


def get_current_placement_group():
    """The placement group the calling task or actor runs in; None in a driver
    (and for work scheduled outside any group).

    Example::

        @ray.remote
        def f():
            return get_current_placement_group()
    """
    # The core client's task context carries the group's id (bytes) for work
    # scheduled in one; a driver's context has none.
    client = _state.require_client()
    ctx = getattr(client.current_task, "ctx", None)
    pg_id = getattr(ctx, "placement_group_id", None)
    if not pg_id:
        return None
    return PlacementGroup(PlacementGroupID(pg_id))
