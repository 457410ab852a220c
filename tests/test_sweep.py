"""pg.sweep with the local backend: rows equal direct pg.train runs bit for bit for any worker count
and packing, resume from a journal, the result's table, files, summary and plot, bad arguments, and
`pgfast sweep`."""

from __future__ import annotations

import csv
import json
import math
import os
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
from scipy import stats

import pgfast as pg
from pgfast import _sweep
from pgfast.cli import main

ENV, KW = "FrozenLake-v1", {"map_name": "4x4"}
WALL = ("seconds", "steps_per_s")
EXACT_FIELDS = ("iteration", "J_estimate", "J_stderr", "J_exact", "grad_norm")


def _mdp(horizon: int | None = None) -> pg.FiniteMDP:
    return pg.FiniteMDP.from_gymnasium(ENV, horizon=horizon, **KW)


def _direct(config: dict[str, Any], seed: int, iterations: int, batch: int) -> pg.History:
    """pg.train built by hand (not through pg.build_run) for the options these tests sweep."""
    mdp = _mdp(config.get("horizon"))
    if config.get("policy", "tabular") == "mlp":
        pi: pg.SoftmaxPolicy = pg.MLPSoftmax(16, 4, hidden=config["hidden"], seed=seed)
    else:
        pi = pg.TabularSoftmax(16, 4)
    if config.get("optimizer", "adam") == "sgd":
        opt: pg.optim.Optimizer = pg.optim.GradientAscent(config.get("lr", 1.0))
    else:
        opt = pg.optim.Adam(config.get("lr", 0.2), betas=(0.9, 0.99))
    baseline: Any = config.get("baseline", "time")
    baseline = None if baseline == "none" else pg.ValueBaseline(16, mdp.horizon) if baseline == "value" else baseline
    weights = "return" if config.get("estimator") == "reinforce" else "reward_to_go"
    return pg.train(mdp, pi, optimizer=opt, iterations=iterations, batch=batch, seed=seed, weights=weights,
                    baseline=baseline, progress=False)


def _assert_rows_equal_direct(res: pg.SweepResult, iterations: int, batch: int, fixed: dict[str, Any]) -> None:
    optimal = pg.exact.optimal(_mdp()).value
    for c, config in enumerate(res.configs):
        for seed in {r["seed"] for r in res.rows}:
            rows = [r for r in res.rows if r["config"] == c and r["seed"] == seed]
            hist = _direct({**fixed, **config}, seed, iterations, batch)
            assert len(rows) == len(hist) == iterations
            for row, rec in zip(rows, hist.records):
                for f in EXACT_FIELDS:  # bit for bit
                    assert row[f] == rec[f] or (math.isnan(row[f]) and math.isnan(rec[f])), (config, seed, f)
                assert row["fraction_of_optimal"] == row["J_exact"] / optimal
                assert {k: row[k] for k in config} == config


GRID = {"lr": [0.1, 0.3], "baseline": ["none", "time"]}


@pytest.mark.parametrize(("workers", "per_task"), [(1, "auto"), (2, 1), (2, 3)])
def test_rows_equal_direct_train(workers: int, per_task: Any) -> None:
    res = pg.sweep(ENV, GRID, seeds=[0, 5], iterations=3, batch=64, env_kwargs=KW, workers=workers,
                   runs_per_task=per_task, progress=False)
    assert len(res.configs) == 4 and len(res) == 4 * 2 * 3
    assert res.configs[1] == {"lr": 0.1, "baseline": "time"}
    _assert_rows_equal_direct(res, 3, 64, {})
    assert list(res.rows[0]) == ["config", "lr", "baseline", "seed", *_sweep.ROW_FIELDS]


def test_rows_equal_direct_train_other_policies_and_estimators() -> None:
    res = pg.sweep(ENV, {"baseline": ["value", "mean"], "estimator": ["reinforce"]}, seeds=2, iterations=2,
                   batch=32, env_kwargs=KW, workers=2, progress=False, optimizer="sgd")
    _assert_rows_equal_direct(res, 2, 32, {"optimizer": "sgd"})
    res = pg.sweep(ENV, {"hidden": [(8,)]}, seeds=1, iterations=2, batch=32, env_kwargs=KW, workers=1,
                   progress=False, policy="mlp", optimizer="sgd", lr=0.5)
    _assert_rows_equal_direct(res, 2, 32, {"policy": "mlp", "optimizer": "sgd", "lr": 0.5})


