"""pg.LQR's validation, pg.LinearGaussian's distribution and score, pg.ContinuousTrajectories."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import pgfast as pg
from pgfast._gaussian import LOG_STD_MIN

A2 = [[1.0, 0.1], [0.0, 1.0]]
B2 = [[0.0], [0.1]]


def lqr(**kw):
    base = dict(horizon=10, x0=[1.0, 0.0])
    base.update(kw)
    return pg.LQR(A2, B2, np.eye(2), [[0.1]], **base)


# -- LQR -------------------------------------------------------------------------------------------

def test_lqr_attributes_are_read_only_copies():
    A = np.array(A2)
    m = pg.LQR(A, B2, np.eye(2), [[0.1]], horizon=5, x0=[1.0, 0.0])
    A[0, 0] = 7.0
    assert m.A[0, 0] == 1.0 and not m.A.flags.writeable
    assert (m.state_dim, m.action_dim, m.horizon, m.gamma) == (2, 1, 5, 1.0)
    with pytest.raises(AttributeError, match="immutable"):
        m.gamma = 0.5  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del m.A


def test_lqr_pickles_and_compares():
    m = lqr(x0_cov=0.1 * np.eye(2), noise_cov=0.01 * np.eye(2), gamma=0.9)
    back = pickle.loads(pickle.dumps(m))
    assert back == m and back is not m
    assert m != lqr() and (m == 3) is False
    assert m.with_options(gamma=0.5).gamma == 0.5 and m.with_options(gamma=0.5) != m


def test_lqr_starts():
    assert lqr().x0_cov is None
    m = pg.LQR(A2, B2, np.eye(2), [[0.1]], horizon=3, x0_cov=np.eye(2))
    assert np.array_equal(m.x0, np.zeros(2)) and "gaussian" in repr(m)


@pytest.mark.parametrize(
    ("kw", "err", "match"),
    [
        (dict(A=[[1.0, 0.0]]), ValueError, "A must be a square"),
        (dict(A=[[np.nan, 0.0], [0.0, 1.0]]), ValueError, "A"),
        (dict(B=[[1.0], [1.0], [1.0]]), ValueError, "B must have shape"),
        (dict(Q=[[1.0, 2.0], [0.0, 1.0]]), ValueError, "Q must be symmetric"),
        (dict(Q=-np.eye(2)), ValueError, "Q must be symmetric positive semidefinite"),
        (dict(R=[[0.0]]), ValueError, "R must be symmetric positive definite"),
        (dict(R=np.eye(2)), ValueError, r"R must have shape \(1, 1\)"),
        (dict(gamma=0.0), ValueError, "gamma"),
        (dict(gamma=1.5), ValueError, "gamma"),
        (dict(horizon=None), ValueError, "needs gamma < 1"),
        (dict(horizon=0), ValueError, "horizon"),
        (dict(horizon=2.5), TypeError, "horizon"),
        (dict(x0=None), ValueError, "x0"),
        (dict(x0=[1.0]), ValueError, "x0 must have shape"),
        (dict(x0_cov=-np.eye(2)), ValueError, "x0_cov"),
        (dict(noise_cov=[[1.0, 0.5], [0.4, 1.0]]), ValueError, "noise_cov must be symmetric"),
        (dict(max_state=0.0), ValueError, "max_state"),
        (dict(max_state=np.inf), ValueError, "max_state"),
        (dict(A="abc"), TypeError, "A"),
    ],
)
def test_lqr_rejects_bad_input(kw, err, match):
    args = dict(A=A2, B=B2, Q=np.eye(2), R=[[0.1]], horizon=10, x0=[1.0, 0.0])
    args.update(kw)
    A, B, Q, R = args.pop("A"), args.pop("B"), args.pop("Q"), args.pop("R")
    with pytest.raises(err, match=match):
        pg.LQR(A, B, Q, R, **args)


def test_lqr_with_options_rejects_unknown():
    with pytest.raises(TypeError, match="unknown LQR option"):
        lqr().with_options(horizn=3)


def test_lqr_infinite_horizon_discounted():
    m = lqr(horizon=None, gamma=0.95)
    assert m.horizon is None and "horizon=None" in repr(m)


# -- LinearGaussian --------------------------------------------------------------------------------

def gaussian_logpdf(u, mu, sigma):
    return float(np.sum(-0.5 * ((u - mu) / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi)))


@pytest.mark.parametrize("features", [None, "affine", "quadratic", lambda x: np.tanh(x)])
def test_gaussian_log_prob_and_score_match_definition_and_differences(features):
    rng = np.random.default_rng(0)
    pi = pg.LinearGaussian(3, 2, features=features, log_std=[-0.3, 0.2])
    pi.theta = rng.standard_normal(pi.n_params) * 0.5
    x = rng.standard_normal((4, 3))
    u = rng.standard_normal((4, 2))
    phi = pi._features(x)
    mu = phi @ pi.W.T
    for k in range(4):
        assert pi.log_prob(x[k], u[k]) == pytest.approx(gaussian_logpdf(u[k], mu[k], pi.std), rel=1e-12)
    g = pi.grad_log_prob(x, u)
    assert g.shape == (4, pi.n_params)
    th = pi.theta.copy()
    h = 1e-6
    for j in range(pi.n_params):
        e = np.zeros_like(th)
        e[j] = h
        pi.theta = th + e
        up = pi.log_prob(x, u)
        pi.theta = th - e
        down = pi.log_prob(x, u)
        np.testing.assert_allclose(g[:, j], (up - down) / (2 * h), rtol=1e-6, atol=1e-7)
    pi.theta = th


def test_gaussian_sample_moments_and_seed():
    pi = pg.LinearGaussian(2, 2, W=[[1.0, 0.0], [0.5, -1.0]], log_std=[np.log(0.5), np.log(2.0)])
    x = np.tile([[1.0, 2.0]], (200_000, 1))
    u = pi.sample(x, seed=3)
    assert np.array_equal(u, pi.sample(x, seed=3)) and not np.array_equal(u, pi.sample(x, seed=4))
    n = x.shape[0]
    mean, sd = u.mean(axis=0), u.std(axis=0)
    expected_mean, expected_sd = np.array([1.0, -1.5]), np.array([0.5, 2.0])
    assert np.all(np.abs(mean - expected_mean) < 5 * expected_sd / np.sqrt(n))
    assert np.all(np.abs(sd - expected_sd) < 5 * expected_sd / np.sqrt(2 * n))


def test_gaussian_score_has_mean_zero():
    pi = pg.LinearGaussian(2, 1, W=[[0.3, -0.2]], log_std=-0.5)
    x = np.random.default_rng(1).standard_normal((100_000, 2))
    u = pi.sample(x, seed=2)
    g = pi.grad_log_prob(x, u)
    se = g.std(axis=0) / np.sqrt(len(g))
    assert np.all(np.abs(g.mean(axis=0)) < 5 * se)


def test_gaussian_log_std_floor():
    pi = pg.LinearGaussian(1, 1, log_std=-50.0)
    assert pi.std[0] == pytest.approx(np.exp(LOG_STD_MIN))
    assert np.isfinite(pi.log_prob([0.0], [1e-9]))
    assert pi.grad_log_prob([0.0], [1e-9])[-1] == 0.0  # no score below the floor


def test_gaussian_theta_layout_and_setter():
    pi = pg.LinearGaussian(2, 2, W=[[1.0, 2.0], [3.0, 4.0]], log_std=[0.1, 0.2])
    np.testing.assert_array_equal(pi.theta, [1.0, 2.0, 3.0, 4.0, 0.1, 0.2])
    own = pi.theta
    pi.theta = np.zeros(6)
    assert own is pi.theta and np.all(pi.W == 0)
    with pytest.raises(ValueError, match="theta must have shape"):
        pi.theta = np.zeros(5)
    with pytest.raises(ValueError, match="finite"):
        pi.theta = [np.nan] * 6
    assert np.all(pi.theta == 0)
    back = pickle.loads(pickle.dumps(pi))
    np.testing.assert_array_equal(back.theta, pi.theta)
    assert back.theta.flags.writeable


@pytest.mark.parametrize(
    ("call", "err", "match"),
    [
        (lambda: pg.LinearGaussian(0, 1), ValueError, "obs_dim"),
        (lambda: pg.LinearGaussian(2, 1, W=[[1.0]]), ValueError, "W must have shape"),
        (lambda: pg.LinearGaussian(2, 2, log_std=[0.0, 0.0, 0.0]), ValueError, "log_std"),
        (lambda: pg.LinearGaussian(2, 1, features="cubic"), ValueError, "features"),
        (lambda: pg.LinearGaussian(2, 1, features=3), TypeError, "features"),
        (lambda: pg.LinearGaussian(2, 1, features=lambda x: x[:, 0]), ValueError, "features"),
        (lambda: pg.LinearGaussian(2, 1).mean([1.0, 2.0, 3.0]), ValueError, "obs_dim"),
        (lambda: pg.LinearGaussian(2, 1).log_prob([[1.0, 2.0]], [1.0]), ValueError, "actions must have shape"),
        (lambda: pg.LinearGaussian(2, 1).sample([1.0, 2.0], seed=-1), ValueError, "seed"),
    ],
)
def test_gaussian_rejects_bad_input(call, err, match):
    with pytest.raises(err, match=match):
        call()


# -- ContinuousTrajectories ------------------------------------------------------------------------

def batch(**kw):
    args = dict(states=np.zeros((2, 3, 2)), actions=np.zeros((2, 3, 1)), rewards=[[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]],
                lengths=[3, 1])
    args.update(kw)
    return pg.ContinuousTrajectories(**args)


def test_batch_returns_and_flags():
    tr = batch(gamma=0.5)
    np.testing.assert_allclose(tr.returns(), [1.0 + 1.0 + 0.75, 4.0])
    np.testing.assert_allclose(tr.returns(gamma=1.0), [6.0, 4.0])
    np.testing.assert_allclose(tr.reward_to_go(gamma=1.0), [[6.0, 5.0, 3.0], [4.0, 0.0, 0.0]])
    assert (tr.n, tr.horizon, tr.state_dim, tr.n_steps, len(tr)) == (2, 3, 2, 4, 2)
    assert not tr.discrete_actions and not tr.diverged.any() and not tr.terminated.any()
    assert tr.mask.tolist() == [[True, True, True], [True, False, False]]


def test_batch_is_immutable_copy_and_pickles():
    s = np.zeros((1, 2, 1))
    tr = pg.ContinuousTrajectories(s, np.zeros((1, 2), dtype=np.int64), [[1.0, 1.0]], [2], seed=5)
    s[0, 0, 0] = 9.0
    assert tr.states[0, 0, 0] == 0.0 and not tr.states.flags.writeable
    assert tr.discrete_actions and tr.actions.dtype == np.int32
    with pytest.raises(AttributeError, match="immutable"):
        tr.gamma = 0.5  # type: ignore[misc]
    back = pickle.loads(pickle.dumps(tr))
    assert back.seed == 5 and np.array_equal(back.rewards, tr.rewards) and back.discrete_actions


@pytest.mark.parametrize(
    ("kw", "err", "match"),
    [
        (dict(states=np.zeros((2, 3))), ValueError, "states must be 3-D"),
        (dict(actions=np.zeros((2, 2, 1))), ValueError, "actions must have shape"),
        (dict(rewards=np.zeros((2, 2))), ValueError, "rewards must have shape"),
        (dict(lengths=[3, 4]), ValueError, r"lengths\[1\] = 4 is out of range"),
        (dict(lengths=[3]), ValueError, "lengths must have shape"),
        (dict(lengths=[3.0, 1.0]), TypeError, "lengths"),
        (dict(rewards=[[1.0, np.nan, 0.0], [0.0, 0.0, 0.0]]), ValueError, r"rewards must be finite .*trajectory 0, step 1"),
        (dict(gamma=2.0), ValueError, "gamma"),
        (dict(diverged=[True]), ValueError, "diverged must be a bool array"),
        (dict(states="x"), TypeError, "states"),
    ],
)
def test_batch_rejects_bad_input(kw, err, match):
    with pytest.raises(err, match=match):
        batch(**kw)


def test_batch_padding_may_hold_anything():
    tr = batch(rewards=[[1.0, 2.0, 3.0], [4.0, np.nan, np.inf]])
    np.testing.assert_allclose(tr.returns(), [6.0, 4.0])
