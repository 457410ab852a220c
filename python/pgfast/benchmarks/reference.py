"""The NumPy implementations the tests and the benchmarks check and time pgfast against.

Every NumPy yardstick lives here: dense dynamic programs (:func:`finite_horizon_values`,
:func:`step_distributions`), the one :func:`softmax` of the tabular, linear and MLP policies, the
policy-gradient estimators (:func:`softmax_gradient`, :func:`mlp_gradient`) and the vectorised
sampler (:func:`sample_numpy`). Nothing here is clever on purpose, except where a benchmark needs
the best NumPy can do (the sampler, the estimators' weight sums).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    from pgfast import FiniteMDP

_IntArray = NDArray[np.intp]
_Int32Array = NDArray[np.int32]
_FloatArray = NDArray[np.float64]


def dense_arrays(mdp: FiniteMDP) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Dense P (S, A, S) and transition rewards R (S, A, S) from the MDP's CSR storage."""
    S, A = mdp.n_states, mdp.n_actions
    indptr, nxt, _, rew = mdp.transitions
    rows = np.repeat(np.arange(S * A), np.diff(indptr))
    R = np.zeros((S * A, S))
    R[rows, nxt] = rew
    return mdp.P, R.reshape(S, A, S)


def finite_horizon_values(
    mdp: FiniteMDP, probs: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], float]:
    r"""Backward induction with dense arrays: ``(V (H, S), Q (H, S, A), J)``.

    .. math:: Q_t(s,a) = \sum_{s'} P(s'|s,a) \big[R(s,a,s') + \gamma\,(1 - \text{term}(s'))\,V_{t+1}(s')\big],
              \quad V_t(s) = \sum_a \pi(a|s) Q_t(s,a), \quad V_H = 0, \quad J = \mu_0^\top V_0.
    """
    P, R = dense_arrays(mdp)
    S, A, H, g = mdp.n_states, mdp.n_actions, mdp.horizon, mdp.gamma
    alive = 1.0 - mdp.terminal.astype(np.float64)
    V = np.zeros((H + 1, S))
    Q = np.zeros((H, S, A))
    r = (P * R).sum(axis=2)
    for t in range(H - 1, -1, -1):
        Q[t] = r + g * P @ (alive * V[t + 1])
        V[t] = (probs * Q[t]).sum(axis=1)
    return V[:H], Q, float(mdp.mu0 @ V[0])


def step_distributions(mdp: FiniteMDP, probs: NDArray[np.float64]) -> NDArray[np.float64]:
    r"""``d (H, S)``: probability that the episode is still running at step t and in state s."""
    P, _ = dense_arrays(mdp)
    alive = 1.0 - mdp.terminal.astype(np.float64)
    P_pi = np.einsum("sa,sat->st", probs, P)
    d = np.zeros((mdp.horizon, mdp.n_states))
    d[0] = mdp.mu0
    for t in range(1, mdp.horizon):
        d[t] = (d[t - 1] @ P_pi) * alive
    return d


# -- policies ---------------------------------------------------------------------------------------


def softmax(theta: NDArray[np.float64]) -> NDArray[np.float64]:
    """pi(a|s) from logits (S, A), stable (row maximum subtracted), in NumPy: the one softmax of the
    yardsticks (tabular, linear and MLP policies).

    Column-wise maximum and a matrix-vector row sum: NumPy's reductions along a short last axis
    are slow (at S = 100,000, A = 4: 1.8 ms here against 7.1 ms with ``max(axis=1)``/``sum(axis=1)``)."""
    S, A = theta.shape
    if A <= 32:
        m = theta[:, 0].copy()
        for a in range(1, A):
            np.maximum(m, theta[:, a], out=m)
    else:
        m = theta.max(axis=1)
    e: NDArray[np.float64] = theta - m[:, None]
    np.exp(e, out=e)
    e /= (e @ np.ones(A))[:, None]
    return e


# -- the NumPy estimators: the yardsticks of bench/bench_estimators.py and bench/bench_mlp.py ---------

FLAT_BELOW = 0.5  # softmax_gradient works on the real steps only when they fill less of the (N, H) batch
TRANSPOSE_BLOCK = 512  # trajectories per block of the cache-blocked transposes


def policy_probs(theta: _FloatArray, features: _FloatArray | None) -> _FloatArray:
    """The policy table from the parameters: tabular (theta (S, A)) or linear (features (S, A, p))."""
    if features is None:
        return softmax(theta)
    S, A, p = features.shape
    return softmax((features.reshape(S * A, p) @ theta).reshape(S, A))


def _transposed(a: NDArray[Any], dtype: type[np.generic]) -> NDArray[Any]:
    """``a.T`` (H, N) as a C-contiguous copy of ``dtype``, in blocks of trajectories: a plain
    ``a.T.copy()`` of a 13 MB batch is 2x slower (cache misses on the strided side)."""
    n, h = a.shape
    out = np.empty((h, n), dtype=dtype)
    for i in range(0, n, TRANSPOSE_BLOCK):
        out[:, i : i + TRANSPOSE_BLOCK] = a[i : i + TRANSPOSE_BLOCK].T
    return out


def _time_baseline(sum_t: _FloatArray, lengths: _Int32Array, n: int, gamma: float) -> tuple[_FloatArray, _FloatArray]:
    """(alpha_t, beta_t) with w_{i,t} = alpha_t G_{i,t} - beta_t for the leave-one-out time baseline:
    b_{i,t} = (sum_t - G_{i,t}) / (count_t - 1), 0 when no other trajectory runs at t."""
    h = sum_t.size
    count = n - np.cumsum(np.bincount(lengths, minlength=h + 1))[:h].astype(np.float64)  # running at t
    others = count - 1.0
    inv = np.divide(1.0, others, out=np.zeros(h), where=others > 0.0)
    gpow = gamma ** np.arange(h, dtype=np.float64)
    return gpow * (1.0 + inv), gpow * sum_t * inv


