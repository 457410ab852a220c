"""pg.sweep with the Ray backend on a real local Ray instance: rows equal direct pg.train runs (and
the local backend's) bit for bit for any packing, resume from a journal, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_sweep import ENV, GRID, KW, _assert_rows_equal_direct, _no_wall

import pgfast as pg

pytestmark = pytest.mark.ray


@pytest.mark.parametrize("per_task", ["auto", 1, 5])
def test_rows_equal_direct_train_for_any_packing(ray_local: Any, per_task: Any) -> None:
    res = pg.sweep(ENV, GRID, seeds=[0, 5], iterations=3, batch=64, env_kwargs=KW, backend="ray",
                   runs_per_task=per_task, progress=False)
    assert len(res) == 4 * 2 * 3
    _assert_rows_equal_direct(res, 3, 64, {})
    local = pg.sweep(ENV, GRID, seeds=[0, 5], iterations=3, batch=64, env_kwargs=KW, workers=1, progress=False)
    assert _no_wall(res.rows) == _no_wall(local.rows)


def test_mlp_and_value_baseline_on_ray(ray_local: Any) -> None:
    res = pg.sweep(ENV, {"baseline": ["value", "mean"]}, seeds=2, iterations=2, batch=32, env_kwargs=KW,
                   backend="ray", runs_per_task=1, progress=False, policy="mlp", hidden=(4,), optimizer="sgd")
    local = pg.sweep(ENV, {"baseline": ["value", "mean"]}, seeds=2, iterations=2, batch=32, env_kwargs=KW,
                     workers=1, progress=False, policy="mlp", hidden=(4,), optimizer="sgd")
    assert _no_wall(res.rows) == _no_wall(local.rows)


def test_a_finite_mdp_travels_through_the_object_store(ray_local: Any) -> None:
    mdp = pg.FiniteMDP.from_gymnasium(ENV, horizon=30, **KW)
    res = pg.sweep(mdp, {"lr": [0.1, 0.2]}, seeds=2, iterations=2, batch=32, backend="ray", progress=False)
    local = pg.sweep(mdp, {"lr": [0.1, 0.2]}, seeds=2, iterations=2, batch=32, workers=1, progress=False)
    assert _no_wall(res.rows) == _no_wall(local.rows)


def test_resume_on_ray_runs_only_the_missing_runs(ray_local: Any, tmp_path: Path) -> None:
    args: dict[str, Any] = {"seeds": 3, "iterations": 2, "batch": 32, "env_kwargs": KW, "progress": False}
    path = tmp_path / "j.jsonl"
    full = pg.sweep(ENV, GRID, **args, backend="ray", journal=path)
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join(lines[:4]) + b"\n" + lines[4][:10])  # 3 runs and a torn line
    resumed = pg.sweep(ENV, GRID, **args, backend="ray", runs_per_task=2, journal=path)
    assert _no_wall(resumed.rows) == _no_wall(full.rows)
    kept = {(d["config"], d["seed"]) for d in map(json.loads, lines[1:4])}
    for old, new in zip(full.rows, resumed.rows):  # the journal's runs keep their wall-clock fields: not run again
        assert (old["seconds"] == new["seconds"]) == ((old["config"], old["seed"]) in kept)
    assert len(path.read_text().splitlines()) == 13


def test_ctrl_c_cancels_the_tasks(ray_local: Any) -> None:
    timer = threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGINT))
    t0 = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            pg.sweep(ENV, {}, seeds=4, iterations=100_000, batch=1024, env_kwargs=KW, backend="ray",
                     runs_per_task=1, progress=False)
    finally:
        timer.cancel()
    assert time.perf_counter() - t0 < 2.0 + 5
    res = pg.sweep(ENV, {}, seeds=2, iterations=1, batch=8, env_kwargs=KW, backend="ray", progress=False)
    assert len(res) == 2


def test_the_throughput_benchmark_runs_every_backend(ray_local: Any) -> None:
    from pgfast.benchmarks import sweep as bench

    rows = bench.run(runs=4)
    assert [r["backend"] for r in rows] == ["serial", "local", "local, warm", "ray tasks", "ray, warm", "ray tune"]
    assert all(r["runs"] == 4 and r["runs_per_s"] == pytest.approx(4 / r["seconds"]) for r in rows)
    assert [r["same_bits"] for r in rows] == [True, True, True, True, True, None]
    assert ray_local.is_initialized()  # the fixture's Ray: used, not shut down
    table = bench.format_table(rows)
    assert "ray tune" in table and "4 runs of pg.train" in table
