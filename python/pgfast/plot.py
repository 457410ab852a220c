r"""Pictures of finite MDPs and of policy optimisation (matplotlib, optional: ``pip install "pgfast[plot]"``).

- :func:`polytope`: the value-function polytope of a two-state MDP (Dadashi, Taïga, Le Roux,
  Schuurmans & Bellemare 2019), with the paths that optimizers take across it.
- :func:`policy_map`: a grid world's policy as arrows over a heat map of its exact state values.
- :func:`gap`: the sub-optimality gap :math:`J^* - J_t` of several runs on log-log axes.

Every function validates its inputs (``TypeError`` / ``ValueError`` naming the argument), draws
on ``ax`` (a new figure's axes when None) and returns the axes. The values drawn are exact
(:func:`pgfast.exact.evaluate`). ``import pgfast`` does not import matplotlib: each function
imports it when called and raises ``ImportError`` without it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import exact
from ._mdp import FiniteMDP
from ._policy import SoftmaxPolicy, TabularSoftmax
from ._validation import as_float, as_float_array, as_gamma, as_int, check_allocation, require_finite, require_instance

__all__ = ["gap", "policy_map", "polytope"]

_SUM_TOLERANCE = 1e-8  # rows of a probability table sum to 1 within this (as the rows of P)
_ZERO_LOGIT = -1e4  # a logit whose softmax weight is exactly 0 next to a row maximum >= log(1 / A)
_ARROW = 0.45  # the length of an action's arrow at probability 1, in cells
_MIN_ARROW_PROB = 0.01  # arrows of rarer actions are not drawn

_DIRECTIONS = {"up": (-1.0, 0.0), "down": (1.0, 0.0), "left": (0.0, -1.0), "right": (0.0, 1.0)}
_GRID_ACTIONS = ("up", "right", "down", "left")  # pg.envs.cliff_grid and gymnasium's CliffWalking


def _pyplot(caller: str) -> Any:
    """matplotlib.pyplot, or an ImportError that says how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(f'pgfast.plot.{caller} needs matplotlib: pip install "pgfast[plot]" (or pip install matplotlib)') from None
    return plt


def _axes(ax: Any, caller: str) -> Any:
    """``ax``, or a new figure's axes when None; TypeError for anything that is not an Axes."""
    plt = _pyplot(caller)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4.5))
        return ax
    from matplotlib.axes import Axes

    require_instance(ax, Axes, "ax", "a matplotlib Axes (or None for a new figure)")
    return ax


def _probability_tables(x: Any, name: str, shape: tuple[int, ...]) -> NDArray[np.float64]:
    """Probability tables of the given shape (the last axis over actions): finite, >= 0, each row
    summing to 1 within 1e-8."""
    p = as_float_array(x, name)
    if p.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {p.shape}")
    require_finite(p, name)
    if p.size and p.min() < 0.0:
        raise ValueError(f"{name} must be probabilities (>= 0), found {p.min()!r}")
    sums = p.sum(axis=-1)
    bad = np.abs(sums - 1.0) > _SUM_TOLERANCE
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name}: each row over the actions must sum to 1 (within {_SUM_TOLERANCE:g}), row {where} sums to {sums[where]!r}")
    return p


def _set_table(policy: TabularSoftmax, probs: NDArray[np.float64]) -> None:
    """Point a tabular softmax at the probability table ``probs`` (S, A): theta = log(probs), and
    a logit whose weight is exactly 0 for the zero entries."""
    with np.errstate(divide="ignore"):
        policy.theta = np.where(probs > 0.0, np.log(probs), _ZERO_LOGIT)


def _values(mdp: FiniteMDP, policy: SoftmaxPolicy, objective: exact.Objective, gamma: float) -> NDArray[np.float64]:
    """The exact state values (S,) of ``policy``: V_0 for the finite horizon."""
    V = exact.evaluate(mdp, policy, objective, gamma=gamma).state_values
    return V[0] if V.ndim == 2 else V


