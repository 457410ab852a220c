"""pgfast.plot: the value-function polytope, the policy map, the sub-optimality gap, and the
policy map that ``pgfast train --plot`` adds on grid environments.

Every picture is rendered to a PNG (Agg backend) and checked as a file (signature, size); the
assertions are on the plotted data: scatter offsets, line data, the heat map's array and the
arrows of the quiver, against exact values (pgfast.exact and an independent NumPy linear solve).

Tolerances: the values drawn are pgfast.exact's (the same numbers: compared exactly where the
test asks pgfast.exact for them) or a 2 x 2 / 6 x 6 dense solve done here (relative 1e-12, the
solves differ only in rounding).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.quiver import Quiver

import pgfast as pg
from pgfast.cli import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
UP, RIGHT, DOWN, LEFT = (-1, 0), (0, 1), (1, 0), (0, -1)  # (d_row, d_col)


@pytest.fixture(autouse=True)
def _close_figures() -> Any:
    yield
    plt.close("all")


def _render(ax: Any, path: Path) -> None:
    """Save the axes' figure as a PNG and check the file."""
    ax.figure.savefig(path, dpi=60)
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 5000, f"{path.name}: {len(data)} bytes, an empty picture?"


def _numpy_values(mdp: pg.FiniteMDP, probs: np.ndarray, gamma: float) -> np.ndarray:
    """Discounted V of the policy ``probs`` (S, A) by a dense solve: (I - gamma P_pi) V = r_pi, V = 0
    on terminal states."""
    alive = ~mdp.terminal
    P_pi = np.einsum("sa,sat->st", probs, mdp.P) * alive[:, None]
    r_pi = np.einsum("sa,sa->s", probs, mdp.R) * alive
    return np.linalg.solve(np.eye(mdp.n_states) - gamma * P_pi, r_pi)


def _exact_values(mdp: pg.FiniteMDP, probs: np.ndarray, objective: str = "discounted", **kw: Any) -> np.ndarray:
    with np.errstate(divide="ignore"):
        theta = np.where(probs > 0, np.log(probs), -1e4)
    V = pg.exact.evaluate(mdp, pg.TabularSoftmax(*probs.shape, theta=theta), objective, **kw).state_values
    return V[0] if V.ndim == 2 else V


def _collection(ax: Any, label: str) -> Any:
    found = [c for c in ax.collections if c.get_label() == label]
    assert len(found) == 1, [c.get_label() for c in ax.collections]
    return found[0]


def _line(ax: Any, label: str) -> Any:
    found = [line for line in ax.get_lines() if line.get_label() == label]
    assert len(found) == 1, [line.get_label() for line in ax.get_lines()]
    return found[0]


def _quiver(ax: Any) -> Quiver:
    found = [c for c in ax.collections if isinstance(c, Quiver)]
    assert len(found) == 1
    return found[0]


# -- import ---------------------------------------------------------------------------------------


