"""Sampling an LQR under a linear-Gaussian policy with the compiled sampler (``LQR.sample``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from . import _core
from ._continuous import ContinuousTrajectories
from ._gaussian import LOG_STD_MIN, LinearGaussian
from ._validation import as_int, as_seed, as_threads, check_allocation, require_instance

if TYPE_CHECKING:
    from ._lqr import LQR


def check_policy(lqr: LQR, policy: Any) -> LinearGaussian:
    """``policy`` checked to be a LinearGaussian the compiled LQR paths take: identity features,
    ``obs_dim`` the state dimension, ``action_dim`` the action dimension; and the LQR checked to have
    a horizon."""
    require_instance(policy, LinearGaussian, "policy", "a pgfast.LinearGaussian (the compiled LQR sampler's policy)")
    if lqr.horizon is None:
        raise ValueError(
            "sampling an LQR needs a finite horizon, got horizon=None (the infinite discounted problem is "
            "evaluated by pgfast.exact only): use lqr.with_options(horizon=H)"
        )
    if not policy._features.identity:
        raise ValueError(
            f"the compiled LQR sampler needs a LinearGaussian with identity features (u = W x), got "
            f"features={policy.features!r}"
        )
    if (policy.obs_dim, policy.action_dim) != (lqr.state_dim, lqr.action_dim):
        raise ValueError(
            f"the policy's (obs_dim, action_dim) = ({policy.obs_dim}, {policy.action_dim}) do not match the LQR's "
            f"(state_dim, action_dim) = ({lqr.state_dim}, {lqr.action_dim})"
        )
    pi: LinearGaussian = policy
    return pi


def problem(lqr: LQR, policy: LinearGaussian) -> _core.lqr.Problem:
    """The compiled sampler's view of ``lqr`` and ``policy`` (one snapshot of theta)."""
    W, log_std = policy._split()
    return _core.lqr.Problem(
        A=lqr.A, B=lqr.B, Q=lqr.Q, R=lqr.R, x0=lqr.x0, x0_cov=lqr.x0_cov, noise_cov=lqr.noise_cov,
        max_state=lqr.max_state, horizon=int(lqr.horizon or 0), W=np.ascontiguousarray(W),
        log_std=np.ascontiguousarray(log_std), log_std_min=LOG_STD_MIN,
    )


def sample(lqr: LQR, policy: Any, n: Any, seed: Any, threads: Any) -> ContinuousTrajectories:
    pi = check_policy(lqr, policy)
    nn = as_int(n, "n", minimum=1, maximum=2**62)
    key = as_seed(seed)
    nthreads = as_threads(threads)
    H, d, m = int(lqr.horizon or 0), lqr.state_dim, lqr.action_dim
    check_allocation(nn * H * (d + m + 1) * 8 + nn * 5,
                     f"a batch of n = {nn} trajectories of horizon {H} (states, actions, rewards)",
                     "sample fewer trajectories at a time, or use the fused estimator pg.policy_gradient(policy, "
                     "mdp=lqr, n=, seed=)")
    states, actions, rewards, lengths, diverged = _core.lqr.sample(problem(lqr, pi), nn, key, nthreads)
    terminated = np.zeros(nn, dtype=bool)
    return ContinuousTrajectories._trusted([states, actions, rewards, lengths, terminated, diverged], lqr.gamma,
                                           lqr, key)
