r"""The fused policy-gradient estimator on an LQR: ``pg.policy_gradient(policy, mdp=lqr, n=, seed=)``.

The trajectories of :meth:`pgfast.LQR.sample` (the same ones, for the same seed) are simulated in
C++ and each one's gradient is accumulated when it ends, without storing the batch
(``cpp/include/pgfast/lqr/fused.hpp``):

.. math::

   \hat g = \frac1N \sum_i \sum_{t<\text{len}_i} w_{i,t}\,\nabla_\theta \log\pi_\theta(u_{i,t}|x_{i,t}),
   \quad \nabla_W \log\pi = \frac{\varepsilon_t}{\sigma}\,x_t^\top, \quad
   \frac{\partial \log\pi}{\partial \log\sigma_a} = \varepsilon_{a,t}^2 - 1

with the weights of the finite estimators (:func:`pgfast.policy_gradient`).
"""

from __future__ import annotations

import warnings
from typing import Any

from . import _core
from ._lqr import LQR
from ._lqr_sampling import check_policy, problem
from ._validation import as_bool, as_gamma, as_int, as_seed, as_threads, check_allocation

_BASELINES = {"none": "NONE", "mean": "LEAVE_ONE_OUT_MEAN", "time": "LEAVE_ONE_OUT_TIME"}


def _baseline_kind(baseline: Any, weights: str) -> str:
    from ._estimators import check_baseline_fits_weights

    if baseline is None:
        return "none"
    if isinstance(baseline, str) and baseline in _BASELINES:
        check_baseline_fits_weights(baseline, weights)
        return baseline
    shown = repr(baseline) if isinstance(baseline, str) else f"a {type(baseline).__name__}"
    raise ValueError(
        f"the fused LQR estimator (mdp=lqr) takes baseline None, 'mean' or 'time', got {shown}; for other "
        "baselines sample a batch with lqr.sample(...) and pass it as traj"
    )


def policy_gradient(
    policy: Any,
    traj: Any = None,
    *,
    weights: Any = "reward_to_go",
    baseline: Any = None,
    gamma: Any = None,
    per_trajectory: Any = False,
    mdp: Any = None,
    n: Any = None,
    seed: Any = None,
    threads: Any = None,
    stderr: Any = True,
) -> Any:
    r"""The fused estimator of :func:`pgfast.policy_gradient` on an LQR (``mdp=lqr, n=, seed=``).

    Samples the ``n`` trajectories of ``lqr.sample(policy, n, seed=seed)`` and forms
    :math:`\hat g = \frac1N \sum_i \sum_t w_{i,t} \nabla_\theta \log\pi(u_{i,t}|x_{i,t})` with
    ``weights`` ``"return"`` or ``"reward_to_go"`` and the baselines ``None``, ``"mean"``, ``"time"``
    (leave-one-out, defined as for finite MDPs; they draw the batch twice). The sums over
    trajectories go over the estimators' fixed block grid: the same bits for any ``threads``.
    Trajectories that diverged (their state left ``lqr.max_state``) enter with their truncated
    sums, and a ``RuntimeWarning`` says how many there were.
    """
    from ._estimators import gradient_result, weights_kind

    if traj is not None:
        raise ValueError("pass either a batch traj or mdp=, n=, seed= (fused), not both")
    if not isinstance(mdp, LQR):
        raise TypeError(f"mdp must be a pgfast.LQR, got {type(mdp).__name__}")
    if n is None:
        raise ValueError("the fused estimator needs n= (the number of episodes) and seed=")
    kind = weights_kind(weights)
    bkind = _baseline_kind(baseline, kind)
    pi = check_policy(mdp, policy)
    nn = as_int(n, "n", minimum=1, maximum=2**62)
    if bkind == "mean" and nn < 2:
        raise ValueError("baseline='mean' needs at least 2 trajectories (it is leave-one-out)")
    g = as_gamma(gamma, mdp.gamma)
    with_se = as_bool(stderr, "stderr")
    rows_wanted = as_bool(per_trajectory, "per_trajectory")
    nthreads = as_threads(threads)
    key = as_seed(seed)
    H, d, m = int(mdp.horizon or 0), mdp.state_dim, mdp.action_dim
    n_params = pi.n_params
    check_allocation(min(nthreads, nn) * _core.lqr.fused_worker_bytes(d, m, H),
                     f"the fused estimator's per-worker buffers (horizon {H})", "use fewer threads or a shorter horizon")
    if rows_wanted:
        check_allocation(8 * nn * n_params, "per-trajectory gradients", "use per_trajectory=False")
    wk = _core.estimators.WeightKind.RETURN if kind == "return" else _core.estimators.WeightKind.REWARD_TO_GO
    bk = getattr(_core.estimators.BaselineKind, _BASELINES[bkind])
    sums, sumsq, rows, rs, rq, steps, diverged = _core.lqr.fused_gradient(
        problem(mdp, pi), nn, key, nthreads, wk, bk, g, with_se, rows_wanted)
    if diverged:
        warnings.warn(
            f"{diverged} of the {nn} trajectories diverged (a state entry beyond max_state = {mdp.max_state:g}: the "
            "policy does not stabilise the system); they enter the estimate with their sums up to that step",
            RuntimeWarning,
            stacklevel=3,
        )
    return gradient_result(pi, nn, sums, sumsq, rs, rq, rows, n_steps=int(steps), with_stderr=with_se)  # type: ignore[arg-type]
