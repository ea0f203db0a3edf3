"""The head's HTTP job service: submit, watch, stop and list jobs over REST.

Run by ``minray start --head`` as its own process::

    python -m minray._private.jobs.server --session-dir D --host H --port P

It binds H:P (loopback unless the user named another address), records
``{"pid", "host", "port", "url"}`` in ``<session>/job_server.json`` once it
listens, and exits when the head's node manager (the pid in
``<session>/nm.ready``) dies or on SIGTERM, stopping the jobs still running.

Endpoints (JSON bodies; the same paths as Ray's job server)::

    GET    /api/version                       no token needed
    POST   /api/jobs/                         submit -> {"job_id", "submission_id"}
    GET    /api/jobs/                         every job's details
    GET    /api/jobs/{id}                     one job's details
    DELETE /api/jobs/{id}                     forget a finished job -> {"deleted"}
    POST   /api/jobs/{id}/stop                SIGTERM, then SIGKILL -> {"stopped"}
    GET    /api/jobs/{id}/logs                -> {"logs"}
    GET    /api/jobs/{id}/logs/tail           websocket: the log as text messages, closed
                                              when the job has finished
    GET    /api/packages/{protocol}/{name}    200 if the package was uploaded, else 404
    PUT    /api/packages/{protocol}/{name}    upload a working_dir zip
    GET    /, /api/v0/..., /metrics           the dashboard (dashboard.py)

Every request except ``GET /api/version`` (and the dashboard's reads while the
server listens on loopback) must carry the cluster token
(``Authorization: Bearer <token>``); others get 401 and the refusal is logged
to ``<session>/logs/job_server.log``. Nothing a client sends is unpickled.

Each job is a shell command run by a supervisor coroutine in this process: its
own process group (so stop reaches the whole tree), cwd = the unpacked
working_dir, PYTHONPATH prepended with it, the runtime_env's env_vars, and
RAY_ADDRESS / MINRAY_ADDRESS = the head's session dir so the job's
``minray.init()`` joins this head. Output goes to
``<session>/logs/job-driver-<id>.log``; the job table is kept in
``<session>/jobs/<id>.json`` so it survives a restart of this server (a job
still running then is adopted and watched until it exits).
"""

import argparse
import asyncio
import codecs
import hmac
import json
import logging
import os
import re
import secrets
import shutil
import signal
import string
import subprocess
import sys
import time
import zipfile

import psutil

from minray._private.node import launch as _node

log = logging.getLogger("minray.job_server")

API_VERSION = "1"
PENDING, RUNNING, STOPPED, SUCCEEDED, FAILED = (
    "PENDING", "RUNNING", "STOPPED", "SUCCEEDED", "FAILED")
TERMINAL = {STOPPED, SUCCEEDED, FAILED}
SUBMISSION_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
PACKAGE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,200}\.zip$")
SUPPORTED_RUNTIME_ENV = {"working_dir", "env_vars", "excludes", "config"}
MAX_PACKAGE_BYTES = 512 * 2**20
LOG_TAIL_IN_MESSAGE = 2000
# The entrypoint runs in an inner shell; the outer one writes its exit code to
# a file, so a restarted server can still tell how an adopted job ended. Both
# shells trap SIGTERM: a trap waits for the foreground command, and a caught
# signal is reset to its default in the commands they start, so on stop the
# entrypoint's processes get SIGTERM and their grace period (instead of the job
# ending, and being SIGKILLed, the moment a shell dies), and the inner shell
# runs no further commands after the one that was stopped.
WRAPPER = ("trap : TERM; /bin/sh -c \"trap 'exit 143' TERM; $1\"; code=$?; "
           "echo $code > \"$2\"; exit $code")


def _stop_wait_s():
    for name in ("MINRAY_JOB_STOP_WAIT_S", "RAY_JOB_STOP_WAIT_TIME_S"):
        value = os.environ.get(name)
        if value:
            try:
                return max(0.0, float(value))
            except ValueError:
                pass
    return 3.0


def _now_ms():
    return int(time.time() * 1000)


