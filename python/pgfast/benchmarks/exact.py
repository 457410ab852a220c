"""Exact evaluation benchmark: ``pg.exact`` evaluation + gradient against NumPy / SciPy, same run.

    python -m pgfast.benchmarks.exact [--quick] [--json PATH]     # installed package
    python bench/bench_exact.py [--quick]                    # source tree: saves bench/results/exact.json

Workloads, each with a tabular softmax policy of N(0, 1) logits:

- ``random``: the sampler benchmark's random MDP (``benchmarks.random_mdp``: S = 500, A = 8,
  10 distinct successors per (s, a), Dirichlet(1) probabilities, N(0, 1) rewards on (s, a),
  uniform mu0, no terminal states), objective ``"finite_horizon"`` (H = 100, the MDP's gamma = 1)
  and ``"discounted"`` (gamma = 0.99). Yardstick: NumPy (:func:`finite_horizon_numpy`,
  :func:`discounted_numpy`);
- ``sparse``: S = 100,000, A = 4, 4 distinct uniformly drawn successors per (s, a)
  (:func:`sparse_random_mdp`, built as a SciPy sparse (S*A, S) matrix, never dense), objective
  ``"discounted"``, gamma = 0.99. Yardstick: SciPy's Krylov solvers ``bicgstab`` and ``gmres``
  (:func:`discounted_scipy`) on the same two systems, (I - gamma P_pi) V = r_pi and its transpose
  for the visitation; pgfast with ``method="sparse"``.

Timed on the pgfast side: ``pg.exact.evaluate(mdp, pi, objective)`` followed by
``pg.exact.gradient(mdp, pi, objective)`` (what a user calls to get J, the tables and the
gradient; ``pg.exact`` has no combined call), once with ``threads=1`` and once with the default
``threads=None`` (every usable core; ``pg.exact`` threads only the sparse matrix-vector products
of MDPs with 200,000 transitions or more). The reference computes the same outputs in one call:
every field of the evaluation (finite horizon: V, Q, A (H, S, A), d (H, S), visitation, J;
discounted: V, Q, A, rho, d, J) and the gradient pi(a|s) w(s) A(s, a) (tabular softmax;
w = gamma^t d_t summed over t, or rho).

Protocol: the per-call policy work (softmax, the policy-weighted chain) is inside the timed call on
both sides; the MDP-level tables are built before timing on both sides (pgfast: CSR when the
``FiniteMDP`` is built; reference: :class:`ReferenceTables`). Calls are interleaved round-robin
after two warm-up calls each; the best of the repeats is reported (medians in the JSON). Every
reference method runs with its BLAS (NumPy's and SciPy's OpenBLAS, set through ctypes) on one
thread and, for information, on all usable cores. The **target** compares pgfast ``threads=1``
with the fastest one-thread reference method of the same run (like the sampler benchmark's 1T
column); the table also shows pgfast's default threads against the fastest reference call at any
thread count. The run fails unless pgfast (both thread settings) and every reference method agree
(J and the gradient within 1e-6 relative, max-norm), and on ``sparse`` unless every side reaches
relative accuracy 1e-8 against the high-precision solution.

Sparse tolerances: each iterative side (pgfast, bicgstab, gmres) gets the loosest tolerance of
``TOL_LADDER`` (relative residual ||b - A x||_2 <= tol ||b||_2 on both sides; decades from 1e-6
down) whose solution has relative error <= 1e-8 in V (max-norm), the visitation rho, J and the
gradient, against :func:`discounted_high_precision` (GMRES plus iterative refinement, error
certified from its residual: ||x - x*||_inf <= ||r||_inf / (1 - gamma) for V, the same in the
1-norm for rho; ~2e-14 here). Measured at S = 100,000: pgfast needs 1e-8, bicgstab 1e-10 (at 1e-9
its J is off by 1e-7), gmres 1e-10.

Targets: pgfast >= 2x NumPy on ``random`` (both objectives); pgfast >= 1x the best SciPy solver
on ``sparse``.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

import pgfast as pg
from pgfast import exact as pg_exact

from ._harness import (
    add_bench_arguments,
    machine_info,
    random_mdp,
    result_envelope,
    reuse_freed_memory,
    run_and_print,
    save_result,
    single_thread_environment,
)
from .reference import (
    ExactResult,
    ReferenceTables,
    discounted_high_precision,
    discounted_numpy,
    discounted_scipy,
    finite_horizon_numpy,
)

try:
    import scipy  # type: ignore[import-untyped,unused-ignore]
    import scipy.sparse as sps  # type: ignore[import-untyped,unused-ignore]
except ImportError as exc:  # pragma: no cover - scipy is a test extra
    raise ImportError("the exact benchmark needs SciPy (pip install scipy, or pgfast[test])") from exc

FloatArray = NDArray[np.float64]

GAMMA = 0.99
TARGETS = {("random", "finite_horizon"): 2.0, ("random", "discounted"): 2.0, ("sparse", "discounted"): 1.0}
AGREE_RTOL = 1e-6  # pgfast vs every reference method: J and gradient
ACCURACY = 1e-8  # sparse: every side against the high-precision solution
TOL_LADDER = (1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12, 1e-13)
REFERENCE_BLAS_THREADS = 1  # the yardstick's BLAS threads, compared with pgfast threads=1 (the target)
WARMUP = 2
DEFAULT_JSON: Path | None = None  # bench/bench_exact.py saves to bench/results/exact.json
FINITE_METHODS = ("dense", "csr")
DISCOUNTED_METHODS = ("lu", "solve")
SPARSE_SOLVERS = ("bicgstab", "gmres")


# -- workloads ----------------------------------------------------------------------------------


def sparse_random_mdp(
    n_states: int = 100_000,
    n_actions: int = 4,
    n_successors: int = 4,
    gamma: float = GAMMA,
    horizon: int = 100,
    seed: int = 0,
) -> pg.FiniteMDP:
    """S states, A actions, ``n_successors`` distinct successors per (s, a) drawn uniformly over
    the states, Dirichlet(1) probabilities, rewards N(0, 1) on (s, a), uniform mu0, no terminal
    states. P is built as a SciPy CSR (S*A, S) matrix: memory O(S A K), never O(S^2)."""
    rng = np.random.default_rng(seed)
    S, A, K = n_states, n_actions, n_successors
    if K > S:
        raise ValueError(f"n_successors={K} > n_states={S}")
    rows = S * A
    succ = rng.integers(S, size=(rows, K))
    while True:  # redraw the rows with a repeated successor (rare for K << S)
        srt = np.sort(succ, axis=1)
        bad = (srt[:, 1:] == srt[:, :-1]).any(axis=1)
        if not bad.any():
            break
        succ[bad] = rng.integers(S, size=(int(bad.sum()), K))
    prob = rng.dirichlet(np.ones(K), size=rows)
    P = sps.csr_matrix((prob.ravel(), succ.ravel(), np.arange(0, rows * K + 1, K)), shape=(rows, S))
    R = rng.normal(size=(S, A))
    return pg.FiniteMDP(P, R, np.full(S, 1.0 / S), horizon=horizon, gamma=gamma)


@dataclass
class Workload:
    key: str
    description: str
    mdp: pg.FiniteMDP
    objectives: tuple[tuple[str, float], ...]  # (objective, gamma)
    sparse: bool


def workloads(quick: bool = False) -> list[Workload]:
    if quick:
        small = random_mdp(n_states=100, n_actions=4, n_successors=5, horizon=20)
        return [
            Workload("random", "random MDP S=100 A=4 5 successors (quick)", small,
                     (("finite_horizon", small.gamma), ("discounted", GAMMA)), False),
            Workload("sparse", "sparse random MDP S=5000 A=4 4 successors (quick)",
                     sparse_random_mdp(n_states=5000), (("discounted", GAMMA),), True),
        ]
    mdp = random_mdp()
    return [
        Workload("random", "random MDP S=500 A=8 10 successors, H=100 (sampler benchmark's)", mdp,
                 (("finite_horizon", mdp.gamma), ("discounted", GAMMA)), False),
        Workload("sparse", "sparse random MDP S=100000 A=4 4 successors", sparse_random_mdp(),
                 (("discounted", GAMMA),), True),
    ]


# -- comparisons --------------------------------------------------------------------------------


def _rel(x: FloatArray | float, ref: FloatArray | float) -> float:
    """max |x - ref| / max |ref| (0 if both are 0)."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    scale = float(np.abs(b).max()) if b.size else 0.0
    diff = float(np.abs(a - b).max()) if b.size else 0.0
    return diff / scale if scale > 0 else diff


