r"""gymnasium environments with Box observations: batches of episodes through the vector API, and the LQR as an Env.

* :func:`rollout` (behind :func:`pgfast.rollout`) samples ``n`` episodes of a :class:`pgfast.LinearGaussian` (Box actions) or
  :class:`pgfast.ObservationSoftmax` (Discrete actions) policy in any gymnasium environment whose
  observation space is a ``Box``, through ``gymnasium.vector.SyncVectorEnv``, into a
  :class:`pgfast.ContinuousTrajectories` batch.
* :class:`LQREnv` simulates a :class:`pgfast.LQR` step by step (``lqr.to_gymnasium()``).

This module and :mod:`pgfast._gym` are the only ones that import gymnasium; ``import pgfast``
imports neither.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from numpy.typing import NDArray

from ._continuous import ContinuousTrajectories
from ._gaussian import LOG_STD_MIN, LinearGaussian
from ._lqr import LQR
from ._obs_softmax import ObservationSoftmax, inverse_cdf
from ._validation import as_int

__all__ = ["DEFAULT_NUM_ENVS", "LQREnv", "rollout"]

DEFAULT_NUM_ENVS = 16
"""Sub-environments of the vector environment :func:`rollout` steps (at most ``n``)."""


def is_env(obj: Any) -> bool:
    """Whether ``obj`` is a ``gymnasium.Env`` (possibly wrapped)."""
    return isinstance(obj, gymnasium.Env)


def episode_keys(seed: int, first: int, count: int) -> tuple[list[int], list[int]]:
    """The reset seeds and the policy's stream keys of episodes ``first .. first + count - 1``:
    the two 64-bit words of ``numpy.random.SeedSequence([seed, i]).generate_state(2, uint64)``."""
    resets, keys = [], []
    for i in range(first, first + count):
        words = np.random.SeedSequence([seed, i]).generate_state(2, np.uint64)
        resets.append(int(words[0]))
        keys.append(int(words[1]))
    return resets, keys


def _make(env_id: str, make_kwargs: dict[str, Any]) -> gymnasium.Env[Any, Any]:
    """``gymnasium.make(env_id, **make_kwargs)`` with its errors as ValueError naming the id."""
    try:
        return gymnasium.make(env_id, **make_kwargs)
    except (gymnasium.error.UnregisteredEnv, gymnasium.error.DeprecatedEnv, gymnasium.error.NameNotFound,
            gymnasium.error.VersionNotFound) as exc:
        raise ValueError(f"env_or_id: unknown gymnasium environment id {env_id!r} ({exc})") from exc
    except (gymnasium.error.Error, KeyError, TypeError) as exc:  # a malformed id, or an argument the env rejects
        kw = f" with {make_kwargs}" if make_kwargs else ""
        raise ValueError(f"gymnasium.make({env_id!r}){kw} failed: {type(exc).__name__}: {exc}") from exc


class Sampler:
    """A vector environment over ``env_or_id`` and the checks of ``policy`` against its spaces,
    kept for many batches (:func:`pgfast.train` samples every iteration with one)."""

    def __init__(self, env_or_id: Any, policy: Any, *, horizon: int | None, num_envs: int | None,
                 make_kwargs: dict[str, Any]) -> None:
        if isinstance(env_or_id, str):
            first = _make(env_or_id, make_kwargs)
            self.source: Any = env_or_id
            self.owned = True
        elif is_env(env_or_id):
            if make_kwargs:
                raise ValueError(f"keyword arguments for gymnasium.make ({sorted(make_kwargs)}) need an environment id, "
                                 "not an environment instance")
            first = env_or_id
            spec = getattr(env_or_id, "spec", None)
            self.source = spec.id if spec is not None else type(env_or_id.unwrapped).__name__
            self.owned = False
        else:
            raise TypeError("env_or_id must be a gymnasium environment id (str) or a gymnasium.Env instance, "
                            f"got {type(env_or_id).__name__}")
        try:
            self._check_spaces(first, policy)
            limit = first.spec.max_episode_steps if first.spec is not None else None
            if horizon is not None:
                cap = as_int(horizon, "horizon", minimum=1, maximum=2**31 - 1)
                self.horizon = cap if limit is None else min(cap, int(limit))
            elif limit is not None:
                self.horizon = int(limit)
            else:
                raise ValueError(f"the environment {self.source!r} has no time limit (spec.max_episode_steps): pass horizon=")
            if num_envs is None:
                k = DEFAULT_NUM_ENVS if self.owned else 1
            else:
                k = as_int(num_envs, "num_envs", minimum=1, maximum=4096)
            if not self.owned and k != 1:
                raise ValueError(f"num_envs must be 1 (or None) with an environment instance, got {k}; pass an id "
                                 "to step several copies")
            self.num_envs = k
            fns = [lambda: first] + [functools.partial(_make, env_or_id, dict(make_kwargs)) for _ in range(k - 1)]
            self.venv = SyncVectorEnv(fns, copy=False, autoreset_mode=AutoresetMode.DISABLED)
        except BaseException:
            if self.owned:
                first.close()
            raise

    def _check_spaces(self, env: gymnasium.Env[Any, Any], policy: Any) -> None:
        obs_space, act_space = env.observation_space, env.action_space
        if not isinstance(obs_space, spaces.Box):
            raise ValueError(f"env_or_id: pg.rollout needs a Box observation space, {self.source!r} has "
                             f"{obs_space} (tabular environments: pg.FiniteMDP.from_gymnasium)")
        self.obs_shape = tuple(obs_space.shape)
        self.obs_dim = int(np.prod(self.obs_shape))
        if isinstance(act_space, spaces.Discrete):
            if not isinstance(policy, ObservationSoftmax):
                raise TypeError(f"policy must be a pgfast.ObservationSoftmax for the Discrete action space of {self.source!r}, "
                                f"got {type(policy).__name__}")
            if policy.n_actions != int(act_space.n):
                raise ValueError(f"policy has {policy.n_actions} actions, the action space of {self.source!r} has {int(act_space.n)}")
            self.discrete = True
            self.action_dim = 1
            self.action_start = int(act_space.start)
            self.idle_action: Any = act_space.start
        elif isinstance(act_space, spaces.Box):
            if len(act_space.shape) != 1:
                raise ValueError(f"env_or_id: pg.rollout needs a one-dimensional Box action space, {self.source!r} has shape {act_space.shape}")
            if not isinstance(policy, LinearGaussian):
                raise TypeError(f"policy must be a pgfast.LinearGaussian for the Box action space of {self.source!r}, "
                                f"got {type(policy).__name__}")
            if policy.action_dim != act_space.shape[0]:
                raise ValueError(f"policy has action_dim {policy.action_dim}, the action space of {self.source!r} has "
                                 f"dimension {act_space.shape[0]}")
            self.discrete = False
            self.action_dim = int(act_space.shape[0])
            self.action_dtype = act_space.dtype
            self.idle_action = np.clip(np.zeros(self.action_dim), act_space.low, act_space.high).astype(act_space.dtype)
        else:
            raise ValueError(f"env_or_id: pg.rollout needs a Box or Discrete action space, {self.source!r} has {act_space}")
        if policy.obs_dim != self.obs_dim:
            raise ValueError(f"policy has obs_dim {policy.obs_dim}, the observations of {self.source!r} have "
                             f"{self.obs_dim} entries (shape {self.obs_shape})")
        self.policy = policy

    def close(self) -> None:
        if self.owned:
            self.venv.close()

    def sample(self, n: int, seed: int, gamma: float) -> ContinuousTrajectories:
        """``n`` episodes; episode ``i``'s reset seed and noise come from ``(seed, i)`` only."""
        pi, H, K, d = self.policy, self.horizon, self.num_envs, self.obs_dim
        th = pi._theta_copy()  # one theta for the whole batch
        discrete = self.discrete
        if discrete:
            Wm = th.reshape(pi.n_actions, pi.feature_dim)
        else:
            m, k = pi.action_dim, pi.feature_dim
            Wm, sigma = th[: m * k].reshape(m, k), np.exp(np.maximum(th[m * k:], LOG_STD_MIN))
        feats = pi._features
        X = np.zeros((n, H, d))
        U: NDArray[Any] = np.full((n, H), -1, dtype=np.int32) if discrete else np.zeros((n, H, self.action_dim))
        R = np.zeros((n, H))
        L = np.zeros(n, dtype=np.int32)
        term = np.zeros(n, dtype=bool)
        div = np.zeros(n, dtype=bool)
        slot_ep = np.full(K, -1, dtype=np.int64)
        slot_t = np.zeros(K, dtype=np.int64)
        noise: list[NDArray[np.float64] | None] = [None] * K
        next_ep = 0

        def assign(slots: NDArray[np.intp]) -> list[int | None]:
            """Episodes for the given slots (idle when all are assigned); their reset seeds."""
            nonlocal next_ep
            count = min(len(slots), n - next_ep)
            resets, keys = episode_keys(seed, next_ep, count)
            out: list[int | None] = [None] * K
            for j, slot in enumerate(slots):
                if j < count:
                    slot_ep[slot], slot_t[slot] = next_ep + j, 0
                    gen = np.random.Generator(np.random.Philox(key=keys[j]))
                    noise[slot] = gen.random(H) if discrete else gen.standard_normal((H, self.action_dim))
                    out[slot] = resets[j]
                else:
                    slot_ep[slot], noise[slot] = -1, None
            next_ep += count
            return out

        obs, _ = self.venv.reset(seed=assign(np.arange(K)))
        actions = np.stack([np.asarray(self.idle_action)] * K)
        while True:
            active = np.flatnonzero(slot_ep >= 0)
            if active.size == 0:
                break
            x = np.asarray(obs, dtype=np.float64).reshape(K, d)[active]
            ep, t = slot_ep[active], slot_t[active]
            X[ep, t] = x
            # row by row (a matrix product's last bits could depend on the number of running episodes)
            z = (feats(x)[:, None, :] * Wm[None, :, :]).sum(axis=-1)
            rows = np.stack([noise[j][slot_t[j]] for j in active])  # type: ignore[index]
            if discrete:
                z = np.exp(z - z.max(axis=-1, keepdims=True))
                a = inverse_cdf(z / z.sum(axis=-1, keepdims=True), rows)
                U[ep, t] = a
                actions[:] = self.idle_action
                actions[active] = a + self.action_start
            else:
                u = z + sigma * rows
                U[ep, t] = u
                actions[:] = self.idle_action
                actions[active] = u.astype(self.action_dtype)
            obs, rew, terminated, truncated, infos = self.venv.step(actions)
            r = np.asarray(rew, dtype=np.float64)[active]
            bad_reward = ~np.isfinite(r)
            R[ep, t] = np.where(bad_reward, 0.0, r)
            slot_t[active] += 1
            nxt = np.asarray(obs, dtype=np.float64).reshape(K, d)[active]
            flagged = np.asarray(infos.get("diverged", np.zeros(K, dtype=bool)), dtype=bool)[active] & \
                np.asarray(infos.get("_diverged", np.ones(K, dtype=bool)), dtype=bool)[active]
            diverged = bad_reward | ~np.isfinite(nxt).all(axis=1) | flagged
            done_real = terminated[active] | truncated[active] | (slot_t[active] >= H) | diverged
            L[ep] = np.where(done_real, slot_t[active] - bad_reward, L[ep])
            term[ep] |= done_real & terminated[active] & ~diverged
            div[ep] |= done_real & diverged
            idle = slot_ep < 0
            finished = np.zeros(K, dtype=bool)
            finished[active[done_real]] = True
            finished |= idle & (terminated | truncated)  # an idle copy that ended: reset it to keep it steppable
            if finished.any():
                reset_slots = np.flatnonzero(finished & ~idle)
                seeds = assign(reset_slots)
                obs, _ = self.venv.reset(seed=seeds, options={"reset_mask": finished})
        return ContinuousTrajectories._trusted([X, U, R, L, term, div], gamma, self.source, seed)


