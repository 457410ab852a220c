"""The ``pgfast`` command line: ``pgfast train``, ``pgfast sweep``, ``pgfast sample``, ``pgfast bench``, ``pgfast info``."""

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

from ._sweep import DEFAULT_ESTIMATOR, build_run
from ._train import (
    DEFAULT_ADAM_BETAS,
    DEFAULT_ADVANTAGE_GAMMA,
    DEFAULT_BASELINE,
    DEFAULT_BATCH,
    DEFAULT_CHECKPOINT_EVERY,
    DEFAULT_HIDDEN,
    DEFAULT_ITERATIONS,
    DEFAULT_LR,
    DEFAULT_LR_MLP,
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


def _check_output_path(path: str | None, flag: str) -> None:
    """ValueError unless ``path``'s directory exists (a run's results must not be lost at the end)."""
    if path is None:
        return
    parent = Path(path).expanduser().resolve().parent
    if not parent.is_dir():
        raise ValueError(f"{flag} {path}: the directory {parent} does not exist")


def _check_outputs(args: argparse.Namespace, flags: tuple[str, ...]) -> None:
    """Before the run, not after it: matplotlib for --plot, and the directories of the output files."""
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ValueError("--plot needs matplotlib: pip install matplotlib (or pgfast[plot])") from None
    for flag in flags:
        _check_output_path(getattr(args, flag), f"--{flag}")


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


_TRAIN_OPTIONS = ("policy", "hidden", "activation", "estimator", "baseline", "optimizer", "lr", "betas", "schedule",
                  "damping", "batch", "gamma", "horizon", "eval_every", "mirror", "advantage_gamma", "entropy")  # pg.build_run's options, as flags of `pgfast train`


def _train_options(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in _TRAIN_OPTIONS}


def _cmd_train(args: argparse.Namespace) -> int:
    import pgfast as pg
    from pgfast._optimality import Reference

    if _box_observations(args.env, _env_kwargs(args)):
        return _cmd_train_continuous(args)
    for flag, default in (("policy", "tabular"), ("iterations", DEFAULT_ITERATIONS), ("batch", DEFAULT_BATCH),
                          ("eval_every", 25), ("episodes", 1000)):
        if getattr(args, flag) is None:
            setattr(args, flag, default)
    for name in ("iterations", "batch", "episodes", "eval_every"):
        if getattr(args, name) < (0 if name == "episodes" else 1):
            raise ValueError(f"--{name.replace('_', '-')} must be >= {0 if name == 'episodes' else 1}, got {getattr(args, name)}")
    if not args.checkpoint_every >= 0:
        raise ValueError(f"--checkpoint-every must be a number of seconds >= 0, got {args.checkpoint_every}")
    _check_outputs(args, ("save", "json", "plot", "checkpoint"))
    kwargs = _env_kwargs(args)
    run = build_run(args.env, _train_options(args), seed=args.seed, iterations=args.iterations, env_kwargs=kwargs,
                    threads=args.threads, prefix="--")
    mdp, pi = run.mdp, run.policy
    opt: Any = run.optimizer
    S, A = mdp.n_states, mdp.n_actions
    ref = Reference.of(mdp)
    extra = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    settings = _optimizer_settings(opt)
    print(f"pgfast {pg.__version__} train | {args.env}{f' ({extra})' if extra else ''} | {S} states, {A} actions, "
          f"horizon {mdp.horizon}, gamma {mdp.gamma:g}")
    print(f"  {args.policy} softmax ({pi.n_params} parameters) | {args.estimator}, baseline {args.baseline} | "
          f"{args.optimizer} {settings}{'' if args.entropy is None else f' | entropy {args.entropy:g}'} | "
          f"{args.iterations} iterations x {args.batch} episodes | seed {args.seed}")
    print(f"  optimal J = {ref.optimal_J:.6f}, uniform policy J = {ref.uniform_J:.6f}; % opt = {_fraction_formula(ref)}")
    if args.entropy:
        print(f"  entropy-regularised run: J (batch), J exact, % opt and J* - J below are those of J_tau (tau "
              f"{args.entropy:g}) against its soft optimum; the summary compares the trained policy's J with J*")
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
        # with --entropy the exact columns are of J_tau, compared with the soft optimum
        frac = rec["fraction_of_optimal"] if args.entropy else ref.fraction(je)
        print(f"{it:>6} {rec['J_estimate']:>12.5f} {rec['J_stderr']:>9.5f} {je:>10.5f} {_percent(frac):>8} "
              f"{_number(rec['J_gap'], '.3e'):>9} {rec['grad_norm']:>10.4g} {_number(rec['step_cosine'], '.3f'):>6} "
              f"{_number(rec['variance_trace'], '.3g'):>9} {rec['steps_per_s'] / 1e6:>9.1f}", flush=True)
        return False

    t0 = time.perf_counter()
    try:
        hist = pg.train(mdp, pi, optimizer=opt, **run.kwargs, callback=show, checkpoint=args.checkpoint,
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
                          "optimizer_hyperparameters": _hyperparameters(opt), "entropy": args.entropy,
                          "optimal_J": ref.optimal_J, "uniform_J": ref.uniform_J, "final_J": J,
                          "fraction_of_optimal": None if np.isnan(fraction) else fraction,
                          "normalized_score": None if np.isnan(score) else score})
        hist.save_json(args.json)
        print(f"  saved history to {args.json}")
    if args.plot:
        grid = _grid_layout(args.env, kwargs)
        # with --entropy the curves are of J_tau: the line is its soft optimum
        best = pg.exact.soft_optimal(mdp, args.entropy, "finite_horizon").value if args.entropy else ref.optimal_J
        title = f"{args.env} {extra}".strip() + (f" (J_tau, tau {args.entropy:g})" if args.entropy else "")
        _plot(hist, best, args.plot, title, policy_map=None if grid is None else (mdp, pi, *grid))
        print(f"  saved learning curve{'' if grid is None else ' and policy map'} to {args.plot}")
    return 0


