"""Progress output is for terminals: Data's progress bars and Tune's live table show on a
TTY and stay quiet when output goes to a pipe or a file (CI logs, `> out.txt`).

Each case runs a small script twice, once with stdout/stderr on a pseudo-terminal and
once on pipes, so the test fails both if the output vanished and if it leaked.
"""
import os
import pty
import subprocess
import sys
import textwrap

import pytest

DATA = textwrap.dedent("""
    import minray as ray
    ray.init(num_cpus=2)
    ds = ray.data.range(2000, override_num_blocks=8).map_batches(lambda b: b)
    assert ds.count() == 2000
    print("DONE")
""")

TUNE = textwrap.dedent("""
    import tempfile
    import minray as ray
    from minray import tune
    ray.init(num_cpus=2)
    def train(config):
        for step in range(3):
            tune.report({"score": config["x"] * step})
    tuner = tune.Tuner(train, param_space={"x": tune.grid_search([1, 2])},
                       tune_config=tune.TuneConfig(metric="score", mode="max"),
                       run_config=tune.RunConfig(storage_path=tempfile.mkdtemp()))
    assert len(tuner.fit()) == 2
    print("DONE")
""")


def run_on_pipes(script):
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out.stderr
    return out.stdout + out.stderr


def run_on_tty(script):
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:        # EIO: the child side closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(timeout=180) == 0, b"".join(chunks)[-2000:]
    return b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.slow
@pytest.mark.parametrize("script,marker", [(DATA, "blocks"), (TUNE, "Trial name")],
                         ids=["data-progress-bars", "tune-live-table"])
def test_progress_shows_on_a_terminal_and_is_quiet_on_a_pipe(script, marker):
    on_tty = run_on_tty(script)
    assert "DONE" in on_tty and marker in on_tty
    on_pipe = run_on_pipes(script)
    assert "DONE" in on_pipe
    assert marker not in on_pipe and "\x1b[" not in on_pipe
