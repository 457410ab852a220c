r"""Policy gradient ascent: sample, estimate :math:`\nabla J`, step, repeat (see :doc:`/theory`, "Gradient ascent")."""

from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import _checkpoint, exact
from ._checkpoint import Seed
from ._estimators import (
    ValueBaseline,
    check_baseline_fits_weights,
    estimator_regularizer,
    policy_gradient,
    refuse_regularizer,
    soft_batch,
    weights_kind,
)
from ._mdp import FiniteMDP
from ._optimality import fraction_of_optimal
from ._policy import SoftmaxPolicy, TabularSoftmax
from ._policy_params import DirectPolicy
from ._regularizers import Entropy, Regularizer
from ._validation import as_bool, as_float, as_gamma, as_int, as_threads, check_finite_result, require_instance
from .optim import ArmijoLineSearch, NaturalGradient, NaturalPolicyGradient, Optimizer, PolicyMirrorDescent

BASE_FIELDS = ("iteration", "J_estimate", "J_stderr", "J_exact", "grad_norm", "seconds", "steps_per_s")
"""The fields every History record has."""
EXACT_FIELDS = ("J_gap", "fraction_of_optimal", "exact_grad_norm", "step_cosine", "variance_trace",
                "advantage_gap", "min_optimal_prob")
"""The exact columns (NaN when not evaluated; a record without them gets NaN)."""
FIELDS = BASE_FIELDS + EXACT_FIELDS
EXACT_MAX_WORK = 5 * 10**8
"""``exact_eval=None`` records the exact columns when ``H * nnz(P)`` is at most this."""
VARIANCE_MAX_WORK = 2 * 10**5
"""``exact_eval=None`` records ``variance_trace`` when ``H * nnz(P) * n_params`` is at most this too."""
MAX_ITERATIONS = 2**31 - 1
"""Upper bound of :func:`train`'s ``iterations``."""
MAX_BATCH = 2**62
"""Upper bound of :func:`train`'s ``batch`` (also that of ``FiniteMDP.sample``'s ``n``)."""

# The training defaults of `pgfast train` and of the training benchmark (pgfast.benchmarks.training):
# one setting for FrozenLake 4x4 and 8x8 and Taxi, chosen by the sweep that README.md ("Training
# from the command line") records.
DEFAULT_LR = {"adam": 0.2, "sgd": 1.0, "natural": 1.0, "npg": 0.1, "pmd": 10.0}
"""Learning rate per optimizer (``pgfast.optim.Adam``, ``GradientAscent``, ``NaturalGradient``,
``NaturalPolicyGradient``, ``PolicyMirrorDescent``)."""
DEFAULT_ADVANTAGE_GAMMA = 0.99
"""The discount of the closed-form updates' advantages (``npg``, ``pmd``) when the MDP's is 1."""
DEFAULT_LR_MLP = {"adam": 0.01, "sgd": 1.0, "natural": 1.0}
"""Learning rate per optimizer for an ``MLPSoftmax`` (Adam at 0.2 saturates its softmax early)."""
DEFAULT_ADAM_BETAS = (0.9, 0.99)
"""Adam's decay rates: beta2 0.99, not 0.999, so the step scale forgets the first, large gradients sooner."""
DEFAULT_WEIGHTS = "reward_to_go"
"""The estimator's weights (:func:`train`'s ``weights``)."""
DEFAULT_BASELINE = "time"
"""The baseline (:func:`train`'s ``baseline``): the leave-one-out mean reward-to-go per step."""
DEFAULT_BATCH = 4096
"""Episodes per iteration."""
DEFAULT_ITERATIONS = 500
"""Iterations of a run."""
DEFAULT_HIDDEN = (64, 64)
"""Hidden layer sizes of an ``MLPSoftmax``."""
DEFAULT_CHECKPOINT_EVERY = 5.0
"""Seconds of wall time between two checkpoints (:func:`train`'s ``checkpoint_every``)."""


