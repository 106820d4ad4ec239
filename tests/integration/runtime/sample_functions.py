"""Tiny SCF-style handlers the runtime tests load by module path."""

from __future__ import annotations

import json
import threading
from typing import Any

calls: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
attempts: dict[str, int] = {}
lock = threading.Lock()


def echo(event: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    with lock:
        calls.append(("echo", event, context))
    return {
        "isBase64Encoded": False,
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"path": event["path"], "body": event["body"], "request_id": context["request_id"]}),
    }


def flaky(event: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Fails `event["fail_times"]` times per key, then succeeds."""
    key = event["key"]
    with lock:
        attempts[key] = attempts.get(key, 0) + 1
        attempt = attempts[key]
        calls.append(("flaky", event, context))
    if attempt <= event["fail_times"]:
        raise RuntimeError(f"attempt {attempt} failed")
    return {"ok": True, "attempt": attempt}
