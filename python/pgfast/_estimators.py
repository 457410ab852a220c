r"""Likelihood-ratio policy gradient estimators (see :doc:`/theory`, "The likelihood-ratio gradient",
"REINFORCE and reward-to-go", "Baselines and advantages" and "Importance sampling").

All of them are :math:`\hat g = \frac1N \sum_i \sum_t w_{i,t}\,\nabla_\theta \log\pi_\theta(a_{i,t}|s_{i,t})`
with different weights :math:`w`, accumulated in C++ (``cpp/include/pgfast/estimators.hpp``)
without materialising per-step score vectors: a softmax score is
:math:`\nabla z(s,a) - \sum_{a'} \pi(a'|s) \nabla z(s,a')`, so each trajectory's gradient is
formed from per-state sums of its weights.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, ParamSpec, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core, exact
from ._continuous import ContinuousTrajectories
from ._lqr import LQR
from ._mdp import FiniteMDP
from ._policy import KernelTables, SoftmaxPolicy, pinned
from ._regularizers import (
    Entropy,
    LogBarrier,
    Regularizer,
    as_regularizer,
    barrier_logit_grad,
    barrier_value,
    soft_mdp,
    soft_reward_table,
)
from ._sampling import Trajectories
from ._validation import (
    as_bool,
    as_float,
    as_float_array,
    as_gamma,
    as_int,
    as_int32_array,
    as_seed,
    as_threads,
    check_allocation,
    check_finite_result,
    require_instance,
)

_OVERFLOW = "rewards times the horizon, or the scores, exceed the float64 range"

Weights = Literal["reward_to_go", "return"]


@dataclass(frozen=True)
class PolicyGradient:
    """An estimate of :math:`\\nabla_\\theta J` from ``n`` trajectories.

    ``grad`` and ``stderr`` have the shape of ``theta``; ``stderr`` is the standard error of each
    coordinate, :math:`\\hat\\sigma / \\sqrt N` over the per-trajectory gradients. ``value`` is the
    mean discounted return (an estimate of J; for off-policy estimates the importance-weighted
    value) with its standard error. ``per_trajectory`` is ``(N, n_params)`` when requested.
    ``ess`` is the effective sample size :math:`(\\sum\\rho)^2 / \\sum\\rho^2` of off-policy estimates;
    ``n_steps`` the number of simulated steps behind the estimate. Returned by
    :func:`policy_gradient` and :func:`off_policy_gradient`, not made by hand.

    Attributes
    ----------
    grad : ndarray of float64, shape of ``theta``
        The estimate :math:`\\hat g`, the mean of the per-trajectory gradients.
    stderr : ndarray of float64, shape of ``theta``
        The standard error of each coordinate (NaN for N = 1, or when the estimator was called
        with ``stderr=False``).
    n : int
        Number of trajectories N.
    value : float
        The mean discounted return, an estimate of J (importance-weighted for off-policy
        estimates; of the regularised objective when :func:`policy_gradient` is given one).
    value_stderr : float
        The standard error of ``value`` (NaN for N = 1).
    per_trajectory : ndarray of float64 (N, n_params) or None
        The per-trajectory gradients, when requested with ``per_trajectory=True``.
    ess : float or None
        The effective sample size of the importance ratios (off-policy estimates only).
    n_steps : int
        Number of simulated steps behind the estimate.

    Examples
    --------
    >>> P = np.zeros((2, 2, 2))
    >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
    >>> P[1, :, 1] = 1.0
    >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
    ...                    terminal=[False, True])
    >>> pi = pg.TabularSoftmax(2, 2)
    >>> est = pg.policy_gradient(pi, mdp.sample(pi, 1000, seed=0), per_trajectory=True)
    >>> est.grad.round(3)  # the exact gradient is [[-0.1875, 0.1875], [0, 0]]
    array([[-0.179,  0.179],
           [ 0.   ,  0.   ]])
    >>> est.stderr.round(3)
    array([[0.011, 0.011],
           [0.   , 0.   ]])
    >>> est.n, est.n_steps, round(est.value, 3), est.ess, est.per_trajectory.shape
    (1000, 1758, 0.884, None, (1000, 4))
    """

    grad: NDArray[np.float64]
    stderr: NDArray[np.float64]
    n: int
    value: float
    value_stderr: float
    per_trajectory: NDArray[np.float64] | None = None
    ess: float | None = None
    n_steps: int = 0


def policy_tables(policy: Any, name: str = "policy") -> KernelTables:
    """The tables the C++ estimators take of ``policy`` (TypeError unless it is a pgfast policy;
    each policy class describes its own tables)."""
    require_instance(policy, SoftmaxPolicy, name, "a pgfast policy (e.g. pgfast.TabularSoftmax)")
    tables: KernelTables = policy._kernel_tables()
    return tables


def check_traj(traj: Any, policy: SoftmaxPolicy) -> None:
    if not isinstance(traj, Trajectories):
        raise TypeError(f"traj must be a pgfast.Trajectories batch, got {type(traj).__name__}")
    mdp = traj.mdp
    if (mdp.n_states, mdp.n_actions) != (policy.n_states, policy.n_actions):
        raise ValueError(
            f"the policy is sized for (n_states, n_actions) = ({policy.n_states}, {policy.n_actions}) "
            f"but the batch comes from an MDP with ({mdp.n_states}, {mdp.n_actions})"
        )
    if traj.n == 0:
        raise ValueError("traj holds no trajectories (N = 0); an estimate needs at least one")
    # indices are checked in C++ by score_batch; NumPy-indexed paths call _check_indices first


def _check_indices(traj: Trajectories, n_states: int, n_actions: int) -> None:
    """ValueError unless lengths are in [0, H] and states / actions are in range on real steps."""
    N, H = traj.rewards.shape
    if traj.states.shape != (N, H) or traj.actions.shape != (N, H) or np.shape(traj.lengths) != (N,):
        raise ValueError(f"states, actions and rewards must have one shape (N, H) and lengths (N,), got "
                         f"{traj.states.shape}, {traj.actions.shape}, {traj.rewards.shape} and {np.shape(traj.lengths)}")
    ln = np.asarray(traj.lengths)
    if ln.size and (ln.min() < 0 or ln.max() > H):
        i = int(np.argmax((ln < 0) | (ln > H)))
        raise ValueError(f"lengths[{i}] = {ln[i]} is out of range [0, H = {H}]")
    mask = traj.mask
    for name, arr, upper in (("states", traj.states, n_states), ("actions", traj.actions, n_actions)):
        bad = mask & ((arr < 0) | (arr >= upper))
        if bad.any():
            i, t = map(int, np.argwhere(bad)[0])
            raise ValueError(f"{name}[{i}, {t}] = {arr[i, t]} is out of range [0, {upper}) (trajectory {i}, step {t})")


def batch_arrays(traj: Trajectories) -> tuple[NDArray[np.int32], NDArray[np.int32], NDArray[np.float64], NDArray[np.int32]]:
    # a batch is immutable and holds C-contiguous int32 / float64 arrays (checked when made): they
    # are passed as they are; anything else (a batch restored from a foreign pickle) is converted
    # with the checks
    st, ac, rw, ln = traj.states, traj.actions, traj.rewards, traj.lengths
    if (st.dtype == ac.dtype == ln.dtype == np.int32 and rw.dtype == np.float64
            and st.flags.c_contiguous and ac.flags.c_contiguous and rw.flags.c_contiguous and ln.flags.c_contiguous):
        return st, ac, rw, ln
    rewards, lengths = traj._rewards_and_lengths()
    return as_int32_array(st, "states", 2), as_int32_array(ac, "actions", 2), rewards, lengths


def batch_gamma(gamma: Any, mdp: FiniteMDP) -> float:
    return as_gamma(gamma, mdp.gamma)


# The C++ kinds of the weights and baselines that the estimators' strings name.
_WEIGHT_KINDS = {
    "reward_to_go": _core.estimators.WeightKind.REWARD_TO_GO,
    "return": _core.estimators.WeightKind.RETURN,
    "explicit": _core.estimators.WeightKind.EXPLICIT,  # weights passed in (pg.score, off-policy)
}
_BASELINE_KINDS = {
    "none": _core.estimators.BaselineKind.NONE,
    "table": _core.estimators.BaselineKind.TABLE,  # V_t(s): "exact" or a fitted ValueBaseline
    "mean": _core.estimators.BaselineKind.LEAVE_ONE_OUT_MEAN,
    "time": _core.estimators.BaselineKind.LEAVE_ONE_OUT_TIME,
}


def estimator_spec(
    tables: KernelTables,
    kind: str,
    explicit: NDArray[np.float64] | None,
    gamma: float,
    baseline: str,
    table: NDArray[np.float64] | None,
    threads: int,
) -> _core.estimators.EstimatorSpec:
    return _core.estimators.EstimatorSpec(
        probs=tables.probs, features=tables.features, net=tables.net, weights=_WEIGHT_KINDS[kind],
        explicit_weights=explicit, gamma=gamma, baseline=_BASELINE_KINDS[baseline], table=table, threads=threads,
    )


def weights_kind(weights: Any) -> str:
    if not isinstance(weights, str):  # not `in`: an array would compare elementwise
        raise ValueError(f"weights must be 'reward_to_go' or 'return', got a {type(weights).__name__}")
    if weights not in ("reward_to_go", "return"):
        raise ValueError(f"weights must be 'reward_to_go' or 'return', got {weights!r}")
    return str(weights)


def gradient_result(
    policy: SoftmaxPolicy,
    n: int,
    sums: NDArray[np.float64],
    sumsq: NDArray[np.float64],
    rs: float,
    rq: float,
    rows: NDArray[np.float64] | None = None,
    ess: float | None = None,
    n_steps: int = 0,
    with_stderr: bool = True,
    scale: NDArray[np.float64] | None = None,
) -> PolicyGradient:
    if scale is not None:
        sums, sumsq, rows = to_theta(scale, sums, sumsq, rows)
    mean = sums / n
    if n > 1:
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below
            if with_stderr:
                se = np.sqrt(np.maximum(sumsq - n * mean * mean, 0.0) / (n - 1) / n)
            else:
                se = np.full_like(mean, np.nan)
            rmean = np.float64(rs) / n
            vvar = max(float(rq - n * rmean * rmean), 0.0) / (n - 1)
            vse = float(np.sqrt(vvar / n))
    else:
        se = np.full_like(mean, np.nan)
        vse = float("nan")
    check_finite_result(mean, "the policy gradient", _OVERFLOW)
    check_finite_result(rs / n, "the estimated value J", _OVERFLOW)
    if n > 1:
        if with_stderr:
            check_finite_result(se, "the policy gradient's standard error", _OVERFLOW)
        check_finite_result(vse, "the value's standard error", _OVERFLOW)
    shape = policy.theta.shape
    return PolicyGradient(mean.reshape(shape), se.reshape(shape), n, rs / n, vse, rows, ess, n_steps)


def to_theta(
    scale: NDArray[np.float64], sums: NDArray[np.float64], sumsq: NDArray[np.float64], rows: NDArray[np.float64] | None
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64] | None]:
    """The kernels' sums of per-trajectory logit gradients, of their squares and the rows (N,
    S A), mapped to theta by a policy's elementwise dz/dtheta (``KernelTables.scale``): times
    ``scale``, ``scale**2`` and ``scale``. Applied once to the totals, so that sums merged from
    shards stay the same bits."""
    c = scale.ravel()
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported by gradient_result
        return sums * c, sumsq * (c * c), None if rows is None else rows * c


class ValueBaseline:
    r"""A fitted state-value baseline :math:`b_t(s) \approx V_t(s)` (see :doc:`/theory`, "Baselines and advantages").

    Fitted by least squares to the reward-to-go :math:`G_{i,t}` of a batch:

    - tabular (``features=None``): :math:`b_t(s)` is the mean reward-to-go of the visits to
      ``s`` at step ``t`` (the least-squares fit of one value per (t, s)); unvisited (t, s) take
      the mean over all states at ``t``, or 0;
    - linear: :math:`b_t(s) = \psi(s)^\top w + c_t` with state features ``features`` (S, d), a
      shared weight vector and one intercept per step, ``ridge`` added to the normal equations.

    A baseline fitted on earlier batches keeps the current estimate unbiased. One that is not
    fitted yet is *cross-fitted* by :func:`policy_gradient`: each half of the batch is weighted
    with a baseline fitted on the other half (the object itself is left unchanged).

    :meth:`fit` replaces the table whole (it is read-only, never changed in place): calls using
    the baseline in other threads meanwhile get the old or the new table.

    Parameters
    ----------
    n_states : int >= 1
        Number of states S of the MDP.
    horizon : int >= 1
        Horizon H of the batches it is fitted to.
    features : array_like (S, d), optional
        State features :math:`\psi(s)` for the linear fit (default: tabular).
    ridge : float >= 0
        Ridge added to the normal equations of the linear fit (default 1e-8).

    Raises
    ------
    ValueError
        Sizes below 1, features of another shape or not finite, a negative ``ridge``.
    MemoryError
        A table larger than memory (the message states the bytes requested).

    Attributes
    ----------
    n_states : int
        Number of states S.
    horizon : int
        Horizon H of the table.
    features : ndarray of float64 (S, d) or None
        The state features of the linear fit (None: tabular).
    ridge : float
        The ridge of the linear fit.

    Examples
    --------
    Fit on one batch, use on the next (the estimate stays unbiased):

    >>> mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="4x4", horizon=50)
    >>> pi = pg.TabularSoftmax(16, 4)
    >>> traj = mdp.sample(pi, 4000, seed=0)
    >>> baseline = pg.ValueBaseline(16, 50).fit(traj)
    >>> baseline
    ValueBaseline(n_states=16, horizon=50, features=None, fitted=True)
    >>> baseline.values().shape
    (50, 16)
    >>> pg.ValueBaseline(16, 50, features=np.ones((16, 3)))  # a linear fit, not fitted yet
    ValueBaseline(n_states=16, horizon=50, features=(16, 3), ridge=1e-08, fitted=False)
    >>> est = pg.policy_gradient(pi, mdp.sample(pi, 4000, seed=1), baseline=baseline)
    >>> est.grad.shape
    (16, 4)
    """

    def __init__(self, n_states: int, horizon: int, features: ArrayLike | None = None, ridge: float = 1e-8) -> None:
        self.n_states = as_int(n_states, "n_states", minimum=1, maximum=2**31 - 1)
        self.horizon = as_int(horizon, "horizon", minimum=1, maximum=2**31 - 1)
        # the (H, S) table and the per-(t, s) sums and counts of a fit
        check_allocation(24 * self.horizon * self.n_states,
                         f"a ValueBaseline table (horizon, n_states) = ({self.horizon}, {self.n_states})",
                         "use a shorter horizon or fewer states")
        self.ridge = as_float(ridge, "ridge")
        if not (self.ridge >= 0.0 and np.isfinite(self.ridge)):
            raise ValueError(f"ridge must be a finite number >= 0, got {self.ridge}")
        self.features: NDArray[np.float64] | None = None
        if features is not None:
            f = as_float_array(features, "features", ndim=2)
            if f.shape[0] != self.n_states:
                raise ValueError(f"features must have shape (n_states, d) = ({self.n_states}, d), got {f.shape}")
            if not np.all(np.isfinite(f)):
                raise ValueError("features contains NaN or infinite values")
            self.features = f
        self._table: NDArray[np.float64] | None = None

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` has been called (an unfitted baseline is cross-fitted by the estimators)."""
        return self._table is not None

    def __repr__(self) -> str:
        kind = "features=None" if self.features is None else f"features={self.features.shape}, ridge={self.ridge:g}"
        return f"ValueBaseline(n_states={self.n_states}, horizon={self.horizon}, {kind}, fitted={self.fitted})"

    def values(self) -> NDArray[np.float64]:
        r"""The fitted table :math:`b_t(s)`, shape (H, S), read-only.

        Returns
        -------
        ndarray of float64, shape (H, S)
            Row ``t`` holds :math:`b_t(s)` for every state.

        Raises
        ------
        ValueError
            The baseline is not fitted yet.

        Examples
        --------
        >>> P = np.zeros((2, 2, 2))
        >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
        >>> P[1, :, 1] = 1.0
        >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
        ...                    terminal=[False, True])
        >>> baseline = pg.ValueBaseline(2, 3)
        >>> baseline.fitted
        False
        >>> table = baseline.fit(mdp.sample(pg.TabularSoftmax(2, 2), 1000, seed=0)).values()
        >>> table[:, 0].round(3)  # V_t(0) = 0.875, 0.75, 0.5 exactly
        array([0.884, 0.773, 0.528])
        >>> table.flags.writeable
        False
        """
        if self._table is None:
            raise ValueError("the ValueBaseline is not fitted yet: call .fit(traj) first")
        return self._table

    def fit(self, traj: Trajectories, gamma: float | None = None) -> ValueBaseline:
        r"""Fit to the reward-to-go :math:`G_{i,t}` of ``traj``; returns self.

        The new table replaces the previous fit whole (see the class description for the tabular
        and the linear fit).

        Parameters
        ----------
        traj : Trajectories
            A batch of the baseline's number of states and horizon.
        gamma : float in [0, 1], optional
            Discount factor of the reward-to-go (default: the MDP's).

        Returns
        -------
        ValueBaseline
            ``self``, fitted (so that ``ValueBaseline(S, H).fit(traj)`` reads as one expression).

        Raises
        ------
        TypeError
            ``traj`` is not a :class:`Trajectories` batch.
        ValueError
            A batch whose MDP size or horizon differ from the baseline's, states or actions out of
            range, a ``gamma`` outside [0, 1], or a singular linear fit with ``ridge=0``.

        Examples
        --------
        >>> P = np.zeros((2, 2, 2))
        >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
        >>> P[1, :, 1] = 1.0
        >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
        ...                    terminal=[False, True])
        >>> traj = mdp.sample(pg.TabularSoftmax(2, 2), 1000, seed=0)
        >>> baseline = pg.ValueBaseline(2, 3)
        >>> baseline.fit(traj) is baseline, baseline.fitted
        (True, True)
        >>> baseline.fit(traj, gamma=0.5).values()[:, 0].round(3)  # exactly 0.656, 0.625, 0.5
        array([0.654, 0.646, 0.528])
        """
        if not isinstance(traj, Trajectories):
            raise TypeError(f"traj must be a pgfast.Trajectories batch, got {type(traj).__name__}")
        if traj.mdp.n_states != self.n_states or traj.horizon != self.horizon:
            raise ValueError(
                f"the baseline is for (n_states, horizon) = ({self.n_states}, {self.horizon}), "
                f"the batch has ({traj.mdp.n_states}, {traj.horizon})"
            )
        _check_indices(traj, traj.mdp.n_states, traj.mdp.n_actions)
        table = self._fit_table(traj, batch_gamma(gamma, traj.mdp))
        table.setflags(write=False)  # replaced by the next fit, never changed in place
        self._table = table
        return self

    def _fit_table(self, traj: Trajectories, gamma: float) -> NDArray[np.float64]:
        H, S = self.horizon, self.n_states
        G = traj.reward_to_go(gamma)
        mask = traj.mask
        t_idx = np.broadcast_to(np.arange(H), mask.shape)[mask]
        s_idx = traj.states[mask].astype(np.int64)
        g = G[mask]
        cnt_t = np.bincount(t_idx, minlength=H).astype(np.float64)
        mean_t = np.divide(np.bincount(t_idx, weights=g, minlength=H), cnt_t, out=np.zeros(H), where=cnt_t > 0)
        if self.features is None:
            key = t_idx * S + s_idx
            cnt = np.bincount(key, minlength=H * S).astype(np.float64)
            tot = np.bincount(key, weights=g, minlength=H * S)
            table = np.where(cnt > 0, tot / np.maximum(cnt, 1.0), np.repeat(mean_t, S))
            check_finite_result(table, "the ValueBaseline fit", "rewards-to-go too large")
            return table.reshape(H, S)
        # Columns whose largest |feature| is above 2**255 or below 2**-255 are scaled by a power of
        # two (exact) so that sums and X^T X neither overflow nor underflow; the fit is the same
        # (ridge in the original units, capped at 1e300 where that overflows).
        feats = self.features
        big = np.abs(feats).max(axis=0) if feats.size else np.zeros(feats.shape[1])
        extreme = (big > 2.0**255) | ((big > 0) & (big < 2.0**-255))
        col = np.where(extreme, np.ldexp(1.0, -np.frexp(big)[1]), 1.0)
        scaled = bool((col != 1.0).any())
        if scaled:
            feats = feats * col
        psi = feats[s_idx]
        d = psi.shape[1]
        # demean within each step t (absorbs the intercepts c_t), then ridge least squares for w
        psi_mean = np.zeros((H, d))
        for j in range(d):
            psi_mean[:, j] = np.divide(
                np.bincount(t_idx, weights=psi[:, j], minlength=H), cnt_t, out=np.zeros(H), where=cnt_t > 0
            )
        X = psi - psi_mean[t_idx]
        y = g - mean_t[t_idx]
        try:
            with np.errstate(over="ignore"):
                reg = self.ridge * np.eye(d) if not scaled else np.diag(np.minimum(self.ridge * col * col, 1e300))
            w = np.linalg.solve(X.T @ X + reg, X.T @ y)
        except np.linalg.LinAlgError:
            raise ValueError(
                "the ValueBaseline's least-squares system is singular (features collinear on the visited "
                "states); pass ridge > 0"
            ) from None
        c = mean_t - psi_mean @ w
        table = np.ascontiguousarray(c[:, None] + (feats @ w)[None, :])
        check_finite_result(table, "the ValueBaseline fit", "rewards-to-go or features too large")
        return table


