"""The memory monitor's hook in the node manager: its tick picks a victim
(memory_monitor.pick_victim) and kills it; submitters mark tasks that have no
retries left, and clients ask why a worker was killed.

A component of NodeManager (manager.py): its methods run on the node
manager's one loop thread, with the state the NodeManager holds.
"""

import logging
from minray._private.node.memory_monitor import Candidate, pick_victim

log = logging.getLogger("minray")


class MemoryHook:
    """NodeManager's memory component (see the module doc)."""

    def check_memory(self):
        """The memory monitor's tick (see memory_monitor.py)."""
        if self.stopping:
            return
        mon = self.memory_monitor
        self.loop.call_later(mon.refresh_ms / 1000, self.check_memory)
        victim = self.oom_victim
        if victim is not None and victim.state != "dead":
            return   # wait for the last victim's memory to come back first
        live = [w for w in self.workers.values() if w.pid and w.state in ("leased", "actor")]
        used, total = mon.usage([w.pid for w in self.workers.values() if w.pid])
        if not mon.over(used, total):
            return
        cands = []
        for w in live:
            a = self.actors.get(w.actor_id) if w.actor_id is not None else None
            restartable = a is not None and (a.max_restarts == -1 or
                                             a.num_restarts < a.max_restarts)
            retriable = restartable if a is not None else not w.unretriable
            cands.append(Candidate(w, a is not None, retriable, w.leased_at or w.started))
        chosen = pick_victim(cands)
        if chosen is None:
            return
        w = chosen.key
        why = mon.describe(used, total, w.pid)
        self.oom_kills[w.worker_id] = why
        while len(self.oom_kills) > 1000:
            self.oom_kills.popitem(last=False)
        mon.num_kills += 1
        self.oom_victim = w
        log.warning(f"minray: memory monitor: {why}")
        self.kill_worker(w)

    def h_unretriable_task(self, conn, worker_id, task_id, running):
        """A submitter runs (or finished) a task with no retries left on ``worker_id``."""
        w = self.workers.get(worker_id)
        if w is not None:
            if running:
                w.unretriable.add(task_id)
            else:
                w.unretriable.discard(task_id)

    def h_worker_exit_cause(self, conn, worker_id):
        """Why the memory monitor killed ``worker_id``, or None if it did not."""
        return self.oom_kills.get(worker_id)
