"""Fixtures for the plumbing unit tests: in-memory store, fake clock, a recording invoker, Deps, the emulated CLB."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from emulators.clb.model import ClbModel
from shared.adapters.store_factory import open_store
from shared.clock import FakeClock
from shared.config import Settings
from shared.deps import Deps
from shared.ports import Store
from tests.support.clb import emulated_clb
from tests.support.fakes import StepQueue

HMAC_KEY = "unit-test-relay-key"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_700_000_000.0)


@pytest.fixture
def store() -> Iterator[Store]:
    engine = open_store("memory://")
    yield engine
    engine.close()


@pytest.fixture
def invoker() -> StepQueue:
    return StepQueue()


@pytest.fixture
def deps(store: Store, clock: FakeClock, invoker: StepQueue) -> Deps:
    settings = Settings.load({}, relay_hmac_key=HMAC_KEY, store_url="memory://")
    return Deps(settings=settings, store=store, clock=clock, invoker=invoker)


@pytest.fixture
def clb(deps: Deps, clock: FakeClock) -> Iterator[Callable[..., ClbModel]]:
    """`clb(*lbs)` puts the emulated CLB, seeded with `lbs`, into `deps` and returns its model."""
    with contextlib.ExitStack() as stack:

        def use(*lbs: dict[str, Any]) -> ClbModel:
            model, gateway = stack.enter_context(emulated_clb(clock, *lbs))
            deps.clb = gateway
            return model

        yield use
