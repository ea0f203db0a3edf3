"""minray.train vs plain torch DDP vs Ray Train 2.60: the same model, data and
epochs, 2 workers each, measured in one run on one machine, alternating.

    python -m bench.train_compare [--epochs 8] [--repeat 3] [--ray-python /work/rayvenv/bin/python]

Each measurement runs in a fresh interpreter (this file with ``--backend X``):
  ddp     torch.multiprocessing.spawn of 2 gloo processes (torchrun-style); the
          time covers spawning them, as a user running plain DDP pays it
  minray  minray.init() first, then TorchTrainer(...).fit() timed
  ray     ray.init() first, then Ray's TorchTrainer(...).fit() timed
For both trainers the runtime gets ``--settle-s`` seconds (default 3) after
init() before fit() starts, so that the runtime's own start-up work (which a
session pays once, not per fit) does not land in the figure; ``--settle-s 0``
measures a fit right after init().
Every worker builds the same tensors (seeded), wraps them in a DataLoader with a
DistributedSampler (prepare_data_loader for the trainers), trains an MLP and
reports once per epoch.  Ray is never a dependency of minray: it runs in its
own interpreter.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ROWS, FEATURES, HIDDEN, BATCH, LR = 8192, 32, 256, 64, 0.01
EPOCH_TIMES = []  # this process's epoch durations (printed by the profiling runs)


def make_data():
    import torch
    g = torch.Generator().manual_seed(0)
    x = torch.randn(ROWS, FEATURES, generator=g)
    y = (x[:, :4].sum(dim=1, keepdim=True) > 0).float()
    return torch.utils.data.TensorDataset(x, y)


def make_model():
    import torch.nn as nn
    return nn.Sequential(nn.Linear(FEATURES, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN),
                         nn.ReLU(), nn.Linear(HIDDEN, 1))


def train_epochs(model, loader, epochs, report):
    import torch
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for epoch in range(epochs):
        start = time.perf_counter()
        total = 0.0
        for x, y in loader:
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        EPOCH_TIMES.append(time.perf_counter() - start)
        report(epoch, total / len(loader))


# ---- plain DDP (torch.multiprocessing, gloo)
def _ddp_worker(rank, world, port, epochs, out):
    import torch
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(make_model())
    data = make_data()
    sampler = torch.utils.data.distributed.DistributedSampler(data, shuffle=True)
    loader = torch.utils.data.DataLoader(data, batch_size=BATCH, sampler=sampler)
    losses = []

    def report(epoch, loss):
        sampler.set_epoch(epoch + 1)
        losses.append(loss)
    train_epochs(model, loader, epochs, report)
    if rank == 0:
        with open(out, "w") as f:
            json.dump(losses, f)
    dist.destroy_process_group()


def run_ddp(epochs):
    import socket
    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tempfile.mktemp(suffix=".json")
    start = time.perf_counter()
    mp.spawn(_ddp_worker, args=(2, port, epochs, out), nprocs=2, join=True)
    elapsed = time.perf_counter() - start
    return elapsed, json.load(open(out))[-1]


# ---- the trainers (minray and Ray share the loop; only the imports differ)
def _trainer_loop(config):
    import torch
    if config["lib"] == "ray":
        from ray import train
        from ray.train.torch import prepare_data_loader, prepare_model
    else:
        from minray import train
        from minray.train.torch import prepare_data_loader, prepare_model
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = prepare_model(make_model())
    loader = prepare_data_loader(torch.utils.data.DataLoader(make_data(), batch_size=BATCH,
                                                             shuffle=True))
    last = config["epochs"] - 1

    def report(epoch, loss):
        # a small rank-0 checkpoint at the end, so that Result.metrics holds the loss
        if epoch == last and train.get_context().get_world_rank() == 0:
            with tempfile.TemporaryDirectory() as d:
                torch.save({"loss": loss}, os.path.join(d, "state.pt"))
                train.report({"epoch": epoch, "loss": loss},
                             checkpoint=train.Checkpoint.from_directory(d))
        else:
            train.report({"epoch": epoch, "loss": loss})
    train_epochs(model, loader, config["epochs"], report)


def run_trainer(lib, epochs, storage, settle_s=3.0):
    if lib == "ray":
        import ray
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    else:
        import minray as ray
        from minray.train import RunConfig, ScalingConfig
        from minray.train.torch import TorchTrainer
        ray.init(num_cpus=2, log_to_driver=False)
    time.sleep(settle_s)
    trainer = TorchTrainer(_trainer_loop, train_loop_config={"lib": lib, "epochs": epochs},
                           scaling_config=ScalingConfig(num_workers=2),
                           run_config=RunConfig(storage_path=storage, name=f"bench_{lib}"))
    start = time.perf_counter()
    result = trainer.fit()
    elapsed = time.perf_counter() - start
    ray.shutdown()
    return elapsed, result.metrics["loss"]


def measure(backend, epochs, settle_s):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as storage:
        if backend == "ddp":
            elapsed, loss = run_ddp(epochs)
        else:
            elapsed, loss = run_trainer(backend, epochs, storage, settle_s)
    print(json.dumps({"backend": backend, "seconds": elapsed, "final_loss": loss}), flush=True)


def run_backend(python, backend, epochs, settle_s, timeout=900):
    cmd = [python, os.path.join(HERE, "train_compare.py"), "--backend", backend,
           "--epochs", str(epochs), "--settle-s", str(settle_s)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT, RAY_TRAIN_V2_ENABLED="1")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                         env=env)
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            return json.loads(line)
    tail = (out.stderr.strip().splitlines() or ["failed"])[-1]
    return {"backend": backend, "error": tail}


def find_ray_python(arg):
    for cand in (arg, os.environ.get("MINRAY_BENCH_RAY_PYTHON"),
                 os.path.join(ROOT, "..", "rayvenv", "bin", "python"), "/work/rayvenv/bin/python"):
        if cand and os.path.exists(cand):
            check = subprocess.run([cand, "-c", "import ray.train.torch, ray; "
                                    "print(ray.__version__)"], capture_output=True, text=True)
            if check.returncode == 0:
                return os.path.abspath(cand), check.stdout.strip()
    return None, None


def compare(epochs, repeat, ray_python=None, settle_s=3.0):
    """Alternate the backends ``repeat`` times; return every run and the medians."""
    ray_py, ray_version = find_ray_python(ray_python)
    pythons = {"ddp": sys.executable, "minray": sys.executable}
    if ray_py:
        pythons["ray"] = ray_py
    runs = {b: [] for b in pythons}
    order = list(pythons)
    for i in range(repeat):
        for backend in order[i % len(order):] + order[:i % len(order)]:
            row = run_backend(pythons[backend], backend, epochs, settle_s)
            runs[backend].append(row)
            print(f"  run {i + 1} {backend:7s} " + (f"{row['seconds']:.2f} s (loss "
                  f"{row['final_loss']:.4f})" if "seconds" in row else row["error"]),
                  file=sys.stderr, flush=True)
    medians = {b: statistics.median(r["seconds"] for r in rs if "seconds" in r)
               for b, rs in runs.items() if any("seconds" in r for r in rs)}
    return {"runs": runs, "medians": medians, "ray_version": ray_version}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["ddp", "minray", "ray"])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ray-python")
    parser.add_argument("--settle-s", type=float, default=3.0)
    args = parser.parse_args()
    if args.backend:
        sys.path.insert(0, ROOT)
        measure(args.backend, args.epochs, args.settle_s)
        return
    out = compare(args.epochs, args.repeat, args.ray_python, args.settle_s)
    med = out["medians"]
    print(f"2 workers, {ROWS} rows, MLP {FEATURES}-{HIDDEN}-{HIDDEN}-1, batch {BATCH}, "
          f"{args.epochs} epochs; median of {args.repeat} alternating runs; trainers' runtimes "
          f"settle {args.settle_s:g} s after init (os.cpu_count()={os.cpu_count()}; the "
          f"machine may be shared)")
    for backend, rows in out["runs"].items():
        shown = ", ".join(f"{r['seconds']:.2f}" if "seconds" in r else "error" for r in rows)
        print(f"  {backend:7s} median {med.get(backend, float('nan')):.2f} s   runs: {shown}")
    if "minray" in med and "ddp" in med:
        print(f"  minray / plain DDP = {med['minray'] / med['ddp']:.2f}x  (target <= 1.1x)")
    if "minray" in med and "ray" in med:
        print(f"  minray / Ray Train {out['ray_version']} = {med['minray'] / med['ray']:.2f}x "
              f"(target < 1x)")


if __name__ == "__main__":
    main()
