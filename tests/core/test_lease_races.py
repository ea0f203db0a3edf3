"""Leases under churn: many one-at-a-time tasks never get stuck between lease
requests that the client withdraws and replies that cross them."""
import minray as ray


def _noop(x=None):
    return x


def test_thousands_of_sync_round_trips_never_stall(ray_start_regular):
    f = ray.remote(_noop)
    ray.get([f.remote() for _ in range(200)])     # leave extra lease requests behind
    for i in range(6000):
        assert ray.get(f.remote(i), timeout=20) == i


def test_bursts_then_single_calls(ray_start_regular):
    f = ray.remote(_noop)
    for burst in range(20):
        assert ray.get([f.remote(j) for j in range(50)], timeout=20) == list(range(50))
        for j in range(20):
            assert ray.get(f.remote(j), timeout=20) == j
