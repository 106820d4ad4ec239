"""TencentClbGateway built from Settings against the CLB emulator's HTTP server on 127.0.0.1: real
sockets, TC3 signatures verified by the server (including the role's session token), shared SQLite
token bucket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from emulators.clb.config import ClbEmulatorConfig
from emulators.clb.model import ClbModel
from emulators.clb.server import ClbEmulatorServer
from emulators.clb.signing import EmulatorCredential
from shared.adapters.store_factory import open_store
from shared.adapters.tencent_clb import TencentClbGateway
from shared.clock import SystemClock
from shared.config import Settings
from shared.domain.errors import PermanentError
from shared.domain.models import ListenerSpec, LoadBalancerSpec, Target

ROLE = EmulatorCredential("AKIDrolerolerolerole", "role-secret", "role-session-token")


@pytest.fixture
def server() -> Iterator[ClbEmulatorServer]:
    model = ClbModel(ClbEmulatorConfig(task_duration_s=0.05))
    emulator = ClbEmulatorServer(model, "127.0.0.1", 0, credentials=[ROLE]).start()
    try:
        yield emulator
    finally:
        emulator.stop()


def role_settings(server: ClbEmulatorServer, tmp_path: Path, **overrides: str) -> Settings:
    environ = {
        "TENCENTCLOUD_SECRETID": ROLE.secret_id,
        "TENCENTCLOUD_SECRETKEY": ROLE.secret_key,
        "TENCENTCLOUD_SESSIONTOKEN": ROLE.token or "",
        "CLB_DIRECT_CLB_ENDPOINT": server.endpoint,
        "CLB_DIRECT_CLB_PROTOCOL": "http",
        "CLB_DIRECT_VPC_ID": "vpc-int",
        "CLB_DIRECT_STORE_URL": f"sqlite:///{tmp_path / 'state.db'}",
        **overrides,
    }
    return Settings.load(environ)


def test_gateway_from_role_settings_over_http(server: ClbEmulatorServer, tmp_path: Path) -> None:
    settings = role_settings(server, tmp_path)
    store = open_store(settings.store_url)
    try:
        gateway = TencentClbGateway.from_settings(settings, store=store, clock=SystemClock())
        lb = gateway.create_load_balancer(
            LoadBalancerSpec(name="int", internal_subnet_id="subnet-1", client_token="t-int")
        )
        listener_id = gateway.create_listener(lb.lb_id, ListenerSpec(port=8080))
        targets = [Target(listener_id=listener_id, ip=f"10.3.0.{i}", port=80) for i in range(1, 31)]
        gateway.register_targets(lb.lb_id, targets)
        assert set(gateway.list_targets(lb.lb_id)) == set(targets)
        gateway.set_target_weights(lb.lb_id, [t.model_copy(update={"weight": 0}) for t in targets])
        assert {t.weight for t in gateway.list_targets(lb.lb_id)} == {0}
        gateway.delete_load_balancer(lb.lb_id)
        assert gateway.describe_load_balancer(lb.lb_id) is None
    finally:
        store.close()


def test_wrong_secret_is_a_permanent_auth_failure(server: ClbEmulatorServer, tmp_path: Path) -> None:
    settings = role_settings(server, tmp_path, TENCENTCLOUD_SECRETKEY="not-the-secret")
    gateway = TencentClbGateway.from_settings(settings, clock=SystemClock())
    with pytest.raises(PermanentError) as info:
        gateway.list_listeners("lb-any")
    assert (info.value.code or "").startswith("AuthFailure")
    assert "not-the-secret" not in info.value.message
