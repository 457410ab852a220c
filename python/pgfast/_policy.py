r"""Softmax policies over finite states and actions (seed 000, section 4.5).

Every policy is a table of logits :math:`z(s, a)` computed from its parameters ``theta``;
:math:`\pi(a|s) = \exp z(s,a) / \sum_{a'} \exp z(s,a')`, evaluated in C++ with a stable
log-sum-exp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from ._validation import as_float_array, as_index_array, as_int, as_seed, require_finite

if TYPE_CHECKING:
    from ._mdp import FiniteMDP


class SoftmaxPolicy:
    """Base class: a softmax policy over ``n_states`` states and ``n_actions`` actions.

    ``theta`` is a float64 array owned by the policy. Optimizers update it in place
    (``policy.theta += step``); assigning ``policy.theta = x`` copies ``x`` into it.
    """

    _theta: NDArray[np.float64]
    _n_states: int
    _n_actions: int

    @property
    def n_states(self) -> int:
        return self._n_states

    @property
    def n_actions(self) -> int:
        return self._n_actions

    @property
    def theta(self) -> NDArray[np.float64]:
        """The parameters (float64, updated in place by optimizers)."""
        return self._theta

    @theta.setter
    def theta(self, value: ArrayLike) -> None:
        arr = as_float_array(value, "theta")
        if arr.shape != self._theta.shape:
            raise ValueError(f"theta must have shape {self._theta.shape}, got {arr.shape}")
        require_finite(arr, "theta")
        self._theta[...] = arr

    @property
    def n_params(self) -> int:
        return int(self._theta.size)

    def logits(self) -> NDArray[np.float64]:
        """Logits z(s, a), shape (S, A)."""
        raise NotImplementedError

    def probs(self) -> NDArray[np.float64]:
        r"""The table :math:`\pi(a|s)`, shape (S, A); rows sum to 1."""
        return _core.softmax(self.logits())[0]

    def log_probs(self) -> NDArray[np.float64]:
        r"""The table :math:`\log \pi(a|s) = z(s,a) - \log\sum_{a'} e^{z(s,a')}`, shape (S, A)."""
        return _core.softmax(self.logits())[1]

    def log_prob(self, states: ArrayLike, actions: ArrayLike) -> NDArray[np.float64]:
        r""":math:`\log \pi(a|s)` elementwise for integer arrays of one shape (e.g. a batch (N, H))."""
        s = as_index_array(states, "states", self._n_states)
        a = as_index_array(actions, "actions", self._n_actions)
        if s.shape != a.shape:
            raise ValueError(f"states and actions must have the same shape, got {s.shape} and {a.shape}")
        out = _core.gather_log_prob(self.log_probs(), s.ravel(), a.ravel())
        return out.reshape(s.shape)

    def sample(self, states: ArrayLike, seed: int | None) -> NDArray[np.int32]:
        r"""Actions :math:`a_k \sim \pi(\cdot|s_k)` for an integer array of states (same shape).

        Draw ``k`` (in C order) comes from counter ``k`` of the policy-sampling stream of ``seed``.
        """
        s = as_index_array(states, "states", self._n_states)
        out = _core.sample_actions(self.probs(), s.ravel(), as_seed(seed))
        return out.reshape(s.shape)

    # -- hooks used by pgfast.exact and the estimators -----------------------------------------
    # A policy is its logit table z(s, a); everything the algorithms need from the parameters is
    # the vector-Jacobian product of z (dJ/dtheta from dJ/dz) and the Fisher information.

    def _logit_vjp(self, W: NDArray[np.float64]) -> NDArray[np.float64]:
        r""":math:`\sum_{s,a} W(s,a)\, \nabla_\theta z(s,a)`, in the shape of ``theta``."""
        raise NotImplementedError

    def _fisher(self, probs: NDArray[np.float64], w: NDArray[np.float64]) -> NDArray[np.float64]:
        r""":math:`\sum_s w(s) \sum_a \pi(a|s)\, \psi\psi^\top`, :math:`\psi = \nabla_\theta\log\pi(a|s)`."""
        raise NotImplementedError

    def _natural(
        self, probs: NDArray[np.float64], w: NDArray[np.float64], g: NDArray[np.float64], damping: float, rcond: float
    ) -> NDArray[np.float64]:
        """Solves F x = g (pseudo-inverse, or F + damping I) for the Fisher of weighting w."""
        F = self._fisher(probs, w)
        x = _core.solve_fisher(F, np.ascontiguousarray(g, dtype=np.float64).ravel(), float(damping), float(rcond))
        return x.reshape(self._theta.shape)

    def _probs_for(self, mdp: FiniteMDP) -> NDArray[np.float64]:
        """The probability table, after checking the policy fits ``mdp``."""
        if (self._n_states, self._n_actions) != (mdp.n_states, mdp.n_actions):
            raise ValueError(
                f"policy is sized for (n_states, n_actions) = ({self._n_states}, {self._n_actions}) "
                f"but the MDP has ({mdp.n_states}, {mdp.n_actions})"
            )
        return self.probs()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_states={self._n_states}, n_actions={self._n_actions}, n_params={self.n_params})"


class TabularSoftmax(SoftmaxPolicy):
    r"""Tabular softmax: one preference per state-action pair (seed 000, section 4.5).

    .. math:: \pi_\theta(a|s) = \frac{\exp \theta_{s,a}}{\sum_{a'} \exp \theta_{s,a'}}

    ``theta`` has shape (S, A); it defaults to zeros (the uniform policy).
    """

    def __init__(self, n_states: int, n_actions: int, theta: ArrayLike | None = None) -> None:
        self._n_states = as_int(n_states, "n_states", minimum=1)
        self._n_actions = as_int(n_actions, "n_actions", minimum=1)
        self._theta = np.zeros((self._n_states, self._n_actions))
        if theta is not None:
            self.theta = theta

    def logits(self) -> NDArray[np.float64]:
        return self._theta

    def _logit_vjp(self, W: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.array(W, dtype=np.float64).reshape(self._theta.shape)

    def _fisher(self, probs: NDArray[np.float64], w: NDArray[np.float64]) -> NDArray[np.float64]:
        return _core.fisher_tabular(probs, w)

    def _natural(
        self, probs: NDArray[np.float64], w: NDArray[np.float64], g: NDArray[np.float64], damping: float, rcond: float
    ) -> NDArray[np.float64]:
        # F is block diagonal: one (A, A) block per state.
        gm = np.ascontiguousarray(g, dtype=np.float64).reshape(self._n_states, self._n_actions)
        return _core.natural_gradient_tabular(probs, w, gm, float(damping), float(rcond))


class LinearSoftmax(SoftmaxPolicy):
    r"""Softmax linear in features (seed 000, section 4.5.1).

    .. math:: \pi_\theta(a|s) = \frac{\exp(\theta^\top \phi(s,a))}{\sum_{a'} \exp(\theta^\top \phi(s,a'))},
              \qquad \nabla_\theta \log \pi_\theta(a|s) = \phi(s,a) - \mathbb E_{a' \sim \pi(s)} \phi(s,a')

    ``features`` has shape (S, A, p) (copied, read-only); ``theta`` has shape (p,), zeros by default.
    """

    def __init__(self, features: ArrayLike, theta: ArrayLike | None = None) -> None:
        phi = as_float_array(features, "features", ndim=3)
        S, A, p = phi.shape
        if S < 1 or A < 1 or p < 1:
            raise ValueError(f"features must have shape (S, A, p) with S, A, p >= 1, got {phi.shape}")
        require_finite(phi, "features")
        phi = phi.copy()
        phi.setflags(write=False)
        self._features = phi
        self._n_states, self._n_actions = S, A
        self._theta = np.zeros(p)
        if theta is not None:
            self.theta = theta

    @property
    def features(self) -> NDArray[np.float64]:
        """The features phi(s, a), shape (S, A, p), read-only."""
        return self._features

    @property
    def n_features(self) -> int:
        return int(self._features.shape[2])

    def logits(self) -> NDArray[np.float64]:
        S, A, p = self._features.shape
        z = _core.linear_logits(self._features.reshape(S * A, p), self._theta)
        return z.reshape(S, A)

    def _logit_vjp(self, W: NDArray[np.float64]) -> NDArray[np.float64]:
        S, A, p = self._features.shape
        return _core.linear_vjp(self._features.reshape(S * A, p), np.ascontiguousarray(W, dtype=np.float64).ravel())

    def _fisher(self, probs: NDArray[np.float64], w: NDArray[np.float64]) -> NDArray[np.float64]:
        return _core.fisher_linear(probs, w, self._features)

