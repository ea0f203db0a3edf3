"""Busy-polling before a blocking wait (net/spin.py): the gate as a table, the
budget's parsing, and the shell on a real epoll and socket pair."""

import select
import socket
import threading
import time

import pytest

from minray._private.net import spin
from minray._private.net.spin import MAX_BACKOFF, MAX_MISSES, MIN_BACKOFF, SpinGate


def _run(gate, events):
    """Feed 'h' (hit) / 'm' (miss) events, consulting the gate before each one as
    a waiter does; returns the gate's answers as a string of 'S' (spin) and '.'."""
    out = []
    for e in events:
        if gate.should_spin():
            out.append("S")
            gate.hit() if e == "h" else gate.miss()
        else:
            out.append(".")
    return "".join(out)


@pytest.mark.parametrize("events,expected", [
    ("hhhh", "SSSS"),                                    # answers come fast: always spin
    ("mmh", "SSS"),                                      # two misses do not shut it
    ("mm" + "h" + "mm" + "h", "SSSSSS"),                 # a hit resets the count
    ("mmm" + "h" * MIN_BACKOFF + "h", "SSS" + "." * MIN_BACKOFF + "S"),   # shut, then retried
])
def test_gate_table(events, expected):
    assert _run(SpinGate(), events) == expected


def test_backoff_doubles_while_spins_miss_and_resets_on_a_hit():
    g = SpinGate()
    skipped = []
    for _ in range(5):
        for _ in range(MAX_MISSES):
            assert g.should_spin()
            g.miss()
        n = 0
        while not g.should_spin():
            n += 1
        skipped.append(n)
        g.miss()   # the retry after the backoff misses too
        g.misses = 0
    assert skipped == [MIN_BACKOFF * 2 ** i for i in range(5)]
    g.hit()
    assert g.backoff == MIN_BACKOFF


def test_backoff_is_capped():
    g = SpinGate()
    for _ in range(200):
        for _ in range(MAX_MISSES):
            while not g.should_spin():
                pass
            g.miss()
    assert g.backoff == MAX_BACKOFF
    assert g.skip <= MAX_BACKOFF


@pytest.mark.parametrize("raw,expected", [
    (None, spin.DEFAULT_SPIN_US * 1e-6), ("", spin.DEFAULT_SPIN_US * 1e-6),
    ("0", 0.0), ("1", 1e-6), ("10000", 1e-2),
])
def test_budget_from_the_environment(raw, expected):
    assert spin.spin_budget_s(raw) == pytest.approx(expected)


@pytest.mark.parametrize("raw", ["-1", "10001", "fast", "1.5"])
def test_a_bad_budget_names_the_variable_and_the_range(raw):
    with pytest.raises(ValueError, match=r"MINRAY_SPIN_US must be a whole number .* 0 to 10000"):
        spin.spin_budget_s(raw)


def test_spin_returns_at_once_when_the_answer_is_there():
    a, b = socket.socketpair()
    ep = select.epoll()
    try:
        ep.register(a.fileno(), select.EPOLLIN)
        b.send(b"x")
        events = spin.spin(ep.poll, (1,), 1.0)   # a whole second of budget, unused
        assert events == [(a.fileno(), select.EPOLLIN)]
    finally:
        ep.close(), a.close(), b.close()


def test_spin_gives_up_after_its_budget_when_nothing_comes():
    a, b = socket.socketpair()
    ep = select.epoll()
    try:
        ep.register(a.fileno(), select.EPOLLIN)
        t = time.perf_counter()
        assert not spin.spin(ep.poll, (1,), 0.005)
        assert time.perf_counter() - t >= 0.005
    finally:
        ep.close(), a.close(), b.close()


def test_spin_sees_an_answer_sent_while_it_polls():
    a, b = socket.socketpair()
    p = select.poll()
    p.register(a.fileno(), select.POLLIN)
    started = threading.Event()

    def answer():
        started.wait()
        b.send(b"x")
    t = threading.Thread(target=answer)
    t.start()
    try:
        started.set()
        deadline = time.monotonic() + 10
        events = []
        while not events and time.monotonic() < deadline:
            events = spin.spin(p.poll, (), 0.05)
        assert events and events[0][0] == a.fileno()
    finally:
        t.join()
        a.close(), b.close()
