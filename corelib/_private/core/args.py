"""Task arguments: top-level refs out as placeholders at submission, values in at run time.

    submitter: (args, kwargs) --placeholders()--> pickled (args', kwargs') + [(pos, ref)]
    runner:    pickled (args', kwargs') + {pos: value} --resolve()--> (args, kwargs)

A top-level ObjectRef argument is passed to the function as its value (Ray's
rule); a ref nested in a list or dict stays a ref.  The submitter (CoreClient,
or local mode) swaps each top-level ref for an :class:`ArgRef` holding its
position, and the runner (a worker, or local mode) swaps the values back in.
Pure: no I/O; the caller passes the ref type (``ObjectRef``), so this module
needs no runtime types.  (An exact type test, not isinstance or a callback: this
runs on every submission.)

Example::

    >>> class Ref(str): pass
    >>> p = placeholders((1, Ref("a")), {"k": Ref("b")}, Ref)
    >>> p.args, p.kwargs, p.arg_refs
    ((1, ArgRef(0)), {'k': ArgRef(1)}, [(0, 'a'), (1, 'b')])
    >>> resolve(p.args, p.kwargs, {0: 10, 1: 20})
    ((1, 10), {'k': 20})
"""

from __future__ import annotations

from minray._private.named import NamedTuple


class ArgRef:
    """Stands in for a top-level ObjectRef argument inside the pickled args."""

    __slots__ = ("pos",)

    def __init__(self, pos):
        self.pos = pos

    def __reduce__(self):
        return (ArgRef, (self.pos,))

    def __eq__(self, other):
        return type(other) is ArgRef and other.pos == self.pos

    def __hash__(self):
        return hash(self.pos)

    def __repr__(self):
        return f"ArgRef({self.pos})"


_new_record = tuple.__new__


class Placeholders(NamedTuple):
    """Arguments with their top-level refs swapped out, and those refs by position."""
    args: tuple
    kwargs: dict
    arg_refs: list   # [(position, ref)], positions 0, 1, ... in order


def placeholders(args, kwargs, ref_type) -> Placeholders:
    """Swap each top-level ``ref_type`` instance in ``args``/``kwargs`` for an ArgRef."""
    arg_refs = []
    if any(type(a) is ref_type for a in args):
        new_args = []
        for a in args:
            if type(a) is ref_type:
                new_args.append(ArgRef(len(arg_refs)))
                arg_refs.append((len(arg_refs), a))
            else:
                new_args.append(a)
        args = tuple(new_args)
    if kwargs and any(type(v) is ref_type for v in kwargs.values()):
        kwargs = dict(kwargs)
        for k, v in kwargs.items():
            if type(v) is ref_type:
                kwargs[k] = ArgRef(len(arg_refs))
                arg_refs.append((len(arg_refs), v))
    return _new_record(Placeholders, (args, kwargs, arg_refs))   # (hot: skips __new__'s
    #                                                                 keyword handling)


def resolve(args, kwargs, values: Any):
    """(args, kwargs) with each ArgRef replaced by ``values[pos]``."""
    if not values:
        return args, kwargs
    args = tuple(values[a.pos] if type(a) is ArgRef else a for a in args)
    if kwargs:
        kwargs = {k: values[v.pos] if type(v) is ArgRef else v for k, v in kwargs.items()}
    return args, kwargs
