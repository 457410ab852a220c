"""pg.train reproduces itself to the last bit: for any thread count, from a SeedSequence as from an
int seed, and across a checkpoint and resume (the Python API and ``pgfast train``).

Every comparison here is exact (``assert_array_equal``, NaN equal to NaN): the History's
iteration, J_estimate, J_stderr, J_exact and grad_norm columns, the final theta, the optimizer's
state and a ValueBaseline's table. Only the wall-time columns (seconds, steps_per_s) may differ.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import random_mdp

import pgfast as pg
from pgfast import _checkpoint
from pgfast._train import FIELDS
from pgfast.cli import main

EXACT_FIELDS = tuple(f for f in FIELDS if f not in ("seconds", "steps_per_s"))  # all but the wall-time ones
S, A, H = 6, 3, 6


def _mdp(seed: int = 7, **kw: Any) -> pg.FiniteMDP:
    return random_mdp(np.random.default_rng(seed), S=kw.pop("S", S), A=A, n_terminal=1, horizon=kw.pop("horizon", H), **kw)


def assert_same_run(a: pg.History, b: pg.History) -> None:
    assert len(a) == len(b)
    for f in EXACT_FIELDS:
        np.testing.assert_array_equal(a[f], b[f], err_msg=f)


# -- 1. any thread count ------------------------------------------------------------------------

OPTIMIZERS: dict[str, Callable[[], pg.optim.Optimizer]] = {
    "sgd": lambda: pg.optim.GradientAscent(0.05, "inv_sqrt"),
    "adam": lambda: pg.optim.Adam(0.1, betas=(0.9, 0.99)),
    "natural-exact": lambda: pg.optim.NaturalGradient(0.2, damping=1e-2),
    "natural-sampled": lambda: pg.optim.NaturalGradient(0.2, damping=1e-2, fisher="sampled"),
}
BASELINES: dict[str, Callable[[], Any]] = {
    "none": lambda: None,
    "mean": lambda: "mean",
    "time": lambda: "time",
    "exact": lambda: "exact",
    "value": lambda: pg.ValueBaseline(8, 10),
    "value-linear": lambda: pg.ValueBaseline(8, 10, features=np.random.default_rng(2).normal(size=(8, 3))),
}
POLICIES: dict[str, Callable[[], pg.SoftmaxPolicy]] = {
    "tabular": lambda: pg.TabularSoftmax(8, 3),
    "linear": lambda: pg.LinearSoftmax(np.random.default_rng(1).normal(size=(8, 3, 5))),
    "mlp": lambda: pg.MLPSoftmax(8, 3, hidden=(16, 16), seed=0),
}


def _threaded_run(threads: int, optimizer: str, baseline: str, policy: str, weights: str) -> tuple[Any, ...]:
    # batch 700: eleven blocks of 64 trajectories (build_info()["trajectory_block"]), the last partial
    mdp = _mdp(S=8, horizon=10)
    pi, opt, b = POLICIES[policy](), OPTIMIZERS[optimizer](), BASELINES[baseline]()
    hist = pg.train(mdp, pi, optimizer=opt, iterations=6, batch=700, seed=11, weights=weights, baseline=b,
                    eval_every=1, threads=threads, progress=False)
    table = b.values().copy() if isinstance(b, pg.ValueBaseline) else None
    return hist, pi.theta.copy(), opt.state_dict(), table


@pytest.mark.parametrize(
    ("optimizer", "baseline", "policy", "weights"),
    [(o, b, "tabular", "reward_to_go") for o in OPTIMIZERS for b in BASELINES]
    + [(o, b, "tabular", "return") for o in ("adam", "natural-sampled") for b in ("none", "mean", "exact", "value")]
    + [(o, b, p, "reward_to_go") for p in ("linear", "mlp") for o in ("adam", "natural-exact", "natural-sampled")
       for b in ("none", "time", "value")],
)
def test_train_is_bit_identical_for_any_thread_count(optimizer: str, baseline: str, policy: str, weights: str) -> None:
    """The batches do not depend on ``threads`` and neither do the estimator's sums (one block
    grid, one summation tree): the whole run is the same for 1, 2, 3 and 7 threads."""
    hist, theta, state, table = _threaded_run(1, optimizer, baseline, policy, weights)
    assert np.all(np.isfinite(hist["grad_norm"])) and np.any(hist["grad_norm"] > 0)
    for threads in (2, 3, 7):
        h, th, st, tb = _threaded_run(threads, optimizer, baseline, policy, weights)
        assert_same_run(h, hist)
        np.testing.assert_array_equal(th, theta)
        assert st == state
        if table is not None:
            np.testing.assert_array_equal(tb, table)


# -- 2. seeds -------------------------------------------------------------------------------------


def _batch_means(seed: Any, iterations: int = 5) -> tuple[pg.History, list[tuple[float, float]]]:
    """The run's History beside (J, |grad|) estimated from the batch of each documented seed."""
    mdp = _mdp()
    pi = pg.TabularSoftmax(S, A)
    thetas = [pi.theta.copy()]
    hist = pg.train(mdp, pi, optimizer=pg.optim.Adam(0.3), iterations=iterations, batch=300, seed=seed, progress=False,
                    callback=lambda it, rec: thetas.append(pi.theta.copy()))
    means = []
    for k in range(1, iterations + 1):
        if isinstance(seed, np.random.SeedSequence):
            ss = np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key + (k,), pool_size=seed.pool_size)
        else:
            ss = np.random.SeedSequence([seed, k])
        s = int(ss.generate_state(1, dtype=np.uint64)[0])
        est = pg.policy_gradient(pg.TabularSoftmax(S, A, thetas[k - 1]), mdp=mdp, n=300, seed=s, stderr=False)  # as train
        means.append((est.value, float(np.linalg.norm(est.grad))))
    return hist, means


