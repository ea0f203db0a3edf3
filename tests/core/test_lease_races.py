"""Leases under churn: many one-at-a-time tasks never get stuck between lease
requests that the client withdraws and replies that cross them."""
import os
import pickle
import socket
import time

import pytest

import minray as ray


def _noop(x=None):
    return x


def _submit_state():
    """The driver's submit queues, for a failure message: where tasks wait."""
    from minray._private import state
    client = state.require_client()
    lines = []
    with client.lock:
        for q in client.queues.values():
            lines.append(f"queue {q.resources}: {len(q.tasks)} queued, "
                         f"{q.lease_requests} lease requests {sorted(q.lease_req_ids)}")
            for w in q.workers:
                lines.append(f"  worker pid={w.pid} inflight={len(w.inflight)} "
                             f"stealing={w.stealing} returning={w.returning}")
    return "\n".join(lines)


def test_thousands_of_sync_round_trips_never_stall(ray_start_regular):
    f = ray.remote(_noop)
    try:
        ray.get([f.remote() for _ in range(200)], timeout=60)   # leaves lease requests behind
    except ray.exceptions.GetTimeoutError:
        pytest.fail("200 no-op tasks stalled; the submit queues:\n" + _submit_state())
    for i in range(6000):
        assert ray.get(f.remote(i), timeout=20) == i


def test_bursts_then_single_calls(ray_start_regular):
    f = ray.remote(_noop)
    for burst in range(20):
        assert ray.get([f.remote(j) for j in range(50)], timeout=20) == list(range(50))
        for j in range(20):
            assert ray.get(f.remote(j), timeout=20) == j


# ------------------------------------------------ a steal that overtakes its tasks
# A steal travels client -> node manager -> the worker's I/O thread, while the
# tasks and the HELLO naming their submitter travel on the task socket, which
# the worker's main loop reads. Under load the steal can arrive first: before
# the worker knows the new socket (a fresh lease), or while it still maps the
# submitter to the socket of an earlier lease of the same worker (given back).
# The worker then skips the stolen tasks, so the STOLEN answer must still reach
# the submitter on the socket the tasks came on, or they wait forever.

_READERS = {}


def _frames(sock, want_kind, timeout, match=None):
    """Read frames from ``sock`` until one of ``want_kind`` (whose message
    satisfies ``match``) arrives: its message, or None after ``timeout`` s."""
    from minray._ext import frame
    reader = _READERS.setdefault(sock, frame.FrameReader())
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            data = sock.recv(1 << 16)
        except socket.timeout:
            return None
        if not data:
            return None
        for kind, payload in reader.feed(data):
            msg = pickle.loads(payload)
            if kind == want_kind and (match is None or match(msg)):
                return msg


def _steal_answered(client, worker_id, probe, probe_id):
    """Steal a never-sent task for ``probe_id``: True once its STOLEN came back on
    ``probe`` (every steal pushed before it has been handled by the worker)."""
    from minray._private.core import ids
    from minray._private.net import protocol as P
    tid = ids.new_task_id()
    client.notice("steal_tasks", worker_id, [tid], probe_id)
    return _frames(probe, P.STOLEN, 2.0, lambda m: m[0] == [tid]) is not None


@pytest.mark.parametrize("earlier_lease", [False, True], ids=["fresh", "re-leased"])
def test_steal_before_hello_still_answered(ray_start_regular, earlier_lease):
    from minray._private import state
    from minray._private.client.records import _EMPTY_ARGS
    from minray._private.core import ids
    from minray._private.net import protocol as P
    from minray._private.net import transport

    client = state.require_client()
    f = ray.remote(_noop)
    assert ray.get(f.remote(1)) == 1
    q = next(iter(client.queues.values()))
    worker_id, address, _, _ = client.call("request_lease", q.resources, q.pg, q.env_key,
                                           q.env_vars, ())
    socks = []

    def connect(client_id):
        s = transport.connect(address)
        socks.append(s)
        s.sendall(transport.encode_msg(P.HELLO, (client_id,)))
        return s

    try:
        # A probe socket under another submitter id: a steal answered on it proves
        # the steals pushed before it were handled.
        probe_id = b"probe" + os.urandom(11)
        probe = connect(probe_id)
        deadline = time.monotonic() + 30
        while not _steal_answered(client, worker_id, probe, probe_id):
            assert time.monotonic() < deadline, "the worker never read the probe's HELLO"
        if earlier_lease:
            # An earlier lease of this worker: its socket names us, then closes.
            old = connect(client.client_id)
            while not _steal_answered(client, worker_id, old, client.client_id):
                assert time.monotonic() < deadline, "the worker never read the HELLO"
            old.close()
        tid = ids.new_task_id()
        client.notice("steal_tasks", worker_id, [tid], client.client_id)
        assert _steal_answered(client, worker_id, probe, probe_id)   # the steal was handled
        # Now the task socket: HELLO, then the task that was stolen before it arrived.
        s = transport.connect(address)
        socks.append(s)
        wire = (None, {}, False, None, 0, None, False)
        s.sendall(transport.encode_msg(P.HELLO, (client.client_id,)) +
                  transport.encode_msg(P.TASK, (tid, os.urandom(16), None, _EMPTY_ARGS, [],
                                                1, wire, ())))
        msg = _frames(s, P.STOLEN, 10.0)   # (before the fix: nothing, ever)
        assert msg is not None, "the stolen task was skipped and never given back"
        assert msg[0] == [tid]
    finally:
        for s in socks:
            s.close()
        client.notice("return_lease", worker_id, False)
