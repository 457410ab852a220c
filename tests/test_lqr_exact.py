"""pgfast.exact on an LQR: J, the gradients in W and log_std, the state moments and value
matrices, the Riccati gain, the finite-horizon optimal gains and the best stationary gain.

Checked against the independent NumPy references of ``lqr_reference`` (the objective by its
moment recursion or its series summed term by term, central differences of that objective, the
Riccati gain by value iteration), recursions written here, central differences of the library's
own J, and the documented errors.

Tolerances. J is a sum of at most a few hundred O(1) terms (or a doubling solve of a Lyapunov
equation whose closed loop has spectral radius <= 0.97), so it agrees with the reference to
1e-11 relative. The central differences (step 1e-5 relative) carry a truncation error of order
h^2 ~ 1e-10 and a rounding error of order eps |J| / h ~ 1e-10: the brief's bound 1e-6 leaves
room for both.
"""

from __future__ import annotations

from typing import Any

import lqr_reference as ref
import numpy as np
import pytest

import pgfast as pg
from pgfast._gaussian import LOG_STD_MIN

W0 = np.array([[-0.2, -0.3, 0.1], [0.05, -0.4, -0.6]])  # stabilising for the example (n = 3, m = 2)
NOISY = np.log([0.3, 0.5])
QUIET = np.full(2, LOG_STD_MIN - 1.0)  # below the floor: sigma = 2e-9, no gradient in log_std

CASES = [
    pytest.param(dict(horizon=20), id="finite"),
    pytest.param(dict(horizon=20, noise=True), id="finite-process-noise"),
    pytest.param(dict(horizon=15, gamma=0.9, noise=True, gaussian_start=True), id="finite-discounted-gaussian"),
    pytest.param(dict(horizon=1), id="finite-H1"),
    pytest.param(dict(horizon=None, gamma=0.9), id="discounted"),
    pytest.param(dict(horizon=None, gamma=0.95, noise=True, gaussian_start=True), id="discounted-noise-gaussian"),
]


def _policy(W: np.ndarray, log_std: np.ndarray) -> pg.LinearGaussian:
    return pg.LinearGaussian(W.shape[1], W.shape[0], W=W, log_std=log_std)


def _fd_own(lqr: pg.LQR, pi: pg.LinearGaussian, h: float = 1e-5) -> np.ndarray:
    """Central differences of the library's own J (pg.exact.evaluate)."""
    theta = pi.theta.copy()
    out = np.empty_like(theta)
    for j in range(theta.size):
        e = np.zeros_like(theta)
        e[j] = h * max(1.0, abs(theta[j]))
        vals = []
        for sign in (1.0, -1.0):
            q = _policy(pi.W, pi.log_std)
            q.theta = theta + sign * e
            vals.append(pg.exact.evaluate(lqr, q).J)
        out[j] = (vals[0] - vals[1]) / (2 * e[j])
    return out


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def _moments(lqr: pg.LQR, W: np.ndarray, log_std: np.ndarray, H: int) -> tuple[np.ndarray, np.ndarray]:
    """S_t = E[x_t x_t'] and P_t (t < H) by their recursions, in NumPy."""
    n = lqr.state_dim
    D = np.diag(np.exp(2 * np.maximum(log_std, LOG_STD_MIN)))
    L = lqr.A + lqr.B @ W
    M = lqr.Q + W.T @ lqr.R @ W
    Psi = lqr.B @ D @ lqr.B.T + (0 if lqr.noise_cov is None else lqr.noise_cov)
    S = [np.outer(lqr.x0, lqr.x0) + (0 if lqr.x0_cov is None else lqr.x0_cov)]
    for _ in range(H - 1):
        S.append(L @ S[-1] @ L.T + Psi)
    P = [np.zeros((n, n))]
    for _ in range(H):
        P.append(M + lqr.gamma * L.T @ P[-1] @ L)
    return np.array(S), np.array(P[:0:-1])


# -- J and the gradients ----------------------------------------------------------------------