@pytest.mark.parametrize(
    "seed",
    [0, 2**64 - 1, np.random.SeedSequence(5), np.random.SeedSequence([1, 2, 3]), np.random.SeedSequence(9).spawn(3)[2]],
    ids=["int-0", "int-max", "ss", "ss-list", "ss-spawned"],
)
def test_iteration_k_samples_with_the_documented_seed(seed: Any) -> None:
    hist, means = _batch_means(seed)
    np.testing.assert_array_equal(np.column_stack([hist["J_estimate"], hist["grad_norm"]]), means)


def test_seed_sequence_scheme_is_spawn_numbering_and_independent_of_earlier_spawns() -> None:
    ss = np.random.SeedSequence(123)
    children = np.random.SeedSequence(123).spawn(4)
    used = np.random.SeedSequence(123)
    used.spawn(10)  # what it spawned before does not change the run
    h_fresh, _ = _batch_means(ss, 3)
    h_used, _ = _batch_means(used, 3)
    assert_same_run(h_fresh, h_used)
    for k in (1, 2, 3):
        mine = np.random.SeedSequence(ss.entropy, spawn_key=(k,), pool_size=ss.pool_size)
        np.testing.assert_array_equal(mine.generate_state(4), children[k].generate_state(4))


def test_seed_sequences_and_ints_give_different_runs_and_meta_records_them() -> None:
    h_int, _ = _batch_means(5, 3)
    h_ss, _ = _batch_means(np.random.SeedSequence(5), 3)
    h_child, _ = _batch_means(np.random.SeedSequence(5, spawn_key=(0,)), 3)
    assert not np.array_equal(h_int["J_estimate"], h_ss["J_estimate"])
    assert not np.array_equal(h_ss["J_estimate"], h_child["J_estimate"])
    assert h_int.meta["seed"] == 5
    assert h_child.meta["seed"] == {"entropy": 5, "spawn_key": [0], "pool_size": 4}
    json.dumps(h_child.meta)


