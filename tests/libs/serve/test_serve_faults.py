"""Replica failures, health checks, backpressure, autoscaling and draining, over HTTP."""
import asyncio
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import List

import requests

from minray import serve

from helpers import wait_for_path, wait_until


@dataclass
class Load:
    """``clients`` threads sending GETs to ``url`` until stop() (or ``max_s`` passes)."""
    url: str
    clients: int
    max_s: float = 60.0
    results: List = field(default_factory=list)     # (status, text)

    def __post_init__(self):
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True)
                         for _ in range(self.clients)]
        for t in self._threads:
            t.start()

    def _run(self):
        deadline = time.monotonic() + self.max_s
        with requests.Session() as s:
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    r = s.get(self.url, timeout=30)
                    self.results.append((r.status_code, r.text))
                except requests.RequestException as exc:
                    self.results.append((None, repr(exc)))

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)

    def pids(self, start=0):
        return {int(text) for status, text in self.results[start:] if status == 200}


@serve.deployment(num_replicas=2, ray_actor_options={"num_cpus": 0.5})
class Pid:
    async def __call__(self, request):
        await asyncio.sleep(0.005)
        return str(os.getpid())


def test_sigkilled_replica_fails_over_and_is_replaced(serve_client):
    serve.run(Pid.bind(), name="pid", route_prefix="/pid")
    load = Load(serve_client.url + "/pid", clients=6)
    try:
        assert wait_until(lambda: len(load.pids()) == 2, timeout=30)
        before = load.pids()
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        mark = len(load.results)
        # The controller notices, starts a replacement; traffic keeps flowing.
        assert wait_until(lambda: len(load.pids(mark) - before) >= 1, timeout=30)
        assert wait_until(lambda: serve.status().applications["pid"].deployments["Pid"]
                          .replica_states == {"RUNNING": 2}, timeout=30)
        served_after = len(load.results)
        assert wait_until(lambda: len(load.results) > served_after + 50, timeout=30)
    finally:
        load.stop()
    failures = [r for r in load.results if r[0] != 200]
    assert failures == []                      # every request was answered: failover
    tail = load.pids(served_after)
    assert victim not in tail and len(tail) == 2
    serve.delete("pid")


@serve.deployment(health_check_period_s=0.3, health_check_timeout_s=5,
                  ray_actor_options={"num_cpus": 0.5})
class Fragile:
    def __init__(self):
        self.broken = False

    def break_me(self):
        self.broken = True
        return os.getpid()

    def check_health(self):
        if self.broken:
            raise RuntimeError("the model lost its weights")

    def __call__(self, request):
        return str(os.getpid())


def test_failed_health_check_replaces_the_replica(serve_client):
    handle = serve.run(Fragile.bind(), name="fragile", route_prefix="/fragile")
    old_pid = handle.break_me.remote().result(timeout_s=30)

    def new_pid_serves():
        r = serve_client.get("/fragile")
        return r.status_code == 200 and int(r.text) != old_pid
    assert wait_until(new_pid_serves, timeout=30, interval=0.1)
    assert wait_until(lambda: serve.status().applications["fragile"]
                      .deployments["Fragile"].replica_states == {"RUNNING": 1}, timeout=30)
    serve.delete("fragile")


@serve.deployment(max_ongoing_requests=1, max_queued_requests=1,
                  ray_actor_options={"num_cpus": 0.5})
class Gated:
    """Answers only once the test creates the gate file: nothing completes before then."""

    def __init__(self, gate):
        self.gate = gate

    async def __call__(self, request):
        if request.query_params.get("probe"):
            return "ready"
        while not os.path.exists(self.gate):
            await asyncio.sleep(0.01)
        return "done"


def test_backpressure_answers_503_at_once(serve_client, tmp_path):
    gate = str(tmp_path / "gate")
    serve.run(Gated.bind(gate), name="slow", route_prefix="/slow")
    # The proxy has the replica in its routing table once a probe gets through; before
    # that, requests would wait in the queue for a replica rather than run.
    assert requests.get(serve_client.url + "/slow?probe=1", timeout=60).text == "ready"
    answers = []
    lock = threading.Lock()

    def one():
        r = requests.get(serve_client.url + "/slow", timeout=60)
        with lock:
            answers.append((r.status_code, r.text, os.path.exists(gate)))
    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    # One request runs and one waits in the queue; the other four are refused while the
    # running one is still blocked on the gate: refused at once, not after capacity frees.
    assert wait_until(lambda: len(answers) >= 4, timeout=60, interval=0.02)
    open(gate, "w").close()
    for t in threads:
        t.join(timeout=60)
    ok = [a for a in answers if a[0] == 200]
    busy = [a for a in answers if a[0] == 503]
    assert len(ok) == 2 and len(busy) == 4, [(code, opened) for code, _, opened in answers]
    for _, text, gate_was_open in busy:
        assert "max_queued_requests=1" in text and "at capacity" in text
        assert not gate_was_open
    serve.delete("slow")


@serve.deployment(
    autoscaling_config={"min_replicas": 1, "max_replicas": 3, "target_ongoing_requests": 1,
                        "upscale_delay_s": 0.3, "downscale_delay_s": 1.0,
                        "look_back_period_s": 0.5},
    max_ongoing_requests=4, ray_actor_options={"num_cpus": 0.5})
class Elastic:
    async def __call__(self, request):
        await asyncio.sleep(0.1)
        return str(os.getpid())


def test_autoscaling_up_under_load_and_down_after(serve_client):
    serve.run(Elastic.bind(), name="elastic", route_prefix="/elastic")

    def running():
        return serve.status().applications["elastic"].deployments["Elastic"] \
            .replica_states.get("RUNNING", 0)
    assert running() == 1
    load = Load(serve_client.url + "/elastic", clients=6, max_s=40)
    try:
        assert wait_until(lambda: running() == 3, timeout=30, interval=0.1)
        mark = len(load.results)
        assert wait_until(lambda: len(load.pids(mark)) == 3, timeout=15)
    finally:
        load.stop()
    assert all(status == 200 for status, _ in load.results)
    assert wait_until(lambda: running() == 1 and serve.status().applications["elastic"]
                      .deployments["Elastic"].replica_states == {"RUNNING": 1},
                      timeout=30, interval=0.1)
    serve.delete("elastic")


@serve.deployment(graceful_shutdown_timeout_s=10, ray_actor_options={"num_cpus": 0.5})
class LongRequest:
    def __init__(self, marker):
        self.marker = marker

    async def __call__(self, request):
        open(self.marker, "w").close()       # the request is in the replica
        await asyncio.sleep(1.5)
        return "finished"


def test_delete_drains_in_flight_requests(serve_client, tmp_path):
    marker = str(tmp_path / "started")
    serve.run(LongRequest.bind(marker), name="long", route_prefix="/long")
    answer = []
    t = threading.Thread(target=lambda: answer.append(
        requests.get(serve_client.url + "/long", timeout=30)))
    t.start()
    wait_for_path(marker)
    t0 = time.monotonic()
    serve.delete("long")
    assert time.monotonic() - t0 >= 0.5      # delete waited for the request (1.5 s)
    t.join(timeout=30)
    assert answer and answer[0].status_code == 200 and answer[0].text == "finished"
    assert serve_client.get("/long").status_code == 404
