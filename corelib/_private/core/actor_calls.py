"""Actor call ordering: the calls this process makes to one actor, sent in
submission order over one connection, and what happens to them when the actor
restarts or dies. Pure decisions, no I/O.

    .remote() on a handle -> call_queued ─┐                    ┌─> SendCalls(queue, calls)
    connection made / refused / closed ───┼─> ActorQueue ──────┼─> Connect(queue)
    DONE from the actor -> call_done ─────┤   (state record)   ├─> CloseConnection(conn)
    actor state pushed -> state_changed ──┘                    └─> FailCalls(calls, reason)

Ray's semantics: calls from one caller to one actor run in submission order;
a call waits for its ref arguments before any later call is sent (order is
kept, as Ray's actor task submitter does); when the actor restarts, calls that
were running are retried while ``max_task_retries`` allows (a call sent after
the old process had already died never ran, so it is resent for free), and
fail with ActorDiedError otherwise; once it is dead, everything fails with its
death cause.

The client (``minray._private.client.actors``) is the shell: it calls these
with its lock held and carries out the instructions after releasing it. A
*call* is any object with ``task_id``, ``cancelled``, ``retries_left``,
``sent_at`` (written here) and ``args_pending`` (its ref arguments are not
resolved yet). The client's TaskRecord is one.

>>> aq = ActorQueue(b"actor")
>>> state_changed(aq, ALIVE, "/tmp/actor.sock", None, 0, now=0.0)
[Connect(queue=<ActorQueue b'actor' ALIVE>)]
>>> connected(aq, "a connection")
>>> call_queued(aq, Call(b"c1"), now=1.0)
[SendCalls(queue=<ActorQueue b'actor' ALIVE>, calls=[Call(b'c1')])]
"""

from __future__ import annotations

import collections
from minray._private.named import NamedTuple

from minray._private.core import ownership

# The actor states the node manager pushes (and our own DISCONNECTED).
ALIVE = "ALIVE"
DEAD = "DEAD"
RESTARTING = "RESTARTING"
DISCONNECTED = "DISCONNECTED"   # our connection broke; its state update follows
UNKNOWN = "UNKNOWN"

# call_done's answer when the call runs again (retry_exceptions matched).
RETRIED = "retried"

# Hot records are made with tuple.__new__: the same NamedTuple without its
# Python-level __new__ (about 300 ns per actor call otherwise).
_new = tuple.__new__

# FailCalls reasons.
FAIL_DEAD = "dead"                # with the actor's death cause (or ActorDiedError)
FAIL_DIED_RUNNING = "died_running"  # restarting, and the call has no retries left


class SendCalls(NamedTuple):
    """Send ``calls`` to the actor, in this order (already in queue.inflight)."""
    queue: Any
    calls: List[Any]


class Connect(NamedTuple):
    """Connect to the actor at queue.address (queue.connecting is set)."""
    queue: Any


class CloseConnection(NamedTuple):
    """Close a connection to an old incarnation of the actor (no close handler)."""
    conn: Any


class FailCalls(NamedTuple):
    """Finish ``calls`` with an error: see the FAIL_* reasons."""
    calls: List[Any]
    reason: str


class ActorQueue:
    """Calls to one actor from this process, sent in submission order."""

    __slots__ = ("actor_id", "state", "address", "conn", "pending", "inflight",
                 "subscribed", "cause", "max_task_retries", "num_restarts", "connecting")

    def __init__(self, actor_id, max_task_retries=0):
        self.actor_id = actor_id
        self.state = UNKNOWN
        self.address = None
        self.conn = None                 # the shell's connection; None: not connected
        self.pending = collections.deque()
        self.inflight = {}               # task_id -> call, in the order sent
        self.subscribed = False          # the shell asked for state pushes
        self.cause = None                # death cause (an error blob)
        self.max_task_retries = max_task_retries
        self.num_restarts = 0
        self.connecting = False

    def __repr__(self):
        return f"<ActorQueue {self.actor_id!r} {self.state}>"


class Call:
    """A call as the queue sees it (tests and examples; the client uses TaskRecord)."""

    __slots__ = ("task_id", "cancelled", "retries_left", "sent_at", "args_pending")

    def __init__(self, task_id, retries_left=0, args_pending=False):
        self.task_id = task_id
        self.cancelled = False
        self.retries_left = retries_left
        self.sent_at = 0.0
        self.args_pending = args_pending

    def __repr__(self):
        return f"Call({self.task_id!r})"


