"""mdp.sample: exact replay of the documented streams, statistics against exact values,
thread-count invariance, padding, interrupts and allocation limits."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import MAX_INTERRUPT_LATENCY, random_mdp, random_policy
from scipy import stats

import pgfast as pg
from pgfast import _core
from pgfast.benchmarks import reference as _reference

ALPHA = 1e-4  # significance level of the chi-square tests (fixed seeds: deterministic outcomes)


def _u(word: int) -> float:
    return (word >> 11) * 2.0**-53


def _cdf_index(p: list[float], u: float) -> int:
    """Inverse-CDF index exactly as the C++ short-row sampler computes it."""
    total = 0.0
    for x in p:
        total += x
    acc, idx = 0.0, 0
    for x in p[:-1]:
        acc += x
        idx += acc / total <= u
    return idx


def _joint_alias(mdp: pg.FiniteMDP, probs: np.ndarray, s: int) -> tuple[int, list[int], list[int]]:
    """State s's alias table over its (a, s') entries, built exactly as the C++ JointTable does:
    (first entry, thresholds, alias entries), indexed by column."""
    indptr, _, prob, _ = mdp.transitions
    A = mdp.n_actions
    beg, end = int(indptr[s * A]), int(indptr[(s + 1) * A])
    n = end - beg
    action = [a for a in range(A) for _ in range(int(indptr[s * A + a]), int(indptr[s * A + a + 1]))]
    w = [(float(probs[s, action[j]]) * float(prob[beg + j])) * float(n) for j in range(n)]
    small = [j for j in range(n) if w[j] < 1.0]
    large = [j for j in range(n) if not w[j] < 1.0]
    thr, alias = [0] * n, [0] * n

    def put(j: int, q: float, other: int) -> None:
        full = q >= 1.0
        thr[j] = 2**64 - 1 if full else (0 if q <= 0.0 else 2 * int(q * 2.0**63))  # ~q 2^64, lowest bit 0
        alias[j] = beg + (j if full else other)

    while small and large:
        sm, lg = small.pop(), large[-1]
        put(sm, w[sm], lg)
        w[lg] = (w[lg] + w[sm]) - 1.0
        if w[lg] < 1.0:
            large.pop()
            small.append(lg)
    while large:
        put(large.pop(), 1.0, 0)
    while small:
        put(small.pop(), 1.0, 0)
    return beg, thr, alias


def _replay(mdp: pg.FiniteMDP, probs: np.ndarray, seed: int, i: int) -> tuple[list[int], list[int], list[float], int]:
    """Trajectory i of `seed`, re-derived in Python from its documented random stream: one word
    for s0 ~ mu0 (inverse CDF over mu0's support), then one word per step for the (a, s') pair
    (the alias column is the high word of word * n, kept when the low word is below its threshold)."""
    indptr, nxt, _, rew = mdp.transitions
    A, H = mdp.n_actions, mdp.horizon
    words = _core.sampling.stream_words(seed, "rollout", i, 1 + H)
    support = [s for s in range(mdp.n_states) if mdp.mu0[s] > 0]
    s = support[_cdf_index([float(mdp.mu0[x]) for x in support], _u(words[0]))]
    tables = {}
    states, actions, rewards = [], [], []
    for t in range(H):
        if s not in tables:
            tables[s] = _joint_alias(mdp, probs, s)
        beg, thr, alias = tables[s]
        n = int(indptr[(s + 1) * A]) - beg
        hi, lo = divmod(words[1 + t] * n, 2**64)
        e = beg + hi if lo < thr[hi] else alias[hi]
        states.append(s)
        actions.append(int(np.searchsorted(indptr, e, side="right") - 1) % A)
        rewards.append(float(rew[e]))
        s = int(nxt[e])
        if mdp.terminal[s]:
            break
    return states, actions, rewards, s


@pytest.mark.parametrize("n_terminal", [0, 2])
@pytest.mark.parametrize("transition_rewards", [True, False])  # R (S, A, S) / (S, A): two slot layouts
def test_sample_replays_documented_stream(rng: np.random.Generator, n_terminal: int, transition_rewards: bool) -> None:
    mdp = random_mdp(rng, S=7, A=3, successors=4, n_terminal=n_terminal, horizon=12,
                     transition_rewards=transition_rewards)
    pi = random_policy(rng, mdp)
    traj = mdp.sample(pi, 300, seed=42, threads=2)
    probs = pi.probs()
    for i in range(traj.n):
        states, actions, rewards, final = _replay(mdp, probs, 42, i)
        L = len(states)
        assert traj.lengths[i] == L
        assert traj.states[i, :L].tolist() == states
        assert traj.actions[i, :L].tolist() == actions
        assert traj.rewards[i, :L].tolist() == rewards
        assert traj.final_states[i] == final


@pytest.mark.parametrize(("horizon", "transition_rewards"), [(40, True), (37, False)])
def test_large_batch_streamed_rows_replay(rng: np.random.Generator, horizon: int, transition_rewards: bool) -> None:
    # Rows past the first 8 MiB of output (16 bytes per step) are staged and written out with
    # non-temporal stores when the episode ends (sampling.hpp, StoreSink); rows are unaligned to
    # cache lines here (H * 4 bytes is not a multiple of 64) and episodes end early in terminal
    # states, so the partial lines at both ends and the line where data turns into padding occur.
    mdp = random_mdp(rng, S=9, A=3, successors=4, n_terminal=1, horizon=horizon, transition_rewards=transition_rewards)
    pi = random_policy(rng, mdp)
    first_staged = (8 << 20) // (16 * horizon)  # first i with (i + 1) * H * 16 > 8 MiB
    n = first_staged + 200
    traj = mdp.sample(pi, n, seed=7, threads=2)
    assert len(set(traj.lengths[first_staged:].tolist())) > 5  # early ends in the staged rows too
    probs = pi.probs()
    rows = list(range(first_staged - 5, first_staged + 40)) + list(range(n - 20, n))
    for i in rows:
        states, actions, rewards, final = _replay(mdp, probs, 7, i)
        L = len(states)
        assert traj.lengths[i] == L and traj.final_states[i] == final
        assert traj.states[i, :L].tolist() == states
        assert traj.actions[i, :L].tolist() == actions
        assert traj.rewards[i, :L].tolist() == rewards
    mask = traj.mask
    assert (traj.states[~mask] == pg.PAD_INDEX).all() and (traj.actions[~mask] == pg.PAD_INDEX).all()
    assert (traj.rewards[~mask] == 0.0).all()
    one = mdp.sample(pi, n, seed=7, threads=1)
    for name in ("states", "actions", "rewards", "lengths", "final_states"):
        np.testing.assert_array_equal(getattr(one, name), getattr(traj, name))


def test_rewards_are_the_transitions_bit_for_bit(rng: np.random.Generator) -> None:
    # Rewards that depend on (s, a) only are read from an (S, A) table, others from the slots
    # (sampling.hpp): either way a step's reward is R[s, a, s'] exactly, the sign of a zero included.
    S, A = 4, 2
    P = rng.dirichlet(np.ones(S), size=(S, A))
    R = np.repeat(rng.normal(size=(S, A, 1)), S, axis=2)
    R[0] = 0.0
    R[0, :, 1] = -0.0  # equal to 0.0, but not the same bits
    mdp = pg.FiniteMDP(P, R, np.full(S, 1 / S), horizon=30)
    traj = mdp.sample(pg.TabularSoftmax(S, A), 500, seed=3)
    assert (traj.lengths == mdp.horizon).all()  # no terminal states: s' is the next column
    nxt = np.concatenate([traj.states[:, 1:], traj.final_states[:, None]], axis=1)
    m = traj.mask
    expected = R[traj.states[m], traj.actions[m], nxt[m]]
    assert expected.view(np.uint64).tolist() == traj.rewards[m].view(np.uint64).tolist()
    assert np.signbit(traj.rewards[m]).any()


def test_padding_lengths_and_final_states(rng: np.random.Generator) -> None:
    mdp = random_mdp(rng, S=8, A=2, successors=3, n_terminal=3, horizon=15)
    traj = mdp.sample(random_policy(rng, mdp), 2000, seed=1)
    H = mdp.horizon
    assert traj.states.shape == traj.actions.shape == traj.rewards.shape == (2000, H)
    assert traj.states.dtype == traj.actions.dtype == np.int32 and traj.rewards.dtype == np.float64
    assert traj.lengths.dtype == traj.final_states.dtype == np.int32
    assert ((traj.lengths >= 1) & (traj.lengths <= H)).all()
    mask = traj.mask
    assert (traj.states[~mask] == pg.PAD_INDEX).all() and (traj.actions[~mask] == pg.PAD_INDEX).all()
    assert (traj.rewards[~mask] == 0.0).all()
    assert (traj.states[mask] >= 0).all() and not mdp.terminal[traj.states[mask]].any()
    # an episode shorter than H ended by entering a terminal state
    short = traj.lengths < H
    assert short.any() and mdp.terminal[traj.final_states[short]].all()
    assert (traj.terminated == mdp.terminal[traj.final_states]).all()
    assert traj.n_steps == int(mask.sum())


def test_identical_for_any_thread_count_and_prefix(rng: np.random.Generator) -> None:
    mdp = random_mdp(rng, S=30, A=4, successors=5, n_terminal=4, horizon=40)
    pi = random_policy(rng, mdp)
    n = 3 * 256 + 17  # several trajectory blocks and a partial one
    ref = mdp.sample(pi, n, seed=2026, threads=1)
    for threads in (2, 7):
        other = mdp.sample(pi, n, seed=2026, threads=threads)
        for name in ("states", "actions", "rewards", "lengths", "final_states"):
            np.testing.assert_array_equal(getattr(ref, name), getattr(other, name))
    prefix = mdp.sample(pi, 100, seed=2026, threads=3)
    np.testing.assert_array_equal(prefix.states, ref.states[:100])
    assert not np.array_equal(mdp.sample(pi, n, seed=2027).states, ref.states)


def test_concurrent_python_threads_and_pool_wake_ups(rng: np.random.Generator) -> None:
    """Calls from several Python threads at once (one gets the worker pool, the others spawn
    threads) give the single-thread batches; waking the pool while other threads' jobs run
    (it then does nothing) neither deadlocks nor changes a result."""
    import threading

    mdp = random_mdp(rng, S=30, A=4, successors=5, n_terminal=4, horizon=40)
    pi = random_policy(rng, mdp)
    seeds = [11, 12, 13, 14]
    ref = {s: mdp.sample(pi, 2000, seed=s, threads=1) for s in seeds}
    got: dict[int, pg.Trajectories] = {}
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            for _ in range(5):
                got[seed] = mdp.sample(pi, 2000, seed=seed, threads=2)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    workers = [threading.Thread(target=work, args=(s,)) for s in seeds]
    for w in workers:
        w.start()
    for k in range(200):  # wake-ups from this thread while the others run jobs
        _core.info.wake_workers(1 + k % 4)
    for w in workers:
        w.join(timeout=60)
    assert not any(w.is_alive() for w in workers), "a sampling thread hung"
    assert not errors, errors
    for s in seeds:
        for name in ("states", "actions", "rewards", "lengths", "final_states"):
            np.testing.assert_array_equal(getattr(got[s], name), getattr(ref[s], name))


def _chi2_pvalue(observed: np.ndarray, expected_probs: np.ndarray) -> float:
    """Pooled chi-square test over rows: observed counts (rows, k) against row probabilities."""
    totals = observed.sum(axis=1, keepdims=True)
    expected = totals * expected_probs
    keep = expected > 0
    assert (observed[~keep] == 0).all(), "a zero-probability outcome was sampled"
    stat = float((((observed - expected) ** 2)[keep] / expected[keep]).sum())
    dof = int(keep.sum() - (totals[:, 0] > 0).sum())
    return float(stats.chi2.sf(stat, dof))


@pytest.mark.parametrize("successors", [3, 12, 40])  # 40 > 16: alias-method rows
def test_action_and_transition_frequencies(rng: np.random.Generator, successors: int) -> None:
    S, A = 40, 5
    mdp = random_mdp(rng, S=S, A=A, successors=successors, horizon=25)
    pi = random_policy(rng, mdp)
    traj = mdp.sample(pi, 20000, seed=7)
    mask = traj.mask
    s, a = traj.states[mask], traj.actions[mask]
    # next state of every step: the following state, or the final state at the last step
    nxt = np.where(np.arange(mdp.horizon)[None, :] + 1 < traj.lengths[:, None], np.roll(traj.states, -1, axis=1), traj.final_states[:, None])[mask]
    sa_counts = np.zeros((S, A))
    np.add.at(sa_counts, (s, a), 1)
    assert _chi2_pvalue(sa_counts, pi.probs()) > ALPHA
    trans_counts = np.zeros((S * A, S))
    np.add.at(trans_counts, (s * A + a, nxt), 1)
    assert _chi2_pvalue(trans_counts, mdp.P.reshape(S * A, S)) > ALPHA
    first = np.bincount(traj.states[:, 0], minlength=S)[None, :]
    assert _chi2_pvalue(first.astype(float), mdp.mu0[None, :]) > ALPHA


@pytest.mark.parametrize(
    ("n_terminal", "gamma", "transition_rewards"),
    [(0, 1.0, False), (2, 1.0, False), (2, 0.9, True), (0, 0.7, True), (3, 1.0, True)],
)
def test_mean_return_matches_dynamic_programming(
    rng: np.random.Generator, n_terminal: int, gamma: float, transition_rewards: bool
) -> None:
    mdp = random_mdp(rng, S=9, A=3, successors=4, n_terminal=n_terminal, horizon=20, gamma=gamma,
                     transition_rewards=transition_rewards)
    pi = random_policy(rng, mdp)
    _, _, J = _reference.finite_horizon_values(mdp, pi.probs())
    G = mdp.sample(pi, 40000, seed=11).returns()
    se = G.std(ddof=1) / np.sqrt(G.size)
    assert abs(G.mean() - J) < 4 * se


def test_step_distribution_matches(rng: np.random.Generator) -> None:
    # P(episode alive and in state s at step t) against the exact forward recursion, each cell
    # within 4 binomial standard errors (Bonferroni over the H*S cells: alpha ~ 6e-5 * 150 < 1e-2).
    mdp = random_mdp(rng, S=6, A=2, successors=3, n_terminal=1, horizon=25)
    pi = random_policy(rng, mdp)
    d = _reference.step_distributions(mdp, pi.probs())
    n = 50000
    traj = mdp.sample(pi, n, seed=3)
    freq = np.zeros_like(d)
    for t in range(mdp.horizon):
        col = traj.states[:, t]
        freq[t] = np.bincount(col[col >= 0], minlength=mdp.n_states) / n
    se = np.sqrt(np.maximum(d * (1 - d), 1e-12) / n)
    assert (np.abs(freq - d) < 4.5 * se + 1e-12).all()


def test_horizon_one_single_trajectory(rng: np.random.Generator) -> None:
    mdp = random_mdp(rng, S=4, A=2, successors=2, horizon=1)
    traj = mdp.sample(random_policy(rng, mdp), 1, seed=0)
    assert traj.states.shape == (1, 1) and traj.lengths.tolist() == [1]
    assert traj.returns().shape == (1,) and traj.returns()[0] == traj.rewards[0, 0]


def test_terminal_at_first_step() -> None:
    # from state 0 every action enters terminal state 1: every episode has length 1
    P = np.zeros((2, 2, 2))
    P[:, :, 1] = 1.0
    mdp = pg.FiniteMDP(P, np.array([[1.0, 2.0], [0.0, 0.0]]), [1.0, 0.0], horizon=5, terminal=[False, True])
    traj = mdp.sample(pg.TabularSoftmax(2, 2), 100, seed=0)
    assert (traj.lengths == 1).all() and (traj.final_states == 1).all()
    assert (traj.states[:, 1:] == -1).all()
    assert set(traj.returns().tolist()) == {1.0, 2.0}


def test_bad_sample_arguments(rng: np.random.Generator) -> None:
    mdp = random_mdp(rng, S=5, A=2, successors=2, horizon=10)
    pi = random_policy(rng, mdp)
    for bad_n in (0, -3):
        with pytest.raises(ValueError, match="n must be >= 1"):
            mdp.sample(pi, bad_n, seed=0)
    for bad_n in (2.5, "10", None, True):
        with pytest.raises(TypeError, match="n must be an integer"):
            mdp.sample(pi, bad_n, seed=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed"):
        mdp.sample(pi, 10, seed=-1)
    with pytest.raises(ValueError, match="seed"):
        mdp.sample(pi, 10, seed=2**64)
    with pytest.raises(TypeError, match="seed"):
        mdp.sample(pi, 10, seed=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threads"):
        mdp.sample(pi, 10, seed=0, threads=0)
    with pytest.raises(ValueError, match="policy is sized for"):
        mdp.sample(pg.TabularSoftmax(6, 2), 10, seed=0)
    with pytest.raises(MemoryError, match="GiB"):
        mdp.sample(pi, 10**12, seed=0)


def test_seed_none_draws_and_records_a_seed(rng: np.random.Generator) -> None:
    mdp = random_mdp(rng, S=5, A=2, successors=2, horizon=10)
    pi = random_policy(rng, mdp)
    traj = mdp.sample(pi, 50, seed=None)
    assert isinstance(traj.seed, int)
    np.testing.assert_array_equal(mdp.sample(pi, 50, seed=traj.seed).states, traj.states)


def test_ctrl_c_interrupts_a_long_run_within_a_second() -> None:
    # In a child process: a 5e8-step run (about 8 GB if it completed: pages are only touched as
    # they are written), SIGINT after 0.5 s; the call must raise KeyboardInterrupt within 1 s.
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
        sent = []
        def interrupt():
            sent.append(time.perf_counter())
            os.kill(os.getpid(), signal.SIGINT)
        threading.Timer(0.5, interrupt).start()
        try:
            mdp.sample(pi, 500_000, seed=0, threads=2)
            print("COMPLETED")
        except KeyboardInterrupt:
            print("INTERRUPTED", time.perf_counter() - sent[0])
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    word, *rest = out.stdout.split()
    assert word == "INTERRUPTED", out.stdout
    assert float(rest[0]) < MAX_INTERRUPT_LATENCY
