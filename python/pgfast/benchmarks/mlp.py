"""MLP policy benchmark: a policy-gradient iteration with a neural softmax policy,
pgfast's fused estimator against NumPy doing the same work, same run.

    python -m pgfast.benchmarks.mlp [--quick] [--json PATH]      # installed package
    python bench/bench_mlp.py [--quick]                     # source tree: saves bench/results/mlp.json

Policy: ``pg.MLPSoftmax`` with hidden layers (64, 64), tanh, Glorot initialisation (seed 0).
Workloads (N = 16384 episodes; ``--quick``: 2048):

- ``frozenlake``: FrozenLake 8x8 slippery (``benchmarks.frozenlake``, H = 200) with d = 7
  coordinate features per state: row and column in [0, 1], hole, and hole left / down / right /
  up (off the grid counts as a hole);
- ``random``: the sampler benchmark's random MDP (S = 500, A = 8, 10 successors, H = 100) with
  d = 16 state features N(0, 1).

One iteration: the policy table from theta (forward pass over the S states), N sampled episodes,
reward-to-go weights without baseline, the gradient (1/N) sum_i sum_t G_{i,t} grad log pi(a_t|s_t)
and the mean return. Timed per case, interleaved round-robin after warm-up calls, best of the
repeats (medians in the JSON):

- ``numpy``: one thread. Forward pass in NumPy, ``reference.sample_numpy`` (its fastest method;
  MDP-level ``SamplerTables`` built before timing), then the estimator with the per-state trick
  pgfast uses: the weights summed per (s, a) (one ``bincount``), the logit-gradient table
  g_z(s, a) = c(s, a) - C(s) pi(a|s), and one manual backward pass through the network;
- ``pg_1t`` / ``pg_2t``: ``pg.policy_gradient(pi, mdp=mdp, n=N, seed=, threads=1 | 2,
  stderr=False)`` with the policy's cached forward pass cleared before every call (so the C++
  forward pass is timed too);
- full runs only, for information: ``numpy_per_step``, what a direct port of autograd-style code
  does -- the forward pass and the manual backward pass over every visited step (in chunks of
  65536 steps), on the same sampled batch (timed once, sampling excluded).

- ``torch`` (only when PyTorch is importable; it is never a dependency of pgfast): one thread
  (``torch.set_num_threads(1)``), what PyTorch code does naturally: the forward pass with autograd
  (float64), the probabilities handed to ``reference.sample_numpy`` (PyTorch has no finite-MDP
  sampler), the per-step weights gamma^t G_t in NumPy, and the loss
  (1/N) sum_steps w_t log pi(a_t|s_t) -- a gather of every visited step from the log-softmax
  table -- differentiated by ``torch.autograd.grad``.

Checks (the run fails otherwise): the NumPy gradient on a pgfast batch equals
``pg.policy_gradient(pi, traj, stderr=False)`` on it (relative 1e-9, max-norm), and so do the
per-step NumPy gradient and the PyTorch gradient; the fused estimator equals the stored one for the
same seed.

Target (one thread): pg_1t >= 3x numpy at N = 16384 on both workloads; the PyTorch ratio is
reported beside it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

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

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int32]

HIDDEN = (64, 64)
N_FULL, N_QUICK = 16384, 2048
TARGET = 3.0
EXACT_RTOL = 1e-9
WARMUP = {False: 2, True: 1}
REPEATS = {False: 9, True: 2}
CHUNK = 65536
DEFAULT_JSON: Path | None = None


def frozenlake_features(mdp: pg.FiniteMDP) -> FloatArray:
    """d = 7 coordinate features of FrozenLake 8x8 (see the module docstring)."""
    import gymnasium as gym

    desc = gym.make("FrozenLake-v1", map_name="8x8").unwrapped.desc  # type: ignore[attr-defined]
    n = desc.shape[0]
    assert mdp.n_states == n * n
    r, c = np.divmod(np.arange(n * n), n)

    def hole(i: IntArray, j: IntArray) -> FloatArray:
        out = np.ones(i.shape)
        inside = (i >= 0) & (i < n) & (j >= 0) & (j < n)
        out[inside] = desc[i[inside], j[inside]] == b"H"
        return out

    return np.stack([r / (n - 1), c / (n - 1), hole(r, c), hole(r, c - 1), hole(r + 1, c), hole(r, c + 1), hole(r - 1, c)], 1)


# -- the NumPy yardstick ------------------------------------------------------------------------


def numpy_iteration(mdp: pg.FiniteMDP, tables: ref.SamplerTables, layers: list[tuple[FloatArray, FloatArray]],
                    X: FloatArray, n: int, seed: int) -> tuple[FloatArray, float]:
    acts, z = ref.mlp_forward(layers, X)
    probs = ref.softmax(z)
    st, ac, rw, ln, _ = ref.sample_numpy(mdp, probs, n, np.random.default_rng(seed), tables=tables)
    return ref.mlp_gradient(layers, X, acts, probs, st, ac, rw, ln, mdp.gamma)


def numpy_per_step(layers: list[tuple[FloatArray, FloatArray]], X: FloatArray, traj: pg.Trajectories,
                   gamma: float) -> FloatArray:
    """Forward and manual backward over every visited step (chunks of CHUNK steps)."""
    mask = traj.mask
    G = traj.reward_to_go(gamma) * (gamma ** np.arange(traj.rewards.shape[1]))[None, :]
    s, a, w = traj.states[mask], traj.actions[mask], G[mask]
    total = np.zeros(sum(W.size + b.size for W, b in layers))
    for k in range(0, s.size, CHUNK):
        sk, ak, wk = s[k:k + CHUNK], a[k:k + CHUNK], w[k:k + CHUNK]
        Xk = X[sk]
        acts, z = ref.mlp_forward(layers, Xk)
        p = ref.softmax(z)
        score = -p
        score[np.arange(sk.size), ak] += 1.0
        score *= wk[:, None]
        total += ref.mlp_backward(layers, Xk, acts, score)
    return total / traj.n


# -- the PyTorch yardstick (optional) -------------------------------------------------------------


def _torch() -> Any:
    """The torch module, or None when PyTorch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def torch_gradient(torch: Any, params: list[Any], X: Any, states: IntArray, actions: IntArray, rewards: FloatArray,
                   lengths: IntArray, gamma: float) -> tuple[FloatArray, float]:
    """Autograd of (1/N) sum_steps gamma^t G_t log pi(a_t|s_t) on a given batch: (flat gradient in
    MLPSoftmax's layout, mean return)."""
    n, H = rewards.shape
    logp = _torch_log_probs(torch, params, X)
    disc = rewards * gamma ** np.arange(H)[None, :]  # padding rewards are 0
    w = np.cumsum(disc[:, ::-1], axis=1)[:, ::-1]  # gamma^t G_t
    mask = np.arange(H)[None, :] < lengths[:, None]
    s, a = torch.from_numpy(states[mask].astype(np.int64)), torch.from_numpy(actions[mask].astype(np.int64))
    loss = (torch.from_numpy(np.ascontiguousarray(w[mask])) * logp[s, a]).sum() / n
    grads = torch.autograd.grad(loss, params)
    return np.concatenate([g.numpy().ravel() for g in grads]), float(w[:, 0].sum()) / n