class History:
    """Per-iteration record of :func:`train`: ``iteration``, ``J_estimate`` (mean return of the
    batch) and ``J_stderr``, ``J_exact`` (NaN when not evaluated) — both for the policy that
    sampled the batch, before the iteration's update — ``grad_norm``, ``seconds``
    (wall time of the iteration, without the exact evaluation), ``steps_per_s``, then the exact
    columns ``J_gap``, ``fraction_of_optimal``, ``exact_grad_norm``, ``step_cosine``,
    ``variance_trace``, ``advantage_gap`` and ``min_optimal_prob`` (defined in :func:`train`;
    NaN when not evaluated). ``history["J_exact"]`` is a NumPy array (``KeyError`` for another
    name); ``len(history)`` is the number of iterations.

    Parameters
    ----------
    records : list of dict, optional
        Records with the fields above, each checked and converted as :meth:`append` does
        (values to float, other keys dropped, missing exact columns NaN).
    meta : dict, optional
        What describes the run (:func:`train` stores its seed, batch, iterations, weights,
        baseline and optimizer); saved with the records.

    Raises
    ------
    TypeError
        ``records`` is not a list of dicts, a value is not a number, or ``meta`` is not a dict.
    ValueError
        A record misses a field (the message names the record's index and the fields).

    Attributes
    ----------
    records : list of dict
        One ``{field: value}`` dict per iteration.
    meta : dict
        The run's description.

    Examples
    --------
    >>> P = np.zeros((2, 2, 2))
    >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
    >>> P[1, :, 1] = 1.0
    >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
    ...                    terminal=[False, True])
    >>> hist = pg.train(mdp, pg.TabularSoftmax(2, 2), optimizer=pg.optim.GradientAscent(lr=1.0),
    ...                 iterations=3, batch=100, seed=0, progress=False)
    >>> hist["iteration"], hist["J_exact"].round(4)
    (array([1., 2., 3.]), array([0.875 , 0.9377, 0.9642]))
    >>> hist.to_records().dtype.names[:3]
    ('iteration', 'J_estimate', 'J_stderr')
    >>> hist
    History(3 iterations, J_estimate 0.91 -> 0.97)
    """

    def __init__(self, records: list[dict[str, float]] | None = None, meta: dict[str, Any] | None = None) -> None:
        if records is None:
            records = []
        if isinstance(records, (dict, str, bytes)) or not hasattr(records, "__iter__"):
            raise TypeError(f"records must be a list of dicts of the fields {FIELDS}, got {type(records).__name__}")
        if meta is not None and not isinstance(meta, dict):
            raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
        self.records: list[dict[str, float]] = [_checked_record(r, f"records[{i}]") for i, r in enumerate(records)]
        self.meta: dict[str, Any] = dict(meta or {})

    def append(self, record: dict[str, float]) -> None:
        """Add one iteration's record (its fields, as floats; other keys are dropped).

        Parameters
        ----------
        record : dict
            ``iteration``, ``J_estimate``, ``J_stderr``, ``J_exact``, ``grad_norm``, ``seconds``
            and ``steps_per_s``; optionally the exact columns of :data:`EXACT_FIELDS` (NaN when
            absent).

        Raises
        ------
        TypeError
            ``record`` is not a dict, or a value is not a real number (the message names the
            field).
        ValueError
            A field other than an exact column is missing.

        Examples
        --------
        >>> hist = pg.History(meta={"seed": 0})
        >>> hist.append({"iteration": 1, "J_estimate": 0.25, "J_stderr": 0.01, "J_exact": np.nan,
        ...              "grad_norm": 0.5, "seconds": 0.1, "steps_per_s": 2e5})
        >>> len(hist), hist["J_estimate"]
        (1, array([0.25]))
        >>> hist.append({"iteration": 2, "J_estimate": 0.5})
        Traceback (most recent call last):
        ...
        ValueError: record is missing the field(s) 'J_stderr', 'J_exact', 'grad_norm', 'seconds', 'steps_per_s'
        """
        self.records.append(_checked_record(record, "record"))

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, field: str) -> NDArray[np.float64]:
        if field not in FIELDS:
            raise KeyError(f"unknown field {field!r}; fields are {FIELDS}")
        return np.array([r[field] for r in self.records], dtype=np.float64)

    def to_records(self) -> np.recarray[Any, Any]:
        """A NumPy record array with one row per iteration.

        Returns
        -------
        numpy.recarray
            One float64 column per field, in the order ``iteration``, ``J_estimate``,
            ``J_stderr``, ``J_exact``, ``grad_norm``, ``seconds``, ``steps_per_s``, then the
            exact columns.

        Examples
        --------
        >>> hist = pg.History(meta={"seed": 0})
        >>> hist.append({"iteration": 1, "J_estimate": 0.25, "J_stderr": 0.01, "J_exact": np.nan,
        ...              "grad_norm": 0.5, "seconds": 0.1, "steps_per_s": 2e5})
        >>> rec = hist.to_records()
        >>> rec.J_estimate, rec.dtype.names[:3]
        (array([0.25]), ('iteration', 'J_estimate', 'J_stderr'))
        """
        dtype = np.dtype([(f, np.float64) for f in FIELDS])
        arr = np.zeros(len(self), dtype=dtype)
        for f in FIELDS:
            arr[f] = self[f]
        return arr.view(np.recarray)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict: ``{"meta": {...}, field: [values...]}`` (JSON-safe; NaN becomes None).

        Returns
        -------
        dict
            ``"meta"`` and one list per field.

        Examples
        --------
        >>> hist = pg.History(meta={"seed": 0})
        >>> hist.append({"iteration": 1, "J_estimate": 0.25, "J_stderr": 0.01, "J_exact": np.nan,
        ...              "grad_norm": 0.5, "seconds": 0.1, "steps_per_s": 2e5})
        >>> d = hist.to_dict()
        >>> d["meta"], d["J_estimate"], d["J_exact"]
        ({'seed': 0}, [0.25], [None])
        """
        out: dict[str, Any] = {"meta": self.meta}
        for f in FIELDS:
            out[f] = [None if math.isnan(r[f]) else r[f] for r in self.records]
        return out

    def save_json(self, path: str | Path) -> None:
        """Write :meth:`to_dict` to ``path`` as JSON (read back with :meth:`load_json`).

        Parameters
        ----------
        path : str or pathlib.Path
            The file to write (replaced if it exists).

        Raises
        ------
        OSError
            The file cannot be written.

        Examples
        --------
        >>> hist = pg.History(meta={"seed": 0})
        >>> hist.append({"iteration": 1, "J_estimate": 0.25, "J_stderr": 0.01, "J_exact": np.nan,
        ...              "grad_norm": 0.5, "seconds": 0.1, "steps_per_s": 2e5})
        >>> hist.save_json("run.json")
        >>> pg.History.load_json("run.json").meta
        {'seed': 0}
        """
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load_json(cls, path: str | Path) -> History:
        """Read a History written by :meth:`save_json` (None becomes NaN again; a file without
        the exact columns gets NaN in them).

        Parameters
        ----------
        path : str or pathlib.Path
            The JSON file.

        Returns
        -------
        History

        Raises
        ------
        OSError
            The file cannot be read.
        ValueError
            The file is not JSON text, or not a saved History (a field missing, fields of
            different lengths, or a value that is not a number); the message names the file.

        Examples
        --------
        >>> hist = pg.History(meta={"seed": 0})
        >>> hist.append({"iteration": 1, "J_estimate": 0.25, "J_stderr": 0.01, "J_exact": np.nan,
        ...              "grad_norm": 0.5, "seconds": 0.1, "steps_per_s": 2e5})
        >>> hist.save_json("run.json")
        >>> loaded = pg.History.load_json("run.json")
        >>> len(loaded), loaded["J_estimate"], loaded["J_exact"]
        (1, array([0.25]), array([nan]))
        """
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not a saved History: the file is not JSON text ({exc})") from None
        missing = [f for f in BASE_FIELDS if not isinstance(d, dict) or not isinstance(d.get(f), list)]
        if missing:
            raise ValueError(f"{path}: not a saved History: the field(s) {', '.join(map(repr, missing))} are missing")
        n = len(d["iteration"])
        for f in EXACT_FIELDS:  # absent from the files of older versions
            if f not in d:
                d[f] = [None] * n
            elif not isinstance(d[f], list):
                raise ValueError(f"{path}: not a saved History: its field {f!r} is a {type(d[f]).__name__}, not a list")
        if any(len(d[f]) != n for f in FIELDS):
            raise ValueError(f"{path}: not a saved History: its fields have different lengths")
        meta = d.get("meta", {})
        if not isinstance(meta, dict):
            raise ValueError(f"{path}: not a saved History: its meta is a {type(meta).__name__}, not a dict")
        recs = [{f: (math.nan if d[f][i] is None else d[f][i]) for f in FIELDS} for i in range(n)]
        try:
            return cls(recs, meta)
        except TypeError as exc:  # a value that is not a number
            raise ValueError(f"{path}: not a saved History: {exc}") from None

    def save_csv(self, path: str | Path) -> None:
        """Write the records to ``path`` as CSV: a header of the field names, one row per iteration.

        Parameters
        ----------
        path : str or pathlib.Path
            The file to write (replaced if it exists).

        Raises
        ------
        OSError
            The file cannot be written.

        Examples
        --------
        >>> hist = pg.History(meta={"seed": 0})
        >>> hist.append({"iteration": 1, "J_estimate": 0.25, "J_stderr": 0.01, "J_exact": np.nan,
        ...              "grad_norm": 0.5, "seconds": 0.1, "steps_per_s": 2e5})
        >>> hist.save_csv("run.csv")
        >>> from pathlib import Path
        >>> print(Path("run.csv").read_text(), end="")
        iteration,J_estimate,J_stderr,J_exact,grad_norm,seconds,steps_per_s,J_gap,fraction_of_optimal,exact_grad_norm,step_cosine,variance_trace,advantage_gap,min_optimal_prob
        1.0,0.25,0.01,nan,0.5,0.1,200000.0,nan,nan,nan,nan,nan,nan,nan
        """
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(FIELDS)
            for r in self.records:
                w.writerow([r[f] for f in FIELDS])

    def __repr__(self) -> str:
        n = len(self)
        text = f"{n} iteration" if n == 1 else f"{n} iterations"
        if n:
            first, last = self.records[0]["J_estimate"], self.records[-1]["J_estimate"]
            text += f", J_estimate {first:.4g}" if n == 1 else f", J_estimate {first:.4g} -> {last:.4g}"
        return f"History({text})"


def _checked_record(record: Any, name: str) -> dict[str, float]:
    """A History record: the fields of ``record`` (a dict) as floats, other keys dropped, absent
    exact columns NaN."""
    if not isinstance(record, dict):
        raise TypeError(f"{name} must be a dict of the fields {FIELDS}, got {type(record).__name__}")
    missing = [k for k in BASE_FIELDS if k not in record]
    if missing:
        raise ValueError(f"{name} is missing the field(s) {', '.join(map(repr, missing))}")
    return {k: as_float(record[k], f"{name}[{k!r}]") if k in record else math.nan for k in FIELDS}


def iteration_seed(seed: Seed, it: int) -> int:
    """The sampling seed of iteration ``it`` (counter-based; :func:`train`'s docstring states it)."""
    if isinstance(seed, np.random.SeedSequence):
        ss = np.random.SeedSequence(seed.entropy, spawn_key=(*seed.spawn_key, it), pool_size=seed.pool_size)
    else:
        ss = np.random.SeedSequence([seed, it])
    return int(ss.generate_state(1, dtype=np.uint64)[0])


def _evaluated(it: int, every: int, iters: int) -> bool:
    """Whether iteration ``it`` of a run of ``iters`` records the exact J."""
    return it % every == 0 or it == 1 or it == iters


class _ExactColumns:
    """The exact columns of :func:`train`'s records (definitions in its docstring), with the
    optimal policy of the run's objective computed once."""

    def __init__(self, mdp: FiniteMDP, gamma: float, weights: str, baseline: Any, variance: bool,
                 regularizer: Regularizer | None = None) -> None:
        self.mdp, self.gamma, self.weights, self.variance = mdp, gamma, weights, variance
        self.baseline = None if baseline is None or baseline == "none" or isinstance(baseline, ValueBaseline) else baseline
        self.regularizer = regularizer
        if regularizer is not None:  # the optimum of the entropy-regularised objective; none for the barrier
            self.optimal_J = (exact.soft_optimal(mdp, regularizer.tau, "finite_horizon", gamma=gamma).value
                              if isinstance(regularizer, Entropy) else math.nan)
            return
        best = exact.optimal(mdp, "finite_horizon", gamma=gamma)
        self.optimal_J = float(best.value)
        q0, v0 = best.action_values[0], best.state_values[0]
        # the optimal actions a*(s) at t = 0: every action within a relative 1e-9 of V*_0(s) (ties count together)
        self.optimal_actions = q0 >= v0[:, None] - 1e-9 * np.maximum(1.0, np.abs(v0[:, None]))
        self.live = ~mdp.terminal

    def measure(self, policy: SoftmaxPolicy, table: NDArray[np.float64] | None,
                value_baseline: bool) -> tuple[float, dict[str, float], NDArray[np.float64]]:
        """(J, the exact columns but ``step_cosine``, the exact gradient) of ``policy``; ``table``:
        the fitted ValueBaseline's b_t(s) this iteration uses (None when cross-fitted)."""
        if self.regularizer is not None:
            return self.regularized(policy)
        grad, ev = exact.gradient(self.mdp, policy, "finite_horizon", gamma=self.gamma, return_evaluation=True)
        J = float(ev.value)
        trace = math.nan
        if self.variance and not (value_baseline and table is None):
            trace = exact.moments(self.mdp, policy, weights=self.weights,  # type: ignore[arg-type]
                                  baseline=self.baseline if table is None else table, gamma=self.gamma,
                                  covariance=False).trace
        probs = policy._probs_for(self.mdp)
        on_optimal = (probs * self.optimal_actions).sum(axis=1)[self.live]
        cols = {"J_gap": self.optimal_J - J, "fraction_of_optimal": fraction_of_optimal(J, self.optimal_J),
                "exact_grad_norm": float(np.linalg.norm(grad)), "variance_trace": trace,
                "advantage_gap": float(ev.advantages[0].max()),
                "min_optimal_prob": float(on_optimal.min()) if on_optimal.size else math.nan}
        return J, cols, grad

    def regularized(self, policy: SoftmaxPolicy) -> tuple[float, dict[str, float], NDArray[np.float64]]:
        """:meth:`measure` for the regularised objective: J, the gradient and (entropy bonus) the
        gap to the soft optimum and the soft advantages; the other columns NaN."""
        grad, ev = exact.gradient(self.mdp, policy, "finite_horizon", gamma=self.gamma, return_evaluation=True,
                                  regularizer=self.regularizer)
        J = float(ev.value)
        cols = dict.fromkeys(EXACT_FIELDS, math.nan)
        cols["exact_grad_norm"] = float(np.linalg.norm(grad))
        if isinstance(self.regularizer, Entropy):
            cols.update({"J_gap": self.optimal_J - J, "fraction_of_optimal": fraction_of_optimal(J, self.optimal_J),
                         "advantage_gap": float(ev.advantages[0].max())})
        return J, cols, grad

    @staticmethod
    def cosine(step: NDArray[np.float64], grad: NDArray[np.float64]) -> float:
        """cos(step, grad); NaN when either is zero."""
        den = float(np.linalg.norm(step)) * float(np.linalg.norm(grad))
        return float(np.vdot(step, grad)) / den if den > 0 else math.nan


class _Progress:
    """No progress display; the base of the two displays below."""

    def update(self, it: int, rec: dict[str, float]) -> None:
        """After iteration ``it`` (1, 2, ...) of this run, whose record is ``rec``."""

    def close(self) -> None:
        """At the end of the run (also when it stops on an exception)."""


class _LineProgress(_Progress):
    """The one-line display on stderr, when tqdm is not installed."""

    def __init__(self, total: int, initial: int) -> None:
        self.total, self.initial = total, initial
        self.start = time.perf_counter()

    def update(self, it: int, rec: dict[str, float]) -> None:
        el = time.perf_counter() - self.start
        width = 24
        pos = self.initial + it
        done = int(width * pos / self.total)
        sys.stderr.write(f"\r[{'#' * done}{'.' * (width - done)}] {pos}/{self.total}  J={_shown_J(rec):.4f}  {el:.1f}s ")
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()


class _TqdmProgress(_Progress):
    """A ``tqdm.auto`` bar: a widget in a Jupyter notebook, a text bar on stderr elsewhere."""

    def __init__(self, tqdm: Any, total: int, initial: int, desc: str = "pgfast.train", unit: str = "it") -> None:
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True)

    def update(self, it: int, rec: dict[str, float]) -> None:
        self.bar.set_postfix_str(f"J={_shown_J(rec):.4f}", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _shown_J(rec: dict[str, float]) -> float:
    return rec["J_exact"] if not math.isnan(rec["J_exact"]) else rec["J_estimate"]


def _stderr_is_a_terminal() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):  # a stream without isatty, or a closed one
        return False


