"""Contract-suite harness: the real SDK `ClbClient` against the CLB emulator over both transports.

Every test using `clb` runs twice: once through the in-process `responses` fake and once through the
threading HTTP server on 127.0.0.1 (free port), so both answer identically. Task time and rate windows
run on a fake monotonic clock the test advances; signatures use real wall time, as the SDK signs with it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from tencentcloud.clb.v20180317 import clb_client, models
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from emulators.clb.config import ClbEmulatorConfig
from emulators.clb.model import ClbModel
from emulators.clb.responses_transport import clb_fake
from emulators.clb.server import ClbEmulatorServer
from emulators.clb.signing import EmulatorCredential
from shared.clock import FakeClock

SECRET_ID = "AKIDcontract"
SECRET_KEY = "contract-secret-key"
TEMP_ID = "AKIDtemporary"
TEMP_KEY = "temporary-secret-key"
TEMP_TOKEN = "session-token-1"
CREDENTIALS = [EmulatorCredential(SECRET_ID, SECRET_KEY), EmulatorCredential(TEMP_ID, TEMP_KEY, TEMP_TOKEN)]
TASK_S = 0.05


@dataclass
class Harness:
    kind: str
    model: ClbModel
    clock: FakeClock
    profile_factory: Any
    client: clb_client.ClbClient = field(init=False)

    def __post_init__(self) -> None:
        self.client = self.make_client(SECRET_ID, SECRET_KEY)

    def make_client(self, secret_id: str, secret_key: str, token: str | None = None) -> clb_client.ClbClient:
        return clb_client.ClbClient(
            credential.Credential(secret_id, secret_key, token), "ap-guangzhou", self.profile_factory()
        )

    def call(self, action: str, payload: dict[str, Any], client: clb_client.ClbClient | None = None) -> Any:
        """Send `payload` through the SDK's typed method for `action`; returns the SDK response model."""
        request = getattr(models, f"{action}Request")()
        request.from_json_string(json.dumps(payload))
        return getattr(client or self.client, action)(request)

    def error(self, action: str, payload: dict[str, Any], client: clb_client.ClbClient | None = None) -> str:
        """Call `action`, expecting a CLB error; returns its code."""
        with pytest.raises(TencentCloudSDKException) as info:
            self.call(action, payload, client)
        return str(info.value.get_code())

    def finish_tasks(self) -> None:
        self.clock.advance(TASK_S * 2)

    # Small builders used across the suite ---------------------------------------------------------------
    def create_lb(self, **extra: Any) -> str:
        response = self.call("CreateLoadBalancer", {"LoadBalancerType": "OPEN", **extra})
        self.finish_tasks()
        return str(response.LoadBalancerIds[0])

    def create_listener(self, lb_id: str, port: int = 80, protocol: str = "TCP", **extra: Any) -> str:
        response = self.call(
            "CreateListener", {"LoadBalancerId": lb_id, "Ports": [port], "Protocol": protocol, **extra}
        )
        self.finish_tasks()
        return str(response.ListenerIds[0])

    def lb_with_listener(self) -> tuple[str, str]:
        lb_id = self.create_lb()
        return lb_id, self.create_listener(lb_id)


@pytest.fixture(params=["responses", "http"])
def clb(request: pytest.FixtureRequest) -> Iterator[Harness]:
    clock = FakeClock()
    model = ClbModel(ClbEmulatorConfig(task_duration_s=TASK_S), clock=clock.monotonic)
    if request.param == "responses":
        with clb_fake(model, credentials=CREDENTIALS):
            yield Harness("responses", model, clock, ClientProfile)
        return
    server = ClbEmulatorServer(model, "127.0.0.1", 0, credentials=CREDENTIALS).start()
    try:
        yield Harness(
            "http",
            model,
            clock,
            lambda: ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=server.endpoint)),
        )
    finally:
        server.stop()
