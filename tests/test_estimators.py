"""Policy-gradient estimators: pg.policy_gradient (return / reward-to-go weights, every baseline,
fused), pg.score, pg.log_likelihood and pg.ValueBaseline; the off-policy estimators
(pg.importance_weights, pg.off_policy_gradient, pg.off_policy_value) join the unbiasedness family
and the checks of every entry point here, and have their own tests in tests/test_off_policy.py.

1. Unbiasedness against pg.exact.gradient / pg.exact.evaluate on small random MDPs, with the
   estimator's own standard errors from one large batch (fixed seeds).
2. Variance reduction, measured on the batch, on an MDP where theory guarantees it.
3. Fused == two-step for the same seed.
4. Hand-computed cases on hand-written batches.
5. Rejected inputs.

Statistical tolerances. Each statistical test checks a family of m scalar hypotheses (every
coordinate of every estimator, and every value) with a two-sided z-test on the estimator's own
standard error, Bonferroni-corrected for a family-wise false-alarm rate ALPHA:
k = Phi^{-1}(1 - ALPHA / (2 m)). With N ~ 1e5 trajectories the CLT makes each z approximately
normal; the standard errors are computed from the same batch (relative error O(1/sqrt(N)) ~ 0.3%,
which moves k by far less than the gap between consecutive alphas). The leave-one-out baselines
("mean", "time") and cross-fitting make trajectories weakly dependent; their covariance is O(1/N)
of the variance, so the stderr is still valid to that order. Coordinates whose standard error is
exactly 0 (parameters of never-visited states) must equal the exact value exactly.
"""

from __future__ import annotations

import pickle
from statistics import NormalDist
from typing import Any

import numpy as np
import pytest
from helpers import (
    ALPHA,
    N_FEATURES,
    Family,
    assert_close,
    frozenlake_policy,
    hand_grad,
    hand_rows,
    k_two_sided,
    logged_log_probs,
    nearby_behavior,
    random_mdp,
    random_policy,
    random_softmax,
    tiny_behavior,
    tiny_problem,
    z_scores,
)

import pgfast as pg

N_BIG = 100_000  # trajectories of the large batches (H <= 6: 6e5 steps, milliseconds to sample)


def _k_one_sided(m: int, alpha: float = ALPHA) -> float:
    return NormalDist().inv_cdf(1.0 - alpha / m)


# -- 1. unbiasedness ------------------------------------------------------------------------------

UNBIASED_CASES = [
    # (kind, S, A, H, n_terminal, gamma, transition_rewards)
    ("tabular", 6, 3, 6, 0, 1.0, False),
    ("tabular", 6, 3, 6, 2, 1.0, False),
    ("tabular", 5, 2, 6, 0, 0.9, True),
    ("tabular", 6, 3, 5, 2, 0.8, True),
    ("linear", 6, 3, 6, 0, 1.0, False),
    ("linear", 6, 3, 6, 2, 1.0, True),
    ("linear", 5, 3, 6, 0, 0.9, False),
    ("linear", 6, 2, 6, 2, 0.85, True),
]


@pytest.mark.parametrize(("kind", "S", "A", "H", "n_terminal", "gamma", "transition_rewards"), UNBIASED_CASES)
def test_estimators_are_unbiased(
    rng: np.random.Generator, kind: str, S: int, A: int, H: int, n_terminal: int, gamma: float, transition_rewards: bool
) -> None:
    mdp = random_mdp(rng, S=S, A=A, successors=4, n_terminal=n_terminal, horizon=H, gamma=gamma,
                     transition_rewards=transition_rewards)
    pi = random_softmax(kind, mdp, rng)
    exact = pg.exact.gradient(mdp, pi)
    J = pg.exact.evaluate(mdp, pi).J
    g_alt = 0.5  # the gamma= keyword overrides the MDP's gamma: compared with exact values at 0.5
    exact_alt = pg.exact.gradient(mdp, pi, gamma=g_alt)
    J_alt = pg.exact.evaluate(mdp, pi, gamma=g_alt).J
    if kind == "tabular" and n_terminal:
        assert (exact[mdp.terminal] == 0.0).all()  # never visited: the estimates must be exactly 0

    early = mdp.sample(pi, 5_000, seed=101)  # an earlier, independent batch to fit baselines on
    traj = mdp.sample(pi, N_BIG, seed=102)
    psi = rng.normal(size=(S, 2))  # state features of the linear ValueBaseline
    fitted = pg.ValueBaseline(S, H).fit(early)
    fitted_lin = pg.ValueBaseline(S, H, features=psi).fit(early)
    assert fitted.fitted and fitted_lin.fitted

    fam = Family()
    on_policy: dict[str, dict[str, Any]] = {
        "rtg": {},
        "return": {"weights": "return"},
        "rtg+mean": {"baseline": "mean"},
        "return+mean": {"weights": "return", "baseline": "mean"},
        "rtg+time": {"baseline": "time"},
        "rtg+exact": {"baseline": "exact"},
        "return+exact": {"weights": "return", "baseline": "exact"},
        "rtg+fitted": {"baseline": fitted},
        "return+fitted": {"weights": "return", "baseline": fitted},
        "rtg+fitted linear": {"baseline": fitted_lin},
        "rtg+cross-fitted": {"baseline": pg.ValueBaseline(S, H)},
        "return+cross-fitted": {"weights": "return", "baseline": pg.ValueBaseline(S, H)},
        "rtg+cross-fitted linear": {"baseline": pg.ValueBaseline(S, H, features=psi)},
    }
    for name, kw in on_policy.items():
        est = pg.policy_gradient(pi, traj, **kw)
        assert est.n == N_BIG
        fam.grad(name, est, exact, J)
    # the unfitted baselines are left unfitted (cross-fitting works on copies of the tables)
    assert not on_policy["rtg+cross-fitted"]["baseline"].fitted

    gamma_override: dict[str, dict[str, Any]] = {
        "rtg gamma=.5": {}, "rtg+exact gamma=.5": {"baseline": "exact"},
        "return+mean gamma=.5": {"baseline": "mean", "weights": "return"},
    }
    for name, kw in gamma_override.items():
        fam.grad(name, pg.policy_gradient(pi, traj, gamma=g_alt, **kw), exact_alt, J_alt)

    # fused: sampling and accumulation in one pass, an independent seed
    fused: dict[str, dict[str, Any]] = {
        "fused rtg": {}, "fused return": {"weights": "return"}, "fused rtg+exact": {"baseline": "exact"},
        "fused rtg+fitted": {"baseline": fitted}, "fused return+fitted linear": {"weights": "return", "baseline": fitted_lin},
        "fused rtg+mean": {"baseline": "mean"}, "fused rtg+time": {"baseline": "time"},
        "fused return+mean": {"weights": "return", "baseline": "mean"},
    }
    for name, kw in fused.items():
        fam.grad(name, pg.policy_gradient(pi, mdp=mdp, n=N_BIG, seed=103, **kw), exact, J)

    # off-policy: a batch of another random softmax policy, given as a policy and as logged log-probs
    beta = nearby_behavior(pi, rng)
    off = mdp.sample(beta, N_BIG, seed=104)
    logged = logged_log_probs(beta, off)
    weights: Any
    for weights in ("reward_to_go", "return"):
        for per_decision in (False, True):
            name = f"off {weights} {'per-decision' if per_decision else 'trajectory'}"
            est = pg.off_policy_gradient(pi, beta, off, weights=weights, per_decision=per_decision)
            assert est.ess is not None and est.ess > 0.1 * N_BIG, "ratios too heavy-tailed for the CLT check"
            fam.grad(name, est, exact, J)
            fam.grad(name + " logged", pg.off_policy_gradient(pi, logged, off, weights=weights,
                                                              per_decision=per_decision), exact, J)
    for per_decision in (False, True):
        for b in (beta, logged):
            v = pg.off_policy_value(pi, b, off, per_decision=per_decision)
            fam.add(f"off_policy_value per_decision={per_decision} {type(b).__name__}", v.value, v.stderr, J)
    fam.check()


