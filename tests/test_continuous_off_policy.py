"""Off-policy estimators on batches with vector states: pg.importance_weights, pg.off_policy_gradient
and pg.off_policy_value between two Gaussian policies (or logged log-densities) on an LQR.

1. Unbiasedness: a behaviour Gaussian's batch estimates the target's exact gradient and J
   (tests/lqr_reference), every weighting (per-decision or not, reward-to-go or return); E[rho] = 1.
2. The weights against the definitions written out in NumPy.
3. Self-normalised weights, bitwise reproducibility over threads, rejected inputs.
"""

from __future__ import annotations

from typing import Any

import lqr_reference as ref
import numpy as np
import pytest
from helpers import Family

import pgfast as pg


def _pair(lqr: pg.LQR) -> tuple[pg.LinearGaussian, pg.LinearGaussian]:
    W = -0.3 * np.array([[0.2, 1.0, 0.3], [0.4, 0.1, 1.0]])
    target = pg.LinearGaussian(3, 2, W=W, log_std=np.log([0.5, 0.4]))
    behavior = pg.LinearGaussian(3, 2, W=W + 0.05, log_std=np.log([0.6, 0.5]))
    return target, behavior


@pytest.mark.parametrize("gamma", [1.0, 0.8])
def test_off_policy_unbiased(gamma: float) -> None:
    lqr = ref.example(noise=True, horizon=5, gamma=gamma)
    target, behavior = _pair(lqr)
    exact = ref.fd_gradient(lqr, target)
    J = ref.objective(lqr, target.W, target.log_std)
    traj = ref.simulate(lqr, behavior, 60_000, seed=21)
    fam = Family()
    for weights in ("reward_to_go", "return"):
        for per_decision in (True, False):
            est = pg.off_policy_gradient(target, behavior, traj, weights=weights, per_decision=per_decision)
            assert est.ess is not None and 1.0 <= est.ess <= traj.n
            fam.grad(f"{weights} per_decision={per_decision}", est, exact, J)
    for per_decision in (True, False):
        v = pg.off_policy_value(target, behavior, traj, per_decision=per_decision)
        fam.add(f"value per_decision={per_decision}", v.value, v.stderr, J)
    rho = pg.importance_weights(target, behavior, traj)
    fam.add("E[rho]", rho.mean(), rho.std(ddof=1) / np.sqrt(traj.n), 1.0)
    fam.check()


def test_weights_match_the_definitions() -> None:
    lqr = ref.example(noise=True, horizon=4, gamma=0.9)
    target, behavior = _pair(lqr)
    full = ref.simulate(lqr, behavior, 30, seed=3)
    ln = np.random.default_rng(2).integers(0, 5, size=30)
    mask = np.arange(4) < ln[:, None]
    traj = pg.ContinuousTrajectories(np.where(mask[..., None], full.states, 0.0),
                                     np.where(mask[..., None], full.actions, 0.0), np.where(mask, full.rewards, 0.0),
                                     ln, gamma=0.9)
    x, u = traj.states, traj.actions
    lr = np.where(mask, target.log_prob(x, u) - behavior.log_prob(x, u), 0.0)
    c = np.exp(np.cumsum(lr, axis=1))
    rho = c[:, -1]
    np.testing.assert_allclose(pg.importance_weights(target, behavior, traj), rho, rtol=1e-12)
    np.testing.assert_allclose(pg.importance_weights(target, behavior, traj, per_decision=True), c, rtol=1e-12)
    disc = 0.9 ** np.arange(4) * traj.rewards * mask
    # per-decision reward-to-go: w_t = sum_{t' >= t} gamma^t' r_t' c_t'
    w = np.cumsum((disc * c)[:, ::-1], axis=1)[:, ::-1] * mask
    score = target.grad_log_prob(x, u)
    rows = np.einsum("nh,nhp->np", w, score)
    est = pg.off_policy_gradient(target, behavior, traj, per_trajectory=True)
    np.testing.assert_allclose(est.per_trajectory, rows, rtol=1e-10, atol=1e-12 * np.abs(rows).max())
    assert est.value == pytest.approx((disc * c).sum(axis=1).mean(), rel=1e-12)
    # whole-trajectory ratios, return weights: w_t = rho G
    est = pg.off_policy_gradient(target, behavior, traj, weights="return", per_decision=False, per_trajectory=True)
    rows = np.einsum("nh,nhp->np", (rho * disc.sum(axis=1))[:, None] * mask, score)
    np.testing.assert_allclose(est.per_trajectory, rows, rtol=1e-10, atol=1e-12 * np.abs(rows).max())
    # logged log-densities give the same as the behaviour policy
    logged = np.where(mask, behavior.log_prob(x, u), 0.0)
    a = pg.off_policy_value(target, behavior, traj)
    b = pg.off_policy_value(target, logged, traj)
    assert (a.value, a.stderr, a.ess) == (b.value, b.stderr, b.ess)
    # self-normalised whole-trajectory ratios: rho / mean(rho)
    sn = pg.off_policy_value(target, behavior, traj, per_decision=False, self_normalized=True)
    assert sn.value == pytest.approx(float((rho * disc.sum(axis=1)).mean() / rho.mean()), rel=1e-10)


