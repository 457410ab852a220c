"""Malformed input is refused before any work or allocation, with a ValueError / TypeError /
MemoryError that names the argument (a MemoryError also states the bytes)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

import pgfast as pg
from pgfast import _core

from helpers import random_mdp, random_policy


@pytest.fixture(autouse=True)
def _at_most_8_gib(monkeypatch: pytest.MonkeyPatch) -> None:
    """The memory checks see at most 8 GiB available, so the refusals below do not depend on the
    machine (the tests themselves allocate little)."""
    from pgfast import _validation

    real = _validation.available_memory()
    monkeypatch.setattr(_validation, "available_memory", lambda: min(real or 8 << 30, 8 << 30))


def _raises(exc: type[BaseException], names: str | tuple[str, ...], f: Callable[[], Any]) -> str:
    """``f()`` raises ``exc`` whose message names (one of) ``names``; returns the message."""
    with pytest.raises(exc) as info:
        f()
    msg = str(info.value)
    options = (names,) if isinstance(names, str) else names
    assert any(n in msg for n in options), f"{msg!r} does not name {options}"
    return msg


def _small() -> tuple[pg.FiniteMDP, pg.TabularSoftmax]:
    mdp = pg.FiniteMDP(np.full((2, 3, 2), 0.5), np.array([[0.0, 1, 2], [2, 1, 0]]), [0.5, 0.5], horizon=5)
    return mdp, pg.TabularSoftmax(2, 3)


# -- sparse P and R ------------------------------------------------------------------------------


def test_csr_with_decreasing_indptr_is_a_value_error_naming_P() -> None:
    P = sp.csr_matrix((np.ones(3), np.zeros(3, np.int32), np.array([0, 8, 2, 3], np.int32)), shape=(3, 1))
    msg = _raises(ValueError, "P", lambda: pg.FiniteMDP(P, np.zeros((1, 3)), [1.0], horizon=5))
    assert "indptr" in msg and "non-decreasing" in msg


def test_column_index_out_of_range_with_transition_rewards_names_P() -> None:
    S, A = 2, 1
    P = sp.csr_matrix((np.ones(2), np.array([0, 5], np.int32), np.array([0, 1, 2], np.int32)), shape=(S * A, S))
    msg = _raises(ValueError, "P", lambda: pg.FiniteMDP(P, np.zeros((S, A, S)), [1.0, 0.0], horizon=5))
    assert "5" in msg and "[0, 2)" in msg


@pytest.mark.parametrize("shape", [(2**31, 2**31), (3 * 2**31, 3)])
def test_huge_declared_sparse_shape_is_refused_before_allocating(shape: tuple[int, int]) -> None:
    P = sp.coo_matrix((np.ones(1), (np.array([0]), np.array([0]))), shape=shape)
    msg = _raises(ValueError, "P", lambda: pg.FiniteMDP(P, np.zeros((1, 1)), [1.0], horizon=5))
    assert "2**31 - 1" in msg


def test_sparse_shape_within_int32_but_beyond_memory_is_a_memory_error() -> None:
    S = 2**31 - 1  # A = 8: the CSR row pointer alone would be 8 * 2**34 bytes
    P = sp.coo_matrix((np.ones(1), (np.array([0]), np.array([0]))), shape=(8 * S, S))
    msg = _raises(MemoryError, "P", lambda: pg.FiniteMDP(P, np.zeros((1, 1)), [1.0], horizon=5))
    assert re.search(r"\d+ bytes", msg)


def _dense_P(rng: np.random.Generator, S: int = 4, A: int = 2) -> np.ndarray:
    P = rng.dirichlet(np.ones(S), size=(S, A))
    P[P < 0.15] = 0.0
    return P / P.sum(axis=2, keepdims=True)


_FORMATS = ["csr", "csc", "coo", "bsr", "dia", "lil", "dok"]


@pytest.mark.parametrize("array_class", [False, True])
@pytest.mark.parametrize("fmt", _FORMATS)
def test_every_sparse_format_gives_the_dense_mdp(rng: np.random.Generator, fmt: str, array_class: bool) -> None:
    S, A = 4, 2
    P = _dense_P(rng, S, A)
    R = rng.normal(size=(S, A, S))
    mu0 = np.full(S, 1 / S)
    make = getattr(sp, f"{fmt}_array" if array_class else f"{fmt}_matrix")
    flat = P.reshape(S * A, S)
    Ps = make(flat, blocksize=(2, 2)) if fmt == "bsr" else make(flat)
    Rs = make(np.where(flat > 0, R.reshape(S * A, S), 0.0))
    dense = pg.FiniteMDP(P, R, mu0, horizon=3)
    for mdp in (pg.FiniteMDP(Ps, R, mu0, horizon=3), pg.FiniteMDP(Ps, Rs, mu0, horizon=3)):
        for a, b in zip(mdp.transitions, dense.transitions):
            np.testing.assert_array_equal(a, b)


def _broken(fmt: str, array_class: bool) -> tuple[Any, str]:
    """A (4, 2) sparse P (S = 2, A = 2) whose index structure was corrupted after construction
    (SciPy does not recheck it), and a word the error must contain."""
    S, A = 2, 2
    flat = np.full((S * A, S), 0.5)
    make = getattr(sp, f"{fmt}_array" if array_class else f"{fmt}_matrix")
    if fmt == "csr":
        M = make(flat)
        M.indptr[1] = 7
        return M, "indptr"
    if fmt == "csc":
        M = make(flat)
        M.indices[0] = 9
        return M, "indices"
    if fmt == "coo":
        M = make(flat)
        M.col[0] = -1
        return M, "col"
    if fmt == "bsr":
        M = make(flat, blocksize=(2, 2))
        M.indices[0] = 3
        return M, "indices"
    if fmt == "lil":
        M = make(flat)
        M.rows[0] = [0, 5]
        return M, "5"
    if fmt == "dok":
        M = make(flat)
        store = getattr(M, "_dict", None)  # SciPy >= 1.13 keeps the entries in a private dict
        if isinstance(store, dict):
            store[(0, 7)] = 1.0
        else:
            dict.__setitem__(M, (0, 7), 1.0)
        return M, "7"
    M = make(flat)  # dia
    M.offsets = M.offsets.astype(np.float64)
    return M, "offsets"


@pytest.mark.parametrize("array_class", [False, True])
@pytest.mark.parametrize("fmt", _FORMATS)
def test_corrupted_sparse_structure_is_a_value_error_naming_P(fmt: str, array_class: bool) -> None:
    M, word = _broken(fmt, array_class)
    msg = _raises(ValueError, "P", lambda: pg.FiniteMDP(M, np.zeros((2, 2)), [1.0, 0.0], horizon=3))
    assert word in msg


def test_corrupted_sparse_R_is_a_value_error_naming_R() -> None:
    flat = np.full((4, 2), 0.5)
    R = sp.csr_matrix(flat)
    R.indices[1] = 4
    _raises(ValueError, "R", lambda: pg.FiniteMDP(flat.reshape(2, 2, 2), R, [1.0, 0.0], horizon=3))


@pytest.mark.parametrize("dtype", [np.bool_, np.complex128, object])
def test_sparse_P_of_a_non_real_dtype_is_a_type_error(dtype: Any) -> None:
    M = sp.csr_matrix(np.ones((2, 1)), dtype=dtype) if dtype is not object else sp.csr_matrix(np.ones((2, 1)))
    if dtype is object:
        M.data = M.data.astype(object)
    _raises(TypeError, "P", lambda: pg.FiniteMDP(M, np.zeros((1, 2)), [1.0], horizon=3))


# -- the C++ constructor checks the CSR itself ---------------------------------------------------


def _exact_spec(gamma: float, tol: float, method: str = "DENSE") -> Any:
    """The arguments of a discounted exact evaluation as the core takes them."""
    return _core.exact.EvaluationSpec(objective=_core.exact.Objective.DISCOUNTED, gamma=gamma,
                                      method=_core.exact.Method[method], tol=tol, threads=1, values=True,
                                      gradient=False, fisher=False)


def _csr_args(**change: Any) -> dict[str, Any]:
    S, A = 3, 1
    args = {
        "n_states": S, "n_actions": A,
        "indptr": np.array([0, 1, 2, 3], np.int64), "next": np.array([1, 2, 0], np.int32),
        "prob": np.ones(3), "reward": np.zeros(3), "terminal": np.zeros(S, np.uint8),
        "mu0": np.array([1.0, 0, 0]), "horizon": 5, "gamma": 1.0,
    }
    args.update(change)
    return args


def test_core_mdp_accepts_a_valid_csr() -> None:
    assert _core.mdp.MDP(**_csr_args()).nnz == 3


@pytest.mark.parametrize(
    ("change", "word"),
    [
        ({"indptr": np.array([1, 1, 2, 3], np.int64)}, "indptr"),
        ({"indptr": np.array([0, 8, 2, 3], np.int64)}, "non-decreasing"),
        ({"indptr": np.array([0, 1, 2, 2], np.int64)}, "nnz"),
        ({"indptr": np.array([0, 1, 2], np.int64)}, "indptr"),
        ({"next": np.array([1, 3, 0], np.int32)}, "successor"),
        ({"next": np.array([1, -1, 0], np.int32)}, "successor"),
        ({"prob": np.ones(2)}, "prob"),
        ({"reward": np.zeros(4)}, "reward"),
        ({"mu0": np.ones(2) / 2}, "mu0"),
        ({"terminal": np.zeros(4, np.uint8)}, "terminal"),
        ({"n_states": 0}, "n_states"),
    ],
)
def test_core_mdp_refuses_a_malformed_csr(change: dict[str, Any], word: str) -> None:
    _raises(ValueError, word, lambda: _core.mdp.MDP(**_csr_args(**change)))


def test_from_csr_with_a_decreasing_indptr_names_indptr() -> None:
    _raises(ValueError, "indptr", lambda: pg.FiniteMDP._from_csr(
        3, 1, np.array([0, 8, 2, 3]), np.zeros(3, np.int32), np.ones(3), np.zeros(3), np.array([1.0, 0, 0]), None,
        horizon=5))


def test_core_index_kernels_check_ranges() -> None:
    logp = np.log(np.full((2, 3), 1 / 3))
    _raises(ValueError, "states", lambda: _core.policy.gather_log_prob(logp, np.array([0, 2], np.int32), np.array([0, 0], np.int32)))
    _raises(ValueError, "actions", lambda: _core.policy.gather_log_prob(logp, np.array([0, 1], np.int32), np.array([0, 3], np.int32)))
    _raises(ValueError, "states", lambda: _core.policy.sample_actions(np.exp(logp), np.array([-1], np.int32), 0))


# -- sizes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "name"), [((2**40, 2), "n_states"), ((2, 2**63), "n_actions"),
                                            ((2**31, 1), "n_states")])
def test_tabular_sizes_beyond_int32_are_value_errors(args: tuple[int, int], name: str) -> None:
    _raises(ValueError, name, lambda: pg.TabularSoftmax(*args))


def test_tabular_table_beyond_memory_is_a_memory_error_stating_bytes() -> None:
    msg = _raises(MemoryError, "TabularSoftmax", lambda: pg.TabularSoftmax(2**30, 2**30))
    assert f"{16 * 2**60} bytes" in msg


def test_mlp_activations_beyond_memory_are_refused_before_the_forward_pass() -> None:
    S, d, A, h = 10**6, 4, 4, 4096
    big = np.broadcast_to(np.ones(d), (S, d))  # no memory of its own
    msg = _raises(MemoryError, "activations", lambda: pg.MLPSoftmax(big, A, hidden=(h,) * 4))
    assert f"{8 * S * (4 * h + A + 2 * h)} bytes" in msg
    msg = _raises(MemoryError, "activations", lambda: pg.MLPSoftmax(np.ones((S, d)), A, hidden=(h,)))
    assert f"{8 * S * (h + A + 2 * h)} bytes" in msg


def test_mlp_sizes_are_bounded_and_integers() -> None:
    _raises(ValueError, "hidden[1]", lambda: pg.MLPSoftmax(3, 2, hidden=(4, 2**31)))
    _raises(TypeError, "hidden[0]", lambda: pg.MLPSoftmax(3, 2, hidden=(4.0,)))
    _raises(ValueError, "n_actions", lambda: pg.MLPSoftmax(3, 2**31, hidden=()))
    _raises(ValueError, "state_features", lambda: pg.MLPSoftmax(2**31, 2, hidden=()))
    _raises(MemoryError, "state_features", lambda: pg.MLPSoftmax(2**30, 2, hidden=()))
    _raises(TypeError, "activation", lambda: pg.MLPSoftmax(3, 2, activation=None))  # type: ignore[arg-type]


def test_linear_features_beyond_memory_are_refused_before_conversion() -> None:
    huge = np.broadcast_to(np.float32(1.0), (2**20, 2**10, 2**10))  # 2**40 values, no memory of its own
    msg = _raises(MemoryError, "features", lambda: pg.LinearSoftmax(huge))
    assert "bytes" in msg


# -- wrong exception types and unclear messages --------------------------------------------------


def test_array_baseline_is_a_type_error_naming_baseline() -> None:
    mdp, pi = _small()
    traj = mdp.sample(pi, 4, seed=0)
    _raises(TypeError, "baseline", lambda: pg.policy_gradient(pi, traj, baseline=np.zeros(3)))
    _raises(TypeError, "baseline", lambda: pg.policy_gradient(pi, mdp=mdp, n=4, seed=0, baseline=np.zeros((5, 2))))
    _raises(TypeError, "baseline", lambda: pg.train(mdp, pi, optimizer=pg.optim.Adam(), iterations=1, batch=2, seed=0,
                                                    baseline=np.zeros(3), progress=False))
    _raises(ValueError, "weights", lambda: pg.policy_gradient(pi, traj, weights=np.zeros(3)))  # type: ignore[arg-type]


@pytest.mark.parametrize("opt", [pg.optim.GradientAscent(), pg.optim.Adam(), pg.optim.NaturalGradient()],
                         ids=lambda o: type(o).__name__)
def test_load_state_dict_missing_key_and_non_dict(opt: pg.optim.Optimizer) -> None:
    state = opt.state_dict()
    for key in [k for k in state if k != "type"]:
        broken = {k: v for k, v in state.items() if k != key}
        _raises(ValueError, repr(key), lambda: opt.load_state_dict(broken))
    _raises(TypeError, "state", lambda: opt.load_state_dict([1, 2]))  # type: ignore[arg-type]
    _raises(ValueError, "type", lambda: opt.load_state_dict({**state, "type": "Other"}))
    opt.load_state_dict(state)  # the round trip still works
    assert opt.state_dict() == state


@pytest.mark.parametrize(
    ("desc", "word"),
    [(["FFFG"], "start cell"), (["FFF", "FHG"], "start cell"), ("SFFG", "desc"), ([], "desc"),
     (["SF", "FHG"], "one length"), (["SX", "FG"], "'X'")],
)
def test_frozen_lake_maps_without_start_or_malformed(desc: Any, word: str) -> None:
    msg = _raises(ValueError, "desc", lambda: pg.FiniteMDP.from_gymnasium("FrozenLake-v1", desc=desc))
    assert word in msg


def test_frozen_lake_map_of_one_row_with_a_start_works() -> None:
    mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", desc=["SFFG"], is_slippery=False)
    assert (mdp.n_states, mdp.n_actions) == (4, 4)
    pi = pg.TabularSoftmax(4, 4, theta=np.tile([0.0, 0.0, 9.0, 0.0], (4, 1)))  # mostly right
    assert pg.exact.evaluate(mdp, pi, "finite_horizon").J > 0.9


def test_train_checks_every_argument_before_the_first_iteration() -> None:
    mdp, pi = _small()
    calls: list[int] = []

    class Counting(pg.optim.GradientAscent):
        def step(self, policy: Any, grad: Any, **context: Any) -> Any:
            calls.append(1)
            return super().step(policy, grad, **context)

    def run(**kw: Any) -> Any:
        base = {"optimizer": Counting(), "iterations": 2, "batch": 4, "seed": 0, "progress": False}
        return pg.train(mdp, pi, **{**base, **kw})

    _raises(TypeError, "callback", lambda: run(callback=3))
    _raises(ValueError, "batch", lambda: run(batch=2**63))
    _raises(ValueError, "iterations", lambda: run(iterations=2**63))
    _raises(TypeError, "batch", lambda: run(batch=4.0))
    _raises(TypeError, "iterations", lambda: run(iterations=True))
    _raises(TypeError, "threads", lambda: run(threads=1.0))
    _raises(ValueError, "baseline", lambda: run(baseline="meen"))
    _raises(ValueError, "weights", lambda: run(weights="rtg"))
    _raises(ValueError, "gamma", lambda: run(gamma=1.5))
    _raises(ValueError, "batch", lambda: run(batch=1, baseline=pg.ValueBaseline(mdp.n_states, mdp.horizon)))
    assert calls == []
    assert len(run(iterations=2**31 - 1, callback=lambda it, rec: True)) == 1


def test_trajectories_are_immutable() -> None:
    mdp, pi = _small()
    traj = mdp.sample(pi, 4, seed=0)
    before = pg.policy_gradient(pi, traj).grad
    for name in ("states", "actions", "rewards", "lengths", "final_states", "mdp", "seed"):
        _raises(AttributeError, "immutable", lambda: setattr(traj, name, getattr(traj, name)))
        _raises(AttributeError, "immutable", lambda: delattr(traj, name))
    for arr in (traj.states, traj.actions, traj.rewards, traj.lengths, traj.final_states):
        with pytest.raises(ValueError, match="read-only"):
            arr.flat[0] = 1
    np.testing.assert_array_equal(pg.policy_gradient(pi, traj).grad, before)


def test_hand_built_batch_copies_the_callers_arrays() -> None:
    mdp, pi = _small()
    traj = mdp.sample(pi, 3, seed=1)
    arrays = [a.copy() for a in (traj.states, traj.actions, traj.rewards, traj.lengths, traj.final_states)]
    own = pg.Trajectories(mdp, *arrays)
    for a in arrays:
        assert a.flags.writeable  # the caller's arrays are not frozen
        a.flat[0] = 0
    np.testing.assert_array_equal(own.states, traj.states)
    np.testing.assert_array_equal(own.rewards, traj.rewards)
    _raises(TypeError, "seed", lambda: pg.Trajectories(mdp, *arrays, seed=1.5))  # type: ignore[arg-type]


class _TableEnv:
    """A toy-text style environment with a hand-made P (2 states, 1 action)."""

    @staticmethod
    def make(entry: tuple[Any, Any, Any, Any]) -> Any:
        import gymnasium
        from gymnasium import spaces

        class Env(gymnasium.Env):  # type: ignore[type-arg]
            observation_space = spaces.Discrete(2)
            action_space = spaces.Discrete(1)

            def __init__(self) -> None:
                self.P = {0: {0: [entry]}, 1: {0: [(1.0, 1, 0.0, False)]}}
                self.initial_state_distrib = np.array([1.0, 0.0])

        return Env()


@pytest.mark.parametrize(
    ("entry", "word"),
    [((1.0, True, 0.0, False), "next_state"), (("1.0", 1, 0.0, False), "probability"),
     ((1.0, 1, "0.5", False), "reward"), ((1.0, 1.0, 0.0, False), "next_state"), ((True, 1, 0.0, False), "probability")],
)
def test_custom_gymnasium_table_types_are_not_coerced(entry: tuple[Any, ...], word: str) -> None:
    msg = _raises(TypeError, word, lambda: pg.FiniteMDP.from_gymnasium(_TableEnv.make(entry), horizon=3))
    assert "P[0][0]" in msg


def test_custom_gymnasium_table_with_numpy_scalars_is_read() -> None:
    env = _TableEnv.make((np.float64(1.0), np.int64(1), np.float32(2.0), False))
    mdp = pg.FiniteMDP.from_gymnasium(env, horizon=3)
    assert mdp.transitions[1].tolist() == [1, 1]


def test_exact_tol_is_bounded() -> None:
    mdp, pi = _small()
    for tol in (0.5, 0.0, -1e-3, float("nan")):
        _raises(ValueError, "tol", lambda: pg.exact.evaluate(mdp, pi, "discounted", gamma=0.9, tol=tol))
    _raises(TypeError, "tol", lambda: pg.exact.evaluate(mdp, pi, "discounted", gamma=0.9, tol="1e-6"))
    ok = pg.exact.evaluate(mdp, pi, "discounted", gamma=0.9, tol=1e-2, method="sparse")
    exact = pg.exact.evaluate(mdp, pi, "discounted", gamma=0.9, method="dense")
    np.testing.assert_allclose(ok.J, exact.J, rtol=1e-2)


def test_bench_json_refuses_a_missing_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pgfast.cli import main

    target = tmp_path / "missing" / "out.json"
    assert main(["bench", "--quick", "--only", "sampler", "--json", str(target)]) == 2
    assert "--json" in capsys.readouterr().err
    assert not (tmp_path / "missing").exists()


# -- audit of the public API ---------------------------------------------------------------------


def _audit_cases() -> list[tuple[str, Callable[[pg.FiniteMDP, pg.TabularSoftmax, pg.Trajectories], Any], type[BaseException], str]]:
    nan = float("nan")
    return [
        ("sample n float", lambda m, p, t: m.sample(p, 4.0, seed=0), TypeError, "n"),
        ("sample n bool", lambda m, p, t: m.sample(p, True, seed=0), TypeError, "n"),
        ("sample n huge", lambda m, p, t: m.sample(p, 2**63, seed=0), ValueError, "n"),
        ("sample seed negative", lambda m, p, t: m.sample(p, 4, seed=-1), ValueError, "seed"),
        ("sample threads 0", lambda m, p, t: m.sample(p, 4, seed=0, threads=0), ValueError, "threads"),
        ("sample policy", lambda m, p, t: m.sample("pi", 4, seed=0), TypeError, "policy"),
        ("mdp horizon float", lambda m, p, t: pg.FiniteMDP(np.ones((1, 1, 1)), np.zeros((1, 1)), [1.0], horizon=5.0),
         TypeError, "horizon"),
        ("mdp horizon huge", lambda m, p, t: pg.FiniteMDP(np.ones((1, 1, 1)), np.zeros((1, 1)), [1.0], horizon=2**31),
         ValueError, "horizon"),
        ("mdp P nan", lambda m, p, t: pg.FiniteMDP(np.full((1, 1, 1), nan), np.zeros((1, 1)), [1.0], horizon=5),
         ValueError, "P"),
        ("mdp P int8 bad sum", lambda m, p, t: pg.FiniteMDP(np.full((1, 1, 1), 2, np.int8), np.zeros((1, 1)), [1.0], horizon=5),
         ValueError, "P"),
        ("mdp P empty", lambda m, p, t: pg.FiniteMDP(np.zeros((0, 0, 0)), np.zeros((0, 0)), [], horizon=5), ValueError, "P"),
        ("mdp R inf", lambda m, p, t: pg.FiniteMDP(np.ones((1, 1, 1)), np.full((1, 1), np.inf), [1.0], horizon=5),
         ValueError, "R"),
        ("mdp mu0 shape", lambda m, p, t: pg.FiniteMDP(np.ones((1, 1, 1)), np.zeros((1, 1)), [0.5, 0.5], horizon=5),
         ValueError, "mu0"),
        ("mdp gamma bool", lambda m, p, t: pg.FiniteMDP(np.ones((1, 1, 1)), np.zeros((1, 1)), [1.0], horizon=5, gamma=True),
         TypeError, "gamma"),
        ("mdp terminal float", lambda m, p, t: pg.FiniteMDP(np.ones((1, 1, 1)), np.zeros((1, 1)), [1.0], horizon=5,
                                                              terminal=[0.5]), TypeError, "terminal"),
        ("tabular theta shape", lambda m, p, t: pg.TabularSoftmax(2, 3, theta=np.zeros(6)), ValueError, "theta"),
        ("tabular theta nan", lambda m, p, t: pg.TabularSoftmax(2, 3, theta=np.full((2, 3), nan)), ValueError, "theta"),
        ("tabular theta str", lambda m, p, t: pg.TabularSoftmax(2, 3, theta=[["a"] * 3] * 2), TypeError, "theta"),
        ("tabular n_states float", lambda m, p, t: pg.TabularSoftmax(2.0, 3), TypeError, "n_states"),
        ("tabular n_actions 0", lambda m, p, t: pg.TabularSoftmax(2, 0), ValueError, "n_actions"),
        ("linear features 2-D", lambda m, p, t: pg.LinearSoftmax(np.ones((2, 3))), ValueError, "features"),
        ("linear features empty", lambda m, p, t: pg.LinearSoftmax(np.ones((2, 3, 0))), ValueError, "features"),
        ("linear features inf", lambda m, p, t: pg.LinearSoftmax(np.full((2, 3, 1), np.inf)), ValueError, "features"),
        ("mlp features nan", lambda m, p, t: pg.MLPSoftmax(np.full((2, 2), nan), 3), ValueError, "state_features"),
        ("mlp hidden str", lambda m, p, t: pg.MLPSoftmax(2, 3, hidden="64"), TypeError, "hidden"),
        ("policy sample states range", lambda m, p, t: p.sample([0, 2], seed=0), ValueError, "states"),
        ("policy sample states float", lambda m, p, t: p.sample([0.0], seed=0), TypeError, "states"),
        ("log_prob shapes", lambda m, p, t: p.log_prob([0, 1], [0]), ValueError, "states"),
        ("log_prob actions range", lambda m, p, t: p.log_prob([0], [3]), ValueError, "actions"),
        ("pg weights", lambda m, p, t: pg.policy_gradient(p, t, weights="rtg"), ValueError, "weights"),
        ("pg gamma nan", lambda m, p, t: pg.policy_gradient(p, t, gamma=nan), ValueError, "gamma"),
        ("pg stderr int", lambda m, p, t: pg.policy_gradient(p, t, stderr=1), TypeError, "stderr"),
        ("pg traj", lambda m, p, t: pg.policy_gradient(p, "traj"), TypeError, "traj"),
        ("pg threads huge", lambda m, p, t: pg.policy_gradient(p, t, threads=2**40), ValueError, "threads"),
        ("pg fused n huge", lambda m, p, t: pg.policy_gradient(p, mdp=m, n=2**63, seed=0), ValueError, "n"),
        ("exact objective", lambda m, p, t: pg.exact.evaluate(m, p, "nope"), ValueError, "objective"),
        ("exact method", lambda m, p, t: pg.exact.evaluate(m, p, "discounted", gamma=0.9, method="lu"),
         ValueError, "method"),
        ("exact gamma", lambda m, p, t: pg.exact.evaluate(m, p, "discounted", gamma=1.5), ValueError, "gamma"),
        ("exact policy", lambda m, p, t: pg.exact.evaluate(m, None, "discounted", gamma=0.9), TypeError, "policy"),
        ("exact mdp", lambda m, p, t: pg.exact.evaluate(None, p, "discounted", gamma=0.9), TypeError, "mdp"),
        ("traj returns gamma", lambda m, p, t: t.returns(gamma=-0.1), ValueError, "gamma"),
        ("traj states float", lambda m, p, t: pg.Trajectories(m, t.states + 0.5, t.actions, t.rewards, t.lengths,
                                                                t.final_states), TypeError, "states"),
        ("traj rewards shape", lambda m, p, t: pg.Trajectories(m, t.states, t.actions, t.rewards[:, :2], t.lengths,
                                                                 t.final_states), ValueError, "rewards"),
        ("adam lr", lambda m, p, t: pg.optim.Adam(lr=-1.0), ValueError, "lr"),
        ("adam betas", lambda m, p, t: pg.optim.Adam(betas=(1.0, 0.5)), ValueError, "betas"),
        ("ga schedule", lambda m, p, t: pg.optim.GradientAscent(schedule="linear"), ValueError, "schedule"),
        ("ng fisher", lambda m, p, t: pg.optim.NaturalGradient(fisher="none"), ValueError, "fisher"),
        ("ng damping nan", lambda m, p, t: pg.optim.NaturalGradient(damping=nan), ValueError, "damping"),
        ("step grad shape", lambda m, p, t: pg.optim.Adam().step(p, np.zeros(5)), ValueError, "grad"),
        ("step grad nan", lambda m, p, t: pg.optim.Adam().step(p, np.full((2, 3), nan)), ValueError, "grad"),
        ("from_gymnasium id", lambda m, p, t: pg.FiniteMDP.from_gymnasium(3), TypeError, "env_or_id"),
    ]


_AUDIT = _audit_cases()


@pytest.mark.parametrize(("label", "call", "exc", "name"), _AUDIT, ids=[c[0] for c in _AUDIT])
def test_public_api_names_the_argument(
    rng: np.random.Generator, label: str, call: Callable[..., Any], exc: type[BaseException], name: str
) -> None:
    mdp, pi = _small()
    traj = mdp.sample(pi, 4, seed=0)
    _raises(exc, name, lambda: call(mdp, pi, traj))


@pytest.mark.parametrize("layout", ["fortran", "strided", "readonly", "float32", "int8"])
def test_array_layouts_and_dtypes_give_the_same_results(rng: np.random.Generator, layout: str) -> None:
    mdp = random_mdp(rng, S=5, A=3)
    pi = random_policy(rng, mdp)
    P, R, mu0 = mdp.P, mdp.R, mdp.mu0.copy()
    theta = pi.theta.copy()

    def convert(x: np.ndarray) -> np.ndarray:
        if layout == "fortran":
            return np.asfortranarray(x)
        if layout == "strided":
            big = np.zeros(x.shape + (2,))
            big[..., 0] = x
            return big[..., 0]
        if layout == "readonly":
            y = x.copy()
            y.setflags(write=False)
            return y
        if layout == "float32":
            return x.astype(np.float32)
        return np.round(x).astype(np.int8)

    if layout == "int8":  # integer data: a deterministic MDP
        P = np.zeros_like(P)
        P[..., 0] = 1.0
        mu0 = np.eye(5)[0]
    exact_dist = layout != "float32"  # float32 probabilities miss the 1e-8 sum tolerance after rounding
    Pc, mc = (convert(P), convert(mu0)) if exact_dist else (P, mu0)
    m2 = pg.FiniteMDP(Pc, convert(R), mc, horizon=mdp.horizon)
    p2 = pg.TabularSoftmax(5, 3, theta=convert(theta))
    ref_m = pg.FiniteMDP(np.asarray(Pc, dtype=np.float64), np.asarray(convert(R), dtype=np.float64),
                         np.asarray(mc, dtype=np.float64), horizon=mdp.horizon)
    ref_p = pg.TabularSoftmax(5, 3, theta=np.asarray(convert(theta), dtype=np.float64))
    a, b = pg.exact.evaluate(m2, p2, "finite_horizon"), pg.exact.evaluate(ref_m, ref_p, "finite_horizon")
    assert a.J == b.J
    np.testing.assert_array_equal(a.V, b.V)


@pytest.mark.parametrize("value", [np.zeros(3), None, 3, ["discounted"]], ids=["array", "none", "int", "list"])
def test_string_choices_are_not_compared_elementwise(value: Any) -> None:
    mdp, pi = _small()
    _raises(ValueError, "objective", lambda: pg.exact.evaluate(mdp, pi, value))
    _raises(ValueError, "objective", lambda: pg.exact.optimal(mdp, value))
    _raises(ValueError, "method", lambda: pg.exact.evaluate(mdp, pi, "discounted", gamma=0.9, method=value))
    _raises(ValueError, "schedule", lambda: pg.optim.GradientAscent(schedule=value))
    _raises(ValueError, "fisher", lambda: pg.optim.NaturalGradient(fisher=value))
    state = pg.optim.GradientAscent().state_dict()
    _raises(ValueError, "schedule", lambda: pg.optim.GradientAscent().load_state_dict({**state, "schedule": value}))


@pytest.mark.parametrize("bad", ["nan", "negative", "row_sum"])
def test_core_samplers_and_solvers_check_the_policy_table(bad: str) -> None:
    mdp, _ = _small()
    probs = np.full((2, 3), 1 / 3)
    if bad == "nan":
        probs[1, 2] = np.nan
    elif bad == "negative":
        probs[0] = [1.5, -0.5, 0.0]
    else:
        probs[0, 0] = 0.9
    _raises(ValueError, "policy probabilities", lambda: _core.sampling.sample(mdp._mdp, probs, 4, 0, 1))
    _raises(ValueError, "policy probabilities", lambda: _core.exact.evaluate(mdp._mdp, probs, _exact_spec(0.9, 1e-12)))
    spec = _core.estimators.EstimatorSpec(
        probs=probs, features=None, net=None, weights=_core.estimators.WeightKind.REWARD_TO_GO, explicit_weights=None,
        gamma=1.0, baseline=_core.estimators.BaselineKind.NONE, table=None, threads=1)
    _raises(ValueError, "policy probabilities", lambda: _core.estimators.fused_gradient(spec, mdp._mdp, 4, 0, False))
    _raises(ValueError, "probs", lambda: _core.policy.sample_actions(probs, np.zeros(2, np.int32), 0))


def test_a_copied_batch_is_equal_and_still_immutable() -> None:
    import copy

    mdp, pi = _small()
    traj = mdp.sample(pi, 3, seed=2)
    dup = copy.copy(traj)
    assert dup.seed == traj.seed and dup.mdp is traj.mdp
    for name in ("states", "actions", "rewards", "lengths", "final_states"):
        np.testing.assert_array_equal(getattr(dup, name), getattr(traj, name))
        assert not getattr(dup, name).flags.writeable
    _raises(AttributeError, "immutable", lambda: setattr(dup, "seed", 3))
    np.testing.assert_array_equal(pg.policy_gradient(pi, dup).grad, pg.policy_gradient(pi, traj).grad)


def test_history_records_and_files_are_checked(tmp_path: Path) -> None:
    import json

    h = pg.History()
    _raises(ValueError, "J_estimate", lambda: h.append({"iteration": 1}))
    _raises(TypeError, "record", lambda: h.append(3))  # type: ignore[arg-type]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"iteration": [1]}))
    _raises(ValueError, "J_estimate", lambda: pg.History.load_json(bad))
    bad.write_text(json.dumps([1, 2]))
    _raises(ValueError, "iteration", lambda: pg.History.load_json(bad))


def test_core_scalars_are_checked_in_the_bindings() -> None:
    mdp, _ = _small()
    probs = np.full((2, 3), 1 / 3)
    rw, ln = np.zeros((2, 3)), np.array([3, 1], np.int32)
    for g in (float("nan"), -0.5, 1.5):
        _raises(ValueError, "gamma", lambda: _core.returns.returns(rw, ln, g))
        _raises(ValueError, "gamma", lambda: _core.returns.reward_to_go(rw, ln, g))
        _raises(ValueError, "gamma", lambda: _core.exact.evaluate(mdp._mdp, probs, _exact_spec(g, 1e-12)))
        _raises(ValueError, "gamma", lambda: _core.exact.optimal(mdp._mdp, _core.exact.Objective.DISCOUNTED, g,
                                                                 _core.exact.Method.DENSE, 1e-12, 1))
    for tol in (0.0, float("nan"), 1.0):
        _raises(ValueError, "tol", lambda: _core.exact.evaluate(mdp._mdp, probs, _exact_spec(0.9, tol, "SPARSE")))
    F, g_ = np.eye(2), np.ones(2)
    _raises(ValueError, "damping", lambda: _core.exact.solve_fisher(F, g_, float("nan"), 0.0))
    _raises(ValueError, "rcond", lambda: _core.exact.solve_fisher(F, g_, 0.0, 1.0))
    _raises(ValueError, "rcond", lambda: _core.exact.natural_gradient_tabular(probs, np.ones(2), probs, 0.0, float("nan")))
    _raises(ValueError, "hidden", lambda: _core.mlp.MLPNet(np.ones((2, 2)), [2**40], 2, _core.mlp.Activation.TANH))


def test_dense_views_beyond_memory_are_refused_before_conversion() -> None:
    S = 2**17  # a (S, 1, S) float32 view of one value: 2**34 entries, no memory of its own
    P = np.broadcast_to(np.float32(1 / S), (S, 1, S))
    msg = _raises(MemoryError, "P", lambda: pg.FiniteMDP(P, np.zeros((S, 1)), np.full(S, 1 / S), horizon=2))
    assert f"{2**34 * 9} bytes" in msg
    small = np.full((2, 1, 2), 0.5)
    R = np.broadcast_to(np.float32(0), (2, 1, 2**40))
    _raises(MemoryError, "R", lambda: pg.FiniteMDP(small, R, [0.5, 0.5], horizon=2))


def test_array_views_beyond_memory_are_refused_before_conversion() -> None:
    mdp, pi = _small()
    traj = mdp.sample(pi, 2, seed=0)
    n, H = 2**20, 2**20  # int64 / float32 views of one value: no memory of their own
    big_i = np.broadcast_to(np.int64(0), (n, H))
    big_f = np.broadcast_to(np.float32(0), (n, H))
    _raises(MemoryError, "states", lambda: pg.Trajectories(mdp, big_i, big_i, big_f, np.zeros(n, np.int32),
                                                           np.zeros(n, np.int32)))
    _raises(MemoryError, "weights", lambda: pg.score(pi, traj, big_f))
    _raises(MemoryError, "states", lambda: pi.sample(big_i, seed=0))
    _raises(MemoryError, "theta", lambda: pg.TabularSoftmax(2, 3, theta=np.broadcast_to(np.float32(0), (2**19, 2**19, 2**2))))


def test_value_baseline_sizes_and_ridge_are_bounded() -> None:
    _raises(ValueError, "n_states", lambda: pg.ValueBaseline(2**31, 3))
    _raises(ValueError, "horizon", lambda: pg.ValueBaseline(3, 2**40))
    msg = _raises(MemoryError, "ValueBaseline", lambda: pg.ValueBaseline(2**30, 2**30))
    assert f"{24 * 2**60} bytes" in msg
    for ridge in (float("inf"), float("nan"), -1.0):
        _raises(ValueError, "ridge", lambda: pg.ValueBaseline(3, 3, ridge=ridge))
    _raises(TypeError, "ridge", lambda: pg.ValueBaseline(3, 3, ridge=True))


@pytest.mark.parametrize("array_class", [False, True])
def test_sparse_P_without_entries_and_sparse_R_names_P(array_class: bool) -> None:
    """No stored transitions select no entries of a sparse R (the sparse array classes return
    that selection as a sparse array): the error is P's rows, not the lookup."""
    make = sp.csr_array if array_class else sp.csr_matrix
    msg = _raises(ValueError, "P", lambda: pg.FiniteMDP(make(np.zeros((2, 2))), make(np.zeros((2, 2))), [1.0, 0.0],
                                                        horizon=3))
    assert "sums to 0" in msg


