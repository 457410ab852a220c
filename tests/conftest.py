"""Fixtures shared by the test files (the shared helper functions live in helpers.py)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import random_mdp, random_policy

import pgfast as pg


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261124)


@pytest.fixture
def small(rng: np.random.Generator) -> tuple[pg.FiniteMDP, pg.TabularSoftmax, pg.Trajectories]:
    mdp = random_mdp(rng, S=4, A=3, successors=3, n_terminal=1, horizon=5)
    pi = random_policy(rng, mdp)
    return mdp, pi, mdp.sample(pi, 50, seed=0)
