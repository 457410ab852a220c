"""Policy gradient ascent on an LQR reaches the Riccati gain, whatever the action noise.

The discounted problem (gamma = 0.9) is sampled with a horizon of 150 steps (gamma^150 = 1.4e-7 of
the objective is cut off), from the stabilising start W_0 = 0.4 W*; the standard deviations are
held fixed (their gradient is dropped) so that two noise levels can be compared with the same gain.
"""

from __future__ import annotations

import numpy as np
import pytest

import pgfast as pg
from lqr_reference import example, riccati_gain


def _J(lqr: pg.LQR, W: np.ndarray, log_std: float) -> float:
    return float(pg.exact.evaluate(lqr, pg.LinearGaussian(3, 2, W=W, log_std=log_std)).J)


@pytest.mark.parametrize("sigma", [0.3, 0.5])
def test_exact_gradient_ascent_reaches_the_riccati_gain(sigma: float) -> None:
    lqr = example(horizon=None, gamma=0.9)
    W_star = riccati_gain(lqr)
    pi = pg.LinearGaussian(3, 2, W=0.4 * W_star, log_std=np.log(sigma))
    opt = pg.optim.Adam(lr=0.05)
    for _ in range(3000):
        g = pg.exact.gradient(lqr, pi)
        g[-2:] = 0.0
        opt.step(pi, g)
    np.testing.assert_allclose(pi.W, W_star, atol=1e-8)


@pytest.mark.parametrize("sigma", [0.3, 0.5])
def test_sampled_policy_gradient_ascent_reaches_the_riccati_gain(sigma: float) -> None:
    lqr = example(horizon=None, gamma=0.9)
    sampled = lqr.with_options(horizon=150)
    W_star = riccati_gain(lqr)
    W0 = 0.4 * W_star
    pi = pg.LinearGaussian(3, 2, W=W0, log_std=np.log(sigma))
    J_star = _J(lqr, W_star, np.log(sigma))
    gap0 = J_star - _J(lqr, W0, np.log(sigma))
    opt = pg.optim.Adam(lr=0.02)
    late = []
    for it in range(400):
        if it == 200:
            opt = pg.optim.Adam(lr=0.004)
        est = pg.policy_gradient(pi, mdp=sampled, n=4096, seed=it, stderr=False)
        g = est.grad.copy()
        g[-2:] = 0.0
        opt.step(pi, g)
        if it >= 300:
            late.append(pi.W.copy())
    W_bar = np.mean(late, axis=0)  # the average of the last 100 iterates
    # the gain moved at least 90 % of the way to W*, and the exact gap closed by 99 %
    assert np.abs(W_bar - W_star).max() < 0.1 * np.abs(W0 - W_star).max()
    assert 0.0 <= J_star - _J(lqr, W_bar, np.log(sigma)) < 0.01 * gap0