def test_bad_seeds() -> None:
    mdp, pi = _mdp(), pg.TabularSoftmax(S, A)
    for bad, err in ((-1, ValueError), (2**64, ValueError), (1.5, TypeError), ("0", TypeError)):
        with pytest.raises(err, match="seed"):
            pg.train(mdp, pi, optimizer=pg.optim.Adam(), iterations=1, batch=8, seed=bad, progress=False)


# -- 3. resume ------------------------------------------------------------------------------------


class Setup:
    """Builds fresh objects of one training configuration."""

    def __init__(self, policy: Callable[[], pg.SoftmaxPolicy], optimizer: Callable[[], pg.optim.Optimizer],
                 baseline: Callable[[], Any], **kw: Any) -> None:
        self.policy, self.optimizer, self.baseline, self.kw = policy, optimizer, baseline, kw

    def run(self, iterations: int, *, threads: int = 1, **kw: Any) -> tuple[pg.History, pg.SoftmaxPolicy, Any, Any]:
        pi, opt, b = self.policy(), self.optimizer(), self.baseline()
        hist = pg.train(_mdp(), pi, optimizer=opt, iterations=iterations, baseline=b, threads=threads, progress=False,
                        **{"batch": 256, "seed": 3, "eval_every": 10, **self.kw, **kw})
        return hist, pi, opt, b


SETUPS = {
    "adam-time": Setup(lambda: pg.TabularSoftmax(S, A), lambda: pg.optim.Adam(0.2, betas=(0.9, 0.99)), lambda: "time"),
    "sgd-value": Setup(lambda: pg.TabularSoftmax(S, A), lambda: pg.optim.GradientAscent(0.1, "inv_sqrt"),
                       lambda: pg.ValueBaseline(S, H)),
    "natural-exact-mean": Setup(lambda: pg.LinearSoftmax(np.random.default_rng(4).normal(size=(S, A, 4))),
                                lambda: pg.optim.NaturalGradient(0.1, damping=1e-2), lambda: "mean", weights="return"),
    "natural-sampled": Setup(lambda: pg.TabularSoftmax(S, A), lambda: pg.optim.NaturalGradient(0.1, fisher="sampled"),
                             lambda: None, seed=np.random.SeedSequence(8, spawn_key=(2,))),
    "adam-mlp-exact": Setup(lambda: pg.MLPSoftmax(S, A, hidden=(8,), seed=1), lambda: pg.optim.Adam(0.02), lambda: "exact"),
}


def _stop_at(k: int, how: str) -> Callable[[int, dict[str, float]], bool]:
    def callback(it: int, rec: dict[str, float]) -> bool:
        if it == k and how == "interrupt":
            raise KeyboardInterrupt
        return it == k

    return callback


def _first_run(setup: Setup, k: int, K: int, how: str, path: Path) -> pg.History | None:
    """Runs up to iteration k with a checkpoint: a run of k iterations, one of K that a callback
    stops at k, or one that Ctrl-C interrupts at k (the checkpoint is then written on the way out)."""
    if how == "iterations":
        return setup.run(k, checkpoint=path)[0]
    if how == "callback":
        return setup.run(K, checkpoint=path, callback=_stop_at(k, how))[0]
    with pytest.raises(KeyboardInterrupt):
        setup.run(K, checkpoint=path, callback=_stop_at(k, how))
    return None


@pytest.mark.parametrize("how", ["iterations", "callback", "interrupt"])
@pytest.mark.parametrize("name", list(SETUPS))
def test_resume_after_137_of_400_equals_the_uninterrupted_run(tmp_path: Path, name: str, how: str) -> None:
    setup = SETUPS[name]
    path = tmp_path / "run.ckpt"
    straight, pi, opt, b = setup.run(400, threads=2)
    first = _first_run(setup, 137, 400, how, path)
    if first is not None:
        assert len(first) == 137
    with np.load(path, allow_pickle=False) as z:
        assert json.loads(z["checkpoint.json"].tobytes())["iteration"] == 137
    resumed, pi2, opt2, b2 = setup.run(400, threads=3, resume=path, checkpoint=path)
    assert_same_run(resumed, straight)
    np.testing.assert_array_equal(pi2.theta, pi.theta)
    assert opt2.state_dict() == opt.state_dict()
    if isinstance(b, pg.ValueBaseline):
        np.testing.assert_array_equal(b2.values(), b.values())
    assert resumed.meta == straight.meta
    # eval_every 10: a run that ended at 137 evaluated J there, the run to 400 does not
    if how == "iterations":
        assert first is not None and not np.isnan(first["J_exact"][-1]) and np.isnan(resumed["J_exact"][136])
    # the checkpoint now holds the end of the run
    loaded = _checkpoint.load(path, FIELDS)
    assert loaded.state.iteration == 400
    np.testing.assert_array_equal(loaded.state.theta, pi.theta)


