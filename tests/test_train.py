"""The learning side: pgfast.optim, pgfast.train, History and the ``pgfast train`` command.

Optimizers are checked against steps computed here by hand; training against the exact J of
:mod:`pgfast.exact` and against the real gymnasium environment.

Tolerances.

- Optimizer steps: the reference is the same few floating-point operations in another order, so a
  relative 1e-12 (a few hundred eps) bounds the difference; steps that must be reproduced (state
  dicts, seeds) are compared exactly.
- Ascent lemma. For a tabular softmax policy and the finite-horizon objective, the second
  derivative of J along a unit direction u is bounded by
  ``L = H * rmax * (2 H**2 + H)``: with p(tau) the probability of an episode and G(tau) its return,
  ``d2J/da2 = E[G ((sum_t psi_t.u)**2 + sum_t u' (d2 log pi) u)]``;
  ``|psi_t . u| = |(e_a - pi_s) . u_s| <= ||e_a - pi_s|| <= sqrt(2)`` and there are at most H
  steps, so the first term is at most 2 H**2; ``-d2 log pi(.|s) = diag(pi_s) - pi_s pi_s'`` is
  PSD with trace <= 1, so the second is at most H; and ``|G| <= H rmax`` (at most H rewards, each
  at most rmax = max |R(s, a, s')| in absolute value). Hence with step ``eta = 1/L`` a step ``eta d``
  gains at least ``eta g.d - (L eta**2 / 2) ||d||**2``: ``eta ||g||**2 / 2`` for the exact gradient,
  and ``(eta / 2)(||g||**2 - ||d - g||**2)`` for an estimate d.
- Linear solves (natural gradients): a backward-stable solve of M x = g has a relative error of
  about cond(M) n eps and a residual of about n eps ||M|| ||x||; ``_assert_solution_close``
  and ``_assert_residual_small`` allow 10 times that (cond over the nonzero eigenvalues for the
  pseudo-inverse).
- Monte Carlo comparisons use 4 standard errors (a two-sided normal tail of 6e-5).
"""

from __future__ import annotations

import csv
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import random_mdp, random_policy

import pgfast as pg
from pgfast import cli
from pgfast.cli import main
from pgfast._optimality import Reference, fraction_of_optimal, normalized_score
from pgfast._train import FIELDS

RTOL = 1e-12
EPS = float(np.finfo(np.float64).eps)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _linear_policy(rng: np.random.Generator, mdp: pg.FiniteMDP, p: int = 4) -> pg.LinearSoftmax:
    phi = rng.normal(size=(mdp.n_states, mdp.n_actions, p))
    return pg.LinearSoftmax(phi, theta=rng.normal(size=p))


def _smoothness(mdp: pg.FiniteMDP) -> float:
    """The bound L on |d2J/da2| of the module docstring (tabular softmax, finite horizon, gamma <= 1)."""
    H = mdp.horizon
    rmax = float(np.abs(mdp.transitions[3]).max())
    return H * rmax * (2 * H * H + H)


def _hand_fisher(policy: pg.SoftmaxPolicy, w: np.ndarray) -> np.ndarray:
    """F = sum_s w(s) sum_a pi(a|s) psi psi^T, psi = grad log pi(a|s), in the C order of theta."""
    probs = policy.probs()
    S, A = probs.shape
    if isinstance(policy, pg.TabularSoftmax):
        F = np.zeros((S * A, S * A))
        for s in range(S):
            blk = slice(s * A, (s + 1) * A)
            F[blk, blk] = w[s] * (np.diag(probs[s]) - np.outer(probs[s], probs[s]))
        return F
    assert isinstance(policy, pg.LinearSoftmax)
    phi = policy.features
    F = np.zeros((phi.shape[2], phi.shape[2]))
    for s in range(S):
        psi = phi[s] - probs[s] @ phi[s]  # (A, p)
        F += w[s] * (psi.T * probs[s]) @ psi
    return F


def _assert_solution_close(got: np.ndarray, want: np.ndarray, M: np.ndarray) -> None:
    ev = np.linalg.eigvalsh(M)
    nz = ev[ev > 1e-10 * ev.max()]
    tol = 10 * M.shape[0] * EPS * (nz.max() / nz.min()) * np.abs(want).max()
    np.testing.assert_allclose(got, want, rtol=0, atol=tol)


def _assert_residual_small(M: np.ndarray, x: np.ndarray, g: np.ndarray, extra: int = 0) -> None:
    """|M x - g| within 10 (n + extra) eps ||M|| ||x|| (extra: rounding steps behind M itself)."""
    x, g = x.ravel(), g.ravel()
    tol = 10 * (M.shape[0] + extra) * EPS * np.linalg.norm(M, 2) * np.linalg.norm(x)
    np.testing.assert_allclose(M @ x, g, rtol=0, atol=tol)


# -- 1. optimizers against hand-computed steps --------------------------------------------------


def test_gradient_ascent_constant_schedule() -> None:
    pi = pg.TabularSoftmax(2, 3)
    opt = pg.optim.GradientAscent(lr=0.25)
    g1 = np.array([[1.0, -2.0, 0.5], [0.0, 4.0, -1.0]])
    g2 = np.array([[-3.0, 1.0, 0.0], [2.0, 2.0, 2.0]])
    d1 = opt.step(pi, g1)
    np.testing.assert_array_equal(d1, 0.25 * g1)
    np.testing.assert_array_equal(pi.theta, 0.25 * g1)
    opt.step(pi, g2)
    np.testing.assert_allclose(pi.theta, 0.25 * g1 + 0.25 * g2, rtol=RTOL)
    assert opt.t == 2


def test_gradient_ascent_inv_sqrt_schedule() -> None:
    pi = pg.TabularSoftmax(1, 2)
    opt = pg.optim.GradientAscent(lr=0.6, schedule="inv_sqrt")
    g = np.array([[1.0, -1.0]])
    expected = np.zeros((1, 2))
    for t in (1, 2, 3, 4):
        d = opt.step(pi, g)
        np.testing.assert_allclose(d, 0.6 / math.sqrt(t) * g, rtol=RTOL)
        expected += 0.6 / math.sqrt(t) * g
        assert opt.learning_rate(t) == pytest.approx(0.6 / math.sqrt(t), rel=RTOL)
    np.testing.assert_allclose(pi.theta, expected, rtol=RTOL)
    # the step sizes 0.6, 0.6/sqrt2, 0.6/sqrt3, 0.3
    np.testing.assert_allclose(pi.theta[0, 0], 0.6 * (1 + 2**-0.5 + 3**-0.5 + 0.5), rtol=RTOL)


def test_gradient_ascent_callable_schedule() -> None:
    seen: list[int] = []

    def halving(t: int) -> float:
        seen.append(t)
        return 0.5 ** (t - 1)

    pi = pg.TabularSoftmax(1, 2)
    opt = pg.optim.GradientAscent(lr=2.0, schedule=halving)
    g = np.array([[1.0, 3.0]])
    for _ in range(3):
        opt.step(pi, g)
    assert seen == [1, 2, 3]
    # 2 * (1 + 1/2 + 1/4) = 3.5 times g
    np.testing.assert_allclose(pi.theta, 3.5 * g, rtol=RTOL)

    bad = pg.optim.GradientAscent(lr=1.0, schedule=lambda t: -1.0)
    with pytest.raises(ValueError, match="schedule"):
        bad.step(pi, g)
    nan = pg.optim.GradientAscent(lr=1.0, schedule=lambda t: float("nan"))
    with pytest.raises(ValueError, match="schedule"):
        nan.step(pi, g)