def _hyperparameters(opt: Any) -> dict[str, Any]:
    """The optimizer's settings, as its state dict holds them (JSON-safe)."""
    state = opt.state_dict()
    return {k: state[k] for k in opt.hyperparameters}


def _optimizer_settings(opt: Any) -> str:
    """The header's optimizer settings: ``lr 0.2 betas 0.9,0.99``, ``lr 0.1 tau 0.01 gamma 0.99``, ..."""
    parts = []
    for key, value in _hyperparameters(opt).items():
        if key == "betas":
            parts.append(f"betas {value[0]:g},{value[1]:g}")
        elif key in ("lr", "tau", "gamma", "mirror", "schedule") and value not in (None, 0.0, "constant"):
            parts.append(f"{key} {value:g}" if isinstance(value, float) else f"{key} {value}")
    return " ".join(parts)


# The grid worlds of gymnasium's toy text whose states are the cells of a grid, row-major: the
# unwrapped environment's class -> its grid shape and the moves of its actions (pg.plot.policy_map).
_GRID_ACTIONS = {"FrozenLakeEnv": ("left", "down", "right", "up"), "CliffWalkingEnv": ("up", "right", "down", "left")}


def _grid_layout(env_id: str, kwargs: dict[str, Any]) -> tuple[tuple[int, int], tuple[str, ...]] | None:
    """``(shape, actions)`` of a FrozenLake or CliffWalking environment (any map), else None."""
    import gymnasium

    env = gymnasium.make(env_id, **kwargs)
    try:
        base: Any = env.unwrapped
        actions = _GRID_ACTIONS.get(type(base).__name__)
        if actions is None:
            return None
        shape = (int(base.nrow), int(base.ncol)) if hasattr(base, "nrow") else (int(base.shape[0]), int(base.shape[1]))
        return shape, actions
    finally:
        env.close()