def weight_sums_dense(
    states: _Int32Array, actions: _Int32Array, rewards: _FloatArray, lengths: _Int32Array, n_states: int, n_actions: int,
    gamma: float, time_baseline: bool = True,
) -> tuple[_FloatArray, float]:
    """c(s, a) = sum of the weights of the steps (s, a), and the summed returns, over the whole
    (N, H) batch, time-major: blocked transposes, the reward-to-go recursion over the H rows,
    one ``bincount``. Padding (state and action -1) goes to a dropped bin. Weights
    gamma^t (G_t - b_t) with the leave-one-out time baseline, or gamma^t G_t without it."""
    n, h = rewards.shape
    A = n_actions
    G = _transposed(rewards, np.float64)  # (H, N)
    if gamma == 1.0:
        for t in range(h - 2, -1, -1):
            G[t] += G[t + 1]
    else:
        for t in range(h - 2, -1, -1):
            G[t] += gamma * G[t + 1]
    total = float(G[0].sum())
    if time_baseline:
        alpha, beta = _time_baseline(G.sum(axis=1), lengths, n, gamma)
        G *= alpha[:, None]
        G -= beta[:, None]
    elif gamma != 1.0:
        G *= (gamma ** np.arange(h, dtype=np.float64))[:, None]
    code = states * A
    code += actions
    padded = bool(lengths.min() < h)
    if padded:
        code += A + 1  # padding -1 * A - 1 -> bin 0; real pairs from A + 1
    shift = A + 1 if padded else 0
    c = np.bincount(_transposed(code, np.intp).ravel(), weights=G.ravel(), minlength=n_states * A + shift)
    return c[shift:].astype(np.float64, copy=False), total


def weight_sums_flat(
    states: _Int32Array, actions: _Int32Array, rewards: _FloatArray, lengths: _Int32Array, n_states: int, n_actions: int
) -> tuple[_FloatArray, float]:
    """The same for gamma = 1 on the real steps only (``states >= 0``), flattened trajectory by
    trajectory: the reward-to-go is a suffix sum of the flat rewards minus the suffix sum after the
    trajectory, sum_t and the weights by ``bincount`` and gathers over the step index t."""
    n, h = rewards.shape
    real = states >= 0
    r = rewards[real]
    code = states[real] * n_actions
    code += actions[real]
    L = lengths.astype(np.intp)
    ends = np.cumsum(L)
    starts = ends - L
    t = np.arange(r.size) - np.repeat(starts, L)
    suffix = np.cumsum(r[::-1])[::-1]
    after = np.append(suffix, 0.0)[ends]
    G = suffix - np.repeat(after, L)
    total = float(suffix[0]) if r.size else 0.0
    sum_t = np.bincount(t, weights=G, minlength=h).astype(np.float64, copy=False)
    alpha, beta = _time_baseline(sum_t, lengths, n, 1.0)
    G *= alpha[t]
    G -= beta[t]
    c = np.bincount(code, weights=G, minlength=n_states * n_actions).astype(np.float64, copy=False)
    return c, total


def softmax_gradient(
    states: _Int32Array,
    actions: _Int32Array,
    rewards: _FloatArray,
    lengths: _Int32Array,
    probs: _FloatArray,
    features: _FloatArray | None,
    gamma: float,
) -> tuple[_FloatArray, float]:
    r"""REINFORCE with reward-to-go and the leave-one-out time baseline on a padded batch, in NumPy:
    ``(gradient in theta's shape, mean return)``.

    The softmax score is :math:`\nabla z(s,a) - \sum_{a'}\pi(a'|s)\nabla z(s,a')`, so the batch
    gradient in logit coordinates is :math:`g_z(s,a) = (c(s,a) - C(s)\pi(a|s)) / N` with
    :math:`c(s,a)` the summed weights of the steps (s, a) (one ``np.bincount`` over the codes
    ``s*A + a``) and :math:`C(s) = \sum_a c(s,a)`; a linear policy's gradient is
    :math:`\Phi^\top g_z`. Two layouts give the weight sums, the faster taken per batch: the
    real steps flattened (:func:`weight_sums_flat`, gamma = 1 and less than ``FLAT_BELOW`` of
    the (N, H) cells real: FrozenLake, ~14 %: 9.6 against 39 ms at N = 16384) or the whole batch
    time-major (:func:`weight_sums_dense`: the random MDP, ~7 ms at N = 16384, where the flat
    layout takes 27 ms and the plain (N, H) layout with a reversed ``cumsum`` 12 ms).
    """
    n, h = rewards.shape
    S, A = probs.shape
    steps = int(lengths.sum(dtype=np.int64))
    if gamma == 1.0 and steps < FLAT_BELOW * n * h:
        c, total = weight_sums_flat(states, actions, rewards, lengths, S, A)
    else:
        c, total = weight_sums_dense(states, actions, rewards, lengths, S, A, gamma)
    cz = c.reshape(S, A)
    gz = cz - cz.sum(axis=1, keepdims=True) * probs
    gz /= n
    if features is None:
        return gz, total / n
    p = features.shape[2]
    grad: _FloatArray = features.reshape(S * A, p).T @ gz.ravel()
    return grad, total / n


def mlp_forward(layers: list[tuple[_FloatArray, _FloatArray]], X: _FloatArray) -> tuple[list[_FloatArray], _FloatArray]:
    """tanh MLP: (hidden activations, logits) for the rows of X."""
    acts = []
    h = X
    for k, (W, b) in enumerate(layers):
        z = h @ W
        z += b
        if k + 1 < len(layers):
            np.tanh(z, out=z)
            acts.append(z)
        h = z
    return acts, h


def mlp_backward(layers: list[tuple[_FloatArray, _FloatArray]], X: _FloatArray, acts: list[_FloatArray], G: _FloatArray) -> _FloatArray:
    """sum over rows of G(row, a) grad z(row, a), as a flat vector in MLPSoftmax's layout."""
    grads: list[_FloatArray] = []
    delta = G
    for k in range(len(layers) - 1, -1, -1):
        h = X if k == 0 else acts[k - 1]
        grads.append(delta.sum(axis=0))
        grads.append((h.T @ delta).ravel())
        if k > 0:
            delta = (delta @ layers[k][0].T) * (1.0 - h * h)
    return np.concatenate(grads[::-1])


def mlp_gradient(layers: list[tuple[_FloatArray, _FloatArray]], X: _FloatArray, acts: list[_FloatArray], probs: _FloatArray,
                   states: _Int32Array, actions: _Int32Array, rewards: _FloatArray, lengths: _Int32Array,
                   gamma: float) -> tuple[_FloatArray, float]:
    """Reward-to-go gradient without baseline: per-(s, a) weight sums (:func:`weight_sums_dense`), the logit-gradient table, one backward pass."""
    S, A = probs.shape
    n = rewards.shape[0]
    c, total = weight_sums_dense(states, actions, rewards, lengths, S, A, gamma, time_baseline=False)
    cz = c.reshape(S, A)
    gz = cz - cz.sum(axis=1, keepdims=True) * probs
    gz /= n
    return mlp_backward(layers, X, acts, gz), total / n


# -- exact evaluation: the yardsticks of bench/bench_exact.py (SciPy, a test extra, imported when used) --

