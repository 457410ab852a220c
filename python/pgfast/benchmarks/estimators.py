"""Estimator benchmark: a REINFORCE iteration in pgfast against vectorised NumPy, same run.

    python -m pgfast.benchmarks.estimators [--quick] [--json PATH]     # installed package
    python bench/bench_estimators.py [--quick]                    # source tree: saves bench/results/estimators.json

One iteration samples N trajectories and forms the REINFORCE gradient with
reward-to-go weights and the leave-one-out time baseline,
w_{i,t} = gamma^t (G_{i,t} - b_{i,t}), b_{i,t} = (sum_j G_{j,t} - G_{i,t}) / (count_t - 1) over the
trajectories still running at t. Workloads: the sampler benchmark's (``benchmarks.frozenlake``:
FrozenLake 8x8 slippery, H = 200; ``benchmarks.random_mdp``: S = 500, A = 8, 10 successors,
H = 100), at N = 1024 and 16384, with a tabular softmax policy (N(0, 1) logits) and a linear one
(p = 16 features N(0, 1) of shape (S, A, p), theta N(0, 0.1^2)).

Timed per case, interleaved round-robin after warm-up calls, best of the repeats (medians in the
JSON):

- ``numpy``: :func:`numpy_iteration`, one thread: softmax in NumPy, ``reference.sample_numpy``
  (its fastest method, ``"auto"``; MDP-level ``SamplerTables`` built before timing, like pgfast's
  tables built with the ``FiniteMDP``), then :func:`~pgfast.benchmarks.reference.softmax_gradient`;
- ``stored``: ``mdp.sample(pi, N, seed=, threads=1)`` then
  ``pg.policy_gradient(pi, traj, weights="reward_to_go", baseline="time", threads=1, stderr=False)``;
- ``fused_1t`` / ``fused_2t``: ``pg.policy_gradient(pi, mdp=mdp, n=N, seed=, threads=1 | 2,
  stderr=False)`` (baseline None: the fused estimator keeps no batch, so it cannot form batch
  baselines);
- ``sample``: ``mdp.sample(pi, N, seed=, threads=1)`` alone.

Same work: the NumPy yardstick forms the gradient and the mean return, so the timed pgfast calls
do too (``stderr=False``: no per-trajectory bookkeeping). For information (no target) the run
also times ``stored_se`` and ``fused_1t_se``, the same calls with pgfast's default
``stderr=True`` (per-coordinate standard errors from per-trajectory sums of squares: more work
than the yardstick does), ``fused_1t_warm``, ``fused_2t_warm`` and ``sample_warm`` (each timed
right after an untimed identical call, as consecutive training iterations run: the 2T call's pool
thread is then awake, where in the round-robin it has parked and its idle vCPU takes 0.1-0.6 ms
to wake on a VM, and fused and sample meet the same cache state) and, in full runs, the parts of the iterations: ``numpy_sample``
(``sample_numpy`` alone) and ``pgfast_score`` (the stored estimator on a batch sampled
beforehand). (Until 2026-11-25 the targets were judged on the ``_se`` calls.)

Checks (the run fails otherwise): :func:`~pgfast.benchmarks.reference.softmax_gradient` on a pgfast batch equals
``pg.policy_gradient(..., baseline="time")`` on it (relative 1e-9, max-norm); the fused estimator
equals the stored one with baseline None for the same seed, and on 1 and 2 threads (1e-9), and
with the time baseline (with and without standard errors, 1e-9); and
the NumPy, stored and fused estimates, pooled over at least ``CHECK_TRAJECTORIES`` trajectories,
agree with ``pg.exact.gradient`` (||g - g*||^2 <= AGREE_T x the summed variances) and the mean
return with ``pg.exact.evaluate(...).J`` (within AGREE_SE standard errors).

Targets (one thread): fused >= 2x NumPy at N = 16384 and >= 4x at N = 1024; fused no slower than
sampling alone; stored >= 1.3x NumPy at N = 16384 and >= 3x at N = 1024; fused on 2 threads
>= 1.8x its one-thread speed.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

import pgfast as pg
from pgfast import exact as pg_exact

from . import reference as ref
from ._harness import (
    add_bench_arguments,
    frozenlake,
    machine_info,
    random_mdp,
    result_envelope,
    reuse_freed_memory,
    run_and_print,
    save_result,
    single_thread_environment,
)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int32]

SIZES = (1024, 16384)
POLICIES = ("tabular", "linear")
N_FEATURES = 16
THETA_SCALE = 0.1  # linear policy: theta ~ N(0, THETA_SCALE^2)
TARGET_FUSED_VS_NUMPY = {1024: 4.0, 16384: 2.0}
TARGET_STORED_VS_NUMPY = {1024: 3.0, 16384: 1.3}
TARGET_FUSED_VS_SAMPLE = 1.0
TARGET_2T_VS_1T = 1.8
EXACT_RTOL = 1e-9  # deterministic comparisons (same trajectories), relative to the max-norm
AGREE_T = 9.0  # ||g_pooled - g*||^2 <= AGREE_T * sum of the variances (expected 1)
AGREE_SE = 5.0  # mean return against the exact J
CHECK_TRAJECTORIES = {False: 65536, True: 16384}  # pooled per side for the statistical check (quick: True)
WARMUP = {False: 2, True: 1}
REPEATS = {False: 15, True: 3}
DEFAULT_JSON: Path | None = None  # bench/bench_estimators.py saves to bench/results/estimators.json

VARIANTS = ("numpy", "stored", "fused_1t", "fused_2t", "sample")
# information, not targets: the same calls with standard errors, and, in full runs, the parts of
# the iterations
INFO_VARIANTS = (
    "stored_se", "fused_1t_se", "fused_1t_warm", "fused_2t_warm", "sample_warm", "numpy_sample", "pgfast_score",
)
# timed right after an untimed call of their own, as consecutive iterations of a training loop
# (pgfast.train) run: the pool thread of a 2T call is then awake. In the round-robin the other
# cases keep only the calling thread busy for milliseconds, and on a VM the idle vCPU of the pool
# thread takes 0.1-0.6 ms to wake (measured), which the 2T call waits for. The warm pair
# fused 1T / sample also compares the two in the same cache state, as a check on the
# round-robin's order (there fused 1T follows the stored iteration, which streams a whole batch
# through the cache, and sample follows fused 2T): measured, both run ~0.1 ms faster warm on the
# random MDP at N = 1024 and their ratio is the same (0.85-0.89 both ways, 2026-12-07).
WARM_VARIANTS = ("fused_1t_warm", "fused_2t_warm", "sample_warm")


def _has_stderr_switch() -> bool:
    """Whether ``pg.policy_gradient`` takes ``stderr=`` (fused: skip the per-trajectory bookkeeping)."""
    return "stderr" in inspect.signature(pg.policy_gradient).parameters


# -- one iteration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """What a timed call keeps: the gradient (theta's shape), its standard errors (pgfast only),
    the mean return and its standard error (pgfast only)."""

    grad: FloatArray
    stderr: FloatArray | None
    value: float
    value_stderr: float | None


def numpy_iteration(
    mdp: pg.FiniteMDP,
    tables: ref.SamplerTables,
    theta: FloatArray,
    features: FloatArray | None,
    n: int,
    seed: int,
) -> Estimate:
    """One REINFORCE iteration in NumPy: policy table, ``sample_numpy`` (method ``"auto"``),
    :func:`~pgfast.benchmarks.reference.softmax_gradient`."""
    probs = ref.policy_probs(theta, features)
    st, ac, rw, ln, _ = ref.sample_numpy(mdp, probs, n, np.random.default_rng(seed), tables=tables)
    grad, value = ref.softmax_gradient(st, ac, rw, ln, probs, features, mdp.gamma)
    return Estimate(grad, None, value, None)


def _from_pg(res: pg.PolicyGradient) -> Estimate:
    return Estimate(res.grad, res.stderr, res.value, res.value_stderr)


# -- one case -----------------------------------------------------------------------------------


def make_policy(mdp: pg.FiniteMDP, kind: str) -> tuple[pg.TabularSoftmax | pg.LinearSoftmax, FloatArray | None]:
    """The benchmark's policy on ``mdp``: (policy, features or None)."""
    S, A = mdp.n_states, mdp.n_actions
    if kind == "tabular":
        return pg.TabularSoftmax(S, A, theta=np.random.default_rng(1).normal(size=(S, A))), None
    if kind == "linear":
        phi = np.random.default_rng(2).normal(size=(S, A, N_FEATURES))
        theta = np.random.default_rng(3).normal(scale=THETA_SCALE, size=N_FEATURES)
        pi = pg.LinearSoftmax(phi, theta)
        return pi, np.ascontiguousarray(pi.features)
    raise ValueError(f"unknown policy kind {kind!r}")


Call = Callable[[int], Estimate | None]


def _rel(x: FloatArray, y: FloatArray) -> float:
    """max |x - y| / max |y| (the plain difference when y is 0)."""
    scale = float(np.abs(y).max()) if y.size else 0.0
    diff = float(np.abs(x - y).max()) if y.size else 0.0
    return diff / scale if scale > 0.0 else diff


def _pooled(estimates: list[Estimate], variance_from: list[Estimate]) -> tuple[FloatArray, FloatArray, float, float]:
    """Mean over equal-size batches, and the variance of that mean from the stderrs of
    ``variance_from`` (pgfast's; the NumPy yardstick is the same estimator, so its variance too):
    (grad, var (theta's shape), value, value variance)."""
    g = np.mean([e.grad for e in estimates], axis=0)
    v = float(np.mean([e.value for e in estimates]))
    k = len(estimates)
    se2 = np.mean([np.square(e.stderr) for e in variance_from if e.stderr is not None], axis=0) / k
    vse2 = float(np.mean([e.value_stderr**2 for e in variance_from if e.value_stderr is not None])) / k
    return g, se2, v, vse2


def _bench_case(
    key: str, mdp: pg.FiniteMDP, tables: ref.SamplerTables, kind: str, n: int, quick: bool
) -> dict[str, Any]:
    pi, features = make_policy(mdp, kind)
    theta = pi.theta.copy()

    def numpy_call(seed: int) -> Estimate:
        return numpy_iteration(mdp, tables, theta, features, n, seed)

    # The targets compare the same work: NumPy forms the gradient and the mean return, so the
    # timed pgfast calls do too (stderr=False). The calls with standard errors ("_se") are timed
    # for information and feed the statistical check.
    no_se: dict[str, Any] = {"stderr": False} if _has_stderr_switch() else {}

    def stored_call(se: bool) -> Call:
        def call(seed: int) -> Estimate:
            traj = mdp.sample(pi, n, seed=seed, threads=1)
            kw = {} if se else no_se
            return _from_pg(pg.policy_gradient(pi, traj, weights="reward_to_go", baseline="time", threads=1, **kw))

        return call

    def fused_call(threads: int, se: bool) -> Call:
        def call(seed: int) -> Estimate:
            kw = {} if se else no_se
            return _from_pg(pg.policy_gradient(pi, mdp=mdp, n=n, seed=seed, threads=threads, **kw))

        return call

    def fused_time_call(seed: int) -> Estimate:  # the leave-one-out time baseline: one pass or two
        return _from_pg(pg.policy_gradient(pi, mdp=mdp, n=n, seed=seed, threads=1, baseline="time", **no_se))

    def sample_call(seed: int) -> None:
        mdp.sample(pi, n, seed=seed, threads=1)

    calls: dict[str, Call] = {
        "numpy": numpy_call,
        "stored": stored_call(False),
        "fused_1t": fused_call(1, False),
        "fused_2t": fused_call(2, False),
        "fused_time": fused_time_call,
        "sample": sample_call,
        "stored_se": stored_call(True),
        "fused_1t_se": fused_call(1, True),
        "fused_1t_warm": fused_call(1, False),
        "fused_2t_warm": fused_call(2, False),
        "sample_warm": sample_call,
    }
    if not quick:
        fixed = mdp.sample(pi, n, seed=7, threads=1)

        def numpy_sample_call(seed: int) -> None:
            ref.sample_numpy(mdp, ref.policy_probs(theta, features), n, np.random.default_rng(seed), tables=tables)

        def score_call(seed: int) -> None:
            pg.policy_gradient(pi, fixed, weights="reward_to_go", baseline="time", threads=1, **no_se)

        calls["numpy_sample"] = numpy_sample_call
        calls["pgfast_score"] = score_call

    # -- timing: warm-up, then round-robin rounds, each call timed alone
    for call in calls.values():
        for _ in range(WARMUP[quick]):
            call(0)
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    kept: dict[str, list[Estimate]] = {"numpy": [], "stored_se": [], "fused_1t_se": []}
    gc.collect()
    repeats = REPEATS[quick]
    for r in range(repeats):
        seed = 1000 + r
        for name, call in calls.items():
            if name in WARM_VARIANTS:
                call(seed)  # untimed: the same call just before
            t0 = time.perf_counter()
            out = call(seed)
            seconds[name].append(time.perf_counter() - t0)
            if name in kept and out is not None:
                kept[name].append(out)
            del out
    # untimed batches until each side pools CHECK_TRAJECTORIES trajectories
    r = repeats
    while r * n < CHECK_TRAJECTORIES[quick]:
        for name in kept:
            out = calls[name](1000 + r)
            assert out is not None
            kept[name].append(out)
        r += 1

    # -- checks
    checks: dict[str, Any] = {}
    traj = mdp.sample(pi, n, seed=11, threads=1)
    steps_per_run = float(traj.lengths.mean()) * n
    pg_time = pg.policy_gradient(pi, traj, weights="reward_to_go", baseline="time", threads=1)
    np_grad, np_value = ref.softmax_gradient(
        traj.states, traj.actions, traj.rewards, traj.lengths, ref.policy_probs(theta, features), features, mdp.gamma
    )
    checks["numpy_vs_stored_same_batch"] = max(_rel(np_grad, pg_time.grad), _rel(np.array([np_value]), np.array([pg_time.value])))
    pg_none = pg.policy_gradient(pi, traj, weights="reward_to_go", baseline=None, threads=1)
    f1 = pg.policy_gradient(pi, mdp=mdp, n=n, seed=11, threads=1)
    f2 = pg.policy_gradient(pi, mdp=mdp, n=n, seed=11, threads=2)
    checks["fused_vs_stored_none_same_seed"] = max(_rel(f1.grad, pg_none.grad), _rel(f1.stderr, pg_none.stderr))
    checks["fused_1t_vs_2t"] = max(_rel(f2.grad, f1.grad), _rel(f2.stderr, f1.stderr))
    if no_se:
        f0 = pg.policy_gradient(pi, mdp=mdp, n=n, seed=11, threads=1, **no_se)
        checks["fused_nose_vs_fused"] = max(_rel(f0.grad, f1.grad), _rel(np.array([f0.value]), np.array([f1.value])))
        s0 = pg.policy_gradient(pi, traj, weights="reward_to_go", baseline="time", threads=1, **no_se)
        checks["stored_nose_vs_stored"] = max(_rel(s0.grad, pg_time.grad), _rel(np.array([s0.value]), np.array([pg_time.value])))
    ft = pg.policy_gradient(pi, mdp=mdp, n=n, seed=11, threads=1, baseline="time")
    checks["fused_time_vs_stored_time_same_seed"] = max(_rel(ft.grad, pg_time.grad), _rel(ft.stderr, pg_time.stderr))
    if no_se:  # the timed call (one pass where its tables are small)
        ft0 = pg.policy_gradient(pi, mdp=mdp, n=n, seed=11, threads=1, baseline="time", **no_se)
        checks["fused_time_nose_vs_stored_time"] = max(_rel(ft0.grad, pg_time.grad),
                                                       _rel(np.array([ft0.value]), np.array([pg_time.value])))
    del traj
    exact_ok = all(v <= EXACT_RTOL for v in checks.values())

    g_star = np.asarray(pg_exact.gradient(mdp, pi, "finite_horizon"))
    J_star = float(pg_exact.evaluate(mdp, pi, "finite_horizon").J)
    stat: dict[str, dict[str, float]] = {}
    for name, var_from in (("numpy", "stored_se"), ("stored_se", "stored_se"), ("fused_1t_se", "fused_1t_se")):
        g, se2, v, vse2 = _pooled(kept[name], kept[var_from])
        denom = float(se2.sum())
        T = float(np.square(g - g_star).sum()) / denom if denom > 0 else float("inf")
        z_value = abs(v - J_star) / np.sqrt(vse2) if vse2 > 0 else (0.0 if v == J_star else float("inf"))
        stat[name] = {
            "trajectories": float(len(kept[name]) * n),
            "T": T,
            "value": v,
            "value_z": float(z_value),
            "rel_error": _rel(g, g_star),
        }
    stat_ok = all(s["T"] <= AGREE_T and s["value_z"] <= AGREE_SE for s in stat.values())

    # -- ratios (speed = 1 / best time)
    timings = {
        name: {
            "best_seconds": min(ts),
            "median_seconds": float(np.median(ts)),
            "repeats": len(ts),
        }
        for name, ts in seconds.items()
    }
    best = {name: t["best_seconds"] for name, t in timings.items()}
    fused_vs_numpy = best["numpy"] / best["fused_1t"]
    stored_vs_numpy = best["numpy"] / best["stored"]
    fused_vs_sample = best["sample"] / best["fused_1t"]
    fused_2t_vs_1t = best["fused_1t"] / best["fused_2t"]
    info = {
        "fused_se_vs_numpy": best["numpy"] / best["fused_1t_se"],
        "stored_se_vs_numpy": best["numpy"] / best["stored_se"],
        "fused_2t_vs_1t_warm": best["fused_1t_warm"] / best["fused_2t_warm"],
        "fused_vs_sample_warm": best["sample_warm"] / best["fused_1t_warm"],
        # the fused estimator with the time baseline against the fused one without a baseline and
        # against the stored-batch iteration (sample + estimate) with the same baseline
        "fused_time_vs_fused": best["fused_1t"] / best["fused_time"],
        "fused_time_vs_stored_time": best["stored"] / best["fused_time"],
    }
    return {
        "workload": key,
        "policy": kind,
        "n": n,
        "n_params": pi.n_params,
        "horizon": mdp.horizon,
        "steps_per_run": steps_per_run,
        "numpy_method": ref.auto_method(tables, n),
        "timings": timings,
        "ratio_fused_vs_numpy": fused_vs_numpy,
        "ratio_stored_vs_numpy": stored_vs_numpy,
        "ratio_fused_vs_sample": fused_vs_sample,
        "ratio_fused_2t_vs_1t": fused_2t_vs_1t,
        "target_fused_vs_numpy": TARGET_FUSED_VS_NUMPY[n],
        "target_stored_vs_numpy": TARGET_STORED_VS_NUMPY[n],
        "target_fused_vs_sample": TARGET_FUSED_VS_SAMPLE,
        "target_fused_2t_vs_1t": TARGET_2T_VS_1T,
        "pass_fused_vs_numpy": fused_vs_numpy >= TARGET_FUSED_VS_NUMPY[n],
        "pass_stored_vs_numpy": stored_vs_numpy >= TARGET_STORED_VS_NUMPY[n],
        "pass_fused_vs_sample": fused_vs_sample >= TARGET_FUSED_VS_SAMPLE,
        "pass_fused_2t_vs_1t": fused_2t_vs_1t >= TARGET_2T_VS_1T,
        "info_ratios": info,
        "exact_checks": checks,
        "statistical_checks": stat,
        "exact_J": J_star,
        "agree": exact_ok and stat_ok,
    }


def run(quick: bool = False, *, reuse_memory: bool = True) -> list[dict[str, Any]]:
    """Run every workload, policy and size; one dict per row (the JSON's ``rows``).

    ``quick``: 1 warm-up call and 3 repeats, no breakdown calls, 16,384 pooled trajectories for
    the statistical check (a smoke test). ``reuse_memory`` calls
    :func:`pgfast.benchmarks._harness.reuse_freed_memory` first (process-wide, glibc only). Raises
    AssertionError if a check fails: then the sides did not compute the same estimator.
    """
    if reuse_memory:
        reuse_freed_memory()
    rows: list[dict[str, Any]] = []
    for key, mdp in (("frozenlake", frozenlake()), ("random", random_mdp())):
        tables = ref.SamplerTables(mdp)
        for kind in POLICIES:
            for n in SIZES:
                rows.append(_bench_case(key, mdp, tables, kind, n, quick))
    bad = [f"{r['workload']} {r['policy']} N={r['n']}: {_agree_note(r)}" for r in rows if not r["agree"]]
    if bad:
        print(format_table(rows), file=sys.stderr)
        raise AssertionError("estimators disagree: " + " | ".join(bad))
    return rows


# -- report -------------------------------------------------------------------------------------


def _agree_note(r: dict[str, Any]) -> str:
    c = r["exact_checks"]
    s = r["statistical_checks"]
    stat = ", ".join(f"{k} T {v['T']:.2f} J z {v['value_z']:.1f}" for k, v in s.items())
    nose = (f", stderr=False/True fused {c['fused_nose_vs_fused']:.0e} stored {c['stored_nose_vs_stored']:.0e}"
            if "fused_nose_vs_fused" in c else "")
    return (
        f"same batch NumPy/stored {c['numpy_vs_stored_same_batch']:.0e}, fused/stored(None) "
        f"{c['fused_vs_stored_none_same_seed']:.0e}, fused 1T/2T {c['fused_1t_vs_2t']:.0e}{nose}; "
        f"vs exact ({s['numpy']['trajectories']:,.0f} traj.): {stat}"
    )


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:7.2f}" if ms < 100 else f"{ms:7.1f}"


