"""Reusable pytest plugins (registered in tests/conftest.py)."""