def test_unbiasedness_check_has_power(rng: np.random.Generator) -> None:
    # The check above must reject a biased estimator. Add an action-dependent term c * [a_t = 0]
    # to the reward-to-go weights: it adds the exactly computable bias
    # c * sum_t sum_s d_t(s) pi(0|s) grad log pi(0|s). The estimate must agree with exact + bias
    # and be rejected against the exact gradient alone.
    mdp = random_mdp(rng, S=5, A=3, successors=4, n_terminal=1, horizon=6, gamma=0.9)
    pi = random_policy(rng, mdp)
    traj = mdp.sample(pi, N_BIG, seed=7)
    c = 0.5
    W = np.array([0.9**t for t in range(mdp.horizon)]) * traj.reward_to_go() + c * (traj.actions == 0)
    grad, rows = pg.score(pi, traj, W, per_trajectory=True)
    se = rows.std(axis=0, ddof=1).reshape(grad.shape) / np.sqrt(traj.n)
    d = pg.exact.evaluate(mdp, pi).d.sum(axis=0)  # expected visits of each state (all steps)
    probs = pi.probs()
    psi0 = -probs.copy()
    psi0[:, 0] += 1.0  # grad_theta(s, .) log pi(0|s) = e_0 - pi(.|s)
    bias = c * (d * probs[:, 0])[:, None] * psi0
    exact = pg.exact.gradient(mdp, pi)
    k = k_two_sided(grad.size)
    assert z_scores(grad, se, exact + bias).max() <= k
    assert z_scores(grad, se, exact).max() > 10 * k  # a bias of this size is detected with a wide margin


# -- 2. variance reduction --------------------------------------------------------------------------


def test_variance_reduction_measured(rng: np.random.Generator) -> None:
    # An MDP where actions change nothing: P(s'|s, a) = P0(s'|s), R(s, a) = r(s) in (1, 2). Then
    # each action a_t is independent of every other variable given s_t, so in the variance of
    # sum_t w_t psi_t (psi_t = grad log pi(a_t|s_t), E[psi_t | s_t] = 0) every cross term t != t'
    # vanishes for weights that do not depend on a_t (they cannot: a_t affects nothing), and
    #   Var_j = sum_t E[ E[w_t^2 | s_t] E[psi_tj^2 | s_t] ]   (and grad J = 0).
    # - return vs reward-to-go: w = G_0 = P_t + G_t with P_t = past rewards > 0, G_t > 0, so
    #   E[G_0^2 | s_t] > E[G_t^2 | s_t]: strictly larger variance with return weights;
    # - exact baseline: E[(G_t - b)^2 | s_t] is minimised by b = V_t(s_t) = E[G_t | s_t]; the
    #   reduction E[V_t(s_t)^2 F(s_t)] > 0 since V > 0;
    # - time baseline b_t ~ c_t = E[G_t]: reduction V^2 - (V - c)^2 = c (2 V - c) >= 0 because
    #   V_t(s) / V_t(s') <= 2 when every reward lies in (1, 2) (plus an O(1/N) leave-one-out term);
    # - mean baseline with return weights, b ~ c = E[G_0]: the same argument for G_0, whose
    #   conditional means lie within a factor 2 of each other (G_0 in (H, 2H));
    # - a ValueBaseline fitted on an independent batch: b_t(s) ~ V_t(s), as the exact baseline.
    # Measured on one batch: D_i = ||x_i^b - mean^b||^2 - ||x_i^a - mean^a||^2 (x the per-trajectory
    # gradients) has mean Var_b - Var_a (total variances); it must exceed k of its standard errors
    # (one-sided z-test, Bonferroni over the 5 claims).
    S, A, H = 5, 3, 10
    P0 = rng.dirichlet(np.ones(S), size=S)
    P = np.repeat(P0[:, None, :], A, axis=1)
    R = np.repeat(1.0 + rng.uniform(size=(S, 1)), A, axis=1)
    mdp = pg.FiniteMDP(P, R, rng.dirichlet(np.ones(S)), horizon=H)
    pi = random_policy(rng, mdp)
    assert np.abs(pg.exact.gradient(mdp, pi)).max() < 1e-12  # actions do not matter
    traj = mdp.sample(pi, 50_000, seed=31)
    N = traj.n

    def run(**kw: Any) -> tuple[float, np.ndarray]:
        est = pg.policy_gradient(pi, traj, per_trajectory=True, **kw)
        rows = est.per_trajectory
        assert rows is not None
        total = float(N * (est.stderr**2).sum())  # total variance from the estimator's own stderr
        sq = ((rows - rows.mean(axis=0)) ** 2).sum(axis=1)
        assert total == pytest.approx(sq.sum() / (N - 1), rel=1e-9)
        return total, sq

    k = _k_one_sided(5)
    v_ret, sq_ret = run(weights="return")
    v_rtg, sq_rtg = run()
    v_exact, sq_exact = run(baseline="exact")
    v_time, sq_time = run(baseline="time")
    v_mean, sq_mean = run(weights="return", baseline="mean")
    fitted = pg.ValueBaseline(S, H).fit(mdp.sample(pi, 20_000, seed=32))  # an independent batch
    v_fit, sq_fit = run(baseline=fitted)
    for label, (va, sa), (vb, sb) in [
        ("reward-to-go < return", (v_rtg, sq_rtg), (v_ret, sq_ret)),
        ("exact baseline < none", (v_exact, sq_exact), (v_rtg, sq_rtg)),
        ("time baseline < none", (v_time, sq_time), (v_rtg, sq_rtg)),
        ("mean baseline < none (return weights)", (v_mean, sq_mean), (v_ret, sq_ret)),
        ("fitted ValueBaseline < none", (v_fit, sq_fit), (v_rtg, sq_rtg)),
    ]:
        D = sb - sa
        zstat = D.mean() / (D.std(ddof=1) / np.sqrt(N))
        assert zstat > k, f"{label}: total variances {va:.4g} vs {vb:.4g} (ratio {va / vb:.3f}), z = {zstat:.2f} <= {k:.2f}"