def differences(x: ExactResult, ref: ExactResult) -> dict[str, float]:
    """Relative differences (max-norm) of J, V, visitation, the gradient; ``max`` over them."""
    out = {
        "J": _rel(x.J, ref.J),
        "V": _rel(x.V, ref.V),
        "visitation": _rel(x.visitation, ref.visitation),
        "grad": _rel(x.grad, ref.grad),
    }
    out["max"] = max(out.values())
    return out


def from_pgfast(ev: pg_exact.Evaluation, grad: FloatArray) -> ExactResult:
    """An ``ExactResult`` from a ``pg.exact`` evaluation and gradient."""
    return ExactResult(
        float(ev.J),
        np.asarray(ev.V),
        np.asarray(ev.Q),
        np.asarray(ev.A),
        np.asarray(ev.d),
        np.asarray(ev.visitation),
        np.asarray(grad),
    )


# -- timing -------------------------------------------------------------------------------------


class _Blas:
    """Threads of every OpenBLAS loaded in the process (NumPy's and SciPy's own copies), set
    through ctypes; a no-op where none is found."""

    _SET = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_", "openblas_set_num_threads")
    _GET = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
            "openblas_get_num_threads64_", "openblas_get_num_threads")

    def __init__(self) -> None:
        self._libs: list[tuple[Any, Any, str]] = []
        paths: set[str] = set()
        try:
            with open("/proc/self/maps") as f:
                for line in f:
                    parts = line.split(maxsplit=5)
                    if len(parts) == 6 and "openblas" in os.path.basename(parts[5]).lower():
                        paths.add(parts[5].strip())
        except OSError:  # pragma: no cover - not Linux
            return
        for path in sorted(paths):
            try:
                lib = ctypes.CDLL(path)
            except OSError:  # pragma: no cover
                continue
            setter = next((getattr(lib, n) for n in self._SET if hasattr(lib, n)), None)
            getter = next((getattr(lib, n) for n in self._GET if hasattr(lib, n)), None)
            if setter is not None and getter is not None:
                setter.argtypes, setter.restype, getter.restype = [ctypes.c_int], None, ctypes.c_int
                self._libs.append((setter, getter, os.path.basename(path)))

    @property
    def libraries(self) -> list[str]:
        return [name for _, _, name in self._libs]

    def get(self) -> list[int]:
        return [int(g()) for _, g, _ in self._libs]

    def set(self, n: int) -> None:
        for s, _, _ in self._libs:
            s(n)

    def restore(self, threads: Sequence[int]) -> None:
        """Set each library back to a count from :meth:`get`."""
        for (s, _, _), k in zip(self._libs, threads):
            s(k)


