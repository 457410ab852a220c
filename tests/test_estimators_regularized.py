"""Sampled estimators of regularised objectives: pg.policy_gradient(..., entropy=tau) and
pg.policy_gradient(..., regularizer=pg.Entropy(tau) | pg.LogBarrier(lam)).

1. Unbiasedness against the exact regularised gradient and value, for tabular, linear and MLP
   policies, every weight and baseline, stored and fused (a family of z-tests on the estimators'
   own standard errors, Bonferroni-corrected as in tests/test_estimators.py), and the power of
   that check (the unregularised estimate, or another temperature, is rejected).
2. The exact reference itself against finite differences of the regularised objective.
3. Same episodes as without the regulariser (fused), fused == stored, hand-computed soft
   weights, the barrier added to every per-trajectory row.
4. A strength of 0 is the unregularised estimate bit for bit; same seed, same bits for every
   thread count.
5. Rejected inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from helpers import Family, assert_close, hand_grad, random_mdp, random_softmax, tiny_problem

import pgfast as pg
from pgfast._regularizers import barrier_logit_grad, soft_mdp

N_BIG = 100_000  # trajectories of the large batches (H <= 6)

Reg = pg.Entropy | pg.LogBarrier


def exact_regularized(mdp: pg.FiniteMDP, pi: pg.SoftmaxPolicy, reg: Reg, gamma: float | None = None) -> tuple[np.ndarray, float]:
    """(grad J_reg, J_reg) exactly, from pg.exact."""
    grad, ev = pg.exact.gradient(mdp, pi, gamma=gamma, regularizer=reg, return_evaluation=True)
    return grad, ev.J


def make_policy(kind: str, mdp: pg.FiniteMDP, rng: np.random.Generator) -> pg.SoftmaxPolicy:
    if kind == "mlp":
        return pg.MLPSoftmax(mdp.n_states, mdp.n_actions, hidden=(5,), seed=int(rng.integers(1000)))
    return random_softmax(kind, mdp, rng)


# -- 1. unbiasedness ------------------------------------------------------------------------------

UNBIASED_CASES = [
    # (kind, regularizer, S, A, H, n_terminal, gamma, transition_rewards)
    ("tabular", pg.Entropy(0.5), 6, 3, 6, 0, 1.0, False),
    ("tabular", pg.Entropy(0.3), 5, 3, 6, 2, 0.9, True),
    ("linear", pg.Entropy(0.4), 6, 3, 6, 1, 1.0, True),
    ("mlp", pg.Entropy(0.3), 6, 3, 5, 1, 0.9, False),
    ("tabular", pg.LogBarrier(0.05), 6, 3, 6, 1, 0.9, True),
    ("linear", pg.LogBarrier(0.1), 5, 3, 6, 0, 1.0, False),
    ("mlp", pg.LogBarrier(0.05), 6, 3, 5, 2, 1.0, True),
]


@pytest.mark.parametrize(("kind", "reg", "S", "A", "H", "n_terminal", "gamma", "transition_rewards"), UNBIASED_CASES)
def test_regularized_estimators_are_unbiased(
    rng: np.random.Generator, kind: str, reg: Reg, S: int, A: int, H: int, n_terminal: int, gamma: float,
    transition_rewards: bool,
) -> None:
    mdp = random_mdp(rng, S=S, A=A, successors=4, n_terminal=n_terminal, horizon=H, gamma=gamma,
                     transition_rewards=transition_rewards)
    pi = make_policy(kind, mdp, rng)
    exact, J = exact_regularized(mdp, pi, reg)
    g_alt = 0.5
    exact_alt, J_alt = exact_regularized(mdp, pi, reg, gamma=g_alt)
    early = mdp.sample(pi, 5_000, seed=201)  # an earlier batch to fit a ValueBaseline on
    traj = mdp.sample(pi, N_BIG, seed=202)
    fitted = pg.ValueBaseline(S, H).fit(early)

    fam = Family()
    stored: dict[str, dict[str, Any]] = {
        "rtg": {}, "return": {"weights": "return"},
        "rtg+mean": {"baseline": "mean"}, "return+mean": {"weights": "return", "baseline": "mean"},
        "rtg+time": {"baseline": "time"},
        "rtg+exact": {"baseline": "exact"}, "return+exact": {"weights": "return", "baseline": "exact"},
        "rtg+fitted": {"baseline": fitted},
        "rtg+cross-fitted": {"baseline": pg.ValueBaseline(S, H)},
        "return+cross-fitted": {"weights": "return", "baseline": pg.ValueBaseline(S, H)},
    }
    if kind != "mlp":  # the optimal baseline's NumPy loop over coordinates: kept to the small policies
        stored["rtg+optimal"] = {"baseline": "optimal"}
        stored["return+optimal"] = {"weights": "return", "baseline": "optimal"}
    for name, kw in stored.items():
        est = pg.policy_gradient(pi, traj, regularizer=reg, **kw)
        assert est.n == N_BIG
        fam.grad(name, est, exact, J)
    for name, kw in {"rtg gamma=.5": {}, "return+exact gamma=.5": {"weights": "return", "baseline": "exact"}}.items():
        fam.grad(name, pg.policy_gradient(pi, traj, gamma=g_alt, regularizer=reg, **kw), exact_alt, J_alt)
    fused: dict[str, dict[str, Any]] = {
        "fused rtg": {}, "fused return": {"weights": "return"}, "fused rtg+exact": {"baseline": "exact"},
        "fused rtg+fitted": {"baseline": fitted}, "fused rtg+mean": {"baseline": "mean"},
        "fused return+mean": {"weights": "return", "baseline": "mean"}, "fused rtg+time": {"baseline": "time"},
    }
    for name, kw in fused.items():
        fam.grad(name, pg.policy_gradient(pi, mdp=mdp, n=N_BIG, seed=203, regularizer=reg, **kw), exact, J)
    fam.check()


@pytest.mark.parametrize("reg", [pg.Entropy(0.3), pg.LogBarrier(0.05)])
def test_unbiasedness_check_has_power(rng: np.random.Generator, reg: Reg) -> None:
    # The same family check rejects the unregularised estimate, and for the entropy bonus one at
    # 10% off the temperature: the regulariser's contribution is many standard errors.
    mdp = random_mdp(rng, S=6, A=3, successors=4, n_terminal=1, horizon=6, gamma=0.9)
    pi = random_softmax("tabular", mdp, rng)
    exact, J = exact_regularized(mdp, pi, reg)
    traj = mdp.sample(pi, N_BIG, seed=5)
    wrong: list[dict[str, Any]] = [{}]
    if isinstance(reg, pg.Entropy):
        wrong.append({"entropy": 1.1 * reg.tau})
    for kw in wrong:
        for est in (pg.policy_gradient(pi, traj, baseline="time", **kw),
                    pg.policy_gradient(pi, mdp=mdp, n=N_BIG, seed=6, baseline="time", **kw)):
            fam = Family()
            fam.add("grad", est.grad, est.stderr, exact)
            with pytest.raises(AssertionError):
                fam.check()
    right = Family()
    right.grad("right", pg.policy_gradient(pi, traj, baseline="time", regularizer=reg), exact, J)
    right.check()


# -- 2. the exact reference -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tabular", "linear", "mlp"])
@pytest.mark.parametrize("reg", [pg.Entropy(0.7), pg.LogBarrier(0.2)])
def test_exact_reference(rng: np.random.Generator, kind: str, reg: Reg) -> None:
    """The reference of the unbiasedness tests: the soft-reward MDP with the policy held fixed in
    the reward (entropy), J's gradient plus the barrier's logit gradient (log-barrier); and it is
    the gradient of J_reg(theta) with theta in the regulariser too (finite differences)."""
    mdp = random_mdp(rng, S=5, A=3, successors=3, n_terminal=1, horizon=5, gamma=0.9, transition_rewards=True)
    pi = make_policy(kind, mdp, rng)
    grad, J = exact_regularized(mdp, pi, reg)
    probs = pi.probs()
    if isinstance(reg, pg.Entropy):
        soft = soft_mdp(mdp, probs, reg.tau)
        np.testing.assert_allclose(grad, pg.exact.gradient(soft, pi), rtol=1e-12, atol=1e-14)
        ev = pg.exact.evaluate(mdp, pi)
        ent = -(probs * np.log(probs)).sum(axis=1)  # J_tau = J + tau sum_t gamma^t E[H(pi(.|s_t))]
        disc = mdp.gamma ** np.arange(mdp.horizon)
        assert J == pytest.approx(ev.J + reg.tau * float(disc @ ev.state_distribution @ ent), rel=1e-12)
        assert J > ev.J + 1e-3
    else:
        np.testing.assert_allclose(grad, pg.exact.gradient(mdp, pi) + pi._logit_vjp(barrier_logit_grad(probs, reg.lam)),
                                   rtol=1e-12, atol=1e-14)
        assert J == pytest.approx(pg.exact.evaluate(mdp, pi).J + reg.lam * float(np.log(probs).sum()), rel=1e-12)
    theta = pi.theta.copy()

    def J_at(th: np.ndarray) -> float:
        pi.theta = th
        return exact_regularized(mdp, pi, reg)[1]

    h = 1e-6
    fd = np.zeros(theta.size)
    for k in range(theta.size):
        e = np.zeros(theta.size)
        e[k] = h
        fd[k] = (J_at(theta + e.reshape(theta.shape)) - J_at(theta - e.reshape(theta.shape))) / (2 * h)
    pi.theta = theta
    np.testing.assert_allclose(grad.ravel(), fd, rtol=1e-6, atol=1e-8)


# -- 3. the episodes, fused == stored, hand-computed weights ------------------------------------------


def _bits(r: pg.PolicyGradient) -> tuple[bytes, ...]:
    parts = [np.asarray(r.grad).tobytes(), np.asarray(r.stderr).tobytes(), np.float64(r.value).tobytes(),
             np.float64(r.value_stderr).tobytes(), np.int64(r.n_steps).tobytes()]
    if r.per_trajectory is not None:
        parts.append(np.asarray(r.per_trajectory).tobytes())
    return tuple(parts)


@pytest.mark.parametrize("sa_rewards", [True, False])
def test_entropy_samples_the_same_episodes(rng: np.random.Generator, sa_rewards: bool) -> None:
    """Sampling reads only the transitions: the soft-reward MDP draws the very episodes of the MDP
    for a seed (states, actions, lengths, final states), and its rewards are the batch's plus
    -tau log pi(a_t|s_t); the fused estimate with the bonus simulates them (same n_steps, and the
    value of the batch's soft returns)."""
    mdp = random_mdp(rng, S=6, A=3, successors=4, n_terminal=2, horizon=7, gamma=0.9, transition_rewards=not sa_rewards)
    pi = random_softmax("tabular", mdp, rng)
    tau = 0.4
    soft = soft_mdp(mdp, pi.probs(), tau)
    plain, softb = mdp.sample(pi, 5000, seed=11), soft.sample(pi, 5000, seed=11)
    for field in ("states", "actions", "lengths", "final_states"):
        assert np.array_equal(getattr(plain, field), getattr(softb, field)), field
    mask = plain.mask
    bonus = -tau * pi.log_probs()[np.where(mask, plain.states, 0), np.where(mask, plain.actions, 0)]
    np.testing.assert_allclose(softb.rewards[mask], plain.rewards[mask] + bonus[mask], rtol=1e-14, atol=1e-15)
    assert (softb.rewards[~mask] == 0).all()
    fused = pg.policy_gradient(pi, mdp=mdp, n=5000, seed=11, entropy=tau)
    fused_plain = pg.policy_gradient(pi, mdp=mdp, n=5000, seed=11)
    assert fused.n_steps == fused_plain.n_steps == plain.n_steps
    G = softb.returns()
    assert fused.value == pytest.approx(G.mean(), rel=1e-12, abs=1e-14)
    assert fused.value != fused_plain.value


@pytest.mark.parametrize("kind", ["tabular", "linear", "mlp"])
@pytest.mark.parametrize("reg", [pg.Entropy(0.4), pg.LogBarrier(0.03)])
def test_fused_equals_stored(rng: np.random.Generator, kind: str, reg: Reg) -> None:
    # the same episodes and soft rewards: only the order of the sums over trajectories differs
    # (1e-12 of the RMS per-trajectory gradient, as in tests/test_estimators.py)
    mdp = random_mdp(rng, S=6, A=3, successors=4, n_terminal=2, horizon=6, gamma=0.9, transition_rewards=True)
    pi = make_policy(kind, mdp, rng)
    n, seed = 20_000, 77
    traj = mdp.sample(pi, n, seed=seed)
    fitted = pg.ValueBaseline(6, 6).fit(mdp.sample(pi, 2000, seed=1))
    cases: list[dict[str, Any]] = [{}, {"weights": "return"}, {"baseline": "exact"}, {"baseline": fitted},
                                   {"baseline": "mean"}, {"weights": "return", "baseline": "mean"}, {"baseline": "time"}]
    for kw in cases:
        two = pg.policy_gradient(pi, traj, per_trajectory=True, regularizer=reg, **kw)
        fused = pg.policy_gradient(pi, mdp=mdp, n=n, seed=seed, regularizer=reg, **kw)
        rows = two.per_trajectory
        assert rows is not None
        rms = np.sqrt((rows**2).mean(axis=0)).reshape(two.grad.shape)
        assert (np.abs(fused.grad - two.grad) <= 1e-12 * rms).all(), (kw, np.abs(fused.grad - two.grad).max())
        assert fused.value == pytest.approx(two.value, rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(fused.stderr, two.stderr, rtol=1e-9, atol=0)
        totals = pg.policy_gradient(pi, mdp=mdp, n=n, seed=seed, regularizer=reg, stderr=False, **kw)
        assert (np.abs(totals.grad - two.grad) <= 1e-12 * rms).all(), (kw, np.abs(totals.grad - two.grad).max())


def test_entropy_weights_by_hand() -> None:
    """The tiny hand-written batch: each real step's reward r_t - tau log pi(a_t|s_t) in the
    weights of every form, by loops (the padding takes no bonus)."""
    mdp, pi, traj = tiny_problem()
    tau = 0.7
    logp = pi.log_probs()
    r = traj.rewards.copy()
    for i in range(traj.n):
        for t in range(int(traj.lengths[i])):
            r[i, t] -= tau * logp[traj.states[i, t], traj.actions[i, t]]
    H, g = 3, 0.5
    G = np.zeros_like(r)  # soft reward-to-go, then the soft returns
    for i in range(traj.n):
        acc = 0.0
        for t in range(int(traj.lengths[i]) - 1, -1, -1):
            acc = r[i, t] + g * acc
            G[i, t] = acc
    ret = G[:, 0]
    disc = g ** np.arange(H)
    est = pg.policy_gradient(pi, traj, entropy=tau, per_trajectory=True)
    assert_close(est.grad, hand_grad(pi, traj, disc * G))
    assert est.value == pytest.approx(ret.mean(), rel=1e-14)
    assert est.value_stderr == pytest.approx(np.std(ret, ddof=1) / np.sqrt(3), rel=1e-12)
    assert_close(pg.policy_gradient(pi, traj, weights="return", entropy=tau).grad,
                 hand_grad(pi, traj, np.repeat(ret[:, None], H, axis=1)))
    # leave-one-out mean of the other soft returns
    b = (ret.sum() - ret) / 2
    assert_close(pg.policy_gradient(pi, traj, weights="return", baseline="mean", entropy=tau).grad,
                 hand_grad(pi, traj, np.repeat((ret - b)[:, None], H, axis=1)))
    # exact: V_t(s) of the soft rewards (the MDP's rewards plus tau H(pi(.|s)) in expectation)
    V = pg.exact.evaluate(soft_mdp(mdp, pi.probs(), tau), pi).V
    assert not np.allclose(V, pg.exact.evaluate(mdp, pi).V)
    bV = np.where(traj.mask, V[np.arange(H)[None, :], np.where(traj.mask, traj.states, 0)], 0.0)
    assert_close(pg.policy_gradient(pi, traj, baseline="exact", entropy=tau).grad, hand_grad(pi, traj, disc * (G - bV)))
    # the regulariser's keyword form gives the same bits
    assert _bits(pg.policy_gradient(pi, traj, regularizer=pg.Entropy(tau), per_trajectory=True)) == _bits(est)
    # the batch itself is left as it was
    assert_close(traj.rewards, tiny_problem()[2].rewards)


@pytest.mark.parametrize("kind", ["tabular", "linear", "mlp"])
def test_barrier_adds_its_exact_gradient_to_every_row(rng: np.random.Generator, kind: str) -> None:
    mdp = random_mdp(rng, S=5, A=3, successors=3, n_terminal=1, horizon=5, gamma=0.9)
    pi = make_policy(kind, mdp, rng)
    lam = 0.2
    traj = mdp.sample(pi, 300, seed=4)
    gb = pi._logit_vjp(barrier_logit_grad(pi.probs(), lam))
    assert np.abs(gb).max() > 1e-3
    bv = lam * float(np.log(pi.probs()).sum())
    for kw in ({}, {"baseline": "optimal"}, {"baseline": pg.ValueBaseline(5, 5)}, {"weights": "return", "baseline": "mean"}):
        plain = pg.policy_gradient(pi, traj, per_trajectory=True, **kw)
        reg = pg.policy_gradient(pi, traj, per_trajectory=True, regularizer=pg.LogBarrier(lam), **kw)
        assert plain.per_trajectory is not None and reg.per_trajectory is not None
        assert_close(reg.per_trajectory, plain.per_trajectory + gb.ravel())
        assert_close(reg.grad, plain.grad + gb)
        assert_close(reg.per_trajectory.mean(axis=0), reg.grad.ravel())
        assert np.array_equal(reg.stderr, plain.stderr) and reg.value_stderr == plain.value_stderr
        assert reg.value == pytest.approx(plain.value + bv, rel=1e-14)
    fused = pg.policy_gradient(pi, mdp=mdp, n=300, seed=4, regularizer=pg.LogBarrier(lam))
    fused_plain = pg.policy_gradient(pi, mdp=mdp, n=300, seed=4)
    assert np.array_equal(fused.grad, fused_plain.grad + gb) and np.array_equal(fused.stderr, fused_plain.stderr)


def test_probabilities_at_the_current_theta(rng: np.random.Generator) -> None:
    """The bonus and the barrier use pi at the theta of the call: after an assignment to theta,
    the estimate is that of a fresh policy at the new theta."""
    mdp = random_mdp(rng, S=5, A=3, successors=3, horizon=5)
    pi = random_softmax("tabular", mdp, rng)
    traj = mdp.sample(pi, 500, seed=2)
    for reg in (pg.Entropy(0.5), pg.LogBarrier(0.1)):
        pg.policy_gradient(pi, traj, regularizer=reg)  # caches the tables at the first theta
        pi.theta = pi.theta + rng.normal(size=pi.theta.shape)
        fresh = pg.TabularSoftmax(5, 3, theta=pi.theta)
        assert _bits(pg.policy_gradient(pi, traj, regularizer=reg)) == _bits(pg.policy_gradient(fresh, traj, regularizer=reg))
        assert _bits(pg.policy_gradient(pi, mdp=mdp, n=500, seed=3, regularizer=reg)) == _bits(
            pg.policy_gradient(fresh, mdp=mdp, n=500, seed=3, regularizer=reg))


# -- 4. zero strength, thread counts ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["tabular", "linear", "mlp"])
def test_zero_strength_is_the_unregularized_estimate_bit_for_bit(rng: np.random.Generator, kind: str) -> None:
    mdp = random_mdp(rng, S=6, A=3, successors=4, n_terminal=1, horizon=6, gamma=0.9, transition_rewards=True)
    pi = make_policy(kind, mdp, rng)
    traj = mdp.sample(pi, 2000, seed=8)
    zeros: list[dict[str, Any]] = [{"entropy": 0.0}, {"entropy": 0}, {"regularizer": pg.Entropy(0.0)},
                                   {"regularizer": pg.LogBarrier(0.0)}, {"regularizer": None}, {"entropy": None}]
    options: list[dict[str, Any]] = [{}, {"weights": "return"}, {"baseline": "exact"}, {"baseline": "time"},
                                     {"baseline": "optimal", "per_trajectory": True}, {"baseline": pg.ValueBaseline(6, 6)}]
    for opts in options:
        ref = _bits(pg.policy_gradient(pi, traj, **opts))
        for z in zeros:
            assert _bits(pg.policy_gradient(pi, traj, **opts, **z)) == ref, (opts, z)
    for opts in options[:4]:
        ref = _bits(pg.policy_gradient(pi, mdp=mdp, n=2000, seed=9, **opts))
        for z in zeros:
            assert _bits(pg.policy_gradient(pi, mdp=mdp, n=2000, seed=9, **opts, **z)) == ref, (opts, z)


THREADS = [1, 2, 3, 7, 16]


@pytest.mark.parametrize("kind", ["tabular", "linear", "mlp"])
@pytest.mark.parametrize("reg", [pg.Entropy(0.2), pg.LogBarrier(0.01)])
def test_same_bits_for_any_thread_count(kind: str, reg: Reg) -> None:
    from helpers import frozenlake_8x8, frozenlake_policy

    mdp = frozenlake_8x8()
    pi = frozenlake_policy(kind, np.random.default_rng(3))
    traj = mdp.sample(pi, 3001, seed=5)
    for opts in ({}, {"baseline": "time"}, {"baseline": "time", "stderr": False}, {"weights": "return", "baseline": "exact"}):
        fused = {t: _bits(pg.policy_gradient(pi, mdp=mdp, n=3001, seed=3, threads=t, regularizer=reg, **opts))
                 for t in THREADS}
        assert all(fused[t] == fused[1] for t in THREADS), (opts, {t: fused[t] == fused[1] for t in THREADS})
        stored = {t: _bits(pg.policy_gradient(pi, traj, threads=t, regularizer=reg, **opts)) for t in THREADS}
        assert all(stored[t] == stored[1] for t in THREADS), (opts, {t: stored[t] == stored[1] for t in THREADS})


# -- 5. rejected inputs -------------------------------------------------------------------------------


def test_bad_regularizer_arguments(small: Any) -> None:
    mdp, pi, traj = small
    for call in (lambda **kw: pg.policy_gradient(pi, traj, **kw), lambda **kw: pg.policy_gradient(pi, mdp=mdp, n=10, seed=0, **kw)):
        with pytest.raises(ValueError, match="either entropy=tau or regularizer="):
            call(entropy=0.1, regularizer=pg.Entropy(0.1))
        with pytest.raises(ValueError, match="either entropy=tau or regularizer="):
            call(entropy=0.1, regularizer=pg.LogBarrier(0.1))
        for bad in (-0.1, float("nan"), float("inf")):
            with pytest.raises(ValueError, match="entropy must be a finite temperature tau >= 0"):
                call(entropy=bad)
        for bad_type in ("0.1", True, [0.1]):
            with pytest.raises(TypeError, match="entropy must be a real number"):
                call(entropy=bad_type)
        for bad_reg in ("entropy", 0.1, pg.Entropy):
            with pytest.raises(TypeError, match="regularizer must be pgfast.Entropy"):
                call(regularizer=bad_reg)
    with pytest.raises(ValueError, match="tau must be a finite number >= 0"):
        pg.Entropy(-1.0)
    with pytest.raises(ValueError, match="lam must be a finite number >= 0"):
        pg.LogBarrier(float("inf"))


def test_barrier_of_a_policy_with_a_zero_probability(small: Any) -> None:
    mdp, _, traj = small
    theta = np.zeros((mdp.n_states, mdp.n_actions))
    theta[0, 0] = 800.0  # exp(-800) underflows: pi(1|0) = pi(2|0) = 0
    pi = pg.TabularSoftmax(mdp.n_states, mdp.n_actions, theta=theta)
    assert pi.probs()[0, 1] == 0.0
    with pytest.raises(ValueError, match="log-barrier .* is -inf: a probability of the policy is 0"):
        pg.policy_gradient(pi, mdp=mdp, n=10, seed=0, regularizer=pg.LogBarrier(0.1))
    with pytest.raises(ValueError, match="log-barrier .* is -inf"):
        pg.policy_gradient(pi, traj, regularizer=pg.LogBarrier(0.1))
    # the entropy bonus of a never-taken action is 0 (0 log 0 = 0): finite, like the unregularised estimate
    assert np.isfinite(pg.policy_gradient(pi, mdp=mdp, n=50, seed=0, entropy=0.5).grad).all()


@pytest.mark.parametrize("bad", [-1, 3])
def test_out_of_range_steps_are_named_with_entropy(bad: int) -> None:
    mdp, pi, traj = tiny_problem()
    for field in ("states", "actions"):
        arrays = {"states": traj.states.copy(), "actions": traj.actions.copy()}
        arrays[field][0, 1] = bad
        batch = pg.Trajectories(mdp, arrays["states"], arrays["actions"], traj.rewards.copy(), traj.lengths.copy(),
                                traj.final_states.copy())
        with pytest.raises(ValueError, match=rf"{field}\[0, 1\] = {bad} is out of range"):
            pg.policy_gradient(pi, batch, entropy=0.3)


def test_calls_that_take_no_regularizer(rng: np.random.Generator, small: Any) -> None:
    """The LQR and vector-state forms refuse one (a ValueError naming the keywords); the
    off-policy estimators have no such keyword."""
    mdp, pi, traj = small
    lqr = pg.LQR(A=[[0.9]], B=[[1.0]], Q=[[1.0]], R=[[1.0]], x0=[1.0], horizon=5)
    gauss = pg.LinearGaussian(1, 1, W=[[0.0]])
    batch = pg.ContinuousTrajectories(states=[[[1.0]], [[2.0]]], actions=[[[1.5]], [[0.0]]], rewards=[[1.0], [3.0]],
                                      lengths=[1, 1])
    for kw in ({"entropy": 0.1}, {"regularizer": pg.LogBarrier(0.1)}, {"entropy": 0.0}):
        with pytest.raises(ValueError, match="regularizer= and entropy= apply to finite MDPs .* not to an LQR"):
            pg.policy_gradient(gauss, mdp=lqr, n=10, seed=0, **kw)
        with pytest.raises(ValueError, match="not to a ContinuousTrajectories batch"):
            pg.policy_gradient(gauss, batch, **kw)
    beta = random_softmax("tabular", mdp, rng)
    with pytest.raises(TypeError, match="entropy"):
        pg.off_policy_gradient(pi, beta, traj, entropy=0.1)  # type: ignore[call-arg]


# -- 6. pg.train with a regulariser ---------------------------------------------------------------------


def _train_by_hand(mdp: pg.FiniteMDP, pi: pg.SoftmaxPolicy, iterations: int, batch: int, seed: int, reg: Reg,
                   **kw: Any) -> list[tuple[pg.PolicyGradient, float, np.ndarray]]:
    """Each iteration of pg.train with GradientAscent(0.5): (the estimate, J_reg and grad J_reg
    exactly, at the theta that sampled it), then the step."""
    from pgfast._train import iteration_seed

    opt = pg.optim.GradientAscent(0.5)
    out = []
    for it in range(1, iterations + 1):
        est = pg.policy_gradient(pi, mdp=mdp, n=batch, seed=iteration_seed(seed, it), stderr=False, regularizer=reg, **kw)
        grad, J = exact_regularized(mdp, pi, reg)
        out.append((est, J, grad))
        opt.step(pi, est.grad)
    return out


@pytest.mark.parametrize("reg", [pg.Entropy(0.2), pg.LogBarrier(0.02)])
def test_train_ascends_the_regularized_estimate(rng: np.random.Generator, reg: Reg) -> None:
    mdp = random_mdp(rng, S=5, A=3, successors=3, n_terminal=1, horizon=5, gamma=0.9)
    theta = rng.normal(size=(5, 3))
    pi = pg.TabularSoftmax(5, 3, theta=theta)
    hist = pg.train(mdp, pi, optimizer=pg.optim.GradientAscent(0.5), iterations=4, batch=500, seed=9,
                    baseline="time", regularizer=reg, progress=False)
    by_hand = pg.TabularSoftmax(5, 3, theta=theta)
    steps = _train_by_hand(mdp, by_hand, 4, 500, 9, reg, baseline="time")
    assert np.array_equal(pi.theta, by_hand.theta)
    for k, (est, J, grad) in enumerate(steps):
        rec = hist.records[k]
        assert rec["J_estimate"] == est.value and rec["J_stderr"] == est.value_stderr
        assert rec["J_exact"] == pytest.approx(J, rel=1e-12)
        assert rec["exact_grad_norm"] == pytest.approx(float(np.linalg.norm(grad)), rel=1e-12)
        assert np.isfinite(rec["step_cosine"])
        nan_cols = ["min_optimal_prob", "variance_trace"]
        if isinstance(reg, pg.Entropy):  # against the soft optimum
            best = pg.exact.soft_optimal(mdp, reg.tau, "finite_horizon").J
            assert rec["J_gap"] == pytest.approx(best - J, rel=1e-9) and rec["J_gap"] > 0
            assert rec["fraction_of_optimal"] == pytest.approx(J / best, rel=1e-9)
            assert rec["advantage_gap"] > 0
        else:
            nan_cols += ["J_gap", "fraction_of_optimal", "advantage_gap"]
        for col in nan_cols:
            assert np.isnan(rec[col]), col
    assert hist.meta["regularizer"] == repr(reg)
    # the regularised J differs from J: the exact column is the regularised one
    assert abs(hist.records[0]["J_exact"] - pg.exact.evaluate(mdp, pg.TabularSoftmax(5, 3, theta=theta)).J) > 1e-3
    # the entropy= shorthand is the same run
    if isinstance(reg, pg.Entropy):
        pi2 = pg.TabularSoftmax(5, 3, theta=theta)
        hist2 = pg.train(mdp, pi2, optimizer=pg.optim.GradientAscent(0.5), iterations=4, batch=500, seed=9,
                         baseline="time", entropy=reg.tau, progress=False)
        assert np.array_equal(pi2.theta, pi.theta) and np.array_equal(hist2["J_estimate"], hist["J_estimate"])


def test_train_fits_a_value_baseline_to_the_soft_rewards(rng: np.random.Generator) -> None:
    from pgfast._estimators import soft_batch
    from pgfast._train import iteration_seed

    mdp = random_mdp(rng, S=5, A=3, successors=3, n_terminal=1, horizon=5, gamma=0.9)
    pi = random_softmax("tabular", mdp, rng)
    pi0 = pg.TabularSoftmax(5, 3, theta=pi.theta)
    baseline = pg.ValueBaseline(5, 5)
    pg.train(mdp, pi, optimizer=pg.optim.GradientAscent(0.5), iterations=1, batch=400, seed=2, baseline=baseline,
             entropy=0.3, progress=False)
    traj = mdp.sample(pi0, 400, seed=iteration_seed(2, 1))
    want = pg.ValueBaseline(5, 5).fit(soft_batch(traj, pi0.probs(), 0.3)).values()
    assert np.array_equal(baseline.values(), want)
    assert not np.allclose(baseline.values(), pg.ValueBaseline(5, 5).fit(traj).values())


def test_train_with_zero_strength_is_the_unregularized_run(rng: np.random.Generator) -> None:
    mdp = random_mdp(rng, S=5, A=3, successors=3, horizon=5)
    runs = []
    for kw in ({}, {"entropy": 0.0}, {"regularizer": pg.LogBarrier(0.0)}):
        pi = pg.TabularSoftmax(5, 3)
        hist = pg.train(mdp, pi, optimizer=pg.optim.Adam(0.1), iterations=3, batch=300, seed=1, progress=False, **kw)
        runs.append((pi.theta.copy(), hist))
    for theta, hist in runs[1:]:
        assert np.array_equal(theta, runs[0][0])
        for f in ("J_estimate", "J_exact", "J_gap", "exact_grad_norm", "variance_trace"):
            assert np.array_equal(hist[f], runs[0][1][f], equal_nan=True), f
        assert "regularizer" not in hist.meta


def test_train_resume_needs_the_same_regularizer(tmp_path: Any, rng: np.random.Generator) -> None:
    mdp = random_mdp(rng, S=5, A=3, successors=3, horizon=5)

    def run(iterations: int, **kw: Any) -> tuple[pg.History, pg.TabularSoftmax]:
        pi = pg.TabularSoftmax(5, 3)
        return pg.train(mdp, pi, optimizer=pg.optim.Adam(0.1), iterations=iterations, batch=200, seed=4,
                        progress=False, **kw), pi

    straight, pi_straight = run(12, entropy=0.2)
    path = tmp_path / "c.npz"
    run(5, entropy=0.2, checkpoint=path)
    resumed, pi_resumed = run(12, regularizer=pg.Entropy(0.2), resume=path)
    assert np.array_equal(pi_resumed.theta, pi_straight.theta)
    assert np.array_equal(resumed["J_estimate"], straight["J_estimate"])
    for kw, message in [({}, r"regularizer is \(absent\) here, 'Entropy\(tau=0.2\)' in the checkpoint"),
                        ({"entropy": 0.0}, r"regularizer is \(absent\) here"),
                        ({"entropy": 0.3}, r"regularizer is 'Entropy\(tau=0.3\)' here, 'Entropy\(tau=0.2\)'"),
                        ({"regularizer": pg.LogBarrier(0.2)}, r"regularizer is 'LogBarrier\(lam=0.2\)' here")]:
        with pytest.raises(ValueError, match=message):
            run(12, resume=path, **kw)
    plain = tmp_path / "plain.npz"
    run(5, checkpoint=plain)
    with pytest.raises(ValueError, match=r"regularizer is 'Entropy\(tau=0.2\)' here, \(absent\) in the checkpoint"):
        run(12, entropy=0.2, resume=plain)
    run(12, entropy=0.0, resume=plain)  # a strength of 0 is no regulariser


def test_train_bad_regularizer_arguments(small: Any) -> None:
    mdp, pi, _ = small
    before = pi.theta.copy()
    kw: dict[str, Any] = dict(optimizer=pg.optim.Adam(0.1), iterations=2, batch=10, seed=0, progress=False)
    with pytest.raises(ValueError, match="either entropy=tau or regularizer="):
        pg.train(mdp, pi, entropy=0.1, regularizer=pg.Entropy(0.1), **kw)
    with pytest.raises(ValueError, match="entropy must be a finite temperature"):
        pg.train(mdp, pi, entropy=-1.0, **kw)
    with pytest.raises(TypeError, match="regularizer must be pgfast.Entropy"):
        pg.train(mdp, pi, regularizer="entropy", **kw)
    assert np.array_equal(pi.theta, before)  # refused before the first iteration
    lqr = pg.LQR(A=[[0.9]], B=[[1.0]], Q=[[1.0]], R=[[1.0]], x0=[1.0], horizon=5)
    with pytest.raises(ValueError, match="not to an LQR or a gymnasium environment"):
        pg.train(lqr, pg.LinearGaussian(1, 1), entropy=0.1, **kw)
