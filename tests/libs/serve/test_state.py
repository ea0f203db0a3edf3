"""The controller's pure decisions, driven without any process."""
import pytest

from minray import serve
from minray.serve.config import AutoscalingConfig, DeploymentConfig
from minray.serve.controller_state import (RUNNING, STARTING, STOPPING, AutoscaleState,
                                           Reconfigure, ReplicaRecord, StartReplicas,
                                           StopReplica, app_status, autoscale,
                                           deployment_status, reconcile)


def rec(rid, version="v1", state=RUNNING, cfg="c1", t=0.0):
    return ReplicaRecord(rid, version, cfg, state, started_at=t)


def test_scale_up_and_down():
    assert reconcile(3, "v1", "c1", []) == [StartReplicas(3)]
    replicas = [rec("a", t=1), rec("b", t=2), rec("c", state=STARTING, t=3)]
    assert reconcile(3, "v1", "c1", replicas) == []
    # Down to one: the starting one goes first, then the youngest running one.
    assert reconcile(1, "v1", "c1", replicas) == [StopReplica("c"), StopReplica("b")]
    # Replicas already stopping do not count.
    assert reconcile(2, "v1", "c1", [rec("a"), rec("b", state=STOPPING)]) == [StartReplicas(1)]


def test_rolling_update_starts_new_before_stopping_old():
    old = [rec("a", t=1), rec("b", t=2)]
    # New code: start two new replicas, keep both old ones while none is running.
    assert reconcile(2, "v2", "c1", old) == [StartReplicas(2)]
    step = old + [rec("n1", "v2", STARTING), rec("n2", "v2", STARTING)]
    assert reconcile(2, "v2", "c1", step) == []
    # One new replica is up: one old one may go.
    step[2].state = RUNNING
    assert reconcile(2, "v2", "c1", step) == [StopReplica("b")]
    step[3].state = RUNNING
    assert set(a.replica_id for a in reconcile(2, "v2", "c1", step)) == {"a", "b"}


def test_user_config_change_reconfigures_in_place():
    replicas = [rec("a"), rec("b", state=STARTING)]
    assert reconcile(2, "v1", "c2", replicas) == [Reconfigure("a")]
    replicas[0].reconfiguring = True
    assert reconcile(2, "v1", "c2", replicas) == []


def test_status_words():
    assert deployment_status(1, "v1", [rec("a")])[0] == "HEALTHY"
    assert deployment_status(2, "v1", [rec("a")])[0] == "UPDATING"
    assert deployment_status(1, "v1", [rec("a"), rec("b")])[0] == "DOWNSCALING"
    assert deployment_status(1, "v1", [rec("a")], config_version="c2")[0] == "UPDATING"
    assert deployment_status(1, "v1", [], failure_message="boom")[0] == "UNHEALTHY"
    assert app_status(["HEALTHY", "HEALTHY"]) == "RUNNING"
    assert app_status(["HEALTHY", "UPDATING"]) == "DEPLOYING"
    assert app_status(["UNHEALTHY"], failure_message="x") == "DEPLOY_FAILED"
    assert app_status([], deleting=True) == "DELETING"


def test_autoscale_waits_for_the_delays():
    cfg = AutoscalingConfig(min_replicas=1, max_replicas=4, target_ongoing_requests=2,
                            upscale_delay_s=1.0, downscale_delay_s=5.0, look_back_period_s=0.0)
    st = AutoscaleState()
    target, st = autoscale(cfg, 1, 8, 0.0, st)      # wants 4, not yet
    assert target == 1
    target, st = autoscale(cfg, 1, 8, 0.5, st)
    assert target == 1
    target, st = autoscale(cfg, 1, 100, 1.0, st)    # 1 s later: capped at max_replicas
    assert target == 4
    target, st = autoscale(cfg, 4, 0, 2.0, st)      # idle: wants min_replicas after 5 s
    assert target == 4
    target, st = autoscale(cfg, 4, 3, 3.0, st)      # wants 2: same direction, clock runs
    assert target == 4
    target, st = autoscale(cfg, 4, 8, 4.0, st)      # load is back: the pending downscale resets
    assert target == 4 and st.direction == 0
    target, st = autoscale(cfg, 4, 0, 5.0, st)
    target, st = autoscale(cfg, 4, 0, 10.0, st)
    assert target == 1


