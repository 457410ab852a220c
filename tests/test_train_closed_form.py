"""pg.train and ``pgfast train`` driving the closed-form updates (NaturalPolicyGradient,
PolicyMirrorDescent) and the Armijo line search.

The closed-form updates step with advantages estimated from each iteration's stored batch (the
batch ``mdp.sample(policy, batch, seed=iteration_seed(seed, k))``); the line search evaluates the
exact J on the MDP. Runs are deterministic for a seed, so the comparisons with a step taken by
hand and across a checkpoint are exact; the improvement figures are thresholds on deterministic
runs (chosen well below what the runs reach, so that a change in rounding does not flip them).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pgfast as pg
from pgfast._train import FIELDS, iteration_seed
from pgfast.cli import main

EXACT_FIELDS = tuple(f for f in FIELDS if f not in ("seconds", "steps_per_s"))


@pytest.fixture(scope="module")
def frozenlake() -> pg.FiniteMDP:
    return pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="4x4", horizon=100)


OPTIMIZERS: dict[str, Callable[[], pg.optim.Optimizer]] = {
    "npg": lambda: pg.optim.NaturalPolicyGradient(lr=0.1, gamma=0.99),
    "pmd-kl": lambda: pg.optim.PolicyMirrorDescent(lr=10.0, gamma=0.99),
    "pmd-euclidean": lambda: pg.optim.PolicyMirrorDescent(lr=1.0, mirror="euclidean", gamma=0.99),
    "pmd-geometric": lambda: pg.optim.PolicyMirrorDescent(lr=1.0, schedule="geometric", gamma=0.9),
    "armijo": lambda: pg.optim.ArmijoLineSearch(lr=100.0),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_train_improves_J_on_frozenlake(frozenlake: pg.FiniteMDP, name: str) -> None:
    """From the uniform policy (J = 0.014, J* = 0.744), 30 iterations of 1000 episodes."""
    opt = OPTIMIZERS[name]()
    pi = pg.TabularSoftmax(16, 4)
    hist = pg.train(frozenlake, pi, optimizer=opt, iterations=30, batch=1000, seed=0, progress=False)
    J, gap = hist["J_exact"], hist["J_gap"]
    assert J[0] == pytest.approx(pg.exact.evaluate(frozenlake, pg.TabularSoftmax(16, 4)).J, rel=1e-12)
    assert J[-1] > 10 * J[0] and gap[-1] < 0.75 * gap[0]
    assert opt.t == 30 and hist.meta["optimizer"] == type(opt).__name__
    # the record's J_exact is that of the policy before the last step: the trained one is at least as good here
    assert pg.exact.evaluate(frozenlake, pi).J > J[0]
    if name == "armijo":  # sufficient increase on the exact J: J never falls
        assert np.all(np.diff(J) >= 0.0)


def test_npg_reaches_most_of_the_optimum(frozenlake: pg.FiniteMDP) -> None:
    hist = pg.train(frozenlake, pg.TabularSoftmax(16, 4), optimizer=OPTIMIZERS["npg"](), iterations=30, batch=1000,
                    seed=0, progress=False)
    assert hist["fraction_of_optimal"][-1] > 0.9


@pytest.mark.parametrize("name", ["npg", "pmd-kl", "pmd-euclidean"])
def test_each_step_is_the_closed_form_step_of_the_iterations_batch(frozenlake: pg.FiniteMDP, name: str) -> None:
    """Two iterations of pg.train equal two steps taken by hand with traj= the documented batches."""
    pi, opt = pg.TabularSoftmax(16, 4), OPTIMIZERS[name]()
    pg.train(frozenlake, pi, optimizer=opt, iterations=2, batch=500, seed=3, progress=False, threads=1)
    by_hand, ref = pg.TabularSoftmax(16, 4), OPTIMIZERS[name]()
    for k in (1, 2):
        traj = frozenlake.sample(by_hand, 500, seed=iteration_seed(3, k))
        ref.step(by_hand, np.zeros((16, 4)), traj=traj)
    np.testing.assert_array_equal(pi.theta, by_hand.theta)
    assert opt.state_dict() == ref.state_dict()


def test_regularised_npg_ascends_the_soft_objective(frozenlake: pg.FiniteMDP) -> None:
    """NaturalPolicyGradient(tau) with entropy=tau: its own closed form; J_exact is J_tau, the gap to J*_tau."""
    tau = 0.01
    pi = pg.TabularSoftmax(16, 4)
    hist = pg.train(frozenlake, pi, optimizer=pg.optim.NaturalPolicyGradient(lr=0.1, tau=tau, gamma=0.99),
                    iterations=30, batch=1000, seed=0, entropy=tau, progress=False)
    assert hist.meta["regularizer"] == "Entropy(tau=0.01)"
    first = pg.exact.evaluate(frozenlake, pg.TabularSoftmax(16, 4), regularizer=pg.Entropy(tau)).J
    assert hist["J_exact"][0] == pytest.approx(first, rel=1e-12)
    soft_opt = pg.exact.soft_optimal(frozenlake, tau, "finite_horizon").value
    np.testing.assert_allclose(hist["J_gap"], soft_opt - hist["J_exact"], rtol=0, atol=1e-12)
    assert hist["J_gap"][-1] < 0.25 * hist["J_gap"][0]


@pytest.mark.parametrize("name", ["npg", "pmd-geometric", "armijo"])
def test_resume_equals_the_uninterrupted_run(frozenlake: pg.FiniteMDP, tmp_path: Path, name: str) -> None:
    def run(iterations: int, **kw: Any) -> tuple[pg.History, pg.TabularSoftmax, pg.optim.Optimizer]:
        pi, opt = pg.TabularSoftmax(16, 4), OPTIMIZERS[name]()
        hist = pg.train(frozenlake, pi, optimizer=opt, iterations=iterations, batch=300, seed=5, eval_every=3,
                        progress=False, **kw)
        return hist, pi, opt

    straight, pi, opt = run(12)
    ckpt = tmp_path / "run.ckpt"
    run(7, checkpoint=ckpt)
    resumed, pi2, opt2 = run(12, resume=ckpt, checkpoint=ckpt)
    np.testing.assert_array_equal(pi2.theta, pi.theta)
    assert opt2.state_dict() == opt.state_dict()
    assert len(resumed) == len(straight)
    for f in EXACT_FIELDS:
        np.testing.assert_array_equal(resumed[f], straight[f], err_msg=f)


def test_resume_refuses_other_hyperparameters(frozenlake: pg.FiniteMDP, tmp_path: Path) -> None:
    ckpt = tmp_path / "run.ckpt"
    pg.train(frozenlake, pg.TabularSoftmax(16, 4), optimizer=pg.optim.NaturalPolicyGradient(lr=0.1, gamma=0.99),
             iterations=3, batch=100, seed=0, checkpoint=ckpt, progress=False)
    with pytest.raises(ValueError, match="optimizer.gamma"):
        pg.train(frozenlake, pg.TabularSoftmax(16, 4), optimizer=pg.optim.NaturalPolicyGradient(lr=0.1, gamma=0.9),
                 iterations=5, batch=100, seed=0, resume=ckpt, progress=False)


def _chain(gamma: float = 1.0) -> pg.FiniteMDP:
    P = np.zeros((2, 2, 2))
    P[0, 0, 0] = P[0, 1, 1] = 1.0
    P[1, :, 1] = 1.0
    return pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3, gamma=gamma, terminal=[False, True])


@pytest.mark.parametrize(
    ("make", "kwargs", "error", "message"),
    [
        (lambda: pg.optim.NaturalPolicyGradient(lr=0.1), {}, ValueError,
         r"NaturalPolicyGradient steps with discounted advantages.*MDP's, which is 1: construct NaturalPolicyGradient\(gamma=...\)"),
        (lambda: pg.optim.PolicyMirrorDescent(lr=0.1), {}, ValueError, r"construct PolicyMirrorDescent\(gamma=...\)"),
        (lambda: pg.optim.NaturalPolicyGradient(lr=0.1, gamma=0.9), {"entropy": 0.1}, ValueError,
         r"NaturalPolicyGradient\(tau=0.0\).*regularizer=Entropy\(tau=0.1\).*construct NaturalPolicyGradient\(tau=0.1\)"),
        (lambda: pg.optim.NaturalPolicyGradient(lr=0.1, tau=0.1, gamma=0.9), {"entropy": 0.2}, ValueError,
         r"construct NaturalPolicyGradient\(tau=0.2\)"),
        (lambda: pg.optim.NaturalPolicyGradient(lr=0.1, gamma=0.9), {"regularizer": pg.LogBarrier(0.1)}, ValueError,
         r"regularizer=LogBarrier\(lam=0.1\).*closed forms ascend J or the entropy-regularised J_tau"),
        (lambda: pg.optim.PolicyMirrorDescent(lr=0.1, gamma=0.9), {"entropy": 0.1}, ValueError,
         r"PolicyMirrorDescent.*has no regularised form"),
        (lambda: pg.optim.NaturalPolicyGradient(lr=1.0, tau=0.5, gamma=0.9), {"entropy": 0.5}, ValueError,
         r"NaturalPolicyGradient needs lr \* tau at most 1 - gamma"),
        (lambda: pg.optim.PolicyMirrorDescent(lr=0.1, schedule="geometric", gamma=0.0), {}, ValueError,
         "the geometric schedule needs gamma > 0"),
        (lambda: pg.optim.ArmijoLineSearch(), {"entropy": 0.1}, ValueError,
         r"ArmijoLineSearch checks its sufficient increase on the unregularised exact J"),
        (lambda: pg.optim.ArmijoLineSearch(objective="discounted", gamma=0.9), {}, ValueError,
         r"ArmijoLineSearch\(objective='discounted', gamma=0.9\) checks the increase of another J.*"
         r"construct ArmijoLineSearch\(objective='finite_horizon', gamma=1.0\)"),
        (lambda: pg.optim.ArmijoLineSearch(), {"gamma": 0.5}, ValueError,
         r"finite horizon, gamma 0.5.*ArmijoLineSearch\(objective='finite_horizon', gamma=0.5\)"),
    ],
)
def test_bad_combinations_are_refused_before_any_work(make: Any, kwargs: dict[str, Any], error: type[Exception],
                                                      message: str, tmp_path: Path) -> None:
    pi, opt = pg.TabularSoftmax(2, 2), make()
    calls: list[int] = []
    with pytest.raises(error, match=message):
        pg.train(_chain(), pi, optimizer=opt, iterations=2, batch=10, seed=0, progress=False,
                 callback=lambda it, rec: calls.append(it), checkpoint=tmp_path / "c.ckpt", **kwargs)
    assert not calls and not pi.theta.any() and opt.t == 0 and not (tmp_path / "c.ckpt").exists()


@pytest.mark.parametrize(
    ("make", "policy", "message"),
    [
        (lambda: pg.optim.NaturalPolicyGradient(gamma=0.9), lambda: pg.LinearSoftmax(np.eye(4).reshape(2, 2, 4)),
         r"NaturalPolicyGradient updates a pgfast.TabularSoftmax policy in closed form, got LinearSoftmax"),
        (lambda: pg.optim.PolicyMirrorDescent(gamma=0.9), lambda: pg.MLPSoftmax(2, 2, hidden=(4,), seed=0),
         r"PolicyMirrorDescent updates a pgfast.TabularSoftmax or a pgfast.DirectPolicy policy.*got MLPSoftmax"),
    ],
)
def test_a_policy_the_closed_form_does_not_update_is_a_type_error(make: Any, policy: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        pg.train(_chain(), policy(), optimizer=make(), iterations=1, batch=10, seed=0, progress=False)


def test_pmd_trains_a_direct_policy() -> None:
    mdp = _chain(0.9)
    pi = pg.DirectPolicy(2, 2)
    hist = pg.train(mdp, pi, optimizer=pg.optim.PolicyMirrorDescent(lr=1.0, mirror="euclidean"), iterations=3,
                    batch=200, seed=0, progress=False)
    assert hist["J_exact"][-1] > hist["J_exact"][0]
    np.testing.assert_allclose(pi.theta.sum(axis=1), 1.0, rtol=0, atol=1e-15)


def test_continuous_problems_refuse_them() -> None:
    lqr = pg.LQR(A=[[1.0]], B=[[1.0]], Q=[[1.0]], R=[[1.0]], horizon=5, x0=[1.0])
    for opt in (pg.optim.NaturalPolicyGradient(gamma=0.9), pg.optim.PolicyMirrorDescent(gamma=0.9),
                pg.optim.ArmijoLineSearch()):
        with pytest.raises(ValueError, match=f"{type(opt).__name__} needs a finite MDP"):
            pg.train(lqr, pg.LinearGaussian(1, 1), optimizer=opt, iterations=1, batch=2, seed=0, progress=False)


# -- the command line -----------------------------------------------------------------------------

FAST = ["--iterations", "4", "--batch", "256", "--episodes", "0", "--eval-every", "2"]


@pytest.mark.parametrize(
    ("extra", "header", "hyper", "entropy"),
    [
        (["--optimizer", "npg"], "npg lr 0.1 gamma 0.99 |", {"lr": 0.1, "tau": 0.0, "gamma": 0.99}, None),
        (["--optimizer", "npg", "--entropy", "0.01", "--lr", "0.05"], "npg lr 0.05 tau 0.01 gamma 0.99 | entropy 0.01 |",
         {"lr": 0.05, "tau": 0.01, "gamma": 0.99}, 0.01),
        (["--optimizer", "pmd", "--mirror", "euclidean", "--schedule", "geometric", "--advantage-gamma", "0.9"],
         "pmd lr 10 mirror euclidean schedule geometric gamma 0.9 |",
         {"lr": 10.0, "mirror": "euclidean", "schedule": "geometric", "gamma": 0.9}, None),
        (["--optimizer", "pmd", "--gamma", "0.95"], "pmd lr 10 mirror kl gamma 0.95 |",
         {"lr": 10.0, "mirror": "kl", "schedule": "constant", "gamma": 0.95}, None),
        (["--entropy", "0.02"], "adam lr 0.2 betas 0.9,0.99 | entropy 0.02 |",
         {"lr": 0.2, "betas": [0.9, 0.99], "eps": 1e-8}, 0.02),
    ],
)
def test_cli_records_the_optimizer_and_entropy(capsys: pytest.CaptureFixture[str], tmp_path: Path, extra: list[str],
                                               header: str, hyper: dict[str, Any], entropy: float | None) -> None:
    H = tmp_path / "h.json"
    assert main(["train", "FrozenLake-v1", *FAST, "--json", str(H), *extra]) == 0
    out = capsys.readouterr().out
    assert header in out, out
    meta = json.loads(H.read_text())["meta"]
    assert meta["optimizer_hyperparameters"] == hyper and meta["entropy"] == entropy
    assert meta.get("regularizer") == (None if entropy is None else f"Entropy(tau={entropy})")
    assert ("entropy-regularised run" in out) == (entropy is not None)
    hist = pg.History.load_json(H)
    # the run is pg.train with the same settings, bit for bit
    mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", gamma=0.95 if "--gamma" in extra else 1.0)
    kind = {"npg": pg.optim.NaturalPolicyGradient, "pmd": pg.optim.PolicyMirrorDescent}.get(
        extra[extra.index("--optimizer") + 1] if "--optimizer" in extra else "", pg.optim.Adam)
    opt = kind(**{k: tuple(v) if k == "betas" else v for k, v in hyper.items()})
    direct = pg.train(mdp, pg.TabularSoftmax(16, 4), optimizer=opt, iterations=4, batch=256, seed=0, baseline="time",
                      eval_every=2, entropy=entropy, progress=False)
    for f in EXACT_FIELDS:
        np.testing.assert_array_equal(hist[f], direct[f], err_msg=f)
    if entropy is not None:  # % opt against the soft optimum, like J* - J
        pct = [float(m) for m in re.findall(r"^\s+\d+ .*? ([\d.]+)% ", out, flags=re.M)]
        np.testing.assert_allclose(pct, 100 * direct["fraction_of_optimal"][[0, 1, 3]], atol=0.051)


def test_cli_resume_with_npg_equals_the_uninterrupted_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def argv(tau: str = "0.01") -> list[str]:
        return ["train", "FrozenLake-v1", "--optimizer", "npg", "--entropy", tau, "--batch", "200", "--episodes", "0",
                "--eval-every", "3"]

    full, part, ckpt = tmp_path / "full.json", tmp_path / "part.json", tmp_path / "run.ckpt"
    assert main([*argv(), "--iterations", "9", "--json", str(full)]) == 0
    assert main([*argv(), "--iterations", "4", "--checkpoint", str(ckpt)]) == 0
    assert main([*argv(), "--iterations", "9", "--resume", str(ckpt), "--json", str(part)]) == 0
    capsys.readouterr()
    a, b = pg.History.load_json(full), pg.History.load_json(part)
    for f in EXACT_FIELDS:
        np.testing.assert_array_equal(a[f], b[f], err_msg=f)
    assert main([*argv("0.02"), "--iterations", "9", "--resume", str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert "optimizer.tau" in err and "regularizer" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--optimizer", "pmd", "--entropy", "0.1"], "--entropy does not apply to --optimizer pmd"),
        (["--optimizer", "npg", "--policy", "mlp"], "--optimizer npg updates a tabular softmax policy.*--policy tabular"),
        (["--optimizer", "pmd", "--policy", "linear"], "--optimizer pmd updates a tabular softmax policy"),
        (["--mirror", "euclidean"], "--mirror applies to --optimizer pmd"),
        (["--advantage-gamma", "0.9"], "--advantage-gamma applies to --optimizer npg and pmd"),
        (["--optimizer", "npg", "--advantage-gamma", "1"], r"--advantage-gamma must be in \[0, 1\), got 1"),
        (["--optimizer", "sgd", "--schedule", "geometric"], "--schedule applies to --optimizer pmd, not sgd"),
        (["--optimizer", "pmd", "--schedule", "inv_sqrt"], "--schedule applies to --optimizer sgd, not pmd"),
        (["--entropy", "-1"], "--entropy must be a finite temperature >= 0"),
        (["--optimizer", "npg", "--entropy", "0.5"], r"lr \* tau at most 1 - gamma"),
    ],
)
def test_cli_bad_combinations_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert main(["train", "FrozenLake-v1", *FAST, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pgfast train: error: ") and err.count("\n") == 1, err
    assert re.search(message, err), err


@pytest.mark.parametrize("argv", [["--optimizer", "npg"], ["--optimizer", "pmd"], ["--entropy", "0.1"],
                                  ["--mirror", "euclidean"], ["--advantage-gamma", "0.9"]])
def test_cli_box_observations_refuse_the_tabular_options(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(["train", "CartPole-v1", "--iterations", "1", "--batch", "2", "--episodes", "0", *argv]) == 2
    err = capsys.readouterr().err
    assert "is for tabular environments" in err and err.count("\n") == 1


def test_sweep_grids_over_the_closed_form_optimizers(frozenlake: pg.FiniteMDP) -> None:
    res = pg.sweep("FrozenLake-v1", {"optimizer": ["npg", "pmd"]}, 1, iterations=3, batch=200, workers=1,
                   env_kwargs={"map_name": "4x4"}, progress=False)
    assert len(res.configs) == 2 and all(math.isfinite(r["J_exact"]) for r in res.rows)


def test_cli_plot_with_entropy_draws_the_soft_optimum(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figures: list[Any] = []
    save = Figure.savefig

    def keep(self: Any, *args: Any, **kw: Any) -> None:
        figures.append(self)
        save(self, *args, **kw)

    monkeypatch.setattr(Figure, "savefig", keep)
    png = tmp_path / "c.png"
    assert main(["train", "FrozenLake-v1", *FAST, "--optimizer", "npg", "--entropy", "0.01", "--plot", str(png)]) == 0
    capsys.readouterr()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (fig,) = figures
    curve = fig.axes[0]
    assert "J_tau, tau 0.01" in curve.get_title()
    optimum = [line for line in curve.get_lines() if line.get_label() == "optimal J"]
    soft = pg.exact.soft_optimal(pg.FiniteMDP.from_gymnasium("FrozenLake-v1"), 0.01, "finite_horizon").value
    np.testing.assert_array_equal(optimum[0].get_ydata(), [soft, soft])
