"""User metrics at the node, and the Prometheus text the dashboard's /metrics serves.

    minray.util.metrics (any process) --NOTICE metrics_report(header, points)-->
        MetricsStore.apply: the latest cumulative value per (metric, tags, process)
    dashboard /metrics --state_query("metrics")--> snapshot() --> render_prometheus()

A process reports cumulative values (a counter's total, a histogram's buckets),
so a late or repeated report never counts twice. Counters and histograms are
summed over processes; a gauge shows the value written last.

Example::

    store = MetricsStore()
    store.apply({"pid": 1}, [("counter", "hits", "Hits.", (("route", "/"),), 3.0, None)])
    assert "hits{route=\"/\"} 3.0" in render_prometheus(store.snapshot(), {})
"""

import time


class MetricsStore:
    def __init__(self):
        self.series = {}     # (name, tags, pid) -> [kind, description, value, buckets, t]

    def apply(self, header, points):
        pid = (header.get("node_id"), header.get("pid"))
        now = time.time()
        for kind, name, description, tags, value, buckets in points:
            self.series[(name, tuple(tags), pid)] = [kind, description, value, buckets, now]

    def snapshot(self):
        """[(kind, name, description, tags, value, buckets)], summed over processes."""
        merged = {}
        for (name, tags, _pid), (kind, desc, value, buckets, t) in self.series.items():
            key = (name, tags)
            cur = merged.get(key)
            if cur is None:
                merged[key] = [kind, desc, value, dict(buckets) if buckets else None, t]
                continue
            if kind == "gauge":
                if t >= cur[4]:
                    cur[2], cur[4] = value, t
            elif kind == "histogram":
                cur[2] = [cur[2][0] + value[0], cur[2][1] + value[1]]
                for b, n in (buckets or {}).items():
                    cur[3][b] = cur[3].get(b, 0) + n
            else:
                cur[2] += value
        return [(kind, name, desc, tags, value, buckets)
                for (name, tags), (kind, desc, value, buckets, _t) in sorted(merged.items())]


def _labels(tags, extra=()):
    items = list(tags) + list(extra)
    if not items:
        return ""
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in items)
    return "{" + body + "}"


def _escape(v):
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _safe_name(name):
    out = "".join(c if c.isalnum() or c in "_:" else "_" for c in name)
    return out if not out[:1].isdigit() else "_" + out


def render_prometheus(points, cluster):
    """Prometheus text format (version 0.0.4): the runtime's own counters, then user metrics."""
    lines = []

    def family(name, kind, help_text, samples):
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(f"{name}{_labels(labels)} {float(value)}")

    counts = cluster.get("task_counts") or {}
    family("minray_tasks_submitted_total", "counter",
           "Tasks (and actor calls) submitted since the node started.",
           [((), counts.get("submitted", 0))])
    family("minray_tasks_finished_total", "counter", "Tasks that finished.",
           [((), counts.get("finished", 0))])
    family("minray_tasks_failed_total", "counter", "Tasks that failed.",
           [((), counts.get("failed", 0))])
    family("minray_tasks", "gauge", "Known tasks by their current state.",
           [((("State", s),), n) for s, n in sorted((cluster.get("task_states") or {}).items())])
    family("minray_actors", "gauge", "Actors by state.",
           [((("State", s),), n) for s, n in sorted((cluster.get("actors") or {}).items())])
    family("minray_workers", "gauge", "Worker processes by state.",
           [((("State", s),), n) for s, n in sorted((cluster.get("workers") or {}).items())])
    store = cluster.get("object_store") or {}
    family("minray_object_store_used_bytes", "gauge", "Bytes of objects in shared memory.",
           [((), store.get("shm_bytes", 0))])
    family("minray_object_store_capacity_bytes", "gauge", "The object store's limit.",
           [((), store.get("capacity", 0))])
    family("minray_object_store_objects", "gauge", "Objects in the object store.",
           [((), store.get("num_objects", 0))])
    family("minray_object_store_spilled_bytes", "counter", "Bytes spilled to disk.",
           [((), store.get("spilled_bytes", 0))])
    for res, total in sorted((cluster.get("resources_total") or {}).items()):
        if res.startswith("node:"):
            continue
        avail = (cluster.get("resources_available") or {}).get(res, 0.0)
        family("minray_resources_" + _safe_name(res), "gauge",
               f"Resource {res}: total and available.",
               [((("State", "total"),), total), ((("State", "available"),), avail)])
    for kind, name, desc, tags, value, buckets in points:
        name = _safe_name(name)
        lines.append(f"# HELP {name} {desc or name}")
        lines.append(f"# TYPE {name} {kind}")
        if kind == "histogram":
            total = 0
            for bound in sorted(b for b in buckets if b != "+Inf"):
                total += buckets[bound]
                lines.append(f"{name}_bucket{_labels(tags, (('le', bound),))} {float(total)}")
            total += buckets.get("+Inf", 0)
            lines.append(f"{name}_bucket{_labels(tags, (('le', '+Inf'),))} {float(total)}")
            lines.append(f"{name}_sum{_labels(tags)} {float(value[0])}")
            lines.append(f"{name}_count{_labels(tags)} {float(value[1])}")
        else:
            lines.append(f"{name}{_labels(tags)} {float(value)}")
    return "\n".join(lines) + "\n"
