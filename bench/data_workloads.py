"""Data benchmark workloads, written once against the Ray Data API (plus a pandas twin).

    python -m bench.data_workloads --backend minray|ray|pandas --workload map_batches [--scale 1.0]

prints one JSON line: {"workload": ..., "backend": ..., "seconds": ..., "rows": ..., ...}.
``--scale`` multiplies the sizes the issue names (1 GB of float32 rows, 10M rows,
a 500 MB CSV); the pytest-benchmark cases use a small scale.  The ``ray``
backend imports real Ray (run it with Ray's interpreter); ``pandas`` is the
single-process baseline doing the same computation.  Times exclude ``init``
and include a warm-up, so they measure the data path, not process start-up.
"""

import argparse
import importlib
import json
import os
import sys
import time

import numpy as np

GB = 1 << 30
WIDTH = 256                           # float32 columns per row: 1 KiB rows
CSV_PATH = "/tmp/minray_bench_{mb}mb.csv"


def _sizes(scale):
    return {
        "map_rows": max(1024, int(GB * scale) // (WIDTH * 4)),
        "groupby_rows": max(10_000, int(10_000_000 * scale)),
        "sort_rows": max(10_000, int(10_000_000 * scale)),
        "csv_mb": max(1, int(500 * scale)),
    }


# ---------------------------------------------------------------- shared functions
def make_floats(batch):
    n = len(batch["id"])
    return {"x": np.full((n, WIDTH), 1.0, dtype=np.float32)}


def scale_floats(batch):
    return {"x": batch["x"] * 2.0 + 1.0}


def add_key_value(batch):
    ids = batch["id"]
    return {"k": ids % 1000, "v": (ids % 7).astype(np.float64)}


def add_random_key(batch):
    ids = batch["id"]
    rng = np.random.default_rng(int(ids[0]) if len(ids) else 0)
    return {"key": rng.random(len(ids)), "id": ids}


def ensure_csv(mb):
    """A numeric CSV of about ``mb`` megabytes in /tmp (written once, never committed)."""
    path = CSV_PATH.format(mb=mb)
    if os.path.exists(path):
        return path
    rng = np.random.default_rng(0)
    target = mb * 1_000_000
    with open(path + ".tmp", "w") as f:
        f.write("a,b,c,d,e,f\n")
        written, start = 0, 0
        while written < target:
            n = 200_000
            ints = np.arange(start, start + n)
            floats = np.round(rng.random((n, 4)) * 1000, 4)
            cats = rng.integers(0, 100, n)
            lines = "\n".join(f"{i},{a},{b},{c},{d},{k}" for i, (a, b, c, d), k in
                              zip(ints.tolist(), floats.tolist(), cats.tolist())) + "\n"
            f.write(lines)
            written += len(lines)
            start += n
    os.replace(path + ".tmp", path)
    return path


# ---------------------------------------------------------------- Ray Data API (minray or ray)
def data_map_batches(ray, rows):
    ds = ray.data.range(rows, override_num_blocks=max(2, rows * WIDTH * 4 // (64 << 20)))
    ds = ds.map_batches(make_floats, batch_size=None).map_batches(scale_floats,
                                                                   batch_size=None)
    total = 0.0
    t = time.perf_counter()
    for batch in ds.iter_batches(batch_size=None):
        total += float(batch["x"][:, 0].sum())
    seconds = time.perf_counter() - t
    assert total == 3.0 * rows, total
    return seconds


def data_groupby(ray, rows):
    from_agg = importlib.import_module(ray.data.__name__ + ".aggregate")
    t = time.perf_counter()
    ds = ray.data.range(rows).map_batches(add_key_value, batch_size=None)
    out = ds.groupby("k").aggregate(from_agg.Count(), from_agg.Sum("v"),
                                    from_agg.Mean("v")).take_all()
    seconds = time.perf_counter() - t
    assert len(out) == 1000 and sum(r["count()"] for r in out) == rows
    return seconds


def data_sort(ray, rows):
    t = time.perf_counter()
    ds = ray.data.range(rows).map_batches(add_random_key, batch_size=None).sort("key")
    mat = ds.materialize()
    first = mat.take(2)
    seconds = time.perf_counter() - t
    assert mat.count() == rows and first[0]["key"] <= first[1]["key"]
    return seconds


def data_read_csv(ray, mb):
    path = ensure_csv(mb)
    t = time.perf_counter()
    ds = ray.data.read_csv(path).materialize()
    rows = ds.count()
    seconds = time.perf_counter() - t
    return seconds, rows


# ---------------------------------------------------------------- pandas, one process
def pandas_map_batches(rows):
    block = max(1, (64 << 20) // (WIDTH * 4))
    total = 0.0
    t = time.perf_counter()
    for start in range(0, rows, block):
        ids = np.arange(start, min(rows, start + block))
        import pandas as pd
        df = pd.DataFrame(make_floats({"id": ids})["x"])
        out = df * 2.0 + 1.0
        total += float(out[0].sum())
    seconds = time.perf_counter() - t
    assert total == 3.0 * rows
    return seconds


def pandas_groupby(rows):
    import pandas as pd
    t = time.perf_counter()
    df = pd.DataFrame(add_key_value({"id": np.arange(rows)}))
    out = df.groupby("k")["v"].agg(["count", "sum", "mean"]).reset_index()
    seconds = time.perf_counter() - t
    assert len(out) == 1000
    return seconds


def pandas_sort(rows):
    import pandas as pd
    t = time.perf_counter()
    df = pd.DataFrame(add_random_key({"id": np.arange(rows)}))
    out = df.sort_values("key")
    seconds = time.perf_counter() - t
    assert len(out) == rows
    return seconds


def pandas_read_csv(mb):
    import pandas as pd
    path = ensure_csv(mb)
    t = time.perf_counter()
    df = pd.read_csv(path)
    return time.perf_counter() - t, len(df)


# ---------------------------------------------------------------- driver
WORKLOADS = ("map_batches", "groupby", "sort", "read_csv")


def _one_thread_pandas():
    """pandas 3.1 parses a large CSV path with a thread per CPU (mode.max_threads);
    the "one pandas process, one thread" reference turns that off."""
    import pandas as pd
    try:
        pd.set_option("mode.max_threads", 1)
    except (KeyError, pd.errors.OptionError):
        pass                                    # an older pandas: one thread anyway


def run(backend, workload, scale):
    sizes = _sizes(scale)
    if backend == "pandas-1t":
        _one_thread_pandas()
        backend = "pandas"
    if backend == "pandas":
        ray = None
    else:
        ray = importlib.import_module(backend)
        importlib.import_module(backend + ".data")
        ray.init(num_cpus=len(os.sched_getaffinity(0)), include_dashboard=False)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ray.data.range(100).map_batches(lambda b: b).materialize()        # warm-up
    result = {"workload": workload, "backend": backend, "scale": scale}
    if workload == "map_batches":
        rows = sizes["map_rows"]
        secs = pandas_map_batches(rows) if ray is None else data_map_batches(ray, rows)
        result.update(seconds=secs, rows=rows, gb=rows * WIDTH * 4 / GB,
                      gb_per_s=rows * WIDTH * 4 / GB / secs)
    elif workload == "groupby":
        rows = sizes["groupby_rows"]
        secs = pandas_groupby(rows) if ray is None else data_groupby(ray, rows)
        result.update(seconds=secs, rows=rows, rows_per_s=rows / secs)
    elif workload == "sort":
        rows = sizes["sort_rows"]
        secs = pandas_sort(rows) if ray is None else data_sort(ray, rows)
        result.update(seconds=secs, rows=rows, rows_per_s=rows / secs)
    elif workload == "read_csv":
        mb = sizes["csv_mb"]
        secs, rows = pandas_read_csv(mb) if ray is None else data_read_csv(ray, mb)
        size = os.path.getsize(ensure_csv(mb))
        result.update(seconds=secs, rows=rows, mb=size / 1e6, mb_per_s=size / 1e6 / secs)
    else:
        raise SystemExit(f"unknown workload {workload!r}; choose from {WORKLOADS}")
    if ray is not None:
        ray.shutdown()
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("minray", "ray", "pandas", "pandas-1t"), required=True)
    parser.add_argument("--workload", choices=WORKLOADS, required=True)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.backend, args.workload, args.scale)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
