"""Benchmarks of evoprune against the notebook it reimplements (run as ``python -m benchmarks.NAME``)."""