def _discount_below_one(mdp: FiniteMDP, gamma: Any, caller: str) -> float:
    g = as_gamma(gamma, mdp.gamma)
    if not g < 1.0:
        source = " (the MDP's)" if gamma is None else ""
        raise ValueError(f"gamma must be < 1 for {caller} (discounted values), got gamma = {g}{source}: pass gamma=0.9, say")
    return g


def _mapping(x: Any, name: str) -> list[tuple[str, Any]]:
    if not isinstance(x, Mapping):
        raise TypeError(f"{name} must be a mapping of labels to arrays (a dict), got {type(x).__name__}")
    for label in x:
        if not isinstance(label, str):
            raise TypeError(f"{name}: the labels must be strings, got {label!r}")
    return list(x.items())


# -- The value-function polytope ------------------------------------------------------------------


def polytope(
    mdp: FiniteMDP,
    *,
    paths: Mapping[str, ArrayLike] | None = None,
    gamma: float | None = None,
    n_policies: int = 2000,
    seed: int | np.random.Generator = 0,
    ax: Any = None,
) -> Any:
    r"""The value-function polytope of a two-state MDP (Dadashi, Taïga, Le Roux, Schuurmans &
    Bellemare 2019), with paths across it.

    The value vectors :math:`(V^\pi(0), V^\pi(1))` of all policies of a two-state MDP fill a
    polytope in the plane (discounted values, :math:`(I - \gamma P_\pi) V^\pi = r_\pi`, exact by
    :func:`pgfast.exact.evaluate`). The picture scatters them for ``n_policies`` random policies,
    each row :math:`\pi(\cdot|s)` drawn uniformly from the simplex
    (``np.random.default_rng(seed).dirichlet(np.ones(A), size=(n_policies, 2))``, label
    ``"random policies"``), marks the :math:`A^2` deterministic policies (label
    ``"deterministic policies"``, in the order ``itertools.product(range(A), repeat=2)``), and
    draws each path as a line from a circle (its start) to a star (its end), with a legend.

    Parameters
    ----------
    mdp : FiniteMDP
        Two states, any number of actions A (e.g. :func:`pgfast.envs.two_state`).
    paths : mapping of str to array_like, optional
        Label -> the iterates of a run: either policies, probability tables of shape (T, 2, A)
        (their values are computed exactly), or value points of shape (T, 2); T >= 1.
    gamma : float in [0, 1), optional
        Discount factor (default ``mdp.gamma``, which must then be below 1).
    n_policies : int >= 0
        Random policies scattered (default 2000).
    seed : int or numpy.random.Generator
        Seed of the random policies (default 0), or a generator to draw them from.
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new figure's axes).

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on: the scatters are its ``collections``, each path a line labelled with
        its key (``xdata`` = :math:`V(0)`, ``ydata`` = :math:`V(1)`).

    Raises
    ------
    TypeError
        ``mdp`` not a FiniteMDP, ``paths`` not a mapping (or a label not a string), a non-numeric
        path, a bad seed or ``ax``.
    ValueError
        An MDP without exactly two states, gamma not below 1, paths of other shapes or whose
        rows are not distributions, a negative ``n_policies``.
    ImportError
        matplotlib is not installed.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> mdp = pg.envs.two_state()  # the paper's example (2d): 2 actions, gamma = 0.9
    >>> pi, opt = pg.TabularSoftmax(2, 2), pg.optim.GradientAscent(lr=0.5)
    >>> probs = []
    >>> for _ in range(50):
    ...     probs.append(pi.probs())
    ...     _ = opt.step(pi, pg.exact.gradient(mdp, pi, "discounted"))
    >>> ax = pg.plot.polytope(mdp, paths={"gradient ascent": np.array(probs)}, n_policies=500)
    >>> [c.get_label() for c in ax.collections]
    ['random policies', 'deterministic policies']
    >>> line = ax.get_lines()[0]
    >>> line.get_label(), line.get_xdata().shape
    ('gradient ascent', (50,))
    >>> plt.close(ax.figure)
    """
    require_instance(mdp, FiniteMDP, "mdp", "a pgfast.FiniteMDP")
    if mdp.n_states != 2:
        raise ValueError(f"mdp must have 2 states (the polytope is drawn in the plane), got {mdp.n_states}")
    g = _discount_below_one(mdp, gamma, "polytope")
    n = as_int(n_policies, "n_policies", minimum=0)
    check_allocation(8 * n * 2 * (mdp.n_actions + 1), f"the table of n_policies={n} random policies",
                     "use a smaller n_policies")
    if isinstance(seed, np.random.Generator):
        rng = seed
    else:
        rng = np.random.default_rng(as_int(seed, "seed", minimum=0))
    A = mdp.n_actions
    curves: list[tuple[str, NDArray[np.float64]]] = []
    pi = TabularSoftmax(2, A)
    for label, path in _mapping(paths, "paths") if paths is not None else []:
        name = f"paths[{label!r}]"
        arr = as_float_array(path, name, ndim=(2, 3))
        if arr.ndim == 3:
            tables = _probability_tables(arr, name, (arr.shape[0], 2, A))
            points = np.empty((tables.shape[0], 2))
            for t, table in enumerate(tables):
                _set_table(pi, table)
                points[t] = _values(mdp, pi, "discounted", g)
        else:
            if arr.shape[1] != 2:
                raise ValueError(f"{name} must have shape (T, 2, A) = (T, 2, {A}) (policies) or (T, 2) (values), got {arr.shape}")
            require_finite(arr, name)
            points = arr
        if points.shape[0] < 1:
            raise ValueError(f"{name} must hold at least one iterate, got shape {arr.shape}")
        curves.append((label, points))
    ax = _axes(ax, "polytope")

    random = np.empty((n, 2))
    for k, table in enumerate(rng.dirichlet(np.ones(A), size=(n, 2))):
        _set_table(pi, table)
        random[k] = _values(mdp, pi, "discounted", g)
    corners = np.empty((A * A, 2))
    for k, actions in enumerate(itertools.product(range(A), repeat=2)):
        _set_table(pi, np.eye(A)[list(actions)])
        corners[k] = _values(mdp, pi, "discounted", g)
    ax.scatter(random[:, 0], random[:, 1], s=4, color="0.6", alpha=0.5, linewidths=0, label="random policies")
    ax.scatter(corners[:, 0], corners[:, 1], s=30, color="k", marker="D", label="deterministic policies", zorder=3)
    for label, points in curves:
        (line,) = ax.plot(points[:, 0], points[:, 1], lw=1.5, label=label, zorder=4)
        c = line.get_color()
        ax.plot(points[:1, 0], points[:1, 1], "o", color=c, ms=6, label="_nolegend_", zorder=5)
        ax.plot(points[-1:, 0], points[-1:, 1], "*", color=c, ms=11, label="_nolegend_", zorder=5)
    ax.set_xlabel(r"$V^\pi(0)$")
    ax.set_ylabel(r"$V^\pi(1)$")
    ax.legend(fontsize="small")
    return ax


