r"""Audit of a policy gradient estimator: run anyone's estimator on independent batches and compare
its mean and variance with the exact moments of the pgfast estimator it claims to be
(:func:`pgfast.exact.moments`).

The statistics are stated in :func:`audit`; the chi-square quantiles they need are computed here
from the regularised incomplete gamma function, so the audit needs NumPy only.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import exact
from ._estimators import PolicyGradient
from ._mdp import FiniteMDP
from ._policy import SoftmaxPolicy
from ._sampling import Trajectories
from ._validation import as_array, as_float, as_int, as_seed, as_threads, check_allocation, require_instance

# A coordinate whose exact standard deviation is at most this fraction of the scale of the exact
# moments (the largest |mean| or standard deviation) has zero variance up to rounding: its values
# are compared with the exact mean within the same relative tolerance.
_DEGENERATE_RTOL = 1e-7
_CLAIM_KEYS = ("weights", "baseline", "gamma")
_WORST = 3  # coordinates named in the verdict


# -- distribution functions -------------------------------------------------------------------------


def _gammainc(a: float, x: float) -> float:
    """The regularised lower incomplete gamma function :math:`P(a, x)` (series, or the continued
    fraction of :math:`Q = 1 - P` for ``x >= a + 1``)."""
    if x <= 0.0:
        return 0.0
    lead = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        ap = a
        for _ in range(100_000):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-16:
                break
        return total * math.exp(lead)
    tiny = 1e-300
    b = x + 1.0 - a
    c, d = 1.0 / tiny, 1.0 / b
    h = d
    for i in range(1, 100_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = b + an / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return 1.0 - math.exp(lead) * h


def chi2_quantile(p: float, dof: float) -> float:
    """The ``p``-quantile of the chi-square distribution with ``dof`` (> 0, not necessarily integer)
    degrees of freedom: the Wilson-Hilferty approximation refined by bisection on the CDF."""
    z = NormalDist().inv_cdf(p)
    c = 2.0 / (9.0 * dof)
    guess = dof * max(1.0 - c + z * math.sqrt(c), 1e-3) ** 3
    lo, hi = guess / 2.0, guess * 2.0
    while _gammainc(dof / 2.0, lo / 2.0) > p and lo > 1e-300:
        lo /= 4.0
    while _gammainc(dof / 2.0, hi / 2.0) < p:
        hi *= 4.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _gammainc(dof / 2.0, mid / 2.0) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * hi:
            break
    return 0.5 * (lo + hi)


def holm(p: NDArray[np.float64]) -> NDArray[np.float64]:
    """Holm's step-down adjusted p-values (family-wise error rate control over ``p``)."""
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out = np.empty(m)
    out[order] = adjusted
    return out


