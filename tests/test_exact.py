"""pgfast.exact: exact values, gradients, Fisher matrices and optima.

Checked against plain NumPy written here (backward induction, dense linear solves, eigenvectors
and matrix powers of the reset chain), central finite differences of the exact J, two- and
three-state chains solved by hand, and the documented errors.

Tolerances. A backward-stable dense solve of M x = b has a relative error of at most about
cond(M) * n * eps; an iterative solve stopped at relative residual ``tol`` one of at most
cond(M) * tol. :func:`_rel_bound` turns a condition number (computed in the test from the
same matrices) into that bound with a factor 10 for the few solves chained in one quantity;
everything else (sums of S*A terms, H steps of a recursion) is bounded by a count times eps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from helpers import random_mdp, random_policy, random_softmax
from scipy import sparse

import pgfast as pg

EPS = float(np.finfo(np.float64).eps)
OBJECTIVES = ("finite_horizon", "discounted", "average_reward", "average_value")
KINDS = ("tabular", "linear")
TOL = 1e-12  # the documented default tolerance of the iterative (sparse) solver

# -- plain NumPy references -------------------------------------------------------------------


def _dense(mdp: pg.FiniteMDP) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """P (S, A, S) from mdp.P, R (S, A, S) from mdp.transitions, r (S, A) = sum P R, alive (S,)."""
    S, A = mdp.n_states, mdp.n_actions
    indptr, nxt, _, rew = mdp.transitions
    rows = np.repeat(np.arange(S * A), np.diff(indptr))
    flat = np.zeros((S * A, S))
    flat[rows, nxt] = rew
    R = flat.reshape(S, A, S)
    P = mdp.P
    alive = 1.0 - np.asarray(mdp.terminal, dtype=np.float64)
    return P, R, (P * R).sum(axis=2), alive


def _fh_dp(mdp: pg.FiniteMDP, probs: np.ndarray, gamma: float) -> dict[str, Any]:
    """Backward induction for V, Q and forward recursion for d, with V = Q = 0 on terminal states."""
    P, _, r, alive = _dense(mdp)
    S, A, H = mdp.n_states, mdp.n_actions, mdp.horizon
    V = np.zeros((H + 1, S))
    Q = np.zeros((H, S, A))
    for t in range(H - 1, -1, -1):
        Q[t] = r + gamma * P @ (alive * V[t + 1])
        Q[t][alive == 0] = 0.0
        V[t] = (probs * Q[t]).sum(axis=1)
    P_pi = np.einsum("sa,sat->st", probs, P)
    d = np.zeros((H, S))
    d[0] = mdp.mu0
    for t in range(H - 1):
        d[t + 1] = alive * (d[t] @ P_pi)
    return {"V": V[:H], "Q": Q, "d": d, "J": float(mdp.mu0 @ V[0])}


def _fh_greedy_value(mdp: pg.FiniteMDP, actions: np.ndarray, gamma: float) -> float:
    """J of the deterministic time-dependent policy a_t(s) = actions[t, s], by backward induction."""
    P, _, r, alive = _dense(mdp)
    S, H = mdp.n_states, mdp.horizon
    V = np.zeros(S)
    for t in range(H - 1, -1, -1):
        a = actions[t]
        V = alive * (r[np.arange(S), a] + gamma * P[np.arange(S), a] @ (alive * V))
    return float(mdp.mu0 @ V)


def _discounted_ref(mdp: pg.FiniteMDP, probs: np.ndarray, gamma: float) -> dict[str, Any]:
    """Solve (I - gamma P_pi^alive) V = r_pi and rho (I - gamma P_pi^alive) = mu0 with numpy."""
    P, _, r, alive = _dense(mdp)
    S = mdp.n_states
    P_alive = np.einsum("sa,sat->st", probs, P) * alive[None, :]
    P_alive[alive == 0] = 0.0
    r_pi = (probs * r).sum(axis=1) * alive
    M = np.eye(S) - gamma * P_alive
    V = np.linalg.solve(M, r_pi)
    rho = np.linalg.solve(M.T, mdp.mu0)
    Q = r + gamma * P @ (alive * V)
    return {"V": V, "Q": Q, "rho": rho, "J": float(mdp.mu0 @ V), "r_pi": r_pi, "cond": np.linalg.cond(M, np.inf)}


def _reset_chain(mdp: pg.FiniteMDP, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The continuing chain with reset: Pt_sa (S, A, S) = P alive + tau mu0, Pt (S, S); terminal rows = mu0."""
    P, _, _, alive = _dense(mdp)
    tau = (P * (1.0 - alive)[None, None, :]).sum(axis=2)
    Pt_sa = P * alive[None, None, :] + tau[:, :, None] * np.asarray(mdp.mu0)[None, None, :]
    Pt = np.einsum("sa,sat->st", probs, Pt_sa)
    Pt[alive == 0] = mdp.mu0
    return Pt_sa, Pt


def _average_ref(mdp: pg.FiniteMDP, probs: np.ndarray) -> dict[str, Any]:
    """Stationary d as the eigenvector of Pt^T for eigenvalue 1, J = d . r_pi, h from the Poisson equation."""
    _, _, r, alive = _dense(mdp)
    S = mdp.n_states
    Pt_sa, Pt = _reset_chain(mdp, probs)
    w, v = np.linalg.eig(Pt.T)
    order = np.argsort(-np.abs(w))
    assert abs(w[order[0]] - 1.0) < 1e-12 and abs(w[order[1]]) < 1.0 - 1e-3, "test chain must be unichain, aperiodic"
    d = np.real(v[:, order[0]])
    d = d / d.sum()
    r_pi = (probs * r).sum(axis=1)
    J = float(d @ r_pi)
    # (I - Pt) h = r_pi - J with d . h = 0: consistent overdetermined system (rank S)
    lhs = np.vstack([np.eye(S) - Pt, d[None, :]])
    rhs = np.concatenate([r_pi - J, [0.0]])
    h = np.linalg.lstsq(lhs, rhs, rcond=None)[0]
    Q = r - J + Pt_sa @ h
    Z = np.eye(S) - Pt + np.outer(np.ones(S), d)  # fundamental matrix (inverse); nonsingular iff unichain
    return {"d": d, "J": J, "h": h, "Q": Q, "Pt": Pt, "r_pi": r_pi, "alive": alive.astype(bool),
            "lambda2": float(np.abs(w[order[1]])), "cond": np.linalg.cond(Z, np.inf)}


def _cond(mdp: pg.FiniteMDP, probs: np.ndarray, objective: Any, gamma: float) -> float:
    """Condition number of the linear system(s) behind `objective` (H for the H-step recursion)."""
    if objective == "finite_horizon":
        return float(mdp.horizon)
    if objective == "discounted":
        return float(_discounted_ref(mdp, probs, gamma)["cond"])
    c = float(_average_ref(mdp, probs)["cond"])
    if objective == "average_value":
        c = max(c, float(_discounted_ref(mdp, probs, gamma)["cond"]))
    return c


def _rel_bound(cond: float, tol: float = 0.0, n: int = 8) -> float:
    """Relative error bound of a quantity built from a few chained solves of condition `cond`:
    backward error max(tol, n * eps) (iterative stop / LU of size n), times cond, times 10."""
    return 10.0 * cond * max(tol, n * EPS)


# -- policies ---------------------------------------------------------------------------------


def _with_theta(pi: pg.SoftmaxPolicy, theta: np.ndarray) -> pg.SoftmaxPolicy:
    if isinstance(pi, pg.LinearSoftmax):
        return pg.LinearSoftmax(pi.features, theta=theta)
    if isinstance(pi, pg.MLPSoftmax):  # the same network at another theta
        return pg.MLPSoftmax(pi.state_features, pi.n_actions, hidden=pi.hidden, activation=pi.activation, theta=theta)
    return pg.TabularSoftmax(pi.n_states, pi.n_actions, theta=theta)


