"""SCF-shaped invocation context and API-gateway event translation.

The local runtime gives every invocation a fresh `context` dict with the keys a real SCF Python runtime passes
(SCF's Python runtime passes a dict) and turns plain HTTP requests into API-gateway "integrated request" events,
and the handler's integrated response back into HTTP (§4.2).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit


def make_context(
    function: str,
    *,
    memory_mb: int = 256,
    timeout_s: float = 60.0,
    namespace: str = "default",
    region: str = "ap-guangzhou",
    request_id: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A fresh SCF Python `context` dict for one invocation."""
    env = dict(environ or {})
    return {
        "callbackWaitsForEmptyEventLoop": True,
        "memory_limit_in_mb": memory_mb,
        "time_limit_in_ms": int(timeout_s * 1000),
        "request_id": request_id or str(uuid.uuid4()),
        "environment": json.dumps(env),
        "environ": ";".join(f"{k}={v}" for k, v in env.items()),
        "function_version": "$LATEST",
        "function_name": function,
        "namespace": namespace,
        "tencentcloud_region": region,
        "tencentcloud_appid": "1250000000",
        "tencentcloud_uin": "100000000001",
    }


def api_gateway_event(
    *,
    method: str,
    raw_path: str,
    headers: Mapping[str, str],
    body: bytes,
    source_ip: str,
    service_id: str = "service-local",
) -> dict[str, Any]:
    """An API gateway integrated-request event for an HTTP request, as SCF delivers it."""
    parts = urlsplit(raw_path)
    query: dict[str, Any] = {k: (v[0] if len(v) == 1 else v) for k, v in parse_qs(parts.query).items()}
    try:
        text = body.decode("utf-8")
        is_b64 = False
    except UnicodeDecodeError:
        text = base64.b64encode(body).decode("ascii")
        is_b64 = True
    request_id = str(uuid.uuid4())
    return {
        "requestContext": {
            "serviceId": service_id,
            "path": parts.path,
            "httpMethod": method,
            "requestId": request_id,
            "identity": {},
            "sourceIp": source_ip,
            "stage": "release",
        },
        "headers": {k.lower(): v for k, v in headers.items()},
        "body": text,
        "isBase64Encoded": is_b64,
        "pathParameters": {},
        "queryStringParameters": query,
        "headerParameters": {},
        "stageVariables": {},
        "path": parts.path,
        "queryString": query,
        "httpMethod": method,
    }


def timer_event(trigger_name: str, message: str = "") -> dict[str, Any]:
    """A timer trigger event (§4.2)."""
    return {
        "Type": "Timer",
        "TriggerName": trigger_name,
        "Time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "Message": message,
    }


def http_response_from_result(result: Any) -> tuple[int, dict[str, str], bytes]:
    """Map a handler's return value to (status, headers, body) like the API gateway's integrated response.

    A dict with `statusCode` is an integrated response; anything else is serialised as a 200 JSON body.
    """
    if isinstance(result, Mapping) and "statusCode" in result:
        status = int(result["statusCode"])
        headers = {str(k): str(v) for k, v in dict(result.get("headers") or {}).items()}
        body = result.get("body", "")
        if isinstance(body, (dict, list)):
            raw = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        elif result.get("isBase64Encoded"):
            raw = base64.b64decode(str(body))
        else:
            raw = str(body).encode()
        return status, headers, raw
    return 200, {"Content-Type": "application/json"}, json.dumps(result, default=str).encode()
