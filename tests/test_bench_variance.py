"""`pgfast bench --only variance --quick`: the variance table and the exact-against-sampling timing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pgfast.benchmarks import variance
from pgfast.cli import main


def test_bench_variance_quick(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_json = tmp_path / "variance.json"
    assert main(["bench", "--only", "variance", "--quick", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "== pgfast bench variance ==" in out and "relative to plain REINFORCE" in out and "N trace" in out
    result = json.loads(out_json.read_text())
    assert result["benchmark"] == "variance" and result["quick"] is True
    assert {"machine", "protocol", "created", "command"} <= set(result)
    rows = result["rows"]
    table = [r for r in rows if r["table"] == "variance"]
    timing = [r for r in rows if r["table"] == "timing"]
    assert len(table) + len(timing) == len(rows)

    # table 1: every weights x baseline combination for each workload and policy
    groups: dict[tuple[str, str], list[dict[str, object]]] = {}
    for r in table:
        groups.setdefault((r["workload"], r["policy"]), []).append(r)
    assert set(groups) == {("frozenlake8x8", "uniform"), ("frozenlake8x8", "trained"), ("taxi", "trained"),
                           ("random", "uniform")}
    for rs in groups.values():
        assert [(r["weights"], r["baseline"]) for r in rs] == list(variance.COMBINATIONS)
        by = {(r["weights"], r["baseline"]): r for r in rs}
        ref = by[variance.REFERENCE]
        assert ref["relative_trace"] == 1.0
        for r in rs:
            assert r["J"] == pytest.approx(ref["J"], rel=1e-9, abs=1e-12)  # one policy per group
            assert r["relative_trace"] == pytest.approx(r["trace"] / ref["trace"], rel=1e-12)
            assert r["noise_to_signal"] == pytest.approx(r["trace"] / r["grad_norm"] ** 2, rel=1e-9)
        # the optimal constant baselines of the return weights beat no baseline and the mean
        opt = by[("return", "optimal")]["trace"]
        assert opt <= by[("return", "none")]["trace"] * (1 + 1e-12)
        assert opt <= by[("return", "mean")]["trace"] * (1 + 1e-12)
    trained = groups[("frozenlake8x8", "trained")][0]
    uniform = groups[("frozenlake8x8", "uniform")][0]
    assert trained["train_iterations"] > 0 and uniform["train_iterations"] == 0 and trained["J"] != uniform["J"]

    # table 2: one row per workload, N and times consistent
    assert [r["workload"] for r in timing] == ["frozenlake8x8", "random"]
    for r in timing:
        assert r["exact_seconds"] > 0 and r["sampling_seconds_trace"] > 0 and r["sampling_seconds_median"] > 0
        assert r["ratio_trace"] == pytest.approx(r["sampling_seconds_trace"] / r["exact_seconds"])
        assert r["ratio_median"] == pytest.approx(r["sampling_seconds_median"] / r["exact_seconds"])
        assert r["n_trace"] >= 2 and r["n_median"] >= 2
        assert r["resolved_coordinates"] <= r["live_coordinates"] <= r["coordinates"] == r["n_params"]
        assert (r["n_trace"] >= r["pilot_n"]) or not r["n_trace_lower_bound"]
    # the random MDP's pilot resolves the trace: its mean squared deviation is the exact trace
    # within a few standard errors (10,000 episodes; the kurtosis is moderate)
    rnd = timing[1]
    assert not rnd["n_trace_lower_bound"] and rnd["pilot_trace_ratio"] == pytest.approx(1.0, abs=0.1)
    assert math.isfinite(rnd["kurtosis_median"]) and rnd["kurtosis_median"] >= 1.0
    # N for the trace follows from the pilot: relative standard error sqrt(Var Z / N) / tr <= 0.1
    assert rnd["n_trace"] < rnd["pilot_n"]


def test_variance_is_opt_in() -> None:
    from pgfast import cli

    assert "variance" in cli._OPT_IN_SUITES and "variance" not in cli._SUITES


def test_the_sample_sizes_reach_ten_percent() -> None:
    """Batches of the N the benchmark computes estimate the trace and the median-kurtosis coordinate's
    variance with a relative standard deviation of about 10 % (over independent batches)."""
    import numpy as np

    import pgfast as pg
    from pgfast.benchmarks._harness import random_mdp

    mdp = random_mdp(n_states=30, n_actions=4, n_successors=5, horizon=15, seed=3)
    pi = pg.TabularSoftmax(30, 4)
    m = pg.exact.moments(mdp, pi, covariance=False)
    mean, var = np.asarray(m.mean).reshape(-1), np.asarray(m.variance).reshape(-1)
    stats = variance._pilot_stats(mdp, pi, mean, var, float(m.trace), 20_000)
    assert stats["live_coordinates"] == stats["resolved_coordinates"] == 120 and not stats["n_trace_lower_bound"]
    # the coordinate of median kurtosis, from the same pilot
    d = variance._per_trajectory(mdp, pi, 20_000, variance.SEED + 1, None) - mean
    kurt = np.mean(d**4, axis=0) / var**2
    k = int(np.argsort(kurt)[kurt.size // 2])
    repeats = 150
    for n, stat, exact in (
        (stats["n_trace"], lambda g: float(np.var(g, axis=0, ddof=1).sum()), float(m.trace)),
        (int(np.ceil((kurt[k] - 1) / 0.01)), lambda g: float(np.var(g[:, k], ddof=1)), float(var[k])),
    ):
        est = np.array([stat(variance._per_trajectory(mdp, pi, n, 1000 + r, None)) for r in range(repeats)])
        rel_sd = float(np.std(est / exact - 1.0, ddof=1))
        # the standard deviation of R nearly normal estimates is itself off by ~1/sqrt(2R) = 6 %
        # of 0.1: 0.1 +- 0.025 is about 4 of its standard errors
        assert 0.075 <= rel_sd <= 0.125, (n, rel_sd)