@pytest.mark.parametrize("kw", CASES)
@pytest.mark.parametrize("log_std", [NOISY, QUIET], ids=["action-noise", "no-action-noise"])
def test_value_and_gradient_match_the_reference(kw: dict[str, Any], log_std: np.ndarray) -> None:
    lqr = ref.example(**kw)
    pi = _policy(W0, log_std)
    ev = pg.exact.evaluate(lqr, pi)
    J = ref.objective(lqr, W0, log_std)
    assert ev.J == ev.value and abs(ev.J - J) <= 1e-11 * abs(J)
    assert ev.objective == ("discounted" if lqr.horizon is None else "finite_horizon")
    grad = pg.exact.gradient(lqr, pi)
    assert grad.shape == pi.theta.shape
    np.testing.assert_array_equal(grad, ev.grad)
    np.testing.assert_array_equal(grad, np.concatenate([ev.grad_W.ravel(), ev.grad_log_std]))
    fd = ref.fd_gradient(lqr, pi)
    assert _rel(grad, fd) < 1e-6, (grad, fd)
    assert _rel(grad, _fd_own(lqr, pi)) < 1e-6
    for k in range(grad.size):  # each coordinate, against the scale of the gradient
        assert abs(grad[k] - fd[k]) < 1e-6 * np.abs(fd).max()
    if log_std is QUIET:
        np.testing.assert_array_equal(ev.grad_log_std, 0.0)
    else:
        assert np.all(ev.grad_log_std < 0.0)  # noise only costs


@pytest.mark.parametrize("seed", range(6))
def test_random_systems_against_finite_differences(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(1, 6)), int(rng.integers(1, 4))
    A = rng.standard_normal((n, n))
    A *= 0.8 / max(np.abs(np.linalg.eigvals(A)).max(), 1e-3)
    B = rng.standard_normal((n, m))
    C = rng.standard_normal((n, n))
    Rm = rng.standard_normal((m, m))
    horizon = None if seed % 2 else int(rng.integers(1, 30))
    lqr = pg.LQR(A, B, C @ C.T, Rm @ Rm.T + 0.1 * np.eye(m), gamma=0.9 if horizon is None else 0.97,
                 horizon=horizon, x0=rng.standard_normal(n), x0_cov=0.1 * np.eye(n) if seed % 3 else None,
                 noise_cov=0.05 * np.eye(n) if seed % 3 == 1 else None)
    W = 0.1 * rng.standard_normal((m, n))
    while np.abs(np.linalg.eigvals(A + B @ W)).max() > 0.95:  # a stabilising W
        W *= 0.5
    log_std = rng.uniform(-2.0, 0.5, m)
    pi = _policy(W, log_std)
    ev = pg.exact.evaluate(lqr, pi)
    J = ref.objective(lqr, W, log_std)
    assert abs(ev.J - J) <= 1e-11 * abs(J)
    assert _rel(ev.grad, ref.fd_gradient(lqr, pi)) < 1e-6


@pytest.mark.parametrize("kw", CASES[:3])
def test_finite_horizon_tables(kw: dict[str, Any]) -> None:
    lqr = ref.example(**kw)
    ev = pg.exact.evaluate(lqr, _policy(W0, NOISY))
    assert lqr.horizon is not None
    S, P = _moments(lqr, W0, NOISY, lqr.horizon)
    n = lqr.state_dim
    assert ev.state_cov.shape == ev.value_matrices.shape == (lqr.horizon, n, n)
    np.testing.assert_allclose(ev.state_cov, S, rtol=1e-12, atol=1e-12 * np.abs(S).max())
    np.testing.assert_allclose(ev.P, P, rtol=1e-12, atol=1e-12 * np.abs(P).max())
    # J = -tr(P_0 S_0) - sum_t gamma^{t+1} tr(P_{t+1} Psi) - sum_t gamma^t tr(R D)
    D = np.diag(np.exp(2 * NOISY))
    Psi = lqr.B @ D @ lqr.B.T + (0 if lqr.noise_cov is None else lqr.noise_cov)
    g = lqr.gamma ** np.arange(lqr.horizon)
    J = -np.trace(P[0] @ S[0]) - sum(g[t] * lqr.gamma * np.trace(P[t + 1] @ Psi) for t in range(lqr.horizon - 1))
    J -= g.sum() * np.trace(lqr.R @ D)
    assert abs(ev.J - J) <= 1e-12 * abs(J)


