"""Property-based tests (Hypothesis) over the public API.

Every call drawn by ``tests/fuzz_strategies.py`` (FiniteMDP from dense arrays and every SciPy
sparse format, malformed CSR included; the three policies with extreme ``theta``; sampling;
hand-built Trajectories and every estimator on them; the fused estimator; every function of
``pgfast.exact``; the optimizers and their state dicts; a tiny ``pgfast.train``), with
mutated dtypes, layouts (Fortran, strided, reversed, read-only), shapes, extreme values and
Python types, must either return finite results of the documented shape or raise ValueError,
TypeError or MemoryError naming one of its arguments. The examples are derandomized (the same
calls on every run, no example database), ``EXAMPLES`` per target; the longer campaign over the
same strategies, with crashes and hangs isolated in subprocesses, is

    python tests/fuzz_campaign.py --calls 100000 --seed 0
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

import fuzz_strategies as fs
import pgfast as pg

EXAMPLES = 150

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


@pytest.mark.parametrize("name", sorted(fs.TARGETS))
@FUZZ
@given(data=st.data())
def test_fuzz_call_succeeds_or_raises_a_named_error(name: str, data: st.DataObject) -> None:
    call = data.draw(fs.calls(name), label="call")
    category, detail = fs.run_call(call)
    assert category in (fs.OK, fs.ERROR), f"{category}: {detail}\n{call!r}"


def test_fuzz_classifier_reports_each_bad_outcome(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checker itself: each kind of bad outcome is reported, a named error and a finite result pass."""
    outcomes = {
        "index": (lambda a: [][1], fs.WRONG_TYPE),
        "runtime": (lambda a: (_ for _ in ()).throw(RuntimeError("x")), fs.WRONG_TYPE),
        "warning": (lambda a: np.log(np.zeros(1)), fs.WRONG_TYPE),
        "named": (lambda a: pg.TabularSoftmax("q", 1), fs.ERROR),
        "anonymous": (lambda a: (_ for _ in ()).throw(ValueError("bad input")), fs.UNNAMED),
        "nan": (lambda a: {"x": (np.array([1.0, np.nan]), (2,))}, fs.NONFINITE),
        "inf": (lambda a: {"x": (float("inf"), ())}, fs.NONFINITE),
        "shape": (lambda a: {"x": (np.zeros(3), (2,))}, fs.BAD_SHAPE),
        "fine": (lambda a: {"x": (np.zeros(2), (2,))}, fs.OK),
    }
    for key, (run, expected) in outcomes.items():
        monkeypatch.setitem(fs.TARGETS, "probe", (lambda: st.nothing(), run, {"n_states", "x"}))
        assert fs.run_call(fs.Call("probe", {}))[0] == expected, key


@pytest.mark.parametrize("per_trajectory", [False, True])
def test_fuzz_reaches_the_score_estimator(per_trajectory: bool) -> None:
    """pg.score is drawn with its (N, H) weights, so the fuzzer reaches its results (the gradient,
    and the per-trajectory rows), not only argument errors."""
    call = find(fs.traj_call(ops=("score",)),
                lambda c: c.args["per_trajectory"] is per_trajectory and fs.run_call(c)[0] == fs.OK,
                settings=settings(FUZZ, max_examples=500, phases=[Phase.generate]))  # found, not shrunk
    assert call.target == "Trajectories" and call.args["op"] == "score"
