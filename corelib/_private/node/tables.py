"""The node manager's tables shared with every client: the KV store and the
named-actor index (``self.kv``, ``self.named``, created by ``init_tables``).
Kept apart so that a shared head/ module can replace them in a few lines.

A component of NodeManager (manager.py): its methods run on the node
manager's one loop thread, with the state the NodeManager holds.
"""

from minray._private.node.records import DEFERRED as _DEFERRED, token_oid


class Tables:
    """NodeManager's tables component (see the module doc)."""

    def init_tables(self):
        self.kv = {}        # key -> value (internal KV: ray.experimental.internal_kv)
        self.named = {}     # (namespace, name) -> actor_id

    # -- what the other components use ---------------------------------------
    def named_actor(self, namespace, name):
        """The actor id bound to ``name`` in ``namespace``, or None."""
        return self.named.get((namespace, name))

    def bind_name(self, namespace, name, actor_id):
        self.named[(namespace, name)] = actor_id

    def release_name(self, namespace, name, actor_id):
        """Free ``name`` if ``actor_id`` still holds it."""
        if self.named.get((namespace, name)) == actor_id:
            del self.named[(namespace, name)]

    # -- handlers --------------------------------------------------------------

    def h_get_actor(self, conn, name, namespace):
        info = self.clients[conn]
        ns = namespace if namespace is not None else self.jobs.get(
            info["job_id"], {}).get("config", {}).get("namespace")
        actor_id = self.named.get((ns, name))
        if (actor_id is None or self.actors[actor_id].state == "DEAD") and \
                self.cluster is not None and not conn.info.get("tcp"):
            req_id = self.current_req_id

            def found(entry):
                if entry is None:
                    return self.reply(conn, req_id, False, ValueError(
                        f"Failed to look up actor with name '{name}' in namespace '{ns}'. "
                        "Check the name and namespace (get_actor(name, namespace=...)), and "
                        "that the actor is still alive."))
                actor_id, meta, address = entry
                self._mirror_then((meta, address), actor_id, lambda a: self.reply(
                    conn, req_id, True, (actor_id, meta)) if a is not None else self.reply(
                        conn, req_id, False, ValueError(f"the actor named '{name}' is gone")))
            self.cluster.lookup_actor(name, ns, found)
            return _DEFERRED
        if actor_id is None or self.actors[actor_id].state == "DEAD":
            raise ValueError(f"Failed to look up actor with name '{name}' in namespace "
                             f"'{ns}'. Check the name and namespace (get_actor(name, "
                             "namespace=...)), and that the actor is still alive.")
        self.objects.borrow(token_oid(actor_id), info["client_id"])
        return actor_id, self.actors[actor_id].meta

    def h_list_named_actors(self, conn, all_namespaces):
        ns = self.jobs.get(self.clients[conn]["job_id"], {}).get("config", {}).get("namespace")
        out = []
        for (n, name), aid in self.named.items():
            if self.actors[aid].state == "DEAD":
                continue
            if all_namespaces:
                out.append({"name": name, "namespace": n})
            elif n == ns:
                out.append(name)
        return out

    # ---------------------------------------------------------------- KV, info
    def h_kv_put(self, conn, key, value, overwrite):
        if not overwrite and key in self.kv:
            return False
        self.kv[key] = value
        return True

    def h_kv_get(self, conn, key):
        return self.kv.get(key)

    def h_kv_del(self, conn, key):
        return self.kv.pop(key, None) is not None

    def h_kv_keys(self, conn, prefix):
        return [k for k in self.kv if k.startswith(prefix)]
