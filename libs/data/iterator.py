"""Consuming a stream of blocks: rows, batches, torch tensors; and streaming_split.

    bundles (block refs, in order) --prefetch--> get (zero-copy) --rebatch--> batches
    streaming_split: _SplitCoordinator actor runs the dataset once per epoch and
                     hands blocks to n DataIterators (one per training actor)

``DataIterator`` is what ``Dataset.iterator()`` and ``Dataset.streaming_split``
return: it can be passed to an actor and iterated there, once per epoch.
"""

import collections

import numpy as np

import minray as ray

from . import block as B


def rebatch(blocks, batch_size, drop_last=False, shuffle_buffer=None, seed=None):
    """Cut a stream of blocks into blocks of exactly ``batch_size`` rows (None: as they come)."""
    rng = np.random.default_rng(seed) if shuffle_buffer else None
    pending, count = [], 0
    for block in blocks:
        n = B.num_rows(block)
        if n == 0:
            continue
        if batch_size is None and not shuffle_buffer:
            yield block
            continue
        pending.append(block)
        count += n
        target = max(batch_size or n, shuffle_buffer or 0)
        while count >= target:
            merged = B.concat(pending)
            if rng is not None:
                merged = B.take(merged, rng.permutation(B.num_rows(merged)))
            size = batch_size or count
            cut = (count // size) * size if rng is None else size
            for start in range(0, cut, size):
                yield B.slice_block(merged, start, start + size)
            rest = B.slice_block(merged, cut, count)
            pending, count = ([rest], count - cut) if count > cut else ([], 0)
            if rng is not None and count < target:
                break
    if count:
        merged = B.concat(pending)
        if rng is not None:
            merged = B.take(merged, rng.permutation(B.num_rows(merged)))
        size = batch_size or count
        for start in range(0, count, size):
            if drop_last and start + size > count:
                break
            yield B.slice_block(merged, start, start + size)


def prefetched_blocks(bundles, prefetch=1):
    """Fetch blocks while keeping ``prefetch`` more bundles requested from the executor."""
    ahead = collections.deque()
    for bundle in bundles:
        ahead.append(bundle)
        if len(ahead) > prefetch:
            yield ray.get(ahead.popleft()[0])
    while ahead:
        yield ray.get(ahead.popleft()[0])


def _torch_batch(batch, dtypes, device):
    import torch
    out = {}
    for name, col in batch.items():
        if col.dtype == object:
            raise TypeError(f"Column {name!r} holds Python objects and cannot become a tensor; "
                            f"drop it (drop_columns) or pass a collate_fn.")
        if not col.flags.writeable:
            col = col.copy()
        tensor = torch.as_tensor(col)
        dtype = dtypes.get(name) if isinstance(dtypes, dict) else dtypes
        if dtype is not None:
            tensor = tensor.to(dtype)
        out[name] = tensor.to(device) if device not in (None, "cpu") else tensor
    return out


class DataIterator:
    """An iterable view of a dataset (or of one shard of a streaming split).

    Example::

        it = ds.iterator()
        for batch in it.iter_batches(batch_size=32):
            ...
    """

    def _bundles(self):
        raise NotImplementedError

    def iter_batches(self, *, prefetch_batches=1, batch_size=256, batch_format="default",
                     drop_last=False, local_shuffle_buffer_size=None, local_shuffle_seed=None,
                     _collate_fn=None):
        """Iterate over batches of ``batch_size`` rows (the last one may be smaller).

        Example::

            for batch in ds.iter_batches(batch_size=2):
                batch["id"]        # a numpy array of 2 ids
        """
        if batch_format not in B.BATCH_FORMATS:
            raise ValueError(f"batch_format must be one of {B.BATCH_FORMATS}, got "
                             f"{batch_format!r}.")
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}.")
        blocks = prefetched_blocks(self._bundles(), max(1, prefetch_batches or 0))
        for block in rebatch(blocks, batch_size, drop_last, local_shuffle_buffer_size,
                             local_shuffle_seed):
            batch = B.to_batch(block, batch_format)
            yield _collate_fn(batch) if _collate_fn is not None else batch

    def iter_rows(self, *, prefetch_batches=1):
        """Iterate over rows as dicts.

        Example::

            for row in ds.iter_rows():
                row["id"]
        """
        for block in prefetched_blocks(self._bundles(), max(1, prefetch_batches)):
            yield from B.iter_rows(block)

    def __iter__(self):
        return self.iter_rows()

    def iter_torch_batches(self, *, prefetch_batches=1, batch_size=256, dtypes=None,
                           device="auto", collate_fn=None, drop_last=False,
                           local_shuffle_buffer_size=None, local_shuffle_seed=None):
        """Iterate over batches as dicts of ``torch.Tensor`` (needs torch).

        Example::

            for batch in ds.iter_torch_batches(batch_size=8, dtypes=torch.float32):
                batch["x"].dtype == torch.float32
        """
        B.require("torch", "torch")
        if device == "auto":
            device = _auto_device()
        convert = collate_fn or (lambda batch: _torch_batch(batch, dtypes, device))
        yield from self.iter_batches(prefetch_batches=prefetch_batches, batch_size=batch_size,
                                     batch_format="numpy", drop_last=drop_last,
                                     local_shuffle_buffer_size=local_shuffle_buffer_size,
                                     local_shuffle_seed=local_shuffle_seed,
                                     _collate_fn=convert)

    def materialize(self):
        from .dataset import MaterializedDataset
        from .executor import Plan, RefSource
        return MaterializedDataset(Plan(RefSource(list(self._bundles()))))


