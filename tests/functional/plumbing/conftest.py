"""The step harness (real CLB adapter over the emulator model, fake cluster, SQLite, step queue) with a
relay HMAC key, so relay batches can be routed into it.

A reconcile pass reads every Service's listeners and targets in quick succession, so the emulator's
per-action rate limit is raised: these tests are about convergence, not about throttling (the steps'
own tests cover RequestLimitExceeded).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulators.clb.config import ClbEmulatorConfig
from emulators.clb.responses_transport import clb_fake
from shared.adapters.store_factory import open_store
from shared.adapters.tencent_clb import TencentClbGateway
from shared.clock import FakeClock
from shared.deps import Deps
from shared.versions import VersionConfirmingCluster
from tests.functional.steps.conftest import FUNCTIONS, Env, handler, make_settings
from tests.support.fakes import FakeCluster, StepQueue

HMAC_KEY = "functional-relay-key"


@pytest.fixture
def env() -> Iterator[Env]:
    clock = FakeClock()
    with clb_fake(config=ClbEmulatorConfig(task_duration_s=0, rate_limit_per_s=10_000)) as (model, endpoint):
        settings = make_settings(endpoint, relay_hmac_key=HMAC_KEY)
        store = open_store("memory://")
        cluster, queue = FakeCluster(), StepQueue()
        gateway = TencentClbGateway.from_settings(settings, clock=clock)
        # As build_deps does: the steps' reads confirm live resourceVersions for the router's stale filter.
        confirming = VersionConfirmingCluster(cluster, store, clock, ttl_s=settings.event_log_ttl_s)
        deps = Deps(settings=settings, store=store, clock=clock, clb=gateway, cluster=confirming, invoker=queue)
        for function in FUNCTIONS:
            handler(function).shell.use(deps)
        try:
            yield Env(deps=deps, cluster=cluster, clb=model, queue=queue, clock=clock)
        finally:
            for function in FUNCTIONS:
                handler(function).shell.use(None)
            store.close()