@pytest.mark.parametrize("schedule", ["constant", "inv_sqrt", lambda t: 1.0 / t])
def test_learning_rate_is_defined_from_step_one(schedule: Any) -> None:
    """t counts steps from 1: t = 0, a negative t or a non-integer t is refused naming t."""
    opt = pg.optim.GradientAscent(lr=0.5, schedule=schedule)
    assert opt.learning_rate(1) == 0.5
    assert opt.learning_rate(np.int64(4)) in (0.5, 0.25, 0.125)
    for t in (0, -1, -(2**70)):
        with pytest.raises(ValueError, match=rf"t must be >= 1 \(the first step is t = 1\), got {t}$"):
            opt.learning_rate(t)
    for t in (1.0, "1", None, True):
        with pytest.raises(TypeError, match="t must be an integer"):
            opt.learning_rate(t)  # type: ignore[arg-type]



def test_adam_first_two_steps_by_hand() -> None:
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    pi = pg.TabularSoftmax(1, 4)
    opt = pg.optim.Adam(lr=lr, betas=(b1, b2), eps=eps)
    g1 = np.array([[1.0, -2.0, 0.5, 0.0]])
    g2 = np.array([[3.0, -2.0, -0.5, 1.0]])

    # step 1: m = 0.1 g1, v = 0.001 g1^2; bias correction divides by 0.1 and 0.001: mhat = g1, vhat = g1^2
    d1 = opt.step(pi, g1)
    np.testing.assert_allclose(d1, lr * g1 / (np.abs(g1) + eps), rtol=RTOL)
    # i.e. a step of lr * sign(g) (up to eps) on every coordinate with a nonzero gradient
    np.testing.assert_allclose(d1, lr * np.sign(g1), rtol=1e-7)

    # step 2 by hand, coordinate 0 (g1 = 1, g2 = 3): m = 0.09 + 0.3 = 0.39, v = 0.000999 + 0.009
    m = b1 * (1 - b1) * g1 + (1 - b1) * g2
    v = b2 * (1 - b2) * g1**2 + (1 - b2) * g2**2
    assert m[0, 0] == pytest.approx(0.39, rel=RTOL) and v[0, 0] == pytest.approx(0.009999, rel=RTOL)
    mhat = m / (1 - b1**2)  # 1 - 0.81 = 0.19
    vhat = v / (1 - b2**2)  # 1 - 0.998001 = 0.001999
    d2 = opt.step(pi, g2)
    np.testing.assert_allclose(d2, lr * mhat / (np.sqrt(vhat) + eps), rtol=RTOL)
    assert d2[0, 0] == pytest.approx(0.1 * (0.39 / 0.19) / (math.sqrt(0.009999 / 0.001999) + 1e-8), rel=RTOL)
    # coordinate 1 has the constant gradient -2: with bias correction every step is -lr
    assert d2[0, 1] == pytest.approx(-lr, rel=1e-7)
    np.testing.assert_allclose(pi.theta, d1 + d2, rtol=RTOL)
    assert opt.t == 2


@pytest.mark.parametrize("kind", ["tabular", "linear"])
@pytest.mark.parametrize("damping", [1e-3, 0.5])
def test_natural_gradient_exact_fisher_step(rng: np.random.Generator, kind: str, damping: float) -> None:
    mdp = random_mdp(rng, S=6, A=3, n_terminal=1, horizon=6)
    pi = random_policy(rng, mdp) if kind == "tabular" else _linear_policy(rng, mdp)
    g = pg.exact.gradient(mdp, pi)
    x = pg.exact.natural_gradient(mdp, pi, "finite_horizon", damping=damping)
    theta0 = pi.theta.copy()
    opt = pg.optim.NaturalGradient(lr=0.7, damping=damping, fisher="exact")
    d = opt.step(pi, g, mdp=mdp)
    p0 = pg.LinearSoftmax(pi.features, theta0) if isinstance(pi, pg.LinearSoftmax) else pg.TabularSoftmax(6, 3, theta0)
    M = pg.exact.fisher(mdp, p0) + damping * np.eye(pi.n_params)
    _assert_solution_close(d.ravel(), 0.7 * x.ravel(), M)
    np.testing.assert_allclose(pi.theta, theta0 + d, rtol=RTOL, atol=1e-15)
    # and (F + damping I) x = g with the exact Fisher (its weights sum H steps: extra rounding H)
    _assert_residual_small(M, d / 0.7, g, extra=mdp.horizon)


@pytest.mark.parametrize("kind", ["tabular", "linear"])
def test_natural_gradient_sampled_fisher_from_visits(rng: np.random.Generator, kind: str) -> None:
    mdp = random_mdp(rng, S=5, A=4, horizon=5)
    pi = random_policy(rng, mdp) if kind == "tabular" else _linear_policy(rng, mdp, p=6)
    visits = np.array([1.5, 0.0, 0.25, 2.0, 0.75])  # state 1 unvisited
    g = rng.normal(size=pi.theta.shape)
    damping = 0.1
    M = _hand_fisher(pi, visits) + damping * np.eye(pi.n_params)
    x = np.linalg.solve(M, g.ravel()).reshape(g.shape)
    opt = pg.optim.NaturalGradient(lr=0.5, damping=damping, fisher="sampled")
    _assert_solution_close(opt.direction(pi, g, visits=visits).ravel(), x.ravel(), M)
    _assert_residual_small(M, opt.direction(pi, g, visits=visits), g)
    theta0 = pi.theta.copy()
    d = opt.step(pi, g, visits=visits)
    _assert_solution_close(d.ravel(), 0.5 * x.ravel(), M)
    np.testing.assert_allclose(pi.theta, theta0 + d, rtol=RTOL, atol=1e-15)
    if kind == "tabular":
        # an unvisited state has F_s = 0: its direction is g_s / damping
        np.testing.assert_allclose(x[1], g[1] / damping, rtol=RTOL)


def test_natural_gradient_undamped_is_the_pseudo_inverse(rng: np.random.Generator) -> None:
    mdp = random_mdp(rng, S=4, A=3, horizon=4)
    pi = random_policy(rng, mdp)
    visits = np.array([1.0, 0.5, 2.0, 0.3])
    g = rng.normal(size=(4, 3))
    F = _hand_fisher(pi, visits)
    x = (np.linalg.pinv(F, rcond=1e-10, hermitian=True) @ g.ravel()).reshape(4, 3)
    got = pg.optim.NaturalGradient(lr=1.0, damping=0.0, fisher="sampled").direction(pi, g, visits=visits)
    _assert_solution_close(got.ravel(), x.ravel(), F)
    # minimum norm: each state's direction sums to zero (the constant vector spans null(F_s))
    np.testing.assert_allclose(got.sum(axis=1), 0.0, atol=10 * 3 * EPS * np.abs(got).max())


def test_natural_gradient_sampled_fisher_from_a_batch(rng: np.random.Generator) -> None:
    mdp = random_mdp(rng, S=6, A=3, n_terminal=2, horizon=7)
    pi = random_policy(rng, mdp)
    traj = mdp.sample(pi, 500, seed=11)
    # mean number of visits per state and episode, counted by hand over the steps t < length
    counts = np.zeros(6)
    for i in range(traj.n):
        for t in range(int(traj.lengths[i])):
            counts[traj.states[i, t]] += 1
    visits = counts / traj.n
    g = rng.normal(size=(6, 3))
    opt = pg.optim.NaturalGradient(lr=1.0, damping=1e-2, fisher="sampled")
    np.testing.assert_array_equal(opt.direction(pi, g, traj=traj), opt.direction(pi, g, visits=visits))


