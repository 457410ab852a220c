"""The ``pgfast`` command line: ``pgfast train``, ``pgfast sample``, ``pgfast bench``, ``pgfast info``."""

from __future__ import annotations

import argparse
import ast
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._train import (
    DEFAULT_ADAM_BETAS,
    DEFAULT_BASELINE,
    DEFAULT_BATCH,
    DEFAULT_CHECKPOINT_EVERY,
    DEFAULT_HIDDEN,
    DEFAULT_ITERATIONS,
    DEFAULT_LR,
    DEFAULT_LR_MLP,
    DEFAULT_WEIGHTS,
)

if TYPE_CHECKING:
    from ._optimality import Reference


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


# `pgfast train` defaults: those of pg.train's module, which the training benchmark reads too
DEFAULT_ESTIMATOR = "reward-to-go" if DEFAULT_WEIGHTS == "reward_to_go" else "reinforce"


def _make_optimizer(args: argparse.Namespace) -> Any:
    import pgfast as pg

    defaults = DEFAULT_LR_MLP if args.policy == "mlp" else DEFAULT_LR
    lr = defaults[args.optimizer] if args.lr is None else args.lr
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"--lr must be > 0, got {lr}")
    if args.optimizer != "adam" and args.betas is not None:
        raise ValueError("--betas applies to --optimizer adam")
    if args.optimizer == "adam":
        if args.schedule != "constant":
            raise ValueError("--schedule applies to --optimizer sgd")
        return pg.optim.Adam(lr, betas=DEFAULT_ADAM_BETAS if args.betas is None else tuple(args.betas))
    if args.optimizer == "natural":
        return pg.optim.NaturalGradient(lr, damping=args.damping)
    return pg.optim.GradientAscent(lr, schedule=args.schedule)


def _hidden_sizes(text: str | None) -> tuple[int, ...]:
    """--hidden "64,64" -> (64, 64); "" or "none" -> () (a softmax linear in the state features)."""
    if text is None:
        return DEFAULT_HIDDEN
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        sizes = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"--hidden expects comma-separated layer sizes such as 64,64, got {text!r}") from None
    if any(h < 1 for h in sizes):
        raise ValueError(f"--hidden layer sizes must be >= 1, got {text!r}")
    return sizes


def _make_policy(args: argparse.Namespace, S: int, A: int) -> Any:
    import pgfast as pg

    if args.policy == "mlp":  # one-hot state features; theta initialised from --seed
        return pg.MLPSoftmax(S, A, hidden=_hidden_sizes(args.hidden), activation=args.activation, seed=args.seed)
    if args.hidden is not None or args.activation != "tanh":
        raise ValueError("--hidden and --activation apply to --policy mlp")
    if args.policy == "tabular":
        return pg.TabularSoftmax(S, A)
    # linear: phi(s, a) = e_a (x) [1, onehot(s)] -- a per-action bias plus per-state preferences
    phi = np.zeros((S, A, A * (S + 1)))
    for a in range(A):
        phi[:, a, a * (S + 1)] = 1.0
        phi[np.arange(S), a, a * (S + 1) + 1 + np.arange(S)] = 1.0
    return pg.LinearSoftmax(phi)


def _check_output_path(path: str | None, flag: str) -> None:
    """ValueError unless ``path``'s directory exists (a run's results must not be lost at the end)."""
    if path is None:
        return
    parent = Path(path).expanduser().resolve().parent
    if not parent.is_dir():
        raise ValueError(f"{flag} {path}: the directory {parent} does not exist")


def _run_in_gymnasium(env_id: str, kwargs: dict[str, Any], horizon: int, probs: Any, episodes: int, seed: int) -> Any:
    import gymnasium as gym

    env = gym.make(env_id, max_episode_steps=horizon, **kwargs)
    rng = np.random.default_rng(seed)
    returns = np.zeros(episodes)
    try:
        for k in range(episodes):
            s, _ = env.reset(seed=seed + k)
            total, done = 0.0, False
            while not done:
                a = int(rng.choice(probs.shape[1], p=probs[int(s)]))
                s, r, terminated, truncated, _ = env.step(a)
                total += float(r)
                done = terminated or truncated
            returns[k] = total
    finally:
        env.close()
    return returns


