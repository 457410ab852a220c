"""Sampler benchmark: pgfast's C++ sampler against the vectorised NumPy reference, same run.

    pgfast bench [--quick] [--json PATH]          # installed package
    python bench/bench_sampler.py [--quick]       # source tree: saves bench/results/sampler.json

Workloads, each with a tabular softmax policy of N(0, 1) logits:

- ``frozenlake``: FrozenLake 8x8, slippery, imported with ``pg.FiniteMDP.from_gymnasium``
  (episodes end in the holes and at the goal), H = 200;
- ``random``: a random MDP, S = 500, A = 8, 10 distinct successors per (s, a) with Dirichlet(1)
  probabilities, rewards N(0, 1) on (s, a), uniform mu0, no terminal states, H = 100;

at N = 1024 and N = 16384 episodes. Timed: ``pgfast.benchmarks.reference.sample_numpy`` (NumPy, one thread,
its fastest method for the case), ``mdp.sample(pi, N, threads=1)`` and ``threads=2``. Both sides
build their per-call policy tables inside the timed call; both have their MDP-level tables built
beforehand (pgfast when the MDP is constructed, NumPy in ``SamplerTables(mdp)``). Calls are
interleaved round-robin after a warm-up; a rate is simulated steps (``lengths.sum()``) per second
and the best of the repeats is reported (the median is kept in the JSON). The samplers must agree
statistically (mean return and mean length within 5 combined standard errors), pgfast must give
bit-identical batches on 1 and 2 threads, or the run fails.

Targets: pgfast 1 thread >= 3x NumPy at N = 1024 and >= 1.5x at N = 16384; 2 threads >= 1.8x
pgfast's own 1-thread rate.
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
    frozenlake,
    machine_info,
    random_mdp,
    result_envelope,
    reuse_freed_memory,
    run_and_print,
    save_result,
    single_thread_environment,
)

SIZES = (1024, 16384)
TARGET_VS_NUMPY = {1024: 3.0, 16384: 1.5}  # pgfast 1 thread / NumPy
TARGET_2T_VS_1T = 1.8
AGREE_SE = 5.0
DEFAULT_JSON: Path | None = None  # bench/bench_sampler.py saves to bench/results/sampler.json
NUMPY_METHODS = ("joint", "alias", "cdf")


# -- workloads ----------------------------------------------------------------------------------


def workloads() -> list[tuple[str, str, pg.FiniteMDP]]:
    return [
        ("frozenlake", "FrozenLake-v1 8x8 slippery, H=200", frozenlake()),
        ("random", "random MDP S=500 A=8 10 successors, H=100", random_mdp()),
    ]


# -- timing -------------------------------------------------------------------------------------

Batch = tuple[np.ndarray, np.ndarray]  # (returns, lengths)
Output = tuple[np.ndarray, np.ndarray, Any]  # (rewards, lengths, the whole output)


class _Series:
    """Rates and summary statistics of one sampler over the repeats."""

    def __init__(self) -> None:
        self.rates: list[float] = []
        self.seconds: list[float] = []
        self.steps: list[int] = []
        self.returns: list[np.ndarray] = []
        self.lengths: list[np.ndarray] = []

    def add(self, seconds: float, batch: Batch) -> None:
        G, L = batch
        steps = int(L.sum())
        self.seconds.append(seconds)
        self.steps.append(steps)
        self.rates.append(steps / seconds)
        self.returns.append(G)
        self.lengths.append(L)

    def stats(self, values: list[np.ndarray]) -> tuple[float, float]:
        x = np.concatenate(values).astype(np.float64)
        se = float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else 0.0
        return float(x.mean()), se

    def summary(self) -> dict[str, Any]:
        G, G_se = self.stats(self.returns)
        L, L_se = self.stats(self.lengths)
        return {
            "best_steps_per_s": max(self.rates),
            "median_steps_per_s": float(np.median(self.rates)),
            "best_seconds": min(self.seconds),
            "median_seconds": float(np.median(self.seconds)),
            "steps_per_run": float(np.mean(self.steps)),
            "repeats": len(self.rates),
            "mean_return": G,
            "mean_return_se": G_se,
            "mean_length": L,
            "mean_length_se": L_se,
        }


def _agree(a: dict[str, Any], b: dict[str, Any]) -> tuple[bool, str]:
    """Mean return and mean length within AGREE_SE combined standard errors."""
    notes = []
    ok = True
    for key in ("mean_return", "mean_length"):
        diff = abs(a[key] - b[key])
        se = float(np.hypot(a[key + "_se"], b[key + "_se"]))
        good = diff <= AGREE_SE * se if se > 0 else diff == 0.0
        ok &= good
        notes.append(f"{key} {a[key]:.5g} vs {b[key]:.5g} ({diff / se if se > 0 else 0.0:.1f} se)")
    return ok, "; ".join(notes)


def _bench_case(mdp: pg.FiniteMDP, n: int, repeats: int, methods: Sequence[str]) -> dict[str, Any]:
    S, A = mdp.n_states, mdp.n_actions
    pi = pg.TabularSoftmax(S, A, theta=np.random.default_rng(1).normal(size=(S, A)))
    tables = ref.SamplerTables(mdp)  # MDP-level set-up, like pgfast's tables built with the MDP
    auto = ref.auto_method(tables, n)

    # a timed call returns (rewards, lengths, whole output); statistics are computed after the timer
    def numpy_call(method: str) -> Callable[[int], Output]:
        def call(seed: int) -> Output:
            out = ref.sample_numpy(mdp, pi.probs(), n, np.random.default_rng(seed), method=method, tables=tables)
            return out[2], out[3], out

        return call

    def pgfast_call(threads: int) -> Callable[[int], Output]:
        def call(seed: int) -> Output:
            traj = mdp.sample(pi, n, seed=seed, threads=threads)
            return traj.rewards, traj.lengths, traj

        return call

    calls: dict[str, Callable[[int], Output]] = {"numpy": numpy_call(auto)}
    for m in methods:
        if m != auto:
            calls[f"numpy_{m}"] = numpy_call(m)
    calls["pgfast_1t"] = pgfast_call(1)
    calls["pgfast_2t"] = pgfast_call(2)

    for call in calls.values():  # warm-up: caches, allocator, lazily built tables, thread pool
        call(0)
        call(0)
    series = {name: _Series() for name in calls}
    gc.collect()
    for r in range(repeats):
        seed = 1000 + r
        for name, call in calls.items():
            t0 = time.perf_counter()
            rewards, lengths, whole = call(seed)
            seconds = time.perf_counter() - t0
            series[name].add(seconds, (rewards.sum(axis=1), lengths))
            del rewards, lengths, whole  # nothing of a run outlives it (allocator state alike for all)
    t1 = mdp.sample(pi, n, seed=1000, threads=1)
    t2 = mdp.sample(pi, n, seed=1000, threads=2)
    identical = bool(
        np.array_equal(t1.lengths, t2.lengths)
        and np.array_equal(t1.states, t2.states)
        and np.array_equal(t1.actions, t2.actions)
        and np.array_equal(t1.rewards, t2.rewards)
    )
    del t1, t2
    res = {name: s.summary() for name, s in series.items()}
    np_rate = res["numpy"]["best_steps_per_s"]
    r1 = res["pgfast_1t"]["best_steps_per_s"] / np_rate
    r2 = res["pgfast_2t"]["best_steps_per_s"] / np_rate
    r21 = res["pgfast_2t"]["best_steps_per_s"] / res["pgfast_1t"]["best_steps_per_s"]
    agree, note = _agree(res["numpy"], res["pgfast_1t"])
    target = TARGET_VS_NUMPY[n]
    return {
        "n": n,
        "horizon": mdp.horizon,
        "numpy_method": auto,
        "numpy_methods_steps_per_s": {
            m: res["numpy" if m == auto else f"numpy_{m}"]["best_steps_per_s"] for m in methods
        },
        "samplers": res,
        "ratio_1t_vs_numpy": r1,
        "ratio_2t_vs_numpy": r2,
        "ratio_2t_vs_1t": r21,
        "target_1t_vs_numpy": target,
        "target_2t_vs_1t": TARGET_2T_VS_1T,
        "pass_1t_vs_numpy": r1 >= target,
        "pass_2t_vs_1t": r21 >= TARGET_2T_VS_1T,
        "agree": agree,
        "agree_note": note,
        "threads_bit_identical": identical,
    }


def run(quick: bool = False, *, reuse_memory: bool = True) -> list[dict[str, Any]]:
    """Run every workload and size; one dict per row (the JSON's ``rows``).

    ``reuse_memory`` calls :func:`reuse_freed_memory` first (process-wide, glibc only).
    Raises AssertionError if NumPy and pgfast disagree statistically, or if pgfast's 1- and
    2-thread batches differ: then the two sides did not do the same work.
    """
    if reuse_memory:
        reuse_freed_memory()
    repeats = 3 if quick else 15
    methods = () if quick else NUMPY_METHODS
    rows = []
    for key, label, mdp in workloads():
        for n in SIZES:
            row = {"workload": key, "description": label, **_bench_case(mdp, n, repeats, methods)}
            rows.append(row)
    bad = [
        f"{r['workload']} N={r['n']}: {r['agree_note']}" for r in rows if not r["agree"]
    ] + [f"{r['workload']} N={r['n']}: 1- and 2-thread batches differ" for r in rows if not r["threads_bit_identical"]]
    if bad:
        print(format_table(rows), file=sys.stderr)
        raise AssertionError("samplers disagree: " + " | ".join(bad))
    return rows


# -- report -------------------------------------------------------------------------------------


def _m(rate: float) -> str:
    return f"{rate / 1e6:7.1f}"


def format_table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'workload':<11} {'N':>6} {'steps/run':>10} | {'NumPy':>7} {'(method)':<8} {'pg 1T':>7} {'pg 2T':>7} |"
        f" {'1T/NumPy':>8} {'target':>6} {'':4} | {'2T/NumPy':>8} | {'2T/1T':>5} {'target':>6} {'':4}"
    )
    lines = ["M simulated steps per second (best of the repeats); ratios of rates", head, "-" * len(head)]
    for r in rows:
        s = r["samplers"]
        lines.append(
            f"{r['workload']:<11} {r['n']:>6} {s['pgfast_1t']['steps_per_run']:>10,.0f} |"
            f" {_m(s['numpy']['best_steps_per_s'])} {'(' + r['numpy_method'] + ')':<8}"
            f" {_m(s['pgfast_1t']['best_steps_per_s'])} {_m(s['pgfast_2t']['best_steps_per_s'])} |"
            f" {r['ratio_1t_vs_numpy']:>8.2f} {'>=' + format(r['target_1t_vs_numpy'], 'g'):>6}"
            f" {'PASS' if r['pass_1t_vs_numpy'] else 'FAIL':4} |"
            f" {r['ratio_2t_vs_numpy']:>8.2f} |"
            f" {r['ratio_2t_vs_1t']:>5.2f} {'>=' + format(r['target_2t_vs_1t'], 'g'):>6}"
            f" {'PASS' if r['pass_2t_vs_1t'] else 'FAIL':4}"
        )
    if any(r["numpy_methods_steps_per_s"] for r in rows):
        lines += ["", "NumPy reference by method (M steps/s; * = the one used above)"]
        lines.append(f"{'workload':<11} {'N':>6} | " + " ".join(f"{m:>7}" for m in NUMPY_METHODS))
        for r in rows:
            rates = r["numpy_methods_steps_per_s"]
            cells = [
                f"{_m(rates[m]).strip() + ('*' if m == r['numpy_method'] else ''):>7}" if m in rates else f"{'-':>7}"
                for m in NUMPY_METHODS
            ]
            lines.append(f"{r['workload']:<11} {r['n']:>6} | " + " ".join(cells))
    lines += ["", "agreement (NumPy vs pgfast 1T, all repeats pooled):"]
    for r in rows:
        lines.append(f"  {r['workload']:<11} N={r['n']:<6} {r['agree_note']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, *, default_json: Path | None = DEFAULT_JSON, prog: str = "pgfast bench") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_bench_arguments(parser, default_json, "3 repeats instead of 15, no per-method NumPy table")
    args = parser.parse_args(argv)

    single_thread_environment()
    info = machine_info()
    reused = False if args.default_malloc else reuse_freed_memory()
    rows = run_and_print(lambda: run(quick=args.quick, reuse_memory=False), format_table, info, reused)

    result = {
        **result_envelope("sampler", prog, argv, args.quick, info),
        "protocol": {
            "timer": "time.perf_counter around one call; calls interleaved round-robin after 2 warm-up calls each",
            "statistic": "best (max) rate over the repeats; medians also recorded",
            "rate": "simulated steps (lengths.sum()) per second",
            "setup": "per-call policy tables inside the timed call on both sides; MDP-level tables "
            "built before timing on both sides (pgfast: with the FiniteMDP; NumPy: SamplerTables)",
            "numpy": "pgfast.benchmarks.reference.sample_numpy, method chosen by its 'auto' rule, one thread",
            "agreement": f"mean return and mean length within {AGREE_SE:g} combined standard errors",
            "memory": "glibc malloc keeps freed memory (mallopt M_MMAP_THRESHOLD=32 MiB, "
            "M_TRIM_THRESHOLD=1 GiB): outputs reuse warm pages"
            if reused
            else "default allocator: freed outputs may return to the kernel (page faults timed)",
        },
        "targets": {"1t_vs_numpy": TARGET_VS_NUMPY, "2t_vs_1t": TARGET_2T_VS_1T},
        "rows": rows,
    }
    save_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
