"""Requests over real HTTP on loopback, and the same deployments through handles."""
import asyncio
import json
import os

import numpy as np
import pytest
from fastapi import FastAPI
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse

import minray
from minray import serve
from minray.serve.handle import DeploymentResponse

from helpers import wait_until


@serve.deployment
class Echo:
    async def __call__(self, request):
        if request.method == "POST":
            return {"json": await request.json(), "ctype": request.headers["content-type"]}
        return {"path": request.url.path, "q": dict(request.query_params),
                "method": request.method}


@serve.deployment
def plain_text(request):
    return "hi " + request.query_params.get("who", "you")


@serve.deployment
def raw_bytes(request):
    return b"\x00\x01binary"


@serve.deployment
class Responses:
    def __call__(self, request):
        kind = request.query_params["kind"]
        if kind == "json":
            return JSONResponse({"ok": True}, status_code=201, headers={"x-custom": "1"})
        return PlainTextResponse("teapot", status_code=418)


@serve.deployment
class BodyEcho:
    async def __call__(self, request):
        return await request.body()


@serve.deployment
class Faulty:
    def __call__(self, request):
        raise ValueError("user code exploded on purpose")

    def method(self, x):
        raise KeyError(f"no such key {x}")


def test_routes_and_return_types(serve_client):
    serve.run(Echo.bind(), name="echo", route_prefix="/echo")
    serve.run(plain_text.bind(), name="text", route_prefix="/text")
    serve.run(raw_bytes.bind(), name="bytes", route_prefix="/bytes")
    serve.run(Responses.bind(), name="resp", route_prefix="/resp")

    r = serve_client.get("/echo/sub/path", params={"a": "1", "b": "x"})
    assert r.status_code == 200
    assert r.json() == {"path": "/echo/sub/path", "q": {"a": "1", "b": "x"}, "method": "GET"}
    r = serve_client.post("/echo", json={"n": [1, 2]})
    assert r.json() == {"json": {"n": [1, 2]}, "ctype": "application/json"}

    r = serve_client.get("/text", params={"who": "ann"})
    assert (r.status_code, r.text) == (200, "hi ann")
    assert r.headers["content-type"].startswith("text/plain")
    assert serve_client.get("/bytes").content == b"\x00\x01binary"

    r = serve_client.get("/resp", params={"kind": "json"})
    assert (r.status_code, r.json(), r.headers["x-custom"]) == (201, {"ok": True}, "1")
    r = serve_client.get("/resp", params={"kind": "text"})
    assert (r.status_code, r.text) == (418, "teapot")

    (proxy,) = serve.status().proxies.values()
    assert (proxy.status, proxy.port) == ("HEALTHY", serve_client.port)
    routes = serve_client.get("/-/routes").json()
    assert routes["/echo"] == "echo" and routes["/text"] == "text"
    for name in ("echo", "text", "bytes", "resp"):
        serve.delete(name)
    assert serve_client.get("/echo").status_code == 404


def test_large_bodies_cross_the_replica_socket_intact(serve_client):
    """A body far larger than one socket read is framed whole, both ways, and the
    multiplexed stream stays in step for the small requests around it."""
    serve.run(BodyEcho.bind(), name="body", route_prefix="/body")
    big = os.urandom(900 << 10)       # several socket reads; under the 1 MiB body limit
    assert serve_client.post("/body", data=b"before").content == b"before"
    r = serve_client.post("/body", data=big)
    assert r.status_code == 200 and r.content == big
    assert serve_client.post("/body", data=b"after").content == b"after"
    serve.delete("body")


