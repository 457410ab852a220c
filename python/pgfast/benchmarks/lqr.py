"""LQR benchmark: the fused LQR policy gradient in pgfast against vectorised NumPy, same run, and the
time to reach 99 % of the optimal J, sampled and exact.

    python -m pgfast.benchmarks.lqr [--quick] [--json PATH]     # installed package
    python bench/bench_lqr.py [--quick]                         # source tree: saves bench/results/lqr.json
    pgfast bench --only lqr

Workloads (:func:`workload`): n = 4, m = 2 and n = 20, m = 5; A = 0.95 times a random orthogonal
matrix (stable, slowly decaying), B with N(0, 1/n) entries, Q = I, R = 0.1 I, H = 100, a Gaussian
start N(1, I) and process noise 0.01 I. The policy: W = 0 (stabilising, since A is stable),
sigma = 0.3.

Part 1, one estimate of the gradient (reward-to-go weights, no baseline, gamma = 1, N = 16384,
per-coordinate standard errors), timed interleaved round-robin after warm-up calls, best of the
repeats (medians in the JSON):

- ``numpy``: :func:`pgfast.benchmarks.reference.lqr_policy_gradient` (chunks of 1024
  trajectories simulated with matrix products, then one batched ``matmul`` per chunk for the W
  block), one BLAS thread;
- ``fused_1t`` / ``fused_2t``: ``pg.policy_gradient(pi, mdp=lqr, n=N, seed=, threads=1 | 2)``.

Checks (the run fails otherwise): both estimates agree with ``pg.exact.gradient`` (the summed
squared z-scores over the parameters at most AGREE_T times their number; expected 1 each), and
the fused estimate is the same bits on 1 and 2 threads. Targets: fused on one thread >= 3x NumPy;
on two threads >= 1.8x its one-thread speed.

Part 2, time to 99 % of the optimal J (n = 4, m = 2): from W = 0 with sigma = 0.3 fixed, Adam
(``pg.optim.Adam``, lr_k = LR / sqrt(1 + k / DECAY)) on the W block of the gradient until
J(W) >= J* - 0.01 |J*|, J* the best stationary gain's J under that noise
(``pg.exact.optimal(lqr, log_std=...).stationary_value``): ``sampled`` with the fused estimator
(TRAIN_N trajectories an iteration, the time baseline, one thread, seed = the iteration), ``exact``
with ``pg.exact.gradient``. The seconds count the gradients and the steps, not the exact J
evaluated after each step to decide when to stop.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import pgfast as pg

from . import reference as ref
from ._harness import (
    add_bench_arguments,
    machine_info,
    result_envelope,
    run_and_print,
    save_result,
    single_thread_environment,
)

SIZES = ((4, 2), (20, 5))
HORIZON = 100
N = 16384
SIGMA = 0.3
TARGET_FUSED_VS_NUMPY = 3.0
TARGET_2T_VS_1T = 1.8
AGREE_T = 4.0  # mean squared z-score against the exact gradient (expected 1)
WARMUP = {False: 1, True: 1}
REPEATS = {False: 7, True: 3}
LR, DECAY, TRAIN_N, MAX_ITERATIONS = 0.1, 10.0, 1024, 2000
DEFAULT_JSON: Path | None = None  # bench/bench_lqr.py saves to bench/results/lqr.json

# pg.policy_gradient and the optimizers take a LinearGaussian and an LQR at run time; their
# annotations name the finite MDP's types
policy_gradient: Any = pg.policy_gradient


def workload(n: int, m: int, horizon: int = HORIZON, seed: int = 0) -> pg.LQR:
    """The benchmark's LQR with state dimension n and action dimension m (see the module docstring)."""
    rng = np.random.default_rng(seed)
    A = 0.95 * np.linalg.qr(rng.standard_normal((n, n)))[0]
    B = rng.standard_normal((n, m)) / np.sqrt(n)
    return pg.LQR(A, B, np.eye(n), 0.1 * np.eye(m), horizon=horizon, x0=np.ones(n), x0_cov=np.eye(n),
                  noise_cov=0.01 * np.eye(n))


