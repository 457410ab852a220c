r"""The exact oracle of the linear-quadratic regulator: :func:`pgfast.exact.evaluate`,
:func:`pgfast.exact.gradient` and :func:`pgfast.exact.optimal` on a :class:`pgfast.LQR` with a
:class:`pgfast.LinearGaussian` policy (identity features).

Conventions: the policy is :math:`u = W x + \sigma \odot \varepsilon` (the control literature's
:math:`u = -Kx` is :math:`W = -K`), rewards are negative costs, :math:`r_t = -(x_t^\top Q x_t +
u_t^\top R u_t)`, and :math:`J = \mathbb E[\sum_t \gamma^t r_t] \le 0` is maximised. The formulas
are on the theory page (:doc:`/theory`, "The linear-quadratic regulator"); the C++ kernel is
``cpp/include/pgfast/exact/lqr.hpp``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from ._gaussian import LOG_STD_MIN, LinearGaussian
from ._lqr import LQR
from ._validation import (
    as_float,
    as_float_array,
    as_gamma,
    as_int,
    check_allocation,
    check_finite_result,
    require_finite,
    require_instance,
)

#: Relative gradient tolerance of the best stationary gain (:func:`optimal`, finite horizon).
STATIONARY_TOL = 1e-12
#: Iterations of the stationary search at most.
STATIONARY_MAX_ITER = 10_000

_OVERFLOW = "the state second moments or value matrices grow beyond float64 over the horizon: W is unstable"


class _Aliases:
    """The formula symbols ``J`` and ``P`` as read-only aliases of ``value`` and ``value_matrices``."""

    if TYPE_CHECKING:
        value: float
        value_matrices: NDArray[np.float64]

    @property
    def J(self) -> float:
        """Alias of ``value``."""
        return self.value

    @property
    def P(self) -> NDArray[np.float64]:
        """Alias of ``value_matrices``."""
        return self.value_matrices


@dataclass(frozen=True)
class LQREvaluation(_Aliases):
    r"""The exact values of a linear-Gaussian policy on an LQR (:func:`pgfast.exact.evaluate`).

    Finite horizon :math:`H`: :math:`S_t = \mathbb E[x_t x_t^\top]` and :math:`P_t` (with
    :math:`\mathbb E[\sum_{s \ge t} \gamma^{s-t} x_s^\top M x_s \mid x_t] = x_t^\top P_t x_t +`
    const) for :math:`t < H`; discounted: :math:`\Sigma_W = \sum_t \gamma^t S_t` and :math:`P_W`.
    The symbols are read-only aliases: ``J`` = ``value``, ``P`` = ``value_matrices``.

    Attributes
    ----------
    objective : str
        ``"finite_horizon"`` or ``"discounted"``.
    value : float
        :math:`J = \mathbb E[\sum_t \gamma^t r_t]` (alias ``J``; at most 0).
    grad : ndarray
        Shape (n_params,). :math:`\nabla_\theta J` in the order of ``policy.theta``: ``grad_W`` row-major, then
        ``grad_log_std``.
    grad_W : ndarray
        Shape (m, n). :math:`\nabla_W J`.
    grad_log_std : ndarray
        Shape (m,). :math:`\partial J / \partial \log\sigma_i` (0 where ``log_std`` is below its floor
        ``LOG_STD_MIN``, as the policy's score).
    state_cov : ndarray
        Finite horizon: the second moments :math:`S_t = \mathbb E[x_t x_t^\top]`, (H, n, n);
        discounted: :math:`\Sigma_W = \sum_t \gamma^t \mathbb E[x_t x_t^\top]`, (n, n). Second
        moments: with a nonzero mean they include :math:`\mathbb E[x_t]\mathbb E[x_t]^\top`.
    value_matrices : ndarray
        :math:`P_t`, (H, n, n) (finite horizon; :math:`P_H = 0` is left out), or :math:`P_W`,
        (n, n) (alias ``P``).
    spectral_radius : float
        :math:`\rho(\sqrt\gamma (A + BW))` (< 1 for the discounted objective).
    gamma : float
        The discount factor used.

    Examples
    --------
    A scalar system, :math:`x_{t+1} = x_t + u_t`, :math:`u = -x/2 + 0.1\,\varepsilon`: then
    :math:`L = 1/2`, :math:`M = 5/4`, :math:`P = M / (1 - \gamma L^2)`,
    :math:`\Sigma = (1 + \tfrac{\gamma}{1-\gamma} 0.01) / (1 - \gamma L^2)`,
    :math:`J = -M\Sigma - 0.01 / (1 - \gamma)`:

    >>> lqr = pg.LQR([[1.0]], [[1.0]], [[1.0]], [[1.0]], gamma=0.9, horizon=None, x0=[1.0])
    >>> ev = pg.exact.evaluate(lqr, pg.LinearGaussian(1, 1, W=[[-0.5]], log_std=np.log(0.1)))
    >>> round(ev.J, 6), ev.state_cov.round(6), ev.P.round(6)
    (-1.858065, array([[1.406452]]), array([[1.612903]]))
    >>> ev.grad.round(6)  # dJ/dW, dJ/dlog sigma
    array([-0.635172, -0.490323])
    """

    objective: str
    value: float
    grad: NDArray[np.float64]
    grad_W: NDArray[np.float64]
    grad_log_std: NDArray[np.float64]
    state_cov: NDArray[np.float64]
    value_matrices: NDArray[np.float64]
    spectral_radius: float
    gamma: float


@dataclass(frozen=True)
class LQROptimal(_Aliases):
    r"""Optimal control of an LQR (:func:`pgfast.exact.optimal`).

    ``J`` and ``P`` are read-only aliases of ``value`` and ``value_matrices``.

    Attributes
    ----------
    objective : str
        ``"finite_horizon"`` or ``"discounted"``.
    value : float
        The optimal :math:`J^*` (alias ``J``), reached without action noise (noise only adds
        :math:`\operatorname{tr}(RD)` and the cost of the states it moves); over stationary
        policies for the discounted objective, over time-varying ones for the finite horizon.
    W : ndarray
        Discounted: the optimal gain :math:`W^* = -K`, (m, n); finite horizon: the optimal
        time-varying gains :math:`W^*_t`, (H, m, n).
    value_matrices : ndarray
        :math:`P` of the Riccati equation, (n, n), or :math:`P_t` of the backward recursion,
        (H, n, n) (alias ``P``).
    iterations : int
        Doubling and Hewer steps (discounted), or H (finite horizon).
    spectral_radius : float or None
        :math:`\rho(\sqrt\gamma (A + BW^*))` (discounted); None for the finite horizon.
    stationary_W : ndarray or None
        Shape (m, n). Finite horizon: the best stationary gain found (a local maximum of :math:`J(W)` over
        constant gains, by L-BFGS on the exact gradient from :math:`W^*_0`) at the action noise
        ``log_std`` given to :func:`pgfast.exact.optimal`; None for the discounted objective.
    stationary_value : float or None
        :math:`J` of ``stationary_W`` with that action noise (at most ``value``).
    stationary_grad_W : ndarray or None
        Shape (m, n). :math:`\nabla_W J` at ``stationary_W`` (zero to the tolerance when ``stationary_converged``).
    stationary_iterations : int or None
        L-BFGS iterations of the stationary search.
    stationary_converged : bool or None
        Whether :math:`\|\nabla_W J\|_F \max(\|W\|_F, 1) \le` ``tol`` :math:`|J|` was reached.
    gamma : float
        The discount factor used.

    Examples
    --------
    The scalar system :math:`x_{t+1} = x_t + u_t`, :math:`Q = R = 1`, :math:`\gamma = 0.9`: the
    Riccati equation is :math:`0.9 P^2 - 0.8 P - 1 = 0` and :math:`W^* = -0.9P / (1 + 0.9P)`:

    >>> lqr = pg.LQR([[1.0]], [[1.0]], [[1.0]], [[1.0]], gamma=0.9, horizon=None, x0=[1.0])
    >>> best = pg.exact.optimal(lqr)
    >>> best.W.round(6), best.P.round(6), round(best.J, 6)
    (array([[-0.588403]]), array([[1.588403]]), -1.588403)
    """

    objective: str
    value: float
    W: NDArray[np.float64]
    value_matrices: NDArray[np.float64]
    iterations: int
    spectral_radius: float | None
    stationary_W: NDArray[np.float64] | None
    stationary_value: float | None
    stationary_grad_W: NDArray[np.float64] | None
    stationary_iterations: int | None
    stationary_converged: bool | None
    gamma: float

    def policy(self, log_std: ArrayLike = LOG_STD_MIN) -> LinearGaussian:
        """The optimal gain as a :class:`pgfast.LinearGaussian`: ``W`` (discounted) or
        ``stationary_W`` (finite horizon), with the given ``log_std``.

        Parameters
        ----------
        log_std : float or array_like
            Shape (m,). :math:`\\log\\sigma` of the policy (default ``LOG_STD_MIN``: as deterministic as a
            Gaussian policy gets).

        Returns
        -------
        LinearGaussian

        Examples
        --------
        >>> lqr = pg.LQR([[1.0]], [[1.0]], [[1.0]], [[1.0]], gamma=0.9, horizon=None, x0=[1.0])
        >>> pi = pg.exact.optimal(lqr).policy()
        >>> bool(np.allclose(pg.exact.gradient(lqr, pi)[0], 0.0, atol=1e-12))
        True
        """
        W = self.W if self.stationary_W is None else self.stationary_W
        m, n = W.shape
        return LinearGaussian(n, m, W=W, log_std=log_std)


def _objective(lqr: LQR, objective: Any, gamma: Any) -> tuple[str, float]:
    """The objective (the model's own when None: finite horizon with a horizon, else discounted)
    and the discount factor."""
    if objective is None:
        objective = "finite_horizon" if lqr.horizon is not None else "discounted"
    if not isinstance(objective, str) or objective not in ("finite_horizon", "discounted"):
        raise ValueError(f"an LQR has the objectives 'finite_horizon' and 'discounted' (None: the model's own), "
                         f"got {objective!r}")
    g = as_gamma(gamma, lqr.gamma)
    if objective == "finite_horizon" and lqr.horizon is None:
        raise ValueError("objective='finite_horizon' needs an LQR with a horizon; this one has horizon=None "
                         "(use objective='discounted', or lqr.with_options(horizon=H))")
    if objective == "discounted" and g >= 1.0:
        raise ValueError(f"objective='discounted' (the infinite horizon) needs gamma < 1, got gamma = {g}: pass gamma=0.99, "
                         "build the LQR with gamma < 1, or use objective='finite_horizon'")
    return str(objective), g


_F64 = NDArray[np.float64]


def _arrays(lqr: LQR, gamma: float, horizon: int) -> tuple[_F64, _F64, _F64, _F64, _F64, _F64, float, int]:
    """The arguments of the kernel: A, B, Q, R, S_0 = x0 x0' + Sigma_0, Sigma_w, gamma, horizon."""
    n = lqr.state_dim
    S0 = np.outer(lqr.x0, lqr.x0) + (np.zeros((n, n)) if lqr.x0_cov is None else lqr.x0_cov)
    noise = np.zeros((n, n)) if lqr.noise_cov is None else lqr.noise_cov
    return (np.ascontiguousarray(lqr.A), np.ascontiguousarray(lqr.B), np.ascontiguousarray(lqr.Q),
            np.ascontiguousarray(lqr.R), np.ascontiguousarray(S0), np.ascontiguousarray(noise), gamma, horizon)


def check_policy(lqr: LQR, policy: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(W, log_std) of a linear-Gaussian policy that fits the LQR, from one read of ``theta``."""
    require_instance(policy, LinearGaussian, "policy", "a pgfast.LinearGaussian for an LQR")
    if not policy._features.identity:
        raise ValueError(f"the exact LQR oracle needs the identity features (u = W x + noise), got "
                         f"features={policy.features!r}")
    if policy.obs_dim != lqr.state_dim or policy.action_dim != lqr.action_dim:
        raise ValueError(f"the policy has obs_dim={policy.obs_dim}, action_dim={policy.action_dim}; the LQR needs "
                         f"obs_dim = state_dim = {lqr.state_dim} and action_dim = {lqr.action_dim}")
    W, log_std = policy._split()
    return np.ascontiguousarray(W), np.ascontiguousarray(log_std)


def _sigma(log_std: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.ascontiguousarray(np.exp(np.maximum(log_std, LOG_STD_MIN)))


def _check_tables(lqr: LQR, horizon: int, copies: int, gains: bool = False) -> None:
    """MemoryError before the kernel allocates ``copies`` (H + 1, n, n) tables (and the (H, m, n)
    gains)."""
    n, m = lqr.state_dim, lqr.action_dim
    nbytes = 8 * (horizon + 1) * (n * n * copies + (m * n if gains else 0))
    check_allocation(nbytes, f"the exact LQR tables (H={horizon}, n={n}, m={m})", "use a shorter horizon")


def evaluate(lqr: LQR, policy: Any, objective: Any = None, gamma: Any = None, *, tables: bool = True) -> LQREvaluation:
    """The exact :class:`LQREvaluation` (see :func:`pgfast.exact.evaluate`); without ``tables``
    ``state_cov`` and ``value_matrices`` of the finite horizon are left empty (shape (0, n, n))."""
    obj, g = _objective(lqr, objective, gamma)
    W, log_std = check_policy(lqr, policy)
    H = 0 if obj == "discounted" else int(lqr.horizon or 0)
    _check_tables(lqr, H, 2 if tables else 1)
    J, gW, gl, S, P, rho = _core.lqr_exact.evaluate(*_arrays(lqr, g, H), W, _sigma(log_std), tables)
    gl[log_std < LOG_STD_MIN] = 0.0  # sigma does not move below the floor
    what = f"the exact LQR {obj} evaluation"
    for name, value in (("J", J), ("grad_W", gW), ("grad_log_std", gl), ("state_cov", S), ("value_matrices", P)):
        if value is not None:
            check_finite_result(value, f"{what} ({name})", _OVERFLOW)
    n = lqr.state_dim
    empty = np.zeros((0, n, n))
    return LQREvaluation(obj, float(J) + 0.0, np.concatenate([gW.ravel(), gl]), gW, gl, empty if S is None else S,
                         empty if P is None else P, float(rho), g)


def optimal(lqr: LQR, objective: Any = None, gamma: Any = None, *, log_std: Any = None, tol: Any = STATIONARY_TOL,
            max_iter: Any = STATIONARY_MAX_ITER) -> LQROptimal:
    """The exact :class:`LQROptimal` (see :func:`pgfast.exact.optimal`)."""
    obj, g = _objective(lqr, objective, gamma)
    m = lqr.action_dim
    if log_std is None:
        sigma = np.zeros(m)
    else:
        ls = as_float_array(log_std, "log_std", ndim=(0, 1))
        if ls.ndim == 1 and ls.shape != (m,):
            raise ValueError(f"log_std must be a number or have shape (action_dim,) = ({m},), got {ls.shape}")
        require_finite(ls, "log_std")
        sigma = _sigma(np.broadcast_to(ls, (m,)))
    t = as_float(tol, "tol")
    if not 0.0 < t < 1.0:
        raise ValueError(f"tol must be in (0, 1) (the relative gradient norm of the stationary gain), got {t}")
    iters = as_int(max_iter, "max_iter", minimum=0)
    H = 0 if obj == "discounted" else int(lqr.horizon or 0)
    _check_tables(lqr, H, 2, gains=True)  # P_t, and the P_t of the stationary search
    args = _arrays(lqr, g, H)
    J, W, P, iterations, rho = _core.lqr_exact.optimal(*args)
    what = f"the optimal {obj} LQR control"
    for name, value in (("J", J), ("W", W), ("value_matrices", P)):
        check_finite_result(value, f"{what} ({name})", "the Riccati recursion grows beyond float64 over the horizon")
    if H == 0:
        return LQROptimal(obj, float(J) + 0.0, W, P, int(iterations), float(rho), None, None, None, None, None, g)
    Ws, Js, gW, _, its, conv = _core.lqr_exact.best_stationary(*args, np.ascontiguousarray(W[0]), sigma, t, iters)
    return LQROptimal(obj, float(J) + 0.0, W, P, int(iterations), None, Ws, float(Js) + 0.0, gW, int(its), bool(conv), g)
