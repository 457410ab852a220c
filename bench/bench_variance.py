#!/usr/bin/env python
"""Variance benchmark (the code is pgfast.benchmarks.variance, which `pgfast bench --only variance` runs too).

    python bench/bench_variance.py [--quick] [--json PATH]

Saves bench/results/variance.json unless --json says otherwise; see bench/README.md.
"""

import sys
from pathlib import Path

from pgfast.benchmarks import variance

if __name__ == "__main__":
    sys.exit(
        variance.main(
            default_json=Path(__file__).resolve().parent / "results" / "variance.json",
            prog="python bench/bench_variance.py",
        )
    )