def test_leave_one_out_baselines_unbiased_for_batches_of_two(rng: np.random.Generator) -> None:
    # "mean" and "time" are leave-one-out, so even N = 2 is unbiased: the mean over M independent
    # pairs of each estimate must agree with the exact gradient within k standard errors of that
    # mean (its spread over the pairs), Bonferroni over every coordinate of the three estimators.
    # Power: the baseline that includes the trajectory itself, b = (G_1 + G_2) / 2, gives
    # E[g] = grad J / 2 at N = 2 (half of each weight is the trajectory's own return), and the same
    # check must reject it.
    mdp = random_mdp(rng, S=3, A=2, successors=3, n_terminal=1, horizon=4)
    pi = random_policy(rng, mdp)
    exact = pg.exact.gradient(mdp, pi).ravel()
    M = 6000
    big = mdp.sample(pi, 2 * M, seed=41)
    pairs = [pg.Trajectories(mdp, big.states[i : i + 2], big.actions[i : i + 2], big.rewards[i : i + 2],
                             big.lengths[i : i + 2], big.final_states[i : i + 2]) for i in range(0, 2 * M, 2)]
    estimates = {
        name: np.array([pg.policy_gradient(pi, p, stderr=False, **kw).grad.ravel() for p in pairs])
        for name, kw in {
            "rtg+mean": {"baseline": "mean"},
            "return+mean": {"weights": "return", "baseline": "mean"},
            "rtg+time": {"baseline": "time"},
        }.items()
    }
    rows = pg.policy_gradient(pi, big, weights="return", per_trajectory=True).per_trajectory  # G_i psi_i
    psi_rows = pg.score(pi, big, np.where(big.mask, 1.0, 0.0), per_trajectory=True)[1]  # psi_i (N = 1 scale)
    assert rows is not None
    G = big.returns()
    n_big = 2 * M
    # per-trajectory rows of score() are sum_t w psi (not divided by N); the self-including baseline
    # gives per pair (1/2) sum_i (G_i - (G_1 + G_2) / 2) psi_i
    r = rows.reshape(M, 2, -1)
    ps = psi_rows.reshape(M, 2, -1)
    Gp = G.reshape(M, 2, 1)
    naive = 0.5 * (r - 0.5 * Gp.sum(axis=1, keepdims=True) * ps).sum(axis=1)
    assert n_big == rows.shape[0]
    def max_z(est: np.ndarray) -> float:
        se = est.std(axis=0, ddof=1) / np.sqrt(M)
        never = se == 0.0  # parameters of the terminal state: never visited, exactly 0
        np.testing.assert_array_equal(est.mean(axis=0)[never], exact[never])
        return float(np.abs((est.mean(axis=0) - exact)[~never] / se[~never]).max())

    k = k_two_sided(len(estimates) * exact.size)
    for name, est in estimates.items():
        assert max_z(est) < k, f"{name} at N = 2: max |z| {max_z(est):.2f} >= {k:.2f}"
    assert max_z(naive) > k, "the check cannot tell a self-including baseline from a leave-one-out one"


# -- 3. fused == two-step ---------------------------------------------------------------------------


@pytest.mark.parametrize("gamma", [1.0, 0.95])
@pytest.mark.parametrize("kind", ["tabular", "linear"])
def test_totals_on_long_episodes(rng: np.random.Generator, kind: str, gamma: float) -> None:
    # Episodes of 1..40 steps. Without standard errors, reward-to-go weights (no baseline; the time
    # baseline on a stored batch) are added as they are formed, an episode of 16 steps or more cut
    # into segments (TrajectoryScorer::add_reward_to_go), shorter ones not. Both must give the
    # gradient of the explicit weights: here a reward-to-go from a plain NumPy recursion, and for
    # the time baseline the per-trajectory path (stderr=True), which writes the weights out.
    mdp = random_mdp(rng, S=16, A=3, successors=3, n_terminal=1, horizon=40, gamma=gamma)
    pi = random_softmax(kind, mdp, rng, scale=0.5)
    n, seed = 4000, 5
    traj = mdp.sample(pi, n, seed=seed)
    lengths = traj.lengths
    assert (lengths < 16).any() and (lengths >= 16).any() and (lengths == 40).any()
    G = np.zeros_like(traj.rewards)
    acc = np.zeros(n)
    for t in range(mdp.horizon - 1, -1, -1):
        acc = np.where(t < lengths, traj.rewards[:, t] + gamma * acc, 0.0)
        G[:, t] = acc
    w = G * gamma ** np.arange(mdp.horizon)
    two = pg.score(pi, traj, w, per_trajectory=True)
    rows = two[1]
    rms = np.sqrt((rows**2).mean(axis=0)).reshape(two[0].shape)
    for threads in (1, 2):
        fused = pg.policy_gradient(pi, mdp=mdp, n=n, seed=seed, threads=threads, stderr=False)
        assert (np.abs(fused.grad - two[0]) <= 1e-12 * rms).all(), np.abs(fused.grad - two[0]).max()
        assert abs(fused.value - G[:, 0].mean()) <= 1e-12 * np.sqrt((G[:, 0] ** 2).mean())
        stored = pg.policy_gradient(pi, traj, threads=threads, stderr=False)
        assert (np.abs(stored.grad - two[0]) <= 1e-12 * rms).all(), np.abs(stored.grad - two[0]).max()
        with_rows = pg.policy_gradient(pi, traj, baseline="time", threads=threads, per_trajectory=True)
        rows_t = with_rows.per_trajectory
        assert rows_t is not None
        rms_t = np.sqrt((rows_t**2).mean(axis=0)).reshape(with_rows.grad.shape)
        totals = pg.policy_gradient(pi, traj, baseline="time", threads=threads, stderr=False)
        assert (np.abs(totals.grad - with_rows.grad) <= 1e-12 * rms_t).all(), np.abs(totals.grad - with_rows.grad).max()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("baseline", [None, "exact", "fitted", "mean", "time"])
@pytest.mark.parametrize("kind", ["tabular", "linear"])
def test_fused_equals_two_step(rng: np.random.Generator, kind: str, baseline: Any, threads: int) -> None:
    # Same seed, same trajectories, same per-trajectory gradients: only the order of the final
    # summation over trajectories differs. Reordering a sum of N terms moves it by about
    # sqrt(N) eps times the RMS term (worst case N eps); with N = 20000 that is ~3e-14 of the
    # RMS per-trajectory gradient, so 1e-12 of the RMS is a 30x margin.
    mdp = random_mdp(rng, S=6, A=3, successors=4, n_terminal=2, horizon=6, gamma=0.9, transition_rewards=True)
    pi = random_softmax(kind, mdp, rng)
    n, seed = 20_000, 77
    b: Any = baseline
    if baseline == "fitted":
        b = pg.ValueBaseline(6, 6).fit(mdp.sample(pi, 2000, seed=1))
    traj = mdp.sample(pi, n, seed=seed)
    # the leave-one-out baselines: the fused estimator's first pass sums the batch's statistics in
    # another order than the stored batch's, which moves the baselines by ~eps relative
    for weights in ("reward_to_go",) if baseline == "time" else ("reward_to_go", "return"):
        two = pg.policy_gradient(pi, traj, weights=weights, baseline=b, threads=threads, per_trajectory=True)
        fused = pg.policy_gradient(pi, mdp=mdp, n=n, seed=seed, weights=weights, baseline=b, threads=threads)
        assert fused.n == two.n == n and fused.per_trajectory is None
        rows = two.per_trajectory
        assert rows is not None
        rms = np.sqrt((rows**2).mean(axis=0)).reshape(two.grad.shape)
        assert (np.abs(fused.grad - two.grad) <= 1e-12 * rms).all(), np.abs(fused.grad - two.grad).max()
        G = traj.returns()
        assert abs(fused.value - two.value) <= 1e-12 * np.sqrt((G**2).mean())
        # stderr^2 = (sumsq - n mean^2) / (n (n - 1)): reordering moves sumsq by ~sqrt(N) eps sumsq,
        # a relative ~sqrt(N) eps (1 + mean^2 / var) ~ 1e-13 of the variance here (mean^2 < var)
        np.testing.assert_allclose(fused.stderr, two.stderr, rtol=1e-9, atol=0)
        assert fused.value_stderr == pytest.approx(two.value_stderr, rel=1e-9)
        # without standard errors the fused estimator keeps no per-trajectory rows and, for
        # reward-to-go without a baseline, adds the weights as it forms them (a regrouped sum)
        totals = pg.policy_gradient(pi, mdp=mdp, n=n, seed=seed, weights=weights, baseline=b, threads=threads,
                                    stderr=False)
        assert (np.abs(totals.grad - two.grad) <= 1e-12 * rms).all(), np.abs(totals.grad - two.grad).max()
        assert abs(totals.value - two.value) <= 1e-12 * np.sqrt((G**2).mean())


