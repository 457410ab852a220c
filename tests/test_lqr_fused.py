"""The fused policy-gradient estimator on an LQR (pg.policy_gradient(pi, mdp=lqr, n=, seed=)): the
same estimate as NumPy forms from lqr.sample's batch, unbiased against the exact gradient, the
same bits for any thread count, divergence, errors and Ctrl-C."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import pgfast as pg
from helpers import Family
from lqr_reference import example, fd_gradient, objective
from test_interrupts import assert_interrupts

CASES = [("return", None), ("return", "mean"), ("reward_to_go", None), ("reward_to_go", "mean"),
         ("reward_to_go", "time")]


def policy() -> pg.LinearGaussian:
    return pg.LinearGaussian(3, 2, W=[[-0.2, -0.5, 0.1], [0.0, -0.1, -0.6]], log_std=np.log([0.3, 0.2]))


def numpy_rows(pi: pg.LinearGaussian, traj: pg.ContinuousTrajectories, weights: str, baseline: str | None,
               gamma: float) -> np.ndarray:
    """Per-trajectory gradients sum_t w_t grad log pi(u_t|x_t) from a stored batch, with the
    leave-one-out baselines of the finite estimators (cpp/include/pgfast/estimators/baselines.hpp)."""
    N, H = traj.rewards.shape
    mask = traj.mask
    score = np.where(mask[..., None], pi.grad_log_prob(traj.states, traj.actions), 0.0)
    G0 = traj.returns(gamma)
    Gt = traj.reward_to_go(gamma)
    if weights == "return":
        b = 0.0 if baseline is None else (G0.sum() - G0) / (N - 1)
        w = np.where(mask, (G0 - b)[:, None], 0.0)
    else:
        if baseline is None:
            bt = np.zeros((N, H))
        elif baseline == "mean":
            bt = np.broadcast_to(((G0.sum() - G0) / (N - 1))[:, None], (N, H))
        else:  # the mean reward-to-go at t of the other trajectories still running at t
            count = mask.sum(0)
            bt = np.where(count > 1, (Gt.sum(0) - Gt) / np.maximum(count - 1, 1), 0.0)
        w = np.where(mask, gamma ** np.arange(H) * (Gt - bt), 0.0)
    return np.einsum("nt,ntp->np", w, score)


@pytest.mark.parametrize("weights, baseline", CASES)
def test_equals_the_numpy_estimator_on_the_sampled_batch(weights: str, baseline: str | None) -> None:
    lqr = example(noise=True, gaussian_start=True, horizon=15, gamma=0.9)
    pi = policy()
    N = 3000
    traj = lqr.sample(pi, N, seed=21)
    est = pg.policy_gradient(pi, mdp=lqr, n=N, seed=21, weights=weights, baseline=baseline, per_trajectory=True)
    rows = numpy_rows(pi, traj, weights, baseline, lqr.gamma)
    assert est.per_trajectory is not None
    np.testing.assert_allclose(est.per_trajectory, rows, rtol=1e-12, atol=1e-12 * np.abs(rows).max())
    np.testing.assert_allclose(est.grad, rows.mean(0), rtol=1e-12, atol=1e-13 * np.abs(rows).max())
    np.testing.assert_allclose(est.stderr, rows.std(0, ddof=1) / np.sqrt(N), rtol=1e-10)
    G = traj.returns()
    assert est.value == pytest.approx(G.mean(), rel=1e-12)
    assert est.value_stderr == pytest.approx(G.std(ddof=1) / np.sqrt(N), rel=1e-10)
    assert est.n == N and est.n_steps == traj.n_steps == N * 15 and est.ess is None
    # another gamma than the LQR's, without rows
    est2 = pg.policy_gradient(pi, mdp=lqr, n=N, seed=21, weights=weights, baseline=baseline, gamma=0.7)
    rows2 = numpy_rows(pi, traj, weights, baseline, 0.7)
    np.testing.assert_allclose(est2.grad, rows2.mean(0), rtol=1e-12, atol=1e-13 * np.abs(rows2).max())
    assert est2.per_trajectory is None


@pytest.mark.parametrize("weights, baseline", CASES)
def test_unbiased_against_the_exact_gradient(weights: str, baseline: str | None) -> None:
    fam = Family()
    for k, lqr in enumerate([example(noise=True, gaussian_start=True, horizon=10, gamma=0.95), example(horizon=6)]):
        pi = policy()
        exact = fd_gradient(lqr, pi)
        J = objective(lqr, pi.W, pi.log_std)
        est = pg.policy_gradient(pi, mdp=lqr, n=40000, seed=100 + k, weights=weights, baseline=baseline)
        fam.grad(f"{weights}/{baseline} lqr{k}", est, exact, J)
    fam.check()


def test_baselines_reduce_the_variance() -> None:
    lqr = example(noise=True, horizon=15)
    pi = policy()
    se = {case: pg.policy_gradient(pi, mdp=lqr, n=4000, seed=3, weights=case[0], baseline=case[1]).stderr
          for case in CASES}
    assert np.all(se[("return", "mean")] < se[("return", None)])
    assert np.all(se[("reward_to_go", "time")] < se[("reward_to_go", None)])
    assert np.all(se[("reward_to_go", None)] < se[("return", None)])


@pytest.mark.parametrize("weights, baseline", CASES)
def test_the_same_bits_for_any_thread_count(weights: str, baseline: str | None) -> None:
    lqr = example(noise=True, gaussian_start=True, horizon=7)
    pi = policy()
    N = 5000  # 20 blocks of 256 trajectories
    ref = pg.policy_gradient(pi, mdp=lqr, n=N, seed=8, weights=weights, baseline=baseline, threads=1,
                             per_trajectory=True)
    for threads in (2, 3, 7):
        est = pg.policy_gradient(pi, mdp=lqr, n=N, seed=8, weights=weights, baseline=baseline, threads=threads,
                                 per_trajectory=True)
        for name in ("grad", "stderr", "per_trajectory"):
            assert np.array_equal(getattr(est, name), getattr(ref, name)), (threads, name)
        assert (est.value, est.value_stderr, est.n_steps) == (ref.value, ref.value_stderr, ref.n_steps)
    # without the standard errors: the same gradient, NaN standard errors, the value's kept
    fast = pg.policy_gradient(pi, mdp=lqr, n=N, seed=8, weights=weights, baseline=baseline, stderr=False)
    assert np.array_equal(fast.grad, ref.grad) and np.isnan(fast.stderr).all()
    assert fast.value_stderr == ref.value_stderr


def test_a_floored_log_std_has_no_score() -> None:
    lqr = example(horizon=5)
    pi = pg.LinearGaussian(3, 2, W=policy().W, log_std=[-25.0, np.log(0.2)])
    est = pg.policy_gradient(pi, mdp=lqr, n=500, seed=0, per_trajectory=True)
    assert est.grad[6] == 0.0 and est.grad[7] != 0.0 and np.isfinite(est.grad).all()
    traj = lqr.sample(pi, 500, seed=0)
    rows = numpy_rows(pi, traj, "reward_to_go", None, 1.0)
    # NumPy's score forms (u - W x) / sigma^2 from the stored actions: with sigma = 2e-9 the
    # difference u - W x loses about 8 digits (the fused estimator uses the drawn eps itself)
    np.testing.assert_allclose(est.per_trajectory, rows, rtol=1e-6, atol=1e-6 * np.abs(rows).max())


def test_diverged_trajectories_enter_truncated_with_a_warning() -> None:
    lqr = example(horizon=80, noise=True, max_state=1.5)  # a low bound: some noisy trajectories leave it
    pi = policy()
    traj = lqr.sample(pi, 1000, seed=2)
    d = int(traj.diverged.sum())
    assert 0 < d < 1000
    with pytest.warns(RuntimeWarning, match=rf"{d} of the 1000 trajectories diverged .*max_state = 1.5"):
        est = pg.policy_gradient(pi, mdp=lqr, n=1000, seed=2, baseline="time", per_trajectory=True)
    assert np.isfinite(est.grad).all() and np.isfinite(est.stderr).all() and est.n_steps == traj.n_steps
    rows = numpy_rows(pi, traj, "reward_to_go", "time", 1.0)
    np.testing.assert_allclose(est.per_trajectory, rows, rtol=1e-12, atol=1e-12 * np.abs(rows).max())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pg.policy_gradient(pi, mdp=lqr.with_options(max_state=1e6), n=1000, seed=2)  # none diverges: no warning


def test_bad_inputs_give_clear_errors() -> None:
    lqr = example(horizon=5)
    pi = policy()
    traj = lqr.sample(pi, 10, seed=0)
    with pytest.raises(ValueError, match="not both"):
        pg.policy_gradient(pi, traj, mdp=lqr, n=10, seed=0)
    with pytest.raises(ValueError, match="needs n="):
        pg.policy_gradient(pi, mdp=lqr, seed=0)
    for bad in ("exact", "optimal", pg.ValueBaseline(3, 5)):
        with pytest.raises(ValueError, match="takes baseline None, 'mean' or 'time'"):
            pg.policy_gradient(pi, mdp=lqr, n=10, seed=0, baseline=bad)
    with pytest.raises(ValueError, match="needs weights='reward_to_go'"):
        pg.policy_gradient(pi, mdp=lqr, n=10, seed=0, weights="return", baseline="time")
    with pytest.raises(ValueError, match="weights must be"):
        pg.policy_gradient(pi, mdp=lqr, n=10, seed=0, weights="advantage")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 2"):
        pg.policy_gradient(pi, mdp=lqr, n=1, seed=0, baseline="mean")
    with pytest.raises(TypeError, match="LinearGaussian"):
        pg.policy_gradient(pg.TabularSoftmax(3, 2), mdp=lqr, n=10, seed=0)
    with pytest.raises(ValueError, match="identity features"):
        pg.policy_gradient(pg.LinearGaussian(3, 2, features="quadratic"), mdp=lqr, n=10, seed=0)
    with pytest.raises(ValueError, match="finite horizon"):
        pg.policy_gradient(pi, mdp=lqr.with_options(horizon=None, gamma=0.9), n=10, seed=0)
    for kwargs in ({"n": 0}, {"seed": -1}, {"threads": 0}, {"gamma": 1.5}):
        with pytest.raises(ValueError):
            pg.policy_gradient(pi, mdp=lqr, **{"n": 10, "seed": 0, **kwargs})  # type: ignore[arg-type]
    with pytest.raises(MemoryError, match="bytes"):
        pg.policy_gradient(pi, mdp=lqr, n=2**55, seed=0, per_trajectory=True)
    with pytest.raises(MemoryError, match="bytes"):
        pg.policy_gradient(pi, mdp=lqr.with_options(horizon=2**31 - 1), n=10, seed=0)


def test_the_fused_estimator_answers_ctrl_c() -> None:
    lqr = example(noise=True, gaussian_start=True, horizon=200)
    assert_interrupts(lambda: pg.policy_gradient(policy(), mdp=lqr, n=10**8, seed=0, baseline="time", threads=2))
    assert pg.policy_gradient(policy(), mdp=lqr, n=3, seed=0).n == 3  # still usable
