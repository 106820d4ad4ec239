"""Fixtures for the plumbing unit tests: in-memory store, fake clock, a recording invoker, Deps."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from shared.adapters.store_factory import open_store
from shared.clock import FakeClock
from shared.config import Settings
from shared.deps import Deps
from shared.ports import Store

HMAC_KEY = "unit-test-relay-key"


class RecordingInvoker:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def invoke_async(self, function: str, payload: Mapping[str, Any]) -> str:
        self.calls.append((function, dict(payload)))
        return f"req-{len(self.calls)}"

    def steps(self) -> list[str]:
        return [name for name, _ in self.calls]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_700_000_000.0)


@pytest.fixture
def store() -> Iterator[Store]:
    engine = open_store("memory://")
    yield engine
    engine.close()


@pytest.fixture
def invoker() -> RecordingInvoker:
    return RecordingInvoker()


@pytest.fixture
def deps(store: Store, clock: FakeClock, invoker: RecordingInvoker) -> Deps:
    settings = Settings.load({}, relay_hmac_key=HMAC_KEY, store_url="memory://")
    return Deps(settings=settings, store=store, clock=clock, invoker=invoker)