def _one_pass(pi: pg.SoftmaxPolicy, mdp: pg.FiniteMDP, n: int, seed: int, **kw: Any) -> bool:
    """Whether the fused time baseline without standard errors takes the one-pass form (exact
    per-step tables) for these shapes: its partial result then carries the tables."""
    stats = pg.partial_statistics(pi, mdp=mdp, n=n, seed=seed, lo=0, hi=n)
    part = pg.partial_gradient(pi, mdp=mdp, n=n, seed=seed, lo=0, hi=n, baseline="time", stderr=False,
                               statistics=stats, **kw)
    return part.step_tables is not None


@pytest.mark.parametrize("gamma", [1.0, 0.95])
@pytest.mark.parametrize("kind", ["tabular", "linear", "mlp"])
@pytest.mark.parametrize("problem", ["frozenlake", "small"])
def test_fused_time_in_one_pass_equals_stored(rng: np.random.Generator, problem: str, kind: str, gamma: float) -> None:
    """The fused time baseline without standard errors runs one simulation that fills exact
    per-(t, s, a) tables (FrozenLake 8x8 with H = 200: H S A = 51,200 cells; a small random MDP with
    transition rewards). It gives the stored-batch gradient of the same seed to 1e-12 of the RMS
    per-trajectory gradient (each G_t is rounded to a multiple of about 2^-61 max |G|, and the
    sums are reordered), the same value, and the two-pass form's gradient (with standard errors)."""
    if problem == "frozenlake":
        mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="8x8", horizon=200)
        pi = frozenlake_policy(kind, rng)
        n = 6000
    else:
        mdp = random_mdp(rng, S=6, A=3, successors=4, n_terminal=2, horizon=9, gamma=0.9, transition_rewards=True)
        pi = random_softmax(kind, mdp, rng) if kind != "mlp" else pg.MLPSoftmax(6, 3, hidden=(5,), seed=2)
        n = 3000
    seed = 21
    assert _one_pass(pi, mdp, n, seed, gamma=gamma)
    traj = mdp.sample(pi, n, seed=seed)
    rows_est = pg.policy_gradient(pi, traj, baseline="time", gamma=gamma, per_trajectory=True)
    rows = rows_est.per_trajectory
    assert rows is not None
    rms = np.sqrt((rows**2).mean(axis=0)).reshape(rows_est.grad.shape)
    assert rms.max() > 0
    stored = pg.policy_gradient(pi, traj, baseline="time", gamma=gamma, stderr=False)
    two_pass = pg.policy_gradient(pi, mdp=mdp, n=n, seed=seed, baseline="time", gamma=gamma)
    G = traj.returns(gamma)
    for threads in (1, 2):
        one = pg.policy_gradient(pi, mdp=mdp, n=n, seed=seed, baseline="time", gamma=gamma, stderr=False, threads=threads)
        for other in (stored, rows_est, two_pass):
            assert (np.abs(one.grad - other.grad) <= 1e-12 * rms).all(), np.abs(one.grad - other.grad).max()
        assert abs(one.value - stored.value) <= 1e-12 * np.sqrt((G**2).mean())
        assert one.n_steps == two_pass.n_steps == int(traj.lengths.sum())
        assert np.isnan(one.stderr).all() and one.value_stderr == pytest.approx(stored.value_stderr, rel=1e-9)


def test_fused_time_one_pass_only_where_its_tables_are_small() -> None:
    """The one-pass form is chosen from the shapes and options alone: H S A <= 131072, reward-to-go
    weights, the time baseline, no standard errors. Elsewhere the two passes run, and both forms
    agree with the stored batch."""
    rng = np.random.default_rng(4)
    small = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="8x8", horizon=512)  # 131,072 cells
    large = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="8x8", horizon=513)
    pi = frozenlake_policy("tabular", rng)
    assert _one_pass(pi, small, 700, 1) and not _one_pass(pi, large, 700, 1)
    assert _one_pass(pi, small, 700, 1, threads=1) and _one_pass(pi, small, 700, 1, threads=2)
    for mdp in (small, large):
        stats = pg.partial_statistics(pi, mdp=mdp, n=700, seed=1, lo=0, hi=700)
        cases: list[dict[str, Any]] = [{"baseline": "time", "stderr": True, "statistics": stats},
                                       {"baseline": "mean", "stderr": False, "statistics": stats}, {"stderr": False}]
        for kw in cases:
            assert pg.partial_gradient(pi, mdp=mdp, n=700, seed=1, lo=0, hi=700, **kw).step_tables is None
        traj = mdp.sample(pi, 700, seed=1)
        rows = pg.policy_gradient(pi, traj, baseline="time", per_trajectory=True)
        assert rows.per_trajectory is not None
        rms = np.sqrt((rows.per_trajectory**2).mean(axis=0)).reshape(rows.grad.shape)
        fused = pg.policy_gradient(pi, mdp=mdp, n=700, seed=1, baseline="time", stderr=False)
        assert (np.abs(fused.grad - rows.grad) <= 1e-12 * rms).all()


# -- 4. hand-computed cases ---------------------------------------------------------------------------


def test_reward_to_go_weights_by_hand() -> None:
    mdp, pi, traj = tiny_problem()
    # G_t = r_t + 0.5 G_{t+1}: [2 + .5(3 + .5 * 1), 3 + .5 * 1, 1], [-1 + .5 * 1, 1], [2]
    assert_close(traj.reward_to_go(), [[3.75, 3.5, 1.0], [-0.5, 1.0, 0.0], [2.0, 0.0, 0.0]])
    assert_close(traj.returns(), [3.75, -0.5, 2.0])
    # reward-to-go weights gamma^t G_t
    W_rtg = np.array([[3.75, 1.75, 0.25], [-0.5, 0.5, 0.0], [2.0, 0.0, 0.0]])
    est = pg.policy_gradient(pi, traj, per_trajectory=True)
    assert_close(est.grad, hand_grad(pi, traj, W_rtg))
    assert est.per_trajectory is not None
    assert_close(est.per_trajectory, hand_rows(pi, traj, W_rtg))
    assert_close(est.per_trajectory.mean(axis=0), est.grad.ravel())
    assert_close(est.stderr.ravel(), est.per_trajectory.std(axis=0, ddof=1) / np.sqrt(3))
    assert est.n == 3 and est.value == pytest.approx((3.75 - 0.5 + 2.0) / 3, rel=1e-15)
    assert est.value_stderr == pytest.approx(np.std([3.75, -0.5, 2.0], ddof=1) / np.sqrt(3), rel=1e-12)
    # return weights G_i at every step
    W_ret = np.array([[3.75] * 3, [-0.5] * 3, [2.0] * 3])
    assert_close(pg.policy_gradient(pi, traj, weights="return").grad, hand_grad(pi, traj, W_ret))
    # gamma = 1 overrides the MDP's 0.5: G_t = [6, 4, 1], [0, 1], [2]
    W_1 = np.array([[6.0, 4.0, 1.0], [0.0, 1.0, 0.0], [2.0, 0.0, 0.0]])
    est1 = pg.policy_gradient(pi, traj, gamma=1.0)
    assert_close(est1.grad, hand_grad(pi, traj, W_1))
    assert est1.value == pytest.approx(8.0 / 3, rel=1e-15)


