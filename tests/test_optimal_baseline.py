"""pg.policy_gradient(..., baseline="optimal"): the per-coordinate optimal constant baseline
(per step for reward-to-go weights), estimated from the batch leave-one-out.

1. The definition, on hand-written and small random batches, against a loop over trajectories.
2. Unbiasedness against pg.exact.gradient (one large batch per case, and batches of two).
3. The per-trajectory moments against pg.exact.moments(..., baseline="optimal").
4. Lower variance than no baseline where the exact moments say so, measured on the batch.
5. Reproducibility (thread counts, blocks of coordinates) and rejected inputs.

Statistical tolerances follow tests/test_estimators.py: two-sided z-tests on the estimator's own
standard errors, Bonferroni-corrected for the family-wise rate ALPHA; the leave-one-out baseline
makes the trajectories of a batch weakly dependent (covariances O(1/N) of the variance).
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any

import numpy as np
import pytest
from helpers import ALPHA, Family, k_two_sided, random_mdp, random_policy, random_softmax, score_by_definition, tiny_problem
from test_estimators import N_BIG, UNBIASED_CASES
from test_moments import _policy, _tiny_mdp, _z_test_moments

import pgfast as pg

WEIGHTS = ["reward_to_go", "return"]


# -- 1. the definition ----------------------------------------------------------------------------


def _loo_ratio(num: np.ndarray, den: np.ndarray, i: int) -> np.ndarray:
    """sum_{j != i} num_j / sum_{j != i} den_j, 0 where the denominator is 0, by a loop over j."""
    top, bottom = np.zeros(num.shape[1:]), np.zeros(den.shape[1:])
    for j in range(num.shape[0]):
        if j != i:
            top += num[j]
            bottom += den[j]
    return np.divide(top, bottom, out=np.zeros_like(top), where=bottom > 0)


def _rows_by_definition(pi: pg.SoftmaxPolicy, traj: pg.Trajectories, weights: str, gamma: float) -> np.ndarray:
    """Per-trajectory gradients with the leave-one-out optimal baseline, by loops: Z[i, h] is the
    score sum of the steps t <= h (the whole sum after the episode's end)."""
    N, H = traj.rewards.shape
    Z = np.zeros((N, H, pi.n_params))
    r = np.zeros((N, H))
    for i in range(N):
        acc = np.zeros(pi.n_params)
        for h in range(H):
            if h < traj.lengths[i]:
                acc = acc + score_by_definition(pi, int(traj.states[i, h]), int(traj.actions[i, h])).ravel()
                r[i, h] = traj.rewards[i, h]
            Z[i, h] = acc
    disc = gamma ** np.arange(H)
    rows = np.zeros((N, pi.n_params))
    if weights == "return":
        Y, G = Z[:, -1], r @ disc
        for i in range(N):
            rows[i] = Y[i] * (G[i] - _loo_ratio(Y**2 * G[:, None], Y**2, i))
        return rows
    for i in range(N):
        for h in range(H):
            b = _loo_ratio(Z[:, h] ** 2 * r[:, h, None], Z[:, h] ** 2, i)
            rows[i] += disc[h] * Z[i, h] * (r[i, h] - b)
    return rows


@pytest.mark.parametrize("weights", WEIGHTS)
def test_rows_by_definition_on_a_hand_written_batch(weights: str) -> None:
    # three episodes of lengths 3, 2 and 1; state 2 is terminal (its parameters are never moved:
    # their baselines are 0 / 0 -> 0 and their gradients exactly 0)
    mdp, pi, traj = tiny_problem()
    est = pg.policy_gradient(pi, traj, weights=weights, baseline="optimal", per_trajectory=True)
    expected = _rows_by_definition(pi, traj, weights, mdp.gamma)
    assert est.per_trajectory is not None
    np.testing.assert_allclose(est.per_trajectory, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(est.grad.ravel(), expected.mean(axis=0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(est.stderr.ravel(), expected.std(axis=0, ddof=1) / np.sqrt(3), rtol=1e-10, atol=1e-14)
    assert (est.grad[2] == 0.0).all() and (est.stderr[2] == 0.0).all()
    assert est.value == pytest.approx(traj.returns().mean(), rel=1e-14)
    assert est.n == 3 and est.n_steps == 6


@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize("kind", ["tabular", "linear"])
def test_rows_by_definition_on_random_batches(rng: np.random.Generator, weights: str, kind: str) -> None:
    mdp = random_mdp(rng, S=4, A=3, successors=3, n_terminal=1, horizon=5, gamma=0.9)
    pi = random_softmax(kind, mdp, rng)
    for n, seed in ((2, 1), (9, 2)):
        traj = mdp.sample(pi, n, seed=seed)
        for gamma in (None, 0.6):
            est = pg.policy_gradient(pi, traj, weights=weights, baseline="optimal", gamma=gamma, per_trajectory=True)
            expected = _rows_by_definition(pi, traj, weights, mdp.gamma if gamma is None else gamma)
            assert est.per_trajectory is not None
            np.testing.assert_allclose(est.per_trajectory, expected, rtol=1e-11, atol=1e-13)
    # without per-trajectory rows or standard errors: the same gradient
    full = pg.policy_gradient(pi, traj, weights=weights, baseline="optimal")
    bare = pg.policy_gradient(pi, traj, weights=weights, baseline="optimal", stderr=False)
    np.testing.assert_array_equal(bare.grad, full.grad)
    assert np.isnan(bare.stderr).all() and np.isfinite(full.stderr).all()


# -- 2. unbiasedness ------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "S", "A", "H", "n_terminal", "gamma", "transition_rewards"), UNBIASED_CASES)
def test_optimal_baseline_is_unbiased(
    rng: np.random.Generator, kind: str, S: int, A: int, H: int, n_terminal: int, gamma: float, transition_rewards: bool
) -> None:
    mdp = random_mdp(rng, S=S, A=A, successors=4, n_terminal=n_terminal, horizon=H, gamma=gamma,
                     transition_rewards=transition_rewards)
    pi = random_softmax(kind, mdp, rng)
    traj = mdp.sample(pi, N_BIG, seed=202)
    fam = Family()
    for g in (None, 0.5):  # the MDP's gamma and the gamma= override
        exact = pg.exact.gradient(mdp, pi, gamma=g)
        J = pg.exact.evaluate(mdp, pi, gamma=g).J
        for weights in WEIGHTS:
            fam.grad(f"{weights}+optimal gamma={g}", pg.policy_gradient(pi, traj, weights=weights, baseline="optimal",
                                                                        gamma=g), exact, J)
    fam.check()


def test_optimal_baseline_is_unbiased_for_batches_of_two(rng: np.random.Generator) -> None:
    # Leave-one-out: even at N = 2 each trajectory's baseline is a function of the other one only.
    # The mean over M independent pairs must agree with the exact gradient within k standard errors
    # of that mean (Bonferroni over every coordinate of both weights). Power: the baseline that
    # includes the trajectory itself, b_k = sum_j Y_jk^2 G_j / sum_j Y_jk^2 over both trajectories
    # (return weights), is biased, and the same check must reject it.
    mdp = random_mdp(rng, S=3, A=2, successors=3, n_terminal=1, horizon=4)
    pi = random_policy(rng, mdp)
    exact = pg.exact.gradient(mdp, pi).ravel()
    M = 6000
    big = mdp.sample(pi, 2 * M, seed=43)
    pairs = [pg.Trajectories(mdp, big.states[i : i + 2], big.actions[i : i + 2], big.rewards[i : i + 2],
                             big.lengths[i : i + 2], big.final_states[i : i + 2]) for i in range(0, 2 * M, 2)]
    estimates = {w: np.array([pg.policy_gradient(pi, p, weights=w, baseline="optimal", stderr=False).grad.ravel()
                              for p in pairs]) for w in WEIGHTS}
    _, Y = pg.score(pi, big, np.ones(big.rewards.shape), per_trajectory=True)
    G = big.returns()
    Yp, Gp = Y.reshape(M, 2, -1), G.reshape(M, 2, 1)
    den = (Yp**2).sum(axis=1, keepdims=True)
    b_in = np.divide((Yp**2 * Gp).sum(axis=1, keepdims=True), den, out=np.zeros_like(den), where=den > 0)
    naive = (Yp * (Gp - b_in)).mean(axis=1)

    def max_z(est: np.ndarray) -> float:
        se = est.std(axis=0, ddof=1) / np.sqrt(M)
        never = se == 0.0  # parameters of the terminal state: never visited, exactly 0
        np.testing.assert_array_equal(est.mean(axis=0)[never], exact[never])
        return float(np.abs((est.mean(axis=0) - exact)[~never] / se[~never]).max())

    k = k_two_sided(len(estimates) * exact.size)
    for name, est in estimates.items():
        assert max_z(est) < k, f"{name}+optimal at N = 2: max |z| {max_z(est):.2f} >= {k:.2f}"
    assert max_z(naive) > k, "the check cannot tell a self-including baseline from a leave-one-out one"


# -- 3. the exact moments ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tabular", "linear", "mlp"])
@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize(("terminal", "gamma"), [(False, 1.0), (True, 0.9)])
def test_per_trajectory_moments_match_the_exact_moments(kind: str, weights: str, terminal: bool, gamma: float) -> None:
    # The leave-one-out baseline differs from the exact b* by O(1/sqrt(N)), which changes each
    # trajectory's variance by O(1/N): far below the sampling error of the variance at N = 20 000.
    mdp = _tiny_mdp(terminal, gamma, 4, seed=2)
    policy = _policy(kind, seed=3)
    N = 20_000
    traj = mdp.sample(policy, N, seed=13)
    est = pg.policy_gradient(policy, traj, weights=weights, baseline="optimal", per_trajectory=True)
    m = pg.exact.moments(mdp, policy, weights=weights, baseline="optimal")
    assert est.per_trajectory is not None
    _z_test_moments(est.per_trajectory, m)
    # the estimator's standard errors estimate the exact moments' prediction for N trajectories
    np.testing.assert_allclose(est.stderr, m.stderr(N), rtol=0.1, atol=1e-12)


@pytest.mark.parametrize("weights", WEIGHTS)
def test_variance_converges_to_the_exact_one_as_n_grows(weights: str) -> None:
    # The per-trajectory variance of batches of growing N, against the exact variance of the
    # estimator with the exact b*: the z-score of each coordinate's sample variance (standard error
    # from its sampling distribution, sqrt((mu4 - s^4) / N)) stays within the Bonferroni bound, and
    # the relative gap shrinks like the sampling error.
    mdp = _tiny_mdp(True, 0.9, 4, seed=4)
    policy = _policy("tabular", seed=5)
    m = pg.exact.moments(mdp, policy, weights=weights, baseline="optimal")
    var = m.variance.ravel()
    live = var > 1e-12 * var.max()
    sizes = (2_000, 20_000, 200_000)
    k = k_two_sided(len(sizes) * int(live.sum()))
    gaps = []
    for n in sizes:
        rows = pg.policy_gradient(policy, mdp.sample(policy, n, seed=n), weights=weights, baseline="optimal",
                                  per_trajectory=True).per_trajectory
        assert rows is not None
        s2 = rows.var(axis=0, ddof=1)
        mu4 = ((rows - rows.mean(axis=0)) ** 4).mean(axis=0)
        z = (s2 - var)[live] / np.sqrt((mu4 - s2 * s2)[live] / n)
        assert np.abs(z).max() < k, (n, z)
        gaps.append(float(np.abs(s2 / np.where(live, var, 1.0) - 1.0)[live].max()))
    assert gaps[-1] < gaps[0], gaps


# -- 4. variance reduction ----------------------------------------------------------------------------


def test_lower_variance_than_no_baseline(rng: np.random.Generator) -> None:
    # On an MDP whose exact moments give the optimal baseline a clearly smaller total variance than
    # no baseline (and, for return weights, than the mean baseline), the batch shows it: with
    # D_i = ||x_i^b - mean^b||^2 - ||x_i^a - mean^a||^2 (x the per-trajectory gradients), mean
    # Var_b - Var_a, a one-sided z-test over the trajectories, Bonferroni over the claims.
    mdp = _tiny_mdp(True, 0.9, 4, seed=2)
    policy = _policy("tabular", seed=3)
    claims = [("reward_to_go", None), ("return", None), ("return", "mean")]
    for weights, other in claims:  # the premise, from the exact moments
        opt = pg.exact.moments(mdp, policy, weights=weights, baseline="optimal").trace
        assert opt < 0.9 * pg.exact.moments(mdp, policy, weights=weights, baseline=other).trace
    traj = mdp.sample(policy, 50_000, seed=17)
    N = traj.n

    def spread(weights: str, baseline: Any) -> np.ndarray:
        rows = pg.policy_gradient(policy, traj, weights=weights, baseline=baseline, per_trajectory=True).per_trajectory
        assert rows is not None
        out: np.ndarray = ((rows - rows.mean(axis=0)) ** 2).sum(axis=1)
        return out

    k = NormalDist().inv_cdf(1.0 - ALPHA / len(claims))
    for weights, other in claims:
        D = spread(weights, other) - spread(weights, "optimal")
        z = D.mean() / (D.std(ddof=1) / np.sqrt(N))
        assert z > k, f"{weights}: optimal vs {other}: z = {z:.2f} <= {k:.2f}"


# -- 5. reproducibility and rejected inputs -------------------------------------------------------------


@pytest.mark.parametrize("weights", WEIGHTS)
def test_same_bits_for_every_thread_count(weights: str) -> None:
    rng = np.random.default_rng(3)
    mdp = random_mdp(rng, S=20, A=4, successors=5, n_terminal=2, horizon=30, gamma=0.97)
    for pi in (random_policy(rng, mdp), random_softmax("linear", mdp, rng)):
        traj = mdp.sample(pi, 3000, seed=9)
        assert np.abs(traj.rewards[traj.mask]).min() > 0.0  # a reward at every step
        ref = pg.policy_gradient(pi, traj, weights=weights, baseline="optimal", per_trajectory=True, threads=1)
        assert ref.per_trajectory is not None
        for threads in (2, 3, 8, None):
            est = pg.policy_gradient(pi, traj, weights=weights, baseline="optimal", per_trajectory=True, threads=threads)
            assert est.per_trajectory is not None
            for a, b in ((est.grad, ref.grad), (est.stderr, ref.stderr), (est.per_trajectory, ref.per_trajectory)):
                np.testing.assert_array_equal(a, b)
            assert (est.value, est.value_stderr) == (ref.value, ref.value_stderr)


@pytest.mark.parametrize("weights", WEIGHTS)
def test_blocks_of_coordinates_give_the_same_rows(monkeypatch: pytest.MonkeyPatch, weights: str) -> None:
    # the coordinates are processed in blocks sized by a memory budget; every block size gives the
    # same per-trajectory gradients (each coordinate's arithmetic is independent of the others)
    mdp = random_mdp(np.random.default_rng(5), S=7, A=3, successors=4, n_terminal=1, horizon=6, gamma=0.95)
    pi = random_policy(np.random.default_rng(6), mdp)
    traj = mdp.sample(pi, 500, seed=1)
    ref = pg.policy_gradient(pi, traj, weights=weights, baseline="optimal", per_trajectory=True)
    assert ref.per_trajectory is not None
    for coords in (1, 4, 20):  # blocks of 1, 4 and 20 coordinates (21 in all)
        monkeypatch.setattr(pg._estimators, "_OPTIMAL_BLOCK_BYTES", 8 * (10 * traj.n + 22) * coords)
        est = pg.policy_gradient(pi, traj, weights=weights, baseline="optimal", per_trajectory=True)
        assert est.per_trajectory is not None
        np.testing.assert_array_equal(est.per_trajectory, ref.per_trajectory)
        np.testing.assert_allclose(est.grad, ref.grad, rtol=1e-13, atol=1e-15)


def test_bad_inputs(small: Any) -> None:
    mdp, pi, traj = small
    with pytest.raises(ValueError, match="fused estimator .*does not take it"):
        pg.policy_gradient(pi, mdp=mdp, n=100, seed=0, baseline="optimal")
    with pytest.raises(ValueError, match="does not take it"):
        pg.partial_gradient(pi, mdp=mdp, n=100, seed=0, lo=0, hi=100, baseline="optimal")
    with pytest.raises(ValueError, match="at least 2"):
        pg.policy_gradient(pi, mdp.sample(pi, 1, seed=0), baseline="optimal")
    for bad in ("Optimal", "optimum"):
        with pytest.raises(ValueError, match="'optimal'"):
            pg.policy_gradient(pi, traj, baseline=bad)
    with pytest.raises(ValueError, match="gamma"):
        pg.policy_gradient(pi, traj, baseline="optimal", gamma=-0.1)
    with pytest.raises(TypeError, match="Trajectories"):
        pg.policy_gradient(pi, traj.states, baseline="optimal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sized for"):
        pg.policy_gradient(pg.TabularSoftmax(mdp.n_states + 1, mdp.n_actions), traj, baseline="optimal")


@pytest.mark.parametrize(("field", "value"), [("states", 7), ("states", -2), ("actions", 2), ("actions", -2)])
def test_out_of_range_steps_of_a_hand_made_batch(field: str, value: int) -> None:
    mdp, pi, traj = tiny_problem()
    arrays = {"states": traj.states.copy(), "actions": traj.actions.copy()}
    arrays[field][0, 1] = value  # a real step
    bad = pg.Trajectories(mdp, arrays["states"], arrays["actions"], traj.rewards.copy(), traj.lengths.copy(),
                          traj.final_states.copy())
    with pytest.raises(ValueError, match=field[:-1]):
        pg.policy_gradient(pi, bad, baseline="optimal")


@pytest.mark.parametrize("weights", WEIGHTS)
def test_overflow_is_a_value_error(weights: str) -> None:
    P = np.full((2, 2, 2), 0.5)
    mdp = pg.FiniteMDP(P, [[1e200, 0.0], [0.0, -1e200]], [1.0, 0.0], horizon=3)
    pi = pg.TabularSoftmax(2, 2)
    with pytest.raises(ValueError, match="float64 range"):
        pg.policy_gradient(pi, mdp.sample(pi, 50, seed=0), weights=weights, baseline="optimal")


def test_train_with_the_optimal_baseline_is_the_stored_loop() -> None:
    # pg.train estimates "optimal" on a stored batch: the same theta and records as the loop by hand
    mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", horizon=20)
    pi = pg.TabularSoftmax(mdp.n_states, mdp.n_actions)
    hist = pg.train(mdp, pi, optimizer=pg.optim.Adam(0.2), iterations=4, batch=300, seed=5, baseline="optimal",
                    progress=False, exact_eval=False)
    by_hand = pg.TabularSoftmax(mdp.n_states, mdp.n_actions)
    opt = pg.optim.Adam(0.2)
    for it in range(1, 5):
        traj = mdp.sample(by_hand, 300, seed=int(np.random.SeedSequence([5, it]).generate_state(1, dtype=np.uint64)[0]))
        est = pg.policy_gradient(by_hand, traj, baseline="optimal", stderr=False)
        assert hist["J_estimate"][it - 1] == est.value
        opt.step(by_hand, est.grad)
    np.testing.assert_array_equal(pi.theta, by_hand.theta)
    with pytest.raises(ValueError, match="'optimal'"):
        pg.train(mdp, pi, optimizer=pg.optim.Adam(0.2), iterations=1, batch=10, seed=0, baseline="best", progress=False)
