"""Search-space primitives: ``tune.uniform(0, 1)``, ``tune.choice([...])``, ``grid_search``...

A param_space is a (nested) dict whose leaves are constants, ``Domain`` objects
(sampled once per trial), ``grid_search`` markers (expanded into one trial per
value) or ``sample_from`` functions (called with the config sampled so far).
``resolve(space)`` turns one grid point of a space into a concrete config.

    space = {"lr": tune.loguniform(1e-4, 1e-1),
             "layers": tune.choice([2, 3]),
             "width": tune.sample_from(lambda config: 16 * config["layers"])}
"""

import math

import numpy as np


class Domain:
    """A distribution to draw one value from per trial (``sample()``)."""

    def sample(self, config=None):
        raise NotImplementedError

    def is_grid(self):
        return False


class Float(Domain):
    def __init__(self, lower, upper, sampler="uniform", q=None, base=10, mean=0.0, sd=1.0):
        if sampler in ("uniform", "loguniform") and not lower < upper:
            raise ValueError(f"{sampler}(lower, upper) needs lower < upper, got "
                             f"lower={lower}, upper={upper}.")
        if sampler == "loguniform" and lower <= 0:
            raise ValueError(f"loguniform needs lower > 0, got lower={lower}.")
        self.lower, self.upper, self.sampler, self.q = lower, upper, sampler, q
        self.base, self.mean, self.sd = base, mean, sd

    def sample(self, config=None):
        if self.sampler == "uniform":
            value = np.random.uniform(self.lower, self.upper)
        elif self.sampler == "loguniform":
            lo, hi = math.log(self.lower, self.base), math.log(self.upper, self.base)
            value = self.base ** np.random.uniform(lo, hi)
        else:  # normal
            value = np.random.normal(self.mean, self.sd)
        value = float(value)
        if self.q is not None:
            value = float(np.round(value / self.q) * self.q)
            if self.lower is not None:
                value = min(max(value, self.lower), self.upper)
        return value

    def __repr__(self):
        return f"Float({self.sampler}, {self.lower}, {self.upper}, q={self.q})"


class Integer(Domain):
    def __init__(self, lower, upper, sampler="uniform", q=None, base=10, inclusive=False):
        if not lower < upper + (1 if inclusive else 0):
            raise ValueError(f"randint(lower, upper) needs lower < upper, got lower={lower}, "
                             f"upper={upper}.")
        self.lower, self.upper, self.sampler, self.q = lower, upper, sampler, q
        self.base, self.inclusive = base, inclusive

    def sample(self, config=None):
        upper = self.upper + (1 if self.inclusive else 0)
        if self.sampler == "uniform":
            value = int(np.random.randint(self.lower, upper))
        else:  # log-uniform over [lower, upper)
            lo, hi = math.log(self.lower, self.base), math.log(upper, self.base)
            value = int(self.base ** np.random.uniform(lo, hi))
            value = min(max(value, self.lower), upper - 1)
        if self.q is not None:
            value = int(np.round(value / self.q) * self.q)
            value = min(max(value, self.lower), self.upper)
        return value

    def __repr__(self):
        return f"Integer({self.sampler}, {self.lower}, {self.upper}, q={self.q})"


class Categorical(Domain):
    def __init__(self, categories):
        self.categories = list(categories)
        if not self.categories:
            raise ValueError("choice() needs at least one category, got an empty list.")

    def sample(self, config=None):
        return self.categories[np.random.randint(len(self.categories))]

    def __repr__(self):
        return f"Categorical({self.categories})"


class Function(Domain):
    """``sample_from(fn)``: ``fn(config)`` sees the values sampled so far."""

    def __init__(self, func):
        if not callable(func):
            raise TypeError(f"sample_from() needs a callable, got {type(func).__name__}.")
        self.func = func

    def sample(self, config=None):
        return self.func(config)

    def __repr__(self):
        return f"sample_from({getattr(self.func, '__name__', self.func)})"


class GridSearch:
    """``grid_search(values)``: one trial per value (times ``num_samples``)."""

    def __init__(self, values):
        self.values = list(values)
        if not self.values:
            raise ValueError("grid_search() needs at least one value, got an empty list.")

    def __repr__(self):
        return f"grid_search({self.values})"


# ---- the public constructors (Ray's names and argument order) ----------------

def uniform(lower, upper):
    """A float drawn uniformly from [lower, upper]: ``tune.uniform(0, 1)``."""
    return Float(lower, upper)


def quniform(lower, upper, q):
    """A uniform float rounded to a multiple of ``q``: ``tune.quniform(0, 1, 0.1)``."""
    return Float(lower, upper, q=q)


def loguniform(lower, upper, base=10):
    """A float uniform in log space: ``tune.loguniform(1e-4, 1e-1)``."""
    return Float(lower, upper, "loguniform", base=base)


def qloguniform(lower, upper, q, base=10):
    """``loguniform`` rounded to a multiple of ``q``: ``tune.qloguniform(1e-4, 1, 5e-5)``."""
    return Float(lower, upper, "loguniform", q=q, base=base)


def randn(mean=0.0, sd=1.0):
    """A float from a normal distribution: ``tune.randn(0, 1)``."""
    return Float(None, None, "normal", mean=mean, sd=sd)


