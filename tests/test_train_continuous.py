"""pg.train on an LQR and on gymnasium environments with Box observations; `pgfast train` on them."""

from __future__ import annotations

import math
import re

import gymnasium
import numpy as np
import pytest

import pgfast as pg
import lqr_reference as ref
from pgfast._train import iteration_seed
from pgfast.cli import main

TIMING = ("seconds", "steps_per_s")


def _records(hist: pg.History) -> list[dict[str, float]]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in hist.records]


def _same_records(a: pg.History, b: pg.History) -> bool:
    return all(all((x[k] == y[k]) or (math.isnan(x[k]) and math.isnan(y[k])) for k in x)
               for x, y in zip(_records(a), _records(b))) and len(a) == len(b)


# -- gymnasium ------------------------------------------------------------------------------------


def test_train_improves_the_return_on_cartpole() -> None:
    pi = pg.ObservationSoftmax(4, 2)
    before = pg.rollout("CartPole-v1", pi, 200, seed=99).returns()
    hist = pg.train("CartPole-v1", pi, optimizer=pg.optim.Adam(lr=0.1), iterations=30, batch=20, seed=0,
                    baseline="time", progress=False)
    after = pg.rollout("CartPole-v1", pi, 200, seed=99).returns()
    se = math.hypot(before.std(ddof=1), after.std(ddof=1)) / math.sqrt(200)
    # the uniform policy holds the pole ~22 steps; the trained one several times longer
    assert after.mean() - before.mean() > 10 * se and after.mean() > 3 * before.mean()
    assert len(hist) == 30 and hist.meta["problem"] == "CartPole-v1"
    assert np.isnan(hist["J_exact"]).all() and (hist["grad_norm"] > 0).all()


def test_train_records_the_batch_of_eachiteration_seed() -> None:
    pi = pg.ObservationSoftmax(4, 2)
    hist = pg.train("CartPole-v1", pi, optimizer=pg.optim.GradientAscent(lr=1e-3), iterations=2, batch=6, seed=5,
                    progress=False, gamma=0.99)
    first = pg.rollout("CartPole-v1", pg.ObservationSoftmax(4, 2), 6, seed=iteration_seed(5, 1), gamma=0.99)
    assert hist["J_estimate"][0] == pg.policy_gradient(pg.ObservationSoftmax(4, 2), first).value
    assert hist["J_estimate"][0] == pytest.approx(first.returns().mean(), rel=1e-12)


def test_train_on_gymnasium_is_reproducible_for_any_num_envs() -> None:
    runs = []
    for num_envs in (None, 1, 3):
        pi = pg.LinearGaussian(3, 1, features="affine")
        h = pg.train("Pendulum-v1", pi, optimizer=pg.optim.Adam(lr=0.05), iterations=3, batch=4, seed=7, horizon=40,
                     num_envs=num_envs, progress=False)
        runs.append((pi.theta.copy(), h))
    for theta, h in runs[1:]:
        assert np.array_equal(theta, runs[0][0]) and _same_records(h, runs[0][1])
    other = pg.LinearGaussian(3, 1, features="affine")
    pg.train("Pendulum-v1", other, optimizer=pg.optim.Adam(lr=0.05), iterations=3, batch=4, seed=8, horizon=40, progress=False)
    assert not np.array_equal(other.theta, runs[0][0])


@pytest.mark.parametrize("optimizer", [
    lambda: pg.optim.GradientAscent(lr=1e-4, schedule="inv_sqrt"),
    lambda: pg.optim.Adam(lr=0.05),
    lambda: pg.optim.NaturalGradient(lr=0.05, fisher="sampled"),
    lambda: pg.optim.NaturalGradient(lr=0.05, fisher="sampled", damping=0.0),
])
def test_every_optimizer_trains_on_gymnasium(optimizer: object) -> None:
    opt = optimizer()  # type: ignore[operator]
    pi = pg.LinearGaussian(2, 1)
    hist = pg.train("MountainCarContinuous-v0", pi, optimizer=opt, iterations=3, batch=3, seed=1, horizon=100,
                    env_kwargs={}, progress=False)
    assert len(hist) == 3 and opt.t == 3 and np.isfinite(pi.theta).all() and pi.theta.any()
    assert hist.meta["optimizer"] == type(opt).__name__


