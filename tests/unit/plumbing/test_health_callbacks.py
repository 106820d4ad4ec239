"""Health callbacks are authenticated: signed with timestamp and nonce (accepted once, within the window),
alarm callbacks by URL token, nothing unsigned by default, and hostile bodies get a 400."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import SecretStr

from emulators.clb.dataplane.notifier import signed_headers
from functions.health import handler as health_handler
from shared.deps import Deps
from tests.conftest import load_event
from tests.support.clb import seeded_lb
from tests.support.fakes import StepQueue
from tests.unit.plumbing.test_health import bind

SECRET = "s3cret-notify"


def _api(body: str | bytes, headers: dict[str, str] | None = None, query: dict[str, str] | None = None) -> dict:
    import base64

    raw = body.encode() if isinstance(body, str) else body
    return {
        "requestContext": {"path": "/health", "httpMethod": "POST", "requestId": "r"},
        "httpMethod": "POST",
        "headers": headers or {},
        "queryString": query or {},
        "body": base64.b64encode(raw).decode(),
        "isBase64Encoded": True,
    }


@pytest.fixture
def handler_deps(deps: Deps) -> Any:
    deps.settings = deps.settings.model_copy(update={"health_notify_secret": SecretStr(SECRET)})
    bind(deps.store, "lb-web00001", "u5", "127.0.10.5", listener="lbl-web00080")
    health_handler.shell.use(deps)
    yield deps
    health_handler.shell.use(None)


def _note() -> bytes:
    return json.dumps(load_event("health_notification")).encode()


def _call(body: bytes, headers: dict[str, str], **kw: Any) -> dict[str, Any]:
    return health_handler.main_handler(_api(body, headers, **kw), {})


def test_a_signed_notification_is_accepted_once(handler_deps: Deps, invoker: StepQueue) -> None:
    body = _note()
    headers = signed_headers(SECRET, body, now=handler_deps.clock.now(), nonce="n" * 32)
    assert _call(body, headers)["statusCode"] == 200 and invoker.steps() == ["flip"]
    replay = _call(body, headers)
    assert replay["statusCode"] == 401 and "replay" in replay["body"]
    assert invoker.steps() == ["flip"]


def test_a_notification_outside_the_window_is_refused(handler_deps: Deps, invoker: StepQueue) -> None:
    body = _note()
    old = signed_headers(SECRET, body, now=handler_deps.clock.now() - 3600, nonce="o" * 32)
    assert _call(body, old)["statusCode"] == 401 and invoker.calls == []


def test_the_old_signature_scheme_and_tampering_are_refused(handler_deps: Deps, invoker: StepQueue) -> None:
    from emulators.clb.dataplane.notifier import sign_body

    body = _note()
    assert _call(body, {"X-Emulator-Signature": sign_body(SECRET, body)})["statusCode"] == 401
    headers = signed_headers(SECRET, body, now=handler_deps.clock.now(), nonce="t" * 32)
    headers["X-Emulator-Nonce"] = "u" * 32
    assert _call(body, headers)["statusCode"] == 401
    wrong = signed_headers("not-the-secret", body, now=handler_deps.clock.now(), nonce="w" * 32)
    assert _call(body, wrong)["statusCode"] == 401
    assert invoker.calls == []


def test_the_previous_secret_is_accepted_during_a_rotation(handler_deps: Deps, invoker: StepQueue) -> None:
    handler_deps.settings = handler_deps.settings.model_copy(
        update={"health_notify_secret": SecretStr("new-one"), "health_notify_secret_previous": SecretStr(SECRET)}
    )
    body = _note()
    for secret, nonce in ((SECRET, "a" * 32), ("new-one", "b" * 32)):
        headers = signed_headers(secret, body, now=handler_deps.clock.now(), nonce=nonce)
        assert _call(body, headers)["statusCode"] == 200


def test_unsigned_callbacks_are_refused_by_default(deps: Deps, invoker: StepQueue) -> None:
    health_handler.shell.use(deps)
    try:
        response = health_handler.main_handler(_api(_note()), {})
        assert response["statusCode"] == 401 and "CLB_DIRECT_HEALTH_NOTIFY_SECRET" in response["body"]
        alarm = health_handler.main_handler(_api(json.dumps(load_event("alarm_callback"))), {})
        assert alarm["statusCode"] == 401 and "CLB_DIRECT_HEALTH_ALARM_TOKEN" in alarm["body"]
    finally:
        health_handler.shell.use(None)
    assert invoker.calls == []


def test_alarm_callbacks_need_the_url_token(handler_deps: Deps, invoker: StepQueue, clb: Any) -> None:
    handler_deps.settings = handler_deps.settings.model_copy(update={"health_alarm_token": SecretStr("tok-123")})
    clb(seeded_lb("lb-web00001", listeners={"lbl-web00080": []}))
    body = json.dumps(load_event("alarm_callback")).encode()
    assert _call(body, {})["statusCode"] == 401
    assert _call(body, {}, query={"token": "wrong"})["statusCode"] == 401
    ok = _call(body, {}, query={"token": "tok-123"})
    assert ok["statusCode"] == 200 and json.loads(ok["body"])["retCode"] == 0


@pytest.mark.parametrize(
    ("body", "words"),
    [(b"\xff\xfe{", "UTF-8"), (b"[" * 5000 + b"]" * 5000, "deeper"), (b'{"type": ' + b"1" * 5000 + b"}", "digits")],
)
def test_hostile_signed_bodies_get_400(handler_deps: Deps, invoker: StepQueue, body: bytes, words: str) -> None:
    headers = signed_headers(SECRET, body, now=handler_deps.clock.now(), nonce="h" * 32)
    response = _call(body, headers)
    assert response["statusCode"] == 400, response
    assert words in json.loads(response["body"])["message"]
    assert invoker.calls == []
