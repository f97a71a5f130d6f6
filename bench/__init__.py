"""Benchmark harness. Each benchmark measures against a floor taken in the same run
and writes its figures to docs/BENCHMARKS.md.

The scripts import Django and the apps inside their functions, after ``setup_django``:
each one points the settings at a database of its own before Django starts."""
