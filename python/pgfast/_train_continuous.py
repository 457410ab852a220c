r"""Policy gradient ascent on continuous problems: an LQR, or a gymnasium environment with Box observations.

:func:`pgfast.train` dispatches here for an :class:`pgfast.LQR`, a gymnasium environment id or a
``gymnasium.Env``. The loop is the finite one's (same iteration seeds, optimizers, History,
callback, progress display, Ctrl-C), with the batch from the LQR's compiled sampler (the fused
estimator) or from :func:`pgfast.rollout`.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import _train, exact
from ._estimators import policy_gradient
from ._gaussian import LinearGaussian
from ._lqr import LQR
from ._obs_softmax import ObservationSoftmax
from ._optimality import fraction_of_optimal
from ._train import EXACT_FIELDS, MAX_BATCH, MAX_ITERATIONS, History
from ._validation import as_bool, as_gamma, as_int, as_threads, check_finite_result, require_instance
from .optim import ArmijoLineSearch, NaturalGradient, Optimizer


def accepts(problem: Any) -> bool:
    """Whether :func:`pgfast.train` takes ``problem`` here: an LQR, an environment id or a
    ``gymnasium.Env`` (an object cannot be one unless gymnasium is imported)."""
    if isinstance(problem, (LQR, str)):
        return True
    gym = sys.modules.get("gymnasium")
    return gym is not None and isinstance(problem, gym.Env)


def _lqr_exact(lqr: LQR, policy: LinearGaussian, gamma: float) -> tuple[float, NDArray[np.float64] | None]:
    """(J, grad J) of ``policy`` on ``lqr`` (its own objective, discount ``gamma``) from
    :func:`pgfast.exact.gradient`; (NaN, None) when the oracle cannot evaluate it (beyond the
    float64 range)."""
    try:
        grad, ev = exact.gradient(lqr, policy, gamma=gamma, return_evaluation=True)
    except ValueError:
        return math.nan, None
    return float(ev.value), grad


def _lqr_optimal(lqr: LQR, gamma: float) -> float:
    """The reference J of ``J_gap``: the optimal J of :func:`pgfast.exact.optimal` (the Riccati gain's
    for the discounted problem); for a finite horizon, that of the best stationary gain (noise-free)
    when its search converged, else the optimal time-varying control's (an upper bound, so the gap
    stays >= 0). NaN when the oracle fails."""
    try:
        best = exact.optimal(lqr, gamma=gamma)
    except ValueError:
        return math.nan
    if best.stationary_value is not None and best.stationary_converged:
        return float(best.stationary_value)
    return float(best.value)


def train(
    problem: Any,
    policy: Any,
    *,
    optimizer: Optimizer,
    iterations: int,
    batch: int,
    seed: int | np.random.SeedSequence | None,
    weights: str,
    baseline: Any,
    gamma: float | None,
    eval_every: int,
    exact_eval: bool | None,
    threads: int | None,
    progress: bool | None,
    callback: Callable[[int, dict[str, float]], bool | None] | None,
    checkpoint: Any,
    resume: Any,
    horizon: int | None,
    num_envs: int | None,
    env_kwargs: dict[str, Any] | None,
) -> History:
    """:func:`pgfast.train` for an LQR or a gymnasium environment (its docstring states the loop)."""
    from ._checkpoint import as_train_seed, seed_spec

    is_lqr = isinstance(problem, LQR)
    if is_lqr:
        require_instance(policy, LinearGaussian, "policy", "a pgfast.LinearGaussian (an LQR has vector actions)")
    elif not isinstance(policy, (LinearGaussian, ObservationSoftmax)):
        raise TypeError("policy must be a pgfast.LinearGaussian (Box actions) or pgfast.ObservationSoftmax (Discrete "
                        f"actions) for a gymnasium environment, got {type(policy).__name__}")
    require_instance(optimizer, Optimizer, "optimizer", "a pgfast.optim optimizer")
    iters = as_int(iterations, "iterations", minimum=1, maximum=MAX_ITERATIONS)
    n = as_int(batch, "batch", minimum=1, maximum=MAX_BATCH)
    every = as_int(eval_every, "eval_every", minimum=1)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable (iteration, record) -> bool | None, or None, got {type(callback).__name__}")
    as_threads(threads)
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"progress must be None (a bar on a terminal or in a notebook), True or False, got {type(progress).__name__}")
    if checkpoint is not None or resume is not None:
        raise ValueError("checkpoint= and resume= are implemented for finite MDPs only; an LQR or gymnasium run "
                         "answers Ctrl-C by leaving the policy and optimizer as after the last completed iteration")
    if isinstance(optimizer, NaturalGradient) and optimizer.fisher == "exact":
        raise ValueError("NaturalGradient(fisher='exact') needs the exact Fisher matrix of a finite MDP; on an LQR or "
                         "a gymnasium environment use NaturalGradient(fisher='sampled') (F from the batch's scores)")
    if isinstance(optimizer, (*_train.CLOSED_FORM, ArmijoLineSearch)):
        raise ValueError(f"{type(optimizer).__name__} needs a finite MDP (its advantages or exact J); on an LQR or a "
                         "gymnasium environment use GradientAscent, Adam or NaturalGradient(fisher='sampled')")
    if env_kwargs is not None and not isinstance(env_kwargs, dict):
        raise TypeError(f"env_kwargs must be a dict of keyword arguments for gymnasium.make, got {type(env_kwargs).__name__}")
    sampler = None
    if is_lqr:
        given = [k for k, v in (("horizon", horizon), ("num_envs", num_envs), ("env_kwargs", env_kwargs)) if v is not None]
        if given:
            raise ValueError(f"{', '.join(given)} apply to gymnasium environments; an LQR has its own horizon "
                             "(lqr.with_options(horizon=...))")
        if problem.horizon is None:
            raise ValueError("training samples episodes: the LQR needs a horizon (lqr.with_options(horizon=H)); "
                             "horizon=None is the exact oracle's infinite discounted problem")
        gamma_value = as_gamma(gamma, problem.gamma)
        do_exact = True if exact_eval is None else as_bool(exact_eval, "exact_eval")
    else:
        gamma_value = as_gamma(gamma, 1.0)
        if exact_eval is not None and as_bool(exact_eval, "exact_eval"):
            raise ValueError("exact_eval=True needs an exact oracle (a finite MDP or an LQR); a gymnasium environment has none")
        do_exact = False
        if isinstance(problem, str) and num_envs is None:
            num_envs = min(16, n)
        from ._gym_rollout import Sampler

        sampler = Sampler(problem, policy, horizon=horizon, num_envs=num_envs, make_kwargs=dict(env_kwargs or {}))
    try:
        base_seed = as_train_seed(seed)
        natural = isinstance(optimizer, NaturalGradient)
        source = problem if isinstance(problem, str) else (sampler.source if sampler is not None else "LQR")
        hist = History(meta={"seed": seed_spec(base_seed), "batch": n, "iterations": iters, "weights": weights,
                             "baseline": baseline if isinstance(baseline, str) or baseline is None else type(baseline).__name__,
                             "optimizer": optimizer.state_dict().get("type"), "problem": str(source)})
        optimal_J = _lqr_optimal(problem, gamma_value) if is_lqr and do_exact else math.nan
        show = None if progress is None else bool(progress)
        steps0 = _train._steps_taken(optimizer)
        bar = _train._progress(show, steps0 + iters, steps0)
        try:
            _loop(problem, policy, optimizer, sampler, hist, bar, iters, n, base_seed, every, weights, baseline, gamma,
                  gamma_value, threads, callback, natural, do_exact, optimal_J)
        finally:
            bar.close()
    finally:
        if sampler is not None:
            sampler.close()
    return hist


def _loop(problem: Any, policy: Any, optimizer: Optimizer, sampler: Any, hist: History, bar: Any, iters: int, n: int,
          base_seed: Any, every: int, weights: str, baseline: Any, gamma: float | None, gamma_value: float,
          threads: int | None, callback: Any, natural: bool, do_exact: bool, optimal_J: float) -> None:
    is_lqr = sampler is None
    for it in range(1, iters + 1):
        theta0, state0 = policy.theta.copy(), optimizer._snapshot()  # undone on Ctrl-C mid-iteration
        try:
            t0 = time.perf_counter()
            s = _train.iteration_seed(base_seed, it)
            context: dict[str, Any] = {}
            if is_lqr and not natural:
                est = policy_gradient(policy, mdp=problem, n=n, seed=s, weights=weights, baseline=baseline,  # type: ignore[arg-type]
                                      gamma=gamma, threads=threads, stderr=False)
            else:
                if is_lqr:
                    traj = problem.sample(policy, n, seed=s, threads=threads)
                else:
                    traj = sampler.sample(n, s, gamma_value)
                est = policy_gradient(policy, traj, weights=weights, baseline=baseline, gamma=gamma_value,  # type: ignore[arg-type]
                                      threads=threads, stderr=False)
                if natural:
                    context["traj"] = traj
            gnorm = float(np.linalg.norm(est.grad))
            check_finite_result(gnorm, "the gradient norm", "the gradient's entries are too large to square")
            cols = dict.fromkeys(EXACT_FIELDS, math.nan)
            j_exact, t_exact, exact_grad = math.nan, 0.0, None
            if do_exact and (it % every == 0 or it == 1 or it == iters):
                te = time.perf_counter()
                j_exact, exact_grad = _lqr_exact(problem, policy, gamma_value)
                if exact_grad is not None:
                    cols["exact_grad_norm"] = float(np.linalg.norm(exact_grad))
                cols["J_gap"] = optimal_J - j_exact
                cols["fraction_of_optimal"] = fraction_of_optimal(j_exact, optimal_J)
                t_exact = time.perf_counter() - te
            step = optimizer.step(policy, est.grad, **context)
            dt = time.perf_counter() - t0 - t_exact
            if exact_grad is not None:
                cols["step_cosine"] = _train._ExactColumns.cosine(step, exact_grad)
        except KeyboardInterrupt:
            policy.theta = theta0
            optimizer.load_state_dict(state0)
            raise
        rec = {"iteration": it, "J_estimate": est.value, "J_stderr": est.value_stderr, "J_exact": j_exact,
               "grad_norm": gnorm, "seconds": dt, "steps_per_s": est.n_steps / dt if dt > 0 else math.nan, **cols}
        hist.append(rec)
        bar.update(it, rec)
        if callback is not None and callback(it, rec):
            break
