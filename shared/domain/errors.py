"""Typed errors that say what happens next.

Every error the project raises on purpose derives from `ClbDirectError`. Callers (handlers, the local
runtime, the async invoker) decide retry vs. give-up by class, never by message text:

- `RetryableError(delay_s=...)`: transient; try again after about `delay_s` seconds.
- `PermanentError`: retrying the same input cannot help; the message says what to fix.
- `InvalidInput`: a malformed event / review / callback / config; names the field and the problem.
- `AdmissionDenied(code, message)`: the admission webhook must refuse the request.
"""

from __future__ import annotations


class ClbDirectError(Exception):
    """Base of every error clb-direct raises deliberately."""

    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, object]:
        return {"error": type(self).__name__, "message": self.message, "retryable": self.retryable}


class RetryableError(ClbDirectError):
    """A transient failure: the same call may succeed after `delay_s` seconds."""

    retryable = True

    def __init__(self, message: str, *, delay_s: float = 1.0, code: str | None = None) -> None:
        super().__init__(message)
        self.delay_s = delay_s
        self.code = code

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "delay_s": self.delay_s, "code": self.code}


class PermanentError(ClbDirectError):
    """Retrying the same input cannot help; the message says what must change."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "code": self.code}


class InvalidInput(PermanentError):
    """Malformed input (event, AdmissionReview, callback, config); the message names what is wrong."""


class ConfigError(PermanentError):
    """Settings or a referenced configuration object (TkeServiceConfig, ConfigMap) are invalid."""


class LimitExceeded(PermanentError):
    """A use limit was hit (backend quota, hostNetwork, mixed network modes, cluster version)."""


class NotFound(PermanentError):
    """The object the step acts on does not exist (any more)."""


class Conflict(RetryableError):
    """Optimistic concurrency lost (stale resourceVersion, lease taken); re-read and try again."""


class LeaseHeld(RetryableError):
    """Another writer holds the per-CLB lease; the request was queued for it or must wait."""


class IdempotencyInProgress(RetryableError):
    """The same step with the same payload is running elsewhere; retry after it ends or expires."""


class IdempotencyKeyMismatch(PermanentError):
    """An idempotency key was reused with a different payload."""


class AdmissionDenied(ClbDirectError):
    """The admission webhook refuses the object with an HTTP-like status code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "code": self.code}
