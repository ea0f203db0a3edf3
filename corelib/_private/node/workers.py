"""Worker processes: forked by the zygote, idle / leased / actor, released,
killed, reaped; the idle pool trimmed by housekeeping.

A component of NodeManager (manager.py): its methods run on the node
manager's one loop thread, with the state the NodeManager holds.
"""

import logging
import os
import signal
import time

from minray import exceptions
from minray._private.node import zygote
from minray._private.node.records import WorkerInfo
from minray._private.objects import shm
from minray._private.scheduling import resources as sched

log = logging.getLogger("minray")


class Workers:
    """NodeManager's workers component (see the module doc)."""

    def _arm_zygote_writes(self):
        # Writes to the zygote are rare and tiny: send them synchronously.
        self.zygote.buffered = False
        self.zygote.sock.setblocking(True)

    # ---------------------------------------------------------------- workers
    def start_worker(self, job_id, env_key, env_vars, purpose):
        worker_id = f"{next(self.worker_seq):04d}{os.urandom(4).hex()}"
        out = os.path.join(self.logs_dir, f"worker-{worker_id}.out")
        err = os.path.join(self.logs_dir, f"worker-{worker_id}.err")
        w = WorkerInfo(worker_id, job_id, env_key, out, err)
        self.workers[worker_id] = w
        job = self.jobs.get(job_id, {}).get("config", {}) or {}
        env = dict(job.get("env_vars") or {})
        env.update(env_vars or {})
        spec = {
            "worker_id": worker_id, "job_id": job_id, "nm_socket": self.socket_path,
            "session_dir": self.session_dir, "stdout": out, "stderr": err,
            "env_vars": env, "task_env_vars": dict(env_vars or {}),
            "sys_path": job.get("sys_path"), "cwd": job.get("cwd"),
            "namespace": job.get("namespace"), "node_id": self.node_id, "purpose": purpose,
            "segment_prefix": self.segment_prefix,
            "node_ip": self.node_ip, "cluster": self.cluster is not None,
            "nm_tcp": (f"tcp://{self.node_ip}:{self.cluster.port}"
                       if self.cluster is not None else None),
        }
        self.zygote.send_bytes(_zygote_frame(("fork", worker_id, spec)))
        return w

    def h_preload_modules(self, conn, names):
        """A worker needed modules that later workers will likely need too (an async
        actor: asyncio): have the zygote import them when idle (zygote.ON_DEMAND)."""
        ask = zygote.preload_request(names, self.zygote_preloads)
        if ask:
            self.zygote_preloads.update(ask)
            self.zygote.send_bytes(_zygote_frame(("preload", ask)))

    def on_zygote_msg(self, msg):
        if msg[0] == "forked":
            w = self.workers.get(msg[1])
            if w is not None and w.pid is None:
                w.pid = msg[2]
                self.workers_by_pid[msg[2]] = w
        elif msg[0] == "exited":
            _, pid, status = msg
            self.exit_statuses[pid] = status
            w = self.workers_by_pid.get(pid)
            if w is not None:
                w.exit_status = status
                if w.state != "dead" and w.conn is None:
                    self.on_worker_death(w)  # died before it connected

    def on_worker_ready(self, w):
        if w.state == "dead":
            return
        if w.actor_id is not None:
            a = self.actors.get(w.actor_id)
            if a is None or a.state == "DEAD":
                self.kill_worker(w)
                return
            w.state = "actor"
            spec = dict(a.spec, gpu_ids=sched.Scheduler.gpu_ids(w.charge))
            self.push(w.conn, "become_actor", (a.actor_id, spec, a.num_restarts))
            return
        if w.lease is not None:
            holder, req_id = w.lease
            w.state = "leased"
            w.leased_at = time.monotonic()
            w.lease = holder
            self.reply(holder, req_id, True, (w.worker_id, self.worker_address(w, holder),
                                              w.pid, sched.Scheduler.gpu_ids(w.charge)))
            return
        self.make_idle(w)

    def make_idle(self, w):
        w.state, w.lease, w.idle_since = "idle", None, time.monotonic()
        self.schedule()

    def release_charge(self, w):
        """Give a worker's resources back to the pool, exactly once.

        A worker blocked in get() has already lent its CPUs back (h_worker_blocked):
        take that loan back first, or a worker that dies or is released while
        blocked would credit its CPUs twice and the node would overcommit.
        """
        if w.blocked_charge is not None:
            sched.subtract(self.sched.available, w.blocked_charge)
            w.blocked_charge = None
        self.sched.release(w.charge)
        w.charge = None

    def release_worker(self, w):
        w.unretriable.clear()
        self.release_charge(w)
        if w.state != "dead":
            self.make_idle(w)

    def kill_worker(self, w, sig=signal.SIGKILL):
        if w.pid:
            try:
                os.kill(w.pid, sig)
            except ProcessLookupError:
                pass
        if w.state != "dead" and w.conn is None:
            self.on_worker_death(w)

    def on_worker_death(self, w):
        if w.state == "dead":
            return
        prev = w.state
        w.state = "dead"
        self.workers.pop(w.worker_id, None)
        self.release_charge(w)
        self.flush_log(w)
        if w.pid:
            for name in shm.list_segments(f"{self.segment_prefix}{w.pid}_"):
                if not self._segment_known(name):
                    shm.unlink(name)
        if prev == "starting" and w.lease is not None and w.actor_id is None:
            holder, req_id = w.lease
            self.reply(holder, req_id, False, exceptions.WorkerCrashedError(
                f"A worker process (pid={w.pid}) died while starting; see its log {w.log_err}"))
        if w.actor_id is not None:
            a = self.actors.get(w.actor_id)
            if a is not None and a.worker is w:
                self.on_actor_process_died(a, w)
        self.schedule()

    def _segment_known(self, name):
        o = self.objects
        return (name in o.retired or any(n == name for _, n in o.pool) or
                any(e.segment == name for e in o.entries.values()))

    def describe_exit(self, w):
        status = w.exit_status if w.exit_status is not None else self.exit_statuses.get(w.pid)
        if status is None:
            return f"the process (pid={w.pid}) exited unexpectedly"
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else sig
            hint = " (killed with SIGKILL: by a user, the OOM killer, or ray.kill)" if sig == 9 else ""
            return f"the process (pid={w.pid}) was killed by signal {name}{hint}"
        return f"the process (pid={w.pid}) exited with code {os.WEXITSTATUS(status)}"


class ZygoteReader:
    """Reads the zygote's socket (length-prefixed pickles, not frames)."""

    def __init__(self, nm):
        self.nm = nm

    def on_readable(self):
        nm = self.nm
        try:
            data = nm.zygote.sock.recv(1 << 16)
        except BlockingIOError:
            return
        if not data:
            if not nm.stopping:
                log.error("minray: the worker template process died; shutting down")
                nm.shutdown()
            return
        for msg in nm.zreader.feed(data):
            nm.on_zygote_msg(msg)


def _zygote_frame(msg):
    import pickle
    data = pickle.dumps(msg, 5)
    return zygote._LEN.pack(len(data)) + data
