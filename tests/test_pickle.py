"""Pickling: every public object round-trips (protocol 5, big arrays out of band) to a copy that
gives the same bits, also when the out-of-band buffers come back read-only (as from a
shared-memory object store)."""

from __future__ import annotations

import dataclasses
import multiprocessing
import pickle
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pytest

import pgfast as pg
from helpers import random_mdp


def _mdp() -> pg.FiniteMDP:
    return random_mdp(np.random.default_rng(1), S=40, A=4, n_terminal=2, horizon=12, gamma=0.9,
                      transition_rewards=True)


def _policies(mdp: pg.FiniteMDP) -> dict[str, pg.SoftmaxPolicy]:
    rng = np.random.default_rng(2)
    S, A = mdp.n_states, mdp.n_actions
    return {
        "tabular": pg.TabularSoftmax(S, A, theta=rng.normal(size=(S, A))),
        "linear": pg.LinearSoftmax(rng.normal(size=(S, A, 6)), theta=rng.normal(size=6)),
        "mlp": pg.MLPSoftmax(rng.normal(size=(S, 5)), A, hidden=(16, 8), activation="relu", seed=3),
        "mlp_one_hot": pg.MLPSoftmax(S, A, hidden=(8,), seed=4),
    }


def _arrays_equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    return bool(a == b)


def _same_mdp(a: pg.FiniteMDP, b: pg.FiniteMDP) -> None:
    assert (a.n_states, a.n_actions, a.horizon, a.gamma, a.nnz) == (b.n_states, b.n_actions, b.horizon, b.gamma, b.nnz)
    for x, y in zip(a.transitions, b.transitions):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.mu0, b.mu0)
    np.testing.assert_array_equal(a.terminal, b.terminal)
    pi = pg.TabularSoftmax(a.n_states, a.n_actions, theta=np.random.default_rng(0).normal(size=(a.n_states, a.n_actions)))
    ta, tb = a.sample(pi, 200, seed=7), b.sample(pi, 200, seed=7)
    for name in ("states", "actions", "rewards", "lengths", "final_states"):
        np.testing.assert_array_equal(getattr(ta, name), getattr(tb, name))
    for objective in ("finite_horizon", "discounted"):
        assert pg.exact.evaluate(a, pi, objective).J == pg.exact.evaluate(b, pi, objective).J


def _same_policy(mdp: pg.FiniteMDP) -> Callable[[pg.SoftmaxPolicy, pg.SoftmaxPolicy], None]:
    def check(a: pg.SoftmaxPolicy, b: pg.SoftmaxPolicy) -> None:
        assert type(a) is type(b) and repr(a) == repr(b)
        np.testing.assert_array_equal(a.theta, b.theta)
        assert b.theta.flags.writeable and b.theta.flags.owndata  # the policy owns a writable theta
        np.testing.assert_array_equal(a.probs(), b.probs())
        np.testing.assert_array_equal(a.log_probs(), b.log_probs())
        ta, tb = mdp.sample(a, 300, seed=11), mdp.sample(b, 300, seed=11)
        np.testing.assert_array_equal(ta.actions, tb.actions)
        ga, gb = pg.policy_gradient(a, ta), pg.policy_gradient(b, tb)
        np.testing.assert_array_equal(ga.grad, gb.grad)
        np.testing.assert_array_equal(ga.stderr, gb.stderr)
        np.testing.assert_array_equal(pg.exact.gradient(mdp, a), pg.exact.gradient(mdp, b))
        np.testing.assert_array_equal(pg.exact.natural_gradient(mdp, a, damping=1e-3),
                                      pg.exact.natural_gradient(mdp, b, damping=1e-3))
        np.testing.assert_array_equal(pg.policy_gradient(a, mdp=mdp, n=300, seed=5).grad,
                                      pg.policy_gradient(b, mdp=mdp, n=300, seed=5).grad)
        if isinstance(a, pg.MLPSoftmax):
            assert isinstance(b, pg.MLPSoftmax)
            assert (a.sizes, a.activation) == (b.sizes, b.activation)
            np.testing.assert_array_equal(a.state_features, b.state_features)
            assert not b.state_features.flags.writeable
        if isinstance(a, pg.LinearSoftmax):
            assert isinstance(b, pg.LinearSoftmax)
            np.testing.assert_array_equal(a.features, b.features)
            assert not b.features.flags.writeable

    return check