@dataclass
class _Call:
    fn: Callable[[], Any]
    blas_threads: int
    seconds: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "best_seconds": min(self.seconds),
            "median_seconds": float(np.median(self.seconds)),
            "repeats": len(self.seconds),
            "blas_threads": self.blas_threads,
        }


def _time_round_robin(calls: dict[str, _Call], repeats: int, blas: _Blas) -> None:
    """Two warm-up calls each, then ``repeats`` rounds calling them in turn, each timed alone."""
    for c in calls.values():
        blas.set(c.blas_threads)
        for _ in range(WARMUP):
            c.fn()
    gc.collect()
    for _ in range(repeats):
        for c in calls.values():
            blas.set(c.blas_threads)
            t0 = time.perf_counter()
            out = c.fn()
            seconds = time.perf_counter() - t0
            c.seconds.append(seconds)
            del out  # nothing of a call outlives it


PGFAST_CONFIGS = {"pgfast/1T": 1, "pgfast/default": None}  # threads=None: every usable core


PgfastOutput = tuple[pg_exact.Evaluation, FloatArray]


def _pgfast_fn(
    mdp: pg.FiniteMDP, pi: pg.TabularSoftmax, objective: str, kwargs: dict[str, Any]
) -> Callable[[], PgfastOutput]:
    """The timed pgfast call: ``gradient(..., return_evaluation=True)`` (evaluation and gradient in one pass)."""
    obj: Any = objective

    def call() -> PgfastOutput:
        g, ev = pg_exact.gradient(mdp, pi, obj, return_evaluation=True, **kwargs)
        return ev, g

    return call


