r"""Neural softmax policies: a multi-layer perceptron from state features to logits (see
:doc:`/theory`, "Softmax policies and their scores").

The forward and backward passes run in C++ (``pgfast._core``); the parameter-space pieces that
the estimators, :mod:`pgfast.exact` and the optimizers need (the map from logit gradients to
``theta``, the Fisher factor) are methods of :class:`MLPSoftmax`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from ._policy import KernelTables, Snapshot, SoftmaxPolicy, interruptible
from ._validation import MAX_SIZE, as_float_array, as_int, as_seed, check_allocation, check_array_bytes, require_finite

_ACTIVATIONS = {"tanh": _core.mlp.Activation.TANH, "relu": _core.mlp.Activation.RELU}


def _glorot(rng: np.random.Generator, sizes: Sequence[int]) -> NDArray[np.float64]:
    parts = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        a = np.sqrt(6.0 / (n_in + n_out))
        parts.append(rng.uniform(-a, a, size=n_in * n_out))
        parts.append(np.zeros(n_out))
    return np.concatenate(parts)


class MLPSoftmax(SoftmaxPolicy):
    r"""Neural softmax policy: a multi-layer perceptron from state features
    :math:`\phi(s) \in \mathbb R^d` to one logit per action (see :doc:`/theory`, "Softmax
    policies and their scores").

    .. math::
        h_0 = \phi(s), \quad h_l = \sigma(h_{l-1} W_l + b_l)\ (l < L), \quad
        f_\theta(s, \cdot) = h_{L-1} W_L + b_L, \qquad
        \pi_\theta(a|s) = \frac{\exp f_\theta(s,a)}{\sum_{a'}\exp f_\theta(s,a')}

    with :math:`\sigma` = ``tanh`` or ``relu``, and score
    :math:`\nabla_\theta\log\pi_\theta(a|s) = \nabla f_\theta(s,a) - \mathbb E_{a'\sim\pi(s)}\nabla f_\theta(s,a')`.

    - ``state_features``: an ``(S, d)`` array, or an int ``S`` for one-hot features (d = S).
    - ``hidden``: the hidden layer sizes (``()`` gives a linear-in-state-features softmax).
    - ``theta`` is one flat float64 vector, so every optimizer works unchanged. Layout, for
      :math:`l = 1..L` with :math:`n_0 = d,\ n_L = A`: :math:`W_l` as an :math:`(n_{l-1}, n_l)`
      row-major block, then :math:`b_l` (:math:`n_l`). :meth:`layers` returns views of the blocks.
    - Initialisation from ``seed``: Glorot-uniform weights
      :math:`U(\pm\sqrt{6/(n_{l-1}+n_l)})`, zero biases (or pass ``theta``).

    The forward and backward passes run in C++ (Eigen), batched over the finite state space: the
    logits of every state are computed once per parameter value, so sampling costs what it costs
    for a tabular policy, and the estimators and :mod:`pgfast.exact` backpropagate a table of
    logit gradients once per call.

    Parameters
    ----------
    state_features : array_like (S, d) or int
        State features, or the number of states S for one-hot features.
    n_actions : int >= 1
        Number of actions A (the output layer's width).
    hidden : sequence of int
        Hidden layer sizes (default ``(64, 64)``).
    activation : {"tanh", "relu"}
        Activation of the hidden layers.
    seed : int or None
        Seed of the Glorot-uniform initialisation (default 0).
    theta : array_like (n_params,), optional
        Initial parameters instead of the random initialisation.

    Raises
    ------
    TypeError
        ``hidden`` not a sequence of sizes, or ``activation`` not a string.
    ValueError
        Sizes below 1, an unknown ``activation``, non-finite features or a bad ``theta``.
    MemoryError
        Parameters or activations larger than memory (the message states the bytes requested).

    Examples
    --------
    >>> net = pg.MLPSoftmax(4, 2, hidden=(8,), seed=0)  # one-hot features of 4 states
    >>> net.sizes, net.n_params
    ((4, 8, 2), 58)
    >>> [W.shape for W, b in net.layers()]
    [(4, 8), (8, 2)]
    >>> net.probs().shape, net.probs().sum(axis=1).round(12)
    ((4, 2), array([1., 1., 1., 1.]))
    """

    _caches_probs = True

    def __init__(
        self,
        state_features: ArrayLike | int,
        n_actions: int,
        hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
        seed: int | None = 0,
        theta: ArrayLike | None = None,
    ) -> None:
        if isinstance(state_features, (int, np.integer)) and not isinstance(state_features, bool):
            S = as_int(state_features, "state_features", minimum=1, maximum=MAX_SIZE)
            check_allocation(8 * S * S, f"one-hot state features (S, S) for S = state_features = {S}",
                             "pass a (S, d) array of state features instead")
            phi = np.eye(S)
        else:
            check_array_bytes(state_features, "state_features", "MLPSoftmax")
            phi = as_float_array(state_features, "state_features", ndim=2).copy()
            if phi.shape[0] < 1 or phi.shape[1] < 1:
                raise ValueError(f"state_features must have shape (S, d) with S, d >= 1, got {phi.shape}")
            require_finite(phi, "state_features")
        phi.setflags(write=False)
        self._n_actions = as_int(n_actions, "n_actions", minimum=1, maximum=MAX_SIZE)
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
            raise TypeError(f"hidden must be a sequence of layer sizes, e.g. (64, 64), got {hidden!r}")
        self._hidden = tuple(as_int(h, f"hidden[{i}] (a layer size)", minimum=1, maximum=MAX_SIZE) for i, h in enumerate(hidden))
        if not isinstance(activation, str):
            raise TypeError(f"activation must be 'tanh' or 'relu', got {type(activation).__name__}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be 'tanh' or 'relu', got {activation!r}")
        self._activation = str(activation)
        self._features = phi
        self._n_states = int(phi.shape[0])
        sizes = (int(phi.shape[1]),) + self._hidden + (self._n_actions,)
        n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        check_allocation(8 * n_params, "the MLP's parameters", "use smaller hidden layers")
        # the forward pass keeps every layer's activations for all S states; a backward pass adds
        # two (S, widest layer) work arrays
        S_ = self._n_states
        check_allocation(8 * S_ * (sum(sizes[1:]) + 2 * max(sizes)),
                         f"the MLP's activations for all S = {S_} states (hidden={self._hidden})",
                         "use fewer states or smaller hidden layers")
        self._net = _core.mlp.MLPNet(phi, list(self._hidden), self._n_actions, _ACTIVATIONS[self._activation])
        assert self._net.n_params == n_params
        self._theta = _glorot(np.random.default_rng(as_seed(seed)), sizes)
        self._theta_accepted = self._theta.copy()
        if theta is not None:
            self.theta = theta

    @property
    def state_features(self) -> NDArray[np.float64]:
        """The state features phi(s), shape (S, d), read-only."""
        return self._features

    @property
    def hidden(self) -> tuple[int, ...]:
        """The hidden layer sizes."""
        return self._hidden

    @property
    def activation(self) -> str:
        """The hidden layers' activation, ``"tanh"`` or ``"relu"``."""
        return self._activation

    @property
    def sizes(self) -> tuple[int, ...]:
        """Layer widths ``(d, *hidden, A)``."""
        return (int(self._features.shape[1]),) + self._hidden + (self._n_actions,)

    def layers(self, theta: ArrayLike | None = None) -> list[tuple[NDArray[np.float64], NDArray[np.float64]]]:
        """``[(W_1, b_1), ..., (W_L, b_L)]`` as views into ``theta`` (default: the policy's own).

        ``W_l`` has shape :math:`(n_{l-1}, n_l)` and ``b_l`` shape :math:`(n_l,)` for the layer
        widths :attr:`sizes`; they share memory with ``theta``, so writing into them changes it.

        Parameters
        ----------
        theta : array_like (n_params,), optional
            A flat parameter vector to split (default: the policy's ``theta``).

        Returns
        -------
        list of (ndarray, ndarray)
            One ``(W, b)`` pair per layer.

        Raises
        ------
        ValueError
            A ``theta`` that is not a vector of ``n_params`` entries.

        Examples
        --------
        >>> net = pg.MLPSoftmax(3, 2, hidden=(4,), seed=0)
        >>> [(W.shape, b.shape) for W, b in net.layers()]
        [((3, 4), (4,)), ((4, 2), (2,))]
        >>> W1, b1 = net.layers()[0]
        >>> np.shares_memory(W1, net.theta), b1  # biases start at zero
        (True, array([0., 0., 0., 0.]))
        >>> theta = np.arange(net.n_params, dtype=float)
        >>> net.layers(theta)[1][1]  # the last two entries: the output bias
        array([24., 25.])
        """
        th = self._theta if theta is None else as_float_array(theta, "theta", ndim=1)
        if th.shape != self._theta.shape:
            raise ValueError(f"theta must have shape {self._theta.shape}, got {th.shape}")
        out, off = [], 0
        sizes = self.sizes
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            W = th[off:off + n_in * n_out].reshape(n_in, n_out)
            off += n_in * n_out
            out.append((W, th[off:off + n_out]))
            off += n_out
        return out

    def _forward(self) -> Any:
        """The C++ forward pass at the current theta (cached until theta changes)."""
        return self._snapshot().net

    def _logits_and_net(self, theta: NDArray[np.float64]) -> tuple[NDArray[np.float64], Any]:
        f = self._net.forward(theta)
        return f.logits, f

    def _logits_at(self, snap: Snapshot) -> NDArray[np.float64]:
        z: NDArray[np.float64] = snap.net.logits
        return z

    def _kernel_tables(self) -> KernelTables:
        snap = self._snapshot()  # probabilities and forward pass of one theta
        return KernelTables(snap.probs, None, snap.net)

    def logits(self) -> NDArray[np.float64]:
        z: NDArray[np.float64] = self._forward().logits
        return z

    def grad_log_prob(self, states: ArrayLike, actions: ArrayLike) -> NDArray[np.float64]:
        s, a = self._pairs(states, actions)
        check_allocation(8 * s.size * self.n_params, "the score rows", "pass fewer pairs at a time")
        snap = self._snapshot()
        out: NDArray[np.float64] = snap.net.scores(snap.probs, s, a)
        return out

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_net", None)  # the C++ network is rebuilt from the features on unpickling
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._net = _core.mlp.MLPNet(np.ascontiguousarray(self._features), list(self._hidden), self._n_actions,
                                     _ACTIVATIONS[self._activation])

    def _logit_vjp(self, W: NDArray[np.float64]) -> NDArray[np.float64]:
        out: NDArray[np.float64] = self._forward().vjp(np.ascontiguousarray(W, dtype=np.float64).reshape(self._n_states, self._n_actions))
        return out

    def _weighted_scores(self, probs: NDArray[np.float64], w: NDArray[np.float64]) -> NDArray[np.float64]:
        w = np.ascontiguousarray(w, dtype=np.float64)
        rows = int(np.count_nonzero(w > 0)) * self._n_actions
        check_allocation(8 * rows * self.n_params, "the Fisher factor of the MLP policy", "use a smaller network")
        M: NDArray[np.float64] = self._forward().weighted_scores(np.ascontiguousarray(probs, dtype=np.float64), w)
        return M

    def _fisher(self, probs: NDArray[np.float64], w: NDArray[np.float64]) -> NDArray[np.float64]:
        check_allocation(8 * self.n_params**2, "the Fisher matrix (n_params x n_params)", "use natural_gradient, which never forms it")
        M = self._weighted_scores(probs, w)
        F: NDArray[np.float64] = interruptible(lambda: M.T @ M, 2.0 * M.shape[0] * M.shape[1] ** 2)
        return F

    def _natural(
        self, probs: NDArray[np.float64], w: NDArray[np.float64], g: NDArray[np.float64], damping: float, rcond: float
    ) -> NDArray[np.float64]:
        # F = M^T M with M (m, n), m = A x (visited states). When m < n solve in the m-dimensional
        # row space: (F + lam I)^-1 g = (g - M^T (M M^T + lam I)^-1 M g) / lam, and for lam = 0
        # F^+ g = M^T (K^+)^2 M g with K = M M^T (same non-zero eigenvalues as F).
        # The pseudo-inverse (damping = 0) works on c M, c a power of two that brings the largest
        # |M| near 1 when it is outside [2**-200, 2**200] (a saturated or a huge network): scaling
        # by c is exact, and F = M^T M, K = M M^T then neither underflow to 0 (which made every
        # eigenvalue 0 and the result NaN) nor overflow. F^+ g for c M is c^-2 times the one for M.
        M = self._weighted_scores(probs, w)
        gv = np.ascontiguousarray(g, dtype=np.float64).ravel()
        m, n = M.shape
        c = 1.0
        if damping == 0 and M.size:
            big = float(np.abs(M).max())
            if big > 0 and not 2.0**-200 <= big <= 2.0**200:
                c = float(np.ldexp(1.0, -int(np.frexp(big)[1])))
                M = M * c
        k = min(m, n)
        return interruptible(lambda: self._solve_rows(M, gv, c, damping, rcond), 2.0 * k * k * max(m, n) + 10.0 * k**3)

    @staticmethod
    def _solve_rows(
        M: NDArray[np.float64], gv: NDArray[np.float64], c: float, damping: float, rcond: float
    ) -> NDArray[np.float64]:
        m, n = M.shape
        if m >= n:
            F = M.T @ M
            x: NDArray[np.float64] = _core.exact.solve_fisher(np.ascontiguousarray(F), gv, float(damping), float(rcond))
            if c == 1.0:
                return x
            with np.errstate(over="ignore"):  # undoing the scale may overflow: the caller checks the result
                return (x * c) * c
        K = M @ M.T
        Mg = M @ gv
        if damping > 0:
            with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # the caller checks the result
                try:
                    y = np.linalg.solve(K + damping * np.eye(m), Mg)
                except np.linalg.LinAlgError:  # K + damping I singular in float64 (a denormal damping)
                    lam_d, U_d = np.linalg.eigh(K)
                    y = U_d @ ((U_d.T @ Mg) / (np.maximum(lam_d, 0.0) + damping))
                out: NDArray[np.float64] = (gv - M.T @ y) / damping
            return out
        lam, U = np.linalg.eigh(K)
        top = lam.max() if lam.size else 0.0
        keep = lam > rcond * top if top > 0 else np.zeros_like(lam, dtype=bool)
        inv2 = np.zeros_like(lam)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # the caller checks the result
            inv2[keep] = (1.0 / lam[keep]) ** 2  # rcond = 0 keeps eigenvalues whose square underflows
            res: NDArray[np.float64] = M.T @ (U @ (inv2 * (U.T @ Mg)))
        if c == 1.0:
            return res
        with np.errstate(over="ignore"):  # undoing the scale may overflow: the caller checks the result
            return (res * c) * c

    def __repr__(self) -> str:
        return (f"MLPSoftmax(n_states={self._n_states}, n_actions={self._n_actions}, sizes={self.sizes}, "
                f"activation={self._activation!r}, n_params={self.n_params})")
