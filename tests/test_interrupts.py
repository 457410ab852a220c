"""Ctrl-C: every long call answers SIGINT with KeyboardInterrupt within a second, and the process
stays usable. Each test starts a call that would take several seconds, delivers SIGINT from a
timer thread after INTERRUPT_AFTER seconds, and measures the time from the signal to the
exception (the C++ kernels poll every 20 ms; the bound leaves room for sanitizer builds)."""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import sparse

import pgfast as pg
from helpers import MAX_INTERRUPT_LATENCY

INTERRUPT_AFTER = 0.25  # seconds from the start of the call to SIGINT
MAX_LATENCY = MAX_INTERRUPT_LATENCY  # seconds from SIGINT to KeyboardInterrupt (1 s; 5 s in a sanitizer build)


def sparse_mdp(S: int, A: int, K: int, *, horizon: int = 10, gamma: float = 0.9, seed: int = 0) -> pg.FiniteMDP:
    """S states, A actions, K successors per (s, a) (drawn with replacement, merged), uniform mu0."""
    rng = np.random.default_rng(seed)
    rows = S * A
    P = sparse.csr_matrix(
        (rng.dirichlet(np.ones(K), size=rows).ravel(), rng.integers(S, size=rows * K), np.arange(0, rows * K + 1, K)),
        shape=(rows, S),
    )
    P.sum_duplicates()
    return pg.FiniteMDP(P, rng.normal(size=(S, A)), np.full(S, 1.0 / S), horizon=horizon, gamma=gamma)


def interrupt_latency(call: Callable[[], Any]) -> float:
    """Runs call(), sends SIGINT to the main thread after INTERRUPT_AFTER s; returns the seconds
    from the signal to the KeyboardInterrupt (fails if the call ended before the signal)."""
    main = threading.main_thread().ident
    assert main is not None and threading.current_thread() is threading.main_thread()
    sent: list[float] = []

    def fire() -> None:
        sent.append(time.perf_counter())
        signal.pthread_kill(main, signal.SIGINT)

    timer = threading.Timer(INTERRUPT_AFTER, fire)
    interrupted = False
    try:
        timer.start()
        call()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        end = time.perf_counter()
        timer.cancel()
        timer.join()
    if not interrupted:
        try:  # a signal sent after the call returned must not leak into the next test
            time.sleep(0.05)
        except KeyboardInterrupt:
            pass
        pytest.fail(f"the call finished in less than {INTERRUPT_AFTER} s: the test input is too small")
    assert sent, "KeyboardInterrupt without the signal"
    return end - sent[0]


def assert_interrupts(call: Callable[[], Any]) -> None:
    latency = interrupt_latency(call)
    assert latency < MAX_LATENCY, f"KeyboardInterrupt arrived {latency:.3f} s after SIGINT"


@pytest.fixture(scope="module")
def check_mdp() -> pg.FiniteMDP:
    """A small MDP for the health check after an interrupt."""
    return sparse_mdp(300, 3, 4, horizon=20, seed=1)


def healthy(mdp: pg.FiniteMDP, objective: str = "discounted") -> None:
    """A small call after the interrupt: dense and Krylov solvers agree (same objective)."""
    pi = pg.TabularSoftmax(mdp.n_states, mdp.n_actions, theta=np.random.default_rng(2).normal(size=(mdp.n_states, mdp.n_actions)))
    dense = pg.exact.gradient(mdp, pi, objective, method="dense", return_evaluation=True)
    krylov = pg.exact.gradient(mdp, pi, objective, method="sparse", return_evaluation=True)
    assert np.isfinite(dense[1].J)
    np.testing.assert_allclose(dense[1].J, krylov[1].J, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dense[0], krylov[0], rtol=1e-7, atol=1e-12)


def test_dense_lu_discounted(check_mdp: pg.FiniteMDP) -> None:
    # S = 4000: the dense LU alone is ~5 s uninterrupted
    mdp = sparse_mdp(4000, 2, 4)
    pi = pg.TabularSoftmax(4000, 2)
    assert_interrupts(lambda: pg.exact.evaluate(mdp, pi, "discounted", method="dense"))
    healthy(check_mdp)