def test_import_pgfast_does_not_import_matplotlib() -> None:
    code = ("import sys, pgfast as pg; assert 'matplotlib' not in sys.modules; "
            "assert pg.plot.__name__ == 'pgfast.plot' and 'plot' in pg.__all__; "
            "assert 'matplotlib' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("call", ["polytope", "policy_map", "gap"])
def test_without_matplotlib_an_import_error_says_how_to_install(monkeypatch: pytest.MonkeyPatch, call: str) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # import matplotlib.pyplot raises ImportError
    mdp, shape = pg.envs.cliff_grid(2, 3, gamma=0.9)
    calls = {"polytope": lambda: pg.plot.polytope(pg.envs.two_state(), n_policies=1),
             "policy_map": lambda: pg.plot.policy_map(mdp, pg.TabularSoftmax(6, 4), shape=shape),
             "gap": lambda: pg.plot.gap({"a": [0.0, 0.5]}, 1.0)}
    with pytest.raises(ImportError, match=rf'pgfast\.plot\.{call} needs matplotlib: pip install "pgfast\[plot\]"'):
        calls[call]()


# -- the polytope ---------------------------------------------------------------------------------


@pytest.mark.parametrize("example", ["2d", "3"])
def test_polytope_scatter_is_the_exact_values_of_the_drawn_policies(example: str, tmp_path: Path) -> None:
    mdp = pg.envs.two_state(example=example)
    A, n, seed = mdp.n_actions, 300, 11
    ax = pg.plot.polytope(mdp, n_policies=n, seed=seed)
    _render(ax, tmp_path / "polytope.png")
    probs = np.random.default_rng(seed).dirichlet(np.ones(A), size=(n, 2))
    expected = np.array([_exact_values(mdp, p) for p in probs])
    np.testing.assert_array_equal(_collection(ax, "random policies").get_offsets(), expected)
    independent = np.array([_numpy_values(mdp, p, mdp.gamma) for p in probs])
    np.testing.assert_allclose(expected, independent, rtol=1e-12, atol=1e-12)
    # the A^2 deterministic policies, in the order of itertools.product(range(A), repeat=2)
    corners = np.array([_numpy_values(mdp, np.eye(A)[[a0, a1]], mdp.gamma) for a0 in range(A) for a1 in range(A)])
    np.testing.assert_allclose(_collection(ax, "deterministic policies").get_offsets(), corners, rtol=1e-12, atol=1e-12)
    # the optimal value is one of the corners and no sampled policy beats it in either state
    best = pg.exact.optimal(mdp, "discounted").state_values
    assert np.isclose(corners, best, rtol=1e-12).all(axis=1).any()
    assert (expected <= best + 1e-12).all()


def test_polytope_paths_of_policies_and_of_values(tmp_path: Path) -> None:
    mdp = pg.envs.two_state()
    pi, opt, tables = pg.TabularSoftmax(2, 2, theta=[[0.0, 2.0], [0.0, 2.0]]), pg.optim.GradientAscent(lr=0.5), []
    for _ in range(25):
        tables.append(pi.probs())
        opt.step(pi, pg.exact.gradient(mdp, pi, "discounted"))
    tables_arr = np.array(tables)
    points = np.array([[-1.0, -0.5], [-0.5, 0.0], [0.0, 1.0]])
    ax = pg.plot.polytope(mdp, paths={"ascent": tables_arr, "by hand": points.tolist()}, n_policies=50, gamma=0.8)
    _render(ax, tmp_path / "paths.png")
    V = np.array([_exact_values(mdp, t, gamma=0.8) for t in tables_arr])  # the gamma given, not the MDP's 0.9
    np.testing.assert_allclose(V, [_numpy_values(mdp, t, 0.8) for t in tables_arr], rtol=1e-12, atol=1e-12)
    line = _line(ax, "ascent")
    np.testing.assert_array_equal(line.get_xdata(), V[:, 0])
    np.testing.assert_array_equal(line.get_ydata(), V[:, 1])
    line = _line(ax, "by hand")
    np.testing.assert_array_equal(np.column_stack([line.get_xdata(), line.get_ydata()]), points)
    # each path: a start marker (circle) on its first point and an end marker (star) on its last
    markers = [(m.get_marker(), m.get_xdata()[0], m.get_ydata()[0]) for m in ax.get_lines() if m.get_marker() in ("o", "*")]
    assert ("o", V[0, 0], V[0, 1]) in markers and ("*", V[-1, 0], V[-1, 1]) in markers
    assert ("o", -1.0, -0.5) in markers and ("*", 0.0, 1.0) in markers
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["random policies", "deterministic policies", "ascent", "by hand"]


def test_polytope_seed_as_generator_and_no_random_policies() -> None:
    mdp = pg.envs.two_state(example="2a")
    a = pg.plot.polytope(mdp, n_policies=40, seed=5)
    b = pg.plot.polytope(mdp, n_policies=40, seed=np.random.default_rng(5))
    np.testing.assert_array_equal(_collection(a, "random policies").get_offsets(), _collection(b, "random policies").get_offsets())
    empty = pg.plot.polytope(mdp, n_policies=0)
    assert _collection(empty, "random policies").get_offsets().shape[0] == 0
    assert _collection(empty, "deterministic policies").get_offsets().shape == (4, 2)


def test_polytope_draws_on_the_axes_given() -> None:
    fig, (left, right) = plt.subplots(1, 2)
    assert pg.plot.polytope(pg.envs.two_state(), n_policies=5, ax=right) is right
    assert not left.collections and len(right.collections) == 2


def test_polytope_rejects_bad_inputs() -> None:
    mdp = pg.envs.two_state()
    good = np.full((3, 2, 2), 0.5)
    cases: list[tuple[type[Exception], str, dict[str, Any]]] = [
        (TypeError, "mdp must be a pgfast.FiniteMDP", {"mdp": "two_state"}),
        (ValueError, "mdp must have 2 states", {"mdp": pg.envs.cliff_grid(2, 3, gamma=0.9)[0]}),
        (ValueError, "gamma must be < 1.*got gamma = 1.0 .the MDP's", {"mdp": pg.envs.two_state(gamma=1.0)}),
        (ValueError, r"gamma must be < 1.*got gamma = 1.0: pass", {"gamma": 1.0}),  # the MDP's is 0.9
        (ValueError, "gamma must be in", {"gamma": 1.5}),
        (TypeError, "paths must be a mapping", {"paths": [good]}),
        (TypeError, "paths: the labels must be strings", {"paths": {0: good}}),
        (ValueError, r"paths\['a'\] must have shape \(3, 2, 2\)", {"paths": {"a": np.full((3, 2, 3), 1 / 3)}}),
        (ValueError, r"paths\['a'\] must have shape \(T, 2, A\)", {"paths": {"a": np.zeros((3, 3))}}),
        (ValueError, r"paths\['a'\] must be 2-D or 3-D", {"paths": {"a": np.zeros(3)}}),
        (ValueError, r"paths\['a'\]: each row over the actions must sum to 1", {"paths": {"a": good * 0.9}}),
        (ValueError, r"paths\['a'\] must be probabilities", {"paths": {"a": np.tile([1.5, -0.5], (3, 2, 1))}}),
        (ValueError, r"paths\['a'\] must be finite", {"paths": {"a": [[0.0, np.nan]]}}),
        (ValueError, r"paths\['a'\] must hold at least one iterate", {"paths": {"a": np.zeros((0, 2))}}),
        (TypeError, r"paths\['a'\] must be a real numeric array", {"paths": {"a": [["x", "y"]]}}),
        (ValueError, "n_policies must be >= 0", {"n_policies": -1}),
        (TypeError, "n_policies must be an integer", {"n_policies": 2.5}),
        (MemoryError, r"the table of n_policies=1152921504606846976 random policies needs .* bytes.*smaller n_policies", {"n_policies": 2**60}),
        (TypeError, "seed must be an integer", {"seed": "0"}),
        (ValueError, "seed must be >= 0", {"seed": -1}),
        (TypeError, "ax must be a matplotlib Axes", {"ax": "axes"}),
    ]
    for exc, message, kwargs in cases:
        call = {"mdp": mdp, "n_policies": 3} | kwargs
        with pytest.raises(exc, match=message):
            pg.plot.polytope(call.pop("mdp"), **call)


# -- the policy map -------------------------------------------------------------------------------


def _arrows(q: Quiver) -> dict[tuple[int, int], list[tuple[float, float]]]:
    """(row, col) of each arrow's cell -> its (U, V), i.e. (d_col, d_row) times the length."""
    out: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for x, y, u, v in zip(q.X, q.Y, np.asarray(q.U), np.asarray(q.V)):
        out.setdefault((int(y), int(x)), []).append((float(u), float(v)))
    return out


def test_policy_map_deterministic_policy_arrows_and_heat_map(tmp_path: Path) -> None:
    mdp, shape = pg.envs.cliff_grid(2, 3, gamma=0.9)  # row 0: 0 1 2; row 1: start 3, cliff 4, goal 5 (terminal)
    actions = np.array([1, 1, 2, 0, 0, 0])  # right, right, down; up from the start (cliff and goal: anything)
    probs = np.eye(4)[actions]
    ax = pg.plot.policy_map(mdp, probs, shape=shape)
    _render(ax, tmp_path / "map.png")
    q = _quiver(ax)
    assert q.N == 5  # one arrow in every cell but the terminal goal
    assert _arrows(q) == {(0, 0): [(0.45, 0.0)], (0, 1): [(0.45, 0.0)], (0, 2): [(0.0, 0.45)],
                          (1, 0): [(0.0, -0.45)], (1, 1): [(0.0, -0.45)]}
    V = _numpy_values(mdp, probs, 0.9)
    steps = np.array([3, 2, 1, 4])  # to the goal from states 0, 1, 2, 3 at -1 a step
    np.testing.assert_allclose(V[[0, 1, 2, 3]], -(1 - 0.9**steps) / (1 - 0.9), rtol=1e-12)
    heat = ax.images[0].get_array()
    assert heat.shape == shape
    np.testing.assert_array_equal(heat, _exact_values(mdp, probs).reshape(shape))
    np.testing.assert_allclose(heat, V.reshape(shape), rtol=1e-12, atol=1e-12)
    terminal = [p for p in ax.patches if p.get_gid() == "terminal"]
    assert [(p.get_x(), p.get_y()) for p in terminal] == [(1.5, 0.5)]  # the goal's cell, (row 1, col 2)
    assert ax.get_ylim() == (1.5, -0.5)  # row 0 at the top


def test_policy_map_stochastic_policy_arrow_lengths_and_softmax_policy() -> None:
    mdp, shape = pg.envs.cliff_grid(2, 3, gamma=0.95)
    theta = np.random.default_rng(3).normal(size=(6, 4))
    theta[0] = [0.0, 0.0, -10.0, np.log(3.0)]  # state 0: 0.2, 0.2, ~0 (not drawn), 0.6
    pi = pg.TabularSoftmax(6, 4, theta=theta)
    probs = pi.probs()
    ax = pg.plot.policy_map(mdp, pi, shape=shape)
    keep = (probs >= 0.01) & ~mdp.terminal[:, None]
    q = _quiver(ax)
    assert q.N == keep.sum() and keep[0].sum() == 3
    moves = np.array([UP, RIGHT, DOWN, LEFT], dtype=float)
    for (r, c), arrows in _arrows(q).items():
        s = r * 3 + c
        want = sorted((0.45 * p * m[1], 0.45 * p * m[0]) for p, m, k in zip(probs[s], moves, keep[s]) if k)
        np.testing.assert_allclose(sorted(arrows), want, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(ax.images[0].get_array(), pg.exact.evaluate(mdp, pi, "discounted").V.reshape(shape))
    # the table of the same policy draws the same picture
    again = pg.plot.policy_map(mdp, probs, shape=shape)
    np.testing.assert_allclose(np.asarray(_quiver(again).U), np.asarray(q.U), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(again.images[0].get_array(), ax.images[0].get_array(), rtol=1e-12, atol=1e-12)


def test_policy_map_objectives_actions_and_no_heat_map(tmp_path: Path) -> None:
    mdp, shape = pg.envs.cliff_grid(2, 3)  # gamma 1: the finite-horizon V_0 by default
    probs = np.full((6, 4), 0.25)
    ax = pg.plot.policy_map(mdp, probs, shape=shape)
    np.testing.assert_array_equal(ax.images[0].get_array(), _exact_values(mdp, probs, "finite_horizon").reshape(shape))
    ax = pg.plot.policy_map(mdp, probs, shape=shape, objective="discounted", gamma=0.5)
    np.testing.assert_allclose(ax.images[0].get_array(), _numpy_values(mdp, probs, 0.5).reshape(shape), rtol=1e-12)
    # FrozenLake's numbering (0 left, 1 down, 2 right, 3 up), pairs, and a move that stays put
    lake = pg.FiniteMDP.from_gymnasium("FrozenLake-v1")
    probs = np.eye(4)[np.arange(16) % 4]
    ax = pg.plot.policy_map(lake, probs, shape=(4, 4), values=False, actions=["left", DOWN, (0, 2), "up"])
    _render(ax, tmp_path / "lake.png")
    assert not ax.images
    arrows = _arrows(_quiver(ax))
    assert arrows[(0, 0)] == [(-0.45, 0.0)] and arrows[(0, 1)] == [(0.0, 0.45)] and arrows[(0, 2)] == [(0.45, 0.0)]
    assert arrows[(0, 3)] == [(0.0, -0.45)]  # up: toward row 0, the top
    assert len(arrows) == 16 - lake.terminal.sum()
    assert len([p for p in ax.patches if p.get_gid() == "terminal"]) == lake.terminal.sum() == 5
    stay = pg.plot.policy_map(lake, probs, shape=(4, 4), values=False, actions=["left", "down", "right", (0, 0)])
    moving = (np.arange(16) % 4 != 3) & ~lake.terminal
    assert _quiver(stay).N == moving.sum() == 10  # the cells whose action stays put have no arrow


def test_policy_map_rejects_bad_inputs() -> None:
    mdp, shape = pg.envs.cliff_grid(2, 3, gamma=0.9)
    probs = np.full((6, 4), 0.25)
    cases: list[tuple[type[Exception], str, dict[str, Any]]] = [
        (TypeError, "mdp must be a pgfast.FiniteMDP", {"mdp": None}),
        (ValueError, r"shape must satisfy rows \* cols == n_states = 6, got 3 x 3", {"shape": (3, 3)}),
        (TypeError, "shape must be a pair", {"shape": 6}),
        (TypeError, "shape must be a pair", {"shape": (1, 2, 3)}),
        (TypeError, r"shape\[0\] must be an integer", {"shape": (2.0, 3)}),
        (ValueError, r"shape\[1\] must be >= 1", {"shape": (2, 0)}),
        (ValueError, r"policy must have shape \(6, 4\)", {"policy": np.full((6, 3), 1 / 3)}),
        (ValueError, "policy: each row over the actions must sum to 1", {"policy": probs * 2}),
        (ValueError, "policy must be finite", {"policy": np.where(probs > 0, np.inf, 0)}),
        (TypeError, "policy must be a real numeric array", {"policy": "uniform"}),
        (ValueError, "policy must have 6 states and 4 actions", {"policy": pg.TabularSoftmax(6, 3)}),
        (TypeError, "values must be True or False", {"values": 1}),
        (ValueError, "objective must be one of", {"objective": "average"}),
        (ValueError, "needs gamma < 1", {"objective": "discounted", "gamma": 1.0}),
        (ValueError, "gamma must be in", {"gamma": -0.1}),
        (ValueError, "actions must name one direction per action, A = 4, got 3", {"actions": ["up", "down", "left"]}),
        (ValueError, r"actions\[1\] must be one of", {"actions": ["up", "north", "down", "left"]}),
        (ValueError, r"actions\[0\] must be a \(d_row, d_col\) pair", {"actions": [(1, 0, 0), "up", "up", "up"]}),
        (ValueError, r"actions\[0\] must be finite", {"actions": [(np.nan, 0), "up", "up", "up"]}),
        (TypeError, "actions must be a sequence", {"actions": "urdl"}),
        (TypeError, "ax must be a matplotlib Axes", {"ax": 0}),
    ]
    for exc, message, kwargs in cases:
        call = {"mdp": mdp, "policy": probs, "shape": shape} | kwargs
        with pytest.raises(exc, match=message):
            pg.plot.policy_map(call.pop("mdp"), call.pop("policy"), **call)


# -- the sub-optimality gap -----------------------------------------------------------------------


def test_gap_lines_are_the_gaps_at_t_plus_one(tmp_path: Path) -> None:
    mdp = pg.envs.two_state()
    best = pg.exact.optimal(mdp, "discounted").value
    curves: dict[str, list[float]] = {}
    for name, opt in [("ascent", pg.optim.GradientAscent(lr=1.0)), ("npg", pg.optim.NaturalPolicyGradient(lr=0.2))]:
        pi, J = pg.TabularSoftmax(2, 2), []
        for _ in range(40):
            g, ev = pg.exact.gradient(mdp, pi, "discounted", return_evaluation=True)
            J.append(ev.value)
            opt.step(pi, g, mdp=mdp)
        curves[name] = J
    ax = pg.plot.gap(curves, best, xlabel="step")
    _render(ax, tmp_path / "gap.png")
    for name, J in curves.items():
        gaps = best - np.array(J)
        assert (gaps > 1e-10).all()  # 40 steps stay away from the optimum: nothing is clipped
        line = _line(ax, name)
        np.testing.assert_array_equal(line.get_xdata(), np.arange(1, 41))
        np.testing.assert_array_equal(line.get_ydata(), gaps)
    assert (ax.get_xscale(), ax.get_yscale(), ax.get_xlabel()) == ("log", "log", "step")
    assert len(ax.get_lines()) == 2  # no floor line
    assert (best - curves["npg"][-1]) < (best - curves["ascent"][-1])  # natural PG is ahead


def test_gap_clips_non_positive_gaps_to_the_floor() -> None:
    J = np.array([0.0, 0.5, 1.0, 1.0 + 1e-15, np.nan, 0.9])
    ax = pg.plot.gap({"run": J}, 1.0)
    floor = np.finfo(np.float64).eps * (1.0 + 1e-15)  # eps times the largest |J| (or |J*|)
    line = _line(ax, "run")
    np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3, 4, 6])  # the NaN (not evaluated) left out
    np.testing.assert_allclose(line.get_ydata(), [1.0, 0.5, floor, floor, 0.1], rtol=1e-12)
    assert min(line.get_ydata()) > 0
    floor_line = [ln for ln in ax.get_lines() if ln is not line]
    assert len(floor_line) == 1 and floor_line[0].get_ydata()[0] == pytest.approx(floor, rel=1e-12)
    ax = pg.plot.gap({"run": J}, 1.0, floor=1e-6)
    np.testing.assert_array_equal(_line(ax, "run").get_ydata(), [1.0, 0.5, 1e-6, 1e-6, 1.0 - 0.9])
    ax = pg.plot.gap({"zeros": [0.0, 0.0]}, 0.0)  # every gap 0 and no scale: the smallest normal float64
    tiny = np.finfo(np.float64).tiny
    np.testing.assert_array_equal(_line(ax, "zeros").get_ydata(), [tiny, tiny])
    with pytest.raises(ValueError, match=r"curves\['far'\]: optimum - J_t is beyond the float64 range"):
        pg.plot.gap({"far": [-1e308]}, 1e308)


def test_gap_draws_on_the_axes_given() -> None:
    _, ax = plt.subplots()
    assert pg.plot.gap({"a": [0.0]}, 1.0, ax=ax) is ax
    np.testing.assert_array_equal(_line(ax, "a").get_xydata(), [[1.0, 1.0]])


def test_gap_rejects_bad_inputs() -> None:
    cases: list[tuple[type[Exception], str, dict[str, Any]]] = [
        (TypeError, "curves must be a mapping", {"curves": [[0.0, 1.0]]}),
        (ValueError, "curves must hold at least one curve", {"curves": {}}),
        (TypeError, "curves: the labels must be strings", {"curves": {1: [0.0]}}),
        (ValueError, r"curves\['a'\] must be 1-D", {"curves": {"a": [[0.0, 1.0]]}}),
        (ValueError, r"curves\['a'\] must hold at least one value", {"curves": {"a": []}}),
        (ValueError, r"curves\['a'\] must be finite \(NaN for iterations not evaluated\)", {"curves": {"a": [0.0, -np.inf]}}),
        (TypeError, r"curves\['a'\] must be a real numeric array", {"curves": {"a": ["0.5"]}}),
        (TypeError, "optimum must be a real number", {"optimum": "1"}),
        (ValueError, "optimum must be finite", {"optimum": np.nan}),
        (TypeError, "xlabel must be a string", {"xlabel": 3}),
        (ValueError, "floor must be a finite number > 0", {"floor": 0.0}),
        (TypeError, "floor must be a real number", {"floor": "tiny"}),
        (TypeError, "ax must be a matplotlib Axes", {"ax": "ax"}),
    ]
    for exc, message, kwargs in cases:
        call = {"curves": {"a": [0.0, 0.5]}, "optimum": 1.0} | kwargs
        with pytest.raises(exc, match=message):
            pg.plot.gap(call.pop("curves"), call.pop("optimum"), **call)


# -- pgfast train --plot --------------------------------------------------------------------------


def _recording_policy_map(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Replace pg.plot.policy_map by a wrapper that records the axes it returns."""
    drawn: list[Any] = []
    real = pg.plot.policy_map

    def record(*args: Any, **kwargs: Any) -> Any:
        ax = real(*args, **kwargs)
        drawn.append(ax)
        return ax

    monkeypatch.setattr(pg.plot, "policy_map", record)
    return drawn


@pytest.mark.parametrize("env, shape, moves", [("FrozenLake-v1", (4, 4), (LEFT, DOWN, RIGHT, UP)),
                                                ("CliffWalking-v1", (4, 12), (UP, RIGHT, DOWN, LEFT))])
def test_cli_train_plot_adds_the_policy_map_on_grid_environments(
    env: str, shape: tuple[int, int], moves: tuple[tuple[int, int], ...], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    drawn = _recording_policy_map(monkeypatch)
    PNG, THETA = tmp_path / "curve.png", tmp_path / "theta.npz"
    assert main(["train", env, "--horizon", "50", "--iterations", "3", "--batch", "64", "--episodes", "0",
                 "--plot", str(PNG), "--save", str(THETA)]) == 0
    assert "saved learning curve and policy map to" in capsys.readouterr().out
    data = PNG.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 20000
    (ax,) = drawn
    assert len(ax.figure.axes) == 4  # the curve, the gap, the map and its colour bar
    mdp = pg.FiniteMDP.from_gymnasium(env, horizon=50)
    pi = pg.TabularSoftmax(mdp.n_states, 4, theta=np.load(THETA)["theta"])
    # the values of the trained policy: the finite-horizon V_0 the command reports J of
    V0 = pg.exact.evaluate(mdp, pi).V[0]
    np.testing.assert_array_equal(ax.images[0].get_array(), V0.reshape(shape))
    assert pg.exact.evaluate(mdp, pi).J == pytest.approx(mdp.mu0 @ V0, rel=1e-12)
    probs, keep = pi.probs(), (pi.probs() >= 0.01) & ~mdp.terminal[:, None]
    q = _quiver(ax)
    assert q.N == keep.sum()
    cols = shape[1]
    for (r, c), arrows in _arrows(q).items():
        s = r * cols + c
        want = sorted((0.45 * probs[s, a] * moves[a][1], 0.45 * probs[s, a] * moves[a][0]) for a in range(4) if keep[s, a])
        np.testing.assert_allclose(sorted(arrows), want, rtol=1e-12, atol=1e-15)


def test_cli_train_plot_has_no_policy_map_elsewhere(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    drawn = _recording_policy_map(monkeypatch)
    PNG = tmp_path / "curve.png"
    assert main(["train", "Taxi-v4", "--iterations", "2", "--batch", "16", "--episodes", "0", "--plot", str(PNG)]) == 0
    out = capsys.readouterr().out
    assert "saved learning curve to" in out and "policy map" not in out
    assert PNG.read_bytes()[:8] == PNG_SIGNATURE and not drawn
