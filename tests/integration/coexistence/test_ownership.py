"""Coexistence with TKE's service controller: clb-direct acts only on Services it owns.

On TKE both controllers read the same `direct-access` annotation; the product must be able to leave
class-less Services to TKE and take only those of its own `spec.loadBalancerClass`.
"""

from __future__ import annotations

import pytest

from relay.filters import _is_direct_access_service
from shared.adapters.kubernetes_api import KubernetesCluster
from shared.config import Settings
from shared.domain.models import DIRECT_ACCESS_ANNOTATION, ServiceInfo
from shared.domain.ownership import LOAD_BALANCER_CLASS, owns_service
from shared.normalize import normalize_watch
from tests.integration.adapters.conftest import Sim

ANNOTATED = {DIRECT_ACCESS_ANNOTATION: "true"}


@pytest.mark.parametrize(
    ("annotations", "lb_class", "claim_unclassed", "ours"),
    [
        (ANNOTATED, None, True, True),  # annotation mode: class-less annotated Service
        (ANNOTATED, None, False, False),  # class mode: that Service is TKE's
        ({}, LOAD_BALANCER_CLASS, False, True),  # our class: ours in both modes, no annotation needed
        ({}, LOAD_BALANCER_CLASS, True, True),
        (ANNOTATED, "service.k8s.aws/nlb", True, False),  # another controller's class: never
        ({**ANNOTATED, "service.cloud.tencent.com/mode": "skip"}, LOAD_BALANCER_CLASS, True, False),
        ({}, None, True, False),
    ],
)
def test_ownership_rule(annotations: dict[str, str], lb_class: str | None, claim_unclassed: bool, ours: bool) -> None:
    assert (
        owns_service(
            service_type="LoadBalancer",
            annotations=annotations,
            load_balancer_class=lb_class,
            claim_unclassed=claim_unclassed,
        )
        is ours
    )
    assert not owns_service(service_type="ClusterIP", annotations=ANNOTATED, load_balancer_class=LOAD_BALANCER_CLASS)


def create(sim: Sim, name: str, *, lb_class: str | None, annotations: dict[str, str]) -> None:
    spec = {
        "type": "LoadBalancer",
        "selector": {"app": name},
        "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
    }
    if lb_class:
        spec["loadBalancerClass"] = lb_class
    sim.store.create("services", "default", {"metadata": {"name": name, "annotations": annotations}, "spec": spec})


def ours_by_mode(sim: Sim, mode: str) -> set[str]:
    settings = Settings.load({}, kubeconfig=str(sim.kubeconfig), service_ownership=mode)
    cluster = KubernetesCluster.from_settings(settings)
    try:
        found = {s.name for s in cluster.list_services("default") if s.is_direct_access}
        single = cluster.get_service("default", "tke-owned")
        assert single is not None and single.is_direct_access is (mode == "annotation")
        return found
    finally:
        cluster.close()


def test_adapter_applies_the_deployment_mode(sim: Sim) -> None:
    create(sim, "ours", lb_class=LOAD_BALANCER_CLASS, annotations={})
    create(sim, "tke-owned", lb_class=None, annotations=ANNOTATED)
    create(sim, "aws", lb_class="service.k8s.aws/nlb", annotations=ANNOTATED)
    assert ours_by_mode(sim, "load-balancer-class") == {"ours"}
    assert ours_by_mode(sim, "annotation") == {"ours", "tke-owned"}
    live = sim.store.get("services", "default", "ours")
    assert live is not None and live["spec"]["loadBalancerClass"] == LOAD_BALANCER_CLASS


def test_relay_forwards_and_router_sees_our_class() -> None:
    obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "7"},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": LOAD_BALANCER_CLASS, "selector": {"app": "web"}},
    }
    assert _is_direct_access_service(obj)
    assert not _is_direct_access_service({**obj, "spec": {**obj["spec"], "loadBalancerClass": "other/x"}})
    change = normalize_watch("ADDED", "services", obj)
    assert change is not None
    assert change.load_balancer_class == LOAD_BALANCER_CLASS and change.is_direct_access


def test_service_info_defaults_keep_annotation_mode() -> None:
    info = ServiceInfo(namespace="d", name="n", uid="u", type="LoadBalancer", annotations=ANNOTATED)
    assert info.is_direct_access and info.model_copy(update={"claim_unclassed": False}).is_direct_access is False
