"""Suite-wide rules: no test may be skipped (a skip proves nothing), events load by name, functions run inline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli._inline import install_inline_invoker

pytest_plugins = ["tests.plugins.redis_server"]

EVENTS_DIR = Path(__file__).parent / "events"

# The suite hosts the functions in-process, as the CLI does: settings with invoker="inline" run them here.
install_inline_invoker()


def load_event(name: str) -> Any:
    """Load a JSON fixture from tests/events/ by name (with or without .json)."""
    path = EVENTS_DIR / (name if name.endswith(".json") else f"{name}.json")
    return json.loads(path.read_text())


@pytest.fixture
def event_fixture() -> Any:
    return load_event


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    skipped = reporter.stats.get("skipped", []) + reporter.stats.get("xfailed", [])
    if skipped and exitstatus == 0:
        reporter.write_line(f"FAILED: {len(skipped)} test(s) skipped or xfailed; no skips are allowed")
        session.exitstatus = 1
