r"""Exact analysis of a finite MDP under a softmax policy: values, visitation, the stationary
distribution, exact policy gradients, Fisher information, natural gradients, optimal control, and
the exact mean and covariance of the policy gradient estimators.

The yardstick every estimator of pgfast is tested against. The formulas are stated on the theory
page of the documentation (:doc:`/theory`, "The three objectives", "The policy gradient theorem"
and "The natural gradient").
Computed in C++ (``cpp/include/pgfast/exact.hpp``) on the sparse transitions of the MDP.

On a :class:`pgfast.LQR` with a :class:`pgfast.LinearGaussian` policy (identity features),
:func:`evaluate`, :func:`gradient` and :func:`optimal` are exact too: see "The linear-quadratic
regulator" below.

Episodes follow :meth:`pgfast.FiniteMDP.sample`: :math:`s_0 \sim \mu_0`, :math:`a_t \sim \pi(\cdot|s_t)`,
:math:`s_{t+1} \sim P(\cdot|s_t,a_t)`, reward :math:`r_t = R(s_t,a_t,s_{t+1})`; entering a terminal state
ends the episode after that reward. Write :math:`r(s,a) = \sum_{s'} P(s'|s,a) R(s,a,s')` and
:math:`\text{alive}(s) = 1 - \text{terminal}(s)`.

Objectives (``objective=``)
---------------------------

``"finite_horizon"`` (default; what ``mdp.sample`` estimates): :math:`J = \mathbb E[\sum_{t<H}\gamma^t r_t]`,

.. math::
    Q_t(s,a) = \sum_{s'} P(s'|s,a)\,[R(s,a,s') + \gamma\,\text{alive}(s')\,V_{t+1}(s')],\quad
    V_t(s) = \sum_a \pi(a|s) Q_t(s,a),\quad V_H = 0,\quad J = \mu_0^\top V_0,

and :math:`d_t(s) = \Pr(s_t = s,\ \text{episode running})`. Gradient (policy gradient theorem):
:math:`\nabla J = \sum_t \gamma^t \sum_s d_t(s) \sum_a \pi(a|s)\,\nabla\log\pi(a|s)\,Q_t(s,a)`.

``"discounted"`` (:math:`\gamma < 1`, infinite horizon; ``mdp.horizon`` is ignored):
:math:`(I - \gamma P_\pi) V = r_\pi` with :math:`P_\pi(s,s') = \sum_a \pi(a|s) P(s'|s,a)\,\text{alive}(s')`;
visitation :math:`\rho = \mu_0^\top (I - \gamma P_\pi)^{-1}` (:math:`\rho(s) = \sum_t \gamma^t \Pr(s_t = s)`),
``d`` its normalisation; :math:`\nabla J = \sum_s \rho(s) \sum_a \pi\,\nabla\log\pi\,Q`.

``"average_reward"`` and ``"average_value"`` treat the MDP as continuing: entering a terminal state
earns its reward and **restarts from** :math:`\mu_0` (gymnasium's auto-reset). :math:`d` is the
stationary distribution of that chain :math:`\tilde P_\pi` (:math:`d \tilde P_\pi = d`). It must be
unique and the limit of the state distribution: a chain with two closed classes, or a periodic one,
raises ``ValueError``; transient states are allowed (they get :math:`d = 0`).

- ``"average_reward"``: :math:`J_{avR} = \sum_s d(s) \sum_a \pi(a|s) r(s,a)`; ``V`` is the
  differential value :math:`h`, :math:`(I - \tilde P_\pi) h = r_\pi - J`, :math:`d^\top h = 0`;
  :math:`Q(s,a) = r(s,a) - J + \sum_{s'} \tilde P(s'|s,a) h(s')`;
  :math:`\nabla J = \sum_s d(s) \sum_a \pi\,\nabla\log\pi\,Q`.
- ``"average_value"`` (:math:`\gamma < 1`): :math:`J_{avV} = \sum_s d(s) V_\gamma(s)` with
  :math:`V_\gamma` the discounted values above. Both :math:`d` and :math:`V_\gamma` depend on
  :math:`\theta`:

  .. math::
      \nabla J_{avV} = \sum_s \rho_d(s) \sum_a \nabla\pi(a|s)\,Q_\gamma(s,a)
                     + \sum_s d(s) \sum_a \nabla\pi(a|s)\,G(s,a),

  where :math:`\rho_d = d^\top (I - \gamma P_\pi)^{-1}` (discounted visitation started from
  :math:`d`), :math:`G(s,a) = \sum_{s'} \tilde P(s'|s,a)\,g(s')` and :math:`g` solves the Poisson
  equation :math:`(I - \tilde P_\pi) g = V_\gamma - J_{avV}`, :math:`d^\top g = 0`. The second term
  is :math:`(\nabla d)^\top V_\gamma`: differentiating :math:`d(I - \tilde P_\pi) = 0` gives
  :math:`\nabla d\,(I - \tilde P_\pi) = d\,\nabla\tilde P_\pi`, and :math:`g` turns it into a
  product with :math:`d` alone. (Without terminal states :math:`J_{avV} = J_{avR}/(1-\gamma)`.)

In logit coordinates every gradient reads :math:`\partial J/\partial z(s,a) = w(s)\,\pi(a|s)\,
(Q(s,a) - V(s))` (summed over :math:`t` for the finite horizon; ``average_value`` adds the
:math:`G` term); a policy maps it to ``theta`` through its logits (tabular: itself; linear:
:math:`\sum_{s,a} \cdot\,\phi(s,a)`; :class:`pgfast.MLPSoftmax`: one backward pass through the
network, batched over the states). The theorem holds for any differentiable softmax policy: the
exact gradient needs only this vector-Jacobian product of the logits.

Regularised objectives (``regularizer=``)
-----------------------------------------

:func:`evaluate` and :func:`gradient` take ``regularizer=pgfast.Entropy(tau)`` or
``pgfast.LogBarrier(lam)`` for every objective (see :doc:`/theory`, "Regularised objectives"):

- :class:`pgfast.Entropy`: :math:`J_\tau = J + \tau\,\mathbb E[\sum_t \gamma^t
  \mathcal H(\pi(\cdot|s_t))]`, the steps weighted as the objective weighs rewards (the average
  objectives: the stationary mean entropy, resp. the discounted entropy from :math:`s \sim d`).
  It is the objective of the MDP with the soft reward :math:`R(s,a,s') - \tau\log\pi(a|s)`, and so
  is its gradient. ``V`` is the soft value :math:`V_\tau` (the entropy of the first state
  included), ``Q`` the soft action value :math:`Q_\tau(s,a) = r(s,a) + \gamma\,\mathbb E[V_\tau(s')]`
  (the first action's :math:`-\tau\log\pi(a|s)` not included), and ``A = Q - tau log pi - V``, so
  that :math:`\sum_a \pi(a|s) A(s,a) = 0` and :math:`\partial J_\tau/\partial z(s,a) =
  w(s)\,\pi(a|s)\,A(s,a)`. The same per step for the finite horizon; differential for
  ``average_reward`` (:math:`Q_\tau = r - J_\tau + \mathbb E[h(s')]`). Where :math:`\pi(a|s) = 0`
  the log term is 0 (:math:`0\log 0 = 0`); terminal states earn no reward and no entropy.
- :class:`pgfast.LogBarrier`: :math:`J_\lambda = J + \lambda\sum_{s,a}\log\pi(a|s)` (every state,
  terminal ones included: the barrier is a function of the policy alone), gradient
  :math:`\nabla J + \lambda\sum_{s,b} (1 - A\,\pi(b|s))\,\nabla z(s,b)`. ``value`` is
  :math:`J_\lambda`; ``V``, ``Q`` and ``A`` are those of :math:`J`. A policy with a zero probability
  has :math:`J_\lambda = -\infty` (``ValueError``).

``tau = 0`` or ``lam = 0`` gives the results of no regulariser, to the bit. :func:`soft_optimal`
solves the entropy-regularised control problem (soft value iteration).

Solvers (``method=``): ``"dense"`` LU factorisation, ``"sparse"`` restarted GMRES(40) on the CSR
transitions (memory O(nnz + 40 S); converged when the relative residual is at most ``tol``, in
(0, 1e-2]), or ``"auto"`` (dense up to 200 states; GMRES is the faster one beyond). The finite horizon needs no solver:
backward induction costs O(H nnz). ``threads`` (default: all usable cores; at most
``pgfast.MAX_THREADS`` = 256, more raise ``ValueError``) splits the sparse matrix-vector products
of large MDPs (200 000 transitions or more); the results are the same bits for any ``threads``
(each entry of a product is one sum in the order of the transitions; see the exact guide).

The linear-quadratic regulator
------------------------------

For an LQR (:math:`x_{t+1} = Ax_t + Bu_t + w_t`, :math:`r_t = -(x_t^\top Qx_t + u_t^\top Ru_t)`)
and the policy :math:`u = Wx + \sigma\odot\varepsilon` (:math:`W = -K` of the control
literature's :math:`u = -Kx`; :math:`D = \operatorname{diag}(\sigma^2)`), with :math:`L = A + BW`,
:math:`M = Q + W^\top RW`, :math:`\Psi = BDB^\top + \Sigma_w`, :math:`S_0 = \mathbb E[x_0x_0^\top]`:

- ``"finite_horizon"`` (the default for an LQR with a horizon): :math:`S_{t+1} = LS_tL^\top + \Psi`,
  :math:`P_t = M + \gamma L^\top P_{t+1}L` (:math:`P_H = 0`),
  :math:`J = -\sum_{t<H}\gamma^t[\operatorname{tr}(MS_t) + \operatorname{tr}(RD)]`,
  :math:`\nabla_W J = -2\sum_t\gamma^t(RW + \gamma B^\top P_{t+1}L)S_t`,
  :math:`\partial J/\partial\log\sigma_i = -2\sigma_i^2\sum_t\gamma^t(R + \gamma B^\top P_{t+1}B)_{ii}`.
- ``"discounted"`` (:math:`\gamma < 1`; the default for ``horizon=None``): :math:`P_W` and
  :math:`\Sigma_W = \sum_t \gamma^t S_t` solve the Lyapunov equations
  :math:`P = M + \gamma L^\top PL` and :math:`\Sigma = S_0 + \tfrac{\gamma}{1-\gamma}\Psi + \gamma L\Sigma L^\top`
  when :math:`\rho(\sqrt\gamma L) < 1` (otherwise ``ValueError``: J = -inf);
  :math:`J = -\operatorname{tr}(M\Sigma_W) - \operatorname{tr}(RD)/(1-\gamma)`,
  :math:`\nabla_W J = -2(RW + \gamma B^\top P_WL)\Sigma_W`,
  :math:`\partial J/\partial\log\sigma_i = -2\sigma_i^2(R + \gamma B^\top P_WB)_{ii}/(1-\gamma)`.
- :func:`optimal`: the discounted Riccati gain :math:`W^* = -\gamma(R + \gamma B^\top PB)^{-1}B^\top PA`,
  or the finite horizon's time-varying gains by the backward Riccati recursion, and its best
  stationary gain by L-BFGS on the exact gradient.

See :doc:`/theory`, "The linear-quadratic regulator", and the LQR guide. Dense and O(n^3) per step
(per doubling step for the discounted objective); ``method``, ``tol`` and ``threads`` are checked
but do not apply (``tol`` is the stationary search's tolerance in :func:`optimal`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core, _lqr_exact
from ._gaussian import LinearGaussian
from ._lqr import LQR
from ._lqr_exact import LQREvaluation, LQROptimal
from ._mdp import FiniteMDP
from ._policy import LinearSoftmax, SoftmaxPolicy, TabularSoftmax, pinned
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
from ._validation import (
    as_bool,
    as_float,
    as_float_array,
    as_gamma,
    as_int,
    as_rcond,
    as_threads,
    check_allocation,
    check_finite_result,
    require_instance,
)

__all__ = [
    "MAX_COVARIANCE_PARAMS",
    "OBJECTIVES",
    "Evaluation",
    "LQREvaluation",
    "LQROptimal",
    "Moments",
    "Optimal",
    "SoftOptimal",
    "evaluate",
    "fisher",
    "fisher_weights",
    "gradient",
    "moments",
    "natural_gradient",
    "optimal",
    "soft_optimal",
    "stationary_distribution",
]

Objective = Literal["finite_horizon", "discounted", "average_reward", "average_value"]
Method = Literal["auto", "dense", "sparse"]
# The C++ kinds that the objective and method strings name.
_OBJECTIVES = {
    "finite_horizon": _core.exact.Objective.FINITE_HORIZON,
    "discounted": _core.exact.Objective.DISCOUNTED,
    "average_reward": _core.exact.Objective.AVERAGE_REWARD,
    "average_value": _core.exact.Objective.AVERAGE_VALUE,
}
_METHODS = {"auto": _core.exact.Method.AUTO, "dense": _core.exact.Method.DENSE, "sparse": _core.exact.Method.SPARSE}
OBJECTIVES: tuple[str, ...] = tuple(_OBJECTIVES)


class _ModelObjective(str):
    """The default ``objective`` of :func:`evaluate`, :func:`gradient` and :func:`optimal`: the
    string ``"finite_horizon"`` for a FiniteMDP; for an LQR the model's own (discounted when its
    horizon is None), told apart from an explicit ``"finite_horizon"`` by identity."""

    __slots__ = ()


_MODEL_OBJECTIVE = cast(Literal["finite_horizon"], _ModelObjective("finite_horizon"))


def _lqr_objective(objective: Any) -> Any:
    """The objective for the LQR oracle: None (the model's own) for the default."""
    return None if objective is _MODEL_OBJECTIVE else objective


class _ValueAliases:
    """The formula symbols ``J``, ``V`` and ``Q`` as read-only aliases of the full-name fields of
    :class:`Evaluation` and :class:`Optimal`."""

    if TYPE_CHECKING:
        value: float
        state_values: NDArray[np.float64]
        action_values: NDArray[np.float64]

    @property
    def J(self) -> float:
        """Alias of ``value``."""
        return self.value

    @property
    def V(self) -> NDArray[np.float64]:
        """Alias of ``state_values``."""
        return self.state_values

    @property
    def Q(self) -> NDArray[np.float64]:
        """Alias of ``action_values``."""
        return self.action_values


@dataclass(frozen=True)
class Evaluation(_ValueAliases):
    r"""Exact values of a policy under one objective (see the module docstring for each objective).

    Every field has a full name; the symbols of the formulas are read-only aliases of the same
    objects: ``J`` = ``value``, ``V`` = ``state_values``, ``Q`` = ``action_values``, ``A`` =
    ``advantages``, ``d`` = ``state_distribution``.

    Attributes
    ----------
    objective : str
        The objective evaluated.
    value : float
        The objective :math:`J` (alias ``J``).
    state_values : ndarray
        :math:`V` (alias ``V``): (H, S) for ``finite_horizon`` (``state_values[t, s]`` is
        :math:`V_t(s)`), (S,) otherwise: the discounted values (``discounted``, ``average_value``)
        or the differential values of ``average_reward`` (``state_distribution @ V == 0``). On
        terminal states V = Q = 0 (finite horizon, discounted).
    action_values : ndarray
        :math:`Q` (alias ``Q``): (H, S, A) for ``finite_horizon``, (S, A) otherwise; discounted,
        or differential for ``average_reward``.
    advantages : ndarray
        :math:`A = Q - V` (alias ``A``), shaped as ``action_values``.
    state_distribution : ndarray
        :math:`d` (alias ``d``): for ``finite_horizon`` (H, S) with
        ``d[t, s] = Pr(s_t = s, episode running)``; for ``discounted`` the normalised visitation;
        for the average objectives the stationary distribution (S,).
    visitation : ndarray (S,)
        The expected visits: ``d.sum(0)`` (finite horizon), the discounted visitation
        :math:`\rho(s) = \sum_t \gamma^t \Pr(s_t = s)` (``discounted``), the stationary
        distribution (average objectives).
    gamma : float
        The discount factor used.
    regularizer : Entropy, LogBarrier or None
        The regulariser of the objective (default None). With :class:`pgfast.Entropy` ``value``
        is :math:`J_\tau` and ``V``, ``Q``, ``A`` are the soft values, the soft action values
        :math:`Q_\tau(s,a) = r(s,a) + \gamma\,\mathbb E[V_\tau(s')]` and
        :math:`A = Q_\tau - \tau\log\pi - V_\tau` (:math:`\sum_a \pi A = 0`); with
        :class:`pgfast.LogBarrier` ``value`` is :math:`J_\lambda` and ``V``, ``Q``, ``A`` are
        those of :math:`J` (see "Regularised objectives" in the module docstring).

    Examples
    --------
    >>> P = np.zeros((2, 2, 2))
    >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
    >>> P[1, :, 1] = 1.0
    >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
    ...                    terminal=[False, True])
    >>> ev = pg.exact.evaluate(mdp, pg.TabularSoftmax(2, 2), "discounted", gamma=0.5)
    >>> round(ev.value, 6), ev.state_values.round(6)
    (0.666667, array([0.666667, 0.      ]))
    >>> ev.advantages[0].round(6), ev.J == ev.value
    (array([-0.333333,  0.333333]), True)
    """

    objective: str
    value: float
    state_values: NDArray[np.float64]
    action_values: NDArray[np.float64]
    advantages: NDArray[np.float64]
    state_distribution: NDArray[np.float64]
    visitation: NDArray[np.float64]
    gamma: float
    regularizer: Regularizer | None = None

    @property
    def A(self) -> NDArray[np.float64]:
        """Alias of ``advantages``."""
        return self.advantages

    @property
    def d(self) -> NDArray[np.float64]:
        """Alias of ``state_distribution``."""
        return self.state_distribution


@dataclass(frozen=True)
class Optimal(_ValueAliases):
    """Optimal control (:func:`optimal`; see :doc:`/theory`, "Optimal control").

    Every field has a full name; ``J``, ``V`` and ``Q`` are read-only aliases of ``value``,
    ``state_values`` and ``action_values``, as in :class:`Evaluation`.

    Attributes
    ----------
    objective : str
        ``"finite_horizon"`` or ``"discounted"``.
    value : float
        The optimal :math:`J^* = \\mu_0^\\top V^*_0` (alias ``J``).
    state_values : ndarray
        :math:`V^*`, (H, S) for the finite horizon, (S,) discounted (alias ``V``).
    action_values : ndarray
        :math:`Q^*`, (H, S, A) or (S, A) (alias ``Q``).
    actions : ndarray of int32
        The greedy actions: (H, S) for the finite horizon, with ``actions[t, s]`` the action at
        step t; (S,) for the discounted objective.
    iterations : int
        Policy-iteration steps (discounted), or the H steps of backward induction (finite horizon).

    Examples
    --------
    >>> P = np.zeros((2, 2, 2))
    >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
    >>> P[1, :, 1] = 1.0
    >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
    ...                    terminal=[False, True])
    >>> best = pg.exact.optimal(mdp, "discounted", gamma=0.9)
    >>> best.value, best.state_values, best.actions  # move at once in state 0
    (1.0, array([1., 0.]), array([1, 0], dtype=int32))
    >>> best.action_values
    array([[0.9, 1. ],
           [0. , 0. ]])
    """

    objective: str
    value: float
    state_values: NDArray[np.float64]
    action_values: NDArray[np.float64]
    actions: NDArray[np.int32]
    iterations: int

    def probs(self) -> NDArray[np.float64]:
        """The greedy policy as one-hot tables, (H, S, A) or (S, A).

        Returns
        -------
        ndarray of float64, shape (H, S, A) or (S, A)
            ``probs[..., s, a]`` is 1 for the greedy action ``a`` of ``s``, else 0.

        Examples
        --------
        >>> P = np.zeros((2, 2, 2))
        >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
        >>> P[1, :, 1] = 1.0
        >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
        ...                    terminal=[False, True])
        >>> pg.exact.optimal(mdp).probs()[:, 0]  # state 0 at t = 0, 1, 2: stay, stay, move
        array([[1., 0.],
               [1., 0.],
               [0., 1.]])
        """
        A = self.action_values.shape[-1]
        return np.eye(A)[self.actions]


def _check(mdp: Any, policy: Any) -> NDArray[np.float64]:
    require_instance(mdp, FiniteMDP, "mdp", "a pgfast.FiniteMDP")
    require_instance(policy, SoftmaxPolicy, "policy", "a pgfast policy (e.g. pgfast.TabularSoftmax)")
    return np.ascontiguousarray(policy._probs_for(mdp))


def _objective(objective: Any) -> str:
    if not isinstance(objective, str) or objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(map(repr, OBJECTIVES))}, got {objective!r}")
    return str(objective)


