"""pg.audit: a correct hand-written REINFORCE and pgfast's own estimators pass, three classic
mistakes are flagged as biased, the false-alarm rate is the stated family-wise rate, and bad
inputs raise errors that name the argument.

Every audit here runs at the default family-wise error rate alpha = 0.01, with fixed seeds: a
correct estimator is called biased with probability at most 0.01, so the assertions are on the
audit's own decision at its stated rate, never on a threshold chosen here. The designs (n, repeats)
give every planted mistake an expected largest |z| far above the Holm / Bonferroni critical value
(about 4), which the tests check from the exact bias where it is known.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from helpers import k_two_sided, random_mdp
from scipy import stats

import pgfast as pg
from pgfast import _audit

# -- a hand-written NumPy REINFORCE and its three classic mistakes ----------------------------------


def _reward_to_go(traj: pg.Trajectories, gamma: float) -> np.ndarray:
    """G_t = r_t + gamma G_{t+1}, (N, H), by a backward loop over the steps."""
    r = traj.rewards
    G = np.zeros_like(r)
    acc = np.zeros(r.shape[0])
    for t in range(r.shape[1] - 1, -1, -1):
        acc = r[:, t] + gamma * acc
        G[:, t] = acc
    return G


def numpy_reinforce(pi: pg.TabularSoftmax, gamma: float, mistake: str | None = None) -> Callable[[pg.Trajectories], np.ndarray]:
    """The reward-to-go REINFORCE of a tabular softmax, written from the batch arrays and the policy's
    probabilities: (1/N) sum_i sum_t w_it (e_a - pi(.|s)), w_it = gamma^t G_it; or with a mistake:
    ``"own_baseline"`` (return weights minus the batch mean return, trajectory i included),
    ``"no_discount"`` (w = G_t, without gamma^t), ``"late"`` (w = gamma^t G_{t+1}, one step late)."""
    probs = pi.probs()
    S, A = probs.shape

    def estimator(traj: pg.Trajectories) -> np.ndarray:
        N, H = traj.rewards.shape
        G = _reward_to_go(traj, gamma)
        disc = gamma ** np.arange(H)
        if mistake is None:
            W = disc * G
        elif mistake == "own_baseline":
            W = np.repeat((G[:, 0] - G[:, 0].mean())[:, None], H, axis=1)
        elif mistake == "no_discount":
            W = G
        elif mistake == "late":
            W = disc * np.concatenate([G[:, 1:], np.zeros((N, 1))], axis=1)
        else:
            raise AssertionError(mistake)
        mask = traj.mask
        s, a, w = traj.states[mask], traj.actions[mask], W[mask]
        g = np.zeros((S, A))
        np.add.at(g, (s, a), w)
        np.add.at(g, s, -w[:, None] * probs[s])
        return g / N

    return estimator


def _random_problem() -> tuple[pg.FiniteMDP, pg.TabularSoftmax]:
    rng = np.random.default_rng(0)
    mdp = random_mdp(rng, S=5, A=3, horizon=6, gamma=0.9, n_terminal=1)
    return mdp, pg.TabularSoftmax(5, 3, theta=rng.normal(size=(5, 3)))


def _frozenlake() -> tuple[pg.FiniteMDP, pg.TabularSoftmax]:
    """FrozenLake 4x4 (gamma = 0.9), a policy half-way to the optimal one: logit 2 on the optimal
    action of each state (J about 0.023)."""
    mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="4x4", horizon=30, gamma=0.9)
    greedy = pg.exact.optimal(mdp).action_values[0].argmax(axis=-1)
    return mdp, pg.TabularSoftmax(16, 4, theta=2.0 * np.eye(4)[greedy])


PROBLEMS = {"random": _random_problem, "frozenlake": _frozenlake}
# (n, repeats) per problem: the correct estimators and mistakes (2), (3); mistake (1) needs small
# batches (its bias is -grad J / n) and many of them.
DESIGN = {"random": (100, 400), "frozenlake": (100, 1000)}
OWN_DESIGN = {"random": (2, 2000), "frozenlake": (2, 20_000)}


@pytest.fixture(scope="module", params=sorted(PROBLEMS))
def problem(request: pytest.FixtureRequest) -> tuple[str, pg.FiniteMDP, pg.TabularSoftmax]:
    name = request.param
    return (name, *PROBLEMS[name]())


def test_correct_numpy_reinforce_passes(problem: tuple[str, pg.FiniteMDP, pg.TabularSoftmax]) -> None:
    name, mdp, pi = problem
    n, R = DESIGN[name]
    rep = pg.audit(numpy_reinforce(pi, mdp.gamma), mdp, pi, n=n, repeats=R, seed=11)
    assert rep.alpha == 0.01
    assert rep.unbiased and rep.variance_as_expected and rep.passed, rep.verdict
    assert rep.verdict.startswith("Unbiased") and "Variance as expected" in rep.verdict
    assert str(rep) == rep.verdict
    assert not rep.flagged.any()
    # the fields agree with each other and with the exact moments used
    m = pg.exact.moments(mdp, pi)
    np.testing.assert_allclose(rep.exact.mean, m.mean)
    np.testing.assert_allclose(rep.exact.variance, m.variance)
    np.testing.assert_allclose(rep.mean, rep.estimates.mean(axis=0))
    np.testing.assert_allclose(rep.bias, rep.mean - m.mean)
    tested = ~rep.degenerate
    np.testing.assert_allclose(rep.z[tested], rep.bias[tested] / rep.stderr[tested])
    sample = rep.estimates.std(axis=0, ddof=1) / np.sqrt(R)
    np.testing.assert_allclose(rep.stderr[tested], np.maximum(np.sqrt(m.variance / (n * R)), sample)[tested])
    np.testing.assert_allclose(rep.p_values[tested], 2 * stats.norm.sf(np.abs(rep.z[tested])))
    np.testing.assert_allclose(rep.variance, n * rep.estimates.var(axis=0, ddof=1))
    assert np.all(rep.variance_ratio_ci[0][tested] <= rep.variance_ratio[tested])
    assert np.all(rep.variance_ratio[tested] <= rep.variance_ratio_ci[1][tested])
    lo, hi = rep.trace_ratio_ci
    assert lo <= 1.0 <= hi and lo < rep.trace_ratio < hi
    assert math.isclose(rep.trace_ratio, rep.variance.sum() / m.trace, rel_tol=1e-12)
    # zero-variance coordinates (terminal states, states never reached) equal their exact value
    assert rep.degenerate.any() and np.all(rep.estimates[:, rep.degenerate] == 0.0)


def test_pgfast_policy_gradient_passes(problem: tuple[str, pg.FiniteMDP, pg.TabularSoftmax]) -> None:
    """Including the leave-one-out batch baselines "time" and "mean", whose variance exceeds that of
    their deterministic limits (the claimed moments) by O(1/n): large batches make it negligible."""
    _, mdp, pi = problem
    n, R = 1000, 200
    for k, (weights, baseline) in enumerate([("reward_to_go", "time"), ("return", "mean"), ("reward_to_go", "exact")]):
        rep = pg.audit(lambda traj, w=weights, b=baseline: pg.policy_gradient(pi, traj, weights=w, baseline=b),
                       mdp, pi, n=n, repeats=R, seed=20 + k, claims=dict(weights=weights, baseline=baseline))
        assert rep.passed, rep.verdict


@pytest.mark.parametrize("mistake", ["no_discount", "late"])
def test_planted_mistakes_are_flagged(problem: tuple[str, pg.FiniteMDP, pg.TabularSoftmax], mistake: str) -> None:
    name, mdp, pi = problem
    n, R = DESIGN[name]
    assert mdp.gamma < 1.0  # the missing gamma^t is a bias only then
    rep = pg.audit(numpy_reinforce(pi, mdp.gamma, mistake), mdp, pi, n=n, repeats=R, seed=31)
    assert not rep.unbiased and not rep.passed, rep.verdict
    assert rep.verdict.startswith("Biased") and "theta[" in rep.verdict
    # far beyond the critical value (Bonferroni bound of Holm's first step): power essentially 1
    crit = stats.norm.isf(rep.alpha / (2 * (~rep.degenerate).sum()))
    assert np.abs(rep.z).max() > crit + 5, (np.abs(rep.z).max(), crit)


def test_own_trajectory_in_the_baseline_is_flagged(problem: tuple[str, pg.FiniteMDP, pg.TabularSoftmax]) -> None:
    """The batch mean return *including* trajectory i as its baseline: E[g] = (1 - 1/n) grad J, a
    bias of -grad J / n, found with small batches; the audit measures that bias."""
    name, mdp, pi = problem
    n, R = OWN_DESIGN[name]
    rep = pg.audit(numpy_reinforce(pi, mdp.gamma, "own_baseline"), mdp, pi, n=n, repeats=R, seed=41,
                   claims=dict(weights="return", baseline="mean"))
    assert not rep.unbiased, rep.verdict
    expected = -rep.exact.mean / n
    tested = ~rep.degenerate
    # the design: the expected largest |z| is far above the critical value
    crit = stats.norm.isf(rep.alpha / (2 * tested.sum()))
    assert np.max(np.abs(expected[tested]) / rep.stderr[tested]) > crit + 4
    # the measured bias is the predicted one (z-test, Bonferroni over the coordinates, level 1e-3)
    z = (rep.bias[tested] - expected[tested]) / rep.stderr[tested]
    assert np.abs(z).max() < k_two_sided(int(tested.sum())) + 0.5


def test_leave_one_out_baseline_passes_where_own_fails() -> None:
    mdp, pi = _random_problem()
    n, R = OWN_DESIGN["random"]
    rep = pg.audit(lambda traj: pg.policy_gradient(pi, traj, weights="return", baseline="mean"), mdp, pi,
                   n=n, repeats=R, seed=41, claims=dict(weights="return", baseline="mean"))
    assert rep.unbiased, rep.verdict
    # its variance exceeds that of the deterministic baseline b = J (the claimed moments) by the
    # O(1/n) term, large for n = 2, and the verdict says where it comes from
    assert not rep.variance_as_expected and rep.trace_ratio_ci[0] > 1.0
    assert "leave-one-out batch baseline 'mean' adds a term of relative order 1/n" in rep.verdict


def test_mlp_policy_estimator_passes() -> None:
    rng = np.random.default_rng(8)
    mdp = random_mdp(rng, S=4, A=2, horizon=5, gamma=0.9, n_terminal=1)
    net = pg.MLPSoftmax(rng.normal(size=(4, 3)), 2, hidden=(4,), seed=3)
    rep = pg.audit(lambda traj: pg.policy_gradient(net, traj, baseline="exact"), mdp, net, n=50, repeats=300,
                   seed=9, claims=dict(baseline="exact"))
    assert rep.passed, rep.verdict
    assert rep.z.shape == net.theta.shape


def test_linear_policy_estimator_passes_and_wrong_claim_is_flagged() -> None:
    """Any softmax policy: a linear one, through pg.score; claiming another estimator than the one
    run (return weights claimed as reward-to-go) changes the variance verdict, not the bias one."""
    rng = np.random.default_rng(3)
    mdp = random_mdp(rng, S=4, A=3, horizon=5, gamma=1.0)
    pi = pg.LinearSoftmax(rng.normal(size=(4, 3, 3)), theta=rng.normal(size=3))

    def reinforce(traj: pg.Trajectories) -> np.ndarray:
        return pg.score(pi, traj, np.repeat(traj.returns()[:, None], traj.horizon, axis=1))

    rep = pg.audit(reinforce, mdp, pi, n=50, repeats=400, seed=5, claims=dict(weights="return"))
    assert rep.passed, rep.verdict
    wrong = pg.audit(reinforce, mdp, pi, n=50, repeats=400, seed=5, claims=dict(weights="reward_to_go"))
    assert wrong.unbiased  # the same mean
    m_ret = pg.exact.moments(mdp, pi, weights="return")
    m_rtg = pg.exact.moments(mdp, pi, weights="reward_to_go")
    assert m_ret.trace > 1.3 * m_rtg.trace  # so the variance is higher than the claimed one's
    assert not wrong.variance_as_expected and "Variance higher" in wrong.verdict, wrong.verdict
    np.testing.assert_allclose(wrong.trace_ratio, rep.trace_ratio * m_ret.trace / m_rtg.trace)


def test_false_alarm_rate_is_the_stated_rate() -> None:
    """One parameter (a linear policy on one feature): the family is one test, so the rate at which
    a correct estimator is called biased is alpha itself (with several coordinates Holm keeps it at
    most alpha). 300 audits at alpha = 0.1: the count of alarms is Binomial(300, 0.1), checked
    within 4 standard deviations."""
    rng = np.random.default_rng(7)
    mdp = random_mdp(rng, S=3, A=2, horizon=4, gamma=0.95)
    pi = pg.LinearSoftmax(rng.normal(size=(3, 2, 1)), theta=np.array([0.3]))
    m = pg.exact.moments(mdp, pi)
    K, alpha = 300, 0.1
    seeds = np.random.SeedSequence(2024).generate_state(K, dtype=np.uint64)
    biased = variance = 0
    for s in seeds:
        rep = pg.audit(lambda traj: pg.policy_gradient(pi, traj, stderr=False).grad, mdp, pi, n=30, repeats=40,
                       seed=int(s), claims=m, alpha=alpha)
        biased += not rep.unbiased
        variance += not rep.variance_as_expected
    sd = math.sqrt(K * alpha * (1 - alpha))
    assert abs(biased - K * alpha) <= 4 * sd, biased
    # the variance intervals are at least as wide as the chi-square ones: at most alpha
    assert variance <= K * alpha + 4 * sd, variance


# -- reproducibility, claims and outputs --------------------------------------------------------------


def test_seeds_are_counter_based_and_threads_do_not_matter() -> None:
    mdp, pi = _random_problem()
    f = numpy_reinforce(pi, mdp.gamma)
    a = pg.audit(f, mdp, pi, n=20, repeats=30, seed=123, threads=1)
    b = pg.audit(f, mdp, pi, n=20, repeats=10, seed=123, threads=2)
    np.testing.assert_array_equal(a.estimates[:10], b.estimates)
    np.testing.assert_array_equal(a.seeds[:10], b.seeds)
    assert a.seed == 123 and a.seeds.dtype == np.uint64 and len(set(a.seeds.tolist())) == 30
    assert a.seeds[1] != a.seeds[0] + 1
    # batch r is mdp.sample(policy, n, seed=seeds[r])
    np.testing.assert_array_equal(a.estimates[7], f(mdp.sample(pi, 20, seed=int(a.seeds[7]))))
    c = pg.audit(f, mdp, pi, n=20, repeats=10, seed=None)
    assert isinstance(c.seed, int) and 0 <= c.seed < 2**64


def test_claims_as_moments_flat_output_and_policy_gradient_object() -> None:
    mdp, pi = _random_problem()
    m = pg.exact.moments(mdp, pi, baseline="exact")
    a = pg.audit(lambda traj: pg.policy_gradient(pi, traj, baseline="exact"), mdp, pi, n=20, repeats=20, seed=1,
                 claims=dict(baseline="exact"))
    b = pg.audit(lambda traj: pg.policy_gradient(pi, traj, baseline="exact").grad.ravel(), mdp, pi, n=20,
                 repeats=20, seed=1, claims=m)
    np.testing.assert_array_equal(a.estimates, b.estimates)
    np.testing.assert_allclose(a.z, b.z, rtol=1e-12)
    assert b.exact is m and a.estimates.shape == (20, 5, 3)
    assert "baseline 'exact'" in a.verdict
    assert repr(a).startswith("AuditReport(unbiased=")


def test_chi2_quantiles_and_holm() -> None:
    for dof in (1, 2, 3.5, 9, 39, 199, 999, 20_000):
        for p in (1e-6, 0.005, 0.05, 0.5, 0.95, 0.995):
            assert math.isclose(_audit.chi2_quantile(p, dof), stats.chi2.ppf(p, dof), rel_tol=1e-9)
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.5])
    adj = _audit.holm(p)
    # by hand: sorted 0.005, 0.01, 0.03, 0.04, 0.5 times 5, 4, 3, 2, 1, running maximum
    np.testing.assert_allclose(adj, [0.04, 0.09, 0.09, 0.025, 0.5])


def test_zero_variance_coordinates_are_checked_for_equality() -> None:
    """A terminal state's coordinates have zero exact variance: an estimator that puts anything
    there is biased (z = inf), whatever the noise elsewhere."""
    mdp, pi = _random_problem()
    f = numpy_reinforce(pi, mdp.gamma)

    def leaky(traj: pg.Trajectories) -> np.ndarray:
        g = f(traj)
        g[4, 0] += 1e-3  # state 4 is terminal
        return g

    rep = pg.audit(leaky, mdp, pi, n=20, repeats=20, seed=2)
    assert rep.degenerate[4].all() and rep.flagged[4, 0] and not rep.flagged[4, 1:].any()
    assert rep.z[4, 0] == np.inf and rep.p_values[4, 0] == 0.0
    assert not rep.unbiased and "theta[4, 0]" in rep.verdict


def test_an_mdp_without_rewards_has_zero_moments() -> None:
    """Zero rewards: the exact mean and variance are 0 in every coordinate; the estimate must be 0."""
    rng = np.random.default_rng(4)
    mdp = random_mdp(rng, S=4, A=2, horizon=3)
    mdp = pg.FiniteMDP(mdp.P, np.zeros((4, 2)), mdp.mu0, horizon=3)
    pi = pg.TabularSoftmax(4, 2, theta=rng.normal(size=(4, 2)))
    rep = pg.audit(numpy_reinforce(pi, 1.0), mdp, pi, n=10, repeats=5, seed=0)
    assert rep.passed and rep.degenerate.all() and math.isnan(rep.trace_ratio), rep.verdict
    assert "zero variance, and so has this one" in rep.verdict
    noisy = pg.audit(lambda traj: rng.normal(size=(4, 2)), mdp, pi, n=10, repeats=5, seed=0)
    assert not noisy.unbiased and not noisy.variance_as_expected and noisy.flagged.all()
    assert "this one has not" in noisy.verdict


def test_a_constant_estimator_has_zero_variance_ratio() -> None:
    mdp, pi = _random_problem()
    rep = pg.audit(lambda traj: np.zeros((5, 3)), mdp, pi, n=10, repeats=20, seed=0)
    assert not rep.unbiased and not rep.variance_as_expected
    assert rep.trace_ratio == 0.0 and rep.trace_ratio_ci == (0.0, 0.0)
    assert "Variance zero" in rep.verdict


# -- errors -------------------------------------------------------------------------------------------


def _good(pi: pg.TabularSoftmax) -> Callable[[pg.Trajectories], np.ndarray]:
    return lambda traj: pg.policy_gradient(pi, traj).grad


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    (dict(n=0), ValueError, "n must be >= 1"),
    (dict(n=2.5), TypeError, "n must be an integer"),
    (dict(repeats=1), ValueError, "repeats must be >= 2"),
    (dict(alpha=0.0), ValueError, r"alpha must be in \(0, 1\)"),
    (dict(alpha=1.5), ValueError, r"alpha must be in \(0, 1\)"),
    (dict(alpha="0.1"), TypeError, "alpha must be a real number"),
    (dict(seed=-1), ValueError, "seed must be >= 0"),
    (dict(threads=0), ValueError, "threads must be >= 1"),
    (dict(claims=dict(weight="return")), ValueError, "claims may name weights, baseline, gamma, got 'weight'"),
    (dict(claims=dict(baseline="nope")), ValueError, "baseline must be"),
    (dict(claims="return"), TypeError, "claims must be a dict"),
])
def test_bad_arguments(kwargs: dict[str, Any], exc: type[Exception], match: str) -> None:
    mdp, pi = _random_problem()
    args: dict[str, Any] = dict(n=5, repeats=3, seed=0) | kwargs
    with pytest.raises(exc, match=match):
        pg.audit(_good(pi), mdp, pi, **args)


def test_bad_estimators_and_objects() -> None:
    mdp, pi = _random_problem()
    with pytest.raises(TypeError, match="estimator must be callable"):
        pg.audit(np.zeros((5, 3)), mdp, pi, n=5, repeats=3, seed=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="mdp must be a pgfast.FiniteMDP"):
        pg.audit(_good(pi), "mdp", pi, n=5, repeats=3, seed=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="policy must be a pgfast policy"):
        pg.audit(_good(pi), mdp, None, n=5, repeats=3, seed=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"estimator must return an array of the shape of policy.theta \(5, 3\) "
                                         r"\(or \(15,\)\), got shape \(3, 5\) on batch 0"):
        pg.audit(lambda traj: np.zeros((3, 5)), mdp, pi, n=5, repeats=3, seed=0)
    with pytest.raises(TypeError, match="estimator must return a real gradient array, got str"):
        pg.audit(lambda traj: "grad", mdp, pi, n=5, repeats=3, seed=0)
    with pytest.raises(TypeError, match="estimator must return a real gradient array, got NoneType"):
        pg.audit(lambda traj: None, mdp, pi, n=5, repeats=3, seed=0)

    with pytest.raises(ValueError, match=r"the estimator's gradient on batch 0 \(seed \d+\) must be a rectangular"):
        pg.audit(lambda traj: [[1.0, 2.0], [3.0]], mdp, pi, n=5, repeats=3, seed=0)

    def failing(traj: pg.Trajectories) -> np.ndarray:
        raise KeyError("bug")

    with pytest.raises(KeyError, match="bug") as info:
        pg.audit(failing, mdp, pi, n=5, repeats=3, seed=0)
    if sys.version_info >= (3, 11):  # exceptions carry notes from Python 3.11
        assert any("raised by the estimator audited by pgfast.audit, on batch 0" in note
                   for note in info.value.__notes__)

    def nan_on_second(traj: pg.Trajectories) -> np.ndarray:
        g = pg.policy_gradient(pi, traj).grad.copy()
        if traj.seed != first_seed:
            g[1, 2] = np.nan
        return g

    first_seed = int(np.random.SeedSequence(0).generate_state(1, dtype=np.uint64)[0])
    with pytest.raises(ValueError, match=r"estimator returned a non-finite gradient on batch 1 \(seed \d+\): nan at "
                                         r"flat index 5"):
        pg.audit(nan_on_second, mdp, pi, n=5, repeats=3, seed=0)

    def mutating(traj: pg.Trajectories) -> np.ndarray:
        g = pg.policy_gradient(pi, traj).grad
        pi.theta = pi.theta + 0.1
        return g

    theta = pi.theta.copy()
    with pytest.raises(ValueError, match=r"estimator changed policy.theta on batch 0"):
        pg.audit(mutating, mdp, pi, n=5, repeats=3, seed=0)
    pi.theta = theta
    m_disc = pg.exact.moments(mdp, pi, objective="discounted")
    with pytest.raises(ValueError, match="claims must be the moments of a finite-horizon estimator"):
        pg.audit(_good(pi), mdp, pi, n=5, repeats=3, seed=0, claims=m_disc)
    other = pg.exact.moments(*_frozenlake())
    with pytest.raises(ValueError, match=r"claims \(pgfast.exact.Moments\) must have the shape of policy.theta"):
        pg.audit(_good(pi), mdp, pi, n=5, repeats=3, seed=0, claims=other)