def _grads(rng: np.random.Generator, shape: tuple[int, ...], n: int) -> list[np.ndarray]:
    return [rng.normal(size=shape) for _ in range(n)]


def _inv_t(t: int) -> float:
    return 1.0 / t


@pytest.mark.parametrize(
    ("make", "fresh"),
    [
        (lambda: pg.optim.GradientAscent(0.3), lambda: pg.optim.GradientAscent(9.0)),
        (lambda: pg.optim.GradientAscent(0.3, "inv_sqrt"), lambda: pg.optim.GradientAscent(9.0)),
        (lambda: pg.optim.GradientAscent(0.3, _inv_t), lambda: pg.optim.GradientAscent(9.0, _inv_t)),
        (lambda: pg.optim.Adam(0.2, betas=(0.8, 0.99), eps=1e-6), lambda: pg.optim.Adam()),
        (lambda: pg.optim.NaturalGradient(0.4, damping=0.05, fisher="sampled"), lambda: pg.optim.NaturalGradient()),
    ],
    ids=["sgd-constant", "sgd-inv_sqrt", "sgd-callable", "adam", "natural-sampled"],
)
def test_state_dict_round_trip_resumes_exactly(rng: np.random.Generator, make: Any, fresh: Any) -> None:
    S, A, k = 4, 3, 3
    grads = _grads(rng, (S, A), 2 * k)
    visits = np.array([1.0, 0.5, 2.0, 0.0])
    theta0 = rng.normal(size=(S, A))

    straight = pg.TabularSoftmax(S, A, theta0)
    opt = make()
    for g in grads:
        opt.step(straight, g, visits=visits)

    resumed = pg.TabularSoftmax(S, A, theta0)
    first = make()
    for g in grads[:k]:
        first.step(resumed, g, visits=visits)
    state = json.loads(json.dumps(first.state_dict()))  # JSON-safe
    second = fresh()
    second.load_state_dict(state)
    assert second.state_dict() == first.state_dict()
    for g in grads[k:]:
        second.step(resumed, g, visits=visits)
    np.testing.assert_array_equal(resumed.theta, straight.theta)
    assert second.t == opt.t == 2 * k


def test_natural_gradient_exact_state_dict_round_trip(rng: np.random.Generator) -> None:
    mdp = random_mdp(rng, S=5, A=3, horizon=5)
    a, b = pg.TabularSoftmax(5, 3), pg.TabularSoftmax(5, 3)
    opt = pg.optim.NaturalGradient(0.5, damping=1e-2)
    for _ in range(4):
        opt.step(a, pg.exact.gradient(mdp, a), mdp=mdp)
    first = pg.optim.NaturalGradient(0.5, damping=1e-2)
    for _ in range(2):
        first.step(b, pg.exact.gradient(mdp, b), mdp=mdp)
    second = pg.optim.NaturalGradient(3.0, damping=1.0, fisher="sampled")
    second.load_state_dict(json.loads(json.dumps(first.state_dict())))
    for _ in range(2):
        second.step(b, pg.exact.gradient(mdp, b), mdp=mdp)
    np.testing.assert_array_equal(a.theta, b.theta)


def test_another_optimizers_state_is_named_as_such() -> None:
    """load_state_dict checks the state's type before its keys: another optimizer's state is
    reported as that, not as a state missing keys."""
    opts = [pg.optim.GradientAscent(0.5, schedule="inv_sqrt"), pg.optim.Adam(0.1), pg.optim.NaturalGradient(0.2)]
    for target in opts:
        for source in opts:
            if source is target:
                continue
            kind, other = type(target).__name__, type(source).__name__
            before = target.state_dict()
            with pytest.raises(ValueError, match=rf"^state\['type'\] is '{other}': a state dict of another optimizer, not of '{kind}'$"):
                target.load_state_dict(source.state_dict())
            assert target.state_dict() == before
    with pytest.raises(ValueError, match=r"state\['type'\] is 3: a state dict of another optimizer"):
        pg.optim.Adam().load_state_dict({"type": 3})
    with pytest.raises(ValueError, match="state is missing the key"):  # of the right type, incomplete
        pg.optim.Adam().load_state_dict({"type": "Adam", "lr": 0.1})


@pytest.mark.parametrize("lr", [0.0, -0.1, float("nan"), float("inf")])
@pytest.mark.parametrize("cls", [pg.optim.GradientAscent, pg.optim.Adam, pg.optim.NaturalGradient])
def test_bad_learning_rate(cls: Any, lr: float) -> None:
    with pytest.raises(ValueError, match="lr"):
        cls(lr)


def test_bad_optimizer_arguments() -> None:
    with pytest.raises(ValueError, match="schedule"):
        pg.optim.GradientAscent(0.1, schedule="cosine")
    with pytest.raises(ValueError, match="betas"):
        pg.optim.Adam(0.1, betas=(1.0, 0.999))
    with pytest.raises(ValueError, match="betas"):
        pg.optim.Adam(0.1, betas=(0.9, -0.1))
    with pytest.raises(ValueError, match="eps"):
        pg.optim.Adam(0.1, eps=0.0)
    with pytest.raises(ValueError, match="damping"):
        pg.optim.NaturalGradient(0.1, damping=-1e-3)
    with pytest.raises(ValueError, match="damping"):
        pg.optim.NaturalGradient(0.1, damping=float("nan"))
    with pytest.raises(ValueError, match="fisher"):
        pg.optim.NaturalGradient(0.1, fisher="empirical")


@pytest.mark.parametrize(
    "make",
    [
        lambda: pg.optim.GradientAscent(0.1),
        lambda: pg.optim.Adam(0.1),
        lambda: pg.optim.NaturalGradient(0.1, fisher="sampled"),
    ],
    ids=["sgd", "adam", "natural"],
)
def test_bad_gradients_raise_and_leave_theta_alone(make: Any) -> None:
    pi = pg.TabularSoftmax(3, 2, theta=np.arange(6.0).reshape(3, 2))
    opt = make()
    visits = np.ones(3)
    for bad in (np.full((3, 2), np.nan), np.array([[0.0, np.inf], [0, 0], [0, 0]]), np.zeros((2, 3)), np.zeros(6)):
        with pytest.raises(ValueError, match="grad"):
            opt.step(pi, bad, visits=visits)
    np.testing.assert_array_equal(pi.theta, np.arange(6.0).reshape(3, 2))
    assert opt.t == 0


def test_natural_gradient_needs_its_context(rng: np.random.Generator) -> None:
    pi = pg.TabularSoftmax(3, 2)
    g = np.ones((3, 2))
    with pytest.raises(ValueError, match="mdp"):
        pg.optim.NaturalGradient(0.1, fisher="exact").step(pi, g)
    with pytest.raises(ValueError, match="traj"):
        pg.optim.NaturalGradient(0.1, fisher="sampled").step(pi, g)
    with pytest.raises(ValueError, match="visits"):
        pg.optim.NaturalGradient(0.1, fisher="sampled").step(pi, g, visits=np.ones(4))
    with pytest.raises(TypeError):
        pg.optim.GradientAscent(0.1).step("not a policy", g)  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["step", "direction"])