def test_resume_in_stages_through_one_path(tmp_path: Path) -> None:
    setup = SETUPS["sgd-value"]
    straight = setup.run(300)
    path = tmp_path / "ckpt"
    setup.run(100, checkpoint=path)
    setup.run(300, resume=path, checkpoint=path, callback=_stop_at(250, "callback"))
    done, pi, opt, b = setup.run(300, resume=path, checkpoint=path)
    assert_same_run(done, straight[0])
    np.testing.assert_array_equal(pi.theta, straight[1].theta)
    # resuming a finished run runs nothing and returns its History
    again, pi3, _, _ = setup.run(300, resume=path, callback=lambda it, rec: pytest.fail("no iteration should run"))
    assert_same_run(again, straight[0])
    np.testing.assert_array_equal(pi3.theta, straight[1].theta)


def test_resume_with_seed_none_takes_the_checkpoints_seed(tmp_path: Path) -> None:
    setup = SETUPS["adam-time"]
    first = setup.run(20, seed=None, checkpoint=tmp_path / "c")
    drawn = first[0].meta["seed"]
    assert isinstance(drawn, int)
    resumed = setup.run(40, seed=None, resume=tmp_path / "c")[0]
    assert resumed.meta["seed"] == drawn
    assert_same_run(resumed, setup.run(40, seed=drawn)[0])
    resumed_too = setup.run(40, seed=drawn, resume=tmp_path / "c")[0]
    assert_same_run(resumed_too, resumed)


class Flaky(pg.optim.Adam):
    """Adam that raises KeyboardInterrupt *after* its step at step ``fail_at``: theta and its own
    state have moved, the iteration has not completed."""

    fail_at: int | None = None

    def step(self, policy: pg.SoftmaxPolicy, grad: Any, **context: Any) -> Any:
        d = super().step(policy, grad, **context)
        if self.t == self.fail_at:
            raise KeyboardInterrupt
        return d


def test_ctrl_c_mid_iteration_writes_and_restores_the_last_completed_iteration(tmp_path: Path) -> None:
    """Ctrl-C during iteration 50, after the ValueBaseline was refitted and the optimizer stepped:
    the checkpoint and the objects themselves hold the state after iteration 49."""
    kw: dict[str, Any] = dict(batch=256, seed=4, eval_every=5, progress=False)
    mdp = _mdp()
    thetas: list[np.ndarray] = []
    tables: list[np.ndarray] = []
    ref_pi, ref_b = pg.TabularSoftmax(S, A), pg.ValueBaseline(S, H)

    def record(it: int, rec: dict[str, float]) -> None:
        thetas.append(ref_pi.theta.copy())
        tables.append(ref_b.values())

    straight = pg.train(mdp, ref_pi, optimizer=Flaky(0.2), iterations=80, baseline=ref_b, callback=record, **kw)

    pi, opt, b = pg.TabularSoftmax(S, A), Flaky(0.2), pg.ValueBaseline(S, H)
    opt.fail_at = 50
    path = tmp_path / "c.npz"
    with pytest.raises(KeyboardInterrupt):
        pg.train(mdp, pi, optimizer=opt, iterations=80, baseline=b, checkpoint=path, checkpoint_every=np.inf, **kw)
    np.testing.assert_array_equal(pi.theta, thetas[48])
    np.testing.assert_array_equal(b.values(), tables[48])
    assert opt.t == 49
    loaded = _checkpoint.load(path, FIELDS)
    assert loaded.state.iteration == 49 and len(loaded.history) == 49
    np.testing.assert_array_equal(loaded.state.theta, thetas[48])
    assert loaded.state.baseline is not None
    np.testing.assert_array_equal(loaded.state.baseline, tables[48])
    # resuming with the same objects (the fault disarmed) or with new ones completes the same run
    opt.fail_at = None
    resumed = pg.train(mdp, pi, optimizer=opt, iterations=80, baseline=b, resume=path, **kw)
    assert_same_run(resumed, straight)
    np.testing.assert_array_equal(pi.theta, ref_pi.theta)
    fresh = pg.TabularSoftmax(S, A)
    assert_same_run(pg.train(mdp, fresh, optimizer=Flaky(0.2), iterations=80, baseline=pg.ValueBaseline(S, H),
                             resume=path, **kw), straight)
    np.testing.assert_array_equal(fresh.theta, ref_pi.theta)


