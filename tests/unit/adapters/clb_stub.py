"""A scripted CLB API stub for the gateway's unit tests: the real SDK talks to it through `responses`.

Each action answers from a handler (params -> response fields) or a queued scripted failure, and every
request is recorded (action, params, headers) so tests can count calls and inspect what was sent.
The full CLB emulator model replaces this in tests/functional/adapters once it is available.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

from shared.config import Settings

CLB_URL = "https://clb.tencentcloudapi.com/"
Handler = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class Call:
    action: str
    params: dict[str, Any]
    headers: dict[str, str]


@dataclass
class ClbStub:
    calls: list[Call] = field(default_factory=list)
    handlers: dict[str, Handler] = field(default_factory=dict)
    failures: dict[str, deque[str | tuple[str, str]]] = field(default_factory=lambda: defaultdict(deque))
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def on(self, action: str, handler: Handler | dict[str, Any]) -> None:
        self.handlers[action] = handler if callable(handler) else (lambda _p, reply=handler: dict(reply))

    def fail(self, action: str, code: str, message: str = "scripted", times: int = 1) -> None:
        """Queue `times` failures: a CLB error code, or "DROP" for a connection dropped mid-call."""
        for _ in range(times):
            self.failures[action].append(code if code == "DROP" else (code, message))

    def actions(self, name: str | None = None) -> list[Call]:
        return [c for c in self.calls if name is None or c.action == name]

    def __call__(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        action = request.headers["X-TC-Action"]
        body = request.body.decode() if isinstance(request.body, bytes) else (request.body or "{}")
        params = json.loads(body)
        self.calls.append(Call(action, params, dict(request.headers)))
        request_id = f"req-{next(self._ids)}"
        if self.failures[action]:
            failure = self.failures[action].popleft()
            if failure == "DROP":
                raise requests.ConnectionError("connection reset by peer")
            code, message = failure
            reply = {"Error": {"Code": code, "Message": message}, "RequestId": request_id}
        elif action in self.handlers:
            reply = {**self.handlers[action](params), "RequestId": request_id}
        else:
            raise AssertionError(f"unexpected CLB action {action}: {params}")
        return 200, {"Content-Type": "application/json"}, json.dumps({"Response": reply})


class BucketStore:
    """Just the Store's token bucket, in memory, so write throttling can be observed."""

    def __init__(self) -> None:
        self.levels: dict[str, tuple[float, float]] = {}
        self.takes: list[str] = []

    def take_tokens(self, bucket: str, *, rate_per_s: float, burst: float, n: float, now: float) -> float:
        level, at = self.levels.get(bucket, (burst, now))
        level = min(burst, level + (now - at) * rate_per_s)
        self.takes.append(bucket)
        # At epoch ~1.7e9 a float clock cannot represent sub-microsecond refills; tolerate that dust.
        if level >= n - 1e-4:
            self.levels[bucket] = (level - n, now)
            return 0.0
        self.levels[bucket] = (level, now)
        return (n - level) / rate_per_s


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"secret_id": "AKIDunitunitunitunitunit", "secret_key": "unit-key", **overrides}
    return Settings.load(environ={}, **values)