def _same_batch(a: pg.Trajectories, b: pg.Trajectories) -> None:
    for name in ("states", "actions", "rewards", "lengths", "final_states"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)
    assert a.seed == b.seed
    _same_mdp(a.mdp, b.mdp)
    pi = pg.TabularSoftmax(a.mdp.n_states, a.mdp.n_actions)
    cross = pg.ValueBaseline(a.mdp.n_states, a.mdp.horizon)  # not fitted: cross-fitted on the batch
    for kw in ({}, {"baseline": "time"}, {"baseline": "exact", "weights": "return"}, {"baseline": cross}):
        np.testing.assert_array_equal(pg.policy_gradient(pi, a, **kw).grad, pg.policy_gradient(pi, b, **kw).grad)
    np.testing.assert_array_equal(a.reward_to_go(), b.reward_to_go())
    np.testing.assert_array_equal(pg.log_likelihood(pi, a), pg.log_likelihood(pi, b))
    beta = pg.TabularSoftmax(a.mdp.n_states, a.mdp.n_actions, theta=np.ones((a.mdp.n_states, a.mdp.n_actions)))
    assert pg.off_policy_value(pi, beta, a) == pg.off_policy_value(pi, beta, b)


def _same_baseline(mdp: pg.FiniteMDP, traj: pg.Trajectories) -> Callable[[pg.ValueBaseline, pg.ValueBaseline], None]:
    def check(a: pg.ValueBaseline, b: pg.ValueBaseline) -> None:
        assert a.fitted == b.fitted and (a.n_states, a.horizon, a.ridge) == (b.n_states, b.horizon, b.ridge)
        assert _arrays_equal(a.features, b.features) if a.features is not None else b.features is None
        pi = pg.TabularSoftmax(mdp.n_states, mdp.n_actions)
        np.testing.assert_array_equal(pg.policy_gradient(pi, traj, baseline=a).grad,
                                      pg.policy_gradient(pi, traj, baseline=b).grad)
        if a.fitted:
            np.testing.assert_array_equal(a.values(), b.values())
            np.testing.assert_array_equal(pg.policy_gradient(pi, mdp=mdp, n=100, seed=1, baseline=a).grad,
                                          pg.policy_gradient(pi, mdp=mdp, n=100, seed=1, baseline=b).grad)
        other = mdp.sample(pi, 60, seed=9)  # both refit the same way
        np.testing.assert_array_equal(a.fit(other).values(), b.fit(other).values())

    return check


def _same_optimizer(mdp: pg.FiniteMDP) -> Callable[[pg.optim.Optimizer, pg.optim.Optimizer], None]:
    def check(a: pg.optim.Optimizer, b: pg.optim.Optimizer) -> None:
        assert type(a) is type(b) and a.state_dict() == b.state_dict()
        rng = np.random.default_rng(4)
        pa = pg.TabularSoftmax(mdp.n_states, mdp.n_actions, theta=rng.normal(size=(mdp.n_states, mdp.n_actions)))
        pb = pg.TabularSoftmax(mdp.n_states, mdp.n_actions, theta=pa.theta)
        for _ in range(3):
            a.step(pa, pg.exact.gradient(mdp, pa), mdp=mdp)
            b.step(pb, pg.exact.gradient(mdp, pb), mdp=mdp)
        np.testing.assert_array_equal(pa.theta, pb.theta)
        assert a.state_dict() == b.state_dict()

    return check


