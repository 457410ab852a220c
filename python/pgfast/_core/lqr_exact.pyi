"""The exact linear-quadratic regulator (pgfast.exact on a pgfast.LQR)."""

import numpy as np
from numpy.typing import NDArray

_F64 = NDArray[np.float64]

def evaluate(
    A: _F64,
    B: _F64,
    Q: _F64,
    R: _F64,
    S0: _F64,
    noise: _F64,
    gamma: float,
    horizon: int,
    W: _F64,
    sigma: _F64,
    tables: bool,
) -> tuple[float, _F64, _F64, _F64 | None, _F64 | None, float]: ...
def optimal(
    A: _F64, B: _F64, Q: _F64, R: _F64, S0: _F64, noise: _F64, gamma: float, horizon: int
) -> tuple[float, _F64, _F64, int, float]: ...
def best_stationary(
    A: _F64,
    B: _F64,
    Q: _F64,
    R: _F64,
    S0: _F64,
    noise: _F64,
    gamma: float,
    horizon: int,
    W_start: _F64,
    sigma: _F64,
    tol: float,
    max_iter: int,
) -> tuple[_F64, float, _F64, _F64, int, bool]: ...