def _new_submission_id():
    alphabet = string.ascii_letters + string.digits
    return "raysubmit_" + "".join(secrets.choice(alphabet) for _ in range(16))


class HTTPError(Exception):
    def __init__(self, status, text):
        super().__init__(text)
        self.status = status
        self.text = text


class JobManager:
    def __init__(self, session_dir, host):
        self.session_dir = session_dir
        self.host = host
        self.jobs_dir = os.path.join(session_dir, "jobs")
        self.logs_dir = os.path.join(session_dir, "logs")
        self.resources_dir = os.path.join(session_dir, "runtime_resources")
        self.packages_dir = os.path.join(self.resources_dir, "packages")
        self.unpacked_dir = os.path.join(self.resources_dir, "working_dir_files")
        for path in (self.jobs_dir, self.packages_dir, self.unpacked_dir):
            os.makedirs(path, mode=0o700, exist_ok=True)
        self.jobs = {}            # submission id -> record (the JSON kept on disk)
        self.procs = {}           # submission id -> asyncio subprocess, while it runs
        self.stop_requested = {}  # submission id -> the message it ends with
        self.tasks = set()
        self.stop_wait_s = _stop_wait_s()

    # -- the job table ---------------------------------------------------------
    def _record_path(self, sid):
        return os.path.join(self.jobs_dir, f"{sid}.json")

    def log_path(self, sid):
        return os.path.join(self.logs_dir, f"job-driver-{sid}.log")

    def _exit_code_path(self, sid):
        return os.path.join(self.jobs_dir, f"{sid}.exit")

    def persist(self, sid):
        path = self._record_path(sid)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.jobs[sid], f)
        os.replace(tmp, path)

    def load(self):
        """Read the table a previous server left; adopt jobs still running."""
        for name in sorted(os.listdir(self.jobs_dir)):
            if not name.endswith(".json"):
                continue
            try:
                with open(os.path.join(self.jobs_dir, name)) as f:
                    rec = json.load(f)
                sid = rec["submission_id"]
            except (OSError, ValueError, KeyError):
                log.warning("skipped an unreadable job record %s", name)
                continue
            self.jobs[sid] = rec
            if rec["status"] in TERMINAL:
                continue
            pid = (rec.get("driver_info") or {}).get("pid")
            if rec["status"] == RUNNING and pid and _alive(int(pid)):
                log.info("adopted running job %s (pid %s)", sid, pid)
                self._spawn(self._watch_adopted(sid, int(pid)))
            else:
                code = self._read_exit_code(sid)
                if code is not None:
                    self._finish(sid, code)
                else:
                    self._set(sid, FAILED, "The job server restarted while this job was "
                              f"{rec['status'].lower()}, and the job did not survive it.",
                              error_type="JOB_SUPERVISOR_ACTOR_DIED", end=True)

    def _set(self, sid, status, message, end=False, **fields):
        rec = self.jobs[sid]
        rec.update(status=status, message=message, **fields)
        if end:
            rec["end_time"] = _now_ms()
        self.persist(sid)
        log.info("job %s: %s (%s)", sid, status, message.splitlines()[0] if message else "")

    def get(self, sid):
        rec = self.jobs.get(sid)
        if rec is None:
            raise HTTPError(404, f"Job {sid} does not exist.")
        return rec

    # -- submit -----------------------------------------------------------------
    def submit(self, body):
        if not isinstance(body, dict):
            raise HTTPError(400, "The request body must be a JSON object.")
        entrypoint = body.get("entrypoint")
        if not isinstance(entrypoint, str) or not entrypoint.strip():
            raise HTTPError(400, "The job needs an entrypoint: a non-empty shell command "
                            "such as 'python script.py'.")
        sid = body.get("submission_id") or body.get("job_id") or _new_submission_id()
        if not isinstance(sid, str) or not SUBMISSION_ID_RE.match(sid):
            raise HTTPError(400, f"Invalid submission_id {sid!r}: use 1-128 letters, digits, "
                            "'_', '.' or '-', not starting with '.' or '-'.")
        if sid in self.jobs:
            raise HTTPError(400, f"Job with submission_id {sid} already exists. Please use a "
                            "different submission_id.")
        runtime_env = body.get("runtime_env") or {}
        metadata = body.get("metadata") or {}
        _check_runtime_env(runtime_env)
        if not isinstance(metadata, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise HTTPError(400, "metadata must be a dict of strings to strings.")
        for key in ("entrypoint_num_cpus", "entrypoint_num_gpus", "entrypoint_memory"):
            value = body.get(key)
            if value is not None and (isinstance(value, bool) or
                                      not isinstance(value, (int, float)) or value < 0):
                raise HTTPError(400, f"{key} must be a non-negative number, got {value!r}.")
        resources = body.get("entrypoint_resources")
        if resources is not None and (not isinstance(resources, dict) or not all(
                isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
                and v >= 0 for k, v in resources.items())):
            raise HTTPError(400, "entrypoint_resources must be a dict of resource names to "
                            f"non-negative numbers, got {resources!r}.")
        self.jobs[sid] = {
            "type": "SUBMISSION", "job_id": None, "submission_id": sid,
            "driver_info": None, "status": PENDING,
            "entrypoint": entrypoint, "message": "Job has not started yet.",
            "error_type": None, "start_time": _now_ms(), "end_time": None,
            "metadata": metadata, "runtime_env": runtime_env,
            "driver_agent_http_address": None, "driver_node_id": None,
            "driver_exit_code": None,
            "entrypoint_num_cpus": body.get("entrypoint_num_cpus"),
            "entrypoint_num_gpus": body.get("entrypoint_num_gpus"),
            "entrypoint_memory": body.get("entrypoint_memory"),
            "entrypoint_resources": resources,
        }
        self.persist(sid)
        log.info("job %s submitted: %s", sid, entrypoint)
        self._spawn(self._supervise(sid))
        return sid

    def _spawn(self, coro):
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- the supervisor ------------------------------------------------------------
    def _prepare(self, sid):
        """Unpack the working_dir and build the job's environment (in a thread)."""
        rec = self.jobs[sid]
        runtime_env = rec["runtime_env"]
        cwd = None
        uri = runtime_env.get("working_dir")
        if uri:
            cwd = self._unpack(uri)
        env = dict(os.environ)
        env.pop("MINRAY_JOB_SERVER_INTERNAL", None)
        env.update({k: str(v) for k, v in (runtime_env.get("env_vars") or {}).items()})
        env["RAY_ADDRESS"] = env["MINRAY_ADDRESS"] = self.session_dir
        env["RAY_JOB_SUBMISSION_ID"] = sid
        env["MINRAY_JOB_RUNTIME_ENV"] = json.dumps(runtime_env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        # `python` in the entrypoint means the interpreter that runs minray.
        bindir = os.path.dirname(sys.executable)
        path = env.get("PATH", "")
        if path.split(os.pathsep)[0] != bindir:
            env["PATH"] = bindir + (os.pathsep + path if path else "")
        if cwd:
            old = env.get("PYTHONPATH")
            env["PYTHONPATH"] = cwd + (os.pathsep + old if old else "")
        return cwd or self.session_dir, env

    def _unpack(self, uri):
        protocol, _, name = uri.partition("://")
        if protocol != "gcs" or not PACKAGE_RE.match(name):
            raise ValueError(f"working_dir {uri!r} is not a package uploaded to this head")
        target = os.path.join(self.unpacked_dir, name[:-len(".zip")])
        if os.path.isdir(target):
            return target
        package = os.path.join(self.packages_dir, name)
        if not os.path.exists(package):
            raise ValueError(f"the working_dir package {uri} was never uploaded to this head")
        tmp = f"{target}.tmp{os.getpid()}-{secrets.token_hex(4)}"
        with zipfile.ZipFile(package) as zf:
            zf.extractall(tmp)
            for info in zf.infolist():
                mode = (info.external_attr >> 16) & 0o777
                path = os.path.join(tmp, info.filename)
                if mode and not info.is_dir() and os.path.isfile(path):
                    os.chmod(path, mode)
        try:
            os.rename(tmp, target)
        except OSError:          # another job unpacked the same package first
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    async def _supervise(self, sid):
        rec = self.jobs[sid]
        loop = asyncio.get_running_loop()
        try:
            cwd, env = await loop.run_in_executor(None, self._prepare, sid)
        except Exception as exc:
            log.exception("job %s: runtime_env setup failed", sid)
            self._set(sid, FAILED, f"Failed to set up the runtime_env: {exc}",
                      error_type="RUNTIME_ENV_SETUP_FAILED", end=True)
            return
        if sid in self.stop_requested or sid not in self.jobs:
            if sid in self.jobs:
                self._set(sid, STOPPED, self.stop_requested[sid], end=True)
            return
        try:
            with open(self.log_path(sid), "ab") as out:
                proc = await asyncio.create_subprocess_exec(
                    "/bin/sh", "-c", WRAPPER, "sh", rec["entrypoint"], self._exit_code_path(sid),
                    stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out, cwd=cwd, env=env,
                    start_new_session=True)
        except Exception as exc:
            log.exception("job %s: could not start", sid)
            self._set(sid, FAILED, f"Could not start the entrypoint: {exc}",
                      error_type="JOB_ENTRYPOINT_COMMAND_START_ERROR", end=True)
            return
        self.procs[sid] = proc
        self._set(sid, RUNNING, "Job is currently running.",
                  driver_info={"id": None, "node_ip_address": self.host, "pid": str(proc.pid)})
        if sid in self.stop_requested:      # stop() came while the process was starting
            _killpg(proc.pid, signal.SIGTERM)
            self._spawn(self._kill_later(sid, proc.pid))
        try:
            code = await proc.wait()
        finally:
            self.procs.pop(sid, None)
        _killpg(proc.pid, signal.SIGKILL)     # whatever the entrypoint left behind
        self._finish(sid, code)

    async def _watch_adopted(self, sid, pid):
        while _alive(pid):
            await asyncio.sleep(0.2)
        _killpg(pid, signal.SIGKILL)
        self._finish(sid, self._read_exit_code(sid))

    def _read_exit_code(self, sid):
        try:
            with open(self._exit_code_path(sid)) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def _finish(self, sid, code):
        if sid not in self.jobs:
            return
        if sid in self.stop_requested:
            self._set(sid, STOPPED, self.stop_requested[sid], end=True,
                      driver_exit_code=code)
        elif code == 0:
            self._set(sid, SUCCEEDED, "Job finished successfully.", end=True,
                      driver_exit_code=0)
        else:
            how = (f"exit code {code}" if code is not None and code >= 0 else
                   f"signal {-code}" if code is not None else "an unknown exit code")
            tail = _tail(self.log_path(sid), LOG_TAIL_IN_MESSAGE)
            message = f"Job entrypoint command failed with {how}."
            if tail:
                message += f" Last available logs (truncated to {LOG_TAIL_IN_MESSAGE} " \
                           f"chars):\n{tail}"
            self._set(sid, FAILED, message, end=True, driver_exit_code=code,
                      error_type="JOB_ENTRYPOINT_COMMAND_ERROR")

    # -- stop / delete ---------------------------------------------------------------
    def stop(self, sid, message="Job was intentionally stopped."):
        rec = self.get(sid)
        if rec["status"] in TERMINAL:
            return False
        self.stop_requested[sid] = message
        pid = (rec.get("driver_info") or {}).get("pid")
        if rec["status"] == RUNNING and pid:
            log.info("stopping job %s: SIGTERM to process group %s", sid, pid)
            _killpg(int(pid), signal.SIGTERM)
            self._spawn(self._kill_later(sid, int(pid)))
        return True

    async def _kill_later(self, sid, pid):
        deadline = time.monotonic() + self.stop_wait_s
        while time.monotonic() < deadline:
            if self.jobs.get(sid, {}).get("status") in TERMINAL:
                return
            await asyncio.sleep(0.05)
        if self.jobs.get(sid, {}).get("status") not in TERMINAL:
            log.info("job %s did not exit %.1f s after SIGTERM: SIGKILL", sid, self.stop_wait_s)
            _killpg(pid, signal.SIGKILL)

    def delete(self, sid):
        rec = self.get(sid)
        if rec["status"] not in TERMINAL:
            raise HTTPError(400, f"Attempted to delete job {sid}, but it is in a non-terminal "
                            f"state {rec['status']}. Stop it first.")
        del self.jobs[sid]
        self.stop_requested.pop(sid, None)
        for path in (self._record_path(sid), self._exit_code_path(sid), self.log_path(sid)):
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
        log.info("job %s deleted", sid)
        return True

    async def shutdown(self):
        """Stop every running job (the head is going away)."""
        running = [sid for sid, rec in self.jobs.items() if rec["status"] not in TERMINAL]
        for sid in running:
            self.stop(sid, "Job was stopped because the head node shut down.")
        deadline = time.monotonic() + self.stop_wait_s + 2
        while self.procs and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for sid in running:
            rec = self.jobs.get(sid)
            if rec and rec["status"] not in TERMINAL:
                pid = (rec.get("driver_info") or {}).get("pid")
                if pid:
                    _killpg(int(pid), signal.SIGKILL)
                self._set(sid, STOPPED, "Job was stopped because the head node shut down.",
                          end=True)


def _check_runtime_env(runtime_env):
    if not isinstance(runtime_env, dict):
        raise HTTPError(400, f"runtime_env must be a dict, got {runtime_env!r}.")
    unsupported = set(runtime_env) - SUPPORTED_RUNTIME_ENV
    if unsupported:
        raise HTTPError(400, f"runtime_env fields {sorted(unsupported)} are not supported by "
                        f"minray's job server (supported: {sorted(SUPPORTED_RUNTIME_ENV)}).")
    env_vars = runtime_env.get("env_vars")
    if env_vars is not None and (not isinstance(env_vars, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items())):
        raise HTTPError(400, "runtime_env['env_vars'] must be a dict of strings to strings, "
                        f"got {env_vars!r}.")
    wd = runtime_env.get("working_dir")
    if wd is not None:
        protocol, _, name = str(wd).partition("://")
        if protocol != "gcs" or not PACKAGE_RE.match(name):
            raise HTTPError(400, f"runtime_env['working_dir'] {wd!r} must be the URI of a "
                            "package uploaded to this head (gcs://_ray_pkg_<hash>.zip); "
                            "JobSubmissionClient and 'minray job submit' upload local "
                            "directories for you.")


def _alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _killpg(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _tail(path, n):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - n))
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


# -- HTTP -------------------------------------------------------------------------------
def make_app(manager, token):
    from aiohttp import WSMsgType, web
    token_bytes = token.encode()

    from minray._private.observability import dashboard
    open_reads = dashboard.is_loopback(manager.host)   # the dashboard, as Ray's: see dashboard.py

    @web.middleware
    async def authenticate(request, handler):
        open_read = dashboard.is_dashboard_read(request) and (
            open_reads or dashboard.cookie_token_ok(request, token_bytes))
        if not open_read and not (request.method == "GET" and request.path == "/api/version"):
            header = request.headers.get("Authorization", "")
            scheme, _, given = header.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                    given.strip().encode(), token_bytes):
                log.warning("refused an unauthenticated request from %s: %s %s (%s)",
                            request.remote, request.method, request.path,
                            "wrong token" if header else "no token")
                return web.Response(
                    status=401, text="This minray job server needs the cluster token: send "
                    "'Authorization: Bearer <token>' (the token is printed by 'minray start "
                    "--head' and kept in <session dir>/cluster_token on the head).")
        try:
            return await handler(request)
        except HTTPError as exc:
            return web.Response(status=exc.status, text=exc.text)

    async def version(request):
        from minray import __version__
        return web.json_response({"version": API_VERSION, "ray_version": __version__,
                                  "ray_commit": "minray"})

    async def submit(request):
        try:
            body = await request.json()
        except ValueError:
            raise HTTPError(400, "The request body must be JSON.")
        sid = manager.submit(body)
        return web.json_response({"job_id": sid, "submission_id": sid})

    async def list_jobs(request):
        return web.json_response(list(manager.jobs.values()))

    async def get_job(request):
        return web.json_response(manager.get(request.match_info["job_id"]))

    async def delete_job(request):
        return web.json_response({"deleted": manager.delete(request.match_info["job_id"])})

    async def stop_job(request):
        return web.json_response({"stopped": manager.stop(request.match_info["job_id"])})

    async def logs(request):
        sid = request.match_info["job_id"]
        manager.get(sid)
        try:
            with open(manager.log_path(sid), "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            text = ""
        return web.json_response({"logs": text})

    async def tail(request):
        sid = request.match_info["job_id"]
        manager.get(sid)
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        f = None
        try:
            while not ws.closed:
                rec = manager.jobs.get(sid)
                done = rec is None or rec["status"] in TERMINAL
                if f is None:
                    try:
                        f = open(manager.log_path(sid), "rb")
                    except FileNotFoundError:
                        if done:
                            break
                if f is not None:
                    data = f.read(1 << 16)
                    if data:
                        text = decoder.decode(data)
                        if text:
                            await ws.send_str(text)
                        continue
                    if done:       # read to the end after the job finished
                        rest = decoder.decode(b"", final=True)
                        if rest:
                            await ws.send_str(rest)
                        break
                try:
                    msg = await ws.receive(timeout=0.1)
                    if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                                    WSMsgType.ERROR):
                        break
                except asyncio.TimeoutError:
                    pass
        finally:
            if f is not None:
                f.close()
            await ws.close()
        return ws

    def package_path(request):
        protocol, name = request.match_info["protocol"], request.match_info["name"]
        if protocol != "gcs" or not PACKAGE_RE.match(name):
            raise HTTPError(400, f"Invalid package URI {protocol}://{name}: expected "
                            "gcs://<name>.zip.")
        return os.path.join(manager.packages_dir, name)

    async def package_exists(request):
        path = package_path(request)
        if os.path.exists(path):
            return web.Response(text="exists")
        return web.Response(status=404, text="Package not found.")

    async def package_upload(request):
        path = package_path(request)
        data = await request.read()
        tmp = f"{path}.tmp{secrets.token_hex(4)}"
        with open(tmp, "wb") as f:
            f.write(data)
        try:
            with zipfile.ZipFile(tmp) as zf:
                bad = zf.testzip()
            if bad is not None:
                raise zipfile.BadZipFile(f"corrupt member {bad}")
        except zipfile.BadZipFile as exc:
            os.remove(tmp)
            raise HTTPError(400, f"The uploaded package is not a valid zip file: {exc}")
        os.replace(tmp, path)
        log.info("package %s uploaded (%d bytes)", os.path.basename(path), len(data))
        return web.Response(text="uploaded")

    app = web.Application(middlewares=[authenticate], client_max_size=MAX_PACKAGE_BYTES)
    app.router.add_get("/api/version", version)
    for prefix in ("/api/jobs/", "/api/jobs"):
        app.router.add_post(prefix, submit)
        app.router.add_get(prefix, list_jobs)
    app.router.add_get("/api/jobs/{job_id}", get_job)
    app.router.add_delete("/api/jobs/{job_id}", delete_job)
    app.router.add_post("/api/jobs/{job_id}/stop", stop_job)
    app.router.add_get("/api/jobs/{job_id}/logs", logs)
    app.router.add_get("/api/jobs/{job_id}/logs/tail", tail)
    app.router.add_get("/api/packages/{protocol}/{name}", package_exists)
    app.router.add_put("/api/packages/{protocol}/{name}", package_upload)
    dashboard.add_routes(app, manager.session_dir)
    return app


