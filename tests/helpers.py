"""Small helpers shared by the test files (tests/ is on sys.path via its conftest)."""
import time


def wait_until(predicate, timeout=10.0, interval=0.02):
    """Poll ``predicate`` until it is truthy or ``timeout`` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
