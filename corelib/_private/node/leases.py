"""Lease requests: a thin shell over the cluster policy (scheduling/policy.py).

    h_request_lease: parse -> ClusterPolicy.decide -> carry_out_lease
        RunLocal / Queue  -> the local Scheduler's queue (granted by schedule())
        SpillTo(node)     -> reply ("spill", node_id, "tcp://ip:port")
        Infeasible        -> TaskUnschedulableError

Also the grants themselves (schedule), returning and revoking leases, and
blocked workers lending their CPUs back.

A component of NodeManager (manager.py): its methods run on the node
manager's one loop thread, with the state the NodeManager holds.
"""

import time

from minray import exceptions
from minray._private.net import protocol as P
from minray._private.node.records import DEFERRED as _DEFERRED, PendingLease
from minray._private.scheduling import policy
from minray._private.scheduling import resources as sched


class Leases:
    """NodeManager's leases component (see the module doc)."""

    # ----------------------------------------------------------------- leases
    def h_request_lease(self, conn, resources, pg, env_key, env_vars, arg_locs=()):
        """Parse -> policy -> carry out. ``arg_locs``: (node manager "ip:port" or None
        for this node, size) of each stored argument of the head task (locality)."""
        ask = policy.LeaseAsk(resources, policy.pg_ref(pg), self.arg_locations(arg_locs),
                              bool(conn.info.get("tcp")))
        decision = self.policy.decide(ask, self.here(), self.cluster_nodes())
        return self.carry_out_lease(conn, self.current_req_id, ask, decision, env_key,
                                    env_vars)

    def carry_out_lease(self, conn, req_id, ask, decision, env_key, env_vars):
        if type(decision) is policy.SpillTo:
            # Another node should run it: the submitter asks that node directly.
            return self.spill_to(decision, ask.resources)
        if type(decision) is policy.Infeasible:
            raise exceptions.TaskUnschedulableError(decision.reason)
        key = sched.LeaseKey(next(self.lease_seq))
        req = sched.LeaseRequest(key, ask.resources, pg=ask.pg, owner=conn,
                                 payload=sched.LeasePayload(req_id, self.clients[conn]["job_id"],
                                                            env_key, env_vars))
        if type(decision) is policy.Queue and decision.infeasible:
            self.warn_infeasible(conn, ask.resources, ask.pg)
        self.sched.request(req)
        self.schedule()
        if key in self.sched.queue:
            self.revoke_idle_leases()
        return _DEFERRED

    def here(self):
        """This node as the cluster policy sees it (live dicts, nothing copied)."""
        return policy.Here(self.node_id, self.sched.total, self.sched.available,
                           self.sched.pgs, self.tcp_address)

    def cluster_nodes(self):
        """The cluster view (node_id -> record), or None on one machine."""
        return self.cluster.view.nodes if self.cluster is not None else None

    def arg_locations(self, arg_locs):
        """The submitter's (address or None, size) pairs as ArgLocations by node id."""
        if not arg_locs or self.cluster is None:
            return ()
        by_address = None
        out = []
        for address, size in arg_locs:
            if address is None or address == self.tcp_address:
                out.append(policy.ArgLocation(self.node_id, size))
                continue
            if by_address is None:
                by_address = {r.address: r.node_id for r in self.cluster.view.nodes.values()}
            node_id = by_address.get(address)
            if node_id is not None:
                out.append(policy.ArgLocation(node_id, size))
        return tuple(out)

    def spill_to(self, decision, resources):
        """The answer that sends a lease request on to another node. The request
        counts against that node until its next heartbeat says otherwise, so a
        burst spreads instead of piling onto one node."""
        rec = self.cluster.view.nodes.get(decision.node_id)
        if rec is not None:
            sched.subtract(rec.available, resources)
        return ("spill", decision.node_id, f"tcp://{decision.address}")

    def _ask_of(self, req):
        return policy.LeaseAsk(req.resources, req.pg, (),
                               bool(req.owner is not None and req.owner.info.get("tcp")))

    def respill_queued(self):
        """Lease requests waiting here while another node has room go there (the
        cluster view just changed: every heartbeat); pending placement groups are
        planned again."""
        if any(pg.replan for pg in self.sched.pgs.values()):
            self.replan_pgs()
        here, nodes = self.here(), self.cluster_nodes()
        for key, req in list(self.sched.queue.items()):
            if key.kind != "lease" or req.owner is None:
                continue
            decision = self.policy.respill(self._ask_of(req), here, nodes)
            if decision is None:
                continue
            self.sched.cancel(key)
            self.reply(req.owner, req.payload.req_id, True,
                       self.spill_to(decision, req.resources))

    def missing_node(self, resources):
        """The node a hard NodeAffinitySchedulingStrategy names, if no live node is it."""
        kind, named = self.policy.k.strategy_of(resources)
        if kind != policy.AFFINITY_HARD:
            return None
        return self.policy.missing_node(named, self.here(), self.cluster_nodes())

    def h_cancel_lease_requests(self, conn, req_ids):
        """The client no longer needs these leases (its queue drained): drop them."""
        wanted = set(req_ids)
        for key, req in list(self.sched.queue.items()):
            if req.owner is conn and req.payload and req.payload.req_id in wanted:
                self.sched.cancel(key)
                self.reply(conn, req.payload.req_id, False, P.LeaseCancelled())

    def warn_infeasible(self, conn, resources, pg):
        if pg:
            idx = "any bundle" if pg[1] < 0 else f"bundle {pg[1]}"
            what = f"placement group {pg[0].hex()} ({idx})"
        else:
            what = "this node"
        total = {k: v for k, v in self.sched.total.items() if not k.startswith("_")}
        text = (f"Warning: a task or actor requests {resources}, which {what} can never "
                f"provide (total: {total}). It stays pending until a node with "
                "these resources joins. Lower the request or start minray with more "
                "resources (init(num_cpus=..., resources={...})).")
        # The client prints it at once and names it again if get() times out on it.
        self.push(conn, "infeasible", (dict(resources), pg, text))

    def revoke_idle_leases(self):
        holders = {}
        for w in self.workers.values():
            if w.state == "leased" and w.lease is not None and w.charge is not None:
                holders.setdefault(w.lease, []).append(w.charge.resources)
        # Whom the waiting requests come from, and for what. A holder that waits only
        # for the shapes it already holds would use its own idle workers for them: its
        # requests are left over from a burst and are withdrawn once its queue drains.
        # Asking it to hand workers back would only make it lease one per task.
        waiting = {}
        for req in self.sched.queue.values():
            waiting.setdefault(req.owner, []).append(req.resources)
        for conn, shapes in holders.items():
            own = waiting.get(conn)
            if own is not None and len(waiting) == 1 and all(r in shapes for r in own):
                continue
            self.push(conn, "revoke_idle", ())
        if holders and not self.revoke_timer:
            # Holders busy now may go idle soon: ask again while requests wait.
            self.revoke_timer = True
            self.loop.call_later(0.05, self._revoke_again)

    def _revoke_again(self):
        self.revoke_timer = False
        if self.sched.queue and not self.stopping:
            self.revoke_idle_leases()

    def schedule(self):
        if self.stopping:
            return
        self.sched.try_place_pgs()
        for pg_id in list(self.pg_waiters):
            pg = self.sched.pgs.get(pg_id)
            if pg is not None and pg.state == "CREATED" and not pg.remote_pending:
                for conn, req_id in self.pg_waiters.pop(pg_id, []):
                    self.reply(conn, req_id, True, True)
        for req, charge in self.sched.schedule():
            if req.key.kind == "actor":
                self.start_actor_worker(req.key.actor_id, charge)
                continue
            req_id, job_id, env_key, env_vars = req.payload
            holder = req.owner
            if holder.closed:
                self.sched.release(charge)
                continue
            w = self._idle_worker(job_id, env_key)
            if w is None:
                w = self.start_worker(job_id, env_key, env_vars, "task")
                w.lease, w.charge = PendingLease(holder, req_id), charge
            else:
                w.state, w.lease, w.charge = "leased", holder, charge
                w.leased_at = time.monotonic()
                self.reply(holder, req_id, True, (w.worker_id, self.worker_address(w, holder),
                                                  w.pid, sched.Scheduler.gpu_ids(charge)))

    @staticmethod
    def worker_address(w, holder):
        """Where ``holder`` reaches ``w``: its Unix socket, or TCP from another node."""
        if holder.info.get("tcp") and w.tcp_address:
            return w.tcp_address
        return w.address

    def _idle_worker(self, job_id, env_key):
        for w in self.workers.values():
            if w.state == "idle" and w.job_id == job_id and w.env_key == env_key:
                return w
        return None

    def h_return_lease(self, conn, worker_id, kill):
        w = self.workers.get(worker_id)
        if w is None or w.state != "leased":
            return
        if kill:
            self.kill_worker(w)
            return
        self.release_worker(w)

    def h_worker_blocked(self, conn, worker_id):
        w = self.workers.get(worker_id)
        if w is None or w.charge is None or w.blocked_charge is not None:
            return
        if w.charge.kind == "node":
            cpu = {k: v for k, v in w.charge.resources.items() if k == "CPU"}
            if cpu:
                sched.add(self.sched.available, cpu)
                w.blocked_charge = cpu
                self.schedule()

    def h_worker_unblocked(self, conn, worker_id):
        w = self.workers.get(worker_id)
        if w is None or w.blocked_charge is None:
            return
        sched.subtract(self.sched.available, w.blocked_charge)
        w.blocked_charge = None

    def h_cancel_task(self, conn, worker_id, task_id, force, recursive):
        w = self.workers.get(worker_id)
        if w is None:
            return False
        if force:
            self.kill_worker(w)
        else:
            self.push(w.conn, "cancel", (task_id, recursive))
        return True

    def h_steal_tasks(self, conn, worker_id, task_ids, client_id):
        w = self.workers.get(worker_id)
        if w is not None and w.conn is not None:
            self.push(w.conn, "steal", (task_ids, client_id))