# `pgfast train` on gymnasium environments with Box observations: the default policy, optimizer
# learning rate, iterations and episodes per iteration of each (short runs that improve the return).
CONTINUOUS_DEFAULTS: dict[str, dict[str, Any]] = {
    "CartPole-v1": {"iterations": 30, "batch": 20, "lr": 0.1},
    "Pendulum-v1": {"iterations": 30, "batch": 32, "lr": 0.1},
    "MountainCarContinuous-v0": {"iterations": 20, "batch": 16, "lr": 0.1},
}
"""Per environment id: ``iterations``, ``batch`` and Adam's ``lr`` (others: :data:`CONTINUOUS_FALLBACK`)."""
CONTINUOUS_FALLBACK: dict[str, Any] = {"iterations": 30, "batch": 16, "lr": 0.1}
"""The defaults of another gymnasium environment with Box observations."""
CONTINUOUS_LR = {"adam": None, "sgd": 1e-3, "natural": 0.1}
"""Learning rates of the other optimizers (None: the environment's Adam default)."""


def _box_observations(env_id: str, kwargs: dict[str, Any]) -> bool:
    """Whether ``gymnasium.make(env_id, **kwargs)`` has a Box observation space (False when it cannot
    be made: the tabular path reports the error)."""
    import gymnasium

    try:
        env = gymnasium.make(env_id, **kwargs)
    except Exception:  # noqa: BLE001 - reported by the tabular path, with its own messages
        return False
    try:
        return isinstance(env.observation_space, gymnasium.spaces.Box)
    finally:
        env.close()