def _score_basis(pi: pg.SoftmaxPolicy) -> np.ndarray:
    """grad_theta log pi(a|s) as (S, A, n_params), flattened theta in C order."""
    probs = pi.probs()
    S, A = probs.shape
    if isinstance(pi, pg.LinearSoftmax):
        phi = pi.features
        return phi - np.einsum("sa,sap->sp", probs, phi)[:, None, :]
    onehot = np.eye(S * A).reshape(S, A, S * A)
    return onehot - np.einsum("sb,sbp->sp", probs, onehot)[:, None, :]


def _fisher_ref(pi: pg.SoftmaxPolicy, w: np.ndarray) -> np.ndarray:
    """sum_s w(s) sum_a pi(a|s) psi psi^T with psi = grad log pi (the contract's formula)."""
    psi = _score_basis(pi)
    return np.einsum("s,sa,sap,saq->pq", w, pi.probs(), psi, psi)


def _fd_gradient(mdp: pg.FiniteMDP, pi: pg.SoftmaxPolicy, objective: Any, h: float = 1e-5, **kw: Any) -> np.ndarray:
    """Central differences of the exact J (dense solves) in every coordinate of theta."""
    theta = np.array(pi.theta, dtype=np.float64)
    fd = np.zeros_like(theta)
    for i in np.ndindex(theta.shape):
        tp, tm = theta.copy(), theta.copy()
        tp[i] += h
        tm[i] -= h
        jp = pg.exact.evaluate(mdp, _with_theta(pi, tp), objective, method="dense", **kw).J
        jm = pg.exact.evaluate(mdp, _with_theta(pi, tm), objective, method="dense", **kw).J
        fd[i] = (jp - jm) / (2 * h)
    return fd


def _average_mdp(rng: np.random.Generator, n_terminal: int, transition_rewards: bool, gamma: float = 0.9) -> pg.FiniteMDP:
    # every successor possible: the reset chain of any softmax policy is irreducible on the live
    # states and aperiodic (self-loops), so the average objectives are well defined
    return random_mdp(rng, S=6, A=3, n_terminal=n_terminal, horizon=8, gamma=gamma, transition_rewards=transition_rewards)


def _case_mdp(rng: np.random.Generator, objective: Any, n_terminal: int, transition_rewards: bool, gamma: float = 0.9) -> pg.FiniteMDP:
    if objective.startswith("average"):
        return _average_mdp(rng, n_terminal, transition_rewards, gamma)
    return random_mdp(rng, S=6, A=3, successors=4, n_terminal=n_terminal, horizon=8, gamma=gamma,
                      transition_rewards=transition_rewards)


# -- 1. gradients against finite differences ---------------------------------------------------

FD_CASES = [(o, k, nt, tr) for o in OBJECTIVES for k in KINDS for nt in (0, 2) for tr in (False, True)]


@pytest.mark.parametrize(("objective", "kind", "n_terminal", "transition_rewards"), FD_CASES)
def test_gradient_matches_central_differences(
    rng: np.random.Generator, objective: Any, kind: str, n_terminal: int, transition_rewards: bool
) -> None:
    # Error budget of the central difference with h = 1e-5: truncation h^2 |J'''| / 6 ~ 1e-10 *
    # |J'''| (|J'''| = O(10-100) here) plus rounding cond * eps * |J| / h ~ 1e-9: both well under
    # the required 1e-6 * ||fd||, and ||fd|| = O(1) (checked, so the floor never decides).
    mdp = _case_mdp(rng, objective, n_terminal, transition_rewards)
    pi = random_softmax(kind, mdp, rng)
    theta0 = pi.theta.copy()
    g = pg.exact.gradient(mdp, pi, objective, method="dense")
    assert isinstance(g, np.ndarray) and g.shape == pi.theta.shape and g.dtype == np.float64
    np.testing.assert_array_equal(pi.theta, theta0)  # the policy is not touched
    fd = _fd_gradient(mdp, pi, objective)
    nfd = float(np.linalg.norm(fd))
    assert nfd > 1e-2
    err = float(np.linalg.norm(g - fd))
    assert err <= 1e-6 * max(nfd, 1e-3), f"||g - fd|| = {err:.3e}, ||fd|| = {nfd:.3e}"
    if kind == "tabular" and n_terminal:
        # terminal states are never visited: their parameters do not matter
        assert (g[mdp.terminal] == 0.0).all()


@pytest.mark.parametrize("kind", KINDS)
def test_finite_horizon_gradient_undiscounted_longer_horizon(rng: np.random.Generator, kind: str) -> None:
    mdp = random_mdp(rng, S=5, A=2, successors=3, n_terminal=1, horizon=20, gamma=1.0, transition_rewards=True)
    pi = random_softmax(kind, mdp, rng)
    g = pg.exact.gradient(mdp, pi)  # objective defaults to finite_horizon, gamma to mdp.gamma
    fd = _fd_gradient(mdp, pi, "finite_horizon")
    nfd = float(np.linalg.norm(fd))
    assert nfd > 1e-2
    assert np.linalg.norm(g - fd) <= 1e-6 * max(nfd, 1e-3)


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("kind", KINDS)
def test_sparse_dense_and_auto_agree(rng: np.random.Generator, objective: Any, kind: str) -> None:
    mdp = _case_mdp(rng, objective, 2, True)
    pi = random_softmax(kind, mdp, rng)
    probs = pi.probs()
    # an iterative solve stopped at relative residual tol is off by at most cond * tol
    bound = _rel_bound(_cond(mdp, probs, objective, mdp.gamma), TOL)
    dense = pg.exact.evaluate(mdp, pi, objective, method="dense")
    g_dense = pg.exact.gradient(mdp, pi, objective, method="dense")
    F_dense = pg.exact.fisher(mdp, pi, objective, method="dense")
    for method in ("sparse", "auto"):
        ev = pg.exact.evaluate(mdp, pi, objective, method=method, tol=TOL)
        for name in ("V", "Q", "A", "d", "visitation"):
            a, b = getattr(ev, name), getattr(dense, name)
            assert a.shape == b.shape
            assert np.abs(a - b).max() <= bound * max(np.abs(b).max(), 1.0), (method, name)
        assert abs(ev.J - dense.J) <= bound * max(abs(dense.J), 1.0)
        # gradient: sum of visitation * pi * psi * Q terms: scale by the size of the terms
        scale = float(np.abs(dense.visitation).sum() * np.abs(dense.Q).max() * np.abs(_score_basis(pi)).max())
        g = pg.exact.gradient(mdp, pi, objective, method=method, tol=TOL)
        assert np.abs(g - g_dense).max() <= bound * scale, method
        F = pg.exact.fisher(mdp, pi, objective, method=method, tol=TOL)
        # F = sum_s w(s) (...): the error of w moves F by at most bound * sum(w) * max|psi|^2
        fscale = float(np.abs(dense.visitation).sum() * np.abs(_score_basis(pi)).max() ** 2)
        assert np.abs(F - F_dense).max() <= bound * fscale, method


