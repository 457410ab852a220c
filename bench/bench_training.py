#!/usr/bin/env python
"""Training benchmark (the code is pgfast.benchmarks.training, which `pgfast bench` runs too).

    python bench/bench_training.py [--quick] [--seeds 0,1,2] [--max-iterations 1000] [--json PATH]

Time (wall seconds, iterations, simulated steps) to 95 % of optimal on FrozenLake 8x8 and Taxi
with the `pgfast train` defaults, per estimator and baseline. Saves bench/results/training.json
unless --json says otherwise; see bench/README.md.
"""

import sys
from pathlib import Path

from pgfast.benchmarks import training

if __name__ == "__main__":
    sys.exit(
        training.main(
            default_json=Path(__file__).resolve().parent / "results" / "training.json",
            prog="python bench/bench_training.py",
        )
    )
