"""Gate decisions, admission patches and the desired webhook configuration."""

from __future__ import annotations

import base64
import json

import jsonpatch
import pytest

from shared.domain.admission import admit, gate_patch, parse_review
from shared.domain.errors import ConfigError, InvalidInput
from shared.domain.gate import (
    REASON_FAIL_OPEN,
    REASON_NOT_READY,
    REASON_RELEASED,
    ListenerGate,
    ServiceGate,
    decide_gate,
    health_state,
    parse_fail_open,
)
from shared.domain.models import GATE_CONDITION_TYPE, GATE_READY_REASON, SelectorEntry, TargetHealth
from shared.domain.webhook_config import desired_webhook_configuration, webhook_drift


def healthy(name: str = "TCP:80 (l1)") -> ListenerGate:
    return ListenerGate(name, "healthy")


def test_health_states() -> None:
    assert health_state(None) == "not registered"
    th = TargetHealth(listener_id="l", ip="1.1.1.1", port=1, healthy=False, detail="Dead")
    assert health_state(th) == "Dead"
    assert health_state(th.model_copy(update={"detail": "Close"})) == "healthy"
    assert health_state(th.model_copy(update={"healthy": True, "detail": "Alive"})) == "healthy"


def test_gate_true_only_when_every_listener_of_every_service_healthy() -> None:
    both = [ServiceGate("ns/a", [healthy(), healthy("TCP:81 (l2)")]), ServiceGate("ns/b", [healthy("TCP:90 (l9)")])]
    decision = decide_gate(both)
    assert (decision.status, decision.reason) == ("True", GATE_READY_REASON)
    one_dead = [both[0], ServiceGate("ns/b", [ListenerGate("TCP:90 (l9)", "Dead")])]
    decision = decide_gate(one_dead)
    assert (decision.status, decision.reason) == ("False", REASON_NOT_READY)
    assert "ns/b: TCP:90 (l9) Dead" in decision.message and "ns/a" not in decision.message


def test_gate_false_for_problems_and_missing_listeners() -> None:
    assert decide_gate([ServiceGate("ns/a", [])]).status == "False"
    d = decide_gate([ServiceGate("ns/a", [healthy()], problem="CLB not created yet")])
    assert d.status == "False" and "CLB not created yet" in d.message
    d = decide_gate([ServiceGate("ns/a", [healthy()])], pod_problem="quota of 200 reached")
    assert d.status == "False" and "quota of 200" in d.message


def test_gate_released_when_no_service() -> None:
    d = decide_gate([])
    assert (d.status, d.reason) == ("True", REASON_RELEASED) and "released" in d.message


def test_fail_open_only_when_every_blocking_service_allows_it() -> None:
    pending = ServiceGate("ns/a", [ListenerGate("TCP:80 (l1)", "Unknown")], fail_open_s=60)
    assert decide_gate([pending], pod_age_s=59).status == "False"
    d = decide_gate([pending], pod_age_s=60)
    assert (d.status, d.reason) == ("True", REASON_FAIL_OPEN) and d.warning and "60s" in d.warning
    strict = ServiceGate("ns/b", [ListenerGate("TCP:90 (l9)", "Unknown")])
    assert decide_gate([pending, strict], pod_age_s=1000).status == "False"
    # a strict Service that is already healthy does not block fail-open of the pending one
    assert decide_gate([pending, ServiceGate("ns/b", [healthy()])], pod_age_s=1000).status == "True"


def test_parse_fail_open() -> None:
    assert parse_fail_open(None) == (None, None)
    assert parse_fail_open("90") == (90.0, None)
    assert parse_fail_open("soon")[1] is not None
    assert parse_fail_open("-1")[1] is not None


def review(obj: dict, **request: object) -> dict:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "r-1",
            "operation": "CREATE",
            "namespace": "ns",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "object": obj,
            **request,
        },
    }


POD = {"metadata": {"generateName": "web-", "labels": {"app": "web"}}, "spec": {"containers": [{"name": "c"}]}}
SELECTORS = [
    SelectorEntry(namespace="ns", service="web", selector={"app": "web"}),
    SelectorEntry(namespace="ns", service="db", selector={"app": "db"}),
]


def apply(decision_patch: str, obj: dict) -> dict:
    ops = json.loads(base64.b64decode(decision_patch))
    return jsonpatch.apply_patch(obj, ops)


@pytest.mark.parametrize("gates", [None, [], [{"conditionType": "other/gate"}]])
def test_gate_injected_once(gates: list | None) -> None:
    obj = json.loads(json.dumps(POD))
    if gates is not None:
        obj["spec"]["readinessGates"] = gates
    response = admit(parse_review(review(obj)), SELECTORS).response()["response"]
    assert response["uid"] == "r-1" and response["allowed"] and response["patchType"] == "JSONPatch"
    patched = apply(response["patch"], obj)
    types = [g["conditionType"] for g in patched["spec"]["readinessGates"]]
    assert types.count(GATE_CONDITION_TYPE) == 1
    # reinvocation on the patched object adds nothing
    assert gate_patch(patched) == []


def test_no_patch_for_unselected_host_network_or_non_create() -> None:
    other = json.loads(json.dumps(POD))
    other["metadata"]["labels"] = {"app": "cache"}
    assert "patch" not in admit(parse_review(review(other)), SELECTORS).response()["response"]
    host = json.loads(json.dumps(POD))
    host["spec"]["hostNetwork"] = True
    response = admit(parse_review(review(host)), SELECTORS).response()["response"]
    assert "patch" not in response and "hostNetwork" in response["warnings"][0]
    update = admit(parse_review(review(POD, operation="UPDATE")), SELECTORS).response()["response"]
    assert update == {"uid": "r-1", "allowed": True}


def test_parse_review_accepts_strings_and_base64() -> None:
    text = json.dumps(review(POD, dryRun=True))
    assert parse_review(text).request.dry_run
    assert parse_review(base64.b64encode(text.encode()).decode(), is_base64=True).request.uid == "r-1"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (None, "empty"),
        ("{not json", "not JSON"),
        ("[1]", "JSON object"),
        ({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {"uid": "x"}}, "apiVersion"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, "request"),
    ],
)
def test_malformed_reviews(body: object, needle: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_review(body)  # type: ignore[arg-type]
    assert needle in err.value.message


def test_webhook_configuration_and_drift() -> None:
    desired = desired_webhook_configuration(
        name="cfg", url="https://127.0.0.1:8443/admit", ca_bundle_pem="PEM", failure_policy="Ignore"
    )
    hook = desired["webhooks"][0]
    assert hook["rules"][0]["operations"] == ["CREATE"] and hook["rules"][0]["resources"] == ["pods"]
    assert hook["sideEffects"] == "None" and hook["admissionReviewVersions"] == ["v1"]
    assert hook["namespaceSelector"]["matchExpressions"][0]["values"] == ["kube-system"]
    assert base64.b64decode(hook["clientConfig"]["caBundle"]) == b"PEM"
    assert webhook_drift(None, desired) == ["missing"]
    live = json.loads(json.dumps(desired))
    live["webhooks"][0]["clientConfig"]["service"] = None  # server-side defaults are ignored
    assert webhook_drift(live, desired) == []
    live["webhooks"][0]["failurePolicy"] = "Fail"
    live["webhooks"][0]["clientConfig"]["caBundle"] = "b2xk"
    assert webhook_drift(live, desired) == ["clientConfig.caBundle", "failurePolicy"]
    with pytest.raises(ConfigError, match="https"):
        desired_webhook_configuration(name="c", url="http://x", ca_bundle_pem="", failure_policy="Fail")
