"""Bounded busy-polling before a blocking wait.

A synchronous call (``ray.get(actor.f.remote())`` in a loop) is a ping-pong
between two processes: each side sends, then sleeps until the other answers.
On a virtual machine whose idle vCPUs halt, every such sleep ends with a
wakeup that goes through the hypervisor (tens of microseconds), and two of
them per call cost more than the call itself. So before it blocks, a waiter
that expects an answer soon first polls without blocking for a short budget
(``MINRAY_SPIN_US``, 50 us by default; 0 turns it off), yielding the CPU
between polls (``sched_yield``), so that a busy box loses nothing: any other
runnable thread goes first.

Whether to spin is a decision with no I/O: :class:`SpinGate`. A spin that sees
the answer is a hit; one that runs out of budget is a miss. After
``MAX_MISSES`` misses in a row the gate stays shut for ``backoff`` waits, and
the backoff doubles (up to ``MAX_BACKOFF``) until a spin hits again. So a
process whose answers come late (long tasks, an idle node, a stream of events
further apart than the budget) stops spinning after three waits and retries
rarely: the CPU it can waste is bounded by the budget times one wait in
``backoff``.

>>> g = SpinGate()
>>> [g.should_spin() for _ in range(2)]
[True, True]
>>> for _ in range(MAX_MISSES):
...     g.miss()
>>> [g.should_spin() for _ in range(MIN_BACKOFF)].count(False) == MIN_BACKOFF
True
>>> g.should_spin()
True
"""

import os
import time

MAX_MISSES = 3          # misses in a row that shut the gate
MIN_BACKOFF = 8         # waits the gate stays shut after the first run of misses
MAX_BACKOFF = 1024      # ... doubling up to this while spins keep missing
DEFAULT_SPIN_US = 50


def spin_budget_s(raw):
    """The spin budget in seconds from ``MINRAY_SPIN_US`` (``None``: the default).

    >>> spin_budget_s(None), spin_budget_s("0"), spin_budget_s("20")
    (5e-05, 0.0, 2e-05)
    """
    if raw is None or raw == "":
        return DEFAULT_SPIN_US / 1e6
    try:
        us = int(raw)
    except ValueError:
        us = -1
    if not 0 <= us <= 10_000:
        raise ValueError(f"MINRAY_SPIN_US must be a whole number of microseconds from 0 "
                         f"to 10000 (0 turns busy-polling off), got {raw!r}.")
    return us / 1e6


BUDGET_S = spin_budget_s(os.environ.get("MINRAY_SPIN_US"))


class SpinGate:
    """Whether the next wait spins first (one per waiting thread or loop)."""

    __slots__ = ("misses", "skip", "backoff")

    def __init__(self):
        self.misses = 0        # misses in a row
        self.skip = 0          # waits left with the gate shut
        self.backoff = MIN_BACKOFF

    def should_spin(self):
        if self.skip:
            self.skip -= 1
            return False
        return True

    def hit(self):
        """The spin saw the answer: keep spinning."""
        self.misses = 0
        self.backoff = MIN_BACKOFF

    def miss(self):
        """The spin ran out of budget (the wait then blocked)."""
        self.misses += 1
        if self.misses >= MAX_MISSES:
            self.misses = 0
            self.skip = self.backoff
            self.backoff = min(self.backoff * 2, MAX_BACKOFF)

    def __repr__(self):
        return f"SpinGate(misses={self.misses}, skip={self.skip}, backoff={self.backoff})"


_now = time.perf_counter
_yield = getattr(os, "sched_yield", lambda: time.sleep(0))


def poll_first(gate, poll, arg, budget_s):
    """What every waiter does before it blocks: spin (``spin``) if ``gate`` allows,
    and tell the gate whether the spin saw an answer. Returns the events seen, or
    a falsy value: then block."""
    if not gate.should_spin():
        return None
    events = spin(poll, arg, budget_s)
    if events:
        gate.hit()
    else:
        gate.miss()
    return events


def spin(poll, arg, budget_s):
    """Call ``poll(0, *arg)`` until it returns something or ``budget_s`` passes,
    yielding the CPU between calls. Returns the last result (falsy: nothing
    came). The shell around SpinGate; ``poll`` is ``epoll.poll`` or
    ``select.poll().poll``."""
    events = poll(0, *arg)
    if events:
        return events
    end = _now() + budget_s
    while True:
        _yield()
        events = poll(0, *arg)
        if events or _now() >= end:
            return events
