"""Placement groups: created here (the local Scheduler reserves bundles) or
across nodes (scheduling/placement.plan_bundles picks the nodes), waited for,
removed, listed; groups no plan fits yet are planned again on every change of
the cluster view.

A component of NodeManager (manager.py): its methods run on the node
manager's one loop thread, with the state the NodeManager holds.
"""

import collections
import logging

from minray._private.node.records import DEFERRED as _DEFERRED
from minray._private.scheduling import placement, policy
from minray._private.scheduling import resources as sched

log = logging.getLogger("minray")


class PlacementGroups:
    """NodeManager's placement groups component (see the module doc)."""

    def replan_pgs(self):
        """Placement groups no plan fitted when they were created: plan them again
        against the cluster view just received (nodes freed resources, or joined)."""
        for pg in [p for p in self.sched.pgs.values() if p.replan and p.state == "PENDING"]:
            plan = self.plan_bundles(pg.bundles, pg.strategy)
            if plan is None:
                continue
            if all(r.node_id == self.node_id for r in plan):
                pg.replan = False     # it fits here now: the local scheduler places it
                continue
            del self.sched.pgs[pg.pg_id]
            self.create_pg_across_nodes(pg.pg_id, pg.bundles, pg.strategy, pg.name,
                                        pg.lifetime, pg.owner, plan)
            # Lease requests and actors that waited here for one of its bundles go
            # to its node.
            here, nodes = self.here(), self.cluster_nodes()
            for key, req in list(self.sched.queue.items()):
                if req.pg is None or req.pg[0] != pg.pg_id:
                    continue
                if key.kind == "lease" and req.owner is not None and \
                        not req.owner.info.get("tcp"):
                    target = self.policy.pg_target(self._ask_of(req), here, nodes)
                    if target is not None:
                        self.sched.cancel(key)
                        self.reply(req.owner, req.payload.req_id, True, self.spill_to(
                            policy.SpillTo(target.node_id, target.address, "bundle"),
                            req.resources))
                elif key.kind == "actor":
                    a = self.actors.get(key.actor_id)
                    if a is None or a.spec.get("hosted") or a.lease_key != key:
                        continue
                    target = self.policy.pg_target(self._ask_of(req), here, nodes)
                    if target is not None and self.host_remotely(a, target):
                        self.sched.cancel(key)
                        a.lease_key = None
        self.schedule()

    def plan_bundles(self, bundles, strategy, key="available"):
        """Which node takes each bundle (scheduling/placement.py), or None."""
        return placement.plan_bundles(bundles, strategy, self.cluster.nodes(), self.node_id,
                                      key)

    # ----------------------------------------------------------- placement groups
    def h_create_pg(self, conn, pg_id, bundles, strategy, name, lifetime):
        job_id = self.clients[conn].get("job_id")
        pg = sched.PlacementGroupState(pg_id, bundles, strategy, name, lifetime,
                                       owner=job_id)
        if self.cluster is not None and not conn.info.get("tcp"):
            plan = self.plan_bundles(bundles, strategy)
            if plan is not None and any(r.node_id != self.node_id for r in plan):
                return self.create_pg_across_nodes(pg_id, bundles, strategy, name,
                                                   lifetime, job_id, plan)
            if plan is None:
                # Not now: it stays PENDING here and is planned again over the nodes
                # at every change of the cluster view (replan_pgs).
                pg.replan = True
                if self.plan_bundles(bundles, strategy, key="total") is None:
                    self.push(conn, "warning", (
                        f"Warning: placement group {name or pg_id.hex()} with bundles "
                        f"{bundles} and strategy {strategy} cannot be placed on this "
                        f"cluster as it is ({len(self.cluster.view.alive())} live node(s), "
                        f"resources {self.cluster.view.total()}); it stays pending until "
                        "nodes that fit it join.",))
                self.sched.create_pg(pg)
                return True
        if self.cluster is not None and conn.info.get("tcp"):
            pg.strategy = "PACK"   # this node's share of a group placed by another node
        if not self.sched.pg_feasible(pg):
            self.push(conn, "warning", (
                f"Warning: placement group {name or pg_id.hex()} with bundles {bundles} and "
                f"strategy {strategy} cannot be placed on this cluster (resources "
                f"{self.sched.total}, {self.sched.num_nodes} node(s)); it stays pending.",))
        self.sched.create_pg(pg)
        self.schedule()
        return True

    def create_pg_across_nodes(self, pg_id, bundles, strategy, name, lifetime, job_id, plan):
        """Bundles on several nodes: ours reserved here, the others by their nodes
        (an empty bundle stands in for each of those here); ready once all confirm."""
        local = [dict(b) if r.node_id == self.node_id else {} for b, r in zip(bundles, plan)]
        pg = sched.PlacementGroupState(pg_id, local, strategy, name, lifetime, owner=job_id)
        pg.strategy = "PACK"   # the local share; the plan already honoured the strategy
        pg.shown = ([dict(b) for b in bundles], strategy)
        job = self.jobs.get(job_id, {})
        by_node = collections.defaultdict(dict)
        for i, (b, r) in enumerate(zip(bundles, plan)):
            if r.node_id != self.node_id:
                by_node[r.node_id][i] = (b, r)
        for node_id, items in by_node.items():
            rec = next(iter(items.values()))[1]
            conn = self.cluster.peer(rec.address, job_id, job.get("config") or {})
            share = [dict(items[i][0]) if i in items else {} for i in range(len(bundles))]
            for i, (b, _) in items.items():
                pg.remote[i] = sched.RemoteBundle(node_id, rec.address, conn)
                sched.subtract(rec.available, b)
            pg.remote_pending += 1
            def created(ok, value, pg=pg, conn=conn):
                if not ok:
                    return self.on_remote_bundles(pg, ok, value)
                # Reserved there once placed there: wait for it.
                self.cluster.peer_request(conn, "wait_pg", (pg.pg_id,),
                                          lambda ok, v, pg=pg: self.on_remote_bundles(pg, ok, v))
            self.cluster.peer_request(conn, "create_pg", (pg_id, share, "PACK", name, None),
                                      created)
        self.sched.create_pg(pg)
        self.schedule()
        return True

    def on_remote_bundles(self, pg, ok, value):
        if self.sched.pgs.get(pg.pg_id) is not pg:
            return   # removed meanwhile
        if not ok:
            log.warning(f"minray: a node refused bundles of placement group {pg.pg_id.hex()}: "
                  f"{value!r}")
            return
        pg.remote_pending -= 1
        self.schedule()

    def h_wait_pg(self, conn, pg_id):
        req_id = self.current_req_id
        pg = self.sched.pgs.get(pg_id)
        if pg is None:
            raise ValueError(f"placement group {pg_id.hex()} does not exist (removed?)")
        if pg.state == "CREATED" and not pg.remote_pending:
            return True
        self.pg_waiters[pg_id].append((conn, req_id))
        return _DEFERRED

    def h_remove_pg(self, conn, pg_id):
        pg = self.sched.remove_pg(pg_id)
        if pg is None:
            return False
        for peer in {where.conn for where in pg.remote.values()}:
            self.cluster.peer_request(peer, "remove_pg", (pg_id,))
        for a in list(self.actors.values()):
            if a.pg and a.pg[0] == pg_id and a.state != "DEAD":
                self.kill_actor(a, "its placement group was removed", no_restart=True)
        for w in list(self.workers.values()):
            if w.charge and w.charge.kind == "pg" and w.charge.pg_id == pg_id:
                w.charge = None
                self.kill_worker(w)
        for c, req_id in self.pg_waiters.pop(pg_id, []):
            self.reply(c, req_id, False, ValueError("the placement group was removed"))
        self.schedule()
        return True

    def h_pg_table(self, conn, pg_id):
        def row(pg):
            bundles, strategy = pg.shown or (pg.bundles, pg.strategy)
            state = "PENDING" if pg.remote_pending and pg.state == "CREATED" else pg.state
            return {"placement_group_id": pg.pg_id.hex(), "name": pg.name,
                    "bundles": {i: dict(b) for i, b in enumerate(bundles)},
                    "strategy": strategy, "state": state}
        if pg_id is not None:
            pg = self.sched.pgs.get(pg_id)
            return row(pg) if pg else {"placement_group_id": pg_id.hex(), "state": "REMOVED"}
        return {pg.pg_id.hex(): row(pg) for pg in self.sched.pgs.values()}
