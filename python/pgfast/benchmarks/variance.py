"""Variance benchmark: the exact variance of every estimator, and exact moments against sampling.

    python -m pgfast.benchmarks.variance [--quick] [--json PATH]
    python bench/bench_variance.py [--quick]      # source tree: saves bench/results/variance.json
    pgfast bench --only variance [--quick]        # opt-in: not in the default `pgfast bench` set

**Table 1, exact variances.** For each workload and policy, :func:`pgfast.exact.moments` of every
weights x baseline combination it supports: return weights (REINFORCE) with the baselines none,
mean, exact and optimal; reward-to-go weights with none, mean, time, exact and optimal (``"time"``
has no meaning for return weights). Printed: the trace of the exact covariance, tr Cov[g] (the
sum of the per-coordinate variances of one trajectory's estimate), relative to plain REINFORCE
(return weights, no baseline) of the same policy, and the noise-to-signal ratio tr Cov / ||grad J||^2
(the number of trajectories a batch needs before its standard error is as large as the gradient).
The baselines are the deterministic limits of the batch ones (``"mean"`` is E[G_0], ``"time"``
E[G_t | alive at t], ``"exact"`` V_t(s)); ``"optimal"`` the per-coordinate variance-minimising
ones (see :func:`pgfast.exact.moments`).

Workloads (tabular softmax policies):

- FrozenLake 8x8 (slippery, H = 200, the goal's reward 1, holes and goal terminal): the uniform
  policy (theta = 0), and a partly trained one. The uniform policy reaches the goal rarely, so its
  gradient is small against its noise;
- Taxi (``Taxi-v4``, or ``Taxi-v3`` where that is the registered one; H = 200): only a partly
  trained policy. Under the uniform policy almost every episode runs the 200 steps at -1 per step
  with an occasional -10, so the returns' spread dwarfs a gradient that points nowhere in
  particular; and each combination costs 10 to 85 s at S = 500, A = 6, H = 200 (O(H nnz(P)
  n_params)), so one policy is all the run affords;
- the random MDP of the sampler and estimators benchmarks (``benchmarks.random_mdp``: A = 8, 10
  successors per (s, a), Dirichlet(1) probabilities, N(0, 1) rewards, H = 100) at S = 100
  instead of 500: at S = 500 a single combination costs about 40 s (reward-to-go, table 2) to
  250 s (return weights); the uniform policy (N(0, 1) rewards give it a sizeable gradient).

"Partly trained": ``pg.train`` from theta = 0 with the ``pgfast train`` defaults (Adam, its lr and
betas, batch 4096, reward-to-go with the time baseline), seed 0, for a few iterations
(``TRAIN_ITERATIONS``); the table states the exact J of each policy.

**Table 2, exact moments against sampling.** The time of ``pg.exact.moments`` (reward-to-go, no
baseline, variances only: ``covariance=False``) on FrozenLake 8x8 (H = 200; the partly trained
policy of table 1) and the full random MDP (S = 500, A = 8, H = 100; the uniform policy), against
the time pgfast's sampler needs to estimate the same variances to 10 % relative precision. The
sample variance of N draws has relative standard error sqrt((kappa - 1) / N), kappa = mu4 /
sigma^4 the kurtosis, so N = (kappa - 1) / 0.1^2. Two targets: the median coordinate (N from the
median of the per-coordinate kurtoses, over the coordinates with a nonzero exact variance) and
the trace (the estimate sum_k s_k^2 of tr Cov has relative standard error sqrt(Var[Z] / N) /
tr Cov, Z = ||g - grad J||^2, so N = Var[Z] / (0.01 tr Cov^2)). The fourth moments come from a
pilot batch of ``PILOT_N`` episodes centred on the exact mean and scaled by the exact variances
(the exact moments stop at the second); heavy tails that the pilot misses make these N lower
bounds. A coordinate whose pilot variance is more than ``PILOT_TOLERANCE`` off the exact one is
not resolved by the pilot (more than its size is needed): its N is raised to the pilot's size and
the median marked a lower bound (*) when it falls on such a coordinate; the same for the trace
with the pilot's mean ||g - grad J||^2. The sampling time is
that of ``mdp.sample(pi, N, seed, threads=1)``, ``pg.policy_gradient(pi, traj,
per_trajectory=True, threads=1)`` and the per-coordinate variance of the rows (NumPy); batches
larger than ``CHUNK_BYTES`` of per-trajectory gradients are timed on a chunk of that size and
scaled linearly (the work is linear in N). Ratio = sampling time / exact time.

Both tables are facts about this machine and these policies; nothing is compared with another
library.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import pgfast as pg
from pgfast._train import DEFAULT_ADAM_BETAS, DEFAULT_BASELINE, DEFAULT_BATCH, DEFAULT_LR, DEFAULT_WEIGHTS

from ._harness import add_bench_arguments, frozenlake, machine_info, random_mdp, result_envelope, run_and_print, save_result
from .training import taxi_id

COMBINATIONS = (
    ("return", "none"), ("return", "mean"), ("return", "exact"), ("return", "optimal"),
    ("reward_to_go", "none"), ("reward_to_go", "mean"), ("reward_to_go", "time"), ("reward_to_go", "exact"),
    ("reward_to_go", "optimal"),
)
REFERENCE = ("return", "none")  # plain REINFORCE: the denominator of the relative column
PRECISION = 0.1  # relative standard error of the sampled variance
TIMED_ESTIMATOR = ("reward_to_go", "none")
CHUNK_BYTES = 1 << 28  # per-trajectory gradients held at once (256 MiB)
PILOT_BYTES = 1 << 27
PILOT_N = {False: 100_000, True: 10_000}
PILOT_TOLERANCE = 0.2  # the pilot's mean squared deviation within 20 % of the exact trace
SEED = 0
DEFAULT_JSON: Path | None = None  # bench/bench_variance.py saves to bench/results/variance.json


@dataclass
class Case:
    key: str
    description: str
    mdp: pg.FiniteMDP
    policies: tuple[str, ...]  # "uniform" and/or "trained"
    train_iterations: int


def table_cases(quick: bool = False) -> list[Case]:
    """The workloads of table 1."""
    if quick:
        return [
            Case("frozenlake8x8", "FrozenLake 8x8, H=100 (quick)", frozenlake(horizon=100), ("uniform", "trained"), 2),
            Case("taxi", f"{taxi_id()}, H=4 (quick)", pg.FiniteMDP.from_gymnasium(taxi_id(), horizon=4), ("trained",), 2),
            Case("random", "random MDP S=20 A=4 H=10 (quick)", random_mdp(n_states=20, n_actions=4, horizon=10),
                 ("uniform",), 2),
        ]
    return [
        Case("frozenlake8x8", "FrozenLake 8x8 slippery, H=200", frozenlake(horizon=200), ("uniform", "trained"), 20),
        Case("taxi", f"{taxi_id()}, H=200", pg.FiniteMDP.from_gymnasium(taxi_id(), horizon=200), ("trained",), 100),
        Case("random", "random MDP S=100 A=8 10 successors, H=100", random_mdp(n_states=100), ("uniform",), 10),
    ]


def timing_cases(quick: bool = False) -> list[tuple[Case, str]]:
    """The workloads of table 2, each with its policy."""
    if quick:
        return [
            (Case("frozenlake8x8", "FrozenLake 8x8, H=100 (quick)", frozenlake(horizon=100), ("trained",), 2), "trained"),
            (Case("random", "random MDP S=50 A=4 H=20 (quick)", random_mdp(n_states=50, n_actions=4, horizon=20),
                  ("uniform",), 0), "uniform"),
        ]
    return [
        (Case("frozenlake8x8", "FrozenLake 8x8 slippery, H=200", frozenlake(horizon=200), ("trained",), 20), "trained"),
        (Case("random", "random MDP S=500 A=8 10 successors, H=100", random_mdp(), ("uniform",), 0), "uniform"),
    ]


def make_policy(case: Case, kind: str) -> pg.TabularSoftmax:
    """theta = 0, or ``case.train_iterations`` of ``pg.train`` with the train defaults (seed 0)."""
    pi = pg.TabularSoftmax(case.mdp.n_states, case.mdp.n_actions)
    if kind == "trained":
        opt = pg.optim.Adam(DEFAULT_LR["adam"], betas=DEFAULT_ADAM_BETAS)
        pg.train(case.mdp, pi, optimizer=opt, iterations=case.train_iterations, batch=DEFAULT_BATCH, seed=SEED,
                 weights=DEFAULT_WEIGHTS, baseline=DEFAULT_BASELINE, exact_eval=False, progress=False)
    elif kind != "uniform":
        raise ValueError(f"policy kind must be 'uniform' or 'trained'; got {kind!r}")
    return pi


def _moments(mdp: pg.FiniteMDP, pi: pg.TabularSoftmax, weights: str, baseline: str) -> tuple[Any, float]:
    t0 = time.perf_counter()
    m = pg.exact.moments(mdp, pi, weights=weights,  # type: ignore[arg-type]
                         baseline=None if baseline == "none" else baseline, covariance=False)
    return m, time.perf_counter() - t0


def variance_rows(quick: bool = False) -> list[dict[str, Any]]:
    """Table 1: one row per workload, policy and weights x baseline combination."""
    rows: list[dict[str, Any]] = []
    for case in table_cases(quick):
        for kind in case.policies:
            pi = make_policy(case, kind)
            ref_trace = math.nan
            for weights, baseline in COMBINATIONS:
                m, seconds = _moments(case.mdp, pi, weights, baseline)
                if (weights, baseline) == REFERENCE:
                    ref_trace = float(m.trace)
                rows.append({
                    "table": "variance",
                    "workload": case.key,
                    "description": case.description,
                    "n_states": case.mdp.n_states,
                    "n_actions": case.mdp.n_actions,
                    "horizon": case.mdp.horizon,
                    "policy": kind,
                    "train_iterations": case.train_iterations if kind == "trained" else 0,
                    "J": float(m.value),
                    "grad_norm": float(np.linalg.norm(m.mean)),
                    "weights": weights,
                    "baseline": baseline,
                    "trace": float(m.trace),
                    "relative_trace": float(m.trace) / ref_trace,
                    "noise_to_signal": float(m.noise_to_signal),
                    "seconds": seconds,
                })
    return rows


def _per_trajectory(mdp: pg.FiniteMDP, pi: pg.TabularSoftmax, n: int, seed: int, threads: int | None) -> np.ndarray:
    """(n, n_params) per-trajectory gradients of ``TIMED_ESTIMATOR`` on a fresh batch."""
    weights, baseline = TIMED_ESTIMATOR
    traj = mdp.sample(pi, n, seed=seed, threads=threads)
    g = pg.policy_gradient(pi, traj, weights=weights, baseline=None if baseline == "none" else baseline,  # type: ignore[arg-type]
                           per_trajectory=True, threads=threads).per_trajectory
    assert g is not None
    return g


def _pilot_stats(mdp: pg.FiniteMDP, pi: pg.TabularSoftmax, mean: np.ndarray, variance: np.ndarray,
                 trace: float, n: int) -> dict[str, Any]:
    """Kurtoses from a pilot batch of ``n`` episodes (in chunks of ``PILOT_BYTES`` of gradients)
    centred on the exact mean and scaled by the exact variances."""
    var = variance.reshape(-1)
    live = var > 1e-300
    chunk = max(1, min(n, PILOT_BYTES // (8 * pi.n_params)))
    m2 = np.zeros(int(live.sum()))
    m4 = np.zeros_like(m2)
    z1 = z2 = 0.0
    for k, start in enumerate(range(0, n, chunk)):
        d = _per_trajectory(mdp, pi, min(chunk, n - start), SEED + 1 + k, None)[:, live] - mean.reshape(-1)[live]
        d2 = d**2
        m2 += d2.sum(axis=0)
        m4 += np.sum(d2**2, axis=0)
        z = d2.sum(axis=1)  # the dead coordinates have zero variance: their deviations are 0
        z1 += float(z.sum())
        z2 += float(np.sum(z**2))
        del d, d2
    kurtosis = m4 / n / var[live] ** 2
    # a coordinate whose pilot variance is more than PILOT_TOLERANCE off the exact one needs more than
    # the pilot's n episodes for 10 % precision: its N is raised to n and marked a lower bound
    resolved = np.abs(m2 / n / var[live] - 1.0) <= PILOT_TOLERANCE
    n_coord = np.maximum(2, np.ceil((kurtosis - 1.0) / PRECISION**2))
    n_coord[~resolved] = np.maximum(n_coord[~resolved], n)
    n_median = int(np.median(n_coord))
    ratio = z1 / n / trace
    trace_resolved = abs(ratio - 1.0) <= PILOT_TOLERANCE
    var_z = z2 / n - trace**2  # E[Z] = tr Cov exactly
    n_trace = max(2, math.ceil(max(var_z, 0.0) / (PRECISION**2 * trace**2)))
    return {
        "pilot_n": n,
        "coordinates": int(var.size),
        "live_coordinates": int(live.sum()),
        "resolved_coordinates": int(resolved.sum()),
        "kurtosis_median": float(np.median(kurtosis)),
        "kurtosis_max": float(kurtosis.max()),
        "pilot_trace_ratio": ratio,  # the pilot's mean ||g - grad J||^2 over the exact trace
        "n_median": n_median,
        "n_median_lower_bound": bool(n_median >= n and not resolved[np.argsort(n_coord)[len(n_coord) // 2]]),
        "n_trace": n_trace if trace_resolved else max(n_trace, n),
        "n_trace_lower_bound": not trace_resolved,
    }


def sampling_seconds(mdp: pg.FiniteMDP, pi: pg.TabularSoftmax, n: int) -> tuple[float, int]:
    """Seconds to sample ``n`` episodes, form their per-trajectory gradients and the per-coordinate
    variances, one thread; timed on at most ``CHUNK_BYTES`` of gradients and scaled to ``n``.
    Returns (seconds for n, trajectories actually timed)."""
    chunk = max(2, min(n, CHUNK_BYTES // (8 * pi.n_params)))
    best = math.inf
    for _ in range(2):  # best of two
        t0 = time.perf_counter()
        g = _per_trajectory(mdp, pi, chunk, SEED + 2, 1)
        np.var(g, axis=0, ddof=1)
        best = min(best, time.perf_counter() - t0)
        del g
    return best * n / chunk, chunk


def timing_rows(quick: bool = False) -> list[dict[str, Any]]:
    """Table 2: exact moments against sampling to 10 % relative precision."""
    rows: list[dict[str, Any]] = []
    weights, baseline = TIMED_ESTIMATOR
    for case, kind in timing_cases(quick):
        pi = make_policy(case, kind)
        repeats = 3 if case.mdp.n_states * case.mdp.n_actions < 1000 or quick else 1
        exact_seconds = math.inf
        m: Any = None
        for _ in range(repeats):
            m, seconds = _moments(case.mdp, pi, weights, baseline)
            exact_seconds = min(exact_seconds, seconds)
        stats = _pilot_stats(case.mdp, pi, np.asarray(m.mean), np.asarray(m.variance), float(m.trace), PILOT_N[quick])
        sample_median, chunk_median = sampling_seconds(case.mdp, pi, stats["n_median"])
        sample_trace, chunk_trace = sampling_seconds(case.mdp, pi, stats["n_trace"])
        rows.append({
            "table": "timing",
            "workload": case.key,
            "description": case.description,
            "n_states": case.mdp.n_states,
            "n_actions": case.mdp.n_actions,
            "horizon": case.mdp.horizon,
            "n_params": pi.n_params,
            "policy": kind,
            "weights": weights,
            "baseline": baseline,
            "exact_seconds": exact_seconds,
            "exact_repeats": repeats,
            "trace": float(m.trace),
            **stats,
            "sampling_seconds_median": sample_median,
            "sampling_timed_n_median": chunk_median,
            "sampling_seconds_trace": sample_trace,
            "sampling_timed_n_trace": chunk_trace,
            "ratio_median": sample_median / exact_seconds,
            "ratio_trace": sample_trace / exact_seconds,
        })
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Both tables' rows (``row["table"]`` is ``"variance"`` or ``"timing"``)."""
    return variance_rows(quick) + timing_rows(quick)