def test_discounted_tables_solve_their_lyapunov_equations() -> None:
    lqr = ref.example(horizon=None, gamma=0.95, noise=True, gaussian_start=True)
    ev = pg.exact.evaluate(lqr, _policy(W0, NOISY))
    g = lqr.gamma
    L = lqr.A + lqr.B @ W0
    M = lqr.Q + W0.T @ lqr.R @ W0
    Psi = lqr.B @ np.diag(np.exp(2 * NOISY)) @ lqr.B.T + lqr.noise_cov
    S0 = np.outer(lqr.x0, lqr.x0) + lqr.x0_cov
    Sig, P = ev.state_cov, ev.P
    np.testing.assert_allclose(Sig, S0 + g / (1 - g) * Psi + g * L @ Sig @ L.T, rtol=1e-12, atol=1e-12 * np.abs(Sig).max())
    np.testing.assert_allclose(P, M + g * L.T @ P @ L, rtol=1e-12, atol=1e-12 * np.abs(P).max())
    # Sigma_W is the discounted sum of the finite horizon's second moments
    long = pg.exact.evaluate(lqr.with_options(horizon=1500), _policy(W0, NOISY))
    disc = g ** np.arange(1500)
    np.testing.assert_allclose(np.tensordot(disc, long.state_cov, axes=1), Sig, rtol=1e-10)
    assert abs(long.J - ev.J) <= 1e-10 * abs(ev.J)
    assert ev.spectral_radius == pytest.approx(np.abs(np.linalg.eigvals(np.sqrt(g) * L)).max(), rel=1e-12)


def test_objective_and_gamma_overrides() -> None:
    lqr = ref.example(horizon=30, gamma=0.9, noise=True)
    pi = _policy(W0, NOISY)
    inf = pg.exact.evaluate(lqr, pi, "discounted")
    same = pg.exact.evaluate(lqr.with_options(horizon=None), pi)
    assert inf.objective == "discounted" and inf.J == same.J
    np.testing.assert_array_equal(inf.grad, same.grad)
    fin = pg.exact.evaluate(lqr, pi, gamma=0.5)
    assert fin.gamma == 0.5 and fin.J == pg.exact.evaluate(lqr.with_options(gamma=0.5), pi).J
    grad, ev = pg.exact.gradient(lqr, pi, return_evaluation=True)
    assert isinstance(ev, pg.exact.LQREvaluation) and ev.state_cov.shape == (30, 3, 3)
    np.testing.assert_array_equal(grad, pg.exact.evaluate(lqr, pi).grad)


# -- stability --------------------------------------------------------------------------------


def test_unstable_gain_is_detected() -> None:
    lqr = ref.example(horizon=None, gamma=0.9)
    W = np.array([[0.0, 3.0, 0.0], [0.0, 0.0, 3.0]])
    rho = np.abs(np.linalg.eigvals(np.sqrt(0.9) * (lqr.A + lqr.B @ W))).max()
    assert rho > 1
    with pytest.raises(ValueError, match=r"W is not stabilising for gamma = 0\.9: J = -inf; the spectral radius") as err:
        pg.exact.evaluate(lqr, _policy(W, NOISY))
    assert f"{rho:.4g}"[:4] in str(err.value)
    with pytest.raises(ValueError, match="not stabilising"):
        pg.exact.gradient(lqr, _policy(W, NOISY))
    # the finite horizon is finite, until the moments overflow float64
    short = lqr.with_options(horizon=10, gamma=1.0)
    assert np.isfinite(pg.exact.evaluate(short, _policy(W, NOISY)).J)
    with pytest.raises(ValueError, match="overflowed float64"):
        pg.exact.evaluate(lqr.with_options(horizon=2000, gamma=1.0), _policy(W, NOISY))


