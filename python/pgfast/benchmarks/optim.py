"""Closed-form optimizer benchmark: 10,000 exact natural-policy-gradient and policy-mirror-descent
steps on a Garnet MDP, pgfast against a dense NumPy implementation of the same updates, same run.

    python -m pgfast.benchmarks.optim [--quick] [--json PATH]   # installed package
    python bench/bench_optim.py [--quick]                       # source tree: saves bench/results/optim.json
    pgfast bench --only optim

Workload: ``pg.envs.garnet(100, 10, 5, seed=0, gamma=0.9)`` (S = 100, A = 10, 5 successors per
pair), from the uniform policy (theta = 0), STEPS steps of each update:

- ``npg``: ``pg.optim.NaturalPolicyGradient(lr=0.1)``;
- ``npg_entropy``: ``pg.optim.NaturalPolicyGradient(lr=0.1, tau=0.01)`` (Cen et al.'s update);
- ``pmd_kl`` / ``pmd_euclidean``: ``pg.optim.PolicyMirrorDescent(lr=1.0, mirror=...)``, constant
  step size (the geometric schedule's step lr / gamma^(t-1) leaves the float64 range before
  step 10,000 at gamma = 0.9).

Timed, interleaved round-robin, median of the repeats (every repeat in the JSON), one thread:

- ``numpy``: :func:`pgfast.benchmarks.reference.closed_form_run` (per step: P_pi by a batched
  ``matmul``, ``np.linalg.solve`` of the 100 x 100 system, Q = r + gamma P V, the update), one
  BLAS thread;
- ``pgfast``: ``optimizer.run(policy, mdp, STEPS)`` (the loop in C++; each step's values by the
  dense LU kept from step to step and refined, see :meth:`pgfast.optim.NaturalPolicyGradient.run`);
- ``pgfast_fresh_lu``: the same C++ loop factorising I - gamma P_pi afresh every step (what the
  refinement saves).

Checks (the run fails otherwise): the three give the same values J_k at every step and the same
final policy, within AGREE (absolute, on J of order 10 and on probabilities). Target: ``pgfast``
>= 5x ``numpy``.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
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

S, A, BRANCHING, GAMMA, SEED = 100, 10, 5, 0.9, 0
STEPS = {False: 10_000, True: 1_000}
REPEATS = {False: 3, True: 1}
TARGET = 5.0
AGREE = 1e-9
DEFAULT_JSON: Path | None = None  # bench/bench_optim.py saves to bench/results/optim.json

UPDATES: dict[str, dict[str, Any]] = {
    "npg": {"cls": "NaturalPolicyGradient", "kwargs": {"lr": 0.1}, "kind": 0},
    "npg_entropy": {"cls": "NaturalPolicyGradient", "kwargs": {"lr": 0.1, "tau": 0.01}, "kind": 0},
    "pmd_kl": {"cls": "PolicyMirrorDescent", "kwargs": {"lr": 1.0, "mirror": "kl"}, "kind": 1},
    "pmd_euclidean": {"cls": "PolicyMirrorDescent", "kwargs": {"lr": 1.0, "mirror": "euclidean"}, "kind": 2},
}


def workload() -> pg.FiniteMDP:
    """The benchmark's Garnet MDP (see the module docstring)."""
    return pg.envs.garnet(S, A, BRANCHING, seed=SEED, gamma=GAMMA)


def _softmax(theta: np.ndarray) -> np.ndarray:
    z = np.exp(theta - theta.max(axis=1, keepdims=True))
    return np.asarray(z / z.sum(axis=1, keepdims=True))