class DatasetIterator(DataIterator):
    """``Dataset.iterator()``: each iteration re-executes the dataset's plan."""

    def __init__(self, dataset, plan=None):
        self._dataset, self._plan = dataset, plan

    def _bundles(self):
        return self._dataset._stream(self._plan)

    def stats(self):
        return self._dataset.stats()


# ---------------------------------------------------------------- streaming_split
@ray.remote(num_cpus=0)
class _SplitCoordinator:
    """Runs the dataset once per epoch and deals its blocks to ``n`` splits.

    ``equal=True``: each epoch is executed up front and cut into n equal row
    ranges (the remainder is dropped, as in Ray).  Otherwise blocks are dealt
    on demand to whichever split asks next, so a faster consumer takes more.
    """

    def __init__(self, dataset, n, equal):
        self.dataset, self.n, self.equal = dataset, n, equal
        self.epoch_of = [0] * n          # the epoch each split is reading
        self.started = [False] * n
        self.epochs = {}                  # epoch -> {"queues": [...], "stream": gen, "done": set}

    def _epoch(self, e):
        state = self.epochs.get(e)
        if state is None:
            if self.equal:
                from .shuffle import slice_rows
                bundles = [b for b in self.dataset._stream() if b[1].num_rows]
                total = sum(m.num_rows for _, m in bundles)
                per = total // self.n
                ranges = [(j * per, (j + 1) * per) for j in range(self.n)]
                parts = slice_rows(bundles, ranges) if bundles else [None] * self.n
                queues = [collections.deque([p] if p is not None and p[1].num_rows else [])
                          for p in parts]
                state = {"queues": queues, "stream": None, "done": set()}
            else:
                state = {"queues": [collections.deque() for _ in range(self.n)],
                         "stream": self.dataset._stream(), "done": set()}
            self.epochs[e] = state
        return state

    def start_epoch(self, split):
        if self.started[split]:
            self._finish(split)
        self.started[split] = True

    def _finish(self, split):
        e = self.epoch_of[split]
        state = self._epoch(e)
        state["done"].add(split)
        if len(state["done"]) == self.n:
            del self.epochs[e]
        self.epoch_of[split] = e + 1
        self.started[split] = False

    def next_block(self, split):
        state = self._epoch(self.epoch_of[split])
        queue = state["queues"][split]
        if not queue and state["stream"] is not None:
            bundle = next(state["stream"], None)
            if bundle is None:
                state["stream"] = None
            else:
                queue.append(bundle)
        if queue:
            return [queue.popleft()]
        self._finish(split)
        return None


def _auto_device():
    """``device="auto"``: inside a minray.train worker its device (its GPU, if it has
    one), as in Ray; elsewhere the CPU."""
    import os
    import sys
    train_torch = sys.modules.get("minray.train.torch")
    if train_torch is None or "LOCAL_RANK" not in os.environ:   # set in training workers
        return "cpu"
    return train_torch.get_device()


class StreamSplitDataIterator(DataIterator):
    """One of the ``n`` iterators ``Dataset.streaming_split(n)`` returns."""

    def __init__(self, coordinator, split, n):
        self._coordinator, self._split, self._n = coordinator, split, n

    def _bundles(self):
        ray.get(self._coordinator.start_epoch.remote(self._split))
        while True:
            got = ray.get(self._coordinator.next_block.remote(self._split))
            if got is None:
                return
            yield got[0]

    def world_size(self):
        return self._n

    def __repr__(self):
        return f"StreamSplitDataIterator(split={self._split}, n={self._n})"
