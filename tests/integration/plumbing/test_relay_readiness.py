"""The relay's readiness reflects the router (and, with the watch source, the watches); its metrics report
queue depth and forward errors in the shared metric schema. The Deployment's readinessProbe is /readyz."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request

from relay.app import NOT_READY_AFTER_FAILURES
from shared.logging import configure_logging
from tests.integration.plumbing.test_relay_lossless import FakeRouter, _event_list, _pod_event, _relay
from tests.support.polling import eventually


def probe(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_readiness_follows_the_router_and_metrics_count_forward_errors() -> None:
    router = FakeRouter()
    out = io.StringIO()
    configure_logging(stream=out, force=True)
    relay = _relay(router, backoff_base_s=0.01, backoff_cap_s=0.02)
    relay.start()
    try:
        assert probe(relay.url) == (200, {"ready": True, "reason": "ok"})
        router.up.clear()
        relay._on_event_list(_event_list([_pod_event("p1", 10)]))
        eventually(lambda: probe(relay.url)[0] == 503, "not ready while the router is down", timeout=30)
        status, body = probe(relay.url)
        assert body["ready"] is False and "forwards to the router failed" in body["reason"]
        assert relay.batcher.consecutive_failures >= NOT_READY_AFTER_FAILURES
        router.up.set()
        eventually(lambda: probe(relay.url)[0] == 200, "ready again once a batch went through", timeout=30)
        with urllib.request.urlopen(relay.url + "/healthz", timeout=10) as response:
            assert response.status == 200  # liveness stays up: restarting would not bring the router back
    finally:
        relay.stop()
        configure_logging(force=True)
    records = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    metrics = [r for r in records if r.get("event") == "metric"]
    errors = [r for r in metrics if r["metric_name"] == "relay_forward_errors"]
    assert errors and all(r["dimensions"] == {"status": "0"} for r in errors)
    depth = [r["metric_value"] for r in metrics if r["metric_name"] == "relay_queue_depth"]
    assert depth and max(depth) >= 1 and depth[-1] == 1.0  # the one pending object, delivered on the last send
