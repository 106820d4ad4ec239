"""Suite-wide rules: tiers by directory, no test may be skipped (a skip proves nothing), events load by name,
functions run inline.

Every test is marked with its tier from the directory it lives in (`-m unit`, `-m "not integration"`):
tests/unit -> unit, tests/functional and tests/deploy -> functional, tests/integration and tests/contract
(the CLB emulator as a server) -> integration, tests/chaos -> chaos. A test anywhere else is an error.
"""

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


TESTS_DIR = Path(__file__).parent
TIER_BY_DIRECTORY = {
    "unit": "unit",
    "functional": "functional",
    "deploy": "functional",
    "integration": "integration",
    "contract": "integration",
    "chaos": "chaos",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        relative = item.path.resolve().relative_to(TESTS_DIR.resolve())
        tier = TIER_BY_DIRECTORY.get(relative.parts[0]) if len(relative.parts) > 1 else None
        if tier is None:
            raise pytest.UsageError(
                f"{item.nodeid}: a test lives in a tier directory, one of tests/{{{','.join(TIER_BY_DIRECTORY)}}}/"
            )
        item.add_marker(getattr(pytest.mark, tier))


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