def _gamma(mdp: FiniteMDP, gamma: Any, objective: str) -> float:
    g = as_gamma(gamma, mdp.gamma)
    if objective in ("discounted", "average_value") and g >= 1.0:
        raise ValueError(
            f"objective={objective!r} needs gamma < 1 (the discounted values diverge at gamma = 1); "
            f"this MDP has gamma = {mdp.gamma}: pass gamma=0.99, build the MDP with gamma < 1, or use "
            "objective='finite_horizon' or 'average_reward'"
        )
    return g


_MAX_TOL = 1e-2  # a looser GMRES residual gives values no better than a rough guess


def _solver(method: Any, tol: Any) -> tuple[str, float]:
    if not isinstance(method, str) or method not in _METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, _METHODS))}, got {method!r}")
    t = as_float(tol, "tol")
    if not 0.0 < t <= _MAX_TOL:
        raise ValueError(f"tol must be in (0, {_MAX_TOL:g}] (a relative residual; 1e-12 by default), got {t}")
    return str(method), t


def _run(
    mdp: Any,
    policy: Any,
    objective: Any,
    gamma: Any,
    method: Any,
    tol: Any,
    threads: Any,
    *,
    values: bool,
    gradient: bool = False,
    fisher: bool = False,
) -> tuple[NDArray[np.float64], str, float, _core.exact.Evaluation]:
    probs = _check(mdp, policy)
    obj = _objective(objective)
    g = _gamma(mdp, gamma, obj)
    meth, t = _solver(method, tol)
    S, A = mdp.n_states, mdp.n_actions
    if obj == "finite_horizon":
        H = mdp.horizon
        per_step = (S * A * 3 + S * 2) if values else S
        check_allocation(8 * H * per_step, f"exact finite-horizon tables (H={H}, S={S}, A={A})", "use a shorter horizon")
    elif meth == "dense" or (meth == "auto" and S <= 200):
        check_allocation(3 * 8 * S * S, f"a dense {S} x {S} solve", "use method='sparse'")
    spec = _core.exact.EvaluationSpec(objective=_OBJECTIVES[obj], gamma=g, method=_METHODS[meth], tol=t,
                                      threads=as_threads(threads), values=values, gradient=gradient, fisher=fisher)
    out = _core.exact.evaluate(mdp._mdp, probs, spec)
    _check_out(out, _EVALUATION_FIELDS, f"the exact {obj} evaluation")
    return probs, obj, g, out


