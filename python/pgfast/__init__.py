"""pgfast: fast, exact-where-possible policy gradients for finite MDPs.

Python holds the vocabulary (MDPs, policies, trajectories, returns, estimators); the hot loops
live in the compiled ``pgfast._core`` (C++17 + Eigen). The formulas are stated on the theory page
of the documentation (:doc:`/theory`).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    from . import _core
except ImportError as exc:  # pragma: no cover - only on a broken install
    raise ImportError(
        "pgfast's compiled core (pgfast._core) could not be imported. Install pgfast with "
        "'pip install .' from the source tree (a C++17 compiler is needed to build it), or "
        "install a wheel. Original error: " + str(exc)
    ) from exc

from . import distributed, envs, exact, optim, plot
from ._audit import AuditReport, audit
from ._continuous import ContinuousTrajectories
from ._continuous_estimators import LinearValueBaseline
from ._estimators import PolicyGradient, ValueBaseline, log_likelihood, policy_gradient, score
from ._gaussian import LinearGaussian
from ._lqr import LQR
from ._mdp import FiniteMDP
from ._mlp import MLPSoftmax
from ._obs_softmax import ObservationSoftmax
from ._off_policy import OffPolicyValue, importance_weights, off_policy_gradient, off_policy_value
from ._partials import (
    GradientPartial,
    StatisticsPartial,
    block_grid,
    merge_partials,
    partial_gradient,
    partial_statistics,
    shard_ranges,
)
from ._policy import LinearSoftmax, SoftmaxPolicy, TabularSoftmax
from ._regularizers import Entropy, LogBarrier
from ._rollout import rollout
from ._sampling import PAD_INDEX, Trajectories
from ._sweep import SweepResult, build_run, sweep, tune_trainable
from ._train import History, train
from ._validation import MAX_THREADS

try:
    __version__ = version("pgfast")
except PackageNotFoundError:  # pragma: no cover
    __version__ = "0+unknown"

__all__ = [
    "MAX_THREADS",
    "PAD_INDEX",
    "AuditReport",
    "ContinuousTrajectories",
    "Entropy",
    "FiniteMDP",
    "GradientPartial",
    "History",
    "LQR",
    "LinearGaussian",
    "LinearSoftmax",
    "LinearValueBaseline",
    "LogBarrier",
    "MLPSoftmax",
    "ObservationSoftmax",
    "OffPolicyValue",
    "PolicyGradient",
    "SoftmaxPolicy",
    "StatisticsPartial",
    "SweepResult",
    "TabularSoftmax",
    "Trajectories",
    "ValueBaseline",
    "__version__",
    "audit",
    "block_grid",
    "build_info",
    "build_run",
    "distributed",
    "envs",
    "exact",
    "importance_weights",
    "log_likelihood",
    "merge_partials",
    "off_policy_gradient",
    "off_policy_value",
    "optim",
    "partial_gradient",
    "partial_statistics",
    "plot",
    "policy_gradient",
    "rollout",
    "score",
    "shard_ranges",
    "sweep",
    "train",
    "tune_trainable",
]


def build_info() -> dict[str, object]:
    """How the compiled core was built: version, compiler, Eigen version and SIMD, threads.

    Returns
    -------
    dict
        ``version``, ``compiler``, ``eigen``, ``eigen_simd``, ``native``, ``sanitize``,
        ``debug`` and the other build constants of the core, plus ``hardware_threads``.

    Examples
    --------
    >>> info = pg.build_info()
    >>> info["version"] == pg.__version__, sorted(info)[:3]
    (True, ['compiler', 'debug', 'eigen'])
    """
    info = dict(_core.info.build_info())
    info["hardware_threads"] = _core.info.hardware_threads()
    return info


def __dir__() -> list[str]:
    return __all__
