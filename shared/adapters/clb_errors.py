"""Classification of Tencent Cloud API failures and the retry loop around one call.

Used by `shared.adapters.tencent_clb.TencentClbGateway` for every request it sends (and by the SCF
invoker, which shares the SDK's error shape). Failures are
classified by the CLB error **code** (never the message text): the instance lock, rate limiting,
internal errors and the SDK's synthetic network codes are transient and retried with full-jitter
exponential backoff under an overall deadline; anything else becomes a `PermanentError` whose message
carries the action, the LB id, the CLB code, its message and the RequestId, so an operator can look
the call up in the Tencent Cloud console.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from shared.domain.errors import LimitExceeded, NotFound, PermanentError, RetryableError
from shared.domain.limits import CLB_RETRY_BACKOFF_CAP_S
from shared.logging import get_logger
from shared.metrics import emit_metric
from shared.ports import Clock

T = TypeVar("T")

log = get_logger("shared.adapters.clb")

# Exact spellings of the SDK's errorcodes.py; SDK retry.py treats every RequestLimitExceeded.*
# variant as throttling. ClientNetworkError / ServerNetworkError are the SDK's synthetic transport codes.
_RETRYABLE_PREFIXES = ("RequestLimitExceeded",)
_RETRYABLE_CODES = frozenset(
    {
        "FailedOperation.ResourceInOperating",
        "InternalError",
        "ClientNetworkError",
        "ServerNetworkError",
    }
)
NOT_FOUND_CODES = frozenset(
    {
        "InvalidParameter.LBIdNotFound",
        "InvalidParameter.ListenerIdNotFound",
        "ResourceNotFound",
    }
)
_QUOTA_PREFIXES = ("LimitExceeded",)


def is_retryable_code(code: str) -> bool:
    return code in _RETRYABLE_CODES or code.startswith(_RETRYABLE_PREFIXES) or code.startswith("InternalError.")


def describe_failure(action: str, exc: TencentCloudSDKException, lb_id: str | None, *, service: str = "CLB") -> str:
    """One line naming the call, the object and the CLB's own words; never the request body."""
    target = f" on {lb_id}" if lb_id else ""
    message = exc.get_message()
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    return f"{service} {action}{target} failed: {exc.get_code()}: {message} (RequestId {exc.get_request_id() or '-'})"


def permanent_error(
    action: str, exc: TencentCloudSDKException, lb_id: str | None, *, service: str = "CLB"
) -> PermanentError:
    """Map a non-retryable SDK exception to the most specific typed error."""
    code = str(exc.get_code() or "UnknownError")
    text = describe_failure(action, exc, lb_id, service=service)
    if code in NOT_FOUND_CODES:
        return NotFound(f"{text}; the object no longer exists, re-read the current state", code=code)
    if code.startswith(_QUOTA_PREFIXES):
        return LimitExceeded(f"{text}; raise the quota or reduce the number of resources", code=code)
    return PermanentError(f"{text}; fix the request or the configuration, retrying will not help", code=code)


@dataclass
class RetryPolicy:
    """Full-jitter exponential backoff (AWS architecture blog): sleep U(0, min(cap, base * 2**n))."""

    deadline_s: float = 60.0
    base_s: float = 0.2
    cap_s: float = CLB_RETRY_BACKOFF_CAP_S
    rng: random.Random = field(default_factory=random.Random)

    def backoff(self, attempt: int) -> float:
        return self.rng.uniform(0.0, min(self.cap_s, self.base_s * (2**attempt)))


def call_with_retry(
    action: str,
    send: Callable[[], T],
    *,
    clock: Clock,
    policy: RetryPolicy,
    lb_id: str | None = None,
    before_attempt: Callable[[float], None] | None = None,
    service: str = "CLB",
) -> T:
    """Run `send` until it succeeds, fails permanently, or the overall deadline passes.

    `before_attempt(deadline)` runs before every attempt (the shared write token bucket); it gets the
    monotonic deadline so that waiting for a token never outlives the call's budget.
    """
    deadline = clock.monotonic() + policy.deadline_s
    attempt = 0
    while True:
        if before_attempt is not None:
            before_attempt(deadline)
        try:
            result = send()
        except TencentCloudSDKException as exc:
            code = str(exc.get_code() or "UnknownError")
            if not is_retryable_code(code):
                _count_call(service, action, code, "error")
                raise permanent_error(action, exc, lb_id, service=service) from exc
            _count_call(service, action, code, "throttled" if code.startswith("RequestLimitExceeded") else "retried")
            delay = policy.backoff(attempt)
            remaining = deadline - clock.monotonic()
            if remaining <= delay:
                raise RetryableError(
                    f"{describe_failure(action, exc, lb_id, service=service)}; still failing after "
                    f"{attempt + 1} attempts within {policy.deadline_s:.0f}s, retry the step later",
                    delay_s=max(policy.backoff(attempt + 1), 1.0),
                    code=code,
                ) from exc
            log.info("clb.call.retrying", action=action, lb_id=lb_id, code=code, attempt=attempt + 1, delay_s=delay)
            clock.sleep(delay)
            attempt += 1
        else:
            _count_call(service, action, "OK", "ok")
            return result


def _count_call(service: str, action: str, code: str, outcome: str) -> None:
    """One `cloud_api_call` metric per attempt: throttles = outcome throttled, errors = outcome error."""
    emit_metric("cloud_api_call", 1, "Count", service=service, action=_action_name(action), code=code, outcome=outcome)


def _action_name(action: str) -> str:
    # "Invoke(bind)" -> "Invoke": the target is in the logs; a metric dimension stays low-cardinality.
    return action.split("(", 1)[0]
