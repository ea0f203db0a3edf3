"""pytest-benchmark cases for Serve: one HTTP request through the proxy, one handle call.

    pytest bench/test_bench_serve.py --benchmark-only

Side-by-side figures against Ray Serve and plain aiohttp come from
``python -m bench.serve_compare``; these track minray against its own history.
"""
import socket

import pytest
import requests

import minray as ray
from minray import serve


@serve.deployment(max_ongoing_requests=64)
class NoOp:
    async def __call__(self, request):
        return "ok"

    async def call(self, x):
        return x


@pytest.fixture(scope="module")
def served():
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    handle = serve.run(NoOp.bind(), name="bench", route_prefix="/")
    yield f"http://127.0.0.1:{port}/", handle
    serve.shutdown()
    ray.shutdown()


def test_serve_http_noop_request(benchmark, served):
    url, _ = served
    with requests.Session() as session:
        assert session.get(url).text == "ok"
        benchmark(lambda: session.get(url))


def test_serve_handle_noop_call(benchmark, served):
    _, handle = served
    assert handle.call.remote(1).result(timeout_s=30) == 1
    benchmark(lambda: handle.call.remote(1).result(timeout_s=30))