def test_baselines_by_hand() -> None:
    mdp, pi, traj = tiny_problem()
    # mean (leave-one-out, return weights): b = mean return of the other two = .75, 2.875, 1.625
    W = np.array([[3.0] * 3, [-3.375] * 3, [0.375] * 3])
    assert_close(pg.policy_gradient(pi, traj, weights="return", baseline="mean").grad, hand_grad(pi, traj, W))
    # mean with reward-to-go weights: gamma^t (G_t - b_i)
    G = traj.reward_to_go()
    disc = 0.5 ** np.arange(3)
    b = np.array([0.75, 2.875, 1.625])
    assert_close(pg.policy_gradient(pi, traj, baseline="mean").grad, hand_grad(pi, traj, disc * (G - b[:, None])))
    # time: mean reward-to-go at t of the other episodes still running at t (0 when none):
    # t=0: (5.25 - G)/2; t=1: episodes 0, 1 -> 1.0, 3.5; t=2: only episode 0 -> 0
    W = np.array([[3.75 - 0.75, 0.5 * (3.5 - 1.0), 0.25 * 1.0], [-0.5 - 2.875, 0.5 * (1.0 - 3.5), 0.0],
                  [2.0 - 1.625, 0.0, 0.0]])
    assert_close(pg.policy_gradient(pi, traj, baseline="time").grad, hand_grad(pi, traj, W))
    # exact: b_t = V_t(s_t); return weights: b = V_0(s_0)
    V = pg.exact.evaluate(mdp, pi).V
    bV = np.where(traj.mask, V[np.arange(3)[None, :], np.where(traj.mask, traj.states, 0)], 0.0)
    assert_close(pg.policy_gradient(pi, traj, baseline="exact").grad, hand_grad(pi, traj, disc * (G - bV)))
    W = np.repeat((traj.returns() - V[0, traj.states[:, 0]])[:, None], 3, axis=1)
    assert_close(pg.policy_gradient(pi, traj, weights="return", baseline="exact").grad, hand_grad(pi, traj, W))
    # tabular ValueBaseline: mean reward-to-go of the visits to (t, s); unvisited -> mean at t
    vb = pg.ValueBaseline(3, 3).fit(traj)
    assert_close(vb.values(), [[2.875, -0.5, 1.75], [1.0, 3.5, 2.25], [1.0, 1.0, 1.0]])
    bT = np.where(traj.mask, vb.values()[np.arange(3)[None, :], np.where(traj.mask, traj.states, 0)], 0.0)
    assert_close(pg.policy_gradient(pi, traj, baseline=vb).grad, hand_grad(pi, traj, disc * (G - bT)))
    # a fitted baseline applies as a table with return weights too: b = b_0(s_0)
    W = np.repeat((traj.returns() - vb.values()[0, traj.states[:, 0]])[:, None], 3, axis=1)
    assert_close(pg.policy_gradient(pi, traj, weights="return", baseline=vb).grad, hand_grad(pi, traj, W))


def test_cross_fitting_definition(rng: np.random.Generator) -> None:
    # An unfitted ValueBaseline is cross-fitted: even episodes weighted with a baseline fitted on
    # the odd ones and vice versa; per-trajectory rows in the batch's order.
    mdp = random_mdp(rng, S=5, A=3, successors=3, n_terminal=1, horizon=6, gamma=0.9)
    pi = random_policy(rng, mdp)
    traj = mdp.sample(pi, 501, seed=3)
    psi = rng.normal(size=(5, 2))
    for features in (None, psi):
        est = pg.policy_gradient(pi, traj, baseline=pg.ValueBaseline(5, 6, features=features), per_trajectory=True,
                                 threads=1)
        rows = np.zeros((traj.n, pi.n_params))
        for own, other in ((0, 1), (1, 0)):
            idx, jdx = np.arange(own, traj.n, 2), np.arange(other, traj.n, 2)
            half = [pg.Trajectories(mdp, traj.states[x], traj.actions[x], traj.rewards[x], traj.lengths[x],
                                    traj.final_states[x]) for x in (idx, jdx)]
            vb = pg.ValueBaseline(5, 6, features=features).fit(half[1])
            part = pg.policy_gradient(pi, half[0], baseline=vb, per_trajectory=True, threads=1)
            assert part.per_trajectory is not None
            rows[idx] = part.per_trajectory
        assert est.per_trajectory is not None
        np.testing.assert_allclose(est.per_trajectory, rows, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(est.grad.ravel(), rows.mean(axis=0), rtol=1e-12, atol=1e-13)


def test_linear_value_baseline_is_least_squares(rng: np.random.Generator) -> None:
    # b_t(s) = psi(s) . w + c_t fitted to the reward-to-go: compare with numpy's lstsq on the design
    # [psi(s_t), one-hot(t)] (ridge = 0, full column rank).
    mdp = random_mdp(rng, S=6, A=2, successors=3, n_terminal=1, horizon=5, gamma=0.9)
    pi = random_policy(rng, mdp)
    traj = mdp.sample(pi, 400, seed=5)
    psi = rng.normal(size=(6, 3))
    vb = pg.ValueBaseline(6, 5, features=psi, ridge=0.0).fit(traj)
    mask = traj.mask
    t_idx = np.broadcast_to(np.arange(5), mask.shape)[mask]
    X = np.hstack([psi[traj.states[mask]], np.eye(5)[t_idx]])
    coef = np.linalg.lstsq(X, traj.reward_to_go()[mask], rcond=None)[0]
    expected = coef[3:][:, None] + (psi @ coef[:3])[None, :]
    np.testing.assert_allclose(vb.values(), expected, rtol=1e-9, atol=1e-9)


def test_value_baseline_repr(rng: np.random.Generator) -> None:
    """The repr states the sizes, the kind of fit (table or features) and whether it is fitted."""
    mdp = random_mdp(rng, S=4, A=2, horizon=3)
    traj = mdp.sample(random_policy(rng, mdp), 50, seed=0)
    table = pg.ValueBaseline(4, 3)
    assert repr(table) == "ValueBaseline(n_states=4, horizon=3, features=None, fitted=False)"
    table.fit(traj)
    assert repr(table) == "ValueBaseline(n_states=4, horizon=3, features=None, fitted=True)"
    linear = pg.ValueBaseline(4, 3, features=rng.normal(size=(4, 2)), ridge=0.5)
    assert repr(linear) == "ValueBaseline(n_states=4, horizon=3, features=(4, 2), ridge=0.5, fitted=False)"
    assert repr(linear.fit(traj)) == "ValueBaseline(n_states=4, horizon=3, features=(4, 2), ridge=0.5, fitted=True)"


def test_log_likelihood_by_hand() -> None:
    mdp, pi, traj = tiny_problem()
    lp = np.log(pi.probs())
    log = np.log
    expected = [
        log(0.6) + lp[0, 1] + log(0.6) + lp[1, 0] + log(0.2) + lp[0, 0] + log(0.3),
        log(0.4) + lp[1, 1] + log(0.7) + lp[0, 0] + log(0.2),
        log(0.6) + lp[0, 1] + log(0.3),
    ]
    assert_close(pg.log_likelihood(pi, traj), expected)
    policy_only = [lp[0, 1] + lp[1, 0] + lp[0, 0], lp[1, 1] + lp[0, 0], lp[0, 1]]
    assert_close(pg.log_likelihood(pi, traj, dynamics=False), policy_only)
    # an impossible transition (P(2 | 1, 1) = 0) has log-likelihood -inf
    bad = pg.Trajectories(mdp, np.array([[1, -1, -1]], np.int32), np.array([[1, -1, -1]], np.int32),
                          np.array([[-1.0, 0.0, 0.0]]), np.array([1], np.int32), np.array([2], np.int32))
    assert pg.log_likelihood(pi, bad)[0] == -np.inf
    assert pg.log_likelihood(pi, bad, dynamics=False)[0] == pytest.approx(lp[1, 1], rel=1e-15)


def test_log_likelihood_in_the_deprecated_order_warns_and_agrees(rng: np.random.Generator) -> None:
    """log_likelihood(mdp, policy, traj, dynamics), the order before policy-first, still gives the
    same bits, with a DeprecationWarning that shows the new call and points at the caller."""
    mdp, pi, traj = tiny_problem()
    rebuilt = pickle.loads(pickle.dumps(mdp))  # another object with the same dynamics
    for dynamics in (True, False):
        new = pg.log_likelihood(pi, traj, dynamics=dynamics)
        old_calls = [lambda: pg.log_likelihood(mdp, pi, traj, dynamics),  # type: ignore[call-arg]
                     lambda: pg.log_likelihood(mdp, pi, traj, dynamics=dynamics),  # type: ignore[call-arg]
                     lambda: pg.log_likelihood(rebuilt, pi, traj=traj, dynamics=dynamics)]  # type: ignore[call-arg]
        if dynamics:
            old_calls.append(lambda: pg.log_likelihood(mdp, pi, traj))  # type: ignore[call-arg]
        for call in old_calls:
            with pytest.warns(DeprecationWarning, match=r"log_likelihood\(mdp, policy, traj, dynamics\) is deprecated: "
                              r"call log_likelihood\(policy, traj, dynamics=\.\.\.\)") as record:
                old = call()
            assert len(record) == 1 and record[0].filename == __file__
            np.testing.assert_array_equal(old, new)
        for same in (mdp, rebuilt):
            np.testing.assert_array_equal(pg.log_likelihood(pi, traj, dynamics=dynamics, mdp=same), new)
    # an MDP with other dynamics is refused, whichever order names it
    other = random_mdp(rng, S=3, A=2, horizon=3)
    with pytest.raises(ValueError, match=r"mdp must be the batch's MDP traj.mdp \(or one with the same mu0 and transitions\)"):
        pg.log_likelihood(pi, traj, mdp=other)
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="mdp must be the batch's MDP"):
        pg.log_likelihood(other, pi, traj)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="multiple values for argument 'traj'"):  # fits neither order
        pg.log_likelihood(mdp, pi, traj, traj=traj)  # type: ignore[call-arg]