# -- A grid world's policy ------------------------------------------------------------------------


def _directions(actions: Any, A: int) -> NDArray[np.float64]:
    """(A, 2) moves (d_row, d_col) from direction names or pairs."""
    if isinstance(actions, str) or not isinstance(actions, Sequence):
        raise TypeError(f"actions must be a sequence of A = {A} directions (names such as 'up' or (d_row, d_col) pairs), got {type(actions).__name__}")
    if len(actions) != A:
        raise ValueError(f"actions must name one direction per action, A = {A}, got {len(actions)}")
    out = np.empty((A, 2))
    for a, d in enumerate(actions):
        if isinstance(d, str):
            if d not in _DIRECTIONS:
                raise ValueError(f"actions[{a}] must be one of {sorted(_DIRECTIONS)} or a (d_row, d_col) pair, got {d!r}")
            out[a] = _DIRECTIONS[d]
        else:
            v = as_float_array(d, f"actions[{a}]", ndim=1)
            if v.shape != (2,):
                raise ValueError(f"actions[{a}] must be a (d_row, d_col) pair, got shape {v.shape}")
            require_finite(v, f"actions[{a}]")
            out[a] = v
    norms = np.hypot(out[:, 0], out[:, 1])
    return np.divide(out, norms[:, None], out=np.zeros_like(out), where=norms[:, None] > 0)


