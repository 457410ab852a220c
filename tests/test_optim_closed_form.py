"""Closed-form natural policy gradient, policy mirror descent and the Armijo line search
(pgfast.optim): against the Fisher solve, monotone improvement with exact advantages, linear
convergence of the geometric schedule, the sufficient-increase condition, sampled advantages."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import random_mdp, random_policy

import pgfast as pg

GAMMA = 0.9


def _random(seed: int, n_terminal: int = 0) -> pg.FiniteMDP:
    return random_mdp(np.random.default_rng(seed), S=6, A=3, horizon=50, gamma=GAMMA, n_terminal=n_terminal)


def _frozenlake() -> pg.FiniteMDP:
    return pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="4x4", horizon=100, gamma=GAMMA)


MDPS = {"random": lambda: _random(0), "random_terminal": lambda: _random(1, n_terminal=2), "frozenlake": _frozenlake}


def _values(mdp: pg.FiniteMDP, pi: pg.TabularSoftmax) -> pg.exact.Evaluation:
    return pg.exact.evaluate(mdp, pi, "discounted")


@pytest.mark.parametrize("name", sorted(MDPS))
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("eta", [0.05, 0.7])
def test_npg_equals_the_fisher_solve(name: str, seed: int, eta: float) -> None:
    """theta += eta A / (1 - gamma) gives the policy of NaturalGradient's Fisher solve with the
    discounted visitation (and of exact.natural_gradient), equal up to per-state constants."""
    mdp = MDPS[name]()
    rng = np.random.default_rng(seed)
    pi = random_policy(rng, mdp)
    ref = pi.copy() if hasattr(pi, "copy") else pg.TabularSoftmax(*pi.theta.shape, theta=pi.theta)
    ev = _values(mdp, pi)
    grad = pg.exact.gradient(mdp, pi, "discounted")
    step = pg.optim.NaturalPolicyGradient(lr=eta).step(pi, np.zeros_like(grad), mdp=mdp)
    nat = pg.optim.NaturalGradient(lr=eta / (1 - GAMMA), damping=0.0, fisher="sampled")
    fisher_step = nat.step(ref, grad, visits=ev.visitation)
    np.testing.assert_allclose(pi.probs(), ref.probs(), rtol=1e-9, atol=1e-12)
    diff = step - fisher_step  # a constant per state (the softmax's null directions)
    np.testing.assert_allclose(diff - diff.mean(axis=1, keepdims=True), 0.0, atol=1e-9)
    x = pg.exact.natural_gradient(mdp, pg.TabularSoftmax(*ref.theta.shape, theta=ref.theta - fisher_step), "discounted")
    d2 = eta / (1 - GAMMA) * x - step
    np.testing.assert_allclose(d2 - d2.mean(axis=1, keepdims=True), 0.0, atol=1e-9)


@pytest.mark.parametrize("name", sorted(MDPS))
def test_pmd_kl_is_npg(name: str) -> None:
    mdp = MDPS[name]()
    a = random_policy(np.random.default_rng(3), mdp)
    b = pg.TabularSoftmax(*a.theta.shape, theta=a.theta)
    pmd, npg = pg.optim.PolicyMirrorDescent(lr=2.0, mirror="kl"), pg.optim.NaturalPolicyGradient(lr=2.0 * (1 - GAMMA))
    for _ in range(5):
        pmd.step(a, np.zeros_like(a.theta), mdp=mdp)
        npg.step(b, np.zeros_like(b.theta), mdp=mdp)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-12, atol=1e-12)


def _run(mdp: pg.FiniteMDP, opt: pg.optim.Optimizer, steps: int, seed: int = 0) -> list[pg.exact.Evaluation]:
    pi = random_policy(np.random.default_rng(seed), mdp)
    evs = [_values(mdp, pi)]
    for _ in range(steps):
        opt.step(pi, np.zeros_like(pi.theta), mdp=mdp)
        evs.append(_values(mdp, pi))
    return evs


@pytest.mark.parametrize("name", sorted(MDPS))
@pytest.mark.parametrize("mirror", ["kl", "euclidean"])
@pytest.mark.parametrize("schedule", ["constant", "geometric"])
def test_pmd_improves_every_state_every_step(name: str, mirror: str, schedule: str) -> None:
    mdp = MDPS[name]()
    evs = _run(mdp, pg.optim.PolicyMirrorDescent(lr=0.5, mirror=mirror, schedule=schedule), 30)
    V = np.array([ev.V for ev in evs])
    J = np.array([ev.J for ev in evs])
    tol = 1e-10 * (1 + np.abs(V).max())
    assert (np.diff(V, axis=0) >= -tol).all()
    assert (np.diff(J) >= -tol).all()
    assert J[-1] > J[0] + 1e-3  # it moved
    opt = pg.exact.optimal(mdp, "discounted")
    assert J[-1] <= opt.value + tol


def _tail_rate(gaps: np.ndarray, floor: float = 1e-10, window: int = 10) -> tuple[int, float]:
    """(k, r): k the last step with a gap above the rounding floor, r the mean per-step ratio of
    the gap over the `window` steps up to k (the slope of log gap there)."""
    above = np.flatnonzero(gaps > floor)
    k = int(above[-1]) + 1 if above.size else 0  # first step at the floor (or past the run)
    k = min(k, len(gaps) - 1)
    lo = max(k - window, 0)
    hi = k if gaps[k] > floor else k - 1
    if hi <= lo:
        return k, 0.0
    return k, float((gaps[hi] / gaps[lo]) ** (1.0 / (hi - lo)))


@pytest.mark.parametrize("name", sorted(MDPS))
@pytest.mark.parametrize("mirror", ["kl", "euclidean"])
def test_geometric_schedule_converges_linearly(name: str, mirror: str) -> None:
    """Lan 2022 / Xiao 2022: with eta_t = eta_1 / gamma^(t-1) the gap J* - J_t converges
    linearly at rate gamma or faster: on a log scale the gap falls by at least a factor gamma
    a step over the last 10 steps before the rounding floor, which it reaches within 60 steps.
    The constant schedule on FrozenLake (sublinear there) fails the same check."""
    mdp = MDPS[name]()
    j_star = pg.exact.optimal(mdp, "discounted").value
    evs = _run(mdp, pg.optim.PolicyMirrorDescent(lr=1.0, mirror=mirror, schedule="geometric"), 80)
    gaps = np.array([j_star - ev.J for ev in evs])
    k, rate = _tail_rate(gaps)
    assert gaps[-1] <= 1e-10
    assert rate <= GAMMA
    if name == "frozenlake":
        evs = _run(mdp, pg.optim.PolicyMirrorDescent(lr=1.0, mirror=mirror, schedule="constant"), 60)
        const = np.array([j_star - ev.J for ev in evs])
        assert const[-1] > 1e-3
        assert _tail_rate(const)[1] > GAMMA


def test_entropy_regularised_npg_reaches_the_soft_optimum() -> None:
    """Cen et al. 2022: with eta = (1 - gamma) / tau the update is soft policy iteration; the
    fixed point is pi ∝ exp(Q_tau / tau), reached linearly (gap in log pi shrinks at least by
    a factor 1 - eta tau each step)."""
    mdp = _random(4)
    tau = 0.3
    for eta in ((1 - GAMMA) / tau, 0.5 * (1 - GAMMA) / tau):
        pi = random_policy(np.random.default_rng(0), mdp)
        opt = pg.optim.NaturalPolicyGradient(lr=eta, tau=tau)
        for _ in range(300):
            opt.step(pi, np.zeros_like(pi.theta), mdp=mdp)
        Q = pg.exact.evaluate(mdp, pi, "discounted", gamma=GAMMA, regularizer=pg.Entropy(tau)).Q
        target = np.exp((Q - Q.max(axis=1, keepdims=True)) / tau)
        target /= target.sum(axis=1, keepdims=True)
        np.testing.assert_allclose(pi.probs(), target, atol=1e-8)


def test_soft_action_values_against_the_exact_oracle() -> None:
    """Q_tau = Q' + tau log pi, where Q' are the exact discounted values of the MDP whose
    reward carries the entropy bonus -tau log pi(a|s)."""
    mdp = _random(5, n_terminal=1)
    pi = random_policy(np.random.default_rng(1), mdp)
    tau = 0.7
    logp = np.log(pi.probs())
    shifted = pg.FiniteMDP(mdp.P, mdp.R - tau * logp, mdp.mu0, horizon=mdp.horizon, gamma=GAMMA, terminal=mdp.terminal)
    Qp = pg.exact.evaluate(shifted, pi, "discounted").Q
    Q = pg.exact.evaluate(mdp, pi, "discounted", gamma=GAMMA, regularizer=pg.Entropy(tau)).Q
    alive = ~mdp.terminal
    np.testing.assert_allclose(Q[alive], (Qp + tau * logp)[alive], rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(Q[~alive], 0.0)


@pytest.mark.parametrize("name", sorted(MDPS))
def test_line_search_sufficient_increase(name: str) -> None:
    mdp = MDPS[name]()
    pi = random_policy(np.random.default_rng(2), mdp)
    opt = pg.optim.ArmijoLineSearch(lr=2.0**20, shrink=0.5, c=0.1, objective="discounted")
    shrunk = 0
    for _ in range(20):
        g = pg.exact.gradient(mdp, pi, "discounted")
        j0 = pg.exact.evaluate(mdp, pi, "discounted").J
        step = opt.step(pi, g, mdp=mdp)
        j1 = pg.exact.evaluate(mdp, pi, "discounted").J
        eta = opt.last_lr
        assert opt.last_values == pytest.approx((j0, j1), rel=1e-12, abs=1e-12)
        if eta > 0:
            assert j1 >= j0 + 0.1 * eta * float(np.sum(g * g))
            k = np.log2(2.0**20 / eta)
            assert k == round(k)
            shrunk += k > 0
            np.testing.assert_allclose(step, eta * g, rtol=1e-12, atol=1e-14)
    assert shrunk > 0  # the line search did backtrack
    assert opt.t == 20


def test_line_search_takes_no_step_at_a_zero_gradient() -> None:
    mdp = _random(0)
    pi = random_policy(np.random.default_rng(0), mdp)
    theta = pi.theta.copy()
    opt = pg.optim.ArmijoLineSearch(max_backtracks=3)
    step = opt.step(pi, np.zeros_like(theta), mdp=mdp)
    assert opt.last_lr == 0.0 and not step.any()
    np.testing.assert_array_equal(pi.theta, theta)


def test_sampled_advantages_are_close_to_exact() -> None:
    """The every-visit Monte Carlo advantages from batches: their mean over 8 batches matches
    the exact discounted advantages within standard errors (horizon long against 1/(1-gamma))."""
    gamma = 0.5
    mdp = random_mdp(np.random.default_rng(7), S=4, A=2, horizon=60, gamma=gamma)
    pi = random_policy(np.random.default_rng(0), mdp, scale=0.5)
    exact_adv = pg.exact.evaluate(mdp, pi, "discounted").A
    opt = pg.optim.NaturalPolicyGradient(lr=0.1)
    est = np.array([opt._advantages(pi, traj=mdp.sample(pi, 500, seed=s)) for s in range(8)])
    mean, se = est.mean(0), est.std(0, ddof=1) / np.sqrt(len(est))
    z = (mean - exact_adv) / np.maximum(se, 1e-12)
    assert np.abs(z).max() < 4.5
    # entropy-regularised: the soft advantages Q_tau - V_tau, V_tau = sum_a pi (Q_tau - tau log pi)
    tau = 0.4
    soft = pg.optim.NaturalPolicyGradient(lr=0.1, tau=tau)
    Q = pg.exact.evaluate(mdp, pi, "discounted", gamma=gamma, regularizer=pg.Entropy(tau)).Q
    p = pi.probs()
    soft_adv = Q - (p * (Q - tau * np.log(p))).sum(1, keepdims=True)
    est = np.array([soft._advantages(pi, traj=mdp.sample(pi, 500, seed=s)) for s in range(8)])
    mean, se = est.mean(0), est.std(0, ddof=1) / np.sqrt(len(est))
    assert np.abs((mean - soft_adv) / np.maximum(se, 1e-12)).max() < 4.5
    assert np.abs(mean - exact_adv).max() > 10 * se.max()  # the regularised ones differ
    # the step through traj= is the step with those advantages
    traj = mdp.sample(pi, 200, seed=99)
    a, b = pg.TabularSoftmax(4, 2, theta=pi.theta), pg.TabularSoftmax(4, 2, theta=pi.theta)
    pg.optim.NaturalPolicyGradient(lr=0.1).step(a, np.zeros((4, 2)), traj=traj)
    adv = opt._advantages(pi, traj=traj)
    pg.optim.NaturalPolicyGradient(lr=0.1, gamma=gamma).step(b, np.zeros((4, 2)), advantages=adv)
    np.testing.assert_array_equal(a.theta, b.theta)


def test_project_simplex_against_brute_force() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        x = rng.normal(size=3) * 2
        p = pg.optim.project_simplex(x)
        assert p.min() >= 0 and abs(p.sum() - 1) < 1e-12
        grid = np.linspace(0, 1, 201)
        a, b = np.meshgrid(grid, grid)
        ok = a + b <= 1 + 1e-12
        cand = np.stack([a[ok], b[ok], 1 - a[ok] - b[ok]], axis=1)
        best = cand[np.argmin(((cand - x) ** 2).sum(1))]
        assert np.sum((p - x) ** 2) <= np.sum((best - x) ** 2) + 1e-12


def test_state_dicts_round_trip() -> None:
    mdp = _random(0)
    for opt in (pg.optim.NaturalPolicyGradient(lr=0.2, tau=0.1), pg.optim.PolicyMirrorDescent(mirror="euclidean", schedule="geometric"),
                pg.optim.ArmijoLineSearch(lr=2.0, objective="discounted")):
        pi = random_policy(np.random.default_rng(0), mdp)
        g = pg.exact.gradient(mdp, pi, "discounted")
        opt.step(pi, g, mdp=mdp)
        state = opt.state_dict()
        fresh = type(opt)()
        fresh.load_state_dict(state)
        assert fresh.state_dict() == state
        assert fresh.t == 1


def test_bad_inputs() -> None:
    mdp = _random(0)
    pi = random_policy(np.random.default_rng(0), mdp)
    z = np.zeros_like(pi.theta)
    with pytest.raises(ValueError, match="lr"):
        pg.optim.NaturalPolicyGradient(lr=0.0)
    with pytest.raises(ValueError, match="tau"):
        pg.optim.NaturalPolicyGradient(tau=-1.0)
    with pytest.raises(ValueError, match="gamma"):
        pg.optim.NaturalPolicyGradient(gamma=1.0)
    with pytest.raises(ValueError, match="mirror"):
        pg.optim.PolicyMirrorDescent(mirror="l1")
    with pytest.raises(ValueError, match="schedule"):
        pg.optim.PolicyMirrorDescent(schedule="harmonic")
    with pytest.raises(ValueError, match="shrink"):
        pg.optim.ArmijoLineSearch(shrink=1.0)
    with pytest.raises(ValueError, match="objective"):
        pg.optim.ArmijoLineSearch(objective="mean")
    npg = pg.optim.NaturalPolicyGradient()
    with pytest.raises(ValueError, match="exactly one"):
        npg.step(pi, z)
    with pytest.raises(ValueError, match="exactly one"):
        npg.step(pi, z, mdp=mdp, advantages=z)
    with pytest.raises(TypeError, match="visits"):
        npg.step(pi, z, visits=np.ones(6))
    with pytest.raises(ValueError, match="shape"):
        npg.step(pi, z, advantages=np.zeros((6, 2)))
    with pytest.raises(ValueError, match="NaN"):
        npg.step(pi, z, advantages=np.full_like(z, np.nan))
    with pytest.raises(ValueError, match="gamma"):  # advantages= without a discount
        npg.step(pi, z, advantages=z)
    with pytest.raises(ValueError, match="gamma < 1"):
        npg.step(pi, z, mdp=random_mdp(np.random.default_rng(0), S=6, A=3, gamma=1.0))
    with pytest.raises(ValueError, match="lr \\* tau"):
        pg.optim.NaturalPolicyGradient(lr=1.0, tau=1.0).step(pi, z, mdp=mdp)
    with pytest.raises(TypeError, match="TabularSoftmax"):
        npg.step(pg.LinearSoftmax(np.ones((6, 3, 2))), np.zeros(2), mdp=mdp)
    with pytest.raises(ValueError, match="states"):
        npg.step(pg.TabularSoftmax(5, 3), np.zeros((5, 3)), mdp=mdp)
    with pytest.raises(ValueError, match="geometric schedule needs gamma"):
        pg.optim.PolicyMirrorDescent(schedule="geometric").step(pi, z, advantages=z)
    big = pg.optim.PolicyMirrorDescent(lr=1e300, schedule="geometric", gamma=0.01)
    with pytest.raises(ValueError, match="overflow"):
        for _ in range(10):
            theta, t = pi.theta.copy(), big.t
            big.step(pi, z, mdp=mdp)
    np.testing.assert_array_equal(pi.theta, theta)  # the failed step left theta and t as they were
    assert big.t == t
    ls = pg.optim.ArmijoLineSearch()
    with pytest.raises(ValueError, match="mdp"):
        ls.step(pi, z)
    with pytest.raises(TypeError, match="traj"):
        ls.step(pi, z, mdp=mdp, traj=None)
