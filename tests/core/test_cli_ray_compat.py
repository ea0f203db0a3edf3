"""The minray command and init() as a new Ray user meets them (issue 13).

`minray start` binds the LAN address (as `ray start`), `minray status` leads with
Ray's cluster summary, `minray stop` counts what it stopped (`--force` too), every
flag shows its default, and `init()` without an address joins the newest node
started with `minray start` on this machine unless told otherwise (RAY_ADDRESS).
"""
import json
import os
import socket
import subprocess
import sys
import textwrap

import psutil
import pytest

from minray._private.node import launch as _node


def run(args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "minray.scripts", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def _free_port():
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


# The parser checks run in a child: importing minray.scripts here would add
# "scripts" to the minray namespace (tests/unit/test_namespace.py checks it stays out).
PARSER_CHECKS = textwrap.dedent("""
    import argparse, json
    from minray import scripts

    def options(parser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from options(sub)
            elif action.option_strings and not isinstance(action, argparse._HelpAction):
                yield parser, action

    missing, seen = [], 0
    for parser, action in options(scripts.build_parser()):
        seen += 1
        shown = parser._get_formatter()._get_help_string(action) if action.help else ""
        if "(default:" not in shown:
            missing.append([parser.prog, action.option_strings])
    p = scripts.build_parser()
    parsed = [p.parse_args(["stop", "--force"]).force,
              p.parse_args(["status", "--address", "127.0.0.1:6379"]).address,
              p.parse_args(["start", "--head", "--disable-usage-stats"]).disable_usage_stats]
    status = scripts.format_cluster_status(
        [{"NodeID": "aa", "Alive": True}, {"NodeID": "bb", "Alive": False}],
        {"CPU": 4.0, "object_store_memory": 2.0 * 2**30, "node:1.2.3.4": 1.0},
        {"CPU": 3.0, "object_store_memory": 2.0 * 2**30}, "2026-01-01 00:00:00")
    print(json.dumps({"missing": missing, "seen": seen, "parsed": parsed,
                      "status": status.splitlines()}))
""")


@pytest.fixture(scope="module")
def parser_checks():
    out = subprocess.run([sys.executable, "-c", PARSER_CHECKS], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_every_flag_has_help_text_that_shows_its_default(parser_checks):
    assert parser_checks["missing"] == []
    assert parser_checks["seen"] > 25


def test_stop_and_status_accept_rays_flags(parser_checks):
    assert parser_checks["parsed"] == [True, "127.0.0.1:6379", True]


def test_cluster_summary_layout(parser_checks):
    text = parser_checks["status"]
    assert text[0] == "======== Cluster status: 2026-01-01 00:00:00 ========"
    assert text[1:4] == ["Node status", "-" * 63, "Active:"]
    assert " 1 node_aa" in text and " node_bb (dead)" in text
    assert " 1.0/4.0 CPU" in text and " 0B/2.00GiB object_store_memory" in text
    assert not any("node:" in line for line in text)


DRIVER = textwrap.dedent("""
    import json, minray as ray
    kwargs = json.loads({kwargs!r})
    ray.init(_temp_dir={temp!r}, **kwargs)
    print(json.dumps([ray.get_runtime_context().get_node_id(),
                      ray.cluster_resources()["CPU"]]))
    ray.shutdown()
""")


def _driver(temp, env, **kwargs):
    out = subprocess.run([sys.executable, "-c", DRIVER.format(temp=temp,
                                                            kwargs=json.dumps(kwargs))],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_head_on_the_lan_address_joined_by_init_without_address(tmp_path):
    temp = str(tmp_path / "sessions")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MINRAY_ADDRESS")}
    out = run(["start", "--head", "--port", str(port), "--num-cpus", "3", "--temp-dir", temp,
               "--include-dashboard", "false", "--disable-usage-stats"], env=env)
    assert out.returncode == 0, out.stderr
    try:
        session = _node.find_running_session(temp)
        with open(os.path.join(session, "cluster.json")) as f:
            info = json.load(f)
        lan = _node.lan_address()
        assert info["node_ip_address"] == lan
        assert f"--address {lan}:{port}" in out.stdout        # the join line, as printed

        status = run(["status", "--temp-dir", temp], env=env)
        assert status.returncode == 0, status.stderr
        lines = status.stdout.splitlines()
        assert lines[0].startswith("======== Cluster status:") and lines[1] == "Node status"
        assert f" 1 node_{info['node_id']}" in lines and " 0.0/3.0 CPU" in lines
        for address in (f"{lan}:{port}", f"127.0.0.1:{port}"):
            by_address = run(["status", "--address", address, "--temp-dir", temp], env=env)
            assert by_address.returncode == 0 and "Cluster status" in by_address.stdout, \
                by_address.stderr

        # init() with no address joins it; RAY_ADDRESS=local or resources: a private one.
        assert _driver(temp, env) == [info["node_id"], 3.0]
        assert _driver(temp, dict(env, RAY_ADDRESS=f"{lan}:{port}")) == [info["node_id"], 3.0]
        private = _driver(temp, dict(env, RAY_ADDRESS="local"))
        assert private[0] != info["node_id"]
        assert _driver(temp, env, num_cpus=1)[1] == 1.0
        assert _driver(temp, dict(env, RAY_ADDRESS="local"), address="auto") == \
            [info["node_id"], 3.0]
    finally:
        nm_pid = int(open(os.path.join(session, "nm.ready")).read())
        tree = [psutil.Process(nm_pid)] + psutil.Process(nm_pid).children(recursive=True)
        stop = run(["stop", "--temp-dir", temp], env=env)
    assert stop.returncode == 0
    assert f"stopped 1 node(s), {len(tree)} process(es)" in stop.stdout, stop.stdout
    gone, alive = psutil.wait_procs(tree, timeout=10)
    assert not alive
    again = run(["stop", "--temp-dir", temp], env=env)
    assert "stopped 0 node(s)" in again.stdout


KEEPER = textwrap.dedent("""
    import numpy as np, minray as ray
    ray.init(address="auto", namespace="keep", _temp_dir={temp!r})
    @ray.remote
    class Keeper:
        def hold(self):
            self.ref = ray.put(np.ones(1 << 20))
            return True
    k = Keeper.options(name="k", lifetime="detached").remote()
    print(ray.get(k.hold.remote()))
""")


@pytest.mark.slow
def test_stop_force_kills_the_node_and_removes_its_shared_memory(tmp_path):
    temp = str(tmp_path / "sessions")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MINRAY_ADDRESS")}
    out = run(["start", "--head", "--port", str(_free_port()), "--num-cpus", "1",
               "--node-ip-address", "127.0.0.1", "--temp-dir", temp,
               "--include-dashboard", "false"], env=env)
    assert out.returncode == 0, out.stderr
    session = _node.find_running_session(temp)
    nm_pid = int(open(os.path.join(session, "nm.ready")).read())
    held = subprocess.run([sys.executable, "-c", KEEPER.format(temp=temp)], capture_output=True,
                          text=True, timeout=120, env=env)
    assert held.returncode == 0, held.stderr
    prefix = "mr" + os.path.basename(session)[-8:] + "_"
    assert any(n.startswith(prefix) for n in os.listdir("/dev/shm"))
    tree = [psutil.Process(nm_pid)] + psutil.Process(nm_pid).children(recursive=True)
    stop = run(["stop", "--force", "--temp-dir", temp], env=env)
    assert "stopped 1 node(s)" in stop.stdout, stop.stdout
    gone, alive = psutil.wait_procs(tree, timeout=10)
    assert not alive
    assert not any(n.startswith(prefix) for n in os.listdir("/dev/shm"))
    assert not os.path.exists(session)
