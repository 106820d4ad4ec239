"""CLS trigger event: `{"clslogs": {"data": base64(gzip(JSON))}}`.

The router receives TKE cluster-audit logs this way; each record's `content` is one audit Event as
JSON. `ClsEvent.decode()` turns the envelope into a `ClsPayload` or raises `InvalidInput` saying
which layer (base64, gzip, JSON, shape) was broken; the JSON goes through the bounded parser.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import zlib

from pydantic import Field, ValidationError

from shared.domain.errors import InvalidInput
from shared.domain.json_input import parse_json
from shared.events.base import ForeignModel

# An SCF event is at most 6 MB; CLS batches compress about 10:1. Anything expanding far beyond that is a
# decompression bomb, refused before it takes the function's memory.
MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024


def _gunzip_bounded(compressed: bytes) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip framing
    try:
        raw = inflater.decompress(compressed, MAX_DECOMPRESSED_BYTES + 1)
    except zlib.error as exc:
        raise InvalidInput(f"clslogs.data is not gzip-compressed: {exc}") from exc
    if len(raw) > MAX_DECOMPRESSED_BYTES or inflater.unconsumed_tail:
        raise InvalidInput(f"clslogs.data expands beyond {MAX_DECOMPRESSED_BYTES} bytes; refused")
    if not inflater.eof:
        raise InvalidInput("clslogs.data is not gzip-compressed: the stream is truncated")
    return raw


class ClsRecord(ForeignModel):
    timestamp: str | int = ""
    content: str


class ClsPayload(ForeignModel):
    topic_id: str = ""
    topic_name: str = ""
    records: list[ClsRecord] = Field(default_factory=list)


class ClsLogs(ForeignModel):
    data: str


class ClsEvent(ForeignModel):
    clslogs: ClsLogs

    @classmethod
    def looks_like(cls, event: object) -> bool:
        return isinstance(event, dict) and "clslogs" in event

    @classmethod
    def encode(cls, payload: ClsPayload) -> ClsEvent:
        """Build the envelope the way CLS does (used by fixtures and the local runtime)."""
        raw = json.dumps(payload.model_dump(by_alias=True)).encode()
        return cls(clslogs=ClsLogs(data=base64.b64encode(gzip.compress(raw)).decode()))

    def decode(self) -> ClsPayload:
        try:
            compressed = base64.b64decode(self.clslogs.data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput(f"clslogs.data is not base64: {exc}") from exc
        raw = _gunzip_bounded(compressed)
        value = parse_json(raw, what="clslogs.data")
        try:
            return ClsPayload.model_validate(value)
        except ValidationError as exc:
            raise InvalidInput(
                "clslogs.data does not hold {topic_id, topic_name, records: [{timestamp, content}]}: "
                + exc.errors()[0]["msg"]
            ) from exc
