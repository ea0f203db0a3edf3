"""Arguments bound to a function's signature at ``.remote()``, as Ray does.

    f.remote(1, 2, c=3) -> ArgSpec.check(args, kwargs) -> TypeError now, not in a worker

An ``ArgSpec`` keeps only the shape of a signature (names, kinds, which have
defaults), so it pickles with an actor handle's method table whatever the
defaults are. The common call (positional arguments only, no keyword-only
parameters without defaults) is checked by counting; anything else goes
through ``inspect.Signature.bind``.

    spec = ArgSpec.of(lambda a, b=1, *, c: None)
    spec.check((1,), {"c": 2})      # fine
    spec.check((1,), {})            # TypeError: missing a required argument: 'c'
"""

import inspect

_P = inspect.Parameter
_DEFAULT = object()


class ArgSpec:
    __slots__ = ("params", "name", "lo", "hi", "plain", "_sig", "pos_names", "posonly",
                 "kw_names", "required_pos", "required_kw", "var_kw")

    def __init__(self, params, name):
        self.params = tuple(params)          # (name, kind, has_default)
        self.name = name
        pos = [p for p in self.params if p[1] in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)]
        self.lo = sum(1 for p in pos if not p[2])
        self.hi = None if any(p[1] == _P.VAR_POSITIONAL for p in self.params) else len(pos)
        # Positional calls that need no keyword: counting is enough.
        self.plain = not any(p[1] == _P.KEYWORD_ONLY and not p[2] for p in self.params)
        self._sig = None
        # For calls with keywords: the same rules as Signature.bind, as set lookups.
        self.pos_names = tuple(p[0] for p in pos)
        self.posonly = frozenset(p[0] for p in pos if p[1] == _P.POSITIONAL_ONLY)
        self.kw_names = frozenset(p[0] for p in self.params
                                  if p[1] in (_P.POSITIONAL_OR_KEYWORD, _P.KEYWORD_ONLY))
        self.required_pos = tuple((i, p[0]) for i, p in enumerate(pos) if not p[2])
        self.required_kw = tuple(p[0] for p in self.params
                                 if p[1] == _P.KEYWORD_ONLY and not p[2])
        self.var_kw = any(p[1] == _P.VAR_KEYWORD for p in self.params)

    def _fits(self, args, kwargs):
        n = len(args)
        if self.hi is not None and n > self.hi:
            return False
        for k in kwargs:
            if k in self.posonly and not self.var_kw:
                return False
            if k in self.kw_names:
                if k in self.pos_names[:n]:
                    return False            # given twice
            elif not self.var_kw:
                return False
        for i, k in self.required_pos:
            if i >= n and (k not in kwargs or k in self.posonly):
                return False
        for k in self.required_kw:
            if k not in kwargs:
                return False
        return True

    @classmethod
    def of(cls, fn, drop_first=False, name=None):
        """The spec of ``fn`` (None if it has no readable signature: builtins)."""
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            return None
        params = [(p.name, p.kind, p.default is not _P.empty) for p in sig.parameters.values()]
        if drop_first and params and params[0][1] != _P.VAR_POSITIONAL:
            params = params[1:]
        return cls(params, name or getattr(fn, "__qualname__", "function"))

    def __reduce__(self):
        return (ArgSpec, (self.params, self.name))

    def check(self, args, kwargs):
        """Raise TypeError (naming the function) if the call does not fit."""
        if not kwargs and self.plain and self.lo <= len(args) and \
                (self.hi is None or len(args) <= self.hi):
            return
        if self._fits(args, kwargs):
            return
        sig = self._sig
        if sig is None:
            sig = self._sig = inspect.Signature(
                [_P(n, k, default=_DEFAULT if d else _P.empty) for n, k, d in self.params])
        try:
            sig.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.name}(): {exc}") from None