def _split(traj: Trajectories, idx: NDArray[np.int64]) -> Trajectories:
    return Trajectories._trusted(
        traj.mdp,
        traj.states[idx],
        traj.actions[idx],
        traj.rewards[idx],
        traj.lengths[idx],
        traj.final_states[idx],
        seed=traj.seed,
    )


def check_baseline_fits_weights(baseline: Any, weights: str) -> None:
    """ValueError naming both arguments for baseline='time' with weights other than the reward-to-go."""
    if isinstance(baseline, str) and baseline == "time" and weights != "reward_to_go":
        raise ValueError("baseline='time' needs weights='reward_to_go' (the return has no time index)")


def _baseline(
    baseline: Any, policy: SoftmaxPolicy, mdp: FiniteMDP, gamma: float, weights: str
) -> tuple[str, NDArray[np.float64] | None]:
    """('none' | 'mean' | 'time' | 'table', table or None); 'cross' for an unfitted ValueBaseline."""
    if baseline is None or (isinstance(baseline, str) and baseline == "none"):
        return "none", None
    if isinstance(baseline, str):
        if baseline == "mean":
            return "mean", None
        if baseline == "time":
            check_baseline_fits_weights(baseline, weights)
            return "time", None
        if baseline == "exact":
            V = exact.evaluate(mdp, policy, "finite_horizon", gamma=gamma).state_values
            return "table", np.ascontiguousarray(V)
        if baseline == "optimal":
            return "optimal", None
        raise ValueError(
            f"baseline must be None, 'mean', 'time', 'exact', 'optimal' or a pgfast.ValueBaseline, got {baseline!r}"
        )
    if isinstance(baseline, ValueBaseline):
        if (baseline.n_states, baseline.horizon) != (mdp.n_states, mdp.horizon):
            raise ValueError(
                f"the ValueBaseline is for (n_states, horizon) = ({baseline.n_states}, {baseline.horizon}), "
                f"the MDP has ({mdp.n_states}, {mdp.horizon})"
            )
        if baseline.fitted:
            return "table", np.ascontiguousarray(baseline.values())
        return "cross", None
    raise TypeError(
        f"baseline must be None, 'mean', 'time', 'exact', 'optimal' or a pgfast.ValueBaseline, got {type(baseline).__name__}"
    )


