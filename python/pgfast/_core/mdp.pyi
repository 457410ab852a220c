"""The finite MDP (pgfast.FiniteMDP's C++ side): sparse transitions, CSR over the (s, a) rows."""

import numpy as np
from numpy.typing import NDArray

_F64 = NDArray[np.float64]

class MDP:
    def __init__(
        self,
        *,
        n_states: int,
        n_actions: int,
        indptr: NDArray[np.int64],
        next: NDArray[np.int32],
        prob: _F64,
        reward: _F64,
        terminal: NDArray[np.uint8],
        mu0: _F64,
        horizon: int,
        gamma: float,
    ) -> None: ...
    @property
    def n_states(self) -> int: ...
    @property
    def n_actions(self) -> int: ...
    @property
    def horizon(self) -> int: ...
    @property
    def gamma(self) -> float: ...
    @property
    def nnz(self) -> int: ...
    @property
    def indptr(self) -> NDArray[np.int64]: ...
    @property
    def next(self) -> NDArray[np.int32]: ...
    @property
    def prob(self) -> _F64: ...
    @property
    def reward(self) -> _F64: ...
    @property
    def terminal(self) -> NDArray[np.uint8]: ...
    @property
    def mu0(self) -> _F64: ...
    def expected_reward(self) -> _F64: ...
