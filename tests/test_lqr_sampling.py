"""The compiled LQR sampler (LQR.sample): its moments against the exact recursions, reproducibility
(any thread count, prefixes, the default and the AVX2 code), divergence, the normals it draws from,
and bad inputs."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

import pgfast as pg
from helpers import Family
from lqr_reference import example
from pgfast import _core
from test_interrupts import assert_interrupts


def policy(noise: float = 0.3) -> pg.LinearGaussian:
    return pg.LinearGaussian(3, 2, W=[[-0.2, -0.5, 0.1], [0.0, -0.1, -0.6]], log_std=np.log([noise, 0.5 * noise]))


def exact_moments(lqr: pg.LQR, pi: pg.LinearGaussian, H: int) -> tuple[np.ndarray, np.ndarray]:
    """Means (H, n) and covariances (H, n, n) of x_t: mu_{t+1} = L mu_t, Sigma_{t+1} = L Sigma_t L' +
    B D B' + Sigma_w, L = A + B W (the recursion tests/lqr_reference.objective sums)."""
    n = lqr.state_dim
    L = lqr.A + lqr.B @ pi.W
    noise = lqr.B @ np.diag(pi.std**2) @ lqr.B.T + (np.zeros((n, n)) if lqr.noise_cov is None else lqr.noise_cov)
    mu, S = lqr.x0.copy(), np.zeros((n, n)) if lqr.x0_cov is None else lqr.x0_cov.copy()
    means, covs = np.empty((H, n)), np.empty((H, n, n))
    for t in range(H):
        means[t], covs[t] = mu, S
        mu, S = L @ mu, L @ S @ L.T + noise
    return means, covs


@pytest.mark.parametrize("noise, gaussian_start", [(False, False), (True, False), (True, True), (False, True)])
def test_state_moments_match_the_exact_recursion(noise: bool, gaussian_start: bool) -> None:
    lqr = example(noise=noise, gaussian_start=gaussian_start, horizon=12)
    pi = policy()
    N = 20000
    traj = lqr.sample(pi, N, seed=11)
    assert traj.states.shape == (N, 12, 3) and traj.actions.shape == (N, 12, 2) and traj.rewards.shape == (N, 12)
    assert (traj.lengths == 12).all() and not traj.diverged.any() and not traj.terminated.any()
    assert traj.source is lqr and traj.seed == 11 and traj.gamma == lqr.gamma
    means, covs = exact_moments(lqr, pi, 12)
    fam = Family()
    x = traj.states
    for t in range(0 if gaussian_start else 1, 12):  # a fixed start is checked exactly below
        xt = x[:, t]
        fam.add(f"mean[t={t}]", xt.mean(0), xt.std(0, ddof=1) / np.sqrt(N), means[t])
        prod = (xt[:, :, None] * xt[:, None, :]).reshape(N, -1)
        second = (covs[t] + np.outer(means[t], means[t])).ravel()
        fam.add(f"second[t={t}]", prod.mean(0), prod.std(0, ddof=1) / np.sqrt(N), second)
        # actions u = W x + sigma eps and rewards -(x'Qx + u'Ru)
        ut = traj.actions[:, t]
        fam.add(f"action mean[t={t}]", ut.mean(0), ut.std(0, ddof=1) / np.sqrt(N), pi.W @ means[t])
        Su = pi.W @ covs[t] @ pi.W.T + np.diag(pi.std**2)
        mu_u = pi.W @ means[t]
        Er = -(np.trace(lqr.Q @ (covs[t] + np.outer(means[t], means[t]))) + np.trace(lqr.R @ (Su + np.outer(mu_u, mu_u))))
        r = traj.rewards[:, t]
        fam.add(f"reward[t={t}]", r.mean(), r.std(ddof=1) / np.sqrt(N), Er)
    fam.check()
    # the rewards are the quadratic costs of the stored states and actions
    r = -(np.einsum("nti,ij,ntj->nt", x, lqr.Q, x) + np.einsum("nti,ij,ntj->nt", traj.actions, lqr.R, traj.actions))
    np.testing.assert_allclose(traj.rewards, r, rtol=1e-12, atol=1e-12)
    # a fixed start is exactly x0
    if not gaussian_start:
        assert np.array_equal(x[:, 0], np.broadcast_to(lqr.x0, (N, 3)))