def _pgfast_label(kwargs: dict[str, Any]) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items() if k not in ("gamma", "threads"))
    return f"evaluate + gradient ({args})" if args else "evaluate + gradient"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


# -- cases --------------------------------------------------------------------------------------


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _thread_configs(quick: bool) -> tuple[int, ...]:
    usable = _usable_cpus()
    if quick or usable <= REFERENCE_BLAS_THREADS:
        return (REFERENCE_BLAS_THREADS,)
    return (REFERENCE_BLAS_THREADS, usable)


def _add_pgfast_calls(calls: dict[str, _Call], mdp: pg.FiniteMDP, pi: pg.TabularSoftmax, objective: str,
                      kwargs: dict[str, Any]) -> dict[str, Callable[[], PgfastOutput]]:
    fns = {}
    for name, threads in PGFAST_CONFIGS.items():
        fns[name] = _pgfast_fn(mdp, pi, objective, {**kwargs, "threads": threads})
        calls[name] = _Call(fns[name], REFERENCE_BLAS_THREADS)
    return fns


def _check_agreement(
    row: dict[str, Any], pg_fns: dict[str, Callable[[], PgfastOutput]],
    references: dict[str, ExactResult],
) -> None:
    """pgfast (every thread setting) against every reference method: J and gradient."""
    diffs: dict[str, dict[str, float]] = {}
    J = 0.0
    for pg_name, fn in pg_fns.items():
        pgf = from_pgfast(*fn())
        J = pgf.J
        for ref_name, ref in references.items():
            diffs[f"{pg_name} vs {ref_name}"] = differences(pgf, ref)
    ref_diff = diffs[f"pgfast/default vs {row['reference_method']}"]
    row["differences"] = diffs
    row["agree"] = all(d["J"] <= AGREE_RTOL and d["grad"] <= AGREE_RTOL for d in diffs.values())
    worst = max(max(d["J"], d["grad"]) for d in diffs.values())
    row["agree_note"] = (
        f"J {J:.10g}; pgfast vs {row['reference_method']}: rel. diff J {ref_diff['J']:.1e}, grad {ref_diff['grad']:.1e},"
        f" V {ref_diff['V']:.1e}; worst J/grad over all pairs {worst:.1e}"
    )


def _finish_row(
    w: Workload, objective: str, gamma: float, reference: str, calls: dict[str, _Call],
    ref_methods: dict[str, str], pg_kwargs: dict[str, Any],
) -> dict[str, Any]:
    """The yardstick is the fastest reference call with BLAS on one thread; ratios of times."""
    timings = {name: c.summary() for name, c in calls.items()}
    refs = {n: t["best_seconds"] for n, t in timings.items() if n not in PGFAST_CONFIGS}
    one = {n: s for n, s in refs.items() if timings[n]["blas_threads"] == REFERENCE_BLAS_THREADS}
    best1 = min(one, key=one.__getitem__)
    best_any = min(refs, key=refs.__getitem__)
    pg1 = timings["pgfast/1T"]["best_seconds"]
    pgn = timings["pgfast/default"]["best_seconds"]
    target = TARGETS[(w.key, objective)]
    mdp = w.mdp
    return {
        "workload": w.key,
        "description": w.description,
        "objective": objective,
        "n_states": mdp.n_states,
        "n_actions": mdp.n_actions,
        "nnz": mdp.nnz,
        "horizon": mdp.horizon if objective == "finite_horizon" else None,
        "gamma": gamma,
        "reference": reference,
        "reference_method": ref_methods[best1],
        "reference_call": best1,
        "reference_seconds": refs[best1],
        "reference_any_threads_call": best_any,
        "reference_any_threads_seconds": refs[best_any],
        "pgfast_call": _pgfast_label(pg_kwargs),
        "pgfast_threads_default": _usable_cpus(),
        "pgfast_1t_seconds": pg1,
        "pgfast_default_seconds": pgn,
        "ratio_1t": refs[best1] / pg1,
        "ratio_default": refs[best_any] / pgn,
        "target": target,
        "pass": refs[best1] / pg1 >= target,
        "methods_best_seconds": refs,
        "timings": timings,
    }


