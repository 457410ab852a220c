#!/usr/bin/env python
"""Sampler benchmark (the code is pgfast.benchmarks.sampler, which `pgfast bench` runs too).

    python bench/bench_sampler.py [--quick] [--default-malloc] [--json PATH]

Saves bench/results/sampler.json unless --json says otherwise; see bench/README.md.
"""

import sys
from pathlib import Path

from pgfast.benchmarks import sampler

if __name__ == "__main__":
    sys.exit(
        sampler.main(
            default_json=Path(__file__).resolve().parent / "results" / "sampler.json",
            prog="python bench/bench_sampler.py",
        )
    )