def test_gamma_keyword_overrides_mdp_gamma(rng: np.random.Generator) -> None:
    kw: dict[str, Any] = {"S": 5, "A": 2, "n_terminal": 1, "horizon": 6}  # all successors: unichain
    m1 = random_mdp(np.random.default_rng(3), gamma=1.0, **kw)
    m9 = random_mdp(np.random.default_rng(3), gamma=0.9, **kw)
    pi = random_policy(rng, m1)
    for objective in ("finite_horizon", "discounted", "average_value"):
        a = pg.exact.evaluate(m1, pi, objective, gamma=0.9, method="dense")
        b = pg.exact.evaluate(m9, pi, objective, method="dense")
        assert a.J == pytest.approx(b.J, rel=1e-14, abs=1e-14)
        np.testing.assert_allclose(pg.exact.gradient(m1, pi, objective, gamma=0.9, method="dense"),
                                   pg.exact.gradient(m9, pi, objective, method="dense"), rtol=1e-13, atol=1e-14)
    assert pg.exact.evaluate(m9, pi, "finite_horizon", gamma=1.0).J == pytest.approx(
        pg.exact.evaluate(m1, pi, "finite_horizon").J, rel=1e-14)


# -- 2. finite horizon against backward induction ---------------------------------------------


@pytest.mark.parametrize("n_terminal", [0, 2])
@pytest.mark.parametrize("transition_rewards", [False, True])
@pytest.mark.parametrize("gamma", [1.0, 0.8])
def test_finite_horizon_matches_numpy_dp(
    rng: np.random.Generator, n_terminal: int, transition_rewards: bool, gamma: float
) -> None:
    mdp = random_mdp(rng, S=7, A=3, successors=3, n_terminal=n_terminal, horizon=9, gamma=gamma,
                     transition_rewards=transition_rewards)
    pi = random_policy(rng, mdp)
    probs = pi.probs()
    ref = _fh_dp(mdp, probs, gamma)
    ev = pg.exact.evaluate(mdp, pi, "finite_horizon")
    S, A, H = mdp.n_states, mdp.n_actions, mdp.horizon
    assert ev.V.shape == (H, S) and ev.Q.shape == ev.A.shape == (H, S, A) and ev.d.shape == (H, S)
    assert ev.visitation.shape == (S,) and isinstance(ev.J, float)
    # H steps of S-term sums: rounding below H * S * eps times the size of the values
    atol = 10 * H * S * EPS * (1.0 + np.abs(ref["Q"]).max())
    np.testing.assert_allclose(ev.V, ref["V"], rtol=0, atol=atol)
    np.testing.assert_allclose(ev.Q, ref["Q"], rtol=0, atol=atol)
    np.testing.assert_allclose(ev.A, ref["Q"] - ref["V"][..., None], rtol=0, atol=2 * atol)
    np.testing.assert_allclose(ev.d, ref["d"], rtol=0, atol=10 * H * S * EPS)
    np.testing.assert_allclose(ev.visitation, ref["d"].sum(axis=0), rtol=0, atol=10 * H * H * S * EPS)
    assert ev.J == pytest.approx(ref["J"], rel=0, abs=atol)
    # J as the d_t-weighted reward sum: sum_t gamma^t sum_s d_t(s) sum_a pi(a|s) r(s, a)
    _, _, r, _ = _dense(mdp)
    r_pi = (probs * r).sum(axis=1)
    J_occ = float(sum(gamma**t * ev.d[t] @ r_pi for t in range(H)))
    assert ev.J == pytest.approx(J_occ, rel=0, abs=atol)


# -- 3. discounted against numpy.linalg.solve ---------------------------------------------------


@pytest.mark.parametrize("n_terminal", [0, 2])
@pytest.mark.parametrize("transition_rewards", [False, True])
@pytest.mark.parametrize("method", ["dense", "sparse"])
def test_discounted_matches_numpy_solve(rng: np.random.Generator, n_terminal: int, transition_rewards: bool, method: Any) -> None:
    mdp = random_mdp(rng, S=8, A=3, successors=3, n_terminal=n_terminal, horizon=5, gamma=0.93,
                     transition_rewards=transition_rewards)
    pi = random_policy(rng, mdp)
    ref = _discounted_ref(mdp, pi.probs(), 0.93)
    ev = pg.exact.evaluate(mdp, pi, "discounted", method=method)
    S, A = mdp.n_states, mdp.n_actions
    assert ev.V.shape == (S,) and ev.Q.shape == ev.A.shape == (S, A)
    assert ev.d.shape == ev.visitation.shape == (S,)
    bound = _rel_bound(ref["cond"], TOL if method == "sparse" else 0.0)
    live = ~np.asarray(mdp.terminal)
    vs = np.abs(ref["V"]).max()
    np.testing.assert_allclose(ev.V, ref["V"], rtol=0, atol=bound * vs)
    assert np.abs(ev.V[~live]).max(initial=0.0) <= bound * vs  # terminal states are worth 0
    qs = np.abs(ref["Q"][live]).max()
    np.testing.assert_allclose(ev.Q[live], ref["Q"][live], rtol=0, atol=bound * qs)
    np.testing.assert_allclose(ev.A[live], (ref["Q"] - ref["V"][:, None])[live], rtol=0, atol=2 * bound * qs)
    rs = ref["rho"].sum()
    np.testing.assert_allclose(ev.visitation, ref["rho"], rtol=0, atol=bound * rs)
    np.testing.assert_allclose(ev.d, ref["rho"] / rs, rtol=0, atol=2 * bound)
    assert ev.J == pytest.approx(ref["J"], rel=0, abs=bound * vs)
    # the two solves agree: mu0 . V = rho . r_pi (both are the expected discounted return)
    assert ev.J == pytest.approx(float(ev.visitation @ ref["r_pi"]), rel=0, abs=2 * bound * vs * rs)
    # without terminal states the visitation sums to the expected discounted time 1 / (1 - gamma)
    if n_terminal == 0:
        assert rs == pytest.approx(1 / (1 - 0.93), rel=1e-12)


# -- 4. stationary distribution and the average objectives ----------------------------------


@pytest.mark.parametrize("n_terminal", [0, 2])
@pytest.mark.parametrize("transition_rewards", [False, True])
def test_stationary_distribution_and_average_reward(rng: np.random.Generator, n_terminal: int, transition_rewards: bool) -> None:
    mdp = _average_mdp(rng, n_terminal, transition_rewards)
    pi = random_policy(rng, mdp)
    probs = pi.probs()
    ref = _average_ref(mdp, probs)
    Pt, alive = ref["Pt"], ref["alive"]
    bound = _rel_bound(ref["cond"])
    d = pg.exact.stationary_distribution(mdp, pi, method="dense")
    assert d.shape == (mdp.n_states,)
    assert (d >= 0).all()
    assert d.sum() == pytest.approx(1.0, abs=10 * mdp.n_states * EPS)
    np.testing.assert_allclose(d @ Pt, d, rtol=0, atol=bound)
    assert np.abs(d[~alive]).max(initial=0.0) <= bound  # terminal states are never occupied
    np.testing.assert_allclose(d, ref["d"], rtol=0, atol=bound)
    d_sparse = pg.exact.stationary_distribution(mdp, pi, method="sparse", tol=TOL)
    np.testing.assert_allclose(d_sparse, d, rtol=0, atol=_rel_bound(ref["cond"], TOL))
    # the rows of Pt^N all converge to d: at rate lambda_2^N, here below 1e-13
    N = 2048
    assert ref["lambda2"] ** N < 1e-13
    PN = np.linalg.matrix_power(Pt, N)
    np.testing.assert_allclose(PN, np.tile(d, (mdp.n_states, 1)), rtol=0, atol=bound + N * mdp.n_states * EPS)

    ev = pg.exact.evaluate(mdp, pi, "average_reward", method="dense")
    js = np.abs(ref["r_pi"]).max()
    # long-run average reward from every start state: (Pt^N r_pi)(s) -> J
    np.testing.assert_allclose(PN @ ref["r_pi"], ev.J, rtol=0, atol=(bound + N * mdp.n_states * EPS) * js)
    assert ev.J == pytest.approx(ref["J"], rel=0, abs=bound * js)
    np.testing.assert_allclose(ev.d, d, rtol=0, atol=bound)
    np.testing.assert_allclose(ev.visitation, ev.d, rtol=0, atol=bound)
    # differential values: (I - Pt) h = r_pi - J on the live states, d . h = 0
    h = ev.V
    hs = np.abs(ref["h"]).max() + js
    assert h.shape == (mdp.n_states,)
    np.testing.assert_allclose(((np.eye(mdp.n_states) - Pt) @ h)[alive], (ref["r_pi"] - ev.J)[alive], rtol=0, atol=bound * hs)
    assert abs(float(d @ h)) <= bound * hs
    np.testing.assert_allclose(h[alive], ref["h"][alive], rtol=0, atol=bound * hs)
    np.testing.assert_allclose(ev.Q[alive], ref["Q"][alive], rtol=0, atol=bound * hs)
    np.testing.assert_allclose(ev.A[alive], (ref["Q"] - ref["h"][:, None])[alive], rtol=0, atol=2 * bound * hs)

    # average_value: the same d, the discounted V, J = d . V_gamma
    av = pg.exact.evaluate(mdp, pi, "average_value", method="dense")
    disc = _discounted_ref(mdp, probs, mdp.gamma)
    vb = _rel_bound(max(ref["cond"], disc["cond"])) * np.abs(disc["V"]).max()
    np.testing.assert_allclose(av.d, ev.d, rtol=0, atol=bound)
    np.testing.assert_allclose(av.visitation, av.d, rtol=0, atol=bound)
    np.testing.assert_allclose(av.V, disc["V"], rtol=0, atol=vb)
    np.testing.assert_allclose(av.Q[alive], disc["Q"][alive], rtol=0, atol=vb)
    assert av.J == pytest.approx(float(ref["d"] @ disc["V"]), rel=0, abs=vb)


