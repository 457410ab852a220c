"""The pgfast command line: the main job's output, info, and one-line errors with exit status 2."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pgfast.cli import main


def test_sample_frozenlake_agrees_with_exact_value(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sample", "FrozenLake-v1", "--n", "50000", "--seed", "3", "--threads", "2"]) == 0
    out = capsys.readouterr().out
    assert "16 states, 4 actions, 5 terminal, horizon 100" in out
    # the printed gap between the sample mean and the exact J, in standard errors
    gap = float(re.search(r"exact J\s+[-\d.]+\s+\(([-+\d.]+) standard errors\)", out).group(1))  # type: ignore[union-attr]
    assert abs(gap) < 4
    assert "success rate" in out


def test_sample_with_env_options(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["sample", "FrozenLake-v1", "--map-name", "8x8", "--no-slippery", "--n", "1000", "--policy", "random"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "64 states" in out and "is_slippery=False" in out


def test_info(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "eigen" in out and "compiler" in out and "threads" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sample", "NoSuchEnv-v0"], "unknown gymnasium environment id 'NoSuchEnv-v0'"),
        (["sample", "CartPole-v1"], "no tabular"),
        (["sample", "CliffWalking-v1"], "pass --horizon"),
        (["sample", "FrozenLake-v1", "--n", "0"], "n must be >= 1"),
        (["sample", "FrozenLake-v1", "--gamma", "2"], r"gamma must be in \[0, 1\]"),
        (["sample", "FrozenLake-v1", "--env-arg", "oops"], "KEY=VALUE"),
        (["sample", "FrozenLake-v1", "--map-name", "5x5"], r"gymnasium.make\('FrozenLake-v1'\) with .*KeyError"),
        (["sample", "!!!"], r"gymnasium.make\('!!!'\) failed"),
        (["train", "FrozenLake-v1", "--save", "/nonexistent-pgfast/dir/x.npz"], "--save .*does not exist"),
        (["train", "FrozenLake-v1", "--json", "/nonexistent-pgfast/h.json"], "--json .*does not exist"),
        (["sample", "FrozenLake-v1", "--policy", "random", "--policy-seed", "-1"], "--policy-seed must be >= 0"),
        (["bench", "--only", ""], "--only takes a comma-separated list"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert re.search(message, err)
    assert err.count("\n") == 1 and "Traceback" not in err


def test_usage_errors_and_no_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["sample"])
    assert exc.value.code == 2
    assert main([]) == 2


def test_console_entry_points() -> None:
    for cmd in (["pgfast", "--version"], [sys.executable, "-m", "pgfast", "--version"]):
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and out.stdout.startswith("pgfast "), out.stderr


def test_bench_quick_prints_the_table(capsys: pytest.CaptureFixture[str], tmp_path: object) -> None:
    out_json = Path(str(tmp_path)) / "bench.json"
    assert main(["bench", "--quick", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "1T/NumPy" in out and "frozenlake" in out and "random" in out
    for suite in ("sampler", "exact", "estimators", "mlp"):
        assert f"== pgfast bench {suite} ==" in out
        assert json.loads((Path(str(tmp_path)) / f"bench-{suite}.json").read_text())["rows"]
    rows = json.loads((Path(str(tmp_path)) / "bench-sampler.json").read_text())["rows"]
    assert len(rows) == 4
    # the MLP suite's PyTorch column: measured (and checked against pgfast) when torch imports
    mlp_rows = json.loads((Path(str(tmp_path)) / "bench-mlp.json").read_text())["rows"]
    try:
        import torch  # noqa: F401
        has_torch = True
    except ImportError:
        has_torch = False
    assert all((r["ratio_1t_torch"] is not None) == has_torch for r in mlp_rows)
    assert ("PyTorch: not installed" in out) != has_torch
    assert "== pgfast bench training ==" not in out  # opt-in: --only training


def test_bench_training_quick(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """`pgfast bench --only training --quick`: every estimator x baseline row, n/a where the library refuses."""
    out_json = tmp_path / "training.json"
    assert main(["bench", "--only", "training", "--quick", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "== pgfast bench training ==" in out and "time to 95% of optimal" in out
    result = json.loads(out_json.read_text())
    assert result["benchmark"] == "training" and result["quick"] is True
    rows = result["rows"]
    assert [(r["env"], r["estimator"], r["baseline"]) for r in rows] == [
        (env, est, b) for env in ("frozenlake8x8", "taxi") for est, b in [
            *((est, b) for est in ("reinforce", "reward-to-go") for b in ("none", "mean", "time", "value")),
            ("rtg, stored", "time"),  # the default estimator on a stored batch: the iteration before fusing
        ]
    ]
    assert [r["stored"] for r in rows].count(True) == 2
    for r in rows:
        if (r["estimator"], r["baseline"]) == ("reinforce", "time"):
            assert r["status"] == "n/a" and "reward_to_go" in r["reason"]
            continue
        assert r["status"] == "ok" and len(r["runs"]) == 1
        run = r["runs"][0]
        assert 1 <= run["iterations_run"] <= r["max_iterations"] and math.isfinite(run["fraction"])
        assert 0 < run["steps_run"] <= run["iterations_run"] * result["protocol"]["settings"]["batch"] * r["horizon"]
        assert (run["iterations"] is not None) == run["reached"] == (run["fraction"] >= r["target"])
    assert sum(r["cli_default"] for r in rows) == 2


def test_time_to_target_stops_at_the_first_update_that_reaches_it() -> None:
    """The benchmark's reach logic against a plain pg.train run with the same seed and settings."""
    import pgfast as pg
    from pgfast import cli
    from pgfast._optimality import Reference
    from pgfast.benchmarks.training import time_to_target

    mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1")
    ref = Reference.of(mdp)
    run = time_to_target(mdp, ref, "reward_to_go", "time", seed=4, max_iterations=40, target=0.6)
    assert run["reached"] and run["iterations"] == run["iterations_run"] and run["fraction"] >= 0.6
    k = run["iterations"]
    fractions = []
    pi = pg.TabularSoftmax(16, 4)
    hist = pg.train(mdp, pi, optimizer=pg.optim.Adam(cli.DEFAULT_LR["adam"], betas=cli.DEFAULT_ADAM_BETAS),
                    iterations=k, batch=cli.DEFAULT_BATCH, seed=4, baseline="time", progress=False,
                    callback=lambda it, rec: fractions.append(ref.fraction(pg.exact.evaluate(mdp, pi).J)) or False)
    assert fractions[-1] == run["fraction"] and max(fractions[:-1], default=0.0) < 0.6
    steps = hist["steps_per_s"] * hist["seconds"]
    assert run["steps"] == int(np.round(steps).sum())
    # not reached: None, and the figures of the whole run
    miss = time_to_target(mdp, ref, "reward_to_go", "none", seed=4, max_iterations=3, target=0.99)
    assert not miss["reached"] and miss["iterations"] is None and miss["seconds"] is None and miss["steps"] is None
    assert miss["iterations_run"] == 3 and miss["steps_run"] > 0


def test_the_benchmarks_are_outside_the_library_and_inert_on_import() -> None:
    """`import pgfast` leaves pgfast.benchmarks alone; importing every suite changes no environment variable."""
    code = (
        "import os, sys\n"
        "before = dict(os.environ)\n"
        "import pgfast, pgfast.exact, pgfast.optim\n"
        "assert not [m for m in sys.modules if m.startswith('pgfast.benchmarks')], sorted(sys.modules)\n"
        "import pgfast.benchmarks.sampler, pgfast.benchmarks.exact, pgfast.benchmarks.estimators\n"
        "import pgfast.benchmarks.mlp, pgfast.benchmarks.training, pgfast.benchmarks.reference\n"
        "changed = {k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k)}\n"
        "assert not changed, changed\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
