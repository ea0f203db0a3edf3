"""Jobs: the head's HTTP job server, JobSubmissionClient and `minray job`.

One head (`minray start --head --block`) serves the whole module. Its TMPDIR is
a temporary folder and its --temp-dir the default sessions folder under it, so
the jobs' `minray.init(address="auto")` finds this head and no other one on
the machine.
"""
import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request

import psutil
import pytest

from cluster_utils import free_port
from helpers import wait_until
from minray.job_submission import JobDetails, JobStatus, JobSubmissionClient
from minray.job_submission.sdk import JobSubmissionAuthError

pytestmark = pytest.mark.slow

CHAPTER_9 = textwrap.dedent("""
    import os
    import minray
    from helper import double            # a module from the working_dir

    minray.init(address="auto")
    print(minray.cluster_resources())

    @minray.remote
    def f(x):
        return double(x)

    print("SUM", sum(minray.get([f.remote(i) for i in range(10)])))
    print("GREETING", os.environ.get("GREETING"))
    print("CWD", os.getcwd())
""")


class Head:
    pass


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("jobs")
    temp_dir = tmp / "minray-sessions"
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "MINRAY_ADDRESS", "MINRAY_CLUSTER_TOKEN",
                        "RAY_API_SERVER_ADDRESS")}
    env.update(TMPDIR=str(tmp), MINRAY_JOB_STOP_WAIT_S="1")
    out = open(tmp / "head.out", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "minray.scripts", "start", "--head", "--block",
         "--temp-dir", str(temp_dir), "--dashboard-port", str(port), "--num-cpus", "2",
         "--port", str(free_port())],
        env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def job_server_info():
        for name in os.listdir(temp_dir) if temp_dir.exists() else ():
            try:
                with open(temp_dir / name / "job_server.json") as f:
                    return temp_dir / name, json.load(f)
            except (OSError, ValueError):
                pass
        assert proc.poll() is None, (tmp / "head.out").read_text()
        return None

    found = wait_until(job_server_info, timeout=60, interval=0.05)
    assert found, (tmp / "head.out").read_text()
    h = Head()
    h.session_dir, info = found
    h.url = f"http://127.0.0.1:{port}"
    h.extra_procs = []
    assert info["url"] == h.url and info["host"] == "127.0.0.1"
    h.token = (h.session_dir / "cluster_token").read_text().strip()
    h.client = JobSubmissionClient(h.url, headers={"Authorization": f"Bearer {h.token}"})
    # The CLI finds the token in the environment, and the head by --address only.
    h.cli_env = {k: v for k, v in env.items() if k != "TMPDIR"}
    h.cli_env["MINRAY_CLUSTER_TOKEN"] = h.token
    yield h

    tree = [psutil.Process(proc.pid)] + psutil.Process(proc.pid).children(recursive=True)
    with open(h.session_dir / "job_server.json") as f:
        tree.append(psutil.Process(json.load(f)["pid"]))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    for extra in h.extra_procs:
        extra.wait(timeout=15)
    out.close()
    gone, alive = psutil.wait_procs(tree, timeout=15)
    assert not alive, f"processes left behind by the head: {alive}"


def _wait_done(client, sid, timeout=60):
    status = wait_until(lambda: client.get_job_status(sid).is_terminal(), timeout=timeout,
                        interval=0.1)
    assert status, f"job {sid} still {client.get_job_status(sid)}: {client.get_job_logs(sid)}"
    return client.get_job_info(sid)


def _working_dir(tmp_path):
    wd = tmp_path / "wd"
    wd.mkdir()
    (wd / "helper.py").write_text("def double(x):\n    return 2 * x\n")
    (wd / "script.py").write_text(CHAPTER_9)
    (wd / "big.bin").write_bytes(b"x" * 1000)
    return wd


def _cli(head, *args, timeout=90):
    return subprocess.run([sys.executable, "-m", "minray.scripts", "job", *args],
                          env=head.cli_env, capture_output=True, text=True, timeout=timeout)


def test_chapter9_script_runs_from_an_uploaded_working_dir(head, tmp_path):
    wd = _working_dir(tmp_path)
    client = head.client
    sid = client.submit_job(entrypoint="python script.py",
                            runtime_env={"working_dir": str(wd), "excludes": ["*.bin"],
                                         "env_vars": {"GREETING": "hello from env_vars"}},
                            metadata={"owner": "chapter9"})
    assert sid.startswith("raysubmit_")
    info = _wait_done(client, sid)
    logs = client.get_job_logs(sid)
    assert info.status == JobStatus.SUCCEEDED, logs
    assert isinstance(info, JobDetails) and info.driver_exit_code == 0
    assert "'CPU': 2.0" in logs and "SUM 90" in logs
    assert "GREETING hello from env_vars" in logs
    cwd = logs.split("CWD ")[1].split()[0]
    assert cwd.startswith(str(head.session_dir / "runtime_resources"))
    # big.bin excluded (the job itself may have written helper's __pycache__ there)
    assert sorted(set(os.listdir(cwd)) - {"__pycache__"}) == ["helper.py", "script.py"]
    assert info.entrypoint == "python script.py" and info.metadata == {"owner": "chapter9"}
    assert info.runtime_env["working_dir"].startswith("gcs://_ray_pkg_")
    assert info.start_time <= info.end_time
    assert os.path.exists(head.session_dir / "logs" / f"job-driver-{sid}.log")
    assert json.loads((head.session_dir / "jobs" / f"{sid}.json").read_text())["status"] == \
        "SUCCEEDED"


