"""Actors: creation, the lease of their process, state pushed to subscribers,
restarts, kills, and actors whose process another node hosts (or that
another node keeps: mirrors).

A component of NodeManager (manager.py): its methods run on the node
manager's one loop thread, with the state the NodeManager holds.
"""

import logging
import time

from minray import exceptions
from minray._private.net import protocol as P
from minray._private.net import transport
from minray._private.node.records import DEFERRED as _DEFERRED, ActorInfo, token_oid
from minray._private.objects import serialization
from minray._private.scheduling import policy
from minray._private.scheduling import resources as sched

log = logging.getLogger("minray")


class Actors:
    """NodeManager's actors component (see the module doc)."""

    # ------------------------------------------------------------------ actors
    def h_create_actor(self, conn, actor_id, spec):
        info = self.clients[conn]
        opts = spec["options"]
        name = opts.get("name")
        ns = opts.get("namespace") or self.jobs.get(info["job_id"], {}).get(
            "config", {}).get("namespace")
        opts["namespace"] = ns
        if name:
            claim = self.claim_name(ns, name, actor_id, opts.get("get_if_exists"))
            if not claim.created:
                self.objects.borrow(token_oid(claim.actor_id), info["client_id"])
                return ("existing", claim.actor_id, self.actors[claim.actor_id].meta)
        a = ActorInfo(actor_id, spec, info["client_id"], info["job_id"])
        self.actors[actor_id] = a
        a.subscribers.add(conn)
        tok = self.objects.entry(token_oid(actor_id))
        tok.owner, tok.state, tok.blob = info["client_id"], 1, b"P" + b"N."
        if spec.get("creation_error"):
            err = serialization.loads_inline(spec["creation_error"])
            self.mark_actor_dead(a, serialization.error_blob(exceptions.ActorDiedError(
                f"The actor {a.meta.get('class_name')} could not be created: an argument "
                f"of its constructor failed:\n{err}", actor_id=actor_id.hex(), cause=err)))
            return ("created", actor_id, a.meta)
        missing = self.missing_node(spec["resources"])
        if missing:
            self.mark_actor_dead(a, serialization.error_blob(exceptions.ActorUnschedulableError(
                f"The actor {a.meta.get('class_name')} requires node {missing} "
                "(NodeAffinitySchedulingStrategy with soft=False), which is not part of "
                "this cluster.")))
            return ("created", actor_id, a.meta)
        if self.cluster is not None and not spec.get("hosted"):
            self.cluster.register_actor(actor_id, name, ns, a.meta)
        self.queue_actor_lease(a)
        return ("created", actor_id, a.meta)

    def queue_actor_lease(self, a):
        resources = a.spec["resources"]
        req = sched.LeaseRequest(sched.ActorKey(a.actor_id, a.num_restarts), resources,
                                 pg=a.pg, owner=None)
        ask = policy.LeaseAsk(resources, policy.pg_ref(a.pg), (), bool(a.spec.get("hosted")))
        decision = self.policy.decide(ask, self.here(), self.cluster_nodes())
        if type(decision) is policy.SpillTo:
            target = self.cluster.view.nodes.get(decision.node_id)
            if target is not None and self.host_remotely(a, target):
                return
        if not self.sched.feasible(req):
            owner = self.client_conns.get(a.owner)
            if owner is not None:
                self.warn_infeasible(owner, resources, a.pg)
        a.lease_key = req.key
        self.sched.request(req)
        self.schedule()
        if req.key in self.sched.queue:
            self.revoke_idle_leases()

    def start_actor_worker(self, actor_id, charge):
        a = self.actors.get(actor_id)
        if a is None or a.state == "DEAD":
            self.sched.release(charge)
            return
        w = self.start_worker(a.job_id, "actor", a.spec.get("env_vars"), "actor")
        w.actor_id, w.charge = actor_id, charge
        a.worker = w

    def h_actor_ready(self, conn, actor_id, address):
        a = self.actors.get(actor_id)
        if a is None or a.state == "DEAD":
            return
        if a.spec.get("hosted") and a.worker is not None and a.worker.tcp_address:
            address = a.worker.tcp_address   # its callers live on other nodes
        a.state, a.address, a.cause = "ALIVE", address, None
        self.publish_actor(a)

    def h_actor_failed(self, conn, actor_id, cause_blob):
        a = self.actors.get(actor_id)
        if a is None:
            return
        a.exit_intended = True
        self.mark_actor_dead(a, cause_blob)
        if a.worker is not None:
            self.kill_worker(a.worker)

    def h_actor_exiting(self, conn, actor_id, reason):
        a = self.actors.get(actor_id)
        if a is not None:
            a.exit_intended = True
            a.cause = serialization.error_blob(exceptions.ActorDiedError(
                f"The actor {actor_id.hex()} exited: {reason}", actor_id=actor_id.hex()))

    def on_actor_process_died(self, a, w):
        a.died_at = a.died_at if a.died_at > w.started else time.monotonic()
        if a.state == "DEAD":
            return
        if not a.exit_intended and (a.max_restarts == -1 or a.num_restarts < a.max_restarts):
            a.num_restarts += 1
            a.state, a.address, a.worker = "RESTARTING", None, None
            self.publish_actor(a)
            self.queue_actor_lease(a)
            return
        how = self.oom_kills.get(w.worker_id) or self.describe_exit(w)
        cause = a.cause or serialization.error_blob(exceptions.ActorDiedError(
            f"The actor {a.actor_id.hex()} ({a.meta.get('class_name')}) died: "
            f"{how}; restarts used {a.num_restarts} of max_restarts="
            f"{a.max_restarts}. Worker logs: {w.log_err}", actor_id=a.actor_id.hex()))
        self.mark_actor_dead(a, cause)

    def mark_actor_dead(self, a, cause_blob):
        a.state, a.address, a.cause = "DEAD", None, cause_blob
        if a.lease_key is not None:
            self.sched.cancel(a.lease_key)
        if a.name:
            self.release_name(a.namespace, a.name, a.actor_id)
        if self.cluster is not None and a.mirror_of is None and not a.spec.get("hosted"):
            self.cluster.unregister_actor(a.actor_id, a.name, a.namespace)
        self.publish_actor(a)

    def publish_actor(self, a):
        event, args = a.state_msg()
        for conn in list(a.subscribers):
            self.push(conn, event, args)

    def kill_actor(self, a, reason, no_restart=True, graceful=False):
        if a.state == "DEAD":
            return
        if no_restart:
            a.exit_intended = True
            a.cause = serialization.error_blob(exceptions.ActorDiedError(
                f"The actor {a.actor_id.hex()} ({a.meta.get('class_name')}) was killed: "
                f"{reason}.", actor_id=a.actor_id.hex()))
        if a.mirror_of is not None:
            self.cluster.peer_request(a.mirror_of, "kill_actor", (a.actor_id, no_restart))
            return
        if a.host is not None:
            # Its process runs on another node: that node kills it and reports it
            # dead; a restart (no_restart=False) then follows from here.
            try:
                a.host.send(P.REQUEST, (0, "kill_actor", (a.actor_id, True)))
            except transport.ConnectionClosed:
                pass
            if no_restart:
                a.host.info.get("hosted", set()).discard(a.actor_id)
                a.host = None
                self.mark_actor_dead(a, a.cause)
            return
        w = a.worker
        if w is None or w.state == "dead":
            if no_restart:
                self.mark_actor_dead(a, a.cause)
            return
        if graceful and w.conn is not None:
            self.push(w.conn, "terminate", ())
            self.loop.call_later(5.0, self.kill_worker, w)
            return
        # Calls sent after this instant never ran: callers resend them for free.
        a.died_at = time.monotonic()
        self.kill_worker(w)
        if no_restart:
            # Dead now, not when its socket closes: the name is free at once.
            self.mark_actor_dead(a, a.cause)

    # -------------------------------------------------- actors on other nodes
    # The node that created an actor keeps its record (name, token, restarts,
    # subscribers); another node only hosts its process: it creates a plain,
    # unnamed, never-restarted "hosted" actor and pushes its state back here.
    def host_remotely(self, a, target):
        job = self.jobs.get(a.job_id, {})
        try:
            conn = self.cluster.peer(target.address, a.job_id, job.get("config") or {})
        except (OSError, transport.AuthenticationError) as exc:
            log.warning(f"minray: cannot reach node {target.address} to start an actor there: "
                  f"{exc}")
            return False
        sched.subtract(target.available, a.spec["resources"])
        opts = dict(a.spec["options"], name=None, lifetime=None, max_restarts=0,
                    get_if_exists=False)
        spec = dict(a.spec, options=opts, hosted=True)
        a.host = conn
        conn.info.setdefault("hosted", set()).add(a.actor_id)
        conn.send(P.REQUEST, (0, "create_actor", (a.actor_id, spec)))
        return True

    def on_peer_push(self, conn, event, args):
        """What a node hosting our actors tells us."""
        if event == "actor_state":
            a = self.actors.get(args[0])
            if a is not None and a.mirror_of is conn:
                a.state, a.address, a.cause, a.num_restarts, a.died_at = args[1:6]
                self.publish_actor(a)
            else:
                self.on_hosted_state(conn, *args)
        elif event == "free_copy":
            # The node we pulled this copy from freed its own: the owner let go.
            self.on_freed(self.objects.owner_release(args[0]))
        elif event in ("logs", "warning"):
            job = self.jobs.get(conn.info.get("job_id"))
            if job and job["end"] is None:
                self.push(job["driver"], event, args)

    def on_hosted_state(self, conn, actor_id, state, address, cause, num_restarts, died_at):
        a = self.actors.get(actor_id)
        if a is None or a.host is not conn or a.state == "DEAD":
            return
        if state == "ALIVE":
            a.state, a.address, a.cause = "ALIVE", address, None
            self.publish_actor(a)
        elif state == "DEAD":
            self.on_hosted_died(a, cause)

    def on_hosted_died(self, a, cause_blob):
        a.host.info.get("hosted", set()).discard(a.actor_id)
        a.host = None
        a.died_at = time.monotonic()
        if not a.exit_intended and (a.max_restarts == -1 or a.num_restarts < a.max_restarts):
            a.num_restarts += 1
            a.state, a.address = "RESTARTING", None
            self.publish_actor(a)
            self.queue_actor_lease(a)
            return
        self.mark_actor_dead(a, a.cause or cause_blob)

    def on_peer_closed(self, conn):
        """The node hosting some of our actors is gone: they died with it."""
        for actor_id in list(conn.info.get("hosted", ())):
            a = self.actors.get(actor_id)
            if a is not None and a.host is conn and a.state != "DEAD":
                self.on_hosted_died(a, serialization.error_blob(exceptions.ActorDiedError(
                    f"The actor {actor_id.hex()} ({a.meta.get('class_name')}) died: the "
                    "node that ran it died or lost its connection.",
                    actor_id=actor_id.hex())))

    def h_subscribe_actor(self, conn, actor_id):
        a = self.actors.get(actor_id)
        if a is None:
            if self.cluster is None or conn.info.get("tcp"):
                return None
            # A handle that came from another node: mirror the actor from its node.
            req_id = self.current_req_id
            self.cluster.locate_actor(actor_id, lambda found: self._mirror_then(
                found, actor_id, lambda a: self._answer_subscribe(conn, req_id, a)))
            return _DEFERRED
        a.subscribers.add(conn)
        return a.state_msg()[1]

    def _answer_subscribe(self, conn, req_id, a):
        if a is None:
            self.reply(conn, req_id, True, None)
            return
        a.subscribers.add(conn)
        self.reply(conn, req_id, True, a.state_msg()[1])

    def _mirror_then(self, found, actor_id, then):
        """Make a local copy of an actor kept by another node, subscribed to its state
        there; ``then(actor or None)`` once its current state is known."""
        a = self.actors.get(actor_id)
        if a is not None:
            return then(a)
        if found is None:
            return then(None)
        meta, address = found
        try:
            peer = self.cluster.peer(address, None, {})
        except (OSError, transport.AuthenticationError):
            return then(None)
        spec = {"options": {}, "meta": meta, "resources": {}}
        a = ActorInfo(actor_id, spec, None, None)
        a.mirror_of = peer
        a.detached = True        # its lifetime is decided where it is kept
        self.actors[actor_id] = a

        def subscribed(ok, state):
            if ok and state is not None:
                a.state, a.address, a.cause, a.num_restarts, a.died_at = state[1:6]
            elif a.state != "DEAD":
                a.state = "DEAD"
            then(a)
        self.cluster.peer_request(peer, "subscribe_actor", (actor_id,), subscribed)

    def h_kill_actor(self, conn, actor_id, no_restart):
        a = self.actors.get(actor_id)
        if a is None:
            raise ValueError(f"no actor with id {actor_id.hex()}")
        self.kill_actor(a, "ray.kill() was called on it", no_restart=no_restart)
        return True

    def h_list_actors(self, conn):
        return [{"actor_id": a.actor_id.hex(), "class_name": a.meta.get("class_name"),
                 "state": a.state, "name": a.name or "", "namespace": a.namespace,
                 "pid": a.worker.pid if a.worker else None,
                 "num_restarts": a.num_restarts} for a in self.actors.values()]
