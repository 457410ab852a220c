"""The exact columns of pg.train's History (J* - J, fraction of optimal, exact gradient norm, step
cosine, exact variance trace, advantage gap, min probability of the optimal actions): their
values against independent computations, the rule that turns them on, checkpoints and resume,
the command line's table and plot."""

from __future__ import annotations

import json
import math
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import random_mdp

import pgfast as pg
from pgfast import _checkpoint
from pgfast import _train as train_module
from pgfast._train import BASE_FIELDS, EXACT_FIELDS, FIELDS
from pgfast.cli import _plot, main

DETERMINISTIC = tuple(f for f in FIELDS if f not in ("seconds", "steps_per_s"))


def _dense(mdp: pg.FiniteMDP) -> tuple[np.ndarray, np.ndarray]:
    """P (S, A, S) and the expected reward R (S, A) of ``mdp``, read from its CSR transitions."""
    indptr, nxt, prob, reward = mdp.transitions
    S, A = mdp.n_states, mdp.n_actions
    P, R = np.zeros((S, A, S)), np.zeros((S, A))
    for row in range(S * A):
        s, a = divmod(row, A)
        for k in range(indptr[row], indptr[row + 1]):
            P[s, a, nxt[k]] += prob[k]
            R[s, a] += prob[k] * reward[k]
    return P, R


