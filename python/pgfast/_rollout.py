"""pg.rollout: batches of episodes of a policy on observations in a gymnasium environment with Box observations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._continuous import ContinuousTrajectories
from ._validation import as_gamma, as_int, as_seed

if TYPE_CHECKING:
    from ._gaussian import LinearGaussian
    from ._obs_softmax import ObservationSoftmax

MAX_EPISODES = 2**31 - 1
"""Upper bound of :func:`rollout`'s ``n``."""


def rollout(
    env_or_id: Any,
    policy: LinearGaussian | ObservationSoftmax,
    n: int,
    *,
    seed: int | None,
    horizon: int | None = None,
    gamma: float = 1.0,
    num_envs: int | None = None,
    **make_kwargs: Any,
) -> ContinuousTrajectories:
    r"""Sample ``n`` episodes of ``policy`` in a gymnasium environment with a Box observation space.

    The environment is stepped through gymnasium's vector API (``gymnasium.vector.SyncVectorEnv``
    with ``num_envs`` copies, autoreset disabled: each copy is reset, with its episode's seed, as
    soon as its episode ends). Observations are flattened to vectors of ``obs_dim`` entries. The
    policy is a :class:`LinearGaussian` for a ``Box`` action space (the sampled action is stored
    and passed to the environment unclipped: an environment that clips it, like ``Pendulum-v1``,
    changes the dynamics but not the estimator, see :doc:`/guide/gym`) or an
    :class:`ObservationSoftmax` for a ``Discrete`` one (actions stored as indices).

    An episode ends when the environment reports ``terminated`` or ``truncated`` (its
    ``TimeLimit``), after ``horizon`` steps, or when it diverges: a non-finite observation or
    reward, or ``info["diverged"]`` (set by :meth:`pgfast.LQR.to_gymnasium`'s environment when the
    state leaves ``max_state``); the batch flags it in ``diverged`` (a non-finite reward's step is
    not kept). The batch is padded to H, the environment's time limit capped by ``horizon``.

    Reproducibility: the batch depends on ``seed`` only (not on ``num_envs``, nor on the order in
    which the copies finish). Episode ``i`` (0, 1, ...) takes the two 64-bit words of
    ``numpy.random.SeedSequence([seed, i]).generate_state(2, numpy.uint64)``: the first is its
    ``reset(seed=...)`` seed, the second keys a ``numpy.random.Philox`` stream of the policy's
    draws, read in order: step t's Gaussian noise is the t-th row of
    ``standard_normal((H, action_dim))`` (``u_t = W phi(x_t) + sigma * eps_t``), a softmax's
    uniform the t-th entry of ``random(H)`` (inverse CDF, as :meth:`ObservationSoftmax.sample`).
    A counter, not ``seed + i``: two seeds never share an episode's streams.

    Speed: Python speed. Every step calls the environment's own ``step`` (gymnasium's
    environments are Python) and the policy's draws are vectorised over the copies: about 48,000
    steps/s for ``Pendulum-v1`` with the default 16 copies (11,000 with ``num_envs=1``), on one
    core of a busy 2-core machine; the compiled LQR sampler, ``lqr.sample``, is two to three orders
    of magnitude faster (:doc:`/guide/gym`).

    Parameters
    ----------
    env_or_id : str or gymnasium.Env
        An environment id (made with ``gymnasium.make(env_or_id, **make_kwargs)``, ``num_envs``
        times, closed at the end) or an environment instance (one copy, ``num_envs`` must be 1 or
        None; not closed).
    policy : LinearGaussian or ObservationSoftmax
        The policy, its ``obs_dim`` the number of entries of an observation.
    n : int >= 1
        Number of episodes.
    seed : int or None
        Seed in [0, 2**64) (None: fresh entropy, recorded in the batch's ``seed``).
    horizon : int >= 1, optional
        Cap on the episode length (required when the environment has no time limit).
    gamma : float in [0, 1]
        The batch's discount (default 1), the default of its ``returns()`` and of the estimators.
    num_envs : int, optional
        Copies stepped together (default ``min(16, n)`` for an id; 1 for an instance).
    **make_kwargs
        Keyword arguments for ``gymnasium.make`` (an id only).

    Returns
    -------
    ContinuousTrajectories
        States ``(n, H, obs_dim)``, actions ``(n, H, action_dim)`` float or ``(n, H)`` int,
        rewards, lengths, ``terminated``, ``diverged``; ``source`` is the environment id.

    Raises
    ------
    TypeError
        A policy of the wrong class for the action space, or ``env_or_id`` neither an id nor an
        Env.
    ValueError
        An unknown id or ``gymnasium.make`` failure, an observation space that is not a Box, a
        policy whose dimensions do not fit, ``n``, ``seed``, ``horizon``, ``gamma`` or
        ``num_envs`` out of range, or no time limit and no ``horizon``.

    Examples
    --------
    >>> pi = pg.ObservationSoftmax(4, 2)  # uniform over CartPole's two pushes
    >>> traj = pg.rollout("CartPole-v1", pi, 100, seed=0)
    >>> traj.states.shape, traj.actions.shape, traj.source
    ((100, 500, 4), (100, 500), 'CartPole-v1')
    >>> bool(traj.terminated.all()), round(float(traj.returns().mean()), 2)
    (True, 21.91)
    >>> same = pg.rollout("CartPole-v1", pi, 100, seed=0, num_envs=3)
    >>> bool(np.array_equal(same.states, traj.states))
    True
    """
    nn = as_int(n, "n", minimum=1, maximum=MAX_EPISODES)
    s = as_seed(seed)
    g = as_gamma(gamma, 1.0)
    from . import _gym_rollout  # gymnasium is imported on the first call, not by `import pgfast`

    return _gym_rollout.rollout(env_or_id, policy, nn, s, horizon, g, num_envs, make_kwargs)