def _random_policy(mdp: pg.FiniteMDP) -> tuple[pg.TabularSoftmax, FloatArray]:
    """The benchmarked policy (N(0, 1) logits, seed 1) and a copy of its theta for the references."""
    S, A = mdp.n_states, mdp.n_actions
    pi = pg.TabularSoftmax(S, A, theta=np.random.default_rng(1).normal(size=(S, A)))
    return pi, pi.theta.copy()


def _bench_dense(w: Workload, objective: str, gamma: float, repeats: int, quick: bool, blas: _Blas) -> dict[str, Any]:
    mdp = w.mdp
    pi, theta = _random_policy(mdp)
    tb = ReferenceTables.build(mdp, dense=True)
    if objective == "finite_horizon":
        methods = FINITE_METHODS if not quick else FINITE_METHODS[:1]
        fn: Callable[[ReferenceTables, FloatArray, float, str], ExactResult] = finite_horizon_numpy
    else:
        methods = DISCOUNTED_METHODS if not quick else DISCOUNTED_METHODS[:1]
        fn = discounted_numpy
    pg_kwargs: dict[str, Any] = {} if objective == "finite_horizon" else {"gamma": gamma}

    def ref_call(method: str) -> Callable[[], ExactResult]:
        return lambda: fn(tb, theta, gamma, method)

    calls: dict[str, _Call] = {}
    labels: dict[str, str] = {}
    for threads in _thread_configs(quick):
        for m in methods:
            calls[f"{m}/{threads}T"] = _Call(ref_call(m), threads)
            labels[f"{m}/{threads}T"] = m
    pg_fns = _add_pgfast_calls(calls, mdp, pi, objective, pg_kwargs)
    _time_round_robin(calls, repeats, blas)

    blas.set(REFERENCE_BLAS_THREADS)
    row = _finish_row(w, objective, gamma, "NumPy", calls, labels, pg_kwargs)
    _check_agreement(row, pg_fns, {m: fn(tb, theta, gamma, m) for m in methods})
    row["max_rss_mb"] = _rss_mb()
    return row


def _calibrate(solve: Callable[[float], ExactResult], hp: ExactResult) -> tuple[float, dict[str, float]]:
    """The loosest tolerance of TOL_LADDER whose solution is within ACCURACY of ``hp``."""
    acc: dict[str, float] = {}
    for tol in TOL_LADDER:
        acc = differences(solve(tol), hp)
        if acc["max"] <= ACCURACY:
            return tol, acc
    return TOL_LADDER[-1], acc


def _bench_sparse(w: Workload, objective: str, gamma: float, repeats: int, quick: bool, blas: _Blas) -> dict[str, Any]:
    mdp = w.mdp
    pi, theta = _random_policy(mdp)
    tb = ReferenceTables.build(mdp, dense=False)
    blas.set(REFERENCE_BLAS_THREADS)
    t0 = time.perf_counter()
    hp, bound = discounted_high_precision(tb, theta, gamma)
    hp_seconds = time.perf_counter() - t0

    def pg_solve(tol: float) -> ExactResult:
        return from_pgfast(*_pgfast_fn(mdp, pi, objective, {"gamma": gamma, "method": "sparse", "tol": tol})())

    tols: dict[str, float] = {}
    accuracy: dict[str, dict[str, float]] = {}
    tols["pgfast"], accuracy["pgfast"] = _calibrate(pg_solve, hp)
    for solver in SPARSE_SOLVERS:
        def sp_solve(tol: float, solver: str = solver) -> ExactResult:
            return discounted_scipy(tb, theta, gamma, solver, tol)

        tols[solver], accuracy[solver] = _calibrate(sp_solve, hp)

    pg_kwargs: dict[str, Any] = {"gamma": gamma, "method": "sparse", "tol": tols["pgfast"]}
    calls: dict[str, _Call] = {}
    labels: dict[str, str] = {}
    for threads in _thread_configs(quick):
        for solver in SPARSE_SOLVERS:
            def sp_call(solver: str = solver) -> ExactResult:
                return discounted_scipy(tb, theta, gamma, solver, tols[solver])

            calls[f"{solver}/{threads}T"] = _Call(sp_call, threads)
            labels[f"{solver}/{threads}T"] = solver
    pg_fns = _add_pgfast_calls(calls, mdp, pi, objective, pg_kwargs)
    _time_round_robin(calls, repeats, blas)

    blas.set(REFERENCE_BLAS_THREADS)
    row = _finish_row(w, objective, gamma, "SciPy", calls, labels, pg_kwargs)
    _check_agreement(row, pg_fns, {s: discounted_scipy(tb, theta, gamma, s, tols[s]) for s in SPARSE_SOLVERS})
    row["tolerances"] = tols
    row["accuracy"] = accuracy
    row["accurate"] = all(a["max"] <= ACCURACY for a in accuracy.values())
    row["high_precision"] = {"certified_error": bound, "seconds": hp_seconds, "J": hp.J}
    row["max_rss_mb"] = _rss_mb()
    return row