def _backward(mdp: pg.FiniteMDP, gamma: float, probs: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(Q_0, V_0) by backward induction over the horizon: of the policy ``probs`` (S, A), or of the
    optimal policy when ``probs`` is None; V = Q = 0 on terminal states."""
    P, R = _dense(mdp)
    live = ~mdp.terminal
    V = np.zeros(mdp.n_states)
    Q = np.zeros_like(R)
    for _ in range(mdp.horizon):
        Q = (R + gamma * P @ V) * live[:, None]
        V = Q.max(axis=1) if probs is None else (probs * Q).sum(axis=1)
    return Q, V


def _run(mdp: pg.FiniteMDP, policy: pg.SoftmaxPolicy, baseline: Any = None, weights: str = "reward_to_go",
         gamma: float | None = None, iterations: int = 6, **kw: Any) -> tuple[pg.History, list[np.ndarray], list[Any]]:
    """A run with eval_every=1, the theta before every iteration and the fitted ValueBaseline table
    each iteration used (None: cross-fitted)."""
    thetas = [policy.theta.copy()]
    tables: list[Any] = [None]

    def cb(it: int, rec: dict[str, float]) -> None:
        thetas.append(policy.theta.copy())
        tables.append(baseline.values() if isinstance(baseline, pg.ValueBaseline) else None)

    hist = pg.train(mdp, policy, optimizer=pg.optim.GradientAscent(0.5), iterations=iterations, batch=200, seed=5,
                    weights=weights, baseline=baseline, gamma=gamma, progress=False, callback=cb, **kw)
    return hist, thetas, tables


def _check_values(hist: pg.History, thetas: list[np.ndarray], tables: list[Any], mdp: pg.FiniteMDP,
                  make: Any, weights: str, baseline: Any, gamma: float) -> None:
    Qs, Vs = _backward(mdp, gamma, None)
    J_star = float(mdp.mu0 @ Vs)
    tol = 1e-9 * max(1.0, float(np.abs(Vs).max()))
    optimal = Qs >= Vs[:, None] - tol
    for k, rec in enumerate(hist.records):
        pi, after = make(thetas[k]), thetas[k + 1]
        J = pg.exact.evaluate(mdp, pi, gamma=gamma).J
        grad = pg.exact.gradient(mdp, pi, gamma=gamma)
        assert rec["J_exact"] == pytest.approx(J, rel=1e-12, abs=1e-12)
        assert rec["J_gap"] == pytest.approx(J_star - J, rel=1e-9, abs=1e-12)
        frac = J / J_star if J_star > 0 else J_star / J
        assert rec["fraction_of_optimal"] == pytest.approx(frac, rel=1e-9)
        assert rec["exact_grad_norm"] == pytest.approx(np.linalg.norm(grad), rel=1e-9)
        step = (after - thetas[k]).ravel()
        cos = step @ grad.ravel() / (np.linalg.norm(step) * np.linalg.norm(grad))
        assert rec["step_cosine"] == pytest.approx(cos, rel=1e-9, abs=1e-12)
        if isinstance(baseline, pg.ValueBaseline):
            if tables[k] is None:  # the first iteration cross-fits: no deterministic limit
                assert math.isnan(rec["variance_trace"])
                continue
            limit: Any = tables[k]
        else:
            limit = baseline
        m = pg.exact.moments(mdp, pi, weights=weights, baseline=limit, gamma=gamma)  # type: ignore[arg-type]
        assert rec["variance_trace"] == pytest.approx(m.trace, rel=1e-9)
        Q, V = _backward(mdp, gamma, pi.probs() if hasattr(pi, "probs") else pi._probs_for(mdp))
        assert rec["advantage_gap"] == pytest.approx((Q - V[:, None]).max(), rel=1e-9, abs=1e-12)
        probs = pi._probs_for(mdp)
        on = (probs * optimal).sum(axis=1)[~mdp.terminal]
        assert rec["min_optimal_prob"] == pytest.approx(on.min(), rel=1e-12)


CASES = [
    ("reward_to_go", None, 1.0),
    ("reward_to_go", "mean", 1.0),
    ("reward_to_go", "time", 0.9),
    ("reward_to_go", "exact", 1.0),
    ("return", None, 0.9),
    ("return", "mean", 1.0),
    ("reward_to_go", "value", 1.0),
]


@pytest.mark.parametrize(("weights", "baseline", "gamma"), CASES)
def test_exact_columns_match_independent_computations(weights: str, baseline: Any, gamma: float) -> None:
    mdp = random_mdp(np.random.default_rng(11), S=5, A=3, n_terminal=1, horizon=6)
    S, A = mdp.n_states, mdp.n_actions
    b = pg.ValueBaseline(S, mdp.horizon) if baseline == "value" else baseline
    pi = pg.TabularSoftmax(S, A, theta=np.random.default_rng(1).normal(size=(S, A)))
    hist, thetas, tables = _run(mdp, pi, b, weights, gamma)
    for f in EXACT_FIELDS:
        if f != "variance_trace" or baseline != "value":
            assert np.isfinite(hist[f]).all(), f

    def make(theta: np.ndarray) -> pg.TabularSoftmax:
        return pg.TabularSoftmax(S, A, theta=theta)

    _check_values(hist, thetas, tables, mdp, make, weights, b, gamma)


def test_exact_columns_of_a_linear_policy() -> None:
    rng = np.random.default_rng(4)
    mdp = random_mdp(rng, S=5, A=3, n_terminal=1, horizon=5)
    phi = rng.normal(size=(5, 3, 4))
    hist, thetas, tables = _run(mdp, pg.LinearSoftmax(phi), "time")

    def make(theta: np.ndarray) -> pg.LinearSoftmax:
        return pg.LinearSoftmax(phi, theta=theta)

    _check_values(hist, thetas, tables, mdp, make, "reward_to_go", "time", 1.0)


def test_exact_columns_of_an_mlp_policy() -> None:
    mdp = random_mdp(np.random.default_rng(8), S=4, A=2, n_terminal=1, horizon=4)
    hist, thetas, tables = _run(mdp, pg.MLPSoftmax(4, 2, hidden=(3,), seed=1), "mean", iterations=4)

    def make(theta: np.ndarray) -> pg.MLPSoftmax:
        pi = pg.MLPSoftmax(4, 2, hidden=(3,), seed=1)
        pi.theta = theta
        return pi

    _check_values(hist, thetas, tables, mdp, make, "reward_to_go", "mean", 1.0)


def test_the_exact_evaluation_is_not_counted_in_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from pgfast import exact

    slow = exact.moments

    def moments(*args: Any, **kw: Any) -> Any:
        time.sleep(0.3)
        return slow(*args, **kw)

    monkeypatch.setattr(exact, "moments", moments)
    mdp = random_mdp(np.random.default_rng(3), S=4, A=2, n_terminal=1, horizon=4)
    t0 = time.perf_counter()
    hist = pg.train(mdp, pg.TabularSoftmax(4, 2), optimizer=pg.optim.Adam(0.1), iterations=2, batch=10, seed=0,
                    exact_eval=True, progress=False)
    assert time.perf_counter() - t0 >= 0.6 and np.isfinite(hist["variance_trace"]).all()
    assert (hist["seconds"] < 0.3).all()


def test_the_gap_and_fraction_use_the_optimum_of_the_objective_in_use() -> None:
    """J* is that of the gamma given to train, not the MDP's."""
    mdp = random_mdp(np.random.default_rng(2), S=4, A=2, n_terminal=1, horizon=7)
    hist, thetas, _ = _run(mdp, pg.TabularSoftmax(4, 2), gamma=0.5, iterations=2)
    star = pg.exact.optimal(mdp, gamma=0.5).J
    assert hist["J_gap"][0] == pytest.approx(star - pg.exact.evaluate(mdp, pg.TabularSoftmax(4, 2), gamma=0.5).J)
    assert pg.exact.optimal(mdp).J != pytest.approx(star)


def test_the_cosine_is_one_for_an_exact_gradient_step() -> None:
    """With an estimate from a huge batch the step points along the exact gradient."""
    mdp = random_mdp(np.random.default_rng(3), S=4, A=2, n_terminal=1, horizon=4)
    hist = pg.train(mdp, pg.TabularSoftmax(4, 2), optimizer=pg.optim.GradientAscent(0.1), iterations=1,
                    batch=400_000, seed=1, baseline="exact", progress=False)
    assert 0.99 < hist["step_cosine"][0] <= 1.0 + 1e-12


def test_at_the_optimum_the_gap_and_advantage_gap_vanish() -> None:
    """A near-deterministic optimal policy: J* - J, the advantage gap and 1 - min pi(a*|s) are ~0."""
    mdp = random_mdp(np.random.default_rng(6), S=5, A=3, n_terminal=1, horizon=1)
    best = pg.exact.optimal(mdp)
    theta = 40.0 * best.probs()[0]
    hist = pg.train(mdp, pg.TabularSoftmax(5, 3, theta=theta), optimizer=pg.optim.GradientAscent(1e-9), iterations=1,
                    batch=10, seed=0, progress=False)
    assert abs(hist["J_gap"][0]) < 1e-12 and hist["fraction_of_optimal"][0] == pytest.approx(1.0)
    assert 0.0 <= hist["advantage_gap"][0] < 1e-12
    assert hist["min_optimal_prob"][0] == pytest.approx(1.0, abs=1e-12)


# -- the rule ----------------------------------------------------------------------------------


def _one(mdp: pg.FiniteMDP, exact_eval: bool | None, iterations: int = 3, **kw: Any) -> pg.History:
    return pg.train(mdp, pg.TabularSoftmax(mdp.n_states, mdp.n_actions), optimizer=pg.optim.Adam(0.1),
                    iterations=iterations, batch=kw.pop("batch", 50), seed=0, exact_eval=exact_eval, eval_every=2,
                    progress=False, **kw)


def _evaluated_rows(hist: pg.History) -> np.ndarray:
    it = hist["iteration"]
    return (it % 2 == 0) | (it == 1) | (it == it[-1])


def test_rule_big_mdp_records_no_exact_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    mdp = random_mdp(np.random.default_rng(0), S=5, A=2, n_terminal=1, horizon=4)
    work = mdp.horizon * mdp.nnz
    monkeypatch.setattr(train_module, "EXACT_MAX_WORK", work - 1)
    hist = _one(mdp, None)
    for f in ("J_exact", *EXACT_FIELDS):
        assert np.isnan(hist[f]).all(), f
    forced = _one(mdp, True)  # forced on: every column, including the variance
    rows = _evaluated_rows(forced)
    for f in ("J_exact", *EXACT_FIELDS):
        assert np.isfinite(forced[f][rows]).all() and np.isnan(forced[f][~rows]).all(), f
    np.testing.assert_array_equal(forced["J_estimate"], hist["J_estimate"])  # the training is the same


def test_rule_variance_has_its_own_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    mdp = random_mdp(np.random.default_rng(0), S=5, A=2, n_terminal=1, horizon=4)
    work = mdp.horizon * mdp.nnz
    monkeypatch.setattr(train_module, "EXACT_MAX_WORK", work)
    monkeypatch.setattr(train_module, "VARIANCE_MAX_WORK", work * 10 - 1)  # n_params = 10
    hist = _one(mdp, None)
    rows = _evaluated_rows(hist)
    assert np.isnan(hist["variance_trace"]).all()
    for f in ("J_exact", *EXACT_FIELDS):
        if f != "variance_trace":
            assert np.isfinite(hist[f][rows]).all(), f
    monkeypatch.setattr(train_module, "VARIANCE_MAX_WORK", work * 10)
    assert np.isfinite(_one(mdp, None)["variance_trace"][rows]).all()
    off = _one(mdp, False)  # forced off
    for f in ("J_exact", *EXACT_FIELDS):
        assert np.isnan(off[f]).all(), f


def test_default_rule_on_frozenlake_and_taxi() -> None:
    """A small MDP gets every column; FrozenLake 4x4 (H nnz n_params = 1.2e6), 8x8 (1.7e7) and
    tabular Taxi (1.8e9) every one but the variance, unless forced."""
    small = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", horizon=10)  # 10 * 192 * 64 = 1.2e5
    assert np.isfinite(_one(small, None, iterations=1)["variance_trace"]).all()
    lake = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="8x8")
    assert np.isnan(_one(lake, None, iterations=1)["variance_trace"]).all()
    assert np.isfinite(_one(lake, True, iterations=1)["variance_trace"]).all()
    taxi = pg.FiniteMDP.from_gymnasium("Taxi-v4")
    hist = _one(taxi, None, iterations=1, batch=4)
    assert np.isnan(hist["variance_trace"]).all()
    assert np.isfinite(hist["J_gap"]).all() and np.isfinite(hist["min_optimal_prob"]).all()


