"""pgfast.distributed on a real local Ray instance (2 CPUs, one per module): sharded estimates equal
the one-call fused estimate bit for bit for every shard count, baseline and policy class; inputs
that come back read-only from the object store are accepted; bad arguments are refused before
any task runs; Ctrl-C cancels the shards; ``import pgfast`` does not import Ray.

The fault tests (a worker killed on its first attempt, a node removed mid-run) need their own
Ray instance and live in tests/test_distributed_cluster.py."""

from __future__ import annotations

import doctest
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pgfast as pg
from pgfast import distributed
from helpers import MAX_INTERRUPT_LATENCY, frozenlake_8x8, frozenlake_policy

pytestmark = pytest.mark.ray

DOCS = Path(__file__).resolve().parent.parent / "docs"


def same(a: pg.PolicyGradient, b: pg.PolicyGradient) -> bool:
    return (np.array_equal(a.grad, b.grad) and np.array_equal(a.stderr, b.stderr, equal_nan=True) and a.n == b.n
            and a.value == b.value and a.value_stderr == b.value_stderr and a.n_steps == b.n_steps)


def test_import_pgfast_does_not_import_ray() -> None:
    code = "import sys, pgfast, pgfast.distributed; print('ray' in sys.modules, 'ray' in dir(pgfast.distributed))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
    # without Ray: arguments are still checked first, then an ImportError says what to install
    code = ("import sys; sys.modules['ray'] = None\n"
            "import pgfast as pg\n"
            "mdp = pg.FiniteMDP.from_gymnasium('FrozenLake-v1', map_name='4x4', horizon=20)\n"
            "try:\n    pg.distributed.policy_gradient(pg.TabularSoftmax(16, 4), mdp=mdp, n=100, seed=0, shards=0)\n"
            "except ValueError as e:\n    print('ValueError', 'shards' in str(e))\n"
            "try:\n    pg.distributed.policy_gradient(pg.TabularSoftmax(16, 4), mdp=mdp, n=100, seed=0)\n"
            "except ImportError as e:\n    print('ImportError', 'pgfast[ray]' in str(e))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["ValueError", "True", "ImportError", "True"]


@pytest.mark.parametrize("kind", ["tabular", "linear", "mlp"])
@pytest.mark.parametrize("options", [{}, {"baseline": "mean"}, {"baseline": "time"}, {"baseline": "exact"},
                                     {"weights": "return", "baseline": "mean", "stderr": False}],
                         ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_shard_counts_give_the_local_bits(ray_local: Any, kind: str, options: dict[str, Any]) -> None:
    rng = np.random.default_rng(5)
    mdp, pi = frozenlake_8x8(), frozenlake_policy(kind, rng)
    n = 5003  # 20 blocks of 256, the last one short
    local = pg.policy_gradient(pi, mdp=mdp, n=n, seed=9, **options)
    for shards in (1, 2, 3, 7):
        est = distributed.policy_gradient(pi, mdp=mdp, n=n, seed=9, shards=shards, **options)
        assert same(est, local), shards
    if kind == "tabular":  # the seed matters: another one gives other bits
        assert not np.array_equal(distributed.policy_gradient(pi, mdp=mdp, n=n, seed=10, shards=2, **options).grad, local.grad)


@pytest.mark.parametrize("options", [{"entropy": 0.1}, {"entropy": 0.1, "baseline": "time"},
                                     {"entropy": 0.1, "baseline": "mean", "weights": "return"},
                                     {"regularizer": pg.LogBarrier(0.01), "baseline": "time"}],
                         ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_regularised_estimates_give_the_local_bits(ray_local: Any, options: dict[str, Any]) -> None:
    rng = np.random.default_rng(7)
    mdp, pi = frozenlake_8x8(), frozenlake_policy("tabular", rng)
    local = pg.policy_gradient(pi, mdp=mdp, n=5003, seed=2, **options)
    for shards in (1, 3):
        assert same(distributed.policy_gradient(pi, mdp=mdp, n=5003, seed=2, shards=shards, **options), local), shards
    assert same(distributed.policy_gradient(pi, mdp=mdp, n=5003, seed=2, shards="auto", **options), local)
    with pytest.raises(ValueError, match="entropy must be a finite temperature"):  # checked before any task
        distributed.policy_gradient(pi, mdp=mdp, n=5003, seed=2, entropy=-1.0)


def test_a_fitted_value_baseline_gives_the_local_bits(ray_local: Any) -> None:
    rng = np.random.default_rng(8)
    mdp = frozenlake_8x8()
    for kind in ("tabular", "mlp"):
        pi = frozenlake_policy(kind, rng)
        vb = pg.ValueBaseline(mdp.n_states, mdp.horizon).fit(mdp.sample(pi, 2000, seed=1))
        for weights in ("reward_to_go", "return"):
            local = pg.policy_gradient(pi, mdp=mdp, n=5003, seed=3, baseline=vb, weights=weights)
            for shards in (2, 7):
                assert same(distributed.policy_gradient(pi, mdp=mdp, n=5003, seed=3, baseline=vb, weights=weights,
                                                        shards=shards), local)


def test_threads_per_shard_and_auto_give_the_local_bits(ray_local: Any) -> None:
    rng = np.random.default_rng(6)
    mdp, pi = frozenlake_8x8(), frozenlake_policy("tabular", rng)
    local = pg.policy_gradient(pi, mdp=mdp, n=300_000, seed=4, baseline="time")
    for shards, tps in (("auto", None), ("auto", 2), (2, 2), (64, 1), (500, 1)):
        assert same(distributed.policy_gradient(pi, mdp=mdp, n=300_000, seed=4, baseline="time", shards=shards,
                                                threads_per_shard=tps), local), (shards, tps)


def test_a_task_runs_the_threads_ray_assigned_it(ray_local: Any) -> None:
    ray = ray_local
    for cpus in (1, 2):
        assert ray.get(ray.remote(num_cpus=cpus)(distributed._assigned_threads).remote()) == cpus


def test_auto_shards_stays_within_its_caps(ray_local: Any) -> None:
    mdp, pi = frozenlake_8x8(), pg.TabularSoftmax(64, 4)
    auto = distributed.auto_shards
    assert auto(pi, mdp=mdp, n=1000, seed=0, round_trip=0.002, cpus=8) == 1  # ~0.1 ms of work
    assert auto(pi, mdp=mdp, n=10**9, seed=0, round_trip=0.002, cpus=8) == 8  # capped by the CPUs
    assert auto(pi, mdp=mdp, n=10**9, seed=0, round_trip=0.002, cpus=1000) == pg.block_grid(10**9)[1] == 60  # the grid
    # the work of a shard is at least 100 fixed costs: more threads per shard, fewer shards
    one, four = (auto(pi, mdp=mdp, n=2 * 10**6, seed=0, round_trip=0.002, cpus=1000, threads_per_shard=t) for t in (1, 4))
    assert 1 <= four < one < 64
    assert auto(pi, mdp=mdp, n=2 * 10**6, seed=0, round_trip=0.002, cpus=1000, baseline="time") >= one  # two passes


def test_inputs_read_only_from_the_object_store(ray_local: Any) -> None:
    ray = ray_local
    rng = np.random.default_rng(7)
    mdp = frozenlake_8x8()
    for kind in ("tabular", "linear", "mlp"):
        pi = frozenlake_policy(kind, rng)
        pi2, mdp2 = ray.get(ray.put(pi)), ray.get(ray.put(mdp))
        assert not mdp2.transitions[0].flags.writeable  # zero-copy views of the object store
        local = pg.policy_gradient(pi, mdp=mdp, n=3000, seed=2, baseline="time")
        assert same(pg.policy_gradient(pi2, mdp=mdp2, n=3000, seed=2, baseline="time"), local)
        assert same(distributed.policy_gradient(pi2, mdp=mdp2, n=3000, seed=2, baseline="time", shards=3), local)
        np.testing.assert_array_equal(pg.exact.gradient(mdp2, pi2), pg.exact.gradient(mdp, pi))
        traj = mdp2.sample(pi2, 50, seed=1)
        assert np.array_equal(traj.rewards, mdp.sample(pi, 50, seed=1).rewards)
        h2 = pg.train(mdp2, pi2, optimizer=pg.optim.Adam(0.1), iterations=2, batch=200, seed=3, progress=False)
        h1 = pg.train(mdp, pi, optimizer=pg.optim.Adam(0.1), iterations=2, batch=200, seed=3, progress=False)
        assert np.array_equal(pi2.theta, pi.theta) and np.array_equal(h1["J_estimate"], h2["J_estimate"])
    # arrays the caller made read-only
    theta = rng.normal(size=(64, 4))
    theta.setflags(write=False)
    phi = rng.normal(size=(64, 4, 3))
    phi.setflags(write=False)
    for pi in (pg.TabularSoftmax(64, 4, theta=theta), pg.LinearSoftmax(phi, theta=np.zeros(3))):
        assert same(distributed.policy_gradient(pi, mdp=mdp, n=2000, seed=0, shards=2),
                    pg.policy_gradient(pi, mdp=mdp, n=2000, seed=0))


def test_bad_arguments_are_refused_before_any_task(ray_local: Any) -> None:
    mdp, pi = frozenlake_8x8(), pg.TabularSoftmax(64, 4)
    call = distributed.policy_gradient
    kw: dict[str, Any] = {"mdp": mdp, "n": 1000, "seed": 0}
    cases: list[tuple[type[Exception], str, dict[str, Any]]] = [
        (ValueError, "shards", {"shards": "many"}),
        (ValueError, "shards", {"shards": 0}),
        (TypeError, "shards", {"shards": 2.0}),
        (TypeError, "shards", {"shards": True}),
        (ValueError, "threads_per_shard", {"threads_per_shard": 0}),
        (ValueError, "threads_per_shard", {"threads_per_shard": 3}),  # above the 2 CPUs of the one node
        (TypeError, "address", {"address": 6379}),
        (ValueError, "max_retries", {"max_retries": -1}),
        (TypeError, "max_retries", {"max_retries": 1.5}),
        (ValueError, "n", {"n": 0}),
        (ValueError, "seed", {"seed": -1}),
        (ValueError, "baseline", {"baseline": "median"}),
        (ValueError, "fitted ValueBaseline", {"baseline": pg.ValueBaseline(64, mdp.horizon)}),
        (ValueError, "weights='reward_to_go'", {"baseline": "time", "weights": "return"}),
        (ValueError, "weights", {"weights": "advantage"}),
        (ValueError, "gamma", {"gamma": 2.0}),
        (TypeError, "stderr", {"stderr": "yes"}),
        (TypeError, "mdp", {"mdp": "FrozenLake-v1"}),
    ]
    for exc, match, extra in cases:
        with pytest.raises(exc, match=match):
            call(pi, **{**kw, **extra})
    with pytest.raises(TypeError, match="policy"):
        call(np.zeros((64, 4)), **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_states|states"):
        call(pg.TabularSoftmax(16, 4), **kw)


def test_ctrl_c_cancels_the_shards(ray_local: Any) -> None:
    ray = ray_local
    mdp = frozenlake_8x8(200)
    pi = frozenlake_policy("tabular", np.random.default_rng(1))
    distributed.policy_gradient(pi, mdp=mdp, n=1000, seed=0, shards=2)  # workers up
    main = threading.main_thread().ident
    assert main is not None
    sent: list[float] = []

    def fire() -> None:
        sent.append(time.perf_counter())
        signal.pthread_kill(main, signal.SIGINT)

    timer = threading.Timer(0.5, fire)
    with pytest.raises(KeyboardInterrupt):  # two shards of ~20 s each, uninterrupted
        try:
            timer.start()
            distributed.policy_gradient(pi, mdp=mdp, n=10**8, seed=0, shards=2)
        finally:
            end = time.perf_counter()
            timer.join()
    assert sent and end - sent[0] < MAX_INTERRUPT_LATENCY, f"KeyboardInterrupt {end - sent[0]:.3f} s after SIGINT"
    deadline = time.monotonic() + 10  # the cancelled shards' workers are stopped: the CPUs come back
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ray.available_resources().get("CPU", 0) == 2
    assert same(distributed.policy_gradient(pi, mdp=mdp, n=4000, seed=1, shards=2),
                pg.policy_gradient(pi, mdp=mdp, n=4000, seed=1))


def test_overflow_is_a_value_error_as_locally(ray_local: Any) -> None:
    # rewards near the float64 limit: the returns overflow, a ValueError here as locally (the
    # merge reports the overflow of the partials' sums)
    P = np.full((2, 1, 2), 0.5)
    mdp = pg.FiniteMDP(P, np.full((2, 1), 1e308), [0.5, 0.5], horizon=4)
    pi = pg.TabularSoftmax(2, 1)
    with pytest.raises(ValueError, match="overflow"):
        pg.policy_gradient(pi, mdp=mdp, n=600, seed=0)
    with pytest.raises(ValueError, match="overflowed float64"):
        distributed.policy_gradient(pi, mdp=mdp, n=600, seed=0, shards=2)


def test_docstring_examples_run(ray_local: Any) -> None:
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = [t for t in finder.find(distributed, "pgfast.distributed", globs={"np": np, "pg": pg}) if t.examples]
    assert {t.name for t in tests} >= {"pgfast.distributed.policy_gradient", "pgfast.distributed.auto_shards"}
    for t in tests:
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        report: list[str] = []
        result = runner.run(t, out=report.append, clear_globs=True)
        assert result.failed == 0, "".join(report)


def test_guide_page_code_runs(ray_local: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``{code-block} python`` blocks of docs/guide/distributed.md run in order (with the
    module's Ray instance; the docs tests run plain ``python`` blocks without Ray)."""
    monkeypatch.chdir(tmp_path)
    text = (DOCS / "guide" / "distributed.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```\{code-block\} python\n(.*?)```", text, re.S)
    assert len(blocks) >= 2
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"distributed.md, python block {i}", "exec"), namespace)  # noqa: S102
