"""API gateway (integrated request) event and response, as SCF delivers them.

Shapes as Tencent documents them. The router and health handlers receive relay batches
and emulator callbacks this way; `ApiGatewayEvent.raw_body()` undoes the optional base64 encoding and
`header()` looks headers up case-insensitively (API gateway lower-cases some, proxies others).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from pydantic import Field

from shared.domain.errors import InvalidInput
from shared.events.base import ForeignModel


class RequestContext(ForeignModel):
    service_id: str | None = Field(default=None, alias="serviceId")
    path: str | None = None
    http_method: str | None = Field(default=None, alias="httpMethod")
    request_id: str | None = Field(default=None, alias="requestId")
    source_ip: str | None = Field(default=None, alias="sourceIp")
    stage: str | None = None


class ApiGatewayEvent(ForeignModel):
    request_context: RequestContext = Field(default_factory=RequestContext, alias="requestContext")
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    path: str = "/"
    http_method: str = Field(default="POST", alias="httpMethod")
    query_string: dict[str, Any] = Field(default_factory=dict, alias="queryString")
    is_base64_encoded: bool = Field(default=False, alias="isBase64Encoded")

    @classmethod
    def looks_like(cls, event: object) -> bool:
        """True for an API gateway event (it always carries requestContext and httpMethod)."""
        return isinstance(event, dict) and "requestContext" in event and "httpMethod" in event

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)

    def raw_body(self) -> bytes:
        text = self.body or ""
        if not self.is_base64_encoded:
            return text.encode()
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput(f"API gateway body is flagged isBase64Encoded but is not base64: {exc}") from exc


class ApiGatewayResponse(ForeignModel):
    """Integrated response; `to_wire()` is what the handler returns to SCF."""

    status_code: int = Field(alias="statusCode")
    body: str = ""
    headers: dict[str, str] = Field(default_factory=lambda: {"Content-Type": "application/json"})
    is_base64_encoded: bool = Field(default=False, alias="isBase64Encoded")

    @classmethod
    def of(cls, status_code: int, payload: Any) -> ApiGatewayResponse:
        return cls(status_code=status_code, body=json.dumps(payload, separators=(",", ":"), default=str))

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)