# -- report -------------------------------------------------------------------------------------


def _g(x: float) -> str:
    return f"{x:.3g}" if math.isfinite(x) else str(x)


def _seconds(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def _n(row: dict[str, Any], key: str) -> str:
    return f"{row[key]:,}" + ("*" if row[f"{key}_lower_bound"] else "")


def format_table(rows: list[dict[str, Any]]) -> str:
    var = [r for r in rows if r["table"] == "variance"]
    tim = [r for r in rows if r["table"] == "timing"]
    lines = [
        "1. exact variance of one trajectory's estimate: tr Cov relative to plain REINFORCE (return weights, no"
        " baseline) of the same policy, and noise-to-signal tr Cov / ||grad J||^2",
    ]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in var:
        groups.setdefault((r["workload"], r["policy"]), []).append(r)
    for (_, policy), rs in groups.items():
        r0 = rs[0]
        trained = f" ({r0['train_iterations']} pg.train iterations)" if policy == "trained" else ""
        lines += ["", f"{r0['description']}, {policy} policy{trained}: J = {r0['J']:.4g}, ||grad J|| = {r0['grad_norm']:.3g}"]
        head = f"  {'weights':<13} {'baseline':<8} | {'tr Cov':>10} {'relative':>9} {'noise/signal':>12} | {'exact time':>10}"
        lines += [head, "  " + "-" * (len(head) - 2)]
        for r in rs:
            lines.append(
                f"  {r['weights']:<13} {r['baseline']:<8} | {_g(r['trace']):>10} {r['relative_trace']:>9.3f}"
                f" {_g(r['noise_to_signal']):>12} | {_seconds(r['seconds']):>10}"
            )
    lines += [
        "",
        f"2. pg.exact.moments ({TIMED_ESTIMATOR[0]}, no baseline, variances only) against sampling the same variances"
        f" to {PRECISION:.0%} relative precision (pgfast sampler + per-trajectory gradients, 1 thread)",
        "",
    ]
    head = (f"  {'workload':<14} {'policy':<8} {'n_params':>8} | {'exact':>9} | {'kurt med':>8} {'N median':>10}"
            f" {'sampling':>10} {'ratio':>9} | {'N trace':>11} {'sampling':>10} {'ratio':>9}")
    lines += [head, "  " + "-" * (len(head) - 2)]
    for r in tim:
        lines.append(
            f"  {r['workload']:<14} {r['policy']:<8} {r['n_params']:>8} | {_seconds(r['exact_seconds']):>9} |"
            f" {r['kurtosis_median']:>8.3g} {_n(r, 'n_median'):>10} {_seconds(r['sampling_seconds_median']):>10}"
            f" {r['ratio_median']:>9.3g} | {_n(r, 'n_trace'):>11} {_seconds(r['sampling_seconds_trace']):>10}"
            f" {r['ratio_trace']:>9.3g}"
        )
    lines += [
        "",
        "  N = (kurtosis - 1) / 0.01 for the median coordinate, Var[||g - grad J||^2] / (0.01 tr Cov^2) for the trace;"
        " fourth moments from a pilot batch (pilot mean ||g - grad J||^2 / exact tr Cov in brackets):",
    ]
    for r in tim:
        scaled = [f"{k} timed on {r[f'sampling_timed_n_{k}']:,}" for k in ("median", "trace")
                  if r[f"sampling_timed_n_{k}"] < r[f"n_{k}"]]
        lines.append(
            f"  {r['workload']:<14} pilot {r['pilot_n']:,} episodes ({r['pilot_trace_ratio']:.3f}),"
            f" {r['live_coordinates']}/{r['coordinates']} coordinates with variance > 0, {r['resolved_coordinates']}"
            f" of them resolved, max kurtosis"
            f" {r['kurtosis_max']:.3g}; exact: best of {r['exact_repeats']}"
            + (f"; sampling {', '.join(scaled)} and scaled" if scaled else "")
        )
    lines += [
        f"  resolved: pilot variance within {PILOT_TOLERANCE:.0%} of the exact one; * = a lower bound: the pilot did not"
        " resolve that coordinate (or the trace), so N is at least the pilot's size",
        "  ratio = sampling time / exact time (> 1: the exact moments are faster)",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, *, default_json: Path | None = DEFAULT_JSON,
         prog: str = "python -m pgfast.benchmarks.variance") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_bench_arguments(parser, default_json, "small horizons and MDPs, few iterations: a smoke test", malloc=False)
    args = parser.parse_args(argv)
    info = machine_info()
    rows = run_and_print(lambda: run(quick=args.quick), format_table, info, False, load_share="about 1")
    result = {
        **result_envelope("variance", prog, argv, args.quick, info),
        "protocol": {
            "table_1": "pg.exact.moments(mdp, pi, weights=, baseline=, covariance=False) for every weights x baseline "
            "combination; relative_trace = trace / trace of (return, none) for the same policy",
            "policies": f"uniform: theta = 0; trained: pg.train with the train defaults (Adam lr {DEFAULT_LR['adam']}, "
            f"betas {list(DEFAULT_ADAM_BETAS)}, batch {DEFAULT_BATCH}, {DEFAULT_WEIGHTS} with the {DEFAULT_BASELINE} "
            f"baseline), seed {SEED}, train_iterations iterations",
            "table_2": f"exact: pg.exact.moments({TIMED_ESTIMATOR[0]}, no baseline, covariance=False), best of "
            f"exact_repeats; sampling: mdp.sample + pg.policy_gradient(per_trajectory=True) + np.var, threads=1, best "
            f"of 2, timed on at most {CHUNK_BYTES} bytes of per-trajectory gradients and scaled linearly to N",
            "precision": f"relative standard error of the sampled variance <= {PRECISION}: N = (kurtosis - 1) / "
            f"{PRECISION**2:g} (median coordinate), N = Var[||g - grad J||^2] / ({PRECISION**2:g} tr Cov^2) (trace); "
            "fourth moments from a pilot batch centred on the exact mean",
        },
        "rows": rows,
    }
    save_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
