"""Domain models shared by planners, steps and adapters.

These are the project's own views of Kubernetes and CLB objects: adapters translate the outside world
into them (`shared/adapters/`), planners (`shared/domain/`) reason over them without I/O. Field names
are Pythonic; wire-exact models live in `shared/events/`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DIRECT_ACCESS_ANNOTATION = "service.cloud.tencent.com/direct-access"
TKE_SERVICE_CONFIG_ANNOTATION = "service.cloud.tencent.com/tke-service-config"
INTERNAL_SUBNET_ANNOTATION = "service.kubernetes.io/qcloud-loadbalancer-internal-subnetid"
EXISTED_LB_ANNOTATION = "service.kubernetes.io/tke-existed-lbid"
LB_ID_ANNOTATION = "service.kubernetes.io/loadbalance-id"
CUSTOM_WEIGHT_ANNOTATION = "service.cloud.tencent.com/custom-weight"
FAIL_OPEN_ANNOTATION = "service.cloud.tencent.com/readiness-gate-fail-open-seconds"
SKIP_MODE_ANNOTATION = "service.cloud.tencent.com/mode"
VPC_CNI_NETWORKS_ANNOTATION = "tke.cloud.tencent.com/networks"
ENI_IP_RESOURCE = "tke.cloud.tencent.com/eni-ip"
DIRECT_ENI_RESOURCE = "tke.cloud.tencent.com/direct-eni"
CLUSTER_CONFIG_NAMESPACE = "kube-system"
CLUSTER_CONFIG_NAME = "tke-service-controller-config"
GLOBAL_ROUTE_KEY = "GlobalRouteDirectAccess"
SERVICE_FINALIZER = "service.cloud.tencent.com/clb-direct-cleanup"
OWNER_TAG_CLUSTER = "tke-clusterId"
OWNER_TAG_CREATED_BY = "tke-createdBy-flag"
OWNER_TAG_SERVICE = "clb-direct-service"
# The readiness gate this product owns, and the reason its condition carries once True.
GATE_CONDITION_TYPE = "cloud.tencent.com/load-balancer-backendgroup-ready"
GATE_READY_REASON = "LoadBalancerNetworkGroupReady"

NetworkMode = Literal["vpc-cni", "global-router", "host-network", "unknown"]
Protocol = Literal["TCP", "UDP", "HTTP", "HTTPS"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ObjectKey(_Model):
    """namespace/name of a namespaced object."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, text: str) -> ObjectKey:
        namespace, sep, name = text.partition("/")
        if not sep or not namespace or not name:
            raise ValueError(f"expected NAMESPACE/NAME, got {text!r}")
        return cls(namespace=namespace, name=name)


class ObjectRef(_Model):
    """What an Event is about."""

    kind: Literal["Pod", "Service"]
    namespace: str
    name: str
    uid: str | None = None
    api_version: str = "v1"


# ---------------------------------------------------------------------------------------------- Kubernetes


class ServicePort(_Model):
    name: str | None = None
    port: int = Field(ge=1, le=65535)
    protocol: Literal["TCP", "UDP"] = "TCP"
    target_port: int | str | None = None


class ServiceInfo(_Model):
    namespace: str
    name: str
    uid: str
    resource_version: str = ""
    type: str = "ClusterIP"
    annotations: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    selector: dict[str, str] = Field(default_factory=dict)
    ports: list[ServicePort] = Field(default_factory=list)
    finalizers: list[str] = Field(default_factory=list)
    deletion_timestamp: str | None = None
    ingress_ips: list[str] = Field(default_factory=list)
    load_balancer_class: str | None = None
    # False in the `load-balancer-class` ownership mode: a class-less annotated Service is TKE's.
    claim_unclassed: bool = True

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(namespace=self.namespace, name=self.name)

    @property
    def is_direct_access(self) -> bool:
        """A LoadBalancer Service clb-direct owns (`shared.domain.ownership`) and not being deleted."""
        from shared.domain.ownership import owns_service

        return self.deletion_timestamp is None and owns_service(
            service_type=self.type,
            annotations=self.annotations,
            load_balancer_class=self.load_balancer_class,
            claim_unclassed=self.claim_unclassed,
        )


class ContainerPort(_Model):
    name: str | None = None
    container_port: int
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"


class PodCondition(_Model):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str | None = None
    message: str | None = None
    last_transition_time: str | None = None


class PodInfo(_Model):
    namespace: str
    name: str
    uid: str
    resource_version: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    ip: str | None = None
    node_name: str | None = None
    host_network: bool = False
    phase: str = "Pending"
    containers_ready: bool = False
    ready: bool = False
    deletion_timestamp: str | None = None
    creation_timestamp: str | None = None
    readiness_gates: list[str] = Field(default_factory=list)
    conditions: list[PodCondition] = Field(default_factory=list)
    container_ports: list[ContainerPort] = Field(default_factory=list)
    resource_requests: list[str] = Field(default_factory=list, description="resource names requested")
    owner_kind: str | None = None
    owner_name: str | None = None

    @property
    def key(self) -> ObjectKey:
        return ObjectKey(namespace=self.namespace, name=self.name)

    def condition(self, condition_type: str) -> PodCondition | None:
        return next((c for c in self.conditions if c.type == condition_type), None)


class HealthCheck(_Model):
    """Listener health-check settings (CLB `HealthCheck`, TkeServiceConfig `healthCheck`)."""

    enabled: bool = True
    check_type: Literal["TCP", "HTTP", "CUSTOM", "PING"] = "TCP"
    interval_s: int = Field(default=5, ge=2, le=300)
    timeout_s: int = Field(default=2, ge=2, le=60)
    healthy_threshold: int = Field(default=3, ge=2, le=10)
    unhealthy_threshold: int = Field(default=3, ge=2, le=10)
    http_path: str | None = None
    http_domain: str | None = None
    http_codes: int | None = Field(default=None, ge=1, le=31)
    http_method: Literal["HEAD", "GET"] | None = None
    http_version: Literal["HTTP/1.0", "HTTP/1.1"] | None = None
    check_port: int | None = None


