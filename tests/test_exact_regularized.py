"""pgfast.exact with regularised objectives: ``regularizer=pgfast.Entropy(tau)`` and
``pgfast.LogBarrier(lam)`` on evaluate and gradient, and the soft optimum (soft_optimal).

Checked against central finite differences of the exact regularised J (every objective, the three
policy classes, random MDPs with terminal states and rewards R(s, a, s')), an independent dense
NumPy computation of J_tau (the visitation-weighted entropy, not the soft-reward MDP), the soft
Bellman equation solved here in NumPy, and the documented errors.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from helpers import random_mdp, random_softmax
from test_exact import _case_mdp, _dense, _fd_gradient
from test_interrupts import assert_interrupts, sparse_mdp

import pgfast as pg

OBJECTIVES = ("finite_horizon", "discounted", "average_reward", "average_value")
KINDS = ("tabular", "linear", "mlp")
REGULARIZERS = (pg.Entropy(0.3), pg.LogBarrier(0.2))


def _policy(kind: str, mdp: pg.FiniteMDP, rng: np.random.Generator) -> pg.SoftmaxPolicy:
    if kind == "mlp":
        net = pg.MLPSoftmax(mdp.n_states, mdp.n_actions, hidden=(5,), seed=int(rng.integers(1000)))
        net.theta = net.theta + 0.5 * rng.normal(size=net.theta.shape)
        return net
    return random_softmax(kind, mdp, rng)


def _entropy(probs: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        logs = np.where(probs > 0, np.log(np.where(probs > 0, probs, 1.0)), 0.0)
    out: np.ndarray = -(probs * logs).sum(axis=-1)
    return out


# -- 1. gradients against finite differences ---------------------------------------------------

FD_CASES = [(o, k, r, nt, tr) for o in OBJECTIVES for k in KINDS for r in REGULARIZERS for nt, tr in ((0, False), (2, True))]


@pytest.mark.parametrize(("objective", "kind", "reg", "n_terminal", "transition_rewards"), FD_CASES)
def test_regularized_gradient_matches_central_differences(
    rng: np.random.Generator, objective: str, kind: str, reg: Any, n_terminal: int, transition_rewards: bool
) -> None:
    # The budget of test_exact's differences (h = 1e-5: truncation ~ 1e-10 |J'''|, rounding
    # ~ cond eps |J| / h ~ 1e-9), against 1e-6 ||fd|| with ||fd|| = O(1) (checked).
    mdp = _case_mdp(rng, objective, n_terminal, transition_rewards)
    pi = _policy(kind, mdp, rng)
    theta0 = pi.theta.copy()
    g, ev = pg.exact.gradient(mdp, pi, objective, method="dense", regularizer=reg, return_evaluation=True)
    assert g.shape == pi.theta.shape and g.dtype == np.float64
    np.testing.assert_array_equal(pi.theta, theta0)
    np.testing.assert_array_equal(g, pg.exact.gradient(mdp, pi, objective, method="dense", regularizer=reg))
    assert ev.regularizer == reg and ev.value == pg.exact.evaluate(mdp, pi, objective, method="dense", regularizer=reg).value
    fd = _fd_gradient(mdp, pi, objective, regularizer=reg)
    nfd = float(np.linalg.norm(fd))
    assert nfd > 1e-2
    err = float(np.linalg.norm(g - fd))
    assert err <= 1e-6 * max(nfd, 1e-3), f"||g - fd|| = {err:.3e}, ||fd|| = {nfd:.3e}"
    # the regulariser changes the gradient (so the comparison above tests it)
    assert np.linalg.norm(g - pg.exact.gradient(mdp, pi, objective, method="dense")) > 1e-3 * nfd


# -- 2. the values, computed independently -----------------------------------------------------


def _discounted_reference(mdp: pg.FiniteMDP, probs: np.ndarray, gamma: float, tau: float) -> dict[str, Any]:
    """Dense NumPy: the discounted visitation rho = mu0 (I - gamma P_pi)^-1 (live successors,
    terminal rows 0), J = rho . r_pi and J_tau = J + tau sum_s rho(s) H(pi(.|s)) over the live
    states; the soft values V_tau = (I - gamma P_pi)^-1 (r_pi + tau H) and Q_tau = r + gamma P V_tau."""
    P, _, r, alive = _dense(mdp)
    S = mdp.n_states
    P_pi = np.einsum("sa,sat->st", probs, P) * alive[None, :] * alive[:, None]
    M = np.eye(S) - gamma * P_pi
    rho = np.linalg.solve(M.T, mdp.mu0)
    r_pi = (probs * r).sum(axis=1) * alive
    H = _entropy(probs) * alive
    J = float(rho @ r_pi)
    V = np.linalg.solve(M, r_pi + tau * H)
    Q = (r + gamma * P @ (alive * V)) * alive[:, None]
    return {"J": J, "J_tau": J + tau * float(rho @ H), "V": V, "Q": Q}


@pytest.mark.parametrize(("n_terminal", "transition_rewards"), [(0, False), (2, True)])
def test_entropy_discounted_value_against_the_visitation_weighted_entropy(
    rng: np.random.Generator, n_terminal: int, transition_rewards: bool
) -> None:
    mdp = random_mdp(rng, S=7, A=4, successors=4, n_terminal=n_terminal, gamma=0.9, transition_rewards=transition_rewards)
    for kind in KINDS:
        pi = _policy(kind, mdp, rng)
        probs = pi.probs()
        tau = 0.7
        ref = _discounted_reference(mdp, probs, 0.9, tau)
        ev = pg.exact.evaluate(mdp, pi, "discounted", regularizer=pg.Entropy(tau))
        scale = max(1.0, abs(ref["J_tau"]))
        assert abs(ev.value - ref["J_tau"]) <= 1e-12 * scale * 10
        assert abs(ev.value - ref["J"]) > 0.1  # the bonus is there
        np.testing.assert_allclose(ev.V, ref["V"], rtol=0, atol=1e-12 * scale * 10)
        np.testing.assert_allclose(ev.Q, ref["Q"], rtol=0, atol=1e-12 * scale * 10)
        live = ~mdp.terminal
        with np.errstate(divide="ignore"):
            logp = np.log(probs)
        A_ref = (ref["Q"] - tau * logp - ref["V"][:, None]) * live[:, None]
        np.testing.assert_allclose(ev.A, A_ref, rtol=0, atol=1e-11 * scale)
        np.testing.assert_allclose((probs * ev.A).sum(axis=1), 0.0, rtol=0, atol=1e-12 * scale * 10)


def test_entropy_finite_horizon_tables_against_backward_induction(rng: np.random.Generator) -> None:
    mdp = random_mdp(rng, S=6, A=3, successors=3, n_terminal=1, horizon=7, gamma=0.95, transition_rewards=True)
    pi = random_softmax("linear", mdp, rng)
    probs, tau = pi.probs(), 0.4
    P, _, r, alive = _dense(mdp)
    H, S = mdp.horizon, mdp.n_states
    V, Q = np.zeros((H + 1, S)), np.zeros((H, S, 3))
    for t in range(H - 1, -1, -1):  # V_t = sum_a pi (Q_t - tau log pi), Q_t = r + gamma P alive V_{t+1}
        Q[t] = (r + 0.95 * P @ (alive * V[t + 1])) * alive[:, None]
        V[t] = (probs * Q[t]).sum(axis=1) + tau * _entropy(probs) * alive
    ev = pg.exact.evaluate(mdp, pi, regularizer=pg.Entropy(tau))
    np.testing.assert_allclose(ev.V, V[:H], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ev.Q, Q, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ev.A, (Q - tau * np.log(probs) - V[:H, :, None]) * alive[:, None], rtol=0, atol=1e-12)
    assert abs(ev.value - mdp.mu0 @ V[0]) <= 1e-12
    # the entropy weighted by the state distribution of each step
    plain = pg.exact.evaluate(mdp, pi)
    bonus = tau * sum(0.95**t * plain.d[t] @ (_entropy(probs) * alive) for t in range(H))
    assert abs(ev.value - plain.value - bonus) <= 1e-12


@pytest.mark.parametrize("objective", ["average_reward", "average_value"])
def test_entropy_average_objectives_against_the_stationary_entropy(rng: np.random.Generator, objective: str) -> None:
    mdp = _case_mdp(rng, objective, 1, True)
    pi = random_softmax("tabular", mdp, rng)
    probs, tau = pi.probs(), 0.5
    plain = pg.exact.evaluate(mdp, pi, objective)
    ev = pg.exact.evaluate(mdp, pi, objective, regularizer=pg.Entropy(tau))
    d, H = plain.d, _entropy(probs) * ~mdp.terminal
    if objective == "average_reward":  # the stationary mean of r + tau H
        assert abs(ev.value - (plain.value + tau * d @ H)) <= 1e-12
        np.testing.assert_allclose(d @ ev.V, 0.0, atol=1e-12)  # still differential values
    else:  # d . V_tau, V_tau the discounted soft values
        ref = _discounted_reference(mdp, probs, mdp.gamma, tau)
        assert abs(ev.value - d @ ref["V"]) <= 1e-11
    np.testing.assert_allclose((probs * ev.A).sum(axis=1), 0.0, atol=1e-12)


def test_log_barrier_adds_to_the_value_and_keeps_the_tables(rng: np.random.Generator) -> None:
    mdp = random_mdp(rng, S=5, A=3, successors=3, n_terminal=1, gamma=0.9, transition_rewards=True)
    pi = random_softmax("tabular", mdp, rng)
    lam = 0.05
    for objective in OBJECTIVES:
        plain = pg.exact.evaluate(mdp, pi, objective)
        ev = pg.exact.evaluate(mdp, pi, objective, regularizer=pg.LogBarrier(lam))
        assert ev.value == plain.value + lam * float(np.log(pi.probs()).sum())
        for name in ("V", "Q", "A", "d", "visitation"):
            np.testing.assert_array_equal(getattr(ev, name), getattr(plain, name))
        # the barrier's gradient, by itself: lam (1 - A pi(b|s)) for a tabular policy
        g = pg.exact.gradient(mdp, pi, objective, regularizer=pg.LogBarrier(lam))
        np.testing.assert_allclose(g - pg.exact.gradient(mdp, pi, objective), lam * (1 - 3 * pi.probs()), rtol=0, atol=1e-14)


def test_entropy_with_a_zero_probability(rng: np.random.Generator) -> None:
    """0 log 0 = 0: a policy with an action of probability 0 has a finite J_tau, and that action
    carries Q_tau = r + gamma E V and A = Q_tau - V."""
    mdp = random_mdp(rng, S=4, A=3, successors=3, gamma=0.9)
    theta = rng.normal(size=(4, 3))
    theta[:, 2] = -1000.0  # exp(-1000) = 0 in float64
    pi = pg.TabularSoftmax(4, 3, theta=theta)
    probs = pi.probs()
    assert (probs[:, 2] == 0.0).all()
    ev = pg.exact.evaluate(mdp, pi, "discounted", regularizer=pg.Entropy(0.3))
    ref = _discounted_reference(mdp, probs, 0.9, 0.3)
    np.testing.assert_allclose(ev.value, ref["J_tau"], rtol=1e-12)
    np.testing.assert_allclose(ev.Q, ref["Q"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ev.A[:, 2], ref["Q"][:, 2] - ref["V"], rtol=0, atol=1e-12)
    assert np.isfinite(pg.exact.gradient(mdp, pi, "discounted", regularizer=pg.Entropy(0.3))).all()


# -- 3. no regularisation: the same bits -------------------------------------------------------


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("kind", KINDS)
def test_zero_strength_and_none_are_bit_identical(rng: np.random.Generator, objective: str, kind: str) -> None:
    mdp = _case_mdp(rng, objective, 1, True)
    pi = _policy(kind, mdp, rng)
    base = pg.exact.evaluate(mdp, pi, objective)
    g0, gev = pg.exact.gradient(mdp, pi, objective, return_evaluation=True)
    for reg in (None, pg.Entropy(0.0), pg.LogBarrier(0.0)):
        ev = pg.exact.evaluate(mdp, pi, objective, regularizer=reg)
        g, ev2 = pg.exact.gradient(mdp, pi, objective, return_evaluation=True, regularizer=reg)
        np.testing.assert_array_equal(g, g0)
        np.testing.assert_array_equal(pg.exact.gradient(mdp, pi, objective, regularizer=reg), g0)
        for a, b in ((ev, base), (ev2, gev)):
            assert a.value == b.value and a.regularizer == reg
            for name in ("V", "Q", "A", "d", "visitation"):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


# -- 4. soft value iteration -------------------------------------------------------------------


def _soft_backup(mdp: pg.FiniteMDP, V: np.ndarray, gamma: float, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """Dense NumPy: Q = r + gamma P alive V and tau log sum exp(Q / tau) (0 on terminal states)."""
    P, _, r, alive = _dense(mdp)
    Q = (r + gamma * P @ (alive * V)) * alive[:, None]
    m = Q.max(axis=1)
    return Q, (m + tau * np.log(np.exp((Q - m[:, None]) / tau).sum(axis=1))) * alive


@pytest.mark.parametrize(("n_terminal", "transition_rewards", "tau", "gamma"),
                         [(0, False, 0.5, 0.9), (2, True, 0.05, 0.95), (1, True, 3.0, 0.5)])
def test_soft_value_iteration_fixed_point(
    rng: np.random.Generator, n_terminal: int, transition_rewards: bool, tau: float, gamma: float
) -> None:
    mdp = random_mdp(rng, S=8, A=3, successors=3, n_terminal=n_terminal, gamma=gamma, transition_rewards=transition_rewards)
    sol = pg.exact.soft_optimal(mdp, tau, "discounted")
    assert sol.objective == "discounted" and sol.tau == tau and sol.gamma == gamma and sol.iterations > 1
    assert sol.V.shape == (8,) and sol.Q.shape == (8, 3) and sol.J == sol.value
    Q, TV = _soft_backup(mdp, sol.V, gamma, tau)
    assert np.abs(TV - sol.V).max() < 1e-10  # the soft Bellman residual
    np.testing.assert_allclose(sol.Q, Q, rtol=0, atol=1e-10)
    assert sol.value == pytest.approx(mdp.mu0 @ sol.V, abs=1e-14)
    probs = sol.probs()
    np.testing.assert_allclose(probs, np.exp((sol.Q - sol.V[:, None]) / tau) * ~mdp.terminal[:, None]
                               + mdp.terminal[:, None] / 3, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-14)
    assert (sol.V[mdp.terminal] == 0).all() and (sol.Q[mdp.terminal] == 0).all()


@pytest.mark.parametrize("gamma", [1.0, 0.8])
def test_soft_finite_horizon_backward_recursion(rng: np.random.Generator, gamma: float) -> None:
    mdp = random_mdp(rng, S=6, A=3, successors=3, n_terminal=1, horizon=5, gamma=gamma, transition_rewards=True)
    sol = pg.exact.soft_optimal(mdp, 0.3, "finite_horizon")
    assert sol.V.shape == (5, 6) and sol.Q.shape == (5, 6, 3) and sol.iterations == 5 and sol.gamma == gamma
    V = np.zeros(6)
    for t in range(4, -1, -1):
        Q, V = _soft_backup(mdp, V, gamma, 0.3)
        np.testing.assert_allclose(sol.Q[t], Q, rtol=0, atol=1e-13)
        np.testing.assert_allclose(sol.V[t], V, rtol=0, atol=1e-13)
    assert sol.value == pytest.approx(mdp.mu0 @ V, abs=1e-13)
    for t in range(5):
        np.testing.assert_allclose(sol.policy(t).probs(), sol.probs()[t], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kind", ["terminal", "transition_rewards"])
def test_soft_optimal_policy_has_the_soft_value_and_zero_gradient(rng: np.random.Generator, kind: str) -> None:
    """Discounted: the policy of soft_optimal, evaluated with the entropy bonus, has the soft
    values (V, Q) and is a stationary point of J_tau."""
    mdp = random_mdp(rng, S=7, A=3, successors=3, n_terminal=2 if kind == "terminal" else 0, gamma=0.9,
                     transition_rewards=kind == "transition_rewards")
    tau = 0.2
    sol = pg.exact.soft_optimal(mdp, tau, "discounted")
    pi = sol.policy()
    assert isinstance(pi, pg.TabularSoftmax)
    np.testing.assert_allclose(pi.probs(), sol.probs(), rtol=1e-12, atol=1e-15)
    g, ev = pg.exact.gradient(mdp, pi, "discounted", regularizer=pg.Entropy(tau), return_evaluation=True)
    # the iteration stops at a change of 1e-12 max(1, |V|): V is within gamma / (1 - gamma) of that
    # of V*, and so is the value of the policy read from Q (twice, for the error in Q)
    bound = 2 * 1e-12 * max(1.0, np.abs(sol.V).max()) / (1 - 0.9)
    assert abs(ev.value - sol.value) <= bound
    np.testing.assert_allclose(ev.V, sol.V, rtol=0, atol=bound)
    np.testing.assert_allclose(ev.Q, sol.Q, rtol=0, atol=bound)
    assert np.abs(g).max() < bound / (1 - 0.9)  # sum_s rho(s) pi(a|s) A(s, a), sum rho = 1 / (1 - gamma)
    # a nearby policy is worse and has a gradient
    worse = pg.TabularSoftmax(7, 3, theta=pi.theta + 0.3 * rng.normal(size=(7, 3)))
    assert pg.exact.evaluate(mdp, worse, "discounted", regularizer=pg.Entropy(tau)).value < sol.value
    assert np.abs(pg.exact.gradient(mdp, worse, "discounted", regularizer=pg.Entropy(tau))).max() > 1e-4


def _unrolled(mdp: pg.FiniteMDP) -> pg.FiniteMDP:
    """The MDP on the states (t, s) (index t S + s), so that a stationary policy is any
    step-dependent one of ``mdp``; the same horizon, discount and terminal states."""
    S, A, H = mdp.n_states, mdp.n_actions, mdp.horizon
    P, R, _, _ = _dense(mdp)
    PU, RU = np.zeros((H * S, A, H * S)), np.zeros((H * S, A, H * S))
    for t in range(H):
        nt = min(t + 1, H - 1)  # the last step's successors are never used
        PU[t * S:(t + 1) * S, :, nt * S:(nt + 1) * S] = P
        RU[t * S:(t + 1) * S, :, nt * S:(nt + 1) * S] = R
    mu0 = np.concatenate([mdp.mu0, np.zeros((H - 1) * S)])
    return pg.FiniteMDP(PU, RU, mu0, horizon=H, gamma=mdp.gamma, terminal=np.tile(mdp.terminal, H))


def test_soft_optimal_finite_horizon_policy_has_zero_gradient(rng: np.random.Generator) -> None:
    """Finite horizon: the step-dependent soft-optimal policy, as a stationary policy of the
    unrolled MDP, has the soft value and a zero gradient of J_tau."""
    mdp = random_mdp(rng, S=4, A=3, successors=3, n_terminal=1, horizon=4, gamma=0.9, transition_rewards=True)
    tau = 0.25
    sol = pg.exact.soft_optimal(mdp, tau, "finite_horizon")
    big = _unrolled(mdp)
    pi = pg.TabularSoftmax(16, 3, theta=sol.Q.reshape(16, 3) / tau)
    g, ev = pg.exact.gradient(big, pi, "finite_horizon", regularizer=pg.Entropy(tau), return_evaluation=True)
    assert ev.value == pytest.approx(sol.value, rel=1e-12)
    assert np.abs(g).max() < 1e-12
    assert pg.exact.soft_optimal(big, tau, "finite_horizon").value == pytest.approx(sol.value, rel=1e-12)
    # any stationary policy of the original MDP does no better
    stationary = pg.exact.evaluate(mdp, sol.policy(0), "finite_horizon", regularizer=pg.Entropy(tau))
    assert stationary.value <= sol.value + 1e-12


@pytest.mark.parametrize("objective", ["discounted", "finite_horizon"])
def test_soft_optimum_approaches_the_optimum_as_tau_goes_to_zero(rng: np.random.Generator, objective: str) -> None:
    mdp = random_mdp(rng, S=8, A=4, successors=3, n_terminal=1, horizon=6, gamma=0.9, transition_rewards=True)
    best = pg.exact.optimal(mdp, objective).value
    steps = 1 / (1 - 0.9) if objective == "discounted" else sum(0.9**t for t in range(6))
    gaps = []
    for tau in (1.0, 0.1, 0.01, 1e-3, 1e-5):
        gap = pg.exact.soft_optimal(mdp, tau, objective).value - best
        # J* <= J*_tau <= J* + tau log(A) (the most entropy over the weighted steps)
        assert -1e-10 <= gap <= tau * np.log(4) * steps + 1e-10, (tau, gap)
        gaps.append(gap)
    assert all(a > b for a, b in zip(gaps, gaps[1:-1], strict=False))
    assert gaps[-1] < 1e-4


def test_soft_optimal_large_sparse_mdp() -> None:
    """S = 1000, A = 10: the sweeps agree with the dense backup on a sample of states."""
    mdp = sparse_mdp(1000, 10, 10, gamma=0.9, seed=3)
    sol = pg.exact.soft_optimal(mdp, 0.1, "discounted")
    indptr, nxt, prob, _ = mdp.transitions
    Q = mdp.R.ravel() + 0.9 * np.add.reduceat(prob * sol.V[nxt], indptr[:-1])
    Q = Q.reshape(1000, 10)
    m = Q.max(axis=1)
    residual = m + 0.1 * np.log(np.exp((Q - m[:, None]) / 0.1).sum(axis=1)) - sol.V
    assert np.abs(residual).max() < 1e-10


def test_soft_optimal_answers_ctrl_c() -> None:
    mdp = sparse_mdp(2000, 8, 8, gamma=0.999999, seed=4)  # ~ 3e7 sweeps to tol
    assert_interrupts(lambda: pg.exact.soft_optimal(mdp, 0.1, "discounted"))
    assert pg.exact.soft_optimal(mdp, 0.1, "discounted", gamma=0.5).iterations > 1  # still usable


# -- 5. errors ---------------------------------------------------------------------------------


def _tiny() -> pg.FiniteMDP:
    P = np.zeros((2, 2, 2))
    P[0, 0, 0] = P[0, 1, 1] = 1.0
    P[1, :, 1] = 1.0
    return pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3, terminal=[False, True], gamma=0.9)


@pytest.mark.parametrize("bad", ["entropy", 0.1, {"tau": 0.1}, pg.TabularSoftmax(2, 2)])
def test_regularizer_of_the_wrong_type(bad: Any) -> None:
    mdp, pi = _tiny(), pg.TabularSoftmax(2, 2)
    for call in (pg.exact.evaluate, pg.exact.gradient):
        with pytest.raises(TypeError, match=r"regularizer must be pgfast.Entropy\(tau\), pgfast.LogBarrier\(lam\) or None"):
            call(mdp, pi, regularizer=bad)


def test_regularizer_on_an_lqr() -> None:
    lqr = pg.LQR(A=[[1.0, 0.1], [0.0, 1.0]], B=[[0.0], [0.1]], Q=np.eye(2), R=[[0.1]], horizon=10, x0=[1.0, 0.0])
    pi = pg.LinearGaussian(2, 1, W=[[-1.0, -1.5]], log_std=np.log(0.1))
    for reg in (pg.Entropy(0.1), pg.LogBarrier(0.0)):
        for call in (pg.exact.evaluate, pg.exact.gradient):
            with pytest.raises(ValueError, match="regularizer=.* is for a FiniteMDP.*an LQR takes regularizer=None"):
                call(lqr, pi, regularizer=reg)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="mdp must be a pgfast.FiniteMDP"):
        pg.exact.soft_optimal(lqr, 0.1)  # type: ignore[arg-type]


def test_log_barrier_needs_positive_probabilities() -> None:
    mdp = _tiny()
    pi = pg.TabularSoftmax(2, 2, theta=[[0.0, -800.0], [0.0, 0.0]])
    assert pi.probs()[0, 1] == 0.0
    for call in (pg.exact.evaluate, pg.exact.gradient):
        with pytest.raises(ValueError, match=r"regularizer=LogBarrier\(lam=0.1\) needs every probability > 0.*"
                                             r"pi\(a=1\|s=0\) = 0.*-inf"):
            call(mdp, pi, "discounted", regularizer=pg.LogBarrier(0.1))
    # lam = 0: no barrier, no error; the entropy is finite
    assert pg.exact.evaluate(mdp, pi, "discounted", regularizer=pg.LogBarrier(0.0)).value == pg.exact.evaluate(
        mdp, pi, "discounted").value
    assert np.isfinite(pg.exact.evaluate(mdp, pi, "discounted", regularizer=pg.Entropy(0.1)).value)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"tau": 0.0}, ValueError, r"tau must be a finite number > 0.*got 0.0"),
    ({"tau": -1.0}, ValueError, "tau must be a finite number > 0"),
    ({"tau": float("nan")}, ValueError, "tau must be a finite number > 0"),
    ({"tau": float("inf")}, ValueError, "tau must be a finite number > 0"),
    ({"tau": "0.1"}, TypeError, "tau must be a real number, got str"),
    ({"objective": "average_reward"}, ValueError, "soft_optimal supports objective='finite_horizon' or 'discounted', got 'average_reward'"),
    ({"objective": "average_value"}, ValueError, "soft_optimal supports objective='finite_horizon' or 'discounted'"),
    ({"objective": None}, ValueError, "soft_optimal supports objective="),
    ({"objective": "discounted", "gamma": 1.0}, ValueError, "objective='discounted' needs gamma < 1"),
    ({"gamma": 1.5}, ValueError, r"gamma must be in \[0, 1\]"),
    ({"tol": 0.0}, ValueError, r"tol must be in \[1e-14, 0.01\]"),
    ({"tol": 1e-20}, ValueError, "tol must be in"),
    ({"tol": 0.5}, ValueError, "tol must be in"),
    ({"tol": "x"}, TypeError, "tol must be a real number"),
    ({"max_iter": 0}, ValueError, "max_iter must be"),
    ({"max_iter": 2.5}, TypeError, "max_iter must be an integer"),
    ({"objective": "discounted", "max_iter": 2}, ValueError, r"soft value iteration did not reach tol=1e-12 in max_iter=2 sweeps.*raise max_iter or tol"),
])
def test_soft_optimal_bad_inputs(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    args = {"tau": 0.1} | kwargs
    with pytest.raises(error, match=match):
        pg.exact.soft_optimal(_tiny(), **args)


def test_soft_optimal_policy_step_argument() -> None:
    fh = pg.exact.soft_optimal(_tiny(), 0.1, "finite_horizon")
    with pytest.raises(ValueError, match=r"t is required for the finite horizon.*0 <= t < 3"):
        fh.policy()
    with pytest.raises(ValueError, match="t must be"):
        fh.policy(3)
    with pytest.raises(TypeError, match="t must be an integer"):
        fh.policy(1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="t is for the finite horizon"):
        pg.exact.soft_optimal(_tiny(), 0.1, "discounted").policy(0)


def test_soft_optimal_overflow_is_a_value_error() -> None:
    P = np.zeros((1, 2, 1))
    P[0, :, 0] = 1.0
    mdp = pg.FiniteMDP(P, [[1e307, 1e307]], mu0=[1.0], horizon=3, gamma=0.99)
    with pytest.raises(ValueError, match=r"the soft-optimal values \(J\) .*float64"):
        pg.exact.soft_optimal(mdp, 1.0, "discounted")
