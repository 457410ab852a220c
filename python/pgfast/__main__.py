"""The ``pgfast`` command line: ``pgfast sample``, ``pgfast bench``, ``pgfast info``."""

from __future__ import annotations

import argparse
import ast
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

_EXACT_LIMIT_STATES = 2000  # the summary's exact J uses a dense dynamic program


def _env_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if args.map_name is not None:
        kwargs["map_name"] = args.map_name
    if args.slippery is not None:
        kwargs["is_slippery"] = args.slippery
    for item in args.env_arg or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--env-arg expects KEY=VALUE, got {item!r}")
        try:
            kwargs[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            kwargs[key] = value
    return kwargs


def _cmd_sample(args: argparse.Namespace) -> int:
    import pgfast as pg
    from pgfast import _reference

    kwargs = _env_kwargs(args)
    mdp = pg.FiniteMDP.from_gymnasium(args.env, horizon=args.horizon, gamma=args.gamma, **kwargs)
    S, A = mdp.n_states, mdp.n_actions
    if args.policy == "uniform":
        pi = pg.TabularSoftmax(S, A)
    else:
        pi = pg.TabularSoftmax(S, A, theta=np.random.default_rng(args.policy_seed).normal(size=(S, A)))
    threads = args.threads
    t0 = time.perf_counter()
    traj = mdp.sample(pi, args.n, seed=args.seed, threads=threads)
    dt = time.perf_counter() - t0
    G = traj.returns()
    steps = traj.n_steps
    extra = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    print(f"pgfast {pg.__version__} | {args.env}{f' ({extra})' if extra else ''}")
    print(
        f"  {S} states, {A} actions, {int(mdp.terminal.sum())} terminal, "
        f"horizon {mdp.horizon}, gamma {mdp.gamma:g}"
    )
    print(f"  policy: {args.policy} softmax | {args.n:,} episodes | seed {traj.seed} | threads {threads or 'all'}")
    print(
        f"sampled {args.n:,} episodes, {steps:,} steps, in {dt:.3f} s "
        f"(a padded ({args.n:,}, {mdp.horizon}) batch: see `pgfast bench` for throughput)"
    )
    se = G.std(ddof=1) / np.sqrt(G.size) if G.size > 1 else float("nan")
    print(f"  mean return       {G.mean():.6f} +- {se:.6f} (standard error)")
    if S <= _EXACT_LIMIT_STATES:
        _, _, J = _reference.finite_horizon_values(mdp, pi.probs())
        gap = G.mean() - J
        where = f"{gap / se:+.2f} standard errors" if se > 0 else f"difference {gap:+.3g}"
        print(f"  exact J           {J:.6f}   ({where})")
    print(f"  mean length       {traj.lengths.mean():.2f} steps")
    print(f"  terminated        {traj.terminated.mean():.2%} (the rest reached the horizon)")
    if np.isin(G, (0.0, 1.0)).all():
        print(f"  success rate      {(G > 0).mean():.2%}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from pgfast import benchmarks

    argv = (["--quick"] if args.quick else []) + (["--json", args.json] if args.json else [])
    return benchmarks.main(argv)


def _cmd_info(args: argparse.Namespace) -> int:
    import pgfast as pg
    from pgfast._validation import available_cpus

    info = pg.build_info()
    print(f"pgfast {pg.__version__}")
    print(f"  numpy {np.__version__}, python {sys.version.split()[0]}")
    for key in ("compiler", "eigen", "eigen_simd", "native", "debug", "lanes", "trajectory_block"):
        print(f"  {key:17s} {info[key]}")
    print(f"  threads           {available_cpus()} usable (hardware: {info['hardware_threads']})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from pgfast import __version__

    parser = argparse.ArgumentParser(
        prog="pgfast",
        description="Fast, exact-where-possible policy gradients for finite MDPs.",
    )
    parser.add_argument("--version", action="version", version=f"pgfast {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "sample",
        help="simulate episodes of a gymnasium toy-text environment and summarise them",
        description="Simulate episodes of a softmax policy in a gymnasium environment with a tabular P "
        "(FrozenLake-v1, Taxi-v4, CliffWalking-v1, ...) and print statistics beside the exact value.",
    )
    p.add_argument("env", help="gymnasium environment id, e.g. FrozenLake-v1")
    p.add_argument("--n", type=int, default=100_000, help="number of episodes (default 100,000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=int, default=None, help="worker threads (default: all CPUs)")
    p.add_argument("--horizon", type=int, default=None, help="episode length limit (default: the registered one)")
    p.add_argument("--gamma", type=float, default=1.0, help="discount factor in [0, 1] (default 1)")
    p.add_argument("--policy", choices=("uniform", "random"), default="uniform",
                   help="uniform softmax (theta = 0) or random N(0, 1) logits (default uniform)")
    p.add_argument("--policy-seed", type=int, default=0, help="seed of the random logits")
    p.add_argument("--map-name", default=None, help="FrozenLake map, e.g. 4x4 or 8x8")
    p.add_argument("--slippery", action=argparse.BooleanOptionalAction, default=None,
                   help="FrozenLake/CliffWalking slipperiness (default: the environment's)")
    p.add_argument("--env-arg", action="append", metavar="KEY=VALUE",
                   help="extra keyword argument for gymnasium.make (repeatable)")
    p.set_defaults(func=_cmd_sample)

    b = sub.add_parser("bench", help="run the microbenchmarks and print their table")
    b.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    b.add_argument("--json", default=None, help="where to save the JSON results")
    b.set_defaults(func=_cmd_bench)

    i = sub.add_parser("info", help="version, build flags, SIMD, threads")
    i.set_defaults(func=_cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except (ValueError, TypeError, MemoryError) as exc:
        print(f"pgfast {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pgfast {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which exited
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
