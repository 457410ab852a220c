"""pg.exact.moments: the exact mean and covariance of the single-trajectory estimators, against
brute-force enumeration of every trajectory of tiny MDPs and against Monte Carlo."""

from __future__ import annotations

import numpy as np
import pytest

import pgfast as pg

# ---------------------------------------------------------------------------------------------
# Tiny MDPs and policies


def _tiny_mdp(terminal: bool, gamma: float, horizon: int, seed: int = 0) -> pg.FiniteMDP:
    """S = 3, A = 2, next-state dependent rewards, a few impossible transitions; with
    ``terminal`` state 2 ends the episode."""
    rng = np.random.default_rng(seed)
    S, A = 3, 2
    P = rng.random((S, A, S))
    P[0, 0, 1] = 0.0
    P[1, 1, 0] = 0.0
    P /= P.sum(axis=2, keepdims=True)
    R = rng.normal(size=(S, A, S))
    mu0 = np.array([0.6, 0.4, 0.0])
    return pg.FiniteMDP(P, R, mu0, horizon=horizon, gamma=gamma, terminal=[False, False, terminal])


def _policy(kind: str, seed: int = 1) -> pg.SoftmaxPolicy:
    rng = np.random.default_rng(seed)
    if kind == "tabular":
        return pg.TabularSoftmax(3, 2, theta=rng.normal(size=(3, 2)))
    if kind == "linear":
        return pg.LinearSoftmax(rng.normal(size=(3, 2, 3)), theta=rng.normal(size=3))
    net = pg.MLPSoftmax(rng.normal(size=(3, 2)), 2, hidden=(3,), seed=seed)
    net.theta = net.theta + 0.3 * rng.normal(size=net.theta.shape)
    return net


def _scores(policy: pg.SoftmaxPolicy) -> np.ndarray:
    """(S, A, n_params) scores, computed here from the policy's definition (tabular and linear)
    or from its grad_log_prob (MLP)."""
    pi = policy.probs()
    S, A = pi.shape
    if isinstance(policy, pg.TabularSoftmax):
        U = np.zeros((S, A, S, A))
        for s in range(S):
            U[s, :, s, :] = np.eye(A) - pi[s]
        return U.reshape(S, A, S * A)
    if isinstance(policy, pg.LinearSoftmax):
        phi = policy.features
        return phi - np.einsum("sa,sap->sp", pi, phi)[:, None, :]
    s, a = np.repeat(np.arange(S), A), np.tile(np.arange(A), S)
    return policy.grad_log_prob(s, a).reshape(S, A, -1)


def _enumerate(mdp: pg.FiniteMDP, policy: pg.SoftmaxPolicy) -> list[tuple[float, list[int], list[int], list[float]]]:
    """Every trajectory (probability, states, actions, rewards) of positive probability."""
    P, pi = mdp.P, policy.probs()
    indptr, nxt, _, rew = mdp.transitions
    S, A = pi.shape
    R = np.zeros((S, A, S))
    rows = np.repeat(np.arange(S * A), np.diff(indptr))
    R.reshape(S * A, S)[rows, nxt] = rew
    out = []

    def walk(p: float, s: int, states: list[int], actions: list[int], rewards: list[float]) -> None:
        if mdp.terminal[s] or len(states) == mdp.horizon:
            out.append((p, states, actions, rewards))
            return
        for a in range(A):
            for s2 in range(S):
                q = pi[s, a] * P[s, a, s2]
                if q > 0:
                    walk(p * q, s2, [*states, s], [*actions, a], [*rewards, R[s, a, s2]])

    for s0 in range(S):
        if mdp.mu0[s0] > 0:
            walk(mdp.mu0[s0], s0, [], [], [])
    return out