@pytest.mark.parametrize("kind", ["tabular", "linear"])
def test_score_with_explicit_weights_by_hand(rng: np.random.Generator, kind: str) -> None:
    mdp, tab, traj = tiny_problem()
    pi: pg.SoftmaxPolicy = tab
    if kind == "linear":
        pi = pg.LinearSoftmax(rng.normal(size=(3, 2, N_FEATURES)), theta=rng.normal(size=N_FEATURES))
    W = np.array([[0.7, -1.2, 2.5], [3.0, 0.4, np.nan], [-0.9, np.inf, 1e300]])  # past the end: ignored
    grad, rows = pg.score(pi, traj, W, per_trajectory=True)
    assert grad.shape == pi.theta.shape and rows.shape == (3, pi.n_params)
    Wc = np.where(traj.mask, W, 0.0)
    if kind == "tabular":
        # (e_{s,a} - pi(.|s)) w summed per episode, divided by N, written out for episode 2 alone
        probs = pi.probs()
        row2 = np.zeros((3, 2))
        row2[0] = -0.9 * (np.array([0.0, 1.0]) - probs[0])
        assert_close(rows[2].reshape(3, 2), row2)
    else:
        assert isinstance(pi, pg.LinearSoftmax)
        phi, probs = pi.features, pi.probs()
        assert_close(rows[2], -0.9 * (phi[0, 1] - probs[0] @ phi[0]))
    assert_close(rows, hand_rows(pi, traj, Wc))
    assert_close(grad, hand_grad(pi, traj, Wc))
    assert_close(rows.mean(axis=0), grad.ravel())
    assert_close(pg.score(pi, traj, W), grad)  # without per_trajectory: the gradient alone


