"""Tables the head keeps for the whole cluster: the KV store and the named actors.

    node manager (node/manager.py) --+                      +--> KVStore
                                     +-- handlers call -->--+
    local mode (local/client.py) ----+                      +--> NamedActorTable

Pure classes: plain dicts inside, no locks, sockets or clocks.  The shell that
owns one serialises access to it (the node manager's I/O loop; local mode's
lock), and decides what "alive" means by passing ``is_alive`` (an actor id ->
bool), since actor records live with the shell.  Both runtimes answer
``kv_*``, ``get_actor`` and ``list_named_actors`` from these, so their
semantics cannot drift apart.

Example::

    >>> kv = KVStore()
    >>> kv.put("a/1", b"x"), kv.put("a/1", b"y", overwrite=False), kv.get("a/1")
    (True, False, b'x')
    >>> names = NamedActorTable()
    >>> names.claim("ns", "counter", b"id1", get_if_exists=False, is_alive=lambda a: True)
    Claim(created=True, actor_id=b'id1')
    >>> names.claim("ns", "counter", b"id2", get_if_exists=True, is_alive=lambda a: True)
    Claim(created=False, actor_id=b'id1')
"""

from __future__ import annotations

from minray._private.named import NamedTuple


class KVStore:
    """The internal key-value store (``ray.experimental.internal_kv``'s table).

    Keys live in namespaces (None: the default one); values are bytes or str.
    """

    def __init__(self):
        self._data = {}    # (namespace, key) -> value

    def put(self, key, value, overwrite=True, namespace=None) -> bool:
        """Store ``value``; False (and no change) if the key exists and not ``overwrite``."""
        k = (namespace, key)
        if not overwrite and k in self._data:
            return False
        self._data[k] = value
        return True

    def get(self, key, namespace=None):
        return self._data.get((namespace, key))

    def delete(self, key, namespace=None) -> bool:
        """Remove ``key``; True if it was there."""
        return self._data.pop((namespace, key), None) is not None

    def keys(self, prefix="", namespace=None) -> list:
        """The keys in ``namespace`` that start with ``prefix``, in insertion order."""
        return [k for ns, k in self._data if ns == namespace and k.startswith(prefix)]

    def items(self, namespace=None) -> list:
        """(key, value) pairs in ``namespace`` (what the state API shows)."""
        return [(k, v) for (ns, k), v in self._data.items() if ns == namespace]

    def __len__(self):
        return len(self._data)


class Claim(NamedTuple):
    created: bool      # True: the name is now the new actor's; False: an existing actor's
    actor_id: bytes    # whose name it is


class NamedActorTable:
    """Named actors by (namespace, name): at most one live actor holds a name."""

    def __init__(self):
        self._ids = {}    # (namespace, name) -> actor_id

    def claim(self, namespace, name, actor_id, get_if_exists,
              is_alive: Callable[[bytes], bool]) -> Claim:
        """Give ``name`` to the new actor ``actor_id``.

        If a live actor holds it already: with ``get_if_exists`` that actor is the
        answer (``created=False``); otherwise a ValueError says how to proceed.
        """
        existing = self._ids.get((namespace, name))
        if existing is not None and is_alive(existing):
            if get_if_exists:
                return Claim(False, existing)
            raise ValueError(f"The name {name} (namespace={namespace}) is already taken by "
                             "another actor. Pick another name, pass "
                             "get_if_exists=True, or kill the existing actor first.")
        self._ids[(namespace, name)] = actor_id
        return Claim(True, actor_id)

    def lookup(self, namespace, name, is_alive: Callable[[bytes], bool]) -> Optional[bytes]:
        """The live actor named ``name`` in ``namespace``, or None."""
        actor_id = self._ids.get((namespace, name))
        if actor_id is None or not is_alive(actor_id):
            return None
        return actor_id

    def release(self, namespace, name, actor_id):
        """``actor_id`` died: its name is free again (if it still held it)."""
        if name and self._ids.get((namespace, name)) == actor_id:
            del self._ids[(namespace, name)]

    def names(self, namespace, all_namespaces, is_alive: Callable[[bytes], bool]) -> list:
        """``list_named_actors``: the live names in ``namespace``, or every
        {"name", "namespace"} with ``all_namespaces`` (Ray's two shapes)."""
        out = []
        for (ns, name), actor_id in self._ids.items():
            if not is_alive(actor_id):
                continue
            if all_namespaces:
                out.append({"name": name, "namespace": ns})
            elif ns == namespace:
                out.append(name)
        return out

    def clear(self):
        self._ids.clear()

    def __len__(self):
        return len(self._ids)


def not_found_error(name, namespace):
    """What ``get_actor`` raises for a name no live actor holds."""
    return ValueError(f"Failed to look up actor with name '{name}' in namespace "
                      f"'{namespace}'. Check the name and namespace (get_actor(name, "
                      "namespace=...)), and that the actor is still alive.")
