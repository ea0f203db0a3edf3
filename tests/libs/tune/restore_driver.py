"""A driver for the restore test: ``python restore_driver.py <storage> <markers>``
runs six slow trials two at a time; the test SIGKILLs it halfway through."""
import os
import sys
import time
import uuid

from minray import tune


def slow_trial(config):
    markers = config["markers"]
    open(os.path.join(markers, f"start_{config['i']}_{uuid.uuid4().hex[:6]}"), "w").close()
    for step in range(3):
        time.sleep(0.15)
        tune.report({"step": step, "i": config["i"]})
    open(os.path.join(markers, f"done_{config['i']}"), "w").close()


def main(storage, markers):
    import minray
    minray.init(num_cpus=2)
    tuner = tune.Tuner(
        slow_trial,
        param_space={"i": tune.grid_search(list(range(6))), "markers": markers},
        tune_config=tune.TuneConfig(max_concurrent_trials=2),
        run_config=tune.RunConfig(name="killed", storage_path=storage))
    tuner.fit()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
