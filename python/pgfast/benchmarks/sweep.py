"""Sweep throughput: short ``pg.train`` runs per second through ``pg.sweep``'s backends and Ray Tune.

    python -m pgfast.benchmarks.sweep [--quick] [--runs N] [--json PATH]

Each backend runs the same N short runs (FrozenLake 4x4, slippery, its 100-step limit; the
``pgfast train`` defaults with ``iterations=10`` and ``batch=1024``: Adam, reward-to-go with the
time baseline, the exact J after every iteration; seeds 0 .. N-1 of one configuration), all on
this machine:

- ``serial``: ``pg.sweep(..., workers=1)``, the runs one after the other in this process (the
  yardstick: no dispatch at all);
- ``local``: ``pg.sweep(..., backend="local")``, one worker process per usable CPU (start-up of the
  pool included);
- ``ray tasks``: ``pg.sweep(..., backend="ray", runs_per_task="auto")`` on a local Ray with one CPU
  per usable CPU (started before the timing; the plan's ``ray.put`` and the timed first run
  included);
- ``local, warm`` and ``ray, warm``: the same call once more, the forkserver (which has imported
  pgfast) or Ray's worker processes already running: the difference to the first call is the
  start-up cost, the rest the per-run cost of dispatch and results;
- ``ray tune``: ``ray.tune.Tuner`` over ``pg.tune_trainable`` with the seed as a grid axis,
  ``reuse_actors=True``, one CPU per trial, no scheduler, results stored in a temporary directory.

Per row: the wall seconds of the whole call and the runs per second; the rows of the local and
Ray backends are checked equal to the serial ones (bit for bit, wall-clock fields aside). The
quick mode runs 50 runs; the full one 1000 (Tune's per-trial overhead makes it the long part).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pgfast as pg
from pgfast._validation import available_cpus

from ._harness import add_bench_arguments, machine_info, result_envelope, run_and_print, save_result

RUNS = {False: 1000, True: 50}
ENV, ENV_KWARGS = "FrozenLake-v1", {"map_name": "4x4"}
ITERATIONS, BATCH = 10, 1024
DEFAULT_JSON: Path | None = None
_EXACT = ("iteration", "J_estimate", "J_stderr", "J_exact", "grad_norm")


def _key(res: pg.SweepResult) -> list[tuple[float, ...]]:
    return [tuple(r[f] for f in _EXACT) for r in res.rows]


def _tune(n: int, cpus: int) -> float:
    from ray import tune

    trainable = pg.tune_trainable(ENV, iterations=ITERATIONS, env_kwargs=ENV_KWARGS, batch=BATCH)
    with tempfile.TemporaryDirectory(prefix="pgfast-bench-tune-") as storage:
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space={"seed": tune.grid_search(list(range(n)))},
            tune_config=tune.TuneConfig(reuse_actors=True, max_concurrent_trials=cpus),
            run_config=tune.RunConfig(storage_path=storage, name="sweep", verbose=0),
        )
        handler = signal.getsignal(signal.SIGINT)
        t0 = time.perf_counter()
        try:
            results = tuner.fit()
        finally:  # Tuner.fit leaves its own SIGINT handler installed, which would swallow later Ctrl-Cs
            dt = time.perf_counter() - t0
            signal.signal(signal.SIGINT, handler)
    if results.errors or len(results) != n:
        raise RuntimeError(f"the Tune run failed: {results.errors}")
    return dt


PROTOCOL = {
    "runs": f"pg.train on {ENV} {ENV_KWARGS}, iterations {ITERATIONS}, batch {BATCH}, the pgfast train defaults "
    "otherwise (exact J every iteration), seeds 0..N-1",
    "seconds": "wall time of the whole pg.sweep call (pool start-up, dispatch, the runs) or of Tuner.fit",
    "ray": "a local Ray with one CPU per usable CPU, started before the timing unless Ray runs already",
}


def run(quick: bool = False, runs: int | None = None) -> list[dict[str, Any]]:
    """The rows: one per backend (``backend``, ``runs``, ``workers``, ``seconds``, ``runs_per_s``,
    ``same_bits`` against the serial rows)."""
    n = RUNS[quick] if runs is None else runs
    cpus = available_cpus()
    common: dict[str, Any] = {"iterations": ITERATIONS, "batch": BATCH, "env_kwargs": ENV_KWARGS, "progress": False}
    pg.sweep(ENV, {}, seeds=1, workers=1, **common)  # warm-up: the MDP and the core's first calls
    rows: list[dict[str, Any]] = []

    def timed(name: str, workers: int, call: Any) -> Any:
        t0 = time.perf_counter()
        res = call()
        dt = time.perf_counter() - t0
        rows.append({"backend": name, "runs": n, "workers": workers, "seconds": dt, "runs_per_s": n / dt})
        return res

    serial = timed("serial", 1, lambda: pg.sweep(ENV, {}, seeds=n, workers=1, **common))
    local = timed("local", cpus, lambda: pg.sweep(ENV, {}, seeds=n, workers=cpus, **common))
    rows[0]["same_bits"] = True
    rows[1]["same_bits"] = _key(local) == _key(serial)
    local = timed("local, warm", cpus, lambda: pg.sweep(ENV, {}, seeds=n, workers=cpus, **common))
    rows[2]["same_bits"] = _key(local) == _key(serial)
    try:
        import ray
    except ImportError:
        rows.append({"backend": "ray tasks", "runs": n, "status": "n/a", "reason": "Ray is not installed"})
        rows.append({"backend": "ray tune", "runs": n, "status": "n/a", "reason": "Ray Tune is not installed"})
        return rows
    started = not ray.is_initialized()
    if started:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        for name in ("ray tasks", "ray, warm"):
            remote = timed(name, cpus, lambda: pg.sweep(ENV, {}, seeds=n, backend="ray", **common))
            rows[-1]["same_bits"] = _key(remote) == _key(serial)
        try:
            dt = _tune(n, cpus)
        except ImportError:
            rows.append({"backend": "ray tune", "runs": n, "status": "n/a", "reason": "Ray Tune is not installed"})
        else:
            rows.append({"backend": "ray tune", "runs": n, "workers": cpus, "seconds": dt, "runs_per_s": n / dt,
                         "same_bits": None})
    finally:
        if started:
            ray.shutdown()
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"sweep throughput: {rows[0]['runs']} runs of pg.train ({ENV} 4x4, {ITERATIONS} iterations x {BATCH} "
             "episodes, exact J each iteration), one configuration x seeds",
             f"{'backend':<12} {'workers':>7} {'seconds':>9} {'runs/s':>9} {'x serial':>9}  same bits"]
    serial = rows[0]["runs_per_s"]
    for r in rows:
        if r.get("status") == "n/a":
            lines.append(f"{r['backend']:<12} n/a: {r['reason']}")
            continue
        same = {True: "yes", False: "NO", None: "-"}[r.get("same_bits")]
        lines.append(f"{r['backend']:<12} {r['workers']:>7} {r['seconds']:>9.2f} {r['runs_per_s']:>9.1f} "
                     f"{r['runs_per_s'] / serial:>9.2f}  {same}")
    return "\n".join(lines)


def main(
    argv: Sequence[str] | None = None,
    *,
    default_json: Path | None = DEFAULT_JSON,
    prog: str = "python -m pgfast.benchmarks.sweep",
) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_bench_arguments(parser, default_json, f"{RUNS[True]} runs instead of {RUNS[False]}", malloc=False)
    parser.add_argument("--runs", type=int, default=None, help="number of runs (default: 1000, --quick 50)")
    args = parser.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        parser.error(f"--runs must be >= 1, got {args.runs}")
    info = machine_info()
    rows = run_and_print(lambda: run(quick=args.quick, runs=args.runs), format_table, info, False,
                         load_share=f"about {available_cpus()} (all CPUs)")
    result = {
        **result_envelope("sweep", prog, argv, args.quick, info),
        "protocol": PROTOCOL,
        "rows": rows,
    }
    save_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
