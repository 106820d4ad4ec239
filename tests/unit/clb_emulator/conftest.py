"""Fixtures for CLB emulator unit tests: a model on a fake clock and a terse `call` helper."""

from __future__ import annotations

from typing import Any

import pytest

from emulators.clb.config import ClbEmulatorConfig
from emulators.clb.model import ClbModel
from shared.clock import FakeClock

TASK_S = 0.05


class ModelHarness:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.model = ClbModel(
            ClbEmulatorConfig(task_duration_s=TASK_S), clock=self.clock.monotonic, wall_clock=self.clock.now
        )

    def call(self, action: str, **params: Any) -> dict[str, Any]:
        return self.model.call(action, params)

    def finish(self) -> None:
        self.clock.advance(TASK_S)

    def lb(self) -> str:
        lb_id = str(self.call("CreateLoadBalancer", LoadBalancerType="OPEN")["LoadBalancerIds"][0])
        self.finish()
        return lb_id

    def listener(self, lb_id: str, port: int = 80, **extra: Any) -> str:
        listener_id = str(
            self.call("CreateListener", LoadBalancerId=lb_id, Ports=[port], Protocol="TCP", **extra)["ListenerIds"][0]
        )
        self.finish()
        return listener_id

    def bind(self, lb_id: str, listener_id: str, *ips: str, port: int = 8080) -> None:
        targets = [{"ListenerId": listener_id, "EniIp": ip, "Port": port} for ip in ips]
        self.call("BatchRegisterTargets", LoadBalancerId=lb_id, Targets=targets)


@pytest.fixture
def h() -> ModelHarness:
    return ModelHarness()