def test_eval_every_and_horizon_options() -> None:
    res = pg.sweep(ENV, {"horizon": [20, 40]}, seeds=1, iterations=5, batch=32, env_kwargs=KW, workers=1,
                   progress=False, eval_every=2)
    J = res.column("J_exact").reshape(2, 5)
    assert np.isnan(J[:, 2]).all() and not np.isnan(J[:, [0, 1, 3, 4]]).any()  # the first, every 2nd and the last
    assert res.meta["optimal_J"][0] < res.meta["optimal_J"][1]  # a longer horizon reaches the goal more often
    assert res.summary("J_exact")[0]["n"] == 1


def test_finite_mdp_env_and_build_run_match_the_cli_builder() -> None:
    mdp = _mdp(30)
    res = pg.sweep(mdp, {}, seeds=2, iterations=2, batch=32, workers=1, progress=False)
    assert res.configs == [{}] and len(res) == 4
    direct = pg.train(mdp, pg.TabularSoftmax(16, 4), optimizer=pg.optim.Adam(0.2, betas=(0.9, 0.99)), iterations=2,
                      batch=32, seed=1, baseline="time", progress=False)
    assert res.column("J_estimate")[2:].tolist() == direct["J_estimate"].tolist()
    with pytest.raises(ValueError, match="horizon applies to a gymnasium environment id"):
        pg.sweep(mdp, {"horizon": [10]}, seeds=1, iterations=1, workers=1)


def test_summary_against_numpy_and_scipy() -> None:
    rng = np.random.default_rng(7)
    values = {c: rng.normal(c, 1.0, size=11) for c in range(2)}
    rows = [{"config": c, "lr": 0.1 * (c + 1), "seed": s, "iteration": float(i), "J_exact": values[c][s] + (i - 3)}
            for c in range(2) for s in range(11) for i in (1, 2, 3)]
    res = pg.SweepResult(rows, [{"lr": 0.1}, {"lr": 0.2}])
    for iteration, shift in ((None, 0.0), (1, -2.0)):
        table = res.summary("J_exact", iteration, resamples=500, level=0.9, seed=3)
        for c, row in enumerate(table):
            x = values[c] + shift
            assert row["n"] == 11 and row["lr"] == 0.1 * (c + 1)
            assert row["mean"] == pytest.approx(x.mean(), rel=1e-12)
            assert row["stderr"] == pytest.approx(x.std(ddof=1) / np.sqrt(11), rel=1e-12)
            assert row["iqm"] == pytest.approx(stats.trim_mean(x, 0.25), rel=1e-12)
            idx = np.random.default_rng(3).integers(0, 11, size=(500, 11))
            boot = stats.trim_mean(x[idx], 0.25, axis=1)
            assert row["iqm_low"] == pytest.approx(np.quantile(boot, 0.05), rel=1e-12)
            assert row["iqm_high"] == pytest.approx(np.quantile(boot, 0.95), rel=1e-12)
    with pytest.raises(ValueError, match="iteration must be one of"):
        res.summary("J_exact", 9)
    with pytest.raises(ValueError, match="metric must be one of"):
        res.summary("J")


def test_the_bootstrap_interval_covers_the_iqm_at_its_level() -> None:
    """Over many samples of a normal distribution the 90 % interval holds the true IQM (its median,
    0) about 90 % of the time: the count is within 4 binomial standard errors."""
    rng = np.random.default_rng(11)
    trials, covered = 300, 0
    for t in range(trials):
        x = rng.normal(size=40)
        rows = [{"config": 0, "seed": s, "iteration": 1.0, "J_exact": x[s]} for s in range(40)]
        row = pg.SweepResult(rows, [{}]).summary(resamples=400, level=0.9, seed=t)[0]
        covered += row["iqm_low"] <= 0.0 <= row["iqm_high"]
    assert abs(covered - 0.9 * trials) < 4 * math.sqrt(trials * 0.9 * 0.1) + 0.05 * trials  # percentile CI runs a little narrow


