"""No silent NaN: finite input gives a finite result or a ValueError that says what overflowed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import pgfast as pg


def saturated_mdp() -> pg.FiniteMDP:
    return pg.FiniteMDP(np.full((2, 3, 2), 0.5), np.array([[0.0, 1, 2], [2, 1, 0]]), [0.5, 0.5], horizon=5)


def leaves(x: Any) -> list[Any]:
    """The numbers and arrays of a result (arrays, tuples, dataclasses)."""
    if isinstance(x, (tuple, list)):
        return [v for item in x for v in leaves(item)]
    if hasattr(x, "__dataclass_fields__"):
        return [v for f in x.__dataclass_fields__ for v in leaves(getattr(x, f))]
    if isinstance(x, (np.ndarray, float, int, np.floating)):
        return [x]
    return []


def finite_or_overflow_error(call: Callable[[], Any], *, allow_nan_fields: tuple[str, ...] = ()) -> Any:
    """call() must return only finite numbers, or raise a ValueError saying what overflowed."""
    try:
        out = call()
    except ValueError as exc:
        msg = str(exc)
        assert "overflow" in msg or "must be finite" in msg, msg
        return None
    for leaf in leaves(out):
        arr = np.asarray(leaf, dtype=np.float64)
        assert np.isfinite(arr).all(), f"non-finite result {arr}"
    return out


# -- the pseudo-inverse of the natural gradient -----------------------------------------------


def test_saturated_mlp_natural_gradient_is_finite() -> None:
    mdp = saturated_mdp()
    pol = pg.MLPSoftmax(2, 3, hidden=(), theta=[0, 400, 0, 400, 0, 0, 0, 0, 0.0])
    x = pg.exact.natural_gradient(mdp, pol)
    assert np.isfinite(x).all() and np.abs(x).max() > 0
    # reference: the pseudo-inverse of F = M^T M from its own eigendecomposition (eigenvalues
    # below rcond = 1e-10 times the largest dropped), on M rescaled by a power of two so that
    # M^T M does not underflow (F^+ for c M is c^-2 F^+)
    g = pg.exact.gradient(mdp, pol)
    M = pol._weighted_scores(np.ascontiguousarray(pol.probs()), pg.exact.fisher_weights(mdp, pol))
    c = 2.0 ** -np.frexp(np.abs(M).max())[1]
    Ms = c * M
    lam, V = np.linalg.eigh(Ms.T @ Ms)
    keep = lam > 1e-10 * lam.max()
    ref = V[:, keep] @ ((V[:, keep].T @ (c * c * g)) / lam[keep])
    assert np.isfinite(ref).all() and np.abs(ref).max() > 0
    np.testing.assert_allclose(x, ref, rtol=1e-8, atol=1e-10 * np.abs(ref).max())


def test_saturated_mlp_many_rows_is_finite() -> None:
    # more Fisher-factor rows than parameters: the F = M^T M path
    mdp = pg.FiniteMDP(np.full((6, 4, 6), 1 / 6), np.arange(24.0).reshape(6, 4) % 5, np.full(6, 1 / 6), horizon=4)
    pol = pg.MLPSoftmax(np.eye(6)[:, :2], 4, hidden=())
    theta = np.zeros(pol.n_params)
    theta[:4] = [0, 300, 0, 0]
    pol.theta = theta
    x = pg.exact.natural_gradient(mdp, pol)
    assert np.isfinite(x).all()
    F = pg.exact.fisher(mdp, pol)
    g = pg.exact.gradient(mdp, pol)
    assert np.isfinite(F).all() and np.isfinite(g).all()


def test_saturated_mlp_sampled_natural_gradient_is_finite() -> None:
    pol = pg.MLPSoftmax(2, 3, hidden=(), theta=[0, 400, 0, 400, 0, 0, 0, 0, 0.0])
    opt = pg.optim.NaturalGradient(damping=0.0, fisher="sampled")
    g = pg.exact.gradient(saturated_mdp(), pol)
    x = opt.direction(pol, g, visits=np.array([2.5, 2.5]))
    assert np.isfinite(x).all() and np.abs(x).max() > 0
    np.testing.assert_allclose(x, pg.exact.natural_gradient(saturated_mdp(), pol), rtol=1e-9)


def test_saturated_tabular_natural_gradient_is_finite() -> None:
    mdp = saturated_mdp()
    pol = pg.TabularSoftmax(2, 3, theta=[[0, 400, 0], [400, 0, -400]])
    x = pg.exact.natural_gradient(mdp, pol)
    assert np.isfinite(x).all()


def test_linear_natural_gradient_tiny_features_is_finite() -> None:
    rng = np.random.default_rng(0)
    pol = pg.LinearSoftmax(1e-170 * rng.normal(size=(2, 3, 4)))
    x = finite_or_overflow_error(lambda: pg.exact.natural_gradient(saturated_mdp(), pol))
    assert x is None or np.isfinite(x).all()


# -- the value baseline ---------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1e300, 1e-300])
def test_value_baseline_extreme_features(scale: float) -> None:
    rng = np.random.default_rng(1)
    S, H = 6, 5
    mdp = pg.FiniteMDP(rng.dirichlet(np.ones(S), size=(S, 2)), rng.normal(size=(S, 2)), np.full(S, 1 / S), horizon=H)
    traj = mdp.sample(pg.TabularSoftmax(S, 2), 400, seed=3)
    feats = rng.normal(size=(S, 3))
    ref = pg.ValueBaseline(S, H, features=feats, ridge=0.0).fit(traj).values()
    big = pg.ValueBaseline(S, H, features=scale * feats, ridge=0.0).fit(traj).values()
    assert np.isfinite(big).all()
    # least squares without ridge is invariant to the scale of the features
    np.testing.assert_allclose(big, ref, rtol=1e-8, atol=1e-8 * np.abs(ref).max())
    est = pg.policy_gradient(pg.TabularSoftmax(S, 2), traj, baseline=pg.ValueBaseline(S, H, features=scale * feats))
    assert np.isfinite(est.grad).all()


def test_value_baseline_huge_rewards_error() -> None:
    mdp = pg.FiniteMDP(np.full((2, 2, 2), 0.5), np.full((2, 2), 1e308), [0.5, 0.5], horizon=5)
    traj = mdp.sample(pg.TabularSoftmax(2, 2), 20, seed=0)
    with pytest.raises(ValueError, match="overflowed"):
        pg.ValueBaseline(2, 5).fit(traj)


# -- extreme but finite inputs: finite results or a clear error ----------------------------------


@pytest.mark.parametrize("objective", ["finite_horizon", "discounted", "average_reward", "average_value"])
def test_exact_rewards_1e300(objective: str) -> None:
    mdp = pg.FiniteMDP(np.full((2, 2, 2), 0.5), np.full((2, 2), 1e300), [0.5, 0.5], horizon=5, gamma=0.9)
    pol = pg.TabularSoftmax(2, 2, theta=[[0.0, 1.0], [2.0, 0.0]])
    ev = pg.exact.evaluate(mdp, pol, objective)
    assert np.isfinite(ev.J) and np.isfinite(ev.V).all()
    finite_or_overflow_error(lambda: pg.exact.gradient(mdp, pol, objective))


@pytest.mark.parametrize("objective", ["finite_horizon", "discounted"])
def test_exact_rewards_overflow_error(objective: str) -> None:
    mdp = pg.FiniteMDP(np.full((2, 2, 2), 0.5), np.full((2, 2), 1e308), [0.5, 0.5], horizon=5, gamma=0.9)
    pol = pg.TabularSoftmax(2, 2)
    with pytest.raises(ValueError, match="overflowed float64"):
        pg.exact.evaluate(mdp, pol, objective)
    with pytest.raises(ValueError, match="overflowed float64"):
        pg.exact.optimal(mdp, objective)


def test_sampled_gradient_rewards_overflow_error() -> None:
    mdp = pg.FiniteMDP(np.full((2, 2, 2), 0.5), np.full((2, 2), 1e308), [0.5, 0.5], horizon=5)
    pol = pg.TabularSoftmax(2, 2)
    with pytest.raises(ValueError, match="overflowed"):
        pg.policy_gradient(pol, mdp=mdp, n=50, seed=0)
    traj = mdp.sample(pol, 50, seed=0)
    with pytest.raises(ValueError, match="overflowed"):
        pg.policy_gradient(pol, traj)
    with pytest.raises(ValueError, match="overflowed"):
        pg.off_policy_value(pol, pol, traj)


def test_sampled_gradient_rewards_1e150() -> None:
    mdp = pg.FiniteMDP(np.full((2, 2, 2), 0.5), np.full((2, 2), 1e150), [0.5, 0.5], horizon=5)
    pol = pg.TabularSoftmax(2, 2)
    est = pg.policy_gradient(pol, mdp=mdp, n=50, seed=0)
    assert np.isfinite(est.grad).all() and np.isfinite(est.stderr).all() and np.isfinite(est.value_stderr)
    traj = mdp.sample(pol, 50, seed=0)
    for result in (pg.policy_gradient(pol, traj), pg.off_policy_gradient(pol, pol, traj)):
        assert np.isfinite(result.grad).all() and np.isfinite(result.value)
    assert np.isfinite(pg.score(pol, traj, np.ones(traj.rewards.shape))).all()


def test_sampled_gradient_rewards_1e300() -> None:
    # the gradient is finite, the squared returns behind the standard errors are not
    mdp = pg.FiniteMDP(np.full((2, 2, 2), 0.5), np.full((2, 2), 1e300), [0.5, 0.5], horizon=5)
    pol = pg.TabularSoftmax(2, 2)
    with pytest.raises(ValueError, match="standard error overflowed"):
        pg.policy_gradient(pol, mdp=mdp, n=50, seed=0, stderr=False)
    traj = mdp.sample(pol, 50, seed=0)
    finite_or_overflow_error(lambda: pg.policy_gradient(pol, traj))
    finite_or_overflow_error(lambda: pg.score(pol, traj, np.ones(traj.rewards.shape)))
    finite_or_overflow_error(lambda: pg.off_policy_gradient(pol, pol, traj))


def test_logits_1e300() -> None:
    pol = pg.TabularSoftmax(2, 2, theta=[[1e300, -1e300], [0.0, 1e300]])
    p, lp = pol.probs(), pol.log_probs()
    assert np.isfinite(p).all() and np.isfinite(lp).all()
    np.testing.assert_array_equal(p, [[1.0, 0.0], [0.0, 1.0]])
    mdp = saturated_mdp()
    finite_or_overflow_error(lambda: pg.exact.gradient(pg.FiniteMDP(np.full((2, 2, 2), 0.5), np.ones((2, 2)), [0.5, 0.5], horizon=5), pol))
    mlp = pg.MLPSoftmax(2, 3, hidden=(4,), theta=np.full(pg.MLPSoftmax(2, 3, hidden=(4,)).n_params, 1e300))
    finite_or_overflow_error(mlp.probs)
    finite_or_overflow_error(lambda: pg.exact.gradient(mdp, mlp))
    finite_or_overflow_error(lambda: pg.exact.natural_gradient(mdp, mlp))


def test_log_probs_overflow_error() -> None:
    pol = pg.TabularSoftmax(1, 2, theta=[[1.7e308, -1.7e308]])
    with pytest.raises(ValueError, match="log-probabilities overflowed"):
        pol.log_probs()


def test_features_1e300() -> None:
    rng = np.random.default_rng(4)
    pol = pg.LinearSoftmax(1e300 * rng.normal(size=(2, 3, 4)), theta=np.full(4, 1e-300))
    mdp = saturated_mdp()
    assert np.isfinite(pol.probs()).all()
    finite_or_overflow_error(lambda: pg.exact.gradient(mdp, pol))
    finite_or_overflow_error(lambda: pg.exact.natural_gradient(mdp, pol))
    finite_or_overflow_error(lambda: pg.exact.fisher(mdp, pol))
    with pytest.raises(ValueError, match="overflow"):
        pg.LinearSoftmax(1e308 * np.ones((2, 3, 4)), theta=np.full(4, 10.0)).probs()


def test_importance_ratios_overflow_error() -> None:
    mdp = pg.FiniteMDP(np.full((2, 2, 2), 0.5), np.ones((2, 2)), [0.5, 0.5], horizon=3)
    pol = pg.TabularSoftmax(2, 2)
    traj = mdp.sample(pol, 4, seed=0)
    logged = np.where(traj.mask, -800.0, 0.0)  # behavior log-probabilities: ratios e^(800 * len)
    with pytest.raises(ValueError, match="importance weights overflow"):
        pg.importance_weights(pol, logged, traj)
    # moderate ratios are fine
    w = pg.importance_weights(pol, np.where(traj.mask, -1.0, 0.0), traj)
    assert np.isfinite(w).all()


def test_train_history_is_finite() -> None:
    mdp = pg.FiniteMDP(np.full((2, 2, 2), 0.5), np.full((2, 2), 1e300), [0.5, 0.5], horizon=5)
    hist = finite_or_overflow_error(lambda: pg.train(
        mdp, pg.TabularSoftmax(2, 2), optimizer=pg.optim.GradientAscent(0.1), iterations=2, batch=16, seed=0))
    if hist is not None:
        assert np.isfinite(hist["J_estimate"]).all() and np.isfinite(hist["grad_norm"]).all()


def test_off_policy_value_overflow_error() -> None:
    mdp = pg.FiniteMDP(np.full((2, 2, 2), 0.5), np.array([[1e300, -1e300], [0.0, 1e300]]), [0.5, 0.5], horizon=5)
    pol = pg.TabularSoftmax(2, 2)
    traj = mdp.sample(pol, 20, seed=0)
    with pytest.raises(ValueError, match="standard error overflowed"):  # squared deviations ~1e600
        pg.off_policy_value(pol, pol, traj)
    small = pg.FiniteMDP(np.full((2, 2, 2), 0.5), np.full((2, 2), 1e150), [0.5, 0.5], horizon=5)
    res = pg.off_policy_value(pol, pol, small.sample(pol, 20, seed=0))
    assert np.isfinite(res.value) and np.isfinite(res.stderr)


def test_mlp_natural_gradient_with_a_denormal_damping_is_finite_or_named() -> None:
    """K + damping I is singular in float64 for a denormal damping: the solve falls back to the
    eigendecomposition, and the result is finite or a ValueError saying what overflowed."""
    mdp = pg.FiniteMDP(np.full((2, 3, 2), 0.5), np.array([[0.0, 1, 2], [2, 1, 0]]), [0.5, 0.5], horizon=5)
    for theta in ([0, 400, 0, 400, 0, 0, 0, 0, 0.0], np.zeros(9)):
        pi = pg.MLPSoftmax(2, 3, hidden=(), theta=theta)
        try:
            x = pg.exact.natural_gradient(mdp, pi, damping=5e-324, rcond=0.0)
        except ValueError as exc:
            assert "overflowed" in str(exc)
        else:
            assert np.all(np.isfinite(x))


def test_natural_gradient_of_a_saturated_mlp_with_a_huge_gradient_is_named() -> None:
    """The pseudo-inverse of a saturated MLP works on a scaled-up Fisher factor; undoing the scale
    for a gradient near the float64 limit overflows, which is reported, not warned about."""
    pi = pg.MLPSoftmax(2, 3, hidden=(), theta=[0, 400, 0, 400, 0, 0, 0, 0, 0.0])
    opt = pg.optim.NaturalGradient(lr=1e-300, damping=0.0, fisher="sampled")
    theta = pi.theta.copy()
    with pytest.raises(ValueError, match="overflowed"):
        opt.step(pi, np.full(pi.n_params, -5e299), visits=np.array([0.5, 0.5]))
    np.testing.assert_array_equal(pi.theta, theta)
