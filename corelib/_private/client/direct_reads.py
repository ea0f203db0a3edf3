"""The one owner of muted sockets: a caller reading its own reply.

A synchronous call (``ray.get(actor.f.remote())``, ``ray.get(f.remote())``)
would normally be completed by the I/O thread, which then wakes the caller:
two thread switches per call. Instead the caller *mutes* the connection the
reply will come on (the I/O loop stops watching it: ``Loop.detach``), polls it
itself together with a wake pipe, runs the frames' handlers on its own thread,
and then either gives the connection back to the loop or leaves it muted.

Contract (everything that mutes or unmutes a client's socket is in this class):

1. ``conn.muted`` and the ``muted`` set change only under the client's lock.
   A connection in ``muted`` is detached from the loop and read by nobody.
2. ``read(conn, waiter, timeout)`` takes ``conn`` (never on the I/O thread,
   never if another caller holds its read lock), reads until ``waiter`` is
   done, the connection closes or the timeout passes. Then, if nothing else is
   in flight on it, it stays muted (the bet: the next call is waited for the
   same way, so a synchronous loop costs no epoll change at all); otherwise it
   goes back to the loop.
3. Because a muted connection is read by nobody, anything that relies on the
   I/O thread to read replies must call ``hand_back()`` first: every wait other
   than ``read`` (get/wait of other objects, futures, stream items, argument
   resolution of a submitted task) and a ref leaving this process (others may
   wait for its value). A second call or task in flight on a muted connection
   ends the bet too: ``pipelined(conn)``.
4. The client's timer calls ``hand_back_busy()``: a muted connection that became
   busy or closed without any of the above goes back to the loop (safety net).

>>> DirectReads.__doc__.splitlines()[0]
'Lets a caller read its own reply; owns every muted connection (see module).'
"""

import os
import select
import threading
import time

from minray._private.net import spin as _spin
from minray._private.net import transport

_get_ident = threading.get_ident
# Callers may read their own replies; needs poll().
DIRECT_READS = hasattr(select, "poll")


class _WakePipe:
    """One per thread that reads replies itself: a pipe other threads write to
    wake it, and the poll set it waits on."""

    __slots__ = ("r", "w", "poll", "view", "gate")

    def __init__(self):
        self.view = memoryview(bytearray(transport.RECV_SIZE))   # its receive buffer
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        os.set_blocking(self.w, False)
        self.poll = select.poll()
        self.poll.register(self.r, select.POLLIN)
        self.gate = _spin.SpinGate()   # busy-poll first while replies come fast

    def drain(self):
        try:
            while os.read(self.r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def __del__(self):
        for fd in (self.r, self.w):
            try:
                os.close(fd)
            except OSError:
                pass


def busy(conn):
    """Calls or tasks in flight on this actor or worker connection (lock held)."""
    owner = conn.info.get("actor") or conn.info.get("worker")
    return owner is None or bool(owner.inflight) or getattr(owner, "returning", False)


class DirectReads:
    """Lets a caller read its own reply; owns every muted connection (see module)."""

    def __init__(self, client):
        self.client = client           # its lock, loop, tables and _pump_dirty
        self.lock = client.lock
        self.loop = client.loop
        self.muted = set()             # muted and idle: read by nobody (rule 1)
        self.local = threading.local()  # each reading thread's _WakePipe
        # What the next synchronous wait will be for: the result id and the
        # ActorQueue of the last single-return actor call, and the return id of
        # the last task (ids, never states: a state can hold a segment's
        # mapping, which must go with the last ref).
        self.last_call_oid = None
        self.last_call_queue = None
        self.last_task_oid = None

    def reply_conn(self, st):
        """The connection the value of owned, pending ``st`` will arrive on, if
        known (lock held): the actor of the last call, or the worker running the
        last task."""
        objects = self.client.objects
        oid = self.last_call_oid
        if oid is not None and objects.get(oid) is st:
            return self.last_call_queue.conn
        oid = self.last_task_oid
        if oid is not None and objects.get(oid) is st:
            rec = self.client.tasks.get(oid[:16])
            w = rec.worker if rec is not None else None
            return w.conn if w is not None else None
        return None

    def read(self, conn, waiter, timeout):
        """Wait for ``waiter`` by reading ``conn`` on this thread (rule 2).

        Other threads that complete the object, or close the connection, write
        to this thread's wake pipe. Returns True/False like ``Waiter.wait``, or
        None when the connection could not be taken or closed (then wait as
        usual: its close handlers settle the call).
        """
        rl = conn.rlock
        loop = self.loop
        if _get_ident() == loop.thread.ident or not rl.acquire(False):
            return None
        with self.lock:
            self.muted.discard(conn)
            if not conn.muted:
                conn.muted = loop.detach(conn)
            taken = conn.muted
        if not taken:
            rl.release()
            return None
        wake = getattr(self.local, "wake", None)
        if wake is None:
            wake = self.local.wake = _WakePipe()
        poll = wake.poll
        fd = conn.fileno_
        poll.register(fd, select.POLLIN)
        waiter.reader = _get_ident()
        waiter.wake_fd = conn.direct_wake = wake.w
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0)
        client = self.client
        ok = True
        spin_s = _spin.BUDGET_S
        gate = wake.gate
        try:
            while waiter.count > 0:
                left = None
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        ok = False
                        break
                events = None
                if spin_s and (left is None or left > spin_s):
                    events = _spin.poll_first(gate, poll.poll, (), spin_s)
                if not events:
                    events = poll.poll() if left is None else poll.poll(left * 1000.0)
                for efd, _ in events:
                    if efd == fd:
                        loop.read(conn, wake.view)
                        if client._dirty_queues:
                            client._pump_dirty()   # what the loop does after a batch
                    else:
                        wake.drain()
                if conn.close_requested or conn.sock is None:
                    break
        finally:
            poll.unregister(fd)
            waiter.wake_fd = conn.direct_wake = None
            if conn.close_requested and conn.sock is not None:
                loop.close_connection(conn)   # asked for while we read it
            with self.lock:
                if not busy(conn) and conn.sock is not None and not conn.close_requested:
                    self.muted.add(conn)      # the bet: stay muted (rule 2)
                else:
                    loop.attach(conn)
                    conn.muted = False
                rl.release()
        if ok and waiter.count > 0:
            return None   # the connection closed: its handlers settle the call
        if not ok:
            return False
        # Consume the wakeup the waiter's lock holds, as Waiter.wait would have.
        waiter.lock.acquire(False)
        return True

    def hand_back(self):
        """Give every muted connection back to the I/O thread: something else
        relies on it to read their replies (rule 3)."""
        if not self.muted:
            return
        with self.lock:
            conns, self.muted = list(self.muted), set()
            for conn in conns:
                self.loop.attach(conn)
                conn.muted = False

    def pipelined(self, conn):
        """A second call or task is in flight on ``conn``: if it is muted, the
        I/O thread reads it from now on (rule 3)."""
        if conn in self.muted:
            self.hand_back()

    def hand_back_busy(self):
        """The timer's safety net: muted connections now busy or closed go back
        to the loop (rule 4)."""
        if not self.muted:
            return
        with self.lock:
            conns = [c for c in self.muted if c.sock is None or busy(c)]
            self.muted.difference_update(conns)
            for conn in conns:
                self.loop.attach(conn)
                conn.muted = False