# -- the report ---------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class AuditReport:
    r"""The result of :func:`audit`: the bias test, the variance ratios and a verdict.

    Arrays "in the shape of ``theta``" hold one value per coordinate :math:`k` of the gradient.
    ``print(report)`` prints the verdict.

    Attributes
    ----------
    verdict : str
        One paragraph: unbiased or biased (naming the worst coordinates), and the variance as
        expected, or higher or lower than the claimed estimator's by a factor.
    unbiased : bool
        No coordinate's mean differs from the exact mean at the family-wise rate ``alpha``, and
        every zero-variance coordinate equals its exact value.
    variance_as_expected : bool
        The ``1 - alpha`` confidence interval of the trace ratio contains 1.
    passed : bool
        ``unbiased and variance_as_expected``.
    mean : ndarray of float64, shape of ``theta``
        :math:`\bar g_k`, the mean of the estimates over the repeats.
    bias : ndarray of float64, shape of ``theta``
        ``mean - exact.mean``, the estimated bias.
    stderr : ndarray of float64, shape of ``theta``
        The standard error of ``mean`` used in ``z``: the larger of the exact
        :math:`\sigma_k / \sqrt{nR}` and the sample :math:`s_k / \sqrt R` (0 on zero-variance
        coordinates).
    z : ndarray of float64, shape of ``theta``
        ``bias / stderr`` (0 or :math:`\pm\infty` on zero-variance coordinates).
    p_values : ndarray of float64, shape of ``theta``
        Two-sided normal p-values of ``z`` (1 or 0 on zero-variance coordinates).
    adjusted_p_values : ndarray of float64, shape of ``theta``
        Holm-adjusted ``p_values`` over the coordinates of nonzero exact variance.
    flagged : ndarray of bool, shape of ``theta``
        The coordinates found biased: adjusted p-value at most ``alpha``, or a zero-variance
        coordinate off its exact value.
    degenerate : ndarray of bool, shape of ``theta``
        The coordinates of zero exact variance (checked for equality, not tested).
    variance : ndarray of float64, shape of ``theta``
        The estimator's variance per trajectory, :math:`n s_k^2` (``n`` times the sample variance
        of its estimates over the repeats).
    variance_ratio : ndarray of float64, shape of ``theta``
        ``variance / exact.variance`` (NaN on zero-variance coordinates).
    variance_ratio_ci : ndarray of float64, shape ``(2,) + theta.shape``
        Lower and upper ``1 - alpha`` confidence bounds of each ratio.
    trace_ratio : float
        :math:`n \sum_k s_k^2 / \operatorname{tr}\operatorname{Cov}[\hat g]` (NaN when the exact
        trace is 0).
    trace_ratio_ci : tuple of float
        Its ``1 - alpha`` confidence interval.
    exact : pgfast.exact.Moments
        The exact moments of the claimed estimator.
    estimates : ndarray of float64, shape ``(repeats,) + theta.shape``
        The estimator's output on each batch.
    n : int
        Trajectories per batch.
    repeats : int
        Number of batches R.
    alpha : float
        The family-wise error rate of the bias test, and one minus the confidence level of the
        intervals.
    seed : int
        The seed the batches' seeds were derived from.
    seeds : ndarray of uint64, shape (repeats,)
        The seed of each batch.

    Examples
    --------
    >>> mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="4x4", horizon=20)
    >>> pi = pg.TabularSoftmax(16, 4)
    >>> rep = pg.audit(lambda traj: pg.policy_gradient(pi, traj).grad, mdp, pi, n=50, repeats=40, seed=0)
    >>> rep.unbiased, rep.z.shape, rep.estimates.shape
    (True, (16, 4), (40, 16, 4))
    """

    verdict: str
    unbiased: bool
    variance_as_expected: bool
    passed: bool
    mean: NDArray[np.float64]
    bias: NDArray[np.float64]
    stderr: NDArray[np.float64]
    z: NDArray[np.float64]
    p_values: NDArray[np.float64]
    adjusted_p_values: NDArray[np.float64]
    flagged: NDArray[np.bool_]
    degenerate: NDArray[np.bool_]
    variance: NDArray[np.float64]
    variance_ratio: NDArray[np.float64]
    variance_ratio_ci: NDArray[np.float64]
    trace_ratio: float
    trace_ratio_ci: tuple[float, float]
    exact: exact.Moments
    estimates: NDArray[np.float64]
    n: int
    repeats: int
    alpha: float
    seed: int
    seeds: NDArray[np.uint64]

    def __str__(self) -> str:
        return self.verdict

    def __repr__(self) -> str:
        return (f"AuditReport(unbiased={self.unbiased}, variance_as_expected={self.variance_as_expected}, "
                f"trace_ratio={self.trace_ratio:.4g}, n={self.n}, repeats={self.repeats}, alpha={self.alpha})")


# -- the audit ----------------------------------------------------------------------------------------


def _claimed_moments(claims: Any, mdp: FiniteMDP, policy: SoftmaxPolicy, threads: int) -> exact.Moments:
    """The exact moments of the claimed estimator: given, or from pg.exact.moments(**claims)."""
    if isinstance(claims, exact.Moments):
        if claims.objective != "finite_horizon":
            raise ValueError("claims must be the moments of a finite-horizon estimator (objective='finite_horizon'), "
                             f"got objective={claims.objective!r}")
        if claims.mean.shape != policy.theta.shape:
            raise ValueError(f"claims (pgfast.exact.Moments) must have the shape of policy.theta {policy.theta.shape}, "
                             f"got {claims.mean.shape}")
        return claims
    if claims is None:
        claims = {}
    if not isinstance(claims, Mapping):
        raise TypeError("claims must be a dict of pgfast.exact.moments arguments (weights=, baseline=, gamma=) or a "
                        f"pgfast.exact.Moments, got {type(claims).__name__}")
    unknown = sorted(str(k) for k in claims if k not in _CLAIM_KEYS)
    if unknown:
        raise ValueError(f"claims may name {', '.join(_CLAIM_KEYS)}, got {', '.join(map(repr, unknown))}")
    return exact.moments(mdp, policy, covariance=False, threads=threads, **claims)