class ListenerSpec(_Model):
    """What one listener should look like: one per Service port and protocol."""

    port: int = Field(ge=1, le=65535)
    protocol: Protocol = "TCP"
    name: str | None = None
    health_check: HealthCheck | None = None
    session_expire_s: int = Field(default=0, ge=0, le=3600)
    scheduler: Literal["WRR", "LEAST_CONN", "IP_HASH"] = "WRR"
    deregister_target_rst: bool = False


class Listener(ListenerSpec):
    listener_id: str


class LoadBalancerSpec(_Model):
    name: str
    internal_subnet_id: str | None = None
    vpc_id: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    client_token: str | None = None
    extra: dict[str, object] = Field(default_factory=dict)


class LoadBalancerInfo(_Model):
    lb_id: str
    name: str = ""
    vips: list[str] = Field(default_factory=list)
    status: int = 1
    internal: bool = False
    tags: dict[str, str] = Field(default_factory=dict)


class Target(_Model):
    """A backend on one listener: Pod IP (EniIp) and resolved target port."""

    listener_id: str
    ip: str
    port: int
    weight: int = Field(default=10, ge=0, le=100)


HealthDetail = Literal["Alive", "Dead", "Unknown", "Close"]


class TargetHealth(_Model):
    listener_id: str
    ip: str
    port: int
    healthy: bool
    detail: HealthDetail = "Unknown"
    weight: int | None = None


# ---------------------------------------------------------------------------------------------- store records

BindingState = Literal["registering", "registered", "draining", "deregistered"]


class BindingRecord(_Model):
    """Durable record of one Pod bound on one listener: unbinding works after the Pod is gone."""

    lb_id: str
    listener_id: str
    pod_uid: str
    namespace: str
    pod_name: str
    service: str = Field(description="namespace/name of the Service that wanted this binding")
    ip: str
    port: int
    weight: int = 10
    state: BindingState = "registering"
    updated_at: float = 0.0
    drain_started_at: float | None = None
    origin: Literal["bind", "extra"] = Field(
        default="bind",
        description="extra: recorded when draining an extra target a live Pod holds (never bound by us)",
    )


class Lease(_Model):
    name: str
    holder: str
    token: int = Field(description="fencing token: strictly increases with every new acquisition")
    expires_at: float


class StoredEvent(_Model):
    """An accepted event kept for replay (`clb-direct replay EVENT_ID`)."""

    id: str
    received_at: float
    source: str
    kind: str
    summary: str = ""
    payload: dict[str, object] = Field(default_factory=dict)


IdempotencyStatus = Literal["IN_PROGRESS", "COMPLETED", "EXPIRED"]


class IdempotencyRecord(_Model):
    """Powertools-style record; only IN_PROGRESS and COMPLETED are stored, EXPIRED is derived from time."""

    key: str
    status: Literal["IN_PROGRESS", "COMPLETED"]
    payload_hash: str
    expiry_ts: float
    in_progress_expiry_ts: float | None = None
    result: object = None
    claim_token: str | None = Field(
        default=None, description="who holds an IN_PROGRESS claim (fences complete/release)"
    )

    def effective_status(self, now: float) -> IdempotencyStatus:
        if now >= self.expiry_ts:
            return "EXPIRED"
        if (
            self.status == "IN_PROGRESS"
            and self.in_progress_expiry_ts is not None
            and now >= self.in_progress_expiry_ts
        ):
            return "EXPIRED"
        return self.status


class SelectorEntry(_Model):
    """Selector index entry: a direct-access Service's selector, for the admission function."""

    namespace: str
    service: str
    selector: dict[str, str]
    lb_id: str | None = None
    updated_at: float = 0.0
    annotations: dict[str, str] = Field(
        default_factory=dict, description="the Service's clb-direct annotations admission needs (protection mode)"
    )


# ---------------------------------------------------------------------------------------------- step requests

StepKind = Literal["service", "bind", "unbind", "flip", "reconcile", "guardian", "health"]


class ScheduleClaim(_Model):
    """A claimed item of the delayed-work schedule that a step completes once its work is done."""

    key: str
    claim: str


class DueItem(_Model):
    """One item of the delayed-work schedule as the store returns it (`shared/schedule.py` has the API)."""

    key: str
    due_at: float = Field(description="epoch seconds the item was due (before it was claimed)")
    payload: str = Field(description="JSON of the typed payload")
    claim: str = Field(default="", description="claim token of the current taker; '' while not claimed")
    attempts: int = Field(default=0, ge=0, description="times the item was taken since it was scheduled")


class StepRequest(_Model):
    """The payload one function invocation receives from the router / reconcile / replay.

    Steps are level-triggered: `services` and `pods` say what to look at; the step re-reads live state.
    Requests for one CLB are grouped (`lb_id`) so that one writer handles them in one batch.
    """

    step: StepKind
    services: list[ObjectKey] = Field(default_factory=list)
    pods: list[ObjectKey] = Field(default_factory=list)
    pod_uids: list[str] = Field(default_factory=list)
    lb_id: str | None = None
    reason: str = ""
    correlation_id: str | None = None
    not_before: float | None = Field(default=None, description="epoch seconds: delayed retry (drain)")
    scheduled: list[ScheduleClaim] = Field(
        default_factory=list, description="schedule items this request carries out (completed when it succeeds)"
    )
