"""Estimators on stored batches with vector states (pg.ContinuousTrajectories): pg.policy_gradient
(return / reward-to-go weights, the leave-one-out mean and time baselines, array baselines,
pg.LinearValueBaseline), pg.score and pg.log_likelihood.

1. Unbiasedness against the LQR's exact gradient (tests/lqr_reference: central differences of the
   objective's second-moment recursion), batches from the NumPy simulator of lqr_reference, and
   against an enumerated problem with discrete actions; z-tests on the estimators' own standard
   errors, Bonferroni-corrected (the standard of tests/test_estimators.py).
2. The per-trajectory rows against the definitions written out in NumPy (pi.grad_log_prob and
   leave-one-out loops), and pg.score.
3. Reproducibility: bit-identical for any thread count and any chunking of the batch.
4. The standard errors against the spread of repeated estimates.
5. pg.LinearValueBaseline (exact on a noise-free LQR), pg.log_likelihood with the LQR's densities.
6. Rejected inputs.
"""

from __future__ import annotations

import pickle
from typing import Any

import lqr_reference as ref
import numpy as np
import pytest
from helpers import Family, k_two_sided

import pgfast as pg
from pgfast import _continuous_estimators as ce

N_BIG = 40_000


def _policy(lqr: pg.LQR, scale: float = 0.3, log_std: float = np.log(0.5)) -> pg.LinearGaussian:
    W = -scale * np.array([[0.2, 1.0, 0.3], [0.4, 0.1, 1.0]])
    return pg.LinearGaussian(lqr.state_dim, lqr.action_dim, W=W, log_std=[log_std, log_std - 0.2])


class ObsSoftmax:
    """A linear softmax over discrete actions on observations (the policy protocol: obs_dim,
    n_actions, theta, n_params, log_prob and grad_log_prob over (..., obs_dim) states and (...)
    integer actions), written independently for the tests."""

    def __init__(self, obs_dim: int, n_actions: int, W: np.ndarray) -> None:
        self.obs_dim, self.n_actions = obs_dim, n_actions
        self.theta = np.asarray(W, dtype=float).ravel().copy()
        self.n_params = self.theta.size

    def _logp(self, x: np.ndarray) -> np.ndarray:
        z = x @ self.theta.reshape(self.n_actions, self.obs_dim).T
        z = z - z.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

    def log_prob(self, x: Any, a: Any) -> np.ndarray:
        lp = self._logp(np.asarray(x, float))
        return np.take_along_axis(lp, np.asarray(a)[..., None], axis=-1)[..., 0]

    def grad_log_prob(self, x: Any, a: Any) -> np.ndarray:
        x = np.asarray(x, float)
        p = np.exp(self._logp(x))
        onehot = np.eye(self.n_actions)[np.asarray(a)]
        return ((onehot - p)[..., :, None] * x[..., None, :]).reshape(*x.shape[:-1], -1)


# -- 1. unbiasedness -----------------------------------------------------------------------------


def _combos(lqr: pg.LQR, fitted: pg.LinearValueBaseline) -> list[tuple[str, dict[str, Any]]]:
    H = lqr.horizon
    assert H is not None
    out: list[tuple[str, dict[str, Any]]] = []
    for weights in ("reward_to_go", "return"):
        out += [(f"{weights} none", {"weights": weights}),
                (f"{weights} mean", {"weights": weights, "baseline": "mean"}),
                (f"{weights} fitted value", {"weights": weights, "baseline": fitted}),
                (f"{weights} cross-fitted value", {"weights": weights, "baseline": pg.LinearValueBaseline(3, H)})]
    out.append(("reward_to_go time", {"baseline": "time"}))
    return out


@pytest.mark.parametrize("case", ["noise", "gaussian_start_discounted"])
def test_lqr_estimators_unbiased(case: str) -> None:
    if case == "noise":
        lqr = ref.example(noise=True, horizon=6)
    else:
        lqr = ref.example(gaussian_start=True, horizon=6, gamma=0.8)
    pi = _policy(lqr)
    exact = ref.fd_gradient(lqr, pi)
    J = ref.objective(lqr, pi.W, pi.log_std)
    traj = ref.simulate(lqr, pi, N_BIG, seed=11)
    fitted = pg.LinearValueBaseline(3, 6).fit(ref.simulate(lqr, pi, 4000, seed=12))
    fam = Family()
    for name, kw in _combos(lqr, fitted):
        fam.grad(name, pg.policy_gradient(pi, traj, **kw), exact, J)
    # an array baseline: any function of the state at t keeps the estimate unbiased
    b = -np.einsum("nhi,nhi->nh", traj.states, traj.states) * np.arange(6, 0, -1)
    fam.grad("array baseline", pg.policy_gradient(pi, traj, baseline=b), exact, J)
    fam.check()


