"""minray.util.metrics and the Prometheus text served at the head's /metrics."""
import re

import pytest

from minray.util.metrics import Counter, Gauge, Histogram
from minray._private.observability.metrics_store import MetricsStore, render_prometheus

from obs_head import Head


def test_metric_arguments_are_checked():
    with pytest.raises(ValueError, match="non-empty"):
        Counter("")
    with pytest.raises(TypeError, match="tuple"):
        Counter("c1", tag_keys=["route"])
    c = Counter("c2", tag_keys=("route",))
    with pytest.raises(ValueError, match="Missing value for tag key"):
        c.inc()
    with pytest.raises(ValueError, match="Unrecognized tag key"):
        c.inc(tags={"route": "/", "method": "GET"})
    with pytest.raises(ValueError, match=">0"):
        c.inc(0, tags={"route": "/"})
    c.set_default_tags({"route": "/"})
    c.inc()                                   # default tags fill in
    assert c.info["default_tags"] == {"route": "/"}
    with pytest.raises(ValueError, match="boundaries"):
        Histogram("h1", boundaries=[])
    with pytest.raises(ValueError, match="increasing"):
        Histogram("h2", boundaries=[1, 0.5])
    with pytest.raises(TypeError):
        Gauge("g1").set("high")


def test_store_sums_processes_and_renders_prometheus_text():
    store = MetricsStore()
    store.apply({"pid": 1}, [("counter", "hits", "Hits.", (("route", "/"),), 2.0, None)])
    store.apply({"pid": 2}, [("counter", "hits", "Hits.", (("route", "/"),), 3.0, None)])
    store.apply({"pid": 1}, [("counter", "hits", "Hits.", (("route", "/"),), 4.0, None)])
    text = render_prometheus(store.snapshot(), {"task_counts": {"finished": 5}})
    assert 'hits{route="/"} 7.0' in text            # latest per process, summed: 4 + 3
    assert "# TYPE hits counter" in text
    assert "minray_tasks_finished_total 5.0" in text


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    h = Head(tmp_path_factory.mktemp("metrics"))
    yield h
    h.stop()


def _sample(text, name):
    m = re.search(r"^" + re.escape(name) + r" ([0-9.e+-]+)$", text, re.M)
    assert m, f"{name} not in /metrics:\n{text}"
    return float(m.group(1))


def test_user_and_runtime_metrics_reach_the_head(head):
    head.driver("""
        from minray.util.metrics import Counter, Gauge, Histogram
        served = Counter("app_served", description="Requests served.", tag_keys=("route",))
        served.inc(2, tags={"route": "/a"})

        @ray.remote
        def handle(n):
            from minray.util.metrics import Counter, Histogram
            c = Counter("app_served", description="Requests served.", tag_keys=("route",))
            c.inc(n, tags={"route": "/a"})
            h = Histogram("app_latency_s", boundaries=[0.1, 1.0])
            h.observe(0.05)
            h.observe(5)
            return n

        @ray.remote
        class Queue:
            def __init__(self):
                from minray.util.metrics import Gauge
                self.g = Gauge("app_queue_length")
            def set(self, n):
                self.g.set(n)
                return n

        assert ray.get(handle.remote(3)) == 3
        q = Queue.options(name="q", lifetime="detached").remote()
        assert ray.get(q.set.remote(11)) == 11
    """)
    status, ctype, body = head.get("/metrics")
    text = body.decode()
    assert status == 200 and ctype.startswith("text/plain")
    assert _sample(text, 'app_served{route="/a"}') == 5.0      # driver 2 + task 3
    assert _sample(text, "app_queue_length") == 11.0            # from a live actor
    assert _sample(text, 'app_latency_s_bucket{le="0.1"}') == 1.0
    assert _sample(text, 'app_latency_s_bucket{le="1.0"}') == 1.0   # cumulative buckets
    assert _sample(text, 'app_latency_s_bucket{le="+Inf"}') == 2.0
    assert _sample(text, "app_latency_s_count") == 2.0
    assert _sample(text, "minray_tasks_finished_total") >= 3    # handle, Queue.__init__, set
    assert _sample(text, 'minray_actors{State="ALIVE"}') == 1.0
    assert _sample(text, 'minray_resources_CPU{State="total"}') == 2.0
