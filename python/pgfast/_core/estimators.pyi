"""Likelihood-ratio policy gradient estimators (stored batch and fused) and the log-likelihood."""

import enum

import numpy as np
from numpy.typing import NDArray

from .mdp import MDP
from .mlp import MLPForward

_F64 = NDArray[np.float64]
_I32 = NDArray[np.int32]

class WeightKind(enum.Enum):
    RETURN = 0
    REWARD_TO_GO = 1
    EXPLICIT = 2

class BaselineKind(enum.Enum):
    NONE = 0
    TABLE = 1
    LEAVE_ONE_OUT_MEAN = 2
    LEAVE_ONE_OUT_TIME = 3

class EstimatorSpec:
    def __init__(
        self,
        *,
        probs: _F64,
        features: _F64 | None,
        net: MLPForward | None,
        weights: WeightKind,
        explicit_weights: _F64 | None,
        gamma: float,
        baseline: BaselineKind,
        table: _F64 | None,
        threads: int,
    ) -> None: ...
    @property
    def probs(self) -> _F64: ...
    @property
    def features(self) -> _F64 | None: ...
    @property
    def net(self) -> MLPForward | None: ...
    @property
    def weights(self) -> WeightKind: ...
    @property
    def explicit_weights(self) -> _F64 | None: ...
    @property
    def gamma(self) -> float: ...
    @property
    def baseline(self) -> BaselineKind: ...
    @property
    def table(self) -> _F64 | None: ...
    @property
    def threads(self) -> int: ...

def score_batch(
    spec: EstimatorSpec, states: _I32, actions: _I32, rewards: _F64, lengths: _I32, per_trajectory: bool, sumsq: bool = True
) -> tuple[_F64, _F64, _F64 | None, float, float]: ...
def fused_gradient(spec: EstimatorSpec, mdp: MDP, n: int, seed: int, stderr: bool) -> tuple[_F64, _F64, float, float, int]: ...
_Node = tuple[int, int, _F64, _F64, float, float, int]

def estimator_grid(n: int) -> tuple[int, int]: ...
_StatsNode = tuple[int, int, _F64, NDArray[np.int64]]

def fused_partial(
    spec: EstimatorSpec,
    mdp: MDP,
    n: int,
    seed: int,
    stderr: bool,
    block_lo: int,
    block_hi: int,
    statistics: list[_StatsNode] | None = None,
) -> tuple[list[_Node], NDArray[np.uint64] | None, int | None]: ...
def fused_loo_partial(spec: EstimatorSpec, mdp: MDP, n: int, seed: int, block_lo: int, block_hi: int) -> list[_StatsNode]: ...
def merge_partials(
    spec: EstimatorSpec,
    nodes: list[_Node],
    blocks: int,
    stderr: bool,
    tables: list[NDArray[np.uint64]] | None = None,
    exponent: int = 0,
) -> tuple[_F64, _F64, float, float, int]: ...
def log_likelihood(
    mdp: MDP, log_probs: _F64, states: _I32, actions: _I32, lengths: _I32, final_states: _I32, rewards: _F64, dynamics: bool
) -> _F64: ...