def _case(name: str, quick: bool) -> dict[str, Any]:
    spec = UPDATES[name]
    mdp = workload()
    steps = STEPS[quick]
    P, r, mu0 = mdp.P, mdp.R, mdp.mu0
    kw = spec["kwargs"]

    def numpy_call() -> tuple[np.ndarray, np.ndarray]:
        update = "npg" if spec["kind"] == 0 else ("pmd_kl" if spec["kind"] == 1 else "pmd_euclidean")
        return ref.closed_form_run(P, r, mu0, GAMMA, np.zeros((S, A)), steps, update=update, lr=kw["lr"],
                                   tau=kw.get("tau", 0.0))

    def pgfast_call() -> tuple[np.ndarray, np.ndarray]:
        pi = pg.TabularSoftmax(S, A)
        opt = getattr(pg.optim, spec["cls"])(**kw)
        J = opt.run(pi, mdp, steps)
        return pi.theta.copy(), J

    def fresh_call() -> tuple[np.ndarray, np.ndarray]:
        theta, J, _, _ = pg._core.exact.closed_form_run(mdp._mdp, np.zeros((S, A)), spec["kind"], kw["lr"],
                                                        kw.get("tau", 0.0), False, 0, GAMMA, steps, False)
        return theta, J

    calls: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
        "numpy": numpy_call, "pgfast": pgfast_call, "pgfast_fresh_lu": fresh_call}
    seconds: dict[str, list[float]] = {k: [] for k in calls}
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    gc.collect()
    for _ in range(REPEATS[quick]):
        for key, call in calls.items():
            t0 = time.perf_counter()
            out[key] = call()
            seconds[key].append(time.perf_counter() - t0)
    ref_theta, ref_J = out["numpy"]
    diffs = {}
    for key in ("pgfast", "pgfast_fresh_lu"):
        theta, J = out[key]
        diffs[key] = {"J": float(np.max(np.abs(J - ref_J))),
                      "probs": float(np.max(np.abs(_softmax(theta) - _softmax(ref_theta))))}
    med = {k: float(np.median(v)) for k, v in seconds.items()}
    ratio = med["numpy"] / med["pgfast"]
    J_star = pg.exact.optimal(mdp, "discounted").J
    return {
        "case": name, "optimizer": f"pg.optim.{spec['cls']}({', '.join(f'{k}={v!r}' for k, v in kw.items())})",
        "steps": steps, "timings": {k: {"median_seconds": med[k], "seconds": v} for k, v in seconds.items()},
        "ratio_pgfast_vs_numpy": ratio, "ratio_fresh_lu_vs_numpy": med["numpy"] / med["pgfast_fresh_lu"],
        "target": TARGET, "pass": ratio >= TARGET, "J0": float(ref_J[0]), "J_final": float(ref_J[-1]),
        "J_star": J_star, "max_abs_diff": diffs,
        "agree": all(d["J"] <= AGREE and d["probs"] <= AGREE for d in diffs.values()),
    }


def run(quick: bool = False) -> list[dict[str, Any]]:
    """One row per update (the JSON's ``rows``); AssertionError if the implementations disagree."""
    rows = [_case(name, quick) for name in UPDATES]
    bad = [r["case"] for r in rows if not r["agree"]]
    if bad:
        print(format_table(rows), file=sys.stderr)
        raise AssertionError("pgfast and NumPy disagree: " + ", ".join(bad))
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    steps = rows[0]["steps"] if rows else 0
    lines = [
        f"exact closed-form updates, Garnet S = {S}, A = {A}, b = {BRANCHING}, gamma = {GAMMA}: seconds for {steps} "
        "steps (median of the repeats), one thread",
        f"{'update':<14} | {'NumPy':>7} {'pgfast':>7} {'freshLU':>7} | {'pgfast/NumPy':<18} | {'freshLU/NumPy':>13} |"
        " J0 -> J_final (J*)            | max |diff| J, probs",
    ]
    lines.append("-" * len(lines[-1]))
    for r in rows:
        t = {k: v["median_seconds"] for k, v in r["timings"].items()}
        d = r["max_abs_diff"]["pgfast"]
        verdict = "PASS" if r["pass"] else "FAIL"
        lines.append(
            f"{r['case']:<14} | {t['numpy']:7.3f} {t['pgfast']:7.3f} {t['pgfast_fresh_lu']:7.3f} |"
            f" {r['ratio_pgfast_vs_numpy']:6.2f} >={r['target']:<4g} {verdict:<5} | {r['ratio_fresh_lu_vs_numpy']:13.2f} |"
            f" {r['J0']:.4f} -> {r['J_final']:.6f} ({r['J_star']:.6f}) | {d['J']:.1e}, {d['probs']:.1e}"
        )
    return "\n".join(lines)


def main(
    argv: Sequence[str] | None = None,
    *,
    default_json: Path | None = DEFAULT_JSON,
    prog: str = "python -m pgfast.benchmarks.optim",
) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_bench_arguments(parser, default_json, f"{STEPS[True]} steps, 1 repeat: a smoke test", malloc=False)
    args = parser.parse_args(argv)
    single_thread_environment()
    info = machine_info()
    rows = run_and_print(lambda: run(quick=args.quick), format_table, info, False, load_share="about 1")
    result = {
        **result_envelope("optim", prog, argv, args.quick, info),
        "protocol": {
            "workload": f"pg.envs.garnet({S}, {A}, {BRANCHING}, seed={SEED}, gamma={GAMMA}), theta = 0, "
            f"{STEPS[args.quick]} steps",
            "timer": f"time.perf_counter around one whole run; the three interleaved round-robin; {REPEATS[args.quick]} "
            "repeats",
            "statistic": "median seconds over the repeats; ratios of medians",
            "numpy": "reference.closed_form_run: batched matmul for P_pi, np.linalg.solve, one BLAS thread",
            "pgfast": "optimizer.run(policy, mdp, steps): C++ loop, LU kept between steps and refined",
            "pgfast_fresh_lu": "the same C++ loop with a fresh LU factorisation every step",
            "checks": f"max |J_k - J_k(numpy)| and max |pi - pi(numpy)| at the end <= {AGREE:g}",
        },
        "targets": {"pgfast_vs_numpy": TARGET},
        "rows": rows,
    }
    save_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
