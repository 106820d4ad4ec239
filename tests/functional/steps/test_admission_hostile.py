"""The public admission endpoint under hostile reviews: a 400 naming the field, no API call, no KV write."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from shared.keys import warm_key
from tests.conftest import load_event
from tests.functional.steps.conftest import Env, service


def _review() -> dict[str, Any]:
    return json.loads(load_event("admission_pod_create")["body"])


def _event(body: str | bytes) -> dict[str, Any]:
    event = copy.deepcopy(load_event("admission_pod_create"))
    event["body"] = body if isinstance(body, str) else body.decode("latin-1")
    return event


def _mutated(change: str) -> dict[str, Any]:
    review = _review()
    pod = review["request"]["object"]
    if change == "labels":
        pod["metadata"]["labels"] = [1]
    elif change == "label_value":
        pod["metadata"]["labels"] = {"app": 5}
    elif change == "metadata":
        pod["metadata"] = "x"
    elif change == "readinessGates":
        pod["spec"]["readinessGates"] = "a string"
    elif change == "readinessGate_item":
        pod["spec"]["readinessGates"] = [7]
    elif change == "no_spec":
        del pod["spec"]
    elif change == "spec":
        pod["spec"] = []
    elif change == "hostNetwork":
        pod["spec"]["hostNetwork"] = "yes"
    elif change == "namespace_huge":
        review["request"]["namespace"] = "a" * 1_000_000
    elif change == "namespace_shape":
        review["request"]["namespace"] = "Not_A_Label"
    elif change == "object_namespace":
        review["request"]["namespace"] = None
        pod["metadata"]["namespace"] = "x" * 64
    elif change == "name_shape":
        pod["metadata"]["name"] = "UPPER/slash"
    elif change == "generate_name":
        pod["metadata"]["generateName"] = "g" * 300
    elif change == "uid":
        review["request"]["uid"] = "u" * 100_000
    return review


FIELD_BY_CHANGE = {
    "labels": "metadata.labels",
    "label_value": "metadata.labels",
    "metadata": "metadata",
    "readinessGates": "spec.readinessGates",
    "readinessGate_item": "spec.readinessGates",
    "no_spec": "spec",
    "spec": "spec",
    "hostNetwork": "spec.hostNetwork",
    "namespace_huge": "namespace",
    "namespace_shape": "namespace",
    "object_namespace": "namespace",
    "name_shape": "metadata.name",
    "generate_name": "metadata.generateName",
    "uid": "request.uid",
}


@pytest.mark.parametrize("change", sorted(FIELD_BY_CHANGE))
def test_a_malformed_pod_gets_400_naming_the_field_before_any_io(env: Env, change: str) -> None:
    env.cluster.put_service(service())
    result = env.invoke("admission", _event(json.dumps(_mutated(change))))
    assert result["statusCode"] == 400, result
    message = json.loads(result["body"])["message"]
    assert FIELD_BY_CHANGE[change] in message, message
    assert len(message) < 600
    assert env.cluster.list_service_calls == 0
    assert env.deps.store.list_selectors("default") == []
    assert env.deps.store.kv_get(warm_key("default"), now=env.clock.now()) is None


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ('{"apiVersion": ' + "[" * 5000 + "]" * 5000 + "}", "deeper"),
        ('{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "x": ' + "7" * 5000 + "}", "digits"),
        (b'{"apiVersion": "\xff"}', "UTF-8"),
    ],
)
def test_hostile_bodies_get_400(env: Env, body: str | bytes, words: str) -> None:
    event = _event("")
    if isinstance(body, bytes):
        import base64

        event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    else:
        event["body"] = body
    result = env.invoke("admission", event)
    assert result["statusCode"] == 400, result
    assert words in json.loads(result["body"])["message"]
    assert env.cluster.list_service_calls == 0


def test_a_valid_review_still_gets_its_gate(env: Env) -> None:
    env.cluster.put_service(service())
    result = env.invoke("admission", _event(json.dumps(_review())))
    assert result["statusCode"] == 200 and "patch" in json.loads(result["body"])["response"]