def _head_pid(session_dir):
    try:
        with open(os.path.join(session_dir, "nm.ready")) as f:
            return int(f.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


async def serve(session_dir, host, port):
    from aiohttp import web
    token_path = os.path.join(session_dir, _node.TOKEN_FILE)
    try:
        with open(token_path) as f:
            token = f.read().strip()
    except FileNotFoundError:
        token = _node.read_cluster_token(session_dir)
    if not token:
        raise SystemExit(f"minray job server: no cluster token in {token_path} or "
                         f"${_node.TOKEN_ENV}; refusing to serve without one.")
    manager = JobManager(session_dir, host)
    manager.load()
    app = make_app(manager, token)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    url = f"http://{host}:{port}"
    info_path = os.path.join(session_dir, "job_server.json")
    with open(info_path + ".tmp", "w") as f:
        json.dump({"pid": os.getpid(), "host": host, "port": port, "url": url}, f)
    os.replace(info_path + ".tmp", info_path)
    log.info("job server listening on %s (pid %d)", url, os.getpid())

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    head_pid = _head_pid(session_dir)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=0.5)
        except asyncio.TimeoutError:
            pass
        if head_pid is not None and not _alive(head_pid):
            log.info("the head's node manager (pid %d) is gone; shutting down", head_pid)
            break
    log.info("job server stopping")
    await manager.shutdown()
    await runner.cleanup()
    try:
        with open(info_path) as f:
            if json.load(f).get("pid") == os.getpid():
                os.remove(info_path)
    except (OSError, ValueError):
        pass


