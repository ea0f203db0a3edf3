"""The runtime's own voice goes through logging.getLogger("minray"), and init's
logging options work as Ray 2.60's: ``logging_level`` sets the driver's "minray"
logger level, ``logging_format`` its handlers' format, ``configure_logging=False``
leaves both alone, ``log_to_driver=False`` keeps workers' output out of the driver.

Drivers run as real subprocesses so that their stderr is what a user would see.
"""

import ast
import logging
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

import minray as ray
from minray._private import log as mlog

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _driver(code, timeout=120):
    env = dict(os.environ, RAY_ADDRESS="local")
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, timeout=timeout, env=env)
    assert out.returncode == 0, out.stderr
    return out


def test_logging_level_and_format_set_the_minray_logger(shutdown_only):
    ray.init(num_cpus=1, local_mode=True, logging_level="warning",
             logging_format="%(levelname)s|%(name)s|%(message)s")
    logger = logging.getLogger("minray")
    assert logger.level == logging.WARNING
    assert not logger.propagate            # as Ray's "ray" logger
    formats = {h.formatter._fmt for h in logger.handlers}
    assert formats == {"%(levelname)s|%(name)s|%(message)s"}
    ray.shutdown()
    ray.init(num_cpus=1, local_mode=True, logging_level=logging.DEBUG)
    assert logger.level == logging.DEBUG
    ray.shutdown()
    mlog.configure(None, mlog.LOGGER_FORMAT)   # back to the defaults for later tests
    assert logger.level == logging.INFO


def test_configure_logging_false_leaves_the_logger_alone(shutdown_only):
    logger = logging.getLogger("minray")
    logger.setLevel(logging.ERROR)
    try:
        ray.init(num_cpus=1, local_mode=True, configure_logging=False,
                 logging_level=logging.DEBUG)
        assert logger.level == logging.ERROR
    finally:
        logger.setLevel(logging.INFO)


@pytest.mark.parametrize("level", ["loud", 3.5, True])
def test_bad_logging_level_is_refused_with_its_value(level, shutdown_only):
    with pytest.raises(ValueError, match="logging_level"):
        ray.init(num_cpus=1, local_mode=True, logging_level=level)
    assert not ray.is_initialized()


def test_runtime_warnings_use_the_format_and_the_level():
    # A local-mode warning (an infeasible request) goes through the minray logger:
    # with the given format at WARNING, and not at all at ERROR.
    code = """
        import logging, minray as ray
        ray.init(num_cpus=1, local_mode=True, logging_level=%r,
                 logging_format="<%%(levelname)s %%(name)s> %%(message)s")
        @ray.remote(num_cpus=8)
        def f():
            return 1
        f.remote()
        ray.shutdown()
    """
    out = _driver(code % "WARNING")
    assert "<WARNING minray.local>" in out.stderr and "can never provide" in out.stderr, \
        out.stderr
    out = _driver(code % "ERROR")
    assert "can never provide" not in out.stderr, out.stderr


def test_log_to_driver_false_keeps_worker_output_out_of_the_driver():
    code = """
        import minray as ray
        ray.init(num_cpus=1, log_to_driver=%r)
        @ray.remote
        def f():
            print("hello-from-the-worker", flush=True)
            return 1
        assert ray.get(f.remote()) == 1
        import time; time.sleep(1.0)    # the log reader's poll interval is 0.1 s
        ray.shutdown()
    """
    assert "hello-from-the-worker" in _driver(code % True).stdout
    assert "hello-from-the-worker" not in _driver(code % False).stdout


def test_runtime_code_does_not_print():
    # print() is for user-facing CLI output and examples in docstrings only.
    allowed = {"scripts.py", "_tour.py", "job_submission/cli.py", "util/state/cli.py"}
    offenders = []
    for path in (ROOT / "corelib").rglob("*.py"):
        rel = path.relative_to(ROOT / "corelib").as_posix()
        if rel in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                offenders.append(f"{rel}:{node.lineno}")
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "print_exc":
                offenders.append(f"{rel}:{node.lineno} (traceback.print_exc)")
    assert not offenders, offenders
