r"""Policies parameterised by a table ``theta`` (S, A) other than the softmax of ``theta``: the
escort transform and the direct parameterisation (see :doc:`/theory`, "Escort and direct
parameterisations").

Both are softmax policies of the logits :math:`z(s,a) = p\log|\theta_{s,a}|` (:math:`z = -\infty`
where :math:`\theta_{s,a} = 0`; the direct parameterisation is :math:`p = 1`, :math:`\theta \ge 0`),
so :mod:`pgfast.exact` and the C++ estimators work on z as for a tabular softmax and map the result
to ``theta`` by the elementwise Jacobian :math:`\partial z/\partial\theta = p/\theta` (taken as 0 where
:math:`\theta = 0`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from ._policy import KernelTables, SoftmaxPolicy, interruptible
from ._validation import MAX_SIZE, as_float, as_int, check_allocation

SIMPLEX_TOL = 1e-9  # how far a row of a DirectPolicy's theta may sum from 1


class _TablePolicy(SoftmaxPolicy):
    """What the escort and direct policies share: theta (S, A), the logits p log|theta|, the
    elementwise Jacobian p / theta, and the hooks of exact and the estimators built on it."""

    _caches_probs = True
    _power = 1.0

    def _init_table(self, n_states: int, n_actions: int, theta: ArrayLike | None) -> None:
        self._n_states = as_int(n_states, "n_states", minimum=1, maximum=MAX_SIZE)
        self._n_actions = as_int(n_actions, "n_actions", minimum=1, maximum=MAX_SIZE)
        check_allocation(16 * self._n_states * self._n_actions,
                         f"{type(self).__name__}(n_states={self._n_states}, n_actions={self._n_actions})'s theta",
                         "use fewer states or actions")
        self._theta = self._default_theta()
        self._theta_accepted = self._theta.copy()
        if theta is not None:
            self.theta = theta

    def _default_theta(self) -> NDArray[np.float64]:
        raise NotImplementedError

    def logits(self) -> NDArray[np.float64]:
        return self._logits_and_net(self._theta_copy())[0]

    def _logits_and_net(self, theta: NDArray[np.float64]) -> tuple[NDArray[np.float64], Any]:
        with np.errstate(divide="ignore"):  # log 0 = -inf: probability 0
            z: NDArray[np.float64] = self._power * np.log(np.abs(theta))
        return z, None

    def log_probs(self) -> NDArray[np.float64]:
        # -inf where the probability is 0 (theta = 0): the logits are -inf there
        if not self._caches_probs:  # a subclass with logits() of its own
            return super().log_probs()
        return self._log_probs_at(self._snapshot().theta)

    def _log_probs_at(self, theta: NDArray[np.float64]) -> NDArray[np.float64]:
        raise NotImplementedError

    def _scale_at(self, theta: NDArray[np.float64]) -> NDArray[np.float64]:
        """dz/dtheta = p / theta elementwise, 0 where theta = 0."""
        c = np.zeros_like(theta)
        nz = theta != 0.0
        with np.errstate(over="ignore"):  # an infinite factor is reported by the caller's check
            c[nz] = self._power / theta[nz]
        return c

    def _logit_scale(self) -> NDArray[np.float64]:
        """dz/dtheta at the theta of the current snapshot (that of the probabilities)."""
        return self._scale_at(self._snapshot().theta)

    def _kernel_tables(self) -> KernelTables:
        snap = self._snapshot()
        return KernelTables(snap.probs, None, None, self._scale_at(snap.theta))

    def _logit_vjp(self, W: NDArray[np.float64]) -> NDArray[np.float64]:
        with np.errstate(over="ignore", invalid="ignore"):  # reported by the caller's finiteness check
            out: NDArray[np.float64] = np.asarray(W, dtype=np.float64).reshape(self._theta.shape) * self._logit_scale()
        return out

    def _fisher(self, probs: NDArray[np.float64], w: NDArray[np.float64]) -> NDArray[np.float64]:
        c = self._logit_scale().ravel()
        F = _core.exact.fisher_tabular(probs, w)
        with np.errstate(over="ignore", invalid="ignore"):
            F *= c[:, None]
            F *= c[None, :]
        return F

    def _natural(
        self, probs: NDArray[np.float64], w: NDArray[np.float64], g: NDArray[np.float64], damping: float, rcond: float
    ) -> NDArray[np.float64]:
        # F is block diagonal, one (A, A) block per state: w(s) C (diag pi - pi pi^T) C with
        # C = diag(dz/dtheta); solved block by block with the cut-off of the dense solve
        # (eigenvalues below rcond times the largest of all blocks dropped)
        S, A = self._n_states, self._n_actions
        c = self._logit_scale()
        gs = np.ascontiguousarray(g, dtype=np.float64).reshape(S, A)

        def solve() -> NDArray[np.float64]:
            eye = np.eye(A)
            with np.errstate(over="ignore", invalid="ignore"):
                B = probs[:, :, None] * eye - probs[:, :, None] * probs[:, None, :]
                B *= w[:, None, None] * c[:, :, None] * c[:, None, :]
            if not np.all(np.isfinite(B)):
                raise ValueError("the Fisher information is beyond the float64 range (entries of theta too close to 0)")
            if damping > 0.0:
                return np.asarray(np.linalg.solve(B + damping * eye, gs[:, :, None])[:, :, 0], dtype=np.float64)
            lam, V = np.linalg.eigh(B)
            cut = rcond * max(float(np.abs(lam).max(initial=0.0)), float(np.finfo(np.float64).tiny))
            keep = lam > cut
            coef = np.einsum("sba,sb->sa", V, gs)
            coef = np.where(keep, coef / np.where(keep, lam, 1.0), 0.0)
            out: NDArray[np.float64] = np.einsum("sab,sb->sa", V, coef)
            return out

        return interruptible(solve, 10.0 * S * A**3)

    def grad_log_prob(self, states: ArrayLike, actions: ArrayLike) -> NDArray[np.float64]:
        # the softmax score one-hot(a) - pi(.|s) on row s, times dz/dtheta
        s, a = self._pairs(states, actions)
        S, A = self._n_states, self._n_actions
        check_allocation(8 * s.size * S * A, "the score rows", "pass fewer pairs at a time")
        snap = self._snapshot()
        c = self._scale_at(snap.theta)
        out = np.zeros((s.size, S, A))
        k = np.arange(s.size)
        with np.errstate(over="ignore", invalid="ignore"):
            # 0.0 - : no -0.0 where pi = 0; pi = 0 with an overflowing p / theta (theta ~ 1e-308) is 0,
            # the limit of pi / theta = sign(theta) |theta|^(p-1) / sum |theta|^p
            out[k, s, :] = 0.0 - np.where(snap.probs[s] > 0.0, snap.probs[s] * c[s], 0.0)
            out[k, s, a] += c[s, a]
        return out


class EscortPolicy(_TablePolicy):
    r"""The escort transform (Mei et al. 2020): a power of :math:`|\theta|`, normalised.

    .. math:: \pi_\theta(a|s) = \frac{|\theta_{s,a}|^p}{\sum_{b} |\theta_{s,b}|^p},
              \qquad \nabla_\theta \log\pi_\theta(a|s) = \frac{p}{\theta_{s,\cdot}} \odot
              \big(\mathbb 1[\cdot = a] - \pi(\cdot|s)\big) \text{ on row } s

    It is the softmax of the logits :math:`z = p\log|\theta|` (``logits()``; :math:`-\infty` where
    :math:`\theta = 0`, whose probability is 0), so every gradient is the softmax one in z times
    :math:`p/\theta` elementwise; where :math:`\theta_{s,a} = 0` that factor is taken as 0, the
    limit of :math:`p\,\mathrm{sign}(\theta)|\theta|^{p-1}/\sum_b|\theta_{s,b}|^p` for :math:`p > 1`
    (for :math:`p = 1`, where :math:`|\theta|` has no derivative at 0, the gradient's entry there is 0).
    ``theta`` has shape (S, A), ones by default (the uniform policy); each row needs a nonzero
    entry. The gradient scales as :math:`1/|\theta|`: with exact gradients and a constant step,
    escort gradient ascent escapes a near-deterministic policy faster than the softmax (the
    point of Mei et al.). Theory: :doc:`/theory`, "Escort and direct parameterisations".

    Parameters
    ----------
    n_states, n_actions : int >= 1
        Numbers of states S and actions A.
    p : float >= 1
        The exponent (default 2).
    theta : array_like (S, A), optional
        Initial parameters (copied; default ones).

    Raises
    ------
    ValueError
        Sizes below 1, a ``p`` below 1 or not finite, or a ``theta`` of another shape, not finite
        or with a row of zeros.
    MemoryError
        A table larger than memory (the message states the bytes requested).

    Examples
    --------
    >>> pi = pg.EscortPolicy(2, 3, p=2.0, theta=[[1.0, -2.0, 0.0], [1.0, 1.0, 1.0]])
    >>> pi.probs()  # |theta|^2 normalised per row
    array([[0.2       , 0.8       , 0.        ],
           [0.33333333, 0.33333333, 0.33333333]])
    >>> pi.grad_log_prob([0], [0])[0, 0]  # (p / theta) (one-hot(0) - pi(.|0)); 0 where theta = 0
    array([1.6, 0.8, 0. ])

    The exact gradient and the estimators take it as any other policy:

    >>> P = np.zeros((2, 2, 2))
    >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
    >>> P[1, :, 1] = 1.0
    >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
    ...                    terminal=[False, True])
    >>> pg.exact.gradient(mdp, pg.EscortPolicy(2, 2))  # the softmax gradient times p / theta = 2
    array([[-0.375,  0.375],
           [ 0.   ,  0.   ]])
    """

    def __init__(self, n_states: int, n_actions: int, p: float = 2.0, theta: ArrayLike | None = None) -> None:
        power = as_float(p, "p")
        if not (np.isfinite(power) and power >= 1.0):
            raise ValueError(f"p must be a finite number >= 1 (the escort exponent), got {p!r}")
        self._power = power
        self._init_table(n_states, n_actions, theta)

    @property
    def p(self) -> float:
        """The exponent p."""
        return self._power

    def _default_theta(self) -> NDArray[np.float64]:
        return np.ones((self._n_states, self._n_actions))

    def _check_theta(self, theta: NDArray[np.float64]) -> None:
        zero = ~np.any(theta != 0.0, axis=1)
        if zero.any():
            s = int(np.argmax(zero))
            raise ValueError(f"theta must have a nonzero entry in every row (pi(.|s) is |theta[s]|^p normalised), "
                             f"but row {s} is all zeros")

    def _powers(self, theta: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(|theta| / its row maximum, that to the power p): scaled so that no power overflows."""
        a = np.abs(theta)
        a = a / a.max(axis=1, keepdims=True)
        return a, a**self._power

    def _probs_and_net(self, theta: NDArray[np.float64]) -> tuple[NDArray[np.float64], Any]:
        _, e = self._powers(theta)
        return np.ascontiguousarray(e / e.sum(axis=1, keepdims=True)), None

    def _log_probs_at(self, theta: NDArray[np.float64]) -> NDArray[np.float64]:
        a, e = self._powers(theta)
        with np.errstate(divide="ignore"):
            lp: NDArray[np.float64] = self._power * np.log(a) - np.log(e.sum(axis=1, keepdims=True))
        return lp

    def __repr__(self) -> str:
        return f"EscortPolicy(n_states={self._n_states}, n_actions={self._n_actions}, p={self._power:g})"


