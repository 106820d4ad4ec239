"""HMAC-SHA256 signing of relay batches, shared by the relay (signs) and the router (verifies).

The signature covers `timestamp + "." + body` so a captured body cannot be re-sent under a fresh
timestamp; the router additionally bounds clock skew and remembers batch ids (replay protection is
the router's job, see `shared.router`). Comparison is constant-time. The key comes from the relay's
Secret (env `CLB_DIRECT_RELAY_HMAC_KEY`) on both sides. Rotation without downtime: the verifier accepts
any of the active keys (the new one and, while `CLB_DIRECT_RELAY_HMAC_KEY_PREVIOUS` is set, the old
one); the signer always signs with the newest.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from shared.domain.errors import InvalidInput

TIMESTAMP_HEADER = "X-Clb-Direct-Timestamp"
SIGNATURE_HEADER = "X-Clb-Direct-Signature"
BATCH_ID_HEADER = "X-Clb-Direct-Batch-Id"
SIGNATURE_PREFIX = "sha256="


class SignatureRejected(InvalidInput):
    """The batch is unsigned, forged, too old/new, or replayed: the router answers 401."""


@dataclass(frozen=True)
class SignedHeaders:
    timestamp: str
    signature: str
    batch_id: str

    def as_dict(self) -> dict[str, str]:
        return {
            TIMESTAMP_HEADER: self.timestamp,
            SIGNATURE_HEADER: self.signature,
            BATCH_ID_HEADER: self.batch_id,
        }


def signature_matches(keys: Sequence[bytes], message: bytes, signature: str) -> bool:
    """True when `signature` ("sha256=<hex>") is HMAC-SHA256(key, message) for one of `keys`.

    Every key is tried (no early exit) so the time taken does not say which key matched.
    """
    given = signature.strip().encode()
    matched = False
    for key in keys:
        expected = (SIGNATURE_PREFIX + hmac.new(key, message, hashlib.sha256).hexdigest()).encode()
        matched |= hmac.compare_digest(expected, given)
    return matched


def compute_signature(key: bytes, timestamp: str, body: bytes) -> str:
    digest = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def sign_batch(key: bytes, body: bytes, *, batch_id: str, now: float) -> SignedHeaders:
    """Headers for POSTing `body`; the timestamp is whole epoch seconds."""
    if not key:
        raise InvalidInput("the relay HMAC key is empty; set CLB_DIRECT_RELAY_HMAC_KEY from the relay Secret")
    timestamp = str(int(now))
    return SignedHeaders(timestamp=timestamp, signature=compute_signature(key, timestamp, body), batch_id=batch_id)


def verify_batch(
    keys: bytes | Sequence[bytes],
    body: bytes,
    *,
    timestamp: str | None,
    signature: str | None,
    now: float,
    max_skew_s: float,
) -> None:
    """Raise `SignatureRejected` unless `signature` is valid for `timestamp.body` within the skew, under
    any of `keys` (one key, or the active keys of a rotation)."""
    active = [k for k in ([keys] if isinstance(keys, bytes) else keys) if k]
    if not active:
        raise SignatureRejected(
            "the router has no relay HMAC key configured; set CLB_DIRECT_RELAY_HMAC_KEY to the relay's key"
        )
    if not timestamp or not signature:
        raise SignatureRejected(
            f"batch is unsigned: both {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} headers are required"
        )
    try:
        sent_at = int(timestamp)
    except ValueError as exc:
        raise SignatureRejected(f"{TIMESTAMP_HEADER} must be epoch seconds, got {timestamp!r}") from exc
    if abs(now - sent_at) > max_skew_s:
        raise SignatureRejected(
            f"batch timestamp {sent_at} is {abs(now - sent_at):.0f}s away from the router clock "
            f"(limit {max_skew_s:.0f}s); check NTP on the relay node, or it is a replay"
        )
    if not signature_matches(active, timestamp.encode() + b"." + body, signature):
        raise SignatureRejected(
            "batch signature does not match: the relay and router HMAC keys differ or the body was altered"
        )