def test_autoscale_averages_over_the_look_back_window():
    cfg = AutoscalingConfig(min_replicas=1, max_replicas=10, target_ongoing_requests=1,
                            upscale_delay_s=0, look_back_period_s=10)
    st = AutoscaleState()
    target, st = autoscale(cfg, 1, 6, 0.0, st)
    assert target == 6
    target, st = autoscale(cfg, 6, 0, 1.0, st)      # mean(6, 0) = 3 over the window
    assert st.samples == [(0.0, 6), (1.0, 0)]


def test_bad_options_are_refused_where_written():
    with pytest.raises(ValueError, match="max_ongoing_requests must be an int >= 1, got 0"):
        serve.deployment(max_ongoing_requests=0)(lambda r: r)
    with pytest.raises(TypeError, match="Unknown deployment option"):
        serve.deployment(num_replica=2)
    with pytest.raises(ValueError, match="not allowed when autoscaling_config"):
        DeploymentConfig.from_options({"num_replicas": 2, "autoscaling_config": {}})
    with pytest.raises(ValueError, match="max_replicas must be >="):
        DeploymentConfig.from_options({"autoscaling_config": {"min_replicas": 3,
                                                              "max_replicas": 2}})
    with pytest.raises(ValueError, match=r"Unknown ray_actor_options \['num_cpu'\]"):
        serve.deployment(ray_actor_options={"num_cpu": 1})(lambda r: r)
    with pytest.raises(ValueError, match="Unknown autoscaling_config field"):
        DeploymentConfig.from_options({"autoscaling_config": {"min_replica": 3}})
    with pytest.raises(TypeError, match="call Model.bind"):
        from minray.serve.application import build_app

        @serve.deployment
        class Model:
            pass
        build_app(Model, "x", "/", lambda a, d: None)
    with pytest.raises(ValueError, match="route_prefix must start with '/'"):
        build_app(Model.bind(), "x", "oops", lambda a, d: None)

    @serve.deployment
    class Parent:
        def __init__(self, a, b):
            pass
    with pytest.raises(ValueError, match="two deployments named 'Model'.*options"):
        build_app(Parent.bind(Model.bind(), Model.bind()), "x", "/", lambda a, d: None)
    shared = Model.bind()                       # one node used twice is one deployment
    spec = build_app(Parent.bind(shared, shared), "x", "/", lambda a, d: (a, d))
    assert sorted(spec.deployments) == ["Model", "Parent"]


def test_plain_request_without_starlette():
    import asyncio

    from minray.serve.http_util import MalformedJSONError, PlainRequest, Receive
    scope = {"method": "POST", "headers": [(b"host", b"h:1"), (b"x-a", b"b")],
             "query_string": b"q=1&e=", "scheme": "http", "path": "/p"}

    async def read(body):
        receive = Receive(body)
        req = PlainRequest(scope, receive)
        return req, await req.json()
    req, value = asyncio.run(read(b'{"k": [1]}'))
    assert value == {"k": [1]}
    assert req.query_params == {"q": "1", "e": ""} and req.headers["x-a"] == "b"
    assert req.url == "http://h:1/p?q=1&e="
    with pytest.raises(MalformedJSONError, match="Malformed JSON"):
        asyncio.run(read(b"{nope"))


def test_receive_gives_the_body_then_waits_for_the_end():
    import asyncio

    from minray.serve.http_util import Receive

    async def run():
        receive = Receive(b"abc")
        assert await receive() == {"type": "http.request", "body": b"abc", "more_body": False}
        waiters = [asyncio.ensure_future(receive()) for _ in range(2)]
        await asyncio.sleep(0.01)
        assert not any(w.done() for w in waiters)     # no disconnect before the end
        waiters[0].cancel()                           # one waiter leaving spares the other
        receive.close()
        assert await waiters[1] == {"type": "http.disconnect"}
        assert await receive() == {"type": "http.disconnect"}
    asyncio.run(run())