# -- 4. what a resumed run must share with the checkpoint ------------------------------------------


@pytest.fixture
def checkpoint_of_20(tmp_path: Path) -> Path:
    path = tmp_path / "c.npz"
    SETUPS["adam-time"].run(20, checkpoint=path)
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mdp": _mdp(8)}, "mdp.arrays differ"),
        ({"mdp": _mdp(horizon=7)}, r"mdp.horizon is 7 here, 6 in the checkpoint"),
        ({"policy": pg.LinearSoftmax(np.ones((S, A, 2)))}, "policy.class is 'LinearSoftmax' here, 'TabularSoftmax'"),
        ({"optimizer": pg.optim.GradientAscent(0.2)}, "optimizer.class is 'GradientAscent' here, 'Adam'"),
        ({"optimizer": pg.optim.Adam(0.3, betas=(0.9, 0.99))}, r"optimizer.lr is 0.3 here, 0.2 in the checkpoint"),
        ({"optimizer": pg.optim.Adam(0.2)}, r"optimizer.betas is \[0.9, 0.999\] here, \[0.9, 0.99\]"),
        ({"batch": 255}, "batch is 255 here, 256"),
        ({"weights": "return", "baseline": "mean"}, "baseline is 'mean' here, 'time'.*weights is 'return' here"),
        ({"baseline": pg.ValueBaseline(S, H)}, "baseline is 'value' here, 'time'"),
        ({"gamma": 0.9}, "gamma is 0.9 here, 1.0"),
        ({"eval_every": 3}, "eval_every is 3 here, 10"),
        ({"exact_eval": False}, "exact_eval is False here, True"),
        ({"seed": 4}, "seed is 4 here, 3 in the checkpoint"),
        ({"seed": np.random.SeedSequence(3)}, "seed is .'entropy': 3"),
        ({"iterations": 19}, "iterations must be >= 20, the iteration the checkpoint"),
    ],
)
def test_resume_with_other_options_raises_naming_them(checkpoint_of_20: Path, change: dict[str, Any], message: str) -> None:
    kw: dict[str, Any] = dict(mdp=_mdp(), policy=pg.TabularSoftmax(S, A), optimizer=pg.optim.Adam(0.2, betas=(0.9, 0.99)),
                              iterations=40, batch=256, seed=3, baseline="time", eval_every=10, progress=False)
    kw.update(change)
    with pytest.raises(ValueError, match=message):
        pg.train(resume=checkpoint_of_20, **kw)
    # nothing was restored
    np.testing.assert_array_equal(kw["policy"].theta, np.zeros_like(kw["policy"].theta))
    assert kw["optimizer"].t == 0