def _cmd_train_continuous(args: argparse.Namespace) -> int:
    """`pgfast train` on a gymnasium environment with Box observations (pg.rollout batches)."""
    import gymnasium

    import pgfast as pg

    kwargs = _env_kwargs(args)
    defaults = CONTINUOUS_DEFAULTS.get(args.env, CONTINUOUS_FALLBACK)
    iterations = defaults["iterations"] if args.iterations is None else args.iterations
    batch = defaults["batch"] if args.batch is None else args.batch
    every = 5 if args.eval_every is None else args.eval_every
    episodes = 100 if args.episodes is None else args.episodes
    for name, value in (("iterations", iterations), ("batch", batch), ("eval-every", every)):
        if value < 1:
            raise ValueError(f"--{name} must be >= 1, got {value}")
    if episodes < 0:
        raise ValueError(f"--episodes must be >= 0, got {episodes}")
    if args.policy not in (None, "linear"):
        raise ValueError(f"--policy {args.policy} is for tabular environments; {args.env} has Box observations "
                         "(its policy is linear in the observation: --policy linear, the default)")
    if args.baseline not in ("none", "mean", "time"):
        raise ValueError(f"--baseline {args.baseline} is for tabular environments; {args.env} takes none, mean or time")
    for flag in ("checkpoint", "resume"):
        if getattr(args, flag):
            raise ValueError(f"--{flag} is for tabular environments (pg.train checkpoints finite MDPs only)")
    if args.optimizer in ("npg", "pmd"):
        raise ValueError(f"--optimizer {args.optimizer} is for tabular environments (a closed-form update of a tabular "
                         f"policy); {args.env} has Box observations: use sgd, adam or natural")
    for flag, value, default in (("entropy", args.entropy, None), ("advantage-gamma", args.advantage_gamma, None),
                                 ("mirror", args.mirror, "kl")):
        if value != default:
            raise ValueError(f"--{flag} is for tabular environments; {args.env} has Box observations")
    _check_outputs(args, ("save", "json", "plot"))
    env = gymnasium.make(args.env, **kwargs)
    try:
        obs_dim = int(np.prod(env.observation_space.shape or ()))
        space = env.action_space
        limit = env.spec.max_episode_steps if env.spec is not None else None
    finally:
        env.close()
    if isinstance(space, gymnasium.spaces.Discrete):
        pi: Any = pg.ObservationSoftmax(obs_dim, int(space.n))
        what = f"linear softmax on the observation ({pi.n_params} parameters)"
        actions = f"{int(space.n)} actions"
    elif isinstance(space, gymnasium.spaces.Box) and len(space.shape) == 1:
        pi = pg.LinearGaussian(obs_dim, int(space.shape[0]))
        what = f"linear-Gaussian on the observation, log std 0 ({pi.n_params} parameters)"
        actions = f"Box actions ({space.shape[0]}, bounds {np.min(space.low):g} to {np.max(space.high):g})"
    else:
        raise ValueError(f"{args.env} has the action space {space}; pgfast train takes Discrete or one-dimensional Box actions")
    horizon = limit if args.horizon is None else (args.horizon if limit is None else min(args.horizon, limit))
    if horizon is None:
        raise ValueError(f"{args.env} has no time limit: pass --horizon N")
    if args.lr is not None and not (np.isfinite(args.lr) and args.lr > 0):
        raise ValueError(f"--lr must be > 0, got {args.lr}")
    lr = args.lr if args.lr is not None else (CONTINUOUS_LR[args.optimizer] or defaults["lr"])
    if args.optimizer == "adam":
        opt: Any = pg.optim.Adam(lr=lr, betas=tuple(args.betas) if args.betas else DEFAULT_ADAM_BETAS)
    elif args.optimizer == "sgd":
        opt = pg.optim.GradientAscent(lr=lr, schedule=args.schedule)
    else:
        opt = pg.optim.NaturalGradient(lr=lr, damping=args.damping, fisher="sampled")
    weights = "return" if args.estimator == "reinforce" else "reward_to_go"
    baseline = None if args.baseline == "none" else args.baseline
    extra = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    print(f"pgfast {pg.__version__} train | {args.env}{f' ({extra})' if extra else ''} | {obs_dim} observations, "
          f"{actions}, horizon {horizon}, gamma {args.gamma:g} | Python-speed episodes (pg.rollout)")
    print(f"  {what} | {args.estimator}, baseline {args.baseline} | {args.optimizer} lr {lr:g} | "
          f"{iterations} iterations x {batch} episodes | seed {args.seed}")
    print(f"{'iter':>6} {'J (batch)':>12} {'+-se':>9} {'|grad|':>10} {'steps/s':>9}")

    def show(it: int, rec: dict[str, float]) -> bool:
        if it % every and it != 1 and it != iterations:
            return False
        print(f"{it:>6} {rec['J_estimate']:>12.4f} {rec['J_stderr']:>9.4f} {rec['grad_norm']:>10.4g} "
              f"{rec['steps_per_s']:>9.0f}", flush=True)
        return False

    t0 = time.perf_counter()
    hist = pg.train(args.env, pi, optimizer=opt, iterations=iterations, batch=batch, seed=args.seed, weights=weights,
                    baseline=baseline, gamma=args.gamma, threads=args.threads, callback=show, horizon=horizon,
                    env_kwargs=kwargs, progress=False)
    dt = time.perf_counter() - t0
    print(f"trained in {dt:.2f} s")
    first, last = hist.records[0], hist.records[-1]
    print(f"  mean return, first batch       {first['J_estimate']:.4f} +- {first['J_stderr']:.4f}")
    print(f"  mean return, last batch        {last['J_estimate']:.4f} +- {last['J_stderr']:.4f}")
    if episodes > 0:  # a fresh batch of the trained policy, its seed apart from the training's
        traj = pg.rollout(args.env, pi, episodes, seed=int(np.random.SeedSequence([args.seed, 2**32]).generate_state(1)[0]),
                          horizon=horizon, gamma=args.gamma, **kwargs)
        G = traj.returns()
        se = G.std(ddof=1) / np.sqrt(G.size) if G.size > 1 else float("nan")
        print(f"  {f'trained policy, {episodes} episodes':<30} {G.mean():.4f} +- {se:.4f} (a new batch, seeds apart from the training's)")
    if args.save:
        np.savez(args.save, theta=pi.theta)
        print(f"  saved theta to {args.save}")
    if args.json:
        hist.meta.update({"env": args.env, "env_kwargs": {k: repr(v) for k, v in kwargs.items()}})
        hist.save_json(args.json)
        print(f"  saved history to {args.json}")
    if args.plot:
        _plot_returns(hist, args.plot, f"{args.env} {extra}".strip())
        print(f"  saved learning curve to {args.plot}")
    return 0