def test_baselines_reduce_variance() -> None:
    lqr = ref.example(noise=True, horizon=6)
    pi = _policy(lqr)
    traj = ref.simulate(lqr, pi, 20_000, seed=3)
    se = {b if isinstance(b, str) or b is None else "value": pg.policy_gradient(pi, traj, baseline=b).stderr
          for b in (None, "time", pg.LinearValueBaseline(3, 6))}
    # the value baseline is the advantage estimator: far below the plain reward-to-go
    assert np.all(se["value"] < se[None])
    assert np.all(se["time"] < se[None])


def _discrete_problem() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start states (K, 2) drawn uniformly, x1 = M x0 + e_a, rewards -|x|^2 + c_a . x."""
    points = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.5], [0.5, -1.5]])
    M = np.array([[0.9, 0.2], [-0.1, 0.8]])
    C = np.array([[1.0, 0.0], [0.0, 1.0], [-0.5, -0.5]])
    return points, M, C


def _discrete_J(pi: ObsSoftmax) -> float:
    points, M, C = _discrete_problem()
    J = 0.0
    for x0 in points:
        p0 = np.exp(pi._logp(x0))
        for a0 in range(3):
            r0 = -x0 @ x0 + C[a0] @ x0
            x1 = M @ x0 + np.eye(2)[a0 % 2] * (a0 > 0)
            p1 = np.exp(pi._logp(x1))
            J += p0[a0] * (r0 + sum(p1[a1] * (-x1 @ x1 + C[a1] @ x1) for a1 in range(3))) / len(points)
    return float(J)


def _discrete_batch(pi: ObsSoftmax, n: int, seed: int) -> pg.ContinuousTrajectories:
    points, M, C = _discrete_problem()
    rng = np.random.default_rng(seed)
    X = np.zeros((n, 2, 2))
    A = np.zeros((n, 2), dtype=np.int64)
    R = np.zeros((n, 2))
    x = points[rng.integers(len(points), size=n)]
    for t in range(2):
        p = np.exp(pi._logp(x))
        a = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
        X[:, t], A[:, t] = x, a
        R[:, t] = -np.einsum("ni,ni->n", x, x) + np.einsum("ni,ni->n", C[a], x)
        x = x @ M.T + np.eye(2)[a % 2] * (a > 0)[:, None]
    return pg.ContinuousTrajectories(X, A, R, np.full(n, 2))


def test_discrete_actions_unbiased() -> None:
    pi = ObsSoftmax(2, 3, W=[[0.3, -0.2], [0.0, 0.5], [-0.4, 0.1]])
    h = 1e-6
    exact = np.zeros(pi.n_params)
    for j in range(pi.n_params):
        for sign in (1, -1):
            q = ObsSoftmax(2, 3, W=pi.theta.reshape(3, 2))
            q.theta[j] += sign * h
            exact[j] += sign * _discrete_J(q) / (2 * h)
    traj = _discrete_batch(pi, N_BIG, seed=5)
    assert traj.discrete_actions
    fam = Family()
    for kw in ({}, {"weights": "return"}, {"baseline": "time"}, {"baseline": "mean", "weights": "return"},
               {"baseline": pg.LinearValueBaseline(2, 2, features="affine")}):
        fam.grad(str(kw), pg.policy_gradient(pi, traj, **kw), exact, _discrete_J(pi))
    fam.check()


# -- 2. the rows against the definitions ---------------------------------------------------------


def _definition_weights(traj: pg.ContinuousTrajectories, weights: str, baseline: str | None, gamma: float) -> np.ndarray:
    N, H = traj.rewards.shape
    ln = traj.lengths
    G = np.zeros((N, H))
    for i in range(N):
        acc = 0.0
        for t in range(ln[i] - 1, -1, -1):
            acc = traj.rewards[i, t] + gamma * acc
            G[i, t] = acc
    R = G[:, 0]
    w = np.zeros((N, H))
    for i in range(N):
        others = [j for j in range(N) if j != i]
        for t in range(ln[i]):
            if weights == "return":
                b = np.mean(R[others]) if baseline == "mean" else 0.0
                w[i, t] = R[i] - b
                continue
            if baseline == "mean":
                b = np.mean(R[others])
            elif baseline == "time":
                run = [j for j in others if ln[j] > t]
                b = np.mean(G[run, t]) if run else 0.0
            else:
                b = 0.0
            w[i, t] = gamma**t * (G[i, t] - b)
    return w


@pytest.mark.parametrize("weights,baseline", [("reward_to_go", None), ("reward_to_go", "mean"), ("reward_to_go", "time"),
                                              ("return", None), ("return", "mean")])
def test_rows_match_the_definition(weights: str, baseline: str | None) -> None:
    lqr = ref.example(noise=True, horizon=7, gamma=0.9)
    pi = _policy(lqr)
    full = ref.simulate(lqr, pi, 40, seed=2)
    ln = np.random.default_rng(0).integers(0, 8, size=40)  # episodes of every length, 0 included
    mask = np.arange(7) < ln[:, None]
    traj = pg.ContinuousTrajectories(np.where(mask[..., None], full.states, 0.0),
                                     np.where(mask[..., None], full.actions, 0.0), np.where(mask, full.rewards, 0.0),
                                     ln, gamma=0.9)
    est = pg.policy_gradient(pi, traj, weights=weights, baseline=baseline, per_trajectory=True)
    w = _definition_weights(traj, weights, baseline, 0.9)
    rows = np.einsum("nh,nhp->np", w * mask, pi.grad_log_prob(traj.states, traj.actions))
    np.testing.assert_allclose(est.per_trajectory, rows, rtol=1e-12, atol=1e-12 * np.abs(rows).max())
    np.testing.assert_allclose(est.grad, rows.mean(axis=0), rtol=1e-12, atol=1e-13 * np.abs(rows).max())
    np.testing.assert_allclose(est.stderr, rows.std(axis=0, ddof=1) / np.sqrt(40), rtol=1e-9)
    G = traj.returns()
    assert est.value == pytest.approx(G.mean(), rel=1e-12)
    assert est.value_stderr == pytest.approx(G.std(ddof=1) / np.sqrt(40), rel=1e-9)
    assert est.n == 40 and est.n_steps == int(ln.sum())
    # pg.score with the same weights is the same estimate
    g, srows = pg.score(pi, traj, w, per_trajectory=True)
    np.testing.assert_allclose(g, est.grad, rtol=1e-12, atol=1e-13 * np.abs(rows).max())
    np.testing.assert_allclose(srows, est.per_trajectory, rtol=1e-12, atol=1e-13 * np.abs(rows).max())


def test_generic_policy_path_matches_the_gaussian_closed_form() -> None:
    """The chunks of any policy go through its grad_log_prob; a LinearGaussian's through the closed form."""

    class Wrapped:
        def __init__(self, pi: pg.LinearGaussian) -> None:
            self.pi, self.obs_dim, self.action_dim = pi, pi.obs_dim, pi.action_dim
            self.theta, self.n_params = pi.theta, pi.n_params

        def log_prob(self, x: Any, u: Any) -> np.ndarray:
            return self.pi.log_prob(x, u)

        def grad_log_prob(self, x: Any, u: Any) -> np.ndarray:
            return self.pi.grad_log_prob(x, u)

    lqr = ref.example(horizon=5)
    pi = pg.LinearGaussian(3, 2, W=-0.05 * np.ones((2, 10)), log_std=[-0.5, -30.0], features="quadratic")  # one floored
    pi0 = _policy(lqr)
    traj = ref.simulate(lqr, pi0, 300, seed=4)
    a = pg.policy_gradient(pi, traj, baseline="time", per_trajectory=True)
    b = pg.policy_gradient(Wrapped(pi), traj, baseline="time", per_trajectory=True)
    assert a.per_trajectory is not None and b.per_trajectory is not None
    np.testing.assert_allclose(a.per_trajectory, b.per_trajectory, rtol=1e-10, atol=1e-10 * np.abs(a.per_trajectory).max())
    assert np.all(a.grad[-1] == 0.0)  # the floored log_std has score 0


