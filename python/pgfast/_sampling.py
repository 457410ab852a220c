"""Sampling: the sampler that simulates episodes of a policy in a FiniteMDP, and the padded (N, H)
batch of episodes it returns."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import _core, _returns
from ._constants import PAD_INDEX as PAD_INDEX  # re-exported: pgfast.PAD_INDEX
from ._mdp import FiniteMDP
from ._policy import SoftmaxPolicy
from ._validation import as_float_array, as_gamma, as_int, as_int32_array, as_seed, as_threads, check_allocation


class Trajectories:
    r"""N episodes padded to the horizon H, as produced by :meth:`FiniteMDP.sample`.

    Parameters
    ----------
    mdp : FiniteMDP
        The MDP the episodes come from.
    states, actions, rewards, lengths, final_states : array_like
        The arrays of the attributes below (copied, then read-only).
    seed : int or None
        The seed that produced the batch, if any.

    Raises
    ------
    TypeError
        Non-integer states, actions, lengths or final states, or non-real rewards.
    ValueError
        Shapes other than (N, H) and (N,), lengths outside [0, H], final states outside the
        MDP, non-finite rewards on the real steps, or integers that do not fit int32.

    Attributes
    ----------
    states, actions : int32 (N, H)
        :math:`s_t, a_t` for ``t < lengths[i]``; ``-1`` (``pgfast.PAD_INDEX``) afterwards.
    rewards : float64 (N, H)
        :math:`r_t = R(s_t, a_t, s_{t+1})`; ``0.0`` afterwards.
    lengths : int32 (N,)
        Number of steps taken: the episode entered a terminal state at step ``lengths[i] - 1``,
        or reached the horizon (``lengths[i] == H``).
    final_states : int32 (N,)
        The state :math:`s_{\text{len}}` entered by the last step (terminal, or the state at the horizon).
    mdp : FiniteMDP
        The MDP that produced the batch (estimators read gamma and exact values from it).
    seed : int | None
        The seed of the batch, when it was sampled.

    A batch is immutable: its arrays are read-only (a batch built by hand keeps copies of the
    arrays it was given) and its attributes cannot be assigned (AttributeError), so the
    estimators trust a batch checked once. A batch built by hand is checked when it is made:
    integer states, actions, lengths and final states (stored as int32; no value may wrap), real rewards (stored as float64) finite on the
    real steps, shapes (N, H) and (N,), ``0 <= lengths <= H`` and final states of the MDP
    (TypeError / ValueError naming the array). States and actions outside the MDP's range are
    reported by the estimators, naming the trajectory and the step.

    Examples
    --------
    >>> P = np.zeros((2, 2, 2))
    >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
    >>> P[1, :, 1] = 1.0
    >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
    ...                    terminal=[False, True])
    >>> traj = mdp.sample(pg.TabularSoftmax(2, 2), 4, seed=0)
    >>> traj.n, traj.horizon, traj.n_steps
    (4, 3, 6)
    >>> traj.mask
    array([[ True, False, False],
           [ True,  True, False],
           [ True,  True, False],
           [ True, False, False]])
    >>> traj.states.flags.writeable
    False

    A batch built by hand (here, logged episodes) is checked when it is made:

    >>> logged = pg.Trajectories(mdp, states=[[0, 0, 0]], actions=[[0, 0, 1]],
    ...                          rewards=[[0.0, 0.0, 1.0]], lengths=[3], final_states=[1])
    >>> logged.returns()
    array([1.])
    """

    __slots__ = ("mdp", "states", "actions", "rewards", "lengths", "final_states", "seed")
    mdp: FiniteMDP
    states: NDArray[np.int32]
    actions: NDArray[np.int32]
    rewards: NDArray[np.float64]
    lengths: NDArray[np.int32]
    final_states: NDArray[np.int32]
    seed: int | None

    def __init__(
        self,
        mdp: FiniteMDP,
        states: NDArray[np.int32],
        actions: NDArray[np.int32],
        rewards: NDArray[np.float64],
        lengths: NDArray[np.int32],
        final_states: NDArray[np.int32],
        *,
        seed: int | None = None,
    ) -> None:
        if not isinstance(mdp, FiniteMDP):
            raise TypeError(f"mdp must be a pgfast.FiniteMDP, got {type(mdp).__name__}")
        st = as_int32_array(states, "states", 2)
        ac = as_int32_array(actions, "actions", 2)
        if ac.shape != st.shape:
            raise ValueError(f"actions must have the shape of states {st.shape}, got {ac.shape}")
        n, h = st.shape
        rw = as_float_array(rewards, "rewards", ndim=2)
        if rw.shape != st.shape:
            raise ValueError(f"rewards must have the shape of states (N, H) = {st.shape}, got {rw.shape}")
        ln = as_int32_array(lengths, "lengths", 1)
        fin = as_int32_array(final_states, "final_states", 1)
        for name, arr in (("lengths", ln), ("final_states", fin)):
            if arr.shape != (n,):
                raise ValueError(f"{name} must have shape (N,) = ({n},), got {arr.shape}")
        if n and (ln.min() < 0 or ln.max() > h):
            i = int(np.argmax((ln < 0) | (ln > h)))
            raise ValueError(f"lengths[{i}] = {ln[i]} is out of range [0, H = {h}]")
        if n and (fin.min() < 0 or fin.max() >= mdp.n_states):
            i = int(np.argmax((fin < 0) | (fin >= mdp.n_states)))
            raise ValueError(f"final_states[{i}] = {fin[i]} is not a state of the MDP [0, {mdp.n_states})")
        real = np.arange(h) < ln[:, None]
        bad = real & ~np.isfinite(rw)
        if bad.any():
            i, t = map(int, np.argwhere(bad)[0])
            raise ValueError(f"rewards must be finite on the real steps, found {rw[i, t]!r} (trajectory {i}, step {t})")
        if seed is not None:
            seed = as_seed(seed)
        given = (states, actions, rewards, lengths, final_states)
        # the batch keeps its own read-only arrays: a caller's array is copied, never frozen
        checked: tuple[NDArray[Any], ...] = (st, ac, rw, ln, fin)
        own = [a.copy() if isinstance(g, np.ndarray) and np.may_share_memory(a, g) else a
               for a, g in zip(checked, given, strict=True)]
        self._set(mdp, own, seed)

    def _set(self, mdp: FiniteMDP, arrays: Any, seed: int | None) -> None:
        for arr in arrays:
            arr.setflags(write=False)
        set_ = object.__setattr__
        set_(self, "mdp", mdp)
        for name, arr in zip(("states", "actions", "rewards", "lengths", "final_states"), arrays, strict=True):
            set_(self, name, arr)
        set_(self, "seed", seed)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"Trajectories batches are immutable: cannot set {name!r}; build a new "
            "pgfast.Trajectories(mdp, states, actions, rewards, lengths, final_states) instead"
        )

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Trajectories batches are immutable: cannot delete {name!r}")

    @classmethod
    def _trusted(cls, mdp: FiniteMDP, *arrays: NDArray[Any], seed: int | None = None) -> Trajectories:
        """A batch from arrays the library made (the sampler's, or rows of a checked batch), in the
        constructor's order (states, actions, rewards, lengths, final_states): no checks."""
        out = cls.__new__(cls)
        out._set(mdp, arrays, seed)
        return out

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickles as the MDP, the five arrays (out of band with protocol 5) and the seed."""
        return _rebuild_trajectories, (self.mdp, self.states, self.actions, self.rewards, self.lengths,
                                       self.final_states, self.seed)

    @property
    def n(self) -> int:
        """Number of trajectories N."""
        return int(self.states.shape[0])

    @property
    def horizon(self) -> int:
        """Padded length H."""
        return int(self.states.shape[1])

    def __len__(self) -> int:
        return self.n

    @property
    def terminated(self) -> NDArray[np.bool_]:
        """Whether each episode ended by entering a terminal state (else it hit the horizon)."""
        return self.mdp.terminal[self.final_states]

    @property
    def mask(self) -> NDArray[np.bool_]:
        """(N, H) mask of real steps: ``t < lengths[i]``."""
        return np.arange(self.horizon) < self.lengths[:, None]

    @property
    def n_steps(self) -> int:
        """Total number of simulated steps, sum of lengths."""
        return int(self.lengths.sum(dtype=np.int64))

    def _gamma(self, gamma: Any) -> float:
        return as_gamma(gamma, self.mdp.gamma)

    def returns(self, gamma: float | None = None) -> NDArray[np.float64]:
        r"""Discounted return of each episode, :math:`G(\tau) = \sum_{t<\text{len}} \gamma^t r_t`, shape (N,).

        See :doc:`/theory`, "The objective and the likelihood of a trajectory".

        Parameters
        ----------
        gamma : float in [0, 1], optional
            Discount factor (default: the MDP's).

        Returns
        -------
        ndarray of float64, shape (N,)

        Raises
        ------
        ValueError
            ``gamma`` outside [0, 1], or returns beyond the float64 range.

        Examples
        --------
        >>> mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="4x4", horizon=50)
        >>> traj = mdp.sample(pg.TabularSoftmax(16, 4), 1000, seed=0)
        >>> G = traj.returns()
        >>> G.shape, round(float(G.mean()), 6)  # the uniform policy reaches the goal 1.2 % of the time
        ((1000,), 0.012)
        >>> round(float(traj.returns(gamma=0.9).mean()), 6)
        0.00347
        """
        rw, ln = self._rewards_and_lengths()
        return _returns.returns(rw, ln, self._gamma(gamma))

    def reward_to_go(self, gamma: float | None = None) -> NDArray[np.float64]:
        r"""Reward-to-go :math:`G_t = \sum_{t \le t' < \text{len}} \gamma^{t'-t} r_{t'}`, shape (N, H).

        Computed backwards as :math:`G_t = r_t + \gamma G_{t+1}`; 0 on padding (see
        :doc:`/theory`, "REINFORCE and reward-to-go").

        Parameters
        ----------
        gamma : float in [0, 1], optional
            Discount factor (default: the MDP's).

        Returns
        -------
        ndarray of float64, shape (N, H)

        Raises
        ------
        ValueError
            ``gamma`` outside [0, 1], or sums beyond the float64 range.

        Examples
        --------
        >>> P = np.zeros((2, 2, 2))
        >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
        >>> P[1, :, 1] = 1.0
        >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
        ...                    terminal=[False, True])
        >>> traj = pg.Trajectories(mdp, states=[[0, 0, 0]], actions=[[0, 0, 1]],
        ...                        rewards=[[0.0, 0.0, 1.0]], lengths=[3], final_states=[1])
        >>> traj.reward_to_go(gamma=0.5)
        array([[0.25, 0.5 , 1.  ]])
        """
        rw, ln = self._rewards_and_lengths()
        return _returns.reward_to_go(rw, ln, self._gamma(gamma))

    def _rewards_and_lengths(self) -> tuple[NDArray[np.float64], NDArray[np.int32]]:
        # the arrays as the kernels take them (the batch's own: C-contiguous, no copy)
        return as_float_array(self.rewards, "rewards", ndim=2), as_int32_array(self.lengths, "lengths", 1)

    def __repr__(self) -> str:
        return f"Trajectories(n={self.n}, horizon={self.horizon}, steps={self.n_steps}, seed={self.seed})"


def _rebuild_trajectories(
    mdp: FiniteMDP,
    states: NDArray[np.int32],
    actions: NDArray[np.int32],
    rewards: NDArray[np.float64],
    lengths: NDArray[np.int32],
    final_states: NDArray[np.int32],
    seed: int | None,
) -> Trajectories:
    """Unpickles a batch (its arrays may come back read-only: the kernels only read them)."""
    return Trajectories._trusted(mdp, states, actions, rewards, lengths, final_states, seed=seed)


def sample(mdp: FiniteMDP, policy: SoftmaxPolicy, n: int, *, seed: int | None, threads: int | None = None) -> Trajectories:
    """Simulate ``n`` episodes of ``policy`` in ``mdp`` (the body of :meth:`FiniteMDP.sample`,
    which documents it): trajectory ``i`` draws only from the counter-based stream ``(seed, i)``."""
    if not isinstance(policy, SoftmaxPolicy):
        raise TypeError(f"policy must be a pgfast policy, got {type(policy).__name__}")
    n = as_int(n, "n", minimum=1, maximum=2**62)
    seed = as_seed(seed)
    threads = as_threads(threads)
    _core.info.wake_workers(threads)  # a parked pool thread wakes while the policy table is made
    probs = policy._probs_for(mdp)
    H = mdp.horizon
    # states + actions (int32) + rewards (float64) per step, lengths + final states per episode
    check_allocation(
        n * (H * 16 + 8),
        f"a batch of n={n} trajectories of horizon H={H}",
        "sample fewer trajectories per call",
    )
    states, actions, rewards, lengths, finals = _core.sampling.sample(mdp._mdp, probs, n, seed, threads)
    return Trajectories._trusted(mdp, states, actions, rewards, lengths, finals, seed=seed)