def test_resume_checks_the_policy_structure(tmp_path: Path) -> None:
    mdp = _mdp()
    path = tmp_path / "mlp"
    kw: dict[str, Any] = dict(iterations=3, batch=64, seed=0, progress=False)
    pg.train(mdp, pg.MLPSoftmax(S, A, hidden=(8,), seed=0), optimizer=pg.optim.Adam(0.01), checkpoint=path, **kw)
    for other, message in ((pg.MLPSoftmax(S, A, hidden=(8, 8), seed=0), r"policy.hidden is \[8, 8\] here, \[8\]"),
                           (pg.MLPSoftmax(S, A, hidden=(8,), activation="relu", seed=0), "policy.activation is 'relu'"),
                           (pg.MLPSoftmax(np.eye(S)[::-1], A, hidden=(8,), seed=0), "policy.features differ")):
        with pytest.raises(ValueError, match=message):
            pg.train(mdp, other, optimizer=pg.optim.Adam(0.01), resume=path, **kw)
    # another initial theta is fine: the checkpoint's replaces it
    other_init = pg.MLPSoftmax(S, A, hidden=(8,), seed=5)
    pg.train(mdp, other_init, optimizer=pg.optim.Adam(0.01), resume=path, **{**kw, "iterations": 4})


def test_a_callable_schedule_resumes(tmp_path: Path) -> None:
    def halve(t: int) -> float:
        return 0.5 ** (t // 10)

    mdp, path = _mdp(), tmp_path / "c"
    kw: dict[str, Any] = dict(batch=128, seed=1, progress=False)
    a = pg.TabularSoftmax(S, A)
    straight = pg.train(mdp, a, optimizer=pg.optim.GradientAscent(0.3, halve), iterations=40, **kw)
    pg.train(mdp, pg.TabularSoftmax(S, A), optimizer=pg.optim.GradientAscent(0.3, halve), iterations=15, checkpoint=path, **kw)
    b = pg.TabularSoftmax(S, A)
    assert_same_run(pg.train(mdp, b, optimizer=pg.optim.GradientAscent(0.3, halve), iterations=40, resume=path, **kw), straight)
    np.testing.assert_array_equal(a.theta, b.theta)
    with pytest.raises(ValueError, match="optimizer.schedule is 'constant' here, 'callable'"):
        pg.train(mdp, b, optimizer=pg.optim.GradientAscent(0.3), iterations=40, resume=path, **kw)


# -- 5. the file ----------------------------------------------------------------------------------


def test_checkpoint_format_is_npz_with_a_json_document(tmp_path: Path) -> None:
    path = tmp_path / "any-name"
    hist, pi, opt, b = SETUPS["sgd-value"].run(12, checkpoint=path)
    assert zipfile.is_zipfile(path) and path.exists() and not (tmp_path / "any-name.npz").exists()
    with np.load(path, allow_pickle=False) as z:
        assert set(z.files) == {"checkpoint.json", "theta", "history", "baseline.values"}
        doc = json.loads(z["checkpoint.json"].tobytes().decode("utf-8"))
        np.testing.assert_array_equal(z["theta"], pi.theta)
        np.testing.assert_array_equal(z["history"], np.array([[r[f] for f in FIELDS] for r in hist.records]))
        np.testing.assert_array_equal(z["baseline.values"], b.values())
    assert doc["format"] == "pgfast.train checkpoint" and doc["version"] == 1 and doc["pgfast"] == pg.__version__
    assert doc["iteration"] == 12 and doc["seed"] == 3 and doc["fields"] == list(FIELDS)
    assert doc["optimizer"] == opt.state_dict()
    assert doc["options"]["batch"] == 256 and doc["options"]["baseline"] == "value"
    assert doc["options"]["optimizer.schedule"] == "inv_sqrt"
    # Adam's moments are arrays of the archive
    _, _, adam, _ = SETUPS["adam-time"].run(5, checkpoint=path)
    with np.load(path, allow_pickle=False) as z:
        doc = json.loads(z["checkpoint.json"].tobytes())
        assert doc["optimizer"]["m"] == {"__ndarray__": "optimizer.m"} and doc["optimizer"]["t"] == 5
        np.testing.assert_array_equal(z["optimizer.m"], adam.m)
        np.testing.assert_array_equal(z["optimizer.v"], adam.v)


def test_checkpoint_every_paces_the_writes(tmp_path: Path) -> None:
    """checkpoint_every=0 writes after every iteration (the callback of iteration k sees k - 1
    on disk: the write follows the callback); inf writes only at the end."""
    path = tmp_path / "c"
    seen: list[int] = []

    def look(it: int, rec: dict[str, float]) -> None:
        seen.append(_checkpoint.load(path, FIELDS).state.iteration if path.exists() else -1)

    SETUPS["adam-time"].run(6, checkpoint=path, checkpoint_every=0, callback=look)
    assert seen == [-1, 1, 2, 3, 4, 5]
    path.unlink()
    seen.clear()
    SETUPS["adam-time"].run(6, checkpoint=path, checkpoint_every=float("inf"), callback=look)
    assert seen == [-1] * 6 and _checkpoint.load(path, FIELDS).state.iteration == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]  # no temporary files left