# -- 3. reproducibility --------------------------------------------------------------------------


def test_bit_identical_for_any_threads_and_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    lqr = ref.example(noise=True, horizon=9)
    pi = _policy(lqr)
    traj = ref.simulate(lqr, pi, 3000, seed=8)
    vb = pg.LinearValueBaseline(3, 9).fit(ref.simulate(lqr, pi, 500, seed=9))
    for kw in ({}, {"baseline": "time"}, {"weights": "return", "baseline": "mean"}, {"baseline": vb}):
        base = pg.policy_gradient(pi, traj, threads=1, per_trajectory=True, **kw)
        monkeypatch.setattr(ce, "_CHUNK_BYTES", 20_000)  # about 60 trajectories a chunk
        for threads in (1, 2, 3, 7):
            other = pg.policy_gradient(pi, traj, threads=threads, per_trajectory=True, **kw)
            for field in ("grad", "stderr", "per_trajectory"):
                assert np.array_equal(getattr(base, field), getattr(other, field)), (kw, threads, field)
            assert (base.value, base.value_stderr) == (other.value, other.value_stderr)
        monkeypatch.undo()


def test_canonical_sums_follow_the_block_tree() -> None:
    rng = np.random.default_rng(1)
    for n in (1, 255, 256, 257, 3 * 256 + 5, 70 * 512):
        cols = rng.standard_normal((n, 3)) * 10.0 ** rng.integers(-8, 8, size=(n, 1))
        block, blocks = pg.block_grid(n)
        parts = [cols[b * block: (b + 1) * block].sum(axis=0) for b in range(blocks)]
        while len(parts) > 1:  # reduce.hpp: node (l, i) = (l-1, 2i) + (l-1, 2i+1)
            parts = [parts[i] + parts[i + 1] if i + 1 < len(parts) else parts[i] for i in range(0, len(parts), 2)]
        assert np.array_equal(ce.canonical_sums(cols), parts[0])
        np.testing.assert_allclose(ce.canonical_sums(cols), cols.sum(axis=0), rtol=1e-9, atol=1e-6)


