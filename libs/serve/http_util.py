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


class Receive:
    """An ASGI receive(): the body once, then http.disconnect once ``close()`` is called.

    The event behind the wait is made only if someone waits (most requests never do).

        receive = Receive(b"{}")
        await receive()        # {"type": "http.request", "body": b"{}", "more_body": False}
    """
    __slots__ = ("_body", "_event", "_closed")

    def __init__(self, body):
        self._body = body
        self._event = None
        self._closed = False

    async def __call__(self):
        body = self._body
        if body is not None:
            self._body = None
            return {"type": "http.request", "body": body, "more_body": False}
        if not self._closed:
            if self._event is None:
                import asyncio
                self._event = asyncio.Event()
            await self._event.wait()
        return {"type": "http.disconnect"}

    def close(self):
        """The response is complete: later calls (and waiting ones) get http.disconnect."""
        self._closed = True
        if self._event is not None:
            self._event.set()


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


_TEXT = [("Content-Type", "text/plain; charset=utf-8")]
_OCTETS = [("Content-Type", "application/octet-stream")]
_JSON = [("Content-Type", "application/json")]


def encode_result(result):
    """(status, headers, body) for a value returned by a deployment's __call__.

    headers are str pairs, as the "full" frame carries them (wire.py); the
    lists are shared constants, never to be mutated.
    """
    if isinstance(result, str):
        return 200, _TEXT, result.encode()
    if isinstance(result, (bytes, bytearray, memoryview)):
        return 200, _OCTETS, bytes(result)
    body = json.dumps(result, default=_json_default).encode()
    return 200, _JSON, body


def is_response(obj):
    return StarletteResponse is not None and isinstance(obj, StarletteResponse)


def text_response(status, text):
    """The tail of a "full" frame (wire.py) answering ``text``."""
    return ("full", status, _TEXT, text.encode())


def build_scope(request):
    """The ASGI HTTP scope of a request as the proxy frames it (wire.py).

    >>> build_scope(("GET", "/a/b", b"x=1", "/a", ((b"Host", b"h"),), ("127.0.0.1", 5),
    ...              "1.1", ("127.0.0.1", 8000), b""))["headers"]
    [(b'host', b'h')]
    """
    method, path, query_string, root, raw_headers, peer, http_version, server, _ = request
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": http_version,
        "method": method, "scheme": "http", "path": path,
        "raw_path": path.encode(), "query_string": query_string, "root_path": root,
        "headers": [(k.lower(), v) for k, v in raw_headers],
        "client": tuple(peer[:2]) if peer else None, "server": server,
    }
