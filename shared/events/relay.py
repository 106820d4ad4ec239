"""The relay batch: clb-direct's own format between the in-cluster relay and the router.

The relay builds a `RelayBatch`, serialises it with `to_body()`, signs the bytes
(`shared.signing`) and POSTs them; the router parses the verified body with `RelayBatch.parse()`.
Our own format, so unknown fields are rejected. Audit events stay raw dicts inside an item so the
router can report one malformed event by index and still process the rest.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError

from shared.domain.errors import InvalidInput
from shared.domain.json_input import parse_json
from shared.events.base import OwnModel

WatchResource = Literal["pods", "services", "configmaps", "tkeserviceconfigs"]


class AuditItem(OwnModel):
    source: Literal["audit"] = "audit"
    event: dict[str, Any]


class WatchItem(OwnModel):
    source: Literal["watch"] = "watch"
    type: Literal["ADDED", "MODIFIED", "DELETED"]
    resource: WatchResource
    object: dict[str, Any]


RelayItem = Annotated[AuditItem | WatchItem, Field(discriminator="source")]


class RelayBatch(OwnModel):
    batch_id: str = Field(alias="batchId", min_length=8, max_length=128)
    relay: str = Field(default="relay", max_length=253)
    created_at: float = Field(alias="createdAt")
    dropped_total: int = Field(default=0, alias="droppedTotal", ge=0)
    items: list[RelayItem] = Field(default_factory=list)

    def to_body(self) -> bytes:
        return json.dumps(self.model_dump(by_alias=True), separators=(",", ":")).encode()

    @classmethod
    def parse(cls, body: bytes) -> RelayBatch:
        """Bytes -> batch through the bounded JSON parser (no crash on depth, huge numbers, bad UTF-8)."""
        return cls.parse_value(parse_json(body, what="relay batch"))

    @classmethod
    def parse_value(cls, value: object) -> RelayBatch:
        try:
            return cls.model_validate(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InvalidInput(f"relay batch is malformed at {where or 'top level'}: {first['msg']}") from exc
