"""Search spaces and search algorithms, driven directly (no runtime needed),
plus the model-based searchers inside a Tuner."""
import math

import numpy as np
import pytest

from minray import tune
from minray.tune.search import (BasicVariantGenerator, ConcurrencyLimiter, Repeater, Searcher,
                                SearchGenerator)
from minray.tune.search import sample


def draw(domain, n=300):
    return [domain.sample() for _ in range(n)]


def test_domains_sample_in_range():
    np.random.seed(0)
    assert all(0 <= v <= 1 for v in draw(tune.uniform(0, 1)))
    q = draw(tune.quniform(0, 1, 0.25))
    assert set(q) <= {0.0, 0.25, 0.5, 0.75, 1.0} and len(set(q)) > 2
    lu = draw(tune.loguniform(1e-4, 1e-1))
    assert all(1e-4 <= v <= 1e-1 for v in lu)
    assert min(lu) < 1e-3 < max(lu)  # spread over the decades
    qlu = draw(tune.qloguniform(1e-3, 1, 1e-3))
    assert all(abs(round(v / 1e-3) * 1e-3 - v) < 1e-12 for v in qlu)
    rn = draw(tune.randn(10, 2), 2000)
    assert abs(np.mean(rn) - 10) < 0.3 and abs(np.std(rn) - 2) < 0.3
    ri = draw(tune.randint(3, 6))
    assert set(ri) == {3, 4, 5} and all(isinstance(v, int) for v in ri)
    qri = draw(tune.qrandint(0, 20, 5))
    assert set(qri) <= {0, 5, 10, 15, 20} and 20 in qri  # upper included
    lri = draw(tune.lograndint(1, 1000))
    assert all(1 <= v < 1000 for v in lri) and min(lri) < 10
    assert set(draw(tune.choice(["a", "b"]))) == {"a", "b"}


def test_bad_domains_are_rejected_with_the_values():
    with pytest.raises(ValueError, match="lower=2, upper=1"):
        tune.uniform(2, 1)
    with pytest.raises(ValueError, match="lower > 0"):
        tune.loguniform(0, 1)
    with pytest.raises(ValueError, match="empty"):
        tune.choice([])
    with pytest.raises(TypeError, match="callable"):
        tune.sample_from(3)


def test_grid_order_and_num_samples():
    space = {"a": tune.grid_search([1, 2]), "b": {"c": tune.grid_search(["x", "y"])},
             "r": tune.uniform(0, 1), "const": 7}
    gen = BasicVariantGenerator()
    gen.setup(space, num_samples=2)
    configs = []
    while True:
        c = gen.next_config(f"t{len(configs)}")
        if c == "FINISHED":
            break
        configs.append(c)
    assert [(c["a"], c["b"]["c"]) for c in configs] == [(1, "x"), (2, "x"), (1, "y"), (2, "y")] * 2
    assert all(c["const"] == 7 for c in configs)
    assert len({c["r"] for c in configs}) == 8
    assert gen.is_finished() and gen.total_samples() == 8


def test_sample_from_sees_other_values_in_any_order():
    space = {"double": tune.sample_from(lambda cfg: 2 * cfg["nested"]["base"]),
             "nested": {"base": tune.uniform(1, 2)},
             "quad": tune.sample_from(lambda spec: 2 * spec.config.double),
             "const": 3, "plus": tune.sample_from(lambda cfg: cfg["const"] + 1)}
    c = sample.resolve(space)
    assert c["double"] == 2 * c["nested"]["base"] and c["quad"] == 2 * c["double"]
    assert c["plus"] == 4
    cyclic = {"a": tune.sample_from(lambda c: c["b"]), "b": tune.sample_from(lambda c: c["a"])}
    with pytest.raises(ValueError, match="cycle"):
        sample.resolve(cyclic)


def test_points_to_evaluate_come_first_and_fill_gaps():
    gen = BasicVariantGenerator(points_to_evaluate=[{"a": 5}, {"a": 6, "b": 0.5}])
    gen.setup({"a": tune.randint(0, 3), "b": tune.uniform(0, 1)}, num_samples=3)
    c1, c2, c3 = (gen.next_config(str(i)) for i in range(3))
    assert c1["a"] == 5 and 0 <= c1["b"] <= 1
    assert c2 == {"a": 6, "b": 0.5}
    assert c3["a"] in (0, 1, 2)
    assert gen.next_config("x") == "FINISHED"


class Counter(Searcher):
    def __init__(self):
        super().__init__(metric="m", mode="max")
        self.n = 0
        self.completed = []

    def suggest(self, trial_id):
        self.n += 1
        return {"n": self.n}

    def on_trial_complete(self, trial_id, result=None, error=False):
        self.completed.append((trial_id, result and result["m"]))


