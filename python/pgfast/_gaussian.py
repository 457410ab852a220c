"""Gaussian policies for continuous actions: the linear-Gaussian policy u ~ N(W phi(x), diag(sigma^2))."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._features import FeatureSpec
from ._obs_policy import ObservationPolicy
from ._validation import as_float_array, as_int, as_seed, require_finite

#: The floor of ``log_std``: the standard deviation used is ``exp(max(log_std, LOG_STD_MIN))``
#: (so log-probabilities and scores stay finite); below the floor the score in ``log_std`` is 0.
LOG_STD_MIN = -20.0


class LinearGaussian(ObservationPolicy):
    r"""The linear-Gaussian policy :math:`u \sim \mathcal N(W\phi(x), \operatorname{diag}(\sigma^2))`.

    The mean is linear in the features :math:`\phi(x)` of the observation (:math:`\phi(x) = x`
    by default), the standard deviations :math:`\sigma_i = e^{\ell_i}` do not depend on the state,
    and both are parameters: ``theta`` is ``W`` (row-major, ``action_dim * feature_dim``)
    followed by ``log_std`` (``action_dim``). The score has a closed form (see :doc:`/theory`):

    .. math::

       \nabla_W \log\pi(u|x) = \Sigma^{-1}(u - \mu)\,\phi(x)^\top, \qquad
       \frac{\partial \log\pi(u|x)}{\partial \ell_i} = \frac{(u_i - \mu_i)^2}{\sigma_i^2} - 1 .

    ``log_std`` is floored at ``LOG_STD_MIN = -20`` (:math:`\sigma \ge 2\cdot 10^{-9}`) so that
    log-probabilities stay finite; below the floor its score is 0.

    Parameters
    ----------
    obs_dim : int >= 1
        Dimension of the observation x.
    action_dim : int >= 1
        Dimension of the action u.
    W : array (action_dim, feature_dim), optional
        Initial mean matrix (default zeros).
    log_std : float or array (action_dim,)
        Initial :math:`\log\sigma` (default 0: unit standard deviations).
    features : None, ``"identity"``, ``"affine"``, ``"quadratic"`` or callable
        The features :math:`\phi`: a callable maps an (N, obs_dim) array to (N, feature_dim).
        The compiled LQR paths need :math:`\phi(x) = x`.

    Examples
    --------
    >>> pi = pg.LinearGaussian(2, 1, W=[[-1.0, -0.5]], log_std=np.log(0.1))
    >>> pi.n_params, pi.mean([[1.0, 2.0]])
    (3, array([[-2.]]))
    >>> float(pi.log_prob([1.0, 2.0], [-2.0]).round(4))  # log N(0; 0, 0.1^2)
    1.3836
    >>> pi.grad_log_prob([1.0, 2.0], [-1.9]).round(6)  # d/dW = (u - mu) x / sigma^2, d/dlog_std
    array([10., 20.,  0.])
    """

    __slots__ = ("_action_dim",)

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        *,
        W: ArrayLike | None = None,
        log_std: ArrayLike = 0.0,
        features: FeatureSpec = None,
    ) -> None:
        self._init_observations(obs_dim, features)
        self._action_dim = as_int(action_dim, "action_dim", minimum=1, maximum=2**31 - 1)
        k, m = self._features.dim, self._action_dim
        if W is None:
            w = np.zeros((m, k))
        else:
            w = as_float_array(W, "W", ndim=2)
            if w.shape != (m, k):
                raise ValueError(f"W must have shape (action_dim, feature_dim) = ({m}, {k}), got {w.shape}")
            require_finite(w, "W")
        ls = as_float_array(log_std, "log_std", ndim=(0, 1))
        if ls.ndim == 1 and ls.shape != (m,):
            raise ValueError(f"log_std must be a number or have shape (action_dim,) = ({m},), got {ls.shape}")
        require_finite(ls, "log_std")
        self._init_theta(np.concatenate([w.ravel(), np.broadcast_to(ls, (m,))]))

    # -- parameters ---------------------------------------------------------------------------

    @property
    def action_dim(self) -> int:
        """Dimension m of the action."""
        return self._action_dim

    def _split(self, theta: NDArray[np.float64] | None = None) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        th = self._theta_copy() if theta is None else theta
        m, k = self._action_dim, self._features.dim
        return th[: m * k].reshape(m, k), th[m * k:]

    @property
    def W(self) -> NDArray[np.float64]:
        """The mean matrix W, shape (action_dim, feature_dim) (a copy)."""
        return self._split()[0].copy()

    @property
    def log_std(self) -> NDArray[np.float64]:
        r"""The parameters :math:`\ell`, shape (action_dim,) (a copy; not floored)."""
        return self._split()[1].copy()

    @property
    def std(self) -> NDArray[np.float64]:
        r"""The standard deviations used, :math:`\sigma_i = e^{\max(\ell_i, -20)}`, shape (action_dim,)."""
        return np.exp(np.maximum(self._split()[1], LOG_STD_MIN))

    # -- the distribution ---------------------------------------------------------------------

    def _act(self, u: Any, lead: tuple[int, ...]) -> NDArray[np.float64]:
        arr = as_float_array(u, "actions")
        if arr.shape != (*lead, self._action_dim):
            raise ValueError(f"actions must have shape {(*lead, self._action_dim)} (the states' leading shape, "
                             f"then action_dim), got {arr.shape}")
        return arr

    def mean(self, states: ArrayLike) -> NDArray[np.float64]:
        r"""The mean action :math:`\mu(x) = W\phi(x)`.

        Parameters
        ----------
        states : array_like (..., obs_dim)
            Observations x.

        Returns
        -------
        ndarray of float64, shape (..., action_dim)

        Raises
        ------
        ValueError
            States whose last axis is not ``obs_dim``.

        Examples
        --------
        >>> pg.LinearGaussian(2, 1, W=[[1.0, -1.0]]).mean([[3.0, 1.0], [0.0, 1.0]])
        array([[ 2.],
               [-1.]])
        """
        x = self._obs(states)
        W, _ = self._split()
        return np.asarray(self._features(x) @ W.T, dtype=np.float64)

    def log_prob(self, states: ArrayLike, actions: ArrayLike) -> NDArray[np.float64]:
        r"""The log-density :math:`\log\pi(u|x) = -\tfrac12 \sum_i ((u_i-\mu_i)/\sigma_i)^2 - \sum_i \log\sigma_i - \tfrac m2 \log 2\pi`.

        Parameters
        ----------
        states : array_like (..., obs_dim)
            Observations x.
        actions : array_like (..., action_dim)
            Actions u (the states' leading shape).

        Returns
        -------
        ndarray of float64, shape (...)

        Raises
        ------
        ValueError
            Shapes that do not match.

        Examples
        --------
        >>> pi = pg.LinearGaussian(1, 1, W=[[2.0]])
        >>> pi.log_prob([[1.0], [1.0]], [[2.0], [3.0]]).round(4)  # log N(0; 0, 1), log N(1; 0, 1)
        array([-0.9189, -1.4189])
        """
        x = self._obs(states)
        u = self._act(actions, x.shape[:-1])
        W, ls = self._split()
        ls = np.maximum(ls, LOG_STD_MIN)
        z = (u - self._features(x) @ W.T) * np.exp(-ls)
        return np.asarray(-0.5 * np.sum(z * z, axis=-1) - ls.sum() - 0.5 * self._action_dim * np.log(2 * np.pi))

    def grad_log_prob(self, states: ArrayLike, actions: ArrayLike) -> NDArray[np.float64]:
        r"""The score :math:`\nabla_\theta \log\pi(u|x)` (W's block row-major, then log_std's).

        Parameters
        ----------
        states : array_like (..., obs_dim)
            Observations x.
        actions : array_like (..., action_dim)
            Actions u (the states' leading shape).

        Returns
        -------
        ndarray of float64, shape (..., n_params)

        Raises
        ------
        ValueError
            Shapes that do not match.

        Examples
        --------
        >>> pi = pg.LinearGaussian(1, 1, W=[[2.0]], log_std=np.log(0.5))
        >>> pi.grad_log_prob([1.0], [3.0])  # (u - mu) x / sigma^2, (u - mu)^2 / sigma^2 - 1
        array([4., 3.])
        """
        x = self._obs(states)
        u = self._act(actions, x.shape[:-1])
        W, ls = self._split()
        floored = ls < LOG_STD_MIN
        ls = np.maximum(ls, LOG_STD_MIN)
        phi = self._features(x)
        z = (u - phi @ W.T) * np.exp(-ls)  # (u - mu) / sigma
        gW = (z * np.exp(-ls))[..., :, None] * phi[..., None, :]
        gl = np.where(floored, 0.0, z * z - 1.0)
        lead = x.shape[:-1]
        return np.concatenate([gW.reshape(*lead, -1), gl], axis=-1)

    def sample(self, states: ArrayLike, seed: int | None) -> NDArray[np.float64]:
        r"""Actions :math:`u = \mu(x) + \sigma \odot \varepsilon`, :math:`\varepsilon \sim \mathcal N(0, I)`.

        The draws come from NumPy's counter-based Philox generator keyed by ``seed`` (None: a
        fresh seed).

        Parameters
        ----------
        states : array_like (..., obs_dim)
            Observations x.
        seed : int or None
            Key of the draws.

        Returns
        -------
        ndarray of float64, shape (..., action_dim)

        Raises
        ------
        ValueError
            States whose last axis is not ``obs_dim``, or a bad seed.

        Examples
        --------
        >>> pi = pg.LinearGaussian(1, 2, W=[[1.0], [-1.0]], log_std=-30.0)  # sigma at the floor, 2e-9
        >>> pi.sample([[2.0]], seed=0).round(6)
        array([[ 2., -2.]])
        >>> bool(np.array_equal(pi.sample([[1.0]], seed=3), pi.sample([[1.0]], seed=3)))
        True
        """
        x = self._obs(states)
        W, ls = self._split()
        key = np.random.SeedSequence().generate_state(1, np.uint64)[0] if seed is None else as_seed(seed)
        eps = np.random.Generator(np.random.Philox(key=int(key))).standard_normal((*x.shape[:-1], self._action_dim))
        return np.asarray(self._features(x) @ W.T + np.exp(np.maximum(ls, LOG_STD_MIN)) * eps)

    # -- plumbing -----------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {"obs_dim": self._obs_dim, "action_dim": self._action_dim, "theta": self._theta_copy(),
                "features": self._features.spec}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["obs_dim"], state["action_dim"], features=state["features"])  # type: ignore[misc]
        self.theta = state["theta"]

    def __repr__(self) -> str:
        return (f"LinearGaussian(obs_dim={self._obs_dim}, action_dim={self._action_dim}, "
                f"features={self._features!r}, n_params={self.n_params})")
