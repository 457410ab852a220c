"""Training benchmark: time to 95 % of optimal with the ``pgfast train`` defaults, per estimator and baseline.

    python -m pgfast.benchmarks.training [--quick] [--seeds 0,1,2] [--max-iterations 1000] [--json PATH]
    python bench/bench_training.py [--quick]      # source tree: saves bench/results/training.json
    pgfast bench --only training [--quick]        # opt-in: not in the default `pgfast bench` set

Environments: FrozenLake 8x8 (``FrozenLake-v1``, ``map_name="8x8"``, slippery,
its registered 100-step limit) and Taxi (``Taxi-v4``, or ``Taxi-v3`` where that is the registered
one; 200 steps). Settings: everything as ``pgfast train`` has it by default (tabular softmax from
theta = 0, Adam with the CLI's lr and betas, the CLI's batch, all usable threads, seed k for the
k-th run) except the estimator and the baseline, which go over REINFORCE (``weights="return"``)
and reward-to-go, each with the baselines ``none``, ``mean``, ``time`` and ``value`` (a
``pg.ValueBaseline`` fitted on each batch and used on the next). The library rejects ``time``
with ``weights="return"`` (the return has no time index): that row says n/a.

After every update the exact J of the policy is computed (``pg.exact.evaluate``, outside the
timed part); a run stops at the first update whose policy has
``fraction_of_optimal(J, J*) >= 0.95`` (J / J* here: both optima are positive), or after
``max_iterations`` updates ("not reached"). Recorded per run: the updates it took, the wall
seconds of those iterations (sampling, estimating, the optimizer's step: the ``seconds`` of
``pg.train``'s History, without the exact evaluations) and the simulated steps (the episodes'
lengths summed over the batches). Per row: the median over the seeds, a run that did not reach
the target counting as infinite, and the min-max over the seeds. The seeds are the outer loop
(after an untimed warm-up), so that other work on the machine slows single runs of several rows,
which the medians set aside, rather than a whole row.

Nothing here is compared with a reference implementation: the figures are speeds of learning, on
this machine, with the defaults; the exact J makes "95 %" a fact rather than an estimate.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import pgfast as pg
from pgfast._optimality import Reference
from pgfast._train import (
    DEFAULT_ADAM_BETAS,
    DEFAULT_BASELINE,
    DEFAULT_BATCH,
    DEFAULT_ITERATIONS,
    DEFAULT_LR,
    DEFAULT_WEIGHTS,
    iteration_seed,
)

from ._harness import add_bench_arguments, machine_info, result_envelope, run_and_print, save_result

TARGET = 0.95
ESTIMATORS = (("reinforce", "return"), ("reward-to-go", "reward_to_go"))
BASELINES = ("none", "mean", "time", "value")
SEEDS = {False: (0, 1, 2), True: (0,)}
MAX_ITERATIONS = {False: 1000, True: 15}
DEFAULT_JSON: Path | None = None  # bench/bench_training.py saves to bench/results/training.json


def taxi_id() -> str:
    """``Taxi-v4`` (gymnasium >= 1.1) or ``Taxi-v3``, whichever this gymnasium registers."""
    import gymnasium as gym

    return "Taxi-v4" if "Taxi-v4" in gym.registry else "Taxi-v3"


def environments() -> list[tuple[str, str, dict[str, Any]]]:
    """(key, gymnasium id, make kwargs) of the benchmarked environments."""
    return [("frozenlake8x8", "FrozenLake-v1", {"map_name": "8x8"}), ("taxi", taxi_id(), {})]


def cli_settings() -> dict[str, Any]:
    """What ``pgfast train`` uses by default (and this benchmark with it)."""
    return {
        "policy": "tabular softmax, theta = 0",
        "optimizer": "adam",
        "lr": DEFAULT_LR["adam"],
        "betas": list(DEFAULT_ADAM_BETAS),
        "batch": DEFAULT_BATCH,
        "cli_iterations": DEFAULT_ITERATIONS,
        "cli_estimator": next(e for e, w in ESTIMATORS if w == DEFAULT_WEIGHTS),
        "cli_baseline": DEFAULT_BASELINE,
        "threads": "all usable",
    }


def time_to_target(
    mdp: pg.FiniteMDP, ref: Reference, weights: str, baseline: str, seed: int, max_iterations: int,
    target: float = TARGET, stored: bool = False,
) -> dict[str, Any]:
    """Train with the training defaults until the exact J reaches ``target`` of optimal; one run's record.

    ``stored=True`` runs the same loop (iteration seeds, estimator, optimizer) with a stored batch:
    ``mdp.sample`` then ``pg.policy_gradient(pi, traj, ...)``, the iteration ``pg.train`` ran before
    it used the fused estimator; timed the same way (sample + estimate + step).

    ``iterations`` / ``seconds`` / ``steps`` are up to and including the update that reached the
    target (None when it was not reached within ``max_iterations``); ``fraction`` is the fraction
    of optimal of the last policy (the one that reached, or the one at the cap).
    """
    S, A = mdp.n_states, mdp.n_actions
    pi = pg.TabularSoftmax(S, A)
    opt = pg.optim.Adam(DEFAULT_LR["adam"], betas=DEFAULT_ADAM_BETAS)
    b: Any = pg.ValueBaseline(S, mdp.horizon) if baseline == "value" else None if baseline == "none" else baseline
    seconds, steps, fraction, its, reached_at = 0.0, 0, math.nan, 0, 0

    def check(it: int, rec: dict[str, float]) -> bool:
        nonlocal seconds, steps, fraction, its, reached_at
        its = it
        seconds += rec["seconds"]
        steps += round(rec["steps_per_s"] * rec["seconds"])  # the batch's simulated steps
        fraction = ref.fraction(pg.exact.evaluate(mdp, pi).J)  # after this iteration's update
        if fraction >= target:
            reached_at = it
            return True
        return False

    if stored:
        for it in range(1, max_iterations + 1):
            t0 = time.perf_counter()
            traj = mdp.sample(pi, DEFAULT_BATCH, seed=iteration_seed(seed, it))
            est = pg.policy_gradient(pi, traj, weights=weights, baseline=b, stderr=False)  # type: ignore[arg-type]
            opt.step(pi, est.grad)
            dt = time.perf_counter() - t0
            if check(it, {"seconds": dt, "steps_per_s": traj.n_steps / dt}):
                break
    else:
        pg.train(mdp, pi, optimizer=opt, iterations=max_iterations, batch=DEFAULT_BATCH, seed=seed,
                 weights=weights, baseline=b, exact_eval=False, progress=False, callback=check)
    reached = reached_at > 0
    return {
        "seed": seed,
        "reached": reached,
        "iterations": its if reached else None,
        "seconds": seconds if reached else None,
        "steps": steps if reached else None,
        "fraction": fraction,
        "iterations_run": its,
        "seconds_run": seconds,
        "steps_run": steps,
    }


def _summary(values: list[float | None]) -> dict[str, float | None]:
    """Median (a missing value counts as infinite; None if the median is) and min-max of the present ones."""
    x = np.array([math.inf if v is None else float(v) for v in values])
    med = float(np.median(x))
    ok = x[np.isfinite(x)]
    return {
        "median": med if math.isfinite(med) else None,
        "min": float(ok.min()) if ok.size else None,
        "max": float(ok.max()) if ok.size else None,
    }


def run(quick: bool = False, seeds: Sequence[int] | None = None, max_iterations: int | None = None) -> list[dict[str, Any]]:
    """One row per environment, estimator and baseline (the JSON's ``rows``).

    Seeds are the outer loop (every combination's run with seed 0, then with seed 1, ...), so a
    burst of other work on the machine slows one run of several rows rather than every run of
    one row, and the median over the seeds sets it aside. Each environment gets an untimed
    warm-up (a few iterations of every combination) first.
    """
    seeds = tuple(SEEDS[quick] if seeds is None else seeds)
    cap = MAX_ITERATIONS[quick] if max_iterations is None else max_iterations
    rows: list[dict[str, Any]] = []
    for key, env_id, kwargs in environments():
        mdp = pg.FiniteMDP.from_gymnasium(env_id, **kwargs)
        ref = Reference.of(mdp)
        combos: list[dict[str, Any]] = []
        for estimator, weights in ESTIMATORS:
            for baseline in BASELINES:
                combos.append({
                    "env": key, "env_id": env_id, "env_kwargs": kwargs, "horizon": mdp.horizon,
                    "optimal_J": ref.optimal_J, "uniform_J": ref.uniform_J, "estimator": estimator,
                    "weights": weights, "baseline": baseline, "max_iterations": cap, "target": TARGET,
                    "cli_default": weights == DEFAULT_WEIGHTS and baseline == DEFAULT_BASELINE,
                    "stored": False, "status": "ok", "runs": [],
                })
        default = next(r for r in combos if r["cli_default"])
        combos.append({**default, "estimator": "rtg, stored", "cli_default": False, "stored": True, "runs": []})
        for row in combos:  # warm-up; finds the combinations the library rejects
            try:
                time_to_target(mdp, ref, row["weights"], row["baseline"], 12345, min(3, cap), stored=row["stored"])
            except ValueError as exc:
                row.update(status="n/a", reason=str(exc))
                del row["runs"]
        for seed in seeds:
            for row in combos:
                if row["status"] == "ok":
                    row["runs"].append(time_to_target(mdp, ref, row["weights"], row["baseline"], seed, cap,
                                                      stored=row["stored"]))
        for row in combos:
            if row["status"] == "ok":
                runs = row["runs"]
                row.update({
                    "reached": sum(r["reached"] for r in runs),
                    **{f: _summary([r[f] for r in runs]) for f in ("iterations", "seconds", "steps")},
                    "fraction_median": float(np.median([r["fraction"] for r in runs])),
                })
        rows += combos
    return rows


# -- report -------------------------------------------------------------------------------------


def _cell(s: dict[str, float | None], fmt: str, width: int) -> str:
    if s["median"] is None:
        text = "not reached"
        if s["min"] is not None:
            text += f" [{format(s['min'], fmt)}-{format(s['max'], fmt)}]"
    else:
        text = f"{format(s['median'], fmt)} [{format(s['min'], fmt)}-{format(s['max'], fmt)}]"
    return f"{text:<{width}}"


def format_table(rows: list[dict[str, Any]]) -> str:
    seeds = max((len(r["runs"]) for r in rows if r["status"] == "ok"), default=0)
    cap = rows[0]["max_iterations"] if rows else 0
    head = (f"{'env':<14} {'estimator':<13} {'baseline':<8} | {'reached':>7} | {'iterations':<19} | {'seconds':<22} |"
            f" {'M steps':<22} | {'% opt at stop':>13}")
    lines = [
        f"time to {TARGET:.0%} of optimal (exact J after each update), pgfast train defaults: Adam lr "
        f"{DEFAULT_LR['adam']:g} betas {DEFAULT_ADAM_BETAS[0]:g},{DEFAULT_ADAM_BETAS[1]:g}, "
        f"{DEFAULT_BATCH} episodes per iteration; cap {cap} iterations",
        f"median over {seeds} seed(s) [min-max of the runs that reached]; seconds: sampling + estimator + step, "
        "all threads; * = the CLI default estimator and baseline",
        head,
        "-" * len(head),
    ]
    for r in rows:
        name = f"{r['env']:<14} {r['estimator']:<13} {r['baseline'] + ('*' if r['cli_default'] else ''):<8} |"
        if r["status"] != "ok":
            lines.append(f"{name} {'n/a':>7} | {r['reason']}")
            continue
        steps = {k: None if v is None else v / 1e6 for k, v in r["steps"].items()}
        lines.append(
            f"{name} {str(r['reached']) + '/' + str(len(r['runs'])):>7} | {_cell(r['iterations'], '.0f', 19)} |"
            f" {_cell(r['seconds'], '.2f', 22)} | {_cell(steps, '.1f', 22)} | {100 * r['fraction_median']:>12.1f}%"
        )
    lines.append("")
    lines.append("the default iteration (fused estimator) against the stored iteration of the same estimator "
                 "(sample, then estimate): ratio of the median seconds")
    for env in dict.fromkeys(r["env"] for r in rows):
        fused = next((r for r in rows if r["env"] == env and r["cli_default"]), None)
        old = next((r for r in rows if r["env"] == env and r.get("stored")), None)
        if fused and old and fused["seconds"]["median"] and old["seconds"]["median"]:
            lines.append(f"  {env}: {old['seconds']['median']:.3f} s -> {fused['seconds']['median']:.3f} s, "
                         f"{old['seconds']['median'] / fused['seconds']['median']:.2f}x faster (iterations "
                         f"{old['iterations']['median']:.0f} -> {fused['iterations']['median']:.0f})")
    envs = {(r["env"], r["env_id"], r["horizon"], r["optimal_J"], r["uniform_J"]) for r in rows}
    lines.append("")
    for env, env_id, horizon, J_opt, J_uni in sorted(envs):
        lines.append(f"{env}: {env_id}, horizon {horizon}, optimal J {J_opt:.6f}, uniform policy J {J_uni:.6f}")
    return "\n".join(lines)


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError("no seeds")
    return seeds


def main(
    argv: Sequence[str] | None = None,
    *,
    default_json: Path | None = DEFAULT_JSON,
    prog: str = "python -m pgfast.benchmarks.training",
) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_bench_arguments(parser, default_json, f"seed {SEEDS[True][0]} only, cap {MAX_ITERATIONS[True]} iterations: a "
                        "smoke test (the target is not reached)", malloc=False)
    parser.add_argument("--seeds", type=_seeds, default=None,
                        help=f"comma-separated seeds (default {','.join(map(str, SEEDS[False]))})")
    parser.add_argument("--max-iterations", type=int, default=None,
                        help=f"iterations before a run counts as not reached (default {MAX_ITERATIONS[False]})")
    args = parser.parse_args(argv)
    if args.max_iterations is not None and args.max_iterations < 1:
        parser.error(f"--max-iterations must be >= 1, got {args.max_iterations}")

    info = machine_info()
    rows = run_and_print(lambda: run(quick=args.quick, seeds=args.seeds, max_iterations=args.max_iterations),
                         format_table, info, False, load_share="about 2 (all threads)")

    result = {
        **result_envelope("training", prog, argv, args.quick, info),
        "protocol": {
            "settings": cli_settings(),
            "target": f"fraction_of_optimal(exact J, optimal J) >= {TARGET} (J / J* for J* > 0) after an update",
            "evaluation": "pg.exact.evaluate(mdp, pi).J after every update, outside the timed part",
            "seconds": "sum of pg.train History 'seconds' (sample + estimate + optimizer step) up to the update "
            "that reached the target",
            "steps": "simulated steps (episode lengths summed) of those iterations' batches",
            "statistic": "median over the seeds with not reached = infinite; min-max of the runs that reached",
            "order": "per environment: an untimed 3-iteration warm-up of every combination, then the seeds as "
            "the outer loop over the combinations",
            "memory": "default allocator (as pgfast train)",
        },
        "rows": rows,
    }
    save_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
