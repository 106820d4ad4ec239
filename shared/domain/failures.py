"""Which step failures an operator must see on the Service itself, as a Warning Event, and under what reason.

Pure; used by `shared.steps.run_step` when a step fails. A failure that will not fix itself by retrying
(missing cloud or cluster permission, CLB quota) or that explains a slow rollout (throttling) is also
reported on every Service the step worked for, so `kubectl describe service` shows it next to the
Service's other Events. Everything else only goes to the logs and the SCF retry machinery.
"""

from __future__ import annotations

from shared.domain.errors import ClbDirectError, LimitExceeded, RetryableError

REASON_CLOUD_PERMISSION = "CloudPermissionDenied"
REASON_CLUSTER_PERMISSION = "KubernetesPermissionDenied"
REASON_QUOTA = "ClbQuotaExceeded"
REASON_THROTTLED = "ClbThrottled"

_CAM_CODES = ("AuthFailure", "UnauthorizedOperation", "OperationDenied", "InvalidCredential")


def service_warning_reason(exc: ClbDirectError) -> str | None:
    """The Event reason for this failure, or None when it is not worth an Event."""
    code = str(getattr(exc, "code", "") or "")
    if code in ("401", "403"):
        return REASON_CLUSTER_PERMISSION
    if code.startswith(_CAM_CODES):
        return REASON_CLOUD_PERMISSION
    if isinstance(exc, LimitExceeded) or code.startswith("LimitExceeded"):
        return REASON_QUOTA
    if isinstance(exc, RetryableError) and code.startswith("RequestLimitExceeded"):
        return REASON_THROTTLED
    return None