def test_off_policy_bit_identical_over_threads() -> None:
    lqr = ref.example(noise=True, horizon=6)
    target, behavior = _pair(lqr)
    traj = ref.simulate(lqr, behavior, 2000, seed=4)
    base = pg.off_policy_gradient(target, behavior, traj, threads=1)
    for threads in (2, 3, 7):
        other = pg.off_policy_gradient(target, behavior, traj, threads=threads)
        assert np.array_equal(base.grad, other.grad) and np.array_equal(base.stderr, other.stderr)
        assert (base.value, base.ess) == (other.value, other.ess)


def test_on_policy_ratios_are_one() -> None:
    lqr = ref.example(horizon=4)
    target, _ = _pair(lqr)
    traj = ref.simulate(lqr, target, 100, seed=0)
    assert np.array_equal(pg.importance_weights(target, target, traj), np.ones(100))
    on = pg.policy_gradient(target, traj, per_trajectory=True)
    off = pg.off_policy_gradient(target, target, traj, per_trajectory=True)
    np.testing.assert_allclose(off.grad, on.grad, rtol=1e-12, atol=1e-14 * np.abs(on.grad).max())


def test_rejected_inputs() -> None:
    lqr = ref.example(horizon=3)
    target, behavior = _pair(lqr)
    traj = ref.simulate(lqr, behavior, 10, seed=0)
    bad = np.zeros((10, 3))
    bad[4, 1] = np.inf
    cases: list[tuple[type[Exception], str, Any]] = [
        (TypeError, "target must be a policy on vector states", lambda: pg.off_policy_gradient(
            pg.TabularSoftmax(3, 2), behavior, traj)),
        (TypeError, "behavior must be a policy on vector states", lambda: pg.off_policy_gradient(target, object(), traj)),
        (ValueError, "behavior has action_dim = 1", lambda: pg.off_policy_value(target, pg.LinearGaussian(3, 1), traj)),
        (ValueError, r"shape \(N, H\) = \(10, 3\)", lambda: pg.importance_weights(target, np.zeros((10, 2)), traj)),
        (ValueError, "trajectory 4, step 1", lambda: pg.off_policy_gradient(target, bad, traj)),
        (ValueError, "weights must be", lambda: pg.off_policy_gradient(target, behavior, traj, weights="q")),  # type: ignore[arg-type]
        (TypeError, "per_decision must be True or False", lambda: pg.importance_weights(target, behavior, traj, 1)),  # type: ignore[arg-type]
        (ValueError, "overflow", lambda: pg.importance_weights(
            target, pg.LinearGaussian(3, 2, log_std=-19.0), traj)),
    ]
    for exc, match, call in cases:
        with pytest.raises(exc, match=match):
            call()