_OVERFLOW = "rewards times the horizon or the effective horizon 1 / (1 - gamma) exceed the float64 range"


# The fields of the C++ results, in the order they are checked.
_EVALUATION_FIELDS = ("J", "V", "Q", "A", "d", "visitation", "logit_grad", "fisher_w")
_OPTIMAL_FIELDS = ("J", "V", "Q", "actions", "iterations")


def _check_out(out: _core.exact.Evaluation | _core.exact.Optimal, fields: tuple[str, ...], what: str) -> None:
    """ValueError naming the first non-finite entry of a C++ result (overflowed values); a field
    that was not computed (None) is skipped."""
    for key in fields:
        v = getattr(out, key)
        if v is not None:
            check_finite_result(v, f"{what} ({key})", _OVERFLOW)


def _computed(table: NDArray[np.float64] | None) -> NDArray[np.float64]:
    """A table of a C++ evaluation that the request asked for (so it is there)."""
    assert table is not None
    return table


@overload
def evaluate(
    mdp: FiniteMDP,
    policy: SoftmaxPolicy,
    objective: Objective = ...,
    *,
    gamma: float | None = ...,
    method: Method = ...,
    tol: float = ...,
    threads: int | None = ...,
    regularizer: Regularizer | None = ...,
) -> Evaluation: ...
@overload
def evaluate(
    mdp: LQR,
    policy: LinearGaussian,
    objective: Literal["finite_horizon", "discounted"] = ...,
    *,
    gamma: float | None = ...,
    method: Method = ...,
    tol: float = ...,
    threads: int | None = ...,
    regularizer: None = ...,
) -> LQREvaluation: ...
def evaluate(
    mdp: FiniteMDP | LQR,
    policy: SoftmaxPolicy | LinearGaussian,
    objective: Objective = _MODEL_OBJECTIVE,
    *,
    gamma: float | None = None,
    method: Method = "auto",
    tol: float = 1e-12,
    threads: int | None = None,
    regularizer: Regularizer | None = None,
) -> Evaluation | LQREvaluation:
    r"""Exact value ``J``, state and action values ``V`` and ``Q``, advantages ``A = Q - V`` and state
    distributions of ``policy`` on ``mdp``; on an LQR, ``J``, its gradient, the state second
    moments and the value matrices.

    ``gamma`` defaults to ``mdp.gamma``; ``"discounted"`` and ``"average_value"`` need gamma < 1.
    The formulas of each objective are in the description of :mod:`pgfast.exact` (see also
    :doc:`/theory`, "The three objectives").

    Parameters
    ----------
    mdp : FiniteMDP or LQR
        The MDP, or a linear-quadratic regulator.
    policy : SoftmaxPolicy or LinearGaussian
        The policy (its sizes must match the MDP's); for an LQR a :class:`pgfast.LinearGaussian`
        with the identity features, ``obs_dim = state_dim`` and ``action_dim`` the LQR's.
    objective : {"finite_horizon", "discounted", "average_reward", "average_value"}
        The objective (default ``"finite_horizon"``; see the module docstring). For an LQR
        ``"finite_horizon"`` or ``"discounted"``; when not given, the model's own (discounted
        when ``lqr.horizon`` is None).
    gamma : float in [0, 1], optional
        Discount factor (default: ``mdp.gamma``); ``"discounted"`` and ``"average_value"`` need
        gamma < 1.
    method : {"auto", "dense", "sparse"}
        Linear solver for the infinite-horizon objectives.
    tol : float in (0, 1e-2]
        Relative residual at which the sparse solver stops (default 1e-12).
    threads : int, optional
        Worker threads, 1 to ``pgfast.MAX_THREADS`` (default: every usable CPU).
    regularizer : Entropy, LogBarrier or None
        Evaluate the regularised objective (FiniteMDP only; default None): with
        :class:`pgfast.Entropy` ``value`` is :math:`J_\tau` and ``V``, ``Q``, ``A`` the soft values;
        with :class:`pgfast.LogBarrier` ``value`` is :math:`J_\lambda` and ``V``, ``Q``, ``A`` those of
        :math:`J` (see "Regularised objectives" in the module docstring).

    Returns
    -------
    Evaluation or LQREvaluation
        ``objective``, ``value``, ``state_values``, ``action_values``, ``advantages``,
        ``state_distribution``, ``visitation`` and ``gamma`` (aliases ``J``, ``V``, ``Q``, ``A``,
        ``d``); for an LQR an :class:`LQREvaluation`: ``value`` (``J``), ``grad``, ``grad_W``,
        ``grad_log_std``, ``state_cov``, ``value_matrices`` (``P``), ``spectral_radius``.

    Raises
    ------
    TypeError
        ``mdp``, ``policy`` or ``regularizer`` of the wrong type.
    ValueError
        An unknown objective or method, a gamma the objective does not take, a policy of another
        size, a chain without a unique aperiodic stationary distribution (average objectives),
        a solver that does not converge, or results beyond the float64 range; a
        :class:`pgfast.LogBarrier` and a policy with a zero probability (:math:`J_\lambda = -\infty`);
        for an LQR, a ``regularizer``, a policy without the identity features or of other sizes,
        or a gain W that does not stabilise the discounted problem
        (:math:`\rho(\sqrt\gamma(A + BW)) \ge 1`: J = -inf).

    Examples
    --------
    A two-state chain: in state 0, action 0 stays and action 1 earns 1 and ends the episode.
    Under the uniform policy over H = 3 steps, :math:`J = 1 - 2^{-3}`:

    >>> P = np.zeros((2, 2, 2))
    >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
    >>> P[1, :, 1] = 1.0
    >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
    ...                    terminal=[False, True])
    >>> pi = pg.TabularSoftmax(2, 2)
    >>> ev = pg.exact.evaluate(mdp, pi)
    >>> ev.value  # J
    0.875
    >>> ev.state_values[:, 0]  # V_t(0) for t = 0, 1, 2
    array([0.875, 0.75 , 0.5  ])
    >>> ev.advantages[0, 0]  # A_0(0, .): staying (0) and moving (1) at t = 0
    array([-0.125,  0.125])
    >>> ev.J == ev.value and ev.V is ev.state_values  # the symbols are aliases
    True
    >>> round(pg.exact.evaluate(mdp, pi, "discounted", gamma=0.9).value, 6)  # 0.5 / (1 - 0.9 / 2)
    0.909091
    >>> pg.exact.evaluate(mdp, pi, "average_reward").value  # continuing: half the steps earn 1
    0.5

    With the entropy bonus: the uniform policy earns :math:`\tau\log 2` more per step in state 0
    (:math:`\sum_t 2^{-t} = 1.75` steps there):

    >>> soft = pg.exact.evaluate(mdp, pi, regularizer=pg.Entropy(0.1))
    >>> bool(np.isclose(soft.value, 0.875 + 0.1 * np.log(2) * 1.75))
    True
    >>> bool(np.allclose((pi.probs() * soft.advantages[0]).sum(axis=1), 0.0))  # A averages to 0
    True

    An LQR: the double integrator under :math:`u = -x_1 - 1.5 x_2 + 0.1\varepsilon`:

    >>> lqr = pg.LQR(A=[[1.0, 0.1], [0.0, 1.0]], B=[[0.0], [0.1]], Q=np.eye(2), R=[[0.1]],
    ...              horizon=50, x0=[1.0, 0.0])
    >>> ev = pg.exact.evaluate(lqr, pg.LinearGaussian(2, 1, W=[[-1.0, -1.5]], log_std=np.log(0.1)))
    >>> round(ev.J, 4), ev.state_cov.shape, ev.grad.round(3)  # theta = (W row-major, log_std)
    (-15.3691, (50, 2, 2), array([-2.627, -0.306, -0.169]))
    >>> inf = pg.exact.evaluate(lqr.with_options(horizon=None, gamma=0.99),
    ...                         pg.LinearGaussian(2, 1, W=[[-1.0, -1.5]], log_std=np.log(0.1)))
    >>> inf.objective, round(inf.J, 4), round(inf.spectral_radius, 4)
    ('discounted', -14.2781, 0.9227)
    """
    reg = _regularizer(regularizer, mdp)
    if isinstance(mdp, LQR):
        _solver(method, tol)
        as_threads(threads)
        return _lqr_exact.evaluate(mdp, policy, _lqr_objective(objective), gamma)
    if _active(reg):
        ev, _, _ = _regularized(mdp, policy, cast(Regularizer, reg), objective, gamma, method, tol, threads,
                             values=True, gradient=False)
        return _computed_evaluation(ev)
    _, obj, g, out = _run(mdp, policy, objective, gamma, method, tol, threads, values=True)
    return _evaluation(obj, g, out, reg)


def _evaluation(objective: str, gamma: float, out: _core.exact.Evaluation, reg: Regularizer | None = None) -> Evaluation:
    V, Q = _computed(out.V), _computed(out.Q)
    A = out.A if out.A is not None else Q - V[..., None]
    return Evaluation(objective, float(out.J), V, Q, A, _computed(out.d), _computed(out.visitation), gamma, reg)


def _computed_evaluation(ev: Evaluation | None) -> Evaluation:
    """An evaluation that the request asked for (so it is there)."""
    assert ev is not None
    return ev


def _regularizer(regularizer: Any, mdp: Any) -> Regularizer | None:
    """The checked ``regularizer`` argument (None passes through); an LQR takes none."""
    reg = as_regularizer(regularizer)
    if reg is not None and isinstance(mdp, LQR):
        raise ValueError(f"regularizer={reg!r} is for a FiniteMDP with a softmax policy; an LQR takes regularizer=None")
    return reg


def _active(reg: Regularizer | None) -> bool:
    """A regulariser of nonzero strength (a zero one leaves every result as it is, to the bit)."""
    return reg is not None and (reg.tau if isinstance(reg, Entropy) else reg.lam) > 0.0


def _regularized(
    mdp: Any,
    policy: Any,
    reg: Regularizer,
    objective: Any,
    gamma: Any,
    method: Any,
    tol: Any,
    threads: Any,
    *,
    values: bool,
    gradient: bool,
) -> tuple[Evaluation | None, NDArray[np.float64] | None, NDArray[np.float64] | None]:
    """(the evaluation, dJ_reg/dz, dJ_reg/dpi) of a regularised objective, each when asked for: the
    entropy through the soft-reward MDP, the log-barrier added to J and to the logit gradient (it
    needs every probability > 0, so the probability-table gradient, used where pi = 0, is J's)."""
    policy = pinned(policy)  # the soft reward and the evaluation from one theta
    probs = _check(mdp, policy)
    obj = _objective(objective)
    if isinstance(reg, Entropy):
        target = soft_mdp(mdp, probs, reg.tau)
    else:
        zero = np.argwhere(probs <= 0.0)
        if zero.size:
            s, a = (int(i) for i in zero[0])
            raise ValueError(f"regularizer={reg!r} needs every probability > 0, but the policy has pi(a={a}|s={s}) = 0 "
                             f"(and {len(zero) - 1} more zeros): the log-barrier objective is -inf there")
        target = mdp
    _, obj, g, out = _run(target, policy, obj, gamma, method, tol, threads, values=values, gradient=gradient)
    logit_grad = prob_grad = None
    if gradient:
        logit_grad = _computed(out.logit_grad)
        prob_grad = out.prob_grad
        if isinstance(reg, LogBarrier):
            logit_grad = logit_grad + barrier_logit_grad(probs, reg.lam)
    if not values:
        return None, logit_grad, prob_grad
    ev = _evaluation(obj, g, out, reg)
    if isinstance(reg, LogBarrier):
        return dataclasses.replace(ev, value=ev.value + barrier_value(probs, reg.lam)), logit_grad, prob_grad
    # The soft Q of the first action without its own bonus -tau log pi(a|s) (live states; 0 log 0 = 0).
    bonus = soft_reward_table(probs, reg.tau) * ~mdp.terminal[:, None]
    return dataclasses.replace(ev, action_values=ev.action_values - bonus), logit_grad, prob_grad