def _plot_returns(hist: Any, path: str, title: str) -> None:
    """The learning curve of a run without an exact J: the batches' mean returns, +- 2 standard errors."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    it, J, se = hist["iteration"], hist["J_estimate"], hist["J_stderr"]
    ax.plot(it, J, marker=".", lw=1.5, label="mean return of the batch")
    ax.fill_between(it, J - 2 * se, J + 2 * se, alpha=0.25, label="+- 2 standard errors")
    ax.set_xlabel("iteration")
    ax.set_ylabel("return")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _number(x: float, spec: str) -> str:
    """``x`` formatted by ``spec``, or "-" when not evaluated (NaN)."""
    return format(x, spec) if np.isfinite(x) else "-"


def _percent(fraction: float) -> str:
    return f"{100 * fraction:.1f}%" if np.isfinite(fraction) else "-"


def _fraction_formula(ref: Reference) -> str:
    if ref.optimal_J > 0:
        return "J / J*"
    return "J* / J (rewards are costs)" if ref.optimal_J < 0 else "undefined (J* = 0)"


def _plot(hist: Any, optimal_J: float, path: str, title: str, policy_map: tuple[Any, ...] | None = None) -> None:
    """The learning curve and the gap; with ``policy_map = (mdp, policy, shape, actions)`` also the
    trained policy's map (pg.plot.policy_map, finite-horizon values V_0) in a panel below them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if policy_map is None:
        fig, (ax, gap_ax) = plt.subplots(1, 2, figsize=(11, 4))
    else:
        from .plot import policy_map as draw_policy_map

        fig = plt.figure(figsize=(11, 8.5))
        panels = fig.add_gridspec(2, 2, height_ratios=(1, 1.1))
        ax, gap_ax, map_ax = fig.add_subplot(panels[0, 0]), fig.add_subplot(panels[0, 1]), fig.add_subplot(panels[1, :])
        mdp, policy, shape, actions = policy_map
        draw_policy_map(mdp, policy, shape=shape, objective="finite_horizon", actions=actions, ax=map_ax)
        map_ax.set_title("trained policy: pi(a|s) as arrows over V_0(s)")
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


_FLOAT_OPTIONS, _INT_OPTIONS, _TUPLE_OPTIONS = ("lr", "damping", "gamma", "advantage_gamma", "entropy"), ("batch", "eval_every", "horizon"), ("hidden", "betas")


def _option_value(key: str, text: str, flag: str) -> Any:
    """A value of a sweep option from its text (a tuple's elements separated by "/")."""
    from ._sweep import OPTIONS, option_choices

    choices = option_choices(key)
    try:
        if key == "hidden":
            return () if text.strip().lower() in ("", "none") else tuple(int(x) for x in text.split("/"))
        if key == "betas":
            betas = tuple(float(x) for x in text.split("/"))
            if len(betas) != 2:
                raise ValueError
            return betas
        if key in _FLOAT_OPTIONS:
            return float(text)
        if key in _INT_OPTIONS:
            return int(text)
    except ValueError:
        kind = {"hidden": "layer sizes such as 64/64", "betas": "two numbers such as 0.9/0.99"}.get(
            key, "a number" if key in _FLOAT_OPTIONS else "an integer")
        raise ValueError(f"{flag}: {key} takes {kind}, got {text!r}") from None
    if choices and text not in choices:
        raise ValueError(f"{flag}: {key} must be one of {', '.join(choices)}, got {text!r}")
    assert key in OPTIONS
    return text


def _option_items(items: list[str] | None, flag: str, many: bool) -> dict[str, Any]:
    """--grid KEY=V1,V2,... (many values) or --set KEY=VALUE items -> {option: value(s)}."""
    from ._sweep import OPTIONS

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ValueError(f"{flag} expects KEY={'V1,V2,...' if many else 'VALUE'}, got {item!r}")
        if key not in OPTIONS:
            raise ValueError(f"{flag} {item}: unknown option {key!r}; the options are "
                             + ", ".join(k.replace("_", "-") for k in OPTIONS))
        if key in out:
            raise ValueError(f"{flag} {item}: {key} given twice")
        where = f"{flag} {item}"
        out[key] = [_option_value(key, v, where) for v in text.split(",")] if many else _option_value(key, text, where)
    return out


