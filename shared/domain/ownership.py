"""Which LoadBalancer Services clb-direct acts on, so it can share a cluster with TKE's service controller.

Pure; used by `ServiceInfo.is_direct_access` (every step), the router's change facts and the relay's
filter. A Service is ours when its `spec.loadBalancerClass` is `LOAD_BALANCER_CLASS`: Kubernetes
controllers for the default class, TKE's service controller among them, leave such a Service alone
(no CLB, no `loadbalance-id` annotation, no tags, no readiness gate of theirs). A Service of any other
class belongs to someone else and is never touched. A class-less Service with the `direct-access`
annotation is ours only in the `annotation` ownership mode, meant for clusters where TKE's controller
does not run (self-managed clusters); on TKE both controllers would fight over it, so deployments there
use `CLB_DIRECT_SERVICE_OWNERSHIP=load-balancer-class`.
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.domain.models import DIRECT_ACCESS_ANNOTATION, SKIP_MODE_ANNOTATION

LOAD_BALANCER_CLASS = "clb-direct.cloud.tencent.com/direct"


def owns_service(
    *,
    service_type: str | None,
    annotations: Mapping[str, str],
    load_balancer_class: str | None,
    claim_unclassed: bool = True,
) -> bool:
    """True if clb-direct manages this Service's CLB (before deletion is considered)."""
    if service_type != "LoadBalancer" or annotations.get(SKIP_MODE_ANNOTATION, "") == "skip":
        return False
    if load_balancer_class:
        return load_balancer_class == LOAD_BALANCER_CLASS
    return claim_unclassed and str(annotations.get(DIRECT_ACCESS_ANNOTATION, "")).lower() == "true"