def test_marginal_discount_is_stable() -> None:
    """gamma close to 1 with a stable closed loop: the doubling solve converges."""
    lqr = ref.example(horizon=None, gamma=0.999)
    pi = _policy(W0, QUIET)
    ev = pg.exact.evaluate(lqr, pi)
    J = ref.objective(lqr, W0, QUIET)
    assert abs(ev.J - J) <= 1e-9 * abs(J)


# -- optimal control --------------------------------------------------------------------------


@pytest.mark.parametrize("gamma", [0.5, 0.9, 0.99])
@pytest.mark.parametrize("noise", [False, True])
def test_riccati_gain(gamma: float, noise: bool) -> None:
    lqr = ref.example(horizon=None, gamma=gamma, noise=noise, gaussian_start=noise)
    best = pg.exact.optimal(lqr)
    W = ref.riccati_gain(lqr)
    assert best.objective == "discounted" and best.W.shape == (2, 3)
    np.testing.assert_allclose(best.W, W, rtol=0, atol=1e-9 * np.abs(W).max())
    assert best.spectral_radius is not None and best.spectral_radius < 1
    assert best.stationary_W is None and best.stationary_value is None
    ev = pg.exact.evaluate(lqr, best.policy())
    assert abs(ev.J - best.J) <= 1e-12 * abs(best.J)
    np.testing.assert_allclose(ev.P, best.P, rtol=1e-12)
    # the gradient vanishes there, with or without action noise (noise does not move the gain)
    scale = np.abs(pg.exact.evaluate(lqr, _policy(best.W + 0.05, QUIET)).grad_W).max()
    for log_std in (QUIET, NOISY):
        assert np.abs(pg.exact.evaluate(lqr, best.policy(log_std)).grad_W).max() < 1e-10 * scale
    # and every other gain tried does worse
    rng = np.random.default_rng(1)
    for _ in range(20):
        Wp = best.W + 0.1 * rng.standard_normal(best.W.shape)
        try:
            assert pg.exact.evaluate(lqr, _policy(Wp, QUIET)).J <= best.J
        except ValueError as exc:  # a perturbation that does not stabilise: J = -inf
            assert "not stabilising" in str(exc)


def test_finite_horizon_optimal_gains() -> None:
    lqr = ref.example(horizon=25, gamma=0.95, noise=True, gaussian_start=True)
    best = pg.exact.optimal(lqr)
    assert best.objective == "finite_horizon" and best.W.shape == (25, 2, 3) and best.P.shape == (25, 3, 3)
    assert best.spectral_radius is None and best.iterations == 25

    def J_of(gains: np.ndarray) -> float:  # time-varying gains, no action noise, NumPy recursion
        S = np.outer(lqr.x0, lqr.x0) + lqr.x0_cov
        J = 0.0
        for t, W in enumerate(gains):
            J -= lqr.gamma**t * np.trace((lqr.Q + W.T @ lqr.R @ W) @ S)
            L = lqr.A + lqr.B @ W
            S = L @ S @ L.T + lqr.noise_cov
        return J

    assert abs(J_of(best.W) - best.J) <= 1e-12 * abs(best.J)
    rng = np.random.default_rng(2)
    for _ in range(10):  # other time-varying gains do worse
        assert J_of(best.W + 0.05 * rng.standard_normal(best.W.shape)) < best.J
    # every stationary gain tried does worse, the best stationary one included
    stationary = [best.W[0], best.W[-1], W0, ref.riccati_gain(lqr.with_options(horizon=None)), best.stationary_W]
    stationary += [best.stationary_W + 0.05 * rng.standard_normal((2, 3)) for _ in range(10)]
    values = [pg.exact.evaluate(lqr, _policy(np.asarray(W), QUIET)).J for W in stationary]
    assert max(values) <= best.J
    assert best.stationary_value is not None and best.stationary_value <= best.J
    assert best.stationary_value == pytest.approx(values[4], rel=1e-12)
    assert max(values) == pytest.approx(best.stationary_value, rel=1e-12)  # a local maximum
    assert best.stationary_converged and best.stationary_grad_W is not None
    assert best.stationary_iterations is not None and best.stationary_iterations >= 1
    scale = np.abs(pg.exact.evaluate(lqr, _policy(best.W[0], QUIET)).grad_W).max()
    assert np.abs(pg.exact.evaluate(lqr, best.policy()).grad_W).max() < 1e-9 * scale