def _estimate_case(n: int, m: int, quick: bool) -> dict[str, Any]:
    lqr = workload(n, m)
    pi = pg.LinearGaussian(n, m, log_std=np.log(SIGMA))
    factors = pg._core.lqr.Problem(lqr.A, lqr.B, lqr.Q, lqr.R, lqr.x0, lqr.x0_cov, lqr.noise_cov, lqr.max_state,
                                   HORIZON, pi.W, pi.log_std, -20.0)
    C0, Cw = factors.start_factor, factors.noise_factor
    W, sigma = pi.W, pi.std

    def numpy_call(seed: int) -> tuple[np.ndarray, np.ndarray, float]:
        return ref.lqr_policy_gradient(lqr.A, lqr.B, lqr.Q, lqr.R, lqr.x0, C0, Cw, W, sigma, HORIZON, N,
                                       np.random.default_rng(seed))

    def fused(threads: int) -> Callable[[int], tuple[np.ndarray, np.ndarray, float]]:
        def call(seed: int) -> tuple[np.ndarray, np.ndarray, float]:
            est = policy_gradient(pi, mdp=lqr, n=N, seed=seed, threads=threads)
            return est.grad, est.stderr, est.value

        return call

    calls = {"numpy": numpy_call, "fused_1t": fused(1), "fused_2t": fused(2)}
    for call in calls.values():
        for _ in range(WARMUP[quick]):
            call(0)
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    results: dict[str, list[tuple[np.ndarray, np.ndarray, float]]] = {name: [] for name in calls}
    gc.collect()
    for k in range(REPEATS[quick]):
        for name, call in calls.items():
            t0 = time.perf_counter()
            out = call(1 + k)
            seconds[name].append(time.perf_counter() - t0)
            results[name].append(out)
    exact = pg.exact.gradient(lqr, pi)
    J = pg.exact.evaluate(lqr, pi).J
    checks: dict[str, Any] = {}
    for name in ("numpy", "fused_1t"):
        g = np.mean([r[0] for r in results[name]], axis=0)
        se2 = np.mean([r[1] ** 2 for r in results[name]], axis=0) / len(results[name])
        checks[name] = {"T": float(np.mean((g - exact) ** 2 / se2)),
                        "value": float(np.mean([r[2] for r in results[name]])), "exact_J": J}
    same = all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
               for a, b in zip(results["fused_1t"], results["fused_2t"], strict=True))
    best = {name: min(s) for name, s in seconds.items()}
    ratio = best["numpy"] / best["fused_1t"]
    ratio2 = best["fused_1t"] / best["fused_2t"]
    return {
        "case": f"n={n} m={m}", "n": n, "m": m, "horizon": HORIZON, "trajectories": N,
        "timings": {name: {"best_seconds": best[name], "median_seconds": float(np.median(s)), "seconds": s}
                    for name, s in seconds.items()},
        "ratio_fused_vs_numpy": ratio, "target_fused_vs_numpy": TARGET_FUSED_VS_NUMPY,
        "pass_fused_vs_numpy": ratio >= TARGET_FUSED_VS_NUMPY,
        "ratio_fused_2t_vs_1t": ratio2, "target_fused_2t_vs_1t": TARGET_2T_VS_1T,
        "pass_fused_2t_vs_1t": ratio2 >= TARGET_2T_VS_1T,
        "checks": checks, "fused_1t_2t_same_bits": same,
        "agree": same and all(c["T"] <= AGREE_T for c in checks.values()),
    }