def _same_fields(a: Any, b: Any) -> None:
    assert type(a) is type(b)
    for f in dataclasses.fields(a):
        assert _arrays_equal(getattr(a, f.name), getattr(b, f.name)), f.name


def _same_history(a: pg.History, b: pg.History) -> None:
    # bit for bit, NaN included (an exact column that was not evaluated is NaN)
    assert [r.keys() for r in a.records] == [r.keys() for r in b.records] and a.meta == b.meta
    assert a.to_records().tobytes() == b.to_records().tobytes()


def _cases() -> dict[str, tuple[Callable[[], Any], Callable[[Any, Any], None], Callable[[Any], int]]]:
    """name -> (make the object, compare original and copy, bytes of its arrays that must travel out of band)."""
    mdp = _mdp()
    pols = _policies(mdp)
    traj = mdp.sample(pols["tabular"], 500, seed=3)
    cases: dict[str, tuple[Callable[[], Any], Callable[[Any, Any], None], Callable[[Any], int]]] = {
        "FiniteMDP": (lambda: mdp, _same_mdp, lambda m: m.transitions[2].nbytes + m.transitions[3].nbytes),
        "Trajectories": (lambda: traj, _same_batch, lambda t: t.states.nbytes + t.actions.nbytes + t.rewards.nbytes),
    }
    for name, pi in pols.items():
        big = (lambda p: p.theta.nbytes + p.features.nbytes) if name == "linear" else (
            (lambda p: p.theta.nbytes + p.state_features.nbytes) if name.startswith("mlp") else (lambda p: p.theta.nbytes))
        cases[name] = ((lambda pi=pi: pi), _same_policy(mdp), big)

    def baseline(fit: bool, features: bool) -> Callable[[], pg.ValueBaseline]:
        def make() -> pg.ValueBaseline:
            f = np.random.default_rng(5).normal(size=(mdp.n_states, 3)) if features else None
            vb = pg.ValueBaseline(mdp.n_states, mdp.horizon, features=f)
            return vb.fit(traj) if fit else vb
        return make

    for fit in (False, True):
        for features in (False, True):
            cases[f"ValueBaseline-{'fitted' if fit else 'unfitted'}-{'linear' if features else 'tabular'}"] = (
                baseline(fit, features), _same_baseline(mdp, traj),
                lambda vb: (vb.values().nbytes if vb.fitted else 0) + (vb.features.nbytes if vb.features is not None else 0))

    def stepped(new: Callable[[], pg.optim.Optimizer]) -> Callable[[], pg.optim.Optimizer]:
        def make() -> pg.optim.Optimizer:
            opt = new()
            pi = pg.TabularSoftmax(mdp.n_states, mdp.n_actions)
            for _ in range(2):
                opt.step(pi, pg.exact.gradient(mdp, pi), mdp=mdp)
            return opt
        return make

    cases["GradientAscent"] = (stepped(lambda: pg.optim.GradientAscent(0.3, schedule="inv_sqrt")), _same_optimizer(mdp), lambda o: 0)
    cases["Adam"] = (stepped(lambda: pg.optim.Adam(0.05)), _same_optimizer(mdp), lambda o: o.m.nbytes + o.v.nbytes)
    cases["NaturalGradient"] = (stepped(lambda: pg.optim.NaturalGradient(0.1, damping=1e-2)), _same_optimizer(mdp), lambda o: 0)
    pi = pols["tabular"]
    cases["PolicyGradient"] = (lambda: pg.policy_gradient(pi, traj, per_trajectory=True), _same_fields,
                               lambda g: g.grad.nbytes + g.per_trajectory.nbytes)
    beta = pols["linear"]
    cases["PolicyGradient-off-policy"] = (lambda: pg.off_policy_gradient(beta, pi, traj), _same_fields, lambda g: g.grad.nbytes)
    cases["OffPolicyValue"] = (lambda: pg.off_policy_value(beta, pi, traj), _same_fields, lambda v: 0)
    cases["Evaluation"] = (lambda: pg.exact.evaluate(mdp, pi), _same_fields, lambda e: e.Q.nbytes + e.V.nbytes)
    cases["Optimal"] = (lambda: pg.exact.optimal(mdp, "discounted"), _same_fields, lambda o: o.Q.nbytes)
    cases["History"] = (
        lambda: pg.train(mdp, pg.TabularSoftmax(mdp.n_states, mdp.n_actions), optimizer=pg.optim.Adam(0.1),
                         iterations=3, batch=50, seed=1, progress=False),
        _same_history, lambda h: 0)
    return cases


