r"""Softmax policies over finite states and actions (see :doc:`/theory`, "Softmax policies and their scores").

Every policy is a table of logits :math:`z(s, a)` computed from its parameters ``theta``;
:math:`\pi(a|s) = \exp z(s,a) / \sum_{a'} \exp z(s,a')`, evaluated in C++ with a stable
log-sum-exp.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from ._constants import PAD_INDEX
from ._validation import (
    MAX_SIZE,
    as_array,
    as_float_array,
    as_index_array,
    as_int,
    as_seed,
    check_allocation,
    check_array_bytes,
    check_finite_result,
    require_finite,
)

_T = TypeVar("_T")
_INTERRUPTIBLE_WORK = 1e8  # flops above which a dense solve runs on a helper thread


def interruptible(fn: Callable[[], _T], work: float) -> _T:
    """``fn()``, on a helper thread when ``work`` (its flop count) is large, so Ctrl-C is answered.

    NumPy's LAPACK / BLAS calls (and ``_core.exact.solve_fisher``) release the GIL but never check for
    signals, and one eigendecomposition of a few thousand rows takes seconds. Run on a helper
    thread, the main thread waits in 20 ms slices and a ``KeyboardInterrupt`` reaches the caller
    at once; the abandoned dense call cannot be stopped mid-way, so it finishes in the background
    and its result is dropped. Calls from other threads (which never receive signals) run inline.
    """
    if work < _INTERRUPTIBLE_WORK or threading.current_thread() is not threading.main_thread():
        return fn()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["out"] = fn()
        except BaseException as exc:  # re-raised on the caller's thread
            box["err"] = exc

    worker = threading.Thread(target=run, name="pgfast-dense-solve", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.02)
    if "err" in box:
        raise box["err"]
    out: _T = box["out"]
    return out


if TYPE_CHECKING:
    from ._mdp import FiniteMDP

_P = TypeVar("_P", bound="SoftmaxPolicy")

# Held while theta is written by the setter and while it is copied for a snapshot, so that a copy
# never sees half of an assignment (NumPy may release the GIL inside a large copy).
_THETA_LOCK = threading.Lock()


def _new_lock_after_fork() -> None:  # a fork while another thread held the lock must not leave it held
    global _THETA_LOCK
    _THETA_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_after_fork)


class Snapshot(NamedTuple):
    """The tables of a policy at one value of theta, all computed from the copy ``theta``."""

    theta: NDArray[np.float64]  # read-only copy
    probs: NDArray[np.float64]  # (S, A), C-contiguous, read-only
    net: Any  # the MLP forward pass at theta (MLPSoftmax), else None


class KernelTables(NamedTuple):
    r"""What the C++ estimators take of a policy (its ``_kernel_tables()``): the probabilities
    :math:`\pi(a|s)` and the map from logit gradients to ``theta``.

    The kernels accumulate :math:`\partial/\partial z(s,a)` and map it to ``theta`` by the
    policy's logit Jacobian: the identity when both are None (tabular: theta is the logit table),
    the features :math:`\phi(s,a)` (linear: :math:`\sum_{s,a} \cdot\,\phi(s,a)`), or the
    network's forward pass, whose backward pass the kernels run (MLP).
    """

    probs: NDArray[np.float64]  # (S, A), C-contiguous
    features: NDArray[np.float64] | None  # (S, A, p) of a linear policy, else None
    net: Any  # the MLP forward pass at the theta of probs, else None
    # (S, A) dz(s,a)/dtheta(s,a) of a policy whose logits are an elementwise function of an (S, A)
    # theta (EscortPolicy, DirectPolicy): the kernels then work as for a tabular policy and their
    # sums are mapped to theta by this factor (per-trajectory gradients and sums times scale, sums
    # of squares times scale**2); None otherwise
    scale: NDArray[np.float64] | None = None





class SoftmaxPolicy:
    """Base class: a softmax policy over ``n_states`` states and ``n_actions`` actions.

    ``theta`` is a float64 array owned by the policy; assigning ``policy.theta = x`` (what the
    optimizers do) copies ``x`` into it, in place.

    Threads: a policy may be shared by any number of threads that read it (``probs``,
    ``log_probs``, ``sample``, and every library call that takes the policy: ``mdp.sample``, the
    estimators, :mod:`pgfast.exact`), also while one thread *assigns* ``policy.theta = x`` (the
    optimizers do so): each call copies theta once, under a lock the setter also takes, and
    computes everything from that copy, so its result is the result at the old or at the new
    theta, never a mix. Changing the array ``policy.theta`` in place (``policy.theta += d``,
    ``policy.theta[0] = 1``) is not synchronised: readers running meanwhile may see part of the
    change, so do it only while no other thread uses the policy. An optimizer's ``step`` updates
    the optimizer's own state: share an optimizer between threads only under your own lock.
    Built-in policies pickle (protocol 5 sends big arrays out of band); an
    unpickled policy owns a writable copy of theta even when the pickled buffers come back
    read-only.

    The concrete policies are :class:`TabularSoftmax`, :class:`LinearSoftmax` and
    :class:`MLPSoftmax` (see :doc:`/theory`, "Softmax policies and their scores"), and
    :class:`pgfast.EscortPolicy` and :class:`pgfast.DirectPolicy` (softmax policies of the logits
    :math:`p\\log|\\theta|`; see :doc:`/theory`, "Escort and direct parameterisations"); this class
    holds what they share and is not instantiated itself.

    Examples
    --------
    Every policy offers the same tables and methods, whatever its parameters:

    >>> policies = [pg.TabularSoftmax(3, 2), pg.LinearSoftmax(np.ones((3, 2, 4))),
    ...             pg.MLPSoftmax(3, 2, hidden=(8,))]
    >>> [isinstance(p, pg.SoftmaxPolicy) for p in policies]
    [True, True, True]
    >>> [(p.n_states, p.n_actions, p.n_params) for p in policies]
    [(3, 2, 6), (3, 2, 4), (3, 2, 50)]
    >>> [p.probs().shape for p in policies]
    [(3, 2), (3, 2), (3, 2)]

    Assigning ``theta`` copies the value into the policy's own array:

    >>> pi = pg.TabularSoftmax(1, 2)
    >>> own = pi.theta
    >>> pi.theta = [[0.0, np.log(3)]]
    >>> own is pi.theta, pi.probs().round(4)
    (True, array([[0.25, 0.75]]))
    """

    _theta: NDArray[np.float64]
    _n_states: int
    _n_actions: int
    # The probability table of the internal paths (sampling, estimators, exact), kept with the
    # copy of theta it was made from (Snapshot): one iteration samples and then estimates at the
    # same theta, and the second softmax (plus, for a linear policy, the (S A, p) product) is then
    # skipped. Only the built-in policies, whose logits depend on theta alone, set _caches_probs.
    _caches_probs = False
    _probs_cache: Snapshot | None = None
    _theta_accepted: NDArray[np.float64] | None = None  # the last value the theta setter accepted

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # a subclass with logits of its own (and no _logits_and_net to match) computes every table
        # through its logits(), without the snapshot; the hooks it inherits describe the parent's
        # logits, not these, so those it does not define itself are the base's (which raise
        # a TypeError naming the hook, or work through the class's own _logit_vjp and _fisher)
        if "logits" in cls.__dict__ and "_logits_and_net" not in cls.__dict__:
            cls._caches_probs = False
            for hook in ("_kernel_tables", "_logit_vjp", "_fisher", "_natural", "grad_log_prob", "_exact_gradient",
                         "_logit_scale"):
                if hook not in cls.__dict__:
                    setattr(cls, hook, getattr(SoftmaxPolicy, hook))

    @property
    def n_states(self) -> int:
        """Number of states S."""
        return self._n_states

    @property
    def n_actions(self) -> int:
        """Number of actions A."""
        return self._n_actions

    @property
    def theta(self) -> NDArray[np.float64]:
        """The parameters (float64, updated in place by optimizers); assigning a value of another
        shape or not finite raises ``ValueError`` and leaves theta as it was."""
        return self._theta

    @theta.setter
    def theta(self, value: ArrayLike) -> None:
        # ``policy.theta += d`` changes the array in place before this runs: a rejected value is
        # then undone from the last accepted one, so a failed update leaves theta as it was
        arr = as_float_array(value, "theta")
        try:
            if arr.shape != self._theta.shape:
                raise ValueError(f"theta must have shape {self._theta.shape}, got {arr.shape}")
            require_finite(arr, "theta")
            self._check_theta(arr)
        except ValueError:
            last = self._theta_accepted
            if last is not None and np.shares_memory(arr, self._theta):
                with _THETA_LOCK:
                    self._theta[...] = last
            raise
        with _THETA_LOCK:
            self._theta[...] = arr
            self._theta_accepted = self._theta.copy()

    @property
    def n_params(self) -> int:
        """Number of parameters, ``theta.size``."""
        return int(self._theta.size)

    def logits(self) -> NDArray[np.float64]:
        r"""The logits :math:`z_\theta(s, a)` whose softmax over each row is the policy, shape (S, A).

        Returns
        -------
        ndarray of float64, shape (S, A)
            A new array, as from :meth:`probs` (changing it does not change the policy; the
            logits of a :class:`TabularSoftmax` are a copy of its ``theta``).

        Examples
        --------
        >>> phi = np.zeros((2, 2, 2))
        >>> phi[:, 0, 0] = phi[:, 1, 1] = 1.0
        >>> pg.LinearSoftmax(phi, theta=[0.5, 2.0]).logits()  # z(s, a) = theta . phi(s, a)
        array([[0.5, 2. ],
               [0.5, 2. ]])
        >>> pg.MLPSoftmax(3, 2, hidden=(4,), seed=0).logits().shape
        (3, 2)
        >>> pi = pg.TabularSoftmax(1, 2)
        >>> z = pi.logits()
        >>> z[0, 0] = 5.0  # the caller's own array
        >>> pi.theta
        array([[0., 0.]])
        """
        raise NotImplementedError

    def probs(self) -> NDArray[np.float64]:
        r"""The table :math:`\pi(a|s)`, shape (S, A); rows sum to 1.

        Returns
        -------
        ndarray of float64, shape (S, A)
            A new array (changing it does not change the policy).

        Raises
        ------
        ValueError
            Logits beyond the float64 range (the probabilities would not be finite).

        Examples
        --------
        >>> pi = pg.TabularSoftmax(2, 3, theta=[[0.0, np.log(2), np.log(5)], [0.0, 0.0, 0.0]])
        >>> pi.probs().round(4)
        array([[0.125 , 0.25  , 0.625 ],
               [0.3333, 0.3333, 0.3333]])
        """
        if self._caches_probs:
            p = self._snapshot().probs.copy()
        else:
            p = _core.policy.softmax(self.logits())[0]
        check_finite_result(p, "the policy's probabilities", "logits beyond the float64 range")
        return p

    def log_probs(self) -> NDArray[np.float64]:
        r"""The table :math:`\log \pi(a|s) = z(s,a) - \log\sum_{a'} e^{z(s,a')}`, shape (S, A).

        Computed with a stable log-sum-exp, so it stays finite where ``np.log(policy.probs())``
        would give ``-inf`` (a probability that underflows to 0).

        Returns
        -------
        ndarray of float64, shape (S, A)

        Raises
        ------
        ValueError
            Logits of one state that differ by more than the float64 range.

        Examples
        --------
        >>> pi = pg.TabularSoftmax(2, 3, theta=[[0.0, np.log(2), np.log(5)], [0.0, 0.0, 0.0]])
        >>> pi.log_probs().round(4)  # log(1/8), log(1/4), log(5/8); log(1/3)
        array([[-2.0794, -1.3863, -0.47  ],
               [-1.0986, -1.0986, -1.0986]])
        >>> far = pg.TabularSoftmax(1, 2, theta=[[0.0, 1000.0]])
        >>> far.probs(), far.log_probs()
        (array([[0., 1.]]), array([[-1000.,     0.]]))
        """
        if self._caches_probs:
            lp = _core.policy.softmax(self._logits_at(self._snapshot()))[1]
        else:
            lp = _core.policy.softmax(self.logits())[1]
        check_finite_result(lp, "the policy's log-probabilities", "logits of one state differ by more than the float64 range")
        return lp

    def log_prob(self, states: ArrayLike, actions: ArrayLike) -> NDArray[np.float64]:
        r""":math:`\log \pi(a|s)` elementwise for integer arrays of one shape, e.g. a batch's
        ``traj.states, traj.actions`` (N, H): positions where both are ``PAD_INDEX`` (-1, past an
        episode's end) give 0.0, so ``log_prob(...).sum(axis=1)`` is each trajectory's
        :math:`\sum_t \log\pi(a_t|s_t)`.

        Parameters
        ----------
        states, actions : array_like of int, one shape
            State and action indices (``PAD_INDEX`` in both marks padding).

        Returns
        -------
        ndarray of float64, the shape of ``states``

        Raises
        ------
        TypeError
            Non-integer states or actions.
        ValueError
            Shapes that differ, or indices out of range.

        Examples
        --------
        >>> pi = pg.TabularSoftmax(2, 3, theta=[[0.0, np.log(2), np.log(5)], [0.0, 0.0, 0.0]])
        >>> pi.log_prob([[0, 1], [0, -1]], [[2, 0], [1, -1]]).round(6)  # -1: padding
        array([[-0.470004, -1.098612],
               [-1.386294,  0.      ]])
        """
        s_arr, a_arr = as_array(states, "states"), as_array(actions, "actions")
        if s_arr.shape != a_arr.shape:
            raise ValueError(f"states and actions must have the same shape, got {s_arr.shape} and {a_arr.shape}")
        pad = (s_arr == PAD_INDEX) & (a_arr == PAD_INDEX)
        if pad.any():
            s_arr, a_arr = np.where(pad, 0, s_arr), np.where(pad, 0, a_arr)  # dtype kept (checked below)
        s, a = self._pairs(s_arr, a_arr)
        out = _core.policy.gather_log_prob(self.log_probs(), s, a).reshape(s_arr.shape)
        if pad.any():
            out[pad] = 0.0
        return out

    def sample(self, states: ArrayLike, seed: int | None) -> NDArray[np.int32]:
        r"""Actions :math:`a_k \sim \pi(\cdot|s_k)` for an integer array of states (same shape).

        Draw ``k`` (in C order) comes from counter ``k`` of the policy-sampling stream of ``seed``.

        Parameters
        ----------
        states : array_like of int
            State indices.
        seed : int or None
            Seed of the draws (``None``: a fresh one).

        Returns
        -------
        ndarray of int32, the shape of ``states``

        Raises
        ------
        TypeError
            Non-integer states or seed.
        ValueError
            States out of range, or a negative seed.

        Examples
        --------
        >>> pi = pg.TabularSoftmax(2, 3, theta=[[0.0, np.log(2), np.log(5)], [0.0, 0.0, 0.0]])
        >>> a = pi.sample(np.zeros(10_000, dtype=int), seed=1)
        >>> np.bincount(a, minlength=3) / a.size  # about (1/8, 1/4, 5/8)
        array([0.1244, 0.2468, 0.6288])
        """
        s = as_index_array(states, "states", self._n_states)
        out = _core.policy.sample_actions(self.probs(), s.ravel(), as_seed(seed))
        return out.reshape(s.shape)

    def grad_log_prob(self, states: ArrayLike, actions: ArrayLike) -> NDArray[np.float64]:
        r"""The score :math:`\nabla_\theta \log\pi(a_k|s_k)` for each pair, shape ``(K,) + theta.shape``
        for K = ``states.size`` (flattened in C order).

        For a softmax, :math:`\nabla_\theta\log\pi(a|s) = \nabla_\theta z(s,a) - \sum_{a'}\pi(a'|s)\nabla_\theta z(s,a')`
        (see :doc:`/theory`, "Softmax policies and their scores").
        Meant for inspection and tests; the estimators never form per-step scores.

        Parameters
        ----------
        states, actions : array_like of int, one shape
            State and action indices.

        Returns
        -------
        ndarray of float64, shape ``(K,) + theta.shape``
            Row ``k`` is the score of the pair ``(states.flat[k], actions.flat[k])``.

        Raises
        ------
        TypeError
            Non-integer states or actions.
        ValueError
            Shapes that differ, or indices out of range.
        MemoryError
            Score rows larger than memory (the message states the bytes requested).

        Examples
        --------
        >>> pi = pg.TabularSoftmax(2, 3, theta=[[0.0, np.log(2), np.log(5)], [0.0, 0.0, 0.0]])
        >>> pi.grad_log_prob([0, 1], [2, 0]).round(4)  # one-hot(a) - pi(.|s), on row s
        array([[[-0.125 , -0.25  ,  0.375 ],
                [ 0.    ,  0.    ,  0.    ]],
        <BLANKLINE>
               [[ 0.    ,  0.    ,  0.    ],
                [ 0.6667, -0.3333, -0.3333]]])

        The expected score under the policy is zero in every state:

        >>> net = pg.MLPSoftmax(3, 2, hidden=(4,), seed=0)
        >>> s, a = np.repeat(np.arange(3), 2), np.tile(np.arange(2), 3)
        >>> psi = net.grad_log_prob(s, a)  # (6, n_params)
        >>> w = net.probs().ravel()  # pi(a|s) in the same order
        >>> bool(np.allclose((w[:, None] * psi).reshape(3, 2, -1).sum(axis=1), 0.0))
        True
        """
        s, a = self._pairs(states, actions)
        check_allocation(8 * s.size * self.n_params, "the score rows", "pass fewer pairs at a time")
        probs = self.probs()
        out = np.empty((s.size, self.n_params))
        for k in range(s.size):
            W = np.zeros((self._n_states, self._n_actions))
            W[s[k]] = -probs[s[k]]
            W[s[k], a[k]] += 1.0
            out[k] = self._logit_vjp(W).ravel()
        return out.reshape((s.size,) + self._theta.shape)

    def _pairs(self, states: ArrayLike, actions: ArrayLike) -> tuple[NDArray[np.int32], NDArray[np.int32]]:
        s = as_index_array(states, "states", self._n_states)
        a = as_index_array(actions, "actions", self._n_actions)
        if s.shape != a.shape:
            raise ValueError(f"states and actions must have the same shape, got {s.shape} and {a.shape}")
        return np.ascontiguousarray(s.ravel()), np.ascontiguousarray(a.ravel())

    # -- hooks used by pgfast.exact and the estimators -----------------------------------------
    # A policy is its logit table z(s, a); everything the algorithms need from the parameters is
    # the vector-Jacobian product of z (dJ/dtheta from dJ/dz), the Fisher information, and for the
    # C++ estimators the tables of _kernel_tables. Each built-in class implements them for its
    # logits; a class with logits() of its own (derived from SoftmaxPolicy or from a built-in one)
    # implements those it is used with (_kernel_tables: the estimators; _logit_vjp: exact and
    # natural gradients; _fisher: the Fisher information), and the base versions raise a TypeError
    # naming the missing hook.

    def _kernel_tables(self) -> KernelTables:
        """The tables the C++ estimators take of the policy, all at one theta."""
        raise self._missing_hook("_kernel_tables", "the estimators")

    def _logit_vjp(self, W: NDArray[np.float64]) -> NDArray[np.float64]:
        r""":math:`\sum_{s,a} W(s,a)\, \nabla_\theta z(s,a)`, in the shape of ``theta``."""
        raise self._missing_hook("_logit_vjp", "exact and natural gradients")

    def _fisher(self, probs: NDArray[np.float64], w: NDArray[np.float64]) -> NDArray[np.float64]:
        r""":math:`\sum_s w(s) \sum_a \pi(a|s)\, \psi\psi^\top`, :math:`\psi = \nabla_\theta\log\pi(a|s)`."""
        raise self._missing_hook("_fisher", "the Fisher information")

    def _logit_scale(self) -> NDArray[np.float64] | None:
        """(S, A) dz(s,a)/dtheta(s,a) for a policy whose logits are an elementwise function of an
        (S, A) theta (as ``KernelTables.scale``), None for the others."""
        return None

    def _check_theta(self, theta: NDArray[np.float64]) -> None:
        """ValueError for a value of theta (of the right shape, finite) outside the policy's domain."""

    def _exact_gradient(self, grad: NDArray[np.float64], prob_grad: NDArray[np.float64]) -> NDArray[np.float64]:
        r"""The exact gradient from ``grad``, its logit form mapped by :meth:`_logit_vjp`, and
        ``prob_grad`` (S, A), the same gradient in the coordinates of the probability table, centred
        in each state (:math:`\partial J/\partial z = \pi \odot` ``prob_grad``): ``grad`` for every
        policy whose logits carry the whole gradient (a DirectPolicy takes the entries of its
        zero probabilities from ``prob_grad``)."""
        return grad

    def _missing_hook(self, hook: str, needed_by: str) -> TypeError:
        return TypeError(
            f"{type(self).__name__} does not implement {hook}() for its logits(), which {needed_by} need of a "
            f"policy: implement {hook}() as TabularSoftmax, LinearSoftmax and MLPSoftmax do, or derive the policy "
            "from one of them without redefining logits()"
        )

    def _natural(
        self, probs: NDArray[np.float64], w: NDArray[np.float64], g: NDArray[np.float64], damping: float, rcond: float
    ) -> NDArray[np.float64]:
        """Solves F x = g (pseudo-inverse, or F + damping I) for the Fisher of weighting w."""
        F = self._fisher(probs, w)
        gv = np.ascontiguousarray(g, dtype=np.float64).ravel()
        x = interruptible(lambda: _core.exact.solve_fisher(F, gv, float(damping), float(rcond)), 10.0 * F.shape[0] ** 3)
        return x.reshape(self._theta.shape)

    def _check_fits(self, mdp: FiniteMDP) -> None:
        """ValueError unless the policy is sized for ``mdp``."""
        if (self._n_states, self._n_actions) != (mdp.n_states, mdp.n_actions):
            raise ValueError(
                f"policy is sized for (n_states, n_actions) = ({self._n_states}, {self._n_actions}) "
                f"but the MDP has ({mdp.n_states}, {mdp.n_actions})"
            )

    def _probs_for(self, mdp: FiniteMDP) -> NDArray[np.float64]:
        """The probability table, after checking the policy fits ``mdp``."""
        self._check_fits(mdp)
        return self._probs_table()

    def _probs_table(self) -> NDArray[np.float64]:
        """``probs()`` as a C-contiguous read-only array, reused while theta is unchanged."""
        if not self._caches_probs:
            return np.ascontiguousarray(self.probs())
        return self._snapshot().probs

    def _theta_copy(self) -> NDArray[np.float64]:
        """A read-only copy of theta, taken under the lock of the setter (never half assigned)."""
        with _THETA_LOCK:
            th = self._theta.copy()
        th.setflags(write=False)
        return th

    def _snapshot(self) -> Snapshot:
        """The tables at the current theta: theta is copied first and everything is computed from
        the copy (the kernels run with the GIL released, so another thread may assign theta
        meanwhile); reused while theta equals the copy."""
        c = self._probs_cache
        if c is not None:
            if c.theta is self._theta:  # a pinned copy: its theta is the snapshot's, read-only
                return c
            with _THETA_LOCK:
                same = np.array_equal(c.theta, self._theta)
            if same:
                return c
        th = self._theta_copy()
        p, net = self._probs_and_net(th)
        p.setflags(write=False)
        c = Snapshot(th, p, net)
        self._probs_cache = c
        return c

    def _logits_and_net(self, theta: NDArray[np.float64]) -> tuple[NDArray[np.float64], Any]:
        """Logits (S, A) at ``theta`` (a copy the caller owns), and the MLP forward pass or None."""
        raise NotImplementedError

    def _probs_and_net(self, theta: NDArray[np.float64]) -> tuple[NDArray[np.float64], Any]:
        """The probability table (S, A, a new C-contiguous array) at ``theta`` and the MLP
        forward pass or None: the softmax of :meth:`_logits_and_net`'s logits."""
        z, net = self._logits_and_net(theta)
        return np.ascontiguousarray(_core.policy.softmax(z)[0]), net

    def _logits_at(self, snap: Snapshot) -> NDArray[np.float64]:
        """The logits of a snapshot (recomputed from its theta, or the MLP's stored pass)."""
        return self._logits_and_net(snap.theta)[0]

    def _pinned(self: _P) -> _P:
        """A shallow copy of this policy frozen at one snapshot of theta: every table a call
        takes from it (probabilities, logits, the MLP forward pass) comes from that one theta,
        whatever other threads assign to this policy meanwhile. Policies that keep no snapshot
        (user subclasses) are returned as they are."""
        if not self._caches_probs:
            return self
        snap = self._snapshot()
        out = object.__new__(type(self))
        out.__dict__.update(self.__dict__)
        out._theta = snap.theta
        out._theta_accepted = snap.theta
        out._probs_cache = snap
        return out

    # -- pickling: the state without the snapshot; theta comes back as a writable array of its own

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_probs_cache", None)
        state.pop("_theta_accepted", None)  # equal to theta; __setstate__ makes it again
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        theta = np.array(state["_theta"], dtype=np.float64, order="C", copy=True)  # may arrive read-only
        features = state.get("_features")
        if isinstance(features, np.ndarray) and features.flags.writeable:
            features.setflags(write=False)  # read-only, as the constructor leaves it
        self._theta = theta
        self._theta_accepted = theta.copy()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_states={self._n_states}, n_actions={self._n_actions}, n_params={self.n_params})"


