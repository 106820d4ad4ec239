"""The one error seam: every handler maps failures through `http_error` (API gateway) or `async_error` (async,
timer), and a configuration error is a permanent, clearly worded failure, never a retry.

Each handler is called three ways: with settings that cannot load (a ConfigError while it builds its deps),
with input it cannot parse, and with a store that fails transiently (a RetryableError), which HTTP answers
with 503 and async invocations raise so SCF retries.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from shared.clock import FakeClock
from shared.config import Settings
from shared.deps import Deps
from shared.domain.errors import (
    AdmissionDenied,
    ConfigError,
    InvalidInput,
    LimitExceeded,
    PermanentError,
    RetryableError,
)
from shared.shell import FunctionShell, async_error, http_error
from shared.signing import SignatureRejected
from tests.conftest import load_event

STEP_FUNCTIONS = ["service", "bind", "unbind", "flip", "guardian"]
ALL_FUNCTIONS = [*STEP_FUNCTIONS, "admission", "router", "health", "reconcile", "prestop"]
TIMER = {"Type": "Timer", "TriggerName": "every-minute", "Time": "2026-01-01T00:00:00Z", "Message": ""}
CONTEXT = {"request_id": "req-1"}


def _module(function: str) -> Any:
    return importlib.import_module(f"functions.{function}.handler")


@pytest.fixture
def fresh_shell() -> Iterator[None]:
    """Every handler's shell builds its deps again from the environment; their injected deps come back after."""
    shells: list[FunctionShell] = [
        _module(f).shell for f in [*STEP_FUNCTIONS, "admission", "router", "health", "reconcile"]
    ]
    saved = [(shell, shell._deps) for shell in shells]
    for shell in shells:
        shell.use(None)
    yield
    for shell, deps in saved:
        shell.use(deps)


@pytest.fixture
def bad_settings(monkeypatch: pytest.MonkeyPatch, fresh_shell: None) -> None:
    monkeypatch.setenv("CLB_DIRECT_STORE_URL", "bogus://nowhere")


def _body(response: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(response["body"])
    return body


def _assert_misconfigured(result: dict[str, Any]) -> None:
    assert result["error"] == "ConfigError" and result["retryable"] is False, result
    assert "misconfigured" in result["message"] and "store_url" in result["message"], result


# ---------------------------------------------------------------------------------------------- ConfigError


@pytest.mark.parametrize("function", STEP_FUNCTIONS)
def test_step_function_with_bad_settings_fails_permanently(function: str, bad_settings: None) -> None:
    result = _module(function).main_handler({"step": function, "reason": "test"}, CONTEXT)
    assert result["ok"] is False and result["function"] == function
    _assert_misconfigured(result)


@pytest.mark.parametrize(
    ("function", "event"),
    [
        ("reconcile", TIMER),
        ("health", TIMER),
        ("router", {"records": []}),
        ("router", {"kind": "EventList", "items": []}),
    ],
)
def test_async_entry_with_bad_settings_fails_permanently(
    function: str, event: dict[str, Any], bad_settings: None
) -> None:
    if "records" in event:
        event = load_event("cls_event")
    result = _module(function).main_handler(event, CONTEXT)
    assert result["ok"] is False
    _assert_misconfigured(result)


@pytest.mark.parametrize(
    ("function", "fixture"),
    [("admission", "admission_pod_create"), ("router", "relay_batch"), ("health", "health_notification")],
)
def test_http_entry_with_bad_settings_answers_500(function: str, fixture: str, bad_settings: None) -> None:
    event = load_event(fixture)
    if "requestContext" not in event:  # the body of a POST through the API gateway
        event = {
            "requestContext": {"httpMethod": "POST", "path": f"/{function}", "requestId": "apigw-1"},
            "httpMethod": "POST",
            "path": f"/{function}",
            "headers": {"content-type": "application/json"},
            "body": json.dumps(event),
        }
    response = _module(function).main_handler(event, CONTEXT)
    assert response["statusCode"] == 500, response
    _assert_misconfigured(_body(response))


def test_prestop_with_bad_settings_answers_500_at_once(bad_settings: None) -> None:
    event = {
        "requestContext": {"httpMethod": "GET", "path": "/prestop", "requestId": "apigw-1"},
        "httpMethod": "GET",
        "path": "/prestop",
        "queryString": {"namespace": "default", "id": "a" * 32},
        "headers": {"x-clb-direct-prestop-token": "b" * 64},
        "body": "",
    }
    response = _module("prestop").main_handler(event, CONTEXT)
    assert response["statusCode"] == 500, response
    _assert_misconfigured(_body(response))


# ---------------------------------------------------------------------------------------------- bad input


class _Unreachable:
    """Every call fails as an outage would (Redis, the CLB API, the API server): a transient failure."""

    def __init__(self, what: str) -> None:
        self._what = what

    def __getattr__(self, name: str) -> Any:
        def fail(*_args: object, **_kwargs: object) -> Any:
            raise RetryableError(f"{self._what} unreachable ({name})", delay_s=2.0)

        return fail


@pytest.fixture
def unreachable(fresh_shell: None) -> Deps:
    deps = Deps(
        settings=Settings.load({}),
        store=_Unreachable("store"),  # type: ignore[arg-type]
        clock=FakeClock(),
        clb=_Unreachable("CLB"),  # type: ignore[arg-type]
        cluster=_Unreachable("cluster"),  # type: ignore[arg-type]
        invoker=_Unreachable("invoker"),  # type: ignore[arg-type]
    )
    for function in ALL_FUNCTIONS:
        _module(function).shell.use(deps)
    return deps


@pytest.mark.parametrize("function", STEP_FUNCTIONS)
def test_step_function_answers_bad_input_without_retry(function: str, unreachable: Deps) -> None:
    result = _module(function).main_handler({"step": function, "pods": "not-a-list"}, CONTEXT)
    assert result["ok"] is False and result["error"] == "InvalidInput" and result["retryable"] is False
    assert "pods" in result["message"]


@pytest.mark.parametrize("function", ["router", "health", "reconcile"])
def test_async_entry_answers_an_unknown_event(function: str, unreachable: Deps) -> None:
    result = _module(function).main_handler({"what": "is this"}, CONTEXT)
    assert result["ok"] is False and result["error"] == "InvalidInput"


def test_admission_answers_a_malformed_review_with_400(unreachable: Deps) -> None:
    response = _module("admission").main_handler(load_event("admission_malformed"), CONTEXT)
    assert response["statusCode"] == 400 and _body(response)["error"] == "InvalidInput"


# ---------------------------------------------------------------------------------------------- transient failures


@pytest.mark.parametrize("function", ["service", "bind", "unbind", "flip"])
def test_step_function_raises_a_transient_failure_for_scf_to_retry(function: str, unreachable: Deps) -> None:
    event = load_event(f"{function}_web") if function != "unbind" else load_event("unbind_pod")
    with pytest.raises(RetryableError, match="unreachable"):
        _module(function).main_handler(event, CONTEXT)


def test_timer_entries_raise_a_transient_failure(unreachable: Deps) -> None:
    for function in ("reconcile", "health"):
        with pytest.raises(RetryableError, match="unreachable"):
            _module(function).main_handler(TIMER, CONTEXT)


def test_admission_answers_a_transient_failure_with_503(unreachable: Deps) -> None:
    response = _module("admission").main_handler(load_event("admission_pod_create"), CONTEXT)
    assert response["statusCode"] == 503 and _body(response)["retryable"] is True


# ---------------------------------------------------------------------------------------------- the seam itself


class _Strict(BaseModel):
    count: int


def _validation_error() -> ValidationError:
    try:
        _Strict.model_validate({"count": "many"})
    except ValidationError as exc:
        return exc
    raise AssertionError("validation passed")


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (SignatureRejected("unsigned"), 401),
        (InvalidInput("bad field"), 400),
        (LimitExceeded("quota"), 400),
        (PermanentError("no"), 400),
        (AdmissionDenied(403, "denied"), 403),
        (ConfigError("store_url is wrong"), 500),
        (RetryableError("later"), 503),
    ],
)
def test_http_error_status_by_class(error: Exception, status: int) -> None:
    response = http_error("router", error)  # type: ignore[arg-type]
    assert response["statusCode"] == status
    assert _body(response)["error"] == type(error).__name__


