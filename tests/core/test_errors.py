"""Core I: errors a user sees — from remote code, from bad input, from misuse.

A task's exception comes back from ``get`` as an instance of both
``RayTaskError`` and the original type, with the remote traceback; a failed
argument fails its dependants; what cannot be pickled is named; invalid
options fail when they are given; API misuse raises the error Ray raises.
"""

import os
import subprocess
import sys
import textwrap
import threading
import time

import psutil
import pytest

import minray as ray
from minray.exceptions import RayError, RayTaskError


class CustomError(Exception):
    """A user exception with an attribute (defined at module level, importable)."""

    def __init__(self, message, code=0):
        super().__init__(message)
        self.code = code

    def __reduce__(self):
        return (CustomError, (self.args[0], self.code))


class LockHolder:
    def __init__(self):
        self.name = "holder"
        self.my_mutex = threading.Lock()


# ------------------------------------------------------------ task errors
@pytest.mark.both_backends
def test_task_exception_is_value_error_and_ray_task_error(ray_module):
    @ray.remote
    def raises_value_error(x):
        if x > 0:
            raise ValueError(f"boom-{x}")
        return x

    with pytest.raises(ValueError) as info:
        ray.get(raises_value_error.remote(123))
    err = info.value
    assert isinstance(err, RayTaskError) and isinstance(err, RayError)
    text = str(err)
    assert "raises_value_error" in text
    assert 'raise ValueError(f"boom-{x}")' in text      # the remote source line
    assert "boom-123" in text
    assert isinstance(err.cause, ValueError) and err.cause.args == ("boom-123",)
    assert 'raise ValueError(f"boom-{x}")' in err.traceback_str
    # The same error also catches as RayTaskError.
    with pytest.raises(RayTaskError):
        ray.get(raises_value_error.remote(1))


@pytest.mark.both_backends
def test_custom_exception_type_and_attributes(ray_module):
    @ray.remote
    def fail():
        raise CustomError("custom failure", code=42)

    with pytest.raises(CustomError) as info:
        ray.get(fail.remote())
    assert isinstance(info.value, RayTaskError)
    assert info.value.code == 42
    assert info.value.cause.code == 42


@pytest.mark.both_backends
def test_unpicklable_exception_still_reaches_the_driver(ray_module):
    @ray.remote
    def fail():
        err = RuntimeError("the original message")
        err.lock = threading.Lock()        # makes the exception unpicklable
        raise err

    with pytest.raises(RayTaskError) as info:
        ray.get(fail.remote(), timeout=30)
    assert "the original message" in str(info.value)


@pytest.mark.both_backends
def test_nested_task_error_propagates(ray_module):
    @ray.remote
    def inner_fails():
        raise ValueError("deep failure")

    @ray.remote
    def outer_calls():
        return ray.get(inner_fails.remote())

    with pytest.raises(ValueError) as info:
        ray.get(outer_calls.remote(), timeout=30)
    assert isinstance(info.value, RayTaskError)
    text = str(info.value)
    assert "deep failure" in text
    assert "inner_fails" in text and "outer_calls" in text


@pytest.mark.both_backends
def test_failed_argument_fails_dependent_task(ray_module, tmp_path):
    marker = str(tmp_path / "dependent-ran")

    @ray.remote
    def producer():
        raise ValueError("producer failed")

    @ray.remote
    def consumer(x, path):
        open(path, "w").close()
        return x

    bad = producer.remote()
    dependent = consumer.remote(bad, marker)
    chained = consumer.remote(dependent, marker)
    for ref in (dependent, chained):
        with pytest.raises(ValueError, match="producer failed") as info:
            ray.get(ref, timeout=30)
        assert isinstance(info.value, RayTaskError)
        assert "producer" in str(info.value)
    time.sleep(0.2)
    assert not os.path.exists(marker), "the dependent task ran with a failed argument"


@pytest.mark.both_backends
def test_failed_kwarg_fails_dependent_task(ray_module):
    @ray.remote
    def producer():
        raise KeyError("missing")

    @ray.remote
    def consumer(*, x):
        return x

    with pytest.raises(KeyError):
        ray.get(consumer.remote(x=producer.remote()), timeout=30)


# --------------------------------------------------------- serialization
@pytest.mark.both_backends
def test_unpicklable_argument_names_the_attribute(ray_module):
    @ray.remote
    def use(x):
        return x.name

    with pytest.raises(TypeError) as info:
        use.remote(LockHolder())
    assert "my_mutex" in str(info.value)
    # The runtime is fine afterwards.
    assert ray.get(use.remote(type("Picklable", (), {"name": "ok"})())) == "ok"


@pytest.mark.both_backends
def test_unpicklable_put_raises_type_error(ray_module):
    with pytest.raises(TypeError) as info:
        ray.put({"outer": LockHolder()})
    assert "my_mutex" in str(info.value)