def run(quick: bool = False, *, reuse_memory: bool = True) -> list[dict[str, Any]]:
    """Run every workload and objective; one dict per row (the JSON's ``rows``).

    ``reuse_memory`` calls :func:`pgfast.benchmarks._harness.reuse_freed_memory` first (glibc only).
    Raises AssertionError if pgfast and a reference method disagree (J or gradient beyond 1e-6
    relative) or, on ``sparse``, if a side misses the accuracy 1e-8: then the sides did not do
    the same work.
    """
    if not hasattr(pg, "exact"):
        raise RuntimeError("this pgfast has no pgfast.exact module")
    if reuse_memory:
        reuse_freed_memory()
    blas = _Blas()
    before = blas.get()
    dense_repeats, sparse_repeats = (3, 3) if quick else (15, 7)
    rows: list[dict[str, Any]] = []
    try:
        for w in workloads(quick):
            for objective, gamma in w.objectives:
                if w.sparse:
                    rows.append(_bench_sparse(w, objective, gamma, sparse_repeats, quick, blas))
                else:
                    rows.append(_bench_dense(w, objective, gamma, dense_repeats, quick, blas))
    finally:
        blas.restore(before)
    bad = [f"{r['workload']} {r['objective']}: {r['agree_note']}" for r in rows if not r["agree"]]
    bad += [
        f"{r['workload']} {r['objective']}: accuracy "
        + ", ".join(f"{k} {a['max']:.1e}" for k, a in r["accuracy"].items())
        for r in rows
        if not r.get("accurate", True)
    ]
    if bad:
        print(format_table(rows), file=sys.stderr)
        raise AssertionError("exact benchmark: sides disagree: " + " | ".join(bad))
    return rows


# -- report -------------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:8.2f}" if ms < 100 else f"{ms:8.1f}"


