"""Small helpers shared by the test files (tests/ is on sys.path via its conftest)."""
import os
import time


def wait_until(predicate, timeout=10.0, interval=0.02):
    """Poll ``predicate`` until it is truthy or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def wait_for_path(path, timeout=15.0):
    """Block (in the test) until ``path`` exists; fail the test if it never does."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout}s")
        time.sleep(0.01)


def block_until(path, timeout=30.0):
    """Block (in a task) until ``path`` exists; True if it did."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def touch(path, text=""):
    """Create ``path`` with ``text`` atomically (readers never see it half written)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def count_lines(path):
    """Lines in ``path``, 0 if it does not exist yet."""
    try:
        with open(path) as f:
            return len(f.read().splitlines())
    except FileNotFoundError:
        return 0
