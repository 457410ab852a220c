"""The linear-quadratic regulator: linear dynamics, quadratic rewards, Gaussian noise."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._validation import as_float, as_float_array, as_int, require_finite

#: Default bound on ``max(|x_t|)``: a trajectory whose state leaves it stops (``diverged``).
DEFAULT_MAX_STATE = 1e6


def _symmetric(M: NDArray[np.float64], name: str, *, definite: bool) -> NDArray[np.float64]:
    """``M`` checked symmetric (to rounding) and positive (semi)definite; returned symmetrised."""
    scale = max(1.0, float(np.abs(M).max(initial=0.0)))
    if not np.allclose(M, M.T, rtol=0.0, atol=1e-12 * scale):
        i, j = map(int, np.unravel_index(np.argmax(np.abs(M - M.T)), M.shape))
        raise ValueError(f"{name} must be symmetric, got {name}[{i}, {j}] = {M[i, j]!r} and {name}[{j}, {i}] = {M[j, i]!r}")
    S = 0.5 * (M + M.T)
    lam = float(np.linalg.eigvalsh(S).min()) if S.size else 0.0
    if definite and lam <= 1e-14 * scale:
        raise ValueError(f"{name} must be symmetric positive definite, its smallest eigenvalue is {lam:.3g}")
    if not definite and lam < -1e-12 * scale:
        raise ValueError(f"{name} must be symmetric positive semidefinite, its smallest eigenvalue is {lam:.3g}")
    return S


def _square(x: Any, name: str, n: int) -> NDArray[np.float64]:
    M = as_float_array(x, name, ndim=2)
    if M.shape != (n, n):
        raise ValueError(f"{name} must have shape ({n}, {n}), got {M.shape}")
    require_finite(M, name)
    return M


class LQR:
    r"""A linear-quadratic regulator: :math:`x_{t+1} = A x_t + B u_t + w_t`, reward
    :math:`r_t = -(x_t^\top Q x_t + u_t^\top R u_t)`.

    The state :math:`x_t \in \mathbb R^n` starts at ``x0`` (a fixed state) or from
    :math:`\mathcal N(x_0, \Sigma_0)` (``x0_cov``, mean ``x0`` or 0); the process noise
    :math:`w_t \sim \mathcal N(0, \Sigma_w)` is optional (``noise_cov``). An episode has ``horizon``
    steps, or is infinite and discounted (``horizon=None``, ``gamma < 1``; only the exact
    oracle, :mod:`pgfast.exact`, evaluates it: sampling needs a horizon). Rewards are the negative
    quadratic costs, so that every objective in pgfast is maximised; the policy convention is
    :math:`u = W x` (the control literature writes :math:`u = -K x`: :math:`W = -K`).

    Parameters
    ----------
    A : array_like
        Shape (n, n). Dynamics.
    B : array_like
        Shape (n, m). Control matrix.
    Q : array_like
        Shape (n, n). State cost, symmetric positive semidefinite.
    R : array_like
        Shape (m, m). Control cost, symmetric positive definite.
    gamma : float in (0, 1]
        Discount factor (default 1).
    horizon : int >= 1 or None
        Steps per episode; None for the infinite discounted problem (needs ``gamma < 1``).
    x0 : array_like, optional
        Shape (n,). The start state (with ``x0_cov``: the start distribution's mean).
    x0_cov : array_like, optional
        Shape (n, n). Covariance of a Gaussian start (symmetric positive semidefinite). At least one of ``x0``
        and ``x0_cov`` must be given.
    noise_cov : array_like, optional
        Shape (n, n). Covariance of the process noise :math:`w_t` (default: none).
    max_state : float > 0
        A sampled trajectory whose state has an entry beyond ``max_state`` in absolute value (an
        unstable policy) stops there and is flagged ``diverged`` (default 1e6).

    Attributes
    ----------
    A, B, Q, R : ndarray
        The matrices as validated (read-only float64 copies; Q and R symmetrised).
    gamma : float
        The discount factor.
    horizon : int or None
        Steps per episode (None: the infinite discounted problem).
    x0 : ndarray
        Shape (n,). The start state, or the mean of the Gaussian start (zeros when only ``x0_cov`` was given).
    x0_cov : ndarray or None
        Shape (n, n). The covariance of the start (None: a fixed start).
    noise_cov : ndarray or None
        Shape (n, n). The covariance of the process noise (None: none).
    max_state : float
        The bound on the state beyond which a sampled trajectory stops (``diverged``).

    Raises
    ------
    TypeError
        Non-numeric arrays.
    ValueError
        Shapes that do not match, non-finite entries, Q, ``x0_cov`` or ``noise_cov`` not symmetric
        positive semidefinite, R not symmetric positive definite, ``gamma`` outside (0, 1],
        ``horizon=None`` with ``gamma = 1``, or neither ``x0`` nor ``x0_cov``.

    Examples
    --------
    A double integrator (position, velocity) pushed by a force:

    >>> lqr = pg.LQR(A=[[1.0, 0.1], [0.0, 1.0]], B=[[0.0], [0.1]], Q=np.eye(2), R=[[0.1]],
    ...              horizon=50, x0=[1.0, 0.0])
    >>> lqr
    LQR(state_dim=2, action_dim=1, horizon=50, gamma=1.0, start='fixed', noise=False)
    """

    __slots__ = ("A", "B", "Q", "R", "gamma", "horizon", "x0", "x0_cov", "noise_cov", "max_state", "__weakref__")
    A: NDArray[np.float64]
    B: NDArray[np.float64]
    Q: NDArray[np.float64]
    R: NDArray[np.float64]
    gamma: float
    horizon: int | None
    x0: NDArray[np.float64]
    x0_cov: NDArray[np.float64] | None
    noise_cov: NDArray[np.float64] | None
    max_state: float

    def __init__(
        self,
        A: ArrayLike,
        B: ArrayLike,
        Q: ArrayLike,
        R: ArrayLike,
        *,
        gamma: float = 1.0,
        horizon: int | None,
        x0: ArrayLike | None = None,
        x0_cov: ArrayLike | None = None,
        noise_cov: ArrayLike | None = None,
        max_state: float = DEFAULT_MAX_STATE,
    ) -> None:
        a = as_float_array(A, "A", ndim=2)
        if a.shape[0] != a.shape[1] or a.shape[0] < 1:
            raise ValueError(f"A must be a square (n, n) matrix with n >= 1, got shape {a.shape}")
        n = a.shape[0]
        require_finite(a, "A")
        b = as_float_array(B, "B", ndim=2)
        if b.shape[0] != n or b.shape[1] < 1:
            raise ValueError(f"B must have shape (n, m) = ({n}, m) with m >= 1, got {b.shape}")
        require_finite(b, "B")
        m = b.shape[1]
        q = _symmetric(_square(Q, "Q", n), "Q", definite=False)
        r = _symmetric(_square(R, "R", m), "R", definite=True)
        g = as_float(gamma, "gamma")
        if not 0.0 < g <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {g!r}")
        if horizon is None:
            if g >= 1.0:
                raise ValueError("horizon=None (the infinite-horizon problem) needs gamma < 1, got gamma = 1")
            h: int | None = None
        else:
            h = as_int(horizon, "horizon", minimum=1, maximum=2**31 - 1)
        if x0 is None and x0_cov is None:
            raise ValueError("give the start: x0 (a fixed start state) and/or x0_cov (a Gaussian start)")
        if x0 is None:
            mean = np.zeros(n)
        else:
            mean = as_float_array(x0, "x0", ndim=1)
            if mean.shape != (n,):
                raise ValueError(f"x0 must have shape (n,) = ({n},), got {mean.shape}")
            require_finite(mean, "x0")
        cov = None if x0_cov is None else _symmetric(_square(x0_cov, "x0_cov", n), "x0_cov", definite=False)
        noise = None if noise_cov is None else _symmetric(_square(noise_cov, "noise_cov", n), "noise_cov", definite=False)
        bound = as_float(max_state, "max_state")
        if not (bound > 0.0 and np.isfinite(bound)):
            raise ValueError(f"max_state must be a finite number > 0, got {bound!r}")
        for name, value in (("A", a), ("B", b), ("Q", q), ("R", r), ("x0", mean), ("x0_cov", cov),
                            ("noise_cov", noise)):
            if value is not None:
                value = np.array(value, dtype=np.float64, order="C")  # the model's own copy
                value.setflags(write=False)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "gamma", g)
        object.__setattr__(self, "horizon", h)
        object.__setattr__(self, "max_state", bound)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"an LQR is immutable: make a new one instead of setting {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"an LQR is immutable: cannot delete {name!r}")

    @property
    def state_dim(self) -> int:
        """Dimension n of the state."""
        return int(self.A.shape[0])

    @property
    def action_dim(self) -> int:
        """Dimension m of the action."""
        return int(self.B.shape[1])

    def _kwargs(self) -> dict[str, Any]:
        return {"gamma": self.gamma, "horizon": self.horizon, "x0": self.x0, "x0_cov": self.x0_cov,
                "noise_cov": self.noise_cov, "max_state": self.max_state}

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (_rebuild_lqr, (self.A, self.B, self.Q, self.R, self._kwargs()))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LQR):
            return NotImplemented
        def same(x: NDArray[np.float64] | None, y: NDArray[np.float64] | None) -> bool:
            return (x is None and y is None) or (x is not None and y is not None and np.array_equal(x, y))
        return all(same(getattr(self, k), getattr(other, k)) for k in ("A", "B", "Q", "R", "x0", "x0_cov", "noise_cov")) and (
            self.gamma, self.horizon, self.max_state) == (other.gamma, other.horizon, other.max_state)

    __hash__ = None  # type: ignore[assignment]

    def with_options(self, **changes: Any) -> LQR:
        """A copy with some keyword arguments changed (``gamma``, ``horizon``, ``x0``, ...).

        Parameters
        ----------
        **changes
            Keyword arguments of :class:`LQR` other than the four matrices.

        Returns
        -------
        LQR

        Raises
        ------
        TypeError
            An option that is not a keyword argument of :class:`LQR`.

        Examples
        --------
        >>> lqr = pg.LQR(np.eye(1), np.eye(1), np.eye(1), np.eye(1), horizon=10, x0=[1.0])
        >>> lqr.with_options(horizon=None, gamma=0.9).horizon is None
        True
        """
        kwargs = self._kwargs()
        unknown = sorted(set(changes) - set(kwargs))
        if unknown:
            raise TypeError(f"unknown LQR option(s) {unknown}; the options are {sorted(kwargs)}")
        kwargs.update(changes)
        return LQR(self.A, self.B, self.Q, self.R, **kwargs)

    def sample(self, policy: Any, n: int, *, seed: int | None, threads: int | None = None) -> Any:
        r"""Simulate ``n`` episodes of a linear-Gaussian policy in C++ (GIL released, all cores by default).

        .. math::

           u_t = W x_t + \sigma \odot \varepsilon_t, \quad
           r_t = -(x_t^\top Q x_t + u_t^\top R u_t), \quad
           x_{t+1} = A x_t + B u_t + C_w \xi_t

        with :math:`\varepsilon_t, \xi_t \sim \mathcal N(0, I)`, the start
        :math:`x_0 = \bar x_0 + C_0 z` and :math:`C C^\top` the covariances (factors that allow
        semidefinite ones). Trajectory ``i`` draws its normals only from the counter-based stream of
        ``(seed, i)``, so the batch is the same bits for any ``threads``, and the first ``m``
        trajectories of a batch of ``n`` equal a batch of ``m``; the normals are computed without
        the C library's transcendental functions, so the batch is also the same on every x86-64 CPU.
        An episode whose state leaves ``max_state`` (an unstable policy) stops at that step and is
        flagged in ``traj.diverged``; no reward is ever infinite or NaN. Ctrl-C stops a long run with
        ``KeyboardInterrupt``. See :doc:`/guide/continuous`.

        Parameters
        ----------
        policy : LinearGaussian
            A policy with identity features, ``obs_dim = state_dim`` and ``action_dim = action_dim``.
        n : int >= 1
            Number of episodes.
        seed : int or None
            Seed of the batch (keyword-only and required: pass ``None`` for a fresh one).
        threads : int, optional
            Worker threads, 1 to ``pgfast.MAX_THREADS`` (default: every usable CPU).

        Returns
        -------
        ContinuousTrajectories
            ``states (n, H, state_dim)``, ``actions (n, H, action_dim)``, ``rewards (n, H)``,
            ``lengths``, ``diverged``; 0 after an episode's end; ``gamma`` and ``source`` the LQR's.

        Raises
        ------
        TypeError
            ``policy`` is not a :class:`LinearGaussian`.
        ValueError
            No horizon (``horizon=None``), features other than the identity, dimensions that do
            not match, ``n`` below 1, a bad ``seed`` or ``threads``.
        MemoryError
            A batch larger than memory (the message states the bytes requested).

        Examples
        --------
        >>> lqr = pg.LQR(A=[[1.0, 0.1], [0.0, 1.0]], B=[[0.0], [0.1]], Q=np.eye(2), R=[[0.1]],
        ...              horizon=50, x0=[1.0, 0.0])
        >>> pi = pg.LinearGaussian(2, 1, W=[[-1.0, -1.5]], log_std=np.log(0.1))
        >>> traj = lqr.sample(pi, 1000, seed=0)
        >>> traj.states.shape, traj.actions.shape, int(traj.lengths.min()), int(traj.diverged.sum())
        ((1000, 50, 2), (1000, 50, 1), 50, 0)
        >>> bool(np.array_equal(traj.states[:10], lqr.sample(pi, 10, seed=0, threads=1).states))
        True
        """
        from ._lqr_sampling import sample  # the sampler sits above the model (it needs policies)

        return sample(self, policy, n, seed, threads)

    def to_gymnasium(self) -> Any:
        r"""A ``gymnasium.Env`` simulating this LQR: Box spaces (the state, the action; unbounded),
        reward :math:`-(x^\top Q x + u^\top R u)`, truncation after ``horizon`` steps, the start
        and process noise drawn from the environment's ``np_random``.

        A state with an entry beyond ``max_state`` ends the episode (``truncated``, with
        ``info["diverged"] = True``). It passes ``gymnasium.utils.env_checker.check_env``;
        :func:`pgfast.rollout` samples it (``lqr.sample`` is the compiled, faster path).

        Returns
        -------
        gymnasium.Env
            A ``pgfast._gym_rollout.LQREnv`` over this LQR.

        Examples
        --------
        >>> lqr = pg.LQR([[1.0]], [[1.0]], [[1.0]], [[1.0]], horizon=2, x0=[1.0])
        >>> env = lqr.to_gymnasium()
        >>> x, info = env.reset(seed=0)
        >>> env.step(np.array([-0.5]))  # r = -(1 + 0.25), x' = 1 - 0.5
        (array([0.5]), -1.25, False, False, {})
        >>> env.step(np.array([0.0]))[1:4]
        (-0.25, False, True)
        """
        from ._gym_rollout import LQREnv

        return LQREnv(self)

    def __repr__(self) -> str:
        start = "fixed" if self.x0_cov is None else "gaussian"
        return (f"LQR(state_dim={self.state_dim}, action_dim={self.action_dim}, horizon={self.horizon}, "
                f"gamma={self.gamma}, start={start!r}, noise={self.noise_cov is not None})")


def _rebuild_lqr(A: Any, B: Any, Q: Any, R: Any, kwargs: dict[str, Any]) -> LQR:
    return LQR(A, B, Q, R, **kwargs)
