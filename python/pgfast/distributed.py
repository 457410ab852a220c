r"""Sharded policy-gradient estimates on a Ray cluster, equal bit for bit to the one-call estimate.

:func:`policy_gradient` cuts the trajectories ``[0, n)`` of a fused estimate into shards of whole
blocks (:func:`pgfast.shard_ranges`), computes each shard's :func:`pgfast.partial_gradient` in a
Ray task and merges the partials (:func:`pgfast.merge_partials`) into the result that
:func:`pgfast.policy_gradient` with ``mdp=, n=, seed=`` returns on one machine, bit for bit, for
every shard count, thread count and cluster. See :doc:`/guide/distributed`.

Ray is an optional dependency (``pip install "pgfast[ray]"``): it is imported when a function of
this module is called, never by ``import pgfast`` or ``import pgfast.distributed``.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

from . import _partials
from ._estimators import PolicyGradient, Weights, estimator_regularizer, fused_baseline, weights_kind
from ._mdp import FiniteMDP
from ._policy import SoftmaxPolicy
from ._regularizers import Regularizer
from ._validation import MAX_THREADS, as_bool, as_int, as_seed, require_instance

__all__ = ["auto_shards", "connect", "policy_gradient"]

DISPATCH_SHARE = 0.01
"""``shards="auto"`` keeps each task's fixed cost (dispatch, transfer, set-up) below this share of
its work."""

_POLL = 0.1  # seconds per ray.wait: a Ctrl-C is seen within about this long
_PILOT = 256  # trajectories of the first pilot that measures the cost of a trajectory (one block)
_PILOT_SECONDS = 0.01  # the pilot grows until it takes this long (or covers the batch)
_round_trips: dict[str, float] = {}  # seconds of an empty task's round trip, per Ray job


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ImportError('Ray is not installed: pip install "pgfast[ray]" (pgfast.distributed and '
                          'pg.sweep(..., backend="ray") run on Ray)') from None
    return ray


def connect(address: str | None = None) -> Any:
    """Ray, initialised: the instance this process runs if there is one, else ``ray.init(address=address)``.

    Every function of pgfast that runs on Ray (:func:`policy_gradient`, ``pg.sweep(...,
    backend="ray")``) connects through it, so that they follow one rule: a Ray instance this
    process already started (or joined) is used as it is and ``address`` is ignored; otherwise
    ``ray.init(address=address)`` starts one or joins one with Ray's rules (``None``: the cluster
    that ``ray start`` runs on this machine if there is one, else a new local instance; ``"auto"``:
    the cluster on this machine, or an error; ``"ray://host:10001"`` or ``"host:6379"``: that
    cluster; ``"local"``: always a new local instance).

    Parameters
    ----------
    address : str, optional
        Where the cluster is, as :func:`ray.init` takes it.

    Returns
    -------
    module
        The ``ray`` module, initialised.

    Examples
    --------
    >>> from pgfast import distributed
    >>> ray = distributed.connect("local")   # doctest: +SKIP
    >>> ray.cluster_resources()["CPU"]       # doctest: +SKIP
    2.0
    """
    ray = _ray()
    if not ray.is_initialized():
        ray.init(address=address)
    return ray


def _assigned_threads() -> int:
    """The CPUs Ray assigned the running task (at least 1)."""
    cpus = _ray().get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    return max(1, min(MAX_THREADS, int(round(cpus))))


def _statistics_shard(policy: SoftmaxPolicy, mdp: FiniteMDP, n: int, seed: int, lo: int, hi: int,
                      regularizer: Regularizer | None = None) -> Any:
    """Task body of round one of the leave-one-out baselines (of the soft rewards with an entropy bonus)."""
    return _partials.partial_statistics(policy, mdp=mdp, n=n, seed=seed, lo=lo, hi=hi, threads=_assigned_threads(),
                                        regularizer=regularizer)


def _gradient_shard(policy: SoftmaxPolicy, mdp: FiniteMDP, n: int, seed: int, lo: int, hi: int,
                    options: dict[str, Any], statistics: Any) -> Any:
    """Task body of a gradient shard."""
    return _partials.partial_gradient(policy, mdp=mdp, n=n, seed=seed, lo=lo, hi=hi, threads=_assigned_threads(),
                                      statistics=statistics, **options)


def _empty() -> None:
    """Task body of the round-trip measurement."""


_remote: dict[str, Any] = {}


def _task(ray: Any, fn: Any) -> Any:
    """``ray.remote(fn)``, made once per process."""
    if fn.__name__ not in _remote:
        _remote[fn.__name__] = ray.remote(fn)
    return _remote[fn.__name__]


def _gather(ray: Any, refs: list[Any]) -> list[Any]:
    """``ray.get(refs)``, waiting in short ``ray.wait`` rounds so that a Ctrl-C is seen within
    about ``_POLL`` seconds; on KeyboardInterrupt the outstanding tasks are cancelled (their
    workers stopped) before the exception goes on."""
    try:
        pending = list(refs)
        while pending:
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=_POLL)
        return list(ray.get(refs))
    except KeyboardInterrupt:
        for ref in refs:
            with contextlib.suppress(Exception):  # a task that finished or was cancelled already
                ray.cancel(ref, force=True)
        raise


def _node_cpus(ray: Any) -> list[int]:
    """The CPUs of each live node of the cluster."""
    cpus = [int(node.get("Resources", {}).get("CPU", 0)) for node in ray.nodes() if node.get("Alive")]
    return [c for c in cpus if c > 0]


def _round_trip(ray: Any) -> float:
    """Seconds of an empty task's round trip on this cluster (the least of three, after one that
    may start a worker), measured once per Ray job."""
    key = ray.get_runtime_context().get_job_id()
    if key not in _round_trips:
        empty = _task(ray, _empty)
        _gather(ray, [empty.remote()])
        best = math.inf
        for _ in range(3):
            t0 = time.perf_counter()
            _gather(ray, [empty.remote()])
            best = min(best, time.perf_counter() - t0)
        _round_trips[key] = best
    return _round_trips[key]


def auto_shards(policy: SoftmaxPolicy, *, mdp: FiniteMDP, n: int, seed: int, weights: Weights = "reward_to_go",
                baseline: Any = None, gamma: float | None = None, stderr: bool = True, threads_per_shard: int = 1,
                round_trip: float, cpus: int) -> int:
    r"""The shard count ``shards="auto"`` picks: as many as fit, each with work enough.

    A shard's fixed cost :math:`c` is the round trip of an empty task (``round_trip``) plus what a
    shard computes whatever its size (the policy's tables and the fingerprints of the policy and
    the MDP: a :func:`pgfast.partial_gradient` of one trajectory, timed here). The work :math:`W`
    is the seconds of one thread for the whole batch: the per-trajectory cost of a pilot (the
    batch's first trajectories, from 256 up by factors of 4 until the pilot takes 10 ms or
    covers the batch), times ``n`` (twice that for the leave-one-out baselines, which simulate
    the batch twice). With :math:`t` threads per shard, :math:`k`
    shards cost :math:`c` each against :math:`W / (k t)` of work, so

    .. math::
        k = \max\bigl(1, \min(\lfloor W / (c\,t) \cdot 0.01 \rfloor,\; \text{cpus},\; \text{blocks})\bigr)

    keeps the fixed costs under 1 % of the work (``DISPATCH_SHARE``), runs no more shards than
    the cluster runs at once (``cpus``: the tasks of ``threads_per_shard`` CPUs that fit on its
    nodes) and no more than the block grid has blocks (:func:`pgfast.block_grid`: at most 64).

    Parameters
    ----------
    policy : SoftmaxPolicy
        The policy of the estimate.
    mdp : FiniteMDP
        The MDP of the estimate.
    n : int >= 1
        Number of trajectories.
    seed : int
        Seed of the batch (the pilot draws its first block).
    weights, baseline, gamma, stderr
        As in :func:`pgfast.policy_gradient`.
    threads_per_shard : int >= 1
        Threads of each shard.
    round_trip : float >= 0
        Seconds of an empty task's round trip on the cluster.
    cpus : int >= 1
        Shards of ``threads_per_shard`` CPUs the cluster runs at once.

    Returns
    -------
    int
        The shard count, in ``[1, min(cpus, blocks)]``.

    Examples
    --------
    >>> mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="8x8", horizon=200)
    >>> pi = pg.TabularSoftmax(64, 4)
    >>> from pgfast import distributed
    >>> distributed.auto_shards(pi, mdp=mdp, n=1000, seed=0, round_trip=0.002, cpus=8)  # too little work
    1
    >>> distributed.auto_shards(pi, mdp=mdp, n=10**8, seed=0, round_trip=0.002, cpus=8)  # capped by the CPUs
    8
    """
    tps = as_int(threads_per_shard, "threads_per_shard", minimum=1, maximum=MAX_THREADS)
    cpus = as_int(cpus, "cpus", minimum=1)
    nn = as_int(n, "n", minimum=1, maximum=2**62)
    _, blocks = _partials.block_grid(nn)
    m = min(nn, _PILOT)
    kind = weights_kind(weights)
    loo = isinstance(baseline, str) and baseline in ("mean", "time")
    # The pilot runs without the leave-one-out statistics: the second pass costs what the first does.
    opts: dict[str, Any] = {"weights": kind, "baseline": None if loo else baseline, "gamma": gamma, "stderr": stderr}

    def shard_seconds(size: int) -> float:
        t0 = time.perf_counter()
        _partials.partial_gradient(policy, mdp=mdp, n=size, seed=seed, lo=0, hi=size, threads=1, **opts)
        return time.perf_counter() - t0

    fixed = min(shard_seconds(1), shard_seconds(1))  # the first call also warms the caches
    pilot = shard_seconds(m)
    while pilot < _PILOT_SECONDS and m < nn:  # long enough to time: 4x the trajectories
        m = min(nn, 4 * m)
        pilot = shard_seconds(m)
    per_trajectory = max(pilot - fixed, 0.0) / m
    work = per_trajectory * nn * (2 if loo else 1)
    cost = float(round_trip) + fixed
    k = int(DISPATCH_SHARE * work / (cost * tps)) if cost > 0 else blocks
    return max(1, min(k, cpus, blocks))


def policy_gradient(
    policy: SoftmaxPolicy,
    *,
    mdp: FiniteMDP,
    n: int,
    seed: int | None,
    weights: Weights = "reward_to_go",
    baseline: Any = None,
    gamma: float | None = None,
    stderr: bool = True,
    shards: int | str = "auto",
    threads_per_shard: int | None = None,
    address: str | None = None,
    max_retries: int = 3,
    regularizer: Regularizer | None = None,
    entropy: float | None = None,
) -> PolicyGradient:
    r"""The fused policy gradient of ``n`` trajectories, computed in shards on a Ray cluster.

    Equal, bit for bit, to ``pgfast.policy_gradient(policy, mdp=mdp, n=n, seed=seed, ...)`` with
    the same estimator options, for every shard count, thread count and cluster: the batch's
    sums go over a fixed grid of blocks combined along one fixed tree (:doc:`/guide/sampling`,
    "Reproducibility"), each shard owns whole blocks, and the partials merge along that tree
    (:func:`pgfast.partial_gradient`, :func:`pgfast.merge_partials`).

    The policy, the MDP and the options (a fitted ValueBaseline's table among them) go to Ray's
    object store once (``ray.put``); each shard is a Ray task
    that gets them by reference, requests ``threads_per_shard`` CPUs and runs that many threads
    (the CPUs Ray assigned it), and returns its partial result (a few tree nodes of the policy's
    size). The leave-one-out baselines ``"mean"`` and ``"time"`` take two rounds: every shard's
    statistics (:func:`pgfast.partial_statistics`), then every shard's gradient given all of them.

    Connection: if Ray is initialised in this process, its cluster is used (``address`` is then
    ignored); otherwise ``ray.init(address=address)`` is called, with Ray's rules: ``None`` joins
    the cluster that the ``RAY_ADDRESS`` environment variable names or that ``ray start`` runs on
    this machine, and else starts a local Ray instance with every CPU (a few seconds, once per
    process: it stays up for later calls); ``"local"`` always starts a local instance;
    ``"auto"`` joins the cluster that ``ray start`` runs on this machine; ``"HOST:PORT"`` joins
    that cluster's head node. See :doc:`/guide/distributed`.

    Faults: a task whose worker or node dies is run again (up to ``max_retries`` times), and as a
    shard is a pure function of ``(policy, mdp, n, seed, lo, hi)`` the result keeps its bits.
    Ctrl-C while waiting cancels the outstanding tasks (their workers are stopped) and raises
    ``KeyboardInterrupt`` within a fraction of a second. The arguments are checked here before
    any task starts; an error raised inside a shard is not retried and reaches the caller as
    Ray's task error, an instance of the original exception class. Sums beyond the float64 range
    are refused with a ValueError when the partials merge.

    Parameters
    ----------
    policy : SoftmaxPolicy
        The policy that samples the trajectories.
    mdp : FiniteMDP
        The MDP to sample.
    n : int >= 1
        Number of trajectories.
    seed : int or None
        Seed of the batch (``None``: fresh entropy drawn here, shared by every shard).
    weights : {"reward_to_go", "return"}
        As in :func:`pgfast.policy_gradient`.
    baseline : None, {"mean", "time", "exact"} or a fitted ValueBaseline
        As in :func:`pgfast.policy_gradient`'s fused form.
    gamma : float in [0, 1], optional
        Discount factor (default: the MDP's).
    stderr : bool
        Compute the gradient's standard errors (default True).
    shards : "auto" or int >= 1
        Number of tasks. ``"auto"`` (default) picks as many as keep each task's fixed cost (the
        round trip of a task, measured once per Ray job, and a shard's set-up) under 1 % of its
        work, at most the shards of ``threads_per_shard`` CPUs the cluster runs at once, and at
        most the blocks of the batch's grid (:func:`pgfast.block_grid`: 64 at most, so 64 is
        the most shards any estimate uses); see :func:`auto_shards`. An int asks for that many
        (fewer when the grid has fewer blocks: :func:`pgfast.shard_ranges`).
    threads_per_shard : int, optional
        CPUs each task requests and threads it runs (default 1); at most the CPUs of the
        largest node.
    address : str, optional
        Where to find the cluster when Ray is not initialised yet (see above).
    max_retries : int >= 0
        Times a task whose worker or node died is run again (default 3). Errors raised by the
        estimator itself are not retried.
    regularizer : Entropy or LogBarrier, optional
        As in :func:`pgfast.policy_gradient`: each shard samples the soft rewards of the entropy
        bonus (both rounds of the leave-one-out baselines), and the log-barrier's exact term is
        added once, after the merge.
    entropy : float >= 0, optional
        ``regularizer=pgfast.Entropy(entropy)``.

    Returns
    -------
    PolicyGradient
        Equal, bit for bit, to :func:`pgfast.policy_gradient` with the same arguments.

    Raises
    ------
    ImportError
        Ray is not installed.
    TypeError
        Arguments of the wrong type.
    ValueError
        Any argument :func:`pgfast.policy_gradient` refuses, ``shards`` neither ``"auto"`` nor a
        positive int, ``threads_per_shard`` above the CPUs of every node, or a negative
        ``max_retries``.
    KeyboardInterrupt
        Ctrl-C while the shards run (they are cancelled).

    Examples
    --------
    >>> from pgfast import distributed
    >>> mdp = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="8x8", horizon=200)
    >>> pi = pg.TabularSoftmax(64, 4, theta=np.random.default_rng(0).normal(size=(64, 4)))
    >>> est = distributed.policy_gradient(pi, mdp=mdp, n=20_000, seed=0, baseline="time", shards=3)
    >>> local = pg.policy_gradient(pi, mdp=mdp, n=20_000, seed=0, baseline="time")
    >>> bool((est.grad == local.grad).all() and (est.stderr == local.stderr).all() and est.value == local.value)
    True
    """
    require_instance(mdp, FiniteMDP, "mdp", "a pgfast.FiniteMDP")
    require_instance(policy, SoftmaxPolicy, "policy", "a pgfast policy")
    policy._check_fits(mdp)
    nn = as_int(n, "n", minimum=1, maximum=2**62)
    sd = as_seed(seed)
    kind = weights_kind(weights)
    with_se = as_bool(stderr, "stderr")
    reg = estimator_regularizer(regularizer, entropy)
    g, bkind, _ = fused_baseline(policy, mdp, baseline, gamma, kind)  # refuses what the fused form refuses
    if isinstance(shards, str):
        if shards != "auto":
            raise ValueError(f"shards must be 'auto' or an int >= 1, got {shards!r}")
    else:
        as_int(shards, "shards", minimum=1)
    tps = 1 if threads_per_shard is None else as_int(threads_per_shard, "threads_per_shard", minimum=1, maximum=MAX_THREADS)
    if address is not None and not isinstance(address, str):
        raise TypeError(f"address must be a str (such as 'auto' or 'HOST:PORT') or None, got {type(address).__name__}")
    retries = as_int(max_retries, "max_retries", minimum=0)
    options: dict[str, Any] = {"weights": kind, "baseline": baseline, "gamma": g, "stderr": with_se}
    if reg is not None:  # the pilot of shards="auto" times the estimator without it (its extra cost is fixed)
        options["regularizer"] = reg

    ray = connect(address)
    node_cpus = _node_cpus(ray)
    if not node_cpus or tps > max(node_cpus):
        raise ValueError(f"threads_per_shard must be at most the CPUs of the cluster's largest node "
                         f"({max(node_cpus, default=0)}), got {tps}")
    if shards == "auto":
        fit = sum(c // tps for c in node_cpus)
        k = auto_shards(policy, mdp=mdp, n=nn, seed=sd, threads_per_shard=tps, round_trip=_round_trip(ray), cpus=fit,
                        **{key: value for key, value in options.items() if key != "regularizer"})
    else:
        k = int(shards)
    ranges = _partials.shard_ranges(nn, k)

    policy_ref, mdp_ref, options_ref = ray.put(policy), ray.put(mdp), ray.put(options)  # a ValueBaseline's table too
    task_options = {"num_cpus": tps, "max_retries": retries, "retry_exceptions": False}
    statistics_ref = None
    if bkind in ("mean", "time"):
        stats_task = _task(ray, _statistics_shard).options(**task_options)
        stats = _gather(ray, [stats_task.remote(policy_ref, mdp_ref, nn, sd, lo, hi, reg) for lo, hi in ranges])
        statistics_ref = ray.put(stats)
    gradient_task = _task(ray, _gradient_shard).options(**task_options)
    parts = _gather(ray, [gradient_task.remote(policy_ref, mdp_ref, nn, sd, lo, hi, options_ref, statistics_ref)
                          for lo, hi in ranges])
    return _partials.merge_partials(policy, parts)
