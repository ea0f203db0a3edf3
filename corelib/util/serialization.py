"""Custom serializers for types that do not pickle (as ``ray.util.register_serializer``).

    register_serializer(cls, serializer=f, deserializer=g)
        put(obj) / task arguments / results: obj -> (g, f(obj)) in the pickle
        get: g(f(obj)) rebuilds it, in whichever process reads the value

The pair is registered in this process's pickler table (``copyreg``), which the
runtime's cloudpickle-based serializer consults. The deserializer travels with
each value (by value when defined in a script), so a worker that reads the
value needs no registration of its own.

Example::

    class Conn:                         # holds a lock: does not pickle
        def __init__(self, url):
            self.url, self.lock = url, threading.Lock()

    ray.util.register_serializer(Conn, serializer=lambda c: c.url, deserializer=Conn)
    assert ray.get(ray.put(Conn("db://x"))).url == "db://x"
    ray.util.deregister_serializer(Conn)
"""

import copyreg

_REGISTERED = {}     # cls -> the reducer this module put in copyreg's table


def _rebuild(deserializer, data):
    return deserializer(data)


def register_serializer(cls, *, serializer, deserializer):
    """Use ``serializer(obj)`` / ``deserializer(data)`` for every value of type ``cls``
    that this process serializes (exact type, not subclasses, as pickle does)."""
    if not isinstance(cls, type):
        raise TypeError(f"register_serializer() takes a class, got {cls!r}.")
    if not callable(serializer) or not callable(deserializer):
        raise TypeError("register_serializer() needs callables: serializer(obj) -> data "
                        "and deserializer(data) -> obj.")

    def reduce(obj):
        return _rebuild, (deserializer, serializer(obj))
    copyreg.pickle(cls, reduce)
    _REGISTERED[cls] = reduce


def deregister_serializer(cls):
    """Forget the serializer of ``cls`` (a no-op if none is registered)."""
    reduce = _REGISTERED.pop(cls, None)
    if reduce is not None and copyreg.dispatch_table.get(cls) is reduce:
        del copyreg.dispatch_table[cls]
