#!/usr/bin/env python
"""MLP policy benchmark (the code is pgfast.bench_mlp, so that the installed package runs it too).

    python bench/bench_mlp.py [--quick] [--default-malloc] [--json PATH]

Saves bench/results/mlp.json unless --json says otherwise; see bench/README.md.
"""

import sys
from pathlib import Path

from pgfast import bench_mlp

if __name__ == "__main__":
    sys.exit(
        bench_mlp.main(
            default_json=Path(__file__).resolve().parent / "results" / "mlp.json",
            prog="python bench/bench_mlp.py",
        )
    )
