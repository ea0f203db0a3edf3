"""ObjectRef and ObjectRefGenerator: handles to values that live in the runtime.

The public home of the names (``minray.ObjectRef``, ``minray.object_ref.ObjectRef``).
The classes are defined in ``minray._private.core.object_ref``, below the
runtime modules that use them; this module re-exports the same objects.

Example::

    import minray as ray
    ref = ray.put(1)
    assert isinstance(ref, ray.ObjectRef)
"""

from minray._private.core.object_ref import (  # noqa: F401  (re-exports)
    DynamicObjectRefGenerator, ObjectRef, ObjectRefGenerator, _rebuild_ref)

__all__ = ["ObjectRef", "ObjectRefGenerator", "DynamicObjectRefGenerator"]