def fused_baseline(
    policy: SoftmaxPolicy, mdp: FiniteMDP, baseline: Any, gamma: Any, kind: str
) -> tuple[float, str, NDArray[np.float64] | None]:
    """(gamma, baseline kind, table or None) of a fused estimate; refuses an unfitted ValueBaseline."""
    g = batch_gamma(gamma, mdp)
    bkind, table = _baseline(baseline, policy, mdp, g, kind)
    if bkind == "cross":
        raise ValueError("the fused estimator needs a fitted ValueBaseline (call .fit(traj) on an earlier batch)")
    if bkind == "optimal":
        raise ValueError(
            "baseline='optimal' needs a stored batch traj (its per-coordinate leave-one-out sums need every "
            "trajectory's score sums): the fused estimator (mdp=, n=, seed=) does not take it"
        )
    return g, bkind, table


# Working memory of the optimal baseline per block of coordinates (the blocks are independent).
_OPTIMAL_BLOCK_BYTES = 64 * 2**20


def _leave_one_out_sums(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Entry i of the last axis: the sum of the entries j != i of x, as sum_{j<i} + sum_{j>i}, each
    added sequentially from its far end, so entry i's sum depends on the other entries only (never
    formed by subtracting x_i from a total: no cancellation, and no dependence on x_i through
    rounding)."""
    out = np.zeros_like(x)
    if x.shape[-1] > 1:
        out[..., 1:] = np.cumsum(x[..., :-1], axis=-1)
        out[..., :-1] += np.cumsum(x[..., :0:-1], axis=-1)[..., ::-1]
    return out


def _loo_optimal(Z: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    """b[k, i] = sum_{j != i} Z[k, j]^2 y[j] / sum_{j != i} Z[k, j]^2, 0 where the denominator is 0."""
    Z2 = Z * Z
    den = _leave_one_out_sums(Z2)
    Z2 *= y
    return np.divide(_leave_one_out_sums(Z2), den, out=np.zeros_like(Z), where=den > 0.0)


def optimal_baseline_rows(
    policy: SoftmaxPolicy, traj: Trajectories, kind: str, gamma: float, per_trajectory: bool
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64] | None, float, float]:
    r"""(sum, sum of squares, rows or None, return sum, return sum of squares) of the
    per-trajectory gradients with the leave-one-out per-coordinate optimal baseline.

    Return weights: :math:`\hat g_i = Y_i (G_i - b_i)`, :math:`Y_i = \sum_t \psi_{i,t}`,
    :math:`b_{i,k} = \sum_{j \ne i} Y_{j,k}^2 G_j / \sum_{j \ne i} Y_{j,k}^2`. Reward-to-go:
    :math:`\hat g_i = \sum_h \gamma^h Z_{i,h} (r_{i,h} - b_{i,h})`, :math:`Z_{i,h} = \sum_{t \le h}
    \psi_{i,t}`, :math:`b_{i,h,k} = \sum_{j \ne i} Z_{j,h,k}^2 r_{j,h} / \sum_{j \ne i}
    Z_{j,h,k}^2` (0 when the denominator is 0). NumPy over blocks of coordinates, each an
    (N, coordinates) array of score sums built step by step from the score rows: O(max len * N *
    n_params) time (steps where every reward is 0 only update the sums); the sums over
    trajectories run in index order, independent of any thread count and of the blocks.
    """
    S, A = policy.n_states, policy.n_actions
    _check_indices(traj, S, A)
    N, H = traj.rewards.shape
    n = policy.n_params
    mask = traj.mask
    r = np.where(mask, traj.rewards, 0.0)
    G = traj.returns(gamma)
    # flat (s, a) row of each step; the padding reads an extra zero row
    idx = np.where(mask, traj.states.astype(np.int64) * A + traj.actions, S * A)
    T = int(traj.lengths.max()) if N else 0  # after the last step every reward-to-go term is 0
    gpow = gamma ** np.arange(H, dtype=np.float64)
    # the score rows grad log pi(a|s), sparse (CSR over s * A + a)
    indptr, index, value = exact._score_rows(policy, policy.probs())
    row_of = np.repeat(np.arange(S * A), np.diff(indptr))
    per_coord = 8 * (10 * N + S * A + 1)  # bytes per coordinate of a block (work arrays of N, score columns)
    check_allocation(per_coord, "the optimal baseline's working arrays for one coordinate",
                     "use a smaller batch or another baseline")
    block = max(1, min(n, _OPTIMAL_BLOCK_BYTES // per_coord))
    sums = np.zeros(n)
    sumsq = np.zeros(n)
    rows = np.empty((N, n)) if per_trajectory else None
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported by gradient_result
        for k0 in range(0, n, block):
            k1 = min(n, k0 + block)
            X = np.zeros((S * A + 1, k1 - k0))  # the block's coordinates of every score row
            sel = (index >= k0) & (index < k1)
            X[row_of[sel], index[sel] - k0] = value[sel]
            Z = np.zeros((N, k1 - k0))  # score sums, one row per trajectory (gathered by rows)
            out = np.zeros((k1 - k0, N))  # the gradients, one row per coordinate (sums along rows)
            for h in range(T):
                Z += X[idx[:, h]]
                if kind == "return" or not r[:, h].any():  # no reward at h: b = 0 and a zero term
                    continue
                Zc = np.ascontiguousarray(Z.T)
                out += gpow[h] * Zc * (r[:, h] - _loo_optimal(Zc, r[:, h]))
            if kind == "return":
                Zc = np.ascontiguousarray(Z.T)
                out = Zc * (G - _loo_optimal(Zc, G))
            sums[k0:k1] = out.sum(axis=1)
            sumsq[k0:k1] = (out * out).sum(axis=1)
            if rows is not None:
                rows[:, k0:k1] = out.T
        rs, rq = float(G.sum()), float((G * G).sum())
    return sums, sumsq, rows, rs, rq


def score_sums(
    traj: Trajectories,
    tables: KernelTables,
    kind: str,
    explicit: NDArray[np.float64] | None,
    gamma: float,
    baseline: str,
    table: NDArray[np.float64] | None,
    per_trajectory: bool,
    threads: int,
    sumsq: bool = True,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64] | None, float, float]:
    s, a, r, ln = batch_arrays(traj)
    spec = estimator_spec(tables, kind, explicit, gamma, baseline, table, threads)
    out: tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64] | None, float, float] = (
        _core.estimators.score_batch(spec, s, a, r, ln, per_trajectory, sumsq)
    )
    return out


def score(
    policy: SoftmaxPolicy,
    traj: Trajectories,
    weights: ArrayLike,
    *,
    per_trajectory: bool = False,
    threads: int | None = None,
) -> NDArray[np.float64] | tuple[NDArray[np.float64], NDArray[np.float64]]:
    r"""Score accumulation :math:`\frac1N \sum_i \sum_{t<\text{len}_i} w_{i,t}\,\nabla_\theta\log\pi(a_{i,t}|s_{i,t})`.

    ``weights`` is ``(N, H)`` (entries past an episode's end are ignored). Returns the gradient in
    the shape of ``theta``; with ``per_trajectory=True`` also the per-trajectory gradients
    ``(N, n_params)`` (their mean is the first result). ``threads`` (1 to ``pgfast.MAX_THREADS``
    = 256, more raise ``ValueError``; default: every usable CPU) changes only the speed and the
    summation order. See :doc:`/theory`, "The likelihood-ratio gradient". A
    :class:`ContinuousTrajectories` batch takes any policy on observations with a score
    ``grad_log_prob(states, actions)`` (see :doc:`/guide/continuous`).

    Parameters
    ----------
    policy : SoftmaxPolicy
        The policy whose score is accumulated.
    traj : Trajectories
        A batch of the policy's MDP size.
    weights : array_like (N, H)
        The weights :math:`w_{i,t}`, finite on the real steps.
    per_trajectory : bool
        Also return the per-trajectory gradients.
    threads : int, optional
        Worker threads, 1 to ``pgfast.MAX_THREADS`` (default: every usable CPU).

    Returns
    -------
    grad : ndarray, shape of ``theta``
        The weighted score sum divided by N.
    rows : ndarray (N, n_params)
        The per-trajectory gradients (only with ``per_trajectory=True``).

    Raises
    ------
    TypeError
        ``policy`` or ``traj`` of the wrong type.
    ValueError
        Weights of another shape or not finite, a batch that does not fit the policy, or a
        result beyond the float64 range.

    Examples
    --------
    With the reward-to-go as weights (and :math:`\gamma = 1`) it is the REINFORCE estimate:

    >>> mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="4x4", horizon=50)
    >>> pi = pg.TabularSoftmax(16, 4)
    >>> traj = mdp.sample(pi, 4000, seed=0)
    >>> g = pg.score(pi, traj, traj.reward_to_go())
    >>> g.shape
    (16, 4)
    >>> bool(np.allclose(g, pg.policy_gradient(pi, traj).grad))
    True
    """
    if isinstance(traj, ContinuousTrajectories):  # a batch with vector states
        from . import _continuous_estimators

        return _continuous_estimators.score(policy, traj, weights, per_trajectory=per_trajectory, threads=threads)
    tables = policy_tables(policy)
    check_traj(traj, policy)
    w = as_float_array(weights, "weights")
    if w.shape != traj.rewards.shape:
        raise ValueError(f"weights must have shape (N, H) = {traj.rewards.shape}, got {w.shape}")
    if not np.all(np.isfinite(w[traj.mask])):
        raise ValueError("weights contains NaN or infinite values")
    w = np.ascontiguousarray(np.where(traj.mask, w, 0.0))
    per_trajectory = as_bool(per_trajectory, "per_trajectory")
    if per_trajectory:
        check_allocation(8 * traj.n * policy.n_params, "per-trajectory gradients", "use per_trajectory=False")
    sums, _, rows, _, _ = score_sums(
        traj, tables, "explicit", w, traj.mdp.gamma, "none", None, per_trajectory, as_threads(threads), sumsq=False
    )
    if tables.scale is not None:
        sums, _, rows = to_theta(tables.scale, sums, sums, rows)
    grad = (sums / traj.n).reshape(policy.theta.shape)
    check_finite_result(grad, "the weighted score", "weights times scores exceed the float64 range")
    if per_trajectory:
        assert rows is not None
        return grad, rows
    return grad


def estimator_regularizer(regularizer: Any, entropy: Any) -> Regularizer | None:
    """The regularizer of an estimate: ``regularizer=``, or ``entropy=tau`` for
    ``Entropy(tau)`` (a ValueError when both are given); None for none and for a strength of 0
    (whose estimate is the unregularised one, bit for bit)."""
    reg = as_regularizer(regularizer)
    if entropy is not None:
        if reg is not None:
            raise ValueError("pass either entropy=tau or regularizer=, not both (entropy=tau is "
                             "regularizer=pgfast.Entropy(tau))")
        tau = as_float(entropy, "entropy")
        if not (math.isfinite(tau) and tau >= 0.0):
            raise ValueError(f"entropy must be a finite temperature tau >= 0, got {entropy!r}")
        reg = Entropy(tau)
    if (isinstance(reg, Entropy) and reg.tau == 0.0) or (isinstance(reg, LogBarrier) and reg.lam == 0.0):
        return None
    return reg


def refuse_regularizer(regularizer: Any, entropy: Any, what: str) -> None:
    """ValueError when ``regularizer=`` or ``entropy=`` is given to a call on ``what``, which takes neither."""
    if regularizer is not None or entropy is not None:
        raise ValueError(f"regularizer= and entropy= apply to finite MDPs (a pgfast.FiniteMDP or its Trajectories "
                         f"batch), not to {what}")


def soft_batch(traj: Trajectories, probs: NDArray[np.float64], tau: float) -> Trajectories:
    r"""``traj`` with the soft reward :math:`r_t - \tau\log\pi(a_t|s_t)` on each real step (the
    bonus of :func:`soft_reward_table`, added as :func:`soft_mdp` adds it; the padding as it is)."""
    _check_indices(traj, probs.shape[0], probs.shape[1])
    mask = traj.mask
    bonus = soft_reward_table(probs, tau)[np.where(mask, traj.states, 0), np.where(mask, traj.actions, 0)]
    rewards = np.asarray(traj.rewards, dtype=np.float64)
    soft = np.ascontiguousarray(np.where(mask, rewards + bonus, rewards))
    return Trajectories._trusted(traj.mdp, traj.states, traj.actions, soft, traj.lengths, traj.final_states,
                                 seed=traj.seed)


def with_barrier(est: PolicyGradient, policy: SoftmaxPolicy, probs: NDArray[np.float64], lam: float) -> PolicyGradient:
    r"""``est`` plus the log-barrier :math:`\lambda\sum_{s,a}\log\pi(a|s)`: its exact gradient
    added to ``grad`` (and to every per-trajectory row), its value to ``value``; the standard
    errors are unchanged (the term is not random). ``est`` itself for ``lam = 0``."""
    if lam == 0.0:
        return est
    bv = barrier_value(probs, lam)
    if not math.isfinite(bv):
        raise ValueError("the log-barrier lam * sum log pi(a|s) is -inf: a probability of the policy is 0 "
                         "(logits too far apart); use regularizer=None or a policy with every probability > 0")
    gb = np.asarray(policy._logit_vjp(barrier_logit_grad(probs, lam)), dtype=np.float64).reshape(est.grad.shape)
    value = est.value + bv
    check_finite_result(value, "the estimated value J + barrier", _OVERFLOW)
    rows = None if est.per_trajectory is None else est.per_trajectory + gb.ravel()
    return dataclasses.replace(est, grad=est.grad + gb, value=value, per_trajectory=rows)


def policy_gradient(
    policy: SoftmaxPolicy,
    traj: Trajectories | None = None,
    *,
    weights: Weights = "reward_to_go",
    baseline: Any = None,
    gamma: float | None = None,
    per_trajectory: bool = False,
    mdp: FiniteMDP | None = None,
    n: int | None = None,
    seed: int | None = None,
    threads: int | None = None,
    stderr: bool = True,
    regularizer: Regularizer | None = None,
    entropy: float | None = None,
) -> PolicyGradient:
    r"""The REINFORCE family of estimators of :math:`\nabla_\theta J` (finite-horizon objective).

    .. math::
        \hat g = \frac1N \sum_i \sum_{t<\text{len}_i} w_{i,t}\,\nabla_\theta\log\pi_\theta(a_{i,t}|s_{i,t})

    ``weights="return"``: :math:`w_{i,t} = G_i - b_i` with :math:`G_i = \sum_t \gamma^t r_{i,t}`
    (REINFORCE). ``weights="reward_to_go"``: :math:`w_{i,t} = \gamma^t (G_{i,t} - b_{i,t})`,
    :math:`G_{i,t} = \sum_{t' \ge t} \gamma^{t'-t} r_{i,t'}` (the :math:`\gamma^t` makes it
    unbiased for :math:`J = \mathbb E \sum_t \gamma^t r_t`). See :doc:`/theory`, "REINFORCE and
    reward-to-go" and "Baselines and advantages".

    Baselines, all unbiased:

    - ``None``;
    - ``"mean"``: :math:`b_i` = mean return of the *other* trajectories of the batch
      (leave-one-out, so it is independent of trajectory i and unbiased even for N = 2);
    - ``"time"`` (reward-to-go only): :math:`b_{i,t}` = mean reward-to-go at step t of the other
      trajectories still running at t (0 when there are none);
    - ``"exact"``: :math:`b_{i,t} = V_t(s_{i,t})` from :func:`pgfast.exact.evaluate` on the batch's
      MDP (an oracle: the advantage estimator with the true value function); with
      ``weights="return"``, :math:`b_i = V_0(s_{i,0})`;
    - a :class:`ValueBaseline`: its fitted :math:`b_t(s)` (fitted on earlier batches), or
      cross-fitted on this batch when it is not fitted yet;
    - ``"optimal"`` (stored batch only): the per-coordinate variance-minimising constant baseline
      (Peters & Schaal 2008; Greensmith, Bartlett & Baxter 2004), estimated leave-one-out. With
      return weights :math:`\hat g_{i,k} = Y_{i,k} (G_i - b_{i,k})`, :math:`Y_i = \sum_t \psi_{i,t}`,
      :math:`b_{i,k} = \sum_{j \ne i} Y_{j,k}^2 G_j \big/ \sum_{j \ne i} Y_{j,k}^2`; with
      reward-to-go weights the per-step form
      :math:`\hat g_{i,k} = \sum_{h<H} \gamma^h Z_{i,h,k} (r_{i,h} - b_{i,h,k})`,
      :math:`Z_{i,h} = \sum_{t \le h} \psi_{i,t}` (the whole score sum after the episode's end, where
      :math:`r_{i,h} = 0`), :math:`b_{i,h,k} = \sum_{j \ne i} Z_{j,h,k}^2 r_{j,h} \big/
      \sum_{j \ne i} Z_{j,h,k}^2`; a zero denominator gives :math:`b = 0`. These are the batch
      versions of ``pg.exact.moments(..., baseline="optimal")``'s :math:`b^*`; trajectory i's
      baseline uses only the other trajectories, so the estimate is unbiased (N >= 2). Computed in
      NumPy per block of coordinates: O(max length x N x n_params) time, about
      ``8 (10 N + S A)`` bytes per coordinate of a block of working memory (blocks of at most
      64 MiB), plus ``16 N H`` bytes for the steps' indices and rewards and the
      ``(N, n_params)`` rows when ``per_trajectory=True``.

    Regularised objectives (see :doc:`/theory`, "Regularised objectives"):

    - ``entropy=tau`` (shorthand for ``regularizer=pgfast.Entropy(tau)``) estimates
      :math:`\nabla_\theta J_\tau` and :math:`J_\tau = J + \tau\,\mathbb E\big[\sum_t
      \gamma^t \mathcal H(\pi(\cdot|s_t))\big]`: every step's reward becomes the soft reward
      :math:`r_{i,t} - \tau\log\pi_\theta(a_{i,t}|s_{i,t})` in the weights (returns,
      rewards-to-go and every baseline, which then see the soft rewards too: ``"exact"`` is
      :math:`V_t` of the soft rewards), and ``value`` is the mean soft return. Fused, the
      episodes are those of the same seed without the regulariser (sampling reads only the
      transitions); stored, the batch's rewards are used with the bonus added on its steps
      (:math:`\pi` at the policy's current ``theta``). Unbiased for :math:`\nabla J_\tau`
      because :math:`\mathbb E_{a\sim\pi}[\nabla\log\pi(a|s)] = 0`.
    - ``regularizer=pgfast.LogBarrier(lam)``: :math:`J_\lambda = J + \lambda\sum_{s,a}
      \log\pi(a|s)`, a deterministic term: its exact gradient :math:`\lambda\sum_{s,a}
      \nabla_\theta\log\pi(a|s)` is added to ``grad`` (and to each per-trajectory row) and
      :math:`\lambda\sum_{s,a}\log\pi(a|s)` to ``value``; the standard errors are those of
      the unregularised estimate.

    A strength of 0 gives the unregularised estimate, bit for bit. Both are for a
    :class:`FiniteMDP` and its batches (a ``ValueError`` with an :class:`LQR` or a
    :class:`ContinuousTrajectories` batch).

    Two ways to call it: with a stored batch ``traj`` (from :meth:`FiniteMDP.sample`), or fused
    with ``mdp=, n=, seed=`` (and ``traj=None``): sampling and accumulation in one pass without
    storing trajectories; for the same seed it equals the two-step result up to floating-point
    summation order (about 1e-15 relative). The fused form takes every baseline but the
    cross-fitted one (a :class:`ValueBaseline` must be fitted) and ``"optimal"`` (whose
    leave-one-out sums need every trajectory's score sums: a ``ValueError``; sample the batch and
    pass it as ``traj``). The leave-one-out baselines
    ``"mean"`` and ``"time"`` need statistics of the whole batch: a first pass simulates the batch
    and sums its rewards per step and its lengths, and the second pass draws the same trajectories
    again (their streams are keyed by ``(seed, i)``) and forms the weights as the stored form does,
    so these two cost about two simulations. Memory of the fused form, per worker thread:
    O(16 H) for the running trajectories, O(S A + n_params) for the sums (twice as much with
    ``stderr``), and O(H) for the leave-one-out statistics; it does not grow with ``n``.
    The exception is ``baseline="time"`` with reward-to-go weights and ``stderr=False`` (what
    :func:`pgfast.train` uses) when ``H S A <= 131072`` (FrozenLake 8x8 with H = 200: 51,200):
    one simulation fills exact per-step tables, for every ``(t, s, a)`` the number of visits and
    the sum of their reward-to-go, each rounded once to a fixed-point integer (a multiple of
    about ``2^-61`` times the bound ``2 H max|R|``; ``gamma <= 1``); the baseline's terms and the
    gradient are then formed from the batch's tables. Memory: ``16 H S A`` bytes per worker
    thread (0.8 MB for FrozenLake 8x8 with H = 200), independent of ``n``. Larger tables would not
    stay in the cache and cost more than the second pass: there the two passes run.

    ``stderr=False`` (either form) skips the per-trajectory bookkeeping behind the standard errors
    of the gradient (``stderr`` is then NaN; ``value_stderr`` is still computed): the steps are
    summed straight into one logit table. That is what :func:`pgfast.train` uses; it matters most
    for :class:`MLPSoftmax`, whose per-trajectory gradients each need a backward pass over the
    trajectory's visited states, while the batch gradient needs one backward pass in all.

    ``threads`` (1 to ``pgfast.MAX_THREADS`` = 256, more raise ``ValueError``; default: every
    usable CPU) changes only the speed: the sums over trajectories go over a fixed grid of blocks
    combined in one fixed order, so every ``threads`` gives the same bits (the rule is stated in
    :doc:`/guide/sampling`, "Reproducibility").

    A :class:`ContinuousTrajectories` batch (vector states) takes the same weights and the
    baselines None, ``"mean"``, ``"time"``, an ``(N, H)`` array and a
    :class:`LinearValueBaseline`, with any policy on observations that has a score
    ``grad_log_prob(states, actions)`` (:class:`LinearGaussian`, a softmax over discrete
    actions); see :doc:`/guide/continuous`.

    Parameters
    ----------
    policy : SoftmaxPolicy
        The policy that sampled the batch.
    traj : Trajectories, optional
        A stored batch; ``None`` for the fused form.
    weights : {"reward_to_go", "return"}
        The weights :math:`w_{i,t}` (default reward-to-go).
    baseline : None, {"mean", "time", "exact", "optimal"} or ValueBaseline
        The baseline subtracted from the weights.
    gamma : float in [0, 1], optional
        Discount factor (default: the MDP's).
    per_trajectory : bool
        Keep the per-trajectory gradients (stored batch only).
    mdp : FiniteMDP, optional
        The MDP to sample (fused form); an :class:`LQR` with a :class:`LinearGaussian` policy runs
        the compiled LQR sampler (see :doc:`/guide/continuous`).
    n : int, optional
        Number of episodes (fused form).
    seed : int or None, optional
        Seed of the sampled episodes (fused form).
    threads : int, optional
        Worker threads, 1 to ``pgfast.MAX_THREADS`` (default: every usable CPU).
    stderr : bool
        Compute the gradient's standard errors (default True).
    regularizer : Entropy or LogBarrier, optional
        Estimate the gradient and value of the regularised objective (default: none).
    entropy : float >= 0, optional
        The entropy temperature :math:`\tau`: ``regularizer=pgfast.Entropy(tau)``.

    Returns
    -------
    PolicyGradient
        ``grad`` (shape of ``theta``), ``stderr``, ``n``, ``value`` (mean discounted return,
        of the regularised objective when one is given), ``value_stderr``, ``per_trajectory``,
        ``n_steps``.

    Raises
    ------
    TypeError
        Arguments of the wrong type (a ``regularizer`` other than :class:`Entropy`,
        :class:`LogBarrier` or None).
    ValueError
        An unknown ``weights`` or ``baseline``, a baseline the call form does not take, both or
        neither of ``traj`` and ``mdp=, n=``, a batch that does not fit the policy, both
        ``entropy`` and ``regularizer``, a negative or infinite ``entropy``, a log-barrier of a
        policy with a probability 0, or a result beyond the float64 range.

    Examples
    --------
    >>> mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="4x4", horizon=50)
    >>> pi = pg.TabularSoftmax(16, 4)
    >>> traj = mdp.sample(pi, 4000, seed=0)
    >>> est = pg.policy_gradient(pi, traj, baseline="time")
    >>> est.grad.shape, est.n, est.n_steps
    ((16, 4), 4000, 30105)
    >>> round(est.value, 6), round(est.value_stderr, 6)
    (0.01325, 0.001808)

    The estimate is within a few standard errors of the exact gradient:

    >>> exact = pg.exact.gradient(mdp, pi)
    >>> z = np.abs(est.grad - exact) / np.where(est.stderr > 0, est.stderr, 1.0)
    >>> bool(z.max() < 5)
    True

    Fused: the same episodes (same seed), sampled and accumulated without storing them:

    >>> fused = pg.policy_gradient(pi, mdp=mdp, n=4000, seed=0)
    >>> round(fused.value, 6), fused.n_steps
    (0.01325, 30105)

    With an entropy bonus: the same episodes, each step's reward plus
    :math:`-\tau\log\pi(a|s) = \tau\log 4` for this uniform policy:

    >>> soft = pg.policy_gradient(pi, mdp=mdp, n=4000, seed=0, entropy=0.1)
    >>> soft.n_steps, bool(np.isclose(soft.value, fused.value + 0.1 * np.log(4) * 30105 / 4000))
    (30105, True)

    A batch with vector states and a Gaussian policy (here two logged one-step episodes):

    >>> gauss = pg.LinearGaussian(1, 1, W=[[0.5]])
    >>> batch = pg.ContinuousTrajectories(states=[[[1.0]], [[2.0]]], actions=[[[1.5]], [[0.0]]],
    ...                                   rewards=[[1.0], [3.0]], lengths=[1, 1])
    >>> pg.policy_gradient(gauss, batch).grad  # mean of r (u - W x) x / sigma^2 and r ((u - W x)^2 / sigma^2 - 1)
    array([-2.5,  0. ])
    """
    if isinstance(mdp, LQR):  # the fused estimator on an LQR (compiled sampler)
        from . import _lqr_fused

        refuse_regularizer(regularizer, entropy, "an LQR")
        return _lqr_fused.policy_gradient(policy, traj, weights=weights, baseline=baseline, gamma=gamma,
                                          per_trajectory=per_trajectory, mdp=mdp, n=n, seed=seed,
                                          threads=threads, stderr=stderr)
    if isinstance(traj, ContinuousTrajectories):  # a batch with vector states
        from . import _continuous_estimators

        refuse_regularizer(regularizer, entropy, "a ContinuousTrajectories batch")
        return _continuous_estimators.policy_gradient(policy, traj, weights=weights, baseline=baseline,
                                                      gamma=gamma, per_trajectory=per_trajectory, mdp=mdp,
                                                      n=n, seed=seed, threads=threads, stderr=stderr)
    kind = weights_kind(weights)
    with_se = as_bool(stderr, "stderr")
    per_trajectory = as_bool(per_trajectory, "per_trajectory")
    reg = estimator_regularizer(regularizer, entropy)
    nthreads = as_threads(threads)
    _core.info.wake_workers(nthreads)  # a parked pool thread wakes while the policy tables are made
    policy = pinned(policy)  # the tables, an exact baseline and the regularizer from one theta
    tables = policy_tables(policy)
    tau = reg.tau if isinstance(reg, Entropy) else 0.0
    lam = reg.lam if isinstance(reg, LogBarrier) else 0.0
    if traj is None:
        if mdp is None or n is None:
            raise ValueError("pass a batch traj, or mdp=, n= and seed= for the fused estimator")
        require_instance(mdp, FiniteMDP, "mdp", "a pgfast.FiniteMDP")
        policy._check_fits(mdp)
        if per_trajectory:
            raise ValueError("per_trajectory=True needs a stored batch (the fused estimator keeps no trajectories)")
        nn = as_int(n, "n", minimum=1, maximum=2**62)
        if tau:  # the same transitions (so the same episodes) with the soft rewards
            mdp = soft_mdp(mdp, tables.probs, tau)
        g, bkind, table = fused_baseline(policy, mdp, baseline, gamma, kind)
        spec = estimator_spec(tables, kind, None, g, bkind, table, nthreads)
        sums, sumsq, rs, rq, steps = _core.estimators.fused_gradient(spec, mdp._mdp, nn, as_seed(seed), with_se)
        est = gradient_result(policy, nn, sums, sumsq, rs, rq, n_steps=int(steps), with_stderr=with_se,
                              scale=tables.scale)
        return with_barrier(est, policy, tables.probs, lam)
    if mdp is not None or n is not None or seed is not None:
        raise ValueError("pass either a batch traj or mdp=, n=, seed= (fused), not both")
    check_traj(traj, policy)
    g = batch_gamma(gamma, traj.mdp)
    needs_table = isinstance(baseline, ValueBaseline) or (isinstance(baseline, str) and baseline == "exact")
    if needs_table and traj.horizon != traj.mdp.horizon:  # V_t(s) tables have the MDP's horizon
        raise ValueError(
            f"baseline={baseline!r} needs a batch of the MDP's horizon H = {traj.mdp.horizon}, "
            f"got a batch of H = {traj.horizon}"
        )
    if tau:  # the soft rewards on the batch's steps, and the soft MDP's values for the exact baseline
        traj = soft_batch(traj, tables.probs, tau)
    bmdp = soft_mdp(traj.mdp, tables.probs, tau) if tau and isinstance(baseline, str) and baseline == "exact" else traj.mdp
    bkind, table = _baseline(baseline, policy, bmdp, g, kind)
    if bkind in ("mean", "optimal") and traj.n < 2:
        raise ValueError(f"baseline='{bkind}' needs at least 2 trajectories (it is leave-one-out)")
    if per_trajectory:
        check_allocation(8 * traj.n * policy.n_params, "per-trajectory gradients", "use per_trajectory=False")
    if bkind == "optimal":
        sums, sumsq, rows, rs, rq = optimal_baseline_rows(policy, traj, kind, g, per_trajectory)
        est = gradient_result(policy, traj.n, sums, sumsq, rs, rq, rows, n_steps=traj.n_steps, with_stderr=with_se)
        return with_barrier(est, policy, tables.probs, lam)
    if bkind != "cross":
        sums, sumsq, rows, rs, rq = score_sums(traj, tables, kind, None, g, bkind, table, per_trajectory, nthreads, with_se)
        est = gradient_result(policy, traj.n, sums, sumsq, rs, rq, rows, n_steps=traj.n_steps, with_stderr=with_se,
                              scale=tables.scale)
        return with_barrier(est, policy, tables.probs, lam)
    # Cross-fitting: halves (even / odd trajectories), each weighted by a baseline fitted on the other.
    if traj.n < 2:
        raise ValueError("cross-fitting a ValueBaseline needs at least 2 trajectories")
    assert isinstance(baseline, ValueBaseline)
    _check_indices(traj, policy.n_states, policy.n_actions)
    idx = [np.arange(0, traj.n, 2), np.arange(1, traj.n, 2)]
    halves = [_split(traj, i) for i in idx]
    fits = [baseline._fit_table(h, g) for h in halves]
    sums = np.zeros(policy.n_params)
    sumsq = np.zeros(policy.n_params)
    rows_all = np.empty((traj.n, policy.n_params)) if per_trajectory else None
    rs = rq = 0.0
    for k in (0, 1):
        s_k, q_k, rows_k, rs_k, rq_k = score_sums(
            halves[k], tables, kind, None, g, "table", np.ascontiguousarray(fits[1 - k]), per_trajectory, nthreads, with_se
        )
        sums += s_k
        sumsq += q_k
        rs += rs_k
        rq += rq_k
        if rows_all is not None and rows_k is not None:
            rows_all[idx[k]] = rows_k
    est = gradient_result(policy, traj.n, sums, sumsq, rs, rq, rows_all, n_steps=traj.n_steps, with_stderr=with_se,
                          scale=tables.scale)
    return with_barrier(est, policy, tables.probs, lam)


_P = ParamSpec("_P")
_R = TypeVar("_R")

# log_likelihood's first order, before the estimator family took one (policy first, then data)
_MDP_FIRST = inspect.Signature([
    inspect.Parameter("mdp", inspect.Parameter.POSITIONAL_OR_KEYWORD),
    inspect.Parameter("policy", inspect.Parameter.POSITIONAL_OR_KEYWORD),
    inspect.Parameter("traj", inspect.Parameter.POSITIONAL_OR_KEYWORD),
    inspect.Parameter("dynamics", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=True),
])


def _also_mdp_first(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """``fn(policy, traj, *, dynamics, mdp)`` that also takes the deprecated order
    ``(mdp, policy, traj, dynamics)`` (recognised by an MDP as first argument), with a
    DeprecationWarning that shows the new call."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not (args and isinstance(args[0], FiniteMDP)):
            return fn(*args, **kwargs)
        old = _MDP_FIRST.bind(*args, **kwargs)  # TypeError for arguments that fit neither order
        old.apply_defaults()
        warnings.warn(
            f"{fn.__name__}(mdp, policy, traj, dynamics) is deprecated: call {fn.__name__}(policy, traj, "
            "dynamics=...); the MDP is the batch's, traj.mdp",
            DeprecationWarning,
            stacklevel=2,
        )
        a = old.arguments
        return fn(a["policy"], a["traj"], dynamics=a["dynamics"], mdp=a["mdp"])

    return wrapper


def _same_dynamics(a: FiniteMDP, b: FiniteMDP) -> bool:
    """Whether two MDPs give every trajectory the same likelihood: equal mu0 and transitions."""
    if a is b:
        return True
    if (a.n_states, a.n_actions, a.nnz) != (b.n_states, b.n_actions, b.nnz):
        return False
    (ip_a, next_a, prob_a, _), (ip_b, next_b, prob_b, _) = a.transitions, b.transitions
    return bool(np.array_equal(a.mu0, b.mu0) and np.array_equal(ip_a, ip_b) and np.array_equal(next_a, next_b)
                and np.array_equal(prob_a, prob_b))


@_also_mdp_first
def log_likelihood(
    policy: SoftmaxPolicy, traj: Trajectories, *, dynamics: bool = True, mdp: FiniteMDP | None = None
) -> NDArray[np.float64]:
    r"""Log-likelihood of each trajectory, shape (N,) (see :doc:`/theory`, "The objective and the
    likelihood of a trajectory"):

    .. math:: \log p_\theta(\tau) = \log\mu_0(s_0) + \sum_{t<\text{len}} \big[\log\pi_\theta(a_t|s_t) + \log P(s_{t+1}|s_t,a_t)\big]

    (:math:`s_{\text{len}}` is ``traj.final_states``), under the batch's MDP ``traj.mdp``.
    ``dynamics=False`` keeps only :math:`\sum_t \log\pi_\theta(a_t|s_t)`, the part that depends on
    :math:`\theta`.

    On a :class:`ContinuousTrajectories` batch the action terms are the policy's
    ``log_prob(states, actions)`` (densities for a Gaussian policy), and ``dynamics=True`` adds the
    Gaussian start and transition densities of the batch's source, an :class:`LQR` with
    ``x0_cov`` and ``noise_cov`` (a ``ValueError`` otherwise; see :doc:`/guide/continuous`).

    The policy comes first and the batch second, as in every estimator. The earlier order
    ``log_likelihood(mdp, policy, traj, dynamics)`` still works and gives the same result, with a
    ``DeprecationWarning``.

    Parameters
    ----------
    policy : SoftmaxPolicy
        The policy of the action terms.
    traj : Trajectories
        The batch; its MDP ``traj.mdp`` gives the dynamics terms.
    dynamics : bool
        Include :math:`\log\mu_0` and :math:`\log P` (default True).
    mdp : FiniteMDP, optional
        Needs no passing: if given, it must be ``traj.mdp`` or an MDP with the same ``mu0`` and
        transitions.

    Returns
    -------
    ndarray of float64, shape (N,)

    Raises
    ------
    TypeError
        Arguments of the wrong type.
    ValueError
        A policy that does not fit the batch's MDP, or an ``mdp`` with other dynamics than
        ``traj.mdp``.

    Examples
    --------
    On slippery FrozenLake each of the two steps of these episodes has probability
    1/4 (action) times 1/3 (slip):

    >>> mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="4x4", horizon=50)
    >>> pi = pg.TabularSoftmax(16, 4)
    >>> traj = mdp.sample(pi, 4000, seed=0)
    >>> traj.lengths[:3]
    array([2, 2, 2], dtype=int32)
    >>> pg.log_likelihood(pi, traj)[:3].round(4)
    array([-4.9698, -4.9698, -4.9698])
    >>> pg.log_likelihood(pi, traj, dynamics=False)[:3].round(4)  # 2 log(1/4)
    array([-2.7726, -2.7726, -2.7726])
    """
    if isinstance(traj, ContinuousTrajectories):  # a batch with vector states
        from . import _continuous_estimators

        return _continuous_estimators.log_likelihood(policy, traj, dynamics=dynamics, mdp=mdp)
    require_instance(policy, SoftmaxPolicy, "policy", "a pgfast policy")
    if not isinstance(traj, Trajectories):
        raise TypeError(f"traj must be a pgfast.Trajectories batch, got {type(traj).__name__}")
    if mdp is not None:
        require_instance(mdp, FiniteMDP, "mdp", "a pgfast.FiniteMDP")
        if not _same_dynamics(mdp, traj.mdp):
            raise ValueError(
                "mdp must be the batch's MDP traj.mdp (or one with the same mu0 and transitions): the likelihood "
                "is that of traj.mdp; leave mdp out"
            )
    policy._check_fits(traj.mdp)
    logp = np.ascontiguousarray(policy.log_probs())
    s, a, r, ln = batch_arrays(traj)
    fin = as_int32_array(traj.final_states, "final_states", 1)
    return _core.estimators.log_likelihood(traj.mdp._mdp, logp, s, a, ln, fin, r, as_bool(dynamics, "dynamics"))
