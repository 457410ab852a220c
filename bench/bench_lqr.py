#!/usr/bin/env python
"""LQR benchmark (the code is pgfast.benchmarks.lqr, which `pgfast bench --only lqr` runs too).

    python bench/bench_lqr.py [--quick] [--json PATH]

Saves bench/results/lqr.json unless --json says otherwise; see bench/README.md.
"""

import sys
from pathlib import Path

from pgfast.benchmarks import lqr

if __name__ == "__main__":
    sys.exit(
        lqr.main(
            default_json=Path(__file__).resolve().parent / "results" / "lqr.json",
            prog="python bench/bench_lqr.py",
        )
    )
