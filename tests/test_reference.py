"""The NumPy reference sampler the benchmarks time pgfast against: same layout, same law."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import random_mdp, random_policy

from pgfast.benchmarks import reference as _reference


@pytest.mark.parametrize("method", ["joint", "alias", "cdf"])
@pytest.mark.parametrize("n_terminal", [0, 2])
def test_reference_sampler_layout_and_mean_return(rng: np.random.Generator, method: str, n_terminal: int) -> None:
    mdp = random_mdp(rng, S=9, A=3, successors=4, n_terminal=n_terminal, horizon=15, gamma=1.0, transition_rewards=True)
    pi = random_policy(rng, mdp)
    probs = pi.probs()
    states, actions, rewards, lengths, finals = _reference.sample_numpy(mdp, probs, 20000, np.random.default_rng(1), method=method)
    H = mdp.horizon
    assert states.shape == actions.shape == rewards.shape == (20000, H)
    mask = np.arange(H) < lengths[:, None]
    assert (states[~mask] == -1).all() and (actions[~mask] == -1).all() and (rewards[~mask] == 0).all()
    short = lengths < H
    assert mdp.terminal[finals[short]].all()
    # mean return within 4 standard errors of the exact value
    _, _, J = _reference.finite_horizon_values(mdp, probs)
    G = rewards.sum(axis=1)
    assert abs(G.mean() - J) < 4 * G.std(ddof=1) / np.sqrt(G.size)
    # pgfast's sampler on the same MDP agrees within 4 combined standard errors
    G2 = mdp.sample(pi, 20000, seed=2).returns()
    assert abs(G.mean() - G2.mean()) < 4 * np.sqrt(G.var(ddof=1) / G.size + G2.var(ddof=1) / G2.size)


@pytest.mark.parametrize("n_actions", [1, 4, 40])
def test_reference_softmax_is_the_policies_softmax(rng: np.random.Generator, n_actions: int) -> None:
    """The one NumPy softmax of the yardsticks (column loop up to 32 actions, row max beyond) gives pgfast's table."""
    import pgfast as pg

    theta = rng.normal(scale=30.0, size=(50, n_actions))
    probs = _reference.softmax(theta.copy())
    np.testing.assert_allclose(probs, pg.TabularSoftmax(50, n_actions, theta=theta).probs(), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-14)
