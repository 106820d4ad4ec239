"""Benchmarks are not tests: keep pytest from collecting anything under tests/bench/ (`make bench` runs them)."""

from __future__ import annotations

collect_ignore_glob = ["*.py"]