# -- History, checkpoints and resume -----------------------------------------------------------


def _base_record(it: int) -> dict[str, float]:
    return {"iteration": it, "J_estimate": 0.5, "J_stderr": 0.1, "J_exact": 0.4, "grad_norm": 1.0, "seconds": 0.1,
            "steps_per_s": 10.0}


def test_records_without_the_exact_columns_get_nan(tmp_path: Path) -> None:
    hist = pg.History([_base_record(1)])
    hist.append({**_base_record(2), "J_gap": 0.25})
    assert np.isnan(hist["step_cosine"]).all() and hist["J_gap"][1] == 0.25 and math.isnan(hist["J_gap"][0])
    assert hist.to_records().dtype.names == FIELDS
    # a JSON file written before the exact columns existed
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"meta": {"seed": 1}, **{f: [hist.records[0][f]] for f in BASE_FIELDS}}))
    loaded = pg.History.load_json(old)
    assert np.isnan(loaded["J_gap"]).all() and loaded["J_exact"][0] == 0.4
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**{f: [1.0] for f in BASE_FIELDS}, "J_gap": 3}))
    with pytest.raises(ValueError, match=r"its field 'J_gap' is a int, not a list"):
        pg.History.load_json(bad)
    hist.save_json(tmp_path / "new.json")
    again = pg.History.load_json(tmp_path / "new.json")
    for f in FIELDS:
        np.testing.assert_array_equal(again[f], hist[f])


