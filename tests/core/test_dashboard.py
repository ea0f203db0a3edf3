"""The head's dashboard: JSON endpoints, and the page itself in headless Chromium.

Chromium runs as a subprocess (--headless --dump-dom / --screenshot) with a timeout;
the browser tests skip, saying why, only where no chromium is installed (CI installs
Debian's `chromium` package). MINRAY_UPDATE_SCREENSHOTS=1 also writes the screenshots
to docs/images/ (docs/observability.md shows them).
"""
import os
import shutil
import signal
import subprocess
import tempfile
import urllib.error
import urllib.request

import psutil
import pytest

from helpers import wait_until
from obs_head import Head

DOCS_IMAGES = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "images")


def _browser():
    for name in ("chromium", "chromium-browser", "google-chrome", "headless_shell"):
        path = shutil.which(name)
        if path:
            return path
    return None


def chromium(*args, timeout=90):
    """Run headless Chromium; kill its whole process group if it overruns."""
    browser = _browser()
    with tempfile.TemporaryDirectory(prefix="minray-chromium-") as profile:
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
               *args]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise AssertionError(f"chromium did not finish within {timeout} s")
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)   # helpers it may have left
            except ProcessLookupError:
                pass
        return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


needs_browser = pytest.mark.skipif(
    _browser() is None, reason="no chromium installed (Debian: apt-get install -y chromium)")


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    h = Head(tmp_path_factory.mktemp("dashboard"))
    rss_at_start = psutil.Process(h.job_server_pid()).memory_info().rss
    out = h.driver("""
        @ray.remote
        def prepare_data(n):
            return sum(range(n))
        @ray.remote
        class ModelServer:
            def predict(self, x):
                return 2 * x
        assert ray.get(prepare_data.remote(1000)) == 499500
        server = ModelServer.options(name="model", lifetime="detached").remote()
        assert ray.get(server.predict.remote(21)) == 42
        from minray.util.state import report_library_state
        report_library_state("tune", [{"trial_id": "trial_0001", "status": "RUNNING",
                                       "loss": 0.25}])
        print("ACTOR=" + server._actor_id.hex())
    """)
    [h.actor_id] = [ln[6:] for ln in out.splitlines() if ln.startswith("ACTOR=")]
    h.rss_at_start = rss_at_start
    yield h
    h.stop()


def test_json_endpoints_have_rays_shape(head):
    body = head.get_json("/api/v0/actors?state=ALIVE")
    assert body["result"] is True
    [actor] = body["data"]["result"]["result"]
    assert actor["class_name"] == "ModelServer" and actor["actor_id"] == head.actor_id
    tasks = head.get_json("/api/v0/tasks?filter_keys=func_or_class_name"
                          "&filter_predicates=%3D&filter_values=prepare_data")
    [task] = tasks["data"]["result"]["result"]
    assert task["state"] == "FINISHED"
    summary = head.get_json("/api/v0/tasks/summarize")["data"]["result"]
    assert summary["node_id_to_summary"]["cluster"]["summary"]["prepare_data"][
        "state_counts"] == {"FINISHED": 1}
    for resource in ("nodes", "objects", "jobs", "placement_groups", "workers"):
        assert head.get_json(f"/api/v0/{resource}")["result"] is True
    assert head.get_json("/api/v0/libraries")["data"]["tune"][0]["trial_id"] == "trial_0001"
    status = head.get_json("/api/v0/cluster_status")["data"]
    assert status["resources_total"]["CPU"] == 2
    everything = head.get_json("/api/v0/tasks?limit=100")["data"]["result"]["result"]
    newest = head.get_json("/api/v0/tasks?limit=1&tail=1")["data"]["result"]["result"]
    assert newest == everything[-1:] and len(everything) == 3   # tail=1: the newest task
    trace = head.get_json("/api/v0/timeline")
    assert any(e["name"] == "prepare_data" and e["ph"] == "X" for e in trace["traceEvents"])
    with pytest.raises(urllib.error.HTTPError) as info:
        head.get("/api/v0/bogus")
    assert info.value.code == 404