# -- 4. standard errors --------------------------------------------------------------------------


def test_stderr_matches_the_spread_of_repeated_estimates() -> None:
    lqr = ref.example(noise=True, horizon=5)
    pi = _policy(lqr)
    reps, n = 300, 200
    grads, ses = [], []
    for r in range(reps):
        est = pg.policy_gradient(pi, ref.simulate(lqr, pi, n, seed=1000 + r), baseline="time")
        grads.append(est.grad)
        ses.append(est.stderr)
    g = np.array(grads)
    dev2 = (g - g.mean(axis=0)) ** 2  # per-repetition squared deviations: their mean is the variance
    var = dev2.sum(axis=0) / (reps - 1)
    var_se = dev2.std(axis=0, ddof=1) / np.sqrt(reps)
    predicted = (np.array(ses) ** 2).mean(axis=0)
    pred_se = (np.array(ses) ** 2).std(axis=0, ddof=1) / np.sqrt(reps)
    z = np.abs(var - predicted) / np.sqrt(var_se**2 + pred_se**2)
    assert z.max() < k_two_sided(pi.n_params), (var, predicted)


# -- 5. the value baseline and the likelihood ----------------------------------------------------


def test_linear_value_baseline_is_exact_without_noise() -> None:
    """With no process noise and a deterministic policy (log_std below the floor), G_t = V_t(x_t) is
    quadratic in x_t: the fit reproduces it to rounding."""
    lqr = ref.example(gaussian_start=True, horizon=6, gamma=0.95)
    pi = pg.LinearGaussian(3, 2, W=_policy(lqr).W, log_std=-30.0)
    traj = ref.simulate(lqr, pi, 200, seed=6)
    vb = pg.LinearValueBaseline(3, 6, ridge=0.0).fit(traj)
    G = traj.reward_to_go()
    np.testing.assert_allclose(vb.values(traj), G, rtol=1e-7, atol=1e-9 * np.abs(G).max())
    assert vb.weights().shape == (6, 10) and not vb.weights().flags.writeable
    clone = pickle.loads(pickle.dumps(vb))
    assert np.array_equal(clone.weights(), vb.weights()) and repr(clone) == repr(vb)
    # cross-fitted on the batch itself: each half predicts the other exactly too
    est = pg.policy_gradient(pi, traj, baseline=pg.LinearValueBaseline(3, 6, ridge=0.0), per_trajectory=True)
    assert est.per_trajectory is not None and np.abs(est.per_trajectory).max() < 1e-3 * np.abs(
        pg.policy_gradient(pi, traj, per_trajectory=True).per_trajectory).max()


