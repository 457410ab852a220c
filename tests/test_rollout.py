"""pg.rollout on gymnasium environments with Box observations, pg.ObservationSoftmax, and LQR.to_gymnasium."""

from __future__ import annotations

import pickle
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import pgfast as pg
import lqr_reference as ref

ENVS = [
    ("CartPole-v1", lambda: pg.ObservationSoftmax(4, 2), 500),
    ("Pendulum-v1", lambda: pg.LinearGaussian(3, 1), 200),
    ("MountainCarContinuous-v0", lambda: pg.LinearGaussian(2, 1, W=[[0.0, 5.0]]), 999),
]


def _same(a: pg.ContinuousTrajectories, b: pg.ContinuousTrajectories) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f))
               for f in ("states", "actions", "rewards", "lengths", "terminated", "diverged"))


# -- rollout: shapes, flags, reproducibility -----------------------------------------------------


@pytest.mark.parametrize(("env_id", "make_policy", "H"), ENVS)
def test_rollout_shapes_and_flags(env_id: str, make_policy: object, H: int) -> None:
    pi = make_policy()  # type: ignore[operator]
    traj = pg.rollout(env_id, pi, 6, seed=3)
    n_obs = pi.obs_dim
    assert traj.states.shape == (6, H, n_obs) and traj.rewards.shape == (6, H) and traj.lengths.shape == (6,)
    if isinstance(pi, pg.ObservationSoftmax):
        assert traj.actions.shape == (6, H) and traj.discrete_actions
        assert set(np.unique(traj.actions[traj.mask])) <= {0, 1}
        assert (traj.actions[~traj.mask] == -1).all()
    else:
        assert traj.actions.shape == (6, H, 1) and not traj.discrete_actions
        assert (traj.actions[~traj.mask] == 0).all()
    assert traj.source == env_id and traj.seed == 3 and traj.gamma == 1.0
    assert (traj.lengths >= 1).all() and (traj.lengths <= H).all()
    assert (traj.states[~traj.mask] == 0).all() and (traj.rewards[~traj.mask] == 0).all()
    # an episode shorter than H terminated (one of length H reached the time limit)
    assert traj.terminated[traj.lengths < H].all()
    if env_id == "Pendulum-v1":
        assert (traj.lengths == H).all() and not traj.terminated.any()
    assert not traj.diverged.any()


@pytest.mark.parametrize(("env_id", "make_policy", "H"), ENVS)
def test_rollout_depends_on_the_seed_only(env_id: str, make_policy: object, H: int) -> None:
    pi = make_policy()  # type: ignore[operator]
    pi.theta = np.random.default_rng(0).normal(size=pi.n_params) * 0.3
    a = pg.rollout(env_id, pi, 7, seed=11, horizon=60)
    assert _same(a, pg.rollout(env_id, pi, 7, seed=11, horizon=60))
    assert _same(a, pg.rollout(env_id, pi, 7, seed=11, horizon=60, num_envs=1))
    assert _same(a, pg.rollout(env_id, pi, 7, seed=11, horizon=60, num_envs=3))
    # episode i is a function of (seed, i): a smaller batch is a prefix
    b = pg.rollout(env_id, pi, 3, seed=11, horizon=60, num_envs=2)
    assert np.array_equal(b.states, a.states[:3]) and np.array_equal(b.actions, a.actions[:3])
    assert not np.array_equal(pg.rollout(env_id, pi, 7, seed=12, horizon=60).states, a.states)
    assert a.horizon == 60 and (a.lengths <= 60).all()


