"""minray's compiled hot paths, each with a pure-Python twin.

Every module here exists twice with the same public names and behaviour:
`_<name>.pyx`, compiled by setup.py with Cython into `minray._ext._<name>`,
and `<name>_py.py`, its readable twin. The rest of minray imports neither
directly; it uses the attribute of this package, which holds the compiled
module unless the environment sets MINRAY_NO_EXTENSIONS=1 or the compiled
module is not importable (not built, or built for another Python).

    frame      the wire format and its codec: length-prefixed frames, see the
               docstring of `frame_py.py` (also `minray._ext.frame.__doc__`).
    ids        task and object ids: generation, object ids of returns, parsing.
    resources  resource accounting: fits / add / subtract / total.
    deps       dependency counting: which tasks wait for which objects.
    policy     the cluster policy's loops: strategy hints, node picking, locality.
    submit     the submit queue's pump: which leased worker takes which task
               (the rest of that unit: minray._private.core.submit_queue).
    csvnum     numeric CSV records to int64/float64 columns in one pass
               (minray.data's read_csv; other text goes to pandas).  Loaded
               on first use (`minray._ext.csvnum`): no other process needs it.

The modules take and return plain bytes, ints and lists and never reach into
the runtime, so the test suite compares each pair on random inputs and CI runs
the whole suite both ways.

>>> from minray._ext import frame
>>> frame.FrameReader().feed(frame.encode(3, b"hi"))
[(3, b'hi')]
"""

import importlib
import os

__all__ = [
    "frame",
    "ids",
    "resources",
    "deps",
    "submit",
    "policy",
    "csvnum",
    "load",
    "is_compiled",
    "USING_EXTENSIONS",
    "MODULES",
    "NO_EXTENSIONS",
    "IMPORT_ERRORS",
]

# MINRAY_NO_EXTENSIONS=1 selects the twins everywhere, as msgpack's
# MSGPACK_PUREPYTHON and aiohttp's AIOHTTP_NO_EXTENSIONS do.
NO_EXTENSIONS = os.environ.get("MINRAY_NO_EXTENSIONS", "") not in ("", "0")

# Why a compiled module fell back to its twin, by name: the first place to
# look when USING_EXTENSIONS is unexpectedly False.
IMPORT_ERRORS = {}


def load(name):
    """Return the compiled module `_<name>`, or its twin `<name>_py`.

    The twin is returned when MINRAY_NO_EXTENSIONS=1 is set or the compiled
    module fails to import; the reason for the latter is kept in
    `IMPORT_ERRORS[name]`.

    >>> load("frame").HEADER_SIZE
    5
    """
    if not NO_EXTENSIONS:
        try:
            return importlib.import_module(f"{__name__}._{name}")
        except ImportError as exc:
            IMPORT_ERRORS[name] = f"{type(exc).__name__}: {exc}"
    return importlib.import_module(f"{__name__}.{name}_py")


def is_compiled(module):
    """Return True if `module` is a compiled extension rather than a twin.

    >>> is_compiled(load("frame")) == USING_EXTENSIONS
    True
    """
    return not module.__name__.endswith("_py")


frame = load("frame")
ids = load("ids")
resources = load("resources")
deps = load("deps")
submit = load("submit")
policy = load("policy")

MODULES = (frame, ids, resources, deps, submit, policy)

# True when every module above is the compiled one.
USING_EXTENSIONS = all(is_compiled(module) for module in MODULES)

# Loaded on first use: only some processes need them (0.5 ms each otherwise).
LAZY = frozenset({"csvnum"})


def __getattr__(name):
    if name in LAZY:
        module = globals()[name] = load(name)
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
