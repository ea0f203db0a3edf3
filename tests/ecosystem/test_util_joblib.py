"""minray.util.joblib: joblib's "ray" backend runs scikit-learn's n_jobs on minray."""
import os
import time

import pytest

joblib = pytest.importorskip("joblib")
sklearn = pytest.importorskip("sklearn")

import numpy as np  # noqa: E402
from sklearn.base import BaseEstimator, ClassifierMixin  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.svm import SVC  # noqa: E402

import minray as ray  # noqa: E402
from minray.util.joblib import register_ray  # noqa: E402


class PidRecordingClassifier(ClassifierMixin, BaseEstimator):
    """A nearest-centroid classifier that notes, in ``log_dir``, which process fit it."""

    def __init__(self, shrink=0.0, log_dir=None):
        self.shrink = shrink
        self.log_dir = log_dir

    def fit(self, X, y):
        if self.log_dir:
            path = os.path.join(self.log_dir, f"{os.getpid()}-{time.monotonic_ns()}")
            # The actor this fit ran in (None in a plain process, e.g. the caller).
            actor = ray.get_runtime_context().get_actor_id() if ray.is_initialized() else None
            with open(path, "w") as f:
                f.write(f"{os.getpid()} {actor}")
        self.classes_ = np.unique(y)
        centre = X.mean(axis=0)
        self.centroids_ = np.array([(1 - self.shrink) * X[y == c].mean(axis=0)
                                    + self.shrink * centre for c in self.classes_])
        return self

    def predict(self, X):
        dist = ((X[:, None, :] - self.centroids_[None, :, :]) ** 2).sum(axis=2)
        return self.classes_[dist.argmin(axis=1)]


def slow_pid(i):
    time.sleep(0.05)
    return i, os.getpid()


def boom(i):
    if i == 2:
        raise KeyError(f"bad item {i}")
    return i


def test_grid_search_runs_in_minray_workers_and_matches_sequential(ray_module, tmp_path):
    register_ray()
    X, y = make_classification(n_samples=120, n_features=6, random_state=0)
    grid = {"shrink": [0.0, 0.25, 0.5, 0.75]}
    log_dir = str(tmp_path)
    with joblib.parallel_backend("ray"):
        search = GridSearchCV(PidRecordingClassifier(log_dir=log_dir), grid, cv=3,
                              n_jobs=-1).fit(X, y)
    fits = [open(os.path.join(log_dir, n)).read().split() for n in os.listdir(log_dir)]
    # 4 candidates x 3 folds in minray's pool actors, + the refit in the caller.
    assert len(fits) == 13
    in_workers = [(int(pid), actor) for pid, actor in fits if int(pid) != os.getpid()]
    assert len(in_workers) == 12
    assert all(actor != "None" for _, actor in in_workers)
    assert len({pid for pid, _ in in_workers}) >= 2      # the fits ran in parallel
    sequential = GridSearchCV(PidRecordingClassifier(), grid, cv=3).fit(X, y)
    assert search.best_params_ == sequential.best_params_
    np.testing.assert_allclose(search.cv_results_["mean_test_score"],
                               sequential.cv_results_["mean_test_score"])


def test_grid_search_with_svc_and_the_minray_alias(ray_module):
    register_ray()
    X, y = make_classification(n_samples=80, n_features=4, random_state=1)
    grid = {"C": [0.1, 1.0, 10.0], "kernel": ["linear", "rbf"]}
    with joblib.parallel_backend("minray", n_jobs=2):
        search = GridSearchCV(SVC(), grid, cv=2, n_jobs=2).fit(X, y)
    sequential = GridSearchCV(SVC(), grid, cv=2).fit(X, y)
    assert search.best_params_ == sequential.best_params_
    assert search.score(X, y) == sequential.score(X, y)


def test_parallel_calls_run_concurrently_on_the_cluster(ray_module):
    register_ray()
    with joblib.parallel_backend("ray", n_jobs=-1):
        out = joblib.Parallel()(joblib.delayed(slow_pid)(i) for i in range(16))
    assert [i for i, _ in out] == list(range(16))
    pids = {pid for _, pid in out}
    assert os.getpid() not in pids and len(pids) == 4   # n_jobs=-1: the cluster's 4 CPUs


def test_errors_reach_the_caller(ray_module):
    register_ray()
    with joblib.parallel_backend("ray"):
        with pytest.raises(KeyError, match="bad item 2"):
            joblib.Parallel(n_jobs=2)(joblib.delayed(boom)(i) for i in range(6))
        # The backend is usable again after a failure.
        assert joblib.Parallel(n_jobs=2)(joblib.delayed(abs)(-i) for i in range(4)) == \
            [0, 1, 2, 3]
    with joblib.parallel_backend("ray"):
        with pytest.raises(ValueError, match="n_jobs == 0"):
            joblib.Parallel(n_jobs=0)(joblib.delayed(abs)(1) for _ in range(2))


def double(i):
    return 2 * i


def nested_sum(i):
    # Inside a pool actor, joblib's nested backend (threads) runs the inner loop.
    return sum(joblib.Parallel(n_jobs=2)(joblib.delayed(double)(j) for j in range(i)))


def test_generators_nesting_and_one_job(ray_module):
    register_ray()
    with joblib.parallel_backend("ray"):
        gen = joblib.Parallel(n_jobs=2, return_as="generator")(
            joblib.delayed(double)(i) for i in range(6))
        assert list(gen) == [0, 2, 4, 6, 8, 10]
        unordered = joblib.Parallel(n_jobs=2, return_as="generator_unordered")(
            joblib.delayed(double)(i) for i in range(6))
        assert sorted(unordered) == [0, 2, 4, 6, 8, 10]
        assert joblib.Parallel(n_jobs=2)(joblib.delayed(nested_sum)(i) for i in range(4)) == \
            [0, 0, 2, 6]
        # n_jobs=1 runs in the caller, as joblib's process backends do.
        assert joblib.Parallel(n_jobs=1)(joblib.delayed(os.getpid)() for _ in range(2)) == \
            [os.getpid()] * 2
