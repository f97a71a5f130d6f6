"""Benchmark harness. Each benchmark measures against a floor taken in the same run
and writes its figures to docs/BENCHMARKS.md."""
