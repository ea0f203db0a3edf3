"""Application metrics: Counter, Gauge and Histogram, as ``ray.util.metrics``.

    from minray.util.metrics import Counter, Gauge, Histogram
    requests = Counter("app_requests", description="Requests served.", tag_keys=("route",))
    requests.inc(tags={"route": "/"})
    latency = Histogram("app_latency_s", boundaries=[0.01, 0.1, 1.0], tag_keys=("route",))
    latency.observe(0.03, tags={"route": "/"})

Each process keeps cumulative values per tag set and reports them to its node
manager about once a second (and when a state query asks: see
_private/task_events.py); the node sums them over processes and the head's
dashboard serves them, with the runtime's own counters, as Prometheus text at
``/metrics``. Metric names are exported as given.
"""

import threading

from minray._private.observability import task_events

_lock = threading.Lock()
_registry = {}       # name -> Metric
_dirty = set()       # (name, tags) changed since the last report


class Metric:
    """What Counter, Gauge and Histogram share: a name, a description, tag keys,
    default tags, and the check that every tag key gets a value."""

    KIND = None

    def __init__(self, name, description="", tag_keys=None):
        if not isinstance(name, str) or not name:
            raise ValueError(f"A metric name must be a non-empty string, got {name!r}.")
        if tag_keys is None:
            tag_keys = ()
        if not isinstance(tag_keys, tuple):
            raise TypeError(f"tag_keys should be a tuple type, got: {type(tag_keys)}")
        for key in tag_keys:
            if not isinstance(key, str):
                raise TypeError(f"Tag keys must be str, got {type(key)}.")
        self._name = name
        self._description = description or ""
        self._tag_keys = tag_keys
        self._default_tags = {}
        self._values = {}     # tags tuple -> value
        with _lock:
            old = _registry.get(name)
            if old is not None and old.KIND == self.KIND:
                # The same metric made again (say, inside each task): one series, as Ray.
                self._values = old._values
            _registry[name] = self
        task_events.add_flusher(_report)

    @property
    def info(self):
        """Name, description, tag keys and default tags (as Ray's ``Metric.info``)."""
        return {"name": self._name, "description": self._description,
                "tag_keys": self._tag_keys, "default_tags": dict(self._default_tags)}

    def set_default_tags(self, default_tags):
        """Tags used when a call does not give them (keys must be among tag_keys).

        Example::

            c = Counter("hits", tag_keys=("route",)); c.set_default_tags({"route": "/"})
            c.inc()
        """
        for key, value in default_tags.items():
            if key not in self._tag_keys:
                raise ValueError(f"Unrecognized tag key {key!r}: this metric's tag keys are "
                                 f"{self._tag_keys}.")
            if not isinstance(value, str):
                raise TypeError(f"Tag values must be str, got {type(value)} for {key!r}.")
        self._default_tags = dict(default_tags)
        return self

    def _tags(self, tags):
        merged = dict(self._default_tags)
        if tags:
            for key, value in tags.items():
                if key not in self._tag_keys:
                    raise ValueError(f"Unrecognized tag key {key!r} for metric "
                                     f"{self._name!r}: its tag keys are {self._tag_keys}.")
                if not isinstance(value, str):
                    raise TypeError(f"Tag values must be str, got {type(value)} for {key!r}.")
            merged.update(tags)
        missing = [k for k in self._tag_keys if k not in merged]
        if missing:
            raise ValueError(f"Missing value for tag key(s): {', '.join(missing)} (metric "
                             f"{self._name!r}); pass tags={{...}} or set_default_tags().")
        return tuple((k, merged[k]) for k in self._tag_keys)

    def _point(self, tags, value):
        return (self.KIND, self._name, self._description, tags, value, None)


class Counter(Metric):
    """A cumulative count that only goes up.

    Example::

        c = Counter("jobs_done", description="Jobs done.", tag_keys=("kind",))
        c.inc(2.0, tags={"kind": "fast"})
    """

    KIND = "counter"

    def inc(self, value=1.0, tags=None):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"value must be int or float, got {type(value)}.")
        if value <= 0:
            raise ValueError(f"value must be >0, got {value}")
        key = self._tags(tags)
        with _lock:
            self._values[key] = self._values.get(key, 0.0) + value
            _dirty.add((self._name, key))


class Gauge(Metric):
    """A value that goes up and down; the last one set wins.

    Example::

        g = Gauge("queue_length"); g.set(12)
    """

    KIND = "gauge"

    def set(self, value, tags=None):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"value must be int or float, got {type(value)}.")
        key = self._tags(tags)
        with _lock:
            self._values[key] = float(value)
            _dirty.add((self._name, key))


class Histogram(Metric):
    """Counts of observed values in buckets (upper bounds ``boundaries``), with sum and count.

    Example::

        h = Histogram("latency_s", boundaries=[0.01, 0.1, 1.0]); h.observe(0.05)
    """

    KIND = "histogram"

    def __init__(self, name, description="", boundaries=None, tag_keys=None):
        if not boundaries:
            raise ValueError("boundaries must be a non-empty list of increasing positive "
                             "numbers, e.g. [0.1, 1, 10].")
        bounds = [float(b) for b in boundaries]
        if any(b <= 0 for b in bounds) or bounds != sorted(set(bounds)):
            raise ValueError(f"Invalid boundaries {boundaries!r}: they must be positive and "
                             "strictly increasing.")
        self.boundaries = bounds
        super().__init__(name, description, tag_keys)

    @property
    def info(self):
        info = super().info
        info["boundaries"] = list(self.boundaries)
        return info

    def observe(self, value, tags=None):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"value must be int or float, got {type(value)}.")
        key = self._tags(tags)
        bucket = "+Inf"
        for b in self.boundaries:
            if value <= b:
                bucket = b
                break
        with _lock:
            cur = self._values.get(key)
            if cur is None:
                cur = self._values[key] = [0.0, 0, {b: 0 for b in self.boundaries}]
            cur[0] += value
            cur[1] += 1
            cur[2][bucket] = cur[2].get(bucket, 0) + 1
            _dirty.add((self._name, key))

    def _point(self, tags, value):
        return (self.KIND, self._name, self._description, tags, [value[0], value[1]],
                dict(value[2]))


def _report():
    """The points changed since the last report (cumulative values)."""
    with _lock:
        if not _dirty:
            return None
        out = []
        for name, tags in _dirty:
            m = _registry.get(name)
            if m is not None and tags in m._values:
                out.append(m._point(tags, m._values[tags]))
        _dirty.clear()
    return out


__all__ = ["Counter", "Gauge", "Histogram", "Metric"]