def _grid_shape(shape: Any, S: int) -> tuple[int, int]:
    if isinstance(shape, str) or not isinstance(shape, Sequence) or len(shape) != 2:
        raise TypeError(f"shape must be a pair (rows, cols), got {shape!r}")
    rows, cols = as_int(shape[0], "shape[0]", minimum=1), as_int(shape[1], "shape[1]", minimum=1)
    if rows * cols != S:
        raise ValueError(f"shape must satisfy rows * cols == n_states = {S}, got {rows} x {cols} = {rows * cols}")
    return rows, cols


def policy_map(
    mdp: FiniteMDP,
    policy: SoftmaxPolicy | ArrayLike,
    *,
    shape: tuple[int, int],
    values: bool = True,
    gamma: float | None = None,
    objective: exact.Objective | None = None,
    actions: Sequence[str | tuple[float, float]] = _GRID_ACTIONS,
    ax: Any = None,
) -> Any:
    r"""A grid world's policy as arrows over a heat map of its exact state values.

    State ``s`` is the cell ``divmod(s, cols)`` = (row, column), row 0 at the top (as
    :func:`pgfast.envs.cliff_grid`, FrozenLake and CliffWalking number their cells). In each
    cell every action gets an arrow from the cell's centre in its direction, of length
    proportional to its probability :math:`\pi(a|s)` (0.45 of a cell at probability 1), so a
    deterministic policy shows one arrow per cell and a uniform one a cross; actions of
    probability below 0.01 are not drawn, nor actions whose move is (0, 0). Terminal states get no
    arrows and are hatched. Under the arrows (``values=True``) the exact state values
    :math:`V^\pi(s)` (:func:`pgfast.exact.evaluate`; :math:`V_0` for the finite horizon) as an
    image with a colour bar.

    Parameters
    ----------
    mdp : FiniteMDP
        The grid world (``rows * cols`` states), e.g. from :func:`pgfast.envs.cliff_grid` or
        :meth:`pgfast.FiniteMDP.from_gymnasium`.
    policy : SoftmaxPolicy or array_like (S, A)
        A pgfast policy for the MDP, or a probability table :math:`\pi(a|s)` (rows summing to 1).
    shape : (int, int)
        ``(rows, cols)`` with ``rows * cols == mdp.n_states``.
    values : bool
        Draw the heat map of the state values (default True).
    gamma : float in [0, 1], optional
        Discount factor of the values (default ``mdp.gamma``).
    objective : {"discounted", "finite_horizon", "average_reward", "average_value"}, optional
        The values shown (default: ``"discounted"`` when gamma < 1, else ``"finite_horizon"``).
    actions : sequence of str or (float, float)
        The move of each action: ``"up"``, ``"down"``, ``"left"``, ``"right"`` or a
        ``(d_row, d_col)`` pair. Default ``("up", "right", "down", "left")``, the numbering of
        :func:`pgfast.envs.cliff_grid` and gymnasium's CliffWalking; FrozenLake's is
        ``("left", "down", "right", "up")``.
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new figure's axes).

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on: the heat map is its image (``ax.images[0].get_array()`` is
        :math:`V` reshaped to ``shape``), the arrows one quiver (``X``, ``Y`` the cell centres,
        ``U``, ``V`` the arrows, screen up being a negative ``V``: row 0 is at the top), the
        terminal cells rectangles with ``gid`` ``"terminal"``.

    Raises
    ------
    TypeError
        ``mdp`` not a FiniteMDP, a policy that is neither a pgfast policy nor numeric, a bad
        ``shape``, ``values``, ``actions`` or ``ax``.
    ValueError
        ``rows * cols`` other than the number of states, a policy of other sizes or whose rows are
        not distributions, an ``actions`` of another length or an unknown direction, an unknown
        objective or a gamma it does not take.
    ImportError
        matplotlib is not installed.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> mdp, shape = pg.envs.cliff_grid(3, 4, gamma=0.9)
    >>> best = pg.exact.optimal(mdp, "discounted").probs()
    >>> ax = pg.plot.policy_map(mdp, best, shape=shape)
    >>> ax.images[0].get_array().shape, ax.collections[0].N  # 11 arrows: the goal has none
    ((3, 4), 11)
    >>> plt.close(ax.figure)
    """
    require_instance(mdp, FiniteMDP, "mdp", "a pgfast.FiniteMDP")
    S, A = mdp.n_states, mdp.n_actions
    rows, cols = _grid_shape(shape, S)
    if not isinstance(values, (bool, np.bool_)):
        raise TypeError(f"values must be True or False, got {type(values).__name__}")
    moves = _directions(actions, A)
    g = as_gamma(gamma, mdp.gamma)
    if objective is None:
        objective = "discounted" if g < 1.0 else "finite_horizon"
    elif not isinstance(objective, str) or objective not in exact.OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(map(repr, exact.OBJECTIVES))} or None, got {objective!r}")
    if isinstance(policy, SoftmaxPolicy):
        probs = np.asarray(policy.probs(), dtype=np.float64)
        if probs.shape != (S, A):
            raise ValueError(f"policy must have {S} states and {A} actions like the MDP, got probs of shape {probs.shape}")
        pi: SoftmaxPolicy = policy
    else:
        probs = _probability_tables(policy, "policy", (S, A))
        pi = TabularSoftmax(S, A)
        _set_table(pi, probs)
    V = _values(mdp, pi, objective, g) if values else None
    ax = _axes(ax, "policy_map")
    from matplotlib.patches import Rectangle

    if V is not None:
        im = ax.imshow(V.reshape(rows, cols), cmap="viridis")
        what = {"finite_horizon": f"V_0 (finite horizon, H = {mdp.horizon}", "discounted": f"V (discounted, gamma = {g:g}",
                "average_reward": "h (differential, average reward", "average_value": f"V (average value, gamma = {g:g}"}
        from mpl_toolkits.axes_grid1 import make_axes_locatable  # type: ignore[import-untyped]

        cax = make_axes_locatable(ax).append_axes("right", size=0.15, pad=0.1)  # as tall as the grid
        ax.figure.colorbar(im, cax=cax, label=what[objective] + ")")
    terminal = mdp.terminal
    keep = (probs >= _MIN_ARROW_PROB) & ~terminal[:, None] & (np.abs(moves).sum(axis=1) > 0)[None, :]
    s_idx, a_idx = np.nonzero(keep)
    if s_idx.size:
        length = _ARROW * probs[s_idx, a_idx]
        ax.quiver(s_idx % cols, s_idx // cols, length * moves[a_idx, 1], length * moves[a_idx, 0],
                  angles="xy", scale_units="xy", scale=1.0, pivot="tail", units="xy", width=0.035,
                  headwidth=3.5, headlength=4.0, headaxislength=3.5, minlength=0.0,
                  color="white" if V is not None else "0.25", edgecolor="black", linewidth=0.5, zorder=3)
    for s in np.flatnonzero(terminal):
        r, c = divmod(int(s), cols)
        ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1.0, 1.0, fill=False, hatch="//", edgecolor="0.5", lw=1.5,
                               gid="terminal", zorder=2))
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)  # row 0 at the top
    ax.set_aspect("equal")
    ax.set_xticks(range(cols))
    ax.set_yticks(range(rows))
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    return ax


