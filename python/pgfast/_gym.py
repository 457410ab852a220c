"""gymnasium in and out: read a toy-text ``env.unwrapped.P`` table, and simulate a FiniteMDP as an Env.

Two directions, both exact:

* :func:`mdp_arrays_from_gymnasium` turns the tabular description that gymnasium's toy-text
  environments carry (``P[s][a] = [(p, s', r, terminated), ...]`` and
  ``initial_state_distrib``) into the canonical CSR arrays of :class:`pgfast.FiniteMDP`.
* :class:`FiniteMDPEnv` is a ``gymnasium.Env`` that simulates a :class:`pgfast.FiniteMDP` step by
  step (``mdp.to_gymnasium()``), for use with gymnasium tools and wrappers.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec
from numpy.typing import NDArray

from ._mdp import FiniteMDP

__all__ = ["FiniteMDPEnv", "mdp_arrays_from_gymnasium"]

MDPArrays = tuple[
    int,
    int,
    NDArray[np.int64],
    NDArray[np.int32],
    NDArray[np.float64],
    NDArray[np.float64],
    NDArray[np.float64],
    NDArray[np.bool_],
]


# -- gymnasium -> arrays ------------------------------------------------------------------------


def mdp_arrays_from_gymnasium(env_or_id: Any, make_kwargs: dict[str, Any]) -> tuple[MDPArrays, int | None]:
    r"""Canonical MDP arrays from a gymnasium environment with a tabular ``P``.

    Parameters
    ----------
    env_or_id : str or gymnasium.Env
        An environment id, made (once, then closed) with ``gymnasium.make(env_or_id,
        **make_kwargs)``; or an environment instance (possibly wrapped; ``env.unwrapped`` is read,
        the instance is not closed), in which case ``make_kwargs`` must be empty.
    make_kwargs : dict
        Keyword arguments for ``gymnasium.make``.

    Returns
    -------
    arrays : tuple
        ``(n_states, n_actions, indptr int64 (S*A+1,), next int32 (nnz,), prob float64 (nnz,),
        reward float64 (nnz,), mu0 float64 (S,), terminal bool (S,))`` as
        ``FiniteMDP._from_csr`` takes them: one CSR row per ``(s, a)`` (row ``s*A + a``),
        successors sorted within a row.
    default_horizon : int or None
        ``env.spec.max_episode_steps`` (None when the environment registers no time limit).

    Notes
    -----
    ``P[s][a]`` is a list of ``(p, s', r, terminated)``. Entries with ``p == 0`` are dropped.
    Duplicate ``(s, a, s')`` entries are merged: :math:`P(s'|s,a) = \sum_k p_k` and
    :math:`R(s,a,s') = \sum_k p_k r_k / \sum_k p_k`, which keeps the expected reward
    :math:`r(s,a)` (and so every value and gradient) but not the reward's distribution.
    A state is terminal if any entry enters it with ``terminated=True``. gymnasium's tables also
    describe moves out of terminal states and out of unreachable states (FrozenLake's holes,
    CliffWalking's cliff cells), whose flags may disagree; these rows are never used. So an
    entry entering a terminal state with ``terminated=False`` is an error only when its source
    state is non-terminal and reachable from ``mu0`` through non-terminal states, for then
    gymnasium would continue an episode that pgfast ends.
    """
    if isinstance(env_or_id, str):
        env_id = env_or_id
        if env_id.split("/")[-1].startswith("FrozenLake"):
            _check_frozen_lake_desc(make_kwargs.get("desc"))
        try:
            env = gymnasium.make(env_id, **make_kwargs)
        except (gymnasium.error.UnregisteredEnv, gymnasium.error.DeprecatedEnv) as exc:
            raise ValueError(f"env_or_id: unknown gymnasium environment id {env_id!r} ({exc})") from exc
        except (gymnasium.error.Error, KeyError) as exc:  # a malformed id, or an argument the env rejects
            kw = f" with {make_kwargs}" if make_kwargs else ""
            raise ValueError(f"gymnasium.make({env_id!r}){kw} failed: {type(exc).__name__}: {exc}") from exc
        try:
            return _read_tabular_env(env, env_id)
        finally:
            env.close()
    if isinstance(env_or_id, gymnasium.Env):
        if make_kwargs:
            raise TypeError(
                "keyword arguments for gymnasium.make "
                f"({', '.join(sorted(make_kwargs))}) can only be given with an environment id, "
                "not with an environment instance"
            )
        spec = getattr(env_or_id, "spec", None)
        name = spec.id if spec is not None else type(env_or_id.unwrapped).__name__
        return _read_tabular_env(env_or_id, name)
    raise TypeError(
        "env_or_id must be a gymnasium environment id (str) or a gymnasium.Env instance, "
        f"got {type(env_or_id).__name__}"
    )


def _is_real(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def _check_frozen_lake_desc(desc: Any) -> None:
    """ValueError naming ``desc`` unless it is a FrozenLake map gymnasium can read: rows of equal
    length over 'SFHG' with at least one start cell 'S' (gymnasium starts uniformly on them)."""
    if desc is None:
        return
    if isinstance(desc, (str, bytes)) or not hasattr(desc, "__len__"):
        raise ValueError(f"desc must be a list of map rows (strings over 'SFHG'), e.g. ['SF', 'HG'], got {desc!r}")
    def cell(c: Any) -> str:
        return c.decode() if isinstance(c, (bytes, np.bytes_)) else str(c)

    rows = [cell(r) if isinstance(r, (str, bytes, np.str_, np.bytes_)) else "".join(map(cell, r)) for r in desc]
    if not rows or not rows[0] or any(len(r) != len(rows[0]) for r in rows):
        raise ValueError(f"desc must be a non-empty list of rows of one length, got {desc!r}")
    bad = set("".join(rows)) - set("SFHG")
    if bad:
        raise ValueError(f"desc may only hold the cells 'S', 'F', 'H', 'G', got {sorted(bad)}")
    if "S" not in "".join(rows):
        raise ValueError(f"desc has no start cell 'S': {rows}")


def _discrete_size(space: Any, what: str, name: str) -> int:
    if not isinstance(space, spaces.Discrete):
        raise ValueError(f"env {name}: its {what} space must be Discrete, got {space!r}, which is not Discrete")
    if int(space.start) != 0:
        raise ValueError(f"env {name}: its {what} space must be Discrete starting at 0, got {space!r}")
    if int(space.n) > 2**31 - 1:
        raise ValueError(f"env {name}: its {what} space has {int(space.n)} elements, more than 2**31 - 1")
    return int(space.n)


def _read_tabular_env(env: gymnasium.Env[Any, Any], name: str) -> tuple[MDPArrays, int | None]:
    """The arrays of ``env.unwrapped`` (see :func:`mdp_arrays_from_gymnasium`)."""
    base = env.unwrapped
    table = getattr(base, "P", None)
    if table is None:
        raise ValueError(
            f"env {name} has no tabular `P` (env.unwrapped.P: dict s -> dict a -> list of "
            "(prob, next_state, reward, terminated)); only toy-text style environments can be read"
        )
    S = _discrete_size(base.observation_space, "observation", name)
    A = _discrete_size(base.action_space, "action", name)
    if getattr(base, "fickle_passenger", False):
        # Taxi's fickle passenger changes the destination inside step(), outside of P.
        raise ValueError(
            f"env {name}: fickle_passenger=True changes the dynamics outside of env.unwrapped.P, "
            "so P does not describe this environment; make it with fickle_passenger=False"
        )
    mu0_raw = getattr(base, "initial_state_distrib", None)
    if mu0_raw is None:
        raise ValueError(
            f"env {name} has no `initial_state_distrib` (the initial state distribution mu0 "
            "that toy-text environments keep next to P)"
        )
    try:
        mu0 = np.array(mu0_raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"env {name}: initial_state_distrib must be a numeric array ({exc})") from None
    if mu0.shape != (S,):
        raise ValueError(f"env {name}: initial_state_distrib must have shape (S,) = ({S},), got {mu0.shape}")
    if not np.isfinite(mu0).all():
        raise ValueError(f"env {name}: initial_state_distrib must be finite, got {mu0}")
    try:
        n_table = len(table)
    except TypeError:
        raise ValueError(f"env {name}: P must be indexable as P[s][a], got {type(table).__name__}") from None
    if n_table != S:
        raise ValueError(f"env {name}: P must describe the {S} states of the observation space, it has {n_table}")

    # The input format is a nested Python structure: one pass over it, the rest is vectorised.
    counts = np.zeros(S * A, dtype=np.int64)
    probs: list[Any] = []
    nexts: list[Any] = []
    rewards: list[Any] = []
    flags: list[Any] = []
    for s in range(S):
        try:
            row_s = table[s]
        except (KeyError, IndexError, TypeError):
            raise ValueError(f"env {name}: P has no entry for state {s}") from None
        for a in range(A):
            try:
                entries = row_s[a]
            except (KeyError, IndexError, TypeError):
                raise ValueError(f"env {name}: P[{s}] has no entry for action {a}") from None
            n = 0
            for entry in entries:
                try:
                    p, s_next, r, done = entry
                except (TypeError, ValueError):
                    raise ValueError(
                        f"env {name}: P[{s}][{a}] entries must be (prob, next_state, reward, "
                        f"terminated) tuples, got {entry!r}"
                    ) from None
                if not isinstance(done, (bool, np.bool_)) and done not in (0, 1):  # 'False' would read as True
                    raise ValueError(f"env {name}: P[{s}][{a}]: terminated must be True or False, got {done!r}")
                # nothing converted silently: True is not state 1, "0.5" is not a probability
                if isinstance(s_next, (bool, np.bool_)) or not isinstance(s_next, (int, np.integer)):
                    raise TypeError(f"env {name}: P[{s}][{a}]: next_state must be an integer, got {s_next!r}")
                if not (_is_real(p) and _is_real(r)):
                    what, v = ("probability", p) if not _is_real(p) else ("reward", r)
                    raise TypeError(f"env {name}: P[{s}][{a}]: the {what} must be a real number, got {v!r}")
                probs.append(p)
                nexts.append(s_next)
                rewards.append(r)
                flags.append(done)
                n += 1
            counts[s * A + a] = n
    rows = np.repeat(np.arange(S * A, dtype=np.int64), counts)
    entry_rows = rows  # for messages: row of each raw entry, before filtering

    def where(e: int) -> str:
        return f"P[{int(entry_rows[e]) // A}][{int(entry_rows[e]) % A}]"

    try:
        prob = np.array(probs, dtype=np.float64)
        reward = np.array(rewards, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"env {name}: P's probabilities and rewards must be real numbers ({exc})") from None
    try:
        nxt_any = np.array(nexts)
    except ValueError:  # a mix of scalars and sequences
        raise ValueError(f"env {name}: P's next states must be integers (one per entry)") from None
    if nxt_any.size == 0:
        nxt_any = nxt_any.astype(np.int64)
    if nxt_any.dtype == np.bool_ or nxt_any.dtype.kind not in "iu" or nxt_any.ndim != 1:
        raise ValueError(f"env {name}: P's next states must be integers, got dtype {nxt_any.dtype}")
    nxt = nxt_any.astype(np.int64)
    terminated = np.array(flags, dtype=np.bool_)
    bad = np.flatnonzero(~np.isfinite(prob) | (prob < 0))
    if bad.size:
        e = int(bad[0])
        raise ValueError(f"env {name}: {where(e)} has probability {float(prob[e])}; probabilities must be finite and >= 0")
    bad = np.flatnonzero((nxt < 0) | (nxt >= S))
    if bad.size:
        e = int(bad[0])
        raise ValueError(f"env {name}: {where(e)} enters state {int(nxt[e])}, outside [0, {S})")
    bad = np.flatnonzero(~np.isfinite(reward))
    if bad.size:
        e = int(bad[0])
        raise ValueError(f"env {name}: {where(e)} has reward {float(reward[e])}; rewards must be finite")

    # Drop impossible entries, then merge duplicates (s, a, s') in CSR order (sorted by row, s').
    keep = prob != 0
    rows, nxt, prob, reward, terminated = rows[keep], nxt[keep], prob[keep], reward[keep], terminated[keep]
    order = np.argsort(rows * S + nxt, kind="stable")
    rows, nxt, prob, reward, terminated = rows[order], nxt[order], prob[order], reward[order], terminated[order]
    key = rows * S + nxt
    first = np.ones(key.size, dtype=np.bool_)
    first[1:] = key[1:] != key[:-1]
    starts = np.flatnonzero(first)
    if starts.size < key.size:
        group = np.cumsum(first) - 1
        m_prob = np.bincount(group, weights=prob, minlength=starts.size)
        m_reward = reward[starts].copy()
        # Weighted average only where duplicates disagree, so equal rewards stay bit-exact.
        differs = np.maximum.reduceat(reward, starts) != np.minimum.reduceat(reward, starts)
        if differs.any():
            weighted = np.bincount(group, weights=prob * reward, minlength=starts.size)
            m_reward[differs] = weighted[differs] / m_prob[differs]
        m_rows, m_nxt = rows[starts], nxt[starts]
    else:
        m_prob, m_reward, m_rows, m_nxt = prob, reward, rows, nxt
    indptr = np.zeros(S * A + 1, dtype=np.int64)
    np.cumsum(np.bincount(m_rows, minlength=S * A), out=indptr[1:])

    terminal = np.zeros(S, dtype=np.bool_)
    terminal[nxt[terminated]] = True
    _check_terminated_flags(name, S, A, rows, nxt, terminated, terminal, indptr, m_nxt, mu0)

    spec = getattr(env, "spec", None)
    max_steps = getattr(spec, "max_episode_steps", None)
    default_horizon = None if max_steps is None else int(max_steps)
    arrays: MDPArrays = (
        S,
        A,
        indptr,
        np.ascontiguousarray(m_nxt, dtype=np.int32),
        np.ascontiguousarray(m_prob, dtype=np.float64),
        np.ascontiguousarray(m_reward, dtype=np.float64),
        mu0,
        terminal,
    )
    return arrays, default_horizon


def _live_states(
    S: int, A: int, indptr: NDArray[np.int64], nxt: NDArray[np.int64], mu0: NDArray[np.float64], terminal: NDArray[np.bool_]
) -> NDArray[np.bool_]:
    """Non-terminal states reachable from supp(mu0) through non-terminal states (BFS, O(nnz))."""
    reached = mu0 > 0
    live = np.zeros(S, dtype=np.bool_)
    frontier = np.flatnonzero(reached & ~terminal)
    actions = np.arange(A, dtype=np.int64)
    while frontier.size:
        live[frontier] = True
        row_ids = (frontier[:, None] * A + actions).ravel()
        begin, length = indptr[row_ids], np.diff(indptr)[row_ids]
        total = int(length.sum())
        offsets = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(length) - length, length)
        succ = nxt[np.repeat(begin, length) + offsets]
        new = np.unique(succ[~reached[succ]])
        reached[new] = True
        frontier = new[~terminal[new]]
    return live


def _check_terminated_flags(
    name: str,
    S: int,
    A: int,
    rows: NDArray[np.int64],
    nxt: NDArray[np.int64],
    terminated: NDArray[np.bool_],
    terminal: NDArray[np.bool_],
    indptr: NDArray[np.int64],
    m_nxt: NDArray[np.int64],
    mu0: NDArray[np.float64],
) -> None:
    """ValueError if a live state enters a terminal state with terminated=False (see the Notes above)."""
    suspect = np.flatnonzero(~terminated & terminal[nxt])
    if suspect.size == 0:
        return
    live = _live_states(S, A, indptr, m_nxt, mu0, terminal)
    bad = suspect[live[rows[suspect] // A]]
    if bad.size == 0:
        return
    e = int(bad[0])
    s, a, s_next = int(rows[e]) // A, int(rows[e]) % A, int(nxt[e])
    witness = int(np.flatnonzero(terminated & (nxt == s_next))[0])
    s2, a2 = int(rows[witness]) // A, int(rows[witness]) % A
    raise ValueError(
        f"env {name}: state {s_next} is entered with terminated=True (P[{s2}][{a2}]) but with "
        f"terminated=False from P[{s}][{a}], and state {s} is reachable from mu0; pgfast needs "
        "termination to be a property of the state entered"
    )


# -- FiniteMDP -> gymnasium ---------------------------------------------------------------------


def _row_cdf(indptr: NDArray[np.int64], prob: NDArray[np.float64]) -> NDArray[np.float64]:
    """Cumulative probabilities within each CSR row, summed left to right as a scalar loop would.

    Rows are processed by position (all rows at offset k together), so the Python loop runs
    max(row length) times and the total work is O(nnz).
    """
    cdf = np.array(prob, dtype=np.float64, copy=True)
    lengths = np.diff(indptr)
    if lengths.size == 0:
        return cdf
    order = np.argsort(-lengths, kind="stable")
    sorted_len = lengths[order]
    begins = indptr[:-1][order]
    for k in range(1, int(sorted_len[0])):
        n_rows = int(np.searchsorted(-sorted_len, -k, side="left"))  # rows with length > k
        pos = begins[:n_rows] + k
        cdf[pos] += cdf[pos - 1]
    return cdf


class FiniteMDPEnv(gymnasium.Env[np.int64, np.int64]):
    r"""A ``gymnasium.Env`` that simulates a :class:`pgfast.FiniteMDP` (``mdp.to_gymnasium()``).

    * ``observation_space = Discrete(S)``, ``action_space = Discrete(A)``; observations are
      ``np.int64`` (the element type of ``Discrete``).
    * ``reset(seed=None, options=None)`` draws :math:`s_0 \sim \mu_0` from ``self.np_random``
      and returns ``(s0, {"prob": mu0[s0]})``.
    * ``step(a)`` draws :math:`s' \sim P(\cdot|s, a)` and returns ``(s', R(s, a, s'),
      terminated, truncated, {"prob": P(s'|s, a)})`` with ``terminated = terminal[s']`` and
      ``truncated = (t >= horizon and not terminated)``, ``t`` the number of steps since the reset.
      Episodes therefore have the law of ``mdp.sample`` (see :doc:`/theory`, "The objective and the
      likelihood of a trajectory"), but not its random streams: use ``mdp.sample`` for batches,
      this class for gymnasium tooling.
    * After ``terminated`` or ``truncated``, and before the first ``reset``, ``step`` raises
      ``gymnasium.error.ResetNeeded``. Actions outside ``[0, A)`` raise ``ValueError``.
    * ``render_mode="ansi"``: ``render()`` returns one line, ``"t=3 s=5"``.

    The horizon is enforced here (no ``TimeLimit`` wrapper is needed). ``env.spec`` is set, so
    ``gymnasium.make(env.spec)`` builds another environment over the same MDP. ``env.mdp`` is
    the simulated MDP. Sampling a step costs O(log row length) after O(nnz) setup.
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, mdp: FiniteMDP, render_mode: str | None = None) -> None:
        if not isinstance(mdp, FiniteMDP):
            raise TypeError(f"mdp must be a pgfast.FiniteMDP, got {type(mdp).__name__}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.mdp = mdp
        self.render_mode = render_mode
        self.observation_space = spaces.Discrete(mdp.n_states)
        self.action_space = spaces.Discrete(mdp.n_actions)
        indptr, nxt, prob, reward = mdp.transitions
        self._n_actions = mdp.n_actions
        self._horizon = mdp.horizon
        self._indptr = indptr
        self._next = nxt
        self._prob = prob
        self._reward = reward
        self._terminal = mdp.terminal
        self._mu0 = mdp.mu0
        self._cdf = _row_cdf(indptr, prob)
        self._mu0_cdf = np.cumsum(self._mu0)
        self._state: int | None = None
        self._t = 0
        self._done = True
        self.spec = EnvSpec(
            id="pgfast/FiniteMDP-v0",
            entry_point=functools.partial(FiniteMDPEnv, mdp),
            kwargs={"render_mode": render_mode},
        )

    @property
    def state(self) -> int | None:
        """The current state (None before the first reset)."""
        return self._state

    @property
    def elapsed_steps(self) -> int:
        """Steps taken since the last reset."""
        return self._t

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.int64, dict[str, Any]]:
        r"""Start an episode: :math:`s_0 \sim \mu_0`; returns ``(s0, {"prob": mu0[s0]})``.

        ``seed`` reseeds ``self.np_random`` (gymnasium convention); ``options`` is ignored.
        """
        super().reset(seed=seed)
        cdf = self._mu0_cdf
        u = self.np_random.random() * cdf[-1]
        s0 = min(int(np.searchsorted(cdf, u, side="right")), cdf.size - 1)
        self._state, self._t, self._done = s0, 0, False
        return np.int64(s0), {"prob": float(self._mu0[s0])}

    def step(self, action: int | np.integer[Any]) -> tuple[np.int64, float, bool, bool, dict[str, Any]]:
        r"""Take action ``a`` in the current state ``s``: :math:`s' \sim P(\cdot|s, a)`.

        Returns ``(s', R(s, a, s'), terminated, truncated, {"prob": P(s'|s, a)})`` with
        ``terminated = terminal[s']`` and ``truncated = t >= horizon and not terminated``.
        """
        if self._state is None or self._done:
            raise gymnasium.error.ResetNeeded(
                "Cannot call step() before reset()"
                if self._state is None
                else "Cannot call step() after the episode ended (terminated or truncated); call reset()"
            )
        a = _as_action(action, self._n_actions)
        row = self._state * self._n_actions + a
        begin, end = int(self._indptr[row]), int(self._indptr[row + 1])
        cdf = self._cdf[begin:end]
        u = self.np_random.random() * cdf[-1]
        e = begin + min(int(np.searchsorted(cdf, u, side="right")), end - begin - 1)
        s_next = int(self._next[e])
        terminated = bool(self._terminal[s_next])
        self._t += 1
        truncated = self._t >= self._horizon and not terminated
        self._state = s_next
        self._done = terminated or truncated
        return np.int64(s_next), float(self._reward[e]), terminated, truncated, {"prob": float(self._prob[e])}

    def render(self) -> str | None:
        """``render_mode="ansi"``: one line ``"t=<steps> s=<state>"`` (``s=None`` before reset)."""
        if self.render_mode is None:
            gymnasium.logger.warn(
                "You are calling render method without specifying any render mode. "
                "You can specify the render_mode at initialization, e.g. mdp.to_gymnasium(render_mode='ansi')"
            )
            return None
        return f"t={self._t} s={self._state}"

    def __repr__(self) -> str:
        return f"FiniteMDPEnv({self.mdp!r})"


def _as_action(action: Any, n_actions: int) -> int:
    """``action`` as a Python int in [0, n_actions); ValueError naming it otherwise."""
    if isinstance(action, np.ndarray) and action.shape == ():
        action = action[()]
    if isinstance(action, (bool, np.bool_)) or not isinstance(action, (int, np.integer)):
        raise ValueError(f"action must be an integer in [0, {n_actions}), got {action!r}")
    a = int(action)
    if not 0 <= a < n_actions:
        raise ValueError(f"action {a} is not in the action space Discrete({n_actions})")
    return a
