"""Termination protection end to end: admission adds the drain-wait preStop, the prestop endpoint holds it.

The admission and prestop handlers run with API-gateway events against the SQLite store, the fake
cluster and a fake clock (a held request's sleeps move the clock, nothing really waits).
"""

from __future__ import annotations

import base64
import copy
import json
from datetime import datetime, timezone
from typing import Any

import pytest

from shared.domain.models import BindingRecord, SelectorEntry
from shared.domain.termination import PRESTOP_ID_LABEL, PRESTOP_TOKEN_HEADER, PROTECTION_ANNOTATION
from shared.keys import warm_key
from shared.steps.prestop import HoldLimiter, PrestopCall, TooManyHolds, wait_for_drain
from tests.conftest import load_event
from tests.functional.steps.conftest import Env, pod


def _admit(env: Env, *, annotations: dict[str, str] | None = None, **spec: Any) -> tuple[dict[str, Any], list[Any]]:
    env.deps.store.put_selector(
        SelectorEntry(namespace="default", service="web", selector={"app": "web"}, annotations=annotations or {})
    )
    env.deps.store.kv_set(warm_key("default"), "1", ttl_s=None, now=env.clock.now())
    event = load_event("admission_pod_create")
    review = json.loads(event["body"])
    review["request"]["object"]["metadata"]["ownerReferences"] = [
        {"kind": "ReplicaSet", "name": "web-7d4b9c", "controller": True, "apiVersion": "apps/v1", "uid": "u"}
    ]
    review["request"]["object"]["spec"].update(spec)
    event["body"] = json.dumps(review)
    result = env.invoke("admission", event)
    assert result["statusCode"] == 200, result
    response = json.loads(result["body"])["response"]
    patch = json.loads(base64.b64decode(response["patch"])) if "patch" in response else []
    return response, patch


def _hook(patch: list[dict[str, Any]]) -> dict[str, Any]:
    (op,) = [op for op in patch if op["path"] == "/spec/containers/0/lifecycle"]
    return dict(op["value"]["preStop"])


def _call_event(query: dict[str, str], token: str | None) -> dict[str, Any]:
    headers = {"host": "service-abc.gz.apigw.tencentcs.com"}
    if token is not None:
        headers[PRESTOP_TOKEN_HEADER] = token
    return {
        "requestContext": {"serviceId": "service-abc", "path": "/prestop", "httpMethod": "GET", "stage": "release"},
        "headers": headers,
        "body": "",
        "path": "/prestop",
        "queryString": query,
        "queryStringParameters": query,
        "httpMethod": "GET",
        "isBase64Encoded": False,
    }


