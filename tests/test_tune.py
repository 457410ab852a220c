"""pg.train as a Ray Tune function trainable (pg.tune_trainable), on a real local Ray: the reported
metrics equal direct pg.train runs bit for bit, and an ASHA scheduler stops some trials early."""

from __future__ import annotations

import math
import signal
from pathlib import Path
from typing import Any

import pytest
from test_sweep import ENV, KW, _direct

import pgfast as pg

pytestmark = pytest.mark.ray

FIELDS = ("iteration", "J_estimate", "J_stderr", "J_exact", "grad_norm")


def _fit(trainable: Any, param_space: dict[str, Any], storage: Path, scheduler: Any = None) -> Any:
    from ray import tune

    tuner = tune.Tuner(
        trainable, param_space=param_space,
        tune_config=tune.TuneConfig(metric="J_exact", mode="max", reuse_actors=True, scheduler=scheduler),
        run_config=tune.RunConfig(storage_path=str(storage), name="pgfast", verbose=0),
    )
    handler = signal.getsignal(signal.SIGINT)
    try:
        return tuner.fit()
    finally:  # Tuner.fit leaves its own SIGINT handler installed: Ctrl-C must reach the other tests
        signal.signal(signal.SIGINT, handler)


def test_reported_metrics_equal_direct_train(ray_local: Any, tmp_path: Path) -> None:
    from ray import tune

    trainable = pg.tune_trainable(ENV, iterations=3, env_kwargs=KW, batch=64)
    results = _fit(trainable, {"lr": tune.grid_search([0.1, 0.3]), "seed": tune.grid_search([0, 4])}, tmp_path)
    assert len(results) == 4 and not results.errors
    optimal = pg.exact.optimal(pg.FiniteMDP.from_gymnasium(ENV, **KW)).value
    seen = set()
    for result in results:
        config = result.config
        df = result.metrics_dataframe.sort_values("training_iteration")
        hist = _direct({"lr": config["lr"]}, config["seed"], 3, 64)
        assert len(df) == 3
        for f in FIELDS:
            assert df[f].tolist() == hist[f].tolist(), f
        assert [x == j / optimal for x, j in zip(df["fraction_of_optimal"], df["J_exact"])] == [True] * 3
        seen.add((config["lr"], config["seed"]))
    assert seen == {(0.1, 0), (0.1, 4), (0.3, 0), (0.3, 4)}


def test_asha_stops_some_trials_early(ray_local: Any, tmp_path: Path) -> None:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    trainable = pg.tune_trainable(ENV, iterations=8, env_kwargs=KW, batch=64)
    asha = ASHAScheduler(time_attr="training_iteration", max_t=8, grace_period=1, reduction_factor=2)
    space = {"lr": tune.grid_search([0.001, 0.01, 0.1, 1.0]), "seed": tune.grid_search([0, 1])}
    results = _fit(trainable, space, tmp_path, scheduler=asha)
    assert len(results) == 8 and not results.errors
    lengths = sorted(len(r.metrics_dataframe) for r in results)
    assert lengths[0] < 8 and lengths[-1] == 8, lengths
    for result in results:  # what ran equals the first iterations of the direct run
        df = result.metrics_dataframe.sort_values("training_iteration")
        hist = _direct({"lr": result.config["lr"]}, result.config["seed"], 8, 64)
        assert df["J_estimate"].tolist() == hist["J_estimate"][: len(df)].tolist()
        assert not any(math.isnan(x) for x in df["J_exact"])


def test_bad_options_are_refused_before_any_trial() -> None:
    with pytest.raises(ValueError, match="unknown option 'speed'"):
        pg.tune_trainable(ENV, iterations=3, env_kwargs=KW, speed=1)
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        pg.tune_trainable(ENV, iterations=0)