def _torch_log_probs(torch: Any, params: list[Any], X: Any) -> Any:
    h = X
    n_layers = len(params) // 2
    for k in range(n_layers):
        h = h @ params[2 * k] + params[2 * k + 1]
        if k + 1 < n_layers:
            h = torch.tanh(h)
    return torch.log_softmax(h, dim=1)


def torch_iteration(torch: Any, mdp: pg.FiniteMDP, tables: ref.SamplerTables, params: list[Any], X: Any, n: int,
                    seed: int) -> tuple[FloatArray, float]:
    with torch.no_grad():
        probs = _torch_log_probs(torch, params, X).exp().numpy()
    st, ac, rw, ln, _ = ref.sample_numpy(mdp, probs, n, np.random.default_rng(seed), tables=tables)
    return torch_gradient(torch, params, X, st, ac, rw, ln, mdp.gamma)


# -- one case -----------------------------------------------------------------------------------


def _features(key: str, mdp: pg.FiniteMDP) -> FloatArray:
    if key == "frozenlake":
        return frozenlake_features(mdp)
    return np.random.default_rng(4).normal(size=(mdp.n_states, 16))


def _rel(x: FloatArray, y: FloatArray) -> float:
    scale = max(float(np.abs(y).max()), 1e-300)
    return float(np.abs(x - y).max()) / scale


