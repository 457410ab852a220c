"""Batches of episodes with continuous (vector) states: the LQR sampler's and gymnasium rollouts'."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import _returns
from ._validation import as_float_array, as_gamma, as_int32_array, as_seed


class ContinuousTrajectories:
    r"""N episodes with vector states, padded to the horizon H.

    Made by :meth:`pgfast.LQR.sample` and :func:`pgfast.rollout`, or by hand from logged data.
    The states are vectors (an LQR's state, a gymnasium Box observation); the actions are vectors
    (``(N, H, m)`` float, a Gaussian policy) or indices (``(N, H)`` int, a softmax policy over a
    discrete action space).

    Parameters
    ----------
    states : array_like (N, H, n)
        :math:`x_t` for ``t < lengths[i]``; 0 afterwards.
    actions : array_like (N, H, m) of float, or (N, H) of int
        :math:`u_t` (0, or -1 for indices, afterwards).
    rewards : array_like (N, H)
        :math:`r_t`; 0 afterwards.
    lengths : array_like (N,) of int
        Steps taken, in [0, H].
    gamma : float in [0, 1]
        The discount of the problem the episodes come from (the default of :meth:`returns`).
    terminated : array_like (N,) of bool, optional
        Whether each episode ended in a terminal state (default: none did).
    diverged : array_like (N,) of bool, optional
        Whether each episode stopped because its state left the sampler's bound (an unstable
        policy: see :class:`pgfast.LQR`; default: none did).
    source : object, optional
        What produced the batch (an :class:`LQR`, an environment id), for the estimators' checks.
    seed : int or None
        The seed of the batch, when it was sampled.

    Raises
    ------
    TypeError
        Non-numeric arrays, or non-integer lengths.
    ValueError
        Shapes that do not match, lengths outside [0, H], or non-finite values on the real steps.

    Attributes
    ----------
    states : ndarray of float64 (N, H, n)
        The states, read-only.
    actions : ndarray (N, H, m) of float64, or (N, H) of int32
        The actions, read-only.
    rewards : ndarray of float64 (N, H)
        The rewards, read-only.
    lengths : ndarray of int32 (N,)
        Steps of each episode.
    gamma : float
        The discount of the problem (the default of :meth:`returns` and of the estimators).
    terminated : ndarray of bool (N,)
        Episodes that ended in a terminal state.
    diverged : ndarray of bool (N,)
        Episodes stopped because their state left the sampler's bound.
    source : object
        What produced the batch (an :class:`LQR`, an environment id), or None.
    seed : int or None
        The seed of the batch, when it was sampled.

    Examples
    --------
    >>> traj = pg.ContinuousTrajectories(states=np.zeros((2, 3, 1)), actions=np.zeros((2, 3, 1)),
    ...                                  rewards=[[1.0, 1.0, 1.0], [2.0, 0.0, 0.0]], lengths=[3, 1])
    >>> traj.returns(), traj.n_steps
    (array([3., 2.]), 4)
    >>> traj.reward_to_go()
    array([[3., 2., 1.],
           [2., 0., 0.]])
    """

    __slots__ = ("states", "actions", "rewards", "lengths", "gamma", "terminated", "diverged", "source", "seed")
    states: NDArray[np.float64]
    actions: NDArray[Any]
    rewards: NDArray[np.float64]
    lengths: NDArray[np.int32]
    gamma: float
    terminated: NDArray[np.bool_]
    diverged: NDArray[np.bool_]
    source: Any
    seed: int | None

    def __init__(
        self,
        states: Any,
        actions: Any,
        rewards: Any,
        lengths: Any,
        *,
        gamma: float = 1.0,
        terminated: Any = None,
        diverged: Any = None,
        source: Any = None,
        seed: int | None = None,
    ) -> None:
        x = as_float_array(states, "states", ndim=3)
        n, h, _ = x.shape
        act = np.asarray(actions)
        if act.dtype.kind in "iu" and act.ndim == 2:
            u: NDArray[Any] = as_int32_array(act, "actions", 2)
            if u.shape != (n, h):
                raise ValueError(f"integer actions must have shape (N, H) = ({n}, {h}), got {u.shape}")
        else:
            u = as_float_array(act, "actions", ndim=3)
            if u.shape[:2] != (n, h):
                raise ValueError(f"actions must have shape (N, H, m) = ({n}, {h}, m), got {u.shape}")
        rw = as_float_array(rewards, "rewards", ndim=2)
        if rw.shape != (n, h):
            raise ValueError(f"rewards must have shape (N, H) = ({n}, {h}), got {rw.shape}")
        ln = as_int32_array(lengths, "lengths", 1)
        if ln.shape != (n,):
            raise ValueError(f"lengths must have shape (N,) = ({n},), got {ln.shape}")
        if n and (ln.min() < 0 or ln.max() > h):
            i = int(np.argmax((ln < 0) | (ln > h)))
            raise ValueError(f"lengths[{i}] = {ln[i]} is out of range [0, H = {h}]")
        real = np.arange(h) < ln[:, None]
        for name, arr in (("states", x), ("actions", u), ("rewards", rw)):
            if arr.dtype.kind != "f":
                continue
            fin = np.isfinite(arr)
            bad = real & ~(fin.all(axis=2) if fin.ndim == 3 else fin)  # (no reshape: H or n may be 0)
            if bad.any():
                i, t = map(int, np.argwhere(bad)[0])
                raise ValueError(f"{name} must be finite on the real steps, found {arr[i, t]!r} (trajectory {i}, step {t})")
        g = as_gamma(gamma, 1.0)
        flags = []
        for name, f in (("terminated", terminated), ("diverged", diverged)):
            arr = np.zeros(n, dtype=bool) if f is None else np.asarray(f)
            if arr.dtype != np.bool_ or arr.shape != (n,):
                raise ValueError(f"{name} must be a bool array of shape (N,) = ({n},), got {arr.dtype} {arr.shape}")
            flags.append(arr)
        if seed is not None:
            seed = as_seed(seed)
        arrays = [np.array(a, copy=True) for a in (x, u, rw, ln, *flags)]
        self._set(arrays, g, source, seed)

    def _set(self, arrays: list[NDArray[Any]], gamma: float, source: Any, seed: int | None) -> None:
        for arr in arrays:
            arr.setflags(write=False)
        set_ = object.__setattr__
        for name, arr in zip(("states", "actions", "rewards", "lengths", "terminated", "diverged"), arrays, strict=True):
            set_(self, name, arr)
        set_(self, "gamma", gamma)
        set_(self, "source", source)
        set_(self, "seed", seed)

    @classmethod
    def _trusted(cls, arrays: list[NDArray[Any]], gamma: float, source: Any = None,
                 seed: int | None = None) -> ContinuousTrajectories:
        """A batch from arrays the library made (states, actions, rewards, lengths, terminated,
        diverged): no checks."""
        out = cls.__new__(cls)
        out._set(arrays, gamma, source, seed)
        return out

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"ContinuousTrajectories batches are immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"ContinuousTrajectories batches are immutable: cannot delete {name!r}")

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        arrays = [self.states, self.actions, self.rewards, self.lengths, self.terminated, self.diverged]
        return _rebuild, (arrays, self.gamma, self.source, self.seed)

    @property
    def n(self) -> int:
        """Number of trajectories N."""
        return int(self.states.shape[0])

    @property
    def horizon(self) -> int:
        """Padded length H."""
        return int(self.states.shape[1])

    @property
    def state_dim(self) -> int:
        """Dimension of the states."""
        return int(self.states.shape[2])

    @property
    def discrete_actions(self) -> bool:
        """Whether the actions are indices ((N, H) int) rather than vectors."""
        return bool(self.actions.ndim == 2)

    def __len__(self) -> int:
        return self.n

    @property
    def mask(self) -> NDArray[np.bool_]:
        """(N, H) mask of real steps: ``t < lengths[i]``."""
        return np.arange(self.horizon) < self.lengths[:, None]

    @property
    def n_steps(self) -> int:
        """Total number of simulated steps, sum of lengths."""
        return int(self.lengths.sum(dtype=np.int64))

    def returns(self, gamma: float | None = None) -> NDArray[np.float64]:
        r"""Discounted return of each episode, :math:`\sum_{t<\text{len}} \gamma^t r_t`, shape (N,).

        Parameters
        ----------
        gamma : float in [0, 1], optional
            Discount factor (default: the batch's).

        Returns
        -------
        ndarray of float64, shape (N,)

        Raises
        ------
        ValueError
            ``gamma`` outside [0, 1].

        Examples
        --------
        >>> traj = pg.ContinuousTrajectories(states=np.zeros((1, 3, 2)), actions=np.zeros((1, 3, 1)),
        ...                                  rewards=[[1.0, 1.0, 1.0]], lengths=[3], gamma=0.5)
        >>> traj.returns(), traj.returns(gamma=1.0)  # 1 + 0.5 + 0.25
        (array([1.75]), array([3.]))
        """
        return _returns.returns(self.rewards, self.lengths, as_gamma(gamma, self.gamma))

    def reward_to_go(self, gamma: float | None = None) -> NDArray[np.float64]:
        r"""Reward-to-go :math:`G_t = \sum_{t \le t' < \text{len}} \gamma^{t'-t} r_{t'}`, shape (N, H).

        Computed backwards as :math:`G_t = r_t + \gamma G_{t+1}`; 0 on padding.

        Parameters
        ----------
        gamma : float in [0, 1], optional
            Discount factor (default: the batch's).

        Returns
        -------
        ndarray of float64, shape (N, H)

        Raises
        ------
        ValueError
            ``gamma`` outside [0, 1].

        Examples
        --------
        >>> traj = pg.ContinuousTrajectories(states=np.zeros((2, 3, 1)), actions=np.zeros((2, 3), dtype=int),
        ...                                  rewards=[[1.0, 2.0, 4.0], [1.0, 0.0, 0.0]], lengths=[3, 1])
        >>> traj.reward_to_go(gamma=0.5)
        array([[3., 4., 4.],
               [1., 0., 0.]])
        """
        return _returns.reward_to_go(self.rewards, self.lengths, as_gamma(gamma, self.gamma))

    def __repr__(self) -> str:
        kind = "indices" if self.discrete_actions else f"dim {self.actions.shape[2]}"
        return (f"ContinuousTrajectories(n={self.n}, horizon={self.horizon}, state_dim={self.state_dim}, "
                f"actions={kind}, gamma={self.gamma}, diverged={int(self.diverged.sum())})")


def _rebuild(arrays: list[NDArray[Any]], gamma: float, source: Any, seed: int | None) -> ContinuousTrajectories:
    return ContinuousTrajectories._trusted([np.array(a) for a in arrays], gamma, source, seed)