def test_natural_direction_from_the_scores_of_the_batch() -> None:
    pi = pg.ObservationSoftmax(4, 2, W=[[0.1, 0.2, -0.5, 0.1], [0.0, 0.0, 0.0, 0.0]])
    traj = pg.rollout("CartPole-v1", pi, 10, seed=3)
    g = pg.policy_gradient(pi, traj).grad
    psi = np.concatenate([pi.grad_log_prob(traj.states[i, :L], traj.actions[i, :L]) for i, L in enumerate(traj.lengths)])
    F = psi.T @ psi / traj.n
    opt = pg.optim.NaturalGradient(lr=0.5, damping=0.1, fisher="sampled")
    np.testing.assert_allclose(opt.direction(pi, g, traj=traj), np.linalg.solve(F + 0.1 * np.eye(8), g), rtol=1e-8)
    # damping 0: the pseudo-inverse (F is singular: the two actions' logits share their difference only)
    pinv = pg.optim.NaturalGradient(damping=0.0, fisher="sampled").direction(pi, g, traj=traj)
    np.testing.assert_allclose(pinv, np.linalg.pinv(F, rcond=1e-10, hermitian=True) @ g, rtol=1e-6, atol=1e-10)
    with pytest.raises(ValueError, match="needs step\\(policy, grad, traj=batch\\)"):
        pg.optim.NaturalGradient(fisher="sampled").step(pi, g)
    with pytest.raises(ValueError, match="fisher='exact'\\) needs the exact Fisher matrix of a finite MDP"):
        pg.optim.NaturalGradient().step(pi, g, traj=traj)
    with pytest.raises(ValueError, match="not from mdp= or visits="):
        pg.optim.NaturalGradient(fisher="sampled").step(pi, g, visits=np.ones(3))
    with pytest.raises(TypeError, match="ContinuousTrajectories"):
        pg.optim.NaturalGradient(fisher="sampled").step(pi, g, traj="batch")


def test_train_callback_progress_and_ctrl_c(capsys: pytest.CaptureFixture[str]) -> None:
    pi = pg.ObservationSoftmax(4, 2)
    seen: list[int] = []
    hist = pg.train("CartPole-v1", pi, optimizer=pg.optim.Adam(lr=0.1), iterations=10, batch=3, seed=0,
                    callback=lambda it, rec: seen.append(it) or it == 4, progress=True)
    assert seen == [1, 2, 3, 4] and len(hist) == 4
    err = capsys.readouterr().err
    assert "4/10" in err

    class Interrupted(pg.optim.Adam):
        def step(self, policy, grad, **context):  # type: ignore[no-untyped-def]
            d = super().step(policy, grad, **context)
            if self.t == 3:  # a Ctrl-C after the third update, before the iteration's end
                raise KeyboardInterrupt
            return d

    reference = pg.ObservationSoftmax(4, 2)
    ref_opt = pg.optim.Adam(lr=0.1)
    pg.train("CartPole-v1", reference, optimizer=ref_opt, iterations=2, batch=3, seed=0, progress=False)
    pi, opt = pg.ObservationSoftmax(4, 2), Interrupted(lr=0.1)
    with pytest.raises(KeyboardInterrupt):
        pg.train("CartPole-v1", pi, optimizer=opt, iterations=5, batch=3, seed=0, progress=False)
    # policy and optimizer as after the last completed iteration
    assert np.array_equal(pi.theta, reference.theta) and opt.t == 2 and np.array_equal(opt.m, ref_opt.m)