def test_an_interrupted_write_leaves_the_previous_checkpoint_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c"
    SETUPS["adam-time"].run(10, checkpoint=path)
    before = path.read_bytes()

    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(_checkpoint.os, "fsync", interrupted)  # Ctrl-C after the data, before the rename
    with pytest.raises(KeyboardInterrupt):
        SETUPS["adam-time"].run(30, resume=path, checkpoint=path, checkpoint_every=0)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c"]
    monkeypatch.undo()
    assert _checkpoint.load(path, FIELDS).state.iteration == 10


def test_not_a_checkpoint(tmp_path: Path) -> None:
    kw: dict[str, Any] = dict(optimizer=pg.optim.Adam(0.2, betas=(0.9, 0.99)), iterations=30, batch=256, seed=3,
                              baseline="time", eval_every=10, progress=False)
    good = tmp_path / "good"
    SETUPS["adam-time"].run(10, checkpoint=good)
    data = good.read_bytes()
    (tmp_path / "garbage").write_bytes(b"not a checkpoint at all")
    (tmp_path / "half").write_bytes(data[: len(data) // 2])
    np.save(tmp_path / "array.npy", np.zeros(3))
    np.savez(tmp_path / "other.npz", theta=np.zeros(3))
    with np.load(good, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    doc = json.loads(arrays["checkpoint.json"].tobytes())
    for name, blob in (("bad-json", b"{not json"), ("version-2", json.dumps({**doc, "version": 2}).encode()),
                       ("short-history", json.dumps({**doc, "iteration": 11}).encode())):
        with open(tmp_path / name, "wb") as fh:
            np.savez(fh, **{**arrays, "checkpoint.json": np.frombuffer(blob, dtype=np.uint8)})
    for name in ("garbage", "half", "array.npy", "other.npz", "bad-json", "version-2", "short-history"):
        with pytest.raises(ValueError, match=f"resume='.*{name}': not a readable pgfast train checkpoint"):
            pg.train(_mdp(), pg.TabularSoftmax(S, A), resume=tmp_path / name, **kw)
    with pytest.raises(ValueError, match="resume='.*missing': no such file"):
        pg.train(_mdp(), pg.TabularSoftmax(S, A), resume=tmp_path / "missing", **kw)
    with pytest.raises(TypeError, match="resume must be a path"):
        pg.train(_mdp(), pg.TabularSoftmax(S, A), resume=3, **kw)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="checkpoint must be a path"):
        pg.train(_mdp(), pg.TabularSoftmax(S, A), checkpoint=3, **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="does not exist"):
        pg.train(_mdp(), pg.TabularSoftmax(S, A), checkpoint=tmp_path / "no" / "c", **kw)
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="checkpoint_every must be a number of seconds >= 0"):
            pg.train(_mdp(), pg.TabularSoftmax(S, A), checkpoint=tmp_path / "c", checkpoint_every=bad, **kw)
    assert not (tmp_path / "c").exists()


# -- 6. the command line --------------------------------------------------------------------------

_FAST = ["--batch", "128", "--episodes", "0", "--eval-every", "25"]


def _cli(argv: list[str], tmp_path: Path, tag: str) -> tuple[pg.History, np.ndarray]:
    H, T = tmp_path / f"{tag}.json", tmp_path / f"{tag}.npz"
    assert main(["train", "FrozenLake-v1", *_FAST, *argv, "--json", str(H), "--save", str(T)]) == 0
    return pg.History.load_json(H), np.load(T)["theta"]


def test_cli_resume_after_137_of_400_equals_the_uninterrupted_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    C = str(tmp_path / "run.ckpt")
    straight, theta = _cli(["--iterations", "400"], tmp_path, "straight")
    first, _ = _cli(["--iterations", "137", "--checkpoint", C], tmp_path, "first")
    assert len(first) == 137
    capsys.readouterr()
    resumed, theta2 = _cli(["--iterations", "400", "--resume", C, "--checkpoint", C], tmp_path, "resumed")
    out = capsys.readouterr().out
    assert f"resuming from {C} | checkpoint {C} every 5 s and on Ctrl-C" in out
    rows = [int(line.split()[0]) for line in out.splitlines() if line.strip() and line.split()[0].isdigit()]
    assert rows == list(range(150, 401, 25))  # the resumed run prints its own iterations
    assert_same_run(resumed, straight)
    np.testing.assert_array_equal(theta2, theta)
    assert resumed.meta == straight.meta


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--resume", "{tmp}/missing"], "resume='.*missing': no such file"),
        (["--resume", "{tmp}/c", "--lr", "0.1"], r"optimizer.lr is 0.1 here, 0.2 in the checkpoint"),
        (["--resume", "{tmp}/c", "--seed", "1"], "seed is 1 here, 0 in the checkpoint"),
        (["--resume", "{tmp}/c", "--iterations", "5"], "iterations must be >= 10"),
        (["--checkpoint", "{tmp}/no/c"], "--checkpoint .*does not exist"),
        (["--checkpoint", "{tmp}/c2", "--checkpoint-every", "-1"], "--checkpoint-every must be a number of seconds >= 0"),
    ],
)
def test_cli_checkpoint_errors_exit_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                                                    message: str) -> None:
    assert main(["train", "FrozenLake-v1", *_FAST, "--iterations", "10", "--checkpoint", str(tmp_path / "c")]) == 0
    capsys.readouterr()
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert main(["train", "FrozenLake-v1", *_FAST, "--iterations", "20", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pgfast train: error: ") and err.count("\n") == 1, err
    assert re.search(message, err), err


def test_cli_ctrl_c_writes_the_checkpoint_and_the_run_resumes(tmp_path: Path) -> None:
    """SIGINT to a ``pgfast train`` process: exit status 130, a checkpoint of the last completed
    iteration, and resuming it to iteration k + 30 equals an uninterrupted run to k + 30."""
    C = tmp_path / "c"
    cmd = [sys.executable, "-m", "pgfast", "train", "FrozenLake-v1", *_FAST, "--checkpoint", str(C), "--checkpoint-every", "0"]
    proc = subprocess.Popen([*cmd, "--iterations", "100000000"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not C.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert C.exists(), "no checkpoint was written"
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert f"the checkpoint {C} holds the last completed iteration; continue with --resume {C}" in err
    assert err.rstrip().endswith("pgfast train: interrupted") and "Traceback" not in err
    k = _checkpoint.load(C, FIELDS).state.iteration
    assert k >= 1
    resumed, theta = _cli(["--iterations", str(k + 30), "--resume", str(C)], tmp_path, "resumed")
    straight, theta2 = _cli(["--iterations", str(k + 30)], tmp_path, "straight")
    assert_same_run(resumed, straight)
    np.testing.assert_array_equal(theta, theta2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "resumed.json", "resumed.npz", "straight.json", "straight.npz"]