@overload
def gradient(
    mdp: FiniteMDP | LQR,
    policy: SoftmaxPolicy | LinearGaussian,
    objective: Objective = ...,
    *,
    gamma: float | None = ...,
    method: Method = ...,
    tol: float = ...,
    threads: int | None = ...,
    return_evaluation: Literal[False] = ...,
    regularizer: Regularizer | None = ...,
) -> NDArray[np.float64]: ...
@overload
def gradient(
    mdp: FiniteMDP,
    policy: SoftmaxPolicy,
    objective: Objective = ...,
    *,
    gamma: float | None = ...,
    method: Method = ...,
    tol: float = ...,
    threads: int | None = ...,
    return_evaluation: Literal[True],
    regularizer: Regularizer | None = ...,
) -> tuple[NDArray[np.float64], Evaluation]: ...
@overload
def gradient(
    mdp: LQR,
    policy: LinearGaussian,
    objective: Literal["finite_horizon", "discounted"] = ...,
    *,
    gamma: float | None = ...,
    method: Method = ...,
    tol: float = ...,
    threads: int | None = ...,
    return_evaluation: Literal[True],
    regularizer: None = ...,
) -> tuple[NDArray[np.float64], LQREvaluation]: ...
def gradient(
    mdp: FiniteMDP | LQR,
    policy: SoftmaxPolicy | LinearGaussian,
    objective: Objective = _MODEL_OBJECTIVE,
    *,
    gamma: float | None = None,
    method: Method = "auto",
    tol: float = 1e-12,
    threads: int | None = None,
    return_evaluation: bool = False,
    regularizer: Regularizer | None = None,
) -> NDArray[np.float64] | tuple[NDArray[np.float64], Evaluation | LQREvaluation]:
    r"""The exact policy gradient :math:`\nabla_\theta J`, in the shape of ``policy.theta``.

    By the policy gradient theorem for the chosen objective (:doc:`/theory`, "The policy gradient
    theorem"; the description of :mod:`pgfast.exact` gives it for each objective), e.g. for the
    finite horizon :math:`\sum_t \gamma^t \sum_s d_t(s) \sum_a \pi(a|s)\nabla\log\pi(a|s) Q_t(s,a)`.
    With ``return_evaluation=True`` returns ``(gradient, evaluation)`` from one pass (the work of
    :func:`evaluate` is shared). On an LQR: ``(dJ/dW row-major, dJ/dlog_std)`` by the Lyapunov
    recursions of the module description (:doc:`/theory`, "The linear-quadratic regulator").

    Parameters
    ----------
    mdp : FiniteMDP or LQR
        The MDP, or a linear-quadratic regulator.
    policy : SoftmaxPolicy or LinearGaussian
        The policy (its sizes must match the MDP's); for an LQR a :class:`pgfast.LinearGaussian`
        with the identity features, ``obs_dim = state_dim`` and ``action_dim`` the LQR's.
    objective : {"finite_horizon", "discounted", "average_reward", "average_value"}
        The objective (default ``"finite_horizon"``; see the module docstring). For an LQR
        ``"finite_horizon"`` or ``"discounted"``; when not given, the model's own (discounted
        when ``lqr.horizon`` is None).
    gamma : float in [0, 1], optional
        Discount factor (default: ``mdp.gamma``); ``"discounted"`` and ``"average_value"`` need
        gamma < 1.
    method : {"auto", "dense", "sparse"}
        Linear solver for the infinite-horizon objectives.
    tol : float in (0, 1e-2]
        Relative residual at which the sparse solver stops (default 1e-12).
    threads : int, optional
        Worker threads, 1 to ``pgfast.MAX_THREADS`` (default: every usable CPU).
    return_evaluation : bool
        Also return the :class:`Evaluation` (:class:`LQREvaluation` for an LQR; default False).
    regularizer : Entropy, LogBarrier or None
        The gradient of the regularised objective (FiniteMDP only; default None):
        :math:`\nabla J_\tau` for :class:`pgfast.Entropy`, :math:`\nabla J_\lambda` for
        :class:`pgfast.LogBarrier` (see :func:`evaluate` for the evaluation it returns).

    Returns
    -------
    grad : ndarray, shape of ``policy.theta``
        The exact gradient.
    evaluation : Evaluation or LQREvaluation
        Only with ``return_evaluation=True``.

    Raises
    ------
    TypeError
        ``mdp``, ``policy`` or ``regularizer`` of the wrong type.
    ValueError
        An unknown objective or method, a gamma the objective does not take, a policy of another
        size, a chain without a unique aperiodic stationary distribution (average objectives),
        a solver that does not converge, or results beyond the float64 range; a
        :class:`pgfast.LogBarrier` and a policy with a zero probability; for an LQR, a
        ``regularizer``, a policy that does not fit it or a gain W that does not stabilise the
        discounted problem.

    Examples
    --------
    >>> P = np.zeros((2, 2, 2))
    >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
    >>> P[1, :, 1] = 1.0
    >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
    ...                    terminal=[False, True])
    >>> pi = pg.TabularSoftmax(2, 2)
    >>> pg.exact.gradient(mdp, pi)
    array([[-0.1875,  0.1875],
           [ 0.    ,  0.    ]])
    >>> grad, ev = pg.exact.gradient(mdp, pi, return_evaluation=True)
    >>> ev.value
    0.875

    The log-barrier pulls towards the uniform policy, where its own gradient is 0:

    >>> bool(np.array_equal(pg.exact.gradient(mdp, pi, regularizer=pg.LogBarrier(0.1)), grad))
    True

    On an LQR, in the order of ``theta`` (W row-major, then log_std):

    >>> lqr = pg.LQR(A=[[1.0, 0.1], [0.0, 1.0]], B=[[0.0], [0.1]], Q=np.eye(2), R=[[0.1]],
    ...              gamma=0.99, horizon=None, x0=[1.0, 0.0])
    >>> pg.exact.gradient(lqr, pg.LinearGaussian(2, 1, W=[[-1.0, -1.5]], log_std=np.log(0.1))).round(3)
    array([-1.958, -0.401, -0.356])
    """
    return_evaluation = as_bool(return_evaluation, "return_evaluation")
    reg = _regularizer(regularizer, mdp)
    if isinstance(mdp, LQR):
        _solver(method, tol)
        as_threads(threads)
        lqr_ev = _lqr_exact.evaluate(mdp, policy, _lqr_objective(objective), gamma, tables=return_evaluation)
        return (lqr_ev.grad, lqr_ev) if return_evaluation else lqr_ev.grad
    policy = cast(SoftmaxPolicy, pinned(policy))  # the probabilities and the logit map from one theta
    if isinstance(reg, Entropy) and reg.tau > 0.0 and type(policy)._exact_gradient is not SoftmaxPolicy._exact_gradient:
        # a policy that differentiates at zero probabilities (DirectPolicy): the entropy's derivative is +inf there
        zero = np.argwhere(policy._probs_for(mdp) <= 0.0)
        if zero.size:
            s, a = (int(i) for i in zero[0])
            raise ValueError(f"regularizer={reg!r}: the gradient of the entropy bonus is +inf at a zero probability, and "
                             f"the {type(policy).__name__} has pi(a={a}|s={s}) = 0; move theta into the interior of the "
                             "simplex, or use no regularizer")
    if _active(reg):
        ev, logit_grad, prob_grad = _regularized(mdp, policy, cast(Regularizer, reg), objective, gamma, method, tol,
                                                 threads, values=return_evaluation, gradient=True)
    else:
        _, obj, g, out = _run(mdp, policy, objective, gamma, method, tol, threads, values=return_evaluation, gradient=True)
        logit_grad, prob_grad = out.logit_grad, out.prob_grad
        ev = _evaluation(obj, g, out, reg) if return_evaluation else None
    grad = policy._logit_vjp(_computed(logit_grad))
    grad = policy._exact_gradient(grad, _computed(prob_grad))  # DirectPolicy: the entries where pi = 0
    check_finite_result(grad, "the exact policy gradient", "dJ/dz times the policy's logit Jacobian (features or weights too large)")
    if not return_evaluation:
        return grad
    return grad, _computed_evaluation(ev)


def fisher(
    mdp: FiniteMDP,
    policy: SoftmaxPolicy,
    objective: Objective = "finite_horizon",
    *,
    gamma: float | None = None,
    method: Method = "auto",
    tol: float = 1e-12,
    threads: int | None = None,
) -> NDArray[np.float64]:
    r"""The Fisher information :math:`F = \sum_s w(s) \sum_a \pi(a|s)\,\nabla\log\pi\,\nabla\log\pi^\top`,
    ``(n_params, n_params)``, rows and columns in the C order of ``theta``.

    The state weighting ``w`` is the objective's: :math:`\sum_t d_t` for the finite horizon (so
    :math:`F = \mathbb E[\sum_t \nabla\log\pi(a_t|s_t)\nabla\log\pi(a_t|s_t)^\top]`, the Fisher
    information of the trajectory distribution), the discounted visitation :math:`\rho` for
    ``"discounted"``, the stationary distribution :math:`d` for the average objectives (see
    :doc:`/theory`, "The natural gradient").

    Parameters
    ----------
    mdp : FiniteMDP
        The MDP.
    policy : SoftmaxPolicy
        The policy (its sizes must match the MDP's).
    objective : {"finite_horizon", "discounted", "average_reward", "average_value"}
        The objective (default ``"finite_horizon"``; see the module docstring).
    gamma : float in [0, 1], optional
        Discount factor (default: ``mdp.gamma``); ``"discounted"`` and ``"average_value"`` need
        gamma < 1.
    method : {"auto", "dense", "sparse"}
        Linear solver for the infinite-horizon objectives.
    tol : float in (0, 1e-2]
        Relative residual at which the sparse solver stops (default 1e-12).
    threads : int, optional
        Worker threads, 1 to ``pgfast.MAX_THREADS`` (default: every usable CPU).

    Returns
    -------
    ndarray of float64, shape (n_params, n_params)

    Raises
    ------
    TypeError
        ``mdp`` or ``policy`` of the wrong type.
    ValueError
        An unknown objective or method, a gamma the objective does not take, a policy of another
        size, a chain without a unique aperiodic stationary distribution (average objectives),
        a solver that does not converge, or results beyond the float64 range.
    MemoryError
        A matrix larger than memory (the message states the bytes requested).

    Examples
    --------
    >>> P = np.zeros((2, 2, 2))
    >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
    >>> P[1, :, 1] = 1.0
    >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
    ...                    terminal=[False, True])
    >>> pi = pg.TabularSoftmax(2, 2)
    >>> pg.exact.fisher(mdp, pi)  # theta is (2, 2): rows and columns in C order
    array([[ 0.4375, -0.4375,  0.    ,  0.    ],
           [-0.4375,  0.4375,  0.    ,  0.    ],
           [ 0.    ,  0.    ,  0.    ,  0.    ],
           [ 0.    ,  0.    ,  0.    ,  0.    ]])
    """
    policy = pinned(policy)
    probs, _, _, out = _run(mdp, policy, objective, gamma, method, tol, threads, values=False, fisher=True)
    n = policy.n_params
    check_allocation(8 * n * n, f"the Fisher matrix ({n} x {n})", "use natural_gradient, which is blockwise for tabular policies")
    F = policy._fisher(probs, _computed(out.fisher_w))
    check_finite_result(F, "the Fisher matrix", "the policy's features or logit Jacobian too large")
    return F