def _bench_case(key: str, mdp: pg.FiniteMDP, n: int, quick: bool) -> dict[str, Any]:
    X = np.ascontiguousarray(_features(key, mdp))
    pi = pg.MLPSoftmax(X, mdp.n_actions, hidden=HIDDEN, seed=0)
    layers = [(np.array(W), np.array(b)) for W, b in pi.layers()]
    tables = ref.SamplerTables(mdp)

    # same work: NumPy's estimator on a pgfast batch equals pgfast's; fused equals stored
    traj = mdp.sample(pi, n, seed=1, threads=1)
    stored = pg.policy_gradient(pi, traj, stderr=False, threads=1).grad
    acts, z = ref.mlp_forward(layers, X)
    g_np, _ = ref.mlp_gradient(layers, X, acts, ref.softmax(z), traj.states, traj.actions, traj.rewards, traj.lengths,
                             mdp.gamma)
    fused = pg.policy_gradient(pi, mdp=mdp, n=n, seed=1, threads=1, stderr=False).grad
    checks = {"numpy_vs_stored": _rel(g_np, stored), "fused_vs_stored": _rel(fused, stored)}
    torch = _torch()
    if torch is not None:
        torch.set_num_threads(1)
        params = [torch.tensor(a, requires_grad=True) for W, b in layers for a in (W, b)]
        Xt = torch.from_numpy(X)
        g_t, _ = torch_gradient(torch, params, Xt, traj.states, traj.actions, traj.rewards, traj.lengths, mdp.gamma)
        checks["torch_vs_stored"] = _rel(g_t, stored)
    per_step_s = None
    if not quick:
        t0 = time.perf_counter()
        g_step = numpy_per_step(layers, X, traj, mdp.gamma)
        per_step_s = time.perf_counter() - t0
        checks["numpy_per_step_vs_stored"] = _rel(g_step, stored)
    agree = all(v <= EXACT_RTOL for v in checks.values())

    def pg_call(threads: int) -> Callable[[int], None]:
        def call(seed: int) -> None:
            pi._probs_cache = None  # time the forward pass too
            pg.policy_gradient(pi, mdp=mdp, n=n, seed=seed, threads=threads, stderr=False)
        return call

    calls: dict[str, Callable[[int], Any]] = {
        "numpy": lambda seed: numpy_iteration(mdp, tables, layers, X, n, seed),
        "pg_1t": pg_call(1),
        "pg_2t": pg_call(2),
    }
    if torch is not None:
        calls["torch"] = lambda seed: torch_iteration(torch, mdp, tables, params, Xt, n, seed)
    times: dict[str, list[float]] = {k: [] for k in calls}
    for w in range(WARMUP[quick]):
        for f in calls.values():
            f(1000 + w)
    for r in range(REPEATS[quick]):
        for k, f in calls.items():
            t0 = time.perf_counter()
            f(2000 + r)
            times[k].append(time.perf_counter() - t0)
    best = {k: min(v) for k, v in times.items()}
    med = {k: float(np.median(v)) for k, v in times.items()}
    steps = int(traj.lengths.sum())
    return {
        "workload": key, "n": n, "n_states": mdp.n_states, "n_actions": mdp.n_actions, "d": X.shape[1],
        "hidden": list(HIDDEN), "n_params": pi.n_params, "steps_per_call": steps,
        "best_s": best, "median_s": med, "numpy_per_step_s": per_step_s,
        "ratio_1t": best["numpy"] / best["pg_1t"], "ratio_2t": best["numpy"] / best["pg_2t"],
        "scaling_2t": best["pg_1t"] / best["pg_2t"],
        "ratio_1t_torch": best["torch"] / best["pg_1t"] if "torch" in best else None,
        "torch_version": str(torch.__version__) if torch is not None else None,
        "target": TARGET if n == N_FULL else None, "checks": checks, "agree": agree,
    }


