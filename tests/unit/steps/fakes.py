"""Moved to `tests.support.fakes` (one fake per port); re-exported while branches in flight move their imports."""

from __future__ import annotations

from tests.support.fakes import FakeCluster, StepQueue

__all__ = ["FakeCluster", "StepQueue"]
