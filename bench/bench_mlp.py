#!/usr/bin/env python
"""MLP policy benchmark (the code is pgfast.benchmarks.mlp, which `pgfast bench` runs too).

    python bench/bench_mlp.py [--quick] [--default-malloc] [--json PATH]

Saves bench/results/mlp.json unless --json says otherwise; see bench/README.md.
"""

import sys
from pathlib import Path

from pgfast.benchmarks import mlp

if __name__ == "__main__":
    sys.exit(
        mlp.main(
            default_json=Path(__file__).resolve().parent / "results" / "mlp.json",
            prog="python bench/bench_mlp.py",
        )
    )
