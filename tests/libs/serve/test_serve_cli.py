"""`minray serve deploy | run | status | shutdown` against a head started from the shell."""
import socket
import subprocess
import sys
import textwrap

import pytest
import requests

from helpers import wait_until


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

APP = textwrap.dedent("""
    from minray import serve

    @serve.deployment
    class Greeter:
        def __init__(self, greeting):
            self.greeting = greeting
            self.punct = "."

        def reconfigure(self, config):
            self.punct = config["punct"]

        def __call__(self, request):
            return f"{self.greeting} {request.query_params['name']}{self.punct}"

    def build(args):
        return Greeter.bind(args["greeting"])

    app = Greeter.bind("hi")
""")

CONFIG = textwrap.dedent("""
    http_options: {{host: 127.0.0.1, port: {port}}}
    applications:
      - name: greet
        route_prefix: /greet
        import_path: cli_app:build
        args: {{greeting: hello}}
        deployments:
          - name: Greeter
            num_replicas: 2
            user_config: {{punct: "!"}}
            ray_actor_options: {{num_cpus: 0.25}}
""")


def minray(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "minray.scripts", *args], capture_output=True,
                          text=True, timeout=180, cwd=cwd)


@pytest.fixture
def head(tmp_path):
    temp_dir = str(tmp_path / "sessions")
    out = minray("start", "--head", "--num-cpus", "2", "--port", str(free_port()),
                 "--include-dashboard", "false", "--temp-dir", temp_dir)
    assert out.returncode == 0, out.stderr
    yield temp_dir
    minray("serve", "shutdown", "-y", "--temp-dir", temp_dir)
    stop = minray("stop", "--temp-dir", temp_dir)
    assert "stopped 1 node" in stop.stdout


@pytest.mark.slow
def test_deploy_status_run_shutdown(head, tmp_path):
    port = free_port()
    (tmp_path / "cli_app.py").write_text(APP)
    (tmp_path / "serve.yaml").write_text(CONFIG.format(port=port))
    url = f"http://127.0.0.1:{port}"

    out = minray("serve", "deploy", "serve.yaml", "--temp-dir", head, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Deployed 'greet'" in out.stdout
    # The app outlives the `deploy` command: it runs in the cluster.
    r = requests.get(url + "/greet", params={"name": "ann"}, timeout=30)
    assert (r.status_code, r.text) == (200, "hello ann!")

    out = minray("serve", "status", "--temp-dir", head)
    assert out.returncode == 0, out.stderr
    assert "greet:" in out.stdout and "RUNNING" in out.stdout and "RUNNING: 2" in out.stdout

    out = minray("serve", "run", "cli_app:app", "--name", "two", "--route-prefix", "/two",
                 "--port", str(port), "--non-blocking", "--temp-dir", head, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert requests.get(url + "/two", params={"name": "bo"}, timeout=30).text == "hi bo."

    out = minray("serve", "shutdown", "-y", "--temp-dir", head)
    assert out.returncode == 0, out.stderr

    def refused():
        try:
            requests.get(url + "/greet", params={"name": "x"}, timeout=5)
            return False
        except requests.ConnectionError:
            return True
    assert wait_until(refused, timeout=30)


def test_config_errors_name_the_cause(tmp_path):
    (tmp_path / "cli_app.py").write_text(APP)
    (tmp_path / "bad.yaml").write_text("applications: [{name: x, import_path: cli_app:app,"
                                       " deployments: [{name: Nope, num_replicas: 1}]}]")
    (tmp_path / "broken.yaml").write_text("applications: [unclosed")
    (tmp_path / "empty.yaml").write_text("http_options: {port: 1}")
    sessions = str(tmp_path / "no-sessions")
    out = minray("serve", "deploy", "broken.yaml", "--temp-dir", sessions, cwd=tmp_path)
    assert out.returncode != 0 and "not valid YAML" in out.stderr
    out = minray("serve", "deploy", "empty.yaml", "--temp-dir", sessions, cwd=tmp_path)
    assert out.returncode != 0 and "applications:" in out.stderr
    out = minray("serve", "deploy", "bad.yaml", "--temp-dir", sessions, cwd=tmp_path)
    assert out.returncode != 0 and "no running minray cluster" in out.stderr
    from minray.serve.cli import build_specs, load_config
    with pytest.raises(SystemExit, match="has no deployment 'Nope'"):
        build_specs(load_config(str(tmp_path / "bad.yaml")), str(tmp_path))
    out = minray("serve", "status", "--temp-dir", sessions)
    assert out.returncode != 0 and "minray start --head" in out.stderr