def test_rollout_follows_the_documented_streams() -> None:
    """Episode i by hand: reset seed and Philox key from SeedSequence([seed, i]), noise row t at step t."""
    seed = 2024
    pi = pg.LinearGaussian(3, 1, W=[[-1.0, 0.5, -0.2]], log_std=np.log(0.7))
    traj = pg.rollout("Pendulum-v1", pi, 4, seed=seed, horizon=30, num_envs=2)
    sm = pg.ObservationSoftmax(4, 2, W=[[0.1, -0.3, 1.0, 0.2], [0.0, 0.0, 0.0, 0.0]])
    traj_sm = pg.rollout("CartPole-v1", sm, 4, seed=seed, horizon=40, num_envs=3)
    for i in range(4):
        reset_seed, key = (int(w) for w in np.random.SeedSequence([seed, i]).generate_state(2, np.uint64))
        env = gymnasium.make("Pendulum-v1")
        x, _ = env.reset(seed=reset_seed)
        eps = np.random.Generator(np.random.Philox(key=key)).standard_normal((30, 1))
        for t in range(30):
            np.testing.assert_allclose(traj.states[i, t], x, rtol=0, atol=1e-6)
            u = pi.mean(np.asarray(x, dtype=np.float64)) + pi.std * eps[t]
            np.testing.assert_allclose(traj.actions[i, t], u, rtol=1e-12, atol=1e-12)
            x, r, *_ = env.step(u.astype(np.float32))
            np.testing.assert_allclose(traj.rewards[i, t], r, rtol=1e-12)
        env.close()
        env = gymnasium.make("CartPole-v1")
        x, _ = env.reset(seed=reset_seed)
        uniforms = np.random.Generator(np.random.Philox(key=key)).random(40)
        t, done = 0, False
        while not done and t < 40:
            assert np.array_equal(traj_sm.states[i, t], np.asarray(x, dtype=np.float64))
            a = int(np.searchsorted(np.cumsum(sm.probs(np.asarray(x, dtype=np.float64))), uniforms[t], side="right"))
            assert traj_sm.actions[i, t] == a
            x, r, terminated, truncated, _ = env.step(a)
            done = terminated or truncated
            t += 1
        assert traj_sm.lengths[i] == t and traj_sm.terminated[i] == (done and t < 500)
        env.close()


def test_rollout_keeps_the_actions_the_environment_clips() -> None:
    pi = pg.LinearGaussian(3, 1, log_std=np.log(5.0))  # Pendulum clips torques to [-2, 2]
    traj = pg.rollout("Pendulum-v1", pi, 4, seed=0, horizon=50)
    u = traj.actions[traj.mask]
    assert np.abs(u).max() > 2.0
    # the score is that of the sampled (unclipped) action
    est = pg.policy_gradient(pi, traj)
    assert est.grad.shape == (pi.n_params,) and np.isfinite(est.grad).all()


def test_rollout_discount_and_none_seed() -> None:
    pi = pg.ObservationSoftmax(4, 2)
    traj = pg.rollout("CartPole-v1", pi, 3, seed=None, gamma=0.9)
    assert traj.gamma == 0.9 and isinstance(traj.seed, int)
    G = traj.returns()
    assert np.allclose(G, (1 - 0.9 ** traj.lengths) / (1 - 0.9))