@pytest.fixture(scope="module")
def small_sweep() -> pg.SweepResult:
    return pg.sweep(ENV, {"lr": [0.1, 0.3], "hidden": [(4,)]}, seeds=3, iterations=3, batch=32, env_kwargs=KW,
                    workers=1, progress=False, policy="mlp", eval_every=2)


def test_csv_and_json_round_trip(small_sweep: pg.SweepResult, tmp_path: Path) -> None:
    res = small_sweep
    res.to_csv(tmp_path / "r.csv")
    with open(tmp_path / "r.csv", newline="") as fh:
        table = list(csv.reader(fh))
    assert table[0] == res.columns and len(table) == len(res) + 1
    for line, row in zip(table[1:], res.rows):
        for k, text in zip(table[0], line):
            if k in _sweep.ROW_FIELDS:
                assert float(text) == row[k] or (math.isnan(row[k]) and text == "nan")
    res.to_json(tmp_path / "r.json")
    back = pg.SweepResult.from_json(tmp_path / "r.json")
    assert back.configs == res.configs == [{"lr": 0.1, "hidden": (4,)}, {"lr": 0.3, "hidden": (4,)}]
    assert repr(back.rows) == repr(res.rows)  # nan prints as nan: equal bit for bit otherwise
    assert back.meta == json.loads(json.dumps(res.meta))
    assert sorted(os.listdir(tmp_path)) == ["r.csv", "r.json"]  # no temporary file left
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a saved SweepResult"):
        pg.SweepResult.from_json(tmp_path / "bad.json")


def test_to_pandas(small_sweep: pg.SweepResult, monkeypatch: pytest.MonkeyPatch) -> None:
    df = small_sweep.to_pandas()
    assert list(df.columns) == small_sweep.columns and len(df) == len(small_sweep)
    assert df["J_estimate"].tolist() == small_sweep.column("J_estimate").tolist()
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"pip install pandas \(or pgfast\[pandas\]\)"):
        small_sweep.to_pandas()


