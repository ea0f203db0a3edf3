"""Fixtures for the Serve tests: a runtime and Serve on a free loopback port per module."""
import socket

import pytest
import requests

import minray
from minray import serve


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


@pytest.fixture(scope="module")
def serve_client():
    if minray.is_initialized():
        minray.shutdown()
    minray.init(num_cpus=4)
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    yield Client(port)
    serve.shutdown()
    minray.shutdown()
