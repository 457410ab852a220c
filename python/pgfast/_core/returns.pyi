"""Returns and rewards-to-go of a padded (N, H) batch."""

import numpy as np
from numpy.typing import NDArray

_F64 = NDArray[np.float64]
_I32 = NDArray[np.int32]

def returns(rewards: _F64, lengths: _I32, gamma: float) -> _F64: ...
def reward_to_go(rewards: _F64, lengths: _I32, gamma: float) -> _F64: ...