def _estimate(estimator: Callable[[Trajectories], Any], traj: Trajectories, shape: tuple[int, ...],
              r: int, seed: int) -> NDArray[np.float64]:
    """The estimator's gradient on one batch, checked: numbers, the shape of theta, finite."""
    where = f"on batch {r} (seed {seed})"
    try:
        out = estimator(traj)
    except Exception as exc:
        if sys.version_info >= (3, 11):
            exc.add_note(f"raised by the estimator audited by pgfast.audit, {where}")
        raise
    if isinstance(out, PolicyGradient):
        out = out.grad
    arr = as_array(out, f"the estimator's gradient {where}")
    if arr.dtype == np.bool_ or arr.dtype.kind not in "iuf":
        raise TypeError(f"estimator must return a real gradient array, got {type(out).__name__} of dtype {arr.dtype} "
                        f"{where}")
    size = math.prod(shape)
    if arr.shape != shape and arr.shape != (size,):
        raise ValueError(f"estimator must return an array of the shape of policy.theta {shape} (or ({size},)), got "
                         f"shape {arr.shape} {where}")
    if not np.all(np.isfinite(arr)):
        k = int(np.argmax(~np.isfinite(arr.ravel())))
        raise ValueError(f"estimator returned a non-finite gradient {where}: {float(arr.ravel()[k])} at flat index {k}")
    return np.asarray(arr, dtype=np.float64).reshape(shape)


