"""Chapter 7 of "Learning Ray" on minray: distributed training with minray.train.

Runs as written (small sizes, well under a minute on a laptop):

    python docs/examples/ch07_train.py

The walkthrough is docs/tutorials/train.md.
"""
import os
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import minray
from minray import train, tune
from minray.train import Checkpoint, CheckpointConfig, RunConfig, ScalingConfig
from minray.train.torch import TorchTrainer, prepare_model

FEATURES = ["passenger_count", "trip_distance", "fare_amount", "trip_duration", "hour",
            "day_of_week"]
LABEL = "is_big_tip"


# ---- 1. The data: a small taxi-like table, as a minray Dataset
def make_trips(n=2048, seed=0):
    """Standardised trip features; a big tip is a noisy linear rule of them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES)))
    y = (x @ np.array([0.5, 1.5, -1.0, 0.8, 0.0, -0.6]) + 0.3 * rng.normal(size=n)) > 0
    rows = [dict(zip(FEATURES, map(float, xi))) for xi in x]
    for row, label in zip(rows, y):
        row[LABEL] = float(label)
    return rows


# ---- 2. The model
class FarePredictor(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(len(FEATURES), 64)
        self.fc2 = nn.Linear(64, 16)
        self.fc3 = nn.Linear(16, 1)
        self.bn1 = nn.BatchNorm1d(64)
        self.bn2 = nn.BatchNorm1d(16)

    def forward(self, x):
        x = self.bn1(F.relu(self.fc1(x)))
        x = self.bn2(F.relu(self.fc2(x)))
        return torch.sigmoid(self.fc3(x))


# ---- 3. The training loop, run by every worker
def train_loop_per_worker(config):
    torch.manual_seed(0)
    shard = train.get_dataset_shard("train")          # this worker's share of the rows
    model = prepare_model(FarePredictor())             # DDP: gradients averaged
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
    loss_fn = nn.SmoothL1Loss()
    rank = train.get_context().get_world_rank()
    for epoch in range(config["num_epochs"]):
        total, batches = 0.0, 0
        for batch in shard.iter_torch_batches(batch_size=config["batch_size"],
                                              dtypes=torch.float32):
            inputs = torch.stack([batch[f] for f in FEATURES], dim=1)
            labels = batch[LABEL].unsqueeze(1)
            loss = loss_fn(model(inputs), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, batches = total + loss.item(), batches + 1
        with tempfile.TemporaryDirectory() as tmpdir:
            checkpoint = None
            if rank == 0:  # one copy is enough: DDP keeps the replicas equal
                torch.save(getattr(model, "module", model).state_dict(),
                           os.path.join(tmpdir, "model.pt"))
                checkpoint = Checkpoint.from_directory(tmpdir)
            train.report({"epoch": epoch, "loss": total / batches}, checkpoint=checkpoint)


def fit_fare_predictor(storage):
    trips = minray.data.from_items(make_trips())
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"lr": 1e-2, "num_epochs": 3, "batch_size": 64},
        scaling_config=ScalingConfig(num_workers=2),
        datasets={"train": trips},
        run_config=RunConfig(name="fare_predictor", storage_path=storage,
                             checkpoint_config=CheckpointConfig(num_to_keep=2)),
    )
    result = trainer.fit()
    print("last epoch:", result.metrics)
    print(result.metrics_dataframe[["epoch", "loss"]])

    # Load the latest checkpoint into a plain model and check it on the data.
    model = FarePredictor()
    with result.checkpoint.as_directory() as d:
        model.load_state_dict(torch.load(os.path.join(d, "model.pt")))
    model.eval()
    rows = make_trips()
    x = torch.tensor([[r[f] for f in FEATURES] for r in rows])
    y = torch.tensor([r[LABEL] for r in rows])
    with torch.no_grad():
        accuracy = ((model(x).squeeze(1) > 0.5).float() == y).float().mean().item()
    print(f"accuracy of the checkpointed model: {accuracy:.3f}")
    assert accuracy > 0.8
    return result


# ---- 4. From a plain PyTorch loop to a distributed one
class NeuralNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(10, 15)
        self.fc2 = nn.Linear(15, 5)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


def distributed_training_loop():
    inputs = torch.randn(20, 10, generator=torch.Generator().manual_seed(1))
    labels = torch.randn(20, 5, generator=torch.Generator().manual_seed(2))
    model = prepare_model(NeuralNetwork())  # the one line that makes it distributed
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(3):
        loss = F.mse_loss(model(inputs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        train.report({"epoch": epoch, "loss": loss.item()})


# ---- 5. Tuning a trainer
def tune_learning_rate(storage):
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"num_epochs": 2, "batch_size": 128},
        scaling_config=ScalingConfig(num_workers=1),
        datasets={"train": minray.data.from_items(make_trips(512))},
        run_config=RunConfig(name="tune_fare_predictor", storage_path=storage),
    )
    tuner = tune.Tuner(
        trainer,
        param_space={"train_loop_config": {"lr": tune.grid_search([1e-3, 1e-2])}},
        tune_config=tune.TuneConfig(metric="loss", mode="min"),
    )
    best = tuner.fit().get_best_result()
    print("best learning rate:", best.config["train_loop_config"]["lr"],
          "loss:", round(best.metrics["loss"], 4))
    return best


if __name__ == "__main__":
    minray.init(num_cpus=4)
    with tempfile.TemporaryDirectory() as storage:
        fit_fare_predictor(storage)
        result = TorchTrainer(distributed_training_loop,
                              scaling_config=ScalingConfig(num_workers=2),
                              run_config=RunConfig(name="nn", storage_path=storage)).fit()
        print("plain loop, now on 2 workers: done, error =", result.error)
        tune_learning_rate(storage)
    minray.shutdown()
