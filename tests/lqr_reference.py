"""Independent NumPy references for the LQR: the objective by its second-moment recursion (or the
series of the discounted problem, summed term by term), its gradient by central differences, and a
plain simulator. Slow and simple on purpose: the library's C++ paths are checked against these."""

from __future__ import annotations

from typing import Any

import numpy as np

import pgfast as pg


def objective(lqr: pg.LQR, W: np.ndarray, log_std: np.ndarray) -> float:
    """J(W, log_std) = E[sum_t gamma^t r_t], r_t = -(x'Qx + u'Ru), u = W x + sigma * eps."""
    n = lqr.state_dim
    D = np.diag(np.exp(2.0 * np.maximum(log_std, -20.0)))
    L = lqr.A + lqr.B @ W
    M = lqr.Q + W.T @ lqr.R @ W
    noise = lqr.B @ D @ lqr.B.T + (np.zeros((n, n)) if lqr.noise_cov is None else lqr.noise_cov)
    S = np.outer(lqr.x0, lqr.x0) + (np.zeros((n, n)) if lqr.x0_cov is None else lqr.x0_cov)
    c = float(np.trace(lqr.R @ D))
    J, g, t = 0.0, 1.0, 0
    steps = lqr.horizon if lqr.horizon is not None else 100_000
    while t < steps:
        term = g * (float(np.trace(M @ S)) + c)
        J -= term
        if lqr.horizon is None and g < 1e-18 and abs(term) < 1e-16 * max(1.0, abs(J)):
            break
        S = L @ S @ L.T + noise
        g *= lqr.gamma
        t += 1
    return J


def fd_gradient(lqr: pg.LQR, pi: pg.LinearGaussian, h: float = 1e-5) -> np.ndarray:
    """Central differences of :func:`objective` in theta (W row-major, then log_std)."""
    theta = pi.theta.copy()
    m, k = pi.action_dim, pi.feature_dim

    def J(th: np.ndarray) -> float:
        return objective(lqr, th[: m * k].reshape(m, k), th[m * k:])

    out = np.empty_like(theta)
    for j in range(theta.size):
        e = np.zeros_like(theta)
        e[j] = h * max(1.0, abs(theta[j]))
        out[j] = (J(theta + e) - J(theta - e)) / (2 * e[j])
    return out


def simulate(lqr: pg.LQR, pi: pg.LinearGaussian, n: int, seed: int, horizon: int | None = None) -> pg.ContinuousTrajectories:
    """n episodes of ``pi`` on ``lqr`` drawn with NumPy (not the library's streams)."""
    rng = np.random.default_rng(seed)
    H = horizon if horizon is not None else lqr.horizon
    assert H is not None
    nx, m = lqr.state_dim, lqr.action_dim
    W, sigma = pi.W, pi.std
    x = np.broadcast_to(lqr.x0, (n, nx)).copy()
    if lqr.x0_cov is not None:
        x += rng.multivariate_normal(np.zeros(nx), lqr.x0_cov, size=n, method="eigh")
    X = np.zeros((n, H, nx))
    U = np.zeros((n, H, m))
    R = np.zeros((n, H))
    for t in range(H):
        u = x @ W.T + sigma * rng.standard_normal((n, m))
        X[:, t], U[:, t] = x, u
        R[:, t] = -(np.einsum("ij,jk,ik->i", x, lqr.Q, x) + np.einsum("ij,jk,ik->i", u, lqr.R, u))
        x = x @ lqr.A.T + u @ lqr.B.T
        if lqr.noise_cov is not None:
            x += rng.multivariate_normal(np.zeros(nx), lqr.noise_cov, size=n, method="eigh")
    return pg.ContinuousTrajectories(X, U, R, np.full(n, H), gamma=lqr.gamma, source=lqr)


def riccati_gain(lqr: pg.LQR, iterations: int = 100_000, tol: float = 1e-14) -> np.ndarray:
    """The discounted infinite-horizon optimal W = -K by value iteration on the Riccati equation."""
    A, B, Q, R, g = lqr.A, lqr.B, lqr.Q, lqr.R, lqr.gamma
    P = Q.copy()
    for _ in range(iterations):
        K = g * np.linalg.solve(R + g * B.T @ P @ B, B.T @ P @ A)
        P_new = Q + g * A.T @ P @ (A - B @ K)
        P_new = 0.5 * (P_new + P_new.T)
        if np.abs(P_new - P).max() <= tol * max(1.0, np.abs(P).max()):
            P = P_new
            break
        P = P_new
    return np.asarray(-g * np.linalg.solve(R + g * B.T @ P @ B, B.T @ P @ A))


def example(noise: bool = False, horizon: int | None = 20, gamma: float = 1.0, gaussian_start: bool = False,
            **kwargs: Any) -> pg.LQR:
    """A small stabilisable LQR (n = 3, m = 2) used across the tests."""
    rng = np.random.default_rng(7)
    A = np.array([[1.0, 0.2, 0.0], [0.0, 0.9, 0.3], [0.1, 0.0, 0.95]])
    B = np.array([[0.0, 0.1], [0.5, 0.0], [0.1, 0.4]])
    Q = np.diag([1.0, 0.5, 0.2])
    R = np.array([[0.3, 0.05], [0.05, 0.2]])
    C = rng.standard_normal((3, 3)) * 0.1
    return pg.LQR(A, B, Q, R, gamma=gamma, horizon=horizon, x0=[1.0, -0.5, 0.3],
                  x0_cov=C @ C.T if gaussian_start else None, noise_cov=0.01 * np.eye(3) if noise else None, **kwargs)
