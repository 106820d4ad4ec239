"""A CLB request that hangs longer than the writer's lease (issue 10): the gateway, built from Settings
against the CLB emulator's HTTP server, gives up after `clb_request_timeout_s` with a retryable error, and
a fenced write retries under its lease instead of landing after the lease lapsed. The emulator's `hang_s`
fault holds the request like a network that stalls it, and abandons it once the client gave up.

With the SDK's own 60 s request timeout both tests fail: the hung request lands at HANG_S, after the
lease (LEASE_TTL_S) is gone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from emulators.clb.config import ClbEmulatorConfig
from emulators.clb.model import ClbModel
from emulators.clb.server import ClbEmulatorServer
from shared.adapters.store_factory import open_store
from shared.adapters.tencent_clb import TencentClbGateway
from shared.clock import SystemClock
from shared.domain.errors import RetryableError
from shared.domain.models import ListenerSpec, LoadBalancerSpec, Target
from shared.keys import lease_name
from shared.leases import Fence, FencedLoadBalancer
from tests.integration.adapters.test_tencent_clb_server import ROLE, role_settings
from tests.support.polling import eventually

LEASE_TTL_S = 15.0  # the shortest lease Settings accept
REQUEST_TIMEOUT_S = 1.0
HANG_S = 25.0  # past the lease, well inside the SDK's 60 s default


@pytest.fixture
def server() -> Iterator[ClbEmulatorServer]:
    emulator = ClbEmulatorServer(ClbModel(ClbEmulatorConfig(task_duration_s=0.05)), credentials=[ROLE]).start()
    try:
        yield emulator
    finally:
        emulator.stop()


def lb_with_listener(gateway: TencentClbGateway) -> tuple[str, str]:
    lb = gateway.create_load_balancer(LoadBalancerSpec(name="hang", internal_subnet_id="subnet-1", client_token="h"))
    return lb.lb_id, gateway.create_listener(lb.lb_id, ListenerSpec(port=8080))


def register_calls(server: ClbEmulatorServer) -> list[dict[str, object]]:
    return [call for call in server.model.calls()["calls"] if call["action"] == "BatchRegisterTargets"]


def test_a_hung_write_fails_retryable_after_the_request_timeout(server: ClbEmulatorServer, tmp_path: Path) -> None:
    settings = role_settings(
        server,
        tmp_path,
        CLB_DIRECT_LEASE_TTL_S=str(LEASE_TTL_S),
        CLB_DIRECT_CLB_REQUEST_TIMEOUT_S=str(REQUEST_TIMEOUT_S),
        CLB_DIRECT_CLB_CALL_DEADLINE_S=str(REQUEST_TIMEOUT_S),  # one attempt: the call's own failure shows
    )
    gateway = TencentClbGateway.from_settings(settings, clock=SystemClock())
    lb_id, listener_id = lb_with_listener(gateway)
    server.model.set_fault({"action": "BatchRegisterTargets", "hang_s": HANG_S})
    with pytest.raises(RetryableError) as info:
        gateway.register_targets(lb_id, [Target(listener_id=listener_id, ip="10.9.0.1", port=80)])
    assert info.value.code == "ClientNetworkError"
    eventually(lambda: any(call["abandoned"] for call in register_calls(server)), "the emulator to see the client go")
    assert gateway.list_targets(lb_id) == []  # the hung request was never applied


def test_a_fenced_write_whose_request_hangs_is_retried_inside_its_lease(
    server: ClbEmulatorServer, tmp_path: Path
) -> None:
    settings = role_settings(
        server,
        tmp_path,
        CLB_DIRECT_LEASE_TTL_S=str(LEASE_TTL_S),
        CLB_DIRECT_CLB_REQUEST_TIMEOUT_S=str(REQUEST_TIMEOUT_S),
    )
    clock = SystemClock()
    store = open_store(settings.store_url)
    try:
        gateway = TencentClbGateway.from_settings(settings, store=store, clock=clock)
        lb_id, listener_id = lb_with_listener(gateway)
        lease = store.acquire_lease(lease_name(lb_id), "writer", ttl_s=LEASE_TTL_S, now=clock.now())
        assert lease is not None
        fence = Fence(
            store, clock, lease=lease_name(lb_id), subject=f"CLB {lb_id}", holder="writer", token=lease.token,
            ttl_s=LEASE_TTL_S,
        )  # fmt: skip
        landed: list[str] = []

        def lease_when_applied() -> None:  # runs in the emulator right after it applied a change
            current = store.current_lease(lease_name(lb_id), now=clock.now())
            landed.append("inside the lease" if current is not None and current.token == lease.token else "outside")

        server.model.subscribe(lease_when_applied)
        server.model.set_fault({"action": "BatchRegisterTargets", "hang_s": HANG_S, "count": 1})
        targets = [Target(listener_id=listener_id, ip=f"10.9.0.{i}", port=80) for i in (1, 2)]
        FencedLoadBalancer(gateway, fence).register_targets(lb_id, targets)
        assert landed and set(landed) == {"inside the lease"}, landed
        assert set(gateway.list_targets(lb_id)) == set(targets)
        eventually(lambda: any(call["abandoned"] for call in register_calls(server)), "the hung request abandoned")
        assert sorted(bool(call["abandoned"]) for call in register_calls(server)) == [False, True]
    finally:
        store.close()
