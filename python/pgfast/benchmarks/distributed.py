"""Distributed benchmark: the overhead of Ray shards against the local fused estimate, Ray's fixed costs, and sweep throughput.

    python -m pgfast.benchmarks.distributed [--quick] [--json PATH]     # installed package (needs Ray)
    python bench/bench_distributed.py [--quick]                    # source tree: saves bench/results/distributed.json
    pgfast bench --only distributed [--quick]                      # opt-in: not in the default `pgfast bench` set

Workload: FrozenLake 8x8 slippery, H = 200 (``benchmarks.frozenlake``), a tabular softmax policy
with N(0, 1) logits (seed 0), the fused estimate with its defaults (reward-to-go, no baseline,
standard errors). The batch size ``n`` is chosen so that the batch simulates about 10^8 and 10^9
steps (about 10^6 and 10^7 with ``--quick``): ``n = steps / mean episode length``, the mean
length measured on a pilot batch of 65536 episodes.

Timed, interleaved (local, Ray) after one untimed call of each, median of 3 repeats:

- ``local``: ``pg.policy_gradient(pi, mdp=mdp, n=n, seed=1, threads=2)``;
- ``ray``: ``pgfast.distributed.policy_gradient(pi, mdp=mdp, n=n, seed=1, shards=2,
  threads_per_shard=1)`` on a new local Ray instance with 2 CPUs (``ray.init(address="local",
  num_cpus=2)``, started by the benchmark unless Ray is initialised in the process; its start is
  timed too).

The overhead ratio is T(ray) / T(local), same work (the two results are checked equal bit for
bit: the run fails otherwise). Target: <= 1.10 at 10^9 steps.

Fixed costs (median of 20 after 3 untimed calls): ``empty_task`` (the round trip of a Ray task
that does nothing), ``tiny_shard`` (a whole ``pgfast.distributed.policy_gradient`` of 256
episodes in one shard: the policy and MDP put in the object store, one task, the merge),
``merge_2`` / ``merge_64`` (``pg.merge_partials`` of 2 and 64 partials, 1-2 nodes of the
policy's size each) and ``ray_start`` (``ray.init`` to the first finished task: one sample).

Sweep throughput (:mod:`pgfast.benchmarks.sweep`, on the same Ray instance): runs per second of
1000 short ``pg.train`` runs (50 with ``--quick``) through ``pg.sweep`` serially, on local
processes, as Ray tasks, and as Ray Tune trials, each checked bit-equal to the serial rows.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import pgfast as pg
from pgfast import distributed

from . import sweep as sweep_bench
from ._harness import add_bench_arguments, frozenlake, machine_info, result_envelope, run_and_print, save_result

TARGET_OVERHEAD = 1.10  # T(Ray, 2 shards x 1 thread) / T(local, 2 threads) at 10^9 steps
STEPS = {False: (10**8, 10**9), True: (10**6, 10**7)}
REPEATS = 3
FIXED_REPEATS = 20
PILOT = 65536
DEFAULT_JSON: Path | None = None  # bench/bench_distributed.py saves to bench/results/distributed.json


def _time(call: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = call()
    return time.perf_counter() - t0, out


def _median_seconds(call: Callable[[], Any], repeats: int, warmup: int = 3) -> dict[str, Any]:
    for _ in range(warmup):
        call()
    seconds = [_time(call)[0] for _ in range(repeats)]
    return {"median_seconds": statistics.median(seconds), "seconds": seconds}


def _same(a: pg.PolicyGradient, b: pg.PolicyGradient) -> bool:
    return (np.array_equal(a.grad, b.grad) and np.array_equal(a.stderr, b.stderr) and a.value == b.value
            and a.n_steps == b.n_steps)


def _ray(info: dict[str, Any]) -> Any:
    """Ray, initialised with 2 CPUs here unless it runs already; ``info["ray_start_seconds"]``."""
    import os

    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    info["ray"] = ray.__version__
    if ray.is_initialized():
        info["ray_start_seconds"] = None
        return ray
    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.get(ray.remote(lambda: None).remote())
    info["ray_start_seconds"] = time.perf_counter() - t0
    return ray


def run(quick: bool = False, info: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per batch size (overhead ratio), then one row of fixed costs."""
    info = {} if info is None else info
    ray = _ray(info)
    mdp = frozenlake()
    pi = pg.TabularSoftmax(mdp.n_states, mdp.n_actions, theta=np.random.default_rng(0).normal(size=(64, 4)))
    pilot = pg.policy_gradient(pi, mdp=mdp, n=PILOT, seed=0, threads=2)
    mean_length = pilot.n_steps / PILOT
    rows: list[dict[str, Any]] = []
    for steps in STEPS[quick]:
        n = max(1, round(steps / mean_length))

        def local(n: int = n) -> pg.PolicyGradient:
            return pg.policy_gradient(pi, mdp=mdp, n=n, seed=1, threads=2)

        def sharded(n: int = n) -> pg.PolicyGradient:
            return distributed.policy_gradient(pi, mdp=mdp, n=n, seed=1, shards=2, threads_per_shard=1)

        first_local, first_ray = local(), sharded()  # untimed; also the check
        if not _same(first_local, first_ray):
            raise AssertionError(f"n = {n}: the Ray shards differ from the local estimate")
        times: dict[str, list[float]] = {"local": [], "ray": []}
        for _ in range(REPEATS):
            for name, call in (("local", local), ("ray", sharded)):
                times[name].append(_time(call)[0])
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append({
            "kind": "overhead", "target_steps": steps, "n": n, "steps": first_local.n_steps,
            "local": {"median_seconds": med["local"], "seconds": times["local"]},
            "ray": {"median_seconds": med["ray"], "seconds": times["ray"]},
            "overhead_ratio": med["ray"] / med["local"],
            "target": TARGET_OVERHEAD if steps == 10**9 else None,
        })
    empty = ray.remote(lambda: None)
    parts = [pg.partial_gradient(pi, mdp=mdp, n=2**20, seed=2, lo=lo, hi=hi, threads=2) for lo, hi in pg.shard_ranges(2**20, 64)]
    halves = [pg.partial_gradient(pi, mdp=mdp, n=2**20, seed=2, lo=lo, hi=hi, threads=2) for lo, hi in pg.shard_ranges(2**20, 2)]
    rows.append({
        "kind": "fixed",
        "empty_task": _median_seconds(lambda: ray.get(empty.remote()), FIXED_REPEATS),
        "tiny_shard": _median_seconds(lambda: distributed.policy_gradient(pi, mdp=mdp, n=256, seed=3, shards=1), FIXED_REPEATS),
        "merge_2": _median_seconds(lambda: pg.merge_partials(pi, halves), FIXED_REPEATS),
        "merge_64": _median_seconds(lambda: pg.merge_partials(pi, parts), FIXED_REPEATS),
        "ray_start_seconds": info.get("ray_start_seconds"),
        "mean_episode_length": mean_length,
    })
    rows += [{"kind": "sweep", **r} for r in sweep_bench.run(quick=quick)]
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    head = f"{'steps':>8} {'n':>11} | {'local 2T s':>10} {'Ray 2x1T s':>10} | {'Ray/local':>9} | target"
    lines = [
        "FrozenLake 8x8 (H = 200), tabular policy, fused estimate (reward-to-go, standard errors); "
        f"median of {REPEATS}, interleaved; local = pg.policy_gradient(threads=2), Ray = "
        "pgfast.distributed.policy_gradient(shards=2, threads_per_shard=1) on ray.init(num_cpus=2)",
        head,
        "-" * len(head),
    ]
    fixed = None
    sweeps = [{k: v for k, v in r.items() if k != "kind"} for r in rows if r["kind"] == "sweep"]
    for r in rows:
        if r["kind"] == "sweep":
            continue
        if r["kind"] == "fixed":
            fixed = r
            continue
        target = "" if r["target"] is None else f"<= {r['target']:.2f} {'ok' if r['overhead_ratio'] <= r['target'] else 'MISSED'}"
        lines.append(f"{r['steps']:>8.2g} {r['n']:>11,} | {r['local']['median_seconds']:>10.3f} {r['ray']['median_seconds']:>10.3f} |"
                     f" {r['overhead_ratio']:>9.3f} | {target}")
    if fixed is not None:
        def ms(key: str) -> str:
            return f"{1e3 * fixed[key]['median_seconds']:.2f} ms"

        start = fixed["ray_start_seconds"]
        lines += [
            "",
            f"fixed costs (median of {FIXED_REPEATS}): empty task round trip {ms('empty_task')}; a whole 256-episode "
            f"estimate in one shard {ms('tiny_shard')}; merge of 2 partials {ms('merge_2')}, of 64 {ms('merge_64')}; "
            f"Ray start {'(already running)' if start is None else f'{start:.2f} s'}; "
            f"mean episode length {fixed['mean_episode_length']:.2f}",
        ]
    if sweeps:
        lines += ["", sweep_bench.format_table(sweeps)]
    return "\n".join(lines)


