r"""Partial results of the fused estimator: shards of the trajectory range that merge bit for bit.

The fused :func:`pgfast.policy_gradient` sums its trajectories over a fixed grid of blocks
(the block size depends on ``n`` only) combined along one binary tree (see
:doc:`/guide/sampling`, "Reproducibility"). A shard that owns the whole blocks ``[lo, hi)`` of
that grid reduces them to the largest tree nodes inside its range; any set of shards that tiles
``[0, n)`` merges, node by node along the same tree, into the one-call result, bit for bit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import _core
from ._estimators import (
    PolicyGradient,
    Weights,
    estimator_spec,
    fused_baseline,
    gradient_result,
    policy_tables,
    weights_kind,
)
from ._mdp import FiniteMDP
from ._policy import SoftmaxPolicy, pinned
from ._validation import as_bool, as_int, as_seed, as_threads, require_instance


def _digest(*arrays: Any) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        arr = np.ascontiguousarray(a)
        h.update(str((arr.dtype.str, arr.shape)).encode())
        h.update(arr.tobytes())
    return h.hexdigest()


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
    nodes of the size of the policy's table, never per-trajectory data) and picklable. It
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
        The estimator's options: weights, baseline, gamma, stderr.
    policy_digest : str
        SHA-256 of the policy's tables (probabilities, features, parameters).
    mdp_digest : str
        SHA-256 of the MDP.
    nodes : tuple
        The tree nodes ``(level, index, table, sumsq, return_sum, return_sumsq, steps)``.

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

    def __repr__(self) -> str:
        return f"GradientPartial(n={self.n}, seed={self.seed}, lo={self.lo}, hi={self.hi}, nodes={len(self.nodes)})"


def _policy_digest(policy: SoftmaxPolicy, tables: Any) -> str:
    net_theta = policy.theta if tables.net is not None else None
    return _digest(np.frombuffer(type(policy).__name__.encode(), np.uint8), tables.probs, tables.features, net_theta)


def _mdp_digest(mdp: FiniteMDP) -> str:
    indptr, indices, probs, rewards = mdp.transitions
    return _digest(indptr, indices, probs, rewards, mdp.mu0, mdp.terminal,
                   np.array([mdp.n_states, mdp.n_actions, mdp.horizon]), np.array([mdp.gamma]))


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
    baseline : None, "exact" or a fitted ValueBaseline
        As in :func:`pgfast.policy_gradient`; the leave-one-out baselines ``"mean"`` and
        ``"time"`` need the statistics of the whole batch and are not offered by shards.
    gamma : float in [0, 1], optional
        Discount factor (default: the MDP's).
    stderr : bool
        Keep the statistics of the standard errors (default True).
    threads : int, optional
        Worker threads for this shard (default: every usable CPU); the result does not depend on it.

    Returns
    -------
    GradientPartial

    Raises
    ------
    ValueError
        ``lo``/``hi`` off the block grid or outside ``[0, n]``, a leave-one-out baseline, or
        any argument :func:`pgfast.policy_gradient` refuses.

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
    kind = weights_kind(weights)
    with_se = as_bool(stderr, "stderr")
    nthreads = as_threads(threads)
    policy = pinned(policy)
    tables = policy_tables(policy)
    g, bkind, table = fused_baseline(policy, mdp, baseline, gamma, kind)
    if bkind in ("mean", "time"):
        raise ValueError(
            f"baseline={baseline!r} needs the statistics of the whole batch; partial results take "
            "baseline None, 'exact' or a fitted ValueBaseline"
        )
    spec = estimator_spec(tables, kind, None, g, bkind, table, nthreads)
    nodes = _core.estimators.fused_partial(spec, mdp._mdp, nn, sd, with_se, lo_i // block, -(-hi_i // block))
    options = (("weights", kind), ("baseline", bkind if bkind != "table" else _digest(table)), ("gamma", g),
               ("stderr", with_se))
    return GradientPartial(nn, sd, lo_i, hi_i, options, _policy_digest(policy, tables), _mdp_digest(mdp),
                           tuple((int(a), int(b), t, q, float(rs), float(rq), int(st)) for a, b, t, q, rs, rq, st in nodes))


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
        Equal, bit for bit, to :func:`pgfast.policy_gradient` with the same arguments.

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
    nodes = [node for p in sorted(parts, key=lambda q: q.lo) for node in p.nodes]
    with_se = bool(opts["stderr"])
    sums, sumsq, rs, rq, steps = _core.estimators.merge_partials(spec, nodes, blocks, with_se)
    return gradient_result(policy, first.n, sums, sumsq, rs, rq, n_steps=int(steps), with_stderr=with_se)