def run(quick: bool = False, *, reuse_memory: bool = True) -> list[dict[str, Any]]:
    """Both workloads; one dict per row. Raises AssertionError if a same-work check fails."""
    if reuse_memory:
        reuse_freed_memory()
    n = N_QUICK if quick else N_FULL
    rows = [_bench_case(key, mdp, n, quick) for key, mdp in (("frozenlake", frozenlake()), ("random", random_mdp()))]
    bad = [f"{r['workload']}: {r['checks']}" for r in rows if not r["agree"]]
    if bad:
        raise AssertionError("the sides did not compute the same gradient: " + " | ".join(bad))
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "MLP softmax (hidden 64, 64, tanh): one policy-gradient iteration (forward, sample N, reward-to-go, backward)",
        "milliseconds (best of the repeats); ratios of best times",
        f"{'workload':<11}{'N':>7}{'d':>4}{'params':>8}{'steps':>11} |{'NumPy':>9}{'pg 1T':>9}{'pg 2T':>9}"
        f" |{'1T/NumPy':>9} {'target':<11}|{'2T/1T':>7} |{'NumPy per-step':>15} |{'PyTorch':>9}{'1T/PyTorch':>11}",
        "-" * 135,
    ]
    for r in rows:
        b = r["best_s"]
        tgt = r["target"]
        verdict = f">={tgt:g} {'PASS' if r['ratio_1t'] >= tgt else 'FAIL'}" if tgt else "(quick)"
        ps = f"{r['numpy_per_step_s'] * 1e3:13.0f} ms" if r["numpy_per_step_s"] is not None else f"{'-':>15}"
        lines.append(
            f"{r['workload']:<11}{r['n']:>7}{r['d']:>4}{r['n_params']:>8}{r['steps_per_call']:>11,} |"
            f"{b['numpy'] * 1e3:9.2f}{b['pg_1t'] * 1e3:9.2f}{b['pg_2t'] * 1e3:9.2f} |{r['ratio_1t']:9.2f} {verdict:<11}|"
            f"{r['scaling_2t']:7.2f} |{ps} |"
            + (f"{b['torch'] * 1e3:9.2f}{r['ratio_1t_torch']:11.2f}" if r["ratio_1t_torch"] else f"{'-':>9}{'-':>11}")
        )
    lines.append("NumPy per-step: forward + manual backward over every visited step of one batch (sampling not "
                 "included; information, no target)")
    torch_rows = [r for r in rows if r["ratio_1t_torch"]]
    lines.append(f"PyTorch {torch_rows[0]['torch_version']}: autograd (float64, 1 thread) of the per-step loss, "
                 "sampling by reference.sample_numpy" if torch_rows else
                 "PyTorch: not installed, not measured (optional; never a dependency)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, *, default_json: Path | None = DEFAULT_JSON,
         prog: str = "python -m pgfast.benchmarks.mlp") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0] if __doc__ else None)
    add_bench_arguments(parser, default_json, f"N = {N_QUICK}, 1 warm-up, 2 repeats: a smoke test")
    args = parser.parse_args(argv)
    single_thread_environment()
    info = machine_info()
    reused = False if args.default_malloc else reuse_freed_memory()
    rows = run_and_print(lambda: run(quick=args.quick, reuse_memory=False), format_table, info, reused)
    result = {
        **result_envelope("mlp", prog, argv, args.quick, info),
        "protocol": {
            "timer": f"time.perf_counter around one call; round-robin after {WARMUP[args.quick]} warm-up call(s)",
            "statistic": "best (min) seconds over the repeats; medians also recorded",
            "iteration": "forward pass over the S states + sample N + reward-to-go (no baseline) + gradient",
            "numpy": "NumPy forward, reference.sample_numpy, per-(s, a) weight sums, manual backward; one thread",
            "pgfast": "pg.policy_gradient(pi, mdp=mdp, n=N, seed=, threads=1 or 2, stderr=False), forward cache cleared",
            "torch": "when importable: torch autograd of the per-step loss (float64, torch.set_num_threads(1)), "
                     "reference.sample_numpy for the sampling",
            "checks": f"same batch: NumPy (both forms), PyTorch and fused vs stored pgfast within {EXACT_RTOL:g} relative",
        },
        "targets": {"pg_1t_vs_numpy_at_16384": TARGET},
        "rows": rows,
    }
    save_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
