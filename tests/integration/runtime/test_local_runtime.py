"""The local runtime serves functions SCF-style: API gateway events, async retries, dead letters, timers."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulators.runtime.runtime import FunctionSpec, LocalRuntime, TimerSpec
from tests.integration.runtime import sample_functions as sample
from tests.support.polling import eventually

MODULE = "tests.integration.runtime.sample_functions"


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[LocalRuntime]:
    sample.calls.clear()
    sample.attempts.clear()
    rt = LocalRuntime(
        functions=[FunctionSpec("echo", entry=f"{MODULE}:echo"), FunctionSpec("flaky", entry=f"{MODULE}:flaky")],
        timers=[TimerSpec("every-200ms", "echo", 0.2, message="tick")],
        retry_delay_s=0.05,
        dead_letter_path=tmp_path / "dead.jsonl",
        environ={"CLB_DIRECT_TEST_MARKER": "1"},
    )
    rt.start()
    yield rt
    rt.stop()


def _post(url: str, payload: object) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_http_request_becomes_an_api_gateway_event_and_integrated_response(runtime: LocalRuntime) -> None:
    status, body = _post(f"{runtime.url}/echo/some/path?x=1", {"hello": "world"})
    assert status == 200
    assert body["path"] == "/echo/some/path"
    assert json.loads(str(body["body"])) == {"hello": "world"}
    name, event, context = next(c for c in sample.calls if c[0] == "echo" and c[1].get("httpMethod"))
    assert event["queryString"] == {"x": "1"}
    assert event["requestContext"]["httpMethod"] == "POST"
    assert context["function_name"] == "echo" and context["request_id"] == body["request_id"]
    assert context["time_limit_in_ms"] == 60000


def test_each_invocation_gets_a_fresh_context(runtime: LocalRuntime) -> None:
    _post(f"{runtime.url}/echo", {})
    _post(f"{runtime.url}/echo", {})
    ids = {c[2]["request_id"] for c in sample.calls if c[1].get("httpMethod")}
    assert len(ids) == 2


def test_async_invoke_retries_twice_then_succeeds(runtime: LocalRuntime) -> None:
    status, body = _post(runtime.invoke_url, {"function": "flaky", "payload": {"key": "a", "fail_times": 2}})
    assert status == 202 and body["RequestId"]
    eventually(lambda: sample.attempts.get("a") == 3 and runtime.queue.pending() == 0, "three attempts of a")
    assert runtime.queue.stats.succeeded >= 1
    assert runtime.queue.dead_letters == []


def test_async_invoke_dead_letters_after_three_failed_attempts(runtime: LocalRuntime, tmp_path: Path) -> None:
    runtime.submit("flaky", {"key": "b", "fail_times": 99})
    eventually(lambda: len(runtime.queue.dead_letters) == 1, "one dead letter")
    assert sample.attempts["b"] == 3
    letter = json.loads((tmp_path / "dead.jsonl").read_text().splitlines()[0])
    assert letter["function"] == "flaky" and letter["attempts"] == 3 and "attempt 3 failed" in letter["error"]


def test_bad_invoke_requests_are_rejected_with_the_reason(runtime: LocalRuntime) -> None:
    status, body = _post(runtime.invoke_url, {"function": "flaky"})
    assert status == 400 and "payload" in str(body["error"])
    status, body = _post(f"{runtime.url}/nosuch", {})
    assert status == 404


def test_timers_deliver_timer_events(runtime: LocalRuntime) -> None:
    eventually(lambda: sum(1 for c in sample.calls if c[1].get("Type") == "Timer") >= 2, "two timer events")
    timer_event = next(c[1] for c in sample.calls if c[1].get("Type") == "Timer")
    assert timer_event["TriggerName"] == "every-200ms" and timer_event["Message"] == "tick"


def test_stats_endpoint_reports_invocations(runtime: LocalRuntime) -> None:
    _post(f"{runtime.url}/echo", {})
    with urllib.request.urlopen(f"{runtime.url}/_runtime/stats", timeout=10) as response:
        stats = json.loads(response.read())
    assert stats["invocations"]["echo"] >= 1


def test_stop_puts_back_the_environment_the_runtime_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLB_DIRECT_TEST_KEPT", "before")
    monkeypatch.delenv("CLB_DIRECT_TEST_MARKER", raising=False)
    rt = LocalRuntime(
        functions=[FunctionSpec("echo", entry=f"{MODULE}:echo")],
        environ={"CLB_DIRECT_TEST_MARKER": "1", "CLB_DIRECT_TEST_KEPT": "during"},
    )
    rt.start()
    try:
        assert (os.environ["CLB_DIRECT_TEST_MARKER"], os.environ["CLB_DIRECT_TEST_KEPT"]) == ("1", "during")
    finally:
        rt.stop()
    assert "CLB_DIRECT_TEST_MARKER" not in os.environ, "a later runtime in this process must not inherit it"
    assert os.environ["CLB_DIRECT_TEST_KEPT"] == "before"
