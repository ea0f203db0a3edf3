"""The dashboard: a few JSON endpoints and plain HTML/JS pages on the head's HTTP service.

    browser --GET /--> index.html + app.js (dashboard_static/, no build step); the page
        polls the JSON endpoints below every 2 s and redraws its tables
    GET /api/v0/{nodes,actors,tasks,objects,jobs,placement_groups,workers}
        --> state_query on the head's node manager (a thread runs the blocking call)
        --> Ray's dashboard shape {"result": true, "msg": "", "data": {"result": {...}}}
    GET /api/v0/tasks/summarize, /api/v0/actors/summarize, /api/v0/cluster_status,
        /api/v0/libraries (what Serve, Tune ... published with
        minray.util.state.report_library_state), /api/v0/timeline
    GET /metrics --> Prometheus text (runtime counters and minray.util.metrics)

job_server.py mounts these routes (add_routes). Reads need no token while the
server listens on loopback (as Ray's dashboard); on another address they need the
cluster token, as a bearer header or once as ``/?token=...`` (kept in a cookie).
"""

import asyncio
import hmac
import ipaddress
import json
import os

from minray._private.observability import metrics_store, state_service

STATIC_DIR = os.path.join(os.path.dirname(__file__), "dashboard_static")
RESOURCES = ("nodes", "actors", "tasks", "objects", "jobs", "placement_groups", "workers")
STATIC_FILES = {"app.js": "application/javascript", "style.css": "text/css"}
COOKIE = "minray_dashboard_token"


def is_loopback(host):
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_dashboard_read(request):
    """A GET of a dashboard page or read-only endpoint."""
    path = request.path
    return request.method == "GET" and (
        path in ("/", "/metrics", "/index.html") or path.startswith("/static/")
        or path.startswith("/api/v0/"))


def cookie_token_ok(request, token_bytes):
    given = request.cookies.get(COOKIE) or request.query.get("token") or ""
    return bool(given) and hmac.compare_digest(given.encode(), token_bytes)


class StateReader:
    """Runs state queries against the head's node manager off the event loop."""

    def __init__(self, session_dir):
        self.session_dir = session_dir

    def _query(self, resource, options):
        from minray.util.state._client import SessionClient
        client = SessionClient(self.session_dir, timeout=10)
        try:
            return client.query(resource, options)
        finally:
            client.close()

    async def query(self, resource, options=None):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self._query, resource, options or {})


def _options(request):
    q = request.query
    try:
        limit = int(q.get("limit", "100"))
    except ValueError:
        raise ValueError(f"limit must be an int, got {q.get('limit')!r}")
    filters = []
    keys, preds, values = (q.getall(n, []) for n in
                           ("filter_keys", "filter_predicates", "filter_values"))
    if not (len(keys) == len(preds) == len(values)):
        raise ValueError("filter_keys, filter_predicates and filter_values must come in "
                         "threes")
    filters = list(zip(keys, preds, values))
    tail = q.get("tail", "").lower() in ("1", "true")
    for k, v in q.items():   # the short form: ?state=RUNNING
        if k not in ("limit", "detail", "filter_keys", "filter_predicates", "filter_values",
                     "token", "timeout", "exclude_driver", "tail"):
            filters.append((k, "=", v))
    return {"limit": limit, "filters": filters, "tail": tail}


def add_routes(app, session_dir):
    from aiohttp import web
    reader = StateReader(session_dir)

    def ok(data):
        return web.json_response({"result": True, "msg": "", "data": data},
                                 dumps=lambda o: json.dumps(o, default=str))

    def fail(status, text):
        return web.json_response({"result": False, "msg": text, "data": {}}, status=status)

    async def index(request):
        with open(os.path.join(STATIC_DIR, "index.html"), "rb") as f:
            body = f.read()
        resp = web.Response(body=body, content_type="text/html")
        token = request.query.get("token")
        if token:
            resp.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
        return resp

    async def static(request):
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            return web.Response(status=404, text="not found")
        with open(os.path.join(STATIC_DIR, name), "rb") as f:
            return web.Response(body=f.read(), content_type=STATIC_FILES[name])

    async def listing(request):
        resource = request.match_info["resource"]
        if resource not in RESOURCES:
            return fail(404, f"unknown resource {resource!r}; one of {', '.join(RESOURCES)}")
        try:
            opts = _options(request)
            reply = await reader.query(resource, opts)
        except ValueError as exc:
            return fail(400, str(exc))
        except Exception as exc:   # the head is gone or refused: say so, do not crash
            return fail(503, f"{type(exc).__name__}: {exc}")
        return ok({"result": reply})

    async def summarize(request):
        resource = request.match_info["resource"]
        from minray.util.state import common
        try:
            rows = (await reader.query(resource, {"limit": None}))["result"]
        except Exception as exc:
            return fail(503, f"{type(exc).__name__}: {exc}")
        fn = {"tasks": common.summarize_task_rows, "actors": common.summarize_actor_rows,
              "objects": common.summarize_object_rows}.get(resource)
        if fn is None:
            return fail(404, f"cannot summarize {resource!r}")
        return ok({"result": {"node_id_to_summary": fn(rows)}})

    async def cluster_status(request):
        try:
            cluster = await reader.query("cluster")
        except Exception as exc:
            return fail(503, f"{type(exc).__name__}: {exc}")
        cluster.pop("kv", None)
        return ok(cluster)

    async def libraries(request):
        try:
            cluster = await reader.query("cluster")
        except Exception as exc:
            return fail(503, f"{type(exc).__name__}: {exc}")
        out = {}
        for key, value in cluster.get("kv", {}).items():
            key = key.decode() if isinstance(key, bytes) else key
            try:
                out[key[len(state_service.LIB_PREFIX):]] = json.loads(value)
            except (TypeError, ValueError):
                continue
        return ok(out)

    async def timeline(request):
        try:
            events = (await reader.query("timeline", {"limit": None}))["result"]
        except Exception as exc:
            return fail(503, f"{type(exc).__name__}: {exc}")
        return web.json_response({"traceEvents": events, "displayTimeUnit": "ms"})

    async def metrics(request):
        try:
            cluster = await reader.query("cluster")
            points = (await reader.query("metrics", {"limit": None}))["result"]
        except Exception as exc:
            return web.Response(status=503, text=f"# minray: {type(exc).__name__}: {exc}\n")
        text = metrics_store.render_prometheus(points, cluster)
        return web.Response(text=text, content_type="text/plain",
                            headers={"X-Content-Type-Options": "nosniff"})

    app.router.add_get("/", index)
    app.router.add_get("/index.html", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/v0/cluster_status", cluster_status)
    app.router.add_get("/api/v0/libraries", libraries)
    app.router.add_get("/api/v0/timeline", timeline)
    app.router.add_get("/api/v0/{resource}/summarize", summarize)
    app.router.add_get("/api/v0/{resource}", listing)
    app.router.add_get("/metrics", metrics)