def test_log_likelihood() -> None:
    lqr = ref.example(noise=True, gaussian_start=True, horizon=4)
    pi = _policy(lqr)
    traj = ref.simulate(lqr, pi, 50, seed=1)
    ll_pi = pg.log_likelihood(pi, traj, dynamics=False)
    np.testing.assert_allclose(ll_pi, pi.log_prob(traj.states, traj.actions).sum(axis=1), rtol=1e-12)

    def logpdf(d: np.ndarray, cov: np.ndarray) -> np.ndarray:
        sign, logdet = np.linalg.slogdet(2 * np.pi * cov)
        return -0.5 * np.einsum("...i,...i->...", d, np.linalg.solve(cov, d[..., None])[..., 0]) - 0.5 * logdet

    x, u = traj.states, traj.actions
    dyn = logpdf(x[:, 0] - lqr.x0, lqr.x0_cov) + logpdf(x[:, 1:] - x[:, :-1] @ lqr.A.T - u[:, :-1] @ lqr.B.T,
                                                       lqr.noise_cov).sum(axis=1)
    np.testing.assert_allclose(pg.log_likelihood(pi, traj), ll_pi + dyn, rtol=1e-10)
    np.testing.assert_allclose(pg.log_likelihood(pi, traj, mdp=lqr), ll_pi + dyn, rtol=1e-10)
    with pytest.raises(ValueError, match="no noise_cov"):
        pg.log_likelihood(pi, ref.simulate(ref.example(gaussian_start=True, horizon=4), pi, 5, seed=0))
    plain = pg.ContinuousTrajectories(x, u, traj.rewards, traj.lengths)
    with pytest.raises(ValueError, match="source must be a pgfast.LQR"):
        pg.log_likelihood(pi, plain)
    with pytest.raises(ValueError, match="mdp must be the batch's source"):
        pg.log_likelihood(pi, traj, mdp=ref.example(noise=True, gaussian_start=True, horizon=5))


def test_diverged_trajectories_warn() -> None:
    lqr = ref.example(horizon=3)
    pi = _policy(lqr)
    t = ref.simulate(lqr, pi, 10, seed=0)
    diverged = np.zeros(10, dtype=bool)
    diverged[[2, 5]] = True
    traj = pg.ContinuousTrajectories(t.states, t.actions, t.rewards, t.lengths, diverged=diverged, source=lqr)
    with pytest.warns(RuntimeWarning, match="2 of 10 trajectories diverged"):
        est = pg.policy_gradient(pi, traj)
    assert np.all(np.isfinite(est.grad))


# -- 6. rejected inputs --------------------------------------------------------------------------


