"""Fixtures for the Serve tests: a runtime and Serve on a free loopback port per module."""
import socket

import psutil
import pytest
import requests

import minray
from minray import serve

from helpers import wait_until


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """requests against this module's Serve proxy: ``client.get("/path")``."""

    def __init__(self, port):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def get(self, path, **kw):
        kw.setdefault("timeout", 30)
        return requests.get(self.url + path, **kw)

    def post(self, path, **kw):
        kw.setdefault("timeout", 30)
        return requests.post(self.url + path, **kw)


def _children():
    return {p.pid for p in psutil.Process().children(recursive=True)}


@pytest.fixture(scope="module")
def serve_client():
    """A runtime with Serve on a free port; fails if a process outlives the module."""
    if minray.is_initialized():
        minray.shutdown()
    before = _children()
    minray.init(num_cpus=4)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    yield Client(port)
    serve.shutdown()
    minray.shutdown()
    leaked = wait_until(lambda: not (_children() - before), timeout=10) or \
        (_children() - before)
    assert leaked is True, f"processes left behind after shutdown: {leaked}"