@pytest.mark.parametrize("kind", ["tabular", "linear"])
def test_per_trajectory_rows_mean_is_grad(rng: np.random.Generator, kind: str) -> None:
    mdp = random_mdp(rng, S=5, A=3, successors=3, n_terminal=1, horizon=6, gamma=0.9)
    pi = random_softmax(kind, mdp, rng)
    traj = mdp.sample(pi, 3000, seed=9)
    for kw in ({}, {"weights": "return"}, {"baseline": "mean"}, {"baseline": "time"}, {"baseline": "exact"},
               {"baseline": pg.ValueBaseline(5, 6)}):
        est = pg.policy_gradient(pi, traj, per_trajectory=True, **kw)
        rows = est.per_trajectory
        assert rows is not None and rows.shape == (traj.n, pi.n_params)
        np.testing.assert_allclose(rows.mean(axis=0), est.grad.ravel(), rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(rows.std(axis=0, ddof=1) / np.sqrt(traj.n), est.stderr.ravel(), rtol=1e-8)
        # threads change only the summation order
        other = pg.policy_gradient(pi, traj, threads=3, **kw)
        np.testing.assert_allclose(other.grad, est.grad, rtol=1e-11, atol=1e-13)


# -- 5. rejected inputs ---------------------------------------------------------------------------------


def test_bad_explicit_weights(small: Any) -> None:
    _, pi, traj = small
    N, H = traj.rewards.shape
    for shape in ((N, H + 1), (N,), (N - 1, H), (H, N)):
        with pytest.raises(ValueError, match="weights must have shape"):
            pg.score(pi, traj, np.ones(shape))
    for bad in (np.nan, np.inf):
        W = np.ones((N, H))
        W[3, 0] = bad  # step 0 is always a real step
        with pytest.raises(ValueError, match="NaN or infinite"):
            pg.score(pi, traj, W)
    with pytest.raises(TypeError, match="weights"):
        pg.score(pi, traj, np.full((N, H), "x"))


def test_policy_and_batch_of_different_sizes(small: Any, rng: np.random.Generator) -> None:
    mdp, pi, traj = small
    other_S = pg.TabularSoftmax(mdp.n_states + 1, mdp.n_actions)
    other_A = pg.LinearSoftmax(rng.normal(size=(mdp.n_states, mdp.n_actions + 1, 2)))
    W = np.ones(traj.rewards.shape)
    for bad in (other_S, other_A):
        for call in (lambda: pg.policy_gradient(bad, traj),
                     lambda: pg.policy_gradient(bad, mdp=mdp, n=10, seed=0),
                     lambda: pg.score(bad, traj, W),
                     lambda: pg.log_likelihood(bad, traj),
                     lambda: pg.importance_weights(bad, pi, traj),
                     lambda: pg.importance_weights(pi, bad, traj),
                     lambda: pg.off_policy_gradient(bad, pi, traj),
                     lambda: pg.off_policy_gradient(pi, bad, traj),
                     lambda: pg.off_policy_value(pi, bad, traj)):
            with pytest.raises(ValueError, match="sized for|n_states"):
                call()
    # a ValueBaseline for another MDP size or horizon
    for vb in (pg.ValueBaseline(mdp.n_states + 1, mdp.horizon), pg.ValueBaseline(mdp.n_states, mdp.horizon + 1)):
        with pytest.raises(ValueError, match="ValueBaseline is for"):
            pg.policy_gradient(pi, traj, baseline=vb)
        with pytest.raises(ValueError, match="baseline is for"):
            vb.fit(traj)


def test_bad_baselines_and_weights(small: Any) -> None:
    mdp, pi, traj = small
    with pytest.raises(ValueError, match="time"):
        pg.policy_gradient(pi, traj, weights="return", baseline="time")
    for bad in ("avg", "Mean", ""):
        with pytest.raises(ValueError, match="baseline must be"):
            pg.policy_gradient(pi, traj, baseline=bad)
    with pytest.raises(TypeError, match="baseline must be"):
        pg.policy_gradient(pi, traj, baseline=1.0)
    for bad_w in ("rtg", "returns", None):
        with pytest.raises(ValueError, match="weights must be"):
            pg.policy_gradient(pi, traj, weights=bad_w)  # type: ignore[arg-type]
    one = mdp.sample(pi, 1, seed=0)
    with pytest.raises(ValueError, match="at least 2"):
        pg.policy_gradient(pi, one, baseline="mean")
    with pytest.raises(ValueError, match="at least 2"):
        pg.policy_gradient(pi, one, baseline=pg.ValueBaseline(mdp.n_states, mdp.horizon))
    with pytest.raises(ValueError, match="not fitted"):
        pg.ValueBaseline(mdp.n_states, mdp.horizon).values()
    with pytest.raises(ValueError, match="gamma"):
        pg.policy_gradient(pi, traj, gamma=1.5)


def test_bad_fused_calls(small: Any) -> None:
    mdp, pi, traj = small
    with pytest.raises(ValueError, match="weights='reward_to_go'"):
        pg.policy_gradient(pi, mdp=mdp, n=100, seed=0, baseline="time", weights="return")
    with pytest.raises(ValueError, match="fitted ValueBaseline"):
        pg.policy_gradient(pi, mdp=mdp, n=100, seed=0, baseline=pg.ValueBaseline(mdp.n_states, mdp.horizon))
    with pytest.raises(ValueError, match="per_trajectory"):
        pg.policy_gradient(pi, mdp=mdp, n=100, seed=0, per_trajectory=True)
    with pytest.raises(ValueError, match="not both"):
        pg.policy_gradient(pi, traj, mdp=mdp, n=100, seed=0)
    with pytest.raises(ValueError, match="mdp=, n="):
        pg.policy_gradient(pi, mdp=mdp)
    with pytest.raises(ValueError, match="n must be >= 1"):
        pg.policy_gradient(pi, mdp=mdp, n=0, seed=0)
    with pytest.raises(TypeError, match="mdp must be"):
        pg.policy_gradient(pi, mdp=traj, n=10, seed=0)  # type: ignore[arg-type]


def test_non_policy_and_non_batch_arguments(small: Any) -> None:
    mdp, pi, traj = small
    W = np.ones(traj.rewards.shape)
    logits = pi.theta.copy()
    for call in (lambda: pg.policy_gradient(logits, traj),  # type: ignore[arg-type]
                 lambda: pg.policy_gradient(logits, mdp=mdp, n=10, seed=0),  # type: ignore[arg-type]
                 lambda: pg.score(logits, traj, W),  # type: ignore[arg-type]
                 lambda: pg.log_likelihood(logits, traj),  # type: ignore[arg-type]
                 lambda: pg.importance_weights(logits, pi, traj),  # type: ignore[arg-type]
                 lambda: pg.off_policy_gradient(logits, pi, traj),  # type: ignore[arg-type]
                 lambda: pg.off_policy_value(logits, pi, traj)):  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="policy|target"):
            call()
    for call_ in (lambda: pg.policy_gradient(pi, traj.states),  # type: ignore[arg-type]
                 lambda: pg.score(pi, traj.states, W),  # type: ignore[arg-type]
                 lambda: pg.log_likelihood(pi, traj.states),  # type: ignore[arg-type]
                 lambda: pg.off_policy_gradient(pi, pi, traj.states),  # type: ignore[arg-type]
                 lambda: pg.ValueBaseline(mdp.n_states, mdp.horizon).fit(traj.states)):  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="Trajectories"):
            call_()
    with pytest.raises(TypeError, match="mdp must be"):
        pg.log_likelihood(pi, traj, mdp=traj)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="2 positional arguments but 3 were given"):
        pg.log_likelihood(traj, pi, traj)  # type: ignore[arg-type]


ENTRIES = ["policy_gradient", "policy_gradient cross-fitted", "score", "log_likelihood", "importance_weights",
           "off_policy_gradient", "off_policy_value", "ValueBaseline.fit"]


def _call_on_bad_batch(entry: str, field: str, value: int) -> None:
    """Calls `entry` on the tiny batch with one real step's state or action replaced by `value`."""
    mdp, pi, traj = tiny_problem()
    arrays = {"states": traj.states.copy(), "actions": traj.actions.copy()}
    arrays[field][0, 1] = value  # a real step (episode 0 has length 3)
    bad = pg.Trajectories(mdp, arrays["states"], arrays["actions"], traj.rewards.copy(), traj.lengths.copy(),
                          traj.final_states.copy())
    beta = tiny_behavior()
    calls: dict[str, Any] = {
        "policy_gradient": lambda: pg.policy_gradient(pi, bad),
        "policy_gradient cross-fitted": lambda: pg.policy_gradient(pi, bad, baseline=pg.ValueBaseline(3, 3)),
        "score": lambda: pg.score(pi, bad, np.ones((3, 3))),
        "log_likelihood": lambda: pg.log_likelihood(pi, bad),
        "importance_weights": lambda: pg.importance_weights(pi, beta, bad),
        "off_policy_gradient": lambda: pg.off_policy_gradient(pi, beta, bad),
        "off_policy_value": lambda: pg.off_policy_value(pi, beta, bad),
        "ValueBaseline.fit": lambda: pg.ValueBaseline(3, 3).fit(bad),
    }
    calls[entry]()


@pytest.mark.parametrize("bad_state", [7, -2])
@pytest.mark.parametrize("entry", ENTRIES)
def test_out_of_range_states_in_a_hand_made_batch(entry: str, bad_state: int) -> None:
    with pytest.raises(ValueError, match="state"):
        _call_on_bad_batch(entry, "states", bad_state)


@pytest.mark.parametrize("bad_action", [2, -2])
@pytest.mark.parametrize("entry", [e for e in ENTRIES if e != "ValueBaseline.fit"])  # the fit reads no actions
def test_out_of_range_actions_in_a_hand_made_batch(entry: str, bad_action: int) -> None:
    with pytest.raises(ValueError, match="action"):
        _call_on_bad_batch(entry, "actions", bad_action)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("options", [{"stderr": False, "baseline": "time"}, {"stderr": False}, {"baseline": "mean"},
                                     {"weights": "return", "stderr": False}, {"per_trajectory": True}])
