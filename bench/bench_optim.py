#!/usr/bin/env python
"""Closed-form optimizer benchmark (the code is pgfast.benchmarks.optim, which `pgfast bench --only optim` runs too).

    python bench/bench_optim.py [--quick] [--json PATH]

Saves bench/results/optim.json unless --json says otherwise; see bench/README.md.
"""

import sys
from pathlib import Path

from pgfast.benchmarks import optim

if __name__ == "__main__":
    sys.exit(
        optim.main(
            default_json=Path(__file__).resolve().parent / "results" / "optim.json",
            prog="python bench/bench_optim.py",
        )
    )
