r"""Returns of sampled episodes (see :doc:`/theory`, "REINFORCE and reward-to-go").

The discounted return :math:`G(\tau) = \sum_{t<\text{len}} \gamma^t r_t` and the reward-to-go
:math:`G_t = \sum_{t \le t' < \text{len}} \gamma^{t'-t} r_{t'}` of a padded ``(N, H)`` reward
array, computed in C++ (``returns.hpp``). :meth:`pgfast.Trajectories.returns` and
:meth:`pgfast.Trajectories.reward_to_go` are the public entry points.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from . import _core


def returns(rewards: NDArray[np.float64], lengths: NDArray[np.int32], gamma: float) -> NDArray[np.float64]:
    """Discounted return of each row of ``rewards`` (float64 (N, H), C-contiguous) over its first
    ``lengths[i]`` steps, shape (N,). Arguments as the sampler returns them (checked by the caller)."""
    out: NDArray[np.float64] = _core.returns.returns(rewards, lengths, gamma)
    return out


def reward_to_go(rewards: NDArray[np.float64], lengths: NDArray[np.int32], gamma: float) -> NDArray[np.float64]:
    """Reward-to-go of every step, shape (N, H), computed backwards as ``G_t = r_t + gamma G_{t+1}``;
    0 on padding. Arguments as in :func:`returns`."""
    out: NDArray[np.float64] = _core.returns.reward_to_go(rewards, lengths, gamma)
    return out
