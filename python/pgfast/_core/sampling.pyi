"""Sampling trajectories from an MDP under a policy table, and the random streams it draws from."""

import numpy as np
from numpy.typing import NDArray

from .mdp import MDP

_F64 = NDArray[np.float64]
_I32 = NDArray[np.int32]

def sample(mdp: MDP, probs: _F64, n: int, seed: int, threads: int) -> tuple[_I32, _I32, _F64, _I32, _I32]: ...
def philox2x64(c0: int, c1: int, key: int) -> tuple[int, int]: ...
def stream_words(seed: int, domain: str, item: int, count: int) -> list[int]: ...
def stream_key(seed: int, domain: str) -> int: ...