def pump(aq, now):
    """Send what may be sent, in order; connect first if needed; fail all once dead."""
    if aq.state == DEAD:
        calls = list(aq.pending) + list(aq.inflight.values())
        aq.pending.clear()
        aq.inflight.clear()
        return [FailCalls(calls, FAIL_DEAD)] if calls else []
    if aq.conn is None or aq.state != ALIVE:
        if aq.state == ALIVE and aq.address and not aq.connecting:
            aq.connecting = True
            return [Connect(aq)]
        return []
    pending = aq.pending
    sends = []
    while pending:
        call = pending[0]
        if call.args_pending:
            break  # keep order: wait for this call's arguments
        pending.popleft()
        if call.cancelled:
            continue
        aq.inflight[call.task_id] = call
        call.sent_at = now
        sends.append(call)
    return [_new(SendCalls, (aq, sends))] if sends else []


def call_queued(aq, call, now):
    """A call was made (or its arguments just resolved: pass call=None)."""
    if call is not None:
        if not aq.pending and aq.conn is not None and aq.state == ALIVE and \
                not call.args_pending:
            # Nothing ahead of it: it goes now (pump's answer, without the queue).
            aq.inflight[call.task_id] = call
            call.sent_at = now
            return [_new(SendCalls, (aq, [call]))]
        aq.pending.append(call)
    return pump(aq, now)


def call_done(aq, task_id, retryable):
    """The actor finished ``task_id``: returns the finished call, None (not
    ours any more), or RETRIED: its exception matched retry_exceptions and
    max_task_retries allows, so it runs again, first in line (pump next)."""
    call = aq.inflight.pop(task_id, None)
    if call is not None and retryable:
        verdict = ownership.retry(call.retries_left, True, call.cancelled)
        if verdict.again:
            call.retries_left = verdict.retries_left
            aq.pending.appendleft(call)
            return RETRIED
    return call


def connecting_to(aq):
    """The address to connect to now, or None (it restarted or died meanwhile:
    its state update follows)."""
    address = aq.address if aq.state == ALIVE else None
    if address is None:
        aq.connecting = False
    return address


def connected(aq, conn):
    """The connection is made: calls flow (pump next)."""
    aq.conn = conn
    aq.connecting = False


def connect_failed(aq, address):
    """Refused, or closed before our hello: the actor is exiting. Ask the node
    manager again (the shell re-subscribes shortly)."""
    aq.connecting = False
    if aq.address == address:
        aq.state = DISCONNECTED


def connection_closed(aq, conn):
    """A connection to the actor closed: wait for its state (restart or death)."""
    if aq.conn is conn:
        aq.conn = None
        if aq.state == ALIVE:
            aq.state = DISCONNECTED


def state_changed(aq, state, address, cause, num_restarts, now, died_at=0.0):
    """The node manager pushed the actor's state. Calls that were running on a
    dead or restarted incarnation are resent (sent after it died: they never
    ran), retried (max_task_retries) or failed; then the queue is pumped."""
    out = []
    lost = []
    restarted = num_restarts > aq.num_restarts
    if state in (DEAD, RESTARTING) or restarted:
        lost = list(aq.inflight.values())
        aq.inflight.clear()
        if aq.conn is not None and (state != ALIVE or address != aq.address):
            out.append(CloseConnection(aq.conn))
            aq.conn = None
    aq.num_restarts = num_restarts
    if aq.state == DEAD:
        return out   # final: later pushes change nothing
    aq.state, aq.address, aq.cause = state, address, cause
    again, failed = [], []
    for call in lost:
        if state != DEAD and died_at and call.sent_at > died_at:
            again.append(call)   # sent to a process already dead: never ran, resend
        elif state != DEAD and call.retries_left != 0:
            call.retries_left = ownership.retry(call.retries_left, True, False).retries_left
            again.append(call)
        else:
            failed.append(call)
    if failed:
        out.append(FailCalls(failed, FAIL_DEAD if (state == DEAD and cause)
                             else FAIL_DIED_RUNNING))
    if again:
        aq.pending.extendleft(reversed(again))   # keep submission order
    return out + pump(aq, now)


def cancel_call(aq, call):
    """ray.cancel of a call: "queued" (taken out: it never runs), "running"
    (in flight: ask the actor), or None (finished already)."""
    try:
        aq.pending.remove(call)
        return "queued"
    except ValueError:
        pass
    return "running" if call.task_id in aq.inflight else None


def node_lost(aq, cause):
    """Our node manager died, with every actor it knew: the queue is dead."""
    aq.pending.clear()
    aq.inflight.clear()
    aq.state, aq.cause = DEAD, cause