def test_an_update_that_would_overflow_names_the_step_and_changes_nothing() -> None:
    _, pi = _small()
    for opt, theta, grad, word in (
        (pg.optim.GradientAscent(lr=1.0), 1e308, 1e308, "overflowed"),  # theta + lr * grad leaves float64
        (pg.optim.Adam(lr=1.0), 0.0, 1e200, "grad"),  # g**2 would leave float64
    ):
        opt.step(pi, np.ones_like(pi.theta))
        pi.theta = np.full_like(pi.theta, theta)
        state = opt.state_dict()
        msg = _raises(ValueError, word, lambda: opt.step(pi, np.full_like(pi.theta, grad)))
        assert "theta must be finite" not in msg
        np.testing.assert_array_equal(pi.theta, np.full_like(pi.theta, theta))
        assert opt.state_dict() == state


def test_ragged_states_or_actions_of_log_prob_are_named() -> None:
    pi = pg.TabularSoftmax(4, 3)
    _raises(ValueError, "actions", lambda: pi.log_prob([1, 2], [[1, 2], [3]]))
    _raises(ValueError, "states", lambda: pi.log_prob([[1, 2], [3]], [1, 2]))
    _raises(ValueError, "terminal", lambda: pg.FiniteMDP(np.full((2, 1, 2), 0.5), np.zeros((2, 1)), [1, 0], horizon=2, terminal=[[1, 2], [3]]))


@pytest.mark.parametrize("make", [pg.optim.GradientAscent, pg.optim.Adam, pg.optim.NaturalGradient])
def test_a_refused_state_dict_changes_nothing(make: Any) -> None:
    opt = make(lr=0.1)
    before = opt.state_dict()
    bad = {**before, "lr": 0.7, "t": -3}
    _raises(ValueError, "t", lambda: opt.load_state_dict(bad))
    assert opt.state_dict() == before