def _brute(mdp: pg.FiniteMDP, policy: pg.SoftmaxPolicy, weights: str, baseline: object) -> tuple[np.ndarray, np.ndarray]:
    """The exact mean and covariance by enumeration, each trajectory's gradient formed here."""
    trajs = _enumerate(mdp, policy)
    U, g, H, S = _scores(policy), mdp.gamma, mdp.horizon, mdp.n_states

    def rtg(r: list[float]) -> np.ndarray:
        G = np.zeros(len(r) + 1)
        for t in range(len(r) - 1, -1, -1):
            G[t] = r[t] + g * G[t + 1]
        return G[:-1]

    probs = np.array([p for p, *_ in trajs])
    assert abs(probs.sum() - 1.0) < 1e-12
    # the baselines, from the enumeration itself ("exact" from the exact values)
    if baseline is None:
        table = np.zeros((H, S))
    elif isinstance(baseline, np.ndarray):
        table = baseline
    elif baseline == "exact":
        table = pg.exact.evaluate(mdp, policy).state_values
    elif baseline == "mean":
        table = np.full((H, S), sum(p * (rtg(r)[0] if r else 0.0) for p, _, _, r in trajs))
    else:  # "time": E[G_t | alive at t]
        num, den = np.zeros(H), np.zeros(H)
        for p, st, _, r in trajs:
            G = rtg(r)
            num[: len(st)] += p * G
            den[: len(st)] += p
        table = np.repeat(np.divide(num, den, out=np.zeros(H), where=den > 0)[:, None], S, axis=1)
    if isinstance(baseline, str) and baseline == "optimal":
        return _brute_optimal(trajs, U, g, H, weights)
    grads = []
    for _, st, ac, r in trajs:
        ghat = np.zeros(U.shape[2])
        if st:
            G = rtg(r)
            for t, (s, a) in enumerate(zip(st, ac, strict=True)):
                w = g**t * (G[t] - table[t, s]) if weights == "reward_to_go" else G[0] - table[0, st[0]]
                ghat += w * U[s, a]
        grads.append(ghat)
    X = np.array(grads)
    mean = probs @ X
    cov = (X - mean).T @ ((X - mean) * probs[:, None])
    return mean, cov


def _brute_optimal(trajs: list, U: np.ndarray, g: float, H: int, weights: str) -> tuple[np.ndarray, np.ndarray]:
    """The per-coordinate optimal baselines by enumeration: return weights Y_k (G_0 - b*_k) with
    b*_k = E[Y_k^2 G_0] / E[Y_k^2]; reward-to-go in the G(PO)MDP form sum_h Z_h gamma^h (r_h - b_h)
    with b_{h,k} = E[Z_{h,k}^2 r_h] / E[Z_{h,k}^2], Z_h the score sum up to min(h, len - 1)."""
    p = np.array([q for q, *_ in trajs])
    n = U.shape[2]
    Z = np.zeros((len(trajs), H, n))  # Z[i, h]
    r = np.zeros((len(trajs), H))
    for i, (_, st, ac, rr) in enumerate(trajs):
        acc = np.zeros(n)
        for h in range(H):
            if h < len(st):
                acc = acc + U[st[h], ac[h]]
                r[i, h] = rr[h]
            Z[i, h] = acc
    if weights == "return":
        Y = Z[:, -1]
        G0 = (r * g ** np.arange(H)).sum(axis=1)
        den = p @ Y**2
        b = np.divide(p @ (Y**2 * G0[:, None]), den, out=np.zeros(n), where=den > 0)
        X = Y * (G0[:, None] - b)
    else:
        den = np.einsum("i,ihk->hk", p, Z**2)
        b = np.divide(np.einsum("i,ihk,ih->hk", p, Z**2, r), den, out=np.zeros((H, n)), where=den > 0)
        X = np.einsum("ihk,h,ihk->ik", Z, g ** np.arange(H), r[:, :, None] - b[None])
    mean = p @ X
    return mean, (X - mean).T @ ((X - mean) * p[:, None])


def _fixed_table(mdp: pg.FiniteMDP) -> np.ndarray:
    return np.random.default_rng(7).normal(size=(mdp.horizon, mdp.n_states))


CASES = [(w, b) for w in ("reward_to_go", "return") for b in (None, "exact", "time", "mean", "array", "optimal")
         if not (w == "return" and b == "time")]


