r"""Importance sampling on batches with vector states (:class:`ContinuousTrajectories`): the
off-policy estimators of :mod:`pgfast._off_policy` between two policies on observations (two
Gaussian policies, or two softmax policies over discrete actions), see :doc:`/theory`,
"Importance sampling".

The per-step log-ratios :math:`\log\pi(u_t|x_t) - \log\beta(u_t|x_t)` of densities (the dynamics
cancel) come from the policies' ``log_prob``; the weights they give are formed by the same C++
kernel as on finite MDPs, and the gradient by the stored estimators of
:mod:`pgfast._continuous_estimators`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._continuous import ContinuousTrajectories
from ._continuous_estimators import check_policy, reduce_rows, step_log_probs, trajectory_rows
from ._estimators import PolicyGradient, gradient_result, weights_kind
from ._off_policy import ratios, weights_from_log_ratios
from ._validation import as_bool, as_float_array, as_gamma, as_int32_array, as_threads


def log_ratios(target: Any, behavior: Any, traj: ContinuousTrajectories) -> NDArray[np.float64]:
    """Per-step log pi(u_t|x_t) - log beta(u_t|x_t), 0 past each end; ``behavior`` is a policy or
    logged log-densities (N, H) (finite on the real steps)."""
    check_policy(target, traj, "target")
    if traj.n == 0:
        raise ValueError("traj holds no trajectories (N = 0); an estimate needs at least one")
    mask = traj.mask
    lt = step_log_probs(target, traj, "target")
    if isinstance(behavior, (np.ndarray, list, tuple)):
        lb = as_float_array(behavior, "behavior")
        if lb.shape != mask.shape:
            raise ValueError(f"behavior must be a policy or logged log-probabilities log beta(u_t|x_t) of shape "
                             f"(N, H) = {mask.shape}, got {lb.shape}")
    else:
        check_policy(behavior, traj, "behavior")
        lb = step_log_probs(behavior, traj, "behavior")
    for name, arr in (("the behavior", lb), ("the target", lt)):
        bad = mask & ~np.isfinite(arr)
        if bad.any():
            i, t = map(int, np.argwhere(bad)[0])
            raise ValueError(f"{name}'s log-probability of the logged action is {arr[i, t]!r} at trajectory {i}, "
                             f"step {t}: the importance ratio is undefined")
    with np.errstate(over="ignore", invalid="ignore"):
        lr = np.where(mask, lt - lb, 0.0)
    if not np.all(np.isfinite(lr)):
        i, t = map(int, np.argwhere(~np.isfinite(lr))[0])
        raise ValueError(f"the log importance ratio overflows float64 at trajectory {i}, step {t}")
    return np.ascontiguousarray(lr)


def importance_weights(target: Any, behavior: Any, traj: ContinuousTrajectories, per_decision: Any) -> NDArray[np.float64]:
    """:func:`pgfast.importance_weights` on a :class:`ContinuousTrajectories` batch."""
    return ratios(log_ratios(target, behavior, traj), per_decision)


def weighted(target: Any, behavior: Any, traj: ContinuousTrajectories, kind: Any, per_decision: Any,
            self_normalized: Any, gamma: Any) -> tuple[NDArray[np.float64], NDArray[np.float64], float]:
    """(weights (N, H), per-trajectory values (N,), ESS) of the importance-sampling estimators."""
    kind = weights_kind(kind)
    g = as_gamma(gamma, traj.gamma)
    lr = log_ratios(target, behavior, traj)
    rewards = np.ascontiguousarray(np.where(traj.mask, traj.rewards, 0.0))
    return weights_from_log_ratios(lr, rewards, as_int32_array(traj.lengths, "lengths", 1), g, kind, per_decision,
                                   self_normalized)


def off_policy_gradient(target: Any, behavior: Any, traj: ContinuousTrajectories, *, weights: Any, per_decision: Any,
                        self_normalized: Any, per_trajectory: Any, gamma: Any, threads: Any) -> PolicyGradient:
    """:func:`pgfast.off_policy_gradient` on a :class:`ContinuousTrajectories` batch."""
    w, value, ess = weighted(target, behavior, traj, weights, per_decision, self_normalized, gamma)
    keep = as_bool(per_trajectory, "per_trajectory")
    rows = trajectory_rows(target, traj, w, as_threads(threads))
    sums, sumsq, rs, rq = reduce_rows(rows, value, True)
    return gradient_result(target, traj.n, sums, sumsq, rs, rq, rows if keep else None, ess, n_steps=traj.n_steps)