def test_dense_lu_average_reward(check_mdp: pg.FiniteMDP) -> None:
    # stationary distribution and Poisson equation: two dense LUs of S = 4000
    mdp = sparse_mdp(4000, 2, 4)
    pi = pg.TabularSoftmax(4000, 2)
    assert_interrupts(lambda: pg.exact.gradient(mdp, pi, "average_reward", method="dense"))
    healthy(check_mdp, "average_reward")


def test_dense_optimal_discounted(check_mdp: pg.FiniteMDP) -> None:
    mdp = sparse_mdp(4000, 2, 4)
    assert_interrupts(lambda: pg.exact.optimal(mdp, "discounted", method="dense"))
    healthy(check_mdp)


def test_closed_form_run_leaves_theta_as_it_was(check_mdp: pg.FiniteMDP) -> None:
    # 10^7 natural-gradient steps on a 100-state Garnet: minutes uninterrupted
    mdp = pg.envs.garnet(100, 10, 5, seed=0, gamma=0.9)
    pi = pg.TabularSoftmax(100, 10, theta=np.random.default_rng(0).normal(size=(100, 10)))
    before = pi.theta.copy()
    opt = pg.optim.NaturalPolicyGradient(lr=0.1)
    assert_interrupts(lambda: opt.run(pi, mdp, 10_000_000))
    assert np.array_equal(pi.theta, before) and opt.t == 0
    healthy(check_mdp)


def test_finite_horizon_gradient(check_mdp: pg.FiniteMDP) -> None:
    # H = 5000 steps over 160000 entries: ~3 s uninterrupted
    mdp = sparse_mdp(10000, 4, 4, horizon=5000)
    pi = pg.TabularSoftmax(10000, 4)
    assert_interrupts(lambda: pg.exact.gradient(mdp, pi, "finite_horizon"))
    healthy(check_mdp, "average_value")


def test_exact_moments_covariance(check_mdp: pg.FiniteMDP) -> None:
    # the full covariance of 150 parameters over 3600 entries and 20 steps: ~2 s uninterrupted
    mdp = sparse_mdp(300, 3, 4, horizon=20)
    pi = pg.LinearSoftmax(np.random.default_rng(0).normal(size=(300, 3, 150)))
    assert_interrupts(lambda: pg.exact.moments(mdp, pi, covariance=True))
    healthy(check_mdp)


@pytest.mark.parametrize("objective", ["average_reward", "average_value"])
def test_average_objectives_large(check_mdp: pg.FiniteMDP, objective: str) -> None:
    # S = 4 * 10**5: building the chain and its closed-class analysis alone take ~0.5 s, the Krylov
    # solves several seconds more; SIGINT lands early, in the polled construction
    S = 400_000
    mdp = sparse_mdp(S, 2, 2)
    pi = pg.TabularSoftmax(S, 2)
    assert_interrupts(lambda: pg.exact.gradient(mdp, pi, objective))
    healthy(check_mdp, objective)


def test_mlp_natural_gradient(check_mdp: pg.FiniteMDP) -> None:
    # 1000 Fisher-factor rows x 16324 parameters: M M^T and its eigendecomposition take seconds
    mdp = sparse_mdp(250, 4, 4, horizon=20)
    pi = pg.MLPSoftmax(250, 4, hidden=(64,))
    assert_interrupts(lambda: pg.exact.natural_gradient(mdp, pi))
    healthy(check_mdp)
    # the same call on a small network still gives F x = g (row-space pseudo-inverse)
    tiny_mdp = sparse_mdp(5, 3, 2, horizon=6)
    tiny = pg.MLPSoftmax(5, 3, hidden=(4,))
    x = pg.exact.natural_gradient(tiny_mdp, tiny)
    F = pg.exact.fisher(tiny_mdp, tiny)
    g = pg.exact.gradient(tiny_mdp, tiny)
    np.testing.assert_allclose(F @ x, g, atol=1e-10 * max(1.0, float(np.abs(g).max())))