def test_natural_gradient_refuses_context_it_would_not_use(rng: np.random.Generator, method: str) -> None:
    """Context the Fisher matrix would not use is an error (not silently ignored), and every
    message names the method called; a refused call takes no step."""
    mdp = random_mdp(rng, S=3, A=2, horizon=4)
    pi = random_policy(rng, mdp)
    g = np.ones(pi.theta.shape)
    traj = mdp.sample(pi, 20, seed=0)
    visits = np.ones(3)
    exact, sampled = pg.optim.NaturalGradient(0.1, fisher="exact"), pg.optim.NaturalGradient(0.1, fisher="sampled")
    theta = pi.theta.copy()
    cases: list[tuple[pg.optim.NaturalGradient, dict[str, Any], str]] = [
        (exact, {}, rf"^NaturalGradient\(fisher='exact'\) needs {method}\(policy, grad, mdp=mdp\)$"),
        (exact, {"mdp": mdp, "traj": traj}, rf"^NaturalGradient\(fisher='exact'\) takes the Fisher matrix of mdp=, not traj=: call {method}\("),
        (exact, {"mdp": mdp, "visits": visits}, r"not visits=: call"),
        (exact, {"traj": traj, "visits": visits}, r"not traj= or visits=: call"),
        (sampled, {}, rf"^NaturalGradient\(fisher='sampled'\) needs {method}\(policy, grad, traj=batch\) or visits=$"),
        (sampled, {"traj": traj, "visits": visits},
         rf"^NaturalGradient\(fisher='sampled'\) takes traj= or visits=, not both: call {method}\(policy, grad, traj=batch\)"),
        (sampled, {"mdp": mdp, "visits": visits}, rf"not from mdp= \(which fisher='exact' takes\): call {method}\("),
    ]
    for opt, context, match in cases:
        with pytest.raises(ValueError, match=match):
            getattr(opt, method)(pi, g, **context)
    np.testing.assert_array_equal(pi.theta, theta)
    assert exact.t == sampled.t == 0
    with pytest.raises(TypeError, match=r"^NaturalGradient\.step takes the context mdp=, traj= or visits=, got 'batch'$"):
        sampled.step(pi, g, batch=traj)
    # each accepted context alone is taken
    want = sampled.direction(pi, g, visits=np.bincount(traj.states[traj.mask], minlength=3) / traj.n)
    np.testing.assert_array_equal(getattr(sampled, method)(pi, g, traj=traj), want if method == "direction" else sampled.lr * want)
    assert getattr(exact, method)(pi, g, mdp=mdp).shape == pi.theta.shape


# -- 2. ascent ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n_terminal", "transition_rewards"), [(0, False), (2, True)])
def test_exact_gradient_ascent_is_monotone(rng: np.random.Generator, n_terminal: int, transition_rewards: bool) -> None:
    """With eta = 1/L every exact step gains at least eta ||g||^2 / 2 (module docstring)."""
    mdp = random_mdp(rng, S=6, A=3, n_terminal=n_terminal, horizon=5, transition_rewards=transition_rewards)
    eta = 1.0 / _smoothness(mdp)
    pi = pg.TabularSoftmax(6, 3)
    opt = pg.optim.GradientAscent(eta)
    J = [pg.exact.evaluate(mdp, pi).J]
    gains = []
    for _ in range(200):
        g = pg.exact.gradient(mdp, pi)
        opt.step(pi, g)
        J.append(pg.exact.evaluate(mdp, pi).J)
        gains.append(eta * float(g.ravel() @ g.ravel()) / 2)
    dJ = np.diff(J)
    slack = 1e-12 * max(1.0, float(np.abs(J).max()))  # rounding of two exact evaluations
    assert np.all(dJ >= np.array(gains) - slack), (dJ - gains).min()
    assert J[-1] > J[0] + sum(gains) - 200 * slack
    assert J[-1] <= pg.exact.optimal(mdp).J + slack


def test_train_with_sampled_gradients_increases_exact_J(rng: np.random.Generator) -> None:
    r"""pg.train with GradientAscent(eta = 1/L) and a large batch. For the realised estimate
    ĝ_t = (theta_{t+1} - theta_t) / eta the ascent lemma gives
    J_{t+1} - J_t >= (eta/2)(||g_t||^2 - ||ĝ_t - g_t||^2). The estimate is unbiased with
    E||ĝ - g||^2 = tr Cov / N = ||stderr||^2, far below ||g||^2 / 4 for N = 20000 here (checked
    at every iteration), so every iteration gains at least (3 eta / 8) ||g_t||^2 and J rises from
    the first to the last iteration by at least (3 eta / 8) sum_t ||g_t||^2 > 0."""
    mdp = random_mdp(rng, S=5, A=3, n_terminal=1, horizon=5)
    eta = 1.0 / _smoothness(mdp)
    pi = pg.TabularSoftmax(5, 3)
    thetas = [pi.theta.copy()]

    def record(it: int, rec: dict[str, float]) -> None:
        thetas.append(pi.theta.copy())

    T = 40
    hist = pg.train(mdp, pi, optimizer=pg.optim.GradientAscent(eta), iterations=T, batch=20_000, seed=5,
                    baseline=None, eval_every=1, progress=False, callback=record)
    assert len(hist) == T and len(thetas) == T + 1
    J = hist["J_exact"]
    slack = 1e-12 * max(1.0, float(np.abs(J).max()))
    J_last = pg.exact.evaluate(mdp, pi).J
    margin = 0.0
    for t in range(T):
        p = pg.TabularSoftmax(5, 3, thetas[t])
        assert J[t] == pg.exact.evaluate(mdp, p).J  # History's J_exact is the policy before the step
        g = pg.exact.gradient(mdp, p)
        g_hat = (thetas[t + 1] - thetas[t]) / eta
        assert hist["grad_norm"][t] == pytest.approx(np.linalg.norm(g_hat), rel=1e-9)
        err, gn = float(np.linalg.norm(g_hat - g)), float(np.linalg.norm(g))
        assert err <= gn / 2, (t, err, gn)
        J_next = J[t + 1] if t + 1 < T else J_last
        assert J_next - J[t] >= eta / 2 * (gn**2 - err**2) - slack
        margin += 3 * eta / 8 * gn**2
    assert J_last - J[0] >= margin - T * slack
    assert margin > 0.0


# -- 3 and 4. FrozenLake --------------------------------------------------------------------------


def _train_frozenlake(seed: int) -> tuple[pg.FiniteMDP, pg.TabularSoftmax, pg.History]:
    """The defaults of `pgfast train`: Adam lr 0.2, betas (0.9, 0.99), reward-to-go, baseline time, 500 x 4096."""
    mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1")
    pi = pg.TabularSoftmax(mdp.n_states, mdp.n_actions)
    opt = pg.optim.Adam(cli.DEFAULT_LR["adam"], betas=cli.DEFAULT_ADAM_BETAS)
    hist = pg.train(mdp, pi, optimizer=opt, iterations=cli.DEFAULT_ITERATIONS, batch=cli.DEFAULT_BATCH, seed=seed,
                    weights="reward_to_go", baseline="time", eval_every=25, progress=False)
    return mdp, pi, hist


def test_cli_defaults_are_the_documented_ones() -> None:
    """docs/guide/cli.md ("Training: defaults and measured results") and bench/README.md quote these figures."""
    assert cli.DEFAULT_LR["adam"] == 0.2 and cli.DEFAULT_ADAM_BETAS == (0.9, 0.99)
    assert (cli.DEFAULT_ESTIMATOR, cli.DEFAULT_BASELINE) == ("reward-to-go", "time")
    assert (cli.DEFAULT_ITERATIONS, cli.DEFAULT_BATCH) == (500, 4096)
    # the command line and the training benchmark read them from pg.train's module
    from pgfast import _train
    from pgfast.benchmarks import training

    for name in ("DEFAULT_LR", "DEFAULT_LR_MLP", "DEFAULT_ADAM_BETAS", "DEFAULT_BASELINE", "DEFAULT_BATCH",
                 "DEFAULT_ITERATIONS", "DEFAULT_HIDDEN"):
        assert getattr(cli, name) is getattr(_train, name)
    assert _train.DEFAULT_WEIGHTS == "reward_to_go"
    assert training.cli_settings()["lr"] == _train.DEFAULT_LR["adam"]
    assert training.cli_settings()["batch"] == _train.DEFAULT_BATCH


