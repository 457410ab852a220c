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


@pytest.fixture(scope="module")
def ray_local():  # type: ignore[no-untyped-def]
    """A real local Ray instance with 2 CPUs, started once per test module that asks for it.

    The module's tests share it; it is shut down after the module's last test. Tests that use it
    carry the ``ray`` marker (the sanitizer run of .ci/run leaves them out: Ray's workers cannot
    load an instrumented extension). Skips only where Ray is not installed (no wheel for this
    platform).
    """
    ray = pytest.importorskip("ray")
    import os

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        ray.shutdown()
    # address="local": a new instance even where a cluster runs on this machine (ray.init() would
    # join the one `ray start` or a ray.cluster_utils.Cluster recorded in /tmp/ray, and refuse num_cpus)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()
