"""pytest-benchmark cases for minray.data at small sizes: ``pytest bench/test_bench_data.py``.

The same workloads as bench/data_workloads.py (scale 0.01: 10 MiB of float32
rows, 100k-row groupby and sort, a 5 MB CSV); side-by-side figures against Ray
Data and pandas come from ``python -m bench.data_compare``.
"""
import pytest

import minray as ray
import minray.data

from bench import data_workloads as W

SIZES = W._sizes(0.01)


@pytest.fixture(scope="module")
def runtime():
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


def test_data_map_batches(benchmark, runtime):
    benchmark.pedantic(W.data_map_batches, args=(ray, SIZES["map_rows"]), rounds=3)


def test_data_groupby_aggregate(benchmark, runtime):
    benchmark.pedantic(W.data_groupby, args=(ray, SIZES["groupby_rows"]), rounds=3)


def test_data_sort(benchmark, runtime):
    benchmark.pedantic(W.data_sort, args=(ray, SIZES["sort_rows"]), rounds=3)


def test_data_read_csv(benchmark, runtime):
    W.ensure_csv(SIZES["csv_mb"])
    benchmark.pedantic(W.data_read_csv, args=(ray, SIZES["csv_mb"]), rounds=3)


def test_data_read_csv_ranges(benchmark, runtime, monkeypatch):
    """read_csv of one file cut into parallel byte ranges (1 MB here: the 5 MB CSV in
    five ranges, as the 500 MB file goes in 16 MiB ones), parsed by the compiled
    numeric parser (minray._ext.csvnum)."""
    from minray.data import csv_io
    monkeypatch.setattr(csv_io, "CSV_SPLIT_BYTES", 1 << 20)
    path = W.ensure_csv(SIZES["csv_mb"])
    assert len(csv_io.csv_ranges(path, {})) >= 4
    benchmark.pedantic(W.data_read_csv, args=(ray, SIZES["csv_mb"]), rounds=3)


def _csv_body():
    path = W.ensure_csv(SIZES["csv_mb"])
    with open(path, "rb") as f:
        header = f.readline()
        return header, f.read()


def test_csv_range_parse_native(benchmark):
    """One CSV body (5 MB of the benchmark's numbers) parsed in this process by
    minray._ext.csvnum: the per-range cost of read_csv's workers."""
    from minray._ext import csvnum
    header, body = _csv_body()
    out = benchmark(csvnum.parse, body, header.count(b",") + 1)
    assert out is not None and out.rows > 100_000


def test_csv_range_parse_pandas(benchmark):
    """The same body parsed by pandas' C parser from memory (one thread: pandas 3.1
    parses in threads only when given a path): the reference."""
    import io
    pd = pytest.importorskip("pandas")
    header, body = _csv_body()
    assert len(benchmark(lambda: pd.read_csv(io.BytesIO(header + body)))) > 100_000