def test_semidefinite_covariances_are_sampled() -> None:
    # Rank-1 start and noise covariances (semidefinite): the draws stay on their range and have the
    # right variance along it.
    v = np.array([1.0, 2.0, -1.0])
    lqr = example(horizon=3).with_options(x0_cov=np.outer(v, v), noise_cov=0.04 * np.outer(v, v))
    traj = lqr.sample(pg.LinearGaussian(3, 2, log_std=-30.0), 20000, seed=2)  # sigma at the floor, 2e-9
    d0 = traj.states[:, 0] - lqr.x0
    c = d0 @ v / (v @ v)  # the coordinate along v, N(0, 1)
    np.testing.assert_allclose(d0, np.outer(c, v), atol=1e-12)
    fam = Family()
    fam.add("var along v", (c * c).mean(), (c * c).std(ddof=1) / np.sqrt(c.size), 1.0)
    fam.check()
    # one step: x_1 = A x_0 + B u_0 + w, u_0 within 1e-7 of 0 and w along v
    resid = traj.states[:, 1] - traj.states[:, 0] @ lqr.A.T - traj.actions[:, 0] @ lqr.B.T
    cw = resid @ v / (v @ v)
    np.testing.assert_allclose(resid, np.outer(cw, v), atol=1e-7)
    assert abs(np.std(cw) - 0.2) < 0.01


def test_batches_are_the_same_bits_for_any_thread_count_and_prefix() -> None:
    lqr = example(noise=True, gaussian_start=True, horizon=9)
    pi = policy()
    ref = lqr.sample(pi, 1500, seed=5, threads=1)
    for threads in (2, 3, 7):
        other = lqr.sample(pi, 1500, seed=5, threads=threads)
        for name in ("states", "actions", "rewards", "lengths", "diverged"):
            assert np.array_equal(getattr(other, name), getattr(ref, name)), (threads, name)
    head = lqr.sample(pi, 37, seed=5)
    assert np.array_equal(head.states, ref.states[:37]) and np.array_equal(head.rewards, ref.rewards[:37])
    assert not np.array_equal(lqr.sample(pi, 37, seed=6).states, head.states)
    # a fresh seed is drawn and kept
    fresh = lqr.sample(pi, 4, seed=None)
    assert fresh.seed is not None and np.array_equal(lqr.sample(pi, 4, seed=fresh.seed).states, fresh.states)


def _sample_digest(path: str) -> None:
    """A batch with every part of the sampler (Gaussian start, noise, divergence), saved to path."""
    lqr = example(noise=True, gaussian_start=True, horizon=40, max_state=50.0)
    out = {}
    for name, pi in (("stable", policy()),
                     ("unstable", pg.LinearGaussian(3, 2, W=[[0.5, 1.0, 0.0], [0.0, 0.8, 0.3]], log_std=[-0.5, 0.2]))):
        traj = lqr.sample(pi, 333, seed=9, threads=2)
        for key in ("states", "actions", "rewards", "lengths", "diverged"):
            out[f"{name} {key}"] = getattr(traj, key)
    words = np.random.default_rng(1).integers(0, 2**64, size=4000, dtype=np.uint64)
    np.savez(path, normals=_core.lqr.standard_normals(words), **out)


def test_the_same_bits_with_and_without_avx2(tmp_path: Any) -> None:
    # A machine with AVX2 runs copies of the normals and of the group step compiled for it; the
    # default x86-64 code (PGFAST_NO_AVX2=1) must give the same bits (no contraction, the same
    # order of every sum, no C library transcendental functions).
    paths = []
    for avx2 in (True, False):
        env = {k: v for k, v in os.environ.items() if k != "PGFAST_NO_AVX2"}
        if not avx2:
            env["PGFAST_NO_AVX2"] = "1"
        path = str(tmp_path / f"{avx2}.npz")
        code = ("import sys; sys.path.insert(0, sys.argv[1]); import test_lqr_sampling as t; "
                "t._sample_digest(sys.argv[2])")
        subprocess.run([sys.executable, "-c", code, os.path.dirname(__file__), path], env=env, check=True, timeout=120)
        paths.append(path)
    a, b = np.load(paths[0]), np.load(paths[1])
    assert a["unstable diverged"].all() and not a["stable diverged"].any()
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_standard_normals_are_box_muller_pairs() -> None:
    words = np.random.default_rng(0).integers(0, 2**64, size=400000, dtype=np.uint64)
    z = _core.lqr.standard_normals(words)
    P = words.size // 2
    w1, w2 = words[:P], words[P:]
    u1 = 2.0 - (1.0 + (w1 >> np.uint64(12)).astype(np.float64) * 2.0**-52)
    u2 = (w2 >> np.uint64(12)).astype(np.float64) * 2.0**-52
    r = np.sqrt(-2.0 * np.log(u1))
    np.testing.assert_allclose(z[:P], r * np.cos(2 * np.pi * u2), rtol=0, atol=1e-13)
    np.testing.assert_allclose(z[P:], r * np.sin(2 * np.pi * u2), rtol=0, atol=1e-13)
    # the moments of N(0, 1) (standard errors of the mean, variance, skew, kurtosis)
    n = z.size
    fam = Family()
    for k, (moment, var) in enumerate([(0.0, 1.0), (1.0, 2.0), (0.0, 15.0), (3.0, 96.0)], start=1):
        fam.add(f"E z^{k}", np.mean(z**k), np.sqrt(var / n), moment)
    fam.check()
    assert abs(np.corrcoef(z[:P], z[P:])[0, 1]) < 5 / np.sqrt(P)
    # the portable log, to a few units in the last place
    xs = np.concatenate([np.geomspace(2.0**-52, 1.0, 2000), [1.0, 0.5, np.sqrt(0.5), np.nextafter(np.sqrt(0.5), 1)]])
    got = np.array([_core.lqr.log_positive(x) for x in xs])
    np.testing.assert_allclose(got, np.log(xs), rtol=4e-16, atol=1e-300)