def pinned(policy: Any) -> Any:
    """``policy._pinned()`` for a pgfast policy; anything else as it is (for the type checks
    that follow to report)."""
    return policy._pinned() if isinstance(policy, SoftmaxPolicy) else policy


class TabularSoftmax(SoftmaxPolicy):
    r"""Tabular softmax: one preference per state-action pair.

    .. math:: \pi_\theta(a|s) = \frac{\exp \theta_{s,a}}{\sum_{a'} \exp \theta_{s,a'}}

    ``theta`` has shape (S, A); it defaults to zeros (the uniform policy). Theory:
    :doc:`/theory`, "Softmax policies and their scores".

    Parameters
    ----------
    n_states, n_actions : int >= 1
        Numbers of states S and actions A.
    theta : array_like (S, A), optional
        Initial preferences (copied; default zeros).

    Raises
    ------
    ValueError
        Sizes below 1, or a ``theta`` of another shape or not finite.
    MemoryError
        A table larger than memory (the message states the bytes requested).

    Examples
    --------
    >>> pi = pg.TabularSoftmax(2, 3, theta=[[0.0, np.log(2), np.log(5)], [0.0, 0.0, 0.0]])
    >>> pi.probs().round(4)
    array([[0.125 , 0.25  , 0.625 ],
           [0.3333, 0.3333, 0.3333]])
    >>> pi.log_prob([0, 1], [2, 0]).round(6)
    array([-0.470004, -1.098612])

    The score of (s, a) = (0, 2) is :math:`\mathbb 1[a' = a] - \pi(a'|s)` on row 0:

    >>> pi.grad_log_prob([0], [2]).round(4)
    array([[[-0.125, -0.25 ,  0.375],
            [ 0.   ,  0.   ,  0.   ]]])
    """

    _caches_probs = True

    def __init__(self, n_states: int, n_actions: int, theta: ArrayLike | None = None) -> None:
        self._n_states = as_int(n_states, "n_states", minimum=1, maximum=MAX_SIZE)
        self._n_actions = as_int(n_actions, "n_actions", minimum=1, maximum=MAX_SIZE)
        # theta and the copy of its last accepted value
        check_allocation(16 * self._n_states * self._n_actions,
                         f"TabularSoftmax(n_states={self._n_states}, n_actions={self._n_actions})'s theta",
                         "use fewer states or actions, or a LinearSoftmax / MLPSoftmax")
        self._theta = np.zeros((self._n_states, self._n_actions))
        self._theta_accepted = self._theta.copy()
        if theta is not None:
            self.theta = theta

    def logits(self) -> NDArray[np.float64]:
        with _THETA_LOCK:  # a copy, never theta itself (which only its checked setter may change)
            return self._theta.copy()

    def _logits_and_net(self, theta: NDArray[np.float64]) -> tuple[NDArray[np.float64], Any]:
        return theta, None

    def _kernel_tables(self) -> KernelTables:
        return KernelTables(self._probs_table(), None, None)

    def _logit_vjp(self, W: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.array(W, dtype=np.float64).reshape(self._theta.shape)

    def _fisher(self, probs: NDArray[np.float64], w: NDArray[np.float64]) -> NDArray[np.float64]:
        return _core.exact.fisher_tabular(probs, w)

    def _natural(
        self, probs: NDArray[np.float64], w: NDArray[np.float64], g: NDArray[np.float64], damping: float, rcond: float
    ) -> NDArray[np.float64]:
        # F is block diagonal: one (A, A) block per state.
        gm = np.ascontiguousarray(g, dtype=np.float64).reshape(self._n_states, self._n_actions)
        return _core.exact.natural_gradient_tabular(probs, w, gm, float(damping), float(rcond))


class LinearSoftmax(SoftmaxPolicy):
    r"""Softmax linear in features.

    .. math:: \pi_\theta(a|s) = \frac{\exp(\theta^\top \phi(s,a))}{\sum_{a'} \exp(\theta^\top \phi(s,a'))},
              \qquad \nabla_\theta \log \pi_\theta(a|s) = \phi(s,a) - \mathbb E_{a' \sim \pi(s)} \phi(s,a')

    ``features`` has shape (S, A, p) (copied, read-only); ``theta`` has shape (p,), zeros by default.
    Theory: :doc:`/theory`, "Softmax policies and their scores".

    Parameters
    ----------
    features : array_like (S, A, p)
        The features :math:`\phi(s, a)`, finite.
    theta : array_like (p,), optional
        Initial weights (copied; default zeros).

    Raises
    ------
    ValueError
        ``features`` not 3-dimensional, empty or not finite; a ``theta`` of another shape.
    MemoryError
        Features larger than memory (the message states the bytes requested).

    Examples
    --------
    Two actions with one-hot features, so :math:`\pi(1|s) = e^{\theta_1} / (e^{\theta_0} + e^{\theta_1})`:

    >>> phi = np.zeros((2, 2, 2))
    >>> phi[:, 0, 0] = phi[:, 1, 1] = 1.0
    >>> pi = pg.LinearSoftmax(phi, theta=[0.0, np.log(3)])
    >>> pi.probs()
    array([[0.25, 0.75],
           [0.25, 0.75]])
    >>> pi.grad_log_prob([0], [1])  # phi(s, a) - E_pi phi(s, .)
    array([[-0.25,  0.25]])
    """

    _caches_probs = True

    def __init__(self, features: ArrayLike, theta: ArrayLike | None = None) -> None:
        check_array_bytes(features, "features", "LinearSoftmax")
        phi = as_float_array(features, "features", ndim=3)
        S, A, p = phi.shape
        if S < 1 or A < 1 or p < 1:
            raise ValueError(f"features must have shape (S, A, p) with S, A, p >= 1, got {phi.shape}")
        require_finite(phi, "features")
        phi = phi.copy()
        phi.setflags(write=False)
        self._features = phi
        self._n_states, self._n_actions = S, A
        self._theta = np.zeros(p)
        self._theta_accepted = self._theta.copy()
        if theta is not None:
            self.theta = theta

    @property
    def features(self) -> NDArray[np.float64]:
        """The features phi(s, a), shape (S, A, p), read-only."""
        return self._features

    @property
    def n_features(self) -> int:
        """Number of features p."""
        return int(self._features.shape[2])

    def logits(self) -> NDArray[np.float64]:
        return self._logits_and_net(self._theta_copy())[0]

    def _logits_and_net(self, theta: NDArray[np.float64]) -> tuple[NDArray[np.float64], Any]:
        S, A, p = self._features.shape
        z = _core.policy.linear_logits(self._features.reshape(S * A, p), theta)
        return z.reshape(S, A), None

    def _kernel_tables(self) -> KernelTables:
        return KernelTables(self._probs_table(), self._features, None)

    def _logit_vjp(self, W: NDArray[np.float64]) -> NDArray[np.float64]:
        S, A, p = self._features.shape
        return _core.policy.linear_vjp(self._features.reshape(S * A, p), np.ascontiguousarray(W, dtype=np.float64).ravel())

    def _fisher(self, probs: NDArray[np.float64], w: NDArray[np.float64]) -> NDArray[np.float64]:
        return _core.exact.fisher_linear(probs, w, self._features)