def test_reads_are_open_on_loopback_but_job_control_still_needs_the_token(head):
    status, ctype, body = head.get("/")
    assert status == 200 and b"minray" in body and ctype.startswith("text/html")
    req = urllib.request.Request(head.url + "/api/jobs/", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    assert info.value.code == 401


@needs_browser
def test_page_in_chromium_shows_a_running_actor_and_a_finished_task(head, tmp_path):
    rc, dom, err = chromium("--virtual-time-budget=8000", "--dump-dom", head.url + "/")
    assert rc == 0, err[-2000:]
    assert 'data-loaded="1"' in dom, "the page never finished its first refresh"
    # A running actor: its row, with its class and the ALIVE state cell.
    actor_rows = [r for r in dom.split("<tr>") if head.actor_id in r]
    assert actor_rows and "ModelServer" in actor_rows[0]
    assert 'class="state-ALIVE">ALIVE<' in actor_rows[0]
    # A finished task: prepare_data's row says FINISHED.
    task_rows = [r for r in dom.split("<tr>") if ">prepare_data<" in r]
    assert task_rows and 'class="state-FINISHED">FINISHED<' in task_rows[0]
    assert "trial_0001" in dom          # the Tune table a library published
    shot = tmp_path / "dashboard.png"
    rc, _, err = chromium("--virtual-time-budget=8000", "--window-size=1280,1000",
                          f"--screenshot={shot}", head.url + "/")
    assert rc == 0 and shot.stat().st_size > 10_000, err[-2000:]
    if os.environ.get("MINRAY_UPDATE_SCREENSHOTS"):
        os.makedirs(DOCS_IMAGES, exist_ok=True)
        shutil.copy(shot, os.path.join(DOCS_IMAGES, "dashboard.png"))


def test_dashboard_costs_under_50_mb(head):
    """The job server's memory growth from serving the dashboard (the page and 30 rounds
    of the polls it makes) stays far under 50 MB."""
    proc = psutil.Process(head.job_server_pid())
    for _ in range(30):
        head.get("/")
        for path in ("/api/v0/cluster_status", "/api/v0/nodes", "/api/v0/actors?limit=200",
                     "/api/v0/tasks?limit=100&tail=1", "/api/v0/objects?limit=200",
                     "/api/v0/jobs", "/api/v0/libraries", "/metrics"):
            head.get(path)
    grown = proc.memory_info().rss - head.rss_at_start
    print(f"job server RSS: {head.rss_at_start / 2**20:.1f} MiB at start, "
          f"+{grown / 2**20:.1f} MiB after serving the dashboard")
    assert grown < 50 * 2**20


def test_on_a_lan_address_dashboard_reads_need_the_token(tmp_path):
    """Served on a non-loopback address, the dashboard asks for the cluster token: a bearer
    header, or ?token= once (then a cookie). Real HTTP through the job server's app."""
    import asyncio
    from aiohttp.test_utils import TestClient, TestServer
    from minray._private.jobs import server as job_server

    session = tmp_path / "session"
    (session / "logs").mkdir(parents=True)
    manager = job_server.JobManager(str(session), "192.0.2.10")
    app = job_server.make_app(manager, "s3cret")

    async def go():
        async with TestClient(TestServer(app)) as client:
            assert (await client.get("/api/v0/nodes")).status == 401
            assert (await client.get("/")).status == 401
            assert (await client.get("/?token=wrong")).status == 401
            page = await client.get("/?token=s3cret")
            assert page.status == 200 and "minray" in await page.text()
            # The cookie now opens the reads (no node manager here: 503, not 401) ...
            assert (await client.get("/api/v0/nodes")).status == 503
            # ... but never job control.
            assert (await client.post("/api/jobs/", json={})).status == 401
    asyncio.run(go())


def test_serve_and_tune_publish_their_state_to_the_dashboard(head):
    """A real Tune run and a real Serve app, driven by a driver joined to the head: the
    dashboard's libraries endpoint shows the trials and the deployment."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    head.driver(f"""
        from minray import serve, tune

        def objective(config):
            tune.report({{"loss": config["x"] * 2}})

        tune.Tuner(objective, param_space={{"x": tune.grid_search([1, 2])}},
                   tune_config=tune.TuneConfig(metric="loss", mode="min")).fit()

        @serve.deployment
        class Echo:
            def __call__(self, request):
                return "hi"

        serve.start(http_options={{"host": "127.0.0.1", "port": {port}}})
        serve.run(Echo.bind(), name="echo_app", route_prefix="/echo")
    """, timeout=240)   # Serve's actors are detached: they run on until the head stops
    libs = head.get_json("/api/v0/libraries")["data"]
    trials = libs["tune"]
    assert len(trials) == 2 and {t["status"] for t in trials} == {"TERMINATED"}
    assert sorted(t["loss"] for t in trials) == ["2", "4"]

    def serve_rows():   # the controller publishes on its next 50 ms step after a change
        return [(r["application"], r["deployment"], r["status"], r["replicas"])
                for r in head.get_json("/api/v0/libraries")["data"].get("serve", [])]
    assert wait_until(lambda: serve_rows() == [("echo_app", "Echo", "RUNNING", "1 RUNNING")],
                      timeout=30), serve_rows()
