"""``NamedTuple`` records without importing ``typing``.

Every runtime process imports the record types of the wire protocol, the
scheduler and the node manager before it can do anything, and ``typing`` (with
its ``NamedTuple`` machinery) cost a fresh node manager about 6 ms of its
~37 ms of imports, on the critical path of ``init()``. This base class makes
the same records from the same class syntax with ``collections.namedtuple``:

    from __future__ import annotations        # annotations stay unevaluated
    from minray._private.named import NamedTuple

    class Part(NamedTuple):
        "One part of an object."
        offset: int
        size: int = 0

        def end(self):
            return self.offset + self.size

gives a tuple subclass with the fields in order, their defaults, the methods
and the docstring, ``_fields``, ``_replace``, ``_asdict`` and ``_make``, as
``typing.NamedTuple`` does. Modules that use it write
``from __future__ import annotations`` so that annotation names (``Any``,
``Optional[dict]``) are never looked up.
"""

import collections

_SKIP = {"__dict__", "__weakref__", "__annotations__", "__module__", "__qualname__"}


class _RecordMeta(type):
    def __new__(mcs, name, bases, ns):
        if ns.get("_root"):
            return super().__new__(mcs, name, bases, ns)
        fields = list(ns.get("__annotations__", {}))
        defaults = []
        for field in fields:
            if field in ns:
                defaults.append(ns[field])
            elif defaults:
                raise TypeError(f"{name}: field {field!r} without a default follows "
                                f"fields with defaults")
        base = collections.namedtuple(name, fields, defaults=defaults or None,
                                      module=ns.get("__module__"))
        body = {k: v for k, v in ns.items() if k not in _SKIP and k not in fields}
        body["__slots__"] = ()
        body["__module__"] = ns.get("__module__")
        body["__qualname__"] = ns.get("__qualname__", name)
        body.setdefault("__doc__", base.__doc__)
        return type.__new__(type, name, (base,), body)


class NamedTuple(metaclass=_RecordMeta):
    """Base of a record class: see the module docstring."""
    _root = True
