"""Modules imported on first use, to keep them off the node manager's start-up.

``cloudpickle = lazy_module("cloudpickle", globals())`` binds a placeholder; the
first attribute read imports the module and puts it in the importer's globals in
the placeholder's place, so later reads cost nothing extra.
"""

import importlib


class _LazyModule:
    __slots__ = ("_name", "_namespace", "_as")

    def __init__(self, name, namespace, as_name):
        self._name, self._namespace, self._as = name, namespace, as_name

    def __getattr__(self, attr):
        module = importlib.import_module(self._name)
        self._namespace[self._as] = module
        return getattr(module, attr)

    def __repr__(self):
        return f"<module {self._name!r}, imported on first use>"


def lazy_module(name, namespace):
    """A placeholder for module ``name`` that ``namespace`` (a module's globals) holds,
    under the last part of ``name``, until first use."""
    return _LazyModule(name, namespace, name.rsplit(".", 1)[-1])
