"""The executor: operator fusion, backpressure (bounded memory), progress bars."""
import io
import sys

import numpy as np
import pytest

import minray as ray
import minray.data


@ray.remote
class Counter:
    def __init__(self):
        self.n = 0

    def inc(self):
        self.n += 1

    def get(self):
        return self.n


def test_maps_fuse_with_the_read_into_one_operator(ray_module):
    ds = ray.data.range(40, override_num_blocks=4).map(lambda r: r).filter(
        lambda r: r["id"] % 2 == 0).map_batches(lambda b: b)
    assert ds.count() == 20
    text = ds.stats()
    assert "Operator 1 ReadRange->Map(" in text and "->Filter(" in text
    assert "Operator 2" not in text
    sorted_ds = ds.sort("id")
    sorted_ds.materialize()
    assert "Operator 2 Sort(id)" in sorted_ds.stats()


def test_streaming_keeps_a_bounded_window_of_blocks_in_flight(ray_module):
    counter = Counter.remote()

    def produce(batch):
        ray.get(counter.inc.remote())
        return batch

    ds = ray.data.range(60, override_num_blocks=60).map_batches(produce)
    ahead = []
    for consumed, _ in enumerate(ds.iter_batches(batch_size=None), start=1):
        ahead.append(ray.get(counter.get.remote()) - consumed)
    assert consumed == 60
    cpus = int(ray.cluster_resources()["CPU"])
    window = cpus * ray.data.DataContext.get_current().max_blocks_in_flight_per_cpu
    assert max(ahead) <= window + 2, ahead      # never the whole dataset at once


def test_progress_bars_only_on_a_terminal(ray_module, monkeypatch):
    class FakeTTY(io.StringIO):
        def isatty(self):
            return True

    quiet = io.StringIO()
    monkeypatch.setattr(sys, "stderr", quiet)
    ray.data.range(10).map(lambda r: r).take_all()
    assert quiet.getvalue() == ""

    tty = FakeTTY()
    monkeypatch.setattr(sys, "stderr", tty)
    ray.data.range(10).map(lambda r: r).sort("id").take_all()
    assert "ReadRange->Map" in tty.getvalue() and "Sort(id)" in tty.getvalue()

    tty = FakeTTY()
    monkeypatch.setattr(sys, "stderr", tty)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    try:
        ray.data.range(10).take_all()
    finally:
        ctx.enable_progress_bars = True
    assert tty.getvalue() == ""


def test_dataset_larger_than_the_object_store_streams_through(shutdown_only):
    if ray.is_initialized():
        ray.shutdown()
    store = 64 * 1024 * 1024
    ray.init(num_cpus=2, object_store_memory=store)
    rows_per_block, width = 4096, 256               # 4 MiB float32 blocks
    blocks = 48                                      # 192 MiB: three times the store

    def make(batch):
        n = len(batch["id"])
        return {"x": np.ones((n, width), dtype=np.float32)}

    ds = ray.data.range(rows_per_block * blocks, override_num_blocks=blocks).map_batches(
        make, batch_size=None).map_batches(lambda b: {"x": b["x"] * 2}, batch_size=None)
    total = 0.0
    for batch in ds.iter_batches(batch_size=None):
        total += float(batch["x"][:, 0].sum())
    assert total == 2.0 * rows_per_block * blocks


def test_building_a_dataset_does_not_start_a_runtime(shutdown_only):
    if ray.is_initialized():
        ray.shutdown()
    ds = ray.data.range(100).map(lambda r: r)
    assert not ray.is_initialized()          # the module's own ray.init(...) still works
    ray.init(num_cpus=2)
    assert ds.count() == 100
