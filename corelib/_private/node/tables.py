"""The node manager's tables shared with every client: the KV store and the
named-actor index (``self.kv``, ``self.named``, created by ``init_tables``).
Both are head/tables.py's pure classes, the same ones local mode answers
from, so the two runtimes cannot drift apart; this component is their shell.

A component of NodeManager (manager.py): its methods run on the node
manager's one loop thread, with the state the NodeManager holds.
"""

from minray._private.head.tables import KVStore, NamedActorTable, not_found_error
from minray._private.node.records import DEFERRED as _DEFERRED, token_oid


class Tables:
    """NodeManager's tables component (see the module doc)."""

    def init_tables(self):
        self.kv = KVStore()            # internal KV: ray.experimental.internal_kv
        self.named = NamedActorTable()  # (namespace, name) -> actor id

    # -- what the other components use ---------------------------------------
    def actor_alive(self, actor_id):
        a = self.actors.get(actor_id)
        return a is not None and a.state != "DEAD"

    def claim_name(self, namespace, name, actor_id, get_if_exists):
        """head/tables.py's Claim: the name is the new actor's, or (with
        ``get_if_exists``) the live actor's that holds it; ValueError otherwise."""
        return self.named.claim(namespace, name, actor_id, get_if_exists, self.actor_alive)

    def release_name(self, namespace, name, actor_id):
        """Free ``name`` if ``actor_id`` still holds it."""
        self.named.release(namespace, name, actor_id)

    # -- handlers --------------------------------------------------------------

    def h_get_actor(self, conn, name, namespace):
        info = self.clients[conn]
        ns = namespace if namespace is not None else self.jobs.get(
            info["job_id"], {}).get("config", {}).get("namespace")
        actor_id = self.named.lookup(ns, name, self.actor_alive)
        if actor_id is None and self.cluster is not None and not conn.info.get("tcp"):
            req_id = self.current_req_id

            def found(entry):
                if entry is None:
                    return self.reply(conn, req_id, False, not_found_error(name, ns))
                actor_id, meta, address = entry
                self._mirror_then((meta, address), actor_id, lambda a: self.reply(
                    conn, req_id, True, (actor_id, meta)) if a is not None else self.reply(
                        conn, req_id, False, ValueError(f"the actor named '{name}' is gone")))
            self.cluster.lookup_actor(name, ns, found)
            return _DEFERRED
        if actor_id is None:
            raise not_found_error(name, ns)
        self.objects.borrow(token_oid(actor_id), info["client_id"])
        return actor_id, self.actors[actor_id].meta

    def h_list_named_actors(self, conn, all_namespaces):
        ns = self.jobs.get(self.clients[conn]["job_id"], {}).get("config", {}).get("namespace")
        return self.named.names(ns, all_namespaces, self.actor_alive)

    # ---------------------------------------------------------------- KV, info
    def h_kv_put(self, conn, key, value, overwrite):
        return self.kv.put(key, value, overwrite)

    def h_kv_get(self, conn, key):
        return self.kv.get(key)

    def h_kv_del(self, conn, key):
        return self.kv.delete(key)

    def h_kv_keys(self, conn, prefix):
        return self.kv.keys(prefix)
