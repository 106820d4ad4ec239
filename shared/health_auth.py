"""Authentication of health callbacks on their public route: signed, fresh and never seen, or refused.

Called by `functions/health/handler.py` before the body is parsed. Two producers call the route:

- the CLB (emulator) `TargetHealthChanged` notification, signed: `X-Emulator-Timestamp` (epoch seconds),
  `X-Emulator-Nonce` (16-128 of `[A-Za-z0-9_-]`) and `X-Emulator-Signature: sha256=HMAC-SHA256(secret,
  timestamp + "." + nonce + "." + body)`. Accepted only within `health_notify_max_skew_s` of the
  function's clock and only once: the nonce is claimed in the store (set-if-absent) for longer than the
  window, so a captured callback cannot be replayed. Either active secret is accepted (rotation).
- the Cloud Monitor alarm callback, which cannot sign its body; its callback URL carries
  `?token=<health_alarm_token>` instead (compared in constant time). An alarm is only a "look at this
  CLB" hint that makes the health step re-read DescribeTargetHealth, so a replayed one costs one read.

With neither configured, every callback is refused (401) unless `health_notify_allow_unsigned` is set
for a private network; the refusal says which setting to use.
"""

from __future__ import annotations

import hmac
import re
from typing import Literal

from shared.config import Settings
from shared.events.apigw import ApiGatewayEvent
from shared.keys import nonce_key
from shared.ports import Clock, KeyValueStore
from shared.signing import SignatureRejected, signature_matches

TIMESTAMP_HEADER = "X-Emulator-Timestamp"
NONCE_HEADER = "X-Emulator-Nonce"
SIGNATURE_HEADER = "X-Emulator-Signature"
ALARM_TOKEN_PARAMETER = "token"
NONCE_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,128}")

CallbackAuth = Literal["signature", "token", "unsigned"]

UNAUTHENTICATED = (
    "health callback is unauthenticated: sign CLB notifications with CLB_DIRECT_HEALTH_NOTIFY_SECRET "
    f"({TIMESTAMP_HEADER}, {NONCE_HEADER}, {SIGNATURE_HEADER}), give the Cloud Monitor alarm callback URL "
    f"?{ALARM_TOKEN_PARAMETER}=<CLB_DIRECT_HEALTH_ALARM_TOKEN>, or set CLB_DIRECT_HEALTH_NOTIFY_ALLOW_UNSIGNED=true "
    "only where the route is private"
)


def _verify_signature(
    settings: Settings, store: KeyValueStore, clock: Clock, event: ApiGatewayEvent, body: bytes
) -> None:
    keys = settings.health_notify_keys()
    if not keys:
        raise SignatureRejected("health callback is signed but no CLB_DIRECT_HEALTH_NOTIFY_SECRET is configured")
    timestamp, nonce = event.header(TIMESTAMP_HEADER), event.header(NONCE_HEADER)
    signature = event.header(SIGNATURE_HEADER) or ""
    if not timestamp or not nonce:
        raise SignatureRejected(
            f"health callback signature needs {TIMESTAMP_HEADER} and {NONCE_HEADER} (replay protection); "
            "upgrade the notifier"
        )
    if not NONCE_SHAPE.fullmatch(nonce):
        raise SignatureRejected(f"{NONCE_HEADER} must be 16-128 characters of [A-Za-z0-9_-]")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise SignatureRejected(f"{TIMESTAMP_HEADER} must be epoch seconds, got {timestamp[:20]!r}")
    now, window = clock.now(), settings.health_notify_max_skew_s
    if abs(now - int(timestamp)) > window:
        raise SignatureRejected(
            f"health callback timestamp is {abs(now - int(timestamp)):.0f}s from the function clock (limit "
            f"{window:.0f}s): a replay, or the sender's clock is off"
        )
    if not signature_matches(keys, f"{timestamp}.{nonce}.".encode() + body, signature):
        raise SignatureRejected("health callback signature does not match; check CLB_DIRECT_HEALTH_NOTIFY_SECRET")
    if not store.kv_set_if_absent(nonce_key(nonce), timestamp, ttl_s=2 * window + 60, now=now):
        raise SignatureRejected(f"health callback nonce {nonce} was already used; a replay is refused")


def authenticate_callback(
    settings: Settings, store: KeyValueStore, clock: Clock, event: ApiGatewayEvent, body: bytes
) -> CallbackAuth:
    """How the callback proved itself, or `SignatureRejected` (the handler answers 401)."""
    if event.header(SIGNATURE_HEADER) is not None:
        _verify_signature(settings, store, clock, event, body)
        return "signature"
    token = event.query_string.get(ALARM_TOKEN_PARAMETER)
    if token is not None:
        expected = settings.health_alarm_token.get_secret_value() if settings.health_alarm_token else ""
        if (
            not expected
            or not isinstance(token, str)
            or not hmac.compare_digest(expected.encode(), token.encode("utf-8", "surrogatepass"))
        ):
            raise SignatureRejected("health alarm callback token does not match CLB_DIRECT_HEALTH_ALARM_TOKEN")
        return "token"
    if settings.health_notify_allow_unsigned:
        return "unsigned"
    raise SignatureRejected(UNAUTHENTICATED)
