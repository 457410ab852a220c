r"""Partial results of the fused estimator: shards of the trajectory range that merge bit for bit.

The fused :func:`pgfast.policy_gradient` sums its trajectories over a fixed grid of blocks
(the block size depends on ``n`` only) combined along one binary tree (see
:doc:`/guide/sampling`, "Reproducibility"). A shard that owns the whole blocks ``[lo, hi)`` of
that grid reduces them to the largest tree nodes inside its range; any set of shards that tiles
``[0, n)`` merges, node by node along the same tree, into the one-call result, bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import _core
from ._estimators import (
    PolicyGradient,
    Weights,
    estimator_regularizer,
    estimator_spec,
    fused_baseline,
    gradient_result,
    policy_tables,
    weights_kind,
    with_barrier,
)
from ._mdp import FiniteMDP, mdp_digest
from ._policy import SoftmaxPolicy, pinned
from ._regularizers import Entropy, LogBarrier, Regularizer, soft_mdp
from ._validation import array_digest, as_bool, as_int, as_seed, as_threads, require_instance


def block_grid(n: int) -> tuple[int, int]:
    """The estimators' block grid for ``n`` trajectories: ``(block, blocks)``.

    Blocks hold ``block`` trajectories (the last one may hold fewer); ``block`` is the smallest
    power of two of at least 256 that cuts ``n`` into at most 64 blocks. It depends on ``n`` only.

    Parameters
    ----------
    n : int >= 1
        Number of trajectories.

    Returns
    -------
    tuple of int
        ``(block, blocks)``.

    Examples
    --------
    >>> pg.block_grid(1000), pg.block_grid(100_003)
    ((256, 4), (2048, 49))
    """
    n = as_int(n, "n", minimum=1, maximum=2**62)
    block, blocks = _core.estimators.estimator_grid(n)
    return int(block), int(blocks)


def shard_ranges(n: int, shards: int) -> list[tuple[int, int]]:
    """Split ``[0, n)`` into at most ``shards`` contiguous ranges of whole blocks.

    The ranges are as equal as the block grid allows (:func:`block_grid`); there are fewer than
    ``shards`` of them when the grid has fewer blocks.

    Parameters
    ----------
    n : int >= 1
        Number of trajectories.
    shards : int >= 1
        Number of ranges wanted.

    Returns
    -------
    list of (int, int)
        ``(lo, hi)`` pairs, in order, that tile ``[0, n)``.

    Examples
    --------
    >>> pg.shard_ranges(1000, 3)
    [(0, 256), (256, 512), (512, 1000)]
    """
    block, blocks = block_grid(n)
    k = min(as_int(shards, "shards", minimum=1, maximum=2**62), blocks)
    cuts = [blocks * j // k for j in range(k + 1)]
    return [(cuts[j] * block, min(n, cuts[j + 1] * block)) for j in range(k)]


@dataclass(frozen=True)
class GradientPartial:
    """The mergeable statistics of trajectories ``[lo, hi)`` of a fused policy gradient.

    Made by :func:`partial_gradient` and merged by :func:`merge_partials`. Small (a few tree
    nodes of the size of the policy's table, and for the one-pass time baseline the per-step
    tables of ``16 H S A`` bytes; never per-trajectory data) and picklable. It
    records what it belongs to, so that merging partials of different batches, policies or
    options is refused.

    Attributes
    ----------
    n : int
        Number of trajectories of the whole batch.
    seed : int
        Seed of the batch.
    lo : int
        First trajectory of the shard.
    hi : int
        One past the last trajectory of the shard.
    options : tuple
        The estimator's options: weights, baseline, gamma, stderr (and, with a regulariser, its
        strength: ``entropy`` or ``barrier``).
    policy_digest : str
        SHA-256 of the policy's tables (probabilities, features, parameters).
    mdp_digest : str
        SHA-256 of the MDP.
    nodes : tuple
        The tree nodes ``(level, index, table, sumsq, return_sum, return_sumsq, steps)``.
    step_tables : ndarray of uint64 or None
        With ``baseline="time"``, reward-to-go weights and ``stderr=False`` on an MDP with
        ``H S A <= 131072`` (the one-pass form of :func:`pgfast.policy_gradient`): the shard's
        exact per-step tables (``2 H S A`` words, ``16 H S A`` bytes; the nodes' tables are then
        empty and the options record the fixed-point ``exponent``). None otherwise.

    Examples
    --------
    >>> mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="4x4", horizon=50)
    >>> pi = pg.TabularSoftmax(16, 4)
    >>> part = pg.partial_gradient(pi, mdp=mdp, n=1000, seed=0, lo=0, hi=512)
    >>> part.lo, part.hi, len(part.nodes)
    (0, 512, 1)
    """

    n: int
    seed: int
    lo: int
    hi: int
    options: tuple[tuple[str, Any], ...]
    policy_digest: str
    mdp_digest: str
    nodes: tuple[tuple[int, int, NDArray[np.float64], NDArray[np.float64], float, float, int], ...]
    step_tables: NDArray[np.uint64] | None = None

    def __repr__(self) -> str:
        return f"GradientPartial(n={self.n}, seed={self.seed}, lo={self.lo}, hi={self.hi}, nodes={len(self.nodes)})"


@dataclass(frozen=True)
class StatisticsPartial:
    """The leave-one-out baselines' statistics of trajectories ``[lo, hi)`` of a batch.

    Made by :func:`partial_statistics`; :func:`partial_gradient` takes the statistics partials
    of the whole batch (``statistics=``) for ``baseline="mean"`` or ``"time"``. Small (per tree
    node, the per-step reward sums (H,) and the episode-length counts (H + 1,)) and picklable.

    Attributes
    ----------
    n : int
        Number of trajectories of the whole batch.
    seed : int
        Seed of the batch.
    lo : int
        First trajectory of the shard.
    hi : int
        One past the last trajectory of the shard.
    policy_digest : str
        SHA-256 of the policy's tables.
    mdp_digest : str
        SHA-256 of the MDP.
    nodes : tuple
        The tree nodes ``(level, index, reward_sums, length_counts)``.

    Examples
    --------
    >>> mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="4x4", horizon=50)
    >>> stats = pg.partial_statistics(pg.TabularSoftmax(16, 4), mdp=mdp, n=1000, seed=0, lo=0, hi=512)
    >>> stats.lo, stats.hi, int(stats.nodes[0][3].sum())  # 512 episodes counted by length
    (0, 512, 512)
    """

    n: int
    seed: int
    lo: int
    hi: int
    policy_digest: str
    mdp_digest: str
    nodes: tuple[tuple[int, int, NDArray[np.float64], NDArray[np.int64]], ...]

    def __repr__(self) -> str:
        return f"StatisticsPartial(n={self.n}, seed={self.seed}, lo={self.lo}, hi={self.hi}, nodes={len(self.nodes)})"


def _shard(n: Any, seed: Any, lo: Any, hi: Any) -> tuple[int, int, int, int, int]:
    """(n, seed, lo, hi, block) checked: lo and hi on the block grid of n."""
    nn = as_int(n, "n", minimum=1, maximum=2**62)
    if seed is None:
        raise ValueError("seed must be an int: every shard of a batch needs the same seed")
    sd = as_seed(seed)
    lo_i = as_int(lo, "lo", minimum=0, maximum=nn)
    hi_i = as_int(hi, "hi", minimum=0, maximum=nn)
    block, _ = block_grid(nn)
    if lo_i >= hi_i:
        raise ValueError(f"lo must be below hi, got lo={lo_i}, hi={hi_i}")
    if lo_i % block or (hi_i % block and hi_i != nn):
        raise ValueError(
            f"lo and hi must lie on the block grid of n={nn} (multiples of {block}, or hi = n), "
            f"got lo={lo_i}, hi={hi_i}; pgfast.shard_ranges(n, shards) makes such ranges"
        )
    return nn, sd, lo_i, hi_i, block


def partial_statistics(
    policy: SoftmaxPolicy, *, mdp: FiniteMDP, n: int, seed: int, lo: int, hi: int, threads: int | None = None,
    regularizer: Regularizer | None = None, entropy: float | None = None,
) -> StatisticsPartial:
    """The leave-one-out baselines' statistics of trajectories ``[lo, hi)`` of a batch of ``n``.

    The first round of a sharded estimate with ``baseline="mean"`` or ``"time"``: every shard
    computes its statistics partial, and every shard then computes its gradient partial with
    :func:`partial_gradient` given all of them (``statistics=``). The result merges into the
    one-call fused estimate, bit for bit.

    Parameters
    ----------
    policy : SoftmaxPolicy
        The policy that samples the trajectories.
    mdp : FiniteMDP
        The MDP to sample.
    n : int >= 1
        Number of trajectories of the whole batch.
    seed : int
        Seed of the batch.
    lo, hi : int
        The shard's trajectories ``[lo, hi)``, on the block grid (:func:`shard_ranges`).
    threads : int, optional
        Worker threads for this shard (default: every usable CPU); the result does not depend on it.
    regularizer : Entropy or LogBarrier, optional
        The regulariser of the gradient round: with an entropy bonus the statistics are those of
        the soft rewards (and record the soft MDP's digest, so that :func:`partial_gradient`
        refuses them for another temperature); a log-barrier leaves them as they are.
    entropy : float >= 0, optional
        ``regularizer=pgfast.Entropy(entropy)``.

    Returns
    -------
    StatisticsPartial

    Raises
    ------
    ValueError
        ``lo``/``hi`` off the block grid or outside ``[0, n]``, or a bad argument.

    Examples
    --------
    >>> mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="4x4", horizon=50)
    >>> pi = pg.TabularSoftmax(16, 4)
    >>> shards = pg.shard_ranges(1000, 2)
    >>> stats = [pg.partial_statistics(pi, mdp=mdp, n=1000, seed=3, lo=lo, hi=hi) for lo, hi in shards]
    >>> parts = [pg.partial_gradient(pi, mdp=mdp, n=1000, seed=3, lo=lo, hi=hi, baseline="time", statistics=stats)
    ...          for lo, hi in shards]
    >>> whole = pg.policy_gradient(pi, mdp=mdp, n=1000, seed=3, baseline="time")
    >>> bool((pg.merge_partials(pi, parts).grad == whole.grad).all())
    True
    """
    require_instance(mdp, FiniteMDP, "mdp", "a pgfast.FiniteMDP")
    require_instance(policy, SoftmaxPolicy, "policy", "a pgfast policy")
    policy._check_fits(mdp)
    nn, sd, lo_i, hi_i, block = _shard(n, seed, lo, hi)
    reg = estimator_regularizer(regularizer, entropy)
    policy = pinned(policy)
    tables = policy_tables(policy)
    if isinstance(reg, Entropy):  # the soft rewards of the same episodes
        mdp = soft_mdp(mdp, tables.probs, reg.tau)
    spec = estimator_spec(tables, "reward_to_go", None, mdp.gamma, "none", None, as_threads(threads))
    nodes = _core.estimators.fused_loo_partial(spec, mdp._mdp, nn, sd, lo_i // block, -(-hi_i // block))
    return StatisticsPartial(nn, sd, lo_i, hi_i, _policy_digest(policy, tables), mdp_digest(mdp),
                             tuple((int(a), int(b), c, e) for a, b, c, e in nodes))


def _statistics_nodes(statistics: Any, n: int, seed: int, policy_digest: str, mdp_digest: str) -> list[Any]:
    """The nodes of statistics partials that belong to this batch (the C++ merge checks coverage)."""
    if statistics is None:
        raise ValueError("the leave-one-out baselines need the whole batch's statistics: pass statistics= "
                         "(the pgfast.partial_statistics of every shard)")
    items = [statistics] if isinstance(statistics, StatisticsPartial) else list(statistics)
    if not items:
        raise ValueError("statistics is empty: pass the pgfast.partial_statistics of every shard")
    nodes: list[Any] = []
    for i, st in enumerate(items):
        if not isinstance(st, StatisticsPartial):
            raise TypeError(f"statistics[{i}] must be a pgfast.StatisticsPartial, got {type(st).__name__}")
        for field, want in (("n", n), ("seed", seed), ("policy_digest", policy_digest), ("mdp_digest", mdp_digest)):
            if getattr(st, field) != want:
                raise ValueError(f"statistics[{i}] belongs to another batch: its {field} differs from this call's")
        nodes.extend(st.nodes)
    nodes = _checked_nodes(nodes, "statistics", 2)
    if any(len(node) != 4 for node in nodes):
        raise ValueError("statistics: a node must have 4 fields (level, index, reward_sums, length_counts)")
    return nodes


def _checked_nodes(nodes: Any, what: str, arrays: int) -> list[tuple[Any, ...]]:
    """The tree nodes of a partial, each (level, index, <arrays> 1-D arrays, ...) with a level in
    [0, 62] and an index in [0, 2^62): anything else (a partial made or edited by hand) is a
    ValueError naming ``what``, before the C++ merge reads it."""
    out = []
    for k, node in enumerate(nodes):
        if not isinstance(node, tuple) or len(node) < 2 + arrays:
            raise ValueError(f"{what}: node {k} is not a tuple (level, index, ...) of a partial result")
        level, index = node[0], node[1]
        if not isinstance(level, (int, np.integer)) or not 0 <= int(level) <= 62:
            raise ValueError(f"{what}: node {k} has level {level!r}, expected an int in [0, 62]")
        if not isinstance(index, (int, np.integer)) or not 0 <= int(index) < 2**62:
            raise ValueError(f"{what}: node {k} has index {index!r}, expected an int in [0, 2**62)")
        for j in range(2, 2 + arrays):
            if not isinstance(node[j], np.ndarray) or node[j].ndim != 1:
                raise ValueError(f"{what}: node {k} field {j} must be a 1-D array")
        for j in range(2 + arrays, len(node)):
            # +-inf passes: sums that overflowed are reported by the merge as in the one-call path
            if not isinstance(node[j], (int, float, np.integer, np.floating)) or np.isnan(node[j]):
                raise ValueError(f"{what}: node {k} field {j} must be a number, got {node[j]!r}")
        out.append(node)
    return out


def _policy_digest(policy: SoftmaxPolicy, tables: Any) -> str:
    net_theta = policy.theta if tables.net is not None else None
    scale = () if tables.scale is None else (tables.scale,)  # escort and direct policies: dz/dtheta too
    return array_digest(np.frombuffer(type(policy).__name__.encode(), np.uint8), tables.probs, tables.features, net_theta,
                        *scale)


def partial_gradient(
    policy: SoftmaxPolicy,
    *,
    mdp: FiniteMDP,
    n: int,
    seed: int,
    lo: int,
    hi: int,
    weights: Weights = "reward_to_go",
    baseline: Any = None,
    gamma: float | None = None,
    stderr: bool = True,
    threads: int | None = None,
    statistics: StatisticsPartial | Iterable[StatisticsPartial] | None = None,
    regularizer: Regularizer | None = None,
    entropy: float | None = None,
) -> GradientPartial:
    r"""The fused policy gradient's statistics of trajectories ``[lo, hi)`` of a batch of ``n``.

    Computes what :func:`pgfast.policy_gradient` with ``mdp=mdp, n=n, seed=seed`` computes, for
    the trajectories ``lo`` to ``hi - 1`` only. ``lo`` and ``hi`` must lie on the block grid of
    ``n`` (:func:`block_grid`; ``hi = n`` is always allowed): :func:`shard_ranges` makes such
    ranges. :func:`merge_partials` merges partials that tile ``[0, n)`` into the one-call
    result, bit for bit, whichever machines and thread counts computed them.

    Parameters
    ----------
    policy : SoftmaxPolicy
        The policy that samples the trajectories.
    mdp : FiniteMDP
        The MDP to sample.
    n : int >= 1
        Number of trajectories of the whole batch.
    seed : int
        Seed of the batch (required: every shard must use the same one).
    lo, hi : int
        The shard's trajectories ``[lo, hi)``, on the block grid.
    weights : {"reward_to_go", "return"}
        As in :func:`pgfast.policy_gradient`.
    baseline : None, "mean", "time", "exact" or a fitted ValueBaseline
        As in :func:`pgfast.policy_gradient`. The leave-one-out baselines ``"mean"`` and
        ``"time"`` need the statistics of the whole batch: pass ``statistics=``.
    gamma : float in [0, 1], optional
        Discount factor (default: the MDP's).
    stderr : bool
        Keep the statistics of the standard errors (default True).
    threads : int, optional
        Worker threads for this shard (default: every usable CPU); the result does not depend on it.
    statistics : StatisticsPartial or iterable of them, optional
        For ``baseline="mean"`` or ``"time"``: the :func:`partial_statistics` of every shard of
        the batch (any order), merged here along the same tree as the one-call estimate. The
        one-pass form of the time baseline (``stderr=False``, ``H S A <= 131072``: see
        :attr:`GradientPartial.step_tables`) only checks that they belong to the batch.
    regularizer : Entropy or LogBarrier, optional
        As in :func:`pgfast.policy_gradient`: the entropy bonus is in the shard's soft rewards
        (the statistics must be computed with the same one); the log-barrier's exact term is not
        random and is added once, by :func:`merge_partials` (the partial records its strength).
    entropy : float >= 0, optional
        ``regularizer=pgfast.Entropy(entropy)``.

    Returns
    -------
    GradientPartial

    Raises
    ------
    ValueError
        ``lo``/``hi`` off the block grid or outside ``[0, n]``, a leave-one-out baseline without
        the statistics of the whole batch (or statistics of another batch), or any argument
        :func:`pgfast.policy_gradient` refuses.

    Examples
    --------
    >>> mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="4x4", horizon=50)
    >>> pi = pg.TabularSoftmax(16, 4)
    >>> parts = [pg.partial_gradient(pi, mdp=mdp, n=1000, seed=0, lo=lo, hi=hi)
    ...          for lo, hi in pg.shard_ranges(1000, 3)]
    >>> merged = pg.merge_partials(pi, parts)
    >>> whole = pg.policy_gradient(pi, mdp=mdp, n=1000, seed=0)
    >>> bool((merged.grad == whole.grad).all() and (merged.stderr == whole.stderr).all())
    True
    """
    require_instance(mdp, FiniteMDP, "mdp", "a pgfast.FiniteMDP")
    require_instance(policy, SoftmaxPolicy, "policy", "a pgfast policy")
    policy._check_fits(mdp)
    nn, sd, lo_i, hi_i, block = _shard(n, seed, lo, hi)
    kind = weights_kind(weights)
    with_se = as_bool(stderr, "stderr")
    reg = estimator_regularizer(regularizer, entropy)
    nthreads = as_threads(threads)
    policy = pinned(policy)
    tables = policy_tables(policy)
    if isinstance(reg, Entropy):  # the same transitions (so the same episodes) with the soft rewards
        mdp = soft_mdp(mdp, tables.probs, reg.tau)
    g, bkind, table = fused_baseline(policy, mdp, baseline, gamma, kind)
    pdig, mdig = _policy_digest(policy, tables), mdp_digest(mdp)
    stats = None
    if bkind in ("mean", "time"):
        stats = _statistics_nodes(statistics, nn, sd, pdig, mdig)
    elif statistics is not None:
        raise ValueError(f"statistics= is for the baselines 'mean' and 'time', not baseline={baseline!r}")
    spec = estimator_spec(tables, kind, None, g, bkind, table, nthreads)
    nodes, step_tables, exponent = _core.estimators.fused_partial(spec, mdp._mdp, nn, sd, with_se, lo_i // block,
                                                                  -(-hi_i // block), stats)
    options: tuple[tuple[str, Any], ...] = (
        ("weights", kind), ("baseline", bkind if bkind != "table" else array_digest(table)), ("gamma", g),
        ("stderr", with_se))
    if step_tables is not None and exponent is not None:
        options += (("exponent", int(exponent)),)
    if reg is not None:  # absent without one: the partials of unregularised estimates are unchanged
        options += (("entropy", reg.tau) if isinstance(reg, Entropy) else ("barrier", reg.lam),)
    return GradientPartial(nn, sd, lo_i, hi_i, options, pdig, mdig,
                           tuple((int(a), int(b), t, q, float(rs), float(rq), int(st)) for a, b, t, q, rs, rq, st in nodes),
                           step_tables)


def merge_partials(policy: SoftmaxPolicy, partials: Iterable[GradientPartial]) -> PolicyGradient:
    """Merge partial results that tile ``[0, n)`` into the fused policy gradient, bit for bit.

    Parameters
    ----------
    policy : SoftmaxPolicy
        The policy the partials were computed for (its tables map the merged sums to ``theta``).
    partials : iterable of GradientPartial
        Partials of one batch (same ``n``, seed, options, policy and MDP), in any order, that cover
        every trajectory exactly once.

    Returns
    -------
    PolicyGradient
        Equal, bit for bit, to :func:`pgfast.policy_gradient` with the same arguments (with a
        log-barrier, its exact term added here, once).

    Raises
    ------
    TypeError
        An item that is not a GradientPartial.
    ValueError
        No partials, partials of different batches, options, policies or MDPs, or partials that
        leave trajectories out or cover some twice.

    Examples
    --------
    >>> mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="4x4", horizon=50)
    >>> pi = pg.TabularSoftmax(16, 4)
    >>> parts = [pg.partial_gradient(pi, mdp=mdp, n=600, seed=1, lo=lo, hi=hi, stderr=False)
    ...          for lo, hi in [(256, 600), (0, 256)]]
    >>> bool((pg.merge_partials(pi, parts).grad == pg.policy_gradient(pi, mdp=mdp, n=600, seed=1, stderr=False).grad).all())
    True
    """
    require_instance(policy, SoftmaxPolicy, "policy", "a pgfast policy")
    parts: Sequence[GradientPartial] = list(partials) if not isinstance(partials, GradientPartial) else [partials]
    if not parts:
        raise ValueError("partials is empty: pass the partial results that tile [0, n)")
    for i, p in enumerate(parts):
        if not isinstance(p, GradientPartial):
            raise TypeError(f"partials[{i}] must be a pgfast.GradientPartial, got {type(p).__name__}")
    first = parts[0]
    for i, p in enumerate(parts[1:], 1):
        for field in ("n", "seed", "options", "mdp_digest", "policy_digest"):
            if getattr(p, field) != getattr(first, field):
                raise ValueError(f"partials[{i}] belongs to another batch or estimator: its {field} differs from partials[0]'s")
    policy = pinned(policy)
    tables = policy_tables(policy)
    if _policy_digest(policy, tables) != first.policy_digest:
        raise ValueError("the partials were computed for another policy (or another theta) than the one given")
    opts = dict(first.options)
    spec = estimator_spec(tables, str(opts["weights"]), None, float(opts["gamma"]), "none", None, 1)
    _, blocks = block_grid(first.n)
    nodes = _checked_nodes([node for p in sorted(parts, key=lambda q: q.lo) for node in p.nodes], "partials", 2)
    if any(len(node) != 7 for node in nodes):
        raise ValueError("partials: a node must have 7 fields (level, index, table, sumsq, return_sum, return_sumsq, steps)")
    with_se = bool(opts["stderr"])
    step_tables: list[NDArray[np.uint64]] | None = None
    if "exponent" in opts:  # the one-pass time baseline: each shard's exact per-step tables
        step_tables = []
        for p in parts:
            if not isinstance(p.step_tables, np.ndarray) or p.step_tables.dtype != np.uint64 or p.step_tables.ndim != 1:
                raise ValueError("partials: step_tables must be 1-D uint64 arrays (the one-pass time baseline's tables)")
            step_tables.append(p.step_tables)
    sums, sumsq, rs, rq, steps = _core.estimators.merge_partials(spec, nodes, blocks, with_se, step_tables,
                                                                 int(opts.get("exponent", 0)))
    est = gradient_result(policy, first.n, sums, sumsq, rs, rq, n_steps=int(steps), with_stderr=with_se,
                          scale=tables.scale)
    lam = opts.get("barrier", 0.0)  # the log-barrier's exact term, once for the whole batch
    return with_barrier(est, policy, tables.probs, LogBarrier(float(lam)).lam) if lam else est