def _effective_dof(d: NDArray[np.float64], cap: float) -> NDArray[np.float64]:
    r"""Satterthwaite degrees of freedom of a sample variance from the squared deviations ``d``
    (R rows, one column per quantity): :math:`\nu = 2R\,\bar d^2 / \widehat{\operatorname{Var}}[d]`,
    at most ``cap``; for normal data :math:`\nu \approx R - 1`, heavy tails lower it."""
    R = d.shape[0]
    mean = d.mean(axis=0)
    var = d.var(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        nu = np.where(var > 0, 2.0 * R * mean * mean / np.where(var > 0, var, 1.0), cap)
    return np.clip(nu, 1.0, cap)


def _ratio_ci(ratio: float, dof: float, alpha: float, cache: dict[float, tuple[float, float]]) -> tuple[float, float]:
    """The 1 - alpha interval of a variance ratio whose estimate is ``ratio`` x chi2_dof / dof."""
    if not math.isfinite(ratio):
        return (math.nan, math.nan)
    if dof not in cache:
        cache[dof] = (chi2_quantile(alpha / 2.0, dof), chi2_quantile(1.0 - alpha / 2.0, dof))
    lo, hi = cache[dof]
    return (dof * ratio / hi, dof * ratio / lo)


def _index(flat: int, shape: tuple[int, ...]) -> str:
    return "theta[" + ", ".join(str(int(i)) for i in np.unravel_index(flat, shape)) + "]"


def _claim_text(m: exact.Moments) -> str:
    base = "no baseline" if m.baseline == "none" else f"baseline {m.baseline!r}"
    return f"{m.weights} weights, {base}, gamma {m.gamma:g}"


def _verdict(rep: dict[str, Any], m: exact.Moments, shape: tuple[int, ...]) -> str:
    alpha, flagged = rep["alpha"], rep["flagged"]
    level = f"{100 * (1 - alpha):g}%"
    claim = _claim_text(m)
    if not flagged.any():
        bias = (f"Unbiased: no coordinate's mean differs from the exact gradient of the claimed estimator ({claim}) "
                f"at family-wise error rate {alpha:g} (Holm, {rep['tested']} coordinates tested")
        bias += f", {rep['n_degenerate']} of zero variance equal to their exact values)." if rep["n_degenerate"] else ")."
    else:
        z = rep["z"].ravel()
        order = sorted(np.flatnonzero(flagged.ravel()), key=lambda k: -abs(z[k]))
        worst = "; ".join(
            f"{_index(int(k), shape)}: {rep['mean'].ravel()[k]:.4g} +- {rep['stderr'].ravel()[k]:.2g} against exact "
            f"{m.mean.ravel()[k]:.4g} (z = {z[k]:.3g})" for k in order[:_WORST])
        bias = (f"Biased: {len(order)} of {flagged.size} coordinates differ from the exact gradient of the claimed "
                f"estimator ({claim}) at family-wise error rate {alpha:g} (Holm); worst: {worst}.")
    lo, hi = rep["trace_ratio_ci"]
    ratio = rep["trace_ratio"]
    if not math.isfinite(ratio):
        var = ("Variance: the claimed estimator has zero variance, " +
               ("and so has this one." if rep["variance_as_expected"] else "this one has not."))
    elif ratio == 0.0:
        var = "Variance zero: the estimate is the same on every batch, while the claimed estimator's varies."
    elif rep["variance_as_expected"]:
        var = (f"Variance as expected: the trace of its covariance is {ratio:.3g} times the claimed estimator's "
               f"({level} CI [{lo:.3g}, {hi:.3g}]).")
    else:
        word = "higher" if lo > 1.0 else "lower"
        factor = ratio if lo > 1.0 else 1.0 / ratio
        var = (f"Variance {word} than the claimed estimator's by a factor {factor:.3g} (trace ratio {ratio:.3g}, "
               f"{level} CI [{lo:.3g}, {hi:.3g}]).")
        if lo > 1.0 and m.baseline in ("mean", "time"):
            var += (f" The claimed moments are those of the deterministic baseline; a leave-one-out batch baseline "
                    f"{m.baseline!r} adds a term of relative order 1/n to the variance (see the exact guide).")
    return f"{bias} {var} ({rep['repeats']} batches of {rep['n']} trajectories.)"


def audit(
    estimator: Callable[[Trajectories], Any],
    mdp: FiniteMDP,
    policy: SoftmaxPolicy,
    *,
    n: int,
    repeats: int,
    seed: int | None,
    claims: Mapping[str, Any] | exact.Moments | None = None,
    alpha: float = 0.01,
    threads: int | None = None,
) -> AuditReport:
    r"""Audit a policy gradient estimator against the exact moments of the estimator it claims to be.

    ``estimator`` is any function from a :class:`pgfast.Trajectories` batch to a gradient in the
    shape of ``policy.theta`` (a :class:`pgfast.PolicyGradient` is read as its ``grad``). It runs
    on ``repeats`` = :math:`R` independent batches of ``n`` trajectories of ``policy`` in ``mdp``,
    :math:`\hat g^{(1)}, \dots, \hat g^{(R)}`, and each coordinate :math:`k` is compared with the
    exact mean :math:`\mu_k` and variance :math:`\sigma_k^2` of the single-trajectory estimator
    named by ``claims`` (:func:`pgfast.exact.moments`; the mean of a batch of ``n`` has variance
    :math:`\sigma_k^2 / n`).

    **Bias.** :math:`z_k = (\bar g_k - \mu_k) / \mathrm{se}_k`, with :math:`\bar g_k` the mean of
    the R estimates and :math:`\mathrm{se}_k = \max(\sigma_k / \sqrt{nR},\ s_k / \sqrt R)` the
    larger of the exact standard error of the claimed estimator and the sample one
    (:math:`s_k^2` the sample variance of the R estimates), with a two-sided normal p-value. For the
    claimed estimator :math:`\bar g_k` is a mean of :math:`nR` independent trajectories, so with the
    exact standard error the two-sided tails of :math:`z_k` are normal up to O(1/(nR)), even for the
    skewed returns of sparse rewards (a t statistic on R batch means is much further from its
    reference distribution in the far tails that a family of tests reaches);
    the larger of the two keeps the false-alarm rate at most ``alpha`` and judges an estimator
    whose variance exceeds the claimed one (a different baseline, a leave-one-out baseline's O(1/n)
    term) by its own spread, so that a right mean with another variance is not called biased: the
    variance is judged below. The p-values of the coordinates of nonzero exact variance are
    adjusted by Holm's step-down method, so the probability that a correct estimator is called
    biased is at most ``alpha`` (the family-wise error rate; the verdict is "biased" exactly when
    the smallest p-value is at most ``alpha`` / (number of coordinates), as with Bonferroni, and
    Holm flags more of the coordinates behind it).
    Coordinates of zero exact variance (states never reached, terminal states) are not tested:
    each estimate must equal :math:`\mu_k` within :math:`10^{-7}` of the largest exact
    :math:`|\mu|` or :math:`\sigma`.

    **Variance.** :math:`n s_k^2 / \sigma_k^2`, per coordinate, and for the trace
    :math:`n \sum_k s_k^2 / \operatorname{tr}\operatorname{Cov}[\hat g]`, the ratio of the
    estimator's variance to the claimed one's (1 for the claimed estimator, up to O(1/n) for the
    leave-one-out baselines ``"mean"`` and ``"time"``, whose exact moments are those of their
    deterministic limits: see the exact guide). Each ratio has a ``1 - alpha`` confidence interval
    from the chi-square distribution, :math:`[\nu \hat\rho / \chi^2_{\nu, 1-\alpha/2},
    \nu \hat\rho / \chi^2_{\nu, \alpha/2}]`, with Satterthwaite's degrees of freedom :math:`\nu =
    2R\,\bar d^2 / \widehat{\operatorname{Var}}[d]` from the squared deviations :math:`d_r` of the
    estimates (at most R - 1 for a coordinate and (R - 1) times the number of coordinates for the
    trace): :math:`\nu \approx R - 1` for normal batch means, fewer for heavy tails, which widen
    the interval. The variance is "as expected" when the trace's interval contains 1.

    The batches' seeds come from ``seed`` by :class:`numpy.random.SeedSequence`
    (``SeedSequence(seed).generate_state(repeats, np.uint64)``: word r of a counter-based hash,
    never ``seed + r``), so the first R' batches of an audit are those of an audit with
    ``repeats=R'``, and trajectory i of batch r is drawn from the stream ``(seeds[r], i)`` as in
    :meth:`pgfast.FiniteMDP.sample`.

    Parameters
    ----------
    estimator : callable
        ``estimator(traj) -> gradient``: a :class:`pgfast.Trajectories` batch to an array of the
        shape of ``policy.theta`` (or flat, ``(n_params,)``), or a :class:`pgfast.PolicyGradient`.
        It must not change ``policy.theta``.
    mdp : FiniteMDP
        The MDP the batches are sampled from.
    policy : SoftmaxPolicy
        The policy that samples them, whose gradient the estimator estimates.
    n : int >= 1
        Trajectories per batch.
    repeats : int >= 2
        Number of independent batches R (a few hundred give variance ratios within about 20 %).
    seed : int or None
        Seed of the audit (None: fresh entropy, recorded in the report).
    claims : dict or pgfast.exact.Moments, optional
        The estimator the audited one claims to be: arguments of :func:`pgfast.exact.moments`
        (``weights``, ``baseline``, ``gamma``; default ``{}``, reward-to-go weights without a
        baseline), or its moments already computed (finite horizon).
    alpha : float in (0, 1)
        Family-wise error rate of the bias test and one minus the confidence level of the variance
        intervals (default 0.01).
    threads : int, optional
        Worker threads of the sampler and of the exact moments, 1 to ``pgfast.MAX_THREADS``
        (default: every usable CPU); the batches do not depend on it.

    Returns
    -------
    AuditReport
        ``verdict``, ``unbiased``, ``variance_as_expected``, the z-scores, p-values, variance
        ratios and their intervals, the exact moments used and every estimate.

    Raises
    ------
    TypeError
        ``estimator`` not callable, ``mdp`` or ``policy`` of the wrong type, ``claims`` neither a
        dict nor a Moments, or an estimate that is not a real array.
    ValueError
        ``n``, ``repeats`` or ``alpha`` out of range, ``claims`` naming other arguments (or
        rejected by :func:`pgfast.exact.moments`), an estimate of another shape or not finite, or
        an estimator that changed ``policy.theta`` (each naming the batch and its seed).
    MemoryError
        The estimates (``repeats * n_params`` float64) larger than memory.

    Examples
    --------
    A hand-written REINFORCE with the return as weights, audited against the exact moments of
    ``pg.policy_gradient(..., weights="return")``:

    >>> mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="4x4", horizon=20)
    >>> pi = pg.TabularSoftmax(16, 4)
    >>> def reinforce(traj):
    ...     G = traj.returns()                                  # (N,)
    ...     return pg.score(pi, traj, np.repeat(G[:, None], traj.horizon, axis=1))
    >>> rep = pg.audit(reinforce, mdp, pi, n=100, repeats=50, seed=1, claims=dict(weights="return"))
    >>> rep.unbiased, rep.variance_as_expected
    (True, True)
    >>> print(rep.verdict)  # doctest: +ELLIPSIS
    Unbiased: no coordinate's mean differs from the exact gradient of the claimed estimator (return weights, ...
    """
    if not callable(estimator):
        raise TypeError(f"estimator must be callable (a function from a pgfast.Trajectories batch to a gradient), "
                        f"got {type(estimator).__name__}")
    require_instance(mdp, FiniteMDP, "mdp", "a pgfast.FiniteMDP")
    require_instance(policy, SoftmaxPolicy, "policy", "a pgfast policy (e.g. pgfast.TabularSoftmax)")
    n = as_int(n, "n", minimum=1)
    R = as_int(repeats, "repeats", minimum=2)
    a = as_float(alpha, "alpha")
    if not 0.0 < a < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {a}")
    seed = as_seed(seed)
    threads = as_threads(threads)
    shape = tuple(policy.theta.shape)
    p = policy.n_params
    check_allocation(8 * R * p * 3, f"the estimates of {R} batches ({p} parameters each)", "use fewer repeats")
    m = _claimed_moments(claims, mdp, policy, threads)

    seeds: NDArray[np.uint64] = np.random.SeedSequence(seed).generate_state(R, dtype=np.uint64).astype(np.uint64)
    theta = policy.theta.copy()
    est = np.empty((R,) + shape)
    for r in range(R):
        s = int(seeds[r])
        traj = mdp.sample(policy, n, seed=s, threads=threads)
        est[r] = _estimate(estimator, traj, shape, r, s)
        if not np.array_equal(policy.theta, theta):
            raise ValueError(f"estimator changed policy.theta on batch {r} (seed {s}); an estimator must only read "
                             "the policy")

    G = est.reshape(R, p)
    mu, sig2 = m.mean.ravel(), m.variance.ravel()
    gbar = G.mean(axis=0)
    dev = G - gbar
    s2 = (dev * dev).sum(axis=0) / (R - 1)
    scale = max(float(np.abs(mu).max(initial=0.0)), float(np.sqrt(sig2).max(initial=0.0)))
    tol = _DEGENERATE_RTOL * scale
    degenerate = np.sqrt(sig2) <= tol
    bias = gbar - mu

    # the bias test
    se = np.sqrt(np.maximum(sig2 / (n * R), s2 / R))
    se[degenerate] = 0.0
    z = np.zeros(p)
    pv = np.ones(p)
    tested = ~degenerate
    z[tested] = bias[tested] / se[tested]
    pv[tested] = [math.erfc(abs(float(zk)) / math.sqrt(2.0)) for zk in z[tested]]
    off = degenerate & (np.abs(G - mu).max(axis=0) > tol)
    z[off] = np.copysign(np.inf, bias[off])
    pv[off] = 0.0
    adj = pv.copy()
    if tested.any():
        adj[tested] = holm(pv[tested])
    flagged = (tested & (adj <= a)) | off

    # the variance ratios
    var = n * s2
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(degenerate, np.nan, var / np.where(degenerate, 1.0, sig2))
    d = dev * dev
    nu = _effective_dof(d, float(R - 1))
    cache: dict[float, tuple[float, float]] = {}
    ci = np.full((2, p), np.nan)
    for k in np.flatnonzero(~degenerate):
        ci[:, k] = _ratio_ci(float(ratio[k]), float(nu[k]), a, cache)
    trace = float(sig2[~degenerate].sum())
    if trace > 0.0:
        tr_ratio = float(var.sum() / trace)
        tr_nu = float(_effective_dof(d.sum(axis=1, keepdims=True), float((R - 1) * int((~degenerate).sum())))[0])
        tr_ci = _ratio_ci(tr_ratio, tr_nu, a, cache)
        as_expected = bool(tr_ci[0] <= 1.0 <= tr_ci[1])
    else:
        tr_ratio, tr_ci = math.nan, (math.nan, math.nan)
        as_expected = bool(np.all(np.abs(dev) <= tol))

    unbiased = not bool(flagged.any())
    parts = dict(alpha=a, flagged=flagged, z=z, mean=gbar, stderr=se, tested=int(tested.sum()),
                 n_degenerate=int(degenerate.sum()), trace_ratio=tr_ratio, trace_ratio_ci=tr_ci,
                 variance_as_expected=as_expected, repeats=R, n=n)
    verdict = _verdict(parts, m, shape)
    return AuditReport(
        verdict=verdict, unbiased=unbiased, variance_as_expected=as_expected, passed=unbiased and as_expected,
        mean=gbar.reshape(shape), bias=bias.reshape(shape), stderr=se.reshape(shape), z=z.reshape(shape),
        p_values=pv.reshape(shape), adjusted_p_values=adj.reshape(shape), flagged=flagged.reshape(shape),
        degenerate=degenerate.reshape(shape), variance=var.reshape(shape), variance_ratio=ratio.reshape(shape),
        variance_ratio_ci=ci.reshape((2,) + shape), trace_ratio=tr_ratio, trace_ratio_ci=tr_ci, exact=m,
        estimates=est, n=n, repeats=R, alpha=a, seed=seed, seeds=seeds)