def rollout(env_or_id: Any, policy: Any, n: int, seed: int, horizon: int | None, gamma: float,
            num_envs: int | None, make_kwargs: dict[str, Any]) -> ContinuousTrajectories:
    """:func:`pgfast.rollout` once its scalar arguments are checked."""
    if num_envs is None and isinstance(env_or_id, str):
        num_envs = min(DEFAULT_NUM_ENVS, n)
    sampler = Sampler(env_or_id, policy, horizon=horizon, num_envs=num_envs, make_kwargs=make_kwargs)
    try:
        return sampler.sample(n, seed, gamma)
    finally:
        sampler.close()


# -- the LQR as a gymnasium environment -----------------------------------------------------------


def _factor(cov: NDArray[np.float64] | None) -> NDArray[np.float64] | None:
    """``L`` with ``L L^T = cov`` for a positive semidefinite ``cov`` (eigendecomposition)."""
    if cov is None:
        return None
    lam, V = np.linalg.eigh(cov)
    return np.asarray(V * np.sqrt(np.maximum(lam, 0.0)))


class LQREnv(gymnasium.Env[NDArray[np.float64], NDArray[np.float64]]):
    r"""A ``gymnasium.Env`` that simulates a :class:`pgfast.LQR` (``lqr.to_gymnasium()``).

    * ``observation_space = Box(-inf, inf, (n,), float64)``, ``action_space = Box(-inf, inf,
      (m,), float64)``: the actions are not clipped.
    * ``reset(seed=None, options=None)`` draws :math:`x_0` (``x0``, plus
      :math:`\mathcal N(0, \Sigma_0)` noise with ``x0_cov``) from ``self.np_random`` and returns
      ``(x0, {})``.
    * ``step(u)`` returns ``(x', r, False, truncated, info)`` with
      :math:`r = -(x^\top Q x + u^\top R u)` and :math:`x' = A x + B u + w`
      (:math:`w \sim \mathcal N(0, \Sigma_w)` from ``self.np_random`` with ``noise_cov``);
      ``truncated`` after ``horizon`` steps (never for ``horizon=None``) or when :math:`x'` has an
      entry beyond ``max_state`` in absolute value, which also sets ``info["diverged"] = True``.
    * After ``truncated``, and before the first ``reset``, ``step`` raises
      ``gymnasium.error.ResetNeeded``; an action of another shape or not finite raises
      ``ValueError``.

    Episodes have the law of the LQR's sampler, not its random streams. ``env.spec`` is set
    (``max_episode_steps`` is the horizon), so ``gymnasium.make(env.spec)`` builds another
    environment over the same LQR; ``env.lqr`` is the simulated LQR.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, lqr: LQR) -> None:
        if not isinstance(lqr, LQR):
            raise TypeError(f"lqr must be a pgfast.LQR, got {type(lqr).__name__}")
        self.lqr = lqr
        n, m = lqr.state_dim, lqr.action_dim
        self.observation_space = spaces.Box(-np.inf, np.inf, (n,), np.float64)
        self.action_space = spaces.Box(-np.inf, np.inf, (m,), np.float64)
        self._x0_factor = _factor(lqr.x0_cov)
        self._noise_factor = _factor(lqr.noise_cov)
        self._x: NDArray[np.float64] | None = None
        self._t = 0
        self._done = True
        self.spec = EnvSpec(id="pgfast/LQR-v0", entry_point=functools.partial(LQREnv, lqr),
                            max_episode_steps=lqr.horizon)

    @property
    def state(self) -> NDArray[np.float64] | None:
        """The current state (a copy; None before the first reset)."""
        return None if self._x is None else self._x.copy()

    @property
    def elapsed_steps(self) -> int:
        """Steps taken since the last reset."""
        return self._t

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[NDArray[np.float64], dict[str, Any]]:
        r"""Start an episode at :math:`x_0`; ``seed`` reseeds ``self.np_random`` (gymnasium
        convention), ``options`` is ignored."""
        super().reset(seed=seed)
        x = np.array(self.lqr.x0, dtype=np.float64)
        if self._x0_factor is not None:
            x = x + self._x0_factor @ self.np_random.standard_normal(x.size)
        self._x, self._t, self._done = x, 0, False
        return x.copy(), {}

    def step(self, action: Any) -> tuple[NDArray[np.float64], float, bool, bool, dict[str, Any]]:
        r"""Apply :math:`u`: returns ``(x', -(x^T Q x + u^T R u), False, truncated, info)``."""
        if self._x is None or self._done:
            raise gymnasium.error.ResetNeeded(
                "Cannot call step() before reset()" if self._x is None
                else "Cannot call step() after the episode ended (truncated); call reset()")
        lqr = self.lqr
        m = lqr.action_dim
        try:
            u = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"action must be an array of shape ({m},), got {action!r}") from None
        if u.shape != (m,) and not (m == 1 and u.shape == ()):
            raise ValueError(f"action must have shape ({m},), got {u.shape}")
        u = u.reshape(m)
        if not np.isfinite(u).all():
            raise ValueError(f"action must be finite, got {u!r}")
        x = self._x
        reward = -(float(x @ lqr.Q @ x) + float(u @ lqr.R @ u))
        with np.errstate(over="ignore", invalid="ignore"):
            x_next = lqr.A @ x + lqr.B @ u
            if self._noise_factor is not None:
                x_next = x_next + self._noise_factor @ self.np_random.standard_normal(x.size)
        self._t += 1
        diverged = not bool(np.all(np.abs(x_next) <= lqr.max_state))
        if diverged:
            x_next = np.nan_to_num(x_next, nan=0.0, posinf=math.inf, neginf=-math.inf)
        truncated = diverged or (lqr.horizon is not None and self._t >= lqr.horizon)
        self._x, self._done = x_next, truncated
        return x_next.copy(), reward, False, truncated, ({"diverged": True} if diverged else {})

    def __repr__(self) -> str:
        return f"LQREnv({self.lqr!r})"

