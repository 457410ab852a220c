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
