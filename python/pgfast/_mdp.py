"""Finite MDPs: validation, sparse storage in C++, sampling, gymnasium in and out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from ._validation import (
    array_digest,
    as_array,
    as_float,
    as_float_array,
    as_int,
    check_allocation,
    require_finite,
)

if TYPE_CHECKING:
    import gymnasium

    from ._policy import SoftmaxPolicy
    from ._sampling import Trajectories

_DENSE_LIMIT_BYTES = 2**31  # mdp.P refuses to densify beyond this


def _is_scipy_sparse(x: Any) -> bool:
    return type(x).__module__.startswith("scipy.sparse")


class FiniteMDP:
    r"""A finite MDP :math:`(\mathcal S, \mathcal A, P, R, \mu_0, H, \gamma)`.

    Episodes start from :math:`s_0 \sim \mu_0`, take :math:`a_t \sim \pi(\cdot|s_t)`, move to
    :math:`s_{t+1} \sim P(\cdot|s_t, a_t)` and earn :math:`r_t = R(s_t, a_t, s_{t+1})`; an
    episode ends on *entering* a terminal state or after ``horizon`` steps (see :doc:`/theory`,
    "The objective and the likelihood of a trajectory").

    Parameters
    ----------
    P : array (S, A, S) or SciPy sparse (S*A, S)
        Transition probabilities :math:`P(s'|s, a)`; each row sums to 1. Rows of terminal
        states are never used and may be all zero. Stored sparse (CSR over the (s, a) rows).
    R : array (S, A), (S, A, S) or SciPy sparse (S*A, S)
        Reward :math:`R(s, a)` or reward on the transition :math:`R(s, a, s')`.
    mu0 : array (S,)
        Initial state distribution; must put no mass on terminal states.
    horizon : int >= 1
        Maximum episode length H.
    gamma : float in [0, 1]
        Discount factor (default 1: undiscounted).
    terminal : bool array (S,), optional
        Terminal states: entering one ends the episode.

    Raises
    ------
    TypeError
        An argument of the wrong type (the message names it).
    ValueError
        Shapes that do not match, probabilities that are negative or whose rows do not sum to 1,
        non-finite rewards, ``mu0`` not a distribution or with mass on terminal states, ``horizon``
        below 1 or ``gamma`` outside [0, 1].
    MemoryError
        A dense input too large to convert (the message states the bytes requested).

    Examples
    --------
    A two-state chain: in state 0, action 0 stays (reward 0) and action 1 earns 1 and enters the
    terminal state 1.

    >>> P = np.zeros((2, 2, 2))
    >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
    >>> P[1, :, 1] = 1.0
    >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
    ...                    terminal=[False, True])
    >>> mdp
    FiniteMDP(n_states=2, n_actions=2, nnz=4, horizon=3, gamma=1.0, terminal=1)
    >>> mdp.R
    array([[0., 1.],
           [0., 0.]])
    """

    __slots__ = ("_mdp", "__weakref__")

    def __init__(
        self,
        P: Any,
        R: Any,
        mu0: ArrayLike,
        *,
        horizon: int,
        gamma: float = 1.0,
        terminal: ArrayLike | None = None,
    ) -> None:
        horizon = as_int(horizon, "horizon", minimum=1, maximum=2**31 - 1)
        gamma = _check_gamma(gamma)
        if _is_scipy_sparse(P):
            S, A, indptr, nxt, prob, rows = _csr_from_sparse(P)
        else:
            _check_dense_size(P, "P")
            P = as_float_array(P, "P", ndim=3)
            S, A, S2 = P.shape
            if S2 != S or S < 1 or A < 1:
                raise ValueError(f"P must have shape (S, A, S) with S, A >= 1, got {P.shape}")
            if S > _INT32_MAX or A > _INT32_MAX:
                raise ValueError(f"P of shape {P.shape}: S and A must each be at most 2**31 - 1 = {_INT32_MAX}")
            flat = P.reshape(S * A, S)
            mask = flat != 0  # NaN entries are kept, so C++ reports them
            counts = mask.sum(axis=1)
            indptr = np.zeros(S * A + 1, dtype=np.int64)
            np.cumsum(counts, out=indptr[1:])
            rows, cols = np.nonzero(mask)
            nxt = cols.astype(np.int32)
            prob = np.ascontiguousarray(flat[rows, cols])
        reward = _rewards_on_entries(R, S, A, rows, nxt)
        mu0 = as_float_array(mu0, "mu0", ndim=1)
        if mu0.shape != (S,):
            raise ValueError(f"mu0 must have shape (S,) = ({S},), got {mu0.shape}")
        term = _terminal_mask(terminal, S)
        self._mdp = _core.mdp.MDP(n_states=S, n_actions=A, indptr=indptr, next=nxt, prob=prob, reward=reward,
                                  terminal=term, mu0=mu0, horizon=horizon, gamma=gamma)

    # -- construction from other forms --------------------------------------------------------

    @classmethod
    def _from_csr(
        cls,
        n_states: int,
        n_actions: int,
        indptr: NDArray[np.int64],
        next_states: NDArray[np.int32],
        prob: NDArray[np.float64],
        reward: NDArray[np.float64],
        mu0: NDArray[np.float64],
        terminal: NDArray[np.bool_] | None,
        *,
        horizon: int,
        gamma: float = 1.0,
    ) -> FiniteMDP:
        """Build from canonical CSR arrays over the (s, a) rows (one entry per successor)."""
        self = cls.__new__(cls)
        horizon = as_int(horizon, "horizon", minimum=1, maximum=2**31 - 1)
        self._mdp = _core.mdp.MDP(
            n_states=n_states,
            n_actions=n_actions,
            indptr=np.ascontiguousarray(indptr, dtype=np.int64),
            next=np.ascontiguousarray(next_states, dtype=np.int32),
            prob=np.ascontiguousarray(prob, dtype=np.float64),
            reward=np.ascontiguousarray(reward, dtype=np.float64),
            terminal=_terminal_mask(terminal, n_states),
            mu0=np.ascontiguousarray(mu0, dtype=np.float64),
            horizon=horizon,
            gamma=_check_gamma(gamma),
        )
        return self

    @classmethod
    def from_gymnasium(
        cls,
        env_or_id: Any,
        horizon: int | None = None,
        gamma: float = 1.0,
        **make_kwargs: Any,
    ) -> FiniteMDP:
        """Read a gymnasium toy-text style environment (``env.unwrapped.P``) into a FiniteMDP.

        ``env_or_id`` is an environment id (``"FrozenLake-v1"``, made with ``make_kwargs``, e.g.
        ``map_name="8x8"``, ``is_slippery=False``) or an environment instance. ``P[s][a]`` is a
        list of ``(p, s', r, terminated)``: duplicate ``(s, a, s')`` entries are merged (their
        probabilities summed, their rewards averaged with those probabilities, which keeps the
        expected reward), states entered with ``terminated=True`` become terminal, rewards sit on
        transitions, ``mu0`` is ``initial_state_distrib``, and the horizon defaults to the
        registered ``max_episode_steps``.

        Parameters
        ----------
        env_or_id : str or gymnasium.Env
            An environment id or instance whose ``unwrapped`` has a tabular ``P``.
        horizon : int, optional
            Maximum episode length (default: the registered ``max_episode_steps``).
        gamma : float in [0, 1]
            Discount factor (default 1).
        **make_kwargs
            Keyword arguments for ``gymnasium.make`` when ``env_or_id`` is an id.

        Returns
        -------
        FiniteMDP

        Raises
        ------
        TypeError
            An environment without a tabular ``P`` or with non-``Discrete`` spaces.
        ValueError
            An unknown id or arguments ``gymnasium.make`` rejects, an inconsistent ``P``
            (probabilities, states out of range), or no ``horizon`` when the environment
            registers none.

        Examples
        --------
        >>> mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="4x4")
        >>> mdp
        FiniteMDP(n_states=16, n_actions=4, nnz=148, horizon=100, gamma=1.0, terminal=5)
        >>> mdp.terminal.nonzero()[0]  # the four holes and the goal
        array([ 5,  7, 11, 12, 15])
        """
        from ._gym import mdp_arrays_from_gymnasium

        arrays, default_horizon = mdp_arrays_from_gymnasium(env_or_id, make_kwargs)
        if horizon is None:
            if default_horizon is None:
                raise ValueError(
                    "horizon: the environment registers no max_episode_steps; pass horizon="
                )
            horizon = default_horizon
        return cls._from_csr(*arrays, horizon=horizon, gamma=gamma)

    def to_gymnasium(self, render_mode: str | None = None) -> gymnasium.Env[np.int64, np.int64]:
        """A ``gymnasium.Env`` simulating this MDP (Discrete observations and actions).

        ``terminated`` is True on entering a terminal state, ``truncated`` after ``horizon``
        steps; ``info`` carries ``{"prob": P(s'|s, a)}`` like gymnasium's toy-text environments.

        Parameters
        ----------
        render_mode : {None, "ansi"}
            ``"ansi"``: ``render()`` returns one line with the step and the state.

        Returns
        -------
        gymnasium.Env
            A ``pgfast._gym.FiniteMDPEnv`` over this MDP.

        Raises
        ------
        ValueError
            A ``render_mode`` other than None and ``"ansi"``.

        Examples
        --------
        >>> P = np.zeros((2, 2, 2))
        >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
        >>> P[1, :, 1] = 1.0
        >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
        ...                    terminal=[False, True])
        >>> env = mdp.to_gymnasium()
        >>> obs, info = env.reset(seed=0)
        >>> int(obs), info
        (0, {'prob': 1.0})
        >>> obs, reward, terminated, truncated, info = env.step(1)
        >>> int(obs), reward, terminated, truncated
        (1, 1.0, True, False)
        """
        from ._gym import FiniteMDPEnv

        return FiniteMDPEnv(self, render_mode=render_mode)

    # -- properties -----------------------------------------------------------------------

    @property
    def n_states(self) -> int:
        """Number of states S."""
        return int(self._mdp.n_states)

    @property
    def n_actions(self) -> int:
        """Number of actions A."""
        return int(self._mdp.n_actions)

    @property
    def horizon(self) -> int:
        """Maximum episode length H."""
        return int(self._mdp.horizon)

    @property
    def gamma(self) -> float:
        """Discount factor in [0, 1]."""
        return float(self._mdp.gamma)

    @property
    def nnz(self) -> int:
        """Number of stored transitions (s, a, s') with P > 0."""
        return int(self._mdp.nnz)

    @property
    def mu0(self) -> NDArray[np.float64]:
        """Initial state distribution (S,), read-only."""
        return self._mdp.mu0

    @property
    def terminal(self) -> NDArray[np.bool_]:
        """Terminal-state mask (S,), read-only."""
        out = self._mdp.terminal.view(np.bool_)
        return out

    @property
    def transitions(self) -> tuple[NDArray[np.int64], NDArray[np.int32], NDArray[np.float64], NDArray[np.float64]]:
        """The stored CSR over (s, a) rows: ``(indptr (S*A+1,), next_state, prob, reward)``.

        Row ``s * A + a`` holds entries ``indptr[row]:indptr[row+1]``. Read-only views, no copy.
        """
        m = self._mdp
        return m.indptr, m.next, m.prob, m.reward

    @property
    def P(self) -> NDArray[np.float64]:
        """Dense transition array (S, A, S) (a new array; see ``transitions`` for the sparse form);
        ``MemoryError`` beyond 2 GiB."""
        S, A = self.n_states, self.n_actions
        nbytes = S * A * S * 8
        if nbytes > _DENSE_LIMIT_BYTES:
            raise MemoryError(
                f"P as a dense (S, A, S) = ({S}, {A}, {S}) array needs {nbytes / 2**30:.3g} GiB; "
                "use mdp.transitions (CSR) instead"
            )
        indptr, nxt, prob, _ = self.transitions
        out = np.zeros((S * A, S))
        rows = np.repeat(np.arange(S * A), np.diff(indptr))
        out[rows, nxt] = prob
        return out.reshape(S, A, S)

    @property
    def R(self) -> NDArray[np.float64]:
        r"""Expected immediate reward :math:`r(s, a) = \sum_{s'} P(s'|s,a) R(s,a,s')`, shape (S, A)."""
        return self._mdp.expected_reward()

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickles as the stored CSR arrays, ``mu0``, ``terminal``, ``horizon`` and ``gamma``
        (with protocol 5 the arrays can travel out of band); unpickling rebuilds the same MDP."""
        m = self._mdp
        return _rebuild_mdp, (self.n_states, self.n_actions, m.indptr, m.next, m.prob, m.reward, m.mu0,
                              self.terminal, self.horizon, self.gamma)

    def __repr__(self) -> str:
        return (
            f"FiniteMDP(n_states={self.n_states}, n_actions={self.n_actions}, nnz={self.nnz}, "
            f"horizon={self.horizon}, gamma={self.gamma}, terminal={int(self.terminal.sum())})"
        )

    # -- sampling -------------------------------------------------------------------------

    def sample(self, policy: SoftmaxPolicy, n: int, *, seed: int | None, threads: int | None = None) -> Trajectories:
        """Simulate ``n`` episodes of ``policy`` in C++ (GIL released, all cores by default).

        Returns a :class:`pgfast.Trajectories` batch: ``states``, ``actions`` (int32 (n, H)),
        ``rewards`` (float64 (n, H)), ``lengths`` and ``final_states`` (int32 (n,)). Entries at
        ``t >= lengths[i]`` are padding: -1 for states and actions, 0.0 for rewards.

        Trajectory ``i`` draws only from the counter-based random stream of ``(seed, i)``, so the
        batch is bit-identical for any ``threads``, and the first ``m`` trajectories of a batch of
        ``n`` equal a batch of ``m``. ``seed=None`` draws a fresh seed (kept in ``traj.seed``).
        ``threads`` (1 to ``pgfast.MAX_THREADS`` = 256, more raise ``ValueError``; default: every
        usable CPU) only changes the speed. Ctrl-C stops a long run with ``KeyboardInterrupt``.

        Parameters
        ----------
        policy : SoftmaxPolicy
            The policy acting in every episode (its ``n_states`` and ``n_actions`` must match).
        n : int >= 1
            Number of episodes.
        seed : int or None
            Seed of the batch (keyword-only and required: pass ``None`` for a fresh one).
        threads : int, optional
            Worker threads, 1 to ``pgfast.MAX_THREADS`` (default: every usable CPU).

        Returns
        -------
        Trajectories
            The batch, padded to the horizon ``(n, H)``.

        Raises
        ------
        TypeError
            ``policy`` is not a pgfast policy.
        ValueError
            ``n`` below 1, a bad ``seed`` or ``threads``, or a policy of another size.
        MemoryError
            A batch larger than memory (the message states the bytes requested).

        Examples
        --------
        >>> P = np.zeros((2, 2, 2))
        >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
        >>> P[1, :, 1] = 1.0
        >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
        ...                    terminal=[False, True])
        >>> traj = mdp.sample(pg.TabularSoftmax(2, 2), 4, seed=0)
        >>> traj
        Trajectories(n=4, horizon=3, steps=6, seed=0)
        >>> traj.actions  # -1 (PAD_INDEX) after an episode's end
        array([[ 1, -1, -1],
               [ 0,  1, -1],
               [ 0,  1, -1],
               [ 1, -1, -1]], dtype=int32)
        >>> traj.lengths
        array([1, 2, 2, 1], dtype=int32)
        """
        from ._sampling import sample  # the sampler sits above the model (it needs policies)

        return sample(self, policy, n, seed=seed, threads=threads)


def mdp_digest(mdp: FiniteMDP) -> str:
    """A digest of everything that defines ``mdp`` (its CSR transitions and rewards, mu0, the
    terminal states, sizes, horizon and gamma): partial results and sweep journals record it to
    refuse mixing MDPs."""
    indptr, indices, probs, rewards = mdp.transitions
    return array_digest(indptr, indices, probs, rewards, mdp.mu0, mdp.terminal,
                        np.array([mdp.n_states, mdp.n_actions, mdp.horizon]), np.array([mdp.gamma]))


def _check_dense_size(x: Any, name: str) -> None:
    """MemoryError before a dense array (e.g. a broadcast view, which owns no memory) is converted
    to float64 and scanned: a float64 copy unless it is one already, and a mask of its entries."""
    if not isinstance(x, np.ndarray):
        return  # nested lists: NumPy's own conversion is the allocation
    copy = not (x.dtype == np.float64 and x.flags.c_contiguous)
    check_allocation(x.size * (1 + 8 * copy), f"{name} of shape {x.shape} ({x.dtype})", f"pass a SciPy sparse {name}")


def _rebuild_mdp(
    n_states: int,
    n_actions: int,
    indptr: NDArray[np.int64],
    next_states: NDArray[np.int32],
    prob: NDArray[np.float64],
    reward: NDArray[np.float64],
    mu0: NDArray[np.float64],
    terminal: NDArray[np.bool_],
    horizon: int,
    gamma: float,
) -> FiniteMDP:
    """Unpickles a FiniteMDP (the arrays may be read-only: they are copied into C++)."""
    return FiniteMDP._from_csr(n_states, n_actions, indptr, next_states, prob, reward, mu0, terminal,
                               horizon=horizon, gamma=gamma)


def _check_gamma(gamma: Any) -> float:
    g = as_float(gamma, "gamma")
    if not (0.0 <= g <= 1.0):
        raise ValueError(f"gamma must be in [0, 1], got {g}")
    return g


def _terminal_mask(terminal: ArrayLike | None, S: int) -> NDArray[np.uint8]:
    if terminal is None:
        return np.zeros(S, dtype=np.uint8)
    t = as_array(terminal, "terminal")
    if t.dtype != np.bool_ and (t.dtype.kind not in "iu" or (t.size and not np.isin(t, (0, 1)).all())):
        raise TypeError(f"terminal must be a boolean mask of shape (S,), got dtype {t.dtype}")
    if t.shape != (S,):
        raise ValueError(f"terminal must have shape (S,) = ({S},), got {t.shape}")
    return np.ascontiguousarray(t, dtype=np.uint8)


_INT32_MAX = 2**31 - 1


def _csr_from_sparse(P: Any) -> tuple[int, int, NDArray[np.int64], NDArray[np.int32], NDArray[np.float64], NDArray[np.int64]]:
    S, A = _sparse_shape(P, "P")
    csr = _checked_csr(P, "P")
    csr.sum_duplicates()
    csr.sort_indices()
    csr.eliminate_zeros()
    indptr = np.ascontiguousarray(csr.indptr, dtype=np.int64)
    nxt = np.ascontiguousarray(csr.indices, dtype=np.int32)
    prob = np.ascontiguousarray(csr.data, dtype=np.float64)
    rows = np.repeat(np.arange(S * A, dtype=np.int64), np.diff(indptr))
    return S, A, indptr, nxt, prob, rows


def _sparse_shape(M: Any, name: str) -> tuple[int, int]:
    """(S, A) of a SciPy sparse (S*A, S) matrix, its declared shape checked against the int32 index
    limits and its real dtype checked, before anything is converted or allocated."""
    shape = getattr(M, "shape", None)
    if not isinstance(shape, tuple) or len(shape) != 2:
        raise ValueError(f"sparse {name} must have shape (S*A, S), got {shape}")
    rows_total, S = (int(d) for d in shape)
    if S < 1 or rows_total < S or rows_total % S:
        raise ValueError(f"sparse {name} must have shape (S*A, S) with A >= 1, got {shape}")
    A = rows_total // S
    if S > _INT32_MAX or A > _INT32_MAX:
        raise ValueError(
            f"sparse {name} of shape {shape} has S = {S} states and A = {A} actions; "
            f"each must be at most 2**31 - 1 = {_INT32_MAX}"
        )
    dtype = getattr(M, "dtype", None)
    if not isinstance(dtype, np.dtype) or dtype.kind not in "iuf":  # a complex matrix would lose its imaginary part
        raise TypeError(f"{name} must be a real numeric matrix, got dtype {dtype}")
    return S, A


def _int_array(x: Any, what: str, ndim: int = 1) -> NDArray[Any]:
    arr = x if isinstance(x, np.ndarray) else None
    if arr is None or arr.ndim != ndim or arr.dtype == np.bool_ or arr.dtype.kind not in "iu":
        desc = f"dtype {arr.dtype}, shape {arr.shape}" if arr is not None else type(x).__name__
        raise ValueError(f"{what} must be a {ndim}-D integer array, got {desc}")
    return arr


def _check_range(idx: NDArray[Any], upper: int, what: str) -> None:
    if idx.size:
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= upper:
            k = int(np.argmax((idx < 0) | (idx >= upper)))
            raise ValueError(f"{what}[{k}] = {int(idx[k])} is out of range [0, {upper})")


def _check_compressed(indptr: Any, indices: Any, data: Any, major: int, minor: int, name: str) -> int:
    """The CSR / CSC / BSR structure (SciPy does not check it); returns the number of stored entries."""
    indptr = _int_array(indptr, f"{name}: indptr")
    indices = _int_array(indices, f"{name}: indices")
    if not isinstance(data, np.ndarray) or data.shape[:1] != indices.shape or data.ndim not in (1, 3):
        raise ValueError(f"{name}: data must have one entry (or block) per index, got {getattr(data, 'shape', None)} "
                         f"for {indices.shape[0]} indices")
    if indptr.shape != (major + 1,):
        raise ValueError(f"{name}: indptr must have {major + 1} entries (rows + 1), got {indptr.shape[0]}")
    if int(indptr[0]) != 0:
        raise ValueError(f"{name}: indptr must start at 0, got indptr[0] = {int(indptr[0])}")
    steps = np.diff(indptr)
    if steps.size and int(steps.min()) < 0:
        k = int(np.argmax(steps < 0))
        raise ValueError(f"{name}: indptr must be non-decreasing, got indptr[{k}] = {int(indptr[k])} > "
                         f"indptr[{k + 1}] = {int(indptr[k + 1])}")
    nnz = int(indptr[-1])
    if nnz > indices.shape[0]:
        raise ValueError(f"{name}: indptr ends at {nnz}, beyond the {indices.shape[0]} stored indices")
    _check_range(indices[:nnz], minor, f"{name}: column index indices")
    return nnz


def _check_sparse_structure(M: Any, name: str) -> None:
    """Index arrays of a SciPy sparse matrix checked for structure and range before conversion."""
    fmt = getattr(M, "format", None)
    n_rows, n_cols = (int(d) for d in M.shape)
    if fmt == "csr":
        _check_compressed(M.indptr, M.indices, M.data, n_rows, n_cols, name)
    elif fmt == "csc":
        _check_compressed(M.indptr, M.indices, M.data, n_cols, n_rows, name)
    elif fmt == "bsr":
        data = M.data
        if not isinstance(data, np.ndarray) or data.ndim != 3:
            raise ValueError(f"{name}: BSR data must be 3-D (blocks, R, C), got {getattr(data, 'shape', None)}")
        R, C = int(data.shape[1]), int(data.shape[2])
        if R < 1 or C < 1 or n_rows % R or n_cols % C:
            raise ValueError(f"{name}: BSR blocks of shape ({R}, {C}) do not tile the shape {M.shape}")
        _check_compressed(M.indptr, M.indices, data, n_rows // R, n_cols // C, name)
    elif fmt == "coo":
        coords = getattr(M, "coords", None) or (M.row, M.col)
        if len(coords) != 2:
            raise ValueError(f"{name}: COO coordinates must be (row, col), got {len(coords)} arrays")
        row = _int_array(coords[0], f"{name}: row")
        col = _int_array(coords[1], f"{name}: col")
        data = M.data
        if row.shape != col.shape or not isinstance(data, np.ndarray) or data.shape != row.shape:
            raise ValueError(f"{name}: COO row, col and data must have the same length, got "
                             f"{row.shape}, {col.shape} and {getattr(data, 'shape', None)}")
        _check_range(row, n_rows, f"{name}: row index row")
        _check_range(col, n_cols, f"{name}: column index col")
    elif fmt == "lil":
        rows, data = M.rows, M.data
        if not (isinstance(rows, np.ndarray) and isinstance(data, np.ndarray) and rows.shape == data.shape == (n_rows,)):
            raise ValueError(f"{name}: LIL rows and data must be arrays of {n_rows} lists")
        for i in range(n_rows):
            if not isinstance(rows[i], list) or not isinstance(data[i], list) or len(rows[i]) != len(data[i]):
                raise ValueError(f"{name}: LIL row {i} must have as many values as column indices")
    elif fmt == "dia":
        offsets = _int_array(M.offsets, f"{name}: offsets")
        data = M.data
        if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[0] != offsets.shape[0]:
            raise ValueError(f"{name}: DIA data must be 2-D with one row per offset ({offsets.shape[0]}), "
                             f"got {getattr(data, 'shape', None)}")
    elif fmt != "dok":
        raise TypeError(f"{name}: unsupported SciPy sparse format {fmt!r}")


def _checked_csr(M: Any, name: str) -> Any:
    """A validated CSR copy of a SciPy sparse matrix of any format (csr, csc, coo, bsr, dia, lil,
    dok; matrix or array classes). The declared shape was checked by :func:`_sparse_shape`."""
    n_rows = int(M.shape[0])
    nnz = int(M.data.size) if isinstance(getattr(M, "data", None), np.ndarray) and M.format != "lil" else 0
    # indptr (int64) twice over (conversion and copy), then 20 bytes per entry, a few times over
    check_allocation(16 * (n_rows + 1) + 64 * max(nnz, 0), f"sparse {name} of shape {M.shape}",
                     "pass a smaller matrix")
    _check_sparse_structure(M, name)
    if M.format in ("dia", "lil", "dok"):
        # Their conversions build COO / CSR arrays without trusting an index structure; the result
        # is checked like any other before it is used.
        fmt = M.format
        try:
            M = M.tocsr() if fmt == "lil" else M.tocoo()
        except (ValueError, IndexError, TypeError, KeyError) as exc:
            raise ValueError(f"{name}: malformed {fmt.upper()} matrix ({type(exc).__name__}: {exc})") from None
        _check_sparse_structure(M, name)
    csr = M.tocsr(copy=True)
    if csr.format != "csr":
        raise TypeError(f"{name}: could not convert to CSR")
    _check_compressed(csr.indptr, csr.indices, csr.data, int(csr.shape[0]), int(csr.shape[1]), name)
    if csr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a real numeric matrix, got dtype {csr.dtype}")
    return csr


def _rewards_on_entries(R: Any, S: int, A: int, rows: NDArray[Any], nxt: NDArray[np.int32]) -> NDArray[np.float64]:
    """R(s, a, s') at every stored transition, from R (S, A), (S, A, S) or sparse (S*A, S)."""
    if _is_scipy_sparse(R):
        if getattr(R, "shape", None) != (S * A, S):
            raise ValueError(f"sparse R must have shape (S*A, S) = ({S * A}, {S}), got {R.shape}")
        _sparse_shape(R, "R")
        picked = _checked_csr(R, "R")[rows, nxt]
        if _is_scipy_sparse(picked):  # the sparse array classes return an empty selection sparse
            picked = picked.toarray()
        vals = np.asarray(picked, dtype=np.float64).ravel()
        bad = np.flatnonzero(~np.isfinite(vals))
        if bad.size:
            e = int(bad[0])
            s_a = int(rows[e])
            raise ValueError(f"R must be finite, found {vals[e]!r} at (s, a, s') = ({s_a // A}, {s_a % A}, {int(nxt[e])})")
        return np.ascontiguousarray(vals)
    _check_dense_size(R, "R")
    Rd = as_float_array(R, "R", ndim=(2, 3))
    if Rd.shape not in ((S, A), (S, A, S)):
        raise ValueError(f"R must have shape (S, A) = ({S}, {A}) or (S, A, S) = ({S}, {A}, {S}), got {Rd.shape}")
    require_finite(Rd, "R")
    if Rd.ndim == 2:
        return np.ascontiguousarray(Rd.reshape(S * A)[rows])
    return np.ascontiguousarray(Rd.reshape(S * A, S)[rows, nxt])
