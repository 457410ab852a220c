"""Shared builders for small random MDPs and policies."""

from __future__ import annotations

import numpy as np
import pytest

import pgfast as pg

# Seconds from SIGINT to KeyboardInterrupt that a long call may take. The kernels poll every
# 20 ms; a sanitizer build (instrumented code, 2-5x slower) keeps the interrupt and health checks
# with a looser bound, since there a late answer means slow code, not a missing poll.
MAX_INTERRUPT_LATENCY = 5.0 if pg.build_info()["sanitize"] else 1.0


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


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261124)