def test_long_finite_horizon_gain_tends_to_the_riccati_gain() -> None:
    lqr = ref.example(horizon=400, gamma=0.9)
    best = pg.exact.optimal(lqr)
    inf = pg.exact.optimal(lqr.with_options(horizon=None))
    np.testing.assert_allclose(best.W[0], inf.W, atol=1e-10)
    np.testing.assert_allclose(best.P[0], inf.P, rtol=1e-10)
    np.testing.assert_allclose(best.W[-1], 0.0)  # the last step has nothing to steer for


def test_action_noise_moves_only_the_stationary_finite_horizon_gain() -> None:
    lqr = ref.example(horizon=20)
    quiet = pg.exact.optimal(lqr)
    noisy = pg.exact.optimal(lqr, log_std=np.log([0.5, 1.0]))
    np.testing.assert_array_equal(quiet.W, noisy.W)  # the time-varying optimum ignores the noise
    assert quiet.J == noisy.J
    assert quiet.stationary_W is not None and noisy.stationary_W is not None
    assert np.abs(quiet.stationary_W - noisy.stationary_W).max() > 1e-4
    for best, log_std in ((quiet, QUIET), (noisy, np.log([0.5, 1.0]))):
        ev = pg.exact.evaluate(lqr, best.policy(log_std))
        assert best.stationary_value == pytest.approx(ev.J, rel=1e-12)
        assert np.abs(ev.grad_W).max() < 1e-9 * np.abs(ev.J)


def test_optimal_without_a_stabilising_solution() -> None:
    lqr = pg.LQR([[2.0]], [[0.0]], [[1.0]], [[1.0]], gamma=0.9, horizon=None, x0=[1.0])
    with pytest.raises(ValueError, match="no stabilising solution for gamma = 0.9"):
        pg.exact.optimal(lqr)
    # discounting can make an uncontrollable unstable mode harmless: sqrt(0.2) * 2 < 1
    ok = pg.exact.optimal(lqr.with_options(gamma=0.2))
    assert ok.W[0, 0] == 0.0 and ok.J == pytest.approx(-1.0 / (1.0 - 0.2 * 4.0))


# -- bad inputs -------------------------------------------------------------------------------


def test_bad_inputs() -> None:
    lqr = ref.example(horizon=10)
    inf = ref.example(horizon=None, gamma=0.9)
    pi = _policy(W0, NOISY)
    with pytest.raises(TypeError, match="policy must be a pgfast.LinearGaussian"):
        pg.exact.evaluate(lqr, pg.TabularSoftmax(3, 2))  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="identity features"):
        pg.exact.evaluate(lqr, pg.LinearGaussian(3, 2, features="affine"))
    with pytest.raises(ValueError, match=r"obs_dim = state_dim = 3 and action_dim = 2"):
        pg.exact.gradient(lqr, pg.LinearGaussian(2, 2))
    with pytest.raises(ValueError, match=r"obs_dim = state_dim = 3 and action_dim = 2"):
        pg.exact.gradient(lqr, pg.LinearGaussian(3, 1))
    with pytest.raises(ValueError, match="objectives 'finite_horizon' and 'discounted'"):
        pg.exact.evaluate(lqr, pi, "average_reward")  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="needs an LQR with a horizon"):
        pg.exact.evaluate(inf, pi, "finite_horizon")
    with pytest.raises(ValueError, match="needs gamma < 1"):
        pg.exact.evaluate(lqr, pi, "discounted")
    with pytest.raises(ValueError, match="needs gamma < 1"):
        pg.exact.optimal(inf, gamma=1.0)
    with pytest.raises(ValueError, match="gamma must be in"):
        pg.exact.evaluate(lqr, pi, gamma=1.5)
    with pytest.raises(ValueError, match="method must be one of"):
        pg.exact.evaluate(lqr, pi, method="bogus")  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="threads must be"):
        pg.exact.gradient(lqr, pi, threads=0)
    with pytest.raises(ValueError, match=r"log_std must be a number or have shape \(action_dim,\) = \(2,\)"):
        pg.exact.optimal(lqr, log_std=[0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="log_std must be finite"):
        pg.exact.optimal(lqr, log_std=np.nan)
    with pytest.raises(ValueError, match="tol must be in"):
        pg.exact.optimal(lqr, tol=0.0)
    with pytest.raises(TypeError, match="mdp must be a pgfast.FiniteMDP"):
        pg.exact.fisher(lqr, pi)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="mdp must be a pgfast.FiniteMDP or pgfast.LQR"):
        pg.exact.optimal("lqr")  # type: ignore[call-overload]
    mdp = pg.FiniteMDP(np.full((1, 1, 1), 1.0), np.zeros((1, 1)), mu0=[1.0], horizon=2)
    with pytest.raises(ValueError, match="log_std .* is for an LQR"):
        pg.exact.optimal(mdp, log_std=0.0)  # type: ignore[call-overload]
    assert pg.exact.optimal(mdp).objective == "finite_horizon"  # the default objective is unchanged
    assert pg.exact.evaluate(mdp, pg.TabularSoftmax(1, 1)).objective == "finite_horizon"