def test_bad_input_and_errors(serve_client):
    serve.run(Echo.bind(), name="echo2", route_prefix="/echo2")
    handle = serve.run(Faulty.bind(), name="faulty", route_prefix="/faulty")

    r = serve_client.post("/echo2", data=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert "Malformed JSON" in r.text

    r = serve_client.get("/nowhere/at/all")
    assert r.status_code == 404
    assert "/nowhere/at/all" in r.text and "not found" in r.text

    r = serve_client.get("/faulty")
    assert r.status_code == 500
    assert "ValueError: user code exploded on purpose" in r.text
    assert "Traceback" in r.text

    # Through a handle the caller gets the user's exception type, with the
    # replica's traceback in its message.
    with pytest.raises(KeyError) as info:
        handle.method.remote(7).result(timeout_s=30)
    assert "no such key 7" in str(info.value)
    assert "Traceback" in str(info.value)
    # Serve keeps serving after errors.
    assert serve_client.post("/echo2", json=[1]).json()["json"] == [1]
    serve.delete("echo2")
    serve.delete("faulty")


@serve.deployment
class Predictor:
    """Book ch. 10's serving half: JSON records in, numpy-valued records out."""

    def __init__(self, weights):
        self.weights = np.asarray(weights)

    async def __call__(self, request):
        records = await request.json()
        x = np.array([[r["a"], r["b"]] for r in records], dtype=np.float32)
        scores = x @ self.weights
        return [{"id": r["id"], "prediction": np.int64(s > 0), "score": s}
                for r, s in zip(records, scores)]


def test_json_records_with_numpy_values(serve_client):
    serve.run(Predictor.bind([1.0, -1.0]), name="predict", route_prefix="/predict")
    r = serve_client.post("/predict", json=[{"id": 1, "a": 2.0, "b": 0.5},
                                            {"id": 2, "a": 0.0, "b": 3.0}])
    assert r.status_code == 200
    assert r.json() == [{"id": 1, "prediction": 1, "score": 1.5},
                        {"id": 2, "prediction": 0, "score": -3.0}]
    serve.delete("predict")


# ----------------------------------------------------------------- composition
@serve.deployment
class Adder:
    def __init__(self, inc):
        self.inc = inc

    def __call__(self, x):
        return x + self.inc

    def pid(self):
        return os.getpid()


@serve.deployment
class Combiner:
    def __init__(self, first, second):
        self.first, self.second = first, second

    async def __call__(self, request):
        x = int(request.query_params["x"])
        # second's argument is first's unawaited response: resolved before second runs
        return {"result": await self.second.remote(self.first.remote(x))}

    async def both(self, x):
        a, b = self.first.remote(x), self.second.remote(x)
        return [await a, await b]


def test_composition_over_http_and_handles(serve_client):
    first = Adder.options(name="First").bind(1)
    second = Adder.options(name="Second").bind(10)
    handle = serve.run(Combiner.bind(first, second), name="combo", route_prefix="/combo")
    assert serve_client.get("/combo", params={"x": 5}).json() == {"result": 16}
    assert handle.both.remote(1).result(timeout_s=30) == [2, 11]

    # A response passed on from the driver, and awaited in the driver's own loop.
    first_h = serve.get_deployment_handle("First", "combo")
    second_h = serve.get_deployment_handle("Second", "combo")
    resp = first_h.remote(100)
    assert isinstance(resp, DeploymentResponse)
    assert second_h.remote(resp).result(timeout_s=30) == 111

    async def in_loop():
        return await asyncio.gather(*[first_h.remote(i) for i in range(5)])
    assert asyncio.run(in_loop()) == [1, 2, 3, 4, 5]
    assert serve.get_app_handle("combo").both.remote(0).result(timeout_s=30) == [1, 10]
    with pytest.raises(KeyError, match="nope"):
        serve.get_app_handle("nope")
    serve.delete("combo")


# ----------------------------------------------------------------- streaming, batching
@serve.deployment
class Streamer:
    def __call__(self, request):
        n = int(request.query_params["n"])

        async def gen():
            for i in range(n):
                yield f"chunk{i};"
                await asyncio.sleep(0.01)
        return StreamingResponse(gen(), media_type="text/plain")

    async def numbers(self, n):
        for i in range(n):
            yield i * i
            await asyncio.sleep(0)


def test_streaming_over_http_and_handle(serve_client):
    handle = serve.run(Streamer.bind(), name="stream", route_prefix="/stream")
    with serve_client.get("/stream", params={"n": 5}, stream=True) as r:
        assert r.status_code == 200
        chunks = [c.decode() for c in r.iter_content(chunk_size=None) if c]
    assert "".join(chunks) == "".join(f"chunk{i};" for i in range(5))
    assert len(chunks) > 1   # several writes, not one buffered body

    gen = handle.options(stream=True).numbers.remote(6)
    assert list(gen) == [0, 1, 4, 9, 16, 25]
    serve.delete("stream")


@serve.deployment(max_ongoing_requests=20)
class Batcher:
    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.2)
    async def double(self, xs):
        return [(x * 2, len(xs)) for x in xs]

    async def __call__(self, x):
        return await self.double(x)


