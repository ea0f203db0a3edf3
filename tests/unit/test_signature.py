"""ArgSpec (arguments checked at .remote()) agrees with Python's own call rules."""
import itertools
import pickle

import pytest

from minray._private.core.signature import ArgSpec

SHAPES = [
    lambda a, b=1, *args, c, **kw: 0, lambda a, /, b, *, c=2: 0, lambda *args, **kw: 0,
    lambda a, b, c: 0, lambda a, /, b=1, **kw: 0, lambda *, k: 0, lambda a, *args, k=1: 0,
    lambda a=1, /, *args, b, **kw: 0, lambda: 0,
]
NAMES = ["a", "b", "c", "k", "args", "kw", "z"]


def _calls():
    for n in range(5):
        for r in range(4):
            for kws in itertools.combinations(NAMES, r):
                yield tuple(range(n)), {k: 0 for k in kws}


@pytest.mark.parametrize("fn", SHAPES)
def test_argspec_accepts_exactly_the_calls_python_accepts(fn):
    spec = pickle.loads(pickle.dumps(ArgSpec.of(fn, name="f")))    # as a handle carries it
    for args, kwargs in _calls():
        try:
            fn(*args, **kwargs)
            python_ok = True
        except TypeError:
            python_ok = False
        try:
            spec.check(args, kwargs)
            ours = True
        except TypeError as exc:
            assert str(exc).startswith("f(): ")
            ours = False
        assert ours == python_ok, (args, kwargs)


def test_methods_drop_self_and_builtins_have_no_spec():
    class C:
        def m(self, x, *, y):
            return x

    spec = ArgSpec.of(C.m, drop_first=True)
    spec.check((1,), {"y": 2})
    with pytest.raises(TypeError, match="missing a required argument: 'y'"):
        spec.check((1,), {})
    assert ArgSpec.of(print) is None or ArgSpec.of(print).check(("x",), {}) is None
