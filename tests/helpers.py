"""Helpers shared by the test files: builders of small random MDPs and policies, and the
Bonferroni-corrected z-test family of the statistical tests.

Test files import them by name (``from helpers import random_mdp``): pytest puts this folder on
``sys.path`` (``pythonpath = ["tests"]`` in pyproject.toml). Fixtures live in conftest.py.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any

import numpy as np

import pgfast as pg

# Seconds from SIGINT to KeyboardInterrupt that a long call may take. The kernels poll every
# 20 ms; a sanitizer build (instrumented code, 2-5x slower) keeps the interrupt and health checks
# with a looser bound, since there a late answer means slow code, not a missing poll.
MAX_INTERRUPT_LATENCY = 5.0 if pg.build_info()["sanitize"] else 1.0

N_FEATURES = 4  # features per (s, a) of the random linear policies


def random_mdp(
    rng: np.random.Generator,
    S: int = 6,
    A: int = 3,
    *,
    successors: int | None = None,
    n_terminal: int = 0,
    horizon: int = 8,
    gamma: float = 1.0,
    transition_rewards: bool = False,
) -> pg.FiniteMDP:
    """A random MDP: `successors` distinct next states per (s, a) (all S when None), Dirichlet
    probabilities, Gaussian rewards, the last `n_terminal` states terminal, mu0 on the others."""
    k = S if successors is None else successors
    P = np.zeros((S, A, S))
    for s in range(S):
        for a in range(A):
            nxt = rng.choice(S, size=k, replace=False)
            P[s, a, nxt] = rng.dirichlet(np.ones(k))
    R = rng.normal(size=(S, A, S) if transition_rewards else (S, A))
    terminal = np.zeros(S, dtype=bool)
    if n_terminal:
        terminal[S - n_terminal :] = True
    mu0 = rng.dirichlet(np.ones(S - n_terminal))
    mu0 = np.concatenate([mu0, np.zeros(n_terminal)])
    return pg.FiniteMDP(P, R, mu0, horizon=horizon, gamma=gamma, terminal=terminal)


def random_policy(rng: np.random.Generator, mdp: pg.FiniteMDP, scale: float = 1.0) -> pg.TabularSoftmax:
    return pg.TabularSoftmax(mdp.n_states, mdp.n_actions, theta=scale * rng.normal(size=(mdp.n_states, mdp.n_actions)))


def random_softmax(kind: str, mdp: pg.FiniteMDP, rng: np.random.Generator, scale: float = 1.0) -> pg.SoftmaxPolicy:
    """A random "tabular" policy, or a "linear" one on N_FEATURES Gaussian features."""
    if kind == "tabular":
        return random_policy(rng, mdp, scale)
    phi = rng.normal(size=(mdp.n_states, mdp.n_actions, N_FEATURES))
    return pg.LinearSoftmax(phi, theta=scale * rng.normal(size=N_FEATURES))


# -- statistical checks ----------------------------------------------------------------------------
# Each statistical test checks a family of m scalar hypotheses with a two-sided z-test on the
# estimator's own standard error, Bonferroni-corrected for a family-wise false-alarm rate ALPHA
# (tests/test_estimators.py explains why the z-scores are close to normal).

ALPHA = 1e-3  # family-wise false-alarm rate of every statistical test (fixed seeds: deterministic)


def k_two_sided(m: int, alpha: float = ALPHA) -> float:
    """Bonferroni critical value for m two-sided z-tests at family-wise level alpha."""
    return NormalDist().inv_cdf(1.0 - alpha / (2.0 * m))


def z_scores(est: np.ndarray, se: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """|est - ref| / se, with 0 where se == 0 and est == ref and inf where se == 0 and est != ref."""
    est, se, ref = (np.asarray(x, dtype=np.float64) for x in (est, se, ref))
    assert np.all(np.isfinite(est)) and np.all(np.isfinite(se)) and np.all(se >= 0)
    diff = np.abs(est - ref)
    z = np.zeros_like(diff)
    pos = se > 0
    np.divide(diff, se, out=z, where=pos)
    z[~pos & (diff != 0)] = np.inf
    return z


class Family:
    """Collects (name, estimate, stderr, reference) checks and tests them together, Bonferroni-
    corrected over every scalar in the family."""

    def __init__(self) -> None:
        self.items: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, name: str, est: Any, se: Any, ref: Any) -> None:
        self.items.append((name, np.atleast_1d(np.asarray(est, float)), np.atleast_1d(np.asarray(se, float)),
                           np.atleast_1d(np.asarray(ref, float))))

    def grad(self, name: str, est: pg.PolicyGradient, exact: np.ndarray, J: float) -> None:
        assert est.grad.shape == est.stderr.shape == exact.shape
        self.add(name, est.grad, est.stderr, exact)
        self.add(name + " value", est.value, est.value_stderr, J)

    @property
    def m(self) -> int:
        return sum(int(e.size) for _, e, _, _ in self.items)

    def check(self) -> float:
        k = k_two_sided(self.m)
        bad = []
        for name, est, se, ref in self.items:
            z = z_scores(est, se, ref)
            for idx in np.argwhere(z > k):
                i = tuple(int(j) for j in idx)
                bad.append(f"{name}{list(i)}: est {est[i]:.6g} ref {ref[i]:.6g} se {se[i]:.3g} z {z[i]:.2f}")
        assert not bad, f"k = {k:.3f} over m = {self.m} scalars:\n" + "\n".join(bad)
        return k


# -- policies, batches and scores for the estimator tests -----------------------------------------


def nearby_behavior(pi: pg.SoftmaxPolicy, rng: np.random.Generator, spread: float = 0.5) -> pg.TabularSoftmax:
    """Another random softmax policy: the target's log-probabilities plus noise eps ~ N(0, spread^2),
    so each step's ratio pi(a|s)/beta(a|s) = exp(-eps_sa) sum_b pi(b|s) exp(eps_sb) lies within
    exp(+-2 max|eps|) (about exp(+-2.5) here): bounded ratios, finite moments of every order."""
    logits = pi.log_probs() + spread * rng.normal(size=(pi.n_states, pi.n_actions))
    return pg.TabularSoftmax(pi.n_states, pi.n_actions, theta=logits)


def logged_log_probs(beta: pg.SoftmaxPolicy, traj: pg.Trajectories, pad: float = np.nan) -> np.ndarray:
    """log beta(a_t|s_t) of a batch as logged data (N, H); `pad` past the end of each episode."""
    mask = traj.mask
    lp = beta.log_probs()[np.where(mask, traj.states, 0), np.where(mask, traj.actions, 0)]
    return np.where(mask, lp, pad)


def tiny_problem() -> tuple[pg.FiniteMDP, pg.TabularSoftmax, pg.Trajectories]:
    """Three states (state 2 terminal), two actions, H = 3, gamma = 0.5, and a hand-written batch:
    episode 0 runs to the horizon, 1 enters the terminal state at step 1, 2 at step 0."""
    P = np.zeros((3, 2, 3))
    P[0, 0] = [0.5, 0.3, 0.2]
    P[0, 1] = [0.1, 0.6, 0.3]
    P[1, 0] = [0.2, 0.2, 0.6]
    P[1, 1] = [0.7, 0.3, 0.0]
    P[2, :, 2] = 1.0
    R = np.array([[1.0, 2.0], [3.0, -1.0], [0.0, 0.0]])
    mdp = pg.FiniteMDP(P, R, [0.6, 0.4, 0.0], horizon=3, gamma=0.5, terminal=[False, False, True])
    pi = pg.TabularSoftmax(3, 2, theta=[[0.2, -0.3], [1.0, 0.0], [0.0, 0.0]])
    states = np.array([[0, 1, 0], [1, 0, -1], [0, -1, -1]], dtype=np.int32)
    actions = np.array([[1, 0, 0], [1, 0, -1], [1, -1, -1]], dtype=np.int32)
    rewards = np.array([[2.0, 3.0, 1.0], [-1.0, 1.0, 0.0], [2.0, 0.0, 0.0]])
    lengths = np.array([3, 2, 1], dtype=np.int32)
    finals = np.array([1, 2, 2], dtype=np.int32)
    return mdp, pi, pg.Trajectories(mdp, states, actions, rewards, lengths, finals)


def tiny_behavior() -> pg.TabularSoftmax:
    return pg.TabularSoftmax(3, 2, theta=[[-0.5, 0.4], [0.2, 0.3], [0.0, 0.0]])


def score_by_definition(pi: pg.SoftmaxPolicy, s: int, a: int) -> np.ndarray:
    """grad_theta log pi(a|s) from its definition, in the shape of theta."""
    probs = pi.probs()
    if isinstance(pi, pg.LinearSoftmax):
        phi = pi.features
        out: np.ndarray = phi[s, a] - probs[s] @ phi[s]
        return out
    g = np.zeros((pi.n_states, pi.n_actions))
    g[s] -= probs[s]
    g[s, a] += 1.0
    return g


def hand_rows(pi: pg.SoftmaxPolicy, traj: pg.Trajectories, W: np.ndarray) -> np.ndarray:
    """Per-trajectory sum_{t < len} W[i, t] grad log pi(a_t|s_t), (N, n_params), by loops."""
    rows = np.zeros((traj.n, pi.n_params))
    for i in range(traj.n):
        for t in range(int(traj.lengths[i])):
            rows[i] += W[i, t] * score_by_definition(pi, int(traj.states[i, t]), int(traj.actions[i, t])).ravel()
    return rows


def hand_grad(pi: pg.SoftmaxPolicy, traj: pg.Trajectories, W: np.ndarray) -> np.ndarray:
    return hand_rows(pi, traj, W).mean(axis=0).reshape(pi.theta.shape)


def assert_close(a: Any, b: Any) -> None:
    np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-14)


# -- FrozenLake 8x8 and one policy of each class (reproducibility and shard tests) ---------------------


def frozenlake_8x8(horizon: int = 120) -> pg.FiniteMDP:
    return pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="8x8", horizon=horizon)


def frozenlake_policy(kind: str, rng: np.random.Generator) -> pg.SoftmaxPolicy:
    """A random tabular, linear (5 random features) or MLP (8 hidden units) policy for FrozenLake 8x8."""
    if kind == "tabular":
        return pg.TabularSoftmax(64, 4, theta=rng.normal(size=(64, 4)))
    if kind == "linear":
        return pg.LinearSoftmax(rng.normal(size=(64, 4, 5)), theta=rng.normal(size=5))
    return pg.MLPSoftmax(64, 4, hidden=(8,), seed=1)
