"""The CLB API dispatcher shared by every transport, so the `responses` fake and the HTTP server answer alike.

`ClbApi.handle` takes a raw request (method, path, query, headers, body), checks what the real endpoint
checks (X-TC-Action, X-TC-Version, JSON body, the TC3 signature), runs `ClbModel.invoke` (which applies
injected latency outside the model lock), and returns an `ApiReply`: HTTP 200 with `{"Response": {...}}` and
`Content-Type: application/json` exactly (the SDK ignores error bodies under any other content type), or
a drop instruction when a fault asks for the response to be lost after the change was applied.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from emulators.clb.errors import (
    FORMAT_ERROR,
    MISSING_PARAMETER,
    NO_SUCH_VERSION,
    UNSUPPORTED_OPERATION,
    ClbApiError,
)
from emulators.clb.faults import CallAbandoned
from emulators.clb.model import ClbModel
from emulators.clb.signing import CredentialsInput, SignatureVerifier

API_VERSION = "2018-03-17"
JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class ApiReply:
    """What the transport sends back. `drop` means: send nothing, break the connection (network error)."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": JSON_CONTENT_TYPE})
    drop: bool = False


@dataclass(frozen=True)
class RawRequest:
    """An HTTP request as a transport received it; `headers` keys in any case. `caller_gone`, where the
    transport can tell, says whether the client has given up on it (closed its connection)."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    caller_gone: Callable[[], bool] | None = None


def _json_reply(response: dict[str, Any]) -> ApiReply:
    return ApiReply(200, json.dumps({"Response": response}).encode("utf-8"))


class ClbApi:
    """One dispatcher per transport; `credentials=None` with `signature_check=True` accepts no request."""

    def __init__(
        self,
        model: ClbModel,
        credentials: CredentialsInput | None = None,
        *,
        signature_check: bool = True,
    ) -> None:
        self.model = model
        self.signature_check = signature_check
        self._verifier = SignatureVerifier(
            credentials, leeway_s=model.config.signature_leeway_s, wall_clock=model.wall_clock
        )

    def handle(self, request: RawRequest) -> ApiReply:
        lower = {name.lower(): value for name, value in request.headers.items()}
        action = lower.get("x-tc-action", "")
        try:
            params = self._admit(request, lower, action)
        except ClbApiError as exc:
            request_id = self.model.new_request_id()
            self.model.record_rejected(action, request_id, exc.code)
            return self._error(exc, request_id)
        request_id = self.model.new_request_id()
        try:
            response, fault = self.model.invoke(action, params, request_id=request_id, caller_gone=request.caller_gone)
        except ClbApiError as exc:
            return self._error(exc, request_id)
        except CallAbandoned:
            return ApiReply(0, drop=True)  # nobody is waiting for an answer any more
        if fault is not None and fault.drop_response:
            if fault.drop_status is not None:
                return ApiReply(fault.drop_status, b"upstream connect error", {"Content-Type": "text/html"})
            return ApiReply(0, drop=True)
        return _json_reply(response)

    def _admit(self, request: RawRequest, headers: Mapping[str, str], action: str) -> dict[str, Any]:
        if request.method != "POST":
            raise ClbApiError(UNSUPPORTED_OPERATION, "The emulator accepts POST with a JSON body only.")
        if not action:
            raise ClbApiError(MISSING_PARAMETER, "The X-TC-Action header is required.")
        if self.signature_check:
            self._verifier.leeway_s = self.model.config.signature_leeway_s
            self._verifier.verify(request.method, request.path, request.query, headers, request.body)
        version = headers.get("x-tc-version")
        if version != API_VERSION:
            raise ClbApiError(NO_SUCH_VERSION, f"X-TC-Version {version!r} is not served; CLB uses {API_VERSION}.")
        if headers.get("content-type", "").split(";")[0].strip() != JSON_CONTENT_TYPE:
            raise ClbApiError(UNSUPPORTED_OPERATION, "Send the request body as application/json (TC3 signing).")
        try:
            params = json.loads(request.body.decode("utf-8") or "{}")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ClbApiError(FORMAT_ERROR, f"The request body is not valid JSON: {exc}.") from None
        if not isinstance(params, dict):
            raise ClbApiError(FORMAT_ERROR, "The request body must be a JSON object.")
        return params

    @staticmethod
    def _error(exc: ClbApiError, request_id: str) -> ApiReply:
        return _json_reply({"Error": {"Code": exc.code, "Message": exc.message}, "RequestId": request_id})
