"""Chapter 10 of "Learning Ray" on minray: one program from raw rows to an HTTP endpoint.

data -> preprocess -> train -> tune -> batch inference -> serve, every stage on the same
runtime, passing datasets and checkpoints instead of files. Runs as written (small sizes):

    python docs/examples/ch10_air.py

The walkthrough is docs/tutorials/air.md.
"""
import json
import os
import pickle
import socket
import tempfile
import urllib.request

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

import minray as ray
import minray.train
from minray import serve, tune
from minray.data.preprocessors import StandardScaler
from minray.train import Checkpoint, RunConfig, ScalingConfig
from minray.train.torch import TorchTrainer

FEATURES = ["mean radius", "mean texture"]


# ---- 0. A small stand-in for the book's breast-cancer table: two features, one label
def make_frame(n=600, seed=0):
    rng = np.random.default_rng(seed)
    radius = rng.normal(14.0, 3.5, n)
    texture = rng.normal(19.0, 4.0, n)
    score = 0.9 * (radius - 14.0) + 0.4 * (texture - 19.0) + rng.normal(0, 1.0, n)
    return pd.DataFrame({"mean radius": radius, "mean texture": texture,
                         "target": (score > 0).astype(np.int64)})


class LogisticRegression(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(len(FEATURES), 1)

    def forward(self, x):
        return self.linear(x).squeeze(-1)


def features(batch):
    return torch.stack([torch.as_tensor(batch[c], dtype=torch.float32) for c in FEATURES], 1)


# ---- 2. The training loop each worker runs
def train_loop_per_worker(config):
    torch.manual_seed(0)
    model = minray.train.torch.prepare_model(LogisticRegression())
    optimizer = torch.optim.SGD(model.parameters(), lr=config["lr"])
    loss_fn = nn.BCEWithLogitsLoss()
    train_shard = minray.train.get_dataset_shard("train")
    valid_shard = minray.train.get_dataset_shard("valid")
    for epoch in range(config["num_epochs"]):
        for batch in train_shard.iter_torch_batches(batch_size=32):
            loss = loss_fn(model(features(batch)), batch["target"].float())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        correct = total = 0
        with torch.no_grad():
            for batch in valid_shard.iter_torch_batches(batch_size=128):
                predicted = (model(features(batch)) > 0).long()
                correct += int((predicted == batch["target"]).sum())
                total += len(predicted)
        with tempfile.TemporaryDirectory() as tmpdir:
            checkpoint = None
            if minray.train.get_context().get_world_rank() == 0:
                torch.save(model.state_dict(), os.path.join(tmpdir, "model.pt"))
                with open(os.path.join(tmpdir, "scaler.pkl"), "wb") as f:
                    pickle.dump(config["scaler"], f)
                checkpoint = Checkpoint.from_directory(tmpdir)
            minray.train.report({"epoch": epoch, "valid_accuracy": correct / total},
                                checkpoint=checkpoint)


# ---- 4./5. Loading the checkpoint: the weights and the scaler fitted at training time
def load_model_and_scaler(checkpoint):
    with checkpoint.as_directory() as d:
        model = LogisticRegression()
        model.load_state_dict(torch.load(os.path.join(d, "model.pt")))
        with open(os.path.join(d, "scaler.pkl"), "rb") as f:
            scaler = pickle.load(f)
    return model.eval(), scaler


def predict_frame(model, scaler, frame):
    scaled = scaler.transform_batch(frame[FEATURES].copy())
    with torch.no_grad():
        logits = model(torch.tensor(scaled[FEATURES].to_numpy(), dtype=torch.float32))
    return pd.DataFrame({"prediction": (logits > 0).long().numpy()})


class Scorer:
    def __init__(self, checkpoint):
        self.model, self.scaler = load_model_and_scaler(checkpoint)

    def __call__(self, batch):                          # a pandas DataFrame
        return predict_frame(self.model, self.scaler, batch)


@serve.deployment
class CancerClassifier:
    def __init__(self, checkpoint):
        self.model, self.scaler = load_model_and_scaler(checkpoint)

    async def __call__(self, request):
        records = await request.json()
        frame = pd.DataFrame(records)
        return predict_frame(self.model, self.scaler, frame).to_dict(orient="records")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    ray.init(num_cpus=4)
    storage = tempfile.mkdtemp(prefix="minray_ch10_")

    # ---- 1. Data and preprocessing
    frame = make_frame()
    dataset = ray.data.from_pandas(frame)
    train_ds, valid_ds = dataset.train_test_split(test_size=0.2, seed=0)
    test_ds = valid_ds.drop_columns(cols=["target"])
    scaler = StandardScaler(columns=FEATURES)
    scaler.fit(train_ds)                                  # statistics of the train split only
    train_ready, valid_ready = scaler.transform(train_ds), scaler.transform(valid_ds)
    print("1. data:", train_ds.count(), "training rows,", valid_ds.count(), "validation rows")

    # ---- 2. Training
    trainer = TorchTrainer(train_loop_per_worker,
                           train_loop_config={"lr": 0.5, "num_epochs": 5, "scaler": scaler},
                           scaling_config=ScalingConfig(num_workers=1),
                           datasets={"train": train_ready, "valid": valid_ready},
                           run_config=RunConfig(name="cancer", storage_path=storage))
    result = trainer.fit()
    print(f"2. trained: valid_accuracy {result.metrics['valid_accuracy']:.3f}")
    assert result.metrics["valid_accuracy"] > 0.75

    # ---- 3. Tuning: the trainer is a trainable; one trial per learning rate
    tuner = tune.Tuner(trainer, param_space={"train_loop_config": {
        "lr": tune.grid_search([0.05, 0.5]), "num_epochs": 3, "scaler": scaler}})
    best = tuner.fit().get_best_result(metric="valid_accuracy", mode="max")
    print(f"3. tuned: best lr {best.config['train_loop_config']['lr']}, "
          f"valid_accuracy {best.metrics['valid_accuracy']:.3f}")

    # ---- 4. Batch inference on a pool of two actors, each loading the checkpoint once
    predictions = test_ds.map_batches(Scorer, fn_constructor_kwargs={"checkpoint": best.checkpoint},
                                      batch_size=32, batch_format="pandas", concurrency=2)
    scored = predictions.to_pandas()
    print(f"4. batch inference: {len(scored)} predictions, "
          f"{int(scored['prediction'].sum())} positive")
    assert len(scored) == valid_ds.count()

    # ---- 5. Serving the same checkpoint over HTTP
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(CancerClassifier.bind(best.checkpoint), name="cancer", route_prefix="/cancer")
    records = frame[FEATURES].head(3).to_dict(orient="records")
    request = urllib.request.Request(f"http://127.0.0.1:{port}/cancer",
                                     data=json.dumps(records).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.loads(response.read())
    print("5. served:", answer)
    assert len(answer) == 3 and all(row["prediction"] in (0, 1) for row in answer)

    serve.shutdown()
    ray.shutdown()
    print("ch10 ok")