def _ratio(r: dict[str, Any], name: str) -> str:
    return (
        f"{r['ratio_' + name]:6.2f} {'>=' + format(r['target_' + name], 'g'):>5}"
        f" {'PASS' if r['pass_' + name] else 'FAIL':4}"
    )


def format_table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'workload':<10} {'N':>6} {'policy':<7} | {'NumPy':>7} {'stored':>7} {'fused1T':>7} {'fused2T':>7}"
        f" {'sample':>7} | {'fused/NumPy':<16} | {'stored/NumPy':<16} | {'fused/sample':<16} | {'fused 2T/1T':<16}"
    )
    lines = [
        "milliseconds per iteration (best of the repeats), one thread unless 2T; ratios of speeds"
        " (time of the slower / time of the faster)",
        head,
        "-" * len(head),
    ]
    for r in rows:
        t = {k: v["best_seconds"] for k, v in r["timings"].items()}
        lines.append(
            f"{r['workload']:<10} {r['n']:>6} {r['policy']:<7} |"
            f" {_ms(t['numpy'])} {_ms(t['stored'])} {_ms(t['fused_1t'])} {_ms(t['fused_2t'])} {_ms(t['sample'])} |"
            f" {_ratio(r, 'fused_vs_numpy')} | {_ratio(r, 'stored_vs_numpy')} |"
            f" {_ratio(r, 'fused_vs_sample')} | {_ratio(r, 'fused_2t_vs_1t')}"
        )
    lines += [
        "",
        "with per-coordinate standard errors as well (policy_gradient's default stderr=True; more work than"
        " the NumPy yardstick does: information, not a target)",
        f"{'workload':<10} {'N':>6} {'policy':<7} | {'stored ms':>9} {'vs NumPy':>8} | {'fused ms':>8} {'vs NumPy':>8}",
    ]
    for r in rows:
        i, t = r["info_ratios"], r["timings"]
        lines.append(
            f"{r['workload']:<10} {r['n']:>6} {r['policy']:<7} | {_ms(t['stored_se']['best_seconds']):>9}"
            f" {i['stored_se_vs_numpy']:>8.2f} | {_ms(t['fused_1t_se']['best_seconds']):>8} {i['fused_se_vs_numpy']:>8.2f}"
        )
    lines += [
        "",
        ("fused on 1 and 2 threads and sample, each timed call right after an untimed one (consecutive"
         " iterations, as in pgfast.train: caches and the pool thread warm; information, not a target)"),
        (f"{'workload':<10} {'N':>6} {'policy':<7} | {'1T ms':>7} {'2T ms':>7} {'sample':>7} | {'2T/1T':>6}"
         f" {'fused/sample':>12}"),
    ]
    for r in rows:
        i, t = r["info_ratios"], r["timings"]
        lines.append(
            f"{r['workload']:<10} {r['n']:>6} {r['policy']:<7} | {_ms(t['fused_1t_warm']['best_seconds'])}"
            f" {_ms(t['fused_2t_warm']['best_seconds'])} {_ms(t['sample_warm']['best_seconds'])} |"
            f" {i['fused_2t_vs_1t_warm']:>6.2f} {i['fused_vs_sample_warm']:>12.2f}"
        )
    lines += [
        "",
        ("the leave-one-out time baseline fused (one pass with exact per-step tables where H S A <= 131072,"
         " as on FrozenLake; else two passes: the batch's statistics, then the same trajectories"
         " again) against the fused estimator without a baseline and against the stored"
         " iteration (sample + estimate) with the time baseline; 1 thread, no standard errors"),
        f"{'workload':<10} {'N':>6} {'policy':<7} | {'time ms':>7} | {'vs fused none':>13} | {'vs stored time':>14}",
    ]
    for r in rows:
        i, t = r["info_ratios"], r["timings"]
        lines.append(
            f"{r['workload']:<10} {r['n']:>6} {r['policy']:<7} | {_ms(t['fused_time']['best_seconds'])} |"
            f" {i['fused_time_vs_fused']:>13.2f} | {i['fused_time_vs_stored_time']:>14.2f}"
        )
    if any("numpy_sample" in r["timings"] for r in rows):
        lines += [
            "",
            "breakdown (ms): NumPy = sample + estimator; pgfast stored = sample + estimator; fused extra = fused 1T - sample",
            f"{'workload':<10} {'N':>6} {'policy':<7} {'steps/run':>10} | {'np sample':>9} {'np est':>7}"
            f" | {'pg sample':>9} {'pg est':>7} {'(score)':>7} | {'fused extra':>11}",
        ]
        for r in rows:
            t = {k: v["best_seconds"] for k, v in r["timings"].items()}
            if "numpy_sample" not in t:
                continue
            lines.append(
                f"{r['workload']:<10} {r['n']:>6} {r['policy']:<7} {r['steps_per_run']:>10,.0f} |"
                f" {_ms(t['numpy_sample']):>9} {_ms(t['numpy'] - t['numpy_sample'])}"
                f" | {_ms(t['sample']):>9} {_ms(t['stored'] - t['sample'])} {_ms(t['pgfast_score'])}"
                f" | {_ms(t['fused_1t'] - t['sample']):>11}"
            )
    lines += [
        "",
        f"checks (same batch: relative max-norm <= {EXACT_RTOL:g}; vs exact: T = ||g - g*||^2 / sum var <= {AGREE_T:g},"
        f" mean return within {AGREE_SE:g} se of J):",
    ]
    for r in rows:
        lines.append(f"  {r['workload']:<10} {r['policy']:<7} N={r['n']:<6} {_agree_note(r)}")
    return "\n".join(lines)


