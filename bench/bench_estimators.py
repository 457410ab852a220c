#!/usr/bin/env python
"""Estimator benchmark (the code is pgfast.bench_estimators, so that the installed package runs it too).

    python bench/bench_estimators.py [--quick] [--default-malloc] [--json PATH]

Saves bench/results/estimators.json unless --json says otherwise; see bench/README.md.
"""

import sys
from pathlib import Path

from pgfast import bench_estimators

if __name__ == "__main__":
    sys.exit(
        bench_estimators.main(
            default_json=Path(__file__).resolve().parent / "results" / "estimators.json",
            prog="python bench/bench_estimators.py",
        )
    )