def _as_seed_list(text: str) -> int | list[int]:
    try:
        if "," in text:
            return [int(x) for x in text.split(",")]
        n = int(text)
    except ValueError:
        raise ValueError(f"--seeds expects a number of seeds or a comma-separated list of seeds, got {text!r}") from None
    if n < 1:
        raise ValueError(f"--seeds must be >= 1, got {n}")
    return n


def _cmd_sweep(args: argparse.Namespace) -> int:
    import pgfast as pg

    grid = _option_items(args.grid, "--grid", many=True)
    fixed = _option_items(args.set, "--set", many=False)
    both = sorted(set(grid) & set(fixed))
    if both:
        raise ValueError(f"--grid and --set both give {both[0]}")
    seeds = _as_seed_list(args.seeds)
    if args.iterations < 1:
        raise ValueError(f"--iterations must be >= 1, got {args.iterations}")
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    _check_outputs(args, ("out", "json", "plot", "journal"))
    per_task: int | str = "auto"
    if args.runs_per_task != "auto":
        try:
            per_task = int(args.runs_per_task)
        except ValueError:
            raise ValueError(f"--runs-per-task expects auto or an integer >= 1, got {args.runs_per_task!r}") from None
    kwargs = _env_kwargs(args)
    n_configs = int(np.prod([len(v) for v in grid.values()])) if grid else 1
    n_seeds = seeds if isinstance(seeds, int) else len(seeds)
    extra = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    print(f"pgfast {pg.__version__} sweep | {args.env}{f' ({extra})' if extra else ''} | {n_configs} configs x {n_seeds} "
          f"seeds x {args.iterations} iterations | backend {args.backend}", flush=True)
    t0 = time.perf_counter()
    try:
        res = pg.sweep(args.env, grid, seeds, iterations=args.iterations, backend=args.backend, workers=args.workers,
                       address=args.address, runs_per_task=per_task, journal=args.journal, env_kwargs=kwargs, **fixed)
    except ImportError as exc:  # --backend ray without Ray
        raise ValueError(str(exc)) from None
    dt = time.perf_counter() - t0
    runs = n_configs * n_seeds
    print(f"{runs} runs in {dt:.2f} s ({runs / dt:.1f} runs/s)")
    metric = args.metric
    table = res.summary(metric)
    keys = list(grid)
    print(f"{metric} at iteration {args.iterations}, across seeds (IQM: interquartile mean, 95% bootstrap interval):")
    head = [k.replace("_", "-") for k in keys] + ["n", "mean", "+-se", "IQM", "IQM interval"]
    cells = [[_cell(row[k]) for k in keys] + [str(row["n"]), f"{row['mean']:.5g}", f"{row['stderr']:.2g}",
                                              f"{row['iqm']:.5g}", f"[{row['iqm_low']:.5g}, {row['iqm_high']:.5g}]"]
             for row in table]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    print("  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
    for c in cells:
        print("  ".join(x.rjust(w) for x, w in zip(c, widths, strict=True)))
    if args.out:
        res.to_csv(args.out)
        print(f"  saved {len(res)} rows to {args.out}")
    if args.json:
        res.to_json(args.json)
        print(f"  saved the result to {args.json}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ax = res.plot(metric)
        ax.set_title(f"{args.env} {extra}".strip())
        ax.figure.tight_layout()
        ax.figure.savefig(args.plot)
        plt.close(ax.figure)
        print(f"  saved learning curves to {args.plot}")
    return 0


def _cell(value: Any) -> str:
    if isinstance(value, tuple):
        return "/".join(map(str, value)) or "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


_SUITES = ("sampler", "exact", "estimators", "mlp")  # what `pgfast bench` runs
_OPT_IN_SUITES = ("training", "distributed", "variance", "lqr", "optim")  # minutes (distributed: needs Ray): only with --only


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
        help="train a policy by policy gradient ascent on a gymnasium environment (toy-text, or Box observations)",
        description="Policy gradient ascent on a gymnasium environment. With a tabular P (FrozenLake-v1, "
        "Taxi-v4, CliffWalking-v1, ...): a softmax policy, the learning curve, the exact J of the trained policy, the "
        "optimal J and a check in the real gymnasium environment. With Box observations (CartPole-v1, Pendulum-v1, "
        "MountainCarContinuous-v0, ...): a policy linear in the observation (a softmax for Discrete actions, a "
        "Gaussian for Box actions) trained on episodes sampled through gymnasium (pg.rollout, Python speed) by a short "
        "default run; the learning curve and the mean return of the trained policy.",
    )
    t.add_argument("env", help="gymnasium environment id, e.g. FrozenLake-v1 or CartPole-v1")
    t.add_argument("--policy", choices=("tabular", "linear", "mlp"), default=None,
                   help="policy class (default tabular; mlp: pg.MLPSoftmax on one-hot states; Box observations: linear, "
                   "pg.ObservationSoftmax or pg.LinearGaussian)")
    t.add_argument("--hidden", default=None, metavar="H1,H2,...",
                   help="mlp hidden layer sizes (default " + ",".join(map(str, DEFAULT_HIDDEN)) + ")")
    t.add_argument("--activation", choices=("tanh", "relu"), default="tanh", help="mlp activation (default tanh)")
    t.add_argument("--estimator", choices=("reinforce", "reward-to-go"), default=DEFAULT_ESTIMATOR,
                   help=f"weights: whole return (REINFORCE) or reward-to-go (default {DEFAULT_ESTIMATOR})")
    t.add_argument("--baseline", choices=("none", "mean", "time", "value", "exact", "optimal"), default=DEFAULT_BASELINE,
                   help=f"baseline (default {DEFAULT_BASELINE}: leave-one-out mean reward-to-go per step)")
    t.add_argument("--optimizer", choices=("sgd", "adam", "natural", "npg", "pmd"), default="adam",
                   help="default adam; npg (natural policy gradient) and pmd (policy mirror descent) are closed-form "
                   "updates of a tabular policy from each batch's sampled advantages")
    t.add_argument("--lr", type=float, default=None,
                   help="learning rate (default: " + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items())
                   + "; adam {:g} with --policy mlp; Box observations: adam 0.1, sgd 0.001, natural 0.1)".format(
                       DEFAULT_LR_MLP["adam"]))
    t.add_argument("--betas", type=float, nargs=2, default=None, metavar=("B1", "B2"),
                   help="Adam's decay rates (default {:g} {:g})".format(*DEFAULT_ADAM_BETAS))
    t.add_argument("--schedule", choices=("constant", "inv_sqrt", "geometric"), default="constant",
                   help="step sizes: sgd constant or inv_sqrt, pmd constant or geometric (lr / gamma^(t-1))")
    t.add_argument("--damping", type=float, default=1e-3, help="natural gradient damping (default 1e-3)")
    t.add_argument("--mirror", choices=("kl", "euclidean"), default="kl", help="pmd's Bregman divergence (default kl)")
    t.add_argument("--advantage-gamma", type=float, default=None, metavar="GAMMA",
                   help="discount of the advantages npg and pmd step with, in [0, 1) (default: --gamma if below 1, "
                   f"else {DEFAULT_ADVANTAGE_GAMMA:g})")
    t.add_argument("--entropy", type=float, default=None, metavar="TAU",
                   help="train on the entropy-regularised objective J_tau (pg.train(entropy=TAU); npg takes TAU as its "
                   "tau, pmd refuses it)")
    t.add_argument("--iterations", type=int, default=None,
                   help=f"default {DEFAULT_ITERATIONS} (Box observations: 30; MountainCarContinuous-v0: 20)")
    t.add_argument("--batch", type=int, default=None,
                   help=f"episodes per iteration (default {DEFAULT_BATCH}; Box observations: CartPole-v1 20, Pendulum-v1 32, "
                   "others 16)")
    t.add_argument("--eval-every", type=int, default=None,
                   help="print and evaluate exactly every k iterations (default 25; Box observations: print every 5)")
    t.add_argument("--episodes", type=int, default=None,
                   help="episodes to run the trained policy in the real gymnasium env (default 1000; Box observations: "
                   "100; 0 skips)")
    t.add_argument("--save", default=None, metavar="PATH.npz", help="save theta (key 'theta')")
    t.add_argument("--json", default=None, metavar="PATH", help="save the training history as JSON")
    t.add_argument("--plot", default=None, metavar="PATH.png",
                   help="learning curve (tabular environments add the gap, FrozenLake and CliffWalking the policy map; needs matplotlib)")
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

    w = sub.add_parser(
        "sweep",
        help="train every configuration of a grid of train options with many seeds; a table and learning curves",
        description="Seed-by-configuration sweep of `pgfast train` runs (pg.sweep): every combination of the --grid "
        "values, each with every seed; prints the summary across seeds of each configuration (mean, standard error, "
        "interquartile mean with a bootstrap interval) and writes the rows (one per configuration, seed and iteration).",
    )
    w.add_argument("env", help="gymnasium environment id, e.g. FrozenLake-v1")
    w.add_argument("--grid", action="append", metavar="KEY=V1,V2,...",
                   help="an option of `pgfast train` and its values (repeatable: the grid is the product), e.g. "
                   "lr=0.05,0.1 or baseline=none,time; hidden and betas separate their elements by / (hidden=64/64)")
    w.add_argument("--set", action="append", metavar="KEY=VALUE", help="an option shared by every run, e.g. batch=1000")
    w.add_argument("--seeds", default="10", help="number of seeds (0, 1, ..., N-1) or a comma-separated list (default 10)")
    w.add_argument("--iterations", type=int, default=100, help="iterations of each run (default 100)")
    w.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local: processes on this machine (default); ray: tasks on a Ray cluster")
    w.add_argument("--address", default=None, help="the Ray cluster's address, e.g. auto (--backend ray)")
    w.add_argument("--workers", type=int, default=None, help="local worker processes (default: the usable CPUs)")
    w.add_argument("--runs-per-task", default="auto", help="runs packed in one task (default auto)")
    w.add_argument("--journal", default=None, metavar="PATH",
                   help="record each finished run in PATH; run the same command again to resume an interrupted sweep")
    w.add_argument("--metric", choices=("J_exact", "fraction_of_optimal", "J_estimate"), default="J_exact",
                   help="the summary's and the plot's metric (default J_exact)")
    w.add_argument("--out", default=None, metavar="PATH.csv", help="write the rows as CSV")
    w.add_argument("--json", default=None, metavar="PATH", help="write the result as JSON (pg.SweepResult.from_json)")
    w.add_argument("--plot", default=None, metavar="PATH.png", help="learning curves with IQM bands (needs matplotlib)")
    w.add_argument("--map-name", default=None, help="FrozenLake map, e.g. 4x4 or 8x8")
    w.add_argument("--slippery", action=argparse.BooleanOptionalAction, default=None,
                   help="FrozenLake/CliffWalking slipperiness (default: the environment's)")
    w.add_argument("--env-arg", action="append", metavar="KEY=VALUE",
                   help="extra keyword argument for gymnasium.make (repeatable)")
    w.set_defaults(func=_cmd_sweep)

    b = sub.add_parser("bench", help="run the microbenchmarks (sampler, exact, estimators) and print their tables")
    b.add_argument("--quick", action="store_true", help="small sizes and few repeats (a smoke run)")
    b.add_argument("--only", default=None, metavar="SUITES",
                   help="comma-separated subset of sampler,exact,estimators,mlp, or training (time to 95%% of optimal "
                   "with the train defaults; about a minute, so only when asked for), or distributed (Ray shards against the local "
                   "estimate; needs Ray), or variance (exact variance of every estimator, exact moments against sampling; "
                   "minutes), or lqr (the fused LQR gradient against NumPy, time to 99%% of the optimal J; about a minute), or optim "
                   "(10,000 exact natural-gradient and mirror-descent steps against NumPy; about a minute)")
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