def _cmd_train(args: argparse.Namespace) -> int:
    import pgfast as pg
    from pgfast._optimality import Reference

    for name in ("iterations", "batch", "episodes", "eval_every"):
        if getattr(args, name) < (0 if name == "episodes" else 1):
            raise ValueError(f"--{name.replace('_', '-')} must be >= {0 if name == 'episodes' else 1}, got {getattr(args, name)}")
    if not args.checkpoint_every >= 0:
        raise ValueError(f"--checkpoint-every must be a number of seconds >= 0, got {args.checkpoint_every}")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ValueError("--plot needs matplotlib: pip install matplotlib (or pgfast[plot])") from None
    for flag in ("save", "json", "plot", "checkpoint"):  # before the run, not after it
        _check_output_path(getattr(args, flag), f"--{flag}")
    kwargs = _env_kwargs(args)
    mdp = pg.FiniteMDP.from_gymnasium(args.env, horizon=args.horizon, gamma=args.gamma, **kwargs)
    S, A = mdp.n_states, mdp.n_actions
    pi = _make_policy(args, S, A)
    opt = _make_optimizer(args)
    weights = "return" if args.estimator == "reinforce" else "reward_to_go"
    baseline: Any = None if args.baseline == "none" else args.baseline
    if baseline == "value":
        baseline = pg.ValueBaseline(S, mdp.horizon)
    ref = Reference.of(mdp)
    extra = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    betas = f" betas {opt.betas[0]:g},{opt.betas[1]:g}" if args.optimizer == "adam" else ""
    print(f"pgfast {pg.__version__} train | {args.env}{f' ({extra})' if extra else ''} | {S} states, {A} actions, "
          f"horizon {mdp.horizon}, gamma {mdp.gamma:g}")
    print(f"  {args.policy} softmax ({pi.n_params} parameters) | {args.estimator}, baseline {args.baseline} | "
          f"{args.optimizer} lr {opt.lr:g}{betas} | {args.iterations} iterations x {args.batch} episodes | seed {args.seed}")
    print(f"  optimal J = {ref.optimal_J:.6f}, uniform policy J = {ref.uniform_J:.6f}; % opt = {_fraction_formula(ref)}")
    if args.resume or args.checkpoint:
        print("  " + " | ".join(([f"resuming from {args.resume}"] if args.resume else [])
                                + ([f"checkpoint {args.checkpoint} every {args.checkpoint_every:g} s and on Ctrl-C"]
                                   if args.checkpoint else [])))
    print(f"{'iter':>6} {'J (batch)':>12} {'+-se':>9} {'J exact':>10} {'% opt':>8} {'J* - J':>9} {'|grad|':>10} "
          f"{'cos':>6} {'tr Var':>9} {'Msteps/s':>9}")
    every = args.eval_every

    def show(it: int, rec: dict[str, float]) -> bool:
        if it % every and it != 1 and it != args.iterations:
            return False
        je = rec["J_exact"]
        print(f"{it:>6} {rec['J_estimate']:>12.5f} {rec['J_stderr']:>9.5f} {je:>10.5f} {_percent(ref.fraction(je)):>8} "
              f"{_number(rec['J_gap'], '.3e'):>9} {rec['grad_norm']:>10.4g} {_number(rec['step_cosine'], '.3f'):>6} "
              f"{_number(rec['variance_trace'], '.3g'):>9} {rec['steps_per_s'] / 1e6:>9.1f}", flush=True)
        return False

    t0 = time.perf_counter()
    try:
        hist = pg.train(mdp, pi, optimizer=opt, iterations=args.iterations, batch=args.batch, seed=args.seed,
                        weights=weights, baseline=baseline, eval_every=every, threads=args.threads,
                        progress=False, callback=show, checkpoint=args.checkpoint,
                        checkpoint_every=args.checkpoint_every, resume=args.resume)
    except KeyboardInterrupt:
        if args.checkpoint and Path(args.checkpoint).is_file():
            print(f"pgfast train: the checkpoint {args.checkpoint} holds the last completed iteration; "
                  f"continue with --resume {args.checkpoint}", file=sys.stderr)
        raise
    dt = time.perf_counter() - t0
    J = pg.exact.evaluate(mdp, pi).value
    print(f"trained in {dt:.2f} s")
    if np.isfinite(hist["J_gap"]).any():
        print("  columns: J* - J the sub-optimality gap, cos the cosine between the step and the exact gradient, "
              "tr Var the exact variance (trace) of the one-episode estimator (see pgfast.train)")
    fraction, score = ref.fraction(J), ref.score(J)
    print(f"  exact J of the trained policy  {J:.6f}")
    print(f"  optimal J                      {ref.optimal_J:.6f}"
          + (f"  ({_percent(fraction)} of optimal: {_fraction_formula(ref)})" if np.isfinite(fraction) else ""))
    print(f"  uniform policy J               {ref.uniform_J:.6f}"
          + (f"  (normalised score {_percent(score)}: (J - J_uniform) / (J* - J_uniform))" if np.isfinite(score) else ""))
    if args.episodes > 0:
        G = _run_in_gymnasium(args.env, kwargs, mdp.horizon, pi.probs(), args.episodes, args.seed)
        se = G.std(ddof=1) / np.sqrt(G.size) if G.size > 1 else float("nan")
        z = (G.mean() - J) / se if se > 0 else float("nan")
        print(f"  in gymnasium ({args.episodes} episodes): mean return {G.mean():.4f} +- {se:.4f} ({z:+.2f} standard errors from exact J)")
        if np.isin(G, (0.0, 1.0)).all():
            print(f"  success rate in gymnasium      {(G > 0).mean():.1%}")
    if args.save:
        np.savez(args.save, theta=pi.theta)
        print(f"  saved theta to {args.save}")
    if args.json:
        hist.meta.update({"env": args.env, "env_kwargs": {k: repr(v) for k, v in kwargs.items()},
                          "optimal_J": ref.optimal_J, "uniform_J": ref.uniform_J, "final_J": J,
                          "fraction_of_optimal": None if np.isnan(fraction) else fraction,
                          "normalized_score": None if np.isnan(score) else score})
        hist.save_json(args.json)
        print(f"  saved history to {args.json}")
    if args.plot:
        _plot(hist, ref.optimal_J, args.plot, f"{args.env} {extra}".strip())
        print(f"  saved learning curve to {args.plot}")
    return 0


