"""The compiled hot path beyond the frame codec: ids, resources, deps.

Each module is tested through a fixture that yields the compiled module and
its pure-Python twin; the property tests drive both with the same random
inputs and require identical results and identical errors. The compiled
parametrization fails (it does not skip) when the extension is not built,
unless MINRAY_NO_EXTENSIONS=1 asks for the twins only.
"""

import doctest
import importlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minray._ext
from minray._ext import deps_py, ids_py, resources_py

TWINS = {"ids": ids_py, "resources": resources_py, "deps": deps_py}


def compiled(name):
    if minray._ext.NO_EXTENSIONS:
        pytest.skip("MINRAY_NO_EXTENSIONS=1: testing the pure-Python twins only")
    try:
        return importlib.import_module(f"minray._ext._{name}")
    except ImportError as exc:
        pytest.fail(f"minray._ext._{name} is not built ({exc}); run `pip install -e .` "
                    "or `python setup.py build_ext --inplace`", pytrace=False)


def both(name):
    return [compiled(name), TWINS[name]]


@pytest.fixture(params=["compiled", "twin"])
def ids(request):
    return compiled("ids") if request.param == "compiled" else ids_py


@pytest.fixture(params=["compiled", "twin"])
def res(request):
    return compiled("resources") if request.param == "compiled" else resources_py


@pytest.fixture(params=["compiled", "twin"])
def deps(request):
    return compiled("deps") if request.param == "compiled" else deps_py


def outcome(fn, *args):
    """(result, None) or (None, (exception type, message)): comparable across twins."""
    try:
        return fn(*args), None
    except Exception as exc:  # noqa: BLE001 - the point is to compare any error
        return None, (type(exc), str(exc))


@pytest.mark.parametrize("module", [ids_py, resources_py, deps_py])
def test_twin_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_the_runtime_uses_the_compiled_modules_unless_told_not_to():
    names = {m.__name__.rsplit(".", 1)[1] for m in minray._ext.MODULES}
    # Every module, whatever others are added (submit, ...): all twins or all compiled.
    core = {"frame", "ids", "resources", "deps"}
    if minray._ext.NO_EXTENSIONS:
        assert all(n.endswith("_py") for n in names) and {f"{n}_py" for n in core} <= names
        assert minray._ext.USING_EXTENSIONS is False
    else:
        assert not any(n.endswith("_py") for n in names), minray._ext.IMPORT_ERRORS
        assert {f"_{n}" for n in core} <= names, minray._ext.IMPORT_ERRORS
        assert minray._ext.USING_EXTENSIONS is True


# ------------------------------------------------------------------- ids
def test_task_ids_count_up_after_the_prefix(ids):
    gen = ids.IdGenerator(b"ABCDEFGH")
    first, second = gen.new_task_id(), gen.new_task_id()
    assert first == b"ABCDEFGH" + (1).to_bytes(8, "big")
    assert second == b"ABCDEFGH" + (2).to_bytes(8, "big")
    assert gen.counter == 2 and gen.prefix == b"ABCDEFGH"
    assert len(ids.IdGenerator().prefix) == 8
    assert ids.IdGenerator().prefix != ids.IdGenerator().prefix


def test_object_ids_round_trip(ids):
    tid = ids.IdGenerator().new_task_id()
    oid = ids.object_id_for(tid, 7)
    assert len(oid) == 20 and ids.task_id_of(oid) == tid and ids.index_of(oid) == 7
    assert ids.index_of(ids.object_id_for(tid, 0xFFFFFFFF)) == 0xFFFFFFFF


@pytest.mark.parametrize("call", [
    lambda m: m.object_id_for("x" * 16, 1),
    lambda m: m.object_id_for(b"x" * 15, 1),
    lambda m: m.object_id_for(b"x" * 16, -1),
    lambda m: m.object_id_for(b"x" * 16, 1 << 32),
    lambda m: m.object_id_for(b"x" * 16, 1.0),
    lambda m: m.task_id_of(b"short"),
    lambda m: m.index_of(bytearray(20)),
    lambda m: m.IdGenerator(b"seven77"),
])
def test_bad_ids_raise_the_same_errors(call):
    a, b = (outcome(call, m) for m in both("ids"))
    assert a[1] is not None and a == b


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=8, max_size=8), st.integers(0, 50), st.integers(0, 0xFFFFFFFF))
def test_ids_twins_agree(prefix, steps, index):
    c, t = both("ids")
    gc, gt = c.IdGenerator(prefix), t.IdGenerator(prefix)
    for _ in range(steps):
        assert gc.new_task_id() == gt.new_task_id()
    tid = gc.new_task_id()
    assert tid == gt.new_task_id()
    assert c.object_id_for(tid, index) == t.object_id_for(tid, index)
    oid = c.object_id_for(tid, index)
    assert (c.task_id_of(oid), c.index_of(oid)) == (t.task_id_of(oid), t.index_of(oid))


