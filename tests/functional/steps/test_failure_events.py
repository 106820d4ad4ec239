"""Permission, quota and throttling failures of a step also surface as Warning Events on the Service."""

from __future__ import annotations

import pytest

from emulators.clb.faults import FaultRule
from shared.domain.errors import LimitExceeded, PermanentError, RetryableError
from shared.domain.failures import (
    REASON_CLOUD_PERMISSION,
    REASON_CLUSTER_PERMISSION,
    REASON_QUOTA,
    REASON_THROTTLED,
    service_warning_reason,
)
from tests.functional.steps.conftest import Env, service


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (PermanentError("CLB x failed", code="UnauthorizedOperation"), REASON_CLOUD_PERMISSION),
        (PermanentError("CLB x failed", code="AuthFailure.SecretIdNotFound"), REASON_CLOUD_PERMISSION),
        (PermanentError("Kubernetes API patch: HTTP 403", code="403"), REASON_CLUSTER_PERMISSION),
        (LimitExceeded("quota", code="LimitExceeded"), REASON_QUOTA),
        (RetryableError("throttled", code="RequestLimitExceeded"), REASON_THROTTLED),
        (RetryableError("locked", code="FailedOperation.ResourceInOperating"), None),
        (PermanentError("bad", code="InvalidParameter"), None),
    ],
)
def test_which_failures_reach_the_service(error: PermanentError | RetryableError, reason: str | None) -> None:
    assert service_warning_reason(error) == reason


def test_a_cam_denial_becomes_a_warning_event_on_the_service(env: Env) -> None:
    env.cluster.put_service(service())
    env.clb.faults.set(FaultRule(action="CreateLoadBalancer", error_code="UnauthorizedOperation"))
    env.invoke(
        "service", {"step": "service", "services": [{"namespace": "default", "name": "web"}], "correlation_id": "c1"}
    )
    warnings = [(ref.name, kind, reason) for ref, kind, reason, _ in env.cluster.events if kind == "Warning"]
    assert ("web", "Warning", REASON_CLOUD_PERMISSION) in warnings
    message = next(m for ref, kind, reason, m in env.cluster.events if reason == REASON_CLOUD_PERMISSION)
    assert "UnauthorizedOperation" in message and "service step failed" in message
