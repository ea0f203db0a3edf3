"""Files in and out: path expansion, one read function per format, block writers.

    paths (file | dir | glob, or a list) --expand_paths--> files --ReadTask per file
                                                                    (csv_io.py: byte ranges of a big CSV)
    block(s) --write_block (remote)--> one file per block, or per min_rows_per_file rows:
                                       <prefix>_<index>.<ext>

Readers run inside the first fused map task of a dataset, so reading and the
maps that follow happen in one task per file.  CSV parses with pyarrow where
installed, else pandas (csv_io.py); JSON with the json module; Parquet needs pyarrow and images need
Pillow, both optional: a missing one raises ImportError naming the package.
"""

import glob
import json
import os

import numpy as np

import minray as ray

from . import block as B


def expand_paths(paths, extensions=None, what="read"):
    """Local files for ``paths``: files, directories (recursive) and glob patterns.

    Raises FileNotFoundError naming the path that matched nothing.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files = []
    for path in paths:
        path = os.fspath(path)
        if path.startswith("local://"):
            path = path[len("local://"):]
        if path.startswith(("s3://", "gs://", "http://", "https://")):
            raise ValueError(f"{what}: only local paths are supported, got {path!r}.")
        path = os.path.expanduser(path)
        if glob.has_magic(path):
            matched = sorted(glob.glob(path, recursive=True))
            if not matched:
                raise FileNotFoundError(f"{what}: no files match the pattern {path!r}.")
            candidates = []
            for m in matched:
                candidates.extend(_walk(m) if os.path.isdir(m) else [m])
        elif os.path.isdir(path):
            candidates = _walk(path)
        elif os.path.exists(path):
            candidates = [path]
        else:
            raise FileNotFoundError(f"{what}: no such file or directory: {path!r}.")
        if extensions:
            exts = tuple("." + e.lstrip(".").lower() for e in extensions)
            candidates = [c for c in candidates if c.lower().endswith(exts)]
        files.extend(candidates)
    if not files:
        raise FileNotFoundError(f"{what}: found no files with extension(s) {extensions} in "
                                f"{list(paths)}.")
    return files


def _walk(directory):
    out = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        out.extend(os.path.join(root, n) for n in sorted(names)
                   if not n.startswith((".", "_")))
    return out


def _with_path(block, path, include_paths):
    if include_paths and block:
        block = dict(block)
        block["path"] = np.full(B.num_rows(block), path, dtype=object)
    return block


# ---------------------------------------------------------------- readers
def read_json_file(path, include_paths, options):
    with open(path, encoding=options.get("encoding", "utf-8")) as f:
        text = f.read()
    lines = options.get("lines")
    if lines is None:
        lines = not text.lstrip().startswith("[")
    if lines:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        rows = json.loads(text)
    if not isinstance(rows, list) or (rows and not isinstance(rows[0], dict)):
        raise ValueError(f"read_json: {path!r} must hold JSON objects, one per line (or a "
                         f"JSON array of objects).")
    return _with_path(B.from_rows(rows), path, include_paths)


def read_text_file(path, encoding, drop_empty_lines, include_paths):
    with open(path, encoding=encoding) as f:
        lines = f.read().splitlines()
    if drop_empty_lines:
        lines = [line for line in lines if line.strip()]
    col = np.empty(len(lines), dtype=object)
    col[:] = lines
    return _with_path({"text": col}, path, include_paths)


def read_numpy_file(path, include_paths):
    if path.endswith(".npz"):
        with np.load(path) as archive:
            return _with_path({k: archive[k] for k in archive.files}, path, include_paths)
    return _with_path({"data": np.load(path)}, path, include_paths)


def read_parquet_file(path, columns, include_paths):
    pq = B.require("pyarrow.parquet", "pyarrow")
    return _with_path(B.from_arrow(pq.read_table(path, columns=columns)), path, include_paths)


def read_image_files(paths, size, mode, include_paths):
    Image = B.require("PIL.Image", "pillow")
    images = []
    for path in paths:
        with Image.open(path) as img:
            if mode is not None:
                img = img.convert(mode)
            if size is not None:
                img = img.resize((size[1], size[0]))
            images.append(np.asarray(img))
    block = {"image": B.make_column(images)}
    if include_paths:
        block["path"] = B.make_column(list(paths))
    return block


def read_binary_file(path, include_paths):
    with open(path, "rb") as f:
        data = f.read()
    col = np.empty(1, dtype=object)
    col[0] = data
    return _with_path({"bytes": col}, path, include_paths)


# ---------------------------------------------------------------- writers
def check_min_rows(min_rows_per_file, num_rows_per_file=None):
    """The validated ``min_rows_per_file`` (``num_rows_per_file`` is its older name)."""
    if num_rows_per_file is not None:
        if min_rows_per_file is not None:
            raise ValueError("Give min_rows_per_file or its older name num_rows_per_file, "
                             "not both.")
        min_rows_per_file = num_rows_per_file
    if min_rows_per_file is None:
        return None
    if (not isinstance(min_rows_per_file, int) or isinstance(min_rows_per_file, bool)
            or min_rows_per_file <= 0):
        raise ValueError(f"min_rows_per_file must be a positive integer, got "
                         f"{min_rows_per_file!r}.")
    return min_rows_per_file


def file_groups(bundles, min_rows=None):
    """Block refs to write together, one list per output file, from a stream of
    (ref, metadata): every non-empty block alone, or with ``min_rows`` consecutive blocks
    until the file holds at least that many rows (the last file may hold fewer).

    Example::

        rows 2, 2, 2, 2, 2 with min_rows=4  ->  files of 4, 4 and 2 rows
    """
    group, rows = [], 0
    for ref, meta in bundles:
        if not meta.num_rows:
            continue
        group.append(ref)
        rows += meta.num_rows
        if min_rows is None or rows >= min_rows:
            yield group
            group, rows = [], 0
    if group:
        yield group


@ray.remote
def write_block(kind, directory, stem, options, *blocks):
    """Write blocks (joined) to ``directory/stem.<ext>``; returns the file name."""
    options = dict(options)
    block = B.concat(list(blocks)) if len(blocks) != 1 else blocks[0]
    if kind == "csv":
        path = os.path.join(directory, stem + ".csv")
        B.to_pandas(block).to_csv(path, index=False, **options)
    elif kind == "json":
        path = os.path.join(directory, stem + ".json")
        with open(path, "w") as f:
            for row in B.iter_rows(block):
                f.write(json.dumps(row, default=_json_default) + "\n")
    elif kind == "parquet":
        pq = B.require("pyarrow.parquet", "pyarrow")
        path = os.path.join(directory, stem + ".parquet")
        pq.write_table(B.to_arrow(block), path, **options)
    elif kind == "numpy":
        column = options["column"]
        B.check_columns(block, [column])
        path = os.path.join(directory, stem + ".npy")
        np.save(path, block[column])
    else:
        raise ValueError(f"unknown write format {kind!r}")
    return path


def _json_default(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
