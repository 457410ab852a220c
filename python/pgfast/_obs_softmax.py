"""A softmax policy over discrete actions on continuous observations: pi(a|x) proportional to exp((W phi(x))_a)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._features import FeatureSpec
from ._obs_policy import ObservationPolicy
from ._validation import as_float_array, as_int, as_seed, require_finite


class ObservationSoftmax(ObservationPolicy):
    r"""The linear softmax policy on observation features,
    :math:`\pi(a|x) = e^{(W\phi(x))_a} / \sum_b e^{(W\phi(x))_b}`, for a discrete action space and
    continuous (vector) observations (gymnasium's ``CartPole-v1``, ``Acrobot-v1``, ...).

    The logits are linear in the features :math:`\phi(x)` of the observation (:math:`\phi(x) = x`
    by default; the named maps and callables of :class:`LinearGaussian` are accepted); ``theta`` is
    ``W`` row-major (``n_actions * feature_dim``). The score has the closed form

    .. math::

       \nabla_W \log\pi(a|x) = (e_a - \pi(\cdot|x))\,\phi(x)^\top .

    Parameters
    ----------
    obs_dim : int >= 1
        Dimension of the observation x.
    n_actions : int >= 2
        Number of actions.
    W : array (n_actions, feature_dim), optional
        Initial logit matrix (default zeros: the uniform policy).
    features : None, ``"identity"``, ``"affine"``, ``"quadratic"`` or callable
        The features :math:`\phi`: a callable maps an (N, obs_dim) array to (N, feature_dim).

    Raises
    ------
    TypeError
        Non-numeric ``W`` or a ``features`` of another type.
    ValueError
        Dimensions below their minimum, a ``W`` of another shape or not finite, an unknown
        feature name.

    Examples
    --------
    >>> pi = pg.ObservationSoftmax(2, 3, W=[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    >>> pi.n_params, pi.probs([0.0, 0.0])
    (6, array([0.33333333, 0.33333333, 0.33333333]))
    >>> pi.probs([[np.log(2.0), 0.0]]).round(4)  # logits (log 2, 0, 0)
    array([[0.5 , 0.25, 0.25]])
    >>> pg.ObservationSoftmax(2, 3).grad_log_prob([3.0, 6.0], 0)  # (e_0 - 1/3) phi(x)^T, row-major
    array([ 2.,  4., -1., -2., -1., -2.])
    >>> pi.sample([[0.0, 0.0]] * 4, seed=0)
    array([0, 0, 0, 1])
    """

    __slots__ = ("_n_actions",)

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        *,
        W: ArrayLike | None = None,
        features: FeatureSpec = None,
    ) -> None:
        self._init_observations(obs_dim, features)
        self._n_actions = as_int(n_actions, "n_actions", minimum=2, maximum=2**31 - 1)
        k, a = self._features.dim, self._n_actions
        if W is None:
            w = np.zeros((a, k))
        else:
            w = as_float_array(W, "W", ndim=2)
            if w.shape != (a, k):
                raise ValueError(f"W must have shape (n_actions, feature_dim) = ({a}, {k}), got {w.shape}")
            require_finite(w, "W")
        self._init_theta(w.ravel())

    # -- parameters ---------------------------------------------------------------------------

    @property
    def n_actions(self) -> int:
        """Number of actions."""
        return self._n_actions

    @property
    def W(self) -> NDArray[np.float64]:
        """The logit matrix W, shape (n_actions, feature_dim) (a copy)."""
        return self._theta_copy().reshape(self._n_actions, self._features.dim)

    # -- the distribution ---------------------------------------------------------------------

    def _act(self, a: Any, lead: tuple[int, ...]) -> NDArray[np.intp]:
        arr = np.asarray(a)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"actions must be integers (action indices), got dtype {arr.dtype}")
        if arr.shape != lead:
            raise ValueError(f"actions must have the states' leading shape {lead}, got {arr.shape}")
        if arr.size and (arr.min() < 0 or arr.max() >= self._n_actions):
            raise ValueError(f"actions must be in [0, n_actions = {self._n_actions}), got values in [{arr.min()}, {arr.max()}]")
        return arr.astype(np.intp)

    def logits(self, states: ArrayLike) -> NDArray[np.float64]:
        r"""The logits :math:`W\phi(x)`.

        Parameters
        ----------
        states : array_like (..., obs_dim)
            Observations.

        Returns
        -------
        ndarray of float64 (..., n_actions)

        Examples
        --------
        >>> pg.ObservationSoftmax(2, 2, W=[[1.0, 2.0], [0.0, -1.0]]).logits([1.0, 1.0])
        array([ 3., -1.])
        """
        x = self._obs(states)
        return np.asarray(self._features(x) @ self.W.T, dtype=np.float64)

    def probs(self, states: ArrayLike) -> NDArray[np.float64]:
        r"""The action probabilities :math:`\pi(\cdot|x)` (a softmax computed after subtracting the
        largest logit, so it never overflows).

        Parameters
        ----------
        states : array_like (..., obs_dim)
            Observations.

        Returns
        -------
        ndarray of float64 (..., n_actions)

        Examples
        --------
        >>> pi = pg.ObservationSoftmax(1, 2, W=[[np.log(3.0)], [0.0]])
        >>> pi.probs([[1.0], [0.0]])
        array([[0.75, 0.25],
               [0.5 , 0.5 ]])
        """
        z = self.logits(states)
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        return np.asarray(e / e.sum(axis=-1, keepdims=True))

    def log_prob(self, states: ArrayLike, actions: ArrayLike) -> NDArray[np.float64]:
        r""":math:`\log\pi(a|x) = z_a - \log\sum_b e^{z_b}`, :math:`z = W\phi(x)`.

        Parameters
        ----------
        states : array_like (..., obs_dim)
            Observations.
        actions : array_like of int (...)
            Action indices in ``[0, n_actions)``, one per observation.

        Returns
        -------
        ndarray of float64 (...)

        Raises
        ------
        TypeError
            Actions that are not integers.
        ValueError
            Shapes that do not match, or actions out of range.

        Examples
        --------
        >>> pi = pg.ObservationSoftmax(1, 2, W=[[np.log(3.0)], [0.0]])
        >>> np.exp(pi.log_prob([[1.0], [1.0]], [0, 1])).round(6)
        array([0.75, 0.25])
        """
        x = self._obs(states)
        a = self._act(actions, x.shape[:-1])
        z = self.logits(x)
        zmax = z.max(axis=-1, keepdims=True)
        lse = np.log(np.exp(z - zmax).sum(axis=-1)) + zmax[..., 0]
        return np.asarray(np.take_along_axis(z, a[..., None], axis=-1)[..., 0] - lse)

    def grad_log_prob(self, states: ArrayLike, actions: ArrayLike) -> NDArray[np.float64]:
        r"""The score :math:`\nabla_\theta \log\pi(a|x) = (e_a - \pi(\cdot|x))\,\phi(x)^\top`,
        flattened row-major like ``theta``.

        Parameters
        ----------
        states : array_like (..., obs_dim)
            Observations.
        actions : array_like of int (...)
            Action indices in ``[0, n_actions)``, one per observation.

        Returns
        -------
        ndarray of float64 (..., n_params)

        Raises
        ------
        TypeError
            Actions that are not integers.
        ValueError
            Shapes that do not match, or actions out of range.

        Examples
        --------
        >>> pi = pg.ObservationSoftmax(1, 2, W=[[np.log(3.0)], [0.0]])
        >>> pi.grad_log_prob([[1.0], [1.0]], [0, 1])  # (e_a - (0.75, 0.25)) * x
        array([[ 0.25, -0.25],
               [-0.75,  0.75]])
        """
        x = self._obs(states)
        a = self._act(actions, x.shape[:-1])
        p = self.probs(x)
        d = -p
        np.put_along_axis(d, a[..., None], np.take_along_axis(d, a[..., None], axis=-1) + 1.0, axis=-1)
        phi = self._features(x)
        return np.asarray((d[..., :, None] * phi[..., None, :]).reshape(*x.shape[:-1], -1))

    def sample(self, states: ArrayLike, seed: int | None) -> NDArray[np.int64]:
        r"""Actions :math:`a \sim \pi(\cdot|x)`, one per observation.

        Inverse-CDF sampling: one uniform per observation from NumPy's counter-based Philox
        generator keyed by ``seed`` (``random(shape)``, in C order), the first action whose
        cumulative probability exceeds it.

        Parameters
        ----------
        states : array_like (..., obs_dim)
            Observations.
        seed : int or None
            Key of the draws, in [0, 2**64) (None: a fresh one).

        Returns
        -------
        ndarray of int64 (...)

        Examples
        --------
        >>> pi = pg.ObservationSoftmax(1, 2, W=[[np.log(3.0)], [0.0]])
        >>> a = pi.sample(np.ones((10000, 1)), seed=0)
        >>> a.shape, round(float((a == 0).mean()), 2)  # pi(0|x) = 0.75
        ((10000,), 0.75)
        """
        p = self.probs(states)
        key = np.random.SeedSequence().generate_state(1, np.uint64)[0] if seed is None else as_seed(seed)
        u = np.random.Generator(np.random.Philox(key=int(key))).random(p.shape[:-1])
        return inverse_cdf(p, u)

    # -- plumbing -----------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {"obs_dim": self._obs_dim, "n_actions": self._n_actions, "theta": self._theta_copy(),
                "features": self._features.spec}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["obs_dim"], state["n_actions"], features=state["features"])  # type: ignore[misc]
        self.theta = state["theta"]

    def __repr__(self) -> str:
        return (f"ObservationSoftmax(obs_dim={self._obs_dim}, n_actions={self._n_actions}, "
                f"features={self._features!r}, n_params={self.n_params})")


def inverse_cdf(p: NDArray[np.float64], u: NDArray[np.float64]) -> NDArray[np.int64]:
    """The first index whose cumulative probability exceeds ``u`` (clamped to the last action)."""
    c = np.cumsum(p, axis=-1)
    a = (c <= u[..., None]).sum(axis=-1)
    return np.asarray(np.minimum(a, p.shape[-1] - 1), dtype=np.int64)
