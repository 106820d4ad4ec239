"""k8s_mapping on V1 model objects and their JSON: Pod/Service mapping, the gate condition patch, error
classification. Pods are mapped from the API's JSON (what `_preload_content=False` reads): the V1 models
here are serialised as the client would send them."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from kubernetes.client import (
    ApiClient,
    ApiException,
    V1Container,
    V1ContainerPort,
    V1LoadBalancerIngress,
    V1LoadBalancerStatus,
    V1ObjectMeta,
    V1OwnerReference,
    V1Pod,
    V1PodCondition,
    V1PodReadinessGate,
    V1PodSpec,
    V1PodStatus,
    V1ResourceRequirements,
    V1Service,
    V1ServicePort,
    V1ServiceSpec,
    V1ServiceStatus,
)

from shared.adapters import k8s_mapping as km
from shared.domain.errors import Conflict, NotFound, PermanentError, RetryableError
from shared.domain.models import PodCondition

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
GATE = "cloud.tencent.com/load-balancer-backendgroup-ready"


def v1_pod(**status: object) -> V1Pod:
    return V1Pod(
        metadata=V1ObjectMeta(
            name="web-1",
            namespace="default",
            uid="u-1",
            resource_version="42",
            labels={"app": "web"},
            creation_timestamp=T0,
            owner_references=[
                V1OwnerReference(api_version="v1", kind="Other", name="x", uid="o-0"),
                V1OwnerReference(api_version="apps/v1", kind="ReplicaSet", name="web-rs", uid="o-1", controller=True),
            ],
        ),
        spec=V1PodSpec(
            node_name="node-1",
            readiness_gates=[V1PodReadinessGate(condition_type=GATE)],
            containers=[
                V1Container(
                    name="app",
                    ports=[
                        V1ContainerPort(name="http", container_port=8080),
                        V1ContainerPort(container_port=53, protocol="UDP"),
                    ],
                    resources=V1ResourceRequirements(
                        requests={"cpu": "100m"}, limits={"tke.cloud.tencent.com/eni-ip": "1"}
                    ),
                ),
                V1Container(name="sidecar"),
            ],
        ),
        status=V1PodStatus(
            phase="Running",
            pod_ip="10.0.0.5",
            conditions=[
                V1PodCondition(type="ContainersReady", status="True", last_transition_time=T0),
                V1PodCondition(type="Ready", status="False"),
                V1PodCondition(type=GATE, status="Bogus"),
            ],
            **status,
        ),
    )


def wire(pod: V1Pod) -> dict[str, object]:
    """The Pod's JSON, camelCase and RFC 3339 times, as the API server sends it."""
    data: dict[str, object] = json.loads(json.dumps(ApiClient().sanitize_for_serialization(pod)))
    return data


def test_pod_info_maps_readiness_ports_owner_and_resources() -> None:
    info = km.pod_info(wire(v1_pod()))
    assert (info.namespace, info.name, info.uid, info.resource_version) == ("default", "web-1", "u-1", "42")
    assert info.ip == "10.0.0.5" and info.node_name == "node-1" and info.phase == "Running"
    assert info.containers_ready and not info.ready
    assert info.readiness_gates == [GATE]
    assert [(p.name, p.container_port, p.protocol) for p in info.container_ports] == [
        ("http", 8080, "TCP"),
        (None, 53, "UDP"),
    ]
    assert info.resource_requests == ["cpu", "tke.cloud.tencent.com/eni-ip"]
    assert (info.owner_kind, info.owner_name) == ("ReplicaSet", "web-rs")
    assert info.creation_timestamp == "2024-01-01T00:00:00Z"
    assert info.condition("ContainersReady").last_transition_time == "2024-01-01T00:00:00Z"  # type: ignore[union-attr]
    assert info.condition(GATE).status == "Unknown"  # type: ignore[union-attr]


def test_bare_pod_maps_with_defaults() -> None:
    info = km.pod_info(wire(V1Pod(metadata=V1ObjectMeta(name="p", namespace="n", uid="u"))))
    assert info.phase == "Pending" and info.ip is None and not info.containers_ready and info.owner_kind is None
    with pytest.raises(PermanentError):
        km.pod_info(wire(V1Pod(metadata=V1ObjectMeta(name="p"))))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-01T00:00:00Z", "2024-01-01T00:00:00Z"),
        ("2024-01-01T00:00:00.123456789Z", "2024-01-01T00:00:00Z"),
        ("2024-01-01T08:00:00+08:00", "2024-01-01T00:00:00Z"),
        ("2024-01-01T00:00:00.5+00:00", "2024-01-01T00:00:00Z"),
        ("", None),
        (None, None),
        ("yesterday", None),
    ],
)
def test_wire_times_become_utc_seconds(text: str | None, expected: str | None) -> None:
    assert km.wire_time(text) == expected


