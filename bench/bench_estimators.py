#!/usr/bin/env python
"""Estimator benchmark (the code is pgfast.benchmarks.estimators, which `pgfast bench` runs too).

    python bench/bench_estimators.py [--quick] [--default-malloc] [--json PATH]

Saves bench/results/estimators.json unless --json says otherwise; see bench/README.md.
"""

import sys
from pathlib import Path

from pgfast.benchmarks import estimators

if __name__ == "__main__":
    sys.exit(
        estimators.main(
            default_json=Path(__file__).resolve().parent / "results" / "estimators.json",
            prog="python bench/bench_estimators.py",
        )
    )