HIGH_PRECISION_REFINEMENTS = 4
# initial guesses r_pi and mu0 (pgfast's) or zeros (SciPy's default), whichever was faster here:
# bicgstab 119 against 162 ms, gmres 202 against 185 ms (S = 100,000, both systems, rtol 1e-10)
SCIPY_INITIAL_GUESS = {"bicgstab": True, "gmres": False}


@dataclass
class ExactResult:
    """The outputs both sides produce: evaluation fields and the gradient (theta's shape)."""

    J: float
    V: _FloatArray
    Q: _FloatArray
    A: _FloatArray
    d: _FloatArray
    visitation: _FloatArray
    grad: _FloatArray


@dataclass
class ReferenceTables:
    """MDP-level arrays of the references, built once before timing (pgfast builds its CSR with
    the ``FiniteMDP``). Transitions out of terminal states and into them are zeroed ("alive")."""

    n_states: int
    n_actions: int
    horizon: int
    mu0: _FloatArray
    rows: NDArray[np.int64]  # (s, a) row of every stored entry
    src: NDArray[np.int64]  # s of every entry
    nxt: NDArray[np.int32]
    counts: NDArray[np.int64]  # entries per (s, a) row
    starts: NDArray[np.int64]  # first entry of every row (for np.add.reduceat)
    empty: NDArray[np.bool_]  # rows without entries
    prob_live: _FloatArray  # P(s'|s,a) alive(s') alive(s) per entry
    r_live: _FloatArray  # r(s, a), 0 on terminal s, (S, A)
    pair: NDArray[np.int64] | None = None  # s * S + s' per entry (dense P_pi by bincount)
    PT_live: _FloatArray | None = None  # dense (S, S*A): PT[s', (s,a)] = prob_live
    indptr_state: NDArray[Any] | None = None  # CSR of P_pi over states (sparse)
    nxt_index: NDArray[Any] | None = None
    P_live: Any = None  # SciPy CSR (S*A, S) of prob_live (sparse)

    @classmethod
    def build(cls, mdp: FiniteMDP, *, dense: bool) -> ReferenceTables:
        import scipy.sparse as sps  # type: ignore[import-untyped,unused-ignore]

        S, A = mdp.n_states, mdp.n_actions
        indptr, nxt, prob, _ = mdp.transitions
        counts = np.diff(indptr)
        rows = np.repeat(np.arange(S * A, dtype=np.int64), counts)
        src = rows // A
        alive = 1.0 - mdp.terminal.astype(np.float64)
        prob_live = prob * alive[nxt] * alive[src]
        r_live = mdp.R * alive[:, None]
        nnz = int(prob.size)
        tb = cls(
            n_states=S,
            n_actions=A,
            horizon=mdp.horizon,
            mu0=np.array(mdp.mu0, dtype=np.float64),
            rows=rows,
            src=src,
            nxt=np.array(nxt),
            counts=counts,
            starts=np.array(indptr[:-1], dtype=np.int64),
            empty=counts == 0,
            prob_live=prob_live,
            r_live=r_live,
        )
        if dense:
            tb.pair = src * S + nxt
            PT = np.zeros((S, S * A))
            PT[nxt, rows] = prob_live
            tb.PT_live = PT
        else:
            idx = np.int32 if nnz < 2**31 else np.int64
            tb.indptr_state = np.ascontiguousarray(indptr[::A], dtype=idx)
            tb.nxt_index = np.ascontiguousarray(nxt, dtype=idx)
            tb.P_live = sps.csr_matrix(
                (prob_live, tb.nxt_index, np.ascontiguousarray(indptr, dtype=idx)), shape=(S * A, S)
            )
        return tb


def _dense_chain(tb: ReferenceTables, probs: _FloatArray) -> _FloatArray:
    """P_pi^alive (S, S), dense, from the CSR entries (one bincount)."""
    S = tb.n_states
    assert tb.pair is not None
    w = tb.prob_live * probs.ravel()[tb.rows]
    P_pi: _FloatArray = np.bincount(tb.pair, weights=w, minlength=S * S).astype(np.float64, copy=False)
    return P_pi.reshape(S, S)


def finite_horizon_numpy(tb: ReferenceTables, theta: _FloatArray, gamma: float, method: str = "dense") -> ExactResult:
    r"""Backward induction for V, Q and forward recursion for d, then A and the gradient.

    .. math:: V_t = r_\pi + \gamma P_\pi V_{t+1},\quad Q_t = r + \gamma P V_{t+1},\quad
              d_{t+1} = d_t P_\pi,\quad \nabla_\theta J(s,a) = \pi(a|s) \sum_t \gamma^t d_t(s) A_t(s,a)

    (P, P_pi with transitions into and out of terminal states zeroed). Methods:

    - ``"dense"`` (the faster: 13-15 ms against ~50 ms on ``random``, one BLAS thread): P_pi
      dense (S, S) by one ``bincount`` over the CSR entries, the two H-step recursions as BLAS
      matrix-vector products (~30 us each at S = 500), and Q for all t at once as one matrix
      product ``V[1:] @ P^T`` with the dense (S, S*A) transpose of P (H x S x SA flops, ~4.6 ms);
    - ``"csr"``: no dense array: per step one gather and one ``bincount`` over the nnz entries
      for V and for d (~0.2 ms each), Q by a gather (H, nnz) and ``np.add.reduceat``.
    """
    S, A, H = tb.n_states, tb.n_actions, tb.horizon
    probs = softmax(theta)
    r_pi = np.einsum("sa,sa->s", probs, tb.r_live)
    V = np.empty((H + 1, S))
    V[H] = 0.0
    d = np.empty((H, S))
    d[0] = tb.mu0
    if method == "dense":
        assert tb.PT_live is not None
        P_pi = _dense_chain(tb, probs)
        gP = P_pi * gamma if gamma != 1.0 else P_pi
        V[H - 1] = r_pi
        for t in range(H - 2, -1, -1):
            np.dot(gP, V[t + 1], out=V[t])
            V[t] += r_pi
        for t in range(1, H):
            np.dot(d[t - 1], P_pi, out=d[t])
        Qf = V[1:] @ tb.PT_live  # (H, S*A): sum_s' P(s'|s,a) V_{t+1}(s')
    elif method == "csr":
        w = tb.prob_live * probs.ravel()[tb.rows]
        for t in range(H - 1, -1, -1):
            V[t] = np.bincount(tb.src, weights=w * V[t + 1][tb.nxt], minlength=S)
            V[t] *= gamma
            V[t] += r_pi
        for t in range(1, H):
            d[t] = np.bincount(tb.nxt, weights=w * d[t - 1][tb.src], minlength=S)
        nnz = tb.nxt.size
        G = np.empty((H, nnz + 1))  # a zero column past the end: rows may start at nnz
        np.multiply(V[1:, tb.nxt], tb.prob_live, out=G[:, :nnz])
        G[:, nnz] = 0.0
        Qf = np.add.reduceat(G, tb.starts, axis=1)
        Qf[:, tb.empty] = 0.0  # reduceat gives G[start] for an empty segment
    else:
        raise ValueError(f"unknown method {method!r}")
    if gamma != 1.0:
        Qf *= gamma
    Qf += tb.r_live.reshape(S * A)
    Q = Qf.reshape(H, S, A)
    Adv = Q - V[:H, :, None]
    wts = d * (gamma ** np.arange(H))[:, None] if gamma != 1.0 else d
    grad = probs * np.einsum("ts,tsa->sa", wts, Adv)
    return ExactResult(float(tb.mu0 @ V[0]), V[:H], Q, Adv, d, d.sum(axis=0), grad)


