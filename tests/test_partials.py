"""Partial results of the fused estimator: shards of [0, n) merge into the one-call result, bit
for bit, whatever the split, the order of the merge and the threads of each shard."""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

import numpy as np
import pytest

import pgfast as pg
from helpers import frozenlake_8x8, frozenlake_policy




def _same(a: pg.PolicyGradient, b: pg.PolicyGradient) -> bool:
    return (np.array_equal(a.grad, b.grad) and np.array_equal(a.stderr, b.stderr, equal_nan=True)
            and a.value == b.value and a.value_stderr == b.value_stderr and a.n_steps == b.n_steps and a.n == b.n)


def _random_split(n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    block, blocks = pg.block_grid(n)
    k = int(rng.integers(1, blocks + 1))
    cuts = sorted(rng.choice(np.arange(1, blocks), size=k - 1, replace=False).tolist()) if k > 1 else []
    edges = [0, *cuts, blocks]
    return [(edges[j] * block, min(n, edges[j + 1] * block)) for j in range(len(edges) - 1)]


@pytest.mark.parametrize("kind", ["tabular", "linear", "mlp"])
@pytest.mark.parametrize("options", [{}, {"stderr": False}, {"weights": "return"}, {"baseline": "exact"}],
                         ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_random_splits_merge_bit_for_bit(kind: str, options: dict[str, Any]) -> None:
    rng = np.random.default_rng(11)
    mdp, pi = frozenlake_8x8(), frozenlake_policy(kind, rng)
    n = 5003  # 20 blocks of 256, the last one short
    whole = pg.policy_gradient(pi, mdp=mdp, n=n, seed=9, **options)
    for _ in range(4):
        ranges = _random_split(n, rng)
        parts = [pg.partial_gradient(pi, mdp=mdp, n=n, seed=9, lo=lo, hi=hi, threads=int(rng.integers(1, 8)), **options)
                 for lo, hi in ranges]
        order = rng.permutation(len(parts))
        merged = pg.merge_partials(pi, [pickle.loads(pickle.dumps(parts[i])) for i in order])
        assert _same(merged, whole), ranges


def test_time_baseline_two_rounds_where_the_tables_are_large() -> None:
    """The time baseline without standard errors on an MDP with H S A > 131072 (FrozenLake 8x8 with
    H = 600): no per-step tables, the statistics round and the gradient round as for "mean"."""
    rng = np.random.default_rng(12)
    mdp, pi = frozenlake_8x8(600), frozenlake_policy("tabular", rng)
    n = 3001
    whole = pg.policy_gradient(pi, mdp=mdp, n=n, seed=4, baseline="time", stderr=False)
    ranges = _random_split(n, rng)
    stats = [pg.partial_statistics(pi, mdp=mdp, n=n, seed=4, lo=lo, hi=hi) for lo, hi in ranges]
    parts = [pg.partial_gradient(pi, mdp=mdp, n=n, seed=4, lo=lo, hi=hi, baseline="time", stderr=False,
                                 statistics=stats, threads=2) for lo, hi in ranges]
    assert all(p.step_tables is None for p in parts)
    assert _same(pg.merge_partials(pi, parts[::-1]), whole), ranges


def test_one_pass_partials_checked_when_merged() -> None:
    rng = np.random.default_rng(5)
    mdp, pi = frozenlake_8x8(), frozenlake_policy("tabular", rng)
    n = 3000
    ranges = pg.shard_ranges(n, 2)
    stats = [pg.partial_statistics(pi, mdp=mdp, n=n, seed=2, lo=lo, hi=hi) for lo, hi in ranges]
    parts = [pg.partial_gradient(pi, mdp=mdp, n=n, seed=2, lo=lo, hi=hi, baseline="time", stderr=False,
                                 statistics=stats) for lo, hi in ranges]
    tables = parts[0].step_tables
    assert tables is not None and tables.dtype == np.uint64 and tables.size == 2 * mdp.horizon * 64 * 4
    assert all(node[2].size == 0 for p in parts for node in p.nodes)  # the tables carry the sums
    with_se = pg.partial_gradient(pi, mdp=mdp, n=n, seed=2, lo=ranges[1][0], hi=ranges[1][1], baseline="time",
                                  statistics=stats)
    with pytest.raises(ValueError, match="options differs"):
        pg.merge_partials(pi, [parts[0], with_se])
    with pytest.raises(ValueError, match="leave trajectories out"):
        pg.merge_partials(pi, parts[:1])
    for bad in (tables.astype(np.float64), tables[:-2], tables.reshape(2, -1)):
        edited = dataclasses.replace(parts[1], step_tables=bad)
        with pytest.raises(ValueError, match="step_tables|per-step tables"):
            pg.merge_partials(pi, [parts[0], edited])


def test_partials_are_small_and_checked_when_merged() -> None:
    rng = np.random.default_rng(3)
    mdp, pi = frozenlake_8x8(), frozenlake_policy("tabular", rng)
    n = 4000
    ranges = pg.shard_ranges(n, 3)
    assert ranges[0][0] == 0 and ranges[-1][1] == n and all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    parts = [pg.partial_gradient(pi, mdp=mdp, n=n, seed=1, lo=lo, hi=hi) for lo, hi in ranges]
    block, blocks = pg.block_grid(n)
    for p in parts:  # at most two nodes per level of the tree, each of the policy's size
        assert len(p.nodes) <= 2 * int(np.ceil(np.log2(blocks)) + 1)
        assert all(node[2].size == pi.n_params for node in p.nodes)
    with pytest.raises(ValueError, match="leave trajectories out"):
        pg.merge_partials(pi, parts[:2])
    with pytest.raises(ValueError, match="same trajectories|overlap"):
        pg.merge_partials(pi, [*parts, parts[1]])
    other_seed = pg.partial_gradient(pi, mdp=mdp, n=n, seed=2, lo=ranges[1][0], hi=ranges[1][1])
    with pytest.raises(ValueError, match="seed differs"):
        pg.merge_partials(pi, [parts[0], other_seed, parts[2]])
    other_opts = pg.partial_gradient(pi, mdp=mdp, n=n, seed=1, lo=ranges[1][0], hi=ranges[1][1], weights="return")
    with pytest.raises(ValueError, match="options differs"):
        pg.merge_partials(pi, [parts[0], other_opts, parts[2]])
    pi2 = frozenlake_policy("tabular", rng)
    other_policy = pg.partial_gradient(pi2, mdp=mdp, n=n, seed=1, lo=ranges[1][0], hi=ranges[1][1])
    with pytest.raises(ValueError, match="policy_digest differs"):
        pg.merge_partials(pi, [parts[0], other_policy, parts[2]])
    with pytest.raises(ValueError, match="another policy"):
        pg.merge_partials(pi2, parts)
    mdp2 = pg.FiniteMDP.from_gymnasium("FrozenLake-v1", map_name="8x8", horizon=121)
    other_mdp = pg.partial_gradient(pi, mdp=mdp2, n=n, seed=1, lo=ranges[1][0], hi=ranges[1][1])
    with pytest.raises(ValueError, match="mdp_digest differs"):
        pg.merge_partials(pi, [parts[0], other_mdp, parts[2]])
    with pytest.raises(ValueError, match="empty"):
        pg.merge_partials(pi, [])
    with pytest.raises(TypeError, match="partials\\[1\\]"):
        pg.merge_partials(pi, [parts[0], "x"])  # type: ignore[list-item]


def test_bad_shard_arguments() -> None:
    mdp, pi = frozenlake_8x8(), pg.TabularSoftmax(64, 4)
    with pytest.raises(ValueError, match="block grid"):
        pg.partial_gradient(pi, mdp=mdp, n=1000, seed=0, lo=0, hi=300)
    with pytest.raises(ValueError, match="block grid"):
        pg.partial_gradient(pi, mdp=mdp, n=1000, seed=0, lo=100, hi=1000)
    with pytest.raises(ValueError, match="lo must be below hi"):
        pg.partial_gradient(pi, mdp=mdp, n=1000, seed=0, lo=512, hi=512)
    with pytest.raises(ValueError, match="hi"):
        pg.partial_gradient(pi, mdp=mdp, n=1000, seed=0, lo=0, hi=1001)
    with pytest.raises(ValueError, match="seed"):
        pg.partial_gradient(pi, mdp=mdp, n=1000, seed=None, lo=0, hi=1000)  # type: ignore[arg-type]
    for b in ("mean", "time"):
        with pytest.raises(ValueError, match="whole batch"):
            pg.partial_gradient(pi, mdp=mdp, n=1000, seed=0, lo=0, hi=1000, baseline=b)
    with pytest.raises(ValueError, match="shards"):
        pg.shard_ranges(1000, 0)
    with pytest.raises(ValueError, match="n"):
        pg.block_grid(0)


def test_block_grid_depends_on_n_only() -> None:
    for n in (1, 255, 256, 257, 16384, 16385, 100_003, 10**9):
        block, blocks = pg.block_grid(n)
        assert block >= 256 and block & (block - 1) == 0 and blocks <= 64
        assert (blocks - 1) * block < n <= blocks * block
        assert block == 256 or (n + block // 2 - 1) // (block // 2) > 64  # the smallest such block
    assert pg.shard_ranges(100, 8) == [(0, 100)]  # one block: one shard


@pytest.mark.parametrize("kind", ["tabular", "linear", "mlp"])
@pytest.mark.parametrize("options", [{"baseline": "time"}, {"baseline": "time", "stderr": False},
                                     {"baseline": "mean"}, {"baseline": "mean", "weights": "return"}],
                         ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_leave_one_out_baselines_in_two_rounds(kind: str, options: dict[str, Any]) -> None:
    # round 1: each shard's statistics; round 2: each shard's gradient given all of them
    rng = np.random.default_rng(12)
    mdp, pi = frozenlake_8x8(), frozenlake_policy(kind, rng)
    n = 5003
    whole = pg.policy_gradient(pi, mdp=mdp, n=n, seed=5, **options)
    for _ in range(3):
        ranges = _random_split(n, rng)
        stats = [pg.partial_statistics(pi, mdp=mdp, n=n, seed=5, lo=lo, hi=hi, threads=int(rng.integers(1, 8)))
                 for lo, hi in ranges]
        stats = [pickle.loads(pickle.dumps(s)) for s in stats]
        parts = [pg.partial_gradient(pi, mdp=mdp, n=n, seed=5, lo=lo, hi=hi, statistics=stats[::-1],
                                     threads=int(rng.integers(1, 8)), **options)
                 for lo, hi in ranges]
        # the time baseline without standard errors runs in one pass here (H S A = 30,720): its
        # partials carry the exact per-step tables
        assert all((p.step_tables is not None) == (options == {"baseline": "time", "stderr": False}) for p in parts)
        assert _same(pg.merge_partials(pi, parts[::-1]), whole), ranges


def test_statistics_are_checked() -> None:
    rng = np.random.default_rng(4)
    mdp, pi = frozenlake_8x8(), frozenlake_policy("tabular", rng)
    n = 3000
    ranges = pg.shard_ranges(n, 3)
    stats = [pg.partial_statistics(pi, mdp=mdp, n=n, seed=1, lo=lo, hi=hi) for lo, hi in ranges]
    lo, hi = ranges[0]
    with pytest.raises(ValueError, match="statistics="):
        pg.partial_gradient(pi, mdp=mdp, n=n, seed=1, lo=lo, hi=hi, baseline="time")
    with pytest.raises(ValueError, match="leave trajectories out"):
        pg.partial_gradient(pi, mdp=mdp, n=n, seed=1, lo=lo, hi=hi, baseline="time", statistics=stats[:2])
    with pytest.raises(ValueError, match="same trajectories|overlap"):
        pg.partial_gradient(pi, mdp=mdp, n=n, seed=1, lo=lo, hi=hi, baseline="time", statistics=[*stats, stats[0]])
    other = pg.partial_statistics(pi, mdp=mdp, n=n, seed=2, lo=ranges[1][0], hi=ranges[1][1])
    with pytest.raises(ValueError, match="seed differs"):
        pg.partial_gradient(pi, mdp=mdp, n=n, seed=1, lo=lo, hi=hi, baseline="mean", statistics=[stats[0], other, stats[2]])
    with pytest.raises(ValueError, match="not baseline=None"):
        pg.partial_gradient(pi, mdp=mdp, n=n, seed=1, lo=lo, hi=hi, statistics=stats)
    with pytest.raises(TypeError, match="statistics\\[0\\]"):
        pg.partial_gradient(pi, mdp=mdp, n=n, seed=1, lo=lo, hi=hi, baseline="time", statistics=["x"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="block grid"):
        pg.partial_statistics(pi, mdp=mdp, n=n, seed=1, lo=1, hi=hi)


def test_partials_edited_by_hand_are_refused() -> None:
    # a GradientPartial is a plain dataclass: nodes made or edited by hand are checked before the
    # C++ merge reads them (a ValueError naming the field, never a crash or a cast error)
    import dataclasses

    mdp, pi = frozenlake_8x8(), pg.TabularSoftmax(64, 4)
    parts = [pg.partial_gradient(pi, mdp=mdp, n=2000, seed=0, lo=lo, hi=hi) for lo, hi in pg.shard_ranges(2000, 2)]
    stats = [pg.partial_statistics(pi, mdp=mdp, n=2000, seed=0, lo=lo, hi=hi) for lo, hi in pg.shard_ranges(2000, 2)]
    lv, ix, t, q, rs, rq, st = parts[0].nodes[0]
    for node, match in [((lv, 2**62, t, q, rs, rq, st), "index"), ((lv, 2**70, t, q, rs, rq, st), "index"),
                        ((70, ix, t, q, rs, rq, st), "level"), ((-1, ix, t, q, rs, rq, st), "level"),
                        ((2**40, ix, t, q, rs, rq, st), "level"), ((lv, ix, "x", q, rs, rq, st), "1-D array"),
                        ((lv, ix, t.reshape(2, -1), q, rs, rq, st), "1-D array"), ((lv, ix, t, q, rs, rq), "7 fields"),
                        ((lv, ix, t, q, float("nan"), rq, st), "must be a number, got nan"), ((lv, ix, t[:3], q, rs, rq, st), "size"),
                        ((lv, ix + 1, t, q, rs, rq, st), "same trajectories|overlap|leave")]:
        edited = dataclasses.replace(parts[0], nodes=(node, *parts[0].nodes[1:]))
        with pytest.raises(ValueError, match=match):
            pg.merge_partials(pi, [edited, parts[1]])
    slv, six, c, e = stats[0].nodes[0]
    edited_stats = dataclasses.replace(stats[0], nodes=((slv, 2**70, c, e), *stats[0].nodes[1:]))
    with pytest.raises(ValueError, match="index"):
        pg.partial_gradient(pi, mdp=mdp, n=2000, seed=0, lo=0, hi=1024, baseline="time", statistics=[edited_stats, stats[1]])


def test_merging_partials_whose_sums_overflowed_reports_the_overflow() -> None:
    # rewards near the float64 limit: the merge says what overflowed, as the one-call path does
    P = np.full((2, 1, 2), 0.5)
    mdp = pg.FiniteMDP(P, np.full((2, 1), 1e308), [0.5, 0.5], horizon=4)
    pi = pg.TabularSoftmax(2, 1)
    with pytest.raises(ValueError, match="overflowed float64"):
        pg.policy_gradient(pi, mdp=mdp, n=600, seed=0)
    parts = [pg.partial_gradient(pi, mdp=mdp, n=600, seed=0, lo=lo, hi=hi) for lo, hi in pg.shard_ranges(600, 2)]
    with pytest.raises(ValueError, match="overflowed float64"):
        pg.merge_partials(pi, parts)


@pytest.mark.parametrize("kind", ["tabular", "mlp"])
@pytest.mark.parametrize("options", [{"entropy": 0.1}, {"entropy": 0.1, "baseline": "exact"},
                                     {"entropy": 0.1, "baseline": "time"}, {"entropy": 0.1, "baseline": "time", "stderr": False},
                                     {"entropy": 0.1, "baseline": "mean", "weights": "return"},
                                     {"regularizer": pg.LogBarrier(0.01)},
                                     {"regularizer": pg.LogBarrier(0.01), "baseline": "time"}],
                         ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_regularised_shards_merge_to_the_one_call_bits(kind: str, options: dict[str, Any]) -> None:
    """The entropy bonus in each shard's soft rewards (both rounds of the leave-one-out baselines),
    the log-barrier's exact term added once, after the merge."""
    rng = np.random.default_rng(13)
    mdp, pi = frozenlake_8x8(), frozenlake_policy(kind, rng)
    n = 5003
    reg = {k: v for k, v in options.items() if k in ("entropy", "regularizer")}
    whole = pg.policy_gradient(pi, mdp=mdp, n=n, seed=6, **options)
    plain = pg.policy_gradient(pi, mdp=mdp, n=n, seed=6, **{k: v for k, v in options.items() if k not in reg})
    assert not np.array_equal(whole.grad, plain.grad)  # the regulariser changes the estimate
    loo = options.get("baseline") in ("mean", "time")
    for _ in range(3):
        ranges = _random_split(n, rng)
        stats = ([pg.partial_statistics(pi, mdp=mdp, n=n, seed=6, lo=lo, hi=hi, threads=int(rng.integers(1, 8)), **reg)
                  for lo, hi in ranges] if loo else None)
        parts = [pg.partial_gradient(pi, mdp=mdp, n=n, seed=6, lo=lo, hi=hi, statistics=stats,
                                     threads=int(rng.integers(1, 8)), **options) for lo, hi in ranges]
        merged = pg.merge_partials(pi, [pickle.loads(pickle.dumps(p)) for p in parts[::-1]])
        assert _same(merged, whole), ranges


def test_regularised_partials_are_checked() -> None:
    rng = np.random.default_rng(14)
    mdp, pi = frozenlake_8x8(), frozenlake_policy("tabular", rng)
    n = 3000
    ranges = pg.shard_ranges(n, 2)
    (lo0, hi0), (lo1, hi1) = ranges
    soft = pg.partial_gradient(pi, mdp=mdp, n=n, seed=1, lo=lo0, hi=hi0, entropy=0.1)
    # shards of another temperature, or without the bonus, belong to another estimate
    for other in ({"entropy": 0.2}, {}, {"regularizer": pg.LogBarrier(0.1)}):
        part = pg.partial_gradient(pi, mdp=mdp, n=n, seed=1, lo=lo1, hi=hi1, **other)
        with pytest.raises(ValueError, match="belongs to another batch or estimator"):
            pg.merge_partials(pi, [soft, part])
    # the leave-one-out statistics must be of the same soft rewards
    plain_stats = [pg.partial_statistics(pi, mdp=mdp, n=n, seed=1, lo=lo, hi=hi) for lo, hi in ranges]
    with pytest.raises(ValueError, match="mdp_digest differs"):
        pg.partial_gradient(pi, mdp=mdp, n=n, seed=1, lo=lo0, hi=hi0, baseline="mean", statistics=plain_stats,
                            entropy=0.1)
    # a log-barrier does not change the rewards: the plain statistics serve
    pg.partial_gradient(pi, mdp=mdp, n=n, seed=1, lo=lo0, hi=hi0, baseline="mean", statistics=plain_stats,
                        regularizer=pg.LogBarrier(0.1))
    with pytest.raises(ValueError, match="either entropy=tau or regularizer="):
        pg.partial_gradient(pi, mdp=mdp, n=n, seed=1, lo=lo0, hi=hi0, entropy=0.1, regularizer=pg.Entropy(0.1))
    with pytest.raises(ValueError, match="entropy must be a finite temperature"):
        pg.partial_statistics(pi, mdp=mdp, n=n, seed=1, lo=lo0, hi=hi0, entropy=-1.0)
    # a strength of 0 is the unregularised estimate: the same partial
    zero = pg.partial_gradient(pi, mdp=mdp, n=n, seed=1, lo=lo0, hi=hi0, entropy=0.0)
    none = pg.partial_gradient(pi, mdp=mdp, n=n, seed=1, lo=lo0, hi=hi0)
    assert zero.options == none.options and zero.mdp_digest == none.mdp_digest
    barrier = pg.partial_gradient(pi, mdp=mdp, n=n, seed=1, lo=lo0, hi=hi0, regularizer=pg.LogBarrier(0.1))
    assert dict(barrier.options)["barrier"] == 0.1 and dict(soft.options)["entropy"] == 0.1
