"""Benchmark scripts: each prints its figures and ratios (see benchmarks/README.md)."""
