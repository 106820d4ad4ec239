"""Label and field selectors evaluate like the apiserver's, and malformed ones are 400s."""

from __future__ import annotations

import pytest

from emulators.cluster.errors import ApiError
from emulators.cluster.selectors import (
    labels_match,
    match_label_selector_object,
    parse_field_selector,
    parse_label_selector,
)

LABELS = {"app": "web", "tier": "a", "track": "stable"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", True),
        ("app==web", True),
        ("app!=web", False),
        ("app!=db", True),
        ("tier in (a,b)", True),
        ("tier in (b, c)", False),
        ("tier notin (b,c)", True),
        ("tier notin (a)", False),
        ("canary", False),
        ("!canary", True),
        ("app", True),
        ("!app", False),
        ("app=web,tier in (a,b),!canary", True),
        ("app=web,track=canary", False),
        ("missing!=x", True),
        ("missing notin (x)", True),
        ("", True),
    ],
)
def test_label_selector_operators(selector: str, expected: bool) -> None:
    assert labels_match(parse_label_selector(selector), LABELS) is expected


@pytest.mark.parametrize("selector", ["=web", "a b=c", "tier in a,b", "app=we b", "tier in (a,b c)"])
def test_malformed_label_selector_is_a_400(selector: str) -> None:
    with pytest.raises(ApiError) as caught:
        labels_match(parse_label_selector(selector), LABELS)
    assert caught.value.code == 400
    assert caught.value.reason == "BadRequest"


def test_structured_selector_with_expressions() -> None:
    selector = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ],
    }
    assert match_label_selector_object(selector, LABELS)
    assert not match_label_selector_object(
        {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}, LABELS
    )
    assert match_label_selector_object({}, None)
    assert match_label_selector_object(None, LABELS)


POD = {
    "metadata": {"name": "web-1", "namespace": "shop"},
    "spec": {"nodeName": "n1", "hostNetwork": False},
    "status": {"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}]},
}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("status.phase=Running", True),
        ("status.phase!=Running", False),
        ("spec.nodeName==n1,metadata.name=web-1", True),
        ("spec.nodeName=n2", False),
        ("status.podIPs=fd00::5", True),
        ("spec.hostNetwork=false", True),
        ("metadata.namespace=other", False),
    ],
)
def test_pod_field_selectors(selector: str, expected: bool) -> None:
    assert parse_field_selector("pods", selector)(POD) is expected


def test_unsupported_field_label_is_a_400_with_the_real_message() -> None:
    with pytest.raises(ApiError) as caught:
        parse_field_selector("pods", "spec.containers=x")
    assert caught.value.code == 400
    assert caught.value.status["message"] == "field label not supported: spec.containers"
    with pytest.raises(ApiError):
        parse_field_selector("configmaps", "data.x=1")
