"""optimizer.run: the closed-form updates looped in C++ with exact discounted values, against the
Python loop of optimizer.step and against pg.exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import pgfast as pg
from pgfast import _core

OPTIMIZERS = {
    "npg": lambda: pg.optim.NaturalPolicyGradient(lr=0.5),
    "npg_entropy": lambda: pg.optim.NaturalPolicyGradient(lr=0.2, tau=0.1),
    "pmd_kl": lambda: pg.optim.PolicyMirrorDescent(lr=1.0),
    "pmd_euclidean": lambda: pg.optim.PolicyMirrorDescent(lr=0.5, mirror="euclidean"),
    "pmd_kl_geometric": lambda: pg.optim.PolicyMirrorDescent(lr=0.2, schedule="geometric"),
    "pmd_euclidean_geometric": lambda: pg.optim.PolicyMirrorDescent(lr=0.2, mirror="euclidean", schedule="geometric"),
}


def _frozenlake() -> pg.FiniteMDP:
    # terminal states (holes and the goal) and rewards on entering the goal
    mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="4x4", horizon=100)
    indptr, nxt, prob, rew = mdp.transitions
    return pg.FiniteMDP._from_csr(mdp.n_states, mdp.n_actions, indptr, nxt, prob, rew, mdp.mu0, mdp.terminal,
                                  horizon=100, gamma=0.95)


MDPS = {
    "garnet": lambda: pg.envs.garnet(30, 5, 3, seed=4, gamma=0.9),
    "frozenlake": _frozenlake,
}


def _soft_J(mdp: pg.FiniteMDP, probs: np.ndarray, tau: float) -> float:
    """mu0 . V_tau by a dense solve with the discounted visitation (independent of the runner)."""
    S = mdp.n_states
    alive = ~mdp.terminal
    P = mdp.P * alive[None, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(probs > 0, probs * np.log(probs), 0.0).sum(axis=1)
    r_pi = ((probs * mdp.R).sum(axis=1) + tau * ent) * alive
    P_pi = np.einsum("sa,sat->st", probs, P) * alive[:, None]
    return float(mdp.mu0 @ np.linalg.solve(np.eye(S) - mdp.gamma * P_pi, r_pi))


@pytest.mark.parametrize("mdp_name", sorted(MDPS))
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_run_equals_the_step_loop_and_exact_values(name: str, mdp_name: str) -> None:
    mdp = MDPS[mdp_name]()
    S, A = mdp.n_states, mdp.n_actions
    theta0 = np.random.default_rng(1).normal(size=(S, A))
    a, b = pg.TabularSoftmax(S, A, theta=theta0), pg.TabularSoftmax(S, A, theta=theta0)
    oa, ob = OPTIMIZERS[name](), OPTIMIZERS[name]()
    steps = 25
    J = oa.run(a, mdp, steps)
    assert J.shape == (steps + 1,) and oa.t == steps
    tau = ob.tau
    expected = []
    for _ in range(steps):
        expected.append(_soft_J(mdp, b.probs(), tau))
        ob.step(b, np.zeros((S, A)), mdp=mdp)
    expected.append(_soft_J(mdp, b.probs(), tau))
    np.testing.assert_allclose(J, expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(a.probs(), b.probs(), rtol=0, atol=1e-9)
    if tau == 0.0:
        assert J[-1] == pytest.approx(pg.exact.evaluate(mdp, a, "discounted").J, abs=1e-10)


def test_natural_gradient_improves_monotonically_within_its_rate() -> None:
    # Agarwal et al. (2021), Theorem 16: from the uniform policy, after t steps
    # J* - J_t <= log A / (eta t) + 1 / ((1 - gamma)^2 t)
    mdp = pg.envs.garnet(50, 6, 4, seed=2, gamma=0.9)
    pi = pg.TabularSoftmax(50, 6)
    eta, T = 1.0, 300
    J = pg.optim.NaturalPolicyGradient(lr=eta).run(pi, mdp, T)
    assert np.all(np.diff(J) >= -1e-12)
    t = np.arange(1, T + 1)
    gap = pg.exact.optimal(mdp, "discounted").J - J[1:]
    assert np.all(gap <= np.log(6) / (eta * t) + 1.0 / (0.1**2 * t))
    assert np.all(gap >= -1e-12)


def test_runs_continue_the_schedule() -> None:
    mdp = pg.envs.garnet(20, 4, 3, seed=0, gamma=0.8)
    a, b = pg.TabularSoftmax(20, 4), pg.TabularSoftmax(20, 4)
    oa = pg.optim.PolicyMirrorDescent(lr=0.1, schedule="geometric")
    ob = pg.optim.PolicyMirrorDescent(lr=0.1, schedule="geometric")
    J1 = oa.run(a, mdp, 6)
    J2 = oa.run(a, mdp, 6)
    J = ob.run(b, mdp, 12)
    np.testing.assert_allclose(np.concatenate([J1, J2[1:]]), J, rtol=0, atol=1e-12)
    np.testing.assert_allclose(a.probs(), b.probs(), rtol=0, atol=1e-12)
    assert oa.t == ob.t == 12


def test_the_refined_solves_match_a_fresh_factorisation_every_step() -> None:
    mdp = pg.envs.garnet(40, 5, 4, seed=3, gamma=0.95)
    theta = np.zeros((40, 5))
    for kind, lr in ((0, 0.05), (1, 0.5), (2, 0.5)):
        th1, J1, f1, sweeps1 = _core.exact.closed_form_run(mdp._mdp, theta, kind, lr, 0.0, False, 0, 0.95, 400, True)
        th2, J2, f2, sweeps2 = _core.exact.closed_form_run(mdp._mdp, theta, kind, lr, 0.0, False, 0, 0.95, 400, False)
        np.testing.assert_allclose(J1, J2, rtol=0, atol=1e-11)
        assert f2 == 401 and sweeps2 == 0
        assert f1 < 100 and sweeps1 > 0  # the refinement did the work


def test_an_overflowing_run_leaves_theta_and_the_step_count_unchanged() -> None:
    mdp = pg.envs.garnet(10, 3, 2, seed=0, gamma=0.5)
    pi = pg.TabularSoftmax(10, 3, theta=np.random.default_rng(0).normal(size=(10, 3)))
    before = pi.theta.copy()
    opt = pg.optim.PolicyMirrorDescent(lr=1.0, schedule="geometric")
    with pytest.raises(ValueError, match="step 10[0-9][0-9]: the step size overflowed"):
        opt.run(pi, mdp, 5000)  # 0.5^-(t-1) leaves the float64 range at t = 1025
    assert np.array_equal(pi.theta, before) and opt.t == 0


@pytest.mark.parametrize("S", [50, 1001])
def test_an_overflowing_regularised_run_leaves_theta_and_the_step_count_unchanged(S: int) -> None:
    # lr * tau = 0.01 <= 1 - gamma, but lr * Q / (1 - gamma) leaves the float64 range within a few steps;
    # S = 1001 takes the path of the large MDPs, S = 50 the refined solves
    mdp = pg.envs.garnet(S, 2, 2, seed=0, gamma=0.9)
    pi = pg.TabularSoftmax(S, 2, theta=np.random.default_rng(1).normal(size=(S, 2)))
    before = pi.theta.copy()
    opt = pg.optim.NaturalPolicyGradient(lr=1e306, tau=1e-308)
    with pytest.raises(ValueError, match="overflowed|float64 range"):
        opt.run(pi, mdp, 5)
    assert np.array_equal(pi.theta, before) and opt.t == 0


@pytest.mark.parametrize("tau", [0.0, 0.05])
def test_large_mdps_take_the_general_solver(tau: float) -> None:
    mdp = pg.envs.garnet(1005, 2, 2, seed=1, gamma=0.9)
    a, b = pg.TabularSoftmax(1005, 2), pg.TabularSoftmax(1005, 2)
    oa = pg.optim.NaturalPolicyGradient(lr=0.5, tau=tau)
    ob = pg.optim.NaturalPolicyGradient(lr=0.5, tau=tau)
    J = oa.run(a, mdp, 3)
    for _ in range(3):
        ob.step(b, np.zeros((1005, 2)), mdp=mdp)
    np.testing.assert_allclose(a.probs(), b.probs(), rtol=0, atol=1e-9)
    assert J[-1] == pytest.approx(_soft_J(mdp, b.probs(), tau), abs=1e-8)


def test_bad_arguments_are_named() -> None:
    mdp = pg.envs.garnet(5, 2, 2, seed=0, gamma=0.9)
    opt = pg.optim.NaturalPolicyGradient()
    with pytest.raises(TypeError, match="TabularSoftmax"):
        opt.run(pg.LinearSoftmax(np.ones((5, 2, 3))), mdp, 3)
    with pytest.raises(TypeError, match="mdp must be a pgfast.FiniteMDP"):
        opt.run(pg.TabularSoftmax(5, 2), "mdp", 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="the mdp has 5 states"):
        opt.run(pg.TabularSoftmax(4, 2), mdp, 3)
    with pytest.raises(ValueError, match="steps"):
        opt.run(pg.TabularSoftmax(5, 2), mdp, -1)
    with pytest.raises((TypeError, ValueError), match="steps"):
        opt.run(pg.TabularSoftmax(5, 2), mdp, 2.5)  # type: ignore[arg-type]
    undiscounted = pg.envs.garnet(5, 2, 2, seed=0, gamma=0.9)
    indptr, nxt, prob, rew = undiscounted.transitions
    g1 = pg.FiniteMDP._from_csr(5, 2, indptr, nxt, prob, rew, undiscounted.mu0, None, horizon=10, gamma=1.0)
    with pytest.raises(ValueError, match="gamma < 1"):
        opt.run(pg.TabularSoftmax(5, 2), g1, 3)
    with pytest.raises(ValueError, match="lr \\* tau"):
        pg.optim.NaturalPolicyGradient(lr=1.0, tau=1.0).run(pg.TabularSoftmax(5, 2), mdp, 3)
    assert opt.run(pg.TabularSoftmax(5, 2), mdp, 0).shape == (1,)
    with pytest.raises(MemoryError, match="bytes|GiB|TiB"):
        opt.run(pg.TabularSoftmax(5, 2), mdp, 2**62)


def test_the_simplex_projection_keeps_its_precision_far_from_the_simplex() -> None:
    p = pg.optim.project_simplex([[1e16, 1e16, 0.0], [1e8 + 0.25, 1e8, 0.0], [-1e308, 1e308, 0.0]])
    np.testing.assert_array_equal(p[0], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(p[1], [0.625, 0.375, 0.0], rtol=0, atol=1e-9)  # the difference 0.25 survives
    np.testing.assert_array_equal(p[2], [0.0, 1.0, 0.0])
    assert np.all(np.abs(p.sum(axis=1) - 1.0) <= 4 * np.finfo(np.float64).eps)


def test_soft_policy_iteration_step_size_is_accepted() -> None:
    # lr * tau = 1 - gamma exactly in real numbers, 1e-17 above it in float64
    mdp = pg.envs.garnet(10, 3, 2, seed=0, gamma=0.9)
    pi = pg.TabularSoftmax(10, 3)
    J = pg.optim.NaturalPolicyGradient(lr=1.0, tau=0.1).run(pi, mdp, 30)
    soft = pg.exact.soft_optimal(mdp, 0.1, "discounted")
    assert soft.value - J[-1] < 1e-9  # soft policy iteration converges (superlinearly)
    with pytest.raises(ValueError, match="lr \\* tau must be at most"):
        pg.optim.NaturalPolicyGradient(lr=1.0 + 1e-12, tau=0.1).run(pg.TabularSoftmax(10, 3), mdp, 1)


@pytest.mark.parametrize("update,cls,kw", [
    ("npg", "NaturalPolicyGradient", {"lr": 0.3}),
    ("npg", "NaturalPolicyGradient", {"lr": 0.3, "tau": 0.2}),
    ("pmd_kl", "PolicyMirrorDescent", {"lr": 1.0}),
    ("pmd_euclidean", "PolicyMirrorDescent", {"lr": 1.0, "mirror": "euclidean"}),
    ("pmd_kl", "PolicyMirrorDescent", {"lr": 0.1, "schedule": "geometric"}),
])
def test_the_benchmark_numpy_yardstick_takes_the_same_steps(update: str, cls: str, kw: dict) -> None:
    from pgfast.benchmarks import reference as ref

    mdp = pg.envs.garnet(15, 4, 3, seed=5, gamma=0.9)
    theta0 = np.random.default_rng(3).normal(size=(15, 4))
    pi = pg.TabularSoftmax(15, 4, theta=theta0)
    J = getattr(pg.optim, cls)(**kw).run(pi, mdp, 40)
    theta, J_ref = ref.closed_form_run(mdp.P, mdp.R, mdp.mu0, 0.9, theta0, 40, update=update, lr=kw["lr"],
                                       tau=kw.get("tau", 0.0), geometric=kw.get("schedule") == "geometric")
    np.testing.assert_allclose(J, J_ref, rtol=0, atol=1e-11)
    z = np.exp(theta - theta.max(axis=1, keepdims=True))
    np.testing.assert_allclose(pi.probs(), z / z.sum(axis=1, keepdims=True), rtol=0, atol=1e-10)


def test_the_optim_benchmark_runs_quick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from pgfast.benchmarks import optim

    assert optim.main(["--quick", "--json", str(tmp_path / "optim.json")]) == 0
    out = json.loads((tmp_path / "optim.json").read_text())
    assert [r["case"] for r in out["rows"]] == ["npg", "npg_entropy", "pmd_kl", "pmd_euclidean"]
    assert all(r["agree"] and r["steps"] == 1000 for r in out["rows"])
    assert "pgfast/NumPy" in capsys.readouterr().out
