"""Exact evaluation, optimal control, Fisher information and natural gradients (pgfast.exact)."""

import enum

import numpy as np
from numpy.typing import NDArray

from .mdp import MDP

_F64 = NDArray[np.float64]

class Objective(enum.Enum):
    FINITE_HORIZON = 0
    DISCOUNTED = 1
    AVERAGE_REWARD = 2
    AVERAGE_VALUE = 3

class Method(enum.Enum):
    AUTO = 0
    DENSE = 1
    SPARSE = 2

class EvaluationSpec:
    def __init__(
        self,
        *,
        objective: Objective,
        gamma: float,
        method: Method,
        tol: float,
        threads: int,
        values: bool,
        gradient: bool,
        fisher: bool,
    ) -> None: ...
    @property
    def objective(self) -> Objective: ...
    @property
    def gamma(self) -> float: ...
    @property
    def method(self) -> Method: ...
    @property
    def tol(self) -> float: ...
    @property
    def threads(self) -> int: ...
    @property
    def values(self) -> bool: ...
    @property
    def gradient(self) -> bool: ...
    @property
    def fisher(self) -> bool: ...

class Evaluation:
    """The tables are views of the result's memory; None when not computed."""

    @property
    def J(self) -> float: ...
    @property
    def V(self) -> _F64 | None: ...
    @property
    def Q(self) -> _F64 | None: ...
    @property
    def A(self) -> _F64 | None: ...
    @property
    def d(self) -> _F64 | None: ...
    @property
    def visitation(self) -> _F64 | None: ...
    @property
    def logit_grad(self) -> _F64 | None: ...
    @property
    def fisher_w(self) -> _F64 | None: ...

class Optimal:
    @property
    def J(self) -> float: ...
    @property
    def V(self) -> _F64: ...
    @property
    def Q(self) -> _F64: ...
    @property
    def actions(self) -> NDArray[np.int32]: ...
    @property
    def iterations(self) -> int: ...

def evaluate(mdp: MDP, probs: _F64, spec: EvaluationSpec) -> Evaluation: ...
def optimal(mdp: MDP, objective: Objective, gamma: float, method: Method, tol: float, threads: int) -> Optimal: ...
def soft_optimal(
    mdp: MDP, finite_horizon: bool, gamma: float, tau: float, tol: float, max_iter: int
) -> tuple[float, _F64, _F64, int, float, bool]: ...
def fisher_tabular(probs: _F64, w: _F64) -> _F64: ...
def fisher_linear(probs: _F64, w: _F64, features: _F64) -> _F64: ...
def solve_fisher(F: _F64, g: _F64, damping: float, rcond: float) -> _F64: ...
def natural_gradient_tabular(probs: _F64, w: _F64, g: _F64, damping: float, rcond: float) -> _F64: ...

class MomentWeights(enum.Enum):
    REWARD_TO_GO = 0
    RETURN = 1

def moments(
    mdp: MDP,
    probs: _F64,
    indptr: NDArray[np.int64],
    index: NDArray[np.int32],
    value: _F64,
    n: int,
    gamma: float,
    weights: MomentWeights,
    baseline: _F64,
    full: bool,
    discounted: bool,
    method: Method,
    tol: float,
    threads: int,
    optimal: bool,
) -> tuple[_F64, _F64, float, float, _F64 | None]: ...