def fisher_weights(
    mdp: FiniteMDP,
    policy: SoftmaxPolicy,
    objective: Objective = "finite_horizon",
    *,
    gamma: float | None = None,
    method: Method = "auto",
    tol: float = 1e-12,
    threads: int | None = None,
) -> NDArray[np.float64]:
    """The state weighting w (S,) of :func:`fisher` for the objective, without the matrix.

    Parameters
    ----------
    mdp : FiniteMDP
        The MDP.
    policy : SoftmaxPolicy
        The policy (its sizes must match the MDP's).
    objective : {"finite_horizon", "discounted", "average_reward", "average_value"}
        The objective (default ``"finite_horizon"``; see the module docstring).
    gamma : float in [0, 1], optional
        Discount factor (default: ``mdp.gamma``); ``"discounted"`` and ``"average_value"`` need
        gamma < 1.
    method : {"auto", "dense", "sparse"}
        Linear solver for the infinite-horizon objectives.
    tol : float in (0, 1e-2]
        Relative residual at which the sparse solver stops (default 1e-12).
    threads : int, optional
        Worker threads, 1 to ``pgfast.MAX_THREADS`` (default: every usable CPU).

    Returns
    -------
    ndarray of float64, shape (S,)

    Raises
    ------
    TypeError
        ``mdp`` or ``policy`` of the wrong type.
    ValueError
        An unknown objective or method, a gamma the objective does not take, a policy of another
        size, a chain without a unique aperiodic stationary distribution (average objectives),
        a solver that does not converge, or results beyond the float64 range.

    Examples
    --------
    >>> P = np.zeros((2, 2, 2))
    >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
    >>> P[1, :, 1] = 1.0
    >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
    ...                    terminal=[False, True])
    >>> pi = pg.TabularSoftmax(2, 2)
    >>> pg.exact.fisher_weights(mdp, pi)  # expected visits of each state per episode
    array([1.75, 0.  ])
    """
    _, _, _, out = _run(mdp, policy, objective, gamma, method, tol, threads, values=False, fisher=True)
    w = _computed(out.fisher_w)
    return w


def natural_gradient(
    mdp: FiniteMDP,
    policy: SoftmaxPolicy,
    objective: Objective = "finite_horizon",
    *,
    damping: float = 0.0,
    rcond: float = 1e-10,
    gamma: float | None = None,
    method: Method = "auto",
    tol: float = 1e-12,
    threads: int | None = None,
) -> NDArray[np.float64]:
    r"""The natural gradient :math:`x = F^{+} \nabla J` (Kakade 2001), in the shape of ``theta``.

    A softmax Fisher matrix is always singular (adding a constant to all logits of a state changes
    nothing, and unvisited states carry no information), so with ``damping = 0`` ``x`` is the
    minimum-norm least-squares solution of :math:`F x = \nabla J`: eigenvalues of F below
    ``rcond * max eigenvalue`` are treated as zero. With ``damping > 0`` it solves
    :math:`(F + \lambda I) x = \nabla J`. For a tabular policy F is block diagonal and is solved
    state by state; with the discounted objective the result is then the advantage
    :math:`A(s,\cdot)` centred in each visited state. For an :class:`pgfast.MLPSoftmax`,
    :math:`F = M^\top M` with one row :math:`\sqrt{w(s)\pi(a|s)}\,\nabla\log\pi(a|s)` per visited
    (s, a); when M has fewer rows than there are parameters the system is solved in its row space
    (:math:`F^+ g = M^\top (K^+)^2 M g`, :math:`(F+\lambda I)^{-1}g = (g - M^\top(K+\lambda I)^{-1}Mg)/\lambda`,
    :math:`K = M M^\top`), so F (n_params x n_params) is never formed. See :doc:`/theory`, "The
    natural gradient".

    Parameters
    ----------
    mdp : FiniteMDP
        The MDP.
    policy : SoftmaxPolicy
        The policy (its sizes must match the MDP's).
    objective : {"finite_horizon", "discounted", "average_reward", "average_value"}
        The objective (default ``"finite_horizon"``; see the module docstring).
    damping : float >= 0
        :math:`\lambda` (default 0: the pseudo-inverse).
    rcond : float
        Relative cut-off of the pseudo-inverse's eigenvalues (default 1e-10).
    gamma : float in [0, 1], optional
        Discount factor (default: ``mdp.gamma``).
    method : {"auto", "dense", "sparse"}
        Linear solver for the infinite-horizon objectives.
    tol : float in (0, 1e-2]
        Relative residual at which the sparse solver stops (default 1e-12).
    threads : int, optional
        Worker threads, 1 to ``pgfast.MAX_THREADS`` (default: every usable CPU).

    Returns
    -------
    ndarray, shape of ``policy.theta``

    Raises
    ------
    TypeError
        ``mdp`` or ``policy`` of the wrong type.
    ValueError
        An unknown objective or method, a gamma the objective does not take, a policy of another
        size, a chain without a unique aperiodic stationary distribution (average objectives),
        a solver that does not converge, or results beyond the float64 range.
        A negative or non-finite ``damping``, or an ``rcond`` outside its range.

    Examples
    --------
    >>> P = np.zeros((2, 2, 2))
    >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
    >>> P[1, :, 1] = 1.0
    >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
    ...                    terminal=[False, True])
    >>> pi = pg.TabularSoftmax(2, 2)
    >>> pg.exact.natural_gradient(mdp, pi).round(6)
    array([[-0.214286,  0.214286],
           [ 0.      ,  0.      ]])
    >>> pg.exact.natural_gradient(mdp, pi, damping=0.1).round(6)
    array([[-0.192308,  0.192308],
           [ 0.      ,  0.      ]])
    """
    lam = as_float(damping, "damping")
    rc = as_rcond(rcond)
    if not (np.isfinite(lam) and lam >= 0.0):
        raise ValueError(f"damping must be a finite number >= 0, got {lam}")
    policy = pinned(policy)
    probs, _, _, out = _run(mdp, policy, objective, gamma, method, tol, threads, values=False, gradient=True, fisher=True)
    g = policy._logit_vjp(_computed(out.logit_grad))
    check_finite_result(g, "the exact policy gradient", "dJ/dz times the policy's logit Jacobian (features or weights too large)")
    x = policy._natural(probs, _computed(out.fisher_w), g, lam, rc)
    check_finite_result(x, "the natural gradient", "F^+ g: the gradient is too large for the Fisher information's smallest kept eigenvalue; raise damping or rcond")
    return x


def stationary_distribution(
    mdp: FiniteMDP, policy: SoftmaxPolicy, *, method: Method = "auto", tol: float = 1e-12, threads: int | None = None
) -> NDArray[np.float64]:
    r"""The stationary distribution :math:`d` of the continuing chain (terminal states restart from
    :math:`\mu_0`): :math:`d \tilde P_\pi = d`, :math:`\sum_s d(s) = 1`, shape (S,) (see
    :doc:`/theory`, "The three objectives").

    Parameters
    ----------
    mdp : FiniteMDP
        The MDP.
    policy : SoftmaxPolicy
        The policy.
    method : {"auto", "dense", "sparse"}
        Linear solver.
    tol : float in (0, 1e-2]
        Relative residual at which the sparse solver stops (default 1e-12).
    threads : int, optional
        Worker threads, 1 to ``pgfast.MAX_THREADS`` (default: every usable CPU).

    Returns
    -------
    ndarray of float64, shape (S,)

    Raises
    ------
    TypeError
        ``mdp`` or ``policy`` of the wrong type.
    ValueError
        When the distribution is not unique (two closed classes) or the chain is periodic; an
        unknown method, a ``tol`` out of range, a policy of another size, or a solver that does
        not converge.

    Examples
    --------
    Entering the terminal state 1 restarts from state 0, so the chain lives in state 0:

    >>> P = np.zeros((2, 2, 2))
    >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
    >>> P[1, :, 1] = 1.0
    >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
    ...                    terminal=[False, True])
    >>> pi = pg.TabularSoftmax(2, 2)
    >>> pg.exact.stationary_distribution(mdp, pi)
    array([1., 0.])
    """
    _, _, _, out = _run(mdp, policy, "average_reward", None, method, tol, threads, values=False)
    d = _computed(out.d)
    return d


