"""Plain NumPy references shared by the tests and the benchmarks (private).

Nothing here is fast or clever on purpose, except where a benchmark needs the best NumPy can do
(the vectorised sampler): these are the yardsticks the C++ kernels are checked and timed against.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from ._mdp import FiniteMDP


def dense_arrays(mdp: FiniteMDP) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Dense P (S, A, S) and transition rewards R (S, A, S) from the MDP's CSR storage."""
    S, A = mdp.n_states, mdp.n_actions
    indptr, nxt, prob, rew = mdp.transitions
    rows = np.repeat(np.arange(S * A), np.diff(indptr))
    P = np.zeros((S * A, S))
    R = np.zeros((S * A, S))
    P[rows, nxt] = prob
    R[rows, nxt] = rew
    return P.reshape(S, A, S), R.reshape(S, A, S)


def finite_horizon_values(
    mdp: FiniteMDP, probs: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], float]:
    r"""Backward induction with dense arrays: ``(V (H, S), Q (H, S, A), J)``.

    .. math:: Q_t(s,a) = \sum_{s'} P(s'|s,a) \big[R(s,a,s') + \gamma\,(1 - \text{term}(s'))\,V_{t+1}(s')\big],
              \quad V_t(s) = \sum_a \pi(a|s) Q_t(s,a), \quad V_H = 0, \quad J = \mu_0^\top V_0.
    """
    P, R = dense_arrays(mdp)
    S, A, H, g = mdp.n_states, mdp.n_actions, mdp.horizon, mdp.gamma
    alive = 1.0 - mdp.terminal.astype(np.float64)
    V = np.zeros((H + 1, S))
    Q = np.zeros((H, S, A))
    r = (P * R).sum(axis=2)
    for t in range(H - 1, -1, -1):
        Q[t] = r + g * P @ (alive * V[t + 1])
        V[t] = (probs * Q[t]).sum(axis=1)
    return V[:H], Q, float(mdp.mu0 @ V[0])


def step_distributions(mdp: FiniteMDP, probs: NDArray[np.float64]) -> NDArray[np.float64]:
    r"""``d (H, S)``: probability that the episode is still running at step t and in state s."""
    P, _ = dense_arrays(mdp)
    alive = 1.0 - mdp.terminal.astype(np.float64)
    P_pi = np.einsum("sa,sat->st", probs, P)
    d = np.zeros((mdp.horizon, mdp.n_states))
    d[0] = mdp.mu0
    for t in range(1, mdp.horizon):
        d[t] = (d[t - 1] @ P_pi) * alive
    return d