def _discounted_fields(
    tb: ReferenceTables, probs: _FloatArray, gamma: float, V: _FloatArray, rho: _FloatArray
) -> ExactResult:
    S, A = tb.n_states, tb.n_actions
    if tb.P_live is not None:
        PV = tb.P_live @ V
    else:
        PV = np.bincount(tb.rows, weights=tb.prob_live * V[tb.nxt], minlength=S * A)
    Q = tb.r_live + gamma * PV.reshape(S, A)
    Adv = Q - V[:, None]
    grad = probs * rho[:, None] * Adv
    return ExactResult(float(tb.mu0 @ V), V, Q, Adv, rho / rho.sum(), rho, grad)


def discounted_numpy(tb: ReferenceTables, theta: _FloatArray, gamma: float, method: str = "lu") -> ExactResult:
    r"""Dense direct solves: (I - gamma P_pi) V = r_pi and (I - gamma P_pi)^T rho = mu0, then
    Q = r + gamma P V (CSR gather), A = Q - V, gradient rho(s) pi(a|s) A(s, a).

    Methods: ``"lu"`` (the faster, 3.2-3.4 ms at S = 500): one LU factorisation
    (``scipy.linalg.lu_factor``) used for both systems (``lu_solve``, ``trans=1`` for the
    visitation); ``"solve"``: NumPy only, ``np.linalg.solve`` twice (two factorisations, ~6 ms).
    """
    import scipy.linalg as sla  # type: ignore[import-untyped,unused-ignore]

    S = tb.n_states
    probs = softmax(theta)
    r_pi = np.einsum("sa,sa->s", probs, tb.r_live)
    M = _dense_chain(tb, probs)
    M *= -gamma
    M.flat[:: S + 1] += 1.0
    if method == "lu":
        lu = sla.lu_factor(M, overwrite_a=True, check_finite=False)
        V = sla.lu_solve(lu, r_pi, check_finite=False)
        rho = sla.lu_solve(lu, tb.mu0, trans=1, check_finite=False)
    elif method == "solve":
        V = np.linalg.solve(M, r_pi)
        rho = np.linalg.solve(M.T, tb.mu0)
    else:
        raise ValueError(f"unknown method {method!r}")
    return _discounted_fields(tb, probs, gamma, V, rho)


def _sparse_operators(tb: ReferenceTables, probs: _FloatArray, gamma: float) -> tuple[Any, Any]:
    """LinearOperators x -> (I - gamma P_pi) x and x -> (I - gamma P_pi)^T x on a SciPy CSR P_pi
    (nnz entries, duplicates across actions kept: SciPy's matvec sums them)."""
    import scipy.sparse as sps  # type: ignore[import-untyped,unused-ignore]
    import scipy.sparse.linalg as spla  # type: ignore[import-untyped,unused-ignore]

    S = tb.n_states
    w = tb.prob_live * np.repeat(probs.ravel(), tb.counts)
    P_pi = sps.csr_matrix((w, tb.nxt_index, tb.indptr_state), shape=(S, S))
    P_piT = P_pi.T  # CSC view, no copy

    def mv(x: _FloatArray) -> _FloatArray:
        y: _FloatArray = x - gamma * (P_pi @ x)
        return y

    def mvT(x: _FloatArray) -> _FloatArray:
        y: _FloatArray = x - gamma * (P_piT @ x)
        return y

    op = spla.LinearOperator((S, S), matvec=mv, dtype=np.float64)
    opT = spla.LinearOperator((S, S), matvec=mvT, dtype=np.float64)
    return op, opT


def discounted_scipy(tb: ReferenceTables, theta: _FloatArray, gamma: float, solver: str = "bicgstab",
                     rtol: float = 1e-9) -> ExactResult:
    """SciPy Krylov solves of (I - gamma P_pi) V = r_pi and (I - gamma P_pi)^T rho = mu0 on a
    sparse P_pi (memory O(nnz)), stopping at ||b - A x||_2 <= rtol ||b||_2 from the initial guesses
    r_pi and mu0 (pgfast's); then Q, A and the gradient as :func:`discounted_numpy`.
    ``solver``: ``"bicgstab"`` or ``"gmres"`` (restart 20, SciPy's default)."""
    import scipy.sparse.linalg as spla  # type: ignore[import-untyped,unused-ignore]

    probs = softmax(theta)
    r_pi = np.einsum("sa,sa->s", probs, tb.r_live)
    op, opT = _sparse_operators(tb, probs, gamma)
    solve = {"bicgstab": spla.bicgstab, "gmres": spla.gmres}[solver]
    guess = SCIPY_INITIAL_GUESS[solver]
    V, info_v = solve(op, r_pi, x0=r_pi.copy() if guess else None, rtol=rtol, atol=0.0)
    rho, info_r = solve(opT, tb.mu0, x0=tb.mu0.copy() if guess else None, rtol=rtol, atol=0.0)
    if info_v != 0 or info_r != 0:
        raise RuntimeError(f"scipy {solver} did not converge to rtol={rtol:g} (info {info_v}, {info_r})")
    return _discounted_fields(tb, probs, gamma, V, rho)


def _refined_solve(op: Any, b: _FloatArray) -> _FloatArray:
    """GMRES(50) to a relative residual of 1e-12, then iterative refinement (residual, correction
    solve to 1e-8) while the residual keeps falling: down to the round-off of the residual itself."""
    import scipy.sparse.linalg as spla  # type: ignore[import-untyped,unused-ignore]

    x, _ = spla.gmres(op, b, rtol=1e-12, atol=0.0, restart=50, maxiter=100)
    res = float(np.abs(b - op.matvec(x)).max())
    for _ in range(HIGH_PRECISION_REFINEMENTS):
        r = b - op.matvec(x)
        e, _ = spla.gmres(op, r, rtol=1e-8, atol=0.0, restart=50, maxiter=100)
        y = x + e
        res_y = float(np.abs(b - op.matvec(y)).max())
        if res_y >= res:
            break
        x, res = y, res_y
    out: _FloatArray = x
    return out


