"""A batch of sampled episodes, padded to (N, H)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from . import _core
from ._validation import as_gamma

if TYPE_CHECKING:
    from ._mdp import FiniteMDP

PAD_INDEX = -1
"""Value of ``states`` and ``actions`` at positions past an episode's end (rewards are 0.0)."""


class Trajectories:
    r"""N episodes padded to the horizon H, as produced by :meth:`FiniteMDP.sample`.

    Attributes
    ----------
    states, actions : int32 (N, H)
        :math:`s_t, a_t` for ``t < lengths[i]``; ``-1`` (``pgfast.PAD_INDEX``) afterwards.
    rewards : float64 (N, H)
        :math:`r_t = R(s_t, a_t, s_{t+1})`; ``0.0`` afterwards.
    lengths : int32 (N,)
        Number of steps taken: the episode entered a terminal state at step ``lengths[i] - 1``,
        or reached the horizon (``lengths[i] == H``).
    final_states : int32 (N,)
        The state :math:`s_{\text{len}}` entered by the last step (terminal, or the state at the horizon).
    mdp : FiniteMDP
        The MDP that produced the batch (estimators read gamma and exact values from it).
    seed : int | None
        The seed of the batch, when it was sampled.
    """

    __slots__ = ("mdp", "states", "actions", "rewards", "lengths", "final_states", "seed")

    def __init__(
        self,
        mdp: FiniteMDP,
        states: NDArray[np.int32],
        actions: NDArray[np.int32],
        rewards: NDArray[np.float64],
        lengths: NDArray[np.int32],
        final_states: NDArray[np.int32],
        *,
        seed: int | None = None,
    ) -> None:
        self.mdp = mdp
        self.states = states
        self.actions = actions
        self.rewards = rewards
        self.lengths = lengths
        self.final_states = final_states
        self.seed = seed

    @property
    def n(self) -> int:
        """Number of trajectories N."""
        return int(self.states.shape[0])

    @property
    def horizon(self) -> int:
        """Padded length H."""
        return int(self.states.shape[1])

    def __len__(self) -> int:
        return self.n

    @property
    def terminated(self) -> NDArray[np.bool_]:
        """Whether each episode ended by entering a terminal state (else it hit the horizon)."""
        return self.mdp.terminal[self.final_states]

    @property
    def mask(self) -> NDArray[np.bool_]:
        """(N, H) mask of real steps: ``t < lengths[i]``."""
        return np.arange(self.horizon) < self.lengths[:, None]

    @property
    def n_steps(self) -> int:
        """Total number of simulated steps, sum of lengths."""
        return int(self.lengths.sum(dtype=np.int64))

    def _gamma(self, gamma: Any) -> float:
        return as_gamma(gamma, self.mdp.gamma)

    def returns(self, gamma: float | None = None) -> NDArray[np.float64]:
        r"""Discounted return of each episode, :math:`G(\tau) = \sum_{t<\text{len}} \gamma^t r_t`, shape (N,).

        ``gamma`` defaults to the MDP's.
        """
        return _core.returns(self.rewards, self.lengths, self._gamma(gamma))

    def reward_to_go(self, gamma: float | None = None) -> NDArray[np.float64]:
        r"""Reward-to-go :math:`G_t = \sum_{t \le t' < \text{len}} \gamma^{t'-t} r_{t'}`, shape (N, H).

        Computed backwards as :math:`G_t = r_t + \gamma G_{t+1}` (seed 000, eq. 4.3); 0 on padding.
        """
        return _core.reward_to_go(self.rewards, self.lengths, self._gamma(gamma))

    def __repr__(self) -> str:
        return f"Trajectories(n={self.n}, horizon={self.horizon}, steps={self.n_steps}, seed={self.seed})"
