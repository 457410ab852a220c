"""Same seed, same bits: every estimator's sums for any thread count, and every result on either
compiled code path (AVX2 + FMA or the default x86-64 code).

The estimators reduce over a fixed block grid that depends on the number of trajectories only,
combined along one canonical tree (docs/guide/sampling.md, "Reproducibility"), so the thread
count changes the speed and never a bit. The cases cover each policy class, both weights, every
baseline of the stored path and of the fused path, with and without standard errors, and thread
counts that do and do not divide the number of blocks (more threads than blocks included).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import pgfast as pg
from helpers import frozenlake_8x8, frozenlake_policy

THREADS = [1, 2, 3, 7, 16, 64]




def _bits(r: Any) -> tuple[bytes, ...]:
    """Every number of a PolicyGradient (or an array), as bytes."""
    if isinstance(r, np.ndarray):
        return (r.tobytes(),)
    parts = [np.asarray(r.grad).tobytes(), np.asarray(r.stderr).tobytes(),
             np.float64(r.value).tobytes(), np.float64(r.value_stderr).tobytes()]
    if r.per_trajectory is not None:
        parts.append(np.asarray(r.per_trajectory).tobytes())
    return tuple(parts)


FUSED_OPTIONS = [{}, {"stderr": False}, {"weights": "return"}, {"baseline": "exact"}, {"baseline": "time"},
                 {"baseline": "time", "stderr": False}]  # the last: in one pass, with exact per-step tables
STORED_OPTIONS = [
    {},
    {"stderr": False},
    {"weights": "return"},
    {"baseline": "mean"},
    {"baseline": "time"},
    {"baseline": "time", "stderr": False},
    {"weights": "return", "baseline": "mean"},
    {"baseline": "exact"},
    {"per_trajectory": True},
]


@pytest.mark.parametrize("kind", ["tabular", "linear", "mlp"])
@pytest.mark.parametrize("options", FUSED_OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_fused_gradient_identical_for_any_thread_count(kind: str, options: dict[str, Any]) -> None:
    mdp = frozenlake_8x8()
    pi = frozenlake_policy(kind, np.random.default_rng(0))
    # 5003 trajectories: 20 blocks of 256 (the last one short), fewer blocks than 64 threads
    results = {t: _bits(pg.policy_gradient(pi, mdp=mdp, n=5003, seed=3, threads=t, **options)) for t in THREADS}
    assert all(results[t] == results[1] for t in THREADS), {t: results[t] == results[1] for t in THREADS}


@pytest.mark.parametrize("kind", ["tabular", "linear", "mlp"])
@pytest.mark.parametrize("options", STORED_OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_stored_gradient_identical_for_any_thread_count(kind: str, options: dict[str, Any]) -> None:
    mdp = frozenlake_8x8()
    pi = frozenlake_policy(kind, np.random.default_rng(1))
    traj = mdp.sample(pi, 3001, seed=5)
    results = {t: _bits(pg.policy_gradient(pi, traj, threads=t, **options)) for t in THREADS}
    assert all(results[t] == results[1] for t in THREADS), {t: results[t] == results[1] for t in THREADS}


def test_score_and_off_policy_identical_for_any_thread_count() -> None:
    mdp = frozenlake_8x8()
    rng = np.random.default_rng(2)
    pi, beta = frozenlake_policy("tabular", rng), frozenlake_policy("tabular", rng)
    traj = mdp.sample(beta, 3001, seed=7)
    w = rng.normal(size=traj.rewards.shape) * traj.mask
    score = {t: _bits(pg.score(pi, traj, w, threads=t)) for t in THREADS}
    assert all(score[t] == score[1] for t in THREADS)
    off = {t: _bits(pg.off_policy_gradient(pi, beta, traj, threads=t)) for t in THREADS}
    assert all(off[t] == off[1] for t in THREADS)


def test_the_sums_change_with_the_batch() -> None:
    # the check above has power: a different seed or batch size changes the bits
    mdp = frozenlake_8x8()
    pi = frozenlake_policy("tabular", np.random.default_rng(0))
    a = _bits(pg.policy_gradient(pi, mdp=mdp, n=5003, seed=3))
    assert a != _bits(pg.policy_gradient(pi, mdp=mdp, n=5003, seed=4))
    assert a != _bits(pg.policy_gradient(pi, mdp=mdp, n=5002, seed=3))


def _digest() -> None:
    """Prints a digest of probabilities, samples, gradients and exact results of each policy class."""
    mdp = frozenlake_8x8()
    rng = np.random.default_rng(0)
    h = hashlib.sha256()
    for kind in ("tabular", "linear", "mlp"):
        pi = frozenlake_policy(kind, rng)
        traj = mdp.sample(pi, 500, seed=1)
        for arr in (pi.probs(), pi.log_probs(), traj.actions, traj.states,
                    pg.policy_gradient(pi, mdp=mdp, n=2000, seed=3).grad,
                    pg.policy_gradient(pi, traj, baseline="time").grad,
                    pg.exact.gradient(mdp, pi)):
            h.update(np.ascontiguousarray(arr).tobytes())
    print(h.hexdigest())


def _run_digest(avx2: bool) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PGFAST_NO_AVX2"}
    if not avx2:
        env["PGFAST_NO_AVX2"] = "1"
    code = "import sys; sys.path.insert(0, sys.argv[1]); import test_reproducibility as m; m._digest()"
    out = subprocess.run([sys.executable, "-c", code, os.path.dirname(__file__)], env=env, check=True,
                         capture_output=True, text=True, timeout=300)
    return out.stdout.strip()


def test_same_bits_with_and_without_avx2() -> None:
    # PGFAST_NO_AVX2=1 runs the default x86-64 code; without it a CPU with AVX2 + FMA runs the
    # copies compiled for them (softmax's exp, tanh, the MLP products). The results are the same.
    assert _run_digest(avx2=True) == _run_digest(avx2=False)
