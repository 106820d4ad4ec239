"""One contract for the `Invoker` port, on the suite's fake (StepQueue), the local runtime's in-process invoker,
and the SCF and local-runtime HTTP adapters (their transports intercepted by `responses`).

Each returns a request id, delivers the callee its own equal copy of the payload, and refuses a payload over
SCF's 128 KB async limit with a PermanentError before anything is sent, so no test passes on a kinder fake.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import responses

from shared.adapters.invokers import MAX_ASYNC_PAYLOAD_BYTES, HttpInvoker, ScfInvoker
from shared.clock import FakeClock
from shared.domain.errors import PermanentError
from shared.ports import Invoker
from tests.support.fakes import StepQueue
from tests.unit.adapters.clb_stub import settings

SCF_URL = "https://scf.tencentcloudapi.com/"
RUNTIME_URL = "http://127.0.0.1:9000/_invoke"
PAYLOAD = {"step": "flip", "pods": [{"namespace": "shop", "name": "web-1"}], "reason": "contract"}


@dataclass
class Subject:
    invoker: Invoker
    delivered: Callable[[], list[tuple[str, dict[str, Any]]]]


def _scf(rsps: responses.RequestsMock) -> Subject:
    def reply(request: Any) -> tuple[int, dict[str, str], str]:
        body = {"Response": {"Result": {"FunctionRequestId": "fn-1"}, "RequestId": "api-1"}}
        return 200, {}, json.dumps(body)

    rsps.add_callback(responses.POST, SCF_URL, callback=reply)

    def delivered() -> list[tuple[str, dict[str, Any]]]:
        bodies = [json.loads(call.request.body or b"{}") for call in rsps.calls]
        return [(b["FunctionName"], json.loads(b["ClientContext"])) for b in bodies]

    return Subject(ScfInvoker.from_settings(settings(), clock=FakeClock()), delivered)


def _http(rsps: responses.RequestsMock) -> Subject:
    rsps.add(responses.POST, RUNTIME_URL, json={"RequestId": "local-1"}, status=202)

    def delivered() -> list[tuple[str, dict[str, Any]]]:
        bodies = [json.loads(call.request.body or b"{}") for call in rsps.calls]
        return [(b["function"], b["payload"]) for b in bodies]

    return Subject(HttpInvoker(RUNTIME_URL), delivered)


def _inline(received: list[tuple[str, dict[str, Any]]]) -> Subject:
    from emulators.runtime.inline import InlineInvoker
    from shared.adapters.invokers import encode_payload

    def record(event: dict[str, Any], context: dict[str, Any]) -> None:
        received.append((context["function_name"], event))

    return Subject(InlineInvoker({"flip": record}, encode=encode_payload), lambda: received)


def _fake() -> Subject:
    queue = StepQueue()
    return Subject(queue, lambda: [(f, p) for f, p in queue.queue])


@pytest.fixture(params=["fake", "inline", "scf", "local-http"])
def subject(request: pytest.FixtureRequest) -> Iterator[Subject]:
    if request.param == "fake":
        yield _fake()
    elif request.param == "inline":
        yield _inline([])
    else:
        with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
            yield _scf(rsps) if request.param == "scf" else _http(rsps)


def test_delivers_an_equal_copy_and_answers_a_request_id(subject: Subject) -> None:
    payload = json.loads(json.dumps(PAYLOAD))
    request_id = subject.invoker.invoke_async("flip", payload)
    assert isinstance(request_id, str) and request_id
    payload["pods"][0]["name"] = "changed-after-the-call"
    assert subject.delivered() == [("flip", PAYLOAD)]


def test_refuses_a_payload_over_the_async_limit_before_sending(subject: Subject) -> None:
    with pytest.raises(PermanentError, match="split_request"):
        subject.invoker.invoke_async("flip", {"step": "flip", "blob": "x" * MAX_ASYNC_PAYLOAD_BYTES})
    assert subject.delivered() == []
