"""Off-policy estimators: pg.importance_weights, pg.off_policy_gradient and pg.off_policy_value
from a batch of a behavior policy (given as a policy or as logged log-probabilities).

1. Self-normalised importance sampling is consistent: within Bonferroni-corrected z-tests on
   delta-method standard errors (the statistical conventions of tests/test_estimators.py).
2. Hand-computed ratios, weights and values on a hand-written batch.
3. A behavior equal to the target gives the on-policy estimates.
4. Rejected inputs: zero behavior probabilities on logged actions, bad logged log-probabilities,
   ratios beyond the float64 range; self-normalised weights of ratios that underflow.

(The off-policy estimators are also in the unbiasedness family of tests/test_estimators.py and in
its checks of every estimator's entry point.)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from helpers import (
    Family,
    assert_close,
    hand_grad,
    hand_rows,
    logged_log_probs,
    nearby_behavior,
    random_mdp,
    random_policy,
    random_softmax,
    tiny_behavior,
    tiny_problem,
)

import pgfast as pg

EPS = float(np.finfo(np.float64).eps)
N_BIG = 100_000  # trajectories of the large batches (H <= 6: 6e5 steps, milliseconds to sample)


def _influence_se(infl: np.ndarray) -> np.ndarray:
    return np.asarray(infl.std(axis=0, ddof=1) / np.sqrt(infl.shape[0]))


def test_self_normalised_is_consistent(rng: np.random.Generator) -> None:
    # Self-normalised importance sampling is a ratio of means, biased by O(1/N). Its delta-method
    # standard error is that of the mean of its influence function psi_i (computed below from the
    # batch). The O(1/N) bias over the O(1/sqrt(N)) standard error is O(1/sqrt(N)) ~ 0.003 times
    # a moment ratio of order 1 here (bounded ratios, see nearby_behavior), so the ordinary
    # Bonferroni z-check still holds for it: the tolerance is k delta-method standard errors.
    mdp = random_mdp(rng, S=5, A=3, successors=4, n_terminal=1, horizon=5, gamma=0.9, transition_rewards=True)
    pi = random_policy(rng, mdp)
    exact, J = pg.exact.gradient(mdp, pi), pg.exact.evaluate(mdp, pi).J
    beta = nearby_behavior(pi, rng)
    off = mdp.sample(beta, N_BIG, seed=21)
    N, H, g = off.n, off.horizon, mdp.gamma
    disc = g ** np.arange(H)
    rho = pg.importance_weights(pi, beta, off)
    c = pg.importance_weights(pi, beta, off, per_decision=True)  # past the end: the full ratio
    m_t = c.mean(axis=0)
    fam = Family()

    # trajectory ratios: g = sum rho X / sum rho, influence (rho_i / rho_bar) (X_i - g)
    for weights in ("reward_to_go", "return"):
        est = pg.off_policy_gradient(pi, beta, off, weights=weights, per_decision=False, self_normalized=True,
                                     per_trajectory=True)
        rows = est.per_trajectory
        assert rows is not None
        infl = rows - (rho / rho.mean())[:, None] * est.grad.ravel()[None, :]
        fam.add(f"SN trajectory {weights}", est.grad.ravel(), _influence_se(infl), exact.ravel())

    # per-decision, reward-to-go: g = sum_t' B_t' with B_t' = mean_i(gamma^t' r c_t' Psi_t') / m_t',
    # Psi_t' = sum_{t<=t'} grad log pi_t; influence rows_i - sum_t' (c_{i,t'} / m_t') B_t'
    est = pg.off_policy_gradient(pi, beta, off, per_decision=True, self_normalized=True, per_trajectory=True)
    assert est.per_trajectory is not None
    B = []
    for tp in range(H):
        W = np.zeros((N, H))
        W[:, : tp + 1] = (disc[tp] * off.rewards[:, tp] * c[:, tp] / m_t[tp])[:, None]
        B.append(np.ravel(pg.score(pi, off, W)))
    Bm = np.array(B)  # (H, n_params)
    np.testing.assert_allclose(Bm.sum(axis=0), est.grad.ravel(), rtol=1e-10, atol=1e-12)
    infl = est.per_trajectory - (c / m_t) @ Bm
    fam.add("SN per-decision rtg", est.grad.ravel(), _influence_se(infl), exact.ravel())

    # values: trajectory sum rho G / sum rho; per-decision sum_t mean(gamma^t r_t c_t) / m_t
    G = off.returns()
    v = pg.off_policy_value(pi, beta, off, per_decision=False, self_normalized=True)
    fam.add("SN value trajectory", v.value, _influence_se((rho / rho.mean() * (G - v.value))[:, None]), J)
    v = pg.off_policy_value(pi, beta, off, per_decision=True, self_normalized=True)
    a = disc * off.rewards * c
    v_t = a.mean(axis=0) / m_t
    assert v.value == pytest.approx(v_t.sum(), rel=1e-12)
    fam.add("SN value per-decision", v.value, _influence_se(((a - v_t * c) / m_t).sum(axis=1)[:, None]), J)
    fam.check()


def test_importance_weights_by_hand() -> None:
    mdp, pi, traj = tiny_problem()
    beta = tiny_behavior()
    p, b = pi.probs(), beta.probs()
    r = [p[s, a] / b[s, a] for s, a in [(0, 1), (1, 0), (0, 0), (1, 1)]]  # the distinct (s, a) ratios
    r01, r10, r00, r11 = r
    cum = np.array([[r01, r01 * r10, r01 * r10 * r00], [r11, r11 * r00, r11 * r00], [r01, r01, r01]])
    assert_close(pg.importance_weights(pi, beta, traj), cum[:, -1])
    assert_close(pg.importance_weights(pi, beta, traj, per_decision=True), cum)
    logged = logged_log_probs(beta, traj, pad=0.0)
    assert_close(pg.importance_weights(pi, logged, traj, per_decision=True), cum)
    np.testing.assert_array_equal(pg.importance_weights(pi, pi, traj, per_decision=True), np.ones((3, 3)))


@pytest.mark.parametrize("per_decision", [False, True])
def test_importance_weights_that_overflow_are_an_error(per_decision: bool) -> None:
    """A ratio beyond float64 (logged log beta of -1e300) is an error naming the trajectory, not an inf."""
    mdp, pi, traj = tiny_problem()
    logged = logged_log_probs(tiny_behavior(), traj, pad=0.0)
    logged[1, 1] = -1e300
    with pytest.raises(ValueError, match=r"importance weights overflow float64: log rho = 1e\+300 > 709.783 on trajectory 1"
                       + (", step 1" if per_decision else ";")):
        pg.importance_weights(pi, logged, traj, per_decision=per_decision)
    logged[1, 1] = -700.0  # large but representable: finite weights
    assert np.isfinite(pg.importance_weights(pi, logged, traj, per_decision=per_decision)).all()


@pytest.mark.parametrize("self_normalized", [False, True])
@pytest.mark.parametrize("per_decision", [False, True])
@pytest.mark.parametrize("weights", ["reward_to_go", "return"])
def test_off_policy_by_hand(weights: Any, per_decision: bool, self_normalized: bool) -> None:
    mdp, pi, traj = tiny_problem()
    beta = tiny_behavior()
    c = pg.importance_weights(pi, beta, traj, per_decision=True)  # checked by hand above
    rho = c[:, -1]
    disc = 0.5 ** np.arange(3)
    r, G_t, G = traj.rewards, traj.reward_to_go(), traj.returns()
    mask = traj.mask
    if not per_decision:
        rr = rho / rho.mean() if self_normalized else rho
        W = rr[:, None] * (disc * G_t if weights == "reward_to_go" else G[:, None])
        value = rr * G
    else:
        cc = c / c.mean(axis=0) if self_normalized else c  # per-step normalisation
        dr = disc * r * cc
        W = np.array([[dr[i, t:].sum() for t in range(3)] for i in range(3)])  # sum_{t'>=t} g^t' r c
        if weights == "return":
            W += cc * np.array([[(disc * r)[i, :t].sum() for t in range(3)] for i in range(3)])
        value = dr.sum(axis=1)
    W = np.where(mask, W, 0.0)
    est = pg.off_policy_gradient(pi, beta, traj, weights=weights, per_decision=per_decision,
                                 self_normalized=self_normalized, per_trajectory=True)
    assert_close(est.grad, hand_grad(pi, traj, W))
    assert est.per_trajectory is not None
    assert_close(est.per_trajectory, hand_rows(pi, traj, W))
    assert est.value == pytest.approx(value.mean(), rel=1e-13)
    assert est.value_stderr == pytest.approx(value.std(ddof=1) / np.sqrt(3), rel=1e-12)
    assert est.ess == pytest.approx(rho.sum() ** 2 / (rho**2).sum(), rel=1e-13)
    v = pg.off_policy_value(pi, beta, traj, per_decision=per_decision, self_normalized=self_normalized)
    # off_policy_value is the return estimate: the same per-trajectory values for both weights
    assert v.value == pytest.approx(value.mean(), rel=1e-13)
    assert v.stderr == pytest.approx(value.std(ddof=1) / np.sqrt(3), rel=1e-12)
    assert v.ess == pytest.approx(est.ess, rel=1e-15)
    # the same from logged behavior log-probabilities (padding ignored)
    logged = logged_log_probs(beta, traj, pad=np.nan)
    other = pg.off_policy_gradient(pi, logged, traj, weights=weights, per_decision=per_decision,
                                   self_normalized=self_normalized)
    np.testing.assert_array_equal(other.grad, pg.off_policy_gradient(
        pi, beta, traj, weights=weights, per_decision=per_decision, self_normalized=self_normalized).grad)


@pytest.mark.parametrize("gamma", [1.0, 0.9])
@pytest.mark.parametrize("kind", ["tabular", "linear"])
def test_off_policy_with_behavior_equal_to_target_is_on_policy(rng: np.random.Generator, kind: str, gamma: float) -> None:
    # All ratios are exp(0) = 1: the off-policy weights are the on-policy ones. Trajectory ratios
    # reproduce them bit for bit (same arithmetic, one thread), and so do per-decision
    # reward-to-go weights at gamma = 1 (the same backward sums). Otherwise the sums are
    # associated differently (gamma^t' r_t' summed forwards vs gamma^t G_t backwards; prefix +
    # suffix for the return): each weight within 2 H eps sum_t |r_t|, each step's score within
    # max |psi|, so the mean gradient within H * 2 H eps max_i sum_t |r_it| max |psi| (x 10).
    mdp = random_mdp(rng, S=5, A=3, successors=3, n_terminal=1, horizon=6, gamma=gamma, transition_rewards=True)
    pi = random_softmax(kind, mdp, rng)
    traj = mdp.sample(pi, 2000, seed=13)
    logged = logged_log_probs(pi, traj)
    H = mdp.horizon
    psi_max = 2.0 * float(np.abs(pi.features).max()) if isinstance(pi, pg.LinearSoftmax) else 2.0
    atol = 10 * 2 * H * H * EPS * float(np.abs(traj.rewards).sum(axis=1).max()) * psi_max
    for weights in ("reward_to_go", "return"):
        on = pg.policy_gradient(pi, traj, weights=weights, threads=1)
        for per_decision in (False, True):
            for behavior in (pi, logged):
                off = pg.off_policy_gradient(pi, behavior, traj, weights=weights, per_decision=per_decision,
                                             threads=1)
                if not per_decision or (gamma == 1.0 and weights == "reward_to_go"):
                    np.testing.assert_array_equal(off.grad, on.grad)
                    np.testing.assert_array_equal(off.stderr, on.stderr)
                else:
                    np.testing.assert_allclose(off.grad, on.grad, rtol=0, atol=atol)
                    np.testing.assert_allclose(off.stderr, on.stderr, rtol=1e-9)
                assert off.ess == traj.n  # (sum 1)^2 / sum 1 = N exactly
                assert off.value == pytest.approx(on.value, rel=1e-12, abs=1e-14)
                assert off.value_stderr == pytest.approx(on.value_stderr, rel=1e-9)
            v = pg.off_policy_value(pi, pi, traj, per_decision=per_decision)
            assert v.ess == traj.n and v.value == pytest.approx(on.value, rel=1e-12, abs=1e-14)
    np.testing.assert_array_equal(pg.importance_weights(pi, pi, traj), np.ones(traj.n))


def test_behavior_with_zero_probability_on_a_logged_action(small: Any) -> None:
    mdp, pi, traj = small
    # behavior logits -1e6 below the others on one logged action: softmax gives it probability 0
    s, a = int(traj.states[0, 0]), int(traj.actions[0, 0])
    theta = np.zeros((mdp.n_states, mdp.n_actions))
    theta[s, a] = -1e6
    beta = pg.TabularSoftmax(mdp.n_states, mdp.n_actions, theta=theta)
    assert beta.probs()[s, a] == 0.0
    for call in (lambda: pg.importance_weights(pi, beta, traj),
                 lambda: pg.importance_weights(pi, beta, traj, per_decision=True),
                 lambda: pg.off_policy_gradient(pi, beta, traj),
                 lambda: pg.off_policy_value(pi, beta, traj)):
        with pytest.raises(ValueError, match="zero probability"):
            call()


def test_logged_behavior_log_probs_rejected(small: Any) -> None:
    _, pi, traj = small
    logged = logged_log_probs(pi, traj, pad=0.0)
    zero = logged.copy()
    zero[2, 0] = -np.inf  # log 0 on a logged action
    with pytest.raises(ValueError, match="zero probability"):
        pg.off_policy_gradient(pi, zero, traj)
    with pytest.raises(ValueError, match="zero probability"):
        pg.off_policy_value(pi, zero, traj)
    nan = logged.copy()
    nan[1, 0] = np.nan
    with pytest.raises(ValueError, match="behavior"):
        pg.importance_weights(pi, nan, traj)
    positive = logged.copy()
    positive[0, 0] = 0.5  # a log-probability above 0
    with pytest.raises(ValueError, match="<= 0"):
        pg.off_policy_gradient(pi, positive, traj)
    for bad in (logged[:, :-1], logged[:-1], logged.ravel(), logged[..., None]):
        with pytest.raises(ValueError, match="shape"):
            pg.off_policy_gradient(pi, bad, traj)
        with pytest.raises(ValueError, match="shape"):
            pg.importance_weights(pi, bad, traj)


@pytest.mark.parametrize("per_decision", [False, True])
def test_self_normalised_weights_of_ratios_that_underflow(per_decision: bool) -> None:
    # Log-ratios of about -1500 per trajectory: exp underflows to 0, yet self-normalised weights
    # are ratios of ratios, and so is the ESS. Reference: the same formulas in NumPy, in log space.
    rng = np.random.default_rng(7)
    S, A, H, N = 2, 2, 400, 200
    P = np.full((S, A, S), 0.5)
    mdp = pg.FiniteMDP(P, rng.normal(size=(S, A)), [0.5, 0.5], horizon=H)
    beta = pg.TabularSoftmax(S, A, theta=[[0.0, -4.0], [0.0, -4.0]])
    pi = pg.TabularSoftmax(S, A, theta=[[-4.0, 0.0], [-4.0, 0.0]])
    off = mdp.sample(beta, N, seed=2)
    lr = np.where(off.mask, pi.log_probs()[off.states, off.actions] - beta.log_probs()[off.states, off.actions], 0.0)
    L = np.cumsum(lr, axis=1)  # (N, H); past the end the full log-ratio
    assert L[:, -1].max() < -1000  # every ratio underflows
    disc = np.where(off.mask, off.rewards, 0.0)  # gamma = 1
    if per_decision:
        log_norm = np.logaddexp.reduce(L, axis=0) - np.log(N)
        ref = (disc * np.exp(L - log_norm)).sum(axis=1)
    else:
        ref = np.exp(L[:, -1] - (np.logaddexp.reduce(L[:, -1]) - np.log(N))) * disc.sum(axis=1)
    v = pg.off_policy_value(pi, beta, off, per_decision=per_decision, self_normalized=True)
    np.testing.assert_allclose(v.value, ref.mean(), rtol=1e-9)
    np.testing.assert_allclose(v.stderr, ref.std(ddof=1) / np.sqrt(N), rtol=1e-9)
    w = np.exp(L[:, -1] - L[:, -1].max())
    np.testing.assert_allclose(v.ess, w.sum() ** 2 / (w * w).sum(), rtol=1e-12)
    assert np.isfinite(pg.off_policy_gradient(pi, beta, off, per_decision=per_decision, self_normalized=True).grad).all()