def discounted_high_precision(
    tb: ReferenceTables, theta: _FloatArray, gamma: float
) -> tuple[ExactResult, dict[str, float]]:
    r"""The solutions the sides are checked against: GMRES plus iterative refinement
    (:func:`_refined_solve`), with certified errors from the final residuals r:
    :math:`\|V - V^*\|_\infty \le \|r\|_\infty / (1-\gamma)` since :math:`\|P_\pi\|_\infty \le 1`, and
    :math:`\|\rho - \rho^*\|_1 \le \|r\|_1 / (1-\gamma)` for the transposed system."""
    probs = softmax(theta)
    r_pi = np.einsum("sa,sa->s", probs, tb.r_live)
    op, opT = _sparse_operators(tb, probs, gamma)
    V = _refined_solve(op, r_pi)
    rho = _refined_solve(opT, tb.mu0)
    res_v = r_pi - op.matvec(V)
    res_r = tb.mu0 - opT.matvec(rho)
    bound = {
        "V_inf_rel": float(np.abs(res_v).max() / (1.0 - gamma) / np.abs(V).max()),
        "rho_1_rel": float(np.abs(res_r).sum() / (1.0 - gamma) / np.abs(rho).sum()),
        "V_residual_rel": float(np.linalg.norm(res_v) / np.linalg.norm(r_pi)),
        "rho_residual_rel": float(np.linalg.norm(res_r) / np.linalg.norm(tb.mu0)),
    }
    return _discounted_fields(tb, probs, gamma, V, rho), bound


# -- the vectorised NumPy sampler: the yardstick of bench/bench_sampler.py --------------------------

# step(base, uniforms, m, out) -> next base: writes the m recorded codes into out
_Step = Callable[[_IntArray, _FloatArray, int, _IntArray], _IntArray]


def alias_tables(p: ArrayLike) -> tuple[_FloatArray, _IntArray]:
    r"""Walker alias tables for every row of ``p`` (R, K) at once: ``thr`` (R, K), ``alias`` (R, K).

    With :math:`q = K p / \sum p`, a draw picks a column ``j`` uniformly and keeps it if a second
    uniform is below ``thr[j]``, else takes ``alias[j]``; then :math:`P(k) = (\text{thr}_k +
    \sum_{j: \text{alias}_j = k} (1 - \text{thr}_j)) / K = p_k / \sum p` (zero entries get
    ``thr = 0`` and are never an alias, so they are never drawn).

    Vose's construction, vectorised over rows: each row is partitioned (stably) into the smalls
    (``q < 1``) then the larges; pointer ``i`` walks the smalls from the left, pointer ``j`` the
    larges from the right, ``r`` being the residual of large ``j``. If ``r >= 1``, small ``i`` is
    finished (``thr = q_i``, ``alias = j``) and ``r -= 1 - q_i``; otherwise large ``j`` is finished
    (``thr = r``, ``alias = j - 1``) and ``j - 1`` goes on with ``r = q_{j-1} - (1 - r)``. One
    column of every row is finished per pass: K - 1 passes of 1-D operations over R rows.
    """
    q = np.array(p, dtype=np.float64, ndmin=2)
    R, K = q.shape
    q *= K / q.sum(axis=1, keepdims=True)
    small = q < 1.0
    n_small = small.sum(axis=1)
    off = np.arange(R) * K
    pos = np.where(small, np.cumsum(small, axis=1) - 1, n_small[:, None] + np.cumsum(~small, axis=1) - 1)
    order = np.empty(R * K, dtype=np.intp)  # partitioned flat slot -> flat (row, column)
    order[(pos + off[:, None]).ravel()] = np.arange(R * K)
    qs = q.ravel().take(order)
    thr = np.ones(R * K)
    alias = np.arange(R * K)  # in partitioned slots until the end
    i = off.copy()
    j = off + (K - 1)
    r = qs.take(j)
    for _ in range(K - 1):
        big = r >= 1.0
        done = np.where(big, i, j)
        qi = qs.take(i)
        thr[done] = np.where(big, qi, r)
        not_big = ~big
        alias[done] = j - not_big
        j -= not_big
        r += np.where(big, qi, qs.take(j)) - 1.0
        i += big
    thr[j] = 1.0
    alias[j] = j
    thr_out = np.empty(R * K)
    alias_out = np.empty(R * K, dtype=np.intp)
    thr_out[order] = thr
    alias_out[order] = order.take(alias)
    # rounding can leave a residual just below 1 aliased to a zero-probability column: keep it
    thr_out[q.ravel().take(alias_out) == 0.0] = 1.0
    alias_out -= np.repeat(off, K)
    return thr_out.reshape(R, K), alias_out.reshape(R, K)


def _cdf_columns(p: _FloatArray) -> list[_FloatArray]:
    """Columns 0..K-2 of the row CDFs of ``p`` (R, K), each contiguous (R,); 2.0 where no mass is left."""
    c = np.cumsum(p, axis=1) / p.sum(axis=1, keepdims=True)
    rest = np.cumsum(p[:, ::-1], axis=1)[:, ::-1]  # rest[:, k] = sum_{l >= k} p
    c = np.where(rest[:, 1:] > 0.0, c[:, :-1], 2.0)
    return [np.ascontiguousarray(c[:, k]) for k in range(p.shape[1] - 1)]


class _Codes:
    """Lookup tables over the codes a sampler records per step (one code = one transition slot).

    ``state``, ``action``, ``reward`` decode a code (padding: -1, -1, 0.0, also at code -1);
    ``next_base`` is the next state times the sampler's multiplier; ``next_terminal`` flags codes
    that enter a terminal state.
    """

    __slots__ = ("state", "action", "reward", "next_base", "next_terminal")

    def __init__(self, tables: SamplerTables, slot: _IntArray, mult: int) -> None:
        nxt = tables.next.take(slot)
        self.state = np.append(tables.state_of.take(slot), np.int32(-1))
        self.action = np.append(tables.action_of.take(slot), np.int32(-1))
        self.reward = np.append(tables.reward.take(slot), 0.0)
        self.next_base = nxt * mult
        self.next_terminal = tables.terminal.take(nxt)


