"""Benchmark scripts. Each one runs as ``python -m shl.bench.<name>``."""
