"""The escort and direct parameterisations (pg.EscortPolicy, pg.DirectPolicy): exact gradients
against finite differences (every objective; the direct one on the boundary of the simplex
along feasible directions), the estimators' unbiasedness against them (stored and fused), the
optimizers (projected gradient ascent reaches the optimum; its sufficient increase and the
gradient domination inequality of Agarwal et al. 2021 hold at every step), the simplex
projection against a brute-force quadratic program, the tables, pickling, threads and bad inputs."""

from __future__ import annotations

import itertools
import pickle
import threading
from typing import Any

import numpy as np
import pytest
from helpers import Family, random_mdp

import pgfast as pg

OBJECTIVES = ["finite_horizon", "discounted", "average_reward", "average_value"]


def _mdp(seed: int, objective: str = "finite_horizon", n_terminal: int = 0, S: int = 5, A: int = 3) -> pg.FiniteMDP:
    rng = np.random.default_rng(seed)
    # the average objectives need an irreducible aperiodic reset chain: every successor possible
    successors = None if objective.startswith("average") else 3
    return random_mdp(rng, S=S, A=A, successors=successors, n_terminal=n_terminal, horizon=6, gamma=0.9,
                      transition_rewards=True)


def _escort_theta(rng: np.random.Generator, S: int, A: int) -> np.ndarray:
    """Entries of magnitude in [0.5, 2] with random signs, and one exact zero (probability 0)."""
    theta = rng.uniform(0.5, 2.0, size=(S, A)) * rng.choice([-1.0, 1.0], size=(S, A))
    theta[0, 1] = 0.0
    return theta


def _interior(rng: np.random.Generator, S: int, A: int) -> np.ndarray:
    return 0.1 / A + 0.9 * rng.dirichlet(np.ones(A), size=S)


def _boundary(rng: np.random.Generator, S: int, A: int) -> np.ndarray:
    """A point on the simplex with zeros: one per row, two in row 0, a vertex in the last row."""
    theta = _interior(rng, S, A)
    theta[np.arange(S), rng.integers(0, A, size=S)] = 0.0
    theta[0] = np.eye(A)[A - 1] + 0.5 * np.eye(A)[A - 2] if A > 2 else np.eye(A)[A - 1]  # zeros in row 0
    theta[0, :2] = 0.0 if A > 2 else theta[0, :2]
    theta[-1] = np.eye(A)[A - 1]
    return theta / theta.sum(axis=1, keepdims=True)


def _J(mdp: pg.FiniteMDP, pi: pg.SoftmaxPolicy, objective: str) -> float:
    return float(pg.exact.evaluate(mdp, pi, objective, method="dense").value)


def _direct(theta: np.ndarray) -> pg.DirectPolicy:
    """The direct policy of theta / row sums (J(theta / rowsum) is what its gradient differentiates)."""
    S, A = theta.shape
    return pg.DirectPolicy(S, A, theta=theta / theta.sum(axis=1, keepdims=True))


def _central_differences(theta: np.ndarray, J: Any, h: float) -> np.ndarray:
    """(J(theta + h e_i) - J(theta - h e_i)) / 2h for every entry i."""
    fd = np.zeros_like(theta)
    for i in np.ndindex(theta.shape):
        tp, tm = theta.copy(), theta.copy()
        tp[i] += h
        tm[i] -= h
        fd[i] = (J(tp) - J(tm)) / (2 * h)
    return fd