def _pairs(first: _IntArray, second: _IntArray) -> _IntArray:
    """Interleave: ``out[2c] = first[c]``, ``out[2c + 1] = second[c]``."""
    out = np.empty((first.size, 2), dtype=np.intp)
    out[:, 0] = first
    out[:, 1] = second
    return out.ravel()


class SamplerTables:
    """The MDP-level tables of :func:`sample_numpy`, built once per MDP (as pgfast builds its own).

    Transitions padded to ``width`` K = the longest CSR row: ``prob`` (S*A, K), and flat over the
    slot ``(s*A + a)*K + k``: ``next`` (intp), ``reward``, ``state_of`` / ``action_of`` (int32, -1
    in the rows of terminal states). Terminal states are made absorbing (uniform over their K
    slots, each a self-loop with reward 0), so a finished episode can keep stepping harmlessly
    until it is dropped from the batch; its codes decode to padding. ``mu0`` is held as alias
    tables. Successor alias / CDF tables are built on first use and kept.
    """

    def __init__(self, mdp: FiniteMDP) -> None:
        S, A, H = mdp.n_states, mdp.n_actions, mdp.horizon
        indptr, nxt, prob, rew = mdp.transitions
        lens = np.diff(indptr)
        K = max(int(lens.max()), 1)
        rows = np.repeat(np.arange(S * A), lens)
        col = np.arange(nxt.size) - indptr[rows]
        P = np.zeros((S * A, K))
        N = np.zeros((S * A, K), dtype=np.intp)
        Rw = np.zeros((S * A, K))
        P[rows, col] = prob
        N[rows, col] = nxt
        Rw[rows, col] = rew
        term = np.array(mdp.terminal, dtype=np.bool_)
        ts = np.flatnonzero(term)
        P.reshape(S, A, K)[ts] = 1.0 / K
        N.reshape(S, A, K)[ts] = ts[:, None, None]
        Rw.reshape(S, A, K)[ts] = 0.0
        self.n_states, self.n_actions, self.width, self.horizon = S, A, K, H
        self.prob = P
        self.next = N.ravel()
        self.reward = Rw.ravel()
        self.terminal = term
        self.any_terminal = bool(ts.size)
        self.state_of = np.repeat(np.where(term, -1, np.arange(S)).astype(np.int32), A * K)
        action = np.where(term[:, None, None], -1, np.arange(A)[None, :, None])
        self.action_of = np.repeat(action, K, axis=2).astype(np.int32).ravel()
        thr, alias = alias_tables(np.asarray(mdp.mu0, dtype=np.float64))
        self.mu0_thr = (thr + np.arange(S)).ravel()
        self.mu0_alias = alias.ravel()
        self._succ_alias: tuple[_FloatArray, _Codes] | None = None
        self._succ_cdf: tuple[list[_FloatArray], _Codes] | None = None

    def successor_alias(self) -> tuple[_FloatArray, _Codes]:
        """Alias tables of P(.|s, a) over the slots: (column + thr) per slot, and the codes."""
        if self._succ_alias is None:
            S, A, K = self.n_states, self.n_actions, self.width
            thr, alias = alias_tables(self.prob)
            slots = np.arange(S * A * K)
            codes = _Codes(self, _pairs(slots, (alias + np.arange(S * A)[:, None] * K).ravel()), A)
            self._succ_alias = ((thr + np.arange(K)).ravel(), codes)
        return self._succ_alias

    def successor_cdf(self) -> tuple[list[_FloatArray], _Codes]:
        """CDF columns of P(.|s, a) (padded with 2.0) and the codes (the slot itself)."""
        if self._succ_cdf is None:
            S, A, K = self.n_states, self.n_actions, self.width
            self._succ_cdf = (_cdf_columns(self.prob), _Codes(self, np.arange(S * A * K), 1))
        return self._succ_cdf


def _prepare(
    tables: SamplerTables, probs: _FloatArray, method: str
) -> tuple[_Codes, int, int, _Step]:
    """Per-call (policy) tables and the step of one method: (codes, base multiplier, uniforms per step, step)."""
    S, A, K = tables.n_states, tables.n_actions, tables.width
    AK = A * K
    pr = np.array(probs, dtype=np.float64)
    pr[tables.terminal] = 1.0  # any valid row: terminal states only absorb
    if method == "joint":
        # one alias table over (a, k) per state: pi(a|s) P(k-th successor | s, a)
        joint = (pr[:, :, None] * tables.prob.reshape(S, A, K)).reshape(S, AK)
        thr, alias = alias_tables(joint)
        thr_j = (thr + np.arange(AK)).ravel()
        codes = _Codes(tables, _pairs(np.arange(S * AK), (alias + np.arange(S)[:, None] * AK).ravel()), AK)
        nb = codes.next_base

        def step_joint(base: _IntArray, x: _FloatArray, m: int, out: _IntArray) -> _IntArray:
            x *= AK
            cell = x.astype(np.intp)
            cell += base  # s*AK + column
            go_alias = x >= thr_j.take(cell)
            np.add(cell, cell, out=out)
            out += go_alias  # code = 2*cell + (alias taken)
            return nb.take(out)

        return codes, AK, 1, step_joint
    if method == "alias":
        s_thr, codes = tables.successor_alias()
        thr, alias = alias_tables(pr)
        a_thr = (thr + np.arange(A)).ravel()
        rowK = _pairs(np.arange(S * A) * K, (alias + np.arange(S)[:, None] * A).ravel() * K)
        nb = codes.next_base

        def step_alias(base: _IntArray, x: _FloatArray, m: int, out: _IntArray) -> _IntArray:
            xa, xs = x[:m], x[m:]
            xa *= A
            cell = xa.astype(np.intp)
            cell += base  # s*A + column
            go_alias = xa >= a_thr.take(cell)
            cell += cell
            cell += go_alias
            row = rowK.take(cell)  # (s*A + a) * K
            xs *= K
            row += xs.astype(np.intp)
            go_alias = xs >= s_thr.take(row)
            np.add(row, row, out=out)
            out += go_alias
            return nb.take(out)

        return codes, A, 2, step_alias
    if method == "cdf":
        s_cols, codes = tables.successor_cdf()
        a_cols = _cdf_columns(pr)
        nb = codes.next_base

        def step_cdf(s: _IntArray, x: _FloatArray, m: int, out: _IntArray) -> _IntArray:
            xa, xs = x[:m], x[m:]
            row = s * A
            for c in a_cols:  # a = #{k < A-1 : CDF_k(s) <= u}
                row += c.take(s) <= xa
            np.multiply(row, K, out=out)
            for c in s_cols:
                out += c.take(row) <= xs
            return nb.take(out)

        return codes, 1, 2, step_cdf
    raise ValueError(f"method must be 'auto', 'joint', 'alias' or 'cdf', got {method!r}")


