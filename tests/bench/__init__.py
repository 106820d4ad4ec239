"""Benchmarks run by `make bench` (`python -m tests.bench`); modules are `bench_*.py`, never collected by pytest."""
