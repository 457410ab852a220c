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


def _fixed_table(mdp: pg.FiniteMDP) -> np.ndarray:
    return np.random.default_rng(7).normal(size=(mdp.horizon, mdp.n_states))


CASES = [(w, b) for w in ("reward_to_go", "return") for b in (None, "exact", "time", "mean", "array")
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