def test_failing_entrypoint_is_failed_with_its_exit_code(head):
    sid = head.client.submit_job(
        entrypoint="python -c \"import sys; print('about to fail'); sys.exit(3)\"")
    info = _wait_done(head.client, sid)
    assert info.status == JobStatus.FAILED and info.driver_exit_code == 3
    assert "exit code 3" in info.message and "about to fail" in info.message


STUBBORN = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    child = subprocess.Popen(["sleep", "300"])
    # SIGTERM only gets a message: the job server's SIGKILL must end this one.
    signal.signal(signal.SIGTERM, lambda *_: print("got SIGTERM", flush=True))
    with open(os.environ["PID_FILE"] + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    os.rename(os.environ["PID_FILE"] + ".tmp", os.environ["PID_FILE"])
    print("ready", flush=True)
    time.sleep(300)
""")


def test_stop_kills_the_whole_process_tree(head, tmp_path):
    (tmp_path / "stubborn.py").write_text(STUBBORN)
    pid_file = tmp_path / "pids"
    sid = head.client.submit_job(entrypoint=f"{sys.executable} {tmp_path / 'stubborn.py'}",
                                 runtime_env={"env_vars": {"PID_FILE": str(pid_file)}})
    assert wait_until(pid_file.exists, timeout=30), head.client.get_job_logs(sid)
    pids = [int(p) for p in pid_file.read_text().split()]
    assert head.client.get_job_status(sid) == JobStatus.RUNNING
    t0 = time.monotonic()
    assert head.client.stop_job(sid) is True
    info = _wait_done(head.client, sid, timeout=20)
    assert info.status == JobStatus.STOPPED, info.message
    assert time.monotonic() - t0 >= 0.9          # MINRAY_JOB_STOP_WAIT_S=1 before SIGKILL
    assert "got SIGTERM" in head.client.get_job_logs(sid)
    assert wait_until(lambda: not any(psutil.pid_exists(p) for p in pids), timeout=10)
    assert head.client.stop_job(sid) is False          # already finished


TICKER = "python -c \"import time\nfor i in range(3):\n    print('tick', i, flush=True); " \
         "time.sleep(0.3)\""


def test_tail_logs_follow_and_list(head):
    client = head.client
    first = client.submit_job(entrypoint=TICKER)
    second = client.submit_job(entrypoint=TICKER, submission_id="ticker-two")
    assert second == "ticker-two"

    async def tail():
        return "".join([chunk async for chunk in client.tail_job_logs(first)])

    text = asyncio.run(tail())
    assert [line for line in text.splitlines() if line.startswith("tick")] == \
        ["tick 0", "tick 1", "tick 2"]
    assert client.get_job_status(first) == JobStatus.SUCCEEDED     # tail ends with the job
    follow = _cli(head, "logs", "--address", head.url, "--follow", second)
    assert follow.returncode == 0, follow.stderr
    assert "tick 0" in follow.stdout and "tick 2" in follow.stdout
    jobs = {j.submission_id: j for j in client.list_jobs()}
    assert {first, second} <= set(jobs) and jobs[first].status == JobStatus.SUCCEEDED
    listed = _cli(head, "list", "--address", head.url)
    assert listed.returncode == 0 and "ticker-two" in listed.stdout
    assert client.delete_job(second) is True
    assert second not in {j.submission_id for j in client.list_jobs()}


def test_cli_submit_uploads_waits_and_streams(head, tmp_path):
    wd = _working_dir(tmp_path)
    out = _cli(head, "submit", "--address", head.url, "--working-dir", str(wd),
               "--runtime-env-json", '{"env_vars": {"GREETING": "from the CLI"}}',
               "--", "python", "script.py")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUM 90" in out.stdout and "GREETING from the CLI" in out.stdout
    assert "succeeded" in out.stdout
    sid = out.stdout.split("Job '")[1].split("'")[0]
    status = _cli(head, "status", "--address", head.url, sid)
    assert status.returncode == 0 and "SUCCEEDED" in status.stdout
    failed = _cli(head, "submit", "--address", head.url, "--", "exit 7")
    assert failed.returncode == 1 and "exit code 7" in failed.stdout


def test_unauthenticated_requests_are_refused_and_logged(head):
    with urllib.request.urlopen(head.url + "/api/version") as resp:   # no token needed
        assert json.loads(resp.read())["version"]
    for headers in ({}, {"Authorization": "Bearer not-the-token"}):
        req = urllib.request.Request(head.url + "/api/jobs/", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req)
        assert err.value.code == 401
    req = urllib.request.Request(head.url + "/api/jobs/", method="POST",
                                 data=b'{"entrypoint": "touch /tmp/never"}')
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req)
    assert err.value.code == 401
    log = (head.session_dir / "logs" / "job_server.log").read_text()
    assert "refused an unauthenticated request from 127.0.0.1: GET /api/jobs/ (no token)" in log
    assert "GET /api/jobs/ (wrong token)" in log and "POST /api/jobs/ (no token)" in log
    stranger = JobSubmissionClient(head.url, headers={"Authorization": "Bearer wrong"})
    with pytest.raises(JobSubmissionAuthError, match="MINRAY_CLUSTER_TOKEN"):
        stranger.list_jobs()

    async def tail():
        async for _ in stranger.tail_job_logs("anything"):
            pass
    with pytest.raises(JobSubmissionAuthError):
        asyncio.run(tail())                          # the log websocket is guarded too
    no_token = _cli(head, "list", "--address", head.url, "--headers", "{}")
    assert no_token.returncode == 0       # an empty --headers still gets the env's token
    env = {k: v for k, v in head.cli_env.items() if k != "MINRAY_CLUSTER_TOKEN"}
    refused = subprocess.run([sys.executable, "-m", "minray.scripts", "job", "list",
                              "--address", head.url], env=env, capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode == 1 and "401" in refused.stderr


def test_bad_input_gets_clear_errors(head, tmp_path):
    client = head.client
    with pytest.raises(RuntimeError, match="raysubmit_doesnotexist does not exist"):
        client.get_job_status("raysubmit_doesnotexist")
    with pytest.raises(RuntimeError, match="nope does not exist"):
        client.stop_job("nope")
    with pytest.raises(ValueError, match="entrypoint"):
        client.submit_job(entrypoint="")
    req = urllib.request.Request(head.url + "/api/jobs/", method="POST", data=b"{}",
                                 headers={"Authorization": f"Bearer {head.token}"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req)
    assert err.value.code == 400 and b"entrypoint" in err.value.read()
    with pytest.raises(RuntimeError, match="not supported"):
        client.submit_job(entrypoint="true", runtime_env={"pip": ["requests"]})
    with pytest.raises(ValueError, match="not a directory"):
        client.submit_job(entrypoint="true", runtime_env={"working_dir": str(tmp_path / "x")})
    client.submit_job(entrypoint="true", submission_id="dup")
    with pytest.raises(RuntimeError, match="dup already exists"):
        client.submit_job(entrypoint="true", submission_id="dup")
    missing = _cli(head, "status", "--address", head.url, "raysubmit_missing")
    assert missing.returncode == 1 and "raysubmit_missing does not exist" in missing.stderr
    empty = _cli(head, "submit", "--address", head.url)
    assert empty.returncode == 2 and "entrypoint" in empty.stderr
    with pytest.raises(ConnectionError, match="Failed to connect"):
        JobSubmissionClient(f"http://127.0.0.1:{free_port()}")


def test_job_table_survives_a_job_server_restart(head):
    from minray._private.jobs import server as job_server
    client = head.client
    done = [j.submission_id for j in client.list_jobs() if j.status.is_terminal()]
    sid = client.submit_job(entrypoint="sleep 60")
    assert wait_until(lambda: client.get_job_status(sid) == JobStatus.RUNNING, timeout=20)
    with open(head.session_dir / "job_server.json") as f:
        old = psutil.Process(json.load(f)["pid"])
    old.kill()          # a zombie until the head's `minray start` process reaps it
    assert wait_until(lambda: not psutil.pid_exists(old.pid) or
                      old.status() == psutil.STATUS_ZOMBIE, timeout=10)
    url, proc = job_server.start(str(head.session_dir), "127.0.0.1",
                                 int(head.url.rsplit(":", 1)[1]))
    head.extra_procs.append(proc)       # the head's teardown stops it; the fixture reaps it
    assert url == head.url
    jobs = {j.submission_id: j for j in client.list_jobs()}
    assert set(done) <= set(jobs)
    assert jobs[sid].status == JobStatus.RUNNING        # adopted, still running
    assert client.stop_job(sid) is True
    assert _wait_done(client, sid, timeout=20).status == JobStatus.STOPPED