def _in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (the test ``tqdm.auto`` makes to choose its widget)."""
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if callable(get_ipython) else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _progress(show: bool | None, total: int, initial: int, desc: str = "pgfast.train", unit: str = "it") -> _Progress:
    """The display of a run: ``show=None`` means on a terminal or in a notebook; with tqdm installed
    a ``tqdm.auto`` bar (named ``desc``, counting ``unit``), else the one-line display."""
    if show is None:
        show = _stderr_is_a_terminal() or _in_notebook()
    if not show:
        return _Progress()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _LineProgress(total, initial)
    return _TqdmProgress(tqdm, total, initial, desc, unit)


def progress_display(show: bool | None, total: int, initial: int, *, desc: str, unit: str) -> _Progress:
    """The display that :func:`train` uses, counting ``total`` units of another loop (the sweeps'
    finished runs) from ``initial``: ``update(k, record)`` after the k-th unit done since then,
    ``close()`` at the end."""
    return _progress(show, total, initial, desc, unit)


CLOSED_FORM = (NaturalPolicyGradient, PolicyMirrorDescent)
"""The optimizers whose step reads advantages, not the gradient: :func:`train` samples and stores
each batch and passes it as ``traj=``."""


def _check_optimizer(optimizer: Optimizer, policy: SoftmaxPolicy, mdp: FiniteMDP, reg: Regularizer | None,
                     gamma: float) -> None:
    """Refuse, before the first iteration, an optimizer :func:`train` cannot drive as given: a
    closed-form update on a policy it does not update, with a discount of 1 or with a regulariser
    other than its own; a line search whose exact J is not the objective the run estimates."""
    kind = type(optimizer).__name__
    if isinstance(optimizer, CLOSED_FORM):
        direct = isinstance(optimizer, PolicyMirrorDescent)
        if not isinstance(policy, (TabularSoftmax, DirectPolicy) if direct else TabularSoftmax):
            raise TypeError(f"{kind} updates a pgfast.TabularSoftmax{' or a pgfast.DirectPolicy' if direct else ''} "
                            f"policy in closed form, got {type(policy).__name__}; train this policy with "
                            "GradientAscent, Adam or NaturalGradient")
        discount = mdp.gamma if optimizer.gamma is None else optimizer.gamma
        if not discount < 1.0:
            raise ValueError(f"{kind} steps with discounted advantages, estimated from each batch with the optimizer's "
                             f"gamma or else the MDP's, which is {discount:g}: construct {kind}(gamma=...) with a "
                             "gamma < 1")
        if reg is not None and not (isinstance(reg, Entropy) and reg.tau == optimizer.tau):
            if isinstance(optimizer, NaturalPolicyGradient) and isinstance(reg, Entropy):
                fix = f"construct NaturalPolicyGradient(tau={reg.tau!r}), whose closed form ascends J_tau"
            elif isinstance(optimizer, NaturalPolicyGradient):
                fix = "its closed forms ascend J or the entropy-regularised J_tau (tau=)"
            else:
                fix = "it has no regularised form; NaturalPolicyGradient(tau=) ascends the entropy-regularised J_tau"
            raise ValueError(f"{kind}(tau={optimizer.tau!r}) steps with its own advantages, not the estimated gradient, "
                             f"so it cannot ascend the objective of regularizer={reg!r}: {fix}")
        if optimizer.tau > 0.0 and optimizer.lr * optimizer.tau > 1.0 - discount:
            raise ValueError(f"{kind} needs lr * tau at most 1 - gamma = {1.0 - discount}, got {optimizer.lr * optimizer.tau}")
        if isinstance(optimizer, PolicyMirrorDescent):
            optimizer.learning_rate(optimizer.t + 1, discount)  # the geometric schedule needs a gamma > 0
    elif isinstance(optimizer, ArmijoLineSearch):
        if reg is not None:
            raise ValueError(f"ArmijoLineSearch checks its sufficient increase on the unregularised exact J, while "
                             f"regularizer={reg!r} makes the run estimate the gradient of the regularised objective: "
                             "train without a regulariser, or with GradientAscent or Adam")
        discount = mdp.gamma if optimizer.gamma is None else optimizer.gamma
        if optimizer.objective != "finite_horizon" or discount != gamma:
            raise ValueError(f"ArmijoLineSearch(objective={optimizer.objective!r}, gamma={optimizer.gamma!r}) checks "
                             f"the increase of another J than the one the run estimates (finite horizon, gamma {gamma:g}): "
                             f"construct ArmijoLineSearch(objective='finite_horizon', gamma={gamma!r})")


def _steps_taken(optimizer: Optimizer) -> int:
    """The optimizer's step count ``t`` (restored by ``load_state_dict`` on a resumed run), or 0."""
    t = getattr(optimizer, "t", 0)
    return int(t) if isinstance(t, (int, np.integer)) and not isinstance(t, bool) and t > 0 else 0