@pytest.mark.parametrize("kind", ["tabular", "linear", "mlp"])
@pytest.mark.parametrize(("weights", "baseline"), CASES)
@pytest.mark.parametrize(("terminal", "gamma", "horizon"), [(False, 1.0, 3), (True, 0.9, 4), (True, 1.0, 3), (False, 0.9, 4)])
def test_moments_match_enumeration(kind: str, weights: str, baseline: str | None, terminal: bool, gamma: float,
                                   horizon: int) -> None:
    mdp = _tiny_mdp(terminal, gamma, horizon)
    policy = _policy(kind)
    b = _fixed_table(mdp) if baseline == "array" else baseline
    m = pg.exact.moments(mdp, policy, weights=weights, baseline=b)
    mean, cov = _brute(mdp, policy, weights, b)
    scale = np.abs(cov).max()
    assert m.covariance is not None  # n_params <= MAX_COVARIANCE_PARAMS
    np.testing.assert_allclose(m.mean.ravel(), mean, rtol=1e-10, atol=1e-12 * np.abs(mean).max())
    np.testing.assert_allclose(m.covariance, cov, rtol=1e-10, atol=1e-11 * scale)
    np.testing.assert_allclose(m.variance.ravel(), np.diag(cov), rtol=1e-10, atol=1e-11 * scale)
    assert m.trace == pytest.approx(np.trace(cov), rel=1e-10)
    assert m.noise_to_signal == pytest.approx(np.trace(cov) / (mean @ mean), rel=1e-9)
    # the variances alone (no covariance) are the same numbers
    diag = pg.exact.moments(mdp, policy, weights=weights, baseline=b, covariance=False)
    assert diag.covariance is None
    np.testing.assert_allclose(diag.variance, m.variance, rtol=1e-12, atol=1e-14 * scale)
    np.testing.assert_allclose(diag.mean, m.mean, rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------------------------------------
# The discounted objective: the limit of long horizons, and the exact gradient


@pytest.mark.parametrize("kind", ["tabular", "linear", "mlp"])
@pytest.mark.parametrize("baseline", [None, "exact", "mean", "array"])
@pytest.mark.parametrize("terminal", [False, True])
@pytest.mark.parametrize("method", ["dense", "sparse"])
def test_discounted_moments_are_the_long_horizon_limit(kind: str, baseline: str | None, terminal: bool,
                                                       method: str) -> None:
    H = 500  # 0.9^500 ~ 1e-23: the finite horizon's tail is below rounding
    mdp = _tiny_mdp(terminal, 0.9, H)
    policy = _policy(kind)
    ev = pg.exact.evaluate(mdp, policy, "discounted")
    b_s = {None: np.zeros(3), "exact": ev.state_values, "mean": np.full(3, ev.value),
           "array": np.random.default_rng(3).normal(size=3)}[baseline]
    arg = b_s if baseline == "array" else baseline
    m = pg.exact.moments(mdp, policy, objective="discounted", baseline=arg, method=method)
    long = pg.exact.moments(mdp, policy, baseline=np.repeat(b_s[None, :], H, axis=0))
    assert m.objective == "discounted" and m.gamma == 0.9
    np.testing.assert_allclose(m.mean, pg.exact.gradient(mdp, policy, "discounted"), rtol=1e-10, atol=1e-13)
    assert m.value == pytest.approx(ev.value, rel=1e-12)
    assert m.covariance is not None and long.covariance is not None
    scale = np.abs(long.covariance).max()
    np.testing.assert_allclose(m.covariance, long.covariance, rtol=1e-9, atol=1e-11 * scale)
    np.testing.assert_allclose(m.mean, long.mean, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Against Monte Carlo: the per-trajectory gradients of pg.policy_gradient


def _z_test_moments(rows: np.ndarray, m: pg.exact.Moments, z: float = 5.0) -> None:
    """z-tests of each coordinate's sample mean (standard error s / sqrt(N)) and sample variance
    (standard error sqrt((mu4 - s^4) / N), mu4 the sample fourth central moment)."""
    N = rows.shape[0]
    mean, var = m.mean.ravel(), m.variance.ravel()
    xbar = rows.mean(axis=0)
    s2 = rows.var(axis=0, ddof=1)
    mu4 = ((rows - xbar) ** 4).mean(axis=0)
    live = var > 1e-12 * var.max()
    # coordinates the estimator never moves are exactly 0 in both
    np.testing.assert_allclose(rows[:, ~live], 0.0, atol=1e-12)
    np.testing.assert_allclose(mean[~live], 0.0, atol=1e-12)
    z_mean = (xbar - mean)[live] / np.sqrt(s2[live] / N)
    z_var = (s2 - var)[live] / np.sqrt((mu4 - s2 * s2)[live] / N)
    assert np.abs(z_mean).max() < z, z_mean
    assert np.abs(z_var).max() < z, z_var


MC_CASES = [(w, b) for w in ("reward_to_go", "return") for b in (None, "exact", "time", "mean", "fitted")
            if not (w == "return" and b == "time")]


@pytest.mark.parametrize("kind", ["tabular", "linear", "mlp"])
@pytest.mark.parametrize(("weights", "baseline"), MC_CASES)
@pytest.mark.parametrize(("terminal", "gamma"), [(False, 1.0), (True, 0.9)])
def test_moments_match_monte_carlo(kind: str, weights: str, baseline: str | None, terminal: bool, gamma: float) -> None:
    mdp = _tiny_mdp(terminal, gamma, 4, seed=2)
    policy = _policy(kind, seed=3)
    N = 20_000
    traj = mdp.sample(policy, N, seed=11)
    if baseline == "fitted":  # a fixed table b_t(s), fitted on another batch
        est_baseline: object = pg.ValueBaseline(3, 4).fit(mdp.sample(policy, 500, seed=12))
        exact_baseline: object = np.array(est_baseline.values())
    else:
        est_baseline = exact_baseline = baseline
    est = pg.policy_gradient(policy, traj, weights=weights, baseline=est_baseline, per_trajectory=True)
    m = pg.exact.moments(mdp, policy, weights=weights, baseline=exact_baseline)
    assert est.per_trajectory is not None
    # the leave-one-out batch baselines ("mean", "time") differ from their deterministic limits by
    # O(1/N) in each trajectory's weight: far below the sampling error at N = 20 000
    _z_test_moments(est.per_trajectory, m)
    # policy_gradient's stderr estimates m.stderr(N)
    np.testing.assert_allclose(est.stderr, m.stderr(N), rtol=0.1, atol=1e-12)


def test_leave_one_out_mean_baseline_adds_the_predicted_variance() -> None:
    r"""Batches of N = 2 with the leave-one-out mean baseline (return weights): the variance of
    the batch estimate is Var[g]/N + (E[Y_k^2] Var[G_0] + (dJ/dtheta_k)^2) / (N (N - 1)) with
    Y = sum_t psi_t, not the Var[g]/N of the deterministic baseline b = J."""
    mdp = _tiny_mdp(True, 0.9, 4)
    policy = _policy("tabular")
    N, reps = 2, 20_000
    g = np.array([pg.policy_gradient(policy, mdp=mdp, n=N, seed=i, weights="return", baseline="mean").grad.ravel()
                  for i in range(reps)])
    m = pg.exact.moments(mdp, policy, weights="return", baseline="mean")
    # E[Y_k^2]: the variance of the return estimator is quadratic in a constant baseline b with
    # leading coefficient E[Y_k^2]
    var_b = [pg.exact.moments(mdp, policy, weights="return", baseline=np.full((4, 3), b)).variance.ravel()
             for b in (1.0, -1.0, 0.0)]
    EY2 = (var_b[0] + var_b[1] - 2.0 * var_b[2]) / 2.0
    trajs = _enumerate(mdp, policy)
    p = np.array([q for q, *_ in trajs])
    G0 = np.array([sum(0.9**t * r for t, r in enumerate(rr)) for *_, rr in trajs])
    var_G = p @ G0**2 - (p @ G0) ** 2
    grad = m.mean.ravel()
    predicted = m.variance.ravel() / N + (EY2 * var_G + grad**2) / (N * (N - 1))
    s2 = g.var(axis=0, ddof=1)
    se = np.sqrt((((g - g.mean(axis=0)) ** 4).mean(axis=0) - s2**2) / reps)
    live = predicted > 0
    assert np.abs((s2 - predicted)[live] / se[live]).max() < 5
    # the deterministic limit alone is rejected: the O(1/N) term is real
    assert np.abs((s2 - m.variance.ravel() / N)[live] / se[live]).max() > 8


# ---------------------------------------------------------------------------------------------
# The exact gradient, the covariance limit, the fields


@pytest.mark.parametrize(("weights", "baseline"), [c for c in CASES if c[1] != "array"])
def test_mean_is_the_exact_gradient_on_frozenlake(weights: str, baseline: str | None) -> None:
    mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="4x4", horizon=30, gamma=0.95)
    policy = pg.TabularSoftmax(16, 4, theta=np.random.default_rng(0).normal(size=(16, 4)))
    m = pg.exact.moments(mdp, policy, weights=weights, baseline=baseline)
    grad = pg.exact.gradient(mdp, policy)
    np.testing.assert_allclose(m.mean, grad, rtol=1e-10, atol=1e-12 * np.abs(grad).max())
    assert m.covariance is not None and m.covariance.shape == (64, 64)
    np.testing.assert_allclose(np.diag(m.covariance), m.variance.ravel(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(m.covariance, m.covariance.T, rtol=0, atol=0)
    assert np.linalg.eigvalsh(m.covariance).min() > -1e-12 * m.trace
    assert m.trace == pytest.approx(m.variance.sum())
    assert m.noise_to_signal == pytest.approx(m.trace / (grad**2).sum(), rel=1e-9)


def test_covariance_limit_and_opt_in() -> None:
    mdp = _tiny_mdp(False, 1.0, 3)
    rng = np.random.default_rng(0)
    pi = pg.LinearSoftmax(rng.normal(size=(3, 2, pg.exact.MAX_COVARIANCE_PARAMS + 1)))
    m = pg.exact.moments(mdp, pi)
    assert m.covariance is None and m.variance.shape == (pg.exact.MAX_COVARIANCE_PARAMS + 1,)
    full = pg.exact.moments(mdp, pi, covariance=True)
    assert full.covariance is not None
    np.testing.assert_allclose(np.diag(full.covariance), m.variance, rtol=1e-12, atol=1e-15)
    small = pg.exact.moments(mdp, pg.TabularSoftmax(3, 2), covariance=False)
    assert small.covariance is None


def test_fields_and_stderr() -> None:
    mdp = _tiny_mdp(True, 0.9, 4)
    pi = _policy("tabular")
    m = pg.exact.moments(mdp, pi, weights="return", baseline="mean")
    assert (m.weights, m.baseline, m.objective, m.gamma) == ("return", "mean", "finite_horizon", 0.9)
    assert m.value == pytest.approx(pg.exact.evaluate(mdp, pi).value, rel=1e-12)
    assert m.mean.shape == m.variance.shape == pi.theta.shape
    np.testing.assert_array_equal(m.stderr(25), np.sqrt(m.variance / 25))
    with pytest.raises(ValueError, match="n"):
        m.stderr(0)


def test_noise_to_signal_of_a_zero_gradient() -> None:
    P = np.zeros((2, 2, 2))
    P[:, :, 0] = 1.0
    # a constant reward of 1 in state 0 whatever the action: the gradient is 0, the noise is not
    mdp = pg.FiniteMDP(P, [[1.0, 1.0], [0.0, 0.0]], [1.0, 0.0], horizon=2)
    m = pg.exact.moments(mdp, pg.TabularSoftmax(2, 2))
    assert np.all(m.mean == 0) and m.trace > 0 and m.noise_to_signal == np.inf
    quiet = pg.exact.moments(mdp, pg.TabularSoftmax(2, 2), baseline="exact")  # b = V: no noise at all
    assert quiet.trace == pytest.approx(0.0, abs=1e-15)


# ---------------------------------------------------------------------------------------------
# Bad inputs


def test_bad_inputs() -> None:
    mdp = _tiny_mdp(True, 0.9, 3)
    pi = pg.TabularSoftmax(3, 2)
    with pytest.raises(TypeError, match="mdp"):
        pg.exact.moments("mdp", pi)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="policy"):
        pg.exact.moments(mdp, np.zeros((3, 2)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sized|n_states|size"):
        pg.exact.moments(mdp, pg.TabularSoftmax(4, 2))
    with pytest.raises(ValueError, match="weights"):
        pg.exact.moments(mdp, pi, weights="gae")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="baseline"):
        pg.exact.moments(mdp, pi, baseline="optimal-ish")
    with pytest.raises(ValueError, match="baseline='time' needs weights='reward_to_go'"):
        pg.exact.moments(mdp, pi, weights="return", baseline="time")
    with pytest.raises(ValueError, match=r"shape \(H, S\) = \(3, 3\)"):
        pg.exact.moments(mdp, pi, baseline=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        pg.exact.moments(mdp, pi, baseline=np.full((3, 3), np.nan))
    with pytest.raises(TypeError, match="baseline"):
        pg.exact.moments(mdp, pi, baseline={"b": 1})
    with pytest.raises(ValueError, match="objective"):
        pg.exact.moments(mdp, pi, objective="average_reward")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="weights='reward_to_go'"):
        pg.exact.moments(mdp, pi, objective="discounted", weights="return")
    with pytest.raises(ValueError, match="baseline='time' needs objective='finite_horizon'"):
        pg.exact.moments(mdp, pi, objective="discounted", baseline="time")
    with pytest.raises(ValueError, match="baseline='optimal' needs objective='finite_horizon'"):
        pg.exact.moments(mdp, pi, objective="discounted", baseline="optimal")
    with pytest.raises(ValueError, match=r"shape \(S,\) = \(3,\)"):
        pg.exact.moments(mdp, pi, objective="discounted", baseline=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="gamma < 1"):
        pg.exact.moments(mdp, pi, objective="discounted", gamma=1.0)
    with pytest.raises(ValueError, match="gamma"):
        pg.exact.moments(mdp, pi, gamma=1.5)
    with pytest.raises(TypeError, match="covariance"):
        pg.exact.moments(mdp, pi, covariance="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="method"):
        pg.exact.moments(mdp, pi, objective="discounted", method="lu")  # type: ignore[arg-type]


def test_memory_error_names_the_bytes() -> None:
    P = np.zeros((2, 1, 2))
    P[:, 0, 0] = 1.0
    mdp = pg.FiniteMDP(P, np.zeros((2, 1)), [1.0, 0.0], horizon=2)
    pi = pg.LinearSoftmax(np.zeros((2, 1, 2_000_000)))
    with pytest.raises(MemoryError, match="bytes|GiB|TiB"):
        pg.exact.moments(mdp, pi, covariance=True)


# ---------------------------------------------------------------------------------------------
# The optimal baselines


@pytest.mark.parametrize("kind", ["tabular", "linear"])
@pytest.mark.parametrize("terminal", [False, True])
def test_optimal_return_baseline_minimises_each_variance(kind: str, terminal: bool) -> None:
    """Return weights: the variance of coordinate k with a constant baseline beta is a parabola in
    beta; the optimal baseline is its minimum: the constant b*_k gives the same variance, and
    moving it either way raises it."""
    mdp = _tiny_mdp(terminal, 0.9, 4)
    policy = _policy(kind)
    m = pg.exact.moments(mdp, policy, weights="return", baseline="optimal")
    assert m.optimal_baseline is not None and m.optimal_baseline.shape == policy.theta.shape
    b = m.optimal_baseline.ravel()
    H, S = mdp.horizon, mdp.n_states
    for k in np.flatnonzero(m.variance.ravel() > 0):
        at = pg.exact.moments(mdp, policy, weights="return", baseline=np.full((H, S), b[k])).variance.ravel()[k]
        assert at == pytest.approx(m.variance.ravel()[k], rel=1e-10)
        for eps in (-1e-3, 1e-3, -0.5, 0.5):
            moved = pg.exact.moments(mdp, policy, weights="return", baseline=np.full((H, S), b[k] + eps))
            assert moved.variance.ravel()[k] > at
    for other in (None, "mean", "exact"):
        assert m.trace <= pg.exact.moments(mdp, policy, weights="return", baseline=other).trace


@pytest.mark.parametrize("weights", ["reward_to_go", "return"])
def test_optimal_baselines_against_monte_carlo(weights: str) -> None:
    """Per-trajectory gradients with the per-coordinate baselines formed from pg.score (one call
    per step for the reward-to-go form), z-tested against the exact moments."""
    mdp = _tiny_mdp(True, 0.9, 4, seed=2)
    policy = _policy("linear", seed=3)
    m = pg.exact.moments(mdp, policy, weights=weights, baseline="optimal")
    assert m.optimal_baseline is not None
    traj = mdp.sample(policy, 20_000, seed=5)
    plain = pg.policy_gradient(policy, traj, weights=weights, per_trajectory=True).per_trajectory
    assert plain is not None
    H = mdp.horizon
    if weights == "return":
        _, Y = pg.score(policy, traj, np.ones((traj.n, H)), per_trajectory=True)
        rows = plain - Y * m.optimal_baseline.ravel()
    else:
        rows = plain.copy()
        for t in range(H):
            w = np.zeros((traj.n, H))
            w[:, t] = 0.9**t
            _, psi_t = pg.score(policy, traj, w, per_trajectory=True)
            rows -= psi_t * m.optimal_baseline[t].ravel()
    _z_test_moments(rows, m)


def test_overflow_is_a_value_error() -> None:
    P = np.zeros((2, 2, 2))
    P[:, :, 0] = 1.0
    mdp = pg.FiniteMDP(P, [[1e200, 0.0], [0.0, 0.0]], [1.0, 0.0], horizon=3)
    with pytest.raises(ValueError, match="float64 range"):
        pg.exact.moments(mdp, pg.TabularSoftmax(2, 2))