# -- The sub-optimality gap -----------------------------------------------------------------------


def gap(
    curves: Mapping[str, ArrayLike],
    optimum: float,
    *,
    ax: Any = None,
    xlabel: str = "iteration",
    floor: float | None = None,
) -> Any:
    r"""The sub-optimality gap :math:`J^* - J_t` on log-log axes, one line per run.

    Curve ``J_t``, :math:`t = 0, \dots, T-1`, is drawn at :math:`x = t + 1` (so that the start
    shows on a log axis). A gap that is not positive (the optimum reached within rounding, or a
    noisy estimate above it) cannot show on a log axis: gaps below ``floor`` are clipped to it,
    which is by default the rounding unit of the values,
    :math:`\varepsilon \max(|J^*|, \max_t |J_t|)` with :math:`\varepsilon = 2^{-52}`, and a dotted
    line marks the floor when a gap was clipped. NaN entries (iterations not evaluated) are left
    out.

    Parameters
    ----------
    curves : mapping of str to array_like
        Label -> the values :math:`J_t` of a run (1-D, finite or NaN).
    optimum : float
        :math:`J^*` (e.g. ``pg.exact.optimal(mdp).value``).
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new figure's axes).
    xlabel : str
        Label of the x axis (default ``"iteration"``).
    floor : float > 0, optional
        The value non-positive gaps are clipped to (default: the rounding unit of the largest
        :math:`|J|`, :math:`\varepsilon \max(|J^*|, \max_t |J_t|)`; the smallest normal float64 when
        all are 0).

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn on: one line per curve, labelled with its key (``xdata`` = t + 1,
        ``ydata`` = the gaps, clipped).

    Raises
    ------
    TypeError
        ``curves`` not a mapping (or a label not a string), non-numeric values, a bad
        ``optimum``, ``xlabel``, ``floor`` or ``ax``.
    ValueError
        No curves, a curve that is not 1-D or is empty or infinite, an optimum that is not finite,
        a floor that is not positive.
    ImportError
        matplotlib is not installed.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> mdp = pg.envs.two_state()
    >>> best = pg.exact.optimal(mdp, "discounted").value
    >>> curves = {}
    >>> for name, opt in [("gradient ascent", pg.optim.GradientAscent(lr=0.5)),
    ...                   ("natural PG", pg.optim.NaturalPolicyGradient(lr=0.5))]:
    ...     pi, J = pg.TabularSoftmax(2, 2), []
    ...     for _ in range(30):
    ...         grad, ev = pg.exact.gradient(mdp, pi, "discounted", return_evaluation=True)
    ...         J.append(ev.value)
    ...         _ = opt.step(pi, grad, mdp=mdp)
    ...     curves[name] = J
    >>> ax = pg.plot.gap(curves, best)
    >>> [line.get_label() for line in ax.get_lines()], ax.get_xscale(), ax.get_yscale()
    (['gradient ascent', 'natural PG'], 'log', 'log')
    >>> plt.close(ax.figure)
    """
    items = _mapping(curves, "curves")
    if not items:
        raise ValueError("curves must hold at least one curve")
    opt = as_float(optimum, "optimum")
    if not math.isfinite(opt):
        raise ValueError(f"optimum must be finite, got {opt}")
    if not isinstance(xlabel, str):
        raise TypeError(f"xlabel must be a string, got {type(xlabel).__name__}")
    data: list[tuple[str, NDArray[np.float64]]] = []
    for label, J in items:
        name = f"curves[{label!r}]"
        arr = as_float_array(J, name, ndim=1)
        if arr.size == 0:
            raise ValueError(f"{name} must hold at least one value, got an empty array")
        if np.isinf(arr).any():
            raise ValueError(f"{name} must be finite (NaN for iterations not evaluated), found {arr[np.isinf(arr)][0]!r}")
        data.append((label, arr))
    if floor is None:
        scale = max([abs(opt)] + [float(np.nanmax(np.abs(a))) for _, a in data if not np.isnan(a).all()])
        # every value 0: no scale to take the rounding unit of; the smallest normal float64
        lo = np.finfo(np.float64).eps * scale if scale > 0.0 else float(np.finfo(np.float64).tiny)
    else:
        lo = as_float(floor, "floor")
        if not (math.isfinite(lo) and lo > 0.0):
            raise ValueError(f"floor must be a finite number > 0, got {lo}")
    ax = _axes(ax, "gap")
    clipped = False
    for label, J in data:
        t = np.flatnonzero(~np.isnan(J))
        with np.errstate(over="ignore"):
            g = opt - J[t]
        if not np.all(np.isfinite(g)):
            raise ValueError(f"curves[{label!r}]: optimum - J_t is beyond the float64 range")
        clipped |= bool((g < lo).any())
        ax.plot(t + 1.0, np.maximum(g, lo), lw=1.5, label=label)
    if clipped:
        ax.axhline(lo, color="0.5", ls=":", lw=1, label=f"floor {lo:.1e} (gaps below it clipped)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(r"$J^* - J$")
    ax.legend(fontsize="small")
    return ax
