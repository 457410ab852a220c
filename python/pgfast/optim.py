r"""Optimizers for policy gradient *ascent*: :math:`\theta \leftarrow \theta + \eta_t\, d_t` (see :doc:`/theory`, "Gradient ascent").

Each optimizer updates ``policy.theta`` in place from a gradient estimate (or the exact
gradient) and keeps its state in ``state_dict()`` for saving and resuming. On a
:class:`pgfast.DirectPolicy` each one projects ``theta + step`` onto the probability simplex, row
by row (:func:`project_simplex`): projected gradient ascent (see :doc:`/theory`, "Escort and direct
parameterisations").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core, exact
from ._continuous import ContinuousTrajectories
from ._estimators import soft_batch
from ._gaussian import LinearGaussian
from ._mdp import FiniteMDP
from ._obs_softmax import ObservationSoftmax
from ._policy import SoftmaxPolicy, TabularSoftmax, pinned
from ._policy_params import DirectPolicy
from ._regularizers import Entropy
from ._sampling import Trajectories
from ._validation import as_float, as_float_array, as_int, as_rcond, check_allocation, check_finite_result

__all__ = [
    "Adam", "ArmijoLineSearch", "GradientAscent", "NaturalGradient", "NaturalPolicyGradient", "Optimizer",
    "PolicyMirrorDescent", "project_simplex",
]


def _positive(x: Any, name: str) -> float:
    v = as_float(x, name)
    if not (math.isfinite(v) and v > 0.0):
        raise ValueError(f"{name} must be a finite number > 0, got {v}")
    return v


_CONTINUOUS_POLICIES = (LinearGaussian, ObservationSoftmax)  # policies on vector observations


def _grad(policy: SoftmaxPolicy, grad: ArrayLike) -> NDArray[np.float64]:
    if not isinstance(policy, (SoftmaxPolicy, *_CONTINUOUS_POLICIES)):
        raise TypeError(f"policy must be a pgfast policy, got {type(policy).__name__}")
    g = as_float_array(grad, "grad")
    if g.shape != policy.theta.shape:
        raise ValueError(f"grad must have the shape of theta {policy.theta.shape}, got {g.shape}")
    if not np.all(np.isfinite(g)):
        raise ValueError("grad contains NaN or infinite values")
    return g


def _retract(policy: Any, theta: NDArray[np.float64]) -> NDArray[np.float64]:
    """``theta`` mapped into the policy's domain: each row projected onto the probability simplex
    for a :class:`pgfast.DirectPolicy` (projected gradient ascent), ``theta`` itself otherwise."""
    if isinstance(policy, DirectPolicy):
        return project_simplex(theta)
    return theta


def _apply(policy: SoftmaxPolicy, d: NDArray[np.float64]) -> NDArray[np.float64]:
    """policy.theta + d, set through the checked setter: a step that overflows theta (inf) or is
    NaN raises and leaves theta as it was. A DirectPolicy takes the projection of theta + d onto
    the simplex (:func:`_retract`); the step returned is then the one taken."""
    with np.errstate(over="ignore", invalid="ignore"):  # reported below, naming the step
        new = policy.theta + d
    if not np.all(np.isfinite(new)):
        raise ValueError(
            "the update overflowed: theta + step is not finite (the step is the learning rate times "
            "a gradient beyond the float64 range); lower lr or scale the rewards"
        )
    projected = _retract(policy, new)
    if projected is not new:
        taken: NDArray[np.float64] = projected - policy.theta
        policy.theta = projected
        return taken
    policy.theta = new
    return d


def _betas(betas: Any) -> tuple[float, float]:
    try:
        b1, b2 = betas
    except (TypeError, ValueError):
        raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}") from None
    b1, b2 = as_float(b1, "betas"), as_float(b2, "betas")
    if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
        raise ValueError(f"betas must be in [0, 1), got {betas}")
    return b1, b2


def _check_state(state: Any, keys: tuple[str, ...], kind: str) -> None:
    """TypeError unless ``state`` is a dict; ValueError naming another optimizer's type (checked
    first: its keys differ) or missing keys."""
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict from {kind}.state_dict(), got {type(state).__name__}")
    if "type" in state and not (isinstance(state["type"], str) and state["type"] == kind):
        raise ValueError(f"state['type'] is {state['type']!r}: a state dict of another optimizer, not of {kind!r}")
    missing = [k for k in keys if k not in state]
    if missing:
        raise ValueError(f"state is missing the key(s) {', '.join(map(repr, missing))} of a {kind} state dict")


def _state_t(state: dict[str, Any]) -> int:
    return as_int(state["t"], "t", minimum=0)


class Optimizer:
    """Base class: ``step(policy, grad, **context)`` adds the ascent step to ``policy.theta``.

    The optimizers are :class:`GradientAscent`, :class:`Adam` and :class:`NaturalGradient`, the
    closed-form :class:`NaturalPolicyGradient` and :class:`PolicyMirrorDescent`, and
    :class:`ArmijoLineSearch`; :func:`pgfast.train` takes any of them (passing each the context
    it needs). Their state (hyperparameters, step count, moments)
    round-trips through :meth:`state_dict` and :meth:`load_state_dict`, so a run can be saved
    and resumed.

    ``hyperparameters`` names the entries of :meth:`state_dict` that are settings rather than
    state (learning rate, decay rates, ...): :func:`pgfast.train` records them in a checkpoint
    and refuses to resume with other values. A subclass lists its own (default: none, so only
    the class is compared).

    Attributes
    ----------
    t : int
        Number of steps taken.
    hyperparameters : tuple of str
        The :meth:`state_dict` entries that are settings, not state.

    Examples
    --------
    >>> opts = [pg.optim.GradientAscent(lr=0.5), pg.optim.Adam(lr=0.1), pg.optim.NaturalGradient(lr=0.5)]
    >>> all(isinstance(o, pg.optim.Optimizer) for o in opts)
    True
    >>> [(o.state_dict()["type"], o.t) for o in opts]
    [('GradientAscent', 0), ('Adam', 0), ('NaturalGradient', 0)]
    """

    t: int = 0
    hyperparameters: tuple[str, ...] = ()

    def step(self, policy: SoftmaxPolicy, grad: ArrayLike, **context: Any) -> NDArray[np.float64]:
        """Updates ``policy.theta`` in place; returns the step taken.

        The new theta (old theta plus the step) is assigned through the policy's checked setter.

        Parameters
        ----------
        policy : SoftmaxPolicy
            The policy to update.
        grad : array_like, shape of ``policy.theta``
            An estimate of the gradient of J (or the exact gradient), finite.
        **context
            What the optimizer needs besides the gradient: :class:`NaturalGradient` takes
            ``mdp=`` (``fisher="exact"``), or ``traj=`` or ``visits=`` (``fisher="sampled"``);
            :class:`GradientAscent` and :class:`Adam` ignore it.

        Returns
        -------
        ndarray of float64, shape of ``policy.theta``
            The step added to theta.

        Raises
        ------
        TypeError
            ``policy`` is not a pgfast policy.
        ValueError
            A gradient of another shape or not finite, a missing context, or a step beyond the
            float64 range (theta and the optimizer's state are then unchanged).

        Examples
        --------
        >>> pi = pg.TabularSoftmax(1, 2)
        >>> opt = pg.optim.GradientAscent(lr=0.5)
        >>> opt.step(pi, [[1.0, -1.0]])
        array([[ 0.5, -0.5]])
        >>> pi.theta, opt.t
        (array([[ 0.5, -0.5]]), 1)
        >>> opt.step(pi, [[np.nan, 0.0]])
        Traceback (most recent call last):
        ...
        ValueError: grad contains NaN or infinite values
        >>> pi.theta, opt.t  # unchanged by the failed step
        (array([[ 0.5, -0.5]]), 1)
        """
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """The optimizer's hyperparameters and state as a JSON-serialisable dict.

        Returns
        -------
        dict
            ``"type"`` (the class name), the hyperparameters, the step count ``"t"`` and, for
            :class:`Adam`, the moments ``"m"`` and ``"v"`` as nested lists. A callable schedule of
            :class:`GradientAscent` is saved as ``"callable"`` (it cannot be serialised).

        Examples
        --------
        >>> opt = pg.optim.Adam(lr=0.1)
        >>> _ = opt.step(pg.TabularSoftmax(2, 2), [[1.0, 0.0], [0.0, 0.0]])
        >>> state = opt.state_dict()
        >>> state["type"], state["t"]
        ('Adam', 1)
        >>> resumed = pg.optim.Adam()
        >>> resumed.load_state_dict(state)
        >>> resumed.t, resumed.lr
        (1, 0.1)
        """
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state saved by :meth:`state_dict` (``ValueError`` naming a missing or bad
        entry).

        Every entry is checked before any is assigned, so a rejected state leaves the optimizer
        as it was.

        Parameters
        ----------
        state : dict
            A dict from ``state_dict()`` of the same optimizer class.

        Raises
        ------
        TypeError
            ``state`` is not a dict.
        ValueError
            A missing or bad entry, the state of another optimizer, or a callable schedule saved
            by a :class:`GradientAscent` built without one.

        Examples
        --------
        >>> opt = pg.optim.GradientAscent(lr=0.5, schedule="inv_sqrt")
        >>> _ = opt.step(pg.TabularSoftmax(1, 2), [[1.0, 0.0]])
        >>> resumed = pg.optim.GradientAscent()
        >>> resumed.load_state_dict(opt.state_dict())
        >>> resumed.lr, resumed.schedule, resumed.t
        (0.5, 'inv_sqrt', 1)
        >>> resumed.load_state_dict({"type": "GradientAscent", "lr": -1.0, "schedule": "constant", "t": 0})
        Traceback (most recent call last):
        ...
        ValueError: lr must be a finite number > 0, got -1.0
        >>> resumed.lr  # unchanged
        0.5
        """
        raise NotImplementedError

    def _snapshot(self) -> dict[str, Any]:
        """The state for :meth:`load_state_dict`, taken cheaply (arrays stay arrays): what
        :func:`pgfast.train` saves in a checkpoint and restores after a Ctrl-C mid-iteration."""
        return self.state_dict()


class GradientAscent(Optimizer):
    r"""Plain gradient ascent :math:`\theta_{t} = \theta_{t-1} + \eta_t \hat g_t`.

    ``schedule``: ``"constant"`` (:math:`\eta_t = \text{lr}`), ``"inv_sqrt"``
    (:math:`\eta_t = \text{lr}/\sqrt t`, t = 1, 2, ...: the step sizes of the convergence result
    of stochastic gradient ascent, see :doc:`/theory`, "Gradient ascent"), or a callable
    ``t -> factor`` (:math:`\eta_t = \text{lr} \cdot f(t)`). On a :class:`pgfast.DirectPolicy`:
    :math:`\theta_t = \text{proj}_\Delta(\theta_{t-1} + \eta_t \hat g_t)` row by row (projected
    gradient ascent), and ``step`` returns the step taken.

    Parameters
    ----------
    lr : float > 0
        Learning rate (default 0.1).
    schedule : {"constant", "inv_sqrt"} or callable
        Step-size schedule.

    Raises
    ------
    ValueError
        A non-positive ``lr`` or an unknown ``schedule``; from ``step``, a gradient of another
        shape or not finite, or a step beyond the float64 range.

    Attributes
    ----------
    lr : float
        The learning rate.
    schedule : str or callable
        The step-size schedule.
    t : int
        Number of steps taken.

    Examples
    --------
    >>> P = np.zeros((2, 2, 2))
    >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
    >>> P[1, :, 1] = 1.0
    >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
    ...                    terminal=[False, True])
    >>> pi = pg.TabularSoftmax(2, 2)
    >>> opt = pg.optim.GradientAscent(lr=1.0)
    >>> opt.step(pi, pg.exact.gradient(mdp, pi))  # returns the step, adds it to pi.theta
    array([[-0.1875,  0.1875],
           [ 0.    ,  0.    ]])
    >>> opt.state_dict()
    {'type': 'GradientAscent', 'lr': 1.0, 'schedule': 'constant', 't': 1}
    """

    hyperparameters = ("lr", "schedule")

    def __init__(self, lr: float = 0.1, schedule: str | Callable[[int], float] = "constant") -> None:
        self.lr = _positive(lr, "lr")
        if not (callable(schedule) or (isinstance(schedule, str) and schedule in ("constant", "inv_sqrt"))):
            raise ValueError(f"schedule must be 'constant', 'inv_sqrt' or a callable, got {schedule!r}")
        self.schedule = schedule
        self.t = 0

    def learning_rate(self, t: int) -> float:
        r"""The learning rate :math:`\eta_t` of step ``t`` under the schedule (the first step is t = 1).

        Parameters
        ----------
        t : int >= 1
            The step number.

        Returns
        -------
        float

        Raises
        ------
        TypeError
            ``t`` is not an integer.
        ValueError
            ``t`` below 1, or a callable schedule whose factor is negative or not finite.

        Examples
        --------
        >>> opt = pg.optim.GradientAscent(lr=0.5, schedule="inv_sqrt")
        >>> [opt.learning_rate(t) for t in (1, 4, 16)]
        [0.5, 0.25, 0.125]
        >>> opt.learning_rate(0)
        Traceback (most recent call last):
        ...
        ValueError: t must be >= 1 (the first step is t = 1), got 0
        >>> halving = pg.optim.GradientAscent(lr=0.5, schedule=lambda t: 0.5 ** (t - 1))
        >>> [halving.learning_rate(t) for t in (1, 2, 3)]
        [0.5, 0.25, 0.125]
        """
        t = as_int(t, "t")
        if t < 1:
            raise ValueError(f"t must be >= 1 (the first step is t = 1), got {t}")
        if self.schedule == "constant":
            return self.lr
        if self.schedule == "inv_sqrt":
            return self.lr / math.sqrt(t)
        assert callable(self.schedule)
        f = as_float(self.schedule(t), f"schedule({t})")
        if not (math.isfinite(f) and f >= 0.0):
            raise ValueError(f"schedule({t}) must be a finite number >= 0, got {f}")
        return self.lr * f

    def step(self, policy: SoftmaxPolicy, grad: ArrayLike, **context: Any) -> NDArray[np.float64]:
        g = _grad(policy, grad)
        lr = self.learning_rate(self.t + 1)
        with np.errstate(over="ignore"):  # an overflowing step is reported by _apply
            d = _apply(policy, lr * g)
        self.t += 1  # only after a step that was taken
        return d

    def state_dict(self) -> dict[str, Any]:
        if callable(self.schedule):
            return {"type": "GradientAscent", "lr": self.lr, "schedule": "callable", "t": self.t}
        return {"type": "GradientAscent", "lr": self.lr, "schedule": self.schedule, "t": self.t}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _check_state(state, ("lr", "schedule", "t"), "GradientAscent")
        lr = _positive(state["lr"], "lr")
        schedule = state["schedule"]
        if isinstance(schedule, str) and schedule == "callable":
            if not callable(self.schedule):
                raise ValueError(
                    "the saved GradientAscent used a callable schedule, which a state dict cannot hold: "
                    "construct GradientAscent(schedule=<the same callable>) before load_state_dict"
                )
            schedule = self.schedule
        elif not isinstance(schedule, str) or schedule not in ("constant", "inv_sqrt"):
            raise ValueError(f"schedule must be 'constant', 'inv_sqrt' or 'callable', got {schedule!r}")
        self.lr, self.schedule, self.t = lr, schedule, _state_t(state)


_ADAM_MAX_GRAD = 1e150  # (1 - beta2) g**2 stays finite in float64


class Adam(Optimizer):
    r"""Adam (Kingma & Ba 2015) for ascent: :math:`m \leftarrow \beta_1 m + (1-\beta_1) g`,
    :math:`v \leftarrow \beta_2 v + (1-\beta_2) g^2`, :math:`\theta \mathrel{+}= \text{lr}\,\hat m/(\sqrt{\hat v}+\epsilon)`
    with bias-corrected :math:`\hat m, \hat v`.

    Parameters
    ----------
    lr : float > 0
        Learning rate (default 0.05).
    betas : (float, float) in [0, 1)
        Decay rates of the first and second moments (default (0.9, 0.999)).
    eps : float > 0
        Added to :math:`\sqrt{\hat v}` (default 1e-8).

    Raises
    ------
    ValueError
        Bad hyperparameters; from ``step``, a gradient of another shape, not finite or whose
        square overflows, or a step beyond the float64 range (the state is then unchanged).

    Attributes
    ----------
    lr : float
        The learning rate.
    betas : (float, float)
        The decay rates.
    eps : float
        The term added to :math:`\sqrt{\hat v}`.
    t : int
        Number of steps taken.
    m, v : ndarray of float64 or None
        The first and second moment estimates, in the shape of the gradient (None before the
        first step).

    Examples
    --------
    >>> P = np.zeros((2, 2, 2))
    >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
    >>> P[1, :, 1] = 1.0
    >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
    ...                    terminal=[False, True])
    >>> pi = pg.TabularSoftmax(2, 2)
    >>> opt = pg.optim.Adam(lr=0.1)
    >>> opt.step(pi, pg.exact.gradient(mdp, pi)).round(6)  # the first step is lr * sign(g)
    array([[-0.1,  0.1],
           [ 0. ,  0. ]])
    >>> for _ in range(50):
    ...     _ = opt.step(pi, pg.exact.gradient(mdp, pi))
    >>> round(pg.exact.evaluate(mdp, pi).J, 4)  # the optimum is 1
    0.9999
    """

    hyperparameters = ("lr", "betas", "eps")

    def __init__(self, lr: float = 0.05, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.lr = _positive(lr, "lr")
        self.betas = _betas(betas)
        self.eps = _positive(eps, "eps")
        self.t = 0
        self.m: NDArray[np.float64] | None = None
        self.v: NDArray[np.float64] | None = None

    def step(self, policy: SoftmaxPolicy, grad: ArrayLike, **context: Any) -> NDArray[np.float64]:
        g = _grad(policy, grad)
        if np.max(np.abs(g), initial=0.0) > _ADAM_MAX_GRAD:  # g * g would overflow the second moment
            raise ValueError(
                f"grad must be at most {_ADAM_MAX_GRAD:g} in magnitude for Adam (its second moment holds "
                f"g**2 in float64), got {float(np.max(np.abs(g))):g}; scale the rewards"
            )
        m0, v0, t0 = self.m, self.v, self.t
        if m0 is None or v0 is None or m0.shape != g.shape:  # first step (or another policy): start afresh
            m0, v0, t0 = np.zeros_like(g), np.zeros_like(g), 0
        b1, b2 = self.betas
        t = t0 + 1
        m = b1 * m0 + (1 - b1) * g
        v = b2 * v0 + (1 - b2) * g * g
        mhat = m / (1 - b1**t)
        vhat = v / (1 - b2**t)
        d = _apply(policy, self.lr * mhat / (np.sqrt(vhat) + self.eps))
        self.t, self.m, self.v = t, m, v  # the state moves only with a step that was taken
        return d

    def state_dict(self) -> dict[str, Any]:
        state = self._snapshot()
        return {**state, "m": None if self.m is None else self.m.tolist(), "v": None if self.v is None else self.v.tolist()}

    def _snapshot(self) -> dict[str, Any]:  # the moments as array copies, not lists
        return {
            "type": "Adam", "lr": self.lr, "betas": list(self.betas), "eps": self.eps, "t": self.t,
            "m": None if self.m is None else self.m.copy(), "v": None if self.v is None else self.v.copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _check_state(state, ("lr", "betas", "eps", "t", "m", "v"), "Adam")
        lr, betas, eps, t = _positive(state["lr"], "lr"), _betas(state["betas"]), _positive(state["eps"], "eps"), _state_t(state)
        m = None if state["m"] is None else as_float_array(state["m"], "m")
        v = None if state["v"] is None else as_float_array(state["v"], "v")
        if m is not None or v is not None:
            if m is None or v is None or m.shape != v.shape:
                raise ValueError("the state's m and v must both be None or arrays of one shape")
            if not (np.isfinite(m).all() and np.isfinite(v).all() and (v >= 0).all()):
                raise ValueError("the state's m must be finite and v finite and >= 0")
        self.lr, self.betas, self.eps, self.t, self.m, self.v = lr, betas, eps, t, m, v


class NaturalGradient(Optimizer):
    r"""Natural gradient ascent (Kakade 2001): :math:`\theta \mathrel{+}= \eta\,(F + \lambda I)^{-1}\hat g`.

    ``fisher="exact"``: F from :func:`pgfast.exact.fisher` (finite-horizon trajectory Fisher) of
    the MDP passed to ``step(policy, grad, mdp=mdp)``. ``fisher="sampled"``: F estimated from the
    batch ``traj=`` (or ``visits=``, the mean number of visits per state and episode):
    :math:`\hat F = \sum_s \hat n(s) \sum_a \pi(a|s)\,\psi\psi^\top`, visit counts from the samples,
    the expectation over actions exact (a lower-variance, unbiased estimate of
    :math:`\mathbb E\sum_t\psi_t\psi_t^\top`). ``damping`` :math:`\lambda`; with ``damping=0`` the
    pseudo-inverse (eigenvalues below ``rcond`` times the largest dropped). For the policies on
    vector observations (:class:`pgfast.LinearGaussian`, :class:`pgfast.ObservationSoftmax`) only
    ``fisher="sampled"`` applies, with ``traj=`` a :class:`pgfast.ContinuousTrajectories` batch:
    :math:`\hat F = \frac1N \sum_i \sum_{t < T_i} \psi_{i,t}\psi_{i,t}^\top` from the scores of
    its steps. MLP policies are solved
    in the row space of the visited state-action pairs (see :func:`pgfast.exact.natural_gradient`). Tabular policies are
    solved state by state. See :doc:`/theory`, "The natural gradient".

    Parameters
    ----------
    lr : float > 0
        Learning rate (default 0.1).
    damping : float >= 0
        :math:`\lambda` (default 1e-3).
    fisher : {"exact", "sampled"}
        Where F comes from (default ``"exact"``).
    rcond : float
        Relative eigenvalue cut-off of the pseudo-inverse when ``damping=0`` (default 1e-10).

    Raises
    ------
    ValueError
        Bad hyperparameters; from ``step``, a missing ``mdp=`` (exact) or ``traj=`` /
        ``visits=`` (sampled), context the Fisher matrix would not use (``traj=`` or
        ``visits=`` with ``fisher="exact"``, ``mdp=`` or both ``traj=`` and ``visits=`` with
        ``fisher="sampled"``), a gradient of another shape, or a direction or step beyond the
        float64 range.
    TypeError
        From ``step``, a context keyword other than ``mdp``, ``traj`` and ``visits``.

    Attributes
    ----------
    lr : float
        The learning rate.
    damping : float
        :math:`\lambda`.
    fisher : str
        ``"exact"`` or ``"sampled"``.
    rcond : float
        The pseudo-inverse's relative cut-off.
    t : int
        Number of steps taken.

    Examples
    --------
    >>> P = np.zeros((2, 2, 2))
    >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
    >>> P[1, :, 1] = 1.0
    >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
    ...                    terminal=[False, True])
    >>> pi = pg.TabularSoftmax(2, 2)
    >>> opt = pg.optim.NaturalGradient(lr=0.5)
    >>> opt.step(pi, pg.exact.gradient(mdp, pi), mdp=mdp).round(6)
    array([[-0.107021,  0.107021],
           [ 0.      ,  0.      ]])

    With the Fisher matrix estimated from the batch that gave the gradient:

    >>> traj = mdp.sample(pi, 1000, seed=0)
    >>> sampled = pg.optim.NaturalGradient(lr=0.5, fisher="sampled")
    >>> sampled.step(pi, pg.policy_gradient(pi, traj).grad, traj=traj).shape
    (2, 2)
    """

    hyperparameters = ("lr", "damping", "fisher", "rcond")

    def __init__(self, lr: float = 0.1, damping: float = 1e-3, fisher: str = "exact", rcond: float = 1e-10) -> None:
        self.lr = _positive(lr, "lr")
        self.damping = as_float(damping, "damping")
        if not (math.isfinite(self.damping) and self.damping >= 0.0):
            raise ValueError(f"damping must be a finite number >= 0, got {self.damping}")
        if not isinstance(fisher, str) or fisher not in ("exact", "sampled"):
            raise ValueError(f"fisher must be 'exact' or 'sampled', got {fisher!r}")
        self.fisher = fisher
        self.rcond = as_rcond(rcond)
        self.t = 0

    def direction(
        self,
        policy: SoftmaxPolicy,
        grad: ArrayLike,
        *,
        mdp: FiniteMDP | None = None,
        traj: Trajectories | None = None,
        visits: ArrayLike | None = None,
    ) -> NDArray[np.float64]:
        """The natural direction :math:`(F + \\lambda I)^{-1} g` (no step taken).

        Parameters
        ----------
        policy : SoftmaxPolicy
            The policy whose Fisher information is used.
        grad : array_like, shape of ``policy.theta``
            The gradient g, finite.
        mdp : FiniteMDP, optional
            The MDP of the exact Fisher matrix (required with ``fisher="exact"``, refused with
            ``fisher="sampled"``).
        traj : Trajectories, optional
            A batch whose visit counts weight the sampled Fisher matrix (``fisher="sampled"``;
            refused with ``fisher="exact"``).
        visits : array_like (S,), optional
            Mean visits per state and episode, passed instead of ``traj`` (``fisher="sampled"``;
            refused with ``fisher="exact"`` or together with ``traj``).

        Returns
        -------
        ndarray of float64, shape of ``policy.theta``

        Raises
        ------
        TypeError
            ``policy`` or ``traj`` of the wrong type.
        ValueError
            The context ``fisher`` needs is missing, or context it would not use is given (the
            message names the arguments); a gradient of another shape or not finite, ``visits``
            of another shape, negative or not finite, a batch or MDP of another size, or a
            direction beyond the float64 range.

        Examples
        --------
        >>> P = np.zeros((2, 2, 2))
        >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
        >>> P[1, :, 1] = 1.0
        >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
        ...                    terminal=[False, True])
        >>> pi = pg.TabularSoftmax(2, 2)
        >>> opt = pg.optim.NaturalGradient(lr=0.5, damping=1e-3)
        >>> d = opt.direction(pi, pg.exact.gradient(mdp, pi), mdp=mdp)
        >>> d.round(6)
        array([[-0.214041,  0.214041],
               [ 0.      ,  0.      ]])
        >>> bool(np.allclose(d, pg.exact.natural_gradient(mdp, pi, damping=1e-3)))
        True
        >>> opt.t, bool(pi.theta.any())  # no step was taken
        (0, False)
        >>> opt.direction(pi, pg.exact.gradient(mdp, pi), mdp=mdp, visits=[1.0, 0.0])
        Traceback (most recent call last):
        ...
        ValueError: NaturalGradient(fisher='exact') takes the Fisher matrix of mdp=, not visits=: call direction(policy, grad, mdp=mdp)
        """
        return self._direction("direction", policy, grad, mdp, traj, visits)

    def _direction(
        self, method: str, policy: SoftmaxPolicy, grad: ArrayLike, mdp: FiniteMDP | None, traj: Trajectories | None,
        visits: ArrayLike | None,
    ) -> NDArray[np.float64]:
        """:meth:`direction`, its errors naming ``method``, the method the user called."""
        g = _grad(policy, grad)
        if isinstance(policy, _CONTINUOUS_POLICIES):
            return self._score_direction(method, policy, g, mdp, traj, visits)
        policy = pinned(policy)  # the Fisher weights, probabilities and MLP pass from one theta
        if self.fisher == "exact":
            unused = [name for name, value in (("traj", traj), ("visits", visits)) if value is not None]
            if unused:
                raise ValueError(
                    f"NaturalGradient(fisher='exact') takes the Fisher matrix of mdp=, not "
                    f"{' or '.join(f'{name}=' for name in unused)}: call {method}(policy, grad, mdp=mdp)"
                )
            if mdp is None:
                raise ValueError(f"NaturalGradient(fisher='exact') needs {method}(policy, grad, mdp=mdp)")
            w = _exact_visits(mdp, policy)
        else:
            if mdp is not None:
                raise ValueError(
                    f"NaturalGradient(fisher='sampled') estimates the Fisher matrix from traj= or visits=, "
                    f"not from mdp= (which fisher='exact' takes): call {method}(policy, grad, traj=batch)"
                )
            if traj is not None and visits is not None:
                raise ValueError(
                    f"NaturalGradient(fisher='sampled') takes traj= or visits=, not both: call "
                    f"{method}(policy, grad, traj=batch) or {method}(policy, grad, visits=visits)"
                )
            if visits is not None:
                w = np.ascontiguousarray(as_float_array(visits, "visits"))
                if w.shape != (policy.n_states,):
                    raise ValueError(f"visits must have shape (S,) = ({policy.n_states},), got {w.shape}")
                if not (np.isfinite(w).all() and (w >= 0).all()):
                    raise ValueError("visits must be finite and >= 0 (mean visits per state and episode)")
            elif traj is not None:
                if not isinstance(traj, Trajectories):
                    raise TypeError(f"traj must be a pgfast.Trajectories batch, got {type(traj).__name__}")
                if traj.mdp.n_states != policy.n_states:
                    raise ValueError(
                        f"traj comes from an MDP with {traj.mdp.n_states} states, the policy has {policy.n_states}"
                    )
                w = np.bincount(traj.states[traj.mask], minlength=policy.n_states).astype(np.float64) / traj.n
            else:
                raise ValueError(f"NaturalGradient(fisher='sampled') needs {method}(policy, grad, traj=batch) or visits=")
        probs = np.ascontiguousarray(policy.probs())
        x = policy._natural(probs, w, g, self.damping, self.rcond)
        check_finite_result(x, "the natural gradient direction", "grad is too large for the Fisher information's smallest kept eigenvalue; raise damping or rcond")
        return x

    def _score_direction(self, method: str, policy: Any, g: NDArray[np.float64], mdp: Any, traj: Any,
                         visits: Any) -> NDArray[np.float64]:
        r"""The direction for a policy on vector observations (:class:`pgfast.LinearGaussian`,
        :class:`pgfast.ObservationSoftmax`): F estimated from the scores of the batch ``traj``,
        :math:`\hat F = \frac1N \sum_i \sum_{t < T_i} \psi_{i,t}\psi_{i,t}^\top`."""
        what = type(policy).__name__
        if self.fisher == "exact":
            raise ValueError(f"NaturalGradient(fisher='exact') needs the exact Fisher matrix of a finite MDP; for a {what} "
                             f"use NaturalGradient(fisher='sampled') and {method}(policy, grad, traj=batch)")
        if mdp is not None or visits is not None:
            raise ValueError(f"NaturalGradient(fisher='sampled') estimates the Fisher matrix of a {what} from the scores "
                             f"of traj=, not from mdp= or visits=: call {method}(policy, grad, traj=batch)")
        if traj is None:
            raise ValueError(f"NaturalGradient(fisher='sampled') needs {method}(policy, grad, traj=batch) for a {what}")
        if not isinstance(traj, ContinuousTrajectories):
            raise TypeError(f"traj must be a pgfast.ContinuousTrajectories batch for a {what}, got {type(traj).__name__}")
        if traj.n == 0:
            raise ValueError("traj holds no trajectories (N = 0); the Fisher matrix needs at least one")
        mask = traj.mask
        psi = np.asarray(policy.grad_log_prob(traj.states[mask], traj.actions[mask]), dtype=np.float64).reshape(-1, g.size)
        F = psi.T @ psi / traj.n
        lam, V = np.linalg.eigh(0.5 * (F + F.T))
        lam = np.maximum(lam, 0.0)
        if self.damping > 0.0:
            inv = 1.0 / (lam + self.damping)
        else:
            keep = lam > self.rcond * (lam.max(initial=0.0))
            inv = np.where(keep, 1.0 / np.where(keep, lam, 1.0), 0.0)
        with np.errstate(over="ignore", invalid="ignore"):
            x = V @ (inv * (V.T @ g.ravel()))
        x = x.reshape(g.shape)
        check_finite_result(x, "the natural gradient direction", "grad is too large for the Fisher information's smallest kept eigenvalue; raise damping or rcond")
        return np.asarray(x)

    def step(self, policy: SoftmaxPolicy, grad: ArrayLike, **context: Any) -> NDArray[np.float64]:
        unknown = [key for key in context if key not in ("mdp", "traj", "visits")]
        if unknown:
            raise TypeError(
                f"NaturalGradient.step takes the context mdp=, traj= or visits=, got {', '.join(map(repr, unknown))}"
            )
        x = self._direction("step", policy, grad, context.get("mdp"), context.get("traj"), context.get("visits"))
        with np.errstate(over="ignore"):  # an overflowing step is reported by _apply
            d = _apply(policy, self.lr * x)
        self.t += 1
        return d

    def state_dict(self) -> dict[str, Any]:
        return {"type": "NaturalGradient", "lr": self.lr, "damping": self.damping, "fisher": self.fisher, "rcond": self.rcond, "t": self.t}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _check_state(state, ("lr", "damping", "fisher", "rcond", "t"), "NaturalGradient")
        checked = NaturalGradient(state["lr"], state["damping"], state["fisher"], state["rcond"])  # the constructor's checks
        t = _state_t(state)  # every value checked before any is assigned
        self.lr, self.damping, self.fisher, self.rcond = checked.lr, checked.damping, checked.fisher, checked.rcond
        self.t = t


def _exact_visits(mdp: FiniteMDP, policy: SoftmaxPolicy) -> NDArray[np.float64]:
    """State weighting of the exact finite-horizon Fisher: sum_t d_t(s) (no value tables built)."""
    return exact.fisher_weights(mdp, policy, "finite_horizon")


# -- closed-form updates of tabular softmax policies -----------------------------------------------

_CLOSED_FORM_CONTEXT = ("mdp", "traj", "advantages")


def _tabular(policy: Any, kind: str) -> TabularSoftmax:
    if not isinstance(policy, TabularSoftmax):
        raise TypeError(f"{kind} updates a pgfast.TabularSoftmax policy in closed form, got {type(policy).__name__}")
    return policy


def _sampled_advantages(traj: Any, policy: SoftmaxPolicy, gamma: float, tau: float) -> NDArray[np.float64]:
    """Every-visit Monte Carlo estimate (S, A) of the (entropy-regularised) advantages from a batch:
    the mean discounted return-to-go after each visit of (s, a), minus the mean after each visit
    of s; 0 for pairs the batch never visits."""
    if not isinstance(traj, Trajectories):
        raise TypeError(f"traj must be a pgfast.Trajectories batch, got {type(traj).__name__}")
    S, A = policy.theta.shape
    if traj.mdp.n_states != S or traj.mdp.n_actions != A:
        raise ValueError(f"traj comes from an MDP with {traj.mdp.n_states} states and {traj.mdp.n_actions} actions, "
                         f"the policy has {S} and {A}")
    if traj.n == 0:
        raise ValueError("traj holds no trajectories (N = 0); the advantages need at least one")
    mask = traj.mask
    if tau > 0.0:  # the soft rewards r_t - tau log pi(a_t|s_t) on the real steps
        traj = soft_batch(traj, policy.probs(), tau)
    G = traj.reward_to_go(gamma)  # C++, backwards: G_t = r_t + gamma G_{t+1}, 0 on padding
    s, a, g = traj.states[mask].astype(np.int64), traj.actions[mask].astype(np.int64), G[mask]
    pair = s * A + a
    n_sa = np.bincount(pair, minlength=S * A).reshape(S, A)
    q = np.bincount(pair, weights=g, minlength=S * A).reshape(S, A) / np.maximum(n_sa, 1)
    n_s = n_sa.sum(axis=1)
    v = np.bincount(s, weights=g, minlength=S) / np.maximum(n_s, 1)
    if tau > 0.0:  # Q_tau(s, a) leaves out the bonus -tau log pi(a|s) of the action taken at s
        q = q + tau * np.log(policy.probs()) * (n_sa > 0)
    adv = np.where(n_sa > 0, q - v[:, None], 0.0)
    check_finite_result(adv, "the sampled advantages", "the returns are beyond the float64 range")
    return np.asarray(adv)


def _context_mdp(context: dict[str, Any]) -> Any:
    """The MDP behind the step's context (``mdp=`` or the batch's), None for ``advantages=``."""
    if context.get("mdp") is not None:
        return context["mdp"]
    return getattr(context.get("traj"), "mdp", None)


class _ClosedForm(Optimizer):
    """Shared by the closed-form updates: the advantages of the step from ``mdp=`` (exact),
    ``traj=`` (sampled) or ``advantages=`` (given)."""

    gamma: float | None
    tau: float = 0.0
    lr: float

    def _gamma_of(self, source: Any) -> float:
        g = source.gamma if self.gamma is None else self.gamma
        if not g < 1.0:
            raise ValueError(f"{type(self).__name__} needs a discount factor gamma < 1, got gamma = {g} "
                             f"(pass gamma= to {type(self).__name__})")
        return float(g)

    def _advantages(self, policy: SoftmaxPolicy, **context: Any) -> NDArray[np.float64]:
        """The advantages (S, A) a step uses: exact from ``mdp=``, estimated from ``traj=``, or
        the array ``advantages=``; with ``tau > 0`` the entropy-regularised ones (per-state
        constants do not change the step). ``ValueError`` unless exactly one is given."""
        kind = type(self).__name__
        unknown = [key for key in context if key not in _CLOSED_FORM_CONTEXT]
        if unknown:
            raise TypeError(f"{kind}.step takes the context mdp=, traj= or advantages=, got {', '.join(map(repr, unknown))}")
        given = [key for key in _CLOSED_FORM_CONTEXT if context.get(key) is not None]
        if len(given) != 1:
            raise ValueError(f"{kind}.step needs exactly one of mdp= (exact advantages), traj= (sampled) or "
                             f"advantages=, got {', '.join(given) if given else 'none'}")
        if not isinstance(policy, DirectPolicy):  # PolicyMirrorDescent also updates a DirectPolicy
            policy = _tabular(policy, kind)
        if "advantages" in given:
            adv = as_float_array(context["advantages"], "advantages")
            if adv.shape != policy.theta.shape:
                raise ValueError(f"advantages must have the shape of theta {policy.theta.shape}, got {adv.shape}")
            if not np.all(np.isfinite(adv)):
                raise ValueError("advantages contains NaN or infinite values")
            return adv
        if "traj" in given:
            return _sampled_advantages(context["traj"], policy, self._gamma_of(context["traj"].mdp)
                                       if isinstance(context["traj"], Trajectories) else 0.0, self.tau)
        mdp = context["mdp"]
        if not isinstance(mdp, FiniteMDP):
            raise TypeError(f"mdp must be a pgfast.FiniteMDP, got {type(mdp).__name__}")
        if mdp.n_states != policy.n_states or mdp.n_actions != policy.n_actions:
            raise ValueError(f"the mdp has {mdp.n_states} states and {mdp.n_actions} actions, the policy has "
                             f"{policy.n_states} and {policy.n_actions}")
        gamma = self._gamma_of(mdp)
        if self.tau > 0.0:
            return np.asarray(exact.evaluate(mdp, policy, "discounted", gamma=gamma, regularizer=Entropy(self.tau)).Q)
        return np.asarray(exact.evaluate(mdp, policy, "discounted", gamma=gamma).advantages)


    def _run_kind(self) -> int:  # _core.exact.closed_form_run's kind
        raise NotImplementedError

    def run(self, policy: SoftmaxPolicy, mdp: FiniteMDP, steps: int) -> NDArray[np.float64]:
        r"""Takes ``steps`` steps with the exact discounted advantages of ``mdp``, in C++, and
        returns the value :math:`J_k = \mu_0^\top V^{\pi_k}` before the first step and after
        each (``steps + 1`` values; the entropy-regularised :math:`J_\tau` when ``tau > 0``).

        The same updates as ``steps`` calls of ``step(policy, grad, mdp=mdp)`` (equal up to
        rounding), without the Python work between them. Each step evaluates its policy exactly:
        up to 1000 states by a dense LU of :math:`I - \gamma P_\pi` that is kept from step to step,
        the next policy's values refined from the last ones by
        :math:`V \mathrel{+}= \text{LU}^{-1}(r_\pi - (I - \gamma P_\pi) V)` until the residual is below
        :math:`10^{-14}(\|r_\pi\|_\infty + \|V\|_\infty)`, the matrix factorised afresh whenever a
        sweep shrinks the residual by less than a factor 10; larger MDPs use
        :func:`pgfast.exact.evaluate`'s solver. ``policy.theta`` and the step count are assigned once,
        at the end: an error or Ctrl-C leaves them as they were.

        Parameters
        ----------
        policy : TabularSoftmax
            The policy (its theta is the start and receives the result).
        mdp : FiniteMDP
            The MDP (its discount unless the optimizer has ``gamma``; ``mdp.horizon`` is not used).
        steps : int >= 0
            Number of steps.

        Returns
        -------
        ndarray of float64, shape (steps + 1,)

        Raises
        ------
        TypeError
            A policy other than :class:`pgfast.TabularSoftmax`, or ``mdp`` not a
            :class:`pgfast.FiniteMDP`.
        ValueError
            Sizes that do not match, gamma not below 1, ``lr * tau > 1 - gamma``, or a step
            beyond the float64 range (the message names the step; theta unchanged).
        MemoryError
            ``steps`` values larger than memory (the message states the bytes requested).

        Examples
        --------
        >>> mdp = pg.envs.garnet(20, 4, 3, seed=0, gamma=0.9)
        >>> pi = pg.TabularSoftmax(20, 4)
        >>> J = pg.optim.NaturalPolicyGradient(lr=1.0).run(pi, mdp, 100)
        >>> J.shape, bool(np.all(np.diff(J) >= -1e-12))  # NPG improves J at every step
        ((101,), True)
        >>> bool(pg.exact.optimal(mdp, "discounted").J - J[-1] < 1e-6)
        True
        """
        kind = type(self).__name__
        pi = _tabular(policy, kind)
        if not isinstance(mdp, FiniteMDP):
            raise TypeError(f"mdp must be a pgfast.FiniteMDP, got {type(mdp).__name__}")
        if mdp.n_states != pi.n_states or mdp.n_actions != pi.n_actions:
            raise ValueError(f"the mdp has {mdp.n_states} states and {mdp.n_actions} actions, the policy has "
                             f"{pi.n_states} and {pi.n_actions}")
        n = as_int(steps, "steps", minimum=0)
        check_allocation(8 * (n + 1), f"the values of {n} steps", "run fewer steps a call")
        gamma = self._gamma_of(mdp)
        if self.tau > 0.0 and self.lr * self.tau > (1.0 - gamma) * _ROUNDING:
            raise ValueError(f"lr * tau must be at most 1 - gamma = {1.0 - gamma}, got {self.lr * self.tau}")
        if self.tau > 0.0 and mdp.n_states > _REFINED_MAX_STATES:
            theta0, t0 = pi.theta.copy(), self.t
            values = []
            try:
                for _ in range(n):
                    values.append(_soft_value(mdp, pi, gamma, self.tau))
                    self.step(pi, np.zeros_like(theta0), mdp=mdp)
                values.append(_soft_value(mdp, pi, gamma, self.tau))
            except BaseException:
                pi.theta, self.t = theta0, t0
                raise
            return np.asarray(values)
        geometric = getattr(self, "schedule", "constant") == "geometric"
        theta, J, _, _ = _core.exact.closed_form_run(
            mdp._mdp, np.ascontiguousarray(pi.theta, dtype=np.float64), self._run_kind(), float(self.lr),
            float(self.tau), geometric, int(self.t), gamma, n, True)
        pi.theta = theta
        self.t += n
        return np.asarray(J)


_REFINED_MAX_STATES = 1000  # closed_form.hpp's kRefinedMaxStates
_ROUNDING = 1.0 + 8 * np.finfo(np.float64).eps  # lr * tau = 1 - gamma (soft policy iteration) despite rounding


def _soft_value(mdp: FiniteMDP, policy: TabularSoftmax, gamma: float, tau: float) -> float:
    """J_tau of ``policy`` (the large-MDP fallback of ``run``)."""
    return float(exact.evaluate(mdp, policy, "discounted", gamma=gamma, regularizer=Entropy(tau)).J)


class NaturalPolicyGradient(_ClosedForm):
    r"""The natural policy gradient of a tabular softmax policy in closed form (Kakade 2001;
    Agarwal et al. 2021; Cen et al. 2022).

    Unregularised (``tau=0``): :math:`\pi_{t+1}(a|s) \propto \pi_t(a|s)\exp(\eta A_t(s,a)/(1-\gamma))`,
    i.e. :math:`\theta \mathrel{+}= \eta A_t/(1-\gamma)`, where :math:`A_t` is the discounted
    advantage of :math:`\pi_t`. This is the Fisher solve :math:`\eta F_d^{+}\nabla J` of the
    discounted objective with the Fisher matrix weighted by the normalised discounted visitation
    :math:`d = (1-\gamma)\rho`, i.e. ``pgfast.exact.natural_gradient(mdp, policy, "discounted")``
    times :math:`\eta/(1-\gamma)`, or :class:`NaturalGradient` with ``fisher="sampled"``,
    ``damping=0``, ``lr`` :math:`= \eta/(1-\gamma)` and ``visits=`` :math:`\rho`, up to a constant
    per state, which leaves the policy unchanged.

    Entropy-regularised (``tau > 0``; Cen et al. 2022):
    :math:`\pi_{t+1} \propto \pi_t^{1-\eta\tau/(1-\gamma)}\exp(\eta Q_\tau/(1-\gamma))`, i.e.
    :math:`\theta \leftarrow (1-\eta\tau/(1-\gamma))\,\theta + \eta Q_\tau/(1-\gamma)`, with
    :math:`Q_\tau` the soft action values of :math:`J_\tau = \mathbb E[\sum_t \gamma^t (r_t - \tau\log\pi(a_t|s_t))]`
    (with ``mdp=``: ``pgfast.exact.evaluate(..., regularizer=pgfast.Entropy(tau)).Q``); it needs
    :math:`\eta\tau \le 1-\gamma` and converges linearly to the soft-optimal policy.

    The advantages come through ``step(policy, grad, **context)``: ``mdp=`` for the exact
    discounted ones (infinite horizon; ``mdp.horizon`` is not used), ``traj=`` for an every-visit
    Monte Carlo estimate from a batch (returns-to-go discounted by gamma up to the end of each
    episode, so of the episodes as sampled: close to the discounted advantages when the horizon
    is long against :math:`1/(1-\gamma)`; pairs never visited get 0), or ``advantages=`` an (S, A)
    array. ``grad`` is checked for its shape but not used. ``gamma`` defaults to the MDP's and
    must be below 1.

    Parameters
    ----------
    lr : float > 0
        :math:`\eta` (default 0.1).
    tau : float >= 0
        Entropy regularisation (default 0).
    gamma : float in [0, 1), optional
        Discount factor (default: the MDP's).

    Attributes
    ----------
    lr, tau : float
        The hyperparameters.
    gamma : float or None
        The discount factor (None: the MDP's).
    t : int
        Number of steps taken.

    Raises
    ------
    ValueError
        Bad hyperparameters (``lr * tau > 1 - gamma`` is found at the step, where gamma is known);
        from ``step``, not exactly one of ``mdp=``, ``traj=``, ``advantages=``, or a step beyond the
        float64 range (theta is then unchanged).
    TypeError
        A policy other than :class:`pgfast.TabularSoftmax`, or an unknown context keyword.

    Examples
    --------
    >>> P = np.zeros((2, 2, 2))
    >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
    >>> P[1, :, 1] = 1.0
    >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3, gamma=0.5,
    ...                    terminal=[False, True])
    >>> pi = pg.TabularSoftmax(2, 2)
    >>> opt = pg.optim.NaturalPolicyGradient(lr=0.5)
    >>> opt.step(pi, np.zeros((2, 2)), mdp=mdp).round(6)
    array([[-0.333333,  0.333333],
           [ 0.      ,  0.      ]])
    """

    hyperparameters = ("lr", "tau", "gamma")

    def _run_kind(self) -> int:
        return 0

    def __init__(self, lr: float = 0.1, tau: float = 0.0, gamma: float | None = None) -> None:
        self.lr = _positive(lr, "lr")
        self.tau = as_float(tau, "tau")
        if not (math.isfinite(self.tau) and self.tau >= 0.0):
            raise ValueError(f"tau must be a finite number >= 0, got {self.tau}")
        self.gamma = None if gamma is None else _discount(gamma)
        self.t = 0

    def step(self, policy: SoftmaxPolicy, grad: ArrayLike, **context: Any) -> NDArray[np.float64]:
        pi = _tabular(policy, "NaturalPolicyGradient")
        _grad(pi, grad)
        adv = self._advantages(pi, **context)
        src = _context_mdp(context)
        gamma = self.gamma if self.gamma is not None else (src.gamma if src is not None else None)
        if gamma is None:
            raise ValueError("NaturalPolicyGradient.step(advantages=...) needs the discount: construct "
                             "NaturalPolicyGradient(gamma=...)")
        if not gamma < 1.0:
            raise ValueError(f"NaturalPolicyGradient needs gamma < 1, got {gamma}")
        eta = self.lr / (1.0 - gamma)
        with np.errstate(over="ignore", invalid="ignore"):
            if self.tau > 0.0:
                if self.lr * self.tau > (1.0 - gamma) * _ROUNDING:
                    raise ValueError(f"lr * tau must be at most 1 - gamma = {1.0 - gamma}, got {self.lr * self.tau}")
                d = _apply(pi, -self.lr * self.tau / (1.0 - gamma) * pi.theta + eta * adv)
            else:
                d = _apply(pi, eta * adv)
        self.t += 1
        return d

    def state_dict(self) -> dict[str, Any]:
        return {"type": "NaturalPolicyGradient", "lr": self.lr, "tau": self.tau, "gamma": self.gamma, "t": self.t}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _check_state(state, ("lr", "tau", "gamma", "t"), "NaturalPolicyGradient")
        checked = NaturalPolicyGradient(state["lr"], state["tau"], state["gamma"])
        t = _state_t(state)
        self.lr, self.tau, self.gamma, self.t = checked.lr, checked.tau, checked.gamma, t


def _discount(gamma: Any) -> float:
    g = as_float(gamma, "gamma")
    if not (0.0 <= g < 1.0):
        raise ValueError(f"gamma must be in [0, 1), got {g}")
    return g


def project_simplex(x: ArrayLike) -> NDArray[np.float64]:
    r"""Euclidean projection of each row of ``x`` onto the probability simplex:
    :math:`\arg\min_{p \ge 0,\ \sum p = 1} \|p - x\|_2` (sort-based, O(A log A) a row).

    Parameters
    ----------
    x : array_like (..., A), finite

    Returns
    -------
    ndarray of float64, the shape of ``x``

    Raises
    ------
    ValueError
        An empty last axis or entries not finite.

    Examples
    --------
    >>> pg.optim.project_simplex([[0.5, 0.5, 1.0], [2.0, 0.0, 0.0]])
    array([[0.16666667, 0.16666667, 0.66666667],
           [1.        , 0.        , 0.        ]])
    """
    v = as_float_array(x, "x")
    if v.ndim < 1 or v.shape[-1] < 1:
        raise ValueError(f"x must have a last axis of length >= 1, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("x contains NaN or infinite values")
    # The projection does not change when a constant is added to a row, and it is 0 at every entry
    # at least 1 below the row's maximum: shift each row by its maximum (a row far from the simplex
    # keeps the precision of its differences) and raise entries below -2 to -2 (a difference beyond
    # the float64 range is one of them).
    with np.errstate(over="ignore"):
        v = np.maximum(v - v.max(axis=-1, keepdims=True), -2.0)
    u = -np.sort(-v, axis=-1)
    css = np.cumsum(u, axis=-1) - 1.0
    k = np.arange(1, v.shape[-1] + 1)
    cond = u - css / k > 0
    rho = v.shape[-1] - 1 - np.argmax(cond[..., ::-1], axis=-1)
    theta = np.take_along_axis(css, rho[..., None], axis=-1) / (rho[..., None] + 1)
    return np.asarray(np.maximum(v - theta, 0.0))


class PolicyMirrorDescent(_ClosedForm):
    r"""Policy mirror descent (Lan 2022; Xiao 2022) for a tabular softmax policy, state by state:
    :math:`\pi_{t+1}(\cdot|s) = \arg\max_{p \in \Delta} \eta_t \langle Q_t(s,\cdot), p\rangle - D(p, \pi_t(\cdot|s))`.

    ``mirror="kl"`` (:math:`D` the KL divergence): :math:`\pi_{t+1} \propto \pi_t \exp(\eta_t Q_t)`,
    i.e. :math:`\theta \mathrel{+}= \eta_t A_t`: :class:`NaturalPolicyGradient` with
    ``lr`` :math:`= \eta_t (1-\gamma)`. ``mirror="euclidean"`` (:math:`D = \tfrac12\|p-q\|^2`):
    :math:`\pi_{t+1}(\cdot|s) = \text{proj}_\Delta(\pi_t(\cdot|s) + \eta_t A_t(s,\cdot))`
    (:func:`project_simplex`), mapped back to logits as :math:`\theta = \log\max(\pi_{t+1}, m)`
    with :math:`m` the smallest normal float64 (about 2.2e-308): the softmax of these logits is
    :math:`\pi_{t+1}` up to rounding, with a probability of 0 held as one below 1e-307.

    Step sizes: ``schedule="constant"`` (:math:`\eta_t = \text{lr}`) or ``"geometric"``
    (:math:`\eta_t = \text{lr}/\gamma^{t-1}` for the t-th step, t = 1, 2, ...: the linear rate
    of Lan 2022 and Xiao 2022; the logits grow with :math:`\eta_t`, and a step beyond the float64
    range raises ``ValueError``). With exact advantages either map improves the discounted value
    :math:`V(s)` of every state at every step.

    The advantages come from ``step(policy, grad, mdp=...)`` (exact, discounted, infinite horizon),
    ``traj=`` (sampled) or ``advantages=``, as for :class:`NaturalPolicyGradient`; ``grad`` is
    checked for its shape but not used.

    A :class:`pgfast.DirectPolicy` (``theta`` is :math:`\pi`) is updated in its own coordinates:
    ``"euclidean"`` sets :math:`\theta \leftarrow \text{proj}_\Delta(\theta + \eta_t A_t)` row by
    row (projected Q-ascent; no logits involved, so probabilities of 0 are exact), ``"kl"`` sets
    :math:`\theta \leftarrow \theta\exp(\eta_t A_t)` normalised (a probability of 0 stays 0).

    Parameters
    ----------
    lr : float > 0
        :math:`\eta_1` (default 1.0).
    mirror : {"kl", "euclidean"}
        The Bregman divergence (default ``"kl"``).
    schedule : {"constant", "geometric"}
        Step-size schedule (default ``"constant"``).
    gamma : float in [0, 1), optional
        Discount factor of the advantages and of the geometric schedule (default: the MDP's; the
        geometric schedule with ``advantages=`` needs it).

    Attributes
    ----------
    lr : float
        :math:`\eta_1`.
    mirror, schedule : str
        The divergence and the step-size schedule.
    gamma : float or None
        The discount factor (None: the MDP's).
    tau : float
        0 (no regularisation).
    t : int
        Number of steps taken.

    Raises
    ------
    ValueError
        Bad hyperparameters; from ``step``, as :class:`NaturalPolicyGradient`.
    TypeError
        A policy other than :class:`pgfast.TabularSoftmax` and :class:`pgfast.DirectPolicy`, or
        an unknown context keyword.

    Examples
    --------
    >>> P = np.zeros((2, 2, 2))
    >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
    >>> P[1, :, 1] = 1.0
    >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3, gamma=0.5,
    ...                    terminal=[False, True])
    >>> pi = pg.TabularSoftmax(2, 2)
    >>> opt = pg.optim.PolicyMirrorDescent(lr=1.0, mirror="euclidean")
    >>> _ = opt.step(pi, np.zeros((2, 2)), mdp=mdp)
    >>> pi.probs()[0].round(6)
    array([0.166667, 0.833333])

    The same step on a direct policy, whose theta is the table of probabilities:

    >>> direct = pg.DirectPolicy(2, 2)
    >>> _ = pg.optim.PolicyMirrorDescent(lr=1.0, mirror="euclidean").step(direct, np.zeros((2, 2)), mdp=mdp)
    >>> direct.theta[0].round(6)
    array([0.166667, 0.833333])
    """

    hyperparameters = ("lr", "mirror", "schedule", "gamma")

    def _run_kind(self) -> int:
        return 1 if self.mirror == "kl" else 2

    def __init__(self, lr: float = 1.0, mirror: str = "kl", schedule: str = "constant", gamma: float | None = None) -> None:
        self.lr = _positive(lr, "lr")
        if not isinstance(mirror, str) or mirror not in ("kl", "euclidean"):
            raise ValueError(f"mirror must be 'kl' or 'euclidean', got {mirror!r}")
        if not isinstance(schedule, str) or schedule not in ("constant", "geometric"):
            raise ValueError(f"schedule must be 'constant' or 'geometric', got {schedule!r}")
        self.mirror, self.schedule = mirror, schedule
        self.gamma = None if gamma is None else _discount(gamma)
        self.t = 0

    def learning_rate(self, t: int, gamma: float | None = None) -> float:
        r"""The step size :math:`\eta_t` of step ``t`` (the first is t = 1).

        Parameters
        ----------
        t : int >= 1
            The step number.
        gamma : float in (0, 1), optional
            The discount of the geometric schedule when the optimizer has none.

        Returns
        -------
        float

        Raises
        ------
        ValueError
            ``t`` below 1, or the geometric schedule without a gamma in (0, 1).

        Examples
        --------
        >>> opt = pg.optim.PolicyMirrorDescent(lr=1.0, schedule="geometric", gamma=0.5)
        >>> [opt.learning_rate(t) for t in (1, 2, 3)]
        [1.0, 2.0, 4.0]
        """
        t = as_int(t, "t")
        if t < 1:
            raise ValueError(f"t must be >= 1 (the first step is t = 1), got {t}")
        if self.schedule == "constant":
            return self.lr
        g = self.gamma if self.gamma is not None else gamma
        if g is None:
            raise ValueError("the geometric schedule needs gamma: construct PolicyMirrorDescent(gamma=...) or pass mdp=")
        g = _discount(g)
        if g == 0.0:
            raise ValueError("the geometric schedule needs gamma > 0")
        return self.lr / g ** (t - 1)

    def step(self, policy: SoftmaxPolicy, grad: ArrayLike, **context: Any) -> NDArray[np.float64]:
        if not isinstance(policy, (TabularSoftmax, DirectPolicy)):
            raise TypeError("PolicyMirrorDescent updates a pgfast.TabularSoftmax or a pgfast.DirectPolicy, got "
                            f"{type(policy).__name__}")
        pi = policy
        _grad(pi, grad)
        adv = self._advantages(pi, **context)
        src = _context_mdp(context)
        with np.errstate(over="ignore"):
            eta = self.learning_rate(self.t + 1, None if src is None else src.gamma)
        if not math.isfinite(eta):
            raise ValueError(f"the step size of step {self.t + 1} overflowed")
        with np.errstate(over="ignore", invalid="ignore"):
            if isinstance(pi, DirectPolicy):  # the maps applied to theta = pi itself
                d = _apply(pi, _direct_mirror_step(pi.theta, eta, adv, self.mirror))
            elif self.mirror == "kl":
                d = _apply(pi, eta * adv)
            else:
                x = pi.probs() + eta * adv
                if not np.all(np.isfinite(x)):
                    raise ValueError("the update overflowed: pi + step is not finite; lower lr")
                p = project_simplex(x)
                new = np.log(np.maximum(p, np.finfo(np.float64).tiny))
                d = _apply(pi, new - pi.theta)
        self.t += 1
        return d

    def state_dict(self) -> dict[str, Any]:
        return {"type": "PolicyMirrorDescent", "lr": self.lr, "mirror": self.mirror, "schedule": self.schedule,
                "gamma": self.gamma, "t": self.t}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _check_state(state, ("lr", "mirror", "schedule", "gamma", "t"), "PolicyMirrorDescent")
        c = PolicyMirrorDescent(state["lr"], state["mirror"], state["schedule"], state["gamma"])
        t = _state_t(state)
        self.lr, self.mirror, self.schedule, self.gamma, self.t = c.lr, c.mirror, c.schedule, c.gamma, t


def _direct_mirror_step(theta: NDArray[np.float64], eta: float, adv: NDArray[np.float64], mirror: str) -> NDArray[np.float64]:
    """The step of policy mirror descent on a direct policy theta = pi: eta A (projected by
    _apply) for the Euclidean map; for the KL map pi exp(eta A) normalised (from the logs, so that
    no row underflows to zeros; a probability of 0 stays 0) minus theta."""
    if mirror == "euclidean":
        step: NDArray[np.float64] = eta * adv
        return step
    with np.errstate(divide="ignore"):
        z = np.log(theta) + eta * adv
    if not np.all(np.isfinite(z[theta > 0.0])):
        raise ValueError("the update overflowed: eta times the advantages is not finite; lower lr")
    e = np.exp(z - z.max(axis=1, keepdims=True))
    out: NDArray[np.float64] = e / e.sum(axis=1, keepdims=True) - theta
    return out


class ArmijoLineSearch(Optimizer):
    r"""Gradient ascent with a backtracking (Armijo) line search on the exact objective:
    :math:`\theta \mathrel{+}= \eta\, g` with the largest :math:`\eta = \text{lr}\cdot\beta^k`
    (k = 0, 1, ..., ``max_backtracks``) for which
    :math:`J(\theta + \eta g) \ge J(\theta) + c\,\eta\,\|g\|^2` (sufficient increase).

    ``step(policy, grad, mdp=mdp)`` evaluates J with :func:`pgfast.exact.evaluate` (``objective``
    and ``gamma`` as given here; default the MDP's finite horizon), so ``grad`` should be the
    exact gradient of the same objective (:func:`pgfast.exact.gradient`); a sampled gradient
    works too, the condition then being checked on the exact J. If no trial step satisfies the
    condition (a zero gradient, or the rounding floor at an optimum), no step is taken: theta is
    unchanged and :attr:`last_lr` is 0. On a :class:`pgfast.DirectPolicy` each trial point is
    projected onto the simplex, :math:`\theta^+ = \text{proj}_\Delta(\theta + \eta g)`, and the
    condition reads :math:`J(\theta^+) \ge J(\theta) + c\,\langle g, \theta^+ - \theta\rangle`
    (with :math:`\langle g, \theta^+ - \theta\rangle > 0`).

    Parameters
    ----------
    lr : float > 0
        The first trial step size (default 1.0).
    shrink : float in (0, 1)
        :math:`\beta` (default 0.5).
    c : float in (0, 1)
        The sufficient-increase constant (default 1e-4).
    max_backtracks : int >= 0
        The number of shrinkings tried (default 50).
    objective : str
        The objective of :func:`pgfast.exact.evaluate` (default ``"finite_horizon"``).
    gamma : float, optional
        Its discount factor (default: the MDP's).

    Raises
    ------
    ValueError
        Bad hyperparameters; from ``step``, a missing ``mdp=``, a gradient of another shape or
        not finite.
    TypeError
        From ``step``, a context keyword other than ``mdp``.

    Attributes
    ----------
    lr, shrink, c : float
        The hyperparameters.
    max_backtracks : int
        The number of shrinkings tried.
    objective : str
        The objective of J.
    gamma : float or None
        Its discount factor (None: the MDP's).
    t : int
        Number of steps taken.
    last_lr : float
        The step size the last step took (0 if none was accepted).
    last_values : (float, float)
        J before and after the last step.

    Examples
    --------
    >>> P = np.zeros((2, 2, 2))
    >>> P[0, 0, 0] = P[0, 1, 1] = 1.0
    >>> P[1, :, 1] = 1.0
    >>> mdp = pg.FiniteMDP(P, [[0.0, 1.0], [0.0, 0.0]], mu0=[1.0, 0.0], horizon=3,
    ...                    terminal=[False, True])
    >>> pi = pg.TabularSoftmax(2, 2)
    >>> opt = pg.optim.ArmijoLineSearch(lr=8.0)
    >>> _ = opt.step(pi, pg.exact.gradient(mdp, pi), mdp=mdp)
    >>> opt.last_lr, opt.last_values[1] > opt.last_values[0]
    (8.0, True)
    """

    hyperparameters = ("lr", "shrink", "c", "max_backtracks", "objective", "gamma")

    def __init__(self, lr: float = 1.0, shrink: float = 0.5, c: float = 1e-4, max_backtracks: int = 50,
                 objective: str = "finite_horizon", gamma: float | None = None) -> None:
        self.lr = _positive(lr, "lr")
        self.shrink, self.c = as_float(shrink, "shrink"), as_float(c, "c")
        if not 0.0 < self.shrink < 1.0:
            raise ValueError(f"shrink must be in (0, 1), got {self.shrink}")
        if not 0.0 < self.c < 1.0:
            raise ValueError(f"c must be in (0, 1), got {self.c}")
        self.max_backtracks = as_int(max_backtracks, "max_backtracks", minimum=0)
        if not isinstance(objective, str) or objective not in exact.OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(map(repr, exact.OBJECTIVES))}, got {objective!r}")
        self.objective = objective
        self.gamma = None if gamma is None else as_float(gamma, "gamma")
        self.t = 0
        self.last_lr = math.nan
        self.last_values = (math.nan, math.nan)

    def _value(self, mdp: FiniteMDP, policy: SoftmaxPolicy) -> float:
        return float(exact.evaluate(mdp, policy, self.objective, gamma=self.gamma).value)  # type: ignore[call-overload]

    def step(self, policy: SoftmaxPolicy, grad: ArrayLike, **context: Any) -> NDArray[np.float64]:
        unknown = [key for key in context if key != "mdp"]
        if unknown:
            raise TypeError(f"ArmijoLineSearch.step takes the context mdp=, got {', '.join(map(repr, unknown))}")
        g = _grad(policy, grad)
        mdp = context.get("mdp")
        if mdp is None:
            raise ValueError("ArmijoLineSearch needs step(policy, grad, mdp=mdp) to evaluate J")
        theta0 = policy.theta.copy()
        j0 = self._value(mdp, policy)
        sq = float(np.sum(g * g))
        eta, accepted, j1 = self.lr, 0.0, j0
        for _ in range(self.max_backtracks + 1):
            if sq == 0.0:
                break
            new = theta0 + eta * g
            if np.all(np.isfinite(new)):
                projected = _retract(policy, new)
                policy.theta = projected
                j = self._value(mdp, policy)
                if projected is new:
                    enough = j >= j0 + self.c * eta * sq
                else:  # a projected step: sufficient increase along the step taken, <g, step>
                    gain = float(np.sum(g * (projected - theta0)))
                    enough = gain > 0.0 and j >= j0 + self.c * gain
                if enough:
                    accepted, j1 = eta, j
                    break
            eta *= self.shrink
        if accepted == 0.0:
            policy.theta = theta0
        self.t += 1
        self.last_lr, self.last_values = accepted, (j0, j1)
        return np.asarray(policy.theta - theta0)

    def state_dict(self) -> dict[str, Any]:
        return {"type": "ArmijoLineSearch", "lr": self.lr, "shrink": self.shrink, "c": self.c,
                "max_backtracks": self.max_backtracks, "objective": self.objective, "gamma": self.gamma, "t": self.t}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        keys = ("lr", "shrink", "c", "max_backtracks", "objective", "gamma", "t")
        _check_state(state, keys, "ArmijoLineSearch")
        c = ArmijoLineSearch(*(state[k] for k in keys[:-1]))
        t = _state_t(state)
        self.lr, self.shrink, self.c, self.max_backtracks = c.lr, c.shrink, c.c, c.max_backtracks
        self.objective, self.gamma, self.t = c.objective, c.gamma, t
