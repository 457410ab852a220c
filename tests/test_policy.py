"""Softmax policies: probabilities against NumPy, stability at extreme logits, sampling, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from helpers import random_mdp
from scipy import stats

import pgfast as pg
from pgfast._policy import KernelTables


def _np_softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_tabular_probs_match_numpy(rng: np.random.Generator) -> None:
    theta = rng.normal(scale=3.0, size=(7, 4))
    pi = pg.TabularSoftmax(7, 4, theta=theta)
    np.testing.assert_allclose(pi.probs(), _np_softmax(theta), rtol=1e-13)
    np.testing.assert_allclose(pi.log_probs(), np.log(_np_softmax(theta)), rtol=1e-12)
    np.testing.assert_allclose(pi.probs().sum(axis=1), 1.0, rtol=1e-15)
    assert pi.n_params == 28 and pi.theta.shape == (7, 4) and pi.theta.dtype == np.float64


def test_default_is_uniform() -> None:
    pi = pg.TabularSoftmax(3, 5)
    np.testing.assert_allclose(pi.probs(), 0.2)
    assert (pi.theta == 0).all()


def test_linear_matches_numpy(rng: np.random.Generator) -> None:
    phi = rng.normal(size=(6, 3, 5))
    theta = rng.normal(size=5)
    pi = pg.LinearSoftmax(phi, theta=theta)
    z = phi @ theta
    np.testing.assert_allclose(pi.logits(), z, rtol=1e-13)
    np.testing.assert_allclose(pi.probs(), _np_softmax(z), rtol=1e-13)
    assert (pi.n_states, pi.n_actions, pi.n_params, pi.n_features) == (6, 3, 5, 5)
    assert not pi.features.flags.writeable


def test_extreme_logits_are_exact_and_finite() -> None:
    theta = np.array([[1e6, -1e6, 0.0], [-1e6, -1e6, 1e6], [5.0, 5.0, 5.0]])
    pi = pg.TabularSoftmax(3, 3, theta=theta)
    p = pi.probs()
    np.testing.assert_array_equal(p[0], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(p[1], [0.0, 0.0, 1.0])
    np.testing.assert_allclose(p[2], 1 / 3, rtol=1e-15)
    lp = pi.log_probs()
    assert np.isfinite(lp).all()
    assert lp[0, 0] == 0.0 and lp[0, 1] == -2e6 and lp[0, 2] == -1e6
    # sampling never picks a zero-probability action
    acts = pi.sample(np.zeros(10000, dtype=np.int32), seed=0)
    assert (acts == 0).all()


def _check_softmax_accuracy() -> None:
    """pgfast's softmax (its own vectorised exp) against NumPy's, logits 0.1 to 1000 apart: every
    probability within a few units in the last place, the subnormal ones within one unit of
    2^-1074, the ones below that exactly 0; log-probabilities exactly z - logsumexp(z)."""
    rng = np.random.default_rng(3)
    z = np.concatenate([rng.normal(size=(3000, 8)) * sc for sc in (0.1, 1.0, 30.0, 300.0, 1000.0)])
    z[:, 1] = z[:, 0] - rng.uniform(700.0, 750.0, len(z))  # exp near and below the subnormal range
    pi = pg.TabularSoftmax(*z.shape, theta=z)
    p, q = pi.probs(), _np_softmax(z)
    normal = q >= np.finfo(float).tiny
    np.testing.assert_allclose(p[normal], q[normal], rtol=8 * np.finfo(float).eps, atol=0.0)
    assert np.abs(p[~normal] - q[~normal]).max() <= 2 * 5e-324  # rounding of e and of e / sum
    assert (p[q == 0.0] == 0.0).all() and (~normal).sum() > 1000 and (q == 0.0).sum() > 100
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=8 * np.finfo(float).eps)


def test_softmax_accuracy() -> None:
    _check_softmax_accuracy()


def test_softmax_accuracy_without_avx2() -> None:
    # The same on the code for any x86-64 (a CPU with AVX2 + FMA runs a copy compiled for them
    # unless PGFAST_NO_AVX2 is set; read once per process, hence a fresh interpreter).
    import os
    import subprocess
    import sys

    env = dict(os.environ, PGFAST_NO_AVX2="1")
    code = "import sys; sys.path.insert(0, sys.argv[1]); import test_policy; test_policy._check_softmax_accuracy()"
    subprocess.run([sys.executable, "-c", code, os.path.dirname(__file__)], env=env, check=True, timeout=120)


def test_log_prob_gathers_any_shape(rng: np.random.Generator) -> None:
    pi = pg.TabularSoftmax(5, 3, theta=rng.normal(size=(5, 3)))
    s = rng.integers(0, 5, size=(4, 6))
    a = rng.integers(0, 3, size=(4, 6))
    out = pi.log_prob(s, a)
    assert out.shape == (4, 6)
    np.testing.assert_array_equal(out, pi.log_probs()[s, a])
    assert pi.log_prob(np.int64(2), 1).shape == ()


def test_log_prob_over_a_padded_batch(rng: np.random.Generator) -> None:
    # episodes that end early are padded with PAD_INDEX in states and actions: those positions give
    # 0, so the row sums are the policy part of each trajectory's log-likelihood
    P = rng.dirichlet(np.ones(4), size=(4, 3))
    mdp = pg.FiniteMDP(P, rng.normal(size=(4, 3)), [0.5, 0.5, 0.0, 0.0], horizon=12, terminal=[False, False, False, True])
    pi = pg.TabularSoftmax(4, 3, theta=rng.normal(size=(4, 3)))
    traj = mdp.sample(pi, 300, seed=1)
    assert (traj.lengths < traj.horizon).any() and (traj.states == pg.PAD_INDEX).any()
    lp = pi.log_prob(traj.states, traj.actions)
    m = traj.mask
    np.testing.assert_array_equal(lp[m], pi.log_probs()[traj.states[m], traj.actions[m]])
    np.testing.assert_array_equal(lp[~m], 0.0)
    np.testing.assert_allclose(lp.sum(axis=1), pg.log_likelihood(pi, traj, dynamics=False), rtol=1e-12)
    # a lone -1 (state or action only) is not padding
    for s, a in (([[0, -1]], [[1, 2]]), ([[0, 1]], [[-1, 2]])):
        with pytest.raises(ValueError, match="must lie in"):
            pi.log_prob(np.array(s), np.array(a))


def test_theta_is_updated_in_place(rng: np.random.Generator) -> None:
    pi = pg.TabularSoftmax(4, 2)
    ref = pi.theta
    pi.theta += 1.0
    pi.theta[0, 1] = 3.0
    pi.theta = rng.normal(size=(4, 2))
    assert pi.theta is ref  # assignment copies into the same array
    np.testing.assert_allclose(pi.probs(), _np_softmax(ref))


def test_sample_frequencies_and_determinism(rng: np.random.Generator) -> None:
    pi = pg.TabularSoftmax(3, 4, theta=rng.normal(size=(3, 4)))
    states = np.repeat(np.arange(3, dtype=np.int32), 20000).reshape(3, 20000)
    acts = pi.sample(states, seed=5)
    assert acts.shape == states.shape and acts.dtype == np.int32
    counts = np.stack([np.bincount(acts[s], minlength=4) for s in range(3)])
    stat = float(((counts - 20000 * pi.probs()) ** 2 / (20000 * pi.probs())).sum())
    assert stats.chi2.sf(stat, 3 * 3) > 1e-4
    np.testing.assert_array_equal(pi.sample(states, seed=5), acts)
    assert not np.array_equal(pi.sample(states, seed=6), acts)


def test_policy_probabilities_used_by_sampler(rng: np.random.Generator) -> None:
    mdp = random_mdp(rng, S=4, A=3, successors=2, horizon=5)
    theta = np.full((4, 3), -1e6)
    theta[:, 2] = 1e6  # deterministic: always action 2
    traj = mdp.sample(pg.TabularSoftmax(4, 3, theta=theta), 500, seed=0)
    assert (traj.actions[traj.mask] == 2).all()


BAD = [
    (lambda: pg.TabularSoftmax(0, 3), ValueError, "n_states must be >= 1"),
    (lambda: pg.TabularSoftmax(3, -1), ValueError, "n_actions must be >= 1"),
    (lambda: pg.TabularSoftmax(2.0, 3), TypeError, "n_states must be an integer"),  # type: ignore[arg-type]
    (lambda: pg.TabularSoftmax(2, 3, theta=np.zeros((3, 2))), ValueError, r"theta must have shape \(2, 3\)"),
    (lambda: pg.TabularSoftmax(2, 2, theta=[[0, np.nan], [0, 0]]), ValueError, "theta must be finite"),
    (lambda: pg.TabularSoftmax(2, 2, theta=[["a", "b"], ["c", "d"]]), TypeError, "theta must be a real numeric array"),
    (lambda: pg.LinearSoftmax(np.zeros((3, 2))), ValueError, "features must be 3-D"),
    (lambda: pg.LinearSoftmax(np.zeros((3, 2, 0))), ValueError, "p >= 1"),
    (lambda: pg.LinearSoftmax(np.full((2, 2, 2), np.nan)), ValueError, "features must be finite"),
    (lambda: pg.LinearSoftmax(np.ones((2, 2, 2)), theta=np.ones(3)), ValueError, r"theta must have shape \(2,\)"),
    (lambda: pg.LinearSoftmax(np.full((2, 2, 2), 1e300), theta=[1e300, 1e300]).probs(), ValueError, "overflow"),
    (lambda: pg.TabularSoftmax(3, 2).log_prob([0, 3], [0, 1]), ValueError, r"states must lie in \[0, 3\), found 3"),
    (lambda: pg.TabularSoftmax(3, 2).log_prob([0, 1], [0, -1]), ValueError, r"actions must lie in \[0, 2\), found -1"),
    (lambda: pg.TabularSoftmax(3, 2).log_prob([0.0, 1.0], [0, 1]), TypeError, "states must be an integer array"),
    (lambda: pg.TabularSoftmax(3, 2).log_prob([0, 1], [0, 1, 1]), ValueError, "same shape"),
    (lambda: pg.TabularSoftmax(3, 2).sample([5], seed=0), ValueError, "states must lie in"),
]


@pytest.mark.parametrize(("call", "exc", "match"), BAD)
def test_bad_policy_inputs(call: object, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        call()  # type: ignore[operator]


def test_nan_written_into_theta_is_caught() -> None:
    pi = pg.TabularSoftmax(2, 2)
    pi.theta[0, 0] = np.nan  # bypasses the setter, e.g. a diverged optimizer
    with pytest.raises(ValueError, match="non-finite"):
        pi.probs()


@pytest.mark.parametrize("kind", ["tabular", "linear", "mlp"])
def test_logits_are_the_callers_own_array(rng: np.random.Generator, kind: str) -> None:
    """logits() returns a new writable array, like probs(): writing into it changes neither theta
    nor any table of the policy (it cannot bypass the checked theta setter)."""
    if kind == "tabular":
        pi: pg.SoftmaxPolicy = pg.TabularSoftmax(4, 3, theta=rng.normal(size=(4, 3)))
    elif kind == "linear":
        pi = pg.LinearSoftmax(rng.normal(size=(4, 3, 2)), rng.normal(size=2))
    else:
        pi = pg.MLPSoftmax(4, 3, hidden=(5,), seed=1)
    theta, z, probs, log_probs = pi.theta.copy(), pi.logits(), pi.probs(), pi.log_probs()
    assert z.flags.writeable and not np.shares_memory(z, pi.theta)
    assert pi.logits() is not z
    z[0, 0] = np.nan
    z[1:] = 7.0
    np.testing.assert_array_equal(pi.theta, theta)
    np.testing.assert_array_equal(pi.probs(), probs)  # finite: theta was not touched
    np.testing.assert_array_equal(pi.log_probs(), log_probs)
    assert np.isfinite(pi.logits()).all()
    np.testing.assert_allclose(_np_softmax(pi.logits()), probs, rtol=1e-13)


@pytest.mark.parametrize("kind", ["tabular", "linear"])
def test_the_internal_probability_table_follows_theta(rng: np.random.Generator, kind: str) -> None:
    """Sampling and the estimators reuse one probability table while theta is unchanged; an
    in-place update of theta (as the optimizers make) or an assignment must give a new one."""
    mdp = random_mdp(rng, S=5, A=3)
    if kind == "tabular":
        pi: pg.SoftmaxPolicy = pg.TabularSoftmax(5, 3, theta=rng.normal(size=(5, 3)))
    else:
        pi = pg.LinearSoftmax(rng.normal(size=(5, 3, 4)), rng.normal(size=4))
    t0 = pi._probs_table()
    assert pi._probs_table() is t0  # reused
    assert not t0.flags.writeable  # and nobody can change it behind theta's back
    public = pi.probs()
    assert public.flags.writeable and public is not t0
    public[:] = 0.0  # the caller's own copy
    np.testing.assert_array_equal(pi._probs_table(), t0)
    traj0 = mdp.sample(pi, 50, seed=3)
    pi.theta += 0.7 * rng.normal(size=pi.theta.shape)  # in place
    t1 = pi._probs_table()
    assert t1 is not t0
    np.testing.assert_array_equal(t1, pi.probs())
    assert not np.allclose(t1, t0)
    fresh = pg.TabularSoftmax(5, 3, theta=pi.logits())  # same probabilities, no cache history
    traj1 = mdp.sample(pi, 50, seed=3)
    np.testing.assert_array_equal(traj1.actions, mdp.sample(fresh, 50, seed=3).actions)
    assert not np.array_equal(traj1.actions, traj0.actions)
    g = pg.policy_gradient(pi, traj1, stderr=False).grad
    np.testing.assert_allclose(pg.score(pi, traj1, traj1.reward_to_go() * mdp.gamma ** np.arange(mdp.horizon)),
                               g, rtol=1e-12, atol=1e-14)
    pi.theta = np.zeros(pi.theta.shape)  # assignment copies into theta: also seen
    np.testing.assert_allclose(pi._probs_table(), 1.0 / 3.0, rtol=1e-15)


def test_log_probs_exact_at_any_scale_of_the_logits() -> None:
    # log pi = (z - max z) - log sum exp(z - max z): equal logits give log(1/A) however large they
    # are (z - (max + log sum) rounded it away: -0.75 at 1e15, 0.0 at 1e16)
    for scale in (1.0, 1e6, 1e12, 1e15, 1e16, 1e300):
        pi = pg.TabularSoftmax(2, 2, theta=[[scale, scale], [scale, scale - 1.0]])
        lp = pi.log_probs()
        np.testing.assert_allclose(lp[0], np.log(0.5), rtol=1e-15)
        np.testing.assert_allclose(np.exp(lp), pi.probs(), rtol=1e-15)
    assert pi.log_prob([], []).shape == (0,) and pi.sample([], seed=0).shape == (0,)  # [] is a float array to NumPy


# -- policy classes of one's own -------------------------------------------------------------------


class _LogitsOnly(pg.SoftmaxPolicy):
    """A policy class derived from SoftmaxPolicy with its logits, 2 theta, and nothing else."""

    def __init__(self, n_states: int, n_actions: int, theta: np.ndarray) -> None:
        self._n_states, self._n_actions = n_states, n_actions
        self._theta = np.array(theta, dtype=np.float64)

    def logits(self) -> np.ndarray:
        return 2.0 * self._theta


class _Sharper(pg.TabularSoftmax):
    """A tabular policy whose logits are redefined as 2 theta: the tabular hooks no longer hold."""

    def logits(self) -> np.ndarray:
        return 2.0 * self.theta


class _Hooks:
    """The hooks for logits 2 theta: the logit Jacobian 2 I, given to the estimators as features
    phi(s, a) = 2 e_(s, a) over the flattened theta."""

    def _kernel_tables(self) -> KernelTables:
        probs = np.ascontiguousarray(self.probs())  # type: ignore[attr-defined]
        S, A = probs.shape
        return KernelTables(probs, 2.0 * np.eye(S * A).reshape(S, A, S * A), None)

    def _logit_vjp(self, W: np.ndarray) -> np.ndarray:
        return 2.0 * np.asarray(W, dtype=np.float64)


class _Scaled(_Hooks, _LogitsOnly):  # type: ignore[misc]
    pass


class _SharperWithHooks(_Hooks, _Sharper):  # type: ignore[misc]
    pass


@pytest.mark.parametrize("cls", [_LogitsOnly, _Sharper], ids=lambda c: c.__name__)
def test_a_policy_class_without_the_hooks_is_refused_by_name(rng: np.random.Generator, cls: Any) -> None:
    """Probabilities, sampling and exact values need only the logits; the estimators and exact
    gradients need the policy's hooks for those logits, and say which one is missing (a class
    that redefines the logits of a built-in one does not keep the built-in hooks, which would
    give gradients of other logits)."""
    mdp = random_mdp(rng, S=4, A=3, successors=3, n_terminal=1, horizon=5)
    theta = rng.normal(size=(4, 3))
    pi, ref = cls(4, 3, theta=theta), pg.TabularSoftmax(4, 3, theta=2.0 * theta)
    np.testing.assert_array_equal(pi.probs(), ref.probs())
    traj = mdp.sample(pi, 200, seed=1)
    np.testing.assert_array_equal(traj.actions, mdp.sample(ref, 200, seed=1).actions)
    assert pg.exact.evaluate(mdp, pi).J == pg.exact.evaluate(mdp, ref).J
    name = cls.__name__
    for call in (lambda: pg.policy_gradient(pi, traj), lambda: pg.policy_gradient(pi, mdp=mdp, n=10, seed=0),
                 lambda: pg.score(pi, traj, traj.reward_to_go()), lambda: pg.off_policy_gradient(pi, ref, traj),
                 lambda: pg.off_policy_value(pi, ref, traj), lambda: pg.importance_weights(pi, ref, traj)):
        with pytest.raises(TypeError, match=rf"{name} does not implement _kernel_tables\(\) for its logits\(\), which the estimators need"):
            call()
    for call, hook in ((lambda: pg.exact.gradient(mdp, pi), "_logit_vjp"), (lambda: pi.grad_log_prob([0], [1]), "_logit_vjp"),
                       (lambda: pg.exact.fisher(mdp, pi), "_fisher"), (lambda: pg.exact.natural_gradient(mdp, pi), "_logit_vjp")):
        with pytest.raises(TypeError, match=rf"{name} does not implement {hook}\(\) for its logits\(\).*implement {hook}\(\) as "):
            call()


@pytest.mark.parametrize("cls", [_Scaled, _SharperWithHooks], ids=lambda c: c.__name__)
def test_a_policy_class_with_its_own_hooks_is_estimated(rng: np.random.Generator, cls: Any) -> None:
    """With logits 2 theta, every gradient with respect to theta is twice the one of the tabular
    policy with theta' = 2 theta with respect to theta', on the same episodes; the exact one is
    the derivative of the exact J."""
    mdp = random_mdp(rng, S=4, A=3, successors=3, n_terminal=1, horizon=5, gamma=0.9)
    theta = rng.normal(size=(4, 3))
    pi, ref = cls(4, 3, theta=theta), pg.TabularSoftmax(4, 3, theta=2.0 * theta)
    traj = mdp.sample(pi, 500, seed=2)
    close = {"rtol": 1e-12, "atol": 1e-12}
    for kw in ({}, {"weights": "return", "baseline": "mean"}, {"baseline": "exact"}):
        np.testing.assert_allclose(pg.policy_gradient(pi, traj, **kw).grad, 2.0 * pg.policy_gradient(ref, traj, **kw).grad, **close)
    np.testing.assert_allclose(pg.policy_gradient(pi, mdp=mdp, n=500, seed=3).grad,
                               2.0 * pg.policy_gradient(ref, mdp=mdp, n=500, seed=3).grad, **close)
    np.testing.assert_allclose(pg.off_policy_gradient(pi, ref, traj).grad, 2.0 * pg.policy_gradient(ref, traj).grad, **close)
    grad = pg.exact.gradient(mdp, pi)
    np.testing.assert_allclose(grad, 2.0 * pg.exact.gradient(mdp, ref), **close)
    h = 1e-6
    for i in np.ndindex(theta.shape):
        tp, tm = theta.copy(), theta.copy()
        tp[i] += h
        tm[i] -= h
        fd = (pg.exact.evaluate(mdp, cls(4, 3, theta=tp)).J - pg.exact.evaluate(mdp, cls(4, 3, theta=tm)).J) / (2 * h)
        assert fd == pytest.approx(grad[i], rel=1e-6, abs=1e-8)