def main(
    argv: Sequence[str] | None = None,
    *,
    default_json: Path | None = DEFAULT_JSON,
    prog: str = "python -m pgfast.benchmarks.estimators",
) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_bench_arguments(parser, default_json,
                        "1 warm-up, 3 repeats, no breakdown, smaller statistical check: a smoke test")
    args = parser.parse_args(argv)
    single_thread_environment()

    info = machine_info()
    reused = False if args.default_malloc else reuse_freed_memory()
    rows = run_and_print(lambda: run(quick=args.quick, reuse_memory=False), format_table, info, reused)

    result = {
        **result_envelope("estimators", prog, argv, args.quick, info),
        "protocol": {
            "timer": f"time.perf_counter around one call; calls interleaved round-robin after "
            f"{WARMUP[args.quick]} warm-up call(s) each",
            "statistic": "best (min) seconds over the repeats; medians also recorded; ratios of best times",
            "iteration": "sample N trajectories + reward-to-go + leave-one-out time baseline + gradient",
            "numpy": "numpy_iteration: NumPy softmax, reference.sample_numpy (method 'auto'), reference.softmax_gradient; one thread",
            "stored": "mdp.sample(pi, N, seed=, threads=1) + pg.policy_gradient(pi, traj, weights='reward_to_go', "
            "baseline='time', threads=1, stderr=False)",
            "fused": "pg.policy_gradient(pi, mdp=mdp, n=N, seed=, threads=1 or 2, stderr=False), baseline None",
            "info_se": "stored_se / fused_1t_se: the same with stderr=True (per-coordinate standard errors; no target)",
            "info_warm": "fused_1t_warm / fused_2t_warm / sample_warm: the fused and sample calls, each timed right "
            "after an untimed identical call (consecutive iterations: caches and the pool thread warm; no target)",
            "sample": "mdp.sample(pi, N, seed=, threads=1)",
            "setup": "per-call policy tables inside the timed calls; MDP-level tables built before timing "
            "(pgfast: with the FiniteMDP; NumPy: SamplerTables)",
            "checks": f"same batch: reference.softmax_gradient vs stored pgfast, fused vs stored with baseline None, fused 1T vs 2T "
            f"within {EXACT_RTOL:g} relative; pooled estimates vs pg.exact.gradient: ||g - g*||^2 <= {AGREE_T:g} x summed "
            f"variances (pgfast's stderrs), mean return within {AGREE_SE:g} se of the exact J",
            "memory": "glibc malloc keeps freed memory (as the sampler benchmark)" if reused else "default allocator",
        },
        "targets": {
            "fused_vs_numpy": TARGET_FUSED_VS_NUMPY,
            "stored_vs_numpy": TARGET_STORED_VS_NUMPY,
            "fused_vs_sample": TARGET_FUSED_VS_SAMPLE,
            "fused_2t_vs_1t": TARGET_2T_VS_1T,
        },
        "rows": rows,
    }
    save_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