def test_rollout_of_an_environment_instance_and_kwargs() -> None:
    env = gymnasium.make("CartPole-v1", max_episode_steps=25)
    traj = pg.rollout(env, pg.ObservationSoftmax(4, 2), 5, seed=1)
    assert traj.horizon == 25 and traj.source == "CartPole-v1"
    env.reset(seed=0)  # not closed by rollout
    env.close()
    made = pg.rollout("CartPole-v1", pg.ObservationSoftmax(4, 2), 5, seed=1, max_episode_steps=25)
    assert _same(made, traj)
    pend = pg.rollout("Pendulum-v1", pg.LinearGaussian(3, 1), 2, seed=1, g=2.0, horizon=5)
    assert pend.lengths.tolist() == [5, 5]


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: pg.rollout("FrozenLake-v1", pg.ObservationSoftmax(1, 4), 2, seed=0), ValueError, "Box observation space"),
        (lambda: pg.rollout("CartPole-v1", pg.LinearGaussian(4, 1), 2, seed=0), TypeError, "ObservationSoftmax"),
        (lambda: pg.rollout("Pendulum-v1", pg.ObservationSoftmax(3, 2), 2, seed=0), TypeError, "LinearGaussian"),
        (lambda: pg.rollout("Pendulum-v1", pg.LinearGaussian(3, 2), 2, seed=0), ValueError, "action_dim 2"),
        (lambda: pg.rollout("Pendulum-v1", pg.LinearGaussian(2, 1), 2, seed=0), ValueError, "obs_dim 2"),
        (lambda: pg.rollout("CartPole-v1", pg.ObservationSoftmax(4, 3), 2, seed=0), ValueError, "3 actions"),
        (lambda: pg.rollout("CartPole-v1", pg.ObservationSoftmax(4, 2), 0, seed=0), ValueError, "n must be >= 1"),
        (lambda: pg.rollout("CartPole-v1", pg.ObservationSoftmax(4, 2), 2.5, seed=0), TypeError, "n must be an integer"),
        (lambda: pg.rollout("CartPole-v1", pg.ObservationSoftmax(4, 2), 2, seed=-1), ValueError, "seed must be >= 0"),
        (lambda: pg.rollout("CartPole-v1", pg.ObservationSoftmax(4, 2), 2, seed=0, horizon=0), ValueError, "horizon must be >= 1"),
        (lambda: pg.rollout("CartPole-v1", pg.ObservationSoftmax(4, 2), 2, seed=0, num_envs=0), ValueError, "num_envs must be >= 1"),
        (lambda: pg.rollout("CartPole-v1", pg.ObservationSoftmax(4, 2), 2, seed=0, gamma=1.5), ValueError, "gamma"),
        (lambda: pg.rollout("NoSuchEnv-v0", pg.ObservationSoftmax(4, 2), 2, seed=0), ValueError, "unknown gymnasium environment id"),
        (lambda: pg.rollout("CartPole-v1", pg.ObservationSoftmax(4, 2), 2, seed=0, bogus=1), ValueError, "gymnasium.make"),
        (lambda: pg.rollout(42, pg.ObservationSoftmax(4, 2), 2, seed=0), TypeError, "env_or_id must be"),
        (lambda: pg.rollout(gymnasium.make("CartPole-v1"), pg.ObservationSoftmax(4, 2), 2, seed=0, num_envs=2),
         ValueError, "num_envs must be 1"),
        (lambda: pg.rollout(gymnasium.make("CartPole-v1"), pg.ObservationSoftmax(4, 2), 2, seed=0, max_episode_steps=3),
         ValueError, "need an environment id"),
        (lambda: pg.rollout(ref.example(horizon=None, gamma=0.9).to_gymnasium(), pg.LinearGaussian(3, 2), 2, seed=0),
         ValueError, "no time limit"),
    ],
)
def test_rollout_bad_inputs(call: object, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        call()  # type: ignore[operator]


# -- LQR.to_gymnasium -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fixed", "noisy", "infinite"])
def test_lqr_env_passes_check_env(kind: str) -> None:
    lqr = {"fixed": ref.example(), "noisy": ref.example(noise=True, gaussian_start=True),
           "infinite": ref.example(horizon=None, gamma=0.9)}[kind]
    env = lqr.to_gymnasium()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    # the only remarks: unbounded Box spaces, and the recommendation of actions in [-1, 1]
    for w in caught:
        assert "infinity" in str(w.message) or "symmetric and normalized" in str(w.message), w.message
    assert env.spec is not None and env.spec.max_episode_steps == lqr.horizon
    assert isinstance(gymnasium.make(env.spec, disable_env_checker=True).unwrapped, type(env))


def test_lqr_env_steps_by_the_model() -> None:
    lqr = ref.example(horizon=3)
    env = lqr.to_gymnasium()
    with pytest.raises(gymnasium.error.ResetNeeded):
        env.step(np.zeros(2))
    x, info = env.reset(seed=5)
    assert np.array_equal(x, lqr.x0) and info == {}
    u = np.array([0.3, -0.2])
    x1, r, terminated, truncated, info = env.step(u)
    assert r == pytest.approx(-(lqr.x0 @ lqr.Q @ lqr.x0 + u @ lqr.R @ u), rel=1e-14)
    np.testing.assert_allclose(x1, lqr.A @ lqr.x0 + lqr.B @ u, rtol=1e-14)
    assert (terminated, truncated, info) == (False, False, {})
    env.step(u)
    assert env.step(u)[3] is True and env.elapsed_steps == 3
    with pytest.raises(gymnasium.error.ResetNeeded):
        env.step(u)
    env.reset()
    for bad in (np.zeros(3), [np.nan, 0.0], "a"):
        with pytest.raises(ValueError, match="action must"):
            env.step(bad)
    with pytest.raises(TypeError, match="lqr must be a pgfast.LQR"):
        type(env)("not an lqr")  # type: ignore[arg-type]
    assert "LQREnv(LQR(" in repr(env.unwrapped)


@pytest.mark.parametrize("noise", [False, True])
def test_lqr_env_moments_match_the_model(noise: bool) -> None:
    """The mean return against the exact objective, the last state's mean and second moment against
    the Lyapunov recursion (z-tests, standard errors from the sample)."""
    lqr = ref.example(noise=noise, gaussian_start=True, horizon=15)
    pi = pg.LinearGaussian(3, 2, W=[[-0.3, -0.5, 0.0], [0.0, -0.2, -0.6]], log_std=np.log([0.3, 0.5]))
    traj = pg.rollout(lqr.to_gymnasium(), pi, 6000, seed=17)
    assert (traj.lengths == 15).all() and not traj.diverged.any()
    G = traj.returns()
    z = (G.mean() - ref.objective(lqr, pi.W, pi.log_std)) / (G.std(ddof=1) / np.sqrt(G.size))
    assert abs(z) < 4.5
    L = lqr.A + lqr.B @ pi.W
    mean, S = lqr.x0.copy(), lqr.x0_cov.copy()
    step_noise = lqr.B @ np.diag(pi.std**2) @ lqr.B.T + (lqr.noise_cov if noise else 0.0)
    for _ in range(14):
        mean, S = L @ mean, L @ S @ L.T + step_noise
    x = traj.states[:, 14]
    se = x.std(axis=0, ddof=1) / np.sqrt(x.shape[0])
    assert (np.abs(x.mean(axis=0) - mean) / se).max() < 4.5
    sq = x[:, 0] * x[:, 1]
    assert abs(sq.mean() - (S[0, 1] + mean[0] * mean[1])) / (sq.std(ddof=1) / np.sqrt(sq.size)) < 4.5


def test_lqr_env_flags_a_diverging_state() -> None:
    lqr = ref.example(horizon=200, max_state=1e3)
    pi = pg.LinearGaussian(3, 2, W=np.full((2, 3), 5.0), log_std=-3.0)
    traj = pg.rollout(lqr.to_gymnasium(), pi, 3, seed=0)
    assert traj.diverged.all() and (traj.lengths < 200).all() and not traj.terminated.any()
    assert np.isfinite(traj.states).all()
    last = traj.states[np.arange(3), traj.lengths - 1]
    assert (np.abs(last) <= 1e3).all()  # the state that left the bound is not a step of the batch


# -- ObservationSoftmax ---------------------------------------------------------------------------


def _fd_score(pi: pg.ObservationSoftmax, x: np.ndarray, a: int, h: float = 1e-6) -> np.ndarray:
    theta = pi.theta.copy()
    out = np.empty_like(theta)
    for j in range(theta.size):
        e = np.zeros_like(theta)
        e[j] = h
        pi.theta = theta + e
        up = float(pi.log_prob(x, a))
        pi.theta = theta - e
        down = float(pi.log_prob(x, a))
        out[j] = (up - down) / (2 * h)
    pi.theta = theta
    return out


@pytest.mark.parametrize("features", [None, "affine", "quadratic", lambda x: np.tanh(x[:, :2])])
def test_observation_softmax_score_matches_finite_differences(features: object) -> None:
    rng = np.random.default_rng(0)
    pi = pg.ObservationSoftmax(3, 4, features=features)  # type: ignore[arg-type]
    pi.theta = rng.normal(size=pi.n_params)
    for _ in range(5):
        x = rng.normal(size=3)
        for a in range(4):
            g = pi.grad_log_prob(x, a)
            fd = _fd_score(pi, x, a)
            assert np.abs(g - fd).max() <= 1e-6 * max(1.0, np.abs(fd).max())


def test_observation_softmax_probabilities_and_batches() -> None:
    rng = np.random.default_rng(1)
    pi = pg.ObservationSoftmax(2, 3, W=rng.normal(size=(3, 2)) * 100)  # large logits: no overflow
    x = rng.normal(size=(4, 5, 2))
    p = pi.probs(x)
    assert p.shape == (4, 5, 3) and np.allclose(p.sum(-1), 1.0) and np.isfinite(p).all()
    a = rng.integers(0, 3, size=(4, 5))
    lp = pi.log_prob(x, a)
    assert lp.shape == (4, 5) and np.isfinite(lp).all() and (lp <= 0).all()
    np.testing.assert_allclose(np.exp(lp), np.take_along_axis(p, a[..., None], -1)[..., 0], rtol=1e-9, atol=1e-300)
    g = pi.grad_log_prob(x, a)
    assert g.shape == (4, 5, 6)
    np.testing.assert_allclose(g[2, 3], pi.grad_log_prob(x[2, 3], int(a[2, 3])))
    assert np.array_equal(pi.W.ravel(), pi.theta)


def test_observation_softmax_sample_frequencies() -> None:
    pi = pg.ObservationSoftmax(2, 3, W=[[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    x = np.tile([0.5, -0.2], (60000, 1))
    a = pi.sample(x, seed=9)
    assert a.dtype == np.int64 and a.shape == (60000,)
    assert np.array_equal(a, pi.sample(x, seed=9)) and not np.array_equal(a, pi.sample(x, seed=10))
    p = pi.probs([0.5, -0.2])
    freq = np.bincount(a, minlength=3) / a.size
    assert (np.abs(freq - p) / np.sqrt(p * (1 - p) / a.size)).max() < 4.5


def test_observation_softmax_theta_and_pickle() -> None:
    pi = pg.ObservationSoftmax(2, 2, features="affine")
    assert pi.n_params == 6 and pi.feature_dim == 3 and pi.features == "affine"
    pi.theta = np.arange(6.0)
    clone = pickle.loads(pickle.dumps(pi))
    assert np.array_equal(clone.theta, pi.theta) and clone.features == "affine"
    assert repr(clone) == "ObservationSoftmax(obs_dim=2, n_actions=2, features='affine', n_params=6)"
    with pytest.raises(ValueError, match="theta must have shape"):
        pi.theta = np.zeros(5)
    with pytest.raises(ValueError, match="finite"):
        pi.theta = np.full(6, np.nan)
    assert np.array_equal(pi.theta, np.arange(6.0))


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: pg.ObservationSoftmax(0, 2), ValueError, "obs_dim must be >= 1"),
        (lambda: pg.ObservationSoftmax(2, 1), ValueError, "n_actions must be >= 2"),
        (lambda: pg.ObservationSoftmax(2, 2, W=np.zeros((2, 3))), ValueError, r"W must have shape \(n_actions, feature_dim\)"),
        (lambda: pg.ObservationSoftmax(2, 2, W=[[np.inf, 0.0], [0.0, 0.0]]), ValueError, "finite"),
        (lambda: pg.ObservationSoftmax(2, 2, features="cubic"), ValueError, "features must be"),
        (lambda: pg.ObservationSoftmax(2, 2).probs(np.zeros(3)), ValueError, r"states must have shape \(\.\.\., obs_dim\)"),
        (lambda: pg.ObservationSoftmax(2, 2).log_prob(np.zeros(2), 2), ValueError, r"actions must be in \[0, n_actions"),
        (lambda: pg.ObservationSoftmax(2, 2).log_prob(np.zeros(2), 0.5), TypeError, "actions must be integers"),
        (lambda: pg.ObservationSoftmax(2, 2).grad_log_prob(np.zeros((3, 2)), [0, 1]), ValueError, "leading shape"),
        (lambda: pg.ObservationSoftmax(2, 2).sample(np.zeros(2), seed=-1), ValueError, "seed must be >= 0"),
    ],
)
def test_observation_softmax_bad_inputs(call: object, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        call()  # type: ignore[operator]
