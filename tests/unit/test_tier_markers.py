"""Tier markers come from the directory (tests/conftest.py), so `-m unit` selects exactly tests/unit."""

from __future__ import annotations

import pytest


def test_a_unit_test_is_marked_unit_and_nothing_else(request: pytest.FixtureRequest) -> None:
    tiers = {mark.name for mark in request.node.iter_markers()} & {"unit", "functional", "integration", "chaos"}
    assert tiers == {"unit"}