def _mdp() -> pg.FiniteMDP:
    return random_mdp(np.random.default_rng(7), S=6, A=3, n_terminal=1, horizon=6)


def _train_to(iterations: int, **kw: Any) -> tuple[pg.History, np.ndarray]:
    pi = pg.TabularSoftmax(6, 3)
    baseline = kw.pop("baseline", "time")
    hist = pg.train(_mdp(), pi, optimizer=pg.optim.Adam(0.1), iterations=iterations, batch=64, seed=9, eval_every=3,
                    baseline=baseline, progress=False, **kw)
    return hist, pi.theta.copy()


@pytest.mark.parametrize("value", [False, True])
def test_resume_keeps_the_exact_columns_bit_for_bit(tmp_path: Path, value: bool) -> None:
    """Resumed at 5 (evaluated as the last of the first part, not in the whole run) and at 6."""
    full, theta = _train_to(10, baseline=pg.ValueBaseline(6, 6) if value else "time", threads=1)
    for k in (5, 6):
        ckpt = tmp_path / f"c{k}.npz"
        _train_to(k, baseline=pg.ValueBaseline(6, 6) if value else "time", checkpoint=ckpt, threads=2)
        resumed, theta2 = _train_to(10, baseline=pg.ValueBaseline(6, 6) if value else "time", resume=ckpt, threads=1)
        np.testing.assert_array_equal(theta2, theta)
        for f in DETERMINISTIC:
            np.testing.assert_array_equal(resumed[f], full[f], err_msg=f)
    assert np.isnan(full["J_gap"][4]) and np.isfinite(full["J_gap"][5])


