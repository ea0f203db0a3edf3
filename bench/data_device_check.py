"""One-shot check on a lent device machine (not part of the suite): minray.data vs pandas
pinned to 2 cores of a quiet machine, and a num_gpus=1 map_batches actor on the GPU."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
out_dir = os.environ.get("OUT", "/tmp")
shim = tempfile.mkdtemp()
pkg = os.path.join(shim, "minray")
shutil.copytree(os.path.join(ROOT, "corelib"), pkg)
os.symlink(os.path.join(ROOT, "_ext"), os.path.join(pkg, "_ext"))
for lib in ("data", "tune"):
    os.symlink(os.path.join(ROOT, "libs", lib), os.path.join(pkg, lib))
env = dict(os.environ, PYTHONPATH=os.pathsep.join([shim, ROOT]))
print(sys.version, flush=True)
subprocess.run([sys.executable, "-c", "import numpy, pandas, cloudpickle, psutil; "
                "print(numpy.__version__, pandas.__version__)"], env=env)
subprocess.run(["nvidia-smi", "-L"])
results = []
for workload in ("map_batches", "groupby", "sort", "read_csv"):
    for backend in ("minray", "pandas", "minray", "pandas"):
        cmd = ["taskset", "-c", "0,1", sys.executable, "-m", "bench.data_workloads",
               "--backend", backend, "--workload", workload]
        r = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
        line = (r.stdout.strip().splitlines() or [""])[-1]
        print(workload, backend, line[:200] if line else r.stderr[-600:], flush=True)
        if line.startswith("{"):
            results.append(json.loads(line))
with open(os.path.join(out_dir, "device_data.json"), "w") as f:
    json.dump(results, f)
gpu = r'''
import os, minray as ray, minray.data
ray.init()
print(ray.cluster_resources())
class OnGPU:
    def __call__(self, batch):
        import numpy as np
        n = len(batch["id"])
        return {"id": batch["id"], "cuda": np.array([os.environ.get("CUDA_VISIBLE_DEVICES", "")] * n)}
rows = ray.data.range(8).map_batches(OnGPU, concurrency=1, num_gpus=1).take_all()
print("gpu rows", len(rows), sorted({r["cuda"] for r in rows}))
'''
r = subprocess.run([sys.executable, "-c", gpu], env=env, capture_output=True, text=True,
                   timeout=120)
print(r.stdout[-1500:], r.stderr[-1500:])