def _kubelet_call(env: Env, hook: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    action = hook["httpGet"]
    query = dict(part.split("=", 1) for part in action["path"].split("?", 1)[1].split("&"))
    token = next(h["value"] for h in action["httpHeaders"] if h["name"] == PRESTOP_TOKEN_HEADER)
    result = env.invoke("prestop", _call_event(query, token))
    return result["statusCode"], json.loads(result["body"])


def _terminating_pod(env: Env, prestop_id: str, *, grace_left_s: float = 30.0) -> None:
    deleted_at = env.clock.now() + grace_left_s
    stamp = datetime.fromtimestamp(deleted_at, tz=timezone.utc)
    env.cluster.put_pod(
        pod(
            "web-1",
            "10.0.0.5",
            labels={"app": "web", PRESTOP_ID_LABEL: prestop_id},
            deletion_timestamp=stamp.isoformat(),
        )
    )


def _binding(env: Env, listener: str, *, state: str, weight: int, drain_started_at: float | None = None) -> None:
    env.deps.store.put_binding(
        BindingRecord(
            lb_id="lb-1",
            listener_id=listener,
            pod_uid="uid-web-1",
            namespace="default",
            pod_name="web-1",
            service="default/web",
            ip="10.0.0.5",
            port=8080,
            weight=weight,
            state=state,  # type: ignore[arg-type]
            drain_started_at=drain_started_at,
        )
    )


def test_admission_adds_an_https_drain_wait_hook_with_a_per_pod_token(env: Env) -> None:
    response, patch = _admit(env)
    hook = _hook(patch)["httpGet"]
    assert (hook["scheme"], hook["host"], hook["port"]) == ("HTTPS", "127.0.0.1", 8443)
    assert hook["path"].startswith("/prestop?namespace=default&id=")
    prestop_id = hook["path"].rsplit("=", 1)[1]
    (label,) = [op for op in patch if op["path"].startswith("/metadata/labels/")]
    assert label["value"] == prestop_id
    assert [h["name"] for h in hook["httpHeaders"]] == [PRESTOP_TOKEN_HEADER]
    assert "warnings" not in response  # default grace 30 s holds the 10 s drain budget


def test_prestop_holds_until_weight_zero_on_every_listener_and_connections_drained(env: Env) -> None:
    _response, patch = _admit(env)
    hook = _hook(patch)
    prestop_id = hook["httpGet"]["path"].rsplit("=", 1)[1]
    _terminating_pod(env, prestop_id)
    now = env.clock.now()
    _binding(env, "lbl-a", state="draining", weight=0, drain_started_at=now)
    _binding(env, "lbl-b", state="draining", weight=0, drain_started_at=now + 0.5)
    status, body = _kubelet_call(env, hook)
    assert status == 200 and body["status"] == "drained" and body["pod"] == "default/web-1"
    # held until the later drain plus the 1 s linger, polling the bindings every 0.25 s
    assert 1.5 <= body["waited_s"] <= 1.75
    assert env.cluster.events == []


def test_prestop_gives_up_before_the_grace_period_ends_and_warns_on_the_pod(env: Env) -> None:
    _response, patch = _admit(env)
    hook = _hook(patch)
    prestop_id = hook["httpGet"]["path"].rsplit("=", 1)[1]
    _terminating_pod(env, prestop_id, grace_left_s=20)
    _binding(env, "lbl-a", state="registered", weight=10)  # the unbind step never ran
    status, body = _kubelet_call(env, hook)
    assert status == 200 and body["status"] == "deadline"
    assert 17.9 <= body["waited_s"] <= 18.0  # the 2 s the kubelet keeps for SIGTERM are left
    assert env.cluster.event_reasons("Pod") == ["DrainIncomplete"]


def test_a_short_grace_period_gets_warnings_saying_what_to_set(env: Env) -> None:
    response, patch = _admit(env, terminationGracePeriodSeconds=5)
    assert "set terminationGracePeriodSeconds to at least 12" in response["warnings"][0]
    assert env.cluster.event_reasons("Service") == ["GracePeriodTooShort"]
    ref, kind, _reason, message = env.cluster.events[0]
    assert (ref.name, kind) == ("web", "Warning") and message.startswith("ReplicaSet web-7d4b9c:")
    _admit(env, terminationGracePeriodSeconds=5)
    assert env.cluster.event_reasons("Service") == ["GracePeriodTooShort"], "one Event per workload an hour"
    # and on the Pod itself when it terminates
    hook = _hook(patch)
    _terminating_pod(env, hook["httpGet"]["path"].rsplit("=", 1)[1], grace_left_s=5)
    status, body = _kubelet_call(env, hook)
    assert status == 200 and body["status"] == "not-bound"
    assert env.cluster.event_reasons("Pod") == ["GracePeriodTooShort"]


def test_a_user_prestop_is_kept_and_said_so(env: Env) -> None:
    own = {"exec": {"command": ["/app/drain"]}}
    containers = [
        {"name": "web", "image": "nginx", "lifecycle": {"preStop": own}},
        {"name": "sidecar", "image": "envoy"},
    ]
    response, patch = _admit(env, containers=containers)
    assert not [op for op in patch if op["path"].startswith("/spec/containers/0")]
    assert [op["path"] for op in patch if op["path"].startswith("/spec/containers/")] == [
        "/spec/containers/1/lifecycle"
    ]
    assert env.cluster.event_reasons("Service") == ["PreStopHookKept"]
    assert "web have their own preStop" in response["warnings"][0]


@pytest.mark.parametrize(
    ("value", "expected"), [("false", None), ("sleep", {"sleep": {"seconds": 10}}), ("bogus", "http")]
)
def test_the_service_annotation_turns_the_protection_off_or_to_a_sleep(env: Env, value: str, expected: Any) -> None:
    response, patch = _admit(env, annotations={PROTECTION_ANNOTATION: value})
    hooks = [op for op in patch if op["path"] == "/spec/containers/0/lifecycle"]
    if expected is None:
        assert hooks == [] and len(patch) == 1  # the gate only
    elif expected == "http":
        assert "httpGet" in _hook(patch) and PROTECTION_ANNOTATION in response["warnings"][0]
    else:
        assert _hook(patch) == expected and not [op for op in patch if op["path"].startswith("/metadata")]


@pytest.mark.parametrize(
    ("query", "token", "field"),
    [
        ({"id": "0" * 32}, "a" * 64, "namespace"),
        ({"namespace": "Bad_NS", "id": "0" * 32}, "a" * 64, "namespace"),
        ({"namespace": "default", "id": "xyz"}, "a" * 64, "'id'"),
        ({"namespace": "default", "id": "0" * 32}, None, PRESTOP_TOKEN_HEADER),
        ({"namespace": "default", "id": "0" * 32}, "short", PRESTOP_TOKEN_HEADER),
    ],
)
def test_prestop_rejects_bad_input_naming_the_field(
    env: Env, query: dict[str, str], token: str | None, field: str
) -> None:
    result = env.invoke("prestop", _call_event(query, token))
    assert result["statusCode"] == 400 and field in json.loads(result["body"])["message"]


def test_prestop_with_a_wrong_token_learns_nothing(env: Env) -> None:
    _response, patch = _admit(env)
    hook = copy.deepcopy(_hook(patch))
    _terminating_pod(env, hook["httpGet"]["path"].rsplit("=", 1)[1])
    hook["httpGet"]["httpHeaders"][0]["value"] = "f" * 64
    status, body = _kubelet_call(env, hook)
    assert status == 401 and body == {"error": "Unauthorized"}


def test_prestop_answers_at_once_for_a_pod_not_being_deleted_or_gone(env: Env) -> None:
    _response, patch = _admit(env)
    hook = _hook(patch)
    status, body = _kubelet_call(env, hook)
    assert (status, body["status"]) == (200, "not-found")
    prestop_id = hook["httpGet"]["path"].rsplit("=", 1)[1]
    env.cluster.put_pod(pod("web-1", "10.0.0.5", labels={"app": "web", PRESTOP_ID_LABEL: prestop_id}))
    status, body = _kubelet_call(env, hook)
    assert (status, body["status"]) == (200, "not-terminating") and env.clock.sleeps == []


def test_prestop_bounds_the_requests_it_holds(env: Env) -> None:
    _response, patch = _admit(env)
    hook = _hook(patch)
    prestop_id = hook["httpGet"]["path"].rsplit("=", 1)[1]
    _terminating_pod(env, prestop_id)
    token = hook["httpGet"]["httpHeaders"][0]["value"]
    full = HoldLimiter()
    for _ in range(env.deps.settings.prestop_max_holds):
        assert full.acquire(env.deps.settings.prestop_max_holds)
    with pytest.raises(TooManyHolds):
        wait_for_drain(env.deps, PrestopCall("default", prestop_id, token), limiter=full)


def test_the_prestop_call_starts_the_drain_of_a_pod_still_taking_traffic(env: Env) -> None:
    """The kubelet's call comes before the deletion's audit event: it asks the unbind step at once, for
    this Pod only, and a Pod whose drain has started already costs no second request."""
    _response, patch = _admit(env)
    hook = _hook(patch)
    prestop_id = hook["httpGet"]["path"].rsplit("=", 1)[1]
    _terminating_pod(env, prestop_id, grace_left_s=12.0)
    _binding(env, "lbl-a", state="registered", weight=10)
    before = len(env.queue.snapshot())
    _kubelet_call(env, hook)  # nobody drains here: held until its deadline
    queued = env.queue.snapshot()[before:]
    assert [(f, p["step"], p["pod_uids"]) for f, p in queued] == [("unbind", "unbind", ["uid-web-1"])]

    _binding(env, "lbl-a", state="draining", weight=0, drain_started_at=env.clock.now())
    before = len(env.queue.snapshot())
    _kubelet_call(env, hook)
    assert env.queue.snapshot()[before:] == []
