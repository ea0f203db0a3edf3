"""Run core tests on both backends: the process runtime and local mode.

A test that uses ``ray_module`` and carries ``@pytest.mark.both_backends`` runs
twice, as ``test_x[process]`` and ``test_x[local]`` (``init(local_mode=True)``),
because Ray's semantics agree there and local mode must keep them.  Tests of
what only one backend has (parallel workers, processes, shared memory, crashes)
stay unmarked and run on the process runtime only, unchanged; what only local
mode has (the caller's thread, submission-time execution) is in
test_local_mode.py.

The process runtime is started once per module, as tests/conftest.py's
``ray_module`` does, and the local-mode one once per module too (pytest groups a
module's ``[local]`` tests together), so the second backend costs only its
tests' own time: local mode starts in about a millisecond and runs no process.
"""
import pytest

import minray

_PROCESS = None     # the unmarked tests' value too: one process runtime per module
BACKENDS = [_PROCESS, "local"]
BACKEND_IDS = ["process", "local"]


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "both_backends: run this ray_module test on the process runtime and "
                   "in local mode (tests/core/conftest.py)")


def pytest_generate_tests(metafunc):
    if "ray_module" in metafunc.fixturenames and \
            metafunc.definition.get_closest_marker("both_backends") is not None:
        metafunc.parametrize("ray_module", BACKENDS, ids=BACKEND_IDS, indirect=True,
                             scope="module")


@pytest.fixture(scope="module")
def ray_module(request):
    """One runtime shared by a module's tests: the process runtime, or local mode
    for the ``[local]`` variant of a ``both_backends`` test."""
    local = getattr(request, "param", _PROCESS) == "local"
    if minray.is_initialized():
        minray.shutdown()
    ctx = minray.init(num_cpus=4, local_mode=local)
    yield ctx
    minray.shutdown()
