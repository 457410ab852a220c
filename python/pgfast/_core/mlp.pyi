"""Neural (MLP) softmax policies: the network, and its forward pass at one theta."""

import enum

import numpy as np
from numpy.typing import NDArray

_F64 = NDArray[np.float64]
_I32 = NDArray[np.int32]

class Activation(enum.Enum):
    TANH = 0
    RELU = 1

class MLPForward:
    @property
    def logits(self) -> _F64: ...
    def vjp(self, W: _F64) -> _F64: ...
    def scores(self, probs: _F64, states: _I32, actions: _I32) -> _F64: ...
    def weighted_scores(self, probs: _F64, w: _F64) -> _F64: ...

class MLPNet:
    def __init__(self, features: _F64, hidden: list[int], n_actions: int, activation: Activation) -> None: ...
    @property
    def n_params(self) -> int: ...
    @property
    def sizes(self) -> list[int]: ...
    def forward(self, theta: _F64) -> MLPForward: ...
