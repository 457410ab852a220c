r"""Likelihood-ratio estimators on stored batches with vector states (:class:`ContinuousTrajectories`).

The same estimators as on finite MDPs (see :doc:`/theory`, "REINFORCE and reward-to-go" and
"Baselines and advantages"), for any policy on observations with a score
``grad_log_prob(states, actions)`` (:class:`LinearGaussian`, a softmax over discrete actions):

.. math:: \hat g = \frac1N \sum_i \hat g_i, \qquad
          \hat g_i = \sum_{t<\text{len}_i} w_{i,t}\,\nabla_\theta\log\pi_\theta(u_{i,t}|x_{i,t}) .

Each trajectory's gradient :math:`\hat g_i` (a row) is formed in NumPy over chunks of
trajectories (the per-step scores of a chunk at a time; a :class:`LinearGaussian`'s rows come from
its closed-form score without forming per-step score vectors), and the rows are summed over the
canonical block grid of the estimators (``cpp/include/pgfast/reduce.hpp``): block partials in
index order, combined along one fixed binary tree, so that the result does not depend on
``threads`` or on how the chunks were shared out.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from ._continuous import ContinuousTrajectories
from ._estimators import PolicyGradient, gradient_result, weights_kind
from ._features import FeatureMap, FeatureSpec
from ._gaussian import LOG_STD_MIN, LinearGaussian
from ._lqr import LQR
from ._policy import SoftmaxPolicy
from ._validation import (
    as_bool,
    as_float,
    as_float_array,
    as_gamma,
    as_int,
    as_threads,
    check_allocation,
    check_finite_result,
)

# Working memory of one chunk of trajectories (per worker thread).
_CHUNK_BYTES = 32 * 2**20

_POLICY_WHAT = "a policy on vector states with a score grad_log_prob(states, actions) (e.g. pgfast.LinearGaussian)"


# -- checks -----------------------------------------------------------------------------------------


def check_policy(policy: Any, traj: Any, name: str = "policy") -> None:
    """TypeError / ValueError unless ``policy`` is a policy on vector states that fits ``traj``:
    ``obs_dim`` the batch's state dimension, vector actions of its ``action_dim`` (a Gaussian
    policy) or indices in ``[0, n_actions)`` (a softmax over discrete actions)."""
    if not isinstance(traj, ContinuousTrajectories):
        raise TypeError(f"traj must be a pgfast.ContinuousTrajectories batch, got {type(traj).__name__}")
    needed = ("grad_log_prob", "log_prob", "theta", "n_params", "obs_dim")
    if isinstance(policy, SoftmaxPolicy) or not all(hasattr(policy, a) for a in needed):
        raise TypeError(f"{name} must be {_POLICY_WHAT}, got {type(policy).__name__}")
    if policy.obs_dim != traj.state_dim:
        raise ValueError(f"{name} has obs_dim = {policy.obs_dim} but the batch's states have dimension {traj.state_dim}")
    if hasattr(policy, "n_actions"):
        if not traj.discrete_actions:
            raise ValueError(f"{name} ({type(policy).__name__}) takes discrete actions (indices, shape (N, H)) "
                             f"but the batch holds vector actions of shape {traj.actions.shape}")
        acts = traj.actions[traj.mask]
        if acts.size and (acts.min() < 0 or acts.max() >= policy.n_actions):
            i, t = map(int, np.argwhere(traj.mask & ((traj.actions < 0) | (traj.actions >= policy.n_actions)))[0])
            raise ValueError(f"actions[{i}, {t}] = {traj.actions[i, t]} is out of range [0, n_actions = "
                             f"{policy.n_actions}) (trajectory {i}, step {t})")
    elif hasattr(policy, "action_dim"):
        if traj.discrete_actions:
            raise ValueError(f"{name} ({type(policy).__name__}) takes vector actions of dimension {policy.action_dim} "
                             "but the batch holds discrete actions (indices, shape (N, H))")
        if traj.actions.shape[2] != policy.action_dim:
            raise ValueError(f"{name} has action_dim = {policy.action_dim} but the batch's actions have dimension "
                             f"{traj.actions.shape[2]}")
    else:
        raise TypeError(f"{name} must be {_POLICY_WHAT} with an action_dim or n_actions, got {type(policy).__name__}")


def _no_fused_arguments(mdp: Any, n: Any, seed: Any) -> None:
    if mdp is not None or n is not None or seed is not None:
        raise ValueError(
            "a stored ContinuousTrajectories batch takes no mdp=, n=, seed= (those sample a new batch: the fused "
            "estimator of an LQR is pg.policy_gradient(policy, mdp=lqr, n=..., seed=...) without traj)"
        )


def _warn_diverged(traj: ContinuousTrajectories) -> None:
    k = int(traj.diverged.sum())
    if k:
        bound = traj.source.max_state if isinstance(traj.source, LQR) else None
        where = f" (|x| > max_state = {bound:g})" if bound is not None else ""
        warnings.warn(
            f"{k} of {traj.n} trajectories diverged{where} and enter the estimate with their truncated sums: "
            "the policy is unstable",
            RuntimeWarning,
            stacklevel=4,
        )


# -- weights and baselines --------------------------------------------------------------------------


class LinearValueBaseline:
    r"""A fitted state-value baseline for vector states: :math:`b_t(x) = \phi(x)^\top w_t`.

    One ridge regression per step :math:`t` of the reward-to-go :math:`G_{i,t}` on the features
    :math:`\phi(x_{i,t})` of the trajectories still running at :math:`t`. The default quadratic
    features :math:`(1, x, x_i x_j)_{i \le j}` hold the value function of a finite-horizon LQR
    under a linear-Gaussian policy, :math:`V_t(x) = -x^\top P_t x - c_t`, exactly (with process
    noise or not). Each step's feature columns are scaled to unit root-mean-square before
    ``ridge`` is added to the normal equations (so ``ridge`` is relative to the data's scale);
    steps that no trajectory reaches get :math:`w_t = 0`.

    A baseline fitted on earlier batches keeps the estimate unbiased. One that is not fitted yet
    is *cross-fitted* by :func:`policy_gradient`, as :class:`ValueBaseline` is: the even
    trajectories are weighted with a baseline fitted on the odd ones and the other way round
    (the object itself is left unchanged). :meth:`fit` replaces the weights whole.

    Parameters
    ----------
    state_dim : int >= 1
        Dimension of the states x.
    horizon : int >= 1
        Horizon H of the batches it is fitted to and used on.
    features : ``"quadratic"``, ``"affine"``, ``"identity"`` or callable
        The features :math:`\phi` (default quadratic; a callable maps (N, state_dim) to (N, d)).
    ridge : float >= 0
        Ridge of the scaled normal equations (default 1e-8; 0 gives the least-norm solution).

    Raises
    ------
    TypeError
        Features that are neither a name nor a callable.
    ValueError
        Sizes below 1, unknown feature names, a negative ``ridge``.
    MemoryError
        Weights larger than memory (the message states the bytes requested).

    Attributes
    ----------
    state_dim : int
        Dimension of the states.
    horizon : int
        Horizon H of the weights.
    features : str or callable
        The feature map as given.
    ridge : float
        The ridge of the scaled normal equations.

    Examples
    --------
    >>> lqr = pg.LQR(A=[[1.0, 0.1], [0.0, 1.0]], B=[[0.0], [0.1]], Q=np.eye(2), R=[[0.1]],
    ...              horizon=10, x0=[1.0, 0.0], x0_cov=0.1 * np.eye(2))
    >>> pi = pg.LinearGaussian(2, 1, W=[[-1.0, -1.0]], log_std=np.log(0.3))
    >>> rng = np.random.default_rng(0)
    >>> X, U, Rw = np.zeros((500, 10, 2)), np.zeros((500, 10, 1)), np.zeros((500, 10))
    >>> x = rng.multivariate_normal(lqr.x0, lqr.x0_cov, size=500)
    >>> for t in range(10):
    ...     u = pi.sample(x, seed=t)
    ...     X[:, t], U[:, t] = x, u
    ...     Rw[:, t] = -(np.einsum("ni,ij,nj->n", x, lqr.Q, x) + np.einsum("ni,ij,nj->n", u, lqr.R, u))
    ...     x = x @ lqr.A.T + u @ lqr.B.T
    >>> traj = pg.ContinuousTrajectories(X, U, Rw, np.full(500, 10), source=lqr)
    >>> vb = pg.LinearValueBaseline(2, 10).fit(traj)
    >>> vb
    LinearValueBaseline(state_dim=2, horizon=10, features='quadratic', ridge=1e-08, fitted=True)
    >>> vb.weights().shape  # (H, d): d = 1 + 2 + 3 quadratic features
    (10, 6)
    >>> bool(np.abs(vb.values(traj) - traj.reward_to_go()).max() < 1.0)  # reward-to-go minus the baseline
    True
    >>> est = pg.policy_gradient(pi, traj, baseline=pg.LinearValueBaseline(2, 10))  # cross-fitted
    >>> est.grad.shape
    (3,)
    """

    def __init__(self, state_dim: int, horizon: int, features: FeatureSpec = "quadratic", ridge: float = 1e-8) -> None:
        self.state_dim = as_int(state_dim, "state_dim", minimum=1, maximum=2**31 - 1)
        self.horizon = as_int(horizon, "horizon", minimum=1, maximum=2**31 - 1)
        self._features = FeatureMap(features, self.state_dim)
        self.features = features
        self.ridge = as_float(ridge, "ridge")
        if not (self.ridge >= 0.0 and np.isfinite(self.ridge)):
            raise ValueError(f"ridge must be a finite number >= 0, got {self.ridge}")
        check_allocation(8 * self.horizon * self._features.dim,
                         f"LinearValueBaseline weights (horizon, features) = ({self.horizon}, {self._features.dim})",
                         "use a shorter horizon or fewer features")
        self._w: NDArray[np.float64] | None = None

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` has been called (an unfitted baseline is cross-fitted by the estimators)."""
        return self._w is not None

    def __getstate__(self) -> dict[str, Any]:
        return {"state_dim": self.state_dim, "horizon": self.horizon, "features": self.features, "ridge": self.ridge,
                "w": self._w}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["state_dim"], state["horizon"], state["features"], state["ridge"])  # type: ignore[misc]
        self._w = state["w"]

    def __repr__(self) -> str:
        return (f"LinearValueBaseline(state_dim={self.state_dim}, horizon={self.horizon}, features={self._features!r}, "
                f"ridge={self.ridge:g}, fitted={self.fitted})")

    def weights(self) -> NDArray[np.float64]:
        r"""The fitted weights :math:`w_t` of :math:`b_t(x) = \phi(x)^\top w_t`, read-only.

        Returns
        -------
        ndarray of float64, shape (H, d)
            Row ``t`` holds :math:`w_t` (d features).

        Raises
        ------
        ValueError
            The baseline is not fitted yet.

        Examples
        --------
        >>> traj = pg.ContinuousTrajectories(states=[[[1.0]], [[3.0]]], actions=np.zeros((2, 1, 1)),
        ...                                  rewards=[[2.0], [4.0]], lengths=[1, 1])
        >>> pg.LinearValueBaseline(1, 1, features="affine", ridge=0.0).fit(traj).weights().round(6)  # b = x + 1
        array([[1., 1.]])
        """
        if self._w is None:
            raise ValueError("the LinearValueBaseline is not fitted yet: call .fit(traj) first")
        return self._w

    def _check(self, traj: Any) -> ContinuousTrajectories:
        if not isinstance(traj, ContinuousTrajectories):
            raise TypeError(f"traj must be a pgfast.ContinuousTrajectories batch, got {type(traj).__name__}")
        if (traj.state_dim, traj.horizon) != (self.state_dim, self.horizon):
            raise ValueError(
                f"the baseline is for (state_dim, horizon) = ({self.state_dim}, {self.horizon}), "
                f"the batch has ({traj.state_dim}, {traj.horizon})"
            )
        return traj

    def fit(self, traj: ContinuousTrajectories, gamma: float | None = None) -> LinearValueBaseline:
        r"""Fit :math:`w_t` to the reward-to-go :math:`G_{i,t}` of ``traj``; returns self.

        The new weights replace the previous fit whole.

        Parameters
        ----------
        traj : ContinuousTrajectories
            A batch of the baseline's state dimension and horizon.
        gamma : float in [0, 1], optional
            Discount factor of the reward-to-go (default: the batch's).

        Returns
        -------
        LinearValueBaseline
            ``self``, fitted.

        Raises
        ------
        TypeError
            ``traj`` is not a :class:`ContinuousTrajectories` batch.
        ValueError
            A batch of another state dimension or horizon, a ``gamma`` outside [0, 1], or a fit
            beyond the float64 range.

        Examples
        --------
        >>> traj = pg.ContinuousTrajectories(states=[[[1.0], [2.0]], [[-1.0], [0.5]]],
        ...                                  actions=np.zeros((2, 2, 1)), rewards=[[1.0, 1.0], [2.0, 1.0]],
        ...                                  lengths=[2, 2])
        >>> vb = pg.LinearValueBaseline(1, 2, features="affine").fit(traj)
        >>> vb.values(traj).round(6)  # two points per step: an exact line through them
        array([[2., 1.],
               [3., 1.]])
        """
        self._check(traj)
        w = self._fit(traj, as_gamma(gamma, traj.gamma))
        w.setflags(write=False)
        self._w = w
        return self

    def _fit(self, traj: ContinuousTrajectories, gamma: float) -> NDArray[np.float64]:
        G = traj.reward_to_go(gamma)
        d = self._features.dim
        w = np.zeros((self.horizon, d))
        for t in range(min(self.horizon, int(traj.lengths.max(initial=0)))):
            run = traj.lengths > t
            X = self._features(np.ascontiguousarray(traj.states[run, t]))
            y = G[run, t]
            with np.errstate(over="ignore", invalid="ignore"):
                scale = np.sqrt(np.mean(X * X, axis=0))
            scale = np.where((scale > 0) & np.isfinite(scale), scale, 1.0)
            Xs = X / scale
            A = np.vstack([Xs, np.sqrt(self.ridge) * np.eye(d)]) if self.ridge > 0 else Xs
            b = np.concatenate([y, np.zeros(d)]) if self.ridge > 0 else y
            w[t] = np.linalg.lstsq(A, b, rcond=None)[0] / scale
        check_finite_result(w, "the LinearValueBaseline fit", "rewards-to-go or features too large")
        return w

    def values(self, traj: ContinuousTrajectories) -> NDArray[np.float64]:
        r"""The baseline :math:`b_t(x_{i,t})` on the steps of a batch.

        Parameters
        ----------
        traj : ContinuousTrajectories
            A batch of the baseline's state dimension and horizon.

        Returns
        -------
        ndarray of float64, shape (N, H)
            :math:`b_t(x_{i,t})`, 0 past each episode's end.

        Raises
        ------
        TypeError
            ``traj`` is not a :class:`ContinuousTrajectories` batch.
        ValueError
            The baseline is not fitted yet, or a batch of another state dimension or horizon.

        Examples
        --------
        >>> traj = pg.ContinuousTrajectories(states=[[[1.0], [2.0]], [[3.0], [0.0]]],
        ...                                  actions=np.zeros((2, 2, 1)), rewards=[[2.0, 1.0], [4.0, 0.0]],
        ...                                  lengths=[2, 1])
        >>> vb = pg.LinearValueBaseline(1, 2, features="affine", ridge=0.0).fit(traj)
        >>> vb.values(traj).round(6)  # step 0: G = 3 at x = 1, 4 at x = 3; step 1: one point, G = 1
        array([[3., 1.],
               [4., 0.]])
        """
        return self._values(self.weights(), self._check(traj))

    def _values(self, w: NDArray[np.float64], traj: ContinuousTrajectories) -> NDArray[np.float64]:
        phi = self._features(np.where(traj.mask[..., None], traj.states, 0.0))
        out = np.where(traj.mask, np.einsum("nhd,hd->nh", phi, w), 0.0)
        check_finite_result(out, "the LinearValueBaseline values", "states or weights too large")
        return out

    def _cross_fitted(self, traj: ContinuousTrajectories, gamma: float) -> NDArray[np.float64]:
        """b of the even trajectories from a fit on the odd ones, and the other way round."""
        if traj.n < 2:
            raise ValueError("cross-fitting a LinearValueBaseline needs at least 2 trajectories")
        idx = [np.arange(0, traj.n, 2), np.arange(1, traj.n, 2)]
        halves = [_subset(traj, i) for i in idx]
        out = np.zeros((traj.n, traj.horizon))
        for k in (0, 1):
            out[idx[k]] = self._values(self._fit(halves[1 - k], gamma), halves[k])
        return out


