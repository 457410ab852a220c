"""Hypothesis strategies and the call checker shared by tests/test_fuzz.py and tests/fuzz_campaign.py.

Each *target* is one public entry point (or a short chain of them). Its strategy draws a
``Call``: the target's name and its raw inputs (NumPy arrays, SciPy sparse matrices and plain
Python values only, so a call pickles and can be replayed in another process). Most draws start
from a valid input and apply a few mutations (a wrong dtype, layout, shape, extreme value or
Python type), so both the normal path and the error paths are exercised.

``run_call`` executes a call and classifies the outcome:

- ``ok``: returned, and every float in the result is finite (except the fields documented as
  NaN, e.g. a standard error from one trajectory) and the result has the documented shape;
- ``error``: raised ValueError, TypeError or MemoryError whose message names one of the
  arguments the target allows (``NAMES``);
- ``nonfinite``: returned a NaN or inf that is not documented;
- ``bad_shape``: returned a result of the wrong shape;
- ``wrong_type``: raised anything else (IndexError, RuntimeError, KeyError, a warning turned
  into an error, ...);
- ``unnamed``: a documented exception type whose message names none of the arguments.
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st

import pgfast as pg

try:
    import scipy.sparse as sp
except ImportError:  # pragma: no cover - scipy is in the test extra
    sp = None

OK, ERROR, NONFINITE, BAD_SHAPE, WRONG_TYPE, UNNAMED = "ok", "error", "nonfinite", "bad_shape", "wrong_type", "unnamed"
BAD = (NONFINITE, BAD_SHAPE, WRONG_TYPE, UNNAMED)
DOCUMENTED = (ValueError, TypeError, MemoryError)


@dataclasses.dataclass
class Call:
    target: str
    args: dict[str, Any]

    def __repr__(self) -> str:
        with np.printoptions(threshold=200, precision=17):
            inner = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        return f"{self.target}({inner})"


class Lay:
    """An array with a memory layout applied only when the call runs (so a pickled call keeps it)."""

    def __init__(self, value: np.ndarray, layout: str) -> None:
        self.value, self.layout = value, layout

    def materialize(self) -> np.ndarray:
        a = self.value
        if self.layout == "fortran":
            return np.asfortranarray(a)
        if self.layout == "strided":  # a non-contiguous view with the same values
            big = np.repeat(a[..., None], 2, axis=-1) if a.ndim else a
            return big[..., 0] if a.ndim else big
        if self.layout == "readonly":
            b = a.copy()
            b.setflags(write=False)
            return b
        if self.layout == "reversed":  # negative strides
            return np.flip(np.flip(a).copy()) if a.ndim else a
        return a

    def __repr__(self) -> str:
        return f"Lay({self.value!r}, {self.layout!r})"


def real(x: Any) -> Any:
    """Materialize Lay values (recursively in lists, tuples and dicts)."""
    if isinstance(x, Lay):
        return x.materialize()
    if isinstance(x, list):
        return [real(v) for v in x]
    if isinstance(x, tuple):
        return tuple(real(v) for v in x)
    if isinstance(x, dict):
        return {k: real(v) for k, v in x.items()}
    return x


# -- building blocks --------------------------------------------------------------------------

EXTREMES = [0.0, -0.0, 1e-300, -1e-300, 1e300, -1e300, math.inf, -math.inf, math.nan, 5e-324, 1.0, -1.0, 700.0, -745.0]
# Huge sizes. The suite's list keeps to sizes no machine can allocate (so an unchecked allocation
# fails at once instead of swapping); the campaign, whose workers have an address-space limit,
# also tries sizes that fit in 64-bit but not in memory (CAMPAIGN = True).
HUGE_INTS = [2**40, 2**62, 2**63 - 1, 2**63, 2**64, -(2**31) - 1, -1, 0, 10**30]
HUGE_INTS_CAMPAIGN = HUGE_INTS + [2**31 - 1, 2**31, 2**32]
CAMPAIGN = False
# Counts of work (episodes, iterations): huge values beyond every documented bound, so a call
# either refuses them or hangs (a valid but huge job would only measure patience).
WORK_HUGE = [2**63, 2**64, 10**30, -1, 0, -(2**63), 2**62 + 1]
WRONG_TYPES = [None, "abc", "1.0", [[1, 2], [3]], {"a": 1}, b"x", 1 + 2j, object.__new__(object), True, (), []]
DTYPES = ["float64", "float32", "float16", "int8", "int64", "uint64", "bool", "object", "complex128", "longdouble"]
LAYOUTS = ["c", "fortran", "strided", "readonly", "reversed"]

small = st.integers(1, 4)


def _cast(a: np.ndarray, dtype: str) -> np.ndarray:
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dtype == "object":
            return a.astype(object)
        return a.astype(dtype)


@st.composite
def array_variant(draw: Any, a: np.ndarray, mutate_p: float = 0.35) -> Any:
    """``a`` itself (with a random layout), or one mutation of it."""
    a = np.asarray(a)
    layout = draw(st.sampled_from(LAYOUTS))
    if draw(st.floats(0, 1)) >= mutate_p:
        return Lay(a, layout)
    kind = draw(st.sampled_from(["dtype", "extreme", "shape", "type", "list", "scalar", "empty"]))
    if kind == "dtype":
        return Lay(_cast(a, draw(st.sampled_from(DTYPES))), layout)
    if kind == "extreme":
        b = np.array(a, dtype=np.float64, copy=True)
        if b.size:
            idx = tuple(draw(st.integers(0, n - 1)) for n in b.shape)
            b[idx] = draw(st.sampled_from(EXTREMES))
            if draw(st.booleans()):
                with np.errstate(all="ignore"):
                    b = b * draw(st.sampled_from([1e300, 1e-300, -1.0, 1e30]))
        return Lay(b, layout)
    if kind == "shape":
        shape = list(a.shape)
        op = draw(st.sampled_from(["grow", "shrink", "add", "drop"]))
        if op == "grow" and shape:
            shape[draw(st.integers(0, len(shape) - 1))] += 1
        elif op == "shrink" and shape:
            i = draw(st.integers(0, len(shape) - 1))
            shape[i] = max(0, shape[i] - 1)
        elif op == "add":
            shape.append(1)
        elif shape:
            shape.pop()
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            flat = np.asarray(a, dtype=np.float64).ravel()
        return Lay(np.resize(flat, tuple(shape)) if np.prod(shape) else np.zeros(shape), layout)
    if kind == "type":
        return draw(st.sampled_from(WRONG_TYPES))
    if kind == "list":
        return np.asarray(a).tolist()
    if kind == "scalar":
        return draw(st.sampled_from([0.0, 1.0, 0, np.float64(1.0), np.nan]))
    return np.zeros((0,) * max(a.ndim, 1))


@st.composite
def int_variant(draw: Any, valid: st.SearchStrategy[int], mutate_p: float = 0.25) -> Any:
    if draw(st.floats(0, 1)) >= mutate_p:
        return draw(valid)
    return draw(st.one_of(
        st.sampled_from(HUGE_INTS_CAMPAIGN if CAMPAIGN else HUGE_INTS),
        st.sampled_from(WRONG_TYPES),
        st.sampled_from([1.5, float("nan"), float("inf"), np.int8(3), np.uint64(2**63), np.float64(2.0), np.array(2), np.array([2])]),
    ))


@st.composite
def work_variant(draw: Any, valid: st.SearchStrategy[int], mutate_p: float = 0.25) -> Any:
    if draw(st.floats(0, 1)) >= mutate_p:
        return draw(valid)
    return draw(st.one_of(st.sampled_from(WORK_HUGE), st.sampled_from(WRONG_TYPES), st.sampled_from([1.5, np.int8(3), np.array([2])])))


@st.composite
def float_variant(draw: Any, valid: st.SearchStrategy[float], mutate_p: float = 0.25) -> Any:
    if draw(st.floats(0, 1)) >= mutate_p:
        return draw(valid)
    return draw(st.one_of(st.sampled_from(EXTREMES), st.sampled_from(WRONG_TYPES),
                          st.sampled_from([np.float32(0.5), np.array(0.5), np.array([0.5]), 2**70, -1])))


@st.composite
def choice_variant(draw: Any, options: list[Any], mutate_p: float = 0.15) -> Any:
    if draw(st.floats(0, 1)) >= mutate_p:
        return draw(st.sampled_from(options))
    return draw(st.sampled_from(WRONG_TYPES + ["", "RETURN", "nonsense", 0, 1.0]))


def _dirichlet_rows(rng: np.random.Generator, n: int, k: int, sparse_p: float) -> np.ndarray:
    x = rng.random((n, k))
    x[rng.random((n, k)) < sparse_p] = 0.0
    x[np.arange(n), rng.integers(0, k, n)] += 0.5
    return x / x.sum(axis=1, keepdims=True)


@st.composite
def valid_mdp_parts(draw: Any, max_s: int = 4, max_a: int = 3) -> dict[str, Any]:
    S = draw(st.integers(1, max_s))
    A = draw(st.integers(1, max_a))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    P = _dirichlet_rows(rng, S * A, S, draw(st.sampled_from([0.0, 0.5, 0.9]))).reshape(S, A, S)
    R = rng.normal(size=(S, A, S) if draw(st.booleans()) else (S, A))
    terminal = rng.random(S) < 0.3 if S > 1 else np.zeros(S, bool)
    if terminal.all():
        terminal[0] = False
    mu0 = rng.random(S) * ~terminal
    mu0 /= mu0.sum()
    return {"P": P, "R": R, "mu0": mu0, "horizon": draw(st.integers(1, 6)),
            "gamma": draw(st.sampled_from([1.0, 0.9, 0.5, 0.0])), "terminal": terminal}


def build_mdp(parts: dict[str, Any]) -> pg.FiniteMDP:
    return pg.FiniteMDP(parts["P"], parts["R"], parts["mu0"], horizon=parts["horizon"], gamma=parts["gamma"],
                        terminal=parts["terminal"])


@st.composite
def valid_policy_spec(draw: Any, S: int, A: int) -> dict[str, Any]:
    """A description of a policy for an (S, A) MDP, with theta of moderate or extreme scale."""
    kind = draw(st.sampled_from(["tabular", "linear", "mlp"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([0.0, 1.0, 1.0, 30.0, 700.0, 1e5]))
    if kind == "tabular":
        return {"kind": kind, "S": S, "A": A, "theta": scale * rng.normal(size=(S, A))}
    if kind == "linear":
        p = draw(st.integers(1, 3))
        return {"kind": kind, "features": rng.normal(size=(S, A, p)), "theta": scale * rng.normal(size=p)}
    hidden = tuple(draw(st.lists(st.integers(1, 4), max_size=2)))
    feats = S if draw(st.booleans()) else rng.normal(size=(S, draw(st.integers(1, 3))))
    d = S if isinstance(feats, int) else feats.shape[1]
    sizes = (d,) + hidden + (A,)
    n = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    return {"kind": kind, "features": feats, "A": A, "hidden": hidden,
            "activation": draw(st.sampled_from(["tanh", "relu"])), "theta": scale * rng.normal(size=n)}


def build_policy(spec: dict[str, Any]) -> pg.SoftmaxPolicy:
    kind = spec["kind"]
    if kind == "tabular":
        return pg.TabularSoftmax(spec["S"], spec["A"], theta=real(spec["theta"]))
    if kind == "linear":
        return pg.LinearSoftmax(real(spec["features"]), theta=real(spec["theta"]))
    return pg.MLPSoftmax(real(spec["features"]), spec["A"], hidden=spec["hidden"], activation=spec["activation"],
                         theta=real(spec["theta"]))


@st.composite
def mdp_and_policy(draw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    parts = draw(valid_mdp_parts())
    S, A = parts["P"].shape[:2]
    return parts, draw(valid_policy_spec(S, A))


# -- targets ----------------------------------------------------------------------------------
# Each: a strategy of Calls, a runner (args -> result), the argument names a message may name,
# and a checker of the result's shape (returns an error string or None).

TARGETS: dict[str, tuple[Callable[[], st.SearchStrategy[Call]], Callable[[dict[str, Any]], Any], set[str]]] = {}


def target(name: str, names: set[str]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def deco(run: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
        TARGETS[name] = (lambda: STRATEGIES[name], run, names)
        return run
    return deco


STRATEGIES: dict[str, st.SearchStrategy[Call]] = {}

_MDP_NAMES = {"P", "R", "mu0", "horizon", "gamma", "terminal"}


@st.composite
def _mdp_dense_call(draw: Any) -> Call:
    parts = draw(valid_mdp_parts())
    args = {k: draw(array_variant(v, 0.2)) for k, v in parts.items() if isinstance(v, np.ndarray)}
    args["horizon"] = draw(int_variant(st.just(parts["horizon"]), 0.15))
    args["gamma"] = draw(float_variant(st.just(parts["gamma"]), 0.15))
    if draw(st.booleans()):
        args["terminal"] = None
    return Call("FiniteMDP.dense", args)


STRATEGIES["FiniteMDP.dense"] = _mdp_dense_call()


@target("FiniteMDP.dense", _MDP_NAMES)
def _run_mdp_dense(a: dict[str, Any]) -> Any:
    a = real(a)
    mdp = pg.FiniteMDP(a["P"], a["R"], a["mu0"], horizon=a["horizon"], gamma=a["gamma"], terminal=a["terminal"])
    return {"P": (mdp.P, (mdp.n_states, mdp.n_actions, mdp.n_states)), "mu0": (mdp.mu0, (mdp.n_states,))}


SPARSE_FORMATS = ["csr_matrix", "csc_matrix", "coo_matrix", "bsr_matrix", "lil_matrix", "dok_matrix", "dia_matrix",
                  "csr_array", "coo_array", "csc_array"]


@st.composite
def _mdp_sparse_call(draw: Any) -> Call:
    parts = draw(valid_mdp_parts())
    S, A = parts["P"].shape[:2]
    flat = parts["P"].reshape(S * A, S)
    fmt = draw(st.sampled_from(SPARSE_FORMATS + ["raw_csr"] * 4))
    if fmt == "raw_csr":
        rows, cols = np.nonzero(flat)
        data = flat[rows, cols].astype(np.float64)
        indptr = np.zeros(S * A + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=S * A), out=indptr[1:])
        indices = cols.astype(np.int64)
        shape: tuple[int, int] = (S * A, S)
        mut = draw(st.sampled_from(["none", "indptr_decreasing", "indptr_unsorted", "indptr_overrun", "indices_range",
                                    "indices_negative", "indices_unsorted", "duplicates", "explicit_zero", "nan",
                                    "inf", "negative", "huge_shape", "short_indptr", "dtype"]))
        if mut == "indptr_decreasing" and len(indptr) > 2:
            indptr[1] = indptr[-1] + draw(st.integers(0, 5))
        elif mut == "indptr_unsorted" and len(indptr) > 2:
            indptr[1:-1] = indptr[1:-1][::-1].copy()
        elif mut == "indptr_overrun":
            indptr[-1] += draw(st.integers(1, 3))
        elif mut == "indices_range" and len(indices):
            indices[draw(st.integers(0, len(indices) - 1))] = S + draw(st.sampled_from([0, 1, 2**31]))
        elif mut == "indices_negative" and len(indices):
            indices[draw(st.integers(0, len(indices) - 1))] = -1
        elif mut == "indices_unsorted" and len(indices) > 1:
            indices = indices[::-1].copy()
        elif mut == "duplicates" and len(indices) > 1:
            indices[1] = indices[0]
        elif mut == "explicit_zero" and len(data):
            data[0] = 0.0
        elif mut in ("nan", "inf", "negative") and len(data):
            data[draw(st.integers(0, len(data) - 1))] = {"nan": np.nan, "inf": np.inf, "negative": -0.5}[mut]
        elif mut == "huge_shape":
            # (2**31, 2**31) makes SciPy's own conversions allocate a 16 GB indptr: campaign only.
            shapes = [(S * A, 2**40), (2**62, 1), (S * A * 2**20, S), (S * A, 2**31), (2**31 * S, S)]
            shape = draw(st.sampled_from(shapes + [(2**31, 2**31), (2**31 * 3, 2**31)] if CAMPAIGN else shapes))
        elif mut == "short_indptr":
            indptr = indptr[:-1]
        elif mut == "dtype":
            data = _cast(data, draw(st.sampled_from(["complex128", "float32", "int8", "bool"])))
        args: dict[str, Any] = {"format": fmt, "data": data, "indices": indices.astype(draw(st.sampled_from(["int32", "int64"]))),
                                "indptr": indptr.astype(draw(st.sampled_from(["int32", "int64"]))), "shape": shape,
                                "mutation": mut}
    else:
        dense = flat.copy()
        if draw(st.booleans()):
            dense[draw(st.integers(0, S * A - 1)), draw(st.integers(0, S - 1))] = draw(st.sampled_from(EXTREMES))
        args = {"format": fmt, "dense": dense, "dtype": draw(st.sampled_from(["float64", "float64", "float32", "int64", "complex128"]))}
    rsparse = draw(st.sampled_from(["dense", "dense", "sparse", "flat"]))
    args.update(R=parts["R"] if rsparse == "dense" else parts["R"].reshape(S * A, -1), R_sparse=rsparse == "sparse",
                mu0=parts["mu0"], horizon=parts["horizon"], terminal=parts["terminal"])
    return Call("FiniteMDP.sparse", args)


STRATEGIES["FiniteMDP.sparse"] = _mdp_sparse_call()


def make_sparse(a: dict[str, Any]) -> Any:
    assert sp is not None
    if a["format"] == "raw_csr":
        return sp.csr_matrix((a["data"], a["indices"], a["indptr"]), shape=a["shape"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(sp, a["format"])(_cast(a["dense"], a["dtype"]))


@target("FiniteMDP.sparse", _MDP_NAMES)
def _run_mdp_sparse(a: dict[str, Any]) -> Any:
    try:
        P = make_sparse(a)
    except Exception:  # SciPy refused the matrix itself: nothing reaches pgfast
        return None
    R = a["R"]
    if a["R_sparse"] and sp is not None:
        R = sp.csr_matrix(R if R.ndim == 2 else R.reshape(R.shape[0], -1))
    mdp = pg.FiniteMDP(P, R, a["mu0"], horizon=a["horizon"], terminal=a["terminal"])
    return {"P": (mdp.P, (mdp.n_states, mdp.n_actions, mdp.n_states)), "R": (mdp.R, None)}


_POLICY_NAMES = {"n_states", "n_actions", "theta", "features", "state_features", "hidden", "hidden layer size",
                 "activation", "seed", "states", "actions", "S", "A"}


@st.composite
def _policy_call(draw: Any) -> Call:
    S, A = draw(small), draw(small)
    spec = draw(valid_policy_spec(S, A))
    spec["theta"] = draw(array_variant(spec["theta"], 0.3))
    if spec["kind"] == "tabular":
        spec["S"] = draw(int_variant(st.just(S), 0.1))
        spec["A"] = draw(int_variant(st.just(A), 0.1))
    elif spec["kind"] == "linear":
        spec["features"] = draw(array_variant(spec["features"], 0.2))
    else:
        if not isinstance(spec["features"], int):
            spec["features"] = draw(array_variant(spec["features"], 0.2))
        spec["A"] = draw(int_variant(st.just(A), 0.1))
        if draw(st.floats(0, 1)) < 0.1:
            spec["hidden"] = draw(st.sampled_from([(0,), (-1,), ("a",), 3, "64", (2**40,), (1.5,), None]))
        if draw(st.floats(0, 1)) < 0.05:
            spec["activation"] = draw(st.sampled_from(["sigmoid", None, 1]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(0, 5))
    states = draw(array_variant(rng.integers(0, S, n), 0.3))
    actions = draw(array_variant(rng.integers(0, A, n), 0.3))
    return Call("policy", {"spec": spec, "states": states, "actions": actions,
                           "seed": draw(int_variant(st.integers(0, 2**63 - 1), 0.1))})


STRATEGIES["policy"] = _policy_call()


@target("policy", _POLICY_NAMES)
def _run_policy(a: dict[str, Any]) -> Any:
    pi = build_policy(a["spec"])
    S, A = pi.n_states, pi.n_actions
    out: dict[str, Any] = {"probs": (pi.probs(), (S, A)), "log_probs": (pi.log_probs(), (S, A))}
    st_, ac = real(a["states"]), real(a["actions"])
    lp = pi.log_prob(st_, ac)
    out["log_prob"] = (lp, np.shape(lp))
    out["grad_log_prob"] = (pi.grad_log_prob(st_, ac), (np.size(lp),) + pi.theta.shape)
    smp = pi.sample(st_, a["seed"])
    out["sample"] = (np.asarray(smp) >= 0, None)
    return out


_SAMPLE_NAMES = {"policy", "n", "seed", "threads", "mdp"}


@st.composite
def _sample_call(draw: Any) -> Call:
    parts, spec = draw(mdp_and_policy())
    if draw(st.floats(0, 1)) < 0.1:  # a policy of another size
        spec = draw(valid_policy_spec(draw(small), draw(small)))
    return Call("FiniteMDP.sample", {"mdp": parts, "policy": spec, "n": draw(work_variant(st.integers(0, 6), 0.15)),
                                     "seed": draw(int_variant(st.integers(0, 2**64 - 1), 0.1)),
                                     "threads": draw(int_variant(st.sampled_from([None, 1, 2]), 0.15))})


STRATEGIES["FiniteMDP.sample"] = _sample_call()


@target("FiniteMDP.sample", _SAMPLE_NAMES)
def _run_sample(a: dict[str, Any]) -> Any:
    mdp, pi = build_mdp(a["mdp"]), build_policy(a["policy"])
    tr = mdp.sample(pi, a["n"], seed=a["seed"], threads=a["threads"])
    n = tr.n
    return {"rewards": (tr.rewards, (n, mdp.horizon)), "lengths": (tr.lengths, (n,)),
            "returns": (tr.returns(), (n,)), "rtg": (tr.reward_to_go(), (n, mdp.horizon))}


_TRAJ_NAMES = {"mdp", "states", "actions", "rewards", "lengths", "final_states", "gamma", "traj", "policy", "weights",
               "baseline", "per_trajectory", "threads", "stderr", "target", "behavior", "behavior log-probabilities",
               "per_decision", "self_normalized", "dynamics", "n", "seed", "trajectory", "step", "batch"}


_TRAJ_OPS = ("returns", "policy_gradient", "score", "log_likelihood", "importance_weights", "off_policy_gradient",
             "off_policy_value", "value_baseline")


@st.composite
def traj_call(draw: Any, ops: tuple[str, ...] = _TRAJ_OPS) -> Call:
    """A hand-built batch and one of ``ops`` on it (default: every estimator on batches)."""
    parts, spec = draw(mdp_and_policy())
    S, A = parts["P"].shape[:2]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    N, H = draw(st.integers(0, 4)), draw(st.integers(1, 5))
    lengths = rng.integers(0, H + 1, N)
    states = np.where(np.arange(H) < lengths[:, None], rng.integers(0, S, (N, H)), -1)
    actions = np.where(np.arange(H) < lengths[:, None], rng.integers(0, A, (N, H)), -1)
    rewards = np.where(np.arange(H) < lengths[:, None], rng.normal(size=(N, H)), 0.0)
    final = rng.integers(0, S, N)
    arrays = {"states": states, "actions": actions, "rewards": rewards, "lengths": lengths, "final_states": final}
    args: dict[str, Any] = {"mdp": parts, "policy": spec}
    args.update({k: draw(array_variant(v, 0.12)) for k, v in arrays.items()})
    args["op"] = draw(st.sampled_from(list(ops)))
    args["gamma"] = draw(float_variant(st.sampled_from([None, 1.0, 0.9, 0.0]), 0.1))
    args["weights"] = draw(choice_variant(["reward_to_go", "return"], 0.1))
    args["baseline"] = draw(choice_variant([None, "mean", "time", "exact", "value", "optimal"], 0.1))
    if draw(st.floats(0, 1)) < 0.05:
        args["baseline"] = draw(array_variant(np.zeros(3), 1.0))
    args["per_trajectory"] = draw(st.sampled_from([False, True, True, 0, "yes"]) if draw(st.floats(0, 1)) < 0.1 else st.booleans())
    args["behavior"] = draw(st.sampled_from(["policy", "logp", "logp_bad"]))
    args["behavior_spec"] = draw(valid_policy_spec(S, A))
    args["logp"] = draw(array_variant(np.log(rng.uniform(0.05, 1, (N, H))), 0.3))
    args["score_weights"] = draw(array_variant(rng.normal(size=(N, H)), 0.3))  # pg.score's (N, H) weights
    args["per_decision"] = draw(st.booleans())
    args["self_normalized"] = draw(st.booleans())
    args["threads"] = draw(int_variant(st.sampled_from([None, 1, 2]), 0.05))
    args["stderr"] = draw(st.booleans())
    return Call("Trajectories", args)


STRATEGIES["Trajectories"] = traj_call()


def _pg_result(g: Any, pi: pg.SoftmaxPolicy, n: int) -> dict[str, Any]:
    """grad and stderr have the shape of theta; stderr is NaN for n < 2 or stderr=False (documented)."""
    out = {"grad": (g.grad, pi.theta.shape), "value": (g.value, ())}
    if n >= 2 and np.all(np.isfinite(g.stderr)):
        out["stderr"] = (g.stderr, pi.theta.shape)
    if g.per_trajectory is not None:
        out["per_trajectory"] = (g.per_trajectory, (n, pi.n_params))
    return out


@target("Trajectories", _TRAJ_NAMES)
def _run_traj(a: dict[str, Any]) -> Any:
    mdp, pi = build_mdp(a["mdp"]), build_policy(a["policy"])
    tr = pg.Trajectories(mdp, real(a["states"]), real(a["actions"]), real(a["rewards"]), real(a["lengths"]),
                         real(a["final_states"]))
    op, g = a["op"], a["gamma"]
    if op == "returns":
        return {"returns": (tr.returns(g), (tr.n,)), "rtg": (tr.reward_to_go(g), (tr.n, tr.horizon))}
    if op in ("policy_gradient", "value_baseline"):
        b = a["baseline"]
        if isinstance(b, str) and b == "value" or op == "value_baseline":
            b = pg.ValueBaseline(mdp.n_states, mdp.horizon)
            if op == "value_baseline":
                b.fit(tr, g)
                return {"values": (b.values(), None)}
        res = pg.policy_gradient(pi, tr, weights=a["weights"], baseline=b, gamma=g, per_trajectory=a["per_trajectory"],
                                 threads=a["threads"], stderr=a["stderr"])
        return _pg_result(res, pi, tr.n)
    if op == "score":
        res = pg.score(pi, tr, real(a["score_weights"]), per_trajectory=a["per_trajectory"], threads=a["threads"])
        if isinstance(res, tuple):  # per_trajectory=True: the gradient and its per-trajectory rows
            return {"score": (res[0], pi.theta.shape), "rows": (res[1], (tr.n, pi.n_params))}
        return {"score": (res, pi.theta.shape)}
    if op == "log_likelihood":
        ll = pg.log_likelihood(pi, tr, dynamics=a["per_decision"])
        # -inf is documented for a step the MDP cannot take; only NaN and +inf are bad.
        return {"ll": (np.nan_to_num(ll, neginf=0.0), (tr.n,))}
    beh = build_policy(a["behavior_spec"]) if a["behavior"] == "policy" else real(a["logp"])
    if a["behavior"] == "logp_bad":
        beh = np.full((tr.n, tr.horizon), np.nan)
    if op == "importance_weights":
        w = pg.importance_weights(pi, beh, tr, per_decision=a["per_decision"])
        return {"w": (w, (tr.n, tr.horizon) if a["per_decision"] else (tr.n,))}
    if op == "off_policy_gradient":
        res = pg.off_policy_gradient(pi, beh, tr, weights=a["weights"], per_decision=a["per_decision"],
                                     self_normalized=a["self_normalized"], per_trajectory=a["per_trajectory"],
                                     gamma=g, threads=a["threads"])
        return _pg_result(res, pi, tr.n)
    res = pg.off_policy_value(pi, beh, tr, per_decision=a["per_decision"], self_normalized=a["self_normalized"], gamma=g)
    out = {"value": (res.value, ())}
    if tr.n >= 2:
        out["stderr"] = (res.stderr, ())
    return out


_FUSED_NAMES = {"mdp", "n", "seed", "threads", "weights", "baseline", "gamma", "policy", "stderr", "per_trajectory"}


@st.composite
def _fused_call(draw: Any) -> Call:
    parts, spec = draw(mdp_and_policy())
    return Call("policy_gradient.fused", {
        "mdp": parts, "policy": spec, "n": draw(work_variant(st.integers(1, 6), 0.15)),
        "seed": draw(int_variant(st.integers(0, 2**64 - 1), 0.1)),
        "weights": draw(choice_variant(["reward_to_go", "return"], 0.1)),
        "baseline": draw(choice_variant([None, "exact", "fitted", "mean", "time", "optimal"], 0.1)),
        "gamma": draw(float_variant(st.sampled_from([None, 0.9]), 0.1)),
        "threads": draw(int_variant(st.sampled_from([None, 1, 2]), 0.1)), "stderr": draw(st.booleans())})


STRATEGIES["policy_gradient.fused"] = _fused_call()


@target("policy_gradient.fused", _FUSED_NAMES)
def _run_fused(a: dict[str, Any]) -> Any:
    mdp, pi = build_mdp(a["mdp"]), build_policy(a["policy"])
    b = a["baseline"]
    if isinstance(b, str) and b == "fitted":
        b = pg.ValueBaseline(mdp.n_states, mdp.horizon).fit(mdp.sample(pi, 4, seed=1))
    res = pg.policy_gradient(pi, mdp=mdp, n=a["n"], seed=a["seed"], weights=a["weights"], baseline=b, gamma=a["gamma"],
                             threads=a["threads"], stderr=a["stderr"])
    return _pg_result(res, pi, res.n)


_EXACT_NAMES = {"mdp", "policy", "objective", "gamma", "method", "tol", "threads", "damping", "rcond", "theta",
                "return_evaluation", "weights", "baseline", "covariance"}


@st.composite
def _exact_call(draw: Any) -> Call:
    parts, spec = draw(mdp_and_policy())
    return Call("exact", {
        "mdp": parts, "policy": spec,
        "fn": draw(st.sampled_from(["evaluate", "gradient", "fisher", "natural_gradient", "stationary_distribution", "optimal",
                                    "moments"])),
        "weights": draw(choice_variant(["reward_to_go", "return"], 0.1)),
        "baseline": draw(choice_variant([None, "mean", "time", "exact", "optimal"], 0.1)),
        "objective": draw(choice_variant(["finite_horizon", "discounted", "average_reward", "average_value"], 0.1)),
        "gamma": draw(float_variant(st.sampled_from([None, 0.9, 0.5, 0.999999]), 0.1)),
        "method": draw(choice_variant(["auto", "dense", "sparse"], 0.1)),
        "tol": draw(float_variant(st.sampled_from([1e-12, 1e-6]), 0.1)),
        "damping": draw(float_variant(st.sampled_from([0.0, 1e-3, 1.0]), 0.1)),
        "rcond": draw(float_variant(st.sampled_from([1e-10, 0.0, 0.5]), 0.1)),
        "threads": draw(int_variant(st.sampled_from([None, 1, 2]), 0.05))})


STRATEGIES["exact"] = _exact_call()


@target("exact", _EXACT_NAMES)
def _run_exact(a: dict[str, Any]) -> Any:
    mdp, pi = build_mdp(a["mdp"]), build_policy(a["policy"])
    fn, kw = a["fn"], {"gamma": a["gamma"], "method": a["method"], "tol": a["tol"], "threads": a["threads"]}
    S, A, n = mdp.n_states, mdp.n_actions, pi.n_params
    if fn == "evaluate":
        ev = pg.exact.evaluate(mdp, pi, a["objective"], **kw)
        return {"J": (ev.J, ()), "V": (ev.V, None), "Q": (ev.Q, None), "d": (ev.d, None)}
    if fn == "gradient":
        return {"grad": (pg.exact.gradient(mdp, pi, a["objective"], **kw), pi.theta.shape)}
    if fn == "fisher":
        return {"fisher": (pg.exact.fisher(mdp, pi, a["objective"], **kw), (n, n))}
    if fn == "natural_gradient":
        return {"nat": (pg.exact.natural_gradient(mdp, pi, a["objective"], damping=a["damping"], rcond=a["rcond"], **kw), pi.theta.shape)}
    if fn == "moments":
        obj = a["objective"] if a["objective"] in ("finite_horizon", "discounted") else "finite_horizon"
        m = pg.exact.moments(mdp, pi, weights=a["weights"], baseline=a["baseline"], objective=obj, **kw)
        return {"mean": (m.mean, pi.theta.shape), "variance": (m.variance, pi.theta.shape), "trace": (m.trace, ())}
    if fn == "stationary_distribution":
        return {"d": (pg.exact.stationary_distribution(mdp, pi, method=a["method"], tol=a["tol"], threads=a["threads"]), (S,))}
    obj = a["objective"] if a["objective"] in ("finite_horizon", "discounted") else "finite_horizon"
    opt = pg.exact.optimal(mdp, obj, **kw)
    return {"J": (opt.J, ()), "V": (opt.V, None), "Q": (opt.Q, None), "actions": (opt.actions >= 0, None), "_A": (A, ())}


_OPTIM_NAMES = {"lr", "betas", "eps", "damping", "fisher", "rcond", "schedule", "grad", "t", "m", "v", "state", "theta",
                "policy", "mdp", "traj", "visits", "type", "step"}


@st.composite
def _optim_call(draw: Any) -> Call:
    parts, spec = draw(mdp_and_policy())
    n = {"tabular": lambda: len(np.ravel(spec["theta"])), "linear": lambda: len(spec["theta"]), "mlp": lambda: len(spec["theta"])}[spec["kind"]]()
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    grad = rng.normal(size=n) * draw(st.sampled_from([1.0, 1e-300, 1e300, 0.0]))
    kind = draw(st.sampled_from(["GradientAscent", "Adam", "NaturalGradient"]))
    ctor = {"lr": draw(float_variant(st.sampled_from([0.1, 1.0]), 0.1))}
    if kind == "Adam":
        ctor["betas"] = draw(st.sampled_from([(0.9, 0.999), (0.0, 0.0)]) if draw(st.floats(0, 1)) > 0.1 else
                             st.sampled_from([(1.0, 0.9), (0.9,), "ab", None, (np.nan, 0.5), [0.9, 0.999]]))
        ctor["eps"] = draw(float_variant(st.just(1e-8), 0.1))
    elif kind == "NaturalGradient":
        ctor["damping"] = draw(float_variant(st.sampled_from([0.0, 1e-3]), 0.1))
        ctor["fisher"] = draw(choice_variant(["exact", "sampled"], 0.1))
        ctor["rcond"] = draw(float_variant(st.just(1e-10), 0.1))
    else:
        ctor["schedule"] = draw(choice_variant(["constant", "inv_sqrt"], 0.1))
    state_mut = draw(st.sampled_from(["none"] * 4 + ["drop", "type", "value", "list", "extra", "m_shape"]))
    return Call("optim", {"mdp": parts, "policy": spec, "kind": kind, "ctor": ctor,
                          "grad": draw(array_variant(grad, 0.25)), "steps": draw(st.integers(1, 3)),
                          "context": draw(st.sampled_from(["mdp", "traj", "visits", "none"])),
                          "state_mut": state_mut, "state_key": draw(st.sampled_from(["lr", "t", "m", "v", "betas", "eps", "damping", "fisher", "rcond", "schedule", "type"])),
                          "state_val": draw(st.sampled_from(WRONG_TYPES + EXTREMES + HUGE_INTS + WORK_HUGE))})


STRATEGIES["optim"] = _optim_call()


@target("optim", _OPTIM_NAMES)
def _run_optim(a: dict[str, Any]) -> Any:
    mdp, pi = build_mdp(a["mdp"]), build_policy(a["policy"])
    opt = getattr(pg.optim, a["kind"])(**a["ctor"])
    ctx: dict[str, Any] = {}
    if a["context"] == "mdp":
        ctx["mdp"] = mdp
    elif a["context"] == "traj":
        ctx["traj"] = mdp.sample(pi, 3, seed=0)
    elif a["context"] == "visits":
        ctx["visits"] = np.ones(mdp.n_states)
    grad = real(a["grad"])
    for _ in range(a["steps"]):
        opt.step(pi, grad, **ctx)
    state = opt.state_dict()
    mut, key = a["state_mut"], a["state_key"]
    if mut == "drop":
        state.pop(key, None)
    elif mut in ("type", "value"):
        state[key] = a["state_val"]
    elif mut == "list":
        state = list(state.items())  # type: ignore[assignment]
    elif mut == "extra":
        state["unknown"] = 1
    elif mut == "m_shape" and state.get("m") is not None:
        state["m"] = state["m"][:-1] or None
    fresh = getattr(pg.optim, a["kind"])(**a["ctor"])
    fresh.load_state_dict(state)
    return {"theta": (pi.theta, None)}


_TRAIN_NAMES = {"mdp", "policy", "optimizer", "iterations", "batch", "seed", "weights", "baseline", "gamma", "eval_every",
                "exact_eval", "threads", "progress", "callback"}


@st.composite
def _train_call(draw: Any) -> Call:
    parts, spec = draw(mdp_and_policy())
    return Call("train", {
        "mdp": parts, "policy": spec, "iterations": draw(work_variant(st.integers(1, 2), 0.15)),
        "batch": draw(work_variant(st.integers(1, 4), 0.15)), "seed": draw(int_variant(st.integers(0, 9), 0.05)),
        "weights": draw(choice_variant(["reward_to_go", "return"], 0.05)),
        "baseline": draw(choice_variant([None, "mean", "time", "exact", "value", "optimal"], 0.05)),
        "eval_every": draw(int_variant(st.integers(1, 2), 0.1)),
        "exact_eval": draw(st.sampled_from([None, True, False]) if draw(st.floats(0, 1)) > 0.05 else st.sampled_from(WRONG_TYPES)),
        "callback": draw(st.sampled_from([None, "stop", "none"]) if draw(st.floats(0, 1)) > 0.1 else st.sampled_from([3, "abc", 1.5])),
        "optimizer": draw(st.sampled_from(["ga", "adam"]) if draw(st.floats(0, 1)) > 0.05 else st.sampled_from(WRONG_TYPES))})


STRATEGIES["train"] = _train_call()


@target("train", _TRAIN_NAMES)
def _run_train(a: dict[str, Any]) -> Any:
    mdp, pi = build_mdp(a["mdp"]), build_policy(a["policy"])
    opt = {"ga": pg.optim.GradientAscent(0.1), "adam": pg.optim.Adam(0.05)}.get(a["optimizer"], a["optimizer"]) \
        if isinstance(a["optimizer"], str) else a["optimizer"]
    cb = {"stop": (lambda it, rec: True), "none": (lambda it, rec: None)}.get(a["callback"], a["callback"]) \
        if isinstance(a["callback"], str) else a["callback"]
    if cb is None or not isinstance(a["callback"], (int, float)) and callable(cb):
        # A guard, so an accepted out-of-range iteration count fails instead of running for ever.
        user_cb, ran = cb, [0]

        def cb(it: int, rec: dict[str, float]) -> bool | None:
            ran[0] += 1
            if ran[0] > 3:  # the strategy's valid counts are at most 3 (np.int8(3) included)
                raise RuntimeError(f"train ran {ran[0]} iterations; iterations={a['iterations']!r} was accepted")
            return user_cb(it, rec) if user_cb is not None else None
    b = pg.ValueBaseline(mdp.n_states, mdp.horizon) if isinstance(a["baseline"], str) and a["baseline"] == "value" else a["baseline"]
    h = pg.train(mdp, pi, optimizer=opt, iterations=a["iterations"], batch=a["batch"], seed=a["seed"],
                 weights=a["weights"], baseline=b, eval_every=a["eval_every"], exact_eval=a["exact_eval"],
                 progress=False, callback=cb)
    out = {"theta": (pi.theta, None), "J_estimate": (h["J_estimate"], (len(h),)), "grad_norm": (h["grad_norm"], (len(h),))}
    # J_stderr is NaN for a batch of one episode (documented): not checked
    return out


# -- running and classifying ------------------------------------------------------------------

def _finite(x: Any) -> bool:
    if isinstance(x, (bool, np.bool_)):
        return True
    if isinstance(x, (int, np.integer)):
        return True
    if isinstance(x, (float, np.floating, complex, np.complexfloating)):
        return bool(np.isfinite(x))
    if isinstance(x, np.ndarray):
        if x.dtype.kind in "fc":
            return bool(np.isfinite(x).all())
        return True
    return True


def check_result(result: Any) -> tuple[str, str]:
    """A runner's result is None or {label: (value, expected shape or None)}."""
    if result is None:
        return OK, ""
    for label, (value, shape) in result.items():
        if not _finite(value):
            return NONFINITE, f"{label} = {value!r}"
        if shape is not None and np.shape(value) != tuple(shape):
            return BAD_SHAPE, f"{label} has shape {np.shape(value)}, expected {tuple(shape)}"
    return OK, ""


def _names_argument(msg: str, names: set[str]) -> bool:
    return any(re.search(r"(?<![A-Za-z0-9_])" + re.escape(n) + r"(?![A-Za-z0-9_])", msg) for n in names)


def run_call(call: Call) -> tuple[str, str]:
    """Run one call and classify it: (category, detail). Warnings are errors here, as in the suite."""
    _, run, names = TARGETS[call.target]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            result = run(call.args)
        except DOCUMENTED as exc:
            msg = str(exc)
            if not _names_argument(msg, names):
                return UNNAMED, f"{type(exc).__name__}: {msg}"
            return ERROR, f"{type(exc).__name__}"
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - classifying is the point
            return WRONG_TYPE, f"{type(exc).__name__}: {exc}"
        return check_result(result)


def calls(name: str) -> st.SearchStrategy[Call]:
    return STRATEGIES[name]


def all_calls() -> st.SearchStrategy[Call]:
    return st.one_of(*[STRATEGIES[k] for k in sorted(STRATEGIES)])
