"""All-to-all operators: map/reduce over every block of the input.

    bundles --map tasks (partition each block into n parts)--> n x n part refs
            --reduce tasks (concat part j of every block, finish)--> n bundles

``sort`` range-partitions on boundaries sampled from the keys, so reduce task j
holds every key between boundary j-1 and j and sorts it locally; ``groupby``
reuses that partitioning (equal keys meet in one partition) and reduces each
group with numpy ``reduceat``.  ``random_shuffle`` scatters rows to random
partitions and permutes them again in the reducer (seeded: repeatable).
``repartition`` and the splits slice contiguous row ranges, moving no data
when a block is kept whole.  Each function takes and returns lists of
(block_ref, Meta) bundles and runs its tasks on the driver's behalf.
"""

import numpy as np

import minray as ray

from . import block as B
from .executor import Meta, _meta


# ---------------------------------------------------------------- slicing
@ray.remote(num_returns=2)
def _gather(spec, *blocks):
    """Concatenate slices ``(i, start, end)`` of the given blocks into one block."""
    out = B.concat([B.slice_block(blocks[i], s, e) for i, s, e in spec])
    return out, _meta(out)


def slice_rows(bundles, ranges):
    """Bundles holding exactly the global row ranges ``[(start, end), ...]``, one per range."""
    offsets = np.cumsum([0] + [m.num_rows for _, m in bundles])
    out = []
    for start, end in ranges:
        pieces = []
        for i, (ref, meta) in enumerate(bundles):
            lo, hi = max(start, offsets[i]), min(end, offsets[i + 1])
            if lo < hi:
                pieces.append((i, int(lo - offsets[i]), int(hi - offsets[i])))
        if len(pieces) == 1 and pieces[0][1] == 0 and pieces[0][2] == bundles[pieces[0][0]][1].num_rows:
            out.append(bundles[pieces[0][0]])       # a whole block: reuse it, no copy
            continue
        used = sorted({i for i, _, _ in pieces})
        spec = [(used.index(i), s, e) for i, s, e in pieces]
        block_ref, meta_ref = _gather.remote(spec, *[bundles[i][0] for i in used])
        out.append((block_ref, ray.get(meta_ref)) if pieces else (block_ref, Meta(0, 0)))
    return out


def even_ranges(total, n):
    """``n`` contiguous ranges covering ``total`` rows, sizes differing by at most one."""
    base, extra = divmod(total, n)
    ranges, start = [], 0
    for j in range(n):
        end = start + base + (1 if j < extra else 0)
        ranges.append((start, end))
        start = end
    return ranges


def repartition(bundles, n):
    total = sum(m.num_rows for _, m in bundles)
    return slice_rows(bundles, even_ranges(total, n))


def randomize_block_order(bundles, seed=None):
    order = np.random.default_rng(seed).permutation(len(bundles))
    return [bundles[i] for i in order]


# ---------------------------------------------------------------- shuffle
@ray.remote
def _scatter_random(block, n, seed, index):
    rng = np.random.default_rng(None if seed is None else [seed, index])
    parts = rng.integers(0, n, size=B.num_rows(block))
    return _split_by(block, parts, n)


def _split_by(block, parts, n):
    # Small integer partition ids sort stably by radix sort: O(n), not O(n log n).
    parts = parts.astype(np.uint8 if n <= 255 else np.uint16 if n <= 65535 else np.int64)
    order = np.argsort(parts, kind="stable")
    counts = np.bincount(parts, minlength=n)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    ordered = B.take(block, order) if block else block
    return [B.slice_block(ordered, bounds[j], bounds[j + 1]) if block else {}
            for j in range(n)]


@ray.remote(num_returns=2)
def _reduce_random(seed, j, *parts):
    out = B.concat(list(parts))
    rng = np.random.default_rng(None if seed is None else [seed, j, 1])
    out = B.take(out, rng.permutation(B.num_rows(out))) if out else out
    return out, _meta(out)


def random_shuffle(bundles, seed=None, num_blocks=None):
    if not bundles:
        return []
    n = num_blocks or len(bundles)
    if n == 1:
        parts = [[ref] for ref, _ in bundles]
    else:
        fn = _scatter_random.options(num_returns=n)
        parts = [fn.remote(ref, n, seed, i) for i, (ref, _) in enumerate(bundles)]
    pending = [_reduce_random.remote(seed, j, *[p[j] for p in parts]) for j in range(n)]
    metas = ray.get([m for _, m in pending])
    return [(b, m) for (b, _), m in zip(pending, metas)]


# ---------------------------------------------------------------- sort
def directions(keys, descending):
    """One descending flag per key, from one bool or a list of them (Ray's ``sort``)."""
    if isinstance(descending, (list, tuple)):
        if len(descending) != len(keys):
            raise ValueError(f"Length of `descending` ({len(descending)}) does not match the "
                             f"length of the key ({len(keys)}): give one bool per key, or one "
                             f"bool for all.")
        return [bool(d) for d in descending]
    return [bool(descending)] * len(keys)


