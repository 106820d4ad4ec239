"""Fixtures for the adapter unit tests: the scripted CLB stub behind `responses`, a fake clock."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
import responses

from shared.adapters.clb_errors import RetryPolicy
from shared.adapters.tencent_clb import TencentClbGateway, build_clb_client
from shared.clock import FakeClock
from tests.unit.adapters.clb_stub import CLB_URL, ClbStub, settings


@pytest.fixture
def clb_stub() -> Iterator[ClbStub]:
    stub = ClbStub()
    stub.on("DescribeTaskStatus", {"Status": 0, "Message": "", "LoadBalancerIds": []})
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_callback(responses.POST, CLB_URL, callback=stub)
        yield stub


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def gateway(clb_stub: ClbStub, clock: FakeClock) -> TencentClbGateway:
    return TencentClbGateway(
        build_clb_client(settings()),
        region="ap-guangzhou",
        clock=clock,
        retry=RetryPolicy(deadline_s=60.0, rng=random.Random(7)),
        task_timeout_s=30.0,
    )