def test_service_info_maps_ports_status_and_drops_sctp() -> None:
    svc = V1Service(
        metadata=V1ObjectMeta(name="web", namespace="default", uid="s-1", annotations={"a": "b"}, finalizers=["f"]),
        spec=V1ServiceSpec(
            type="LoadBalancer",
            selector={"app": "web"},
            ports=[
                V1ServicePort(name="http", port=80, target_port="http"),
                V1ServicePort(name="dns", port=53, protocol="UDP", target_port=5353),
                V1ServicePort(name="sig", port=99, protocol="SCTP"),
            ],
        ),
        status=V1ServiceStatus(
            load_balancer=V1LoadBalancerStatus(
                ingress=[V1LoadBalancerIngress(ip="10.9.9.9"), V1LoadBalancerIngress(hostname="x")]
            )
        ),
    )
    info = km.service_info(svc)
    assert [(p.port, p.protocol, p.target_port) for p in info.ports] == [(80, "TCP", "http"), (53, "UDP", 5353)]
    assert info.ingress_ips == ["10.9.9.9"] and info.selector == {"app": "web"} and info.finalizers == ["f"]
    assert km.service_info(V1Service(metadata=V1ObjectMeta(name="s", namespace="n", uid="u"))).type == "ClusterIP"


@pytest.mark.parametrize(
    ("major", "minor", "expected"), [("1", "28+", (1, 28)), ("1", "12", (1, 12)), ("2", "0", (2, 0))]
)
def test_parse_version(major: str, minor: str, expected: tuple[int, int]) -> None:
    assert km.parse_version(major, minor) == expected


def test_parse_version_refuses_garbage() -> None:
    with pytest.raises(PermanentError, match="minor"):
        km.parse_version("1", "")


def test_label_selector_is_sorted_equality() -> None:
    assert km.label_selector({"tier": "fe", "app": "web"}) == "app=web,tier=fe"


LIVE_FALSE = PodCondition(
    type=GATE, status="False", reason="Binding", message="waiting", last_transition_time="2024-01-01T00:00:00Z"
)


def test_condition_patch_first_time_sets_transition_now() -> None:
    desired = PodCondition(type=GATE, status="True", reason="LoadBalancerNetworkGroupReady")
    patch = km.condition_patch("u-1", "42", None, desired, T0.timestamp() + 90)
    assert patch == {
        "metadata": {"uid": "u-1", "resourceVersion": "42"},
        "status": {
            "conditions": [
                {
                    "type": GATE,
                    "status": "True",
                    "lastTransitionTime": "2024-01-01T00:01:30Z",
                    "reason": "LoadBalancerNetworkGroupReady",
                }
            ]
        },
    }


def test_condition_patch_same_status_keeps_transition_and_clears_stale_message() -> None:
    desired = PodCondition(type=GATE, status="False", reason="Registering")
    patch = km.condition_patch("u-1", "", LIVE_FALSE, desired, T0.timestamp() + 500)
    assert patch is not None
    assert patch["metadata"] == {"uid": "u-1"}
    assert patch["status"]["conditions"][0] == {
        "type": GATE,
        "status": "False",
        "lastTransitionTime": "2024-01-01T00:00:00Z",
        "reason": "Registering",
        "message": None,
    }


def test_condition_patch_flip_moves_transition_and_noop_is_none() -> None:
    flipped = km.condition_patch(
        "u", "1", LIVE_FALSE, LIVE_FALSE.model_copy(update={"status": "True"}), T0.timestamp() + 5
    )
    assert flipped is not None and flipped["status"]["conditions"][0]["lastTransitionTime"] == "2024-01-01T00:00:05Z"
    assert (
        km.condition_patch("u", "1", LIVE_FALSE, LIVE_FALSE.model_copy(update={"last_transition_time": None}), 0)
        is None
    )


def api_exception(status: int, message: str | None = "boom", headers: dict[str, str] | None = None) -> ApiException:
    exc = ApiException(status=status, reason="Reason")
    exc.body = json.dumps({"kind": "Status", "message": message}) if message else "not json"
    exc.headers = headers  # type: ignore[assignment]
    return exc


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (404, NotFound),
        (409, Conflict),
        (429, RetryableError),
        (500, RetryableError),
        (503, RetryableError),
        (400, PermanentError),
        (403, PermanentError),
        (422, PermanentError),
    ],
)
def test_api_error_by_status(status: int, error_type: type[Exception]) -> None:
    error = km.api_error(api_exception(status, 'pods "web-1" not found'), "get Pod default/web-1")
    assert type(error) is error_type
    assert f'get Pod default/web-1: HTTP {status}: pods "web-1" not found' in error.message


def test_api_error_uses_retry_after_and_reason_without_status_body() -> None:
    error = km.api_error(api_exception(429, None, {"Retry-After": "7"}), "list Pods")
    assert isinstance(error, RetryableError) and error.delay_s == 7.0 and "Reason" in error.message
    assert "grant the clb-direct role" in km.api_error(api_exception(403), "x").message