@pytest.mark.parametrize("kind", KINDS)
def test_average_value_is_average_reward_over_one_minus_gamma_without_terminals(rng: np.random.Generator, kind: str) -> None:
    # d Pt = d and Pt = P_pi when nothing resets, so d (I - gamma P_pi)^-1 = d / (1 - gamma):
    # J_av = d . V_gamma = d . r_pi / (1 - gamma), for every theta, so the gradients agree too
    mdp = _average_mdp(rng, 0, True, gamma=0.8)
    pi = random_softmax(kind, mdp, rng)
    bound = _rel_bound(_cond(mdp, pi.probs(), "average_value", 0.8))
    ar = pg.exact.evaluate(mdp, pi, "average_reward", method="dense")
    av = pg.exact.evaluate(mdp, pi, "average_value", method="dense")
    assert av.J == pytest.approx(ar.J / 0.2, rel=0, abs=bound * np.abs(av.V).max())
    g_ar = pg.exact.gradient(mdp, pi, "average_reward", method="dense")
    g_av = pg.exact.gradient(mdp, pi, "average_value", method="dense")
    scale = np.abs(av.Q).max() * np.abs(_score_basis(pi)).max()
    np.testing.assert_allclose(g_av, g_ar / 0.2, rtol=0, atol=bound * scale)


# -- 5. hand-solved chains --------------------------------------------------------------------

C_QUIT = 2.0  # reward of quitting


def _quit_chain(horizon: int = 5, gamma: float = 0.9) -> tuple[pg.FiniteMDP, pg.TabularSoftmax, float]:
    """State 0: action 0 stays (reward 1), action 1 enters terminal state 1 (reward C_QUIT).
    The terminal state's own row (self-loop, reward 5) must never count. Returns (mdp, pi, p = pi(stay))."""
    P = np.zeros((2, 2, 2))
    P[0, 0, 0] = P[0, 1, 1] = 1.0
    P[1, :, 1] = 1.0
    R = np.array([[1.0, C_QUIT], [5.0, 5.0]])
    mdp = pg.FiniteMDP(P, R, [1.0, 0.0], horizon=horizon, gamma=gamma, terminal=[False, True])
    theta = np.array([[0.3, -0.2], [0.7, 0.1]])
    p = 1.0 / (1.0 + np.exp(-(theta[0, 0] - theta[0, 1])))
    return mdp, pg.TabularSoftmax(2, 2, theta=theta), float(p)