CASES = _cases()


def _out_of_band(obj: Any, read_only: bool) -> Any:
    bufs: list[pickle.PickleBuffer] = []
    data = pickle.dumps(obj, protocol=5, buffer_callback=bufs.append)
    return pickle.loads(data, buffers=[memoryview(b).toreadonly() for b in bufs] if read_only else bufs)


ROUND_TRIPS: dict[str, Callable[[Any], Any]] = {
    "in-band": lambda obj: pickle.loads(pickle.dumps(obj, protocol=5)),
    "default protocol": lambda obj: pickle.loads(pickle.dumps(obj)),
    "out-of-band": lambda obj: _out_of_band(obj, False),
    "out-of-band read-only": lambda obj: _out_of_band(obj, True),
}


@pytest.mark.parametrize("how", list(ROUND_TRIPS))
@pytest.mark.parametrize("name", list(CASES))
def test_pickle_round_trip_gives_the_same_bits(name: str, how: str) -> None:
    make, check, _ = CASES[name]
    original = make()
    check(original, ROUND_TRIPS[how](original))


@pytest.mark.parametrize("name", list(CASES))
def test_big_arrays_travel_out_of_band(name: str) -> None:
    make, _, big = CASES[name]
    obj = make()
    bufs: list[pickle.PickleBuffer] = []
    data = pickle.dumps(obj, protocol=5, buffer_callback=bufs.append)
    out_of_band = sum(memoryview(b).nbytes for b in bufs)
    expected = big(obj)
    assert out_of_band >= expected
    if expected:
        inline = len(pickle.dumps(obj, protocol=5))
        assert len(data) <= inline - expected  # the arrays are not in the stream itself


def test_mdp_pickle_does_not_refer_to_the_original() -> None:
    mdp = _mdp()
    data = pickle.dumps(mdp, protocol=5)
    del mdp
    copy = pickle.loads(data)
    _same_mdp(copy, pickle.loads(data))


@pytest.mark.parametrize("kind", ["tabular", "linear", "mlp"])
def test_a_policy_with_read_only_theta_trains(kind: str) -> None:
    """theta arriving read-only (a shared-memory store) is copied into the policy's own array,
    which the optimizer then updates in place: training from the copy equals training the original."""
    mdp = _mdp()
    pi = _policies(mdp)[kind]
    bufs: list[pickle.PickleBuffer] = []
    data = pickle.dumps(pi, protocol=5, buffer_callback=bufs.append)
    copy = pickle.loads(data, buffers=[memoryview(b).toreadonly() for b in bufs])
    theta_array = copy.theta
    assert theta_array.flags.writeable
    kw: dict[str, Any] = {"iterations": 4, "batch": 64, "seed": 2, "progress": False}
    ha = pg.train(mdp, pi, optimizer=pg.optim.Adam(0.1), **kw)
    hb = pg.train(mdp, copy, optimizer=pg.optim.Adam(0.1), **kw)
    assert copy.theta is theta_array  # updated in place
    np.testing.assert_array_equal(pi.theta, copy.theta)
    np.testing.assert_array_equal(ha["J_estimate"], hb["J_estimate"])
    # read-only arrays given to the constructors are accepted (and copied) too
    ro = np.array(pi.theta)
    ro.setflags(write=False)
    if kind == "tabular":
        fresh: pg.SoftmaxPolicy = pg.TabularSoftmax(mdp.n_states, mdp.n_actions, theta=ro)
    elif kind == "linear":
        assert isinstance(pi, pg.LinearSoftmax)
        fresh = pg.LinearSoftmax(pi.features, theta=ro)
    else:
        assert isinstance(pi, pg.MLPSoftmax)
        fresh = pg.MLPSoftmax(pi.state_features, mdp.n_actions, hidden=pi.hidden, activation=pi.activation, theta=ro)
    pg.optim.GradientAscent(0.1).step(fresh, pg.exact.gradient(mdp, fresh))
    assert not np.array_equal(fresh.theta, ro)