# ------------------------------------------------------------- resources
def test_fits_uses_a_tolerance_and_ignores_zero_requests(res):
    avail = {"CPU": 0.3}
    assert res.fits(avail, {"CPU": 0.1 + 0.2})
    assert not res.fits(avail, {"CPU": 0.31})
    assert res.fits(avail, {"GPU": 0.0})
    assert not res.fits(avail, {"GPU": 0.5})


def test_add_and_subtract_round_trip(res):
    avail = {"CPU": 4.0, "memory": 100.0}
    res.subtract(avail, {"CPU": 1.5, "custom": 2.0, "GPU": 0})
    assert avail == {"CPU": 2.5, "memory": 100.0, "custom": -2.0}
    res.add(avail, {"CPU": 1.5, "custom": 2.0})
    assert avail == {"CPU": 4.0, "memory": 100.0, "custom": 0.0}
    assert res.total([{"CPU": 1}, {"CPU": 2, "GPU": 1}]) == {"CPU": 3.0, "GPU": 1.0}


amounts = st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 1e9])
resource_dicts = st.dictionaries(st.sampled_from(["CPU", "GPU", "memory", "x"]), amounts)


@settings(max_examples=300, deadline=None)
@given(resource_dicts, st.lists(st.tuples(st.integers(0, 99), resource_dicts), max_size=12))
def test_resources_twins_agree(available, requests):
    c, t = both("resources")
    ac, at = dict(available), dict(available)
    for _, r in requests:
        assert c.fits(ac, r) == t.fits(at, r)
    assert ac == at
    for _, r in requests:
        c.add(ac, r)
        t.add(at, r)
    assert ac == pytest.approx(at)
    assert c.total([r for _, r in requests]) == pytest.approx(t.total([r for _, r in requests]))


# ------------------------------------------------------------------ deps
def test_tasks_become_ready_in_the_order_they_waited(deps):
    d = deps.DependencyTable()
    assert d.watch("t1", [b"a", b"b"]) == [b"a", b"b"]
    assert d.watch("t2", [b"a"]) == []          # already subscribed to a
    assert d.watch("t3", []) == [] and "t3" not in d
    assert d.missing("t1") == 2 and len(d) == 2
    assert d.resolve(b"a") == ["t2"]
    assert d.resolve(b"a") == []                 # a second completion is a no-op
    assert d.resolve(b"b") == ["t1"]
    assert len(d) == 0 and d.missing("t1") == 0


def test_duplicate_arguments_count_once_and_forget_drops_a_task(deps):
    d = deps.DependencyTable()
    d.watch("t", [b"x", b"x", b"y"])
    assert d.missing("t") == 2
    assert d.forget("t") is True and d.forget("t") is False
    assert d.resolve(b"x") == [] and d.resolve(b"y") == []


def test_watching_a_task_twice_is_refused(deps):
    d = deps.DependencyTable()
    d.watch("t", [b"x"])
    with pytest.raises(ValueError, match="already waiting"):
        d.watch("t", [b"y"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(0, 9), max_size=5), max_size=10),
       st.permutations(list(range(10))))
def test_deps_twins_agree(task_args, order):
    c, t = both("deps")
    dc, dt = c.DependencyTable(), t.DependencyTable()
    for i, args in enumerate(task_args):
        oids = [bytes([a]) for a in args]
        assert dc.watch(i, oids) == dt.watch(i, oids)
    ready_c, ready_t = [], []
    for o in order:
        ready_c += dc.resolve(bytes([o]))
        ready_t += dt.resolve(bytes([o]))
    assert ready_c == ready_t
    # Every task with arguments became ready exactly once.
    assert sorted(ready_c) == [i for i, a in enumerate(task_args) if a]
    assert len(dc) == len(dt) == 0


# ------------------------------------------------------------ twins in sync
def _public_surface(module):
    """Public names of a module, and the public attributes of each public class."""
    out = set()
    for name in dir(module):
        if name.startswith("_"):
            continue
        value = getattr(module, name)
        if type(value) is type(importlib):
            continue   # an imported module (os, struct)
        if not str(getattr(value, "__module__", None) or "minray").startswith("minray"):
            continue   # imported from the standard library (typing.NamedTuple, ...)
        out.add(name)
        if isinstance(value, type) and not issubclass(value, BaseException):
            out.update(f"{name}.{a}" for a in vars(value) if not a.startswith("_"))
    return out


@pytest.mark.parametrize("name", ["frame", "ids", "resources", "deps", "policy", "submit",
                                  "csvnum"])
def test_compiled_module_and_twin_have_the_same_names(name):
    # A function removed from (or added to) one twin must go from (to) the other too.
    twin = importlib.import_module(f"minray._ext.{name}_py")
    assert _public_surface(compiled(name)) == _public_surface(twin)