def _tabular_grad_from_dp(dJ_dp: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Two actions per state, p_s = pi(0|s) = sigmoid(theta[s,0] - theta[s,1]): chain rule."""
    s = p * (1 - p) * dJ_dp
    return np.stack([s, -s], axis=1)


HAND_TOL = 1e-13  # closed forms of a handful of O(1) terms, against solves of 2x2 / 3x3 systems


def test_hand_quit_chain_finite_horizon() -> None:
    H, g, c = 5, 0.9, C_QUIT
    mdp, pi, p = _quit_chain(H, g)
    m = p + (1 - p) * c  # expected reward of a step from state 0
    ev = pg.exact.evaluate(mdp, pi, "finite_horizon")
    t = np.arange(H)
    V0 = m * (1 - (g * p) ** (H - t)) / (1 - g * p)
    np.testing.assert_allclose(ev.V, np.stack([V0, np.zeros(H)], axis=1), rtol=HAND_TOL, atol=HAND_TOL)
    V_next = np.append(V0[1:], 0.0)
    Q = np.zeros((H, 2, 2))
    Q[:, 0, 0] = 1 + g * V_next
    Q[:, 0, 1] = c
    np.testing.assert_allclose(ev.Q, Q, rtol=HAND_TOL, atol=HAND_TOL)
    np.testing.assert_allclose(ev.d, np.stack([p**t, np.zeros(H)], axis=1), rtol=HAND_TOL, atol=HAND_TOL)
    w0 = (1 - p**H) / (1 - p)
    np.testing.assert_allclose(ev.visitation, [w0, 0.0], rtol=HAND_TOL, atol=HAND_TOL)
    G = (1 - (g * p) ** H) / (1 - g * p)
    assert ev.J == pytest.approx(m * G, rel=HAND_TOL)
    dG = g * ((1 - (g * p) ** H) - H * (g * p) ** (H - 1) * (1 - g * p)) / (1 - g * p) ** 2
    dJ = (1 - c) * G + m * dG
    grad = _tabular_grad_from_dp(np.array([dJ, 0.0]), np.array([p, 0.5]))
    np.testing.assert_allclose(pg.exact.gradient(mdp, pi, "finite_horizon"), grad, rtol=1e-12, atol=HAND_TOL)
    F = np.zeros((4, 4))
    F[:2, :2] = w0 * p * (1 - p) * np.array([[1, -1], [-1, 1]])
    np.testing.assert_allclose(pg.exact.fisher(mdp, pi, "finite_horizon"), F, rtol=1e-12, atol=HAND_TOL)


def test_hand_quit_chain_discounted() -> None:
    g, c = 0.9, C_QUIT
    mdp, pi, p = _quit_chain(5, g)
    m = p + (1 - p) * c
    ev = pg.exact.evaluate(mdp, pi, "discounted")
    V0 = m / (1 - g * p)
    np.testing.assert_allclose(ev.V, [V0, 0.0], rtol=HAND_TOL, atol=HAND_TOL)
    np.testing.assert_allclose(ev.Q[0], [1 + g * V0, c], rtol=HAND_TOL)
    np.testing.assert_allclose(ev.A[0], [1 + g * V0 - V0, c - V0], rtol=1e-12)
    np.testing.assert_allclose(ev.visitation, [1 / (1 - g * p), 0.0], rtol=HAND_TOL, atol=HAND_TOL)
    np.testing.assert_allclose(ev.d, [1.0, 0.0], rtol=HAND_TOL, atol=HAND_TOL)
    assert ev.J == pytest.approx(V0, rel=HAND_TOL)
    dJ = ((1 - c) * (1 - g * p) + g * m) / (1 - g * p) ** 2
    grad = _tabular_grad_from_dp(np.array([dJ, 0.0]), np.array([p, 0.5]))
    np.testing.assert_allclose(pg.exact.gradient(mdp, pi, "discounted"), grad, rtol=1e-12, atol=HAND_TOL)
    F = np.zeros((4, 4))
    F[:2, :2] = p * (1 - p) / (1 - g * p) * np.array([[1, -1], [-1, 1]])
    np.testing.assert_allclose(pg.exact.fisher(mdp, pi, "discounted"), F, rtol=1e-12, atol=HAND_TOL)
    # natural gradient (min-norm): x[0] = A[0] - mean(A[0]); terminal row unvisited
    x = pg.exact.natural_gradient(mdp, pi, "discounted")
    A0 = np.array([1 + g * V0 - V0, c - V0])
    np.testing.assert_allclose(x[0] - x[0].mean(), A0 - A0.mean(), rtol=1e-10)


def test_hand_quit_chain_average_objectives() -> None:
    # quitting resets to state 0: the chain never leaves state 0, d = (1, 0)
    g, c = 0.9, C_QUIT
    mdp, pi, p = _quit_chain(5, g)
    m = p + (1 - p) * c
    ar = pg.exact.evaluate(mdp, pi, "average_reward")
    np.testing.assert_allclose(ar.d, [1.0, 0.0], rtol=0, atol=HAND_TOL)
    assert ar.J == pytest.approx(m, rel=HAND_TOL)
    assert ar.V[0] == pytest.approx(0.0, abs=HAND_TOL)  # d . h = 0
    np.testing.assert_allclose(ar.Q[0], [1 - m, c - m], rtol=1e-12, atol=HAND_TOL)
    grad = _tabular_grad_from_dp(np.array([1 - c, 0.0]), np.array([p, 0.5]))
    np.testing.assert_allclose(pg.exact.gradient(mdp, pi, "average_reward"), grad, rtol=1e-12, atol=HAND_TOL)
    # average_value: d constant, J = V_gamma(0): the discounted gradient
    av = pg.exact.evaluate(mdp, pi, "average_value")
    assert av.J == pytest.approx(m / (1 - g * p), rel=HAND_TOL)
    dJ = ((1 - c) * (1 - g * p) + g * m) / (1 - g * p) ** 2
    grad = _tabular_grad_from_dp(np.array([dJ, 0.0]), np.array([p, 0.5]))
    np.testing.assert_allclose(pg.exact.gradient(mdp, pi, "average_value"), grad, rtol=1e-12, atol=HAND_TOL)


def _switch_chain(gamma: float = 0.9) -> tuple[pg.FiniteMDP, pg.TabularSoftmax, np.ndarray, np.ndarray]:
    """States 0 and 1: action 0 stays, action 1 moves to the other one. State 2 (the only start
    state) is transient: action 0 goes to 0, action 1 to 1. Rewards r(s, a). Returns (mdp, pi, r, p)
    with p[s] = pi(0|s)."""
    P = np.zeros((3, 2, 3))
    P[0, 0, 0] = P[0, 1, 1] = P[1, 0, 1] = P[1, 1, 0] = P[2, 0, 0] = P[2, 1, 1] = 1.0
    r = np.array([[1.0, -0.5], [2.0, 0.3], [4.0, -3.0]])
    mdp = pg.FiniteMDP(P, r, [0.0, 0.0, 1.0], horizon=4, gamma=gamma)
    theta = np.array([[0.4, -0.3], [-0.2, 0.5], [0.1, 0.9]])
    p = 1.0 / (1.0 + np.exp(-(theta[:, 0] - theta[:, 1])))
    return mdp, pg.TabularSoftmax(3, 2, theta=theta), r, p


def test_hand_switch_chain_average_reward() -> None:
    mdp, pi, r, p = _switch_chain()
    a, b = 1 - p[0], 1 - p[1]  # switching probabilities 0 -> 1 and 1 -> 0
    rho = p * r[:, 0] + (1 - p) * r[:, 1]  # r_pi
    J = (b * rho[0] + a * rho[1]) / (a + b)
    delta = (rho[0] - rho[1]) / (a + b)  # h(0) - h(1)
    h = np.array([a * delta / (a + b), -b * delta / (a + b), 0.0])
    h[2] = rho[2] - J + p[2] * h[0] + (1 - p[2]) * h[1]
    nxt = np.array([[0, 1], [1, 0], [0, 1]])
    Q = r - J + h[nxt]
    ev = pg.exact.evaluate(mdp, pi, "average_reward")
    np.testing.assert_allclose(ev.d, [b / (a + b), a / (a + b), 0.0], rtol=HAND_TOL, atol=HAND_TOL)
    np.testing.assert_allclose(pg.exact.stationary_distribution(mdp, pi), ev.d, rtol=0, atol=HAND_TOL)
    assert ev.J == pytest.approx(J, rel=HAND_TOL)
    np.testing.assert_allclose(ev.V, h, rtol=1e-12, atol=HAND_TOL)
    np.testing.assert_allclose(ev.Q, Q, rtol=1e-12, atol=HAND_TOL)
    np.testing.assert_allclose(ev.A, Q - h[:, None], rtol=1e-12, atol=HAND_TOL)
    # J = N / D with N = b rho0 + a rho1, D = a + b: dJ/dp_s = (dN/dp_s + J) / D (dD/dp_s = -1)
    dJ = np.array([b * (r[0, 0] - r[0, 1]) - rho[1] + J, a * (r[1, 0] - r[1, 1]) - rho[0] + J, 0.0]) / (a + b)
    grad = _tabular_grad_from_dp(dJ, p)
    np.testing.assert_allclose(pg.exact.gradient(mdp, pi, "average_reward"), grad, rtol=1e-12, atol=HAND_TOL)
    # Fisher: weights d; the transient start state has none
    d = ev.d
    F = np.zeros((6, 6))
    for s in range(2):
        F[2 * s : 2 * s + 2, 2 * s : 2 * s + 2] = d[s] * p[s] * (1 - p[s]) * np.array([[1, -1], [-1, 1]])
    np.testing.assert_allclose(pg.exact.fisher(mdp, pi, "average_reward"), F, rtol=1e-12, atol=HAND_TOL)


def test_hand_switch_chain_average_value() -> None:
    g = 0.9
    mdp, pi, r, p = _switch_chain(g)
    a, b = 1 - p[0], 1 - p[1]
    rho = p * r[:, 0] + (1 - p) * r[:, 1]
    # V_gamma on {0, 1}: (I - g P) V = rho with P = [[p0, a], [b, p1]], inverted by hand
    det = (1 - g * p[0]) * (1 - g * p[1]) - g * g * a * b
    V0 = ((1 - g * p[1]) * rho[0] + g * a * rho[1]) / det
    V1 = (g * b * rho[0] + (1 - g * p[0]) * rho[1]) / det
    V2 = rho[2] + g * (p[2] * V0 + (1 - p[2]) * V1)
    ev = pg.exact.evaluate(mdp, pi, "average_value")
    np.testing.assert_allclose(ev.V, [V0, V1, V2], rtol=1e-12)
    np.testing.assert_allclose(ev.d, [b / (a + b), a / (a + b), 0.0], rtol=HAND_TOL, atol=HAND_TOL)
    J_avg = (b * rho[0] + a * rho[1]) / (a + b)
    assert ev.J == pytest.approx(J_avg / (1 - g), rel=1e-12)  # d . V_gamma = d . r_pi / (1 - gamma)
    dJ = np.array([b * (r[0, 0] - r[0, 1]) - rho[1] + J_avg, a * (r[1, 0] - r[1, 1]) - rho[0] + J_avg, 0.0]) / (a + b)
    grad = _tabular_grad_from_dp(dJ / (1 - g), p)
    np.testing.assert_allclose(pg.exact.gradient(mdp, pi, "average_value"), grad, rtol=1e-11, atol=1e-12)


# -- 6. Fisher matrices and natural gradients -----------------------------------------------


def _weights(mdp: pg.FiniteMDP, probs: np.ndarray, objective: Any) -> np.ndarray:
    """The contract's Fisher weighting, from the references of this file."""
    if objective == "finite_horizon":
        return _fh_dp(mdp, probs, mdp.gamma)["d"].sum(axis=0)
    if objective == "discounted":
        return _discounted_ref(mdp, probs, mdp.gamma)["rho"]
    return _average_ref(mdp, probs)["d"]


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("kind", KINDS)
def test_fisher_matches_weighted_score_covariance(rng: np.random.Generator, objective: Any, kind: str) -> None:
    mdp = _case_mdp(rng, objective, 2, False)
    pi = random_softmax(kind, mdp, rng)
    probs = pi.probs()
    F = pg.exact.fisher(mdp, pi, objective, method="dense")
    n = pi.n_params
    assert F.shape == (n, n)
    Fs = np.abs(F).max()
    np.testing.assert_allclose(F, F.T, rtol=0, atol=10 * EPS * Fs)
    assert np.linalg.eigvalsh(F).min() >= -10 * n * EPS * Fs
    w = _weights(mdp, probs, objective)
    bound = _rel_bound(_cond(mdp, probs, objective, mdp.gamma)) + 10 * mdp.n_states * mdp.n_actions * EPS
    if kind == "tabular":
        S, A = probs.shape
        blocks = np.zeros((S * A, S * A))
        for s in range(S):
            blocks[s * A : (s + 1) * A, s * A : (s + 1) * A] = w[s] * (np.diag(probs[s]) - np.outer(probs[s], probs[s]))
        np.testing.assert_allclose(F, blocks, rtol=0, atol=bound * Fs)
    else:
        assert isinstance(pi, pg.LinearSoftmax)
        phi = pi.features
        dev = phi - np.einsum("sa,sap->sp", probs, phi)[:, None, :]
        ref = np.einsum("s,sa,sap,saq->pq", w, probs, dev, dev)
        np.testing.assert_allclose(F, ref, rtol=0, atol=bound * Fs)
    np.testing.assert_allclose(F, _fisher_ref(pi, w), rtol=0, atol=bound * Fs)


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("kind", KINDS)
def test_natural_gradient_solves_fisher_system(rng: np.random.Generator, objective: Any, kind: str) -> None:
    mdp = _case_mdp(rng, objective, 2, True)
    pi = random_softmax(kind, mdp, rng)
    g = pg.exact.gradient(mdp, pi, objective, method="dense")
    F = pg.exact.fisher(mdp, pi, objective, method="dense")
    x = pg.exact.natural_gradient(mdp, pi, objective, method="dense")
    assert x.shape == pi.theta.shape
    n = pi.n_params
    gv, xv = g.ravel(), x.ravel()
    # g lies in range(F) (each state's block of g is orthogonal to the null directions), so
    # the min-norm least-squares x has F x = g up to the rounding of an SVD-type solve
    # (n eps ||F|| ||x||) and of g, F themselves (if rebuilt inside the call)
    bound = _rel_bound(_cond(mdp, pi.probs(), objective, mdp.gamma))
    tol = 100 * n * EPS * np.linalg.norm(F, 2) * np.linalg.norm(xv) + bound * np.linalg.norm(gv)
    assert np.linalg.norm(F @ xv - gv) <= tol
    # damping: (F + damping I) x = g exactly (a nonsingular system)
    lam = 0.1
    xd = pg.exact.natural_gradient(mdp, pi, objective, damping=lam, method="dense").ravel()
    Fd = F + lam * np.eye(n)
    tol_d = 100 * n * EPS * np.linalg.norm(Fd, 2) * np.linalg.norm(xd) + bound * np.linalg.norm(gv)
    assert np.linalg.norm(Fd @ xd - gv) <= tol_d
    # forward error <= ||Fd^-1|| * residual, for our solve and theirs
    np.testing.assert_allclose(xd, np.linalg.solve(Fd, gv), rtol=0,
                               atol=2 * np.linalg.cond(Fd) * tol_d / np.linalg.norm(Fd, 2))


@pytest.mark.parametrize("objective", ["discounted", "average_reward"])
@pytest.mark.parametrize("n_terminal", [0, 2])
def test_tabular_natural_gradient_is_the_advantage(rng: np.random.Generator, objective: Any, n_terminal: int) -> None:
    # Kakade (2001): with Fisher weights equal to the gradient's state weights (rho, resp. d),
    # block s of F x = g reads w(s) (diag pi_s - pi_s pi_s^T) x_s = w(s) pi_s * A_s, so
    # x_s = A_s + c_s 1 on every visited state.
    mdp = _case_mdp(rng, objective, n_terminal, True)
    pi = random_policy(rng, mdp)
    ev = pg.exact.evaluate(mdp, pi, objective, method="dense")
    x = pg.exact.natural_gradient(mdp, pi, objective, method="dense")
    F = pg.exact.fisher(mdp, pi, objective, method="dense")
    lam = np.linalg.eigvalsh(F)
    kappa = lam.max() / lam[lam > 1e-10 * lam.max()].min()  # condition on range(F)
    bound = _rel_bound(_cond(mdp, pi.probs(), objective, mdp.gamma))
    visited = ~np.asarray(mdp.terminal)
    assert (ev.visitation[visited] > 1e-3).all()
    A = ev.A[visited]
    xs = x[visited]
    atol = 10 * kappa * (bound + mdp.n_states * mdp.n_actions * EPS) * np.abs(A).max()
    np.testing.assert_allclose(xs - xs.mean(axis=1, keepdims=True), A - A.mean(axis=1, keepdims=True), rtol=0, atol=atol)


# -- 7. optimal policies ------------------------------------------------------------------------


@pytest.mark.parametrize("n_terminal", [0, 2])
def test_optimal_finite_horizon(rng: np.random.Generator, n_terminal: int) -> None:
    mdp = random_mdp(rng, S=7, A=3, successors=3, n_terminal=n_terminal, horizon=8, gamma=0.95, transition_rewards=True)
    S, A, H = mdp.n_states, mdp.n_actions, mdp.horizon
    opt = pg.exact.optimal(mdp, "finite_horizon")
    assert opt.V.shape == (H, S) and opt.Q.shape == (H, S, A) and opt.actions.shape == (H, S)
    assert np.issubdtype(opt.actions.dtype, np.integer)
    # our own backward induction with max
    P, _, r, alive = _dense(mdp)
    live = alive.astype(bool)
    V = np.zeros(S)
    Vs, Qs = np.zeros((H, S)), np.zeros((H, S, A))
    for t in range(H - 1, -1, -1):
        Qs[t] = r + 0.95 * P @ (alive * V)
        V = alive * Qs[t].max(axis=1)
        Vs[t] = V
    atol = 10 * H * S * EPS * (1 + np.abs(Qs).max())
    np.testing.assert_allclose(opt.V[:, live], Vs[:, live], rtol=0, atol=atol)
    np.testing.assert_allclose(opt.Q[:, live], Qs[:, live], rtol=0, atol=atol)
    np.testing.assert_array_equal(opt.actions[:, live], opt.Q[:, live].argmax(axis=2))
    assert opt.J == pytest.approx(float(mdp.mu0 @ Vs[0]), rel=0, abs=atol)
    # the greedy time-dependent policy attains opt.J
    assert _fh_greedy_value(mdp, np.asarray(opt.actions), 0.95) == pytest.approx(opt.J, rel=0, abs=atol)
    # no stationary softmax policy does better
    for k in range(60):
        pi = random_policy(rng, mdp, scale=[0.3, 1.0, 5.0][k % 3])
        assert pg.exact.evaluate(mdp, pi, "finite_horizon").J <= opt.J + 1e-9


def test_optimal_finite_horizon_ties_take_the_lowest_action() -> None:
    # three identical actions: every Q_t(s, .) row is an exact tie
    P = np.zeros((3, 3, 3))
    P[:, :, :] = np.array([[0.2, 0.5, 0.3], [0.0, 0.4, 0.6], [1.0, 0.0, 0.0]])[:, None, :]
    R = np.repeat(np.array([[1.0], [-2.0], [0.5]]), 3, axis=1)
    mdp = pg.FiniteMDP(P, R, [0.5, 0.5, 0.0], horizon=4)
    opt = pg.exact.optimal(mdp, "finite_horizon")
    np.testing.assert_array_equal(opt.actions, np.zeros((4, 3), dtype=int))
    assert opt.J == pytest.approx(pg.exact.evaluate(mdp, pg.TabularSoftmax(3, 3), "finite_horizon").J, rel=1e-14)


@pytest.mark.parametrize("n_terminal", [0, 2])
def test_optimal_discounted(rng: np.random.Generator, n_terminal: int) -> None:
    g = 0.9
    mdp = random_mdp(rng, S=8, A=3, successors=3, n_terminal=n_terminal, horizon=5, gamma=g, transition_rewards=True)
    S, A = mdp.n_states, mdp.n_actions
    opt = pg.exact.optimal(mdp, "discounted")
    assert opt.V.shape == (S,) and opt.Q.shape == (S, A) and opt.actions.shape == (S,)
    assert np.issubdtype(opt.actions.dtype, np.integer)
    P, _, r, alive = _dense(mdp)
    live = alive.astype(bool)
    V = np.asarray(opt.V)
    vs = 1 + np.abs(V).max()
    Qb = r + g * P @ (alive * V)
    # Bellman optimality to 1e-9 (value iteration to tol 1e-12 is off by gamma/(1-gamma) tol)
    np.testing.assert_allclose(V[live], Qb[live].max(axis=1), rtol=0, atol=1e-9 * vs)
    np.testing.assert_allclose(opt.Q[live], Qb[live], rtol=0, atol=1e-9 * vs)
    assert (Qb[live, opt.actions[live]] >= Qb[live].max(axis=1) - 1e-9 * vs).all()
    assert opt.J == pytest.approx(float(mdp.mu0 @ V), rel=0, abs=1e-9 * vs)
    # the greedy deterministic policy as a near-deterministic softmax (other actions get e^-1000 = 0)
    theta = 1e3 * np.eye(A)[np.asarray(opt.actions)]
    greedy = pg.TabularSoftmax(S, A, theta=theta)
    assert pg.exact.evaluate(mdp, greedy, "discounted").J == pytest.approx(opt.J, rel=0, abs=1e-9 * vs)
    for k in range(60):
        pi = random_policy(rng, mdp, scale=[0.3, 1.0, 5.0][k % 3])
        assert pg.exact.evaluate(mdp, pi, "discounted").J <= opt.J + 1e-9


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_results_have_full_field_names_and_the_symbols_as_aliases(rng: np.random.Generator, objective: Any) -> None:
    mdp = random_mdp(rng, S=5, A=3, successors=3, n_terminal=1, horizon=6, gamma=0.9)
    pi = random_policy(rng, mdp)
    _, ev_from_gradient = pg.exact.gradient(mdp, pi, objective, return_evaluation=True)
    for ev in (pg.exact.evaluate(mdp, pi, objective), ev_from_gradient):
        assert [f.name for f in dataclasses.fields(ev)] == [
            "objective", "value", "state_values", "action_values", "advantages", "state_distribution", "visitation", "gamma",
            "regularizer"]
        assert ev.regularizer is None
        assert ev.J == ev.value and ev.V is ev.state_values and ev.Q is ev.action_values
        assert ev.A is ev.advantages and ev.d is ev.state_distribution
        np.testing.assert_allclose(ev.advantages, ev.action_values - ev.state_values[..., None], rtol=0, atol=1e-12)
        for name in ("J", "V", "Q", "A", "d", "value", "state_values"):
            with pytest.raises(AttributeError):
                setattr(ev, name, 0.0)
    if objective in ("finite_horizon", "discounted"):
        opt = pg.exact.optimal(mdp, objective)
        assert [f.name for f in dataclasses.fields(opt)] == [
            "objective", "value", "state_values", "action_values", "actions", "iterations"]
        assert opt.J == opt.value and opt.V is opt.state_values and opt.Q is opt.action_values
        assert opt.value >= pg.exact.evaluate(mdp, pi, objective).value - 1e-12


# -- 8. errors --------------------------------------------------------------------------------

OBJ_CALLS: dict[str, Callable[..., Any]] = {
    "evaluate": lambda m, p, o, **kw: pg.exact.evaluate(m, p, o, **kw),
    "gradient": lambda m, p, o, **kw: pg.exact.gradient(m, p, o, **kw),
    "fisher": lambda m, p, o, **kw: pg.exact.fisher(m, p, o, **kw),
    "natural_gradient": lambda m, p, o, **kw: pg.exact.natural_gradient(m, p, o, **kw),
}


def _two_state(kind: str) -> pg.FiniteMDP:
    """One action. "periodic": the deterministic 2-cycle; "reducible": two absorbing states, mu0 on both."""
    P = np.zeros((2, 1, 2))
    if kind == "periodic":
        P[0, 0, 1] = P[1, 0, 0] = 1.0
        mu0 = [1.0, 0.0]
    else:
        P[0, 0, 0] = P[1, 0, 1] = 1.0
        mu0 = [0.5, 0.5]
    return pg.FiniteMDP(P, np.array([[1.0], [0.0]]), mu0, horizon=3, gamma=0.9)


@pytest.mark.parametrize("call", list(OBJ_CALLS))
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_policy_for_another_mdp(rng: np.random.Generator, call: str, objective: Any) -> None:
    mdp = _average_mdp(rng, 0, False)
    for pi in (pg.TabularSoftmax(5, 3), pg.TabularSoftmax(6, 2), pg.LinearSoftmax(np.ones((7, 3, 2)))):
        with pytest.raises(ValueError, match="policy|n_states"):
            OBJ_CALLS[call](mdp, pi, objective)
    with pytest.raises(ValueError, match="policy|n_states"):
        pg.exact.stationary_distribution(mdp, pg.TabularSoftmax(5, 3))


@pytest.mark.parametrize("call", list(OBJ_CALLS))
def test_bad_gamma_and_objective(rng: np.random.Generator, call: str) -> None:
    f = OBJ_CALLS[call]
    m1 = random_mdp(rng, S=4, A=2, horizon=3, gamma=1.0)
    m9 = random_mdp(rng, S=4, A=2, horizon=3, gamma=0.9)
    pi = random_policy(rng, m1)
    for objective in ("discounted", "average_value"):
        with pytest.raises(ValueError, match="gamma"):
            f(m1, pi, objective)  # gamma=None: the MDP's gamma = 1
        with pytest.raises(ValueError, match="gamma"):
            f(m9, pi, objective, gamma=1.0)
    for objective in OBJECTIVES:
        for bad in (1.5, -0.1):
            with pytest.raises(ValueError, match="gamma"):
                f(m9, pi, objective, gamma=bad)
    for bad_objective in ("discountd", "average", ""):
        with pytest.raises(ValueError, match="objective"):
            f(m9, pi, bad_objective)
    with pytest.raises(ValueError, match="method"):
        f(m9, pi, "discounted", method="lu")


def test_bad_optimal_arguments(rng: np.random.Generator) -> None:
    m1 = random_mdp(rng, S=4, A=2, horizon=3, gamma=1.0)
    with pytest.raises(ValueError, match="gamma"):
        pg.exact.optimal(m1, "discounted")
    with pytest.raises(ValueError, match="gamma"):
        pg.exact.optimal(m1, "finite_horizon", gamma=1.5)
    bad_objective: Any
    for bad_objective in ("finite", "average_reward", "average_value"):
        with pytest.raises(ValueError, match="objective"):
            pg.exact.optimal(m1, bad_objective)


AVG_CALLS: dict[str, Callable[[pg.FiniteMDP, Any], Any]] = {
    "stationary_distribution": lambda m, p: pg.exact.stationary_distribution(m, p),
    "evaluate_average_reward": lambda m, p: pg.exact.evaluate(m, p, "average_reward"),
    "gradient_average_reward": lambda m, p: pg.exact.gradient(m, p, "average_reward"),
    "fisher_average_reward": lambda m, p: pg.exact.fisher(m, p, "average_reward"),
    "evaluate_average_value": lambda m, p: pg.exact.evaluate(m, p, "average_value"),
    "gradient_average_value": lambda m, p: pg.exact.gradient(m, p, "average_value"),
}


@pytest.mark.parametrize("call", list(AVG_CALLS))
def test_periodic_and_reducible_chains_rejected(call: str) -> None:
    pi = pg.TabularSoftmax(2, 1)
    with pytest.raises(ValueError, match="periodic"):
        AVG_CALLS[call](_two_state("periodic"), pi)
    with pytest.raises(ValueError, match="unichain|closed class|stationary"):
        AVG_CALLS[call](_two_state("reducible"), pi)
    # the same chains are fine for the episodic objectives
    for objective in ("finite_horizon", "discounted"):
        for kind in ("periodic", "reducible"):
            assert np.isfinite(pg.exact.evaluate(_two_state(kind), pi, objective).J)


@pytest.mark.parametrize("call", [*OBJ_CALLS, "stationary_distribution"])
def test_non_policy_is_a_type_error(rng: np.random.Generator, call: str) -> None:
    mdp = _average_mdp(rng, 0, False)
    bad: Any
    for bad in (np.zeros((6, 3)), "policy", None):
        with pytest.raises(TypeError):
            if call == "stationary_distribution":
                pg.exact.stationary_distribution(mdp, bad)
            else:
                OBJ_CALLS[call](mdp, bad, "discounted")


# -- 9. a larger sparse problem -------------------------------------------------------------


def test_large_sparse_discounted_agrees_with_dense() -> None:
    rng = np.random.default_rng(99)
    S, A, k, g = 3000, 2, 3, 0.95
    rows = S * A
    nxt = rng.integers(0, S, size=(rows, k))
    while True:  # three distinct successors per row
        dup = (nxt[:, 0] == nxt[:, 1]) | (nxt[:, 0] == nxt[:, 2]) | (nxt[:, 1] == nxt[:, 2])
        if not dup.any():
            break
        nxt[dup] = rng.integers(0, S, size=(int(dup.sum()), k))
    prob = rng.dirichlet(np.ones(k), size=rows)
    P = sparse.csr_matrix((prob.ravel(), nxt.ravel(), np.arange(0, rows * k + 1, k)), shape=(rows, S))
    R = rng.normal(size=(S, A))
    mdp = pg.FiniteMDP(P, R, np.full(S, 1.0 / S), horizon=10, gamma=g)
    pi = random_policy(rng, mdp)
    Vs = pg.exact.evaluate(mdp, pi, "discounted", method="sparse", tol=TOL).V
    Vd = pg.exact.evaluate(mdp, pi, "discounted", method="dense").V
    # cond_inf(I - gamma P_pi) <= (1 + gamma) / (1 - gamma) = 39: relative error <= 39 * 1e-12
    assert np.abs(Vs - Vd).max() <= 1e-8 * np.abs(Vd).max()
    # and both satisfy the Bellman equation (residual relative to r_pi, in the 2-norm of the stop test)
    probs = pi.probs()
    W = sparse.csr_matrix((probs.ravel(), (np.repeat(np.arange(S), A), np.arange(rows))), shape=(S, rows))
    P_pi = W @ P  # sum_a pi(a|s) P(s'|s, a)
    r_pi = (probs * R).sum(axis=1)
    for V in (Vs, Vd):
        res = V - g * (P_pi @ V) - r_pi
        assert np.linalg.norm(res) <= 39 * 10 * TOL * np.linalg.norm(r_pi)


def _large_sparse_mdp(n_terminal: int) -> pg.FiniteMDP:
    """30000 states, 4 actions, 4 successors per (s, a) drawn with replacement (480 000
    transitions, above the 200 000 from which the solvers share their products between threads),
    the last `n_terminal` states terminal; with none, sparse_mdp(30000, 4, 4, horizon=50, seed=3)
    of the interrupt tests."""
    rng = np.random.default_rng(3)
    S, A, K = 30000, 4, 4
    P = sparse.csr_matrix(
        (rng.dirichlet(np.ones(K), size=S * A).ravel(), rng.integers(S, size=S * A * K), np.arange(0, S * A * K + 1, K)),
        shape=(S * A, S),
    )
    P.sum_duplicates()
    terminal = np.arange(S) >= S - n_terminal
    mu0 = np.where(terminal, 0.0, 1.0 / (S - n_terminal))
    return pg.FiniteMDP(P, rng.normal(size=(S, A)), mu0, horizon=50, gamma=0.9, terminal=terminal)


@pytest.mark.parametrize("n_terminal", [0, 300])
def test_large_sparse_results_identical_for_any_thread_count(n_terminal: int) -> None:
    """Every result of the sparse solvers (values, gradients, distributions, Fisher weights) is
    the same bits for 1, 2, 3 and 7 threads: each entry of a matrix-vector product is one sum in
    the order of the transitions, whichever thread computes it (exact guide, "Threads"). Terminal
    states give transitions of weight 0, which the products keep."""
    mdp = _large_sparse_mdp(n_terminal)
    assert mdp.nnz >= 200_000 and int(mdp.terminal.sum()) == n_terminal
    pi = random_policy(np.random.default_rng(4), mdp)

    def results(threads: int) -> dict[str, bytes]:
        out: dict[str, Any] = {}
        for obj in ("discounted", "average_reward", "average_value"):
            g, ev = pg.exact.gradient(mdp, pi, obj, threads=threads, return_evaluation=True)
            out[f"{obj} gradient"] = g
            for name in ("value", "state_values", "action_values", "advantages", "state_distribution", "visitation"):
                out[f"{obj} {name}"] = getattr(ev, name)
            out[f"{obj} fisher_weights"] = pg.exact.fisher_weights(mdp, pi, obj, threads=threads)
        out["stationary_distribution"] = pg.exact.stationary_distribution(mdp, pi, threads=threads)
        return {k: np.asarray(v, dtype=np.float64).tobytes() for k, v in out.items()}

    one = results(1)
    assert len(one) == 3 * 8 + 1  # gradient, J, V, Q, A, d, visitation, Fisher weights; stationary d
    for threads in (2, 3, 7):
        other = results(threads)
        assert other == one, [k for k in one if other[k] != one[k]]