def test_read_only_inputs_are_accepted() -> None:
    """Arrays as a shared-memory store returns them (read-only) work as inputs everywhere."""
    rng = np.random.default_rng(8)
    S, A, H = 6, 3, 5

    def ro(x: np.ndarray) -> np.ndarray:
        x = np.array(x)
        x.setflags(write=False)
        return x

    P = ro(rng.dirichlet(np.ones(S), size=(S, A)))
    mdp = pg.FiniteMDP(P, ro(rng.normal(size=(S, A, S))), ro(np.full(S, 1 / S)), horizon=H,
                       terminal=ro(np.zeros(S, dtype=bool)))
    pi = pg.LinearSoftmax(ro(rng.normal(size=(S, A, 2))), theta=ro(rng.normal(size=2)))
    t = mdp.sample(pi, 40, seed=0)
    batch = pg.Trajectories(mdp, ro(t.states), ro(t.actions), ro(t.rewards), ro(t.lengths), ro(t.final_states))
    vb = pg.ValueBaseline(S, H, features=ro(rng.normal(size=(S, 2)))).fit(batch)
    g = pg.policy_gradient(pi, batch, baseline=vb)
    assert np.isfinite(g.grad).all()
    np.testing.assert_array_equal(pg.policy_gradient(pi, t, baseline=vb).grad, g.grad)
    pg.score(pi, batch, ro(batch.reward_to_go()))
    pg.off_policy_gradient(pi, ro(pi.log_prob(batch.states, batch.actions)), batch)
    opt = pg.optim.Adam(0.1)
    opt.load_state_dict({"type": "Adam", "lr": 0.1, "betas": [0.9, 0.99], "eps": 1e-8, "t": 1,
                         "m": ro(np.zeros(2)), "v": ro(np.ones(2))})
    opt.step(pi, ro(g.grad))
    pg.optim.NaturalGradient(fisher="sampled").step(pi, ro(g.grad), visits=ro(np.ones(S)))


def test_spawned_process_computes_the_same_gradient() -> None:
    """The MDP and policy sent to a fresh (spawned) interpreter give the local bits."""
    mdp = _mdp()
    pols = _policies(mdp)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as ex:
        futures = {
            name: (ex.submit(pg.policy_gradient, pi, mdp=mdp, n=400, seed=3),
                   ex.submit(pg.exact.gradient, mdp, pi),
                   ex.submit(mdp.sample, pi, 50, seed=4))
            for name, pi in pols.items() if name in ("tabular", "mlp")
        }
        for name, (fused, exact, sample) in futures.items():
            pi = pols[name]
            _same_fields(pg.policy_gradient(pi, mdp=mdp, n=400, seed=3), fused.result(timeout=120))
            np.testing.assert_array_equal(pg.exact.gradient(mdp, pi), exact.result(timeout=120))
            _same_batch(mdp.sample(pi, 50, seed=4), sample.result(timeout=120))


def test_gymnasium_env_pickles_mid_episode() -> None:
    env = _mdp().to_gymnasium()
    env.reset(seed=3)
    for a in (0, 1, 2):
        env.step(a)
    copy = pickle.loads(pickle.dumps(env, protocol=5))
    for a in (3, 0, 1, 1, 2):
        assert repr(env.step(a)) == repr(copy.step(a))