@overload
def optimal(
    mdp: FiniteMDP,
    objective: Literal["finite_horizon", "discounted"] = ...,
    *,
    gamma: float | None = ...,
    method: Method = ...,
    tol: float = ...,
    threads: int | None = ...,
    log_std: None = ...,
) -> Optimal: ...
@overload
def optimal(
    mdp: LQR,
    objective: Literal["finite_horizon", "discounted"] = ...,
    *,
    gamma: float | None = ...,
    method: Method = ...,
    tol: float = ...,
    threads: int | None = ...,
    log_std: ArrayLike | None = ...,
) -> LQROptimal: ...
def optimal(
    mdp: FiniteMDP | LQR,
    objective: Literal["finite_horizon", "discounted"] = _MODEL_OBJECTIVE,
    *,
    gamma: float | None = None,
    method: Method = "auto",
    tol: float = 1e-12,
    threads: int | None = None,
    log_std: ArrayLike | None = None,
) -> Optimal | LQROptimal:
    r"""Optimal values and a greedy optimal policy, to see how far a policy is from the best.

    ``"finite_horizon"``: backward induction :math:`V^*_t(s) = \max_a Q^*_t(s,a)` (a time-dependent
    policy, lowest action index among exact ties). ``"discounted"``: policy iteration, each policy
    evaluated exactly; an action changes only when it improves Q by more than a relative 1e-12.
    See :doc:`/theory`, "Optimal control".

    On an LQR (:doc:`/theory`, "The linear-quadratic regulator"): ``"discounted"``, the stabilising
    solution P of the discounted Riccati equation (structure-preserving doubling, polished by
    Hewer's policy-iteration steps) and the gain :math:`W^* = -\gamma(R + \gamma B^\top PB)^{-1}
    B^\top PA`; ``"finite_horizon"``, the optimal time-varying gains :math:`W^*_t` of the backward
    Riccati recursion and, as ``stationary_W``, the best constant gain found by L-BFGS on the
    exact gradient started from :math:`W^*_0` (a local maximum of :math:`J(W)`; converged when
    :math:`\|\nabla_W J\|_F \max(\|W\|_F, 1) \le` ``tol`` :math:`|J|`). Action noise does not move
    :math:`W^*` or :math:`W^*_t` (it adds a cost no gain can change), but it can move the best
    stationary gain of the finite horizon, which weighs the steps by the state moments the noise
    feeds: ``log_std`` sets the noise of that search.

    Parameters
    ----------
    mdp : FiniteMDP or LQR
        The MDP, or a linear-quadratic regulator.
    objective : {"finite_horizon", "discounted"}
        The objective (default ``"finite_horizon"``; for an LQR, when not given, the model's own:
        discounted when ``lqr.horizon`` is None).
    gamma : float in [0, 1], optional
        Discount factor (default: ``mdp.gamma``; ``"discounted"`` needs gamma < 1).
    method : {"auto", "dense", "sparse"}
        Linear solver of the policy evaluations (discounted).
    tol : float in (0, 1e-2]
        Relative residual at which the sparse solver stops (default 1e-12); for an LQR, the
        relative gradient norm at which the stationary search stops.
    threads : int, optional
        Worker threads, 1 to ``pgfast.MAX_THREADS`` (default: every usable CPU).
    log_std : float or array_like, optional
        Shape (action_dim,). LQR only: the action noise :math:`\log\sigma` under which the best stationary gain of
        the finite horizon is sought (default None: none).

    Returns
    -------
    Optimal or LQROptimal
        ``value``, ``state_values``, ``action_values`` (aliases ``J``, ``V``, ``Q``), greedy
        ``actions`` and ``iterations``; for an LQR an :class:`LQROptimal`: ``value`` (``J``),
        ``W``, ``value_matrices`` (``P``), ``stationary_W`` and ``stationary_value`` (finite
        horizon), and ``policy()``.

    Raises
    ------
    TypeError
        ``mdp`` is not a FiniteMDP or an LQR.
    ValueError
        An objective other than the two, a bad gamma, or values beyond the float64 range; for an
        LQR without a stabilising Riccati solution (:math:`(\sqrt\gamma A, B)` not stabilisable),
        a bad ``log_std`` or ``tol``; ``log_std`` for a FiniteMDP.
    MemoryError
        Tables larger than memory (the message states the bytes requested).

    Examples
    --------
    >>> P = np.zeros((2, 2, 2))
    >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
    >>> P[1, :, 1] = 1.0
    >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
    ...                    terminal=[False, True])
    >>> best = pg.exact.optimal(mdp)
    >>> best.value
    1.0
    >>> best.actions[:, 0]  # in state 0: stay while there is time (lowest index on ties), then move
    array([0, 0, 1], dtype=int32)

    The double integrator, discounted (the Riccati gain) and over 50 steps (the time-varying
    gains, and the best constant gain, which does a little worse):

    >>> lqr = pg.LQR(A=[[1.0, 0.1], [0.0, 1.0]], B=[[0.0], [0.1]], Q=np.eye(2), R=[[0.1]],
    ...              horizon=50, x0=[1.0, 0.0])
    >>> best = pg.exact.optimal(lqr.with_options(horizon=None, gamma=0.99))
    >>> best.W.round(4), round(best.J, 4)
    (array([[-2.4246, -3.4854]]), -12.9991)
    >>> best = pg.exact.optimal(lqr)
    >>> best.W.shape, best.W[0].round(4), round(best.J, 4)
    ((50, 1, 2), array([[-2.5849, -3.5746]]), -13.8257)
    >>> best.stationary_W.round(4), round(best.stationary_value, 4)
    (array([[-2.5871, -3.5805]]), -13.8263)
    """
    if isinstance(mdp, LQR):
        _, t = _solver(method, tol)
        as_threads(threads)
        return _lqr_exact.optimal(mdp, _lqr_objective(objective), gamma, log_std=log_std, tol=t)
    require_instance(mdp, FiniteMDP, "mdp", "a pgfast.FiniteMDP or pgfast.LQR")
    if log_std is not None:
        raise ValueError("log_std (the action noise of the best stationary gain) is for an LQR; a FiniteMDP takes none")
    if not isinstance(objective, str) or objective not in ("finite_horizon", "discounted"):
        raise ValueError(f"optimal supports objective='finite_horizon' or 'discounted', got {objective!r}")
    g = _gamma(mdp, gamma, objective)
    meth, t = _solver(method, tol)
    if objective == "finite_horizon":
        check_allocation(8 * mdp.horizon * mdp.n_states * (mdp.n_actions + 2), "optimal finite-horizon tables", "use a shorter horizon")
    out = _core.exact.optimal(mdp._mdp, _OBJECTIVES[objective], g, _METHODS[meth], t, as_threads(threads))
    _check_out(out, _OPTIMAL_FIELDS, f"the optimal {objective} values")
    return Optimal(objective, float(out.J), out.V, out.Q, out.actions, int(out.iterations))


@dataclass(frozen=True)
class SoftOptimal(_ValueAliases):
    r"""The entropy-regularised optimum (:func:`soft_optimal`; see :doc:`/theory`, "Regularised
    objectives"): the soft values, the soft action values and the soft-optimal policy
    :math:`\pi^*_\tau(a|s) \propto \exp(Q^*_\tau(s,a)/\tau)`.

    ``J``, ``V`` and ``Q`` are read-only aliases of ``value``, ``state_values`` and
    ``action_values``, as in :class:`Optimal`.

    Attributes
    ----------
    objective : str
        ``"finite_horizon"`` or ``"discounted"``.
    value : float
        The optimal regularised objective :math:`J^*_\tau = \mu_0^\top V^*_\tau` (finite horizon:
        :math:`\mu_0^\top V^*_{\tau,0}`; alias ``J``).
    state_values : ndarray
        :math:`V^*_\tau(s) = \tau\log\sum_a \exp(Q^*_\tau(s,a)/\tau)`, (H, S) for the finite horizon
        (``state_values[t, s]``), (S,) discounted (alias ``V``); 0 on terminal states.
    action_values : ndarray
        :math:`Q^*_\tau(s,a) = r(s,a) + \gamma\sum_{s'} P(s'|s,a)\,\text{alive}(s')\,V^*_\tau(s')`
        (:math:`V^*_{\tau,t+1}` for the finite horizon), (H, S, A) or (S, A) (alias ``Q``); 0 on
        terminal states. The soft action value of :func:`evaluate` with
        ``regularizer=pgfast.Entropy(tau)`` under :math:`\pi^*_\tau`.
    tau : float
        The temperature :math:`\tau`.
    gamma : float
        The discount factor used.
    iterations : int
        Soft value-iteration sweeps (discounted), or the H steps of the backward recursion
        (finite horizon).

    Examples
    --------
    >>> P = np.zeros((2, 2, 2))
    >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
    >>> P[1, :, 1] = 1.0
    >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
    ...                    terminal=[False, True])
    >>> soft = pg.exact.soft_optimal(mdp, 0.1, "discounted", gamma=0.9)
    >>> round(soft.value, 6), soft.Q.round(6)  # above J* = 1: the entropy of the first steps
    (1.043424, array([[0.939082, 1.      ],
           [0.      , 0.      ]]))
    """

    objective: str
    value: float
    state_values: NDArray[np.float64]
    action_values: NDArray[np.float64]
    tau: float
    gamma: float
    iterations: int

    def probs(self) -> NDArray[np.float64]:
        r"""The soft-optimal policy :math:`\pi^*_\tau(a|s) \propto \exp(Q^*_\tau(s,a)/\tau)`, (H, S, A)
        or (S, A) (uniform on terminal states).

        Returns
        -------
        ndarray of float64, shape (H, S, A) or (S, A)
            ``probs[..., s, a]`` is :math:`\pi^*_\tau(a|s)` (of step t for the finite horizon).

        Examples
        --------
        >>> P = np.zeros((2, 2, 2))
        >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
        >>> P[1, :, 1] = 1.0
        >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
        ...                    terminal=[False, True])
        >>> pg.exact.soft_optimal(mdp, 0.1, "finite_horizon").probs()[:, 0].round(4)  # state 0, t = 0, 1, 2
        array([[0.6667, 0.3333],
               [0.5   , 0.5   ],
               [0.    , 1.    ]])
        """
        z = self.action_values / self.tau
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        out: NDArray[np.float64] = e / e.sum(axis=-1, keepdims=True)
        return out

    def policy(self, t: int | None = None) -> TabularSoftmax:
        r"""The soft-optimal policy as a :class:`pgfast.TabularSoftmax`, ``theta`` :math:`= Q^*_\tau/\tau`
        less its maximum in each state (the same probabilities, finite for any :math:`\tau`).

        Parameters
        ----------
        t : int, optional
            The step, 0 to H - 1: required for the finite horizon, whose soft-optimal policy
            changes with the step; None (the default) for the discounted objective.

        Returns
        -------
        TabularSoftmax
            With :math:`\pi^*_\tau` (of step ``t``) as its probabilities.

        Raises
        ------
        ValueError
            ``t`` missing or out of range for the finite horizon, or given for the discounted
            objective.

        Examples
        --------
        >>> P = np.zeros((2, 2, 2))
        >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
        >>> P[1, :, 1] = 1.0
        >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
        ...                    terminal=[False, True])
        >>> soft = pg.exact.soft_optimal(mdp, 0.1, "discounted", gamma=0.9)
        >>> ev = pg.exact.evaluate(mdp, soft.policy(), "discounted", gamma=0.9, regularizer=pg.Entropy(0.1))
        >>> bool(np.isclose(ev.value, soft.value, rtol=1e-10))
        True
        """
        Q = self.action_values
        if self.objective == "finite_horizon":
            if t is None:
                raise ValueError(f"t is required for the finite horizon (the soft-optimal policy changes with the step): "
                                 f"pass a step 0 <= t < {Q.shape[0]}")
            Q = Q[as_int(t, "t", minimum=0, maximum=Q.shape[0] - 1)]
        elif t is not None:
            raise ValueError(f"t is for the finite horizon; the discounted soft-optimal policy is stationary (got t={t!r})")
        theta = (Q - Q.max(axis=-1, keepdims=True)) / self.tau
        return TabularSoftmax(Q.shape[0], Q.shape[1], theta=theta)


# Below this the rounding of a sweep (a few ulps of the values) can stop the change from shrinking.
_MIN_SOFT_TOL = 1e-14


