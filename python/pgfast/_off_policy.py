r"""Off-policy estimators: importance sampling from a behavior policy's batch (see :doc:`/theory`,
"Importance sampling").

The per-step log-ratios :math:`\log \pi_\theta(a_t|s_t) - \log \beta(a_t|s_t)` (the dynamics cancel)
are formed in C++ (``cpp/include/pgfast/off_policy.hpp``); the weights they give feed the same score
accumulation as the on-policy estimators.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import _core
from ._continuous import ContinuousTrajectories
from ._estimators import (
    PolicyGradient,
    Weights,
    batch_arrays,
    batch_gamma,
    check_traj,
    gradient_result,
    policy_tables,
    score_sums,
    weights_kind,
)
from ._policy import SoftmaxPolicy, pinned
from ._sampling import Trajectories
from ._validation import as_bool, as_float_array, as_threads, check_allocation, check_finite_result


def _log_ratio(target: SoftmaxPolicy, behavior: Any, traj: Trajectories) -> NDArray[np.float64]:
    """Per-step log pi(a_t|s_t) - log beta(a_t|s_t), 0 past the end (C++; it checks the batch's
    indices and beta > 0 on the logged actions, naming the step)."""
    st, ac, rw, ln = batch_arrays(traj)
    target_logp = np.ascontiguousarray(target.log_probs())
    if isinstance(behavior, SoftmaxPolicy):
        behavior = pinned(behavior)  # its log-probabilities and probabilities from one theta
        check_traj(traj, behavior)
        # a probability that underflows to 0 (logits 1e6 apart) has a finite log-prob: the
        # kernel reads the probabilities too
        out = _core.off_policy.log_ratios(target_logp, np.ascontiguousarray(behavior.log_probs()),
                                          np.ascontiguousarray(behavior.probs()), None, st, ac, rw, ln)
    else:
        lb = as_float_array(behavior, "behavior")
        if lb.shape != traj.rewards.shape:
            raise ValueError(
                f"behavior must be a policy or logged log-probabilities log beta(a_t|s_t) of shape (N, H) = "
                f"{traj.rewards.shape}, got {lb.shape}"
            )
        out = _core.off_policy.log_ratios(target_logp, None, None, lb, st, ac, rw, ln)
    return out


def importance_weights(
    target: SoftmaxPolicy, behavior: Any, traj: Trajectories, per_decision: bool = False
) -> NDArray[np.float64]:
    r"""Importance ratios of a batch sampled by ``behavior`` (a policy, or logged log-probabilities
    :math:`\log\beta(a_t|s_t)` of shape (N, H)) for the ``target`` policy (see :doc:`/theory`,
    "Importance sampling").

    The dynamics cancel, so only policy terms are computed, in log space:
    :math:`\rho_i = \exp\sum_{t<\text{len}} [\log\pi(a_t|s_t) - \log\beta(a_t|s_t)]`, shape (N,);
    with ``per_decision=True`` the cumulative ratios :math:`\rho_{i,0:t}`, shape (N, H) (past the
    end: the trajectory's full ratio).

    Parameters
    ----------
    target : SoftmaxPolicy
        The policy to evaluate.
    behavior : SoftmaxPolicy or array_like (N, H)
        The policy that sampled the batch, or its logged log-probabilities.
    traj : Trajectories
        The batch sampled by ``behavior``.
    per_decision : bool
        Return the cumulative ratios per step (default False).

    Returns
    -------
    ndarray of float64, shape (N,) or (N, H)

    Raises
    ------
    TypeError
        Arguments of the wrong type.
    ValueError
        Logged log-probabilities of another shape or not finite, or a ratio beyond the float64
        range (the message names the trajectory and the step).

    Examples
    --------
    >>> mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="4x4", horizon=50)
    >>> behavior = pg.TabularSoftmax(16, 4)
    >>> traj = mdp.sample(behavior, 4000, seed=0)
    >>> target = pg.TabularSoftmax(16, 4, theta=np.tile([0.0, 0.5, 0.5, 0.0], (16, 1)))
    >>> rho = pg.importance_weights(target, behavior, traj)
    >>> rho.shape, round(float(rho.mean()), 4)  # E[rho] = 1
    ((4000,), 1.0012)

    On a :class:`ContinuousTrajectories` batch the ratios are those of the policies' densities
    (see :doc:`/guide/continuous`):

    >>> target, behavior = pg.LinearGaussian(1, 1, W=[[0.5]]), pg.LinearGaussian(1, 1, log_std=0.5)
    >>> batch = pg.ContinuousTrajectories(states=[[[1.0], [0.0]]], actions=[[[0.5], [1.0]]],
    ...                                   rewards=[[1.0, 1.0]], lengths=[2])
    >>> pg.importance_weights(target, behavior, batch, per_decision=True).round(4)
    array([[1.7263, 2.0749]])
    """
    if isinstance(traj, ContinuousTrajectories):  # a batch with vector states
        from . import _continuous_off_policy

        return _continuous_off_policy.importance_weights(target, behavior, traj, per_decision)
    target = pinned(target)
    policy_tables(target, "target")
    check_traj(traj, target)
    return ratios(_log_ratio(target, behavior, traj), per_decision)


def ratios(lr: NDArray[np.float64], per_decision: Any) -> NDArray[np.float64]:
    """exp of the trajectory (or cumulative) sums of the log-ratios ``lr`` (N, H); ValueError
    naming the first ratio beyond the float64 range."""
    log_rho = np.cumsum(lr, axis=1) if as_bool(per_decision, "per_decision") else lr.sum(axis=1)
    # exp overflows past log rho = 709.78: such a ratio is not a float64 (a log-probability of the
    # behavior near -1e300, or policies that far apart); the error names it instead of an inf
    big = ~(log_rho <= _LOG_MAX)
    if big.any():
        where = tuple(int(i) for i in np.argwhere(big)[0])
        at = f"trajectory {where[0]}" + (f", step {where[1]}" if len(where) > 1 else "")
        raise ValueError(
            f"importance weights overflow float64: log rho = {float(log_rho[where]):.6g} > {_LOG_MAX:.6g} on {at}; "
            "the behavior's log-probabilities are too far below the target's"
        )
    out: NDArray[np.float64] = np.exp(log_rho)
    return out


_LOG_MAX = float(np.log(np.finfo(np.float64).max))


def _off_policy(
    target: SoftmaxPolicy, behavior: Any, traj: Trajectories, weights: str, per_decision: bool, self_normalized: bool, gamma: Any
) -> tuple[NDArray[np.float64], NDArray[np.float64], float]:
    policy_tables(target, "target")
    check_traj(traj, target)
    kind = weights_kind(weights)
    g = batch_gamma(gamma, traj.mdp)
    rewards, lengths = traj._rewards_and_lengths()
    return weights_from_log_ratios(_log_ratio(target, behavior, traj), rewards, lengths, g, kind, per_decision,
                                   self_normalized)


def weights_from_log_ratios(
    lr: NDArray[np.float64], rewards: NDArray[np.float64], lengths: NDArray[np.int32], g: float, kind: str,
    per_decision: Any, self_normalized: Any
) -> tuple[NDArray[np.float64], NDArray[np.float64], float]:
    """(weights (N, H), per-trajectory values (N,), ESS) from the per-step log-ratios ``lr``."""
    w, log_rho, value = _core.off_policy.importance_weights(
        rewards, lr, lengths, g, kind == "reward_to_go", as_bool(per_decision, "per_decision"),
        as_bool(self_normalized, "self_normalized"),
    )
    # ESS (sum rho)^2 / sum rho^2 is scale-free: from the ratios over the largest, so that ratios
    # that underflow (log rho of -1000) still give it
    scaled = np.exp(log_rho - log_rho.max())
    ess = float(scaled.sum() ** 2 / (scaled * scaled).sum())
    cause = "importance ratios times rewards exceed the float64 range"
    check_finite_result(w, "the importance weights", cause)
    check_finite_result(value, "the importance-weighted returns", cause)
    return w, value, ess


def off_policy_gradient(
    target: SoftmaxPolicy,
    behavior: Any,
    traj: Trajectories,
    *,
    weights: Weights = "reward_to_go",
    per_decision: bool = True,
    self_normalized: bool = False,
    per_trajectory: bool = False,
    gamma: float | None = None,
    threads: int | None = None,
) -> PolicyGradient:
    r"""Policy gradient of ``target`` from trajectories sampled by ``behavior`` (importance
    ratios of the two policies): :math:`\frac1N\sum_i\sum_t w_{i,t}\nabla\log\pi(a_{i,t}|s_{i,t})` with

    - trajectory weights (``per_decision=False``): :math:`w_{i,t} = \rho_i\,\gamma^t G_{i,t}`
      (reward-to-go) or :math:`\rho_i G_i` (return);
    - per-decision weights: :math:`w_{i,t} = \sum_{t'\ge t}\gamma^{t'} r_{t'}\rho_{0:t'}` (reward-to-go;
      each reward is weighted by the ratio of the actions before it), or, for the return,
      :math:`\rho_{0:t}\sum_{t'<t}\gamma^{t'}r_{t'} + \sum_{t'\ge t}\gamma^{t'}r_{t'}\rho_{0:t'}`.

    ``self_normalized=True`` divides the ratios by their batch mean (per step for per-decision
    weights): consistent, not unbiased. ``behavior`` is a policy or logged log-probabilities
    ``(N, H)``. The result's ``ess`` is :math:`(\sum\rho_i)^2/\sum\rho_i^2`; ``value`` the
    importance-weighted estimate of J. On a :class:`ContinuousTrajectories` batch the policies are
    policies on observations with ``log_prob`` (two Gaussian policies; see :doc:`/guide/continuous`).
    ``threads`` (1 to ``pgfast.MAX_THREADS`` = 256, more
    raise ``ValueError``; default: every usable CPU) changes only the speed and the summation order.
    See :doc:`/theory`, "Importance sampling".

    Parameters
    ----------
    target : SoftmaxPolicy
        The policy whose gradient is estimated.
    behavior : SoftmaxPolicy or array_like (N, H)
        The policy that sampled the batch, or its logged log-probabilities.
    traj : Trajectories
        The batch sampled by ``behavior``.
    weights : {"reward_to_go", "return"}
        Default reward-to-go.
    per_decision : bool
        Per-decision ratios (default True) or whole-trajectory ratios.
    self_normalized : bool
        Divide the ratios by their batch mean (default False).
    per_trajectory : bool
        Keep the per-trajectory gradients.
    gamma : float in [0, 1], optional
        Discount factor (default: the MDP's).
    threads : int, optional
        Worker threads, 1 to ``pgfast.MAX_THREADS`` (default: every usable CPU).

    Returns
    -------
    PolicyGradient
        As :func:`policy_gradient`, with ``ess`` set and ``value`` the importance-weighted J.

    Raises
    ------
    TypeError
        Arguments of the wrong type.
    ValueError
        An unknown ``weights``, logged log-probabilities of another shape, or importance ratios
        or results beyond the float64 range.

    Examples
    --------
    >>> mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="4x4", horizon=50)
    >>> behavior = pg.TabularSoftmax(16, 4)
    >>> traj = mdp.sample(behavior, 4000, seed=0)
    >>> target = pg.TabularSoftmax(16, 4, theta=np.tile([0.0, 0.5, 0.5, 0.0], (16, 1)))
    >>> est = pg.off_policy_gradient(target, behavior, traj)
    >>> est.grad.shape, round(est.ess, 1)
    ((16, 4), 2710.3)
    """
    if isinstance(traj, ContinuousTrajectories):  # a batch with vector states
        from . import _continuous_off_policy

        return _continuous_off_policy.off_policy_gradient(
            target, behavior, traj, weights=weights, per_decision=per_decision, self_normalized=self_normalized,
            per_trajectory=per_trajectory, gamma=gamma, threads=threads)
    target = pinned(target)  # the weights and the tables from one theta
    w, value, ess = _off_policy(target, behavior, traj, weights, per_decision, self_normalized, gamma)
    tables = policy_tables(target, "target")
    per_trajectory = as_bool(per_trajectory, "per_trajectory")
    if per_trajectory:
        check_allocation(8 * traj.n * target.n_params, "per-trajectory gradients", "use per_trajectory=False")
    sums, sumsq, rows, _, _ = score_sums(
        traj, tables, "explicit", w, traj.mdp.gamma, "none", None, per_trajectory, as_threads(threads)
    )
    with np.errstate(over="ignore"):  # an overflow is reported by gradient_result
        vsq = float((value * value).sum())
    return gradient_result(target, traj.n, sums, sumsq, float(value.sum()), vsq, rows, ess,
                   n_steps=traj.n_steps, scale=tables.scale)


@dataclass(frozen=True)
class OffPolicyValue:
    r"""Importance-sampling estimate of J for the target policy: ``value``, ``stderr``, ``ess``.

    Returned by :func:`off_policy_value`, not made by hand (see :doc:`/theory`, "Importance
    sampling").

    Attributes
    ----------
    value : float
        The estimate of :math:`J(\pi)` for the target policy.
    stderr : float
        Its standard error (NaN for one trajectory).
    ess : float
        The effective sample size :math:`(\sum_i\rho_i)^2/\sum_i\rho_i^2` of the importance
        ratios, between 1 and N.

    Examples
    --------
    A batch of the uniform policy evaluates a policy that moves with probability 3/4:

    >>> P = np.zeros((2, 2, 2))
    >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
    >>> P[1, :, 1] = 1.0
    >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
    ...                    terminal=[False, True])
    >>> behavior = pg.TabularSoftmax(2, 2)
    >>> target = pg.TabularSoftmax(2, 2, theta=[[0.0, np.log(3)], [0.0, 0.0]])
    >>> v = pg.off_policy_value(target, behavior, mdp.sample(behavior, 1000, seed=0))
    >>> round(v.value, 3), round(v.stderr, 3), round(v.ess, 1)  # J = 1 - (1/4)**3 = 0.984
    (0.98, 0.017, 780.6)
    """

    value: float
    stderr: float
    ess: float


def off_policy_value(
    target: SoftmaxPolicy,
    behavior: Any,
    traj: Trajectories,
    *,
    per_decision: bool = True,
    self_normalized: bool = False,
    gamma: float | None = None,
) -> OffPolicyValue:
    r"""Importance-sampling estimate of :math:`J(\pi)` from a batch of ``behavior``:
    :math:`\frac1N\sum_i \rho_i G_i`, or per-decision :math:`\frac1N\sum_i\sum_t \gamma^t r_{i,t}\rho_{i,0:t}`
    (``self_normalized`` divides the ratios by their batch mean). See :doc:`/theory`,
    "Importance sampling". On a :class:`ContinuousTrajectories` batch the ratios are those of the
    policies' densities (see :doc:`/guide/continuous`).

    Parameters
    ----------
    target : SoftmaxPolicy
        The policy to evaluate.
    behavior : SoftmaxPolicy or array_like (N, H)
        The policy that sampled the batch, or its logged log-probabilities.
    traj : Trajectories
        The batch sampled by ``behavior``.
    per_decision : bool
        Per-decision ratios (default True) or whole-trajectory ratios.
    self_normalized : bool
        Divide the ratios by their batch mean (default False).
    gamma : float in [0, 1], optional
        Discount factor (default: the MDP's).

    Returns
    -------
    OffPolicyValue
        ``value``, its standard error ``stderr`` (NaN for one trajectory) and the effective
        sample size ``ess``.

    Raises
    ------
    TypeError
        Arguments of the wrong type.
    ValueError
        Logged log-probabilities of another shape, or importance ratios or results beyond the
        float64 range.

    Examples
    --------
    >>> mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="4x4", horizon=50)
    >>> behavior = pg.TabularSoftmax(16, 4)
    >>> traj = mdp.sample(behavior, 4000, seed=0)
    >>> target = pg.TabularSoftmax(16, 4, theta=np.tile([0.0, 0.5, 0.5, 0.0], (16, 1)))
    >>> v = pg.off_policy_value(target, behavior, traj)
    >>> round(v.value, 4), round(v.stderr, 4), round(v.ess, 1)
    (0.0199, 0.0034, 2710.3)
    >>> round(pg.exact.evaluate(mdp, target).J, 4)  # what it estimates
    0.0189
    """
    if isinstance(traj, ContinuousTrajectories):  # a batch with vector states
        from . import _continuous_off_policy

        _, value, ess = _continuous_off_policy.weighted(target, behavior, traj, "return", per_decision,
                                                        self_normalized, gamma)
    else:
        _, value, ess = _off_policy(target, behavior, traj, "return", per_decision, self_normalized, gamma)
    n = traj.n
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below
        se = float(value.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    check_finite_result(value.mean(), "the off-policy value", "importance ratios times rewards exceed the float64 range")
    if n > 1:
        check_finite_result(se, "the off-policy value's standard error", "importance ratios times rewards exceed the float64 range")
    return OffPolicyValue(float(value.mean()), se, ess)
