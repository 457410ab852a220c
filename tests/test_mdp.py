"""FiniteMDP construction: dense and sparse forms, stored arrays, and every rejected input."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from helpers import random_mdp

import pgfast as pg


def _simple(S: int = 3, A: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    P = np.zeros((S, A, S))
    for s in range(S):
        P[s, 0, s] = 1.0
        P[s, 1, (s + 1) % S] = 0.25
        P[s, 1, (s + 2) % S] = 0.75
    R = np.arange(S * A, dtype=float).reshape(S, A)
    return P, R, np.full(S, 1.0 / S)


def test_properties_and_round_trip(rng: np.random.Generator) -> None:
    P, R, mu0 = _simple()
    mdp = pg.FiniteMDP(P, R, mu0, horizon=7, gamma=0.9)
    assert (mdp.n_states, mdp.n_actions, mdp.horizon, mdp.gamma, mdp.nnz) == (3, 2, 7, 0.9, 9)
    np.testing.assert_array_equal(mdp.P, P)
    np.testing.assert_allclose(mdp.R, R)
    np.testing.assert_array_equal(mdp.mu0, mu0)
    assert mdp.terminal.dtype == np.bool_ and not mdp.terminal.any()
    indptr, nxt, prob, rew = mdp.transitions
    np.testing.assert_array_equal(indptr, [0, 1, 3, 4, 6, 7, 9])
    # successors sorted within each row: row (1, 1) goes to 0 w.p. 0.75 and 2 w.p. 0.25
    np.testing.assert_array_equal(nxt, [0, 1, 2, 1, 0, 2, 2, 0, 1])
    np.testing.assert_array_equal(prob, [1, 0.25, 0.75, 1, 0.75, 0.25, 1, 0.25, 0.75])
    np.testing.assert_array_equal(rew, [0, 1, 1, 2, 3, 3, 4, 5, 5])
    assert "n_states=3" in repr(mdp)


def test_stored_arrays_are_read_only_views() -> None:
    mdp = pg.FiniteMDP(*_simple(), horizon=3)
    for arr in (*mdp.transitions, mdp.mu0, mdp.terminal):
        assert not arr.flags.writeable
        with pytest.raises(ValueError):
            arr[...] = 0


def test_transition_rewards_expected_reward(rng: np.random.Generator) -> None:
    P, _, mu0 = _simple()
    R3 = rng.normal(size=(3, 2, 3))
    mdp = pg.FiniteMDP(P, R3, mu0, horizon=3)
    np.testing.assert_allclose(mdp.R, (P * R3).sum(axis=2), rtol=1e-14)


def test_sparse_input_equals_dense(rng: np.random.Generator) -> None:
    dense = random_mdp(rng, S=12, A=3, successors=4, n_terminal=2, horizon=9, transition_rewards=True)
    P, S, A = dense.P, dense.n_states, dense.n_actions
    indptr, nxt, prob, rew = dense.transitions
    rows = np.repeat(np.arange(S * A), np.diff(indptr))
    R3 = np.zeros((S * A, S))
    R3[rows, nxt] = rew
    for fmt in ("csr", "coo", "csc"):
        Psp = sp.csr_matrix(P.reshape(S * A, S)).asformat(fmt)
        Rsp = sp.csr_matrix(R3).asformat(fmt)
        mdp = pg.FiniteMDP(Psp, Rsp, dense.mu0, horizon=9, terminal=dense.terminal)
        for a, b in zip(mdp.transitions, dense.transitions):
            np.testing.assert_array_equal(a, b)
    # dense (S, A) rewards with sparse P, and duplicate COO entries summed
    coo = sp.coo_matrix(P.reshape(S * A, S))
    dup = sp.coo_matrix(
        (np.concatenate([coo.data / 2, coo.data / 2]), (np.concatenate([coo.row, coo.row]), np.concatenate([coo.col, coo.col]))),
        shape=coo.shape,
    )
    mdp = pg.FiniteMDP(dup, np.ones((S, A)), dense.mu0, horizon=9, terminal=dense.terminal)
    np.testing.assert_allclose(mdp.P, P, rtol=1e-15)


def test_terminal_rows_may_be_empty() -> None:
    P, R, _ = _simple()
    P[2] = 0.0  # state 2 is terminal: its rows are never used
    P[0, 1] = [0, 0, 1.0]
    P[1, 1] = [0, 0, 1.0]
    mdp = pg.FiniteMDP(P, R, [0.5, 0.5, 0], horizon=5, terminal=[0, 0, 1])
    traj = mdp.sample(pg.TabularSoftmax(3, 2), 200, seed=0)
    assert set(np.unique(traj.final_states[traj.lengths < 5])) == {2}


def test_integer_inputs_are_accepted() -> None:
    P = np.zeros((2, 1, 2), dtype=np.int64)
    P[0, 0, 1] = P[1, 0, 0] = 1
    mdp = pg.FiniteMDP(P, np.array([[1], [2]]), np.array([1, 0]), horizon=np.int64(3), gamma=1)
    assert mdp.P.dtype == np.float64 and mdp.horizon == 3


P0, R0, MU0 = _simple()


def _with(**changes: object) -> dict[str, object]:
    kw: dict[str, object] = {"P": P0, "R": R0, "mu0": MU0, "horizon": 5}
    kw.update(changes)
    return kw


def _bad_row_sum() -> np.ndarray:
    P = P0.copy()
    P[1, 1, 2] = 0.7  # row (1, 1) sums to 0.75 + 0.7
    return P


def _neg() -> np.ndarray:
    P = P0.copy()
    P[0, 1, 1], P[0, 1, 2] = -0.25, 1.25
    return P


def _nan(x: np.ndarray, idx: tuple[int, ...]) -> np.ndarray:
    y = x.astype(float).copy()
    y[idx] = np.nan
    return y


BAD_INPUTS = [
    (_with(P=P0[:, :, :2]), ValueError, r"P must have shape \(S, A, S\)"),
    (_with(P=P0[0]), ValueError, "P must be 3-D"),
    (_with(P=P0.astype(object)), TypeError, "P must be a real numeric array"),
    (_with(P=P0.astype(complex)), TypeError, "P must be a real numeric array"),
    (_with(P=P0 > 0), TypeError, "P must be a real numeric array"),
    (_with(P="abc"), TypeError, "P must be a real numeric array"),
    (_with(P=_bad_row_sum()), ValueError, r"P\[s=1, a=1, :\] sums to 1.45"),
    (_with(P=_neg()), ValueError, r"P\[s=0, a=1, s'=1\] = -0.25"),
    (_with(P=_nan(P0, (2, 0, 2))), ValueError, r"P\[s=2, a=0, s'=2\] = nan"),
    (_with(P=np.where(P0 == 1.0, np.inf, P0)), ValueError, "inf"),
    (_with(R=R0[:, :1]), ValueError, r"R must have shape \(S, A\) = \(3, 2\)"),
    (_with(R=np.zeros(3)), ValueError, "R must be 2-D or 3-D"),
    (_with(R=_nan(R0, (0, 1))), ValueError, "R must be finite"),
    (_with(R=np.full((3, 2, 3), np.inf)), ValueError, "R must be finite"),
    (_with(mu0=MU0[:2]), ValueError, r"mu0 must have shape \(S,\) = \(3,\)"),
    (_with(mu0=[0.5, 0.5, 0.5]), ValueError, "mu0 sums to 1.5"),
    (_with(mu0=[1.5, -0.5, 0.0]), ValueError, r"mu0\[1\] = -0.5"),
    (_with(mu0=[np.nan, 0.5, 0.5]), ValueError, r"mu0\[0\] = nan"),
    (_with(horizon=0), ValueError, "horizon must be >= 1"),
    (_with(horizon=-5), ValueError, "horizon must be >= 1"),
    (_with(horizon=2**31), ValueError, "horizon must be <="),
    (_with(horizon=2.5), TypeError, "horizon must be an integer"),
    (_with(horizon=True), TypeError, "horizon must be an integer"),
    (_with(gamma=-0.1), ValueError, r"gamma must be in \[0, 1\]"),
    (_with(gamma=1.5), ValueError, r"gamma must be in \[0, 1\]"),
    (_with(gamma=float("nan")), ValueError, r"gamma must be in \[0, 1\]"),
    (_with(gamma="0.9"), TypeError, "gamma must be a real number"),
    (_with(terminal=[True, False]), ValueError, r"terminal must have shape \(S,\)"),
    (_with(terminal=[0.5, 0, 0]), TypeError, "terminal must be a boolean mask"),
    (_with(terminal=[2, 0, 0]), TypeError, "terminal must be a boolean mask"),
    (_with(terminal=[True, False, False]), ValueError, r"mu0\[0\] > 0 but state 0 is terminal"),
]


@pytest.mark.parametrize(("kwargs", "exc", "match"), BAD_INPUTS)
def test_bad_inputs_raise_naming_the_argument(kwargs: dict[str, object], exc: type[Exception], match: str) -> None:
    P, R, mu0 = kwargs.pop("P"), kwargs.pop("R"), kwargs.pop("mu0")
    with pytest.raises(exc, match=match):
        pg.FiniteMDP(P, R, mu0, **kwargs)  # type: ignore[arg-type]


def test_bad_sparse_inputs() -> None:
    S, A = 3, 2
    Psp = sp.csr_matrix(P0.reshape(S * A, S))
    with pytest.raises(ValueError, match=r"sparse P must have shape \(S\*A, S\)"):
        pg.FiniteMDP(Psp[:5], R0, MU0, horizon=3)
    with pytest.raises(ValueError, match=r"sparse R must have shape"):
        pg.FiniteMDP(Psp, sp.csr_matrix((5, 3)), MU0, horizon=3)
    bad = Psp.copy()
    bad.data[0] = 0.5
    with pytest.raises(ValueError, match=r"P\[s=0, a=0, :\] sums to 0.5"):
        pg.FiniteMDP(bad, R0, MU0, horizon=3)


def test_zero_sizes_rejected() -> None:
    with pytest.raises(ValueError, match="P must have shape"):
        pg.FiniteMDP(np.zeros((0, 2, 0)), np.zeros((0, 2)), np.zeros(0), horizon=3)
    with pytest.raises(ValueError, match="P must have shape"):
        pg.FiniteMDP(np.zeros((2, 0, 2)), np.zeros((2, 0)), [0.5, 0.5], horizon=3)


def test_dense_P_refuses_huge_arrays() -> None:
    S = 20000
    Psp = sp.csr_matrix((np.ones(S), (np.arange(S), np.arange(S))), shape=(S, S))
    mdp = pg.FiniteMDP(Psp, np.zeros((S, 1)), np.full(S, 1.0 / S), horizon=2)
    assert mdp.nnz == S
    with pytest.raises(MemoryError, match="mdp.transitions"):
        _ = mdp.P


def test_ragged_nested_lists_name_the_argument() -> None:
    with pytest.raises(ValueError, match="P must be a rectangular array"):
        pg.FiniteMDP([[[1.0]], [[0.5, 0.5]]], np.zeros((2, 1)), [0.5, 0.5], horizon=5)
    mdp = pg.FiniteMDP(np.full((2, 1, 2), 0.5), np.zeros((2, 1)), [0.5, 0.5], horizon=2)
    with pytest.raises(ValueError, match="states must be a rectangular array"):
        pg.Trajectories(mdp, [[0, 1], [0]], [[0, 0], [0, 0]], np.zeros((2, 2)), [2, 2], [0, 0])


def test_sparse_rewards_complex_or_nan_are_named() -> None:
    import scipy.sparse as sp  # a test requirement (pyproject: test extras)
    P = sp.csr_matrix(np.full((4, 2), 0.5))
    with pytest.raises(TypeError, match="R must be a real numeric matrix, got dtype complex128"):
        pg.FiniteMDP(P, sp.csr_matrix(np.full((4, 2), 1 + 1j)), [0.5, 0.5], horizon=3)
    R = np.ones((4, 2))
    R[1, 0] = np.nan  # row 1 of the (S*A, S) matrix is (s, a) = (0, 1)
    with pytest.raises(ValueError, match=r"R must be finite, found .*nan.* at \(s, a, s'\) = \(0, 1, 0\)"):
        pg.FiniteMDP(P, sp.csr_matrix(R), [0.5, 0.5], horizon=3)