def test_validation_errors_are_bad_input_naming_the_field() -> None:
    response = http_error("health", _validation_error())
    assert response["statusCode"] == 400 and "count" in _body(response)["message"]
    result = async_error("reconcile", _validation_error())
    assert result["error"] == "InvalidInput" and "invalid reconcile event: count" in result["message"]


def test_async_error_raises_retryable_and_answers_the_rest() -> None:
    with pytest.raises(RetryableError):
        async_error("bind", RetryableError("later"))
    result = async_error("bind", ConfigError("CLB_DIRECT_STORE_URL has an unknown scheme"))
    assert result["ok"] is False and result["retryable"] is False
    assert result["message"].startswith("function bind is misconfigured and cannot run until its settings are fixed")
    assert async_error("bind", LimitExceeded("quota"))["error"] == "LimitExceeded"


# ---------------------------------------------------------------------------------------------- every handler


def _handler_sources() -> list[Any]:
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[3] / "functions"
    return [(path.parent.name, ast.parse(path.read_text())) for path in sorted(root.glob("*/handler.py"))]


def test_every_handler_uses_the_shell_and_its_seam() -> None:
    import ast

    sources = _handler_sources()
    assert {name for name, _ in sources} == {*ALL_FUNCTIONS}, "a new function needs its error-mapping tests here"
    for name, tree in sources:
        imported = {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "shared.shell"
            for alias in node.names
        }
        assert "FunctionShell" in imported, f"functions/{name}/handler.py does not use the shell"
        assert imported & {"http_error", "async_error", "run_step_event"}, f"{name} maps errors outside the seam"
        assert isinstance(_module(name).shell, FunctionShell)


def test_every_handler_builds_its_deps_inside_its_error_handling() -> None:
    import ast

    for name, tree in _handler_sources():
        guarded: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Try) and node.handlers:
                guarded |= {id(inner) for statement in node.body for inner in ast.walk(statement)}
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "deps"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "shell"
            ):
                assert id(node) in guarded, f"functions/{name}/handler.py line {node.lineno}: shell.deps() outside try"