def format_table(rows: list[dict[str, Any]]) -> str:
    nt = rows[0]["pgfast_threads_default"] if rows else 0
    head = (
        f"{'workload':<8} {'objective':<14} {'S':>7} {'nnz':>9} | {'reference':<9} {'(method)':<10} {'ms':>8} |"
        f" {'pg 1T':>8} {f'pg {nt}T':>8} | {'1T speed-up':>11} {'target':>6} {'':4} | {f'{nt}T speed-up':>11}"
    )
    lines = [
        "milliseconds per call (best of the repeats); speed-up = reference time / pgfast time",
        head,
        "-" * len(head),
    ]
    for r in rows:
        lines.append(
            f"{r['workload']:<8} {r['objective']:<14} {r['n_states']:>7} {r['nnz']:>9,} |"
            f" {r['reference']:<9} {'(' + r['reference_method'] + ')':<10} {_ms(r['reference_seconds'])} |"
            f" {_ms(r['pgfast_1t_seconds'])} {_ms(r['pgfast_default_seconds'])} |"
            f" {r['ratio_1t']:>11.2f} {'>=' + format(r['target'], 'g'):>6} {'PASS' if r['pass'] else 'FAIL':4} |"
            f" {r['ratio_default']:>11.2f}"
        )
    lines += [
        "",
        f"1T: pgfast threads=1 against the fastest reference method with BLAS on {REFERENCE_BLAS_THREADS} thread"
        f" (the target); {nt}T: pgfast's default (threads=None) against the fastest reference call at any BLAS"
        " thread count.",
        "",
        "reference calls (best ms; BLAS threads after the slash; * = the yardstick)",
    ]
    for r in rows:
        cells = [
            f"{name} {1e3 * s:.3g}{'*' if name == r['reference_call'] else ''}"
            for name, s in r["methods_best_seconds"].items()
        ]
        lines.append(f"  {r['workload']:<8} {r['objective']:<14} " + "   ".join(cells))
    lines += ["", "pgfast calls:"]
    for r in rows:
        lines.append(f"  {r['workload']:<8} {r['objective']:<14} {r['pgfast_call']}")
    lines += ["", f"agreement (relative, max-norm; required <= {AGREE_RTOL:g} for J and the gradient):"]
    for r in rows:
        lines.append(f"  {r['workload']:<8} {r['objective']:<14} {r['agree_note']}")
    sparse = [r for r in rows if "accuracy" in r]
    if sparse:
        lines += ["", f"accuracy against the high-precision solution (relative, max-norm; required <= {ACCURACY:g}):"]
        for r in sparse:
            hp = r["high_precision"]
            ce = hp["certified_error"]
            lines.append(
                f"  {r['workload']} {r['objective']}: high-precision solution (GMRES + refinement, {hp['seconds']:.2f} s),"
                f" certified error V {ce['V_inf_rel']:.1e}, rho {ce['rho_1_rel']:.1e}; J = {hp['J']:.10g}"
            )
            for side, a in r["accuracy"].items():
                lines.append(
                    f"    {side:<9} tol {r['tolerances'][side]:<6g} V {a['V']:.1e}  rho {a['visitation']:.1e}"
                    f"  J {a['J']:.1e}  grad {a['grad']:.1e}  {'ok' if a['max'] <= ACCURACY else 'NOT ACCURATE'}"
                )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, *, default_json: Path | None = DEFAULT_JSON,
         prog: str = "python -m pgfast.benchmarks.exact") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_bench_arguments(parser, default_json,
                        "small MDPs (S=100 and S=5000), 3 repeats, one method per reference: a smoke test")
    args = parser.parse_args(argv)
    single_thread_environment()

    info = machine_info()
    info["scipy"] = scipy.__version__
    blas = _Blas()
    info["blas"] = {"openblas_libraries": blas.libraries, "default_threads": blas.get()}
    reused = False if args.default_malloc else reuse_freed_memory()
    rows = run_and_print(lambda: run(quick=args.quick, reuse_memory=False), format_table, info, reused,
                         load_share="about 1")

    result = {
        **result_envelope("exact", prog, argv, args.quick, info),
        "protocol": {
            "timer": f"time.perf_counter around one call; calls interleaved round-robin after {WARMUP} warm-up calls each",
            "statistic": "best (min) seconds over the repeats; medians also recorded",
            "pgfast": "pg.exact.evaluate(mdp, pi, objective, ...) then pg.exact.gradient(mdp, pi, objective, ...)",
            "reference": "one call computing every evaluation field and the gradient; the yardstick is the "
            f"fastest method with BLAS on {REFERENCE_BLAS_THREADS} thread (pg.exact is single-threaded); "
            "methods with BLAS on all usable cores timed for information",
            "setup": "softmax and policy-weighted chain inside the timed call on both sides; MDP-level tables "
            "built before timing (pgfast: CSR with the FiniteMDP; reference: ReferenceTables)",
            "agreement": f"J and gradient within {AGREE_RTOL:g} relative (max-norm) of every reference method",
            "sparse_tolerances": f"each side: loosest of {list(TOL_LADDER)} reaching relative error <= {ACCURACY:g} "
            f"in V, visitation, J and gradient against GMRES + iterative refinement (error certified "
            "from its residual)",
            "memory": "glibc malloc keeps freed memory (as the sampler benchmark)" if reused else "default allocator",
        },
        "targets": {f"{k[0]}/{k[1]}": v for k, v in TARGETS.items()},
        "rows": rows,
    }
    save_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
