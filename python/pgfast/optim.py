r"""Optimizers for policy gradient *ascent*: :math:`\theta \leftarrow \theta + \eta_t\, d_t` (see :doc:`/theory`, "Gradient ascent").

Each optimizer updates ``policy.theta`` in place from a gradient estimate (or the exact
gradient) and keeps its state in ``state_dict()`` for saving and resuming.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import exact
from ._continuous import ContinuousTrajectories
from ._gaussian import LinearGaussian
from ._mdp import FiniteMDP
from ._obs_softmax import ObservationSoftmax
from ._policy import SoftmaxPolicy, pinned
from ._sampling import Trajectories
from ._validation import as_float, as_float_array, as_int, as_rcond, check_finite_result

__all__ = ["Adam", "GradientAscent", "NaturalGradient", "Optimizer"]


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


def _apply(policy: SoftmaxPolicy, d: NDArray[np.float64]) -> NDArray[np.float64]:
    """policy.theta + d, set through the checked setter: a step that overflows theta (inf) or is
    NaN raises and leaves theta as it was."""
    with np.errstate(over="ignore", invalid="ignore"):  # reported below, naming the step
        new = policy.theta + d
    if not np.all(np.isfinite(new)):
        raise ValueError(
            "the update overflowed: theta + step is not finite (the step is the learning rate times "
            "a gradient beyond the float64 range); lower lr or scale the rewards"
        )
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

    The optimizers are :class:`GradientAscent`, :class:`Adam` and :class:`NaturalGradient`;
    :func:`pgfast.train` takes any of them. Their state (hyperparameters, step count, moments)
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
    ``t -> factor`` (:math:`\eta_t = \text{lr} \cdot f(t)`).

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
