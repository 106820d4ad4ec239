"""Idempotent step execution (Powertools semantics) over the `Store` port; see `handler.py`."""

from __future__ import annotations

from shared.idempotency.handler import (
    canonical_json,
    idempotency_key,
    payload_hash,
    run_idempotent,
    to_jsonable,
)

__all__ = ["canonical_json", "idempotency_key", "payload_hash", "run_idempotent", "to_jsonable"]
