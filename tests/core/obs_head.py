"""A head node on free ports for the observability tests (state CLI, dashboard, metrics).

Started with ``minray start --head`` in a private temp dir (never the default ports:
the machine is shared), stopped with ``minray stop --temp-dir`` at the end.
"""
import glob
import json
import os
import socket
import subprocess
import sys
import textwrap
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args, timeout=120, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)


def minray_cli(*args, timeout=60):
    return run([sys.executable, "-m", "minray.scripts", *args], timeout=timeout)


class Head:
    def __init__(self, tmp_path, num_cpus=2):
        self.temp_dir = str(tmp_path / "sessions")
        self.dashboard_port = free_port()
        out = minray_cli("start", "--head", "--num-cpus", str(num_cpus), "--temp-dir",
                         self.temp_dir, "--port", str(free_port()), "--dashboard-port",
                         str(self.dashboard_port))
        assert out.returncode == 0, out.stderr + out.stdout
        [self.session_dir] = [os.path.dirname(p) for p in
                              glob.glob(os.path.join(self.temp_dir, "*", "head.json"))]
        self.url = f"http://127.0.0.1:{self.dashboard_port}"

    def driver(self, body, timeout=120):
        """Run ``body`` as a driver script joined to this head; return its stdout."""
        script = "import minray as ray\n" \
                 f"ray.init(address={self.session_dir!r})\n" + textwrap.dedent(body)
        out = run([sys.executable, "-c", script], timeout=timeout)
        assert out.returncode == 0, out.stderr + out.stdout
        return out.stdout

    def get(self, path, timeout=30):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
            body = resp.read()
            return resp.status, resp.headers.get("Content-Type", ""), body

    def get_json(self, path):
        return json.loads(self.get(path)[2])

    def job_server_pid(self):
        with open(os.path.join(self.session_dir, "job_server.json")) as f:
            return json.load(f)["pid"]

    def stop(self):
        out = minray_cli("stop", "--temp-dir", self.temp_dir)
        assert "stopped 1 node" in out.stdout, out.stdout + out.stderr