def test_rejected_inputs() -> None:
    lqr = ref.example(horizon=3)
    pi = _policy(lqr)
    traj = ref.simulate(lqr, pi, 10, seed=0)
    disc = pg.ContinuousTrajectories(traj.states, np.zeros((10, 3), dtype=np.int64), traj.rewards, traj.lengths)
    cases: list[tuple[type[Exception], str, Any]] = [
        (TypeError, "policy must be a policy on vector states", lambda: pg.policy_gradient(pg.TabularSoftmax(3, 2), traj)),
        (TypeError, "policy must be a policy on vector states", lambda: pg.policy_gradient(object(), traj)),
        (ValueError, "obs_dim = 2", lambda: pg.policy_gradient(pg.LinearGaussian(2, 2), traj)),
        (ValueError, "action_dim = 1", lambda: pg.policy_gradient(pg.LinearGaussian(3, 1), traj)),
        (ValueError, "holds discrete actions", lambda: pg.policy_gradient(pi, disc)),
        (ValueError, "takes discrete actions", lambda: pg.policy_gradient(ObsSoftmax(3, 2, np.zeros((2, 3))), traj)),
        (ValueError, r"out of range \[0, n_actions = 2\)", lambda: pg.policy_gradient(
            ObsSoftmax(3, 2, np.zeros((2, 3))), pg.ContinuousTrajectories(
                traj.states, np.full((10, 3), 2), traj.rewards, traj.lengths))),
        (ValueError, "takes no mdp=, n=, seed=", lambda: pg.policy_gradient(pi, traj, n=10)),
        (ValueError, "takes no mdp=, n=, seed=", lambda: pg.policy_gradient(pi, traj, seed=1)),
        (ValueError, "weights must be", lambda: pg.policy_gradient(pi, traj, weights="advantage")),  # type: ignore[arg-type]
        (ValueError, "needs weights='reward_to_go'", lambda: pg.policy_gradient(pi, traj, weights="return", baseline="time")),
        (ValueError, "not available on a ContinuousTrajectories", lambda: pg.policy_gradient(pi, traj, baseline="exact")),
        (ValueError, "not available on a ContinuousTrajectories", lambda: pg.policy_gradient(pi, traj, baseline="optimal")),
        (ValueError, "baseline must be", lambda: pg.policy_gradient(pi, traj, baseline="median")),
        (TypeError, "baseline must be", lambda: pg.policy_gradient(pi, traj, baseline=pg.ValueBaseline(3, 3))),
        (ValueError, r"shape \(N, H\) = \(10, 3\)", lambda: pg.policy_gradient(pi, traj, baseline=np.zeros((10, 4)))),
        (ValueError, "NaN or infinite", lambda: pg.policy_gradient(pi, traj, baseline=np.full((10, 3), np.nan))),
        (ValueError, r"\(state_dim, horizon\) = \(3, 4\)", lambda: pg.policy_gradient(
            pi, traj, baseline=pg.LinearValueBaseline(3, 4))),
        (ValueError, "at least 2 trajectories", lambda: pg.policy_gradient(pi, ce._subset(traj, np.arange(1)), baseline="mean")),
        (ValueError, "at least 2 trajectories", lambda: pg.policy_gradient(
            pi, ce._subset(traj, np.arange(1)), baseline=pg.LinearValueBaseline(3, 3))),
        (ValueError, "N = 0", lambda: pg.policy_gradient(pi, ce._subset(traj, np.arange(0)))),
        (TypeError, "stderr must be True or False", lambda: pg.policy_gradient(pi, traj, stderr="yes")),  # type: ignore[arg-type]
        (ValueError, "threads", lambda: pg.policy_gradient(pi, traj, threads=0)),
        (ValueError, "gamma must be in", lambda: pg.policy_gradient(pi, traj, gamma=1.5)),
        (ValueError, r"weights must have shape \(N, H\)", lambda: pg.score(pi, traj, np.zeros(10))),
        (ValueError, "NaN or infinite", lambda: pg.score(pi, traj, np.full((10, 3), np.inf))),
        (TypeError, "ContinuousTrajectories batch", lambda: pg.LinearValueBaseline(3, 3).fit(object())),  # type: ignore[arg-type]
        (ValueError, "not fitted yet", lambda: pg.LinearValueBaseline(3, 3).weights()),
        (ValueError, "ridge must be", lambda: pg.LinearValueBaseline(3, 3, ridge=-1.0)),
        (ValueError, "features must be", lambda: pg.LinearValueBaseline(3, 3, features="cubic")),
        (ValueError, "horizon", lambda: pg.LinearValueBaseline(3, 0)),
    ]
    for exc, match, call in cases:
        with pytest.raises(exc, match=match):
            call()


def test_results_beyond_float64_are_errors() -> None:
    lqr = ref.example(horizon=3)
    pi = _policy(lqr)
    t = ref.simulate(lqr, pi, 10, seed=0)
    huge = pg.ContinuousTrajectories(t.states, t.actions, np.full((10, 3), -1e308), t.lengths)
    with pytest.raises(ValueError, match="float64"):
        pg.policy_gradient(pi, huge)


def test_memory_error_states_the_bytes() -> None:
    class Huge:
        obs_dim, action_dim, n_params = 3, 2, 2**40
        theta = np.zeros(1)

        def log_prob(self, x: Any, u: Any) -> np.ndarray:
            raise AssertionError("not reached")

        grad_log_prob = log_prob

    traj = ref.simulate(ref.example(horizon=3), _policy(ref.example(horizon=3)), 10, seed=0)
    with pytest.raises(MemoryError, match=r"per-trajectory gradients .*bytes"):
        pg.policy_gradient(Huge(), traj)