def _strip_to_old_format(path: Path) -> None:
    """Rewrite a checkpoint as a version without the exact columns wrote it (the first seven)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    doc = json.loads(arrays["checkpoint.json"].tobytes().decode())
    doc["fields"] = list(BASE_FIELDS)
    arrays["history"] = arrays["history"][:, : len(BASE_FIELDS)]
    arrays["checkpoint.json"] = np.frombuffer(json.dumps(doc).encode(), dtype=np.uint8)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    assert zipfile.is_zipfile(path)


def test_a_checkpoint_without_the_exact_columns_resumes(tmp_path: Path) -> None:
    full, theta = _train_to(9)
    ckpt = tmp_path / "old.npz"
    _train_to(6, checkpoint=ckpt)
    _strip_to_old_format(ckpt)
    loaded = _checkpoint.load(ckpt, FIELDS)
    assert loaded.history.shape == (6, len(FIELDS)) and np.isnan(loaded.history[:, len(BASE_FIELDS):]).all()
    resumed, theta2 = _train_to(9, resume=ckpt)
    np.testing.assert_array_equal(theta2, theta)
    for f in DETERMINISTIC:
        if f in EXACT_FIELDS:  # NaN for the iterations of the old checkpoint, the same after
            assert np.isnan(resumed[f][:6]).all()
            np.testing.assert_array_equal(resumed[f][6:], full[f][6:], err_msg=f)
        else:
            np.testing.assert_array_equal(resumed[f], full[f], err_msg=f)


def test_a_checkpoint_with_other_fields_is_refused(tmp_path: Path) -> None:
    ckpt = tmp_path / "c.npz"
    _train_to(3, checkpoint=ckpt)
    with pytest.raises(ValueError, match=r"its History has the fields \['iteration', 'J_estimate'.*\], not"):
        _checkpoint.load(ckpt, ("iteration", "J_other"))


# -- the command line --------------------------------------------------------------------------


def test_cli_prints_the_gap_cosine_and_trace(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # horizon 10: small enough for the exact variance by default (H nnz n_params = 1.2e5)
    H = tmp_path / "h.json"
    argv = ["train", "FrozenLake-v1", "--iterations", "6", "--batch", "256", "--episodes", "0", "--eval-every", "3", "--horizon", "10",
            "--json", str(H)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.lstrip().startswith("iter"))
    assert re.search(r"% opt +J\* - J +\|grad\| +cos +tr Var +Msteps/s", header)
    hist = pg.History.load_json(H)
    rows = [line.split() for line in out.splitlines() if re.match(r"^ +\d+ ", line)]
    assert [int(r[0]) for r in rows] == [1, 3, 6]
    for r in rows:
        rec = hist.records[int(r[0]) - 1]
        assert float(r[5]) == pytest.approx(rec["J_gap"], rel=1e-3)
        assert float(r[7]) == pytest.approx(rec["step_cosine"], abs=1e-3)
        assert float(r[8]) == pytest.approx(rec["variance_trace"], rel=1e-2)
    assert "J* - J the sub-optimality gap" in out


def _saved_figure(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figures: list[Any] = []
    save = Figure.savefig

    def keep(self: Any, *args: Any, **kw: Any) -> None:
        figures.append(self)
        save(self, *args, **kw)

    monkeypatch.setattr(Figure, "savefig", keep)
    return figures


def test_plot_draws_the_gap_on_log_log_axes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    figures = _saved_figure(monkeypatch)
    hist = pg.History([{**_base_record(k), "J_gap": 1.0 / k if k % 2 else math.nan} for k in range(1, 8)])
    png = tmp_path / "c.png"
    _plot(hist, 1.0, str(png), "test")
    assert png.read_bytes()[:4] == b"\x89PNG"
    (fig,) = figures
    curve, gap = fig.axes
    assert curve.get_xscale() == "linear" and gap.get_xscale() == "log" and gap.get_yscale() == "log"
    (line,) = gap.get_lines()
    np.testing.assert_array_equal(line.get_xdata(), [1, 3, 5, 7])
    np.testing.assert_allclose(line.get_ydata(), [1, 1 / 3, 1 / 5, 1 / 7])


def test_plot_without_exact_columns_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    figures = _saved_figure(monkeypatch)
    _plot(pg.History([_base_record(1)]), 1.0, str(tmp_path / "c.png"), "test")
    (fig,) = figures
    gap = fig.axes[1]
    assert not gap.get_lines() and "no exact J* - J" in gap.texts[0].get_text()
