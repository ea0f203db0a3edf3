"""The core client: what a driver or a worker uses to submit work and hold objects.

    .remote() -> submit_task -> resolve top-level ref args -> SchedulingQueue
              -> lease a worker from the node manager -> TASK straight to the worker
    worker --DONE--> I/O thread -> ObjectState.blob set -> waiters woken -> get() returns

It is the *owner* (Ray's ownership model) of the tasks it submits and of the
objects they return or that it puts: it keeps their values (small ones inline,
in this process), counts local references, and tells the node manager when a
ref escapes to another process (export) or when it is freed.

Threads: the caller's thread submits and waits; one I/O thread (``Loop``) reads
every socket and completes objects.  ``self.lock`` guards the tables; it is
never held while calling user code or blocking.  One exception to "the I/O
thread reads": a caller that waits for the reply of the actor call it just made
reads that actor's socket itself while it waits (see direct_reads.py), which
saves a thread wakeup per synchronous actor call.

The client is one class, CoreClient, assembled from parts that each own one
role (mixins sharing the tables below and ``self.lock``); decisions live in
pure units in ``minray._private.core``:

    rpc.py         requests and notices to node managers (ours, other nodes'), pushes, logs
    references.py  local refs, borrows, exports, puts, completing owned objects
                   (decisions: core/ownership.py)
    getwait.py     get(), wait(), on_ready(), reading values (inline, mapped, fetched)
    direct_reads.py  the one owner of muted sockets: a caller reading its own reply
    submission.py  tasks: argument resolution, the shell around core/submit_queue.py
                   (pipelining, leases, steals), worker connections, failures, retries
    lineage.py     lineage kept for finished tasks, rebuilding lost store copies
    streams.py     streaming generator tasks
    cancel.py      ray.cancel for tasks
    actors.py      actor creation, handles, connections: the shell around
                   core/actor_calls.py (call order, restarts, retries)
    records.py     the records they share (ObjectState, TaskRecord, Waiter, ...)

The worker and local mode import ``_EMPTY_ARGS``, ``CoreClient`` and ``_ArgRef``
from here.
"""

import collections
import itertools
import os
import threading

from minray import _ext
from minray._private.core import ids
from minray._private.net import transport
from minray._private.observability import task_events
from minray._private.client.direct_reads import DirectReads
from minray._private.client.records import _ArgRef, _EMPTY_ARGS, WRITE_MAP_BYTES
from minray._private.client.rpc import RpcMixin
from minray._private.client.references import ReferencesMixin
from minray._private.client.getwait import GetWaitMixin
from minray._private.client.submission import SubmissionMixin
from minray._private.client.lineage import LineageMixin
from minray._private.client.streams import StreamsMixin
from minray._private.client.cancel import CancelMixin
from minray._private.client.actors import ActorsMixin


__all__ = ["CoreClient", "_ArgRef", "_EMPTY_ARGS"]


class CoreClient(RpcMixin, ReferencesMixin, GetWaitMixin, SubmissionMixin, LineageMixin,
                 StreamsMixin, CancelMixin, ActorsMixin):
    """A driver's or worker's connection to minray: see the module docstring."""

    def __init__(self, kind, nm_socket, job_config, worker_id=None, push_handlers=None):
        self.kind = kind
        self.push_handlers = push_handlers or {}
        self.client_id = ids.new_unique_id(12)
        self.worker_id = worker_id
        self.lock = threading.Lock()
        self.objects = {}
        self.deps = _ext.deps.DependencyTable()   # tasks waiting for ref arguments
        self.release_queue = collections.deque()
        self.tasks = {}
        # Lineage (as Ray's owner keeps it): finished tasks whose results live in
        # the object store, kept while those results are referenced, so a lost
        # copy can be rebuilt by running the task again (see _reconstruct).
        self.lineage = {}
        # Objects whose store copy was lost before the reply of the run that wrote
        # it reached us (see _reconstruct): rebuilt as soon as that reply arrives.
        self._lost_before_reply = set()
        self.infeasible = {}     # (resources, pg) -> the node manager's warning text
        self.nm_lost = False     # the node manager died under us
        self.queues = {}
        self.actor_queues = {}
        self.streams = {}
        self.requests = {}
        self.req_seq = itertools.count(1)
        self.put_index = 0
        self.shutting_down = False
        self.seg_seq = itertools.count(1)
        self.log_handler = None
        self.callback_executor = None
        self.blocked_depth = 0
        self.lease_pressure_until = 0.0
        self.creation_pins = {}
        self.inherited_env = None      # worker: the runtime_env env_vars it runs with
        self.blocked_in_task = False   # worker: did the current task block in get/wait?
        self.current_task = threading.local()
        self.loop = transport.Loop(f"minray-{kind}-io")
        self._dirty_queues = set()
        self.loop.batch_end = self._pump_dirty
        self.loop.start()
        self.direct = DirectReads(self)   # the one owner of muted sockets
        self.job_config = job_config
        self.remote_nms = {}          # "tcp://ip:port" -> Connection to another node's NM
        self.remote_owners = {}       # owner client id -> its node manager's address
        self.write_maps = {}          # segment name -> mmap we wrote (see _keep_write_map)
        self.cluster_token = None     # read on first use (cluster.py, node.read_cluster_token)
        self.nm = transport.Connection(transport.connect_unix(nm_socket))
        self.loop.add_connection(self.nm, self._on_nm_frame, self._on_nm_closed)
        self.info = self.call("register_client", kind, self.client_id, os.getpid(),
                              worker_id, job_config)
        self.job_id = self.info["job_id"]
        store = self.info.get("resources", {}).get("object_store_memory", 0)
        # Drivers only: a pool of workers each keeping mappings could pin too much.
        self.write_map_budget = min(WRITE_MAP_BYTES, int(store) // 4) \
            if kind == "driver" else 0
        self.node_id = self.info["node_id"]
        self.nm_address = self.info.get("nm_address")   # "ip:port" in a cluster
        self.segment_prefix = f"{self.info['segment_prefix']}{os.getpid()}_"
        self.loop.call_later(0.1, self._periodic)
        task_events.attach(self)   # task events: buffered here, flushed every second

    def close(self):
        self.shutting_down = True
        for buf in self.write_maps.values():
            try:
                buf.close()
            except BufferError:
                pass
        self.write_maps.clear()
        try:
            self.drain_releases()
        except Exception:
            pass
        self.loop.stop()
        try:
            self.nm.close()
        except Exception:
            pass