def train(
    mdp: FiniteMDP,
    policy: SoftmaxPolicy,
    *,
    optimizer: Optimizer,
    iterations: int,
    batch: int,
    seed: int | np.random.SeedSequence | None,
    weights: str = "reward_to_go",
    baseline: Any = None,
    gamma: float | None = None,
    eval_every: int = 1,
    exact_eval: bool | None = None,
    threads: int | None = None,
    progress: bool | None = None,
    callback: Callable[[int, dict[str, float]], bool | None] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: float = DEFAULT_CHECKPOINT_EVERY,
    resume: str | os.PathLike[str] | None = None,
    horizon: int | None = None,
    num_envs: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    regularizer: Regularizer | None = None,
    entropy: float | None = None,
) -> History:
    r"""Policy gradient ascent: for each iteration, sample ``batch`` episodes with a seed derived
    from ``(seed, iteration)``, estimate :math:`\nabla J` with :func:`pgfast.policy_gradient`
    (``weights``, ``baseline``; a ``ValueBaseline`` is fitted on each batch and used on the next,
    cross-fitted on the first), and let ``optimizer`` step ``policy.theta`` in place.

    Each iteration uses the fused estimator (no trajectories stored, see
    :func:`pgfast.policy_gradient`), except with a ``ValueBaseline`` (fitted on each batch), the
    natural gradient with a sampled Fisher matrix (which reads the batch's visits) and the
    closed-form updates (which read its advantages): those sample and store the batch. ``exact_eval`` (default: when the MDP is small enough) records the exact
    columns every ``eval_every`` iterations (and at the first and last), for the policy that
    sampled the batch, with the finite-horizon objective and ``gamma`` of the estimator:

    - ``J_exact``: :math:`J`; ``J_gap``: :math:`J^* - J`, with :math:`J^*` of
      :func:`pgfast.exact.optimal` (computed once per run); ``fraction_of_optimal``: :math:`J / J^*`
      (:math:`J^* / J` when :math:`J^* < 0`, NaN when :math:`J^* = 0`);
    - ``exact_grad_norm``: :math:`\|\nabla J\|` (:func:`pgfast.exact.gradient`);
    - ``step_cosine``: the cosine between the step taken (``theta`` after the update minus
      ``theta`` before) and :math:`\nabla J` (NaN for a zero step);
    - ``variance_trace``: :math:`\operatorname{tr}\operatorname{Cov}[\hat g]` of the
      single-trajectory estimator in use (:func:`pgfast.exact.moments` with ``weights`` and the
      deterministic limit of ``baseline``: the leave-one-out batch baselines ``"mean"`` and
      ``"time"`` map to the moments' ``"mean"`` and ``"time"``, which leave out their O(1/N) term;
      a ``ValueBaseline`` to the table it was fitted to on the previous batch, NaN on the first
      iteration, which cross-fits it); the batch mean's variance is ``variance_trace / batch``;
    - ``advantage_gap``: :math:`\max_s \max_a A_0(s, a)`, with :math:`A_0 = Q_0 - V_0` the
      exact advantages of the policy at step 0 (over every state; >= 0, and 0 when the policy is
      greedy in its own :math:`Q_0`);
    - ``min_optimal_prob``: :math:`\min_s \pi(a^*(s)|s)` over the non-terminal states, with
      :math:`a^*(s)` the optimal actions at step 0 (all actions within a relative 1e-9 of
      :math:`V^*_0(s)`; tied actions' probabilities add up).

    The rule for ``exact_eval=None``: every exact column when :math:`H \cdot \text{nnz}(P)` is at
    most ``EXACT_MAX_WORK`` (5e8), and ``variance_trace`` when moreover
    :math:`H \cdot \text{nnz}(P) \cdot n_\text{params}` is at most ``VARIANCE_MAX_WORK`` (2e5; the
    exact variances cost about 250 exact gradients: 1.5 ms for FrozenLake 4x4, 1.2e6); ``True`` records them all, ``False`` none (NaN). Their time is
    not counted in ``seconds``; they do not change the training (the same ``theta`` with them
    or without).
    ``callback(iteration, record)`` may return True to stop early. ``iterations`` is at most
    ``2**31 - 1`` and ``batch`` at most ``2**62``; every argument is checked before the first
    iteration.

    Reproducibility: the same seed gives the same ``theta`` and the same History, bit for bit
    (except the wall-time fields ``seconds`` and ``steps_per_s``), for any ``threads`` (1 to
    ``pgfast.MAX_THREADS`` = 256, more raise ``ValueError``; default: every usable CPU).
    Iteration ``k`` (1, 2, ...) samples with a seed drawn from its own
    ``numpy.random.SeedSequence``, a function of the training seed and ``k`` only (a counter, so
    any iteration's seed is known without running the others, and two training seeds never
    share an iteration's seed the way ``seed + k`` would): for an int ``seed``,
    ``SeedSequence([seed, k])``; for a ``SeedSequence`` ``ss``,
    ``SeedSequence(ss.entropy, spawn_key=ss.spawn_key + (k,), pool_size=ss.pool_size)``
    (``ss.spawn(k + 1)[k]`` of an ``ss`` that has spawned nothing yet; what ``ss`` spawned
    before does not matter). The sampling seed is the first 64-bit word of its
    ``generate_state``.

    Checkpoints: with ``checkpoint=PATH`` the run writes its state to ``PATH`` every
    ``checkpoint_every`` seconds, at its end (also when ``callback`` stops it) and on Ctrl-C: a
    ``KeyboardInterrupt`` writes the state after the last completed iteration (undoing a
    half-done one in ``policy``, ``optimizer`` and ``baseline``) and is raised again. The state is
    ``theta``, the optimizer's full state, a ``ValueBaseline``'s fitted table, the iteration
    reached, the seed, the History so far and a fingerprint of the options. ``resume=PATH``
    restores all of it into ``policy``, ``optimizer`` and ``baseline`` and runs iterations
    ``k + 1`` to ``iterations``: the result equals, bit for bit, that of one uninterrupted run to
    ``iterations`` (wall-time fields aside). The resumed run must be given the same MDP, policy
    class and structure, optimizer class and hyper-parameters, ``batch``, ``weights``,
    ``baseline``, ``gamma``, ``eval_every``, ``exact_eval``, regulariser and seed (``seed=None``
    takes the checkpoint's); ``iterations`` and ``threads`` may differ. ``PATH`` is a NumPy ``.npz``
    archive whatever its name (loaded without pickle; see :doc:`/guide/train`), written to a
    temporary file in the same directory and renamed over the previous checkpoint, so an
    interrupted write leaves the previous one whole. ``resume`` and ``checkpoint`` may be the
    same path.

    Regularised objectives: ``entropy=tau`` (``regularizer=pgfast.Entropy(tau)``) or
    ``regularizer=pgfast.LogBarrier(lam)`` ascends the regularised objective :math:`J_\tau` or
    :math:`J_\lambda`: each iteration's estimate is :func:`pgfast.policy_gradient` with the
    regulariser (``J_estimate`` estimates the regularised objective; a ``ValueBaseline`` is fitted
    to the soft rewards of the entropy bonus). The exact columns ``J_exact``, ``exact_grad_norm``
    and ``step_cosine`` are then those of the regularised objective (:func:`pgfast.exact.gradient`
    with ``regularizer=``); with the entropy bonus ``J_gap`` and ``fraction_of_optimal`` compare
    with the soft optimum :math:`J^*_\tau` of :func:`pgfast.exact.soft_optimal` and
    ``advantage_gap`` is the largest soft advantage at step 0 (0 at the soft optimum), with the
    log-barrier they are NaN; ``min_optimal_prob`` and ``variance_trace`` are NaN. A strength of 0
    is a run without a regulariser, bit for bit. Finite MDPs only.

    Closed-form updates and the line search: :class:`pgfast.optim.NaturalPolicyGradient` and
    :class:`pgfast.optim.PolicyMirrorDescent` step with advantages, not with the gradient: each
    iteration samples and stores its batch and passes it as ``step(policy, grad, traj=batch)``,
    so the step uses the batch's every-visit Monte Carlo advantages, discounted by the
    optimizer's ``gamma`` or, when it has none, the MDP's; that discount must be below 1
    (construct the optimizer with ``gamma=`` for an undiscounted MDP) and is the update's own:
    ``J_estimate`` and the exact columns stay those of the finite-horizon objective with the
    estimator's ``gamma``. They update a ``TabularSoftmax`` (mirror descent also a
    ``DirectPolicy``), and, ignoring the estimated gradient, take no regulariser but their own:
    ``entropy=tau`` goes with ``NaturalPolicyGradient(tau=tau)`` (its regularised closed form)
    and is refused otherwise (another ``tau``, ``PolicyMirrorDescent``, a ``LogBarrier``); a
    ``NaturalPolicyGradient(tau > 0)`` without ``entropy=`` ascends :math:`J_\tau` while the
    History records :math:`J`. :class:`pgfast.optim.ArmijoLineSearch` gets
    ``step(policy, grad, mdp=mdp)``: trial steps along the estimated gradient, accepted on the
    exact J, which therefore never decreases from one iteration to the next; its J must be the
    run's objective (``objective="finite_horizon"`` and the run's ``gamma``) and a regulariser is
    refused. These checks run before the first iteration; the three optimizers need a finite MDP.

    Continuous problems: ``mdp`` may be a :class:`pgfast.LQR` (with a :class:`LinearGaussian`
    policy), a gymnasium environment id or a ``gymnasium.Env`` with a Box observation space (with
    a :class:`LinearGaussian` for Box actions or an :class:`ObservationSoftmax` for Discrete ones).
    The loop, the iteration seeds, the optimizers, ``callback`` and ``progress`` are the same; each
    iteration estimates the gradient from ``batch`` episodes of the LQR's fused estimator
    (``pg.policy_gradient(policy, mdp=lqr, n=batch, seed=s)``; a stored ``lqr.sample`` batch for
    the natural gradient) or of :func:`pgfast.rollout` (the environments are made once per run,
    ``horizon``, ``num_envs`` and ``env_kwargs`` passed to it). The exact columns ``J_exact``,
    ``J_gap`` (to the best stationary gain of :func:`pgfast.exact.optimal`, or to its optimal
    time-varying control when that search does not converge), ``fraction_of_optimal``,
    ``exact_grad_norm`` and ``step_cosine`` of an LQR come from :mod:`pgfast.exact` (``exact_eval``
    defaults to True there; NaN when the oracle fails, and always for gymnasium).
    ``NaturalGradient`` needs ``fisher="sampled"`` there (F from the batch's scores).
    ``checkpoint`` and ``resume`` are for finite MDPs; a Ctrl-C leaves ``policy`` and
    ``optimizer`` as after the last completed iteration. See :doc:`/guide/train`.

    Parameters
    ----------
    mdp : FiniteMDP, LQR, str or gymnasium.Env
        The problem to sample: an MDP, an LQR, or a gymnasium environment (id or instance) with Box
        observations.
    policy : SoftmaxPolicy, LinearGaussian or ObservationSoftmax
        The policy, updated in place.
    optimizer : pgfast.optim.Optimizer
        The ascent rule (``NaturalGradient`` gets ``mdp=`` or the batch as it needs, the
        closed-form updates the batch, ``ArmijoLineSearch`` the MDP).
    iterations : int >= 1
        Number of updates.
    batch : int >= 1
        Episodes per iteration.
    seed : int, numpy.random.SeedSequence or None
        Training seed; iteration ``k`` samples with a seed derived from ``(seed, k)`` as stated
        above (None: fresh entropy from the operating system, an int recorded in
        ``History.meta["seed"]``).
    weights : {"reward_to_go", "return"}
        Estimator weights (default reward-to-go).
    baseline : None, {"mean", "time", "exact", "optimal"} or ValueBaseline
        Estimator baseline. ``"optimal"`` (the per-coordinate optimal baseline, leave-one-out) is
        estimated on a stored batch, like a ``ValueBaseline``; the others run fused.
    gamma : float in [0, 1], optional
        Discount factor (default: the MDP's).
    eval_every : int >= 1
        Record the exact columns every ``eval_every`` iterations (default 1).
    exact_eval : bool, optional
        Whether to record the exact columns (default: by the rule above).
    threads : int, optional
        Worker threads, 1 to ``pgfast.MAX_THREADS`` (default: every usable CPU).
    progress : bool or None
        A progress bar on stderr. ``None`` (default): shown when stderr is a terminal or the code
        runs in a Jupyter notebook, not otherwise (a pipe, a file, a CI log); ``True``: always;
        ``False``: never. With tqdm installed (``pip install pgfast[progress]``) it is a
        ``tqdm.auto`` bar (a widget in a notebook), else a one-line display. It counts the
        optimizer's steps, so a resumed run (an optimizer restored with ``load_state_dict``)
        starts at the step reached, ``optimizer.t``.
    callback : callable, optional
        ``callback(iteration, record)``; returning True stops the run.
    checkpoint : str or os.PathLike, optional
        Where to write checkpoints (its directory must exist).
    checkpoint_every : float >= 0
        Seconds of wall time between two checkpoints, counted from the end of the previous write
        (default 5; 0 writes after every iteration; ``math.inf`` only at the end and on Ctrl-C).
    resume : str or os.PathLike, optional
        A checkpoint to continue from.
    horizon : int, optional
        A gymnasium environment only: the cap on the episodes' length (:func:`pgfast.rollout`).
    num_envs : int, optional
        A gymnasium environment only: copies stepped together (:func:`pgfast.rollout`).
    env_kwargs : dict, optional
        A gymnasium environment id only: keyword arguments for ``gymnasium.make``.
    regularizer : Entropy or LogBarrier, optional
        Train on the regularised objective (a finite MDP only; default: none).
    entropy : float >= 0, optional
        The entropy temperature :math:`\tau`: ``regularizer=pgfast.Entropy(tau)``.

    Returns
    -------
    History
        One record per iteration (from the first one when resuming).

    Raises
    ------
    TypeError
        Arguments of the wrong type, or a policy that a closed-form optimizer does not update.
    ValueError
        Arguments out of range or an optimizer that cannot run as given (a closed-form update
        with a discount of 1 or another regulariser, a line search on another objective; checked
        before the first iteration), or an estimate or step
        beyond the float64 range; with ``resume``, a file that is not a checkpoint, options or a
        seed that differ from the checkpoint's (the message names each), or ``iterations`` below
        the iteration it reached.
    KeyboardInterrupt
        Ctrl-C, after writing the checkpoint when ``checkpoint`` is given.

    Examples
    --------
    >>> mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="4x4", horizon=50)
    >>> pi = pg.TabularSoftmax(16, 4)
    >>> hist = pg.train(mdp, pi, optimizer=pg.optim.Adam(lr=0.2), iterations=30, batch=1000,
    ...                 seed=0, progress=False)
    >>> len(hist), round(float(hist["J_exact"][0]), 4)  # J of the uniform policy first
    (30, 0.0139)
    >>> round(float(hist["J_exact"][-1]), 2), round(pg.exact.optimal(mdp).value, 2)
    (0.51, 0.55)

    The natural policy gradient in closed form, stepping with each batch's sampled advantages:

    >>> npg = pg.optim.NaturalPolicyGradient(lr=0.1, gamma=0.99)
    >>> hist = pg.train(mdp, pg.TabularSoftmax(16, 4), optimizer=npg, iterations=30, batch=1000,
    ...                 seed=0, progress=False)
    >>> round(float(hist["fraction_of_optimal"][-1]), 2)
    0.97
    """
    if not isinstance(mdp, FiniteMDP):
        from . import _train_continuous  # an LQR or a gymnasium environment

        if _train_continuous.accepts(mdp):
            refuse_regularizer(regularizer, entropy, "an LQR or a gymnasium environment")
            return _train_continuous.train(
                mdp, policy, optimizer=optimizer, iterations=iterations, batch=batch, seed=seed, weights=weights,
                baseline=baseline, gamma=gamma, eval_every=eval_every, exact_eval=exact_eval, threads=threads,
                progress=progress, callback=callback, checkpoint=checkpoint, resume=resume, horizon=horizon,
                num_envs=num_envs, env_kwargs=env_kwargs)
        raise TypeError("mdp must be a pgfast.FiniteMDP, a pgfast.LQR, a gymnasium environment id or a gymnasium.Env, "
                        f"got {type(mdp).__name__}")
    given = [k for k, v in (("horizon", horizon), ("num_envs", num_envs), ("env_kwargs", env_kwargs)) if v is not None]
    if given:
        raise ValueError(f"{', '.join(given)} apply to gymnasium environments, not to a FiniteMDP (whose horizon is its own)")
    require_instance(policy, SoftmaxPolicy, "policy", "a pgfast policy")
    require_instance(optimizer, Optimizer, "optimizer", "a pgfast.optim optimizer")
    policy._check_fits(mdp)
    iters = as_int(iterations, "iterations", minimum=1, maximum=MAX_ITERATIONS)
    n = as_int(batch, "batch", minimum=1, maximum=MAX_BATCH)
    every = as_int(eval_every, "eval_every", minimum=1)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable (iteration, record) -> bool | None, or None, got {type(callback).__name__}")
    as_threads(threads)  # checked before the first iteration
    if exact_eval is not None:
        do_exact = do_variance = as_bool(exact_eval, "exact_eval")
    else:
        work = mdp.horizon * max(mdp.nnz, 1)
        do_exact = work <= EXACT_MAX_WORK
        do_variance = do_exact and work * policy.n_params <= VARIANCE_MAX_WORK
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"progress must be None (a bar on a terminal or in a notebook), True or False, got {type(progress).__name__}")
    if not (baseline is None or isinstance(baseline, (str, ValueBaseline))):
        raise TypeError(f"baseline must be None, 'mean', 'time', 'exact', 'optimal' or a pgfast.ValueBaseline, got {type(baseline).__name__}")
    if isinstance(baseline, str) and baseline not in ("none", "mean", "time", "exact", "optimal"):
        raise ValueError(f"baseline must be None, 'mean', 'time', 'exact', 'optimal' or a pgfast.ValueBaseline, got {baseline!r}")
    check_baseline_fits_weights(baseline, weights_kind(weights))
    reg = estimator_regularizer(regularizer, entropy)
    tau = reg.tau if isinstance(reg, Entropy) else 0.0
    gamma_value = as_gamma(gamma, mdp.gamma)
    _check_optimizer(optimizer, policy, mdp, reg, gamma_value)
    value_baseline = baseline if isinstance(baseline, ValueBaseline) else None
    if value_baseline is not None and not value_baseline.fitted and n < 2:
        raise ValueError("batch must be >= 2 with an unfitted ValueBaseline (the first iteration cross-fits it on two halves)")
    ckpt_path = _checkpoint.as_output_path(checkpoint)
    every_s = as_float(checkpoint_every, "checkpoint_every")
    if not every_s >= 0.0:
        raise ValueError(f"checkpoint_every must be a number of seconds >= 0, got {every_s}")
    options: dict[str, Any] = {}
    if ckpt_path is not None or resume is not None:
        options = _checkpoint.fingerprint(mdp, policy, optimizer, batch=n, weights=weights, baseline=baseline,
                                          gamma=gamma_value, exact_eval=do_exact, eval_every=every)
        if reg is not None:  # absent without one: the checkpoints of unregularised runs are unchanged
            options["regularizer"] = repr(reg)
    if resume is None:
        loaded, base_seed = None, _checkpoint.as_train_seed(seed)
    else:
        loaded = _checkpoint.load_to_resume(resume, options=options, seed=seed, iterations=iters, fields=FIELDS)
        base_seed = loaded.seed
    hist = History(meta={"seed": _checkpoint.seed_spec(base_seed), "batch": n, "iterations": iters, "weights": weights,
                         "baseline": baseline if isinstance(baseline, str) or baseline is None else "value",
                         "optimizer": optimizer.state_dict().get("type")})
    if reg is not None:
        hist.meta["regularizer"] = repr(reg)
    start = 0
    if loaded is not None:  # the state and History of the checkpoint's last iteration
        _checkpoint.restore(loaded.state, policy, optimizer, value_baseline)
        start = loaded.state.iteration
        hist.records = [dict(zip(FIELDS, map(float, row), strict=True)) for row in loaded.history.tolist()]
        if start and not _evaluated(start, every, iters):  # a run that ended there evaluated it; this one does not
            hist.records[-1].update(dict.fromkeys(("J_exact", *EXACT_FIELDS), math.nan))
    saver = None
    if ckpt_path is not None:
        saver = _checkpoint.Saver(ckpt_path, every_s, base_seed, options, FIELDS)
    last: _checkpoint.State | None = None  # while an iteration runs: the state after the previous one
    show = None if progress is None else bool(progress)
    if loaded is not None:  # the bar counts from the checkpoint's iteration to `iterations`
        bar = _progress(show, iters, start)
    else:  # an optimizer restored by hand (load_state_dict) continues from the steps it took
        steps = _steps_taken(optimizer)
        bar = _progress(show, steps + iters, steps)
    columns = _ExactColumns(mdp, gamma_value, weights, baseline, do_variance, reg) if do_exact else None
    try:
        for it in range(start + 1, iters + 1):
            if saver is not None:
                last = _checkpoint.capture(it - 1, policy, optimizer, value_baseline)
            t0 = time.perf_counter()
            # the fitted table this iteration's estimate uses (fit below replaces it whole)
            table = value_baseline.values() if value_baseline is not None and value_baseline.fitted else None
            s = iteration_seed(base_seed, it)
            context: dict[str, Any] = {}
            # a stored batch only where per-trajectory data is needed (a ValueBaseline is fitted on
            # it; the optimal baseline, the sampled Fisher matrix and the closed-form updates'
            # advantages read it); otherwise the fused estimator
            stored = (value_baseline is not None) or baseline == "optimal" or isinstance(optimizer, CLOSED_FORM) or (
                isinstance(optimizer, NaturalGradient) and optimizer.fisher == "sampled"
            )
            if stored:
                traj = mdp.sample(policy, n, seed=s, threads=threads)
                est = policy_gradient(policy, traj, weights=weights, baseline=baseline, gamma=gamma, threads=threads,  # type: ignore[arg-type]
                                      stderr=False, regularizer=reg)
                if value_baseline is not None:  # fitted to the rewards of the estimate (soft with an entropy bonus)
                    value_baseline.fit(soft_batch(traj, policy._probs_for(mdp), tau) if tau else traj, gamma)
                context["traj"] = traj
            else:
                est = policy_gradient(policy, mdp=mdp, n=n, seed=s, weights=weights, baseline=baseline,  # type: ignore[arg-type]
                                      gamma=gamma, threads=threads, stderr=False, regularizer=reg)
            if (isinstance(optimizer, NaturalGradient) and optimizer.fisher == "exact") or isinstance(
                    optimizer, ArmijoLineSearch):
                context = {"mdp": mdp}  # the exact Fisher matrix and the line search's J take the MDP, not the batch
            gnorm = float(np.linalg.norm(est.grad))
            check_finite_result(gnorm, "the gradient norm", "the gradient's entries are too large to square")
            j_exact = math.nan  # of the policy that sampled this batch, like J_estimate
            cols = dict.fromkeys(EXACT_FIELDS, math.nan)
            t_exact = 0.0  # the exact evaluation's time, left out of `seconds`
            if columns is not None and _evaluated(it, every, iters):
                te = time.perf_counter()
                j_exact, cols, exact_grad = columns.measure(policy, table, value_baseline is not None)
                before = policy.theta.copy()
                t_exact = time.perf_counter() - te
            optimizer.step(policy, est.grad, **context)
            dt = time.perf_counter() - t0 - t_exact
            if columns is not None and _evaluated(it, every, iters):
                cols["step_cosine"] = columns.cosine(policy.theta - before, exact_grad)
            rec = {"iteration": it, "J_estimate": est.value, "J_stderr": est.value_stderr, "J_exact": j_exact,
                   "grad_norm": gnorm, "seconds": dt, "steps_per_s": est.n_steps / dt if dt > 0 else math.nan, **cols}
            hist.append(rec)
            bar.update(it - start, rec)  # the iteration of this run (the bar began at `start`)
            if callback is not None and callback(it, rec):
                break
            if saver is not None and saver.due():
                saver.save(_checkpoint.capture(it, policy, optimizer, value_baseline), hist.records)
        if saver is not None and saver.saved != len(hist):
            saver.save(_checkpoint.capture(len(hist), policy, optimizer, value_baseline), hist.records)
    except KeyboardInterrupt:
        if saver is not None:  # the checkpoint of the last completed iteration
            if last is not None and last.iteration == len(hist):  # interrupted mid-iteration: undo its changes
                _checkpoint.restore(last, policy, optimizer, value_baseline)
            else:
                last = _checkpoint.capture(len(hist), policy, optimizer, value_baseline)
            saver.save(last, hist.records)
        raise
    finally:
        bar.close()
    return hist
