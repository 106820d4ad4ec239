"""Reuses the cluster-simulator fixture of the adapter tests."""

from tests.integration.adapters.conftest import sim

__all__ = ["sim"]
