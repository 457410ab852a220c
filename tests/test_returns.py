"""Returns and reward-to-go of a batch (Trajectories.returns, Trajectories.reward_to_go): hand-computed
on a deterministic cycle, and equal to a NumPy loop on long episodes with terminal states."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import random_mdp, random_policy

import pgfast as pg


def test_returns_and_reward_to_go_hand_computed() -> None:
    P = np.zeros((3, 1, 3))
    P[0, 0, 1] = P[1, 0, 2] = P[2, 0, 0] = 1.0  # deterministic cycle 0 -> 1 -> 2 -> 0
    R = np.array([[1.0], [2.0], [4.0]])
    mdp = pg.FiniteMDP(P, R, [1.0, 0.0, 0.0], horizon=4, gamma=0.5)
    traj = mdp.sample(pg.TabularSoftmax(3, 1), 2, seed=0)
    np.testing.assert_array_equal(traj.rewards, [[1, 2, 4, 1]] * 2)
    # G = 1 + .5*2 + .25*4 + .125*1
    np.testing.assert_allclose(traj.returns(), [3.125, 3.125])
    np.testing.assert_allclose(traj.returns(gamma=1.0), [8.0, 8.0])
    np.testing.assert_allclose(traj.reward_to_go()[0], [3.125, 4.25, 4.5, 1.0])
    np.testing.assert_allclose(traj.reward_to_go(gamma=1.0)[0], [8.0, 7.0, 5.0, 1.0])
    with pytest.raises(ValueError, match="gamma"):
        traj.returns(gamma=1.5)


@pytest.mark.parametrize("gamma", [0.95, 1.0, 0.3, 0.0])
def test_reward_to_go_matches_numpy(rng: np.random.Generator, gamma: float) -> None:
    # H = 67 and terminal states: lengths below 16 (one plain recursion) and many from 16 up, where
    # the C++ recursion is split into interleaved segments (the last one shorter).
    mdp = random_mdp(rng, S=8, A=3, successors=3, n_terminal=1, horizon=67, gamma=gamma)
    traj = mdp.sample(random_policy(rng, mdp), 800, seed=5)
    long = {int(n) for n in traj.lengths if n >= 16}
    assert len(long) >= 5 and len(set(traj.lengths.tolist()) - long) >= 5
    disc = gamma ** np.arange(mdp.horizon)
    expected = np.array([[(traj.rewards[i, t:] * disc[: mdp.horizon - t]).sum() for t in range(mdp.horizon)] for i in range(traj.n)])
    expected[~traj.mask] = 0.0
    np.testing.assert_allclose(traj.reward_to_go(), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(traj.returns(), expected[:, 0], rtol=1e-12, atol=1e-12)
