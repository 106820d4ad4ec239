"""Invokers: SCF Invoke through the real SDK (intercepted by `responses`), the local runtime's HTTP
invoke, and `invoker = "inline"` only where the hosting process provides one (the local runtime's
InlineInvoker is tested in tests/unit/plumbing/test_inline_invoker.py)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
import requests
import responses

from shared.adapters.clb_errors import RetryPolicy
from shared.adapters.invokers import (
    MAX_ASYNC_PAYLOAD_BYTES,
    HttpInvoker,
    ScfInvoker,
    build_invoker,
)
from shared.clock import FakeClock
from shared.domain.errors import ConfigError, PermanentError, RetryableError
from tests.unit.adapters.clb_stub import settings

SCF_URL = "https://scf.tencentcloudapi.com/"
RUNTIME_URL = "http://127.0.0.1:9000/_invoke"


def scf_reply(request: requests.PreparedRequest, seen: list[Any]) -> tuple[int, dict[str, str], str]:
    seen.append((dict(request.headers), json.loads(request.body or b"{}")))
    body = {"Response": {"Result": {"FunctionRequestId": "fn-req-1"}, "RequestId": "api-req-1"}}
    return 200, {"Content-Type": "application/json"}, json.dumps(body)


def test_scf_invoke_sends_event_invocation_with_json_client_context() -> None:
    seen: list[Any] = []
    invoker = ScfInvoker.from_settings(settings(scf_namespace="clb-direct", region="ap-shanghai"), clock=FakeClock())
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, SCF_URL, callback=lambda r: scf_reply(r, seen))
        assert invoker.invoke_async("bind", {"step": "bind", "lb_id": "lb-1"}) == "fn-req-1"
    headers, body = seen[0]
    assert headers["X-TC-Action"] == "Invoke" and headers["X-TC-Version"] == "2018-04-16"
    assert headers["X-TC-Region"] == "ap-shanghai"
    assert body["FunctionName"] == "bind" and body["InvocationType"] == "Event" and body["Namespace"] == "clb-direct"
    assert json.loads(body["ClientContext"]) == {"step": "bind", "lb_id": "lb-1"}


def test_scf_invoke_targets_the_deployed_name_from_the_template() -> None:
    """multi-scf deploys `<name>-<stage>-<app>-<key>`: the Invoke must name that, not the bare key."""
    seen: list[Any] = []
    template = "clb-direct-prod-clb-direct-{function}"
    invoker = ScfInvoker.from_settings(settings(function_name_template=template), clock=FakeClock())
    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, SCF_URL, callback=lambda r: scf_reply(r, seen))
        invoker.invoke_async("bind", {"step": "bind"})
        invoker.invoke_async("flip", {"step": "flip"})
    assert [body["FunctionName"] for _, body in seen] == [
        "clb-direct-prod-clb-direct-bind",
        "clb-direct-prod-clb-direct-flip",
    ]


@pytest.mark.parametrize("template", ["clb-direct-prod", "{function}-{function}", "{stage}-{function}"])
def test_function_name_template_must_name_each_function_once(template: str) -> None:
    with pytest.raises(ConfigError, match="function_name_template"):
        settings(function_name_template=template)


def test_scf_invoke_retries_throttling_and_names_permanent_failures() -> None:
    clock = FakeClock()
    invoker = ScfInvoker.from_settings(settings(), clock=clock)
    invoker._retry = RetryPolicy(deadline_s=30, rng=random.Random(1))
    answers = iter(["RequestLimitExceeded", None, "ResourceNotFound.Function"])
    seen: list[Any] = []

    def reply(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        code = next(answers)
        if code is None:
            return scf_reply(request, seen)
        return (
            200,
            {"Content-Type": "application/json"},
            json.dumps({"Response": {"Error": {"Code": code, "Message": "nope"}, "RequestId": "r-9"}}),
        )

    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, SCF_URL, callback=reply)
        assert invoker.invoke_async("flip", {"step": "flip"}) == "fn-req-1"
        assert len(clock.sleeps) == 1
        with pytest.raises(
            PermanentError, match=r"SCF Invoke\(flip\) failed: ResourceNotFound.Function: nope \(RequestId r-9\)"
        ):
            invoker.invoke_async("flip", {"step": "flip"})


def test_oversized_payload_is_refused_before_sending() -> None:
    invoker = ScfInvoker.from_settings(settings(), clock=FakeClock())
    with responses.RequestsMock():  # any request would fail: none may be sent
        with pytest.raises(PermanentError, match="split_request"):
            invoker.invoke_async("bind", {"blob": "x" * MAX_ASYNC_PAYLOAD_BYTES})


@responses.activate
def test_http_invoker_posts_function_and_payload() -> None:
    responses.add(responses.POST, RUNTIME_URL, json={"RequestId": "local-1"}, status=202)
    assert HttpInvoker(RUNTIME_URL).invoke_async("unbind", {"step": "unbind"}) == "local-1"
    assert json.loads(responses.calls[0].request.body) == {"function": "unbind", "payload": {"step": "unbind"}}


@responses.activate
def test_http_invoker_classifies_failures() -> None:
    invoker = HttpInvoker(RUNTIME_URL)
    responses.add(responses.POST, RUNTIME_URL, body=requests.ConnectionError("refused"))
    with pytest.raises(RetryableError, match="unreachable"):
        invoker.invoke_async("bind", {})
    responses.replace(responses.POST, RUNTIME_URL, json={"error": "busy"}, status=503)
    with pytest.raises(RetryableError, match="503"):
        invoker.invoke_async("bind", {})
    responses.replace(responses.POST, RUNTIME_URL, json={"error": "bad invoke request"}, status=400)
    with pytest.raises(PermanentError, match="400"):
        invoker.invoke_async("bind", {})


def test_build_invoker_by_setting() -> None:
    assert isinstance(build_invoker(settings(invoker="scf")), ScfInvoker)
    assert isinstance(build_invoker(settings(invoker="local", local_invoke_url=RUNTIME_URL)), HttpInvoker)
    with pytest.raises(ConfigError, match="LOCAL_INVOKE_URL"):
        build_invoker(settings(invoker="local"))


def test_inline_needs_a_host_that_provides_it() -> None:
    from cli._inline import install_inline_invoker
    from emulators.runtime.inline import InlineInvoker
    from shared.adapters.invokers import provide_in_process_invoker

    provide_in_process_invoker(None)
    try:
        with pytest.raises(ConfigError, match="CLB_DIRECT_INVOKER=scf"):
            build_invoker(settings(invoker="inline"))
    finally:
        install_inline_invoker()
    assert isinstance(build_invoker(settings(invoker="inline")), InlineInvoker)
