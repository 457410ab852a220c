#!/usr/bin/env python
"""Distributed benchmark (the code is pgfast.benchmarks.distributed, which `pgfast bench` runs too).

    python bench/bench_distributed.py [--quick] [--json PATH]

The overhead of pgfast.distributed (2 Ray shards x 1 thread) against the local fused estimate on
2 threads, at 10^8 and 10^9 simulated steps, and Ray's fixed costs (task round trip, a tiny
shard, the merge, Ray's start). Needs Ray (pip install "pgfast[ray]"). Saves
bench/results/distributed.json unless --json says otherwise; see bench/README.md.
"""

import sys
from pathlib import Path

from pgfast.benchmarks import distributed

if __name__ == "__main__":
    sys.exit(
        distributed.main(
            default_json=Path(__file__).resolve().parent / "results" / "distributed.json",
            prog="python bench/bench_distributed.py",
        )
    )