# -- 1. exact gradients against finite differences ------------------------------------------------


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("p", [1.0, 1.5, 2.0, 3.0])
def test_escort_gradient_matches_central_differences(objective: str, p: float) -> None:
    # Central differences with h = 1e-5: truncation h^2 |J'''| / 6 and rounding eps |J| / h are
    # both below 1e-9 here (|theta| >= 0.5 away from the zero entry, where |theta|^p is even and
    # the difference is exactly 0, as is the gradient's entry); required 1e-6 relative.
    mdp = _mdp(int(p * 10), objective, n_terminal=0 if objective.startswith("average") else 1)
    rng = np.random.default_rng(7)
    theta = _escort_theta(rng, mdp.n_states, mdp.n_actions)
    pi = pg.EscortPolicy(mdp.n_states, mdp.n_actions, p=p, theta=theta)
    g = pg.exact.gradient(mdp, pi, objective, method="dense")
    fd = _central_differences(theta, lambda t: _J(mdp, pg.EscortPolicy(*t.shape, p=p, theta=t), objective), 1e-5)
    assert np.linalg.norm(fd) > 1e-2
    assert g[0, 1] == 0.0  # theta = 0: the p > 1 limit (p = 1: |theta| is even, the central difference 0)
    np.testing.assert_allclose(g, fd, rtol=0, atol=1e-6 * np.linalg.norm(fd))
    # the sign of theta does not change pi; the gradient changes sign with it
    np.testing.assert_array_equal(pg.EscortPolicy(*theta.shape, p=p, theta=-theta).probs(), pi.probs())
    np.testing.assert_allclose(pg.exact.gradient(mdp, pg.EscortPolicy(*theta.shape, p=p, theta=-theta), objective,
                                                 method="dense"), -g, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_direct_gradient_in_the_interior_matches_central_differences(objective: str) -> None:
    # the gradient of J(theta / rowsum): central differences off the simplex, through _direct
    mdp = _mdp(3, objective, n_terminal=0 if objective.startswith("average") else 1)
    theta = _interior(np.random.default_rng(1), mdp.n_states, mdp.n_actions)
    g = pg.exact.gradient(mdp, pg.DirectPolicy(*theta.shape, theta=theta), objective, method="dense")
    fd = _central_differences(theta, lambda t: _J(mdp, _direct(t), objective), 1e-6)
    assert np.linalg.norm(fd) > 1e-2
    np.testing.assert_allclose(g, fd, rtol=0, atol=1e-6 * np.linalg.norm(fd))
    # the normal direction does not enter: each row of the gradient is orthogonal to theta's row
    # (sum_a pi(a|s) (Q - V) = 0)
    np.testing.assert_allclose((g * theta).sum(axis=1), 0.0, atol=1e-12 * np.abs(g).max())


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_direct_gradient_on_the_boundary_along_feasible_directions(objective: str) -> None:
    # At theta with zeros only the directions d with d >= 0 where theta = 0 and zero row sums
    # stay on the simplex; <grad, d> must be the one-sided derivative of J(theta + h d),
    # measured with the second-order one-sided difference (-3 J(0) + 4 J(h) - J(2h)) / 2h,
    # whose error is O(h^2) = 1e-10 relative here.
    mdp = _mdp(4, objective, n_terminal=0 if objective.startswith("average") else 1)
    rng = np.random.default_rng(2)
    theta = _boundary(rng, mdp.n_states, mdp.n_actions)
    pi = pg.DirectPolicy(*theta.shape, theta=theta)
    g = pg.exact.gradient(mdp, pi, objective, method="dense")
    h = 1e-5
    for _ in range(8):
        d = rng.normal(size=theta.shape)
        zero = theta == 0.0
        d[zero] = np.abs(d[zero]) + 0.1  # into the simplex where theta = 0
        d -= np.where(zero, 0.0, (d.sum(axis=1) / (~zero).sum(axis=1))[:, None])  # rows summing to 0
        assert np.allclose(d.sum(axis=1), 0.0) and (d[zero] > 0).all()
        j = [_J(mdp, pg.DirectPolicy(*theta.shape, theta=theta + k * h * d), objective) for k in (0, 1, 2)]
        one_sided = (-3 * j[0] + 4 * j[1] - j[2]) / (2 * h)
        assert abs(float(np.sum(g * d)) - one_sided) <= 1e-6 * max(abs(one_sided), 1e-2)
    # entries where theta = 0 carry w(s) (Q(s, a) - V(s)) (discounted: the visitation rho)
    if objective == "discounted":
        ev = pg.exact.evaluate(mdp, pi, objective, method="dense")
        np.testing.assert_allclose(g, ev.visitation[:, None] * ev.advantages, rtol=1e-12, atol=1e-14)
        live = (theta == 0.0) & ~mdp.terminal[:, None]  # terminal states are never visited (w = 0)
        assert np.abs(g[live]).min() > 0.0  # defined there, not 0 / 0


def test_direct_gradient_of_the_finite_horizon_is_the_weighted_advantage() -> None:
    # sum_t gamma^t d_t(s) A_t(s, a), from the evaluation's tables, on the boundary too
    mdp = _mdp(5, "finite_horizon", n_terminal=1)
    theta = _boundary(np.random.default_rng(3), mdp.n_states, mdp.n_actions)
    pi = pg.DirectPolicy(*theta.shape, theta=theta)
    g, ev = pg.exact.gradient(mdp, pi, return_evaluation=True)
    H = mdp.horizon
    ref = np.einsum("t,ts,tsa->sa", mdp.gamma ** np.arange(H), ev.state_distribution, ev.advantages)
    np.testing.assert_allclose(g, ref, rtol=1e-12, atol=1e-14)


# -- 2. the estimators against the exact gradient ----------------------------------------------------

N = 60_000


def _family_for(pi: pg.SoftmaxPolicy, mdp: pg.FiniteMDP, exact: np.ndarray, J: float, seed: int) -> Family:
    fam = Family()
    traj = mdp.sample(pi, N, seed=seed)
    for name, kw in {"rtg": {}, "return": {"weights": "return"}, "rtg+exact": {"baseline": "exact"},
                     "rtg+time": {"baseline": "time"}, "return+mean": {"weights": "return", "baseline": "mean"},
                     "rtg+optimal": {"baseline": "optimal"}}.items():
        fam.grad(name, pg.policy_gradient(pi, traj, **kw), exact, J)
    for name, kw in {"fused rtg": {}, "fused return+mean": {"weights": "return", "baseline": "mean"},
                     "fused rtg+exact": {"baseline": "exact"}}.items():
        fam.grad(name, pg.policy_gradient(pi, mdp=mdp, n=N, seed=seed + 1, **kw), exact, J)
    return fam


def test_escort_estimators_are_unbiased() -> None:
    mdp = _mdp(11, n_terminal=1)
    theta = _escort_theta(np.random.default_rng(11), mdp.n_states, mdp.n_actions)
    pi = pg.EscortPolicy(mdp.n_states, mdp.n_actions, p=2.0, theta=theta)
    exact = pg.exact.gradient(mdp, pi)
    fam = _family_for(pi, mdp, exact, pg.exact.evaluate(mdp, pi).J, seed=5)
    # off-policy, from a batch of the uniform tabular policy
    beta = pg.TabularSoftmax(mdp.n_states, mdp.n_actions)
    fam.grad("off rtg", pg.off_policy_gradient(pi, beta, mdp.sample(beta, N, seed=8)), exact, pg.exact.evaluate(mdp, pi).J)
    fam.check()


def test_direct_estimators_are_unbiased_in_the_interior() -> None:
    mdp = _mdp(12, n_terminal=1)
    pi = pg.DirectPolicy(mdp.n_states, mdp.n_actions, theta=_interior(np.random.default_rng(12), mdp.n_states, mdp.n_actions))
    _family_for(pi, mdp, pg.exact.gradient(mdp, pi), pg.exact.evaluate(mdp, pi).J, seed=6).check()


def test_direct_estimators_on_the_boundary_estimate_the_face_gradient() -> None:
    # the entries of actions of probability 0 are exactly 0 (the score within the face); the
    # others are unbiased for the exact gradient's entries
    mdp = _mdp(13, n_terminal=1)
    theta = _boundary(np.random.default_rng(13), mdp.n_states, mdp.n_actions)
    pi = pg.DirectPolicy(*theta.shape, theta=theta)
    exact = pg.exact.gradient(mdp, pi)
    zero = theta == 0.0
    assert np.abs(exact[zero]).max() > 0.0
    face = np.where(zero, 0.0, exact)
    fam = _family_for(pi, mdp, face, pg.exact.evaluate(mdp, pi).J, seed=7)
    for name, est, se, _ in fam.items:
        if est.shape == theta.shape:
            assert (est[zero] == 0.0).all() and (se[zero] == 0.0).all(), name
    fam.check()
    # the exact moments of the estimator: mean the face gradient
    np.testing.assert_allclose(pg.exact.moments(mdp, pi).mean, face, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("kind", ["escort", "direct"])
def test_score_rows_moments_and_partials_agree(kind: str) -> None:
    mdp = _mdp(14, n_terminal=1)
    rng = np.random.default_rng(14)
    pi: pg.SoftmaxPolicy
    if kind == "escort":
        pi = pg.EscortPolicy(mdp.n_states, mdp.n_actions, p=3.0, theta=_escort_theta(rng, mdp.n_states, mdp.n_actions))
    else:
        pi = pg.DirectPolicy(mdp.n_states, mdp.n_actions, theta=_boundary(rng, mdp.n_states, mdp.n_actions))
    traj = mdp.sample(pi, 3000, seed=1)
    est = pg.policy_gradient(pi, traj, per_trajectory=True)
    assert est.per_trajectory is not None
    rows = est.per_trajectory
    np.testing.assert_allclose(rows.mean(axis=0).reshape(pi.theta.shape), est.grad, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(rows.std(axis=0, ddof=1).reshape(pi.theta.shape) / np.sqrt(traj.n), est.stderr,
                               rtol=1e-6, atol=1e-14)
    # pg.score with the estimator's weights, and the per-step scores of grad_log_prob
    w = traj.reward_to_go() * mdp.gamma ** np.arange(traj.horizon)
    np.testing.assert_allclose(pg.score(pi, traj, w), est.grad, rtol=1e-10, atol=1e-14)
    m = traj.mask
    psi = pi.grad_log_prob(traj.states[m], traj.actions[m])
    np.testing.assert_allclose(np.einsum("k,kij->ij", w[m], psi) / traj.n, est.grad, rtol=1e-10, atol=1e-14)
    # the exact moments: mean = the exact (face) gradient, variance = what stderr estimates
    mom = pg.exact.moments(mdp, pi)
    exact = pg.exact.gradient(mdp, pi)
    ref = np.where(pi.theta == 0.0, 0.0, exact) if kind == "direct" else exact
    np.testing.assert_allclose(mom.mean, ref, rtol=1e-10, atol=1e-13)
    n = 40_000
    big = pg.policy_gradient(pi, mdp=mdp, n=n, seed=2)
    pos = mom.variance > 1e-6
    # the sampled standard error estimates the exact one with relative error about
    # sqrt((kurtosis - 1) / n) / 2 (delta method); the kurtosis from the per-trajectory rows above
    dev = rows - rows.mean(axis=0)
    kurt = ((dev**4).mean(axis=0) / np.maximum((dev**2).mean(axis=0) ** 2, 1e-300)).reshape(pi.theta.shape)
    rel = 5.0 * np.sqrt(np.maximum(kurt - 1.0, 1.0) / n) / 2.0
    assert np.all(np.abs(big.stderr[pos] / mom.stderr(n)[pos] - 1.0) <= rel[pos])
    # partials merge into the one-call fused result, bit for bit
    parts = [pg.partial_gradient(pi, mdp=mdp, n=1000, seed=3, lo=lo, hi=hi) for lo, hi in pg.shard_ranges(1000, 3)]
    whole = pg.policy_gradient(pi, mdp=mdp, n=1000, seed=3)
    merged = pg.merge_partials(pi, parts)
    np.testing.assert_array_equal(merged.grad, whole.grad)
    np.testing.assert_array_equal(merged.stderr, whole.stderr)


@pytest.mark.parametrize("kind", ["escort", "direct"])
def test_same_bits_for_any_thread_count(kind: str) -> None:
    mdp = _mdp(15)
    pi: pg.SoftmaxPolicy = (pg.EscortPolicy(mdp.n_states, mdp.n_actions, p=1.5) if kind == "escort"
                            else pg.DirectPolicy(mdp.n_states, mdp.n_actions))
    traj = mdp.sample(pi, 5000, seed=4)
    a = pg.policy_gradient(pi, traj, threads=1, baseline="time")
    b = pg.policy_gradient(pi, traj, threads=3, baseline="time")
    np.testing.assert_array_equal(a.grad, b.grad)
    np.testing.assert_array_equal(a.stderr, b.stderr)
    c = pg.policy_gradient(pi, mdp=mdp, n=5000, seed=4, threads=1)
    d = pg.policy_gradient(pi, mdp=mdp, n=5000, seed=4, threads=2)
    np.testing.assert_array_equal(c.grad, d.grad)


# -- 3. the tables, sampling, likelihoods --------------------------------------------------------------


def test_tables_and_sampling_never_draw_a_probability_of_zero() -> None:
    rng = np.random.default_rng(20)
    for A in (3, 20):  # the inverse CDF (short rows) and the alias method (long rows)
        theta = rng.dirichlet(np.ones(A), size=4)
        theta[:, ::2] = 0.0
        theta /= theta.sum(axis=1, keepdims=True)
        pi = pg.DirectPolicy(4, A, theta=theta)
        np.testing.assert_allclose(pi.probs(), theta, rtol=1e-15)
        lp = pi.log_probs()
        assert np.isneginf(lp[theta == 0]).all()
        np.testing.assert_allclose(np.exp(lp[theta > 0]), theta[theta > 0], rtol=1e-14)
        assert np.isneginf(pi.logits()[theta == 0]).all()
        a = pi.sample(np.repeat(np.arange(4), 20_000), seed=1)
        assert (theta[np.repeat(np.arange(4), 20_000), a] > 0).all()
        freq = np.stack([np.bincount(a[s * 20_000:(s + 1) * 20_000], minlength=A) for s in range(4)]) / 20_000
        assert np.abs(freq - theta).max() < 5 * np.sqrt(0.25 / 20_000)
        esc = pg.EscortPolicy(4, A, p=2.0, theta=np.sqrt(theta))
        np.testing.assert_allclose(esc.probs(), theta, rtol=1e-14, atol=1e-300)
        np.testing.assert_allclose(esc.log_probs()[theta > 0], np.log(theta[theta > 0]), rtol=1e-13)
    mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="4x4", horizon=30)
    theta = np.full((16, 4), 0.5)
    theta[:, [0, 3]] = 0.0  # only down and right
    pi = pg.DirectPolicy(16, 4, theta=theta)
    traj = mdp.sample(pi, 2000, seed=0)
    assert set(np.unique(traj.actions[traj.mask])) <= {1, 2}
    ll = pg.log_likelihood(pi, traj, dynamics=False)
    np.testing.assert_allclose(ll, traj.lengths * np.log(0.5), rtol=1e-14)
    lp = pi.log_prob(traj.states, traj.actions)
    assert np.isfinite(lp).all() and np.isneginf(pi.log_prob([0], [0])).all()


def test_escort_probabilities_at_extreme_scales() -> None:
    pi = pg.EscortPolicy(2, 3, p=3.0, theta=[[1e200, 2e200, 0.0], [1e-200, 1e-200, 3e-200]])
    np.testing.assert_allclose(pi.probs(), [[1 / 9, 8 / 9, 0.0], [1 / 29, 1 / 29, 27 / 29]], rtol=1e-14)
    assert np.isfinite(pi.log_probs()[:, :2]).all()


@pytest.mark.parametrize("kind", ["escort", "direct"])
def test_pickle_round_trip(kind: str) -> None:
    pi: pg.SoftmaxPolicy = (pg.EscortPolicy(3, 2, p=2.5, theta=[[1.0, -2.0], [0.0, 1.0], [3.0, 3.0]]) if kind == "escort"
                            else pg.DirectPolicy(3, 2, theta=[[0.25, 0.75], [0.0, 1.0], [0.5, 0.5]]))
    for proto in (2, 5):
        back = pickle.loads(pickle.dumps(pi, protocol=proto))
        assert type(back) is type(pi) and repr(back) == repr(pi)
        np.testing.assert_array_equal(back.theta, pi.theta)
        np.testing.assert_array_equal(back.probs(), pi.probs())
        assert back.theta.flags.writeable
        if kind == "escort":
            assert back.p == 2.5  # type: ignore[attr-defined]
    mdp = _mdp(21, S=3, A=2)
    np.testing.assert_array_equal(pg.exact.gradient(mdp, pickle.loads(pickle.dumps(pi))), pg.exact.gradient(mdp, pi))


def test_readers_see_one_theta_while_another_thread_assigns() -> None:
    # every exact gradient is the gradient at one of the two values that another thread keeps
    # assigning, never a mix (the snapshot of theta behind the probabilities and dz/dtheta)
    mdp = _mdp(22)
    S, A = mdp.n_states, mdp.n_actions
    rng = np.random.default_rng(22)
    values = [_interior(rng, S, A), _boundary(rng, S, A)]
    refs = [pg.exact.gradient(mdp, pg.DirectPolicy(S, A, theta=v)) for v in values]
    pi = pg.DirectPolicy(S, A, theta=values[0])
    stop = threading.Event()

    def writer() -> None:
        k = 0
        while not stop.is_set():
            k ^= 1
            pi.theta = values[k]

    t = threading.Thread(target=writer)
    t.start()
    try:
        for _ in range(300):
            g = pg.exact.gradient(mdp, pi)
            assert any(np.array_equal(g, r) for r in refs)
    finally:
        stop.set()
        t.join()


# -- 4. the optimizers ------------------------------------------------------------------------------


def _unit_reward_mdp(seed: int, S: int = 6, A: int = 3, gamma: float = 0.9) -> pg.FiniteMDP:
    """Rewards in [0, 1] and a start distribution of full support (Agarwal et al.'s setting)."""
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(S), size=(S, A))
    return pg.FiniteMDP(P, rng.uniform(size=(S, A)), np.full(S, 1.0 / S), horizon=10, gamma=gamma)


def test_projected_gradient_ascent_converges_to_the_optimum() -> None:
    # Agarwal, Kakade, Lee & Mahajan (2021), direct parameterisation, rewards in [0, 1]:
    # - J = mu . V is beta-smooth with beta = 2 gamma A / (1 - gamma)^3, so projected ascent with
    #   step 1 / beta increases J by at least (beta / 2) |theta_{t+1} - theta_t|^2 every step;
    # - gradient domination: J* - J(pi) <= D / (1 - gamma) max_{pibar} <pibar - pi, grad J(pi)>,
    #   D = |d*_mu / mu|_inf (d* the normalised discounted visitation of an optimal policy);
    # - hence (their theorem) min_{t < T} J* - J_t <= 8 D sqrt(gamma S A / T) / (1 - gamma)^3.
    # All three are asserted at every step; the last is loose here, so the gap is also required to
    # shrink by 3x over the run, and a larger step (not covered by the theorem) to reach the
    # optimal vertex exactly.
    gamma, S, A = 0.9, 6, 3
    mdp = _unit_reward_mdp(3, S, A, gamma)
    best = pg.exact.optimal(mdp, "discounted")
    J_star = best.value
    d_star = (1 - gamma) * pg.exact.evaluate(mdp, pg.DirectPolicy(S, A, theta=best.probs()), "discounted").visitation
    D = float((d_star / mdp.mu0).max())
    beta = 2 * gamma * A / (1 - gamma) ** 3
    pi = pg.DirectPolicy(S, A)
    opt = pg.optim.GradientAscent(lr=1.0 / beta)
    T = 5000
    gaps = np.empty(T + 1)
    taken = np.zeros_like(pi.theta)  # the last step
    for t in range(T + 1):
        g, ev = pg.exact.gradient(mdp, pi, "discounted", return_evaluation=True)
        gaps[t] = J_star - ev.value
        dominated = float((g.max(axis=1) - (pi.theta * g).sum(axis=1)).sum())
        assert gaps[t] <= D / (1 - gamma) * dominated + 1e-12
        if t > 0:
            assert gaps[t - 1] - gaps[t] >= beta / 2 * float(np.sum(taken * taken)) - 1e-12
            assert gaps[:t].min() <= 8 * D * np.sqrt(gamma * S * A / t) / (1 - gamma) ** 3
        if t < T:
            taken = opt.step(pi, g)
            assert (pi.theta >= 0).all() and np.allclose(pi.theta.sum(axis=1), 1.0, atol=1e-12)
    assert gaps[0] > 1.0 and gaps[-1] < gaps[0] / 3
    fast = pg.DirectPolicy(S, A)
    opt = pg.optim.GradientAscent(lr=0.1)
    for _ in range(200):
        opt.step(fast, pg.exact.gradient(mdp, fast, "discounted"))
    np.testing.assert_array_equal(fast.theta, best.probs())


def test_optimizers_keep_a_direct_policy_on_the_simplex_and_improve_it() -> None:
    mdp = _unit_reward_mdp(4)
    S, A = mdp.n_states, mdp.n_actions
    J0 = pg.exact.evaluate(mdp, pg.DirectPolicy(S, A), "discounted").J
    opts: dict[str, Any] = {
        "adam": (pg.optim.Adam(lr=0.02), {}),
        "natural": (pg.optim.NaturalGradient(lr=0.02, damping=0.0, fisher="sampled"), "visits"),
        "armijo": (pg.optim.ArmijoLineSearch(lr=1.0, objective="discounted"), {"mdp": mdp}),
    }
    for name, (opt, ctx) in opts.items():
        pi = pg.DirectPolicy(S, A)
        last = J0
        for _ in range(30):
            g, ev = pg.exact.gradient(mdp, pi, "discounted", return_evaluation=True)
            kw = {"visits": ev.visitation} if ctx == "visits" else ctx
            opt.step(pi, g, **kw)
            assert (pi.theta >= 0).all() and np.allclose(pi.theta.sum(axis=1), 1.0, atol=1e-12), name
            J = pg.exact.evaluate(mdp, pi, "discounted").J
            if name == "armijo":  # sufficient increase along the projected step
                assert J >= last - 1e-12 and opt.last_values[1] == J
            last = J
        assert last > J0 + 0.1, name


def _exact_projection(x: np.ndarray) -> np.ndarray:
    """The projection of one row onto the simplex in rational arithmetic (of the float entries),
    rounded once at the end."""
    from fractions import Fraction

    u = sorted((Fraction(float(v)) for v in x), reverse=True)
    total, tau = Fraction(0), Fraction(0)
    for k, v in enumerate(u, start=1):
        total += v
        if v - (total - 1) / k > 0:
            tau = (total - 1) / k
    return np.array([float(max(Fraction(float(v)) - tau, Fraction(0))) for v in x])


def test_projected_steps_far_from_the_simplex_land_on_it() -> None:
    # rows of theta + step about 1e7 away from the simplex with several entries within 1 of the
    # largest: the projection is exact to rounding and on the simplex (any row offset cancels)
    rng = np.random.default_rng(32)
    S, A = 6, 4
    step = 1e7 * rng.integers(-1, 2, size=(S, 1)) + rng.random(size=(S, A))
    for name, opt, kw in (("gradient ascent", pg.optim.GradientAscent(lr=1.0), {}),
                          ("euclidean mirror descent", pg.optim.PolicyMirrorDescent(lr=1.0, mirror="euclidean"),
                           {"advantages": step})):
        pi = pg.DirectPolicy(S, A)
        x = pi.theta + step
        opt.step(pi, step if not kw else np.zeros((S, A)), **kw)
        want = np.array([_exact_projection(row) for row in x])
        np.testing.assert_allclose(pi.theta, want, rtol=0, atol=4 * np.finfo(float).eps, err_msg=name)
    # a row whose differences leave the float64 range: the projection is the vertex of its largest entry
    pi = pg.DirectPolicy(2, 3)
    pg.optim.GradientAscent(lr=1.0).step(pi, [[1e308, -1e308, 0.0], [0.0, 1e308, -1e308]])
    np.testing.assert_array_equal(pi.theta, [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def test_armijo_projected_condition_and_no_step_at_a_vertex_optimum() -> None:
    mdp = _unit_reward_mdp(5)
    best = pg.exact.optimal(mdp, "discounted")
    pi = pg.DirectPolicy(mdp.n_states, mdp.n_actions, theta=best.probs())
    opt = pg.optim.ArmijoLineSearch(lr=1.0, objective="discounted")
    before = pi.theta.copy()
    d = opt.step(pi, pg.exact.gradient(mdp, pi, "discounted"), mdp=mdp)
    # at the optimal vertex every feasible step lowers J or stays: no step is taken
    assert opt.last_lr == 0.0 and not d.any()
    np.testing.assert_array_equal(pi.theta, before)


def test_natural_gradient_of_a_direct_policy() -> None:
    # in the interior F_s = w(s) (diag(1/theta_s) - 1 1^T), so F x = w A gives x = theta (A + c)
    # with a constant c per state: x / theta - A is constant in each row
    mdp = _unit_reward_mdp(6)
    theta = _interior(np.random.default_rng(6), mdp.n_states, mdp.n_actions)
    pi = pg.DirectPolicy(*theta.shape, theta=theta)
    x = pg.exact.natural_gradient(mdp, pi, "discounted")
    A = pg.exact.evaluate(mdp, pi, "discounted").advantages
    r = x / theta - A
    np.testing.assert_allclose(r - r.mean(axis=1, keepdims=True), 0.0, atol=1e-9)
    F = pg.exact.fisher(mdp, pi, "discounted")
    g = pg.exact.gradient(mdp, pi, "discounted")
    np.testing.assert_allclose(F @ x.ravel(), g.ravel(), rtol=0, atol=1e-9 * np.abs(g).max())
    # the blockwise solve agrees with the dense one (damped and pseudo-inverse)
    for damping in (0.0, 0.1):
        dense = np.linalg.lstsq(F + damping * np.eye(F.shape[0]), g.ravel(), rcond=1e-10)[0] if damping else \
            np.linalg.pinv(F, rcond=1e-10) @ g.ravel()
        np.testing.assert_allclose(pg.exact.natural_gradient(mdp, pi, "discounted", damping=damping).ravel(), dense,
                                   rtol=1e-7, atol=1e-9)


def test_escort_natural_gradient_and_fisher() -> None:
    mdp = _mdp(7)
    pi = pg.EscortPolicy(mdp.n_states, mdp.n_actions, p=2.0,
                         theta=_escort_theta(np.random.default_rng(8), mdp.n_states, mdp.n_actions))
    F = pg.exact.fisher(mdp, pi)
    w = pg.exact.fisher_weights(mdp, pi)
    S, A = pi.theta.shape
    psi = pi.grad_log_prob(np.repeat(np.arange(S), A), np.tile(np.arange(A), S)).reshape(S, A, -1)
    np.testing.assert_allclose(F, np.einsum("s,sa,sap,saq->pq", w, pi.probs(), psi, psi), rtol=1e-12, atol=1e-14)
    g = pg.exact.gradient(mdp, pi)
    x = pg.exact.natural_gradient(mdp, pi)
    np.testing.assert_allclose(x.ravel(), np.linalg.pinv(F, rcond=1e-10) @ g.ravel(), rtol=1e-7, atol=1e-10)


def test_policy_mirror_descent_on_a_direct_policy() -> None:
    # the Euclidean map is projected Q-ascent on theta itself, the KL map the exponentiated one;
    # both give the tabular softmax's PMD policy
    mdp = _unit_reward_mdp(7)
    S, A = mdp.n_states, mdp.n_actions
    for mirror in ("euclidean", "kl"):
        direct, soft = pg.DirectPolicy(S, A), pg.TabularSoftmax(S, A)
        o1, o2 = pg.optim.PolicyMirrorDescent(lr=0.5, mirror=mirror), pg.optim.PolicyMirrorDescent(lr=0.5, mirror=mirror)
        for _ in range(5):
            adv = pg.exact.evaluate(mdp, direct, "discounted").advantages
            before = direct.theta.copy()
            o1.step(direct, np.zeros((S, A)), mdp=mdp)
            o2.step(soft, np.zeros((S, A)), mdp=mdp)
            if mirror == "euclidean":
                np.testing.assert_allclose(direct.theta, pg.optim.project_simplex(before + 0.5 * adv), atol=1e-15)
            np.testing.assert_allclose(direct.theta, soft.probs(), atol=1e-12)


# -- 5. the simplex projection against a brute-force quadratic program --------------------------------


def _brute_force_projection(x: np.ndarray) -> np.ndarray:
    """min |p - x|^2 over the simplex by enumerating supports K: the minimiser over the affine
    hull of the face K is x_K - (sum x_K - 1) / |K|; the best of the feasible ones (p_K >= 0) is
    the projection (the projection lies in the relative interior of some face, where it is that
    face's affine minimiser)."""
    n = x.size
    best, best_d = None, np.inf
    for k in range(1, n + 1):
        for K in itertools.combinations(range(n), k):
            idx = list(K)
            p = np.zeros(n)
            p[idx] = x[idx] - (x[idx].sum() - 1.0) / k
            if (p >= -1e-15).all():
                d = float(np.sum((p - x) ** 2))
                if d < best_d:
                    best, best_d = p, d
    assert best is not None
    return best


def test_project_simplex_against_support_enumeration() -> None:
    rng = np.random.default_rng(30)
    for n in range(1, 6):
        for scale in (0.1, 1.0, 10.0):
            X = rng.normal(size=(40, n)) * scale
            P = pg.optim.project_simplex(X)
            for x, p in zip(X, P, strict=True):
                np.testing.assert_allclose(p, _brute_force_projection(x), rtol=0, atol=1e-12 * max(1.0, scale))
                assert p.min() >= 0.0 and abs(p.sum() - 1.0) < 1e-12 * n * max(1.0, scale)
    # ties, points on the simplex, and batches of any leading shape
    np.testing.assert_allclose(pg.optim.project_simplex([[2.0, 2.0, 0.0]]), [[0.5, 0.5, 0.0]])
    on = rng.dirichlet(np.ones(4), size=5)
    np.testing.assert_allclose(pg.optim.project_simplex(on), on, atol=1e-15)
    assert pg.optim.project_simplex(rng.normal(size=(2, 3, 4))).shape == (2, 3, 4)


def test_project_simplex_against_scipy() -> None:
    from scipy.optimize import minimize

    rng = np.random.default_rng(31)
    for n in (6, 8):
        for _ in range(5):
            x = rng.normal(size=n)
            res = minimize(lambda p, x=x: float(np.sum((p - x) ** 2)), np.full(n, 1.0 / n),
                           jac=lambda p, x=x: 2 * (p - x), bounds=[(0.0, None)] * n, method="SLSQP",
                           constraints=[{"type": "eq", "fun": lambda p: p.sum() - 1.0}], options={"ftol": 1e-14})
            assert res.success
            p = pg.optim.project_simplex(x)
            np.testing.assert_allclose(p, res.x, atol=1e-6)
            assert np.sum((p - x) ** 2) <= res.fun + 1e-12


# -- 6. bad inputs ------------------------------------------------------------------------------------


def test_scores_beyond_the_float64_range_are_a_value_error() -> None:
    # p / theta = 2e308 overflows: the moments and the optimal baseline report it as a ValueError
    # (pytest turns a stray RuntimeWarning into an error)
    mdp = _mdp(15)
    theta = np.ones((mdp.n_states, mdp.n_actions))
    theta[0, 1] = 1e-308
    pi = pg.EscortPolicy(mdp.n_states, mdp.n_actions, theta=theta)
    with pytest.raises(ValueError, match="overflowed"):
        pg.exact.moments(mdp, pi)
    with pytest.raises(ValueError, match="overflowed"):
        pg.policy_gradient(pi, mdp.sample(pi, 20, seed=0), baseline="optimal")


def test_bad_inputs() -> None:
    for p in (0.5, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="p must be a finite number >= 1"):
            pg.EscortPolicy(2, 2, p=p)
    with pytest.raises(TypeError):
        pg.EscortPolicy(2, 2, p="2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="row 1 is all zeros"):
        pg.EscortPolicy(2, 2, theta=[[1.0, 0.0], [0.0, 0.0]])
    with pytest.raises(ValueError, match="theta must have shape"):
        pg.EscortPolicy(2, 2, theta=[1.0, 2.0])
    with pytest.raises(ValueError, match="n_states"):
        pg.DirectPolicy(0, 2)
    with pytest.raises(ValueError, match=r"theta\[0, 1\] = -0.1.*project_simplex"):
        pg.DirectPolicy(2, 2, theta=[[1.1, -0.1], [0.5, 0.5]])
    with pytest.raises(ValueError, match="row 1 sums to 0.9.*project_simplex"):
        pg.DirectPolicy(2, 2, theta=[[0.5, 0.5], [0.5, 0.4]])
    with pytest.raises(ValueError, match="theta must be finite"):
        pg.DirectPolicy(2, 2, theta=[[np.nan, 0.5], [0.5, 0.5]])
    # a rejected value (also an in-place one) leaves theta as it was
    pi = pg.DirectPolicy(2, 2)
    with pytest.raises(ValueError, match="simplex"):
        pi.theta += 0.25
    np.testing.assert_array_equal(pi.theta, 0.5)
    esc = pg.EscortPolicy(1, 2)
    with pytest.raises(ValueError, match="all zeros"):
        esc.theta *= 0.0
    np.testing.assert_array_equal(esc.theta, 1.0)
    with pytest.raises(AttributeError):
        esc.p = 3.0  # type: ignore[misc]
    # the closed-form updates take the policies they update in closed form
    mdp = _unit_reward_mdp(8, S=2, A=2)
    with pytest.raises(TypeError, match="TabularSoftmax or a pgfast.DirectPolicy, got EscortPolicy"):
        pg.optim.PolicyMirrorDescent().step(pg.EscortPolicy(2, 2), np.zeros((2, 2)), mdp=mdp)
    with pytest.raises(TypeError, match="TabularSoftmax policy in closed form, got DirectPolicy"):
        pg.optim.NaturalPolicyGradient().step(pg.DirectPolicy(2, 2), np.zeros((2, 2)), mdp=mdp)
    with pytest.raises(ValueError, match="sized for"):
        pg.exact.gradient(_mdp(0), pg.DirectPolicy(2, 2))
    # an escort gradient beyond the float64 range (theta next to 0) is named, not returned as inf
    tiny = pg.EscortPolicy(2, 2, p=1.0, theta=[[1e-310, 3e-310], [1.0, 1.0]])
    mdp2 = _mdp(1, "average_reward", S=2, A=2)
    with pytest.raises(ValueError, match="exact policy gradient"):
        pg.exact.gradient(mdp2, tiny)


def test_a_subclass_with_logits_of_its_own_uses_them() -> None:
    # the inherited tables and hooks describe p log|theta|, not these logits: the tables come from
    # logits(), and what needs a hook of the class raises a TypeError naming it
    class Flat(pg.DirectPolicy):
        def logits(self) -> np.ndarray:
            return np.zeros((self.n_states, self.n_actions))

    pi = Flat(2, 3, theta=[[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    np.testing.assert_allclose(pi.probs(), 1 / 3)
    np.testing.assert_allclose(pi.log_probs(), np.log(1 / 3))
    mdp = _mdp(9, "average_reward", S=2, A=3)
    assert np.isfinite(pg.exact.evaluate(mdp, pi).J)
    with pytest.raises(TypeError, match="_logit_vjp"):
        pg.exact.gradient(mdp, pi)
    with pytest.raises(TypeError, match="_kernel_tables"):
        pg.policy_gradient(pi, mdp=mdp, n=10, seed=0)


def test_the_entropy_gradient_of_a_direct_policy_at_a_zero_probability_is_refused() -> None:
    # d/dtheta of -theta log theta is +inf at theta = 0: no finite gradient to return
    mdp = pg.envs.bandit([0.1, 0.5, 0.3])
    pi = pg.DirectPolicy(1, 3, theta=[[0.5, 0.0, 0.5]])
    with pytest.raises(ValueError, match=r"regularizer=Entropy\(tau=0.1\).*pi\(a=1\|s=0\) = 0"):
        pg.exact.gradient(mdp, pi, regularizer=pg.Entropy(0.1))
    inner = pg.DirectPolicy(1, 3, theta=[[0.5, 1e-6, 0.5 - 1e-6]])
    assert np.all(np.isfinite(pg.exact.gradient(mdp, inner, regularizer=pg.Entropy(0.1))))
    assert np.all(np.isfinite(pg.exact.gradient(mdp, pi)))  # unregularised: defined on the boundary


def test_the_escort_score_next_to_a_tiny_entry_is_finite() -> None:
    # p / theta overflows at theta = 1e-308 while pi there underflows to 0: the entry is 0, not nan
    pi = pg.EscortPolicy(1, 2, theta=[[1.0, 1e-308]])
    g = pi.grad_log_prob([0], [0])
    assert np.all(np.isfinite(g))
    np.testing.assert_array_equal(g[0], [[0.0, 0.0]])  # p (1 - pi(0)) / theta_0 with pi(0) = 1, and the limit 0