def test_a_diverging_policy_stops_its_trajectories() -> None:
    lqr = example(horizon=60, noise=True)
    unstable = pg.LinearGaussian(3, 2, W=[[2.0, 2.0, 0.0], [0.0, 2.0, 2.0]], log_std=-1.0)
    traj = lqr.sample(unstable, 200, seed=1)
    assert traj.diverged.all() and (traj.lengths < 60).all() and traj.lengths.min() > 0
    mask = traj.mask
    assert np.all(np.abs(traj.states[mask]) <= lqr.max_state)
    assert np.isfinite(traj.rewards).all() and np.isfinite(traj.states).all() and np.isfinite(traj.actions).all()
    assert not traj.states[~mask].any() and not traj.actions[~mask].any() and not traj.rewards[~mask].any()
    # the step that stops a trajectory is the first whose state leaves the bound
    i = 0
    L = int(traj.lengths[i])
    x_last, u_last = traj.states[i, L - 1], traj.actions[i, L - 1]
    assert np.abs(lqr.A @ x_last + lqr.B @ u_last).max() > 0.9 * lqr.max_state
    # a start outside the bound: no step at all
    far = lqr.with_options(x0=[2e6, 0.0, 0.0])
    t0 = far.sample(policy(), 5, seed=0)
    assert (t0.lengths == 0).all() and t0.diverged.all() and t0.n_steps == 0
    # a bound so large that the cost overflows first: the step with an infinite reward stops it
    huge = lqr.with_options(max_state=1e300, horizon=2000)
    th = huge.sample(unstable, 20, seed=3)
    assert th.diverged.all() and np.isfinite(th.rewards).all() and (th.lengths < 2000).all()
    last = th.states[np.arange(20), th.lengths - 1]
    assert np.abs(last).max() > 1e100 and np.abs(last).max() <= 1e300
    # a stabilising policy on the same system never diverges
    assert not lqr.sample(policy(), 200, seed=1).diverged.any()


def test_bad_inputs_give_clear_errors() -> None:
    lqr = example(horizon=5)
    pi = policy()
    with pytest.raises(TypeError, match="policy must be a pgfast.LinearGaussian"):
        lqr.sample(pg.TabularSoftmax(3, 2), 10, seed=0)
    with pytest.raises(ValueError, match="identity features"):
        lqr.sample(pg.LinearGaussian(3, 2, features="affine"), 10, seed=0)
    with pytest.raises(ValueError, match=r"\(obs_dim, action_dim\) = \(2, 2\)"):
        lqr.sample(pg.LinearGaussian(2, 2), 10, seed=0)
    with pytest.raises(ValueError, match="finite horizon"):
        lqr.with_options(horizon=None, gamma=0.9).sample(pi, 10, seed=0)
    with pytest.raises(ValueError, match="n must be"):
        lqr.sample(pi, 0, seed=0)
    with pytest.raises(ValueError, match="seed"):
        lqr.sample(pi, 10, seed=-1)
    with pytest.raises(ValueError, match="threads"):
        lqr.sample(pi, 10, seed=0, threads=0)
    with pytest.raises(TypeError):
        lqr.sample(pi, 10, 0)  # type: ignore[misc]  # seed is keyword-only
    with pytest.raises(MemoryError, match="bytes"):
        lqr.sample(pi, 2**50, seed=0)


def test_pickling_the_lqr_and_its_batches() -> None:
    lqr = example(noise=True, gaussian_start=True, horizon=6)
    traj = lqr.sample(policy(), 50, seed=4)
    back = pickle.loads(pickle.dumps(traj))
    assert back.source == lqr and back.seed == 4
    for name in ("states", "actions", "rewards", "lengths", "diverged"):
        assert np.array_equal(getattr(back, name), getattr(traj, name))
    lqr2 = pickle.loads(pickle.dumps(lqr))
    assert lqr2 == lqr and np.array_equal(lqr2.sample(policy(), 50, seed=4).states, traj.states)


def test_sampling_answers_ctrl_c() -> None:
    rng = np.random.default_rng(0)
    n = 800  # a wide state: each step is a dense 800 x 800 product per trajectory (41 MB of output)
    A = 0.9 * np.linalg.qr(rng.normal(size=(n, n)))[0]
    lqr = pg.LQR(A, rng.normal(size=(n, 1)) / 20, np.eye(n), np.eye(1), horizon=50, x0=np.ones(n))
    pi = pg.LinearGaussian(n, 1)
    assert_interrupts(lambda: lqr.sample(pi, 128, seed=0, threads=2))
    assert lqr.sample(pi, 3, seed=0).n == 3  # still usable
