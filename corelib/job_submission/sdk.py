"""JobSubmissionClient: the head's job REST API from Python.

Plain requests go through urllib (no event loop, nothing to close);
tail_job_logs, an async generator, reads the log websocket with aiohttp.
"""

import fnmatch
import hashlib
import io
import json
import os
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from typing import Any, AsyncIterator, Dict, List, Optional, Union

from minray._private.node import launch as _node
from .models import JobDetails, JobStatus

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
ADDRESS_ENV_VARS = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS", "MINRAY_ADDRESS")
MAX_PACKAGE_BYTES = 512 * 2**20
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}

TOKEN_HELP = ("Pass the cluster token (printed by 'minray start --head', kept in "
              "<session dir>/cluster_token on the head): set MINRAY_CLUSTER_TOKEN=<token> in "
              "the environment, or give JobSubmissionClient(..., headers={'Authorization': "
              "'Bearer <token>'}) (CLI: --headers '{\"Authorization\": \"Bearer <token>\"}').")


class JobSubmissionAuthError(RuntimeError):
    """The job server refused the request: no token, or the wrong one (HTTP 401)."""


# -- finding the job server and its token ---------------------------------------------------
def _local_sessions():
    """Session dirs of heads on this machine that run a job server, newest first."""
    roots = [_node.DEFAULT_TEMP_DIR]
    for name in ("RAY_ADDRESS", "MINRAY_ADDRESS"):
        value = os.environ.get(name, "")
        if value and os.path.isdir(value):
            roots.insert(0, os.path.dirname(os.path.abspath(value)))
    found = []
    for root in dict.fromkeys(roots):
        try:
            names = os.listdir(root)
        except OSError:
            continue
        for name in names:
            path = os.path.join(root, name, "job_server.json")
            try:
                with open(path) as f:
                    info = json.load(f)
                found.append((os.path.getmtime(path), os.path.join(root, name), info))
            except (OSError, ValueError):
                continue
    found.sort(key=lambda t: t[0], reverse=True)
    return [(session, info) for _, session, info in found]


def _session_job_server(session_dir):
    try:
        with open(os.path.join(session_dir, "job_server.json")) as f:
            return json.load(f)["url"]
    except (OSError, ValueError, KeyError):
        return None


def resolve_address(address=None):
    """The job server's base URL for ``address`` (see JobSubmissionClient)."""
    if address is None:
        for name in ADDRESS_ENV_VARS:
            value = os.environ.get(name)
            if value and (value.startswith(("http://", "https://")) or os.path.isdir(value)):
                address = value
                break
    if address is None:
        sessions = _local_sessions()
        return sessions[0][1]["url"] if sessions else DEFAULT_ADDRESS
    address = address.strip()
    if address.startswith(("http://", "https://")):
        return address.rstrip("/")
    if address == "auto":
        sessions = _local_sessions()
        if not sessions:
            raise ConnectionError("Could not find a minray head with a job server on this "
                                  "machine; start one with 'minray start --head', or pass "
                                  "the address, e.g. http://<head-ip>:8265.")
        return sessions[0][1]["url"]
    if os.path.isdir(address):
        url = _session_job_server(address)
        if url is None:
            raise ConnectionError(f"The session {address} runs no job server (was the head "
                                  "started with --include-dashboard false?).")
        return url
    for prefix in ("ray://", "minray://"):
        if address.startswith(prefix):
            address = address[len(prefix):]
    host, _, port = address.rpartition(":")
    # HOST:PORT of a head on this machine (its node port): use its job server.
    for session, info in _local_sessions():
        try:
            with open(os.path.join(session, "head.json")) as f:
                head = json.load(f)
        except (OSError, ValueError):
            continue
        if str(head.get("port")) == port and (host in _LOOPBACK or
                                              host == head.get("node_ip_address")):
            return info["url"]
    return "http://" + address.rstrip("/")


def _token_for(url):
    token = os.environ.get(_node.TOKEN_ENV)
    if token:
        return token.strip()
    parsed = urllib.parse.urlsplit(url)
    for session, info in _local_sessions():
        if info.get("port") == parsed.port and (
                parsed.hostname in _LOOPBACK or parsed.hostname == info.get("host")):
            try:
                with open(os.path.join(session, _node.TOKEN_FILE)) as f:
                    return f.read().strip()
            except OSError:
                continue
    return _node.read_cluster_token()


# -- working_dir packages -------------------------------------------------------------------
def _excluded(rel, patterns):
    base = rel.rsplit("/", 1)[-1]
    for pattern in patterns:
        p = pattern.strip()
        if not p:
            continue
        anchored = p.startswith("/")
        p = p.strip("/")
        if fnmatch.fnmatch(rel, p) or rel.startswith(p + "/"):
            return True
        if not anchored and "/" not in p and fnmatch.fnmatch(base, p):
            return True
    return False


