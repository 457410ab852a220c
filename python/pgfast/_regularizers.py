r"""Regularised objectives: the entropy bonus and the log-barrier (see :doc:`/theory`,
"Regularised objectives").

Both are added to the objective :math:`J` that :mod:`pgfast.exact` and the estimators work with:

- :class:`Entropy`: :math:`J_\tau(\theta) = J(\theta) + \tau\, \mathbb E\big[\sum_t \gamma^t
  \mathcal H(\pi(\cdot|s_t))\big]`, the discounted entropy of the actions along the trajectory
  (weighted as the objective weights rewards). It equals the objective of the same MDP with the
  *soft reward* :math:`r(s, a, s') - \tau \log\pi(a|s)` (the expectation over :math:`a` of
  :math:`-\log\pi(a|s)` is the entropy), and so does its gradient: the term that differentiates
  :math:`\log\pi` inside the soft reward is :math:`-\tau\sum_s w(s) \sum_a \pi(a|s)\nabla\log\pi(a|s) = 0`.
- :class:`LogBarrier`: :math:`J_\lambda(\theta) = J(\theta) + \lambda \sum_{s,a} \log\pi(a|s)`,
  i.e. :math:`J` minus the barrier :math:`-\lambda \sum_{s,a}\log\pi(a|s) \ge 0`, which keeps every
  probability away from 0 (Agarwal et al.'s :math:`\lambda / (SA)` is this ``lam``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._mdp import FiniteMDP
from ._validation import as_float


def _strength(x: Any, name: str, cls: str) -> float:
    v = as_float(x, name)
    if not (math.isfinite(v) and v >= 0.0):
        raise ValueError(f"{cls}: {name} must be a finite number >= 0, got {x!r}")
    return v


@dataclass(frozen=True)
class Entropy:
    r"""The entropy bonus :math:`\tau\, \mathbb E[\sum_t \gamma^t \mathcal H(\pi(\cdot|s_t))]`,
    with :math:`\mathcal H(p) = -\sum_a p_a \log p_a`.

    Parameters
    ----------
    tau : float >= 0
        The temperature :math:`\tau` (0: no regularisation).

    Attributes
    ----------
    tau : float
        The temperature.

    Examples
    --------
    >>> pg.Entropy(0.1)
    Entropy(tau=0.1)
    """

    tau: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "tau", _strength(self.tau, "tau", "Entropy"))


@dataclass(frozen=True)
class LogBarrier:
    r"""The log-barrier :math:`\lambda \sum_{s,a} \log\pi(a|s)` added to the objective.

    Parameters
    ----------
    lam : float >= 0
        The weight :math:`\lambda` (0: no regularisation).

    Attributes
    ----------
    lam : float
        The weight.

    Examples
    --------
    >>> pg.LogBarrier(0.01)
    LogBarrier(lam=0.01)
    """

    lam: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "lam", _strength(self.lam, "lam", "LogBarrier"))


Regularizer = Entropy | LogBarrier


def as_regularizer(x: Any, name: str = "regularizer") -> Regularizer | None:
    """``x`` if it is an :class:`Entropy` or a :class:`LogBarrier` (None passes through);
    a ``TypeError`` naming ``name`` otherwise."""
    if x is None or isinstance(x, (Entropy, LogBarrier)):
        return x
    raise TypeError(f"{name} must be pgfast.Entropy(tau), pgfast.LogBarrier(lam) or None, got {type(x).__name__}")


def soft_reward_table(probs: NDArray[np.float64], tau: float) -> NDArray[np.float64]:
    r"""The entropy bonus of each (s, a): :math:`-\tau \log\pi(a|s)`, shape (S, A); 0 where
    :math:`\pi(a|s) = 0` (such pairs carry no weight: :math:`0 \log 0 = 0`)."""
    p = np.asarray(probs, dtype=np.float64)
    out = np.zeros_like(p)
    pos = p > 0.0
    out[pos] = -tau * np.log(p[pos])
    return out


def soft_mdp(mdp: FiniteMDP, probs: NDArray[np.float64], tau: float) -> FiniteMDP:
    r"""``mdp`` with the soft reward :math:`R(s, a, s') - \tau\log\pi(a|s)` on every transition
    (same transitions, start distribution, terminal states, horizon and discount).

    Its objective, values and (with the policy held fixed in the reward) gradient are those of
    the entropy-regularised objective :math:`J_\tau`.
    """
    indptr, nxt, prob, reward = mdp.transitions
    S, A = mdp.n_states, mdp.n_actions
    bonus = soft_reward_table(probs, tau).reshape(S * A)
    per_entry = np.repeat(bonus, np.diff(indptr))
    return FiniteMDP._from_csr(S, A, indptr, nxt, prob, reward + per_entry, mdp.mu0, mdp.terminal,
                               horizon=mdp.horizon, gamma=mdp.gamma)


def barrier_value(probs: NDArray[np.float64], lam: float) -> float:
    r""":math:`\lambda \sum_{s,a} \log\pi(a|s)` (``-inf`` when a probability is 0 and lam > 0)."""
    if lam == 0.0:
        return 0.0
    with np.errstate(divide="ignore"):
        return float(lam * np.log(np.asarray(probs, dtype=np.float64)).sum())


def barrier_logit_grad(probs: NDArray[np.float64], lam: float) -> NDArray[np.float64]:
    r"""The gradient of :math:`\lambda\sum_{s,a}\log\pi(a|s)` in the logits of a softmax policy:
    :math:`\partial/\partial z(s, b) = \lambda\,(1 - A\,\pi(b|s))`, shape (S, A) (map it to
    ``theta`` with the policy's logit Jacobian)."""
    p = np.asarray(probs, dtype=np.float64)
    out: NDArray[np.float64] = lam * (1.0 - p.shape[1] * p)
    return out
