"""Worker logs: read from the workers' files and pushed to their drivers.

A component of NodeManager (manager.py): its methods run on the node
manager's one loop thread, with the state the NodeManager holds.
"""

import collections
import os

from minray._private.node.records import TASK_NAME_MARKER, LOG_POLL_S


class Logs:
    """NodeManager's logs component (see the module doc)."""

    # ------------------------------------------------------------------- logs
    def poll_logs(self):
        by_job = collections.defaultdict(list)
        for w in list(self.workers.values()):
            self._read_log(w, by_job)
        for job_id, records in by_job.items():
            job = self.jobs.get(job_id)
            if job and job["end"] is None and job.get("config", {}).get("log_to_driver", True):
                self.push(job["driver"], "logs", (records,))
        if not self.stopping:
            self.loop.call_later(LOG_POLL_S, self.poll_logs)

    def h_flush_logs(self, conn):
        """A driver is about to leave: send it what its workers wrote since the last poll."""
        job_id = self.clients.get(conn, {}).get("job_id")
        by_job = collections.defaultdict(list)
        for w in list(self.workers.values()):
            if w.job_id == job_id:
                self._read_log(w, by_job)
        records = by_job.get(job_id)
        job = self.jobs.get(job_id)
        if records and job and job.get("config", {}).get("log_to_driver", True):
            self.push(conn, "logs", (records,))
        return True

    def flush_log(self, w):
        by_job = collections.defaultdict(list)
        self._read_log(w, by_job)
        for job_id, records in by_job.items():
            job = self.jobs.get(job_id)
            if job and job["end"] is None:
                self.push(job["driver"], "logs", (records,))

    def _read_log(self, w, by_job):
        for i, path in enumerate((w.log_out, w.log_err)):
            try:
                size = os.path.getsize(path)
            except OSError:
                continue
            if size <= w.log_pos[i]:
                continue
            with open(path, "rb") as f:
                f.seek(w.log_pos[i])
                data = f.read(min(size - w.log_pos[i], 1 << 20))
            cut = data.rfind(b"\n")
            if cut < 0:
                if len(data) < (1 << 16) and w.state != "dead":
                    continue
                cut = len(data) - 1
            data = data[:cut + 1]
            w.log_pos[i] += len(data)
            lines = []
            for line in data.decode("utf-8", "replace").split("\n")[:-1]:
                if line.startswith(TASK_NAME_MARKER):
                    if lines:
                        by_job[w.job_id].append((w.pid, w.task_name[i], i == 1, lines))
                        lines = []
                    w.task_name[i] = line[len(TASK_NAME_MARKER):]
                    continue
                lines.append(line)
            if lines:
                by_job[w.job_id].append((w.pid, w.task_name[i], i == 1, lines))