def package_working_dir(path, excludes=()):
    """Zip a local directory reproducibly; return (package name, zip bytes)."""
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(path):
        raise ValueError(f"runtime_env['working_dir'] {path!r} is not a directory on this "
                         "machine (minray uploads local directories; remote URIs are not "
                         "supported).")
    buf = io.BytesIO()
    total = 0
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for root, dirs, files in os.walk(path):
            rel_root = os.path.relpath(root, path).replace(os.sep, "/")
            rel_root = "" if rel_root == "." else rel_root + "/"
            dirs[:] = sorted(d for d in dirs if not _excluded(rel_root + d, excludes))
            for name in sorted(files):
                rel = rel_root + name
                full = os.path.join(root, name)
                if _excluded(rel, excludes) or not os.path.isfile(full):
                    continue
                st = os.stat(full)
                total += st.st_size
                if total > MAX_PACKAGE_BYTES:
                    raise ValueError(f"working_dir {path!r} holds more than "
                                     f"{MAX_PACKAGE_BYTES // 2**20} MiB; leave large files "
                                     "out with runtime_env['excludes'].")
                info = zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = (st.st_mode & 0o777) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(full, "rb") as f:
                    zf.writestr(info, f.read())
    data = buf.getvalue()
    return f"_ray_pkg_{hashlib.sha1(data).hexdigest()[:16]}.zip", data