def _subset(traj: ContinuousTrajectories, idx: NDArray[np.int64]) -> ContinuousTrajectories:
    arrays = [a[idx] for a in (traj.states, traj.actions, traj.rewards, traj.lengths, traj.terminated, traj.diverged)]
    return ContinuousTrajectories._trusted(arrays, traj.gamma, traj.source, traj.seed)


_BASELINES = "None, 'mean', 'time', an (N, H) array or a pgfast.LinearValueBaseline"


def step_weights(traj: ContinuousTrajectories, kind: str, baseline: Any, gamma: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    r"""(weights (N, H), returns (N,)): :math:`w_{i,t} = \gamma^t (G_{i,t} - b_{i,t})` (reward-to-go)
    or :math:`G_i - b_i` (return), 0 past each end, with the leave-one-out definitions of
    ``cpp/include/pgfast/estimators/baselines.hpp``."""
    N, H = traj.rewards.shape
    mask = traj.mask
    G = traj.reward_to_go(gamma)
    R = np.ascontiguousarray(G[:, 0]) if H else np.zeros(N)
    b: NDArray[np.float64] | None = None  # (N, H), or (N,) for "mean"
    if baseline is None or (isinstance(baseline, str) and baseline == "none"):
        pass
    elif isinstance(baseline, str):
        if baseline == "mean":
            if N < 2:
                raise ValueError("baseline='mean' needs at least 2 trajectories (it is leave-one-out)")
            b = (R.sum() - R) / (N - 1)
        elif baseline == "time":
            if kind != "reward_to_go":
                raise ValueError("baseline='time' needs weights='reward_to_go' (the return has no time index)")
            count = mask.sum(axis=0)
            k = np.where(count > 1, 1.0 / np.maximum(count - 1, 1), 0.0)
            b = (G.sum(axis=0) - G) * k
        elif baseline in ("exact", "optimal"):
            raise ValueError(f"baseline={baseline!r} is not available on a ContinuousTrajectories batch; the "
                             f"baselines there are {_BASELINES}")
        else:
            raise ValueError(f"baseline must be {_BASELINES}, got {baseline!r}")
    elif isinstance(baseline, LinearValueBaseline):
        baseline._check(traj)
        b = baseline.values(traj) if baseline.fitted else baseline._cross_fitted(traj, gamma)
    elif isinstance(baseline, (np.ndarray, list, tuple)):
        b = as_float_array(baseline, "baseline")
        if b.shape != (N, H):
            raise ValueError(f"an array baseline must have shape (N, H) = ({N}, {H}), got {b.shape}")
        if not np.all(np.isfinite(b[mask])):
            raise ValueError("baseline contains NaN or infinite values on the real steps")
    else:
        raise TypeError(f"baseline must be {_BASELINES}, got {type(baseline).__name__}")
    if kind == "return":
        bi = 0.0 if b is None else (b if b.ndim == 1 else b[:, 0])
        w = np.where(mask, (R - bi)[:, None], 0.0)
    else:
        if b is not None:
            G = G - (b[:, None] if b.ndim == 1 else b)
        w = np.where(mask, G * gamma ** np.arange(H, dtype=np.float64), 0.0)
    return np.ascontiguousarray(w), R


# -- per-trajectory gradients and their canonical reduction -----------------------------------------


def _chunk_rows(policy: Any, theta: NDArray[np.float64] | None, traj: ContinuousTrajectories,
                w: NDArray[np.float64], lo: int, hi: int, out: NDArray[np.float64]) -> None:
    """out[lo:hi] = sum_t w[i, t] grad log pi(u_{i,t}|x_{i,t}) for the trajectories [lo, hi)."""
    mask = np.arange(traj.horizon) < traj.lengths[lo:hi, None]  # this chunk's rows only
    full = bool(mask.all())  # no padding: the arrays are read as they are
    x = traj.states[lo:hi] if full else np.where(mask[..., None], traj.states[lo:hi], 0.0)  # padding may hold anything
    wc = w[lo:hi]
    if theta is not None:  # LinearGaussian: the closed-form score, no per-step score vectors
        m, k = policy.action_dim, policy.feature_dim
        W, ls = theta[: m * k].reshape(m, k), theta[m * k:]
        floored = ls < LOG_STD_MIN
        inv = np.exp(-np.maximum(ls, LOG_STD_MIN))
        phi = policy._features(x)
        u = traj.actions[lo:hi] if full else np.where(mask[..., None], traj.actions[lo:hi], 0.0)
        z = (u - phi @ W.T) * inv  # (c, H, m)
        wz = z * wc[..., None]
        out[lo:hi, : m * k] = (np.swapaxes(wz * inv, 1, 2) @ phi).reshape(hi - lo, m * k)
        out[lo:hi, m * k:] = np.where(floored, 0.0, np.einsum("chm,chm->cm", wz, z) - wc.sum(axis=1)[:, None])
        return
    u = traj.actions[lo:hi]
    if not full:
        u = np.where(mask, u, 0) if traj.discrete_actions else np.where(mask[..., None], u, 0.0)
    score = as_float_array(policy.grad_log_prob(x, u), "grad_log_prob(states, actions)")
    if score.shape != (hi - lo, traj.horizon, out.shape[1]):
        raise ValueError(f"grad_log_prob returned shape {score.shape}, expected {(hi - lo, traj.horizon, out.shape[1])}")
    out[lo:hi] = (wc[:, None, :] @ score)[:, 0, :]


def trajectory_rows(policy: Any, traj: ContinuousTrajectories, w: NDArray[np.float64], threads: int) -> NDArray[np.float64]:
    r"""The per-trajectory gradients :math:`\hat g_i = \sum_t w_{i,t} \nabla\log\pi(u_{i,t}|x_{i,t})`,
    shape (N, n_params), over chunks of trajectories (``threads`` of them at a time)."""
    N, H = traj.rewards.shape
    n_params = int(policy.n_params)
    check_allocation(8 * N * n_params, "per-trajectory gradients (N, n_params)", "use a smaller batch")
    gaussian = isinstance(policy, LinearGaussian)
    per_step = (policy.feature_dim + 4 * policy.action_dim) if gaussian else (n_params + traj.state_dim + 2)
    per_traj = 8 * max(H, 1) * (per_step + traj.state_dim + 2)
    check_allocation(per_traj, "the score arrays of one trajectory", "use a shorter horizon")
    chunk = max(1, min(N, _CHUNK_BYTES // per_traj))
    theta = policy._theta_copy() if gaussian else None  # one theta for every chunk
    rows = np.empty((N, n_params))
    bounds = [(lo, min(N, lo + chunk)) for lo in range(0, N, chunk)]
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported by the caller
        if threads > 1 and len(bounds) > 1:
            pool = ThreadPoolExecutor(max_workers=min(threads, len(bounds)))
            try:
                for f in [pool.submit(_chunk_rows, policy, theta, traj, w, lo, hi, rows) for lo, hi in bounds]:
                    f.result()
            finally:  # on an error or Ctrl-C the chunks not started yet are dropped
                pool.shutdown(wait=True, cancel_futures=True)
        else:
            for lo, hi in bounds:
                _chunk_rows(policy, theta, traj, w, lo, hi, rows)
    return rows


def canonical_sums(cols: NDArray[np.float64]) -> NDArray[np.float64]:
    """The sum over the rows of ``cols`` (N, k) on the estimators' block grid: each block's rows
    in index order, then the blocks along the canonical binary tree of reduce.hpp (node (l, i) =
    node (l - 1, 2i) + node (l - 1, 2i + 1); a missing right child keeps the left). Depends on N
    only, never on threads."""
    N = cols.shape[0]
    block, blocks = _core.estimators.estimator_grid(N)
    level = [np.add.reduce(cols[b * block: min(N, (b + 1) * block)], axis=0) for b in range(blocks)]
    while len(level) > 1:
        level = [level[i] + level[i + 1] if i + 1 < len(level) else level[i] for i in range(0, len(level), 2)]
    out: NDArray[np.float64] = level[0]
    return out


def reduce_rows(rows: NDArray[np.float64], R: NDArray[np.float64], with_se: bool) -> tuple[
        NDArray[np.float64], NDArray[np.float64], float, float]:
    """(sum, sum of squares, return sum, return sum of squares) over trajectories, canonically."""
    p = rows.shape[1]
    with np.errstate(over="ignore", invalid="ignore"):
        parts = [rows, (rows * rows) if with_se else np.zeros((rows.shape[0], 0)), R[:, None], (R * R)[:, None]]
        tot = canonical_sums(np.concatenate(parts, axis=1))
    sums = tot[:p]
    sumsq = tot[p: 2 * p] if with_se else np.zeros(p)
    return sums, sumsq, float(tot[-2]), float(tot[-1])


def _prepare(policy: Any, traj: Any, threads: Any, name: str = "policy") -> int:
    check_policy(policy, traj, name)
    if traj.n == 0:
        raise ValueError("traj holds no trajectories (N = 0); an estimate needs at least one")
    return as_threads(threads)


# -- the estimators -----------------------------------------------------------------------------------


def policy_gradient(
    policy: Any,
    traj: ContinuousTrajectories,
    *,
    weights: str = "reward_to_go",
    baseline: Any = None,
    gamma: float | None = None,
    per_trajectory: bool = False,
    mdp: Any = None,
    n: int | None = None,
    seed: int | None = None,
    threads: int | None = None,
    stderr: bool = True,
) -> PolicyGradient:
    """:func:`pgfast.policy_gradient` on a :class:`ContinuousTrajectories` batch (its docstring
    and :doc:`/guide/continuous` state the estimator)."""
    _no_fused_arguments(mdp, n, seed)
    nthreads = _prepare(policy, traj, threads)
    kind = weights_kind(weights)
    with_se = as_bool(stderr, "stderr")
    keep = as_bool(per_trajectory, "per_trajectory")
    g = as_gamma(gamma, traj.gamma)
    _warn_diverged(traj)
    w, R = step_weights(traj, kind, baseline, g)
    rows = trajectory_rows(policy, traj, w, nthreads)
    sums, sumsq, rs, rq = reduce_rows(rows, R, with_se)
    return gradient_result(policy, traj.n, sums, sumsq, rs, rq, rows if keep else None, n_steps=traj.n_steps,
                           with_stderr=with_se)


def score(policy: Any, traj: ContinuousTrajectories, weights: ArrayLike, *, per_trajectory: bool = False,
          threads: int | None = None) -> NDArray[np.float64] | tuple[NDArray[np.float64], NDArray[np.float64]]:
    """:func:`pgfast.score` on a :class:`ContinuousTrajectories` batch."""
    nthreads = _prepare(policy, traj, threads)
    w = as_float_array(weights, "weights")
    if w.shape != traj.rewards.shape:
        raise ValueError(f"weights must have shape (N, H) = {traj.rewards.shape}, got {w.shape}")
    if not np.all(np.isfinite(w[traj.mask])):
        raise ValueError("weights contains NaN or infinite values")
    keep = as_bool(per_trajectory, "per_trajectory")
    rows = trajectory_rows(policy, traj, np.ascontiguousarray(np.where(traj.mask, w, 0.0)), nthreads)
    with np.errstate(over="ignore", invalid="ignore"):
        grad = canonical_sums(rows) / traj.n
    check_finite_result(grad, "the weighted score", "weights times scores exceed the float64 range")
    grad = grad.reshape(np.shape(policy.theta))
    return (grad, rows) if keep else grad


def step_log_probs(policy: Any, traj: ContinuousTrajectories, name: str = "policy") -> NDArray[np.float64]:
    """log pi(u_{i,t}|x_{i,t}), shape (N, H), 0 past each end."""
    mask = traj.mask
    x = np.where(mask[..., None], traj.states, 0.0)
    u = np.where(mask, traj.actions, 0) if traj.discrete_actions else np.where(mask[..., None], traj.actions, 0.0)
    with np.errstate(over="ignore", invalid="ignore"):
        lp = as_float_array(policy.log_prob(x, u), f"{name}.log_prob(states, actions)")
    if lp.shape != mask.shape:
        raise ValueError(f"{name}.log_prob returned shape {lp.shape}, expected (N, H) = {mask.shape}")
    return np.where(mask, lp, 0.0)


def _gaussian_logpdf(d: NDArray[np.float64], cov: NDArray[np.float64], what: str) -> NDArray[np.float64]:
    """log N(d; 0, cov) over the last axis of d (ValueError for a singular covariance)."""
    lam, V = np.linalg.eigh(cov)
    if lam.min() <= 1e-12 * max(1.0, float(lam.max())):
        raise ValueError(f"the LQR's {what} covariance is singular (smallest eigenvalue {lam.min():.3g}): the "
                         "states have no density under it; pass dynamics=False")
    y = (d @ V) / np.sqrt(lam)
    out: NDArray[np.float64] = -0.5 * np.sum(y * y, axis=-1) - 0.5 * float(np.log(lam).sum()) - 0.5 * len(lam) * np.log(2 * np.pi)
    return out


def log_likelihood(policy: Any, traj: ContinuousTrajectories, *, dynamics: bool = True, mdp: Any = None) -> NDArray[np.float64]:
    r""":func:`pgfast.log_likelihood` on a :class:`ContinuousTrajectories` batch:
    :math:`\sum_{t<\text{len}} \log\pi(u_t|x_t)`, plus with ``dynamics=True`` the LQR's Gaussian
    start density :math:`\log\mathcal N(x_0; \bar x_0, \Sigma_0)` and transition densities
    :math:`\log\mathcal N(x_{t+1}; A x_t + B u_t, \Sigma_w)` for :math:`t + 1 < \text{len}` (the
    batch stores no state after the last action)."""
    check_policy(policy, traj)
    lp: NDArray[np.float64] = step_log_probs(policy, traj).sum(axis=1)
    if not as_bool(dynamics, "dynamics"):
        check_finite_result(lp, "the log-likelihood", "log-probabilities exceed the float64 range")
        return lp
    lqr = traj.source if mdp is None else mdp
    if mdp is not None and (not isinstance(mdp, LQR) or (traj.source is not None and not mdp == traj.source)):
        raise ValueError("mdp must be the batch's source traj.source (a pgfast.LQR) or None: the likelihood is that "
                         "of the system that produced the batch; leave mdp out")
    if not isinstance(lqr, LQR):
        raise ValueError(
            f"dynamics=True needs the batch's dynamics: its source must be a pgfast.LQR with a Gaussian start (x0_cov) "
            f"and process noise (noise_cov), got source {type(lqr).__name__}; pass dynamics=False for the policy terms"
        )
    if lqr.x0_cov is None or lqr.noise_cov is None:
        missing = " and ".join(n for n, v in (("x0_cov", lqr.x0_cov), ("noise_cov", lqr.noise_cov)) if v is None)
        raise ValueError(f"the LQR has no {missing}: its start and transitions have no density; pass dynamics=False "
                         "for the policy terms")
    mask = traj.mask
    if traj.discrete_actions or traj.state_dim != lqr.state_dim or traj.actions.shape[2] != lqr.action_dim:
        raise ValueError("the batch's state and action dimensions do not match its LQR source")
    x, u = traj.states, traj.actions
    start = np.where(traj.lengths > 0, _gaussian_logpdf(x[:, 0] - lqr.x0, lqr.x0_cov, "start"), 0.0) if traj.horizon else 0.0
    pred = x[:, :-1] @ lqr.A.T + u[:, :-1] @ lqr.B.T
    trans = _gaussian_logpdf(np.where(mask[:, 1:, None], x[:, 1:] - pred, 0.0), lqr.noise_cov, "process noise")
    out = lp + start + np.where(mask[:, 1:], trans, 0.0).sum(axis=1)
    check_finite_result(out, "the log-likelihood", "log-densities exceed the float64 range")
    return np.asarray(out, dtype=np.float64)