def test_train_on_the_gymnasium_lqr_improves_the_exact_objective() -> None:
    lqr = ref.example(horizon=20)
    pi = pg.LinearGaussian(3, 2, log_std=np.log(0.5))
    J0 = ref.objective(lqr, pi.W, pi.log_std)
    pg.train(lqr.to_gymnasium(), pi, optimizer=pg.optim.Adam(lr=0.05), iterations=15, batch=64, seed=2, progress=False)
    assert ref.objective(lqr, pi.W, pi.log_std) > J0 + 0.3 * abs(J0)


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: pg.train("CartPole-v1", pg.TabularSoftmax(2, 2), optimizer=pg.optim.Adam(), iterations=1, batch=1, seed=0),
         TypeError, "ObservationSoftmax"),
        (lambda: pg.train(42, pg.ObservationSoftmax(4, 2), optimizer=pg.optim.Adam(), iterations=1, batch=1, seed=0),
         TypeError, "mdp must be a pgfast.FiniteMDP, a pgfast.LQR, a gymnasium"),
        (lambda: pg.train("CartPole-v1", pg.ObservationSoftmax(4, 2), optimizer="adam", iterations=1, batch=1, seed=0),
         TypeError, "optimizer must be"),
        (lambda: pg.train("CartPole-v1", pg.ObservationSoftmax(4, 2), optimizer=pg.optim.Adam(), iterations=0, batch=1, seed=0),
         ValueError, "iterations must be >= 1"),
        (lambda: pg.train("CartPole-v1", pg.ObservationSoftmax(4, 2), optimizer=pg.optim.Adam(), iterations=1, batch=0, seed=0),
         ValueError, "batch must be >= 1"),
        (lambda: pg.train("CartPole-v1", pg.ObservationSoftmax(4, 2), optimizer=pg.optim.Adam(), iterations=1, batch=1, seed=0,
                          checkpoint="x.npz"), ValueError, "finite MDPs only"),
        (lambda: pg.train("CartPole-v1", pg.ObservationSoftmax(4, 2), optimizer=pg.optim.Adam(), iterations=1, batch=1, seed=0,
                          exact_eval=True), ValueError, "exact oracle"),
        (lambda: pg.train("CartPole-v1", pg.ObservationSoftmax(4, 2), optimizer=pg.optim.NaturalGradient(), iterations=1,
                          batch=1, seed=0), ValueError, "fisher='sampled'"),
        (lambda: pg.train("CartPole-v1", pg.ObservationSoftmax(4, 2), optimizer=pg.optim.Adam(), iterations=1, batch=1, seed=0,
                          env_kwargs=[1]), TypeError, "env_kwargs must be a dict"),
        (lambda: pg.train("CartPole-v1", pg.ObservationSoftmax(4, 2), optimizer=pg.optim.Adam(), iterations=1, batch=1, seed=0,
                          callback=3), TypeError, "callback must be callable"),
        (lambda: pg.train("CartPole-v1", pg.ObservationSoftmax(4, 2), optimizer=pg.optim.Adam(), iterations=1, batch=1, seed=0,
                          progress="yes"), TypeError, "progress must be"),
        (lambda: pg.train("FrozenLake-v1", pg.ObservationSoftmax(1, 4), optimizer=pg.optim.Adam(), iterations=1, batch=1, seed=0),
         ValueError, "Box observation space"),
        (lambda: pg.train(ref.example(), pg.ObservationSoftmax(3, 2), optimizer=pg.optim.Adam(), iterations=1, batch=1, seed=0),
         TypeError, "LinearGaussian"),
        (lambda: pg.train(ref.example(horizon=None, gamma=0.9), pg.LinearGaussian(3, 2), optimizer=pg.optim.Adam(),
                          iterations=1, batch=1, seed=0), ValueError, "needs a horizon"),
        (lambda: pg.train(ref.example(), pg.LinearGaussian(3, 2), optimizer=pg.optim.Adam(), iterations=1, batch=1, seed=0,
                          horizon=5), ValueError, "apply to gymnasium environments"),
        (lambda: pg.train(pg.FiniteMDP.from_gymnasium("FrozenLake-v1"), pg.TabularSoftmax(16, 4), optimizer=pg.optim.Adam(),
                          iterations=1, batch=1, seed=0, num_envs=2), ValueError, "apply to gymnasium environments"),
    ],
)
def test_train_continuous_bad_inputs(call: object, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        call()  # type: ignore[operator]


def test_train_closes_the_environments_it_made(monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[int] = []
    original = gymnasium.vector.SyncVectorEnv.close

    def close(self, **kwargs):  # type: ignore[no-untyped-def]
        closed.append(self.num_envs)
        return original(self, **kwargs)

    monkeypatch.setattr(gymnasium.vector.SyncVectorEnv, "close", close)
    pg.train("CartPole-v1", pg.ObservationSoftmax(4, 2), optimizer=pg.optim.Adam(), iterations=1, batch=2, seed=0,
             progress=False)
    with pytest.raises(ValueError, match="overflowed"):  # an error mid-run closes them too
        pg.train("CartPole-v1", pg.ObservationSoftmax(4, 2), optimizer=pg.optim.GradientAscent(lr=1e308), iterations=2,
                 batch=2, seed=0, progress=False)
    assert closed == [2, 2]


# -- the LQR --------------------------------------------------------------------------------------


def test_train_improves_the_objective_of_an_lqr() -> None:
    lqr = ref.example(horizon=20, noise=True)
    pi = pg.LinearGaussian(3, 2, log_std=np.log(0.5))
    J0 = ref.objective(lqr, pi.W, pi.log_std)
    hist = pg.train(lqr, pi, optimizer=pg.optim.Adam(lr=0.05), iterations=40, batch=1000, seed=0, progress=False,
                    baseline="time", threads=2)
    J1 = ref.objective(lqr, pi.W, pi.log_std)
    assert J1 > J0 + 0.5 * abs(J0)
    assert hist["J_estimate"][-1] > hist["J_estimate"][0]
    # the exact columns: J of the policy that sampled each batch, the gap to the best stationary gain
    assert hist["J_exact"][0] == pytest.approx(J0, rel=1e-9)
    assert np.isfinite(hist["J_exact"]).all() and (hist["J_gap"] >= 0).all() and (np.diff(hist["J_gap"][[0, -1]]) < 0).all()
    assert (hist["exact_grad_norm"] > 0).all() and (hist["fraction_of_optimal"] <= 1.0).all()
    assert np.nanmean(hist["step_cosine"][:10]) > 0.3  # Adam's early steps point up the exact gradient
    assert np.isnan(hist["variance_trace"]).all()
    again = pg.LinearGaussian(3, 2, log_std=np.log(0.5))
    h2 = pg.train(lqr, again, optimizer=pg.optim.Adam(lr=0.05), iterations=40, batch=1000, seed=0, progress=False,
                  baseline="time", threads=1)
    assert np.array_equal(again.theta, pi.theta) and _same_records(h2, hist)


def test_train_on_an_lqr_records_its_first_batch() -> None:
    lqr = ref.example(horizon=10)
    pi = pg.LinearGaussian(3, 2)
    hist = pg.train(lqr, pi, optimizer=pg.optim.GradientAscent(lr=1e-3), iterations=1, batch=50, seed=4, progress=False,
                    exact_eval=False)
    traj = lqr.sample(pg.LinearGaussian(3, 2), 50, seed=iteration_seed(4, 1))
    assert hist["J_estimate"][0] == pytest.approx(traj.returns().mean(), rel=1e-12)
    assert np.isnan(hist["J_exact"]).all() and np.isnan(hist["J_gap"]).all()


def test_natural_gradient_on_an_lqr() -> None:
    lqr = ref.example(horizon=15)
    pi = pg.LinearGaussian(3, 2, log_std=np.log(0.5))
    J0 = ref.objective(lqr, pi.W, pi.log_std)
    pg.train(lqr, pi, optimizer=pg.optim.NaturalGradient(lr=0.05, fisher="sampled"), iterations=10, batch=500, seed=1,
             progress=False)
    assert ref.objective(lqr, pi.W, pi.log_std) > J0


# -- the command line -----------------------------------------------------------------------------


def _returns(out: str) -> tuple[float, float, float]:
    first = float(re.search(r"first batch\s+([-\d.]+)", out).group(1))  # type: ignore[union-attr]
    last = float(re.search(r"last batch\s+([-\d.]+)", out).group(1))  # type: ignore[union-attr]
    trained = float(re.search(r"trained policy, \d+ episodes\s+([-\d.]+)", out).group(1))  # type: ignore[union-attr]
    return first, last, trained


def test_cli_default_cartpole_run_improves_the_return(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "CartPole-v1"]) == 0
    out = capsys.readouterr().out
    assert "linear softmax on the observation (8 parameters)" in out and "30 iterations x 20 episodes" in out
    first, last, trained = _returns(out)
    assert trained > 3 * first and last > 3 * first


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "MountainCarContinuous-v0"])
def test_cli_box_action_environments(env_id: str, capsys: pytest.CaptureFixture[str], tmp_path: object) -> None:
    json_path = f"{tmp_path}/h.json"
    save = f"{tmp_path}/theta.npz"
    argv = ["train", env_id, "--iterations", "2", "--batch", "2", "--episodes", "2", "--horizon", "50",
            "--json", json_path, "--save", save, "--eval-every", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "linear-Gaussian on the observation" in out and "horizon 50" in out
    assert re.search(r"^\s+2\s+-[\d.]+", out, re.M)
    assert len(pg.History.load_json(json_path)) == 2 and np.load(save)["theta"].shape == (3 if env_id == "MountainCarContinuous-v0" else 4,)


def test_cli_box_observation_options(capsys: pytest.CaptureFixture[str], tmp_path: object) -> None:
    plot = f"{tmp_path}/curve.png"
    argv = ["train", "CartPole-v1", "--iterations", "2", "--batch", "3", "--episodes", "0", "--optimizer", "natural",
            "--estimator", "reinforce", "--baseline", "none", "--env-arg", "max_episode_steps=30", "--plot", plot]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "natural lr 0.1" in out and "horizon 30" in out and "trained policy" not in out
    assert f"saved learning curve to {plot}" in out
    with open(plot, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "CartPole-v1", "--policy", "mlp"], "--policy mlp is for tabular environments"),
        (["train", "CartPole-v1", "--baseline", "exact"], "--baseline exact is for tabular environments"),
        (["train", "CartPole-v1", "--checkpoint", "c.npz"], "--checkpoint is for tabular environments"),
        (["train", "CartPole-v1", "--iterations", "0"], "--iterations must be >= 1"),
        (["train", "CartPole-v1", "--episodes", "-1"], "--episodes must be >= 0"),
        (["train", "Pendulum-v1", "--lr", "-1"], "--lr must be > 0"),
        (["train", "Pendulum-v1", "--lr", "nan"], "--lr must be > 0"),
        (["train", "Pendulum-v1", "--damping", "-1", "--optimizer", "natural"], "damping must be a finite number >= 0"),
    ],
)
def test_cli_box_observation_errors(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_help_names_the_continuous_environments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "CartPole-v1" in out and "Pendulum-v1" in out and "Box observations" in out