def test_out_of_range_steps_deep_in_a_large_batch(rng: np.random.Generator, threads: int, options: dict[str, Any]) -> None:
    """score_batch range-checks each row as it reads it, on every worker: the error still names the
    first bad step of the batch (whichever worker met a bad row first), and a clean copy of the
    batch gives the same gradient as before."""
    mdp = random_mdp(rng, S=6, A=3)
    pi = random_policy(rng, mdp)
    traj = mdp.sample(pi, 512, seed=5)
    good = pg.policy_gradient(pi, traj, threads=threads, **options)
    for field, rows, value, what in [("states", (200, 130), 6, "state"), ("actions", (400, 70), -1, "action")]:
        arrays = {"states": traj.states.copy(), "actions": traj.actions.copy()}
        for i in rows:
            # the last real step; blocks of 64 rows alternate between the two workers, so the first
            # bad row is worker 0's for the states (rows 130 | 200) and worker 1's for the actions (70 | 400)
            arrays[field][i, traj.lengths[i] - 1] = value
        bad = pg.Trajectories(mdp, arrays["states"], arrays["actions"], traj.rewards, traj.lengths, traj.final_states)
        first = min(rows)
        with pytest.raises(ValueError, match=f"trajectory {first}, step {traj.lengths[first] - 1}: .*{what}"):
            pg.policy_gradient(pi, bad, threads=threads, **options)
    again = pg.policy_gradient(pi, traj, threads=threads, **options)
    np.testing.assert_array_equal(again.grad, good.grad)


def test_hand_made_batches_are_checked_when_made() -> None:
    """Trajectories(...) refuses what would otherwise wrap, truncate or mislead later, naming the array."""
    mdp, pi, traj = tiny_problem()
    parts = {"states": traj.states, "actions": traj.actions, "rewards": traj.rewards, "lengths": traj.lengths,
             "final_states": traj.final_states}

    def make(**change: Any) -> pg.Trajectories:
        kw = {**parts, **change}
        return pg.Trajectories(mdp, kw["states"], kw["actions"], kw["rewards"], kw["lengths"], kw["final_states"])

    # integer input of another width or layout is fine and stored as int32 / float64, C order
    ok = make(states=traj.states.astype(np.int64), lengths=traj.lengths.astype(np.uint8),
              rewards=np.asfortranarray(traj.rewards.astype(np.float32)))
    assert ok.states.dtype == np.int32 and ok.lengths.dtype == np.int32 and ok.rewards.dtype == np.float64
    assert ok.rewards.flags.c_contiguous
    assert_close(ok.returns(), traj.returns())
    assert_close(ok.reward_to_go(), traj.reward_to_go())
    np.testing.assert_array_equal(pg.policy_gradient(pi, ok).grad, pg.policy_gradient(pi, traj).grad)
    wrapped = traj.states.astype(np.int64)
    wrapped[0, 0] += 2**32  # would become state 0 again if cast to int32
    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"states": wrapped}, ValueError, "states holds values outside the int32 range"),
        ({"states": traj.states + 0.5}, TypeError, "states must be an integer array"),
        ({"lengths": traj.lengths.astype(float)}, TypeError, "lengths must be an integer array"),
        ({"actions": traj.actions[:, :2]}, ValueError, "actions must have the shape of states"),
        ({"rewards": traj.rewards[:, :2]}, ValueError, r"rewards must have the shape of states \(N, H\) = \(3, 3\)"),
        ({"rewards": traj.rewards.astype(str)}, TypeError, "rewards must be a real numeric array"),
        ({"lengths": traj.lengths[:2]}, ValueError, r"lengths must have shape \(N,\) = \(3,\)"),
        ({"lengths": np.array([3, 4, 1])}, ValueError, r"lengths\[1\] = 4 is out of range \[0, H = 3\]"),
        ({"final_states": np.array([1, 2, 3])}, ValueError, r"final_states\[2\] = 3 is not a state"),
        ({"states": traj.states[0]}, ValueError, "states must be 2-D"),
    ]
    nan = traj.rewards.copy()
    nan[1, 1] = np.nan  # a real step (episode 1 has length 2)
    cases.append(({"rewards": nan}, ValueError, r"rewards must be finite on the real steps.*trajectory 1, step 1"))
    for change, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            make(**change)
    past = traj.rewards.copy()
    past[2, 2] = np.nan  # past the end of episode 2: padding is never read
    assert np.isfinite(make(rewards=past).returns()).all()
    with pytest.raises(TypeError, match="mdp must be a pgfast.FiniteMDP"):
        pg.Trajectories(None, traj.states, traj.actions, traj.rewards, traj.lengths, traj.final_states)  # type: ignore[arg-type]


def test_empty_batch_and_other_bad_arguments(rng: np.random.Generator) -> None:
    mdp, pi, traj = tiny_problem()
    empty = pg.Trajectories(mdp, np.zeros((0, 3), np.int32), np.zeros((0, 3), np.int32), np.zeros((0, 3)),
                            np.zeros(0, np.int32), np.zeros(0, np.int32))
    beta = tiny_behavior()
    for call in (lambda: pg.policy_gradient(pi, empty), lambda: pg.score(pi, empty, np.zeros((0, 3))),
                 lambda: pg.off_policy_gradient(pi, beta, empty), lambda: pg.off_policy_value(pi, beta, empty)):
        with pytest.raises(ValueError, match=r"traj holds no trajectories \(N = 0\)"):
            call()
    # flags are True or False, not truthy strings
    for call in (lambda: pg.off_policy_gradient(pi, beta, traj, per_decision="no"),  # type: ignore[arg-type]
                 lambda: pg.off_policy_value(pi, beta, traj, self_normalized=1),  # type: ignore[arg-type]
                 lambda: pg.policy_gradient(pi, traj, stderr="yes"),  # type: ignore[arg-type]
                 lambda: pg.log_likelihood(pi, traj, dynamics=0)):  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="must be True or False"):
            call()
    with pytest.raises(ValueError, match=r"n must be <= 2\*\*62|n must be <= 4611686018427387904"):
        pg.policy_gradient(pi, mdp=mdp, n=2**64, seed=0)
    # a batch whose horizon is not the MDP's cannot take a V_t(s) baseline of the MDP's horizon
    short = pg.Trajectories(mdp, traj.states[:, :2], traj.actions[:, :2], traj.rewards[:, :2],
                            np.minimum(traj.lengths, 2), np.array([1, 0, 2], np.int32))
    for b in ("exact", pg.ValueBaseline(3, 3)):
        with pytest.raises(ValueError, match="needs a batch of the MDP's horizon H = 3, got a batch of H = 2"):
            pg.policy_gradient(pi, short, baseline=b)
    # a linear ValueBaseline without ridge on collinear features
    big = mdp.sample(pi, 200, seed=3)
    collinear = np.array([[1.0, 2.0], [2.0, 4.0], [0.5, 1.0]])
    with pytest.raises(ValueError, match="singular.*ridge > 0"):
        pg.ValueBaseline(3, 3, features=collinear, ridge=0.0).fit(big)
    assert pg.off_policy_gradient(pi, beta, traj).n_steps == traj.n_steps