@pytest.mark.both_backends
def test_unpicklable_return_value_is_an_error(ray_module):
    @ray.remote
    def returns_lock():
        return LockHolder()

    with pytest.raises(RayTaskError) as info:
        ray.get(returns_lock.remote(), timeout=30)
    assert "my_mutex" in str(info.value) or "lock" in str(info.value)
    # The worker survives and runs the next task.
    assert ray.get(ray.remote(lambda: "next").remote(), timeout=30) == "next"


# --------------------------------------------------------------- options
def _plain():
    return 1


@pytest.mark.parametrize("options", [
    {"num_cpus": -1},
    {"num_gpus": -1},
    {"memory": -5},
    {"max_retries": -2},
    {"resources": {"CPU": 1}},
    {"retry_exceptions": [int]},
    {"not_an_option": 1},
], ids=lambda o: ",".join(f"{k}={v!r}" for k, v in o.items()))
def test_invalid_options_raise_value_error(options):
    # No runtime needed: options are checked when they are given.
    with pytest.raises(ValueError):
        ray.remote(**options)(_plain)
    with pytest.raises(ValueError):
        ray.remote(_plain).options(**options)


@pytest.mark.parametrize("options", [
    {"num_returns": "x"},
    {"max_retries": "a"},
    {"num_cpus": "1"},
], ids=lambda o: ",".join(f"{k}={v!r}" for k, v in o.items()))
def test_wrongly_typed_options_raise_type_error(options):
    # Ray 2.60 raises TypeError for an option of the wrong type (Option.validate's
    # type constraint); minray's error is also a ValueError, like every bad option.
    with pytest.raises(TypeError) as info:
        ray.remote(**options)(_plain)
    assert isinstance(info.value, ValueError)
    with pytest.raises(TypeError):
        ray.remote(_plain).options(**options)


def test_remote_decorator_rejects_positional_arguments():
    with pytest.raises(TypeError):
        ray.remote(_plain, num_cpus=1)


# ------------------------------------------------------------- API misuse
@pytest.mark.both_backends
def test_calling_remote_function_directly(ray_module):
    @ray.remote
    def f():
        return 1

    with pytest.raises(TypeError, match=r"\.remote\(\)"):
        f()


@pytest.mark.both_backends
def test_get_of_list_with_non_ref_is_type_error(ray_module):
    with pytest.raises(TypeError):
        ray.get([ray.put(1), 2])


@pytest.mark.both_backends
def test_get_of_non_ref_is_value_error(ray_module):
    # Ray: "Invalid type of object refs, <class 'int'>, is given." (a ValueError).
    with pytest.raises(ValueError):
        ray.get(1)
    with pytest.raises(ValueError):
        ray.get("not a ref")


@pytest.mark.both_backends
def test_get_of_dict_is_value_error(ray_module):
    with pytest.raises(ValueError):
        ray.get({"a": ray.put(1)})


@pytest.mark.both_backends
def test_wait_argument_errors(ray_module):
    ref = ray.put(1)
    with pytest.raises(ValueError):
        ray.wait([ref], num_returns=2)
    with pytest.raises(ValueError):
        ray.wait([ref, ref])
    with pytest.raises(TypeError):
        ray.wait(ref)
    with pytest.raises(TypeError):
        ray.wait([ref, 5])


@pytest.mark.both_backends
def test_init_twice(ray_module):
    with pytest.raises(RuntimeError):
        ray.init()
    with pytest.raises(RuntimeError):
        ray.init(num_cpus=1)
    ray.init(ignore_reinit_error=True)
    # Still the same runtime.
    assert ray.is_initialized()
    assert ray.cluster_resources()["CPU"] == 4.0
    assert ray.get(ray.remote(lambda: "same").remote()) == "same"


# ----------------------------------------------------------------- auto-init
AUTO_INIT_SCRIPT = textwrap.dedent("""
    import os
    import psutil
    import minray as ray

    assert not ray.is_initialized()

    @ray.remote
    def f(x):
        return x + 1, os.getpid()

    value, pid = ray.get(f.remote(1))
    assert pid != os.getpid()
    print("RESULT", value, ray.is_initialized(), flush=True)
    print("CHILDREN", " ".join(str(p.pid) for p in
                               psutil.Process().children(recursive=True)), flush=True)
""")


def _gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_auto_init_on_first_remote_call(tmp_path):
    script = tmp_path / "auto_init.py"
    script.write_text(AUTO_INIT_SCRIPT)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines()
                 if line.startswith(("RESULT", "CHILDREN")))
    assert lines["RESULT"] == "2 True"
    children = [int(p) for p in lines["CHILDREN"].split()]
    assert children, "no runtime processes were started"
    # The runtime the driver started went away with it.
    deadline = time.monotonic() + 10
    while not all(_gone(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(p) for p in children)