def qrandn(mean, sd, q):
    """``randn`` rounded to a multiple of ``q``: ``tune.qrandn(0, 1, 0.1)``."""
    return Float(None, None, "normal", q=q, mean=mean, sd=sd)


def randint(lower, upper):
    """An int in [lower, upper) (upper excluded): ``tune.randint(32, 512)``."""
    return Integer(lower, upper)


def qrandint(lower, upper, q=1):
    """An int in [lower, upper] (upper included) that is a multiple of ``q``."""
    return Integer(lower, upper, q=q, inclusive=True)


def lograndint(lower, upper, base=10):
    """An int in [lower, upper) drawn uniformly in log space: ``tune.lograndint(1, 1000)``."""
    return Integer(lower, upper, "loguniform", base=base)


def qlograndint(lower, upper, q, base=10):
    """``lograndint`` (upper included) rounded to a multiple of ``q``."""
    return Integer(lower, upper, "loguniform", q=q, base=base, inclusive=True)


def choice(categories):
    """One of ``categories``, uniformly: ``tune.choice(["relu", "tanh"])``."""
    return Categorical(categories)


def grid_search(values):
    """Try every value: ``{"lr": tune.grid_search([0.01, 0.1])}`` makes two trials."""
    return GridSearch(values)


def sample_from(func):
    """A value computed from the rest of the config::

        {"a": tune.uniform(0, 1), "b": tune.sample_from(lambda config: 2 * config["a"])}
    """
    return Function(func)


# ---- resolving a space into configs ------------------------------------------

def _is_grid_marker(value):
    # Ray also accepts the dict form {"grid_search": [...]}.
    return isinstance(value, GridSearch) or (
        isinstance(value, dict) and len(value) == 1 and "grid_search" in value)


def _grid_values(value):
    return value.values if isinstance(value, GridSearch) else list(value["grid_search"])


def walk(space, path=()):
    """Yield ``(path, leaf)`` for every leaf of a nested dict (lists are leaves)."""
    if isinstance(space, dict) and not _is_grid_marker(space):
        for key, value in space.items():
            yield from walk(value, path + (key,))
    else:
        yield path, space


def get_path(config, path):
    for key in path:
        config = config[key]
    return config


def set_path(config, path, value):
    for key in path[:-1]:
        config = config.setdefault(key, {})
    config[path[-1]] = value


def copy_tree(space):
    if isinstance(space, dict) and not _is_grid_marker(space):
        return {k: copy_tree(v) for k, v in space.items()}
    return space


def grid_points(space):
    """Every combination of the grid_search values, as ``[{path: value}]``.

    The first grid axis varies fastest, as in Ray.
    """
    axes = [(path, _grid_values(leaf)) for path, leaf in walk(space) if _is_grid_marker(leaf)]
    points = [{}]
    for path, values in reversed(axes):  # nest so that the first axis is innermost
        points = [{**p, path: v} for p in points for v in values]
    return points


class _Unresolved(Exception):
    pass


_PENDING = object()


class _ConfigView(dict):
    """What ``sample_from`` functions see: the config so far, readable as a dict
    or through ``spec.config.key`` (the older Ray form); reading a value that is
    not sampled yet defers the function to a later pass."""

    def __getitem__(self, key):
        value = dict.__getitem__(self, key)
        if value is _PENDING:
            raise _Unresolved(key)
        return _ConfigView(value) if isinstance(value, dict) else value

    def get(self, key, default=None):
        return self[key] if key in self else default

    def __getattr__(self, key):
        if key == "config":
            return self
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


def resolve(space, grid_point=None, overrides=None):
    """One concrete config from ``space``: grid values from ``grid_point``,
    ``overrides`` (``{path: value}``, e.g. from a searcher) win over sampling."""
    grid_point = grid_point or {}
    overrides = overrides or {}
    config = copy_tree(space)
    functions = []
    for path, leaf in walk(space):
        if path in overrides:
            set_path(config, path, overrides[path])
        elif _is_grid_marker(leaf):
            set_path(config, path, grid_point[path])
        elif isinstance(leaf, Function):
            set_path(config, path, _PENDING)
            functions.append((path, leaf))
        elif isinstance(leaf, Domain):
            set_path(config, path, leaf.sample())
    while functions:
        deferred = []
        for path, leaf in functions:
            try:
                set_path(config, path, leaf.sample(_ConfigView(config)))
            except _Unresolved:
                deferred.append((path, leaf))
        if len(deferred) == len(functions):
            names = [".".join(map(str, p)) for p, _ in deferred]
            raise ValueError(f"sample_from functions for {names} depend on each other in a "
                             "cycle; break the cycle so one can be computed first.")
        functions = deferred
    return config


def merge_partial(space, partial):
    """``{path: value}`` for a partial config (points_to_evaluate) over ``space``."""
    out = {}
    for path, value in walk(partial):
        out[path] = value
    return out


def domain_leaves(space):
    """``[(path, domain)]`` for the leaves a searcher must suggest (not sample_from)."""
    return [(p, leaf) for p, leaf in walk(space)
            if isinstance(leaf, Domain) and not isinstance(leaf, Function)]