# -- starting and stopping it (used by `minray start --head` / `minray stop`) -----------------
INFO_FILE = "job_server.json"


def start(session_dir, host, port, timeout=30.0):
    """Spawn the job server of the head in ``session_dir``; return (url, Popen).

    Raises RuntimeError (with the reason) if it does not come up.
    """
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        raise RuntimeError("the job server needs aiohttp: pip install 'minray[default]'")
    out_path = os.path.join(session_dir, "logs", "job_server.out")
    with open(out_path, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "minray._private.jobs.server", "--session-dir", session_dir,
             "--host", host, "--port", str(port)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
            close_fds=True)
    info_path = os.path.join(session_dir, INFO_FILE)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(info_path) as f:
                info = json.load(f)
            if info.get("pid") == proc.pid:
                return info["url"], proc
        except (OSError, ValueError):
            pass
        if proc.poll() is not None:
            lines = _tail(out_path, 4000).splitlines()
            reason = lines[-1] if lines else f"exit code {proc.returncode}"
            raise RuntimeError(f"the job server exited during start-up: {reason} "
                               f"(see {out_path})")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"the job server did not start within {timeout:.0f} s "
                               f"(see {out_path})")
        time.sleep(0.02)


def stop(session_dir, timeout=15.0):
    """Stop the job server of ``session_dir`` if it runs (it stops its jobs first).
    Returns True if one was stopped."""
    try:
        with open(os.path.join(session_dir, INFO_FILE)) as f:
            pid = int(json.load(f)["pid"])
        proc = psutil.Process(pid)
        if "minray._private.jobs.server" not in " ".join(proc.cmdline()):
            return False               # the pid was reused by another program
        proc.terminate()
    except (OSError, ValueError, KeyError, psutil.Error):
        return False
    # Poll rather than wait(): a zombie whose parent is not this process counts
    # as gone (psutil would wait for its parent to reap it).
    for sig_timeout in (timeout, 5.0):
        deadline = time.monotonic() + sig_timeout
        while _alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not _alive(proc.pid):
            break
        try:
            proc.kill()
        except psutil.Error:
            pass
    try:
        proc.wait(timeout=0)          # reap it if it is this process's child
    except psutil.Error:
        pass
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(prog="minray-job-server")
    parser.add_argument("--session-dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8265)
    args = parser.parse_args(argv)
    os.makedirs(os.path.join(args.session_dir, "logs"), exist_ok=True)
    handler = logging.FileHandler(os.path.join(args.session_dir, "logs", "job_server.log"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    asyncio.run(serve(os.path.abspath(args.session_dir), args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