def auto_method(tables: SamplerTables, n: int) -> str:
    """The method ``sample_numpy(method="auto")`` uses: ``"joint"`` when the work ``n * H`` is at
    least 8 times the per-call table ``S * A * K``, else ``"alias"``."""
    S, A, K, H = tables.n_states, tables.n_actions, tables.width, tables.horizon
    return "joint" if n * H >= 8 * S * A * K else "alias"


def sample_numpy(
    mdp: FiniteMDP,
    probs: ArrayLike,
    n: int,
    rng: np.random.Generator,
    *,
    method: str = "auto",
    tables: SamplerTables | None = None,
    compact_below: float = 0.5,
) -> tuple[NDArray[np.int32], NDArray[np.int32], _FloatArray, NDArray[np.int32], NDArray[np.int32]]:
    r"""Sample ``n`` episodes with NumPy alone, as fast as NumPy allows: the sampler's yardstick.

    Same distribution and layout as ``mdp.sample``: :math:`s_0 \sim \mu_0`,
    :math:`a_t \sim` ``probs[s_t]``, :math:`s_{t+1} \sim P(\cdot|s_t, a_t)`,
    :math:`r_t = R(s_t, a_t, s_{t+1})`; an episode ends on entering a terminal state or at
    t = H. Returns ``states``, ``actions`` (int32 (n, H), -1 past the end), ``rewards``
    (float64 (n, H), 0.0 past the end), ``lengths`` and ``final_states`` (int32 (n,), the state
    entered by the last step). Uniforms come from ``rng.random``; draws differ from pgfast's.

    Technique. The whole batch of live episodes moves one step per iteration with a handful
    of 1-D NumPy calls; nothing loops over episodes or over the entries of a distribution:

    - ``method="joint"``: per call, one alias table per state over the A*K pairs
      (action, successor slot) with probability :math:`\pi(a|s) P(s'_k|s, a)`. A step is one
      uniform x: ``j = floor(AK x)``, ``cell = s*AK + j``, ``code = 2 cell + (AK x >= j + thr[cell])``
      and ``s' = next[code]``: 9 calls, all branch-free (``np.where`` / masked copies on
      random masks are 5-10x slower than arithmetic, so choices are folded into indices).
    - ``method="alias"``: an alias draw of the action (per-call tables), then one of the
      successor (MDP-level tables): two uniforms and 17 calls per step, but no per-call table
      over A*K columns.
    - ``method="cdf"``: CDF columns (padded with 2.0, never reached) and
      ``a = sum_k [CDF_k(s) <= u]`` column by column with 1-D ``take`` (inverse-CDF sampling by
      comparisons), then the same for the successor: (A + K) * 3 calls per step.
    - ``"auto"`` (default, :func:`auto_method`) takes ``joint`` when the work ``n * H`` is at
      least 8 times the per-call table ``S * A * K``, else ``alias``: the faster of the two in
      bench/bench_sampler.py.

    The code of each step is written to a time-major block (one row per step, no scatter);
    states, actions and rewards are decoded from it by three ``take`` calls and a transpose
    when the block is flushed. Termination: terminal states absorb, so finished episodes may
    keep stepping; the live set is compacted (and the block flushed) only when fewer than
    ``compact_below`` of the stepping episodes are still running. On FrozenLake 8x8 (H = 200,
    mean length 28), 0.5 is 1.3-1.6x faster than compacting at every death (``1.0``) and
    2-2.6x faster than never compacting (``0.0``: masking, every episode runs to H).

    ``tables`` (``SamplerTables(mdp)``) holds the MDP-level tables, like pgfast's own tables
    built with the MDP; pass it to keep that set-up out of timed calls. The per-call policy
    tables are always built inside the call, as pgfast builds its own.
    """
    if tables is None:
        tables = SamplerTables(mdp)
    S, A, H = tables.n_states, tables.n_actions, tables.horizon
    p = np.asarray(probs, dtype=np.float64)
    if p.shape != (S, A):
        raise ValueError(f"probs must have shape (S, A) = ({S}, {A}), got {p.shape}")
    if method == "auto":
        method = auto_method(tables, n)
    codes, mult, per_step, step = _prepare(tables, p, method)
    state_of, action_of, reward_of = codes.state, codes.action, codes.reward
    enters_terminal = codes.next_terminal

    if tables.any_terminal:  # padding is only written where episodes end early
        states = np.full((n, H), -1, dtype=np.int32)
        actions = np.full((n, H), -1, dtype=np.int32)
        rewards = np.zeros((n, H))
    else:  # every entry is written
        states = np.empty((n, H), dtype=np.int32)
        actions = np.empty((n, H), dtype=np.int32)
        rewards = np.empty((n, H))
    final = np.empty(n, dtype=np.int32)
    x = np.empty(per_step * n)

    x0 = x[:n]
    rng.random(out=x0)
    x0 *= S
    cell = x0.astype(np.intp)
    base = np.where(x0 >= tables.mu0_thr.take(cell), tables.mu0_alias.take(cell), cell) * mult

    def new_block(m: int, rows: int) -> _IntArray:
        width = m + 8 if m % 64 == 0 else m  # a row stride of a power of two thrashes the cache
        return np.empty((rows, width), dtype=np.intp)[:, :m]

    def flush(block: _IntArray, t0: int, t1: int, idx: _IntArray | None) -> None:
        codes_t = np.ascontiguousarray(block[: t1 - t0].T)  # (m, t1 - t0)
        if idx is None and t0 == 0 and t1 == H:
            np.take(state_of, codes_t, out=states, mode="clip")
            np.take(action_of, codes_t, out=actions, mode="clip")
            np.take(reward_of, codes_t, out=rewards, mode="clip")
        else:
            rows = slice(None) if idx is None else idx
            states[rows, t0:t1] = state_of.take(codes_t)
            actions[rows, t0:t1] = action_of.take(codes_t)
            rewards[rows, t0:t1] = reward_of.take(codes_t)

    idx: _IntArray | None = None  # global index of the stepping episodes (None: all of them)
    m, t0 = n, 0
    block = new_block(m, H)
    for t in range(H):
        xm = x[: per_step * m]
        rng.random(out=xm)
        out = block[t - t0]
        base = step(base, xm, m, out)
        if tables.any_terminal:
            done = enters_terminal.take(out)
            n_done = int(np.count_nonzero(done))
            if n_done and m - n_done < compact_below * m:
                flush(block, t0, t + 1, idx)
                gone, live = np.flatnonzero(done), np.flatnonzero(~done)
                final[gone if idx is None else idx[gone]] = base[gone] // mult
                idx = live if idx is None else idx[live]
                base, m, t0 = base[live], live.size, t + 1
                if m == 0:
                    break
                block = new_block(m, H - t0)
    else:
        flush(block, t0, H, idx)
    if m:
        final[slice(None) if idx is None else idx] = base // mult
    if tables.any_terminal:
        lengths = np.count_nonzero(states >= 0, axis=1).astype(np.int32)
    else:
        lengths = np.full(n, H, dtype=np.int32)
    return states, actions, rewards, lengths, final