@pytest.fixture(scope="module")
def frozenlake() -> tuple[pg.FiniteMDP, pg.TabularSoftmax, pg.History]:
    return _train_frozenlake(0)


def test_frozenlake_reaches_95_percent_of_optimal(frozenlake: Any) -> None:
    mdp, pi, hist = frozenlake
    opt = pg.exact.optimal(mdp)
    J = pg.exact.evaluate(mdp, pi).J
    assert J >= 0.95 * opt.J, (J, opt.J)
    assert J <= opt.J + 1e-12
    # the History: evaluated exactly at iterations 1, 25, 50, ...; the uniform policy first
    je = hist["J_exact"]
    assert len(hist) == 500
    np.testing.assert_array_equal(np.flatnonzero(~np.isnan(je)) + 1, [1, *range(25, 501, 25)])
    assert je[0] == pg.exact.evaluate(mdp, pg.TabularSoftmax(16, 4)).J


@pytest.mark.parametrize("seed", [1, 2])
def test_frozenlake_other_seeds_reach_95_percent(seed: int) -> None:
    mdp, pi, _ = _train_frozenlake(seed)
    assert pg.exact.evaluate(mdp, pi).J >= 0.95 * pg.exact.optimal(mdp).J


def test_frozenlake_success_rate_in_gymnasium_matches_exact_J(frozenlake: Any) -> None:
    """Successes are Bernoulli(J) (reward 1 only at the goal, the same 100-step limit), so the
    success rate of N episodes has standard error sqrt(J (1 - J) / N)."""
    gym = pytest.importorskip("gymnasium")
    mdp, pi, _ = frozenlake
    J = pg.exact.evaluate(mdp, pi).J
    cum = np.cumsum(pi.probs(), axis=1)
    A = cum.shape[1]
    rng = np.random.default_rng(2024)
    env = gym.make("FrozenLake-v1")
    N = 2000
    successes = 0
    try:
        for k in range(N):
            s, _ = env.reset(seed=1000 + k)
            done = False
            while not done:
                a = min(int(np.searchsorted(cum[int(s)], rng.random(), side="right")), A - 1)
                s, r, terminated, truncated, _ = env.step(a)
                done = terminated or truncated
            successes += r == 1.0
    finally:
        env.close()
    rate = successes / N
    se = math.sqrt(J * (1 - J) / N)
    assert abs(rate - J) <= 4 * se, (rate, J, se)


# -- 5. reproducibility and History ---------------------------------------------------------------


def _small_run(seed: int, config: str, threads: int = 2, iterations: int = 12) -> tuple[pg.History, np.ndarray]:
    mdp = random_mdp(np.random.default_rng(7), S=6, A=3, n_terminal=1, horizon=6)
    pi = pg.TabularSoftmax(6, 3)
    opt: pg.optim.Optimizer
    baseline: Any
    if config == "adam-time":
        opt, baseline = pg.optim.Adam(0.2), "time"
    elif config == "natural-sampled":
        opt, baseline = pg.optim.NaturalGradient(0.2, fisher="sampled"), None
    else:
        opt, baseline = pg.optim.GradientAscent(0.05, "inv_sqrt"), pg.ValueBaseline(6, 6)
    hist = pg.train(mdp, pi, optimizer=opt, iterations=iterations, batch=512, seed=seed, baseline=baseline,
                    eval_every=1, threads=threads, progress=False)
    return hist, pi.theta.copy()


@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("config", ["adam-time", "natural-sampled", "sgd-value"])
def test_same_seed_same_history(config: str, threads: int) -> None:
    """train promises the same History for the same seed, for any thread count (4 threads on a
    2-CPU machine makes the workers' share of the batch vary from run to run)."""
    h1, th1 = _small_run(3, config, threads)
    h2, th2 = _small_run(3, config, threads)
    for f in ("iteration", "J_estimate", "J_stderr", "J_exact", "grad_norm"):
        np.testing.assert_array_equal(h1[f], h2[f])
    np.testing.assert_array_equal(th1, th2)
    h3, th3 = _small_run(4, config, threads)
    assert not np.array_equal(h1["J_estimate"], h3["J_estimate"])
    assert not np.array_equal(h1["grad_norm"], h3["grad_norm"])
    assert not np.array_equal(th1, th3)
    # the first iteration evaluates the same (initial) policy whatever the seed
    assert h1["J_exact"][0] == h3["J_exact"][0]


def test_callback_can_stop_early() -> None:
    mdp = random_mdp(np.random.default_rng(1), S=4, A=2, horizon=4)
    hist = pg.train(mdp, pg.TabularSoftmax(4, 2), optimizer=pg.optim.Adam(0.1), iterations=50, batch=64, seed=0,
                    progress=False, callback=lambda it, rec: it == 3)
    assert len(hist) == 3
    np.testing.assert_array_equal(hist["iteration"], [1, 2, 3])


def test_history_json_csv_and_records(tmp_path: Path) -> None:
    mdp = random_mdp(np.random.default_rng(2), S=5, A=3, horizon=5)
    hist = pg.train(mdp, pg.TabularSoftmax(5, 3), optimizer=pg.optim.Adam(0.1), iterations=7, batch=128, seed=9,
                    baseline="mean", eval_every=3, progress=False)
    assert len(hist) == 7
    je = hist["J_exact"]
    assert np.isnan(je).tolist() == [False, True, False, True, True, False, False]  # iterations 1, 3, 6 and the last

    rec = hist.to_records()
    assert rec.dtype.names == FIELDS
    assert len(rec) == 7
    np.testing.assert_array_equal(rec.iteration, np.arange(1, 8))
    np.testing.assert_array_equal(rec.J_estimate, hist["J_estimate"])
    assert set(hist.to_dict()) == {"meta", *FIELDS}
    assert hist.to_dict()["J_exact"][1] is None

    path = tmp_path / "h.json"
    hist.save_json(path)
    json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    back = pg.History.load_json(path)
    assert len(back) == 7
    assert back.meta == hist.meta
    assert back.meta["seed"] == 9 and back.meta["optimizer"] == "Adam" and back.meta["baseline"] == "mean"
    for f in FIELDS:
        np.testing.assert_array_equal(back[f], hist[f])  # NaN == NaN here

    csv_path = tmp_path / "h.csv"
    hist.save_csv(csv_path)
    with open(csv_path, newline="") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == FIELDS
    assert len(rows) == 1 + len(hist)
    table = np.array([[float(x) for x in row] for row in rows[1:]])
    for j, f in enumerate(FIELDS):
        np.testing.assert_array_equal(table[:, j], hist[f])

    with pytest.raises(KeyError):
        hist["loss"]


def _record(it: int, j: float) -> dict[str, Any]:
    return {"iteration": it, "J_estimate": j, "J_stderr": 0.01, "J_exact": np.nan, "grad_norm": np.float32(0.5),
            "seconds": 1, "steps_per_s": np.int64(200000)}


