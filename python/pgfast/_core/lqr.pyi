"""Sampling an LQR under a linear-Gaussian policy, and the fused estimator on it."""

import numpy as np
from numpy.typing import NDArray

from .estimators import BaselineKind, WeightKind

_F64 = NDArray[np.float64]
_I32 = NDArray[np.int32]
_B = NDArray[np.bool_]

class Problem:
    def __init__(
        self,
        A: _F64,
        B: _F64,
        Q: _F64,
        R: _F64,
        x0: _F64,
        x0_cov: _F64 | None,
        noise_cov: _F64 | None,
        max_state: float,
        horizon: int,
        W: _F64,
        log_std: _F64,
        log_std_min: float,
    ) -> None: ...
    @property
    def start_factor(self) -> _F64 | None: ...
    @property
    def noise_factor(self) -> _F64 | None: ...
    @property
    def sigma(self) -> _F64: ...

def sample(problem: Problem, n: int, seed: int, threads: int) -> tuple[_F64, _F64, _F64, _I32, _B]: ...
def fused_gradient(
    problem: Problem,
    n: int,
    seed: int,
    threads: int,
    weights: WeightKind,
    baseline: BaselineKind,
    gamma: float,
    stderr: bool,
    per_trajectory: bool,
) -> tuple[_F64, _F64, _F64 | None, float, float, int, int]: ...
def fused_worker_bytes(n: int, m: int, horizon: int) -> int: ...
def standard_normals(words: NDArray[np.uint64]) -> _F64: ...
def log_positive(x: float) -> float: ...