def soft_optimal(
    mdp: FiniteMDP,
    tau: float,
    objective: Literal["finite_horizon", "discounted"] = "finite_horizon",
    *,
    gamma: float | None = None,
    tol: float = 1e-12,
    max_iter: int = 1_000_000,
) -> SoftOptimal:
    r"""The entropy-regularised optimum by soft value iteration: the soft values, the soft action
    values and the soft-optimal policy of :math:`J_\tau` (``regularizer=pgfast.Entropy(tau)``).

    The soft Bellman equation (:doc:`/theory`, "Regularised objectives"), with
    :math:`\text{alive}(s') = 1 - \text{terminal}(s')` and :math:`V = Q = 0` on terminal states:

    .. math::
        Q(s,a) = r(s,a) + \gamma \sum_{s'} P(s'|s,a)\,\text{alive}(s')\,V(s'), \qquad
        V(s) = \tau \log\sum_a \exp(Q(s,a)/\tau)

    (the log-sum-exp taken from the largest ``Q``, so any :math:`\tau > 0` works), and
    :math:`\pi^*_\tau(a|s) = \exp((Q(s,a) - V(s))/\tau)`. ``"discounted"`` (:math:`\gamma < 1`)
    iterates from :math:`V = 0`; the map is a :math:`\gamma`-contraction in the sup norm, and the
    iteration stops when a sweep changes ``V`` by at most ``tol * max(1, max|V|)``, so the soft
    Bellman residual is at most :math:`\gamma` times that and the error in ``V`` at most
    :math:`\gamma/(1-\gamma)` times it (about :math:`\log(\text{tol})/\log\gamma` sweeps).
    ``"finite_horizon"`` is the exact backward recursion :math:`V_H = 0`, per step, as
    :func:`optimal` does with the max. The average objectives are not supported.

    Computed in C++ on the sparse transitions (``cpp/include/pgfast/exact/soft.hpp``): O(nnz + S A)
    per sweep, with Ctrl-C answered between states.

    Parameters
    ----------
    mdp : FiniteMDP
        The MDP.
    tau : float > 0
        The temperature :math:`\tau` of the entropy bonus.
    objective : {"finite_horizon", "discounted"}
        The objective (default ``"finite_horizon"``, as :func:`optimal` and :func:`evaluate`).
    gamma : float in [0, 1], optional
        Discount factor (default: ``mdp.gamma``; ``"discounted"`` needs gamma < 1).
    tol : float in [1e-14, 1e-2]
        The discounted iteration stops when a sweep changes ``V`` by at most
        ``tol * max(1, max|V|)`` (default 1e-12); checked, but unused, for the finite horizon.
    max_iter : int >= 1
        The most sweeps of the discounted iteration (default 1 000 000); ``ValueError`` when
        ``tol`` is not reached by then.

    Returns
    -------
    SoftOptimal
        ``value``, ``state_values``, ``action_values`` (aliases ``J``, ``V``, ``Q``), ``tau``,
        ``gamma``, ``iterations``, and the methods ``probs()`` and ``policy()``.

    Raises
    ------
    TypeError
        ``mdp`` not a FiniteMDP, or ``tau``, ``gamma``, ``tol``, ``max_iter`` of the wrong type.
    ValueError
        ``tau`` not a finite number > 0, an objective other than the two, a bad ``gamma``, ``tol``
        or ``max_iter``, an iteration that does not reach ``tol`` in ``max_iter`` sweeps, or values
        beyond the float64 range.
    MemoryError
        Tables larger than memory (the message states the bytes requested).

    Examples
    --------
    >>> P = np.zeros((2, 2, 2))
    >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
    >>> P[1, :, 1] = 1.0
    >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
    ...                    terminal=[False, True])
    >>> soft = pg.exact.soft_optimal(mdp, 0.1, "discounted", gamma=0.9)
    >>> soft.probs()[0].round(4)  # moving (1) earns 1 now; staying earns 0.9 V(0) later
    array([0.3522, 0.6478])
    >>> bool(np.isclose(soft.V[0], 0.1 * np.log(np.exp(soft.Q[0] / 0.1).sum())))  # the soft Bellman equation
    True
    >>> [round(pg.exact.soft_optimal(mdp, tau, "discounted", gamma=0.9).value, 6) for tau in (1.0, 0.1, 0.01)]  # to J* = 1
    [2.506431, 1.043424, 1.0]
    """
    require_instance(mdp, FiniteMDP, "mdp", "a pgfast.FiniteMDP")
    t = as_float(tau, "tau")
    if not (np.isfinite(t) and t > 0.0):
        raise ValueError(f"tau must be a finite number > 0 (the temperature of the entropy bonus), got {tau!r}")
    if not isinstance(objective, str) or objective not in ("finite_horizon", "discounted"):
        raise ValueError(f"soft_optimal supports objective='finite_horizon' or 'discounted', got {objective!r}")
    g = _gamma(mdp, gamma, objective)
    eps = as_float(tol, "tol")
    if not _MIN_SOFT_TOL <= eps <= _MAX_TOL:
        raise ValueError(f"tol must be in [{_MIN_SOFT_TOL:g}, {_MAX_TOL:g}] (the change of V in a sweep relative to "
                         f"max(1, max|V|); 1e-12 by default), got {eps}")
    sweeps = as_int(max_iter, "max_iter", minimum=1, maximum=2**62)
    S, A, H = mdp.n_states, mdp.n_actions, mdp.horizon
    fh = objective == "finite_horizon"
    check_allocation(8 * (H if fh else 2) * S * (A + 1), f"soft value tables (S={S}, A={A}{f', H={H}' if fh else ''})",
                     "use a shorter horizon" if fh else "use a smaller MDP")
    J, V, Q, it, change, converged = _core.exact.soft_optimal(mdp._mdp, fh, g, t, eps, sweeps)
    if not converged:
        raise ValueError(f"soft value iteration did not reach tol={eps:g} in max_iter={sweeps} sweeps (the change "
                         f"was {change:.3g}; it shrinks by about gamma = {g} per sweep): raise max_iter or tol")
    result = SoftOptimal(str(objective), float(J), V, Q, t, g, int(it))
    for name, x in (("J", result.value), ("V", result.state_values), ("Q", result.action_values)):
        check_finite_result(x, f"the soft-optimal values ({name})", _OVERFLOW + ", or rewards / tau do")
    return result


#: The largest ``n_params`` for which :func:`moments` forms the full covariance by default (its cost
#: grows as O(H nnz n_params^2)); ``covariance=True`` asks for it above.
MAX_COVARIANCE_PARAMS = 64


@dataclass(frozen=True)
class Moments:
    r"""The exact mean and covariance of a single-trajectory policy gradient estimator
    (:func:`moments`).

    Attributes
    ----------
    mean : ndarray of float64, shape of ``theta``
        :math:`\mathbb E[\hat g]`: the exact gradient :math:`\nabla J` (every baseline of
        :func:`moments` is unbiased).
    variance : ndarray of float64, shape of ``theta``
        :math:`\operatorname{Var}[\hat g_k]` of each coordinate.
    covariance : ndarray of float64 (n_params, n_params) or None
        :math:`\operatorname{Cov}[\hat g]`, rows and columns in the C order of ``theta``; None
        unless it was asked for (by default when ``n_params <= MAX_COVARIANCE_PARAMS``).
    trace : float
        :math:`\operatorname{tr}\operatorname{Cov}[\hat g] = \sum_k \operatorname{Var}[\hat g_k]`.
    noise_to_signal : float
        :math:`\operatorname{tr}\operatorname{Cov}[\hat g] / \|\mathbb E \hat g\|^2` (inf for a zero
        gradient with noise, NaN when both are zero).
    value : float
        :math:`J = \mathbb E[G_0]`.
    weights : str
        ``"reward_to_go"`` or ``"return"``.
    baseline : str
        ``"none"``, ``"exact"``, ``"time"``, ``"mean"``, ``"optimal"`` or ``"table"`` (an array).
    objective : str
        ``"finite_horizon"`` or ``"discounted"``.
    gamma : float
        The discount factor used.
    optimal_baseline : ndarray of float64 or None
        With ``baseline="optimal"``, the per-coordinate baselines: :math:`b^*_k` in the shape of
        ``theta`` (return weights), or :math:`c_{t,k}`, shape ``(H,) + theta.shape``
        (reward-to-go; see :func:`moments`). None otherwise.

    Examples
    --------
    >>> P = np.zeros((2, 2, 2))
    >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
    >>> P[1, :, 1] = 1.0
    >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
    ...                    terminal=[False, True])
    >>> m = pg.exact.moments(mdp, pg.TabularSoftmax(2, 2))
    >>> m.mean  # the exact gradient
    array([[-0.1875,  0.1875],
           [ 0.    ,  0.    ]])
    >>> m.stderr(1000).round(3)  # what policy_gradient(...).stderr estimates for 1000 episodes
    array([[0.011, 0.011],
           [0.   , 0.   ]])
    """

    mean: NDArray[np.float64]
    variance: NDArray[np.float64]
    covariance: NDArray[np.float64] | None
    trace: float
    noise_to_signal: float
    value: float
    weights: str
    baseline: str
    objective: str
    gamma: float
    optimal_baseline: NDArray[np.float64] | None = None

    def stderr(self, n: int) -> NDArray[np.float64]:
        r"""The standard error :math:`\sqrt{\operatorname{Var}[\hat g_k] / n}` of the mean of ``n``
        independent trajectories' gradients, in the shape of ``theta``.

        Parameters
        ----------
        n : int >= 1
            The number of trajectories.

        Returns
        -------
        ndarray of float64, shape of ``theta``

        Raises
        ------
        ValueError
            ``n`` below 1.

        Examples
        --------
        >>> P = np.zeros((2, 2, 2))
        >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
        >>> P[1, :, 1] = 1.0
        >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
        ...                    terminal=[False, True])
        >>> m = pg.exact.moments(mdp, pg.TabularSoftmax(2, 2), baseline="exact")
        >>> bool(np.allclose(m.stderr(400), m.stderr(100) / 2))
        True
        """
        nn = as_int(n, "n", minimum=1)
        se: NDArray[np.float64] = np.sqrt(self.variance / nn)
        return se


_MOMENT_WEIGHTS = {
    "reward_to_go": _core.exact.MomentWeights.REWARD_TO_GO,
    "return": _core.exact.MomentWeights.RETURN,
}


def _score_rows(policy: SoftmaxPolicy, probs: NDArray[np.float64]) -> tuple[NDArray[np.int64], NDArray[np.int32], NDArray[np.float64]]:
    """The scores :math:`\\nabla_\\theta\\log\\pi(a|s)` as CSR rows s * A + a (tabular: the A
    entries of the row's state; otherwise the nonzero entries of the dense scores)."""
    S, A = probs.shape
    scale = policy._logit_scale()  # escort and direct policies: the tabular rows times dz/dtheta
    if type(policy) is TabularSoftmax or scale is not None:
        indptr = np.arange(0, S * A * A + 1, A, dtype=np.int64)
        index = np.repeat(np.arange(S * A, dtype=np.int32).reshape(S, 1, A), A, axis=1).ravel()
        rows = np.eye(A)[None, :, :] - probs[:, None, :]
        if scale is not None:
            with np.errstate(over="ignore", invalid="ignore"):  # a score beyond the float64 range is reported by the caller
                rows = rows * scale[:, None, :]
        value = rows.ravel()
        return indptr, np.ascontiguousarray(index), np.ascontiguousarray(value)
    n = policy.n_params
    check_allocation(8 * S * A * n, f"the score rows ({S * A} x {n})", "use a smaller policy")
    if type(policy) is LinearSoftmax:  # phi(s, a) - sum_a' pi(a'|s) phi(s, a')
        phi = policy.features
        U = (phi - np.einsum("sa,sap->sp", probs, phi)[:, None, :]).reshape(S * A, n)
    else:
        U = policy.grad_log_prob(np.repeat(np.arange(S), A), np.tile(np.arange(A), S)).reshape(S * A, n)
    nz = U != 0.0
    indptr = np.concatenate(([0], np.cumsum(nz.sum(axis=1)))).astype(np.int64)
    index = np.nonzero(nz)[1].astype(np.int32)
    return indptr, np.ascontiguousarray(index), np.ascontiguousarray(U[nz])


def _moment_baseline(
    baseline: Any, mdp: FiniteMDP, policy: SoftmaxPolicy, gamma: float, weights: str, objective: str
) -> tuple[str, NDArray[np.float64]]:
    """(kind, the table b_t(s)) of a deterministic baseline: (H, S) for the finite horizon, (1, S)
    (one b(s) for every step) for the discounted objective."""
    H, S = (mdp.horizon, mdp.n_states) if objective == "finite_horizon" else (1, mdp.n_states)
    shape = "an (H, S) array" if objective == "finite_horizon" else "an (S,) array"
    if baseline is None:
        return "none", np.zeros((H, S))
    if isinstance(baseline, str):
        if baseline == "time" and weights != "reward_to_go":
            raise ValueError("baseline='time' needs weights='reward_to_go' (the return has no time index)")
        if baseline == "time" and objective != "finite_horizon":
            raise ValueError("baseline='time' needs objective='finite_horizon' (E[G_t | alive at t] depends on t)")
        if baseline == "optimal":
            if objective != "finite_horizon":
                raise ValueError("baseline='optimal' needs objective='finite_horizon'")
            return "optimal", np.zeros((H, S))  # per-coordinate baselines, formed in C++
        if baseline not in ("exact", "time", "mean"):
            raise ValueError(f"baseline must be None, 'exact', 'time', 'mean', 'optimal' or {shape}, got {baseline!r}")
        ev = evaluate(mdp, policy, objective, gamma=gamma)  # type: ignore[call-overload]
        if baseline == "exact":
            return "exact", np.ascontiguousarray(ev.state_values.reshape(H, S))
        if baseline == "mean":
            return "mean", np.full((H, S), ev.value)
        # E[G_t | alive at t]: G_t is 0 once the episode has ended, and V_t = 0 on terminal states
        alive = ev.state_distribution * ~mdp.terminal[None, :]
        mass = alive.sum(axis=1)
        num = (ev.state_distribution * ev.state_values).sum(axis=1)
        b = np.divide(num, mass, out=np.zeros(H), where=mass > 0)
        return "time", np.ascontiguousarray(np.repeat(b[:, None], S, axis=1))
    if isinstance(baseline, np.ndarray | list | tuple):
        table = as_float_array(baseline, "baseline")
        if table.shape != ((H, S) if objective == "finite_horizon" else (S,)):
            want = f"(H, S) = ({H}, {S}) (b_t(s))" if objective == "finite_horizon" else f"(S,) = ({S},) (b(s))"
            raise ValueError(f"an array baseline must have shape {want}, got {table.shape}")
        if not np.all(np.isfinite(table)):
            raise ValueError("baseline contains NaN or infinite values")
        return "table", np.ascontiguousarray(table.reshape(H, S))
    raise TypeError(f"baseline must be None, 'exact', 'time', 'mean', 'optimal' or {shape}, got {type(baseline).__name__}")