def test_history_constructor_checks_records_as_append_does(tmp_path: Path) -> None:
    recs = [_record(1, 0.25), {**_record(2, 0.5), "extra": "dropped"}]
    built = pg.History(recs, meta={"seed": 0})
    appended = pg.History(meta={"seed": 0})
    for r in recs:
        appended.append(r)
    assert built.records == appended.records
    assert all(type(v) is float for r in built.records for v in r.values())
    assert set(built.records[1]) == set(FIELDS)
    built.save_csv(tmp_path / "built.csv")
    appended.save_csv(tmp_path / "appended.csv")
    assert (tmp_path / "built.csv").read_text() == (tmp_path / "appended.csv").read_text()
    assert (tmp_path / "built.csv").read_text().splitlines()[1].startswith("1.0,0.25,")

    with pytest.raises(ValueError, match=r"^records\[0\] is missing the field\(s\) 'J_estimate', 'J_stderr'"):
        pg.History([{"iteration": 1}])
    with pytest.raises(ValueError, match=r"^records\[1\] is missing the field\(s\) 'seconds'$"):
        pg.History([_record(1, 0.0), {k: v for k, v in _record(2, 0.0).items() if k != "seconds"}])
    with pytest.raises(TypeError, match=r"^records\[0\] must be a dict of the fields"):
        pg.History([3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"^records must be a list of dicts of the fields .*, got dict$"):
        pg.History(_record(1, 0.0))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^records\[0\]\['J_exact'\] must be a real number, got str$"):
        pg.History([{**_record(1, 0.0), "J_exact": "n/a"}])
    with pytest.raises(TypeError, match=r"^record\['grad_norm'\] must be a real number, got NoneType$"):
        pg.History().append({**_record(1, 0.0), "grad_norm": None})
    with pytest.raises(TypeError, match="^meta must be a dict, got list$"):
        pg.History([], meta=[("seed", 0)])  # type: ignore[arg-type]


def test_history_load_json_names_the_file(tmp_path: Path) -> None:
    hist = pg.History([_record(1, 0.25)])
    hist.save_csv(tmp_path / "run.csv")
    with pytest.raises(ValueError, match=r"run\.csv: not a saved History: the file is not JSON text \(Expecting value"):
        pg.History.load_json(tmp_path / "run.csv")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match=r"binary\.json: not a saved History: the file is not JSON text"):
        pg.History.load_json(tmp_path / "binary.json")
    doc = hist.to_dict()
    doc["J_stderr"] = ["x"]
    (tmp_path / "text.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"text\.json: not a saved History: records\[0\]\['J_stderr'\] must be a real number"):
        pg.History.load_json(tmp_path / "text.json")
    (tmp_path / "meta.json").write_text(json.dumps({**hist.to_dict(), "meta": [1]}))
    with pytest.raises(ValueError, match=r"meta\.json: not a saved History: its meta is a list"):
        pg.History.load_json(tmp_path / "meta.json")
    hist.save_json(tmp_path / "run.json")
    assert pg.History.load_json(tmp_path / "run.json").records[0]["iteration"] == 1.0


def test_history_repr() -> None:
    assert repr(pg.History()) == "History(0 iterations)"
    assert repr(pg.History([_record(1, 0.25)])) == "History(1 iteration, J_estimate 0.25)"
    assert repr(pg.History([_record(1, 0.25), _record(2, 0.123456), _record(3, 0.5)])) == (
        "History(3 iterations, J_estimate 0.25 -> 0.5)"
    )


def test_train_argument_errors() -> None:
    mdp = random_mdp(np.random.default_rng(3), S=4, A=2, horizon=4)
    pi = pg.TabularSoftmax(4, 2)
    ok: dict[str, Any] = dict(optimizer=pg.optim.Adam(0.1), iterations=2, batch=8, seed=0, progress=False)
    with pytest.raises(ValueError, match="iterations"):
        pg.train(mdp, pi, **{**ok, "iterations": 0})
    with pytest.raises(ValueError, match="batch"):
        pg.train(mdp, pi, **{**ok, "batch": 0})
    with pytest.raises(TypeError, match="optimizer"):
        pg.train(mdp, pi, **{**ok, "optimizer": "adam"})
    with pytest.raises(ValueError, match="sized"):
        pg.train(mdp, pg.TabularSoftmax(5, 2), **ok)


def test_train_refuses_the_time_baseline_with_returns_before_any_work(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """baseline='time' needs the reward-to-go: train says so (as policy_gradient does) before it
    samples, estimates, steps or writes a checkpoint."""
    mdp = random_mdp(np.random.default_rng(4), S=4, A=2, horizon=4)
    pi = pg.TabularSoftmax(4, 2)
    with pytest.raises(ValueError) as from_estimator:
        pg.policy_gradient(pi, mdp.sample(pi, 4, seed=0), weights="return", baseline="time")

    def no_work(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("train started an iteration")

    monkeypatch.setattr(pg.FiniteMDP, "sample", no_work)
    monkeypatch.setattr("pgfast._train.policy_gradient", no_work)
    opt = pg.optim.Adam(0.1)
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(ValueError, match=r"^baseline='time' needs weights='reward_to_go'") as from_train:
        pg.train(mdp, pi, optimizer=opt, iterations=3, batch=8, seed=0, weights="return", baseline="time",
                 progress=False, checkpoint=ckpt, callback=no_work)
    assert str(from_train.value) == str(from_estimator.value)
    assert opt.t == 0 and not pi.theta.any() and not ckpt.exists()


# -- progress display -------------------------------------------------------------------------------


def _progress_run(progress: Any, iterations: int = 3, optimizer: Any = None) -> pg.History:
    P = np.zeros((2, 2, 2))
    P[0, 0, 0] = P[0, 1, 1] = 1.0
    P[1, :, 1] = 1.0
    mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3, terminal=[False, True])
    return pg.train(mdp, pg.TabularSoftmax(2, 2), optimizer=optimizer or pg.optim.GradientAscent(lr=1.0),
                    iterations=iterations, batch=50, seed=0, progress=progress)


def _without_tqdm(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if tqdm were not installed: importing it raises ImportError."""
    for name in ("tqdm", "tqdm.auto"):
        monkeypatch.setitem(sys.modules, name, None)


class _Terminal:
    """A stand-in for a terminal's stderr: records what is written, and isatty() is True."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


def _same_records(a: pg.History, b: pg.History) -> None:
    for f in FIELDS:
        if f not in ("seconds", "steps_per_s"):
            np.testing.assert_array_equal(a[f], b[f])


@pytest.mark.parametrize("tqdm_installed", [True, False])
def test_progress_true_shows_a_bar_and_false_none(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tqdm_installed: bool
) -> None:
    if not tqdm_installed:
        _without_tqdm(monkeypatch)
    quiet = _progress_run(False)
    assert capsys.readouterr().err == ""
    shown = _progress_run(True)  # forced, although the captured stderr is no terminal
    err = capsys.readouterr().err
    J_last = f"J={shown['J_exact'][-1]:.4f}"
    if tqdm_installed:
        assert "pgfast.train" in err and "3/3" in err and J_last in err
    else:  # the one-line display: 3 updates, then a newline
        assert re.fullmatch(r"(\r\[#*\.*\] [123]/3  J=-?\d\.\d{4}  \d+\.\ds ){3}\n", err), repr(err)
        assert "\r[" + "#" * 24 + "] 3/3  " + J_last in err
    _same_records(quiet, shown)  # the display changes nothing


@pytest.mark.parametrize("tqdm_installed", [True, False])
def test_progress_auto_shows_on_a_terminal_or_in_a_notebook_only(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tqdm_installed: bool
) -> None:
    if not tqdm_installed:
        _without_tqdm(monkeypatch)
    _progress_run(None)  # stderr is pytest's capture, no terminal
    assert capsys.readouterr().err == ""
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    _progress_run(None)
    assert "3/3" in terminal.text
    monkeypatch.undo()
    if tqdm_installed:
        return  # tqdm.auto would show a notebook widget: the notebook case runs without tqdm below

    class Kernel:
        config: dict[str, Any] = {"IPKernelApp": {}}

    fake_ipython = type(sys)("IPython")
    fake_ipython.get_ipython = Kernel  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", fake_ipython)
    _progress_run(None)
    assert "3/3" in capsys.readouterr().err
    Kernel.config = {"TerminalIPythonApp": {}}  # IPython in a terminal, not a notebook kernel
    _progress_run(None)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("tqdm_installed", [True, False])
def test_progress_of_a_resumed_run_starts_at_the_step_reached(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tqdm_installed: bool
) -> None:
    if not tqdm_installed:
        _without_tqdm(monkeypatch)
    first = pg.optim.Adam(lr=0.1)
    _progress_run(False, iterations=3, optimizer=first)
    resumed = pg.optim.Adam()
    resumed.load_state_dict(first.state_dict())
    assert resumed.t == 3
    _progress_run(True, iterations=2, optimizer=resumed)
    err = capsys.readouterr().err
    counts = re.findall(r"\b(\d)/5\b", err)
    assert counts and counts[-1] == "5" and "1" not in counts and "2" not in counts, err
    assert counts[0] == ("3" if tqdm_installed else "4")  # a tqdm bar shows its initial count first


def test_progress_must_be_none_true_or_false() -> None:
    for bad in ("yes", 1, 0.0):
        with pytest.raises(TypeError, match="progress must be None .*, True or False"):
            _progress_run(bad)


# -- 6 and 7. the command line ------------------------------------------------------------------


def test_cli_train_frozenlake_outputs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    H, P, PNG = tmp_path / "h.json", tmp_path / "theta.npz", tmp_path / "curve.png"
    argv = ["train", "FrozenLake-v1", "--iterations", "5", "--batch", "256", "--episodes", "50",
            "--json", str(H), "--save", str(P), "--plot", str(PNG)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "16 states, 4 actions" in out and "exact J of the trained policy" in out
    assert PNG.read_bytes()[:8] == PNG_SIGNATURE
    hist = pg.History.load_json(H)
    assert len(hist) == 5
    np.testing.assert_array_equal(hist["iteration"], np.arange(1, 6))
    theta = np.load(P)["theta"]
    assert theta.shape == (16, 4)
    # the saved theta is the trained policy whose exact J the JSON records
    mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1")
    J = pg.exact.evaluate(mdp, pg.TabularSoftmax(16, 4, theta)).J
    assert hist.meta["final_J"] == pytest.approx(J, rel=1e-12)
    assert hist.meta["optimal_J"] == pytest.approx(pg.exact.optimal(mdp).J, rel=1e-12)
    assert hist.meta["uniform_J"] == pytest.approx(pg.exact.evaluate(mdp, pg.TabularSoftmax(16, 4)).J, rel=1e-12)
    assert hist.meta["fraction_of_optimal"] == pytest.approx(J / hist.meta["optimal_J"], rel=1e-12)
    assert hist.meta["normalized_score"] == pytest.approx(
        (J - hist.meta["uniform_J"]) / (hist.meta["optimal_J"] - hist.meta["uniform_J"]), rel=1e-12)


def test_cli_train_defaults_reach_95_percent(capsys: pytest.CaptureFixture[str]) -> None:
    """`pgfast train FrozenLake-v1` with every default, including the 1000-episode check."""
    assert main(["train", "FrozenLake-v1"]) == 0
    out = capsys.readouterr().out
    assert "adam lr 0.2 betas 0.9,0.99" in out and "500 iterations x 4096 episodes" in out and "baseline time" in out
    pct = float(re.search(r"\(([\d.]+)% of optimal: J / J\*\)", out).group(1))  # type: ignore[union-attr]
    assert pct >= 95.0
    J = float(re.search(r"exact J of the trained policy +([\d.]+)", out).group(1))  # type: ignore[union-attr]
    assert pct == pytest.approx(100 * J / pg.exact.optimal(pg.FiniteMDP.from_gymnasium("FrozenLake-v1")).J, abs=0.06)
    z = float(re.search(r"\(([-+\d.]+) standard errors from exact J\)", out).group(1))  # type: ignore[union-attr]
    assert abs(z) <= 4


@pytest.mark.parametrize(
    ("extra", "expect"),
    [
        (["--policy", "linear"], "linear softmax (68 parameters)"),
        (["--optimizer", "natural"], "natural lr 1 "),
        (["--optimizer", "sgd", "--schedule", "inv_sqrt"], "sgd lr 1 "),
        (["--baseline", "value"], "baseline value"),
        (["--estimator", "reinforce", "--baseline", "mean"], "reinforce, baseline mean"),
        (["--baseline", "exact", "--optimizer", "adam", "--lr", "0.05"], "adam lr 0.05"),
        (["--betas", "0.8", "0.999"], "adam lr 0.2 betas 0.8,0.999 |"),
    ],
)
def test_cli_train_variants(capsys: pytest.CaptureFixture[str], tmp_path: Path, extra: list[str], expect: str) -> None:
    H = tmp_path / "h.json"
    argv = ["train", "FrozenLake-v1", "--iterations", "3", "--batch", "256", "--episodes", "20", "--json", str(H), *extra]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert expect in out
    hist = pg.History.load_json(H)
    assert len(hist) == 3 and np.all(np.isfinite(hist["J_estimate"]))
    assert math.isfinite(hist.meta["final_J"])


def _number(pattern: str, out: str) -> float:
    m = re.search(pattern, out)
    assert m is not None, (pattern, out)
    return float(m.group(1))


@pytest.mark.parametrize(
    ("argv", "expect", "formula"),
    [
        (["Taxi-v4"], "500 states, 6 actions, horizon 200", "J / J*"),
        (["CliffWalking-v1", "--horizon", "100"], "48 states, 4 actions, horizon 100", "J* / J (rewards are costs)"),
    ],
)
def test_cli_train_other_envs(capsys: pytest.CaptureFixture[str], argv: list[str], expect: str, formula: str) -> None:
    """Taxi (J* > 0, J < 0 at first) and CliffWalking (J* < 0): % of optimal and the normalised score."""
    assert main(["train", *argv, "--iterations", "2", "--batch", "256", "--episodes", "5"]) == 0
    out = capsys.readouterr().out
    assert expect in out and f"% opt = {formula}" in out
    J = _number(r"exact J of the trained policy +(-?[\d.]+)", out)
    J_opt = _number(r"optimal J +(-?[\d.]+)", out)
    J_uni = _number(r"uniform policy J +(-?[\d.]+)", out)
    ratio = J / J_opt if J_opt > 0 else J_opt / J
    assert _number(r"\((-?[\d.]+)% of optimal: " + re.escape(formula), out) == pytest.approx(100 * ratio, abs=0.06)
    score = (J - J_uni) / (J_opt - J_uni)
    assert _number(r"normalised score (-?[\d.]+)%", out) == pytest.approx(100 * score, abs=0.06)


def test_fraction_of_optimal_and_normalized_score() -> None:
    assert fraction_of_optimal(0.6, 0.8) == pytest.approx(0.75)
    assert fraction_of_optimal(-8.0, 8.0) == -1.0  # J* > 0: J / J*, negative while J < 0
    assert fraction_of_optimal(-17.0, -13.0) == pytest.approx(13 / 17)  # costs: J* / J, in (0, 1]
    assert fraction_of_optimal(-13.0, -13.0) == 1.0 and fraction_of_optimal(0.8, 0.8) == 1.0
    assert math.isnan(fraction_of_optimal(0.0, 0.0)) and math.isnan(fraction_of_optimal(0.0, -1.0))
    assert normalized_score(-17.0, -13.0, -1083.0) == pytest.approx(1066 / 1070)
    assert normalized_score(-1083.0, -13.0, -1083.0) == 0.0 and normalized_score(-13.0, -13.0, -1083.0) == 1.0
    assert math.isnan(normalized_score(1.0, 1.0, 1.0))  # the uniform policy is optimal
    # worse J, lower figure, whatever the sign of J*
    for J_opt in (0.8, -13.0):
        Js = J_opt - np.array([0.0, 0.5, 2.0, 10.0])
        assert np.all(np.diff([fraction_of_optimal(float(J), J_opt) for J in Js]) < 0)
    mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1")
    ref = Reference.of(mdp)
    assert ref.optimal_J == pg.exact.optimal(mdp).J
    assert ref.uniform_J == pg.exact.evaluate(mdp, pg.TabularSoftmax(16, 4)).J
    assert ref.score(ref.uniform_J) == 0.0 and ref.fraction(ref.optimal_J) == 1.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["NoSuchEnv-v0"], "unknown gymnasium environment id 'NoSuchEnv-v0'"),
        (["Blackjack-v1"], "no tabular"),
        (["CliffWalking-v1"], "horizon"),
        (["FrozenLake-v1", "--lr", "-1"], "--lr must be > 0"),
        (["FrozenLake-v1", "--lr", "nan"], "--lr must be > 0"),
        (["FrozenLake-v1", "--iterations", "0"], "--iterations must be >= 1"),
        (["FrozenLake-v1", "--batch", "0"], "--batch must be >= 1"),
        (["FrozenLake-v1", "--episodes", "-1"], "--episodes must be >= 0"),
        (["FrozenLake-v1", "--eval-every", "0"], "--eval-every must be >= 1"),
        (["FrozenLake-v1", "--schedule", "inv_sqrt"], "--schedule applies to --optimizer sgd"),
        (["FrozenLake-v1", "--optimizer", "sgd", "--betas", "0.9", "0.9"], "--betas applies to --optimizer adam"),
        (["FrozenLake-v1", "--betas", "0.9", "1"], r"betas must be in \[0, 1\)"),
        (["FrozenLake-v1", "--optimizer", "natural", "--damping", "-1"], "damping"),
        (["FrozenLake-v1", "--gamma", "2"], r"gamma must be in \[0, 1\]"),
    ],
)
def test_cli_train_bad_arguments_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str
) -> None:
    H = tmp_path / "h.json"
    # fast settings first: a later option overrides them
    fast = ["--iterations", "2", "--batch", "64", "--episodes", "5", "--json", str(H)]
    assert main(["train", argv[0], *fast, *argv[1:]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pgfast train: error: ")
    assert re.search(message, err), err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not H.exists()


def test_cli_train_error_exit_status_in_a_process() -> None:
    out = subprocess.run([sys.executable, "-m", "pgfast", "train", "Blackjack-v1"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr and "no tabular" in out.stderr


def test_a_rejected_step_leaves_theta_as_it_was(rng: np.random.Generator) -> None:
    """A step that overflows theta or is NaN raises and leaves the policy usable, whether it comes
    from an optimizer or from ``policy.theta += d`` (an in-place change the setter undoes)."""
    mdp = random_mdp(rng, S=4, A=2, horizon=3)
    pi = random_policy(rng, mdp)
    before = pi.theta.copy()
    with pytest.raises(ValueError, match="theta must be finite"):
        pi.theta += np.inf
    np.testing.assert_array_equal(pi.theta, before)
    with pytest.raises(ValueError, match="the update overflowed"):
        pg.optim.GradientAscent(1e300).step(pi, np.full(pi.theta.shape, 1e300))
    np.testing.assert_array_equal(pi.theta, before)
    with pytest.raises(ValueError, match="visits must be finite and >= 0"):
        pg.optim.NaturalGradient(fisher="sampled").step(pi, np.ones(pi.theta.shape), visits=np.full(4, np.nan))
    np.testing.assert_array_equal(pi.theta, before)
    pi.theta = before + 1.0  # an accepted value is the new fallback
    with pytest.raises(ValueError):
        pi.theta -= np.nan
    np.testing.assert_array_equal(pi.theta, before + 1.0)


def test_optimizer_arguments_and_states_are_checked(rng: np.random.Generator) -> None:
    mdp = random_mdp(rng, S=4, A=2, horizon=3)
    pi = random_policy(rng, mdp)
    for rcond in (5.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match=r"rcond must be in \[0, 1\)"):
            pg.optim.NaturalGradient(damping=0.0, rcond=rcond)
    for betas in (0.9, (0.9,), "ab"):
        with pytest.raises(TypeError, match="betas must be (a pair|a real number)"):
            pg.optim.Adam(betas=betas)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"schedule\(1\) must be a real number"):
        pg.optim.GradientAscent(schedule=lambda t: "x").step(pi, np.ones(pi.theta.shape))  # type: ignore[arg-type, return-value]
    with pytest.raises(TypeError, match="traj must be a pgfast.Trajectories"):
        pg.optim.NaturalGradient(fisher="sampled").step(pi, np.ones(pi.theta.shape), traj="x")  # type: ignore[arg-type]
    bad_states: list[tuple[pg.optim.Optimizer, dict[str, Any], str]] = [
        (pg.optim.GradientAscent(0.1), {"lr": 0.1, "schedule": "cosine", "t": 0}, "schedule must be"),
        (pg.optim.Adam(), {"lr": 0.1, "betas": [1.0, 1.0], "eps": 1e-8, "t": 0, "m": None, "v": None}, "betas must be in"),
        (pg.optim.Adam(), {"lr": 0.1, "betas": [0.9, 0.99], "eps": 1e-8, "t": 3, "m": [[0.0]], "v": [[-1.0]]}, "v finite and >= 0"),
        (pg.optim.NaturalGradient(), {"lr": 1.0, "damping": -5.0, "fisher": "exact", "rcond": 1e-10, "t": 0}, "damping must be"),
        (pg.optim.NaturalGradient(), {"lr": 1.0, "damping": 0.0, "fisher": "weird", "rcond": 1e-10, "t": 0}, "fisher must be"),
        (pg.optim.NaturalGradient(), {"lr": 1.0, "damping": 0.0, "fisher": "exact", "rcond": 3.0, "t": 0}, "rcond must be"),
    ]
    for opt, state, msg in bad_states:
        before = opt.state_dict()
        with pytest.raises(ValueError, match=msg):
            opt.load_state_dict(state)
        assert opt.state_dict() == before  # a rejected state changes nothing
    # Adam reused on another policy starts afresh (bias correction from t = 1), like a new Adam
    other = pg.TabularSoftmax(3, 3)
    adam = pg.optim.Adam(lr=0.1)
    adam.step(pi, rng.normal(size=pi.theta.shape))
    g = rng.normal(size=other.theta.shape)
    np.testing.assert_allclose(adam.step(other, g), pg.optim.Adam(lr=0.1).step(pg.TabularSoftmax(3, 3), g), rtol=1e-15)
    # flags are True or False
    with pytest.raises(TypeError, match="exact_eval must be True or False"):
        pg.train(mdp, pi, optimizer=pg.optim.Adam(), iterations=1, batch=8, seed=0, exact_eval="no")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="baseline must be None"):
        pg.train(mdp, pi, optimizer=pg.optim.Adam(), iterations=1, batch=8, seed=0, baseline=np.zeros(4))
    with pytest.raises(TypeError, match="return_evaluation must be True or False"):
        pg.exact.gradient(mdp, pi, return_evaluation="no")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="policy must be a pgfast policy"):
        mdp.sample(np.ones((4, 2)) / 2, 10, seed=0)  # type: ignore[arg-type]