# -- the client -------------------------------------------------------------------------------
class JobSubmissionClient:
    """Submit and manage jobs on a minray head over its HTTP job API.

    ``address``: the job server's URL ("http://<head-ip>:8265"), or "auto" (the
    head on this machine), a head's session dir, or HOST:PORT of a head on this
    machine. Unset: RAY_API_SERVER_ADDRESS / RAY_ADDRESS / MINRAY_ADDRESS when
    one is an http(s):// URL, else the head running on this machine, else
    http://127.0.0.1:8265.

    ``headers`` are sent with every request; unless they hold Authorization,
    the client adds ``Authorization: Bearer <cluster token>`` with the token from
    $MINRAY_CLUSTER_TOKEN or the local head's token file.
    """

    def __init__(self, address: Optional[str] = None, create_cluster_if_needed: bool = False,
                 cookies: Optional[Dict[str, Any]] = None,
                 metadata: Optional[Dict[str, Any]] = None,
                 headers: Optional[Dict[str, Any]] = None,
                 verify: Optional[Union[str, bool]] = True, timeout: float = 30.0):
        self._address = resolve_address(address)
        self._headers = {str(k): str(v) for k, v in (headers or {}).items()}
        if not any(k.lower() == "authorization" for k in self._headers):
            token = _token_for(self._address)
            if token:
                self._headers["Authorization"] = f"Bearer {token}"
        if cookies:
            self._headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        self._default_metadata = {str(k): str(v) for k, v in (metadata or {}).items()}
        self._timeout = timeout
        host = urllib.parse.urlsplit(self._address).hostname
        handlers = [urllib.request.ProxyHandler({})] if host in _LOOPBACK else []
        if self._address.startswith("https://") and verify is not True:
            import ssl
            ctx = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
            if verify is False:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            handlers.append(urllib.request.HTTPSHandler(context=ctx))
        self._opener = urllib.request.build_opener(*handlers)
        self._version = self.get_version()

    # -- plumbing ---------------------------------------------------------------------
    def _request(self, method, path, body=None, data=None, ok_statuses=()):
        headers = dict(self._headers)
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif data is not None:
            headers["Content-Type"] = "application/octet-stream"
        req = urllib.request.Request(self._address + path, data=data, headers=headers,
                                     method=method)
        try:
            with self._opener.open(req, timeout=self._timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            text = exc.read().decode("utf-8", "replace")
            if exc.code in ok_statuses:
                return exc.code, text.encode()
            if exc.code == 401:
                raise JobSubmissionAuthError(
                    f"The job server at {self._address} refused the request (401: no cluster "
                    f"token, or the wrong one). {TOKEN_HELP}") from None
            raise RuntimeError(f"Request failed with status code {exc.code}: {text}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ConnectionError(
                f"Failed to connect to the minray job server at {self._address}: {reason}. "
                "Is a head running ('minray start --head'), and is this its job server "
                "address (http://<head-ip>:<dashboard port, default 8265>)?") from None

    def _json(self, method, path, body=None):
        _, raw = self._request(method, path, body=body)
        return json.loads(raw)

    @staticmethod
    def _job_path(job_id, suffix=""):
        if not isinstance(job_id, str) or not job_id:
            raise ValueError(f"A job's submission id must be a non-empty string, got "
                             f"{job_id!r}.")
        return "/api/jobs/" + urllib.parse.quote(job_id, safe="") + suffix

    # -- the API ---------------------------------------------------------------------------
    def get_address(self) -> str:
        return self._address

    def get_version(self) -> str:
        return self._json("GET", "/api/version")["version"]

    def _upload_working_dir(self, runtime_env):
        wd = runtime_env.get("working_dir")
        if wd is None or str(wd).startswith("gcs://"):
            return runtime_env
        if "://" in str(wd):
            raise ValueError(f"runtime_env['working_dir'] {wd!r}: minray uploads local "
                             "directories only; remote URIs are not supported.")
        name, data = package_working_dir(str(wd), runtime_env.get("excludes") or ())
        path = f"/api/packages/gcs/{name}"
        status, _ = self._request("GET", path, ok_statuses=(404,))
        if status == 404:
            self._request("PUT", path, data=data)
        return dict(runtime_env, working_dir=f"gcs://{name}")

    def submit_job(self, *, entrypoint: str, job_id: Optional[str] = None,
                   runtime_env: Optional[Dict[str, Any]] = None,
                   metadata: Optional[Dict[str, str]] = None,
                   submission_id: Optional[str] = None,
                   entrypoint_num_cpus: Optional[Union[int, float]] = None,
                   entrypoint_num_gpus: Optional[Union[int, float]] = None,
                   entrypoint_memory: Optional[int] = None,
                   entrypoint_resources: Optional[Dict[str, float]] = None,
                   entrypoint_label_selector: Optional[Dict[str, str]] = None) -> str:
        """Start ``entrypoint`` (a shell command) on the head; return its submission id.

        ``runtime_env``: ``working_dir`` (a local directory, zipped and uploaded;
        ``excludes`` leaves paths out) and ``env_vars``.
        """
        if not isinstance(entrypoint, str) or not entrypoint.strip():
            raise ValueError("submit_job needs an entrypoint: a non-empty shell command such "
                             f"as 'python script.py', got {entrypoint!r}.")
        if job_id is not None and submission_id is not None and job_id != submission_id:
            raise ValueError("job_id is the deprecated name of submission_id; pass only one.")
        if runtime_env is not None and not isinstance(runtime_env, dict):
            raise ValueError(f"runtime_env must be a dict, got {runtime_env!r}.")
        runtime_env = self._upload_working_dir(dict(runtime_env or {}))
        body = {"entrypoint": entrypoint,
                "submission_id": submission_id or job_id,
                "runtime_env": runtime_env,
                "metadata": dict(self._default_metadata, **(metadata or {})),
                "entrypoint_num_cpus": entrypoint_num_cpus,
                "entrypoint_num_gpus": entrypoint_num_gpus,
                "entrypoint_memory": entrypoint_memory,
                "entrypoint_resources": entrypoint_resources}
        body = {k: v for k, v in body.items() if v is not None}
        return self._json("POST", "/api/jobs/", body)["submission_id"]

    def stop_job(self, job_id: str) -> bool:
        """Ask the job to stop (SIGTERM, then SIGKILL); False if it had already finished."""
        return self._json("POST", self._job_path(job_id, "/stop"))["stopped"]

    def delete_job(self, job_id: str) -> bool:
        """Forget a finished job (its record and log); an unfinished one raises."""
        return self._json("DELETE", self._job_path(job_id))["deleted"]

    def get_job_info(self, job_id: str) -> JobDetails:
        return JobDetails.from_dict(self._json("GET", self._job_path(job_id)))

    def list_jobs(self) -> List[JobDetails]:
        return [JobDetails.from_dict(d) for d in self._json("GET", "/api/jobs/")]

    def get_job_status(self, job_id: str) -> JobStatus:
        return self.get_job_info(job_id).status

    def get_job_logs(self, job_id: str) -> str:
        return self._json("GET", self._job_path(job_id, "/logs"))["logs"]

    async def tail_job_logs(self, job_id: str) -> AsyncIterator[str]:
        """Yield the job's log as it grows, until the job has finished."""
        import aiohttp
        url = "ws" + self._address[len("http"):] + self._job_path(job_id, "/logs/tail")
        # No total timeout: a job's log stream lasts as long as the job.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._timeout)
        async with aiohttp.ClientSession(headers=self._headers, timeout=timeout) as session:
            try:
                ws = await session.ws_connect(url)
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status == 401:
                    raise JobSubmissionAuthError(
                        f"The job server at {self._address} refused the request (401). "
                        f"{TOKEN_HELP}") from None
                if exc.status == 404:
                    raise RuntimeError(f"Request failed with status code 404: Job {job_id} "
                                       "does not exist.") from None
                raise RuntimeError(f"Could not tail the logs of job {job_id}: {exc}") from None
            except aiohttp.ClientError as exc:
                raise ConnectionError(f"Failed to connect to the minray job server at "
                                      f"{self._address}: {exc}") from None
            async with ws:
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        yield msg.data
                    elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        break
