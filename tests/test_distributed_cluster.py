"""pgfast.distributed under faults, on a three-node ``ray.cluster_utils.Cluster`` (one CPU each, all
on this machine; one cluster for the module): the shards spread over the nodes give the local
bits; a worker that dies on its first attempt (``os._exit``) is retried and the result keeps its
bits; a node removed mid-run is survived the same way.

The worker deaths are injected from the test alone: the job's ``worker_process_setup_hook``
wraps ``pgfast._partials.partial_gradient`` in every worker so that the first call to find the
marker file deletes it and exits the process. The library runs unchanged."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import pgfast as pg
from pgfast import distributed
from helpers import frozenlake_8x8, frozenlake_policy

pytestmark = pytest.mark.ray

# Ray declares a node dead after health_check_failure_threshold missed checks (seconds, not the
# default minute) so that the node-removal test retries its shard quickly.
HEALTH_CHECKS = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500, "health_check_failure_threshold": 3}
STORE = 100 * 2**20  # object store bytes per node


def dying_hook(marker: str) -> Callable[[], None]:
    """A worker set-up hook (pickled by value: a closure) that makes the first
    partial_gradient call that finds ``marker`` delete it and kill its worker process."""

    def hook() -> None:
        import os

        from pgfast import _partials

        original = _partials.partial_gradient

        def dying(*args: Any, **kwargs: Any) -> Any:
            try:
                os.remove(marker)
            except FileNotFoundError:
                return original(*args, **kwargs)
            os._exit(1)

        _partials.partial_gradient = dying

    return hook


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, list[Any], Path]]:
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        ray.shutdown()
    marker = tmp_path_factory.mktemp("faults") / "kill-next-shard"
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": STORE,
                                                      "include_dashboard": False, "_system_config": HEALTH_CHECKS})
    try:
        workers = [c.add_node(num_cpus=1, object_store_memory=STORE) for _ in range(2)]
        c.wait_for_nodes()
        ray.init(address=c.address, runtime_env={"worker_process_setup_hook": dying_hook(str(marker))},
                 log_to_driver=False, configure_logging=False)
        try:
            yield ray, c, workers, marker
        finally:
            ray.shutdown()
    finally:
        c.shutdown()


def same(a: pg.PolicyGradient, b: pg.PolicyGradient) -> bool:
    return (np.array_equal(a.grad, b.grad) and np.array_equal(a.stderr, b.stderr, equal_nan=True)
            and a.value == b.value and a.value_stderr == b.value_stderr and a.n_steps == b.n_steps)


def test_shards_over_three_nodes_give_the_local_bits(cluster: Any) -> None:
    ray, _, _, _ = cluster
    assert sum(1 for node in ray.nodes() if node["Alive"]) == 3
    rng = np.random.default_rng(2)
    mdp = frozenlake_8x8()
    for kind in ("tabular", "mlp"):
        pi = frozenlake_policy(kind, rng)
        for options in ({}, {"baseline": "mean"}):
            local = pg.policy_gradient(pi, mdp=mdp, n=20_000, seed=5, **options)
            for shards in (3, 7, "auto"):
                assert same(distributed.policy_gradient(pi, mdp=mdp, n=20_000, seed=5, shards=shards, **options), local)


@pytest.mark.parametrize("baseline", [None, "time"])
def test_a_shard_killed_on_its_first_attempt_keeps_the_bits(cluster: Any, baseline: Any) -> None:
    _, _, _, marker = cluster
    mdp, pi = frozenlake_8x8(), frozenlake_policy("linear", np.random.default_rng(3))
    local = pg.policy_gradient(pi, mdp=mdp, n=30_000, seed=8, baseline=baseline)
    marker.touch()
    est = distributed.policy_gradient(pi, mdp=mdp, n=30_000, seed=8, baseline=baseline, shards=3)
    assert not marker.exists(), "no worker ran the dying shard"
    assert same(est, local)
    marker.touch()  # without retries the death is the caller's error
    with pytest.raises(Exception, match="worker died|crashed|system error|SYSTEM_ERROR") as info:
        distributed.policy_gradient(pi, mdp=mdp, n=30_000, seed=8, baseline=baseline, shards=3, max_retries=0)
    assert not marker.exists() and not isinstance(info.value, ValueError)


def test_a_node_removed_mid_run_is_survived(cluster: Any) -> None:
    """Last in the module: it takes one of the three nodes away."""
    ray, c, workers, _ = cluster
    mdp, pi = frozenlake_8x8(), frozenlake_policy("tabular", np.random.default_rng(4))
    n = 6_000_000  # ~1 s per shard on each of the 3 nodes
    local = pg.policy_gradient(pi, mdp=mdp, n=n, seed=6, threads=1)
    removed: list[float] = []

    def remove() -> None:
        c.remove_node(workers[0], allow_graceful=False)
        removed.append(time.perf_counter())

    timer = threading.Timer(0.6, remove)
    t0 = time.perf_counter()
    timer.start()
    try:
        est = distributed.policy_gradient(pi, mdp=mdp, n=n, seed=6, shards=3)
    finally:
        timer.join()
    end = time.perf_counter()
    assert removed and removed[0] < end, "the node was removed after the run ended: the test input is too small"
    assert same(est, local)
    deadline = time.monotonic() + 20
    while sum(1 for node in ray.nodes() if node["Alive"]) != 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sum(1 for node in ray.nodes() if node["Alive"]) == 2
    assert end - t0 < 60
