"""Off-policy estimation: per-step log importance ratios and importance weights."""

import numpy as np
from numpy.typing import NDArray

_F64 = NDArray[np.float64]
_I32 = NDArray[np.int32]

def log_ratios(
    target_logp: _F64, beta_logp: _F64 | None, beta_probs: _F64 | None, logged: _F64 | None, states: _I32, actions: _I32,
    rewards: _F64, lengths: _I32,
) -> _F64: ...
def importance_weights(
    rewards: _F64, log_ratio: _F64, lengths: _I32, gamma: float, reward_to_go: bool, per_decision: bool,
    self_normalized: bool,
) -> tuple[_F64, _F64, _F64]: ...