def test_plot_returns_the_axes(small_sweep: pg.SweepResult, tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    assert small_sweep.plot("J_exact", ax=ax) is ax
    assert len(ax.get_lines()) == 2 and len(ax.collections) == 2  # a curve and a band per config
    assert ax.get_lines()[0].get_xdata().tolist() == [1.0, 2.0, 3.0]  # every iteration has J here
    ax2 = small_sweep.plot("fraction_of_optimal", band="stderr")
    assert ax2 is not ax and ax2.get_ylabel() == "fraction_of_optimal (mean)"
    ax3 = pg.sweep(ENV, {}, seeds=2, iterations=4, batch=16, env_kwargs=KW, workers=1, progress=False,
                   eval_every=3).plot()
    assert ax3.get_lines()[0].get_xdata().tolist() == [1.0, 3.0, 4.0]  # not evaluated: left out
    with pytest.raises(ValueError, match="band must be"):
        small_sweep.plot(band="ci")
    plt.close("all")


def _journal_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _no_wall(rows: list[dict[str, Any]]) -> str:
    return repr([{k: v for k, v in r.items() if k not in WALL} for r in rows])


def test_resume_from_a_journal_with_a_torn_last_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args: dict[str, Any] = {"seeds": 3, "iterations": 2, "batch": 32, "env_kwargs": KW, "workers": 1, "progress": False}
    full = pg.sweep(ENV, GRID, **args)
    path = tmp_path / "sweep.jsonl"
    pg.sweep(ENV, GRID, **args, journal=path)
    lines = path.read_bytes().split(b"\n")
    assert len(lines) == 1 + 12 + 1 and lines[-1] == b""
    # a crash after 5 runs, in the middle of writing the 6th
    path.write_bytes(b"\n".join(lines[:6]) + b"\n" + lines[6][: len(lines[6]) // 2])
    ran: list[tuple[int, int]] = []
    train_one = _sweep._train_one

    def counting(plan: Any, config: int, seed: int) -> Any:
        ran.append((config, seed))
        return train_one(plan, config, seed)

    monkeypatch.setattr(_sweep, "_train_one", counting)
    resumed = pg.sweep(ENV, GRID, **args, journal=path)
    assert ran == [(1, 2), (2, 0), (2, 1), (2, 2), (3, 0), (3, 1), (3, 2)]  # the 6th run was torn: run again
    assert _no_wall(resumed.rows) == _no_wall(full.rows)
    lines_after = _journal_lines(path)
    assert len(lines_after) == 13 and {(d["config"], d["seed"]) for d in lines_after[1:]} == {(c, s) for c in range(4) for s in range(3)}
    ran.clear()
    again = pg.sweep(ENV, GRID, **args, journal=path)  # complete: nothing runs
    assert ran == [] and repr(again.rows) == repr(resumed.rows)


def test_a_journal_of_another_sweep_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    args: dict[str, Any] = {"iterations": 1, "batch": 16, "env_kwargs": KW, "workers": 1, "progress": False}
    pg.sweep(ENV, {"lr": [0.1]}, seeds=1, journal=path, **args)
    with pytest.raises(ValueError, match=r"belongs to a different sweep \(its grid differ\)"):
        pg.sweep(ENV, {"lr": [0.2]}, seeds=1, journal=path, **args)
    with pytest.raises(ValueError, match="its seeds differ"):
        pg.sweep(ENV, {"lr": [0.1]}, seeds=2, journal=path, **args)
    other = tmp_path / "other.txt"
    other.write_text('{"a": 1}\n')
    with pytest.raises(ValueError, match="not a pgfast sweep journal"):
        pg.sweep(ENV, {"lr": [0.1]}, seeds=1, journal=other, **args)
    text = path.read_text().splitlines()
    path.write_text("\n".join([text[0], "garbage", text[1]]) + "\n")
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        pg.sweep(ENV, {"lr": [0.1]}, seeds=1, journal=path, **args)
    with pytest.raises(ValueError, match="does not exist"):
        pg.sweep(ENV, {"lr": [0.1]}, seeds=1, journal=tmp_path / "no" / "j.jsonl", **args)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"grid": {"learning_rate": [0.1]}}, ValueError, "unknown grid option 'learning_rate'"),
        ({"grid": {"lr": 0.1}}, TypeError, r"grid\['lr'\] must be a list"),
        ({"grid": {"lr": []}}, ValueError, r"grid\['lr'\] is empty"),
        ({"grid": [("lr", [0.1])]}, TypeError, "grid must be a dict"),
        ({"grid": {"lr": [-1.0]}}, ValueError, "lr must be > 0"),
        ({"grid": {"baseline": ["median"]}}, ValueError, "baseline must be one of none, mean, time, value, exact"),
        ({"grid": {"hidden": ["a,b"]}}, ValueError, "expects comma-separated layer sizes"),
        ({"grid": {"betas": [(0.9, 0.99)]}, "optimizer": "sgd"}, ValueError, "betas applies to optimizer adam"),
        ({"grid": {"lr": [0.1]}, "lr": 0.2}, ValueError, "'lr' is both in the grid and fixed"),
        ({"speed": 3}, ValueError, "unknown option 'speed'"),
        ({"seeds": 0}, ValueError, "seeds must be >= 1"),
        ({"seeds": []}, ValueError, "seeds must not be empty"),
        ({"seeds": "3"}, TypeError, "seeds must be a number of seeds"),
        ({"seeds": [1, 1]}, ValueError, "seeds must be distinct"),
        ({"seeds": [-1]}, ValueError, "seeds must be >= 0"),
        ({"iterations": 0}, ValueError, "iterations must be >= 1"),
        ({"backend": "gpu"}, ValueError, "backend must be 'local' or 'ray'"),
        ({"workers": 0}, ValueError, "workers must be >= 1"),
        ({"runs_per_task": 0}, ValueError, "runs_per_task must be >= 1"),
        ({"runs_per_task": "many"}, ValueError, "runs_per_task must be 'auto' or an int"),
        ({"address": "auto"}, ValueError, 'address applies to backend="ray"'),
        ({"progress": "yes"}, TypeError, "progress must be None, True or False"),
        ({"env": 3}, TypeError, "env must be a gymnasium environment id"),
        ({"batch": 0}, ValueError, "batch must be >= 1"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    args: dict[str, Any] = {"env": ENV, "grid": {}, "seeds": 1, "iterations": 1, "env_kwargs": KW, "workers": 1,
                            "batch": 16, **kwargs}
    with pytest.raises(error, match=message):
        pg.sweep(**args)


def test_import_pgfast_and_a_local_sweep_do_not_import_ray() -> None:
    code = ("import sys, pgfast as pg; assert 'ray' not in sys.modules; "
            "pg.sweep('FrozenLake-v1', {}, seeds=2, iterations=1, batch=8, workers=2, progress=False); "
            "assert 'ray' not in sys.modules and 'pandas' not in sys.modules and 'matplotlib' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_progress_counts_finished_runs(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # the one-line display
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    pg.sweep(ENV, {"lr": [0.1, 0.2]}, seeds=2, iterations=1, batch=8, env_kwargs=KW, workers=2, progress=True)
    err = capsys.readouterr().err
    assert re.findall(r"\] (\d)/4", err) == ["1", "2", "3", "4"]


def test_progress_of_a_resumed_sweep_starts_at_the_journal(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    args: dict[str, Any] = {"seeds": 2, "iterations": 1, "batch": 8, "env_kwargs": KW, "workers": 1,
                            "journal": tmp_path / "j.jsonl"}
    pg.sweep(ENV, {"lr": [0.1, 0.2]}, **args, progress=False)
    lines = (tmp_path / "j.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "j.jsonl").write_text("".join(lines[:2]))  # one run kept
    pg.sweep(ENV, {"lr": [0.1, 0.2]}, **args, progress=True)
    assert re.findall(r"\] (\d)/4", capsys.readouterr().err) == ["2", "3", "4"]


def test_ctrl_c_stops_the_workers_within_seconds() -> None:
    """SIGINT to this process while two workers train long runs: KeyboardInterrupt soon after."""
    timer = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGINT))
    t0 = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            pg.sweep(ENV, {}, seeds=8, iterations=100_000, batch=1024, env_kwargs=KW, workers=2, progress=False)
    finally:
        timer.cancel()
    assert time.perf_counter() - t0 < 1.5 + 5
    res = pg.sweep(ENV, {}, seeds=2, iterations=1, batch=8, env_kwargs=KW, workers=2, progress=False)  # works again
    assert len(res) == 2


# -- the command line -----------------------------------------------------------------------------


def test_cli_sweep_writes_the_table_rows_and_plot(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["sweep", ENV, "--map-name", "4x4", "--grid", "lr=0.1,0.3", "--grid", "hidden=4,4/4", "--set", "policy=mlp",
            "--set", "batch=32", "--seeds", "3", "--iterations", "2", "--workers", "2", "--out", str(tmp_path / "r.csv"),
            "--json", str(tmp_path / "r.json"), "--plot", str(tmp_path / "c.png"), "--journal", str(tmp_path / "j.jsonl")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "4 configs x 3 seeds x 2 iterations" in out and "12 runs in" in out
    table = [line.split() for line in out.splitlines() if re.match(r"^\s*0\.[13]\s+4", line)]
    assert [t[:3] for t in table] == [["0.1", "4", "3"], ["0.1", "4/4", "3"], ["0.3", "4", "3"], ["0.3", "4/4", "3"]]
    res = pg.SweepResult.from_json(tmp_path / "r.json")
    assert res.configs[1] == {"lr": 0.1, "hidden": (4, 4)}
    direct = pg.sweep(ENV, {"lr": [0.1, 0.3], "hidden": [(4,), (4, 4)]}, seeds=3, iterations=2, env_kwargs=KW,
                      workers=1, progress=False, policy="mlp", batch=32)
    assert _no_wall(res.rows) == _no_wall(direct.rows)
    for row, summary in zip(table, direct.summary()):
        assert float(row[3]) == pytest.approx(summary["mean"], rel=1e-4)
    assert (tmp_path / "r.csv").read_text().startswith("config,lr,hidden,seed,iteration")
    assert (tmp_path / "c.png").stat().st_size > 0
    assert main(argv) == 0  # resumed from the complete journal


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--grid", "speed=1,2"], "--grid speed=1,2: unknown option 'speed'"),
        (["--grid", "lr"], "--grid expects KEY=V1,V2"),
        (["--grid", "lr=0.1,fast"], "--grid lr=0.1,fast: lr takes a number, got 'fast'"),
        (["--grid", "batch=1.5"], "batch takes an integer"),
        (["--grid", "baseline=none,median"], "baseline must be one of none, mean, time, value, exact, optimal, got 'median'"),
        (["--grid", "betas=0.9"], "betas takes two numbers such as 0.9/0.99"),
        (["--grid", "lr=0.1", "--grid", "lr=0.2"], "lr given twice"),
        (["--grid", "lr=0.1", "--set", "lr=0.2"], "--grid and --set both give lr"),
        (["--set", "lr=-1"], "lr must be > 0"),
        (["--seeds", "0"], "--seeds must be >= 1"),
        (["--seeds", "three"], "--seeds expects a number of seeds"),
        (["--iterations", "0"], "--iterations must be >= 1"),
        (["--workers", "0"], "--workers must be >= 1"),
        (["--runs-per-task", "x"], "--runs-per-task expects auto or an integer"),
        (["--out", "/nonexistent-pgfast/r.csv"], "--out .*does not exist"),
        (["--address", "auto"], 'address applies to backend="ray"'),
    ],
)
def test_cli_sweep_bad_flags_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert main(["sweep", ENV, "--seeds", "1", "--iterations", "1", "--workers", "1", *argv]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert err.count("\n") == 1 and "Traceback" not in err and err.startswith("pgfast sweep: error: ")


def test_cli_ray_backend_without_ray_is_a_one_line_error(capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert main(["sweep", ENV, "--seeds", "1", "--iterations", "1", "--backend", "ray"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install "pgfast[ray]"' in err
    with pytest.raises(ImportError, match=r'Ray is not installed.*backend="ray"'):
        pg.sweep(ENV, {}, seeds=1, iterations=1, backend="ray")


def test_pgfast_train_and_the_sweep_build_the_same_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = ["train", ENV, "--map-name", "4x4", "--iterations", "3", "--batch", "64", "--eval-every", "1", "--episodes",
            "0", "--seed", "2", "--baseline", "mean", "--optimizer", "sgd", "--lr", "0.5", "--threads", "2",
            "--json", str(tmp_path / "h.json")]
    assert main(argv) == 0
    capsys.readouterr()
    hist = pg.History.load_json(tmp_path / "h.json")
    res = pg.sweep(ENV, {"baseline": ["mean"]}, seeds=[2], iterations=3, batch=64, optimizer="sgd", lr=0.5,
                   env_kwargs=KW, workers=1, progress=False)
    for f in EXACT_FIELDS:
        assert res.column(f).tolist() == hist[f].tolist()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lr", "-1"], "--lr must be > 0, got -1.0"),
        (["--optimizer", "sgd", "--betas", "0.9", "0.9"], "--betas applies to --optimizer adam"),
        (["--hidden", "8"], "--hidden and --activation apply to --policy mlp"),
        (["--policy", "mlp", "--hidden", "8,x"], "--hidden expects comma-separated layer sizes"),
        (["--schedule", "inv_sqrt"], "--schedule applies to --optimizer sgd"),
    ],
)
def test_pgfast_train_keeps_its_flag_names_in_the_builders_errors(capsys: pytest.CaptureFixture[str], argv: list[str],
                                                                  message: str) -> None:
    assert main(["train", ENV, "--iterations", "1", "--episodes", "0", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