def test_linear_natural_gradient(check_mdp: pg.FiniteMDP) -> None:
    # p = 1200 features: the dense pseudo-inverse of the 1200 x 1200 Fisher matrix takes seconds
    rng = np.random.default_rng(3)
    mdp = sparse_mdp(60, 4, 4, horizon=20)
    pi = pg.LinearSoftmax(rng.normal(size=(60, 4, 1200)))
    assert_interrupts(lambda: pg.exact.natural_gradient(mdp, pi))
    healthy(check_mdp)


def test_mlp_forward(check_mdp: pg.FiniteMDP) -> None:
    # 10^4 states through two layers of 1024: ~26 GFlop, seconds uninterrupted
    X = np.random.default_rng(5).normal(size=(10_000, 256))
    pi = pg.MLPSoftmax(X, 4, hidden=(1024, 1024))
    assert_interrupts(pi.probs)
    healthy(check_mdp)
    small = pg.MLPSoftmax(X[:50, :3], 4, hidden=(8,))
    p = small.probs()
    (W1, b1), (W2, b2) = small.layers()
    z = np.tanh(X[:50, :3] @ W1 + b1) @ W2 + b2
    np.testing.assert_allclose(p, np.exp(z) / np.exp(z).sum(axis=1, keepdims=True), rtol=1e-12)


def test_mlp_policy_gradient(check_mdp: pg.FiniteMDP) -> None:
    # the exact gradient's vector-Jacobian product through two layers of 1024 (about twice the
    # forward pass, which is computed first; S small enough to keep the test short)
    S = 800
    X = np.random.default_rng(6).normal(size=(S, 256))
    pi = pg.MLPSoftmax(X, 4, hidden=(1024, 1024))
    pi.probs()  # the forward pass, cached
    W = np.random.default_rng(7).normal(size=(S, 4))
    assert_interrupts(lambda: pi._logit_vjp(W))
    healthy(check_mdp)


def test_linear_fisher(check_mdp: pg.FiniteMDP) -> None:
    # 8000 states x 4 actions of 300 features: O(S A p^2), seconds uninterrupted
    rng = np.random.default_rng(8)
    mdp = sparse_mdp(8000, 4, 4, horizon=20)
    pi = pg.LinearSoftmax(rng.normal(size=(8000, 4, 300)))
    w = pg.exact.fisher_weights(mdp, pi)
    assert_interrupts(lambda: pi._fisher(np.ascontiguousarray(pi.probs()), w))
    healthy(check_mdp)


def test_tabular_natural_gradient(check_mdp: pg.FiniteMDP) -> None:
    # 20000 states of 40 actions: one 40 x 40 eigendecomposition per state, seconds in all
    S, A = 20_000, 40
    rng = np.random.default_rng(9)
    pi = pg.TabularSoftmax(S, A, theta=rng.normal(size=(S, A)))
    probs = np.ascontiguousarray(pi.probs())
    g = rng.normal(size=(S, A))
    assert_interrupts(lambda: pi._natural(probs, np.ones(S), g, 0.0, 1e-10))
    healthy(check_mdp)
    # the same solve on the first states: x_s = pseudo-inverse of diag(pi_s) - pi_s pi_s^T times g_s
    x = pg.TabularSoftmax(3, A, theta=pi.theta[:3])._natural(probs[:3].copy(), np.ones(3), g[:3].copy(), 0.0, 1e-10)
    for s in range(3):
        B = np.diag(probs[s]) - np.outer(probs[s], probs[s])
        np.testing.assert_allclose(x[s], np.linalg.pinv(B, rcond=1e-10, hermitian=True) @ g[s], rtol=1e-6, atol=1e-9)


