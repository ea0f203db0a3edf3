"""Chapter 5, hyperparameter tuning with Tune: the code of docs/tutorials/tune.md as one script.

The tutorial's code blocks, in order (each block runs as it stands
after the first one's imports); only the output folders differ: a temporary folder
instead of fixed paths under /tmp.

Run: python docs/examples/ch05_tune.py   (a few seconds)
"""
import os
import shutil
import tempfile

WORKDIR = tempfile.mkdtemp(prefix="minray_example_")

import minray as ray
from minray import tune

ray.init(num_cpus=4)

import random

def train_and_evaluate(config):          # a stand-in for the book's maze Q-learning
    return (config["weight"] - 0.3) ** 2 + config["discount_factor"]

@ray.remote
def objective(config):
    return [train_and_evaluate(config), config]

search_space = [{"weight": random.uniform(0, 1), "discount_factor": random.uniform(0, 1)}
                for _ in range(10)]
results = ray.get([objective.remote(config) for config in search_space])
best_score, best_config = min(results, key=lambda r: r[0])

def tune_objective(config):
    score = train_and_evaluate(config)
    return {"score": score}

analysis = tune.run(
    tune_objective,
    config={"weight": tune.uniform(0, 1), "discount_factor": tune.uniform(0, 1)},
    num_samples=8,
    storage_path=WORKDIR,      # default: ~/ray_results
)
print(analysis.get_best_config(metric="score", mode="min"))
print(analysis.results_df[["score", "config/weight"]].head())

import numpy as np

space = {
    "weight": tune.sample_from(lambda config: np.random.uniform(0, 1)),
    "bias": tune.sample_from(lambda config: config["weight"] * np.random.normal()),
    "model": {"layers": tune.grid_search([2, 3]), "activation": tune.choice(["relu", "tanh"])},
}

def objective(config):
    for step in range(30):
        score = config["weight"] * (step ** 0.5) + config["bias"]
        tune.report({"score": score})

from minray.tune.schedulers import ASHAScheduler, HyperBandScheduler

tuner = tune.Tuner(
    objective,
    param_space={"weight": tune.uniform(0, 1), "bias": tune.uniform(0, 1)},
    tune_config=tune.TuneConfig(metric="score", mode="min", num_samples=10,
                                scheduler=ASHAScheduler(max_t=10, grace_period=1,
                                                        reduction_factor=2)),
    run_config=tune.RunConfig(storage_path=WORKDIR, name="asha"),
)
results = tuner.fit()
best = results.get_best_result()
print(best.config, best.metrics["score"], best.metrics["training_iteration"])
print(results.get_dataframe()[["score", "training_iteration"]])

from minray.tune import Callback
from minray.tune.logger import pretty_print

class PrintResultCallback(Callback):
    def on_trial_result(self, iteration, trials, trial, result, **info):
        print(f"Trial {trial} in iteration {iteration}, got result: {result['score']}")

def objective_with_step(config):
    for step in range(30):
        score = config["weight"] * (step ** 0.5) + config["bias"]
        tune.report({"score": score, "step": step, "more_metrics": {}})

analysis = tune.run(
    objective_with_step,
    config={"weight": tune.uniform(0, 1), "bias": tune.uniform(0, 1)},
    mode="min", metric="score", num_samples=2,
    callbacks=[PrintResultCallback()],
    stop={"training_iteration": 10},          # or a function, or a tune.Stopper
    resources_per_trial={"cpu": 2},           # at most 2 trials at once on 4 CPUs
    storage_path=WORKDIR,
)
print(pretty_print(analysis.best_trial.last_result))

from minray.tune.search import BasicVariantGenerator, ConcurrencyLimiter
from minray.tune.search.bayesopt import BayesOptSearch

algo = BasicVariantGenerator(points_to_evaluate=[{"weight": 0.5, "bias": 0.1}])
analysis = tune.run(objective, config={"weight": tune.uniform(0, 1), "bias": tune.uniform(0, 1)},
                    metric="score", mode="min", search_alg=algo, num_samples=1,
                    stop={"training_iteration": 10}, storage_path=WORKDIR)
print(analysis.best_config)

# Bayesian optimisation with a Gaussian process (built in, numpy only):
algo = ConcurrencyLimiter(BayesOptSearch(random_search_steps=4), max_concurrent=2)
results = tune.Tuner(
    objective,
    param_space={"weight": tune.uniform(0, 1), "bias": tune.uniform(0, 1)},
    tune_config=tune.TuneConfig(metric="score", mode="min", search_alg=algo, num_samples=12),
    run_config=tune.RunConfig(storage_path=WORKDIR, stop={"training_iteration": 5}),
).fit()

import os, tempfile
from minray.tune import Checkpoint
from minray.tune.schedulers import PopulationBasedTraining

def trainable(config):
    value, start = 0.0, 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:                                 # after a failure, a restore or a PBT exploit
        with checkpoint.as_directory() as d:
            value, start = map(float, open(os.path.join(d, "state")).read().split())
    for step in range(int(start), 20):
        value += config["lr"]
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "state"), "w") as f:
                f.write(f"{value} {step + 1}")
            tune.report({"value": value}, checkpoint=Checkpoint.from_directory(d))

pbt = PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=4,
                              hyperparam_mutations={"lr": [0.1, 1.0, 10.0]})
results = tune.Tuner(
    trainable,
    param_space={"lr": tune.grid_search([0.1, 1.0, 10.0])},
    tune_config=tune.TuneConfig(metric="value", mode="max", scheduler=pbt),
    run_config=tune.RunConfig(storage_path=WORKDIR, name="pbt",
                              failure_config=tune.FailureConfig(max_failures=2)),
).fit()

if tune.Tuner.can_restore(os.path.join(WORKDIR, "pbt")):
    results = tune.Tuner.restore(os.path.join(WORKDIR, "pbt"), trainable).fit()

ray.shutdown()
shutil.rmtree(WORKDIR, ignore_errors=True)
print("ch05 ok")