class DirectPolicy(_TablePolicy):
    r"""The direct parameterisation (Agarwal et al. 2021): :math:`\pi_\theta(a|s) = \theta_{s,a}`,
    each row of ``theta`` on the probability simplex.

    The gradient is that of :math:`J(\theta_{s,a} / \sum_b \theta_{s,b})`, so the direction normal
    to the simplex (adding a constant to a row) does not enter: at a ``theta`` on the simplex,

    .. math:: \frac{\partial J}{\partial\theta_{s,a}} = w(s)\,\big(Q(s,a) - V(s)\big),

    with :math:`w` the objective's state weighting (discounted: the visitation
    :math:`\rho(s) = \sum_t\gamma^t\Pr(s_t = s)`; finite horizon: summed over t with weights
    :math:`\gamma^t d_t(s)`; see :mod:`pgfast.exact`). It is defined on the boundary too (where
    :math:`\theta_{s,a} = 0`), and :func:`pgfast.exact.gradient` returns it there (except with the
    entropy bonus, whose derivative is :math:`+\infty` at a zero probability: a ``ValueError``). Agarwal et
    al.'s form :math:`\frac{1}{1-\gamma} d(s) Q(s,a)` differs from the discounted one by
    :math:`\rho(s) V(s)`, a constant per state, which the projection onto the simplex ignores.

    The score, for the estimators: :math:`\nabla_\theta\log\pi(a|s) = \mathbb 1[\cdot = a]/\theta_{s,a} - 1`
    on row s (the softmax score divided by :math:`\theta`), whose estimates are unbiased in the
    interior of the simplex. A sampled batch never holds an action of probability 0, so the
    likelihood-ratio estimators (and :meth:`grad_log_prob`, :func:`pgfast.exact.moments`) take
    the score *within the face* of the simplex that theta lies on: its entries for the actions
    with :math:`\theta_{s,b} = 0` are 0 (as if those actions had advantage 0), so their estimates
    there are 0 while the exact gradient is :math:`w(s)(Q(s,b) - V(s))`; on the other entries they
    are unbiased. :func:`pgfast.exact.natural_gradient` and the Fisher information work within the
    face as well.

    Assigning a ``theta`` with a negative entry or a row that does not sum to 1 (within 1e-9)
    raises ``ValueError``: map a table onto the simplex with :func:`pgfast.optim.project_simplex`.
    The optimizers of :mod:`pgfast.optim` do so after every step (projected gradient ascent).
    Theory: :doc:`/theory`, "Escort and direct parameterisations".

    Parameters
    ----------
    n_states, n_actions : int >= 1
        Numbers of states S and actions A.
    theta : array_like (S, A), optional
        Initial probabilities, each row on the simplex (copied; default uniform, 1 / A).

    Raises
    ------
    ValueError
        Sizes below 1, or a ``theta`` of another shape, not finite or off the simplex.
    MemoryError
        A table larger than memory (the message states the bytes requested).

    Examples
    --------
    >>> pi = pg.DirectPolicy(2, 3, theta=[[0.2, 0.8, 0.0], [0.5, 0.25, 0.25]])
    >>> pi.probs()
    array([[0.2 , 0.8 , 0.  ],
           [0.5 , 0.25, 0.25]])
    >>> pi.grad_log_prob([0], [0])[0, 0]  # one-hot(0) / theta - 1 within the face (theta > 0)
    array([ 4., -1.,  0.])
    >>> pi.theta = [[0.5, 0.6, 0.0], [0.5, 0.25, 0.25]]
    Traceback (most recent call last):
    ...
    ValueError: each row of theta must lie on the probability simplex (...), but row 0 sums to 1.1: map it ...

    Projected gradient ascent with exact gradients (the optimizers project each step):

    >>> P = np.zeros((2, 2, 2))
    >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
    >>> P[1, :, 1] = 1.0
    >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
    ...                    terminal=[False, True])
    >>> pi = pg.DirectPolicy(2, 2)
    >>> pg.exact.gradient(mdp, pi)  # w(s) (Q(s, a) - V(s))
    array([[-0.375,  0.375],
           [ 0.   ,  0.   ]])
    >>> opt = pg.optim.GradientAscent(lr=2.0)
    >>> _ = opt.step(pi, pg.exact.gradient(mdp, pi))
    >>> pi.theta  # (0.5, 0.5) + 2 (-0.375, 0.375), projected
    array([[0. , 1. ],
           [0.5, 0.5]])
    """

    def __init__(self, n_states: int, n_actions: int, theta: ArrayLike | None = None) -> None:
        self._init_table(n_states, n_actions, theta)

    def _default_theta(self) -> NDArray[np.float64]:
        return np.full((self._n_states, self._n_actions), 1.0 / self._n_actions)

    def _check_theta(self, theta: NDArray[np.float64]) -> None:
        if (theta < 0.0).any():
            s, a = map(int, np.argwhere(theta < 0.0)[0])
            raise ValueError(f"each row of theta must lie on the probability simplex (entries >= 0 summing to 1), but "
                             f"theta[{s}, {a}] = {float(theta[s, a])!r}: map it onto the simplex with pgfast.optim.project_simplex")
        total = theta.sum(axis=1)
        off = ~(np.abs(total - 1.0) <= SIMPLEX_TOL)
        if off.any():
            s = int(np.argmax(off))
            raise ValueError(f"each row of theta must lie on the probability simplex (entries >= 0 summing to 1 within "
                             f"{SIMPLEX_TOL:g}), but row {s} sums to {float(total[s])!r}: map it onto the simplex with "
                             "pgfast.optim.project_simplex")

    def _probs_and_net(self, theta: NDArray[np.float64]) -> tuple[NDArray[np.float64], Any]:
        return np.ascontiguousarray(theta / theta.sum(axis=1, keepdims=True)), None

    def _log_probs_at(self, theta: NDArray[np.float64]) -> NDArray[np.float64]:
        with np.errstate(divide="ignore"):
            lp: NDArray[np.float64] = np.log(theta) - np.log(theta.sum(axis=1, keepdims=True))
        return lp

    def _exact_gradient(self, grad: NDArray[np.float64], prob_grad: NDArray[np.float64]) -> NDArray[np.float64]:
        # d/dtheta J(theta / rowsum) = prob_grad / rowsum where theta = 0, where the logit form
        # (dJ/dz / theta, exact elsewhere, terms added to dJ/dz included) is 0 / 0
        theta = self._snapshot().theta
        edge = np.asarray(prob_grad, dtype=np.float64) / theta.sum(axis=1, keepdims=True)
        out: NDArray[np.float64] = np.where(theta > 0.0, grad, edge)
        return out