def lqr_policy_gradient(
    A: _FloatArray, B: _FloatArray, Q: _FloatArray, R: _FloatArray, x0: _FloatArray, start_factor: _FloatArray | None,
    noise_factor: _FloatArray | None, W: _FloatArray, sigma: _FloatArray, horizon: int, n: int,
    rng: np.random.Generator, chunk: int = 1024,
) -> tuple[_FloatArray, _FloatArray, float]:
    r"""The REINFORCE estimate with reward-to-go weights (:math:`\gamma = 1`, no baseline) of a
    linear-Gaussian policy :math:`u = W x + \sigma \varepsilon` on an LQR, vectorised over the
    trajectories: ``(grad, stderr, mean return)``, ``grad`` over ``[W.ravel(), log_std]``.

    Chunks of ``chunk`` trajectories are simulated step by step with matrix products (states
    ``(chunk, n)``), their states and action noise kept as ``(chunk, H, n)`` / ``(chunk, H, m)``; then
    each trajectory's W block is one ``(m, H)(H, n)`` product (batched ``matmul``) of the weighted
    noise :math:`G_t \varepsilon_t / \sigma` and the states, and its log_std block
    :math:`\sum_t G_t (\varepsilon_t^2 - 1)`. The start is :math:`x_0 + C_0 z`, the process noise
    :math:`C_w \xi_t` (factors of the covariances, or None).
    """
    nx, m, H = A.shape[0], B.shape[1], horizon
    AT, BT, WT = A.T.copy(), B.T.copy(), W.T.copy()
    C0T = None if start_factor is None else start_factor.T.copy()
    CwT = None if noise_factor is None else noise_factor.T.copy()
    rows = np.empty((n, m * nx + m))
    G0 = np.empty(n)
    for c0 in range(0, n, chunk):
        c = min(chunk, n - c0)
        X = np.empty((c, H, nx))
        E = rng.standard_normal((c, H, m))
        r = np.empty((c, H))
        x = np.broadcast_to(x0, (c, nx)).copy()
        if C0T is not None:
            x += rng.standard_normal((c, nx)) @ C0T
        for t in range(H):
            X[:, t] = x
            u = x @ WT
            u += sigma * E[:, t]
            r[:, t] = -(np.einsum("ij,ij->i", x @ Q, x) + np.einsum("ij,ij->i", u @ R, u))
            x = x @ AT
            x += u @ BT
            if CwT is not None:
                x += rng.standard_normal((c, nx)) @ CwT
        G = np.cumsum(r[:, ::-1], axis=1)[:, ::-1]  # reward-to-go
        Ew = E * (G[:, :, None] / sigma)
        rows[c0:c0 + c, : m * nx] = np.matmul(Ew.transpose(0, 2, 1), X).reshape(c, -1)
        rows[c0:c0 + c, m * nx:] = np.einsum("ct,cta->ca", G, E * E - 1.0)
        G0[c0:c0 + c] = G[:, 0]
    return rows.mean(0), rows.std(0, ddof=1) / np.sqrt(n), float(G0.mean())


def closed_form_run(
    P: NDArray[np.float64],
    r: NDArray[np.float64],
    mu0: NDArray[np.float64],
    gamma: float,
    theta: NDArray[np.float64],
    steps: int,
    *,
    update: str = "npg",
    lr: float = 0.1,
    tau: float = 0.0,
    geometric: bool = False,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    r"""``steps`` closed-form updates of tabular softmax logits ``theta`` (S, A) with exact
    discounted values, dense NumPy (no terminal states; probabilities below 1e-300 taken as 0, as
    pgfast does): every step forms :math:`P_\pi` (a batched
    ``matmul``), solves :math:`(I - \gamma P_\pi) V = r_\pi` (``np.linalg.solve``), takes
    :math:`Q = r + \gamma P V` and updates ``theta``. ``update``: ``"npg"`` (natural policy
    gradient, entropy-regularised with ``tau > 0``), ``"pmd_kl"`` or ``"pmd_euclidean"`` (policy
    mirror descent; ``geometric``: :math:`\eta_t = \text{lr}/\gamma^{t-1}`). Returns
    ``(theta, J)`` with ``J`` the ``steps + 1`` values :math:`\mu_0^\top V` before and after each step."""
    S, A = r.shape
    theta = np.array(theta, dtype=np.float64)
    P2 = P.reshape(S * A, S)
    eye = np.eye(S)
    J = np.empty(steps + 1)
    for k in range(steps + 1):
        z = np.exp(theta - theta.max(axis=1, keepdims=True))
        pi = z / z.sum(axis=1, keepdims=True)
        pi[pi < 1e-300] = 0.0  # as pgfast does: keeps subnormal numbers (slow) out of the solve
        P_pi = np.matmul(pi[:, None, :], P)[:, 0, :]
        if tau > 0.0:
            r_pi = (pi * (r - tau * np.log(np.maximum(pi, np.finfo(np.float64).tiny)))).sum(axis=1)
        else:
            r_pi = (pi * r).sum(axis=1)
        V = np.linalg.solve(eye - gamma * P_pi, r_pi)
        J[k] = mu0 @ V
        if k == steps:
            break
        Q = r + gamma * (P2 @ V).reshape(S, A)
        if update == "npg":
            if tau > 0.0:
                theta = theta + (-lr * tau / (1.0 - gamma) * theta + lr / (1.0 - gamma) * Q)
            else:
                theta = theta + lr / (1.0 - gamma) * (Q - V[:, None])
            continue
        eta = lr / gamma ** k if geometric else lr
        if update == "pmd_kl":
            theta = theta + eta * (Q - V[:, None])
        else:
            x = pi + eta * (Q - V[:, None])
            u = -np.sort(-x, axis=1)
            css = np.cumsum(u, axis=1) - 1.0
            ks = np.arange(1, A + 1)
            rho = A - 1 - np.argmax((u - css / ks > 0)[:, ::-1], axis=1)
            shift = css[np.arange(S), rho] / (rho + 1)
            theta = np.log(np.maximum(x - shift[:, None], np.finfo(np.float64).tiny))
    return theta, J
