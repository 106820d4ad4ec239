"""Chaos tests: faults and orderings with invariants, seeded so every CI run replays the same chaos."""
