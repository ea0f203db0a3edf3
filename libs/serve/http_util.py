"""HTTP helpers shared by replicas: the Starlette request a deployment sees, and
turning what it returns into ASGI messages.

    request = make_request(scope, body)      # starlette.requests.Request
    await request.json()                     # malformed JSON -> MalformedJSONError (HTTP 400)
"""

import json
import logging

logger = logging.getLogger("minray.serve")

try:  # starlette ships with fastapi; without it deployments get our small Request
    from starlette.requests import Request as _StarletteRequest
    from starlette.responses import Response as StarletteResponse
except ImportError:  # pragma: no cover - exercised only without starlette
    _StarletteRequest = None
    StarletteResponse = None


class MalformedJSONError(json.JSONDecodeError):
    """``await request.json()`` on a body that is not JSON; the proxy answers 400."""


def _decode_json(body):
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise MalformedJSONError(f"Malformed JSON in the request body: {exc.msg}",
                                 exc.doc, exc.pos) from None


class PlainRequest:
    """The parts of Starlette's Request a deployment usually reads (no starlette)."""

    def __init__(self, scope, receive):
        from urllib.parse import parse_qsl
        self.scope = scope
        self._receive = receive
        self._body = None
        self.method = scope["method"]
        self.headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        qs = scope["query_string"].decode("latin-1")
        self.query_params = dict(parse_qsl(qs, keep_blank_values=True))
        self.path_params = {}
        self.url = (f"{scope['scheme']}://{self.headers.get('host', '')}{scope['path']}"
                    + (f"?{qs}" if qs else ""))

    async def body(self):
        if self._body is None:
            message = await self._receive()
            self._body = message.get("body", b"")
        return self._body

    async def json(self):
        return _decode_json(await self.body())


if _StarletteRequest is not None:
    class Request(_StarletteRequest):
        """starlette.requests.Request whose json() fails with MalformedJSONError."""

        async def json(self):
            if not hasattr(self, "_json"):
                self._json = _decode_json(await self.body())
            return self._json
else:  # pragma: no cover - exercised only without starlette
    Request = PlainRequest


def make_receive(body, done):
    """An ASGI receive(): the body once, then http.disconnect when ``done`` fires."""
    sent = False

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}
    return receive


def _json_default(obj):
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    if hasattr(obj, "tolist"):        # numpy arrays and scalars
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "dict"):
        return obj.dict()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable: return "
                    f"str, bytes, a dict/list of plain values or a starlette Response.")


def encode_result(result):
    """(status, headers, body) for a value returned by a deployment's __call__."""
    if isinstance(result, str):
        return 200, [(b"content-type", b"text/plain; charset=utf-8")], result.encode()
    if isinstance(result, (bytes, bytearray, memoryview)):
        return 200, [(b"content-type", b"application/octet-stream")], bytes(result)
    body = json.dumps(result, default=_json_default).encode()
    return 200, [(b"content-type", b"application/json")], body


def is_response(obj):
    return StarletteResponse is not None and isinstance(obj, StarletteResponse)


def text_response(status, text):
    return ("full", status, [(b"content-type", b"text/plain; charset=utf-8")], text.encode())