def test_tables_larger_than_memory() -> None:
    lqr = ref.example(horizon=2**31 - 1)  # 2^31 (3, 3) tables: 150 GiB each
    with pytest.raises(MemoryError, match=r"the exact LQR tables \(H=2147483647, n=3, m=2\) needs .* bytes"):
        pg.exact.evaluate(lqr, _policy(W0, NOISY))
    with pytest.raises(MemoryError, match="use a shorter horizon"):
        pg.exact.gradient(lqr, _policy(W0, NOISY))
    with pytest.raises(MemoryError, match="bytes"):
        pg.exact.optimal(lqr)


def test_long_horizons_answer_ctrl_c() -> None:
    from test_interrupts import assert_interrupts

    # H = 2e6 steps: ~1.4 s uninterrupted for the gradient, ~6 s for the optimum (gains and search)
    lqr = pg.LQR([[0.9, 0.1], [0.0, 0.9]], [[0.0], [1.0]], np.eye(2), [[1.0]], horizon=2_000_000, x0=[1.0, 0.0])
    assert_interrupts(lambda: pg.exact.gradient(lqr, pg.LinearGaussian(2, 1)))
    assert_interrupts(lambda: pg.exact.optimal(lqr))
    small = ref.example(horizon=10)  # and the next call works
    assert pg.exact.evaluate(small, _policy(W0, NOISY)).J == pytest.approx(ref.objective(small, W0, NOISY), rel=1e-12)


def test_theta_is_read_once_and_not_written() -> None:
    lqr = ref.example(horizon=10)
    pi = _policy(W0, NOISY)
    before = pi.theta.copy()
    pg.exact.gradient(lqr, pi)
    pg.exact.evaluate(lqr, pi)
    np.testing.assert_array_equal(pi.theta, before)


def test_kernel_checks_its_inputs() -> None:
    """Direct calls of the compiled kernel with inconsistent arrays raise instead of crashing."""
    from pgfast import _core

    e = np.eye(2)
    with pytest.raises(ValueError, match="B must have shape"):
        _core.lqr_exact.evaluate(e, np.ones((3, 1)), e, np.eye(1), e, e, 0.9, 0, np.zeros((1, 2)), np.ones(1), True)
    with pytest.raises(ValueError, match="W must have shape"):
        _core.lqr_exact.evaluate(e, np.ones((2, 1)), e, np.eye(1), e, e, 0.9, 0, np.zeros((2, 2)), np.ones(1), True)
    with pytest.raises(ValueError, match="infinite horizon needs gamma < 1"):
        _core.lqr_exact.optimal(e, np.ones((2, 1)), e, np.eye(1), e, e, 1.0, 0)
    with pytest.raises(ValueError, match="contains NaN"):
        _core.lqr_exact.optimal(e * np.nan, np.ones((2, 1)), e, np.eye(1), e, e, 0.5, 3)
