"""structlog JSON logging with per-invocation context and secret redaction.

`configure_logging()` is called once per cold start (idempotent). Each invocation calls
`bind_invocation(function=..., request_id=..., cold_start=..., correlation_id=...)`, which clears the
previous invocation's context vars first. Event names are dotted verbs (`target.registered`).
The `redact_secrets` processor masks credentials and tokens wherever they appear in an event dict.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "***"

_SECRET_KEY_PATTERN = re.compile(
    r"(secret|token|password|passwd|authorization|signature|private[_-]?key|hmac|credential|sessiontoken"
    r"|api[_-]?key|cookie|tls\.key)",
    re.IGNORECASE,
)
# Values that look like secrets even under innocent keys: TC3 Authorization headers, bearer tokens,
# PEM private keys, AKID-style Tencent SecretIds.
_SECRET_VALUE_PATTERNS = (
    re.compile(r"TC3-HMAC-SHA256 Credential=\S+"),
    re.compile(r"Bearer\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL),
    re.compile(r"\bAKID[A-Za-z0-9]{16,}\b"),
)

_configured = False
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _redact_value(value: Any, depth: int = 0) -> Any:
    if depth > 6:
        return value
    if isinstance(value, str):
        for pattern in _SECRET_VALUE_PATTERNS:
            value = pattern.sub(REDACTED, value)
        return value
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and _SECRET_KEY_PATTERN.search(k) else _redact_value(v, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_redact_value(v, depth + 1) for v in value]
    return value


def redact_secrets(_logger: object, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask values under secret-looking keys and secret-looking values anywhere."""
    for key in list(event_dict.keys()):
        if _SECRET_KEY_PATTERN.search(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact_value(event_dict[key])
    return event_dict


class _StdoutAtWriteTime:
    """The default log stream: whatever `sys.stdout` is when a line is written, never the stream bound at
    configure time (a process that swaps stdout, e.g. a test capturing it, would leave every later log line
    writing to a closed file)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def configure_logging(level: str = "info", stream: TextIO | None = None, *, force: bool = False) -> None:
    """Set up structlog to print one JSON object per line; safe to call on every cold start.

    Without `stream`, lines go to the current `sys.stdout` at the time each one is written."""
    global _configured
    if _configured and not force:
        return
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            structlog.processors.JSONRenderer(sort_keys=False, default=str),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level.lower(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=stream or _StdoutAtWriteTime()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    _configured = True


def bind_invocation(
    *,
    function: str,
    request_id: str,
    cold_start: bool,
    correlation_id: str | None = None,
    **extra: object,
) -> None:
    """Start a new invocation's log context: clear the previous one, then bind the standard keys."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(
        function=function,
        request_id=request_id,
        cold_start=cold_start,
        correlation_id=correlation_id or request_id,
        **extra,
    )


def bind(**values: object) -> None:
    """Add keys (namespace, pod, pod_ip, lb_id, ...) to the current invocation's log context."""
    structlog.contextvars.bind_contextvars(**values)


def get_logger(name: str | None = None) -> Any:
    """A structlog logger; `name` becomes the `logger` key."""
    return structlog.get_logger(name) if name else structlog.get_logger()