def _sort_order(block, keys, descending, stable=True):
    flags = directions(keys, descending)
    cols = [block[k] for k in reversed(keys)]
    if len(cols) == 1:
        # Groups keep their rows in order (stable); a plain sort may use faster introsort.
        order = np.argsort(cols[0], kind="stable" if stable else None)
    elif len(set(flags)) == 1:
        order = np.lexsort(cols)
    else:
        # Mixed directions: sort on each key's dense rank, negated where it descends
        # (works for strings as well as numbers).
        ranks = [np.unique(block[k], return_inverse=True)[1].reshape(-1) for k in keys]
        return np.lexsort([-r if d else r for r, d in zip(reversed(ranks), reversed(flags))])
    return order[::-1] if flags[0] else order


def _sample(block, key, k):
    col = block[key] if block else np.array([])
    n = len(col)
    return col[np.linspace(0, n - 1, num=min(n, k)).astype(np.int64)] if n else col


def num_partitions(bundles, cap=None):
    """Output partitions for a sort or groupby: enough for the CPUs, about 64 MiB each,
    never more than the input blocks (thousands of tiny parts cost more than they save)."""
    from .executor import _total_cpus
    total = sum(m.size_bytes for _, m in bundles)
    mib = 1 << 20
    n = max(-(-total // (64 * mib)), min(2 * _total_cpus(), -(-total // (4 * mib))))
    return max(1, min(n, len(bundles), cap or len(bundles)))


def group_bundles(bundles, target_bytes=64 << 20):
    """Consecutive runs of bundles for one scatter task each: about ``target_bytes`` per
    run, and at least two runs per CPU, so 80 small blocks cost 4 tasks, not 80."""
    from .executor import _total_cpus
    total = sum(m.size_bytes for _, m in bundles)
    runs = max(-(-total // target_bytes), 2 * _total_cpus())
    per_run = max(1, -(-len(bundles) // runs))
    return [bundles[i:i + per_run] for i in range(0, len(bundles), per_run)]


@ray.remote
def _scatter_range(n, key, boundaries, descending, *blocks):
    block = B.concat(list(blocks))
    if not block:
        return [{} for _ in range(n)]
    parts = np.searchsorted(boundaries, block[key], side="right")
    if descending:
        parts = (n - 1) - parts
    return _split_by(block, parts, n)


@ray.remote(num_returns=2)
def _reduce_sort(keys, descending, *parts):
    out = B.concat(list(parts))
    if out:
        out = B.take(out, _sort_order(out, keys, descending, stable=False))
    return out, _meta(out)


def check_keys(bundles, keys):
    for ref, meta in bundles:
        if meta.num_rows:
            B.check_columns(ray.get(ref), keys, what="sort/groupby key")
            return


def range_partition(bundles, keys, descending, reducer, *reducer_args, boundaries=None):
    """Sample boundaries on ``keys[0]`` (or take the given ones), scatter, then run
    ``reducer`` per partition."""
    bundles = [b for b in bundles if b[1].num_rows > 0] or bundles[:1]
    if not bundles:
        return []
    check_keys(bundles, keys)
    n = num_partitions(bundles)
    # Sampling reads each block zero-copy here in the driver: no task per block needed.
    samples = [] if boundaries is not None else [
        s for s in (_sample(ray.get(r), keys[0], 64) for r, _ in bundles) if len(s)]
    if boundaries is not None:
        n, boundaries = len(boundaries) + 1, np.asarray(boundaries)
    elif n > 1 and samples:
        pooled = np.sort(np.concatenate(samples), kind="stable")
        picks = (np.arange(1, n) * len(pooled)) // n
        boundaries = pooled[picks]
    else:
        n, boundaries = 1, np.array([])
    if n == 1:
        parts = [[ref] for ref, _ in bundles]
    else:
        fn = _scatter_range.options(num_returns=n)
        parts = [fn.remote(n, keys[0], boundaries, directions(keys, descending)[0],
                           *[ref for ref, _ in run])
                 for run in group_bundles(bundles)]
    pending = [reducer.remote(*reducer_args, *[p[j] for p in parts]) for j in range(n)]
    metas = ray.get([m for _, m in pending])
    return [(b, m) for (b, _), m in zip(pending, metas)]


def sort(bundles, keys, descending=False, boundaries=None):
    return range_partition(bundles, keys, descending, _reduce_sort, keys, descending,
                           boundaries=boundaries)


# ---------------------------------------------------------------- zip
@ray.remote(num_returns=2)
def _zip_blocks(left, right):
    out = dict(left)
    for name, col in right.items():
        new = name
        while new in out:
            new = f"{new}_1"
        out[new] = col
    return out, _meta(out)


def zip_bundles(left, right):
    lrows = sum(m.num_rows for _, m in left)
    rrows = sum(m.num_rows for _, m in right)
    if lrows != rrows:
        raise ValueError(f"Cannot zip datasets of different number of rows: {lrows}, {rrows}.")
    offsets = np.cumsum([0] + [m.num_rows for _, m in left])
    aligned = slice_rows(right, [(int(offsets[i]), int(offsets[i + 1]))
                                 for i in range(len(left))])
    pending = [_zip_blocks.remote(lref, rref) for (lref, _), (rref, _) in zip(left, aligned)]
    metas = ray.get([m for _, m in pending])
    return [(b, m) for (b, _), m in zip(pending, metas)]
