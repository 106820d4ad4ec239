"""Fixtures for the plumbing integration tests: a router behind a real HTTP server, the relay, the simulator.

The router runs in-process behind a small HTTP server that turns each request into an API gateway
event (the local runtime's own converter) and calls `shared.router.route_signed` with a SQLite store;
the Invoker only records what would be dispatched, so these tests see exactly what the router plans.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from emulators.runtime.scf_context import api_gateway_event
from shared.adapters.store_factory import open_store
from shared.clock import SystemClock
from shared.config import Settings
from shared.deps import Deps
from shared.events.apigw import ApiGatewayEvent
from shared.router import route_signed
from tests.support.fakes import StepQueue
from tests.support.net import BackgroundServer

HMAC_KEY = "integration-relay-key"


def pods_for(invoker: StepQueue, step: str) -> set[str]:
    """The Pods ("ns/name") of every `step` invocation made so far."""
    return {
        f"{p['namespace']}/{p['name']}" for name, payload in invoker.snapshot() if name == step for p in payload["pods"]
    }


class RouterServer:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.statuses: list[int] = []
        router = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                event = api_gateway_event(
                    method="POST", raw_path=self.path, headers=dict(self.headers), body=body, source_ip="127.0.0.1"
                )
                response = route_signed(router.deps, ApiGatewayEvent.model_validate(event))
                router.statuses.append(response.status_code)
                payload = response.body.encode()
                self.send_response(response.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = BackgroundServer(Handler, start=False)
        self.url = self._server.url("/router")

    def start(self) -> RouterServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()


@pytest.fixture
def invoker() -> StepQueue:
    return StepQueue()


@pytest.fixture
def router_deps(tmp_path: Path, invoker: StepQueue) -> Iterator[Deps]:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    settings = Settings.load({}, relay_hmac_key=HMAC_KEY, store_url=url)
    store = open_store(url)
    yield Deps(settings=settings, store=store, clock=SystemClock(), invoker=invoker)
    store.close()


@pytest.fixture
def router(router_deps: Deps) -> Iterator[RouterServer]:
    server = RouterServer(router_deps).start()
    yield server
    server.stop()


def decoded(body: bytes) -> Any:
    return json.loads(body)