def test_concurrency_limiter_and_repeater():
    lim = ConcurrencyLimiter(Counter(), max_concurrent=2)
    assert lim.suggest("a") == {"n": 1} and lim.suggest("b") == {"n": 2}
    assert lim.suggest("c") is None
    lim.on_trial_complete("a", {"m": 1})
    assert lim.suggest("c") == {"n": 3}
    rep = Repeater(Counter(), repeat=3)
    configs = [rep.suggest(t) for t in "xyz"]
    assert [c["n"] for c in configs] == [1, 1, 1]
    assert [c["__trial_index__"] for c in configs] == [0, 1, 2]
    for t, m in zip("xyz", (1.0, 2.0, 6.0)):
        rep.on_trial_complete(t, {"m": m})
    assert rep.searcher.completed == [("x", 3.0)]  # the mean of the group
    assert rep.suggest("w")["n"] == 2


def test_search_generator_counts_and_fills_constants():
    gen = SearchGenerator(Counter())
    gen.setup({"n": tune.uniform(0, 1), "k": 1, "twice": tune.sample_from(lambda c: 2 * c["n"])},
              num_samples=2)
    assert gen.next_config("a") == {"n": 1, "k": 1, "twice": 2}
    assert gen.next_config("b")["n"] == 2
    assert gen.next_config("c") == "FINISHED"
    with pytest.raises(ValueError, match="grid_search"):
        SearchGenerator(Counter()).setup({"x": tune.grid_search([1])}, 1)


def test_bayesopt_finds_the_optimum_of_a_quadratic():
    from minray.tune.search import BayesOptSearch
    algo = BayesOptSearch(metric="y", mode="min", random_search_steps=5, random_state=1)
    algo.set_search_properties(None, None, {"x": tune.uniform(-4, 4),
                                            "n": tune.randint(0, 10)})
    for i in range(25):
        config = algo.suggest(str(i))
        assert isinstance(config["n"], int)
        algo.on_trial_complete(str(i), {"y": (config["x"] - 1.5) ** 2 + (config["n"] - 3) ** 2})
    best = min(zip(algo._y, algo._x), key=lambda p: -p[0])
    assert -best[0] < 0.3
    with pytest.raises(ValueError, match="tune.choice"):
        BayesOptSearch(space={"a": tune.choice([1, 2])})


def quadratic(config):
    tune.report({"loss": (config["x"] - 1.0) ** 2, "tag": config["tag"]})


def _searcher_tuner(tmp_path, algo, n=12, name="s"):
    return tune.Tuner(
        quadratic, param_space={"x": tune.uniform(-3, 3), "tag": "t"},
        tune_config=tune.TuneConfig(search_alg=algo, num_samples=n, metric="loss", mode="min"),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name=name)).fit()


def test_bayesopt_in_a_tuner(ray_module, tmp_path):
    from minray.tune.search import BayesOptSearch
    algo = ConcurrencyLimiter(BayesOptSearch(random_search_steps=4, points_to_evaluate=[
        {"x": 0.0}]), max_concurrent=2)
    results = _searcher_tuner(tmp_path, algo)
    assert len(results) == 12
    assert results[0].config["x"] == 0.0
    assert all(r.config["tag"] == "t" for r in results)
    assert results.get_best_result().metrics["loss"] < 0.2


def test_optional_searchers_name_their_package():
    import importlib.util
    from minray.tune import search
    for cls_name, pkg in (("OptunaSearch", "optuna"), ("HyperOptSearch", "hyperopt")):
        if importlib.util.find_spec(pkg) is None:
            with pytest.raises(ImportError, match=pkg):
                getattr(search, cls_name)()


def test_optuna_search(ray_module, tmp_path):
    pytest.importorskip("optuna", reason="OptunaSearch needs optuna (optional)")
    from minray.tune.search.optuna import OptunaSearch
    results = _searcher_tuner(tmp_path, OptunaSearch(seed=0, points_to_evaluate=[{"x": 1.0}]),
                              n=8, name="optuna")
    assert len(results) == 8 and results.num_errors == 0
    assert results.get_best_result().metrics["loss"] == pytest.approx(0.0)


def test_hyperopt_search(ray_module, tmp_path):
    pytest.importorskip("hyperopt", reason="HyperOptSearch needs hyperopt (optional)")
    from minray.tune.search.hyperopt import HyperOptSearch
    results = _searcher_tuner(tmp_path, HyperOptSearch(n_initial_points=3, random_state_seed=0),
                              n=8, name="hyperopt")
    assert len(results) == 8 and results.num_errors == 0
    assert all(-3 <= r.config["x"] <= 3 for r in results)
    assert math.isfinite(results.get_best_result().metrics["loss"])