def moments(
    mdp: FiniteMDP,
    policy: SoftmaxPolicy,
    *,
    weights: Literal["reward_to_go", "return"] = "reward_to_go",
    baseline: Any = None,
    objective: Literal["finite_horizon", "discounted"] = "finite_horizon",
    gamma: float | None = None,
    covariance: bool | None = None,
    method: Method = "auto",
    tol: float = 1e-12,
    threads: int | None = None,
) -> Moments:
    r"""The exact mean and covariance of the single-trajectory estimator of
    :func:`pgfast.policy_gradient`.

    One episode :math:`\tau` of ``mdp.sample`` gives the estimate (:math:`\psi_t = \nabla_\theta
    \log\pi(a_t|s_t)`, :math:`G_t = \sum_{t' \ge t} \gamma^{t'-t} r_{t'}`)

    .. math::
        \hat g(\tau) = \sum_{t<\text{len}} \gamma^t \psi_t\,(G_t - b_t(s_t)) \quad
        (\text{reward-to-go}), \qquad
        \hat g(\tau) = \Big(\sum_{t<\text{len}} \psi_t\Big) (G_0 - b_0(s_0)) \quad (\text{return}),

    as :func:`pgfast.policy_gradient` forms it for each trajectory. The baselines are the
    deterministic limits of the batch ones: ``None`` (:math:`b = 0`), ``"exact"``
    (:math:`b_t(s) = V_t(s)`), ``"time"`` (reward-to-go only: :math:`b_t = \mathbb E[G_t \mid
    \text{alive at } t]`), ``"mean"`` (:math:`b = J = \mathbb E[G_0]`) or an (H, S) array
    :math:`b_t(s)` (e.g. ``ValueBaseline.values()``; the return weights read row 0). Each is a
    function of the state and step only, so the estimator is unbiased and ``mean`` equals
    :func:`gradient`. The batch versions of ``"mean"`` and ``"time"`` leave trajectory i out of its
    own baseline; that adds an O(1/N) term to the variance (see the exact guide).

    ``baseline="optimal"`` (finite horizon) takes per-coordinate baselines, the variance-reducing
    constants of Peters & Schaal (2008) and Greensmith, Bartlett & Baxter (2004), also unbiased:
    with return weights :math:`b^*_k = \mathbb E[Y_k^2 G_0] / \mathbb E[Y_k^2]`,
    :math:`Y = \sum_t \psi_t`, the constant that minimises each :math:`\operatorname{Var}[\hat g_k]`;
    with reward-to-go weights the per-step (G(PO)MDP) form
    :math:`\hat g = \sum_{h<H} Z_h \gamma^h (r_h - \tilde b_h)`, :math:`Z_h = \sum_{t \le h} \psi_t`
    (after the episode's end :math:`r_h = 0` and :math:`Z_h` is its whole score sum),
    :math:`\tilde b_{h,k} = \mathbb E[Z_{h,k}^2 r_h] / \mathbb E[Z_{h,k}^2]` (each step's term's second
    moment minimised on its own), i.e. the reward-to-go estimator with
    :math:`b_{t,k} = c_{t,k} = \sum_{h \ge t} \gamma^{h-t} \tilde b_{h,k}`. They are returned in
    ``optimal_baseline``; :math:`\mathbb E[Z_h^2 r_h]` comes from a forward recursion,
    O(H nnz(P) n_params). ``pg.policy_gradient(..., baseline="optimal")`` estimates these
    expectations from the other trajectories of its batch (leave-one-out).

    Computed in C++ by backward recursions over (t, s) of the conditional moments of the suffix
    return and of the suffix score sums (:math:`F_t = x(G_t - b_t) + \gamma F_{t+1}`,
    :math:`Y_t = x + Y_{t+1}`, :math:`G_t = r + \gamma G_{t+1}`, for each coordinate x of the
    score): O(H nnz(P) n_params) time and O(S n_params) memory for the variances,
    O(H nnz(P) n_params^2) time and O(S n_params^2) memory for the full covariance. Any softmax
    policy works through its score rows :math:`\nabla_\theta\log\pi(a|s)` (tabular: A entries
    per row, times :math:`\partial z/\partial\theta` for :class:`pgfast.EscortPolicy` and
    :class:`pgfast.DirectPolicy`; linear and :class:`pgfast.MLPSoftmax`: ``policy.grad_log_prob``
    of every pair).

    ``objective="discounted"`` (:math:`\gamma < 1`, reward-to-go weights) is the estimator
    :math:`\sum_{t \ge 0} \gamma^t \psi_t (G_t - b(s_t))` of infinite episodes (ended only by
    terminal states) and the gradient of the discounted :math:`J`; the same recursions are then
    stationary and solved as linear systems :math:`(I - c P_\pi) m = \text{rhs}` with
    :math:`c = \gamma` or :math:`\gamma^2`, one per coordinate (``method=``, as in
    :func:`evaluate`); its baselines are ``None``, ``"exact"`` (the discounted :math:`V(s)`),
    ``"mean"`` (the discounted :math:`J`) or an (S,) array :math:`b(s)`.

    Parameters
    ----------
    mdp : FiniteMDP
        The MDP.
    policy : SoftmaxPolicy
        The policy (its sizes must match the MDP's).
    weights : {"reward_to_go", "return"}
        The estimator's weights (default reward-to-go).
    baseline : None, {"exact", "time", "mean", "optimal"} or array_like (H, S)
        The baseline (default None); (S,) for the discounted objective.
    objective : {"finite_horizon", "discounted"}
        ``"finite_horizon"`` (default): :math:`J = \mathbb E[\sum_{t<H} \gamma^t r_t]`, what
        ``mdp.sample`` and :func:`pgfast.policy_gradient` estimate; ``"discounted"``: the
        infinite horizon (``mdp.horizon`` is ignored).
    gamma : float in [0, 1], optional
        Discount factor (default: ``mdp.gamma``); ``"discounted"`` needs gamma < 1.
    covariance : bool, optional
        Form the full covariance: by default when ``n_params <= MAX_COVARIANCE_PARAMS`` (64).
    method : {"auto", "dense", "sparse"}
        Linear solver of the discounted objective (``"auto"``: dense up to 200 states).
    tol : float in (0, 1e-2]
        Relative residual at which the sparse solver stops (default 1e-12).
    threads : int, optional
        Worker threads of the sparse solver's products, 1 to ``pgfast.MAX_THREADS`` (default:
        every usable CPU); the results do not depend on it.

    Returns
    -------
    Moments
        ``mean``, ``variance``, ``covariance``, ``trace``, ``noise_to_signal``, ``value``, and
        ``stderr(n)``.

    Raises
    ------
    TypeError
        ``mdp``, ``policy`` or ``baseline`` of the wrong type.
    ValueError
        An unknown ``weights``, ``baseline``, ``objective`` or ``method``, ``baseline="time"``
        with return weights or the discounted objective, return weights with the discounted
        objective, an array baseline of another shape or not finite, a bad ``gamma`` or ``tol``,
        a policy of another size, a sparse solve that does not converge, or moments beyond the
        float64 range.
    MemoryError
        Tables larger than memory (the message states the bytes requested).

    Examples
    --------
    >>> P = np.zeros((2, 2, 2))
    >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
    >>> P[1, :, 1] = 1.0
    >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
    ...                    terminal=[False, True])
    >>> pi = pg.TabularSoftmax(2, 2)
    >>> plain = pg.exact.moments(mdp, pi, weights="return")
    >>> best = pg.exact.moments(mdp, pi, baseline="exact")
    >>> bool(np.allclose(plain.mean, best.mean)), bool(np.allclose(best.mean, pg.exact.gradient(mdp, pi)))
    (True, True)
    >>> round(plain.trace, 6), round(best.trace, 6)
    (0.242188, 0.21875)
    >>> best.covariance.shape
    (4, 4)
    """
    require_instance(mdp, FiniteMDP, "mdp", "a pgfast.FiniteMDP")
    require_instance(policy, SoftmaxPolicy, "policy", "a pgfast policy (e.g. pgfast.TabularSoftmax)")
    if not isinstance(weights, str) or weights not in _MOMENT_WEIGHTS:
        raise ValueError(f"weights must be 'reward_to_go' or 'return', got {weights!r}")
    if not isinstance(objective, str) or objective not in ("finite_horizon", "discounted"):
        raise ValueError(f"moments supports objective='finite_horizon' or 'discounted', got {objective!r}")
    if objective == "discounted" and weights != "reward_to_go":
        raise ValueError("objective='discounted' needs weights='reward_to_go' (the return weights sum the scores of "
                         "every step of an episode that need not end)")
    if covariance is not None:
        covariance = as_bool(covariance, "covariance")
    g = _gamma(mdp, gamma, objective)
    meth, t = _solver(method, tol)
    policy = pinned(policy)  # the probabilities, scores and baseline from one theta
    probs = _check(mdp, policy)
    n, S = policy.n_params, mdp.n_states
    full = n <= MAX_COVARIANCE_PARAMS if covariance is None else covariance
    kind, table = _moment_baseline(baseline, mdp, policy, g, weights, objective)
    per_state = 6 * n + (6 * n * n if full else 0)
    if objective == "discounted" and (meth == "dense" or (meth == "auto" and S <= 200)):
        check_allocation(3 * 8 * S * S, f"a dense {S} x {S} solve", "use method='sparse'")
    check_allocation(16 * S * per_state, f"the moment recursions (S={S}, n_params={n})",
                     "pass covariance=False" if full else "use a smaller policy")
    indptr, index, value = _score_rows(policy, probs)
    mean, second, J, _, coord = _core.exact.moments(
        mdp._mdp, probs, indptr, index, value, n, g, _MOMENT_WEIGHTS[weights], table, full, objective == "discounted",
        _METHODS[meth], t, as_threads(threads), kind == "optimal")
    check_finite_result(mean, "the exact mean gradient", _OVERFLOW)
    check_finite_result(second, "the exact second moments", _OVERFLOW)
    if full:
        cov = second - np.outer(mean, mean)
        cov = (cov + cov.T) / 2.0
        var = np.maximum(np.diag(cov).copy(), 0.0)
    else:
        cov = None
        var = np.maximum(second - mean * mean, 0.0)
    trace = float(var.sum())
    norm2 = float(mean @ mean)
    with np.errstate(divide="ignore", invalid="ignore"):
        nts = float(np.float64(trace) / np.float64(norm2))
    shape = policy.theta.shape
    if coord is not None:
        coord = coord[0].reshape(shape) if weights == "return" else coord.reshape((mdp.horizon,) + shape)
    return Moments(mean.reshape(shape), var.reshape(shape), cov, trace, nts, float(J), str(weights), kind,
                   str(objective), g, coord)