def main(
    argv: Sequence[str] | None = None,
    *,
    default_json: Path | None = DEFAULT_JSON,
    prog: str = "python -m pgfast.benchmarks.distributed",
) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_bench_arguments(parser, default_json, "10^6 and 10^7 steps instead of 10^8 and 10^9: a smoke test", malloc=False)
    args = parser.parse_args(argv)
    try:
        import ray  # noqa: F401
    except ImportError:
        print('the distributed benchmark needs Ray: pip install "pgfast[ray]"', file=sys.stderr)
        return 2

    info = machine_info()
    rows = run_and_print(lambda: run(quick=args.quick, info=info), format_table, info, False,
                         load_share="about 2 (two threads, then two shards)")
    result = {
        **result_envelope("distributed", prog, argv, args.quick, info),
        "protocol": {
            "workload": "FrozenLake 8x8 slippery, H = 200; TabularSoftmax, N(0, 1) logits (seed 0); fused estimate, "
            "reward-to-go, no baseline, stderr=True; n = steps / mean episode length (pilot of 65536 episodes)",
            "local": "pg.policy_gradient(pi, mdp=mdp, n=n, seed=1, threads=2)",
            "ray": "pgfast.distributed.policy_gradient(pi, mdp=mdp, n=n, seed=1, shards=2, threads_per_shard=1) on a "
            "local ray.init(num_cpus=2)",
            "timer": f"time.perf_counter around one call; local and Ray interleaved after one untimed call each; "
            f"median of {REPEATS}",
            "check": "the Ray estimate equals the local one bit for bit (grad, stderr, value, n_steps)",
            "fixed": f"median of {FIXED_REPEATS} after 3 untimed: empty task round trip, a 256-episode estimate in one "
            "shard, merge_partials of 2 and of 64 partials (n = 2^20); Ray start: ray.init to the first finished task",
            "sweep": sweep_bench.PROTOCOL,
        },
        "targets": {"overhead_ratio_at_1e9_steps": TARGET_OVERHEAD},
        "rows": rows,
    }
    save_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
