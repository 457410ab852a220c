"""Seed-by-configuration sweeps of :func:`pgfast.train`: one builder of a run from its options
(shared with ``pgfast train``), the local and Ray backends, a resumable journal, and the result
table with its summary across seeds and its learning-curve plot.

Ray is imported inside the functions that need it: ``import pgfast`` never imports Ray.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from ._estimators import ValueBaseline
from ._mdp import FiniteMDP, mdp_digest
from ._optimality import Reference
from ._policy import LinearSoftmax, SoftmaxPolicy, TabularSoftmax
from ._train import (
    DEFAULT_ADAM_BETAS,
    DEFAULT_ADVANTAGE_GAMMA,
    DEFAULT_BASELINE,
    DEFAULT_BATCH,
    DEFAULT_HIDDEN,
    DEFAULT_LR,
    DEFAULT_LR_MLP,
    DEFAULT_WEIGHTS,
    FIELDS,
    progress_display,
    train,
)
from ._validation import array_digest, as_int, available_cpus
from .distributed import connect
from .optim import Adam, GradientAscent, NaturalGradient, NaturalPolicyGradient, Optimizer, PolicyMirrorDescent

DEFAULT_ESTIMATOR = "reward-to-go" if DEFAULT_WEIGHTS == "reward_to_go" else "reinforce"
"""``pgfast train``'s and the sweeps' estimator option (the name of :func:`pgfast.train`'s default weights)."""

_CHOICES: dict[str, tuple[str, ...]] = {
    "policy": ("tabular", "linear", "mlp"),
    "activation": ("tanh", "relu"),
    "estimator": ("reinforce", "reward-to-go"),
    "baseline": ("none", "mean", "time", "value", "exact", "optimal"),
    "optimizer": ("sgd", "adam", "natural", "npg", "pmd"),
    "schedule": ("constant", "inv_sqrt", "geometric"),
    "mirror": ("kl", "euclidean"),
}
OPTIONS: dict[str, Any] = {
    "policy": "tabular", "hidden": None, "activation": "tanh", "estimator": DEFAULT_ESTIMATOR,
    "baseline": DEFAULT_BASELINE, "optimizer": "adam", "lr": None, "betas": None, "schedule": "constant",
    "damping": 1e-3, "batch": DEFAULT_BATCH, "gamma": None, "horizon": None, "eval_every": 1,
    "mirror": "kl", "advantage_gamma": None, "entropy": None,
}
"""The options of a run (those of ``pgfast train``) and their defaults (None: the default that
depends on another option, or the environment's)."""

ROW_FIELDS = FIELDS
"""The per-iteration fields of a sweep's rows, after ``config``, the grid's options and ``seed``."""

_WALL_CLOCK = ("seconds", "steps_per_s")


class RunSetup(NamedTuple):
    """What :func:`build_run` makes of a run's options: the arguments of :func:`pgfast.train`.

    Attributes
    ----------
    mdp : FiniteMDP
        The MDP to train on.
    policy : SoftmaxPolicy
        A fresh policy (an ``MLPSoftmax`` initialised from the seed).
    optimizer : pgfast.optim.Optimizer
        A fresh optimizer.
    kwargs : dict
        The other keyword arguments of :func:`pgfast.train` (``iterations``, ``batch``, ``seed``,
        ``weights``, ``baseline``, ``eval_every``, ``threads``, ``progress``, and ``entropy`` when
        the options give one).

    Examples
    --------
    >>> run = pg.build_run("FrozenLake-v1", {"lr": 0.1}, seed=0, iterations=2,
    ...                    env_kwargs={"map_name": "4x4"})
    >>> type(run.policy).__name__, run.optimizer.lr, run.kwargs["batch"]
    ('TabularSoftmax', 0.1, 4096)
    """

    mdp: FiniteMDP
    policy: SoftmaxPolicy
    optimizer: Optimizer
    kwargs: dict[str, Any]


def option_choices(name: str) -> tuple[str, ...]:
    """The values an option of :func:`build_run` takes when it is a choice, else ``()``."""
    return _CHOICES.get(name, ())


def _flag(name: str, prefix: str) -> str:
    return prefix + (name.replace("_", "-") if prefix else name)


def hidden_sizes(value: Any, name: str = "hidden") -> tuple[int, ...] | None:
    """``"64,64"`` or ``(64, 64)`` -> ``(64, 64)``; ``""`` or ``"none"`` -> ``()`` (a softmax linear
    in the state features); None stays None (the default). ``ValueError`` naming ``name`` otherwise."""
    if value is None:
        return None
    if isinstance(value, str):
        if value.strip().lower() in ("", "none"):
            return ()
        try:
            sizes = tuple(int(x) for x in value.split(","))
        except ValueError:
            raise ValueError(f"{name} expects comma-separated layer sizes such as 64,64, got {value!r}") from None
    else:
        try:
            sizes = tuple(as_int(x, name) for x in value)
        except TypeError:
            raise ValueError(f"{name} expects layer sizes such as (64, 64) or '64,64', got {value!r}") from None
    if any(h < 1 for h in sizes):
        raise ValueError(f"{name} layer sizes must be >= 1, got {value!r}")
    return sizes


def _options(options: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The options with their defaults, each checked (the message names ``prefix`` + the option)."""
    if not isinstance(options, Mapping):
        raise TypeError(f"options must be a dict of {', '.join(OPTIONS)}, got {type(options).__name__}")
    unknown = [k for k in options if k not in OPTIONS]
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r}; the options are {', '.join(OPTIONS)}")
    out = {**OPTIONS, **options}
    for key, choices in _CHOICES.items():
        if out[key] not in choices:
            raise ValueError(f"{_flag(key, prefix)} must be one of {', '.join(choices)}, got {out[key]!r}")
    out["hidden"] = hidden_sizes(out["hidden"], _flag("hidden", prefix))
    for key in ("lr", "damping", "gamma", "advantage_gamma", "entropy"):
        v = out[key]
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating))):
            raise TypeError(f"{_flag(key, prefix)} must be a number, got {type(v).__name__}")
    if out["entropy"] is not None and not (math.isfinite(out["entropy"]) and out["entropy"] >= 0):
        raise ValueError(f"{_flag('entropy', prefix)} must be a finite temperature >= 0, got {out['entropy']}")
    if out["betas"] is not None:
        betas = out["betas"]
        if isinstance(betas, str) or not hasattr(betas, "__len__") or len(betas) != 2:
            raise ValueError(f"{_flag('betas', prefix)} must be two numbers (beta1, beta2), got {betas!r}")
        out["betas"] = (float(betas[0]), float(betas[1]))
    for key in ("batch", "eval_every"):
        out[key] = as_int(out[key], _flag(key, prefix), minimum=1)
    if out["horizon"] is not None:
        out["horizon"] = as_int(out["horizon"], _flag("horizon", prefix), minimum=1)
    return out


def _make_optimizer(o: Mapping[str, Any], prefix: str, gamma: float = 1.0) -> Optimizer:
    """The optimizer of the options; ``gamma`` is the MDP's (the closed-form updates' default discount
    when it is below 1)."""
    kind = o["optimizer"]
    closed_form = kind in ("npg", "pmd")
    if closed_form and o["policy"] != "tabular":
        raise ValueError(f"{_flag('optimizer', prefix)} {kind} updates a tabular softmax policy in closed form: "
                         f"it takes {_flag('policy', prefix)} tabular, not {o['policy']}")
    defaults = DEFAULT_LR_MLP if o["policy"] == "mlp" else DEFAULT_LR
    lr = defaults[kind] if o["lr"] is None else o["lr"]
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"{_flag('lr', prefix)} must be > 0, got {lr}")
    if kind != "adam" and o["betas"] is not None:
        raise ValueError(f"{_flag('betas', prefix)} applies to {_flag('optimizer', prefix)} adam")
    schedules = {"sgd": ("constant", "inv_sqrt"), "pmd": ("constant", "geometric")}.get(kind, ("constant",))
    if o["schedule"] not in schedules:
        raise ValueError(f"{_flag('schedule', prefix)} applies to {_flag('optimizer', prefix)} "
                         f"{'sgd' if o['schedule'] == 'inv_sqrt' else 'pmd'}, not {kind} (got {o['schedule']})")
    if kind != "pmd" and o["mirror"] != "kl":
        raise ValueError(f"{_flag('mirror', prefix)} applies to {_flag('optimizer', prefix)} pmd")
    if not closed_form and o["advantage_gamma"] is not None:
        raise ValueError(f"{_flag('advantage_gamma', prefix)} applies to {_flag('optimizer', prefix)} npg and pmd")
    if kind == "adam":
        return Adam(lr, betas=DEFAULT_ADAM_BETAS if o["betas"] is None else o["betas"])
    if kind == "natural":
        return NaturalGradient(lr, damping=o["damping"])
    if closed_form:
        discount = o["advantage_gamma"]
        if discount is None:
            discount = gamma if gamma < 1.0 else DEFAULT_ADVANTAGE_GAMMA
        elif not 0.0 <= discount < 1.0:
            raise ValueError(f"{_flag('advantage_gamma', prefix)} must be in [0, 1), got {discount}")
        if kind == "pmd":
            if o["entropy"]:
                raise ValueError(f"{_flag('entropy', prefix)} does not apply to {_flag('optimizer', prefix)} pmd (policy "
                                 f"mirror descent has no entropy-regularised form; npg has)")
            return PolicyMirrorDescent(lr, mirror=o["mirror"], schedule=o["schedule"], gamma=discount)
        return NaturalPolicyGradient(lr, tau=o["entropy"] or 0.0, gamma=discount)
    return GradientAscent(lr, schedule=o["schedule"])


def _make_policy(o: Mapping[str, Any], S: int, A: int, seed: int, prefix: str) -> SoftmaxPolicy:
    if o["policy"] == "mlp":  # one-hot state features; theta initialised from the seed
        from ._mlp import MLPSoftmax

        hidden = DEFAULT_HIDDEN if o["hidden"] is None else o["hidden"]
        return MLPSoftmax(S, A, hidden=hidden, activation=o["activation"], seed=seed)
    if o["hidden"] is not None or o["activation"] != "tanh":
        raise ValueError(f"{_flag('hidden', prefix)} and {_flag('activation', prefix)} apply to {_flag('policy', prefix)} mlp")
    if o["policy"] == "tabular":
        return TabularSoftmax(S, A)
    # linear: phi(s, a) = e_a (x) [1, onehot(s)] -- a per-action bias plus per-state preferences
    phi = np.zeros((S, A, A * (S + 1)))
    for a in range(A):
        phi[:, a, a * (S + 1)] = 1.0
        phi[np.arange(S), a, a * (S + 1) + 1 + np.arange(S)] = 1.0
    return LinearSoftmax(phi)


def make_mdp(env: str | FiniteMDP, options: Mapping[str, Any] | None = None, *,
             env_kwargs: Mapping[str, Any] | None = None, prefix: str = "") -> FiniteMDP:
    """The MDP of a run: ``FiniteMDP.from_gymnasium(env, horizon, gamma, **env_kwargs)`` for a
    gymnasium id, ``env`` itself for a FiniteMDP (which has its own: the ``horizon`` and ``gamma``
    options must be None)."""
    o = _options(options or {}, prefix)
    if isinstance(env, FiniteMDP):
        if env_kwargs:
            raise ValueError("env_kwargs apply to a gymnasium environment id, not to a FiniteMDP")
        for key in ("horizon", "gamma"):
            if o[key] is not None:
                raise ValueError(f"{_flag(key, prefix)} applies to a gymnasium environment id, not to a FiniteMDP (it has its own)")
        return env
    if not isinstance(env, str):
        raise TypeError(f"env must be a gymnasium environment id (a str) or a pgfast.FiniteMDP, got {type(env).__name__}")
    gamma = 1.0 if o["gamma"] is None else o["gamma"]
    return FiniteMDP.from_gymnasium(env, horizon=o["horizon"], gamma=gamma, **dict(env_kwargs or {}))


def build_run(
    env: str | FiniteMDP,
    options: Mapping[str, Any],
    *,
    seed: int,
    iterations: int,
    env_kwargs: Mapping[str, Any] | None = None,
    threads: int | None = 1,
    mdp: FiniteMDP | None = None,
    prefix: str = "",
) -> RunSetup:
    """The MDP, policy, optimizer and :func:`pgfast.train` arguments of one run, from the options
    of ``pgfast train`` (what :func:`pgfast.sweep` runs and ``pgfast train`` runs):
    ``pg.train(run.mdp, run.policy, optimizer=run.optimizer, **run.kwargs)``.

    The options and their defaults: ``policy`` ("tabular", "linear": a per-action bias plus
    per-state preferences, "mlp": ``pg.MLPSoftmax`` on one-hot states initialised from ``seed``),
    ``hidden`` (mlp layer sizes, default (64, 64)), ``activation`` ("tanh", "relu"),
    ``estimator`` ("reward-to-go", "reinforce"), ``baseline`` ("time", "none", "mean", "value":
    a fresh ``pg.ValueBaseline``, "exact"), ``optimizer`` ("adam", "sgd", "natural"; "npg":
    ``pg.optim.NaturalPolicyGradient`` and "pmd": ``pg.optim.PolicyMirrorDescent``, closed-form
    updates of a tabular policy from each batch's sampled advantages), ``lr`` (default per
    optimizer: adam 0.2 (0.01 for mlp), sgd 1, natural 1, npg 0.1, pmd 10), ``betas`` (Adam's,
    default (0.9, 0.99)), ``schedule`` (sgd's: "constant", "inv_sqrt"; pmd's: "constant",
    "geometric"), ``damping`` (natural's, 1e-3), ``mirror`` (pmd's: "kl", "euclidean"),
    ``advantage_gamma`` (the discount of npg's and pmd's advantages, in [0, 1); default the MDP's
    gamma when below 1, else 0.99), ``entropy`` (the entropy temperature tau of
    :func:`pgfast.train`, default none; npg takes it as its own ``tau``, pmd refuses it),
    ``batch`` (4096), ``gamma`` (1), ``horizon`` (the registered one; both for gymnasium ids only:
    a FiniteMDP has its own) and ``eval_every`` (1).

    Parameters
    ----------
    env : str or FiniteMDP
        A gymnasium environment id with a tabular ``P`` (read by ``FiniteMDP.from_gymnasium``), or
        an MDP.
    options : dict
        Options of the run (the others take their defaults).
    seed : int
        The training seed (and an MLP policy's initialisation seed).
    iterations : int
        Iterations of the run.
    env_kwargs : dict, optional
        Keyword arguments of ``gymnasium.make`` (gymnasium ids only).
    threads : int or None
        :func:`pgfast.train`'s threads (default 1; the result is the same for any).
    mdp : FiniteMDP, optional
        The MDP that ``env``, ``env_kwargs`` and the options make, when already built.
    prefix : str
        Prefix of the option names in error messages (``"--"`` for the command line, which also
        writes ``eval_every`` as ``eval-every``).

    Returns
    -------
    RunSetup
        ``(mdp, policy, optimizer, kwargs)``.

    Raises
    ------
    ValueError
        An unknown option, a value out of range or not among the choices, or options that do not
        go together (``betas`` without Adam, ``hidden`` without an MLP, ...); the message names
        the option.
    TypeError
        An option of the wrong type.

    Examples
    --------
    >>> run = pg.build_run("FrozenLake-v1", {"baseline": "mean", "batch": 100}, seed=3,
    ...                    iterations=5, env_kwargs={"map_name": "4x4"})
    >>> hist = pg.train(run.mdp, run.policy, optimizer=run.optimizer, **run.kwargs)
    >>> len(hist), run.kwargs["weights"], run.kwargs["baseline"]
    (5, 'reward_to_go', 'mean')
    """
    o = _options(options, prefix)
    if mdp is None:
        mdp = make_mdp(env, o, env_kwargs=env_kwargs, prefix=prefix)
    S, A = mdp.n_states, mdp.n_actions
    policy = _make_policy(o, S, A, seed, prefix)
    optimizer = _make_optimizer(o, prefix, mdp.gamma)
    baseline: Any = None if o["baseline"] == "none" else o["baseline"]
    if baseline == "value":
        baseline = ValueBaseline(S, mdp.horizon)
    kwargs: dict[str, Any] = {
        "iterations": iterations, "batch": o["batch"], "seed": seed,
        "weights": "return" if o["estimator"] == "reinforce" else "reward_to_go",
        "baseline": baseline, "eval_every": o["eval_every"], "threads": threads, "progress": False,
    }
    if o["entropy"] is not None:  # absent otherwise: the arguments of the runs without one are unchanged
        kwargs["entropy"] = o["entropy"]
    return RunSetup(mdp, policy, optimizer, kwargs)


# -- running the runs -----------------------------------------------------------------------------


class _Plan(NamedTuple):
    """What every worker needs: the environment, the iterations, each config's full options and MDP."""

    env: str | FiniteMDP
    env_kwargs: dict[str, Any]
    iterations: int
    options: list[dict[str, Any]]
    mdps: list[FiniteMDP]


def _train_one(plan: _Plan, config: int, seed: int) -> list[dict[str, float]]:
    run = build_run(plan.env, plan.options[config], seed=seed, iterations=plan.iterations,
                    env_kwargs=plan.env_kwargs, threads=1, mdp=plan.mdps[config])
    return train(run.mdp, run.policy, optimizer=run.optimizer, **run.kwargs).records


def run_task(plan: _Plan, runs: Sequence[tuple[int, int]]) -> list[tuple[int, int, list[dict[str, float]]]]:
    """Train the runs ``(config, seed)`` of a task one after the other: ``(config, seed, records)``."""
    return [(c, s, _train_one(plan, c, s)) for c, s in runs]


_WORKER_PLAN: _Plan | None = None


def _init_worker(plan: _Plan) -> None:
    """A local worker process: Ctrl-C is the parent's to handle (it stops the pool)."""
    import signal

    global _WORKER_PLAN
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER_PLAN = plan


def _run_local_task(runs: Sequence[tuple[int, int]]) -> list[tuple[int, int, list[dict[str, float]]]]:
    assert _WORKER_PLAN is not None
    return run_task(_WORKER_PLAN, runs)


def _chunks(runs: list[tuple[int, int]], size: int) -> list[list[tuple[int, int]]]:
    return [runs[i:i + size] for i in range(0, len(runs), size)]


_Done = Callable[[list[tuple[int, int, list[dict[str, float]]]]], None]


def _local(plan: _Plan, runs: list[tuple[int, int]], workers: int, per_task: int | None, done: _Done) -> None:
    if workers == 1:  # in this process, one run after the other
        for c, s in runs:
            done([(c, s, _train_one(plan, c, s))])
        return
    import multiprocessing  # here: `import pgfast` does not load the process machinery
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    per_task = per_task or 1
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")  # never fork: threads
    if ctx.get_start_method() == "forkserver":  # the server imports pgfast once; each worker is a fork of it
        ctx.set_forkserver_preload(["__main__", __name__])  # (the default preloads __main__ only)
    ex = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(plan,))
    try:
        pending: set[Future[Any]] = {ex.submit(_run_local_task, chunk) for chunk in _chunks(runs, per_task)}
        while pending:
            finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for f in finished:
                done(f.result())
    except BaseException:
        for f in pending:
            f.cancel()
        terminate = getattr(ex, "terminate_workers", None)  # Python 3.14+
        if terminate is not None:
            terminate()
        for p in list((getattr(ex, "_processes", None) or {}).values()):  # stop the runs under way
            p.terminate()
        ex.shutdown(wait=True, cancel_futures=True)
        raise
    ex.shutdown(wait=True)


def _ray(plan: _Plan, runs: list[tuple[int, int]], address: str | None, per_task: int | None, done: _Done,
         ) -> None:
    ray = connect(address)
    if per_task is None:  # "auto": one run here, timed; tasks of about _TASK_SECONDS, 2+ per CPU
        t0 = time.perf_counter()
        c, s = runs[0]
        done([(c, s, _train_one(plan, c, s))])
        runs = runs[1:]
        if not runs:
            return
        per_run = max(time.perf_counter() - t0, 1e-6)
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        per_task = max(1, min(math.ceil(_TASK_SECONDS / per_run), math.ceil(len(runs) / (2 * cpus))))
    remote = ray.remote(num_cpus=1, max_retries=3)(run_task)
    plan_ref = ray.put(plan)  # the MDPs travel once
    pending = [remote.remote(plan_ref, chunk) for chunk in _chunks(runs, per_task)]
    try:
        while pending:
            finished, pending = ray.wait(pending, num_returns=1, timeout=0.5)
            for ref in finished:
                done(ray.get(ref))
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise


_TASK_SECONDS = 0.5
"""What ``runs_per_task="auto"`` aims at for a Ray task (a task's dispatch costs about a millisecond)."""


# -- the journal ----------------------------------------------------------------------------------


def _jsonable(x: Any) -> Any:
    """``x`` as JSON would give it back (tuples become lists, arrays by digest, others by repr)."""
    def default(v: Any) -> Any:
        if isinstance(v, np.ndarray):
            return array_digest(v)
        if isinstance(v, (np.integer, np.floating)):
            return v.item()
        return repr(v)

    return json.loads(json.dumps(x, default=default))


class _Journal:
    """A JSON-lines file: a header line with the sweep's description, then one line per finished run."""

    def __init__(self, path: str | os.PathLike[str], header: dict[str, Any]) -> None:
        self.path = Path(path)
        self.done: dict[tuple[int, int], list[dict[str, float]]] = {}
        if not self.path.parent.is_dir():
            raise ValueError(f"journal {path}: the directory {self.path.parent} does not exist")
        good = 0  # bytes of the complete lines
        if self.path.exists() and self.path.stat().st_size > 0:
            data = self.path.read_bytes()
            lines = data.split(b"\n")
            offset = 0
            for i, line in enumerate(lines):
                last = i == len(lines) - 1
                if last and not line:
                    break
                try:
                    doc = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    if last:  # a torn last line (a crash mid-write): ignored, overwritten below
                        break
                    raise ValueError(f"journal {path}: line {i + 1} is not JSON (not a pgfast sweep journal?)") from None
                if last:  # complete JSON without its newline: still the torn write of a line
                    break
                if i == 0:
                    if not isinstance(doc, dict) or doc.get("pgfast_sweep") != 1:
                        raise ValueError(f"journal {path}: not a pgfast sweep journal")
                    if doc.get("sweep") != header["sweep"]:
                        diff = sorted(k for k in set(header["sweep"]) | set(doc.get("sweep") or {})
                                      if (doc.get("sweep") or {}).get(k) != header["sweep"].get(k))
                        raise ValueError(f"journal {path} belongs to a different sweep (its {', '.join(diff)} differ); "
                                         "give another journal path, or delete this one to start again")
                else:
                    self.done[(int(doc["config"]), int(doc["seed"]))] = [
                        {k: (math.nan if r[k] is None else float(r[k])) for k in FIELDS} for r in doc["records"]]
                offset += len(line) + 1
                good = offset
        with open(self.path, "ab") as fh:  # drop a torn last line
            fh.truncate(good)
        self.fh = open(self.path, "ab")  # noqa: SIM115 - closed by close()
        if good == 0:
            self._write(header)

    def _write(self, doc: dict[str, Any]) -> None:
        self.fh.write(json.dumps(doc).encode() + b"\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def add(self, config: int, seed: int, records: list[dict[str, float]]) -> None:
        self._write({"config": config, "seed": seed, "records": records})

    def close(self) -> None:
        self.fh.close()


# -- the sweep ------------------------------------------------------------------------------------


def _as_seeds(seeds: Any) -> list[int]:
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        n = as_int(seeds, "seeds", minimum=1)
        return list(range(n))
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        raise TypeError(f"seeds must be a number of seeds (0, 1, ..., n - 1) or a list of int seeds, got {type(seeds).__name__}")
    out = [as_int(s, "seeds", minimum=0) for s in seeds]
    if not out:
        raise ValueError("seeds must not be empty")
    if len(set(out)) != len(out):
        raise ValueError(f"seeds must be distinct, got {out}")
    return out


def _as_grid(grid: Any) -> dict[str, list[Any]]:
    if not isinstance(grid, Mapping):
        raise TypeError(f"grid must be a dict option -> list of values, got {type(grid).__name__}")
    out: dict[str, list[Any]] = {}
    for key, values in grid.items():
        if key not in OPTIONS:
            raise ValueError(f"unknown grid option {key!r}; the options are {', '.join(OPTIONS)}")
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise TypeError(f"grid[{key!r}] must be a list of values, got {type(values).__name__}")
        vals = [hidden_sizes(v, f"grid[{key!r}]") if key == "hidden" else v for v in values]
        if not vals:
            raise ValueError(f"grid[{key!r}] is empty")
        out[key] = vals
    return out


def sweep(
    env: str | FiniteMDP,
    grid: Mapping[str, Sequence[Any]],
    seeds: int | Sequence[int],
    *,
    iterations: int,
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    runs_per_task: int | str = "auto",
    journal: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    **fixed: Any,
) -> SweepResult:
    """Train every configuration of ``grid`` (the product of its option -> values lists) with
    every seed, each run a :func:`pgfast.train` run built by :func:`pgfast.build_run` with
    ``threads=1``, and return one row per (configuration, seed, iteration).

    A row equals the History record of ``pg.train`` run directly with that configuration and
    seed, bit for bit (except the wall-clock fields ``seconds`` and ``steps_per_s``), for either
    backend, any number of workers and any packing of runs into tasks. The exact J is recorded
    every ``eval_every`` iterations (an option, default 1: every iteration; the first and the last
    always) when the MDP is small enough (see :func:`pgfast.train`), with its fraction of the
    optimal J (``J / J*``, or ``J* / J`` for costs; NaN where not evaluated).

    Backends: ``"local"`` runs the runs in ``workers`` processes of this machine (default: one per
    usable CPU; started with the forkserver or spawn method, never fork; ``workers=1`` runs them
    in this process). ``"ray"`` runs them as Ray tasks of one CPU each on the cluster at
    ``address`` (``"auto"``, ``"ray://host:10001"``, ``"local"``: a new Ray on this machine; None:
    Ray's default, the Ray running on this machine or else a new one; a Ray already initialised in
    this process is used as it is; one started here is left running for the next sweep), the MDPs put in the object
    store once, ``runs_per_task`` runs per task (``"auto"``: one run is timed in this process and
    a task gets about half a second of runs, with at least two tasks per CPU; the local backend's
    ``"auto"`` is one run per task). A progress bar counts the finished runs. Ctrl-C cancels the
    outstanding runs, stops the workers and raises ``KeyboardInterrupt``.

    Resume: with ``journal=PATH`` every finished run is appended to ``PATH`` (JSON lines, flushed
    and synced to disk); a second call with the same arguments and journal runs only the runs the
    journal lacks (a torn last line, from a crash mid-write, is ignored) and returns the whole
    result, equal to that of an uninterrupted sweep.

    Parameters
    ----------
    env : str or FiniteMDP
        A gymnasium environment id (with ``env_kwargs``) or an MDP.
    grid : dict
        Option -> list of values (the options of :func:`pgfast.build_run`); ``{}`` is one
        configuration.
    seeds : int or list of int
        The seeds (an int ``n``: 0, 1, ..., n - 1).
    iterations : int
        Iterations of each run.
    backend : {"local", "ray"}
        Where the runs run.
    workers : int, optional
        Local worker processes (default: the usable CPUs, at most the number of tasks).
    address : str, optional
        The Ray cluster (``backend="ray"``).
    runs_per_task : int or "auto"
        Runs packed in one task.
    journal : str or os.PathLike, optional
        The file that records finished runs and makes a sweep resumable.
    progress : bool or None
        The progress bar (None: on a terminal or in a notebook, as :func:`pgfast.train`).
    env_kwargs : dict, optional
        Keyword arguments of ``gymnasium.make``.
    **fixed
        Options shared by every configuration (e.g. ``batch=1000``).

    Returns
    -------
    SweepResult

    Raises
    ------
    ValueError
        An unknown option or backend, a bad value (named), an option both in ``grid`` and
        ``fixed``, or a journal written by a different sweep.
    TypeError
        Arguments of the wrong type.
    ImportError
        ``backend="ray"`` without Ray installed.
    KeyboardInterrupt
        Ctrl-C (the journal keeps the finished runs).

    Examples
    --------
    >>> res = pg.sweep("FrozenLake-v1", {"lr": [0.1, 0.3]}, seeds=3, iterations=4, batch=200,
    ...                env_kwargs={"map_name": "4x4"}, workers=1, progress=False)
    >>> len(res.rows), res.configs
    (24, [{'lr': 0.1}, {'lr': 0.3}])
    >>> [round(r["mean"], 3) for r in res.summary("J_exact")]
    [0.02, 0.031]
    """
    if backend not in ("local", "ray"):
        raise ValueError(f"backend must be 'local' or 'ray', got {backend!r}")
    grid_ = _as_grid(grid)
    both = sorted(set(grid_) & set(fixed))
    if both:
        raise ValueError(f"option {both[0]!r} is both in the grid and fixed")
    _options(fixed, "")  # unknown fixed options, before anything else
    seed_list = _as_seeds(seeds)
    iters = as_int(iterations, "iterations", minimum=1)
    if workers is not None:
        workers = as_int(workers, "workers", minimum=1)
    per_task: int | None
    if runs_per_task == "auto":
        per_task = None
    else:
        if isinstance(runs_per_task, str):
            raise ValueError(f"runs_per_task must be 'auto' or an int >= 1, got {runs_per_task!r}")
        per_task = as_int(runs_per_task, "runs_per_task", minimum=1)
    if address is not None and backend != "ray":
        raise ValueError('address applies to backend="ray"')
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"progress must be None, True or False, got {type(progress).__name__}")
    kw = dict(env_kwargs or {})
    keys = list(grid_)
    configs = [dict(zip(keys, values, strict=True)) for values in itertools.product(*grid_.values())]
    options = [{**fixed, **c} for c in configs]
    # the MDP of each configuration (one per distinct horizon and gamma) and its reference J
    mdp_of: dict[tuple[Any, Any], tuple[FiniteMDP, Reference]] = {}
    mdps: list[FiniteMDP] = []
    refs: list[Reference] = []
    for o in options:
        full = _options(o, "")
        key = (full["horizon"], full["gamma"])
        if key not in mdp_of:
            m = make_mdp(env, full, env_kwargs=kw)
            mdp_of[key] = (m, Reference.of(m))
        m, ref = mdp_of[key]
        build_run(env, o, seed=seed_list[0], iterations=iters, env_kwargs=kw, mdp=m)  # checks the options now
        mdps.append(m)
        refs.append(ref)
    plan = _Plan(env, kw, iters, options, mdps)
    all_runs = [(c, s) for c in range(len(configs)) for s in seed_list]
    header = {"pgfast_sweep": 1, "sweep": _jsonable({
        "env": env if isinstance(env, str) else mdp_digest(env), "env_kwargs": kw, "grid": grid_, "fixed": fixed,
        "seeds": seed_list, "iterations": iters})}
    book = _Journal(journal, header) if journal is not None else None
    results: dict[tuple[int, int], list[dict[str, float]]] = {}
    if book is not None:
        results.update({k: v for k, v in book.done.items() if k in set(all_runs)})
    todo = [r for r in all_runs if r not in results]
    # the bar starts at the runs the journal holds and counts the runs that finish here
    bar = progress_display(None if progress is None else bool(progress), len(all_runs), len(results),
                           desc="pgfast.sweep", unit="run")
    count = 0

    def done(batch: list[tuple[int, int, list[dict[str, float]]]]) -> None:
        nonlocal count
        for c, s, records in batch:
            results[(c, s)] = records
            if book is not None:
                book.add(c, s, records)
            count += 1
            bar.update(count, records[-1])

    try:
        if todo:
            if backend == "ray":
                _ray(plan, todo, address, per_task, done)
            else:
                n_tasks = math.ceil(len(todo) / (per_task or 1))
                _local(plan, todo, min(workers or available_cpus(), n_tasks), per_task, done)
    finally:
        bar.close()
        if book is not None:
            book.close()
    rows: list[dict[str, Any]] = []
    for c, s in all_runs:
        for r in results[(c, s)]:
            rows.append({"config": c, **configs[c], "seed": s, **r})
    meta = {"env": env if isinstance(env, str) else "FiniteMDP", "env_kwargs": _jsonable(kw), "fixed": _jsonable(fixed),
            "grid": keys, "seeds": seed_list, "iterations": iters,
            "optimal_J": [r.optimal_J for r in refs], "uniform_J": [r.uniform_J for r in refs]}
    return SweepResult(rows, configs, meta)


# -- Ray Tune -------------------------------------------------------------------------------------


def tune_trainable(
    env: str | FiniteMDP,
    *,
    iterations: int,
    env_kwargs: Mapping[str, Any] | None = None,
    **fixed: Any,
) -> Callable[[dict[str, Any]], None]:
    """A Ray Tune function trainable that runs :func:`pgfast.train` and reports every iteration.

    The trial's ``config`` holds ``seed`` (an int, default 0: make it a grid axis,
    ``tune.grid_search([0, 1, ...])``) and options of :func:`pgfast.build_run`; ``fixed`` holds
    the options shared by every trial. Each iteration's History record (``J_exact``,
    ``fraction_of_optimal`` and the other exact columns included) goes to ``ray.tune.report`` from :func:`pgfast.train`'s callback, so a
    scheduler such as ASHA can stop a trial between two iterations; the reported metrics equal a
    direct ``pg.train`` run with that configuration and seed, bit for bit (wall-clock fields
    aside). The run uses one thread (give each trial one CPU); the trainable keeps no state
    between trials, so ``TuneConfig(reuse_actors=True)`` is safe.

    Parameters
    ----------
    env : str or FiniteMDP
        A gymnasium environment id (with ``env_kwargs``) or an MDP.
    iterations : int
        Iterations of each trial (a scheduler may stop it earlier).
    env_kwargs : dict, optional
        Keyword arguments of ``gymnasium.make``.
    **fixed
        Options shared by every trial.

    Returns
    -------
    callable
        ``trainable(config)``, for ``ray.tune.Tuner``.

    Raises
    ------
    ValueError
        An unknown option or a bad value in ``fixed`` (checked here) or in a trial's config.

    Examples
    --------
    >>> trainable = pg.tune_trainable("FrozenLake-v1", iterations=20, env_kwargs={"map_name": "4x4"},
    ...                               batch=1000)
    >>> callable(trainable)
    True

    With Ray Tune installed (``pip install "pgfast[tune]"``)::

        from ray import tune
        tuner = tune.Tuner(
            trainable,
            param_space={"lr": tune.grid_search([0.05, 0.1, 0.2]), "seed": tune.grid_search(list(range(10)))},
            tune_config=tune.TuneConfig(metric="J_exact", mode="max", reuse_actors=True,
                                        scheduler=tune.schedulers.ASHAScheduler(max_t=20)),
        )
        best = tuner.fit().get_best_result()

    ``Tuner.fit`` (Ray 2.58-2.60) leaves Tune's own SIGINT handler installed when it returns, and
    that handler only flags a stop, so a later Ctrl-C no longer interrupts other calls; save the
    handler with ``signal.getsignal(signal.SIGINT)`` before the fit and restore it after.
    """
    iters = as_int(iterations, "iterations", minimum=1)
    _options(fixed, "")
    kw = dict(env_kwargs or {})
    mdp = make_mdp(env, fixed, env_kwargs=kw) if not isinstance(env, FiniteMDP) else env

    def trainable(config: dict[str, Any]) -> None:
        from ray import tune

        options = {k: v for k, v in config.items() if k != "seed"}
        seed = as_int(config.get("seed", 0), "config['seed']", minimum=0)
        both = sorted(set(options) & set(fixed))
        if both:
            raise ValueError(f"option {both[0]!r} is both in the trial's config and fixed")
        o = {**fixed, **options}
        same_mdp = all(_options(o, "")[k] == _options(fixed, "")[k] for k in ("horizon", "gamma"))
        run = build_run(env, o, seed=seed, iterations=iters, env_kwargs=kw, threads=1, mdp=mdp if same_mdp else None)
        def report(it: int, rec: dict[str, float]) -> None:
            tune.report(dict(rec))

        train(run.mdp, run.policy, optimizer=run.optimizer, **run.kwargs, callback=report)

    return trainable


# -- the result -----------------------------------------------------------------------------------

BOOTSTRAP_RESAMPLES = 2000
"""Bootstrap resamples of :meth:`SweepResult.summary`'s interval."""
BOOTSTRAP_LEVEL = 0.95
"""Confidence level of the bootstrap intervals."""


def iqm(x: NDArray[np.float64], axis: int = -1) -> NDArray[np.float64]:
    """Interquartile mean along ``axis``: the mean of the values left after sorting and dropping
    ``floor(n / 4)`` at each end (``scipy.stats.trim_mean(x, 0.25)``)."""
    xs = np.sort(np.asarray(x, dtype=np.float64), axis=axis)
    n = xs.shape[axis]
    k = n // 4
    out: NDArray[np.float64] = np.take(xs, np.arange(k, n - k), axis=axis).mean(axis=axis)
    return out


def _bootstrap_iqm(x: NDArray[np.float64], resamples: int, level: float, seed: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Percentile bootstrap interval of the IQM of each column of ``x`` (seeds x points): seeds
    resampled with replacement ``resamples`` times (the same draws for every column)."""
    n, T = x.shape
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    low, high = np.empty(T), np.empty(T)
    step = max(1, 4_000_000 // max(resamples * n, 1))  # columns at a time, bounding the memory
    q = [(1 - level) / 2, (1 + level) / 2]
    for j in range(0, T, step):
        stats = iqm(x[:, j:j + step][idx], axis=1)  # (resamples, columns)
        low[j:j + step], high[j:j + step] = np.quantile(stats, q, axis=0)
    return low, high


def _atomic_write(path: str | os.PathLike[str], write: Callable[[Any], None], newline: str | None = None) -> None:
    """Write a text file through a temporary file in its directory, renamed over ``path``."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline=newline) as fh:
            write(fh)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class SweepResult:
    """The runs of :func:`pgfast.sweep`: one row per (configuration, seed, iteration).

    Parameters
    ----------
    rows : list of dict
        The rows: ``config`` (the configuration's index), the grid's options, ``seed``, then
        the fields of a :class:`pgfast.History` record (``iteration``, ``J_estimate``, ``J_exact``,
        ``fraction_of_optimal`` and the other exact columns: see :class:`pgfast.History`).
    configs : list of dict
        The grid's configurations (option -> value), in the order of their index.
    meta : dict, optional
        What describes the sweep (environment, fixed options, seeds, iterations, the optimal and
        uniform J of each configuration's MDP).

    Attributes
    ----------
    rows : list of dict
        The rows, by configuration, then seed, then iteration.
    configs : list of dict
        The configurations.
    meta : dict
        The sweep's description.

    Examples
    --------
    >>> res = pg.SweepResult([{"config": 0, "lr": 0.1, "seed": 0, "iteration": 1.0, "J_exact": 0.5}],
    ...                      [{"lr": 0.1}])
    >>> len(res), res.column("J_exact")
    (1, array([0.5]))
    """

    def __init__(self, rows: list[dict[str, Any]], configs: list[dict[str, Any]], meta: dict[str, Any] | None = None) -> None:
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise TypeError("rows must be a list of dicts")
        if not isinstance(configs, list) or not all(isinstance(c, dict) for c in configs):
            raise TypeError("configs must be a list of dicts")
        self.rows: list[dict[str, Any]] = rows
        self.configs: list[dict[str, Any]] = configs
        self.meta: dict[str, Any] = dict(meta or {})

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        seeds = len({r["seed"] for r in self.rows})
        return f"SweepResult({len(self.configs)} configs x {seeds} seeds, {len(self.rows)} rows)"

    @property
    def columns(self) -> list[str]:
        """The column names, in order (those of the first row)."""
        return list(self.rows[0]) if self.rows else ["config", *(self.configs[0] if self.configs else {}), "seed", *ROW_FIELDS]

    def column(self, name: str) -> NDArray[Any]:
        """One column as a NumPy array.

        Parameters
        ----------
        name : str
            A column name (:attr:`columns`).

        Returns
        -------
        numpy.ndarray
            float64 for the numbers, object for the other values.

        Raises
        ------
        KeyError
            No such column.

        Examples
        --------
        >>> res = pg.SweepResult([{"config": 0, "seed": 0, "iteration": 1.0, "J_exact": 0.5}], [{}])
        >>> res.column("seed")
        array([0.])
        """
        if name not in self.columns:
            raise KeyError(f"no column {name!r}; the columns are {self.columns}")
        values = [r[name] for r in self.rows]
        try:
            return np.array(values, dtype=np.float64)
        except (TypeError, ValueError):
            out = np.empty(len(values), dtype=object)
            out[:] = values
            return out

    def _curves(self, metric: str) -> list[tuple[NDArray[np.float64], NDArray[np.float64]]]:
        """Per configuration: (iterations, values of shape (seeds, iterations))."""
        if metric not in ROW_FIELDS:
            raise ValueError(f"metric must be one of {', '.join(ROW_FIELDS)}, got {metric!r}")
        out = []
        for c in range(len(self.configs)):
            by_seed: dict[Any, list[tuple[float, float]]] = {}
            for r in self.rows:
                if r["config"] == c:
                    by_seed.setdefault(r["seed"], []).append((float(r["iteration"]), float(r[metric])))
            if not by_seed:
                out.append((np.zeros(0), np.zeros((0, 0))))
                continue
            its = np.array([i for i, _ in next(iter(by_seed.values()))])
            if any(len(v) != its.size for v in by_seed.values()):
                raise ValueError(f"the runs of configuration {c} have different numbers of iterations")
            out.append((its, np.array([[v for _, v in runs] for runs in by_seed.values()])))
        return out

    def summary(self, metric: str = "J_exact", iteration: int | None = None, *, resamples: int = BOOTSTRAP_RESAMPLES,
                level: float = BOOTSTRAP_LEVEL, seed: int = 0) -> list[dict[str, Any]]:
        """Each configuration's ``metric`` at one iteration, across its seeds: the mean, its
        standard error (``std(ddof=1) / sqrt(n)``), the interquartile mean (the mean of the middle
        half: ``floor(n / 4)`` values dropped at each end, as ``scipy.stats.trim_mean(x, 0.25)``)
        and a percentile bootstrap interval of the IQM (the seeds resampled with replacement
        ``resamples`` times with ``numpy.random.default_rng(seed)``, the same draws for every
        configuration; the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the resampled
        IQMs, ``numpy.quantile``'s linear interpolation).

        Parameters
        ----------
        metric : str
            A per-iteration field: ``"J_exact"`` (default), ``"fraction_of_optimal"``,
            ``"J_estimate"``, ...
        iteration : int, optional
            The iteration (default: the last one, whose J is always evaluated).
        resamples : int
            Bootstrap resamples (default 2000).
        level : float
            Confidence level of the interval (default 0.95).
        seed : int
            Seed of the bootstrap draws (default 0).

        Returns
        -------
        list of dict
            One dict per configuration: ``config``, the configuration's options, ``n`` (seeds),
            ``mean``, ``stderr``, ``iqm``, ``iqm_low``, ``iqm_high``.

        Raises
        ------
        ValueError
            An unknown metric or an iteration the runs do not have.

        Examples
        --------
        >>> rows = [{"config": 0, "seed": s, "iteration": 1.0, "J_exact": float(s)} for s in range(8)]
        >>> res = pg.SweepResult(rows, [{}])
        >>> s = res.summary("J_exact")[0]
        >>> s["n"], s["mean"], s["iqm"], s["iqm_low"] <= s["iqm"] <= s["iqm_high"]
        (8, 3.5, 3.5, True)
        """
        resamples = as_int(resamples, "resamples", minimum=1)
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level}")
        out = []
        for c, (its, X) in enumerate(self._curves(metric)):
            if its.size == 0:
                continue
            j = its.size - 1 if iteration is None else np.flatnonzero(its == iteration)
            if np.size(j) == 0:
                raise ValueError(f"iteration must be one of the runs' iterations 1..{int(its.max())}, got {iteration}")
            x = X[:, int(np.ravel(j)[0])]
            n = x.size
            low, high = _bootstrap_iqm(x[:, None], resamples, level, seed)
            out.append({"config": c, **self.configs[c], "n": n, "mean": float(x.mean()),
                        "stderr": float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
                        "iqm": float(iqm(x)), "iqm_low": float(low[0]), "iqm_high": float(high[0])})
        return out

    def plot(self, metric: str = "J_exact", ax: Any = None, band: str = "iqm", *, resamples: int = 1000,
             level: float = BOOTSTRAP_LEVEL, seed: int = 0) -> Any:
        """Learning curves: per configuration, ``metric`` against the iteration across seeds, with
        a confidence band: the IQM and its bootstrap interval (``band="iqm"``, as
        :meth:`summary` with ``resamples`` draws per iteration) or the mean and one standard error
        either side (``band="stderr"``). Iterations without a value (J not evaluated) are left out.

        Parameters
        ----------
        metric : str
            A per-iteration field (default ``"J_exact"``).
        ax : matplotlib.axes.Axes, optional
            Where to draw (default: a new figure's axes).
        band : {"iqm", "stderr"}
            The curve and its band.
        resamples : int
            Bootstrap resamples per iteration (default 1000).
        level : float
            Confidence level of the bootstrap band (default 0.95).
        seed : int
            Seed of the bootstrap draws.

        Returns
        -------
        matplotlib.axes.Axes
            The axes drawn on.

        Raises
        ------
        ImportError
            matplotlib is not installed.
        ValueError
            An unknown metric or band.

        Examples
        --------
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> rows = [{"config": 0, "seed": s, "iteration": float(i), "J_exact": 0.1 * i + 0.01 * s}
        ...         for s in range(4) for i in (1, 2, 3)]
        >>> ax = pg.SweepResult(rows, [{"lr": 0.1}]).plot("J_exact")
        >>> ax.get_xlabel(), len(ax.get_lines())
        ('iteration', 1)
        """
        if band not in ("iqm", "stderr"):
            raise ValueError(f"band must be 'iqm' or 'stderr', got {band!r}")
        curves = self._curves(metric)
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("SweepResult.plot needs matplotlib: pip install matplotlib (or pgfast[plot])") from None
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        for c, (its, X) in enumerate(curves):
            keep = ~np.isnan(X).any(axis=0) if X.size else np.zeros(0, dtype=bool)
            its, X = its[keep], X[:, keep]
            if its.size == 0:
                continue
            label = ", ".join(f"{k}={v}" for k, v in self.configs[c].items()) or "runs"
            if band == "iqm":
                center = iqm(X, axis=0)
                low, high = _bootstrap_iqm(X, resamples, level, seed)
            else:
                center = X.mean(axis=0)
                se = X.std(axis=0, ddof=1) / math.sqrt(X.shape[0]) if X.shape[0] > 1 else np.zeros(its.size)
                low, high = center - se, center + se
            (line,) = ax.plot(its, center, lw=1.5, label=label)
            ax.fill_between(its, low, high, color=line.get_color(), alpha=0.2, lw=0)
        ax.set_xlabel("iteration")
        ax.set_ylabel(metric + (" (IQM)" if band == "iqm" else " (mean)"))
        ax.legend(fontsize="small")
        return ax

    def to_pandas(self) -> Any:
        """The rows as a ``pandas.DataFrame``.

        Returns
        -------
        pandas.DataFrame
            One row per (configuration, seed, iteration), the columns of :attr:`columns`.

        Raises
        ------
        ImportError
            pandas is not installed (``pip install pandas`` or ``pgfast[pandas]``).

        Examples
        --------
        >>> res = pg.SweepResult([{"config": 0, "seed": 0, "iteration": 1.0, "J_exact": 0.5}], [{}])
        >>> res.to_pandas().shape
        (1, 4)
        """
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("SweepResult.to_pandas needs pandas: pip install pandas (or pgfast[pandas])") from None
        return pd.DataFrame(self.rows, columns=self.columns)

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Write the rows to ``path`` as CSV (a header of :attr:`columns`; floats written exactly,
        NaN as ``nan``), through a temporary file renamed over ``path``.

        Parameters
        ----------
        path : str or os.PathLike
            The file to write (replaced if it exists).

        Raises
        ------
        OSError
            The file cannot be written.

        Examples
        --------
        >>> res = pg.SweepResult([{"config": 0, "seed": 0, "iteration": 1.0, "J_exact": 0.5}], [{}])
        >>> res.to_csv("sweep.csv")
        >>> from pathlib import Path
        >>> print(Path("sweep.csv").read_text(), end="")
        config,seed,iteration,J_exact
        0,0,1.0,0.5
        """
        cols = self.columns

        def write(fh: Any) -> None:
            w = csv.writer(fh)
            w.writerow(cols)
            for r in self.rows:
                w.writerow([r.get(k) for k in cols])

        _atomic_write(path, write, newline="")

    def to_json(self, path: str | os.PathLike[str]) -> None:
        """Write the result to ``path`` as JSON (the rows by column, the configurations and the
        description; NaN as null), through a temporary file renamed over ``path``. Read it back
        with :meth:`from_json`.

        Parameters
        ----------
        path : str or os.PathLike
            The file to write (replaced if it exists).

        Raises
        ------
        OSError
            The file cannot be written.

        Examples
        --------
        >>> res = pg.SweepResult([{"config": 0, "seed": 0, "iteration": 1.0, "J_exact": np.nan}], [{}])
        >>> res.to_json("sweep.json")
        >>> pg.SweepResult.from_json("sweep.json").rows
        [{'config': 0, 'seed': 0, 'iteration': 1.0, 'J_exact': nan}]
        """
        cols = self.columns

        def cell(v: Any) -> Any:
            return None if isinstance(v, float) and math.isnan(v) else v

        doc = {"pgfast_sweep_result": 1, "meta": _jsonable(self.meta), "configs": _jsonable(self.configs),
               "columns": {k: [cell(r.get(k)) for r in self.rows] for k in cols}}
        _atomic_write(path, lambda fh: json.dump(_jsonable(doc), fh))

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> SweepResult:
        """Read a result written by :meth:`to_json` (null becomes NaN in the float columns; lists
        in the configurations become tuples, as ``hidden`` and ``betas`` were).

        Parameters
        ----------
        path : str or os.PathLike
            The JSON file.

        Returns
        -------
        SweepResult

        Raises
        ------
        ValueError
            The file is not a saved SweepResult.
        OSError
            The file cannot be read.

        Examples
        --------
        >>> res = pg.SweepResult([{"config": 0, "seed": 0, "iteration": 1.0, "J_exact": 0.5}], [{}])
        >>> res.to_json("sweep.json")
        >>> pg.SweepResult.from_json("sweep.json").column("J_exact")
        array([0.5])
        """
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not a saved SweepResult: the file is not JSON text ({exc})") from None
        if not isinstance(doc, dict) or doc.get("pgfast_sweep_result") != 1 or not isinstance(doc.get("columns"), dict):
            raise ValueError(f"{path}: not a saved SweepResult")
        cols: dict[str, list[Any]] = doc["columns"]
        n = len(next(iter(cols.values()), []))
        floats = set(ROW_FIELDS)

        def cell(k: str, v: Any) -> Any:
            if v is None and k in floats:
                return math.nan
            return tuple(v) if isinstance(v, list) else v

        rows = [{k: cell(k, cols[k][i]) for k in cols} for i in range(n)]
        configs = [{k: tuple(v) if isinstance(v, list) else v for k, v in c.items()} for c in doc.get("configs", [])]
        return cls(rows, configs, doc.get("meta"))
