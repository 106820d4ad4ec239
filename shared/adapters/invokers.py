"""The `Invoker` port: SCF async Invoke, the local runtime over HTTP, or an in-process one a host provides.

`build_invoker(settings)` (called by `shared.deps.build_deps` and handlers) picks one by
`Settings.invoker`: "scf" in production (tencentcloud `scf` SDK, `InvocationType=Event`), "local" for
`clb-direct serve` (POST to the runtime's `/_invoke`), "inline" only where the process hosting the
functions installed one with `provide_in_process_invoker` (the CLI and the tests install the local
runtime's `InlineInvoker`, which runs handlers synchronously with SCF's retry-then-dead-letter semantics).
Async payloads are capped at 128 KB by SCF's Invoke API; every invoker refuses a larger one, and the
router cuts oversized StepRequests with `shared.domain.routing.split_request` first.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import requests
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.scf.v20180416 import models as scf_models
from tencentcloud.scf.v20180416 import scf_client

from shared.adapters.clb_errors import RetryPolicy, call_with_retry
from shared.clock import SystemClock
from shared.config import Settings
from shared.domain.errors import ConfigError, PermanentError, RetryableError
from shared.domain.limits import SCF_ASYNC_PAYLOAD_LIMIT_BYTES
from shared.logging import get_logger
from shared.ports import Clock, Invoker

log = get_logger("shared.adapters.invokers")

MAX_ASYNC_PAYLOAD_BYTES = SCF_ASYNC_PAYLOAD_LIMIT_BYTES


def encode_payload(function: str, payload: Mapping[str, Any]) -> str:
    """The JSON an async invocation carries; refuses what SCF would refuse (over 128 KB)."""
    text = json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str)
    size = len(text.encode("utf-8"))
    if size > MAX_ASYNC_PAYLOAD_BYTES:
        raise PermanentError(
            f"async payload for {function} is {size} bytes, over SCF's {MAX_ASYNC_PAYLOAD_BYTES}-byte limit; "
            "split it with shared.domain.routing.split_request() before invoking",
            code="PayloadTooLarge",
        )
    return text


# ---------------------------------------------------------------------------------------------- SCF


class ScfInvoker:
    """SCF `Invoke` with `InvocationType=Event`; the payload travels as the `ClientContext` JSON string."""

    def __init__(
        self,
        client: scf_client.ScfClient,
        *,
        namespace: str = "default",
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        function_name: Callable[[str], str] = str,
    ) -> None:
        self._client = client
        self._namespace = namespace
        # The deploy tool renames functions (multi-scf: <name>-<stage>-<app>-<key>); every call maps our
        # function key to the deployed name through this one setting (Settings.function_name).
        self._function_name = function_name
        self._clock: Clock = clock or SystemClock()
        self._retry = retry or RetryPolicy(deadline_s=30.0)

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock | None = None) -> ScfInvoker:
        secret_id, secret_key, token = settings.require_credentials()
        # The SDK's default request timeout (60 s) outlasts most of our functions' own; a hung Invoke is
        # abandoned and retried instead.
        http_profile = HttpProfile(endpoint=settings.scf_endpoint, reqTimeout=settings.clb_request_timeout_s)
        profile = ClientProfile(httpProfile=http_profile)
        client = scf_client.ScfClient(credential.Credential(secret_id, secret_key, token), settings.region, profile)
        return cls(
            client,
            namespace=settings.scf_namespace,
            clock=clock,
            retry=RetryPolicy(deadline_s=settings.clb_call_deadline_s),
            function_name=settings.function_name,
        )

    def invoke_async(self, function: str, payload: Mapping[str, Any]) -> str:
        request = scf_models.InvokeRequest()
        request.FunctionName = self._function_name(function)
        request.InvocationType = "Event"
        request.Namespace = self._namespace
        request.ClientContext = encode_payload(function, payload)
        response = call_with_retry(
            f"Invoke({function})",
            lambda: self._client.Invoke(request),
            clock=self._clock,
            policy=self._retry,
            service="SCF",
        )
        result = response.Result
        request_id = str((result.FunctionRequestId if result is not None else None) or response.RequestId)
        log.info("function.invoked", target=function, function_name=request.FunctionName, invoke_request_id=request_id)
        return request_id


# ---------------------------------------------------------------------------------------------- local runtime


class HttpInvoker:
    """POSTs `{"function", "payload"}` to the local runtime's invoke URL; it answers 202 {"RequestId"}."""

    def __init__(self, url: str, *, timeout_s: float = 10.0, session: requests.Session | None = None) -> None:
        self._url = url
        self._timeout_s = timeout_s
        self._session = session or requests.Session()

    def invoke_async(self, function: str, payload: Mapping[str, Any]) -> str:
        body = json.dumps({"function": function, "payload": json.loads(encode_payload(function, payload))})
        try:
            response = self._session.post(
                self._url, data=body, headers={"Content-Type": "application/json"}, timeout=self._timeout_s
            )
        except requests.RequestException as exc:
            raise RetryableError(
                f"local runtime at {self._url} unreachable for {function}: {exc}", delay_s=1.0
            ) from exc
        if response.status_code >= 500:
            raise RetryableError(
                f"local runtime refused {function} with HTTP {response.status_code}: {response.text[:200]}", delay_s=1.0
            )
        if response.status_code >= 400:
            raise PermanentError(
                f"local runtime rejected the invocation of {function} (HTTP {response.status_code}): "
                f"{response.text[:200]}",
                code=str(response.status_code),
            )
        try:
            return str(response.json()["RequestId"])
        except (ValueError, KeyError, TypeError) as exc:
            raise PermanentError(
                f"local runtime at {self._url} answered {function} without a RequestId: {response.text[:200]}"
            ) from exc


# ---------------------------------------------------------------------------------------------- in-process

# `invoker = "inline"` runs the functions inside this process: only a host that has them can provide it
# (the CLI, the test suite: `emulators.runtime.inline.InlineInvoker` over a handler map). Production code
# never imports a runtime, so the host hands a factory in here.
_in_process_factory: Callable[[], Invoker] | None = None


def provide_in_process_invoker(factory: Callable[[], Invoker] | None) -> None:
    """Install (or, with None, remove) what `invoker = "inline"` builds in this process."""
    global _in_process_factory
    _in_process_factory = factory


def build_invoker(settings: Settings, *, clock: Clock | None = None) -> Invoker:
    if settings.invoker == "scf":
        return ScfInvoker.from_settings(settings, clock=clock)
    if settings.invoker == "local":
        if not settings.local_invoke_url:
            raise ConfigError("CLB_DIRECT_INVOKER=local needs CLB_DIRECT_LOCAL_INVOKE_URL (the runtime's /_invoke URL)")
        return HttpInvoker(settings.local_invoke_url)
    if _in_process_factory is None:
        raise ConfigError(
            "CLB_DIRECT_INVOKER=inline runs the functions inside this process, which only the clb-direct CLI and "
            "the tests provide; on SCF set CLB_DIRECT_INVOKER=scf, under `clb-direct serve` use local"
        )
    return _in_process_factory()