def _number(x: float, spec: str) -> str:
    """``x`` formatted by ``spec``, or "-" when not evaluated (NaN)."""
    return format(x, spec) if np.isfinite(x) else "-"


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.1f}%" if np.isfinite(fraction) else "-"


def _fraction_formula(ref: Reference) -> str:
    if ref.optimal_J > 0:
        return "J / J*"
    return "J* / J (rewards are costs)" if ref.optimal_J < 0 else "undefined (J* = 0)"


def _plot(hist: Any, optimal_J: float, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, gap_ax) = plt.subplots(1, 2, figsize=(11, 4))
    it = hist["iteration"]
    ax.plot(it, hist["J_estimate"], lw=1, alpha=0.6, label="J (batch mean return)")
    je = hist["J_exact"]
    ok = ~np.isnan(je)
    if ok.any():
        ax.plot(it[ok], je[ok], marker=".", lw=1.5, label="J exact")
    ax.axhline(optimal_J, color="k", ls="--", lw=1, label="optimal J")
    ax.set_xlabel("iteration")
    ax.set_ylabel("J")
    ax.set_title(title)
    ax.legend()
    gap = hist["J_gap"]
    pos = gap > 0  # log axes show the positive gaps (NaN: not evaluated)
    if pos.any():
        gap_ax.loglog(it[pos], gap[pos], marker=".", lw=1.5, label="J* - J (exact)")
        gap_ax.legend()
    else:
        gap_ax.text(0.5, 0.5, "no exact J* - J > 0 recorded", ha="center", va="center", transform=gap_ax.transAxes)
    gap_ax.set_xlabel("iteration")
    gap_ax.set_ylabel("J* - J")
    gap_ax.set_title("sub-optimality gap (log-log)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _cmd_sample(args: argparse.Namespace) -> int:
    import pgfast as pg

    kwargs = _env_kwargs(args)
    mdp = pg.FiniteMDP.from_gymnasium(args.env, horizon=args.horizon, gamma=args.gamma, **kwargs)
    S, A = mdp.n_states, mdp.n_actions
    if args.policy == "uniform":
        pi = pg.TabularSoftmax(S, A)
    else:
        if args.policy_seed < 0:
            raise ValueError(f"--policy-seed must be >= 0, got {args.policy_seed}")
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
    J = pg.exact.evaluate(mdp, pi).value
    gap = G.mean() - J
    where = f"{gap / se:+.2f} standard errors" if se > 0 else f"difference {gap:+.3g}"
    print(f"  exact J           {J:.6f}   ({where})")
    print(f"  mean length       {traj.lengths.mean():.2f} steps")
    print(f"  terminated        {traj.terminated.mean():.2%} (the rest reached the horizon)")
    if np.isin(G, (0.0, 1.0)).all():
        print(f"  success rate      {(G > 0).mean():.2%}")
    return 0


_SUITES = ("sampler", "exact", "estimators", "mlp")  # what `pgfast bench` runs
_OPT_IN_SUITES = ("training",)  # about a minute: only with --only


def _cmd_bench(args: argparse.Namespace) -> int:
    import importlib

    suites = _SUITES if args.only is None else tuple(x.strip() for x in args.only.split(","))
    for name in suites:
        if name not in _SUITES + _OPT_IN_SUITES:
            raise ValueError(f"--only takes a comma-separated list of {', '.join(_SUITES + _OPT_IN_SUITES)}; got {name!r}")
    _check_output_path(args.json, "--json")  # before the run, not after it
    status = 0
    for name in suites:
        argv = ["--quick"] if args.quick else []
        if args.json:
            path = Path(args.json)
            if len(suites) > 1:
                path = path.with_name(f"{path.stem}-{name}{path.suffix or '.json'}")
            argv += ["--json", str(path)]
        module = importlib.import_module(f"pgfast.benchmarks.{name}")  # only here: the library never imports them
        print(f"== pgfast bench {name} ==", flush=True)
        status = max(status, int(module.main(argv, prog=f"pgfast bench --only {name}")))
    return status


def _cmd_info(args: argparse.Namespace) -> int:
    import pgfast as pg
    from pgfast._validation import available_cpus

    info = pg.build_info()
    print(f"pgfast {pg.__version__}")
    print(f"  numpy {np.__version__}, python {sys.version.split()[0]}")
    for key in ("compiler", "eigen", "eigen_simd", "native", "sanitize", "debug", "lanes", "trajectory_block"):
        print(f"  {key:17s} {info[key]}")
    print(f"  threads           {available_cpus()} usable (hardware: {info['hardware_threads']})")
    return 0


def _add_env_options(p: argparse.ArgumentParser) -> None:
    """Options shared by the commands that run an environment."""
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=int, default=None, help="worker threads, 1 to 256 (default: all CPUs)")
    p.add_argument("--horizon", type=int, default=None, help="episode length limit (default: the registered one)")
    p.add_argument("--gamma", type=float, default=1.0, help="discount factor in [0, 1] (default 1)")
    p.add_argument("--map-name", default=None, help="FrozenLake map, e.g. 4x4 or 8x8")
    p.add_argument("--slippery", action=argparse.BooleanOptionalAction, default=None,
                   help="FrozenLake/CliffWalking slipperiness (default: the environment's)")
    p.add_argument("--env-arg", action="append", metavar="KEY=VALUE",
                   help="extra keyword argument for gymnasium.make (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    from pgfast import __version__

    parser = argparse.ArgumentParser(
        prog="pgfast",
        description="Fast, exact-where-possible policy gradients for finite MDPs.",
    )
    parser.add_argument("--version", action="version", version=f"pgfast {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser(
        "train",
        help="train a softmax policy by policy gradient ascent on a gymnasium toy-text environment",
        description="Policy gradient ascent on a gymnasium environment with a tabular P (FrozenLake-v1, "
        "Taxi-v4, CliffWalking-v1, ...). Prints the learning curve, the exact J of the trained policy, the "
        "optimal J and a check in the real gymnasium environment.",
    )
    t.add_argument("env", help="gymnasium environment id, e.g. FrozenLake-v1")
    t.add_argument("--policy", choices=("tabular", "linear", "mlp"), default="tabular",
                   help="policy class (default tabular; mlp: pg.MLPSoftmax on one-hot states)")
    t.add_argument("--hidden", default=None, metavar="H1,H2,...",
                   help="mlp hidden layer sizes (default " + ",".join(map(str, DEFAULT_HIDDEN)) + ")")
    t.add_argument("--activation", choices=("tanh", "relu"), default="tanh", help="mlp activation (default tanh)")
    t.add_argument("--estimator", choices=("reinforce", "reward-to-go"), default=DEFAULT_ESTIMATOR,
                   help=f"weights: whole return (REINFORCE) or reward-to-go (default {DEFAULT_ESTIMATOR})")
    t.add_argument("--baseline", choices=("none", "mean", "time", "value", "exact"), default=DEFAULT_BASELINE,
                   help=f"baseline (default {DEFAULT_BASELINE}: leave-one-out mean reward-to-go per step)")
    t.add_argument("--optimizer", choices=("sgd", "adam", "natural"), default="adam", help="default adam")
    t.add_argument("--lr", type=float, default=None,
                   help="learning rate (default: " + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items())
                   + "; adam {:g} with --policy mlp)".format(DEFAULT_LR_MLP["adam"]))
    t.add_argument("--betas", type=float, nargs=2, default=None, metavar=("B1", "B2"),
                   help="Adam's decay rates (default {:g} {:g})".format(*DEFAULT_ADAM_BETAS))
    t.add_argument("--schedule", choices=("constant", "inv_sqrt"), default="constant", help="sgd step sizes")
    t.add_argument("--damping", type=float, default=1e-3, help="natural gradient damping (default 1e-3)")
    t.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS, help=f"default {DEFAULT_ITERATIONS}")
    t.add_argument("--batch", type=int, default=DEFAULT_BATCH, help=f"episodes per iteration (default {DEFAULT_BATCH})")
    t.add_argument("--eval-every", type=int, default=25, help="print and evaluate exactly every k iterations (default 25)")
    t.add_argument("--episodes", type=int, default=1000,
                   help="episodes to run the trained policy in the real gymnasium env (default 1000; 0 skips)")
    t.add_argument("--save", default=None, metavar="PATH.npz", help="save theta (key 'theta')")
    t.add_argument("--json", default=None, metavar="PATH", help="save the training history as JSON")
    t.add_argument("--plot", default=None, metavar="PATH.png", help="learning curve (needs matplotlib)")
    t.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="write the training state (theta, optimizer, iteration, seed, history) to PATH every "
                   "--checkpoint-every seconds, at the end and on Ctrl-C (an .npz archive)")
    t.add_argument("--checkpoint-every", type=float, default=DEFAULT_CHECKPOINT_EVERY, metavar="SECONDS",
                   help=f"seconds between two checkpoints (default {DEFAULT_CHECKPOINT_EVERY:g})")
    t.add_argument("--resume", default=None, metavar="PATH",
                   help="continue the run saved in the checkpoint PATH up to --iterations (give the options of "
                   "the run that wrote it; the result equals one uninterrupted run)")
    _add_env_options(t)
    t.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "sample",
        help="simulate episodes of a gymnasium toy-text environment and summarise them",
        description="Simulate episodes of a softmax policy in a gymnasium environment with a tabular P "
        "(FrozenLake-v1, Taxi-v4, CliffWalking-v1, ...) and print statistics beside the exact value.",
    )
    p.add_argument("env", help="gymnasium environment id, e.g. FrozenLake-v1")
    p.add_argument("--n", type=int, default=100_000, help="number of episodes (default 100,000)")
    p.add_argument("--policy", choices=("uniform", "random"), default="uniform",
                   help="uniform softmax (theta = 0) or random N(0, 1) logits (default uniform)")
    p.add_argument("--policy-seed", type=int, default=0, help="seed of the random logits")
    _add_env_options(p)
    p.set_defaults(func=_cmd_sample)

    b = sub.add_parser("bench", help="run the microbenchmarks (sampler, exact, estimators) and print their tables")
    b.add_argument("--quick", action="store_true", help="small sizes and few repeats (a smoke run)")
    b.add_argument("--only", default=None, metavar="SUITES",
                   help="comma-separated subset of sampler,exact,estimators,mlp, or training (time to 95%% of optimal "
                   "with the train defaults; about a minute, so only when asked for)")
    b.add_argument("--json", default=None,
                   help="where to save the JSON results (PATH; with several suites, PATH-<suite>.json)")
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
        msg = str(exc).replace("pass horizon=", "pass --horizon N").replace("\n", " ")
        print(f"pgfast {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pgfast {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which exited
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0