@pytest.mark.skipif(not hasattr(pg.LQR, "sample"), reason="the compiled LQR sampler (lqr.sample) is not part of this build")
@pytest.mark.parametrize("kw", [{}, {"weights": "return"}, {"baseline": "mean"}, {"baseline": "time"},
                                {"weights": "return", "baseline": "mean"}])
def test_stored_equals_fused(kw: dict[str, Any]) -> None:
    """The stored estimator on lqr.sample's batch and the fused one on the same seed: the same
    definitions, the same trajectories, so the same estimate up to summation order."""
    lqr = ref.example(noise=True, horizon=12, gamma=0.95)
    pi = _policy(lqr)
    traj = lqr.sample(pi, 3000, seed=17)  # type: ignore[attr-defined]
    stored = pg.policy_gradient(pi, traj, **kw)
    fused = pg.policy_gradient(pi, mdp=lqr, n=3000, seed=17, **kw)  # type: ignore[arg-type]
    scale = np.abs(stored.grad).max()
    np.testing.assert_allclose(fused.grad, stored.grad, rtol=1e-12, atol=1e-12 * scale)
    np.testing.assert_allclose(fused.stderr, stored.stderr, rtol=1e-9)
    assert fused.value == pytest.approx(stored.value, rel=1e-12)
    assert fused.n_steps == stored.n_steps


def test_empty_episodes_and_garbage_padding() -> None:
    pi = pg.LinearGaussian(2, 1, W=[[0.5, 0.0]])
    empty = pg.ContinuousTrajectories(np.zeros((3, 0, 2)), np.zeros((3, 0, 1)), np.zeros((3, 0)), [0, 0, 0])
    for kw in ({}, {"baseline": "time"}, {"weights": "return", "baseline": "mean"}):
        est = pg.policy_gradient(pi, empty, **kw)
        assert np.array_equal(est.grad, np.zeros(3)) and est.n_steps == 0 and est.value == 0.0
    # padding past each end may hold anything (NaN here): it is never read into the results
    X = np.full((2, 2, 2), np.nan)
    X[:, 0] = [[1.0, 1.0], [1.0, 1.0]]
    U = np.full((2, 2, 1), np.nan)
    U[:, 0] = 0.5
    traj = pg.ContinuousTrajectories(X, U, [[1.0, np.nan], [2.0, np.nan]], [1, 1])
    clean = pg.ContinuousTrajectories(np.nan_to_num(X), np.nan_to_num(U), [[1.0, 0.0], [2.0, 0.0]], [1, 1])
    for kw in ({}, {"baseline": "time"}, {"weights": "return"}):
        assert np.array_equal(pg.policy_gradient(pi, traj, **kw).grad, pg.policy_gradient(pi, clean, **kw).grad)
    # time baseline: b = the other's reward, w = -1 and +1 with the same score (z = 0.5, x = (1, 1))
    assert np.array_equal(pg.policy_gradient(pi, traj, baseline="time").grad, np.zeros(3))
    assert np.array_equal(pg.off_policy_gradient(pi, pi, traj).grad, pg.policy_gradient(pi, clean).grad)
    assert np.all(np.isfinite(pg.log_likelihood(pi, traj, dynamics=False)))


@pytest.mark.parametrize("threads", [1, 2])
def test_ctrl_c(threads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A long estimate answers SIGINT between chunks (the chunks not started are dropped)."""
    import time

    from test_interrupts import assert_interrupts

    class Slow:
        obs_dim, action_dim, n_params = 3, 2, 8

        def __init__(self, pi: pg.LinearGaussian) -> None:
            self.pi, self.theta = pi, pi.theta

        def log_prob(self, x: Any, u: Any) -> np.ndarray:
            return self.pi.log_prob(x, u)

        def grad_log_prob(self, x: Any, u: Any) -> np.ndarray:
            time.sleep(0.02)
            return self.pi.grad_log_prob(x, u)

    lqr = ref.example(horizon=4)
    traj = ref.simulate(lqr, _policy(lqr), 2000, seed=0)
    monkeypatch.setattr(ce, "_CHUNK_BYTES", 2000)  # a few trajectories a chunk: about 10 s in all
    assert_interrupts(lambda: pg.policy_gradient(Slow(_policy(lqr)), traj, threads=threads))
    est = pg.policy_gradient(_policy(lqr), traj, threads=threads)  # usable afterwards
    assert np.all(np.isfinite(est.grad))
