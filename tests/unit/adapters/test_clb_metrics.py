"""Metric records of the CLB adapter: every API attempt by action, code and outcome; binds and drains."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from shared.adapters.tencent_clb import TencentClbGateway
from shared.domain.errors import PermanentError
from shared.domain.models import Target
from shared.logging import configure_logging
from tests.unit.adapters.clb_stub import ClbStub


@pytest.fixture
def metrics() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    out = io.StringIO()
    configure_logging(stream=out, force=True)

    def read() -> list[dict[str, Any]]:
        rows = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
        return [r for r in rows if r.get("event") == "metric"]

    try:
        yield read
    finally:
        configure_logging(force=True)


def test_calls_throttles_errors_and_binds(
    gateway: TencentClbGateway, clb_stub: ClbStub, metrics: Callable[[], list[dict[str, Any]]]
) -> None:
    clb_stub.fail("BatchRegisterTargets", "RequestLimitExceeded")
    clb_stub.on("BatchRegisterTargets", {"FailListenerIdSet": []})
    gateway.register_targets("lb-1", [Target(listener_id="lbl-1", ip=f"10.0.0.{i}", port=8080) for i in range(3)])
    clb_stub.fail("DeleteListener", "UnauthorizedOperation")
    with pytest.raises(PermanentError):
        gateway.delete_listener("lb-1", "lbl-1")
    records = metrics()
    calls = [
        (r["dimensions"]["service"], r["dimensions"]["action"], r["dimensions"]["code"], r["dimensions"]["outcome"])
        for r in records
        if r["metric_name"] == "cloud_api_call"
    ]
    assert calls == [
        ("CLB", "BatchRegisterTargets", "RequestLimitExceeded", "throttled"),
        ("CLB", "BatchRegisterTargets", "OK", "ok"),
        ("CLB", "DeleteListener", "UnauthorizedOperation", "error"),
    ]
    bound = [(r["metric_value"], r["dimensions"]) for r in records if r["metric_name"] == "targets_bound"]
    assert bound == [(3.0, {"lb_id": "lb-1"})]
    assert all(r["metric_unit"] == "Count" for r in records)


def test_drains_are_counted(
    gateway: TencentClbGateway, clb_stub: ClbStub, metrics: Callable[[], list[dict[str, Any]]]
) -> None:
    clb_stub.on("BatchModifyTargetWeight", {})
    clb_stub.on("DescribeTaskStatus", {"Status": 0})
    targets = [Target(listener_id="lbl-1", ip=f"10.0.0.{i}", port=80, weight=0 if i < 3 else 10) for i in range(5)]
    gateway.set_target_weights("lb-1", targets)
    counted = {r["metric_name"]: r["metric_value"] for r in metrics() if r["metric_name"].startswith("targets_")}
    assert counted == {"targets_drained": 3.0, "targets_weighted": 2.0}
