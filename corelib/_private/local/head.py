"""Local mode's answers to the requests CoreClient sends its node manager.

A mixin of LocalClient (local/client.py).  The KV store and the named actors
live in head/tables.py's classes, as in the node manager; resources and
placement groups in scheduling/resources.py's Scheduler.
"""

import logging
import os
import socket
import time

from minray import exceptions
from minray._private.scheduling import resources as sched


class HeadMixin:
    """LocalClient's node-manager requests (``call``) and their handlers."""

    # ===================================================== node manager calls
    def call(self, method, *args, timeout=None):
        """A request CoreClient sends to the node manager, answered here."""
        handler = self.handlers.get(method)
        if handler is None:
            raise ValueError(f"unknown request {method!r}")
        if method == "wait_pg":
            return self._h_wait_pg(*args, timeout=timeout)
        return handler(*args)

    def notice(self, method, *args):
        pass

    def _h_cluster_resources(self):
        return {k: v for k, v in self.sched.total.items() if v and not k.startswith("_")}

    def _h_available_resources(self):
        with self.lock:
            return {k: v for k, v in self.sched.available.items()
                    if v > 1e-9 and not k.startswith("_")}

    def _h_nodes(self):
        return [{"NodeID": self.node_id, "Alive": True, "NodeManagerAddress": "127.0.0.1",
                 "NodeManagerHostname": socket.gethostname(), "NodeName": "127.0.0.1",
                 "Resources": self._h_cluster_resources(), "alive": True,
                 "ObjectStoreSocketName": None, "RayletSocketName": None,
                 "MetricsExportPort": 0}]

    def _h_object_stats(self):
        with self.lock:
            values = [o for o in self.objects.values()
                      if o.token_of is None and o.blob is not None]
            size = sum(len(o.blob) for o in values)
        return {"num_objects": len(values), "shm_bytes": 0, "inline_bytes": size,
                "capacity": 0, "spilled_bytes": 0, "num_spilled": 0, "num_restored": 0}

    def _h_status(self):
        return {"node_id": self.node_id, "resources_total": dict(self.sched.total),
                "resources_available": self._h_available_resources(), "workers": {},
                "actors": self._h_list_actors(), "objects": self._h_object_stats(),
                "pending_leases": len(self.blocked), "jobs": 1,
                "uptime_s": time.time() - self.start_time, "local_mode": True}

    def _h_kv_put(self, key, value, overwrite=True):
        with self.lock:
            return self.kv.put(key, value, overwrite)

    def _h_kv_get(self, key):
        with self.lock:
            return self.kv.get(key)

    def _h_kv_del(self, key):
        with self.lock:
            return self.kv.delete(key)

    def _h_kv_keys(self, prefix):
        with self.lock:
            return self.kv.keys(prefix)

    def _h_list_named_actors(self, all_namespaces=False):
        with self.lock:
            return self.named.names(self.namespace, all_namespaces, self._alive)

    def _alive(self, actor_id):
        a = self.actors.get(actor_id)
        return a is not None and a.state != "DEAD"

    def _h_list_actors(self):
        with self.lock:
            return [{"actor_id": a.actor_id.hex(), "class_name": a.class_name,
                     "state": a.state, "name": a.name or "", "namespace": a.namespace,
                     "pid": os.getpid() if a.state == "ALIVE" else None,
                     "num_restarts": a.num_restarts} for a in self.actors.values()]

    def _h_create_pg(self, pg_id, bundles, strategy, name="", lifetime=None):
        pg = sched.PlacementGroupState(pg_id, bundles, strategy, name, lifetime,
                                       owner=self.client_id)
        with self.lock:
            if not self.sched.pg_feasible(pg):
                logging.getLogger("minray.local").warning(
                      f"placement group {name or pg_id.hex()} with bundles {bundles} "
                      f"and strategy {strategy} cannot be placed on this cluster (resources "
                      f"{self.sched.total}, 1 node); it stays pending.")
            self.sched.create_pg(pg)
            self.changed.notify_all()
        return True

    def _h_wait_pg(self, pg_id, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.changed:
            while True:
                pg = self.sched.pgs.get(pg_id)
                if pg is None:
                    raise ValueError(f"placement group {pg_id.hex()} does not exist (removed?)")
                if pg.state == "CREATED":
                    return True
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise exceptions.GetTimeoutError(f"no reply to wait_pg within {timeout}s")
                # Only another thread can free resources now; this one waits for it.
                self.changed.wait(left)

    def _h_remove_pg(self, pg_id):
        with self.lock:
            pg = self.sched.remove_pg(pg_id)
            if pg is None:
                return False
            doomed = [a for a in self.actors.values()
                      if a.opts.pg and a.opts.pg[0] == pg_id and a.state != "DEAD"]
        for a in doomed:
            a.charge = None   # its bundle went with the group
            self._mark_dead(a, exceptions.ActorDiedError(
                f"The actor {a.actor_id.hex()} ({a.class_name}) was killed: its placement "
                "group was removed.", actor_id=a.actor_id.hex()))
        with self.lock:
            self.sched.try_place_pgs()
            self.changed.notify_all()
        self._pump()
        return True

    def _h_pg_table(self, pg_id=None):
        def row(pg):
            return {"placement_group_id": pg.pg_id.hex(), "name": pg.name,
                    "bundles": {i: b for i, b in enumerate(pg.bundles)},
                    "strategy": pg.strategy, "state": pg.state}
        with self.lock:
            if pg_id is not None:
                pg = self.sched.pgs.get(pg_id)
                return row(pg) if pg else {"placement_group_id": pg_id.hex(),
                                           "state": "REMOVED"}
            return {pg.pg_id.hex(): row(pg) for pg in self.sched.pgs.values()}