def test_batching_groups_concurrent_calls(serve_client):
    handle = serve.run(Batcher.bind(), name="batch", route_prefix=None)
    responses = [handle.remote(i) for i in range(16)]
    answers = [r.result(timeout_s=30) for r in responses]
    assert [a[0] for a in answers] == [2 * i for i in range(16)]
    sizes = [a[1] for a in answers]
    assert max(sizes) > 1 and all(s <= 8 for s in sizes)
    assert handle.remote(21).result(timeout_s=30) == (42, 1)
    serve.delete("batch")


# ----------------------------------------------------------------- FastAPI, user_config
api = FastAPI()


@serve.deployment
@serve.ingress(api)
class Api:
    def __init__(self, greeting):
        self.greeting = greeting

    @api.get("/hello/{name}")
    def hello(self, name: str, times: int = 1) -> dict:
        return {"msg": " ".join([f"{self.greeting} {name}"] * times)}

    @api.post("/items")
    async def create(self, item: dict) -> dict:
        return {"stored": item, "ctx": serve.get_replica_context().deployment}


def test_fastapi_ingress(serve_client):
    serve.run(Api.bind("hey"), name="api", route_prefix="/api")
    r = serve_client.get("/api/hello/bob", params={"times": 2})
    assert r.json() == {"msg": "hey bob hey bob"}
    assert serve_client.get("/api/hello/bob", params={"times": "x"}).status_code == 422
    r = serve_client.post("/api/items", json={"a": 1})
    assert r.json() == {"stored": {"a": 1}, "ctx": "Api"}
    r = serve_client.post("/api/items", data=b"{oops", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "json" in r.text.lower()
    assert serve_client.get("/api/missing").status_code == 404
    serve.delete("api")


@serve.deployment(user_config={"factor": 2})
class Scaled:
    def __init__(self):
        self.factor = None
        self.reconfigured = 0

    def reconfigure(self, config):
        self.factor = config["factor"]
        self.reconfigured += 1

    def __call__(self, x):
        return {"value": x * self.factor, "pid": os.getpid(), "n": self.reconfigured}


@serve.deployment
class ScaledV2(Scaled.func_or_class):
    def __call__(self, x):
        return {"value": -x * self.factor, "pid": os.getpid(), "n": self.reconfigured}


def test_user_config_in_place_and_rolling_code_update(serve_client):
    handle = serve.run(Scaled.bind(), name="cfg", route_prefix="/cfg")
    first = handle.remote(3).result(timeout_s=30)
    assert first["value"] == 6 and first["n"] == 1

    # Only user_config changes: reconfigure() in the same process.
    handle = serve.run(Scaled.options(user_config={"factor": 5}).bind(), name="cfg",
                       route_prefix="/cfg")
    second = handle.remote(3).result(timeout_s=30)
    assert (second["value"], second["pid"], second["n"]) == (15, first["pid"], 2)

    # New code: a new replica serves, the old one is gone once the app is RUNNING.
    handle = serve.run(ScaledV2.options(name="Scaled", user_config={"factor": 5}).bind(),
                       name="cfg", route_prefix="/cfg")
    third = handle.remote(3).result(timeout_s=30)
    assert third["value"] == -15 and third["pid"] != first["pid"]
    # The old replica drains and stops shortly after.
    assert wait_until(lambda: serve.status().applications["cfg"].deployments["Scaled"]
                      .replica_states == {"RUNNING": 1}, timeout=30)
    serve.delete("cfg")


def test_http_as_an_actor_call_for_proxies_on_other_nodes(serve_client):
    """A proxy reaches a replica on another node by actor call instead of its socket."""
    serve.run(Responses.bind(), name="frames", route_prefix="/frames")
    controller = minray.get_actor("SERVE_CONTROLLER_ACTOR", namespace="serve")
    _, route = minray.get(controller.get_replicas.remote("frames", "Responses"))
    (entry,) = route.replicas
    assert entry.node_id == minray.get_runtime_context().get_node_id()
    scope = {"type": "http", "method": "GET", "path": "/frames", "raw_path": b"/frames",
             "query_string": b"kind=json", "root_path": "/frames", "headers": [],
             "scheme": "http", "server": ("127.0.0.1", 80), "client": None,
             "http_version": "1.1", "asgi": {"version": "3.0"}}
    frames = minray.get(entry.actor.handle_http_frames.remote(scope, b""))
    assert frames[0][1:3] == ("start", 201)
    assert b"".join(f[2] for f in frames[1:]) == b'{"ok":true}'
    serve.delete("frames")


@serve.deployment
class Models:
    def __init__(self):
        self.loads = []

    @serve.multiplexed(max_num_models_per_replica=2)
    async def get_model(self, model_id):
        self.loads.append(model_id)
        return f"model-{model_id}"

    async def __call__(self, request=None):
        model = await self.get_model(serve.get_multiplexed_model_id())
        return {"model": model, "loads": list(self.loads)}


def test_multiplexed_models_are_cached_per_replica(serve_client):
    handle = serve.run(Models.bind(), name="models", route_prefix="/models")
    answers = [handle.options(multiplexed_model_id=m).remote().result(timeout_s=30)
               for m in ("a", "b", "a", "c", "a", "b")]
    assert [a["model"] for a in answers] == ["model-a", "model-b", "model-a", "model-c",
                                             "model-a", "model-b"]
    # LRU of two: "c" evicts "b" (a was used more recently), so "b" loads again.
    assert answers[-1]["loads"] == ["a", "b", "c", "b"]
    r = serve_client.get("/models", headers={"serve_multiplexed_model_id": "b"})
    assert r.json() == {"model": "model-b", "loads": ["a", "b", "c", "b"]}
    serve.delete("models")


@serve.deployment(ray_actor_options={"num_cpus": 0})
class Broken:
    def __init__(self):
        raise RuntimeError("weights file is missing")


def test_constructor_failure_fails_the_deploy_with_the_cause(serve_client):
    with pytest.raises(RuntimeError, match="weights file is missing") as info:
        serve.run(Broken.bind(), name="broken", route_prefix="/broken")
    assert "DEPLOY_FAILED" in str(info.value) or "failed 3 times" in str(info.value)
    app = serve.status().applications["broken"]
    assert app.status == "DEPLOY_FAILED"
    assert "weights file is missing" in app.message
    serve.delete("broken")
    assert "broken" not in serve.status().applications


def test_pipelined_raw_requests_through_the_proxy(serve_client):
    """Three requests in one packet on one keep-alive socket, answered in order by the
    proxy's own HTTP/1.1 server; then Connection: close ends the socket."""
    import socket
    from test_http1 import Reader
    serve.run(Echo.bind(), name="raw", route_prefix="/raw")
    with socket.create_connection(("127.0.0.1", serve_client.port), timeout=30) as sock:
        r = Reader(sock)
        sock.sendall(b"GET /raw/a?q=1 HTTP/1.1\r\nHost: h\r\n\r\n"
                     b"GET /-/healthz HTTP/1.1\r\nHost: h\r\n\r\n"
                     b"POST /raw HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n3\r\n[7]\r\n0\r\n\r\n")
        status, _, body = r.response()
        assert status == 200 and json.loads(body) == {"path": "/raw/a", "q": {"q": "1"},
                                                       "method": "GET"}
        assert r.response()[2] == b"success"
        assert json.loads(r.response()[2])["json"] == [7]
        sock.sendall(b"GET /nowhere HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        status, headers, _ = r.response()
        assert status == 404 and headers["connection"] == "close" and r.closed()
    serve.delete("raw")
