"""The pgfast command line: the main job's output, info, and one-line errors with exit status 2."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from pgfast.__main__ import main


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
    import json
    from pathlib import Path

    out_json = Path(str(tmp_path)) / "bench.json"
    assert main(["bench", "--quick", "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "1T/NumPy" in out and "frozenlake" in out and "random" in out
    for suite in ("sampler", "exact", "estimators"):
        assert f"== pgfast bench {suite} ==" in out
        assert json.loads((Path(str(tmp_path)) / f"bench-{suite}.json").read_text())["rows"]
    rows = json.loads((Path(str(tmp_path)) / "bench-sampler.json").read_text())["rows"]
    assert len(rows) == 4