def _train_case(kind: str) -> dict[str, Any]:
    lqr = workload(4, 2)
    log_std = np.full(2, np.log(SIGMA))
    J_star = pg.exact.optimal(lqr, log_std=log_std).stationary_value
    assert J_star is not None
    goal = J_star - 0.01 * abs(J_star)
    pi = pg.LinearGaussian(4, 2, log_std=log_std)
    opt: Any = pg.optim.Adam(lr=LR)
    J0 = pg.exact.evaluate(lqr, pi).J
    seconds = 0.0
    value = J0
    it = 0
    for it in range(1, MAX_ITERATIONS + 1):
        opt.lr = LR / np.sqrt(1.0 + (it - 1) / DECAY)
        t0 = time.perf_counter()
        if kind == "exact":
            g = pg.exact.gradient(lqr, pi).copy()
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a step may leave the policy unstable for a while
                g = policy_gradient(pi, mdp=lqr, n=TRAIN_N, seed=it, baseline="time", stderr=False,
                                       threads=1).grad.copy()
        g[pi.action_dim * pi.feature_dim:] = 0.0  # sigma stays fixed
        opt.step(pi, g)
        seconds += time.perf_counter() - t0
        value = pg.exact.evaluate(lqr, pi).J
        if value >= goal:
            break
    return {"case": f"time to 99% ({kind})", "kind": kind, "iterations": it, "seconds": seconds, "J0": J0,
            "J": value, "J_star": J_star, "reached": bool(value >= goal),
            "trajectories_per_iteration": TRAIN_N if kind == "sampled" else None}


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Part 1 for both sizes and part 2 sampled and exact; one dict per row (the JSON's ``rows``).
    Raises AssertionError if a check fails."""
    rows = [_estimate_case(n, m, quick) for n, m in SIZES]
    rows += [_train_case("sampled"), _train_case("exact")]
    bad = [r["case"] for r in rows if not r.get("agree", r.get("reached"))]
    if bad:
        print(format_table(rows), file=sys.stderr)
        raise AssertionError("checks failed: " + ", ".join(bad))
    return rows


def _ratio(r: dict[str, Any], name: str) -> str:
    return f"{r['ratio_' + name]:6.2f} >={r['target_' + name]:<4g} {'PASS' if r['pass_' + name] else 'FAIL'}"


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"fused LQR gradient, H = {HORIZON}, N = {N}: milliseconds per estimate (best of the repeats); ratios of speeds",
        f"{'case':<10} | {'NumPy':>8} {'fused1T':>8} {'fused2T':>8} | {'fused/NumPy':<18} | {'fused 2T/1T':<18} | checks",
    ]
    lines.append("-" * len(lines[-1]))
    for r in rows:
        if "timings" not in r:
            continue
        t = {k: v["best_seconds"] * 1e3 for k, v in r["timings"].items()}
        c = r["checks"]
        lines.append(
            f"{r['case']:<10} | {t['numpy']:8.1f} {t['fused_1t']:8.1f} {t['fused_2t']:8.1f} | {_ratio(r, 'fused_vs_numpy'):<18} |"
            f" {_ratio(r, 'fused_2t_vs_1t'):<18} | T numpy {c['numpy']['T']:.2f} fused {c['fused_1t']['T']:.2f}"
            f" (<= {AGREE_T:g}), 1T = 2T bits: {r['fused_1t_2t_same_bits']}"
        )
    lines += ["", "time to 99 % of the optimal J (n = 4, m = 2, sigma fixed; seconds of gradients and steps)"]
    for r in rows:
        if "iterations" not in r:
            continue
        lines.append(
            f"{r['kind']:<8} {r['iterations']:>5} iterations {r['seconds']:8.3f} s   J {r['J0']:.2f} -> {r['J']:.3f}"
            f" (J* {r['J_star']:.3f}, goal {r['J_star'] - 0.01 * abs(r['J_star']):.3f}){'' if r['reached'] else ' NOT REACHED'}"
        )
    return "\n".join(lines)


def main(
    argv: Sequence[str] | None = None,
    *,
    default_json: Path | None = DEFAULT_JSON,
    prog: str = "python -m pgfast.benchmarks.lqr",
) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_bench_arguments(parser, default_json, "1 warm-up, 3 repeats: a smoke test", malloc=False)
    args = parser.parse_args(argv)
    single_thread_environment()
    info = machine_info()
    rows = run_and_print(lambda: run(quick=args.quick), format_table, info, False, load_share="about 1 (2 in the 2T calls)")
    result = {
        **result_envelope("lqr", prog, argv, args.quick, info),
        "protocol": {
            "timer": f"time.perf_counter around one call; calls interleaved round-robin after {WARMUP[args.quick]} warm-up "
            f"call(s) each; {REPEATS[args.quick]} repeats",
            "statistic": "best (min) seconds over the repeats; medians also recorded; ratios of best times",
            "estimate": f"reward-to-go weights, no baseline, gamma = 1, standard errors; N = {N}, H = {HORIZON}",
            "numpy": "reference.lqr_policy_gradient, chunks of 1024 trajectories, one BLAS thread",
            "fused": "pg.policy_gradient(pi, mdp=lqr, n=N, seed=, threads=1 or 2)",
            "checks": f"mean squared z-score of the estimates (pooled over the repeats) against pg.exact.gradient "
            f"<= {AGREE_T:g}; fused 1T and 2T the same bits",
            "time_to_99": f"Adam lr {LR} / sqrt(1 + k / {DECAY}) on the W block, sigma {SIGMA} fixed, from W = 0, until "
            f"J >= J* - 0.01 |J*| (J* the best stationary gain under that noise); sampled: the fused estimator, "
            f"{TRAIN_N} trajectories an iteration, baseline 'time', one thread; exact: pg.exact.gradient",
        },
        "targets": {"fused_vs_numpy": TARGET_FUSED_VS_NUMPY, "fused_2t_vs_1t": TARGET_2T_VS_1T},
        "rows": rows,
    }
    save_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
