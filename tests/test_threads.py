"""Thread safety: library calls running in several threads while another thread assigns theta.

Every call must return the result at one value of theta (a value the policy held while the call
ran), bit for bit equal to a serial recomputation at that value: never tables of two values mixed,
never a probability table cached under a theta it was not computed from.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

import pgfast as pg
from helpers import MAX_INTERRUPT_LATENCY

K = 4  # candidate values of theta the writer thread cycles through
CALLS_PER_WORKER = 40


def _sparse_mdp(rng: np.random.Generator, S: int, A: int, successors: int = 3, horizon: int = 6) -> pg.FiniteMDP:
    rows = np.repeat(np.arange(S * A), successors)
    cols = np.concatenate([rng.choice(S, size=successors, replace=False) for _ in range(S * A)])
    prob = rng.dirichlet(np.ones(successors), size=S * A).ravel()
    P = sp.csr_matrix((prob, (rows, cols)), shape=(S * A, S))
    return pg.FiniteMDP(P, rng.normal(size=(S, A)), rng.dirichlet(np.ones(S)), horizon=horizon, gamma=0.95)


def _setup(kind: str, rng: np.random.Generator) -> tuple[pg.FiniteMDP, pg.SoftmaxPolicy, list[np.ndarray]]:
    # tables large enough that computing them (GIL released) takes a while
    if kind == "tabular":
        mdp = _sparse_mdp(rng, 3000, 6)
        pi: pg.SoftmaxPolicy = pg.TabularSoftmax(3000, 6)
    elif kind == "linear":
        mdp = _sparse_mdp(rng, 800, 6)
        pi = pg.LinearSoftmax(rng.normal(size=(800, 6, 24)))
    else:
        mdp = _sparse_mdp(rng, 400, 4)
        pi = pg.MLPSoftmax(rng.normal(size=(400, 8)), 4, hidden=(48,), seed=1)
    cands = [rng.normal(size=pi.theta.shape) * (0.5 + k) for k in range(K)]
    return mdp, pi, cands


def _operations(mdp: pg.FiniteMDP, batch: pg.Trajectories) -> dict[str, Callable[[pg.SoftmaxPolicy], tuple[np.ndarray, ...]]]:
    def sample(pi: pg.SoftmaxPolicy) -> tuple[np.ndarray, ...]:
        t = mdp.sample(pi, 64, seed=5, threads=2)
        return t.states, t.actions, t.rewards

    def stored(pi: pg.SoftmaxPolicy) -> tuple[np.ndarray, ...]:
        g = pg.policy_gradient(pi, batch, threads=2)
        return g.grad, g.stderr

    def fused(pi: pg.SoftmaxPolicy) -> tuple[np.ndarray, ...]:
        g = pg.policy_gradient(pi, mdp=mdp, n=64, seed=9, baseline="exact", threads=2)
        return g.grad, np.array([g.value])

    def evaluate(pi: pg.SoftmaxPolicy) -> tuple[np.ndarray, ...]:
        ev = pg.exact.evaluate(mdp, pi)
        return np.array([ev.J]), ev.V

    def gradient(pi: pg.SoftmaxPolicy) -> tuple[np.ndarray, ...]:
        return (pg.exact.gradient(mdp, pi, "discounted", method="sparse"),)

    def probs(pi: pg.SoftmaxPolicy) -> tuple[np.ndarray, ...]:
        return (pi.probs(),)

    def log_probs(pi: pg.SoftmaxPolicy) -> tuple[np.ndarray, ...]:
        return (pi.log_probs(),)

    return {"sample": sample, "stored": stored, "fused": fused, "evaluate": evaluate, "gradient": gradient,
            "probs": probs, "log_probs": log_probs}


def _matches(result: tuple[np.ndarray, ...], expected: tuple[np.ndarray, ...]) -> bool:
    return all(np.array_equal(r, e) for r, e in zip(result, expected))


@pytest.mark.parametrize("kind", ["tabular", "linear", "mlp"])
def test_calls_see_one_theta_while_another_thread_assigns_it(kind: str) -> None:
    rng = np.random.default_rng(7)
    mdp, pi, cands = _setup(kind, rng)
    batch = mdp.sample(pi, 64, seed=3)
    ops = _operations(mdp, batch)
    # serial recomputation at every candidate, on a fresh policy (no cache history)
    expected: dict[str, list[tuple[np.ndarray, ...]]] = {name: [] for name in ops}
    for th in cands:
        pi.theta = th
        for name, op in ops.items():
            expected[name].append(op(pi))
    for name in ops:  # the candidates are told apart by every operation
        for j in range(K):
            for k in range(j):
                assert not _matches(expected[name][j], expected[name][k]), (name, j, k)

    pi.theta = cands[0]
    version = [0]  # count of completed assignments; cands[version % K] is the current theta
    stop = threading.Event()
    failures: list[str] = []
    errors: list[BaseException] = []

    def writer() -> None:
        w_rng = np.random.default_rng(11)
        v = 0
        while not stop.is_set():
            v += 1
            pi.theta = cands[v % K]
            version[0] = v
            pause = w_rng.choice([0.0, 0.0, 0.0002, 0.003])  # bursts of assignments, then quiet spells
            if pause:
                time.sleep(pause)

    def worker(names: list[str]) -> None:
        try:
            for i in range(CALLS_PER_WORKER):
                name = names[i % len(names)]
                v0 = version[0]
                res = ops[name](pi)
                v1 = version[0]
                # values the policy held during the call: the one current at the start (or being
                # assigned then) up to the one being assigned at the end
                allowed = {j % K for j in range(v0, v1 + 2)}
                seen = [k for k in range(K) if _matches(res, expected[name][k])]
                if not seen:
                    failures.append(f"{name}: result matches no value of theta (mixed tables)")
                elif not set(seen) & allowed:
                    failures.append(f"{name}: result of theta #{seen[0]}, but the policy held #{sorted(allowed)} during the call")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    names = list(ops)
    workers = [threading.Thread(target=worker, args=(names[k:] + names[:k],)) for k in range(4)]
    w = threading.Thread(target=writer)
    w.start()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    stop.set()
    w.join()
    assert not errors, errors
    assert not failures, f"{len(failures)} of {4 * CALLS_PER_WORKER} calls: {failures[:5]}"
    # and afterwards the cached tables belong to the final theta
    final = version[0] % K
    for name, op in ops.items():
        assert _matches(op(pi), expected[name][final]), name


def test_theta_assignment_is_never_seen_half_done() -> None:
    """probs() while another thread assigns theta back and forth: every row of the table comes
    from the same assignment (the old or the new value, whole)."""
    pi = pg.TabularSoftmax(4000, 20)
    a = np.zeros((4000, 20))
    b = a.copy()
    b[:, 0] = 1.0
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            pi.theta = a
            pi.theta = b

    t = threading.Thread(target=writer)
    t.start()
    try:
        mixed = 0
        for _ in range(200):
            p = pi.probs()
            mixed += not (p == p[0]).all()
    finally:
        stop.set()
        t.join()
    assert mixed == 0, f"{mixed} of 200 tables mix two values of theta"


@pytest.mark.parametrize("kind", ["tabular", "mlp"])
def test_shared_mdp_and_policy_read_from_many_threads(kind: str) -> None:
    """No writer: many threads sampling and estimating with one MDP and policy get the serial bits."""
    rng = np.random.default_rng(3)
    mdp, pi, cands = _setup(kind, rng)
    pi.theta = cands[1]
    batch = mdp.sample(pi, 64, seed=3)
    ops = _operations(mdp, batch)
    expected = {name: op(pi) for name, op in ops.items()}
    pi.theta = cands[0]
    pi.theta = cands[1]  # the cached tables are stale: whichever thread comes first rebuilds them
    out: list[Any] = []

    def run() -> None:
        for name, op in ops.items():
            out.append(_matches(op(pi), expected[name]))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 4 * len(ops) and all(out)


# -- the thread cap and the worker pool ---------------------------------------------------------


def _os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _threads_after_exit(limit: int, seconds: float = 2.0) -> int:
    """The OS thread count once it is at most ``limit``, or after ``seconds``: a joined Python
    thread (Thread.join returns when its interpreter state is released) and a joined worker can
    still be listed in /proc for a moment while the kernel finishes their exit."""
    deadline = time.monotonic() + seconds
    n = _os_threads()
    while n > limit and time.monotonic() < deadline:
        time.sleep(0.01)
        n = _os_threads()
    return n


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through Linux's /proc")
def test_large_thread_counts_leave_no_threads_behind() -> None:
    rng = np.random.default_rng(5)
    mdp = _sparse_mdp(rng, 50, 3, horizon=10)
    pi = pg.TabularSoftmax(50, 3, theta=rng.normal(size=(50, 3)))
    n = 64 * 400  # 400 blocks of trajectories: work for every one of 256 workers
    ref = mdp.sample(pi, n, seed=1, threads=1)
    ref_stored = pg.policy_gradient(pi, ref, threads=pg.MAX_THREADS)
    ref_fused = pg.policy_gradient(pi, mdp=mdp, n=n, seed=2, threads=pg.MAX_THREADS)
    # the pool keeps at most one thread per usable CPU besides the caller's
    limit = _os_threads() + pg._core.info.pooled_threads_max()
    for _ in range(3):
        traj = mdp.sample(pi, n, seed=1, threads=pg.MAX_THREADS)
        for name in ("states", "actions", "rewards", "lengths", "final_states"):
            np.testing.assert_array_equal(getattr(traj, name), getattr(ref, name))
        stored = pg.policy_gradient(pi, traj, threads=pg.MAX_THREADS)
        fused = pg.policy_gradient(pi, mdp=mdp, n=n, seed=2, threads=pg.MAX_THREADS)
        assert np.array_equal(stored.grad, ref_stored.grad) and np.array_equal(stored.stderr, ref_stored.stderr)
        assert np.array_equal(fused.grad, ref_fused.grad)
        pg.exact.evaluate(mdp, pi, "discounted", method="sparse", threads=pg.MAX_THREADS)
        alive = _threads_after_exit(limit)
        assert alive <= limit, f"{alive} OS threads after calls with threads={pg.MAX_THREADS}"
    for threads in (2, 3, 7, 64):  # a batch is the same for every thread count
        traj = mdp.sample(pi, n, seed=1, threads=threads)
        np.testing.assert_array_equal(traj.actions, ref.actions)
        np.testing.assert_array_equal(traj.rewards, ref.rewards)
    assert _threads_after_exit(limit) <= limit


def test_many_workers_from_concurrent_callers() -> None:
    """Two Python threads asking for more workers than the pool keeps (one of them finds the pool
    busy and starts its own): the same bits as one call at a time, no thread left behind."""
    rng = np.random.default_rng(6)
    mdp = _sparse_mdp(rng, 40, 3, horizon=10)
    pi = pg.TabularSoftmax(40, 3, theta=rng.normal(size=(40, 3)))
    n = 64 * 100
    traj = mdp.sample(pi, n, seed=4, threads=1)
    ref = pg.policy_gradient(pi, traj, threads=100)
    ref_fused = pg.policy_gradient(pi, mdp=mdp, n=n, seed=5, threads=100)
    before = _os_threads() if os.path.isdir("/proc/self/task") else 0
    ok: list[bool] = []

    def run() -> None:
        for _ in range(3):
            t = mdp.sample(pi, n, seed=4, threads=100)
            g = pg.policy_gradient(pi, t, threads=100)
            f = pg.policy_gradient(pi, mdp=mdp, n=n, seed=5, threads=100)
            ok.append(np.array_equal(t.actions, traj.actions) and np.array_equal(g.grad, ref.grad)
                      and np.array_equal(f.grad, ref_fused.grad))

    callers = [threading.Thread(target=run) for _ in range(2)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    assert ok == [True] * 6
    if before:
        bound = before + pg._core.info.pooled_threads_max()
        assert _threads_after_exit(bound) <= bound


@pytest.mark.parametrize("threads", [0, -1, pg.MAX_THREADS + 1, 4096, 2**40])
def test_threads_outside_the_cap_are_refused(threads: int) -> None:
    mdp = _sparse_mdp(np.random.default_rng(0), 5, 2)
    pi = pg.TabularSoftmax(5, 2)
    calls = [
        lambda: mdp.sample(pi, 10, seed=0, threads=threads),
        lambda: pg.policy_gradient(pi, mdp=mdp, n=10, seed=0, threads=threads),
        lambda: pg.exact.evaluate(mdp, pi, threads=threads),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="threads must be"):
            call()


def test_the_cap_is_shared_by_python_and_the_core() -> None:
    assert pg.MAX_THREADS == pg._core.info.MAX_THREADS == 256
    with pytest.raises(ValueError, match=r"threads must be in \[1, 256\]"):
        pg._core.sampling.sample(pg.FiniteMDP(np.ones((1, 1, 1)), np.zeros((1, 1)), [1.0], horizon=1)._mdp,
                        np.ones((1, 1)), 1, 0, 257)


def test_baseline_refitted_while_other_threads_use_it() -> None:
    """ValueBaseline.fit replaces its table whole: estimates made meanwhile use the old or the new fit."""
    rng = np.random.default_rng(12)
    mdp = _sparse_mdp(rng, 300, 4, horizon=8)
    pi = pg.TabularSoftmax(300, 4, theta=rng.normal(size=(300, 4)))
    fits = [mdp.sample(pi, 400, seed=k) for k in range(2)]
    batch = mdp.sample(pi, 200, seed=7)
    vb = pg.ValueBaseline(300, 8, features=rng.normal(size=(300, 5)))

    def estimates() -> tuple[np.ndarray, np.ndarray]:
        return (pg.policy_gradient(pi, batch, baseline=vb, threads=2).grad,
                pg.policy_gradient(pi, mdp=mdp, n=200, seed=3, baseline=vb, threads=2).grad)

    expected = []
    for f in fits:
        vb.fit(f)
        expected.append(estimates())
    assert not np.array_equal(expected[0][0], expected[1][0])
    stop = threading.Event()
    bad: list[str] = []

    def refit() -> None:
        k = 0
        while not stop.is_set():
            k += 1
            vb.fit(fits[k % 2])

    def use() -> None:
        for _ in range(20):
            stored, fused = estimates()
            if not any(np.array_equal(stored, e[0]) for e in expected):
                bad.append("stored")
            if not any(np.array_equal(fused, e[1]) for e in expected):
                bad.append("fused")

    writer = threading.Thread(target=refit)
    users = [threading.Thread(target=use) for _ in range(3)]
    writer.start()
    for t in users:
        t.start()
    for t in users:
        t.join()
    stop.set()
    writer.join()
    assert not bad, bad


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through Linux's /proc")
def test_ctrl_c_stops_a_run_with_more_workers_than_the_pool_keeps() -> None:
    # In a child process: 16 workers (most on threads of the call's own), SIGINT after 0.5 s; the
    # call raises KeyboardInterrupt within 1 s and its threads are joined.
    code = textwrap.dedent(
        """
        import os, signal, threading, time
        import numpy as np
        import pgfast as pg
        S, A = 64, 4
        rng = np.random.default_rng(0)
        P = rng.dirichlet(np.ones(S), size=(S, A))
        mdp = pg.FiniteMDP(P, rng.normal(size=(S, A)), np.full(S, 1 / S), horizon=1000)
        pi = pg.TabularSoftmax(S, A)
        mdp.sample(pi, 64 * 16, seed=0, threads=16)  # starts the pool
        before = len(os.listdir("/proc/self/task"))
        sent = []
        def interrupt():
            sent.append(time.perf_counter())
            os.kill(os.getpid(), signal.SIGINT)
        timer = threading.Timer(0.5, interrupt)
        timer.start()
        try:
            pg.policy_gradient(pi, mdp=mdp, n=2_000_000, seed=0, threads=16)
            print("COMPLETED")
        except KeyboardInterrupt:
            late = time.perf_counter() - sent[0]
            timer.join()
            print("INTERRUPTED", late, len(os.listdir("/proc/self/task")) - before)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    word, *rest = out.stdout.split()
    assert word == "INTERRUPTED", out.stdout
    assert float(rest[0]) < MAX_INTERRUPT_LATENCY
    assert int(rest[1]) <= 0, "threads left behind by the interrupted call"


def test_a_subclass_with_its_own_logits_is_not_snapshotted() -> None:
    """The snapshot computes logits from theta by the built-in rule; a subclass that redefines
    logits() keeps its own rule everywhere (probs, sampling, exact)."""

    class Sharper(pg.TabularSoftmax):
        def logits(self) -> np.ndarray:
            return 3.0 * self.theta

    theta = np.random.default_rng(0).normal(size=(4, 3))
    pi = Sharper(4, 3, theta=theta)
    ref = pg.TabularSoftmax(4, 3, theta=3.0 * theta)
    mdp = _sparse_mdp(np.random.default_rng(1), 4, 3, successors=2)
    np.testing.assert_array_equal(pi.probs(), ref.probs())
    np.testing.assert_array_equal(mdp.sample(pi, 50, seed=1).actions, mdp.sample(ref, 50, seed=1).actions)
    assert pg.exact.evaluate(mdp, pi).J == pg.exact.evaluate(mdp, ref).J
