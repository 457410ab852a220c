r"""Canonical finite MDPs of the policy-gradient literature, as ordinary :class:`pgfast.FiniteMDP` objects.

Each constructor names its source, and its docstring computes the optimal value with
:func:`pgfast.exact.optimal`. Where the literature starts gradient ascent from a poor policy, a
``*_bad_init`` function returns that starting ``theta`` of a :class:`pgfast.TabularSoftmax`.

- :func:`garnet`: Garnet random MDPs :math:`G(S, A, b)` (Archibald, McKinnon & Thomas 1995),
  seeded.
- :func:`chain`: a chain on which softmax policy gradient escapes a poor start one state at a
  time (after Li, Wei, Chi, Gu & Chen 2021), with :func:`chain_bad_init`.
- :func:`two_state`: the two-state MDPs of the value-function polytope (Dadashi, Taïga, Le Roux,
  Schuurmans & Bellemare 2019).
- :func:`short_corridor`: the short corridor with switched actions (Sutton & Barto 2018, Example
  13.1), with :func:`short_corridor_policy` for its state-blind policies.
- :func:`bandit`: a multi-armed bandit as a one-state MDP.
- :func:`cliff_grid`: the cliff-walking grid world (Sutton & Barto 2018, Example 6.6).

Pure NumPy: building an instance needs neither gymnasium nor the compiled sampler.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._mdp import FiniteMDP
from ._policy import LinearSoftmax
from ._validation import as_float, as_float_array, as_int, as_seed, require_finite

__all__ = [
    "TWO_STATE_EXAMPLES",
    "bandit",
    "chain",
    "chain_bad_init",
    "cliff_grid",
    "garnet",
    "short_corridor",
    "short_corridor_policy",
    "two_state",
]

_MAX_GARNET_ENTRIES = 2**27  # dense (S, A, S) float64 tables of at most 1 GiB


def _probability(x: Any, name: str) -> float:
    v = as_float(x, name)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {v}")
    return v


def _discount(gamma: Any) -> float:
    return _probability(gamma, "gamma")


# -- Garnet ------------------------------------------------------------------------------------


def garnet(
    n_states: int,
    n_actions: int,
    branching: int,
    *,
    seed: int,
    horizon: int = 100,
    gamma: float = 0.9,
) -> FiniteMDP:
    r"""A Garnet random MDP :math:`G(S, A, b)` ("generic average reward non-stationary environment
    test-bench"; Archibald, McKinnon & Thomas 1995, in the form of Bhatnagar, Sutton, Ghavamzadeh
    & Lee 2009).

    Every pair :math:`(s, a)` has ``branching`` = b distinct successors drawn uniformly without
    replacement; their probabilities are the gaps between b - 1 sorted uniform cut points of
    [0, 1] (a uniform point of the simplex). Rewards are the common state-reward variant: each
    state draws :math:`u_s \sim U(0, 1)` and :math:`R(s, a) = u_s` for every action. No state is
    terminal and :math:`\mu_0` is uniform.

    Seeding is counter-based: the row of state s comes from the stream
    ``numpy.random.SeedSequence(seed, spawn_key=(0, s))`` (a Philox generator), the rewards from
    ``spawn_key=(1,)``. The same ``seed`` gives the same MDP on every machine; state s's
    transitions do not depend on the other states' draws, and the first A' actions of an
    instance with A > A' actions are the instance with A' actions.

    Parameters
    ----------
    n_states : int >= 1
        Number of states S.
    n_actions : int >= 1
        Number of actions A.
    branching : int in [1, S]
        Successors per state-action pair b.
    seed : int in [0, 2**64)
        The seed (keyword-only, required).
    horizon : int >= 1
        Episode length of the finite-horizon objective (default 100).
    gamma : float in [0, 1]
        Discount factor (default 0.9).

    Returns
    -------
    FiniteMDP
        S states, A actions, S * A * b transitions.

    Raises
    ------
    TypeError
        A non-integer size or seed, a non-numeric ``gamma``.
    ValueError
        Sizes below 1, ``branching`` above ``n_states``, a bad seed, horizon or gamma.
    MemoryError
        More than 2**27 dense entries S * A * S.

    Examples
    --------
    >>> mdp = pg.envs.garnet(10, 3, 2, seed=0)
    >>> mdp
    FiniteMDP(n_states=10, n_actions=3, nnz=60, horizon=100, gamma=0.9, terminal=0)
    >>> bool(np.allclose(mdp.P.sum(axis=2), 1.0)), bool(np.array_equal(mdp.P, pg.envs.garnet(10, 3, 2, seed=0).P))
    (True, True)
    >>> best = pg.exact.optimal(mdp, "discounted")
    >>> round(best.value, 4)
    6.4147
    """
    S = as_int(n_states, "n_states", minimum=1)
    A = as_int(n_actions, "n_actions", minimum=1)
    b = as_int(branching, "branching", minimum=1)
    if b > S:
        raise ValueError(f"branching must be at most n_states = {S}, got {b}")
    if seed is None:
        raise TypeError("seed must be an integer (a Garnet instance is named by its seed), got None")
    key = as_seed(seed)
    if S * A * S > _MAX_GARNET_ENTRIES:
        raise MemoryError(
            f"garnet: a dense (S, A, S) = ({S}, {A}, {S}) table needs {S * A * S * 8} bytes; "
            f"at most {_MAX_GARNET_ENTRIES} entries are built"
        )
    P = np.zeros((S, A, S))
    for s in range(S):
        rng = np.random.Generator(np.random.Philox(np.random.SeedSequence(key, spawn_key=(0, s))))
        for a in range(A):
            nxt = rng.choice(S, size=b, replace=False)
            cuts = np.sort(rng.random(b - 1))
            P[s, a, nxt] = np.diff(np.concatenate(([0.0], cuts, [1.0])))
    P /= P.sum(axis=2, keepdims=True)  # the gaps sum to 1 up to rounding
    rng = np.random.Generator(np.random.Philox(np.random.SeedSequence(key, spawn_key=(1,))))
    u = rng.random(S)
    R = np.repeat(u[:, None], A, axis=1)
    return FiniteMDP(P, R, np.full(S, 1.0 / S), horizon=horizon, gamma=_discount(gamma))


# -- The chain -----------------------------------------------------------------------------------


def chain(n: int = 6, *, gamma: float = 0.9, horizon: int = 100) -> FiniteMDP:
    r"""A chain on which softmax policy gradient escapes a poor start one state at a time.

    After Li, Wei, Chi, Gu & Chen (2021), "Softmax policy gradient methods can take exponential
    time to converge". Not their MDP (three actions per state, built so that even a benign start
    takes exponential time), but the mechanism it rests on, in its smallest form: a cascade, in
    which a state's optimal action only starts to look good once the states it leads to have
    learned theirs, so that a poor start is escaped one state at a time. Here: positions :math:`k = 1, \dots, n`
    (state ``k - 1``) and a terminal state ``n``. In position k, action 0 ("advance") moves to
    position k - 1 with reward 0, and from position 1 enters the terminal state with reward 1;
    action 1 ("quit") enters the terminal state with reward
    :math:`r_k = \frac{k}{k+1}\gamma^{k-1}`. :math:`\mu_0` is uniform over the n positions.

    Advancing everywhere is optimal, :math:`V^*(k) = \gamma^{k-1} > r_k`, but quitting beats
    advancing into a position that quits, :math:`r_k > \gamma r_{k-1}`: from
    :func:`chain_bad_init` (every position quits with high probability) the advantage of
    advancing in position k stays negative until position k - 1 has learned to advance, and
    exact gradient ascent takes many times more steps than from the uniform policy (the test
    suite measures it). The optimum, discounted from :math:`\mu_0`:
    :math:`J^* = \frac1n \sum_{k=1}^n \gamma^{k-1}`.

    The slowdown grows polynomially with n, not exponentially. At :math:`\gamma = 0.9` and step
    size 1, exact softmax gradient ascent from :func:`chain_bad_init` reaches
    :math:`J^* - J \le 0.01` after 120, 481, 1351, 3055, 5960 and 10457 iterations for
    n = 1, ..., 6: a low power of n (local log-log slopes 2.0 to 3.1), the ratio between
    consecutive lengths falling from 4 to 1.75. From the uniform policy it takes 56 to 570
    iterations, and the natural policy gradient (step size 0.1) from the poor start 16 to 218.
    Li et al.'s bound, :math:`\frac1\eta |\mathcal S|^{2^{\Omega(1/(1-\gamma))}}` iterations
    from the uniform policy, is exponential in the effective horizon :math:`1/(1-\gamma)` and
    holds on their own MDP, for :math:`\gamma` above a universal constant and at least
    :math:`C (1-\gamma)^{-6}` states; this chain is not that instance.

    Parameters
    ----------
    n : int >= 1
        Number of positions (default 6); the MDP has n + 1 states.
    gamma : float in (0, 1]
        Discount factor (default 0.9).
    horizon : int >= 1
        Episode length of the finite-horizon objective (default 100; at least n reaches the goal
        from every position).

    Returns
    -------
    FiniteMDP
        n + 1 states (the last terminal), 2 actions.

    Raises
    ------
    TypeError
        A non-integer ``n`` or ``horizon``, a non-numeric ``gamma``.
    ValueError
        ``n`` or ``horizon`` below 1, ``gamma`` outside (0, 1].

    Examples
    --------
    >>> mdp = pg.envs.chain(4, gamma=0.9)
    >>> mdp
    FiniteMDP(n_states=5, n_actions=2, nnz=10, horizon=100, gamma=0.9, terminal=1)
    >>> best = pg.exact.optimal(mdp, "discounted")
    >>> best.actions[:4], round(best.value, 6), round(float(np.mean(0.9 ** np.arange(4))), 6)
    (array([0, 0, 0, 0], dtype=int32), 0.85975, 0.85975)
    """
    n = as_int(n, "n", minimum=1)
    g = _discount(gamma)
    if g == 0.0:
        raise ValueError("gamma must be in (0, 1], got 0.0")
    S = n + 1
    P = np.zeros((S, 2, S))
    R = np.zeros((S, 2))
    for k in range(1, n + 1):
        s = k - 1
        P[s, 0, s - 1 if k > 1 else n] = 1.0
        R[s, 0] = 1.0 if k == 1 else 0.0
        P[s, 1, n] = 1.0
        R[s, 1] = k / (k + 1) * g ** (k - 1)
    P[n, :, n] = 1.0
    mu0 = np.append(np.full(n, 1.0 / n), 0.0)
    terminal = np.zeros(S, dtype=bool)
    terminal[n] = True
    return FiniteMDP(P, R, mu0, horizon=horizon, gamma=g, terminal=terminal)


def chain_bad_init(n: int = 6, strength: float = 4.0) -> NDArray[np.float64]:
    r"""The poor start of :func:`chain`: ``theta`` of a ``TabularSoftmax(n + 1, 2)`` preferring "quit".

    ``theta[s] = (0, strength)`` on the n positions, so :math:`\pi(\text{advance}|s) =
    1 / (1 + e^{\text{strength}})` (0.018 by default); zeros on the terminal state.

    Parameters
    ----------
    n : int >= 1
        Number of positions of the chain.
    strength : float >= 0
        Logit of "quit" over "advance" (default 4).

    Returns
    -------
    ndarray of float64, shape (n + 1, 2)

    Raises
    ------
    TypeError
        A non-integer ``n`` or a non-numeric ``strength``.
    ValueError
        ``n`` below 1, or ``strength`` negative or not finite.

    Examples
    --------
    >>> theta = pg.envs.chain_bad_init(3)
    >>> pi = pg.TabularSoftmax(4, 2, theta=theta)
    >>> pi.probs()[:3, 0].round(4)  # the probability of advancing
    array([0.018, 0.018, 0.018])
    """
    n = as_int(n, "n", minimum=1)
    c = as_float(strength, "strength")
    if not (np.isfinite(c) and c >= 0.0):
        raise ValueError(f"strength must be finite and >= 0, got {c}")
    theta = np.zeros((n + 1, 2))
    theta[:n, 1] = c
    return theta


# -- Two-state MDPs of the value-function polytope ------------------------------------------------

#: The example MDPs of Dadashi et al. (2019), "The value function polytope in reinforcement
#: learning", by the figure that draws them: ``name -> (P, r, gamma)`` with the rows of ``P`` (each a
#: distribution over the two states) and the rewards ``r`` in the paper's order, row ``s * A + a``
#: for state s and action a. Figure 2 (a)-(d) shows the polytopes of four MDPs, "3" is the
#: three-action MDP of Figures 3 to 6 (left), whose right panels use "2d" again, as does the paper's
#: study of the paths of policy-search methods.
TWO_STATE_EXAMPLES: dict[str, tuple[tuple[tuple[float, float], ...], tuple[float, ...], float]] = {
    "2a": (((0.01, 0.99), (0.92, 0.08), (0.08, 0.92), (0.70, 0.30)), (0.06, 0.38, -0.13, 0.64), 0.9),
    "2b": (((0.96, 0.04), (0.19, 0.81), (0.43, 0.57), (0.72, 0.28)), (0.88, -0.02, -0.98, 0.42), 0.9),
    "2c": (((0.52, 0.48), (0.5, 0.5), (0.99, 0.01), (0.85, 0.15), (0.11, 0.89), (0.1, 0.9)),
           (-0.93, -0.49, 0.63, 0.78, 0.14, 0.41), 0.9),
    "2d": (((0.7, 0.3), (0.99, 0.01), (0.2, 0.8), (0.99, 0.01)), (-0.45, -0.1, 0.5, 0.5), 0.9),
    "3": (((0.9, 0.1), (0.2, 0.8), (0.7, 0.3), (0.05, 0.95), (0.25, 0.75), (0.3, 0.7)),
          (-0.1, -1.0, 0.1, 0.4, 1.5, 0.1), 0.8),
}


def two_state(
    P: ArrayLike | None = None,
    r: ArrayLike | None = None,
    *,
    example: str = "2d",
    gamma: float | None = None,
    horizon: int = 100,
) -> FiniteMDP:
    r"""A two-state MDP of the value-function polytope paper (Dadashi, Taïga, Le Roux, Schuurmans &
    Bellemare 2019, "The value function polytope in reinforcement learning").

    The set of value vectors :math:`(V^\pi(0), V^\pi(1))` of all policies of a two-state MDP is
    a polytope in the plane; the paper draws it for small examples given by ``P`` (rows
    :math:`(s, a)` in the order (0, 0), (0, 1), (1, 0), ...; each row a distribution over the two
    states) and rewards ``r`` in the same order. ``example`` picks one of the paper's MDPs,
    :data:`TWO_STATE_EXAMPLES`, when ``P`` and ``r`` are not given; :math:`\mu_0` is uniform.

    Parameters
    ----------
    P : array_like (2 A, 2), optional
        Transition rows :math:`P(\cdot|s, a)` in the order (s, a) = (0, 0), (0, 1), ..., (1, A-1).
    r : array_like (2 A,), optional
        Rewards :math:`r(s, a)` in the same order (given together with ``P``).
    example : {"2a", "2b", "2c", "2d", "3"}
        A key of :data:`TWO_STATE_EXAMPLES` (default ``"2d"``), used when ``P`` and ``r`` are None.
    gamma : float in [0, 1], optional
        Discount factor (default: the example's, 0.9 or 0.8; 0.9 with ``P`` and ``r``).
    horizon : int >= 1
        Episode length of the finite-horizon objective (default 100).

    Returns
    -------
    FiniteMDP
        2 states, A actions (2 or 3 in the examples), no terminal state.

    Raises
    ------
    TypeError
        Non-numeric arrays, an ``example`` that is not a string.
    ValueError
        Only one of ``P`` and ``r``, shapes that do not match, rows that are not distributions,
        an unknown ``example``, a bad gamma or horizon.

    Examples
    --------
    >>> mdp = pg.envs.two_state()
    >>> mdp.P[0]  # P(.|0, a) for a = 0, 1
    array([[0.7 , 0.3 ],
           [0.99, 0.01]])
    >>> best = pg.exact.optimal(mdp, "discounted")
    >>> best.actions, best.state_values.round(4)
    (array([0, 0], dtype=int32), array([0.1636, 1.8909]))
    """
    if (P is None) != (r is None):
        raise ValueError("P and r: give both (the rows of a two-state MDP) or neither (an example)")
    if P is None:
        if not isinstance(example, str):
            raise TypeError(f"example must be a string (a key of TWO_STATE_EXAMPLES), got {type(example).__name__}")
        if example not in TWO_STATE_EXAMPLES:
            raise ValueError(f"example must be one of {sorted(TWO_STATE_EXAMPLES)}, got {example!r}")
        rows, rewards, g0 = TWO_STATE_EXAMPLES[example]
        Pm, rv = np.array(rows), np.array(rewards)
    else:
        Pm = as_float_array(P, "P", ndim=2)
        rv = as_float_array(r, "r", ndim=1)
        g0 = 0.9
        if Pm.shape[1] != 2 or Pm.shape[0] < 2 or Pm.shape[0] % 2:
            raise ValueError(f"P must have shape (2 A, 2) with A >= 1, got {Pm.shape}")
        if rv.shape != (Pm.shape[0],):
            raise ValueError(f"r must have shape (2 A,) = ({Pm.shape[0]},) like the rows of P, got {rv.shape}")
        require_finite(rv, "r")
    A = Pm.shape[0] // 2
    g = g0 if gamma is None else _discount(gamma)
    return FiniteMDP(Pm.reshape(2, A, 2), rv.reshape(2, A), [0.5, 0.5], horizon=horizon, gamma=g)


# -- The short corridor with switched actions ------------------------------------------------------


def short_corridor(*, horizon: int = 1000, gamma: float = 1.0) -> FiniteMDP:
    r"""The short corridor with switched actions (Sutton & Barto 2018, Example 13.1).

    Four states in a row: 0 (the start), 1, 2 and the terminal goal 3; actions 0 = left and
    1 = right, reward -1 per step. Left in state 0 stays there. In state 1 the actions are
    switched: right moves left (to 0) and left moves right (to 2).

    The example's point needs a policy that cannot tell the states apart (all states look alike
    to its features): the best such policy goes right with probability
    :math:`p^* = 2 - \sqrt 2 \approx 0.586` (value :math:`\approx -11.6`), while any deterministic
    one never arrives. :func:`short_corridor_policy` builds those state-blind policies. The
    tabular optimum sees the states and reaches the goal in 3 steps (J* = -3).

    Parameters
    ----------
    horizon : int >= 1
        Episode cap of the finite-horizon objective (default 1000: near :math:`p^*` truncation
        changes the value by less than 1e-13; policies close to deterministic need longer).
    gamma : float in [0, 1]
        Discount factor (default 1, the book's undiscounted episodic task).

    Returns
    -------
    FiniteMDP
        4 states (state 3 terminal), 2 actions, start state 0.

    Raises
    ------
    TypeError, ValueError
        A bad ``horizon`` or ``gamma``.

    Examples
    --------
    >>> mdp = pg.envs.short_corridor()
    >>> pg.exact.optimal(mdp).value  # a policy that sees the states
    -3.0
    >>> p = 2 - np.sqrt(2)
    >>> round(pg.exact.evaluate(mdp, pg.envs.short_corridor_policy(p)).value, 4)
    -11.6569
    """
    P = np.zeros((4, 2, 4))
    P[0, 0, 0] = P[0, 1, 1] = 1.0
    P[1, 0, 2] = P[1, 1, 0] = 1.0  # switched
    P[2, 0, 1] = P[2, 1, 3] = 1.0
    P[3, :, 3] = 1.0
    R = np.full((4, 2), -1.0)
    R[3] = 0.0
    return FiniteMDP(P, R, [1.0, 0.0, 0.0, 0.0], horizon=horizon, gamma=_discount(gamma),
                     terminal=[False, False, False, True])


def short_corridor_policy(p_right: float = 0.5) -> LinearSoftmax:
    r"""A state-blind policy of :func:`short_corridor`: the same action probabilities in every state.

    A :class:`pgfast.LinearSoftmax` with features :math:`\phi(s, a) = e_a` (one-hot in the action,
    identical for every state) and :math:`\theta = (0, \log\frac{p}{1-p})`, so
    :math:`\pi(\text{right}|s) = p` everywhere. Gradient ascent on its ``theta`` searches the
    book's policy class and finds :math:`p^* = 2 - \sqrt 2`.

    Parameters
    ----------
    p_right : float in (0, 1)
        Probability of going right (default 0.5).

    Returns
    -------
    LinearSoftmax
        Features of shape (4, 2, 2).

    Raises
    ------
    TypeError
        A non-numeric ``p_right``.
    ValueError
        ``p_right`` outside (0, 1).

    Examples
    --------
    >>> pi = pg.envs.short_corridor_policy(0.25)
    >>> pi.probs()
    array([[0.75, 0.25],
           [0.75, 0.25],
           [0.75, 0.25],
           [0.75, 0.25]])
    """
    p = as_float(p_right, "p_right")
    if not 0.0 < p < 1.0:
        raise ValueError(f"p_right must be in (0, 1), got {p}")
    phi = np.zeros((4, 2, 2))
    phi[:, 0, 0] = phi[:, 1, 1] = 1.0
    return LinearSoftmax(phi, theta=[0.0, np.log(p / (1.0 - p))])


# -- Bandit ------------------------------------------------------------------------------------------


def bandit(means: ArrayLike, *, horizon: int = 1, gamma: float = 1.0) -> FiniteMDP:
    r"""A multi-armed bandit as a one-state MDP: action a earns ``means[a]`` and returns to the state.

    Rewards are the means themselves (a FiniteMDP's reward is a function of the transition), so
    the sampled and exact values agree. With the default ``horizon=1``, :math:`J(\pi) = \pi^\top
    \text{means}` (the bandit objective of Mei, Xiao, Szepesvári & Schuurmans 2020); the
    discounted objective is :math:`\pi^\top \text{means} / (1 - \gamma)`.

    Parameters
    ----------
    means : array_like (A,)
        The arms' rewards, finite, A >= 1.
    horizon : int >= 1
        Pulls per episode (default 1).
    gamma : float in [0, 1]
        Discount factor (default 1).

    Returns
    -------
    FiniteMDP
        1 state, A actions.

    Raises
    ------
    TypeError
        Non-numeric ``means``.
    ValueError
        ``means`` not 1-D, empty or not finite; a bad horizon or gamma.

    Examples
    --------
    >>> mdp = pg.envs.bandit([0.2, 0.5, 0.3])
    >>> pg.exact.optimal(mdp).value, pg.exact.evaluate(mdp, pg.TabularSoftmax(1, 3)).value
    (0.5, 0.3333333333333333)
    """
    m = as_float_array(means, "means", ndim=1)
    if m.size < 1:
        raise ValueError("means must have at least one arm, got shape (0,)")
    require_finite(m, "means")
    A = m.size
    return FiniteMDP(np.ones((1, A, 1)), m[None, :], [1.0], horizon=horizon, gamma=_discount(gamma))


# -- Cliff walking ---------------------------------------------------------------------------------

_MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))  # up, right, down, left (gymnasium's CliffWalking order)


def cliff_grid(
    rows: int = 4,
    cols: int = 12,
    *,
    cliff_reward: float = -100.0,
    horizon: int = 100,
    gamma: float = 1.0,
) -> tuple[FiniteMDP, tuple[int, int]]:
    r"""The cliff-walking grid world (Sutton & Barto 2018, Example 6.6), deterministic.

    A ``rows`` x ``cols`` grid, state ``r * cols + c`` for the cell in row r (0 at the top) and
    column c. The start is the bottom-left cell, the goal (terminal) the bottom-right one, and
    the cells between them on the bottom row are the cliff. Actions 0 up, 1 right, 2 down,
    3 left (as gymnasium's ``CliffWalking``); a move off the grid stays put. Every step earns -1;
    stepping into the cliff earns ``cliff_reward`` (-100) and sends the agent back to the start.
    Cliff cells are never occupied. The optimal path walks along the cliff's edge:
    ``cols + 1`` steps, J* = -(cols + 1) undiscounted.

    Parameters
    ----------
    rows : int >= 2
        Grid height (default 4).
    cols : int >= 3
        Grid width (default 12; at least one cliff cell).
    cliff_reward : float
        Reward of stepping into the cliff (default -100).
    horizon : int >= 1
        Episode cap (default 100).
    gamma : float in [0, 1]
        Discount factor (default 1).

    Returns
    -------
    mdp : FiniteMDP
        ``rows * cols`` states, 4 actions, the goal terminal, :math:`\mu_0` on the start.
    shape : tuple of int
        ``(rows, cols)``: ``V.reshape(shape)`` lays state values over the grid.

    Raises
    ------
    TypeError
        Non-integer sizes, a non-numeric reward.
    ValueError
        ``rows`` below 2 or ``cols`` below 3, a reward that is not finite, a bad horizon or gamma.

    Examples
    --------
    >>> mdp, shape = pg.envs.cliff_grid()
    >>> mdp, shape
    (FiniteMDP(n_states=48, n_actions=4, nnz=192, horizon=100, gamma=1.0, terminal=1), (4, 12))
    >>> pg.exact.optimal(mdp).value  # 13 steps along the edge
    -13.0
    """
    nr = as_int(rows, "rows", minimum=2)
    nc = as_int(cols, "cols", minimum=3)
    cr = as_float(cliff_reward, "cliff_reward")
    if not np.isfinite(cr):
        raise ValueError(f"cliff_reward must be finite, got {cr}")
    S = nr * nc
    start, goal = (nr - 1) * nc, S - 1
    cliff = set(range(start + 1, goal))
    P = np.zeros((S, 4, S))
    R = np.full((S, 4), -1.0)
    for s in range(S):
        r, c = divmod(s, nc)
        for a, (dr, dc) in enumerate(_MOVES):
            nxt = min(max(r + dr, 0), nr - 1) * nc + min(max(c + dc, 0), nc - 1)
            if nxt in cliff:
                nxt = start
                R[s, a] = cr
            P[s, a, nxt] = 1.0
    mu0 = np.zeros(S)
    mu0[start] = 1.0
    terminal = np.zeros(S, dtype=bool)
    terminal[goal] = True
    return FiniteMDP(P, R, mu0, horizon=horizon, gamma=_discount(gamma), terminal=terminal), (nr, nc)
