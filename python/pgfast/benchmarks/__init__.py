"""The benchmark suites and the NumPy yardsticks they time pgfast against.

One module per suite (:mod:`~pgfast.benchmarks.sampler`, :mod:`~pgfast.benchmarks.exact`,
:mod:`~pgfast.benchmarks.estimators`, :mod:`~pgfast.benchmarks.mlp`,
:mod:`~pgfast.benchmarks.training`, :mod:`~pgfast.benchmarks.distributed`,
:mod:`~pgfast.benchmarks.variance`), each with ``run``, ``format_table`` and ``main``; the shared
harness in :mod:`~pgfast.benchmarks._harness`; every NumPy implementation in
:mod:`~pgfast.benchmarks.reference`. ``pgfast bench`` runs the suites; ``import pgfast`` does not
import this package, and importing it (or any of its modules) changes no environment variable,
thread setting or allocator option: the suites' ``main`` functions do that when they run.
"""
