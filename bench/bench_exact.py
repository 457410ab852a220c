#!/usr/bin/env python
"""Exact evaluation benchmark (the code is pgfast.benchmarks.exact, which `pgfast bench` runs too).

    python bench/bench_exact.py [--quick] [--default-malloc] [--json PATH]

Saves bench/results/exact.json unless --json says otherwise; see bench/README.md.
"""

import sys
from pathlib import Path

from pgfast.benchmarks import exact

if __name__ == "__main__":
    sys.exit(
        exact.main(
            default_json=Path(__file__).resolve().parent / "results" / "exact.json",
            prog="python bench/bench_exact.py",
        )
    )