def test_train_writes_its_checkpoint_on_ctrl_c(check_mdp: pg.FiniteMDP, tmp_path: Path) -> None:
    """pg.train(checkpoint=...) answers SIGINT by writing the state after the last completed
    iteration (checkpoint_every=inf: this is the only write) and raising KeyboardInterrupt; the
    policy and optimizer are left in that state, and resuming from it to iteration k + 5 gives
    the run that was never interrupted, bit for bit."""
    mdp = sparse_mdp(60, 3, 4, horizon=20, seed=2)
    kw: dict[str, Any] = dict(batch=1000, seed=1, baseline="time", eval_every=3, progress=False)
    path = tmp_path / "run.ckpt"
    pi, opt = pg.TabularSoftmax(60, 3), pg.optim.Adam(0.1)
    assert_interrupts(lambda: pg.train(mdp, pi, optimizer=opt, iterations=10**6, checkpoint=path, checkpoint_every=math.inf, **kw))
    healthy(check_mdp)
    with np.load(path, allow_pickle=False) as z:
        k = json.loads(z["checkpoint.json"].tobytes())["iteration"]
        theta, m = z["theta"], z["optimizer.m"]
    assert k >= 1 and opt.t == k
    np.testing.assert_array_equal(pi.theta, theta)
    np.testing.assert_array_equal(opt.m, m)
    resumed_pi = pg.TabularSoftmax(60, 3)
    resumed = pg.train(mdp, resumed_pi, optimizer=pg.optim.Adam(0.1), iterations=k + 5, resume=path, **kw)
    straight_pi = pg.TabularSoftmax(60, 3)
    straight = pg.train(mdp, straight_pi, optimizer=pg.optim.Adam(0.1), iterations=k + 5, **kw)
    for f in ("iteration", "J_estimate", "J_stderr", "J_exact", "grad_norm"):
        np.testing.assert_array_equal(resumed[f], straight[f])
    np.testing.assert_array_equal(resumed_pi.theta, straight_pi.theta)


@pytest.mark.parametrize("baseline", [None, "time"])
def test_fused_policy_gradient(check_mdp: pg.FiniteMDP, baseline: Any) -> None:
    # 10^8 simulated steps: a few seconds; with the time baseline the first of its two passes
    # (the batch's statistics) is running when the signal comes
    mdp = sparse_mdp(2000, 4, 4, horizon=100, seed=5)
    pi = pg.TabularSoftmax(2000, 4)
    assert_interrupts(lambda: pg.policy_gradient(pi, mdp=mdp, n=1_000_000, seed=0, baseline=baseline))
    small = pg.policy_gradient(pi, mdp=mdp, n=2000, seed=1, baseline=baseline, threads=2)
    assert np.array_equal(small.grad, pg.policy_gradient(pi, mdp=mdp, n=2000, seed=1, baseline=baseline, threads=1).grad)
    healthy(check_mdp)


def test_fused_time_baseline_in_one_pass(check_mdp: pg.FiniteMDP) -> None:
    # H S A = 128,000 <= 131,072: the time baseline without standard errors runs in one pass
    # (exact per-step tables); 5 10^8 simulated steps, a few seconds
    mdp = sparse_mdp(64, 4, 4, horizon=500, seed=5)
    pi = pg.TabularSoftmax(64, 4)
    stats = pg.partial_statistics(pi, mdp=mdp, n=2000, seed=1, lo=0, hi=2000)
    assert pg.partial_gradient(pi, mdp=mdp, n=2000, seed=1, lo=0, hi=2000, baseline="time", stderr=False,
                               statistics=stats).step_tables is not None
    assert_interrupts(lambda: pg.policy_gradient(pi, mdp=mdp, n=1_000_000, seed=0, baseline="time", stderr=False))
    small = pg.policy_gradient(pi, mdp=mdp, n=2000, seed=1, baseline="time", stderr=False, threads=2)
    assert np.array_equal(small.grad, pg.policy_gradient(pi, mdp=mdp, n=2000, seed=1, baseline="time", stderr=False,
                                                         threads=1).grad)
    healthy(check_mdp)


def test_partial_gradient(check_mdp: pg.FiniteMDP) -> None:
    mdp = sparse_mdp(2000, 4, 4, horizon=100, seed=5)
    pi = pg.TabularSoftmax(2000, 4)
    lo, hi = pg.shard_ranges(2_000_000, 2)[1]
    assert_interrupts(lambda: pg.partial_gradient(pi, mdp=mdp, n=2_000_000, seed=0, lo=lo, hi=hi))
    healthy(check_mdp)
