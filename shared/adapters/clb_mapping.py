"""Pure translation between the domain models and CLB 2018-03-17 request/response fields.

Used by `shared.adapters.tencent_clb`; no I/O, so every rule (field names, chunk limits, how targets
are matched) is unit-tested on plain dicts. Limits are the CLB API's documented ones.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import ValidationError

from shared.domain.models import (
    HealthCheck,
    Listener,
    ListenerSpec,
    LoadBalancerInfo,
    LoadBalancerSpec,
    Target,
    TargetHealth,
)

T = TypeVar("T")

BATCH_TARGETS_PER_CALL = 500  # Batch(De)RegisterTargets
WEIGHT_RULES_PER_CALL = 100  # BatchModifyTargetWeight ModifyList
WEIGHT_TARGETS_PER_RULE = 50
WEIGHT_TARGETS_PER_CALL = 500
LISTENERS_PER_DESCRIBE_TARGETS = 20
LBS_PER_DESCRIBE_HEALTH = 30
LBS_PER_DESCRIBE = 20
DESCRIBE_PAGE_LIMIT = 100
MAX_FILTERS = 10
_PROTOCOLS = ("TCP", "UDP", "HTTP", "HTTPS")
_HEALTH_DETAILS = ("Alive", "Dead", "Unknown", "Close")


def chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


# ------------------------------------------------------------------------------------------ load balancers


def create_load_balancer_params(spec: LoadBalancerSpec, *, default_vpc_id: str | None) -> dict[str, Any]:
    """CreateLoadBalancer: INTERNAL needs VpcId + SubnetId; ClientToken makes retries idempotent."""
    params: dict[str, Any] = {
        "LoadBalancerType": "INTERNAL" if spec.internal_subnet_id else "OPEN",
        "Forward": 1,
        "LoadBalancerName": spec.name[:60],
        "Tags": [{"TagKey": key, "TagValue": value} for key, value in sorted(spec.tags.items())],
    }
    vpc_id = spec.vpc_id or default_vpc_id
    if vpc_id:
        params["VpcId"] = vpc_id
    if spec.internal_subnet_id:
        params["SubnetId"] = spec.internal_subnet_id
    if spec.client_token:
        params["ClientToken"] = spec.client_token[:64]
    params.update(spec.extra)
    return params


def tag_filters(tags: Mapping[str, str]) -> list[dict[str, Any]]:
    return [{"Name": f"tag:{key}", "Values": [value]} for key, value in sorted(tags.items())]


def load_balancer_info(raw: Mapping[str, Any]) -> LoadBalancerInfo:
    tags = {str(t.get("TagKey")): str(t.get("TagValue", "")) for t in raw.get("Tags") or []}
    return LoadBalancerInfo(
        lb_id=str(raw["LoadBalancerId"]),
        name=str(raw.get("LoadBalancerName") or ""),
        vips=[str(v) for v in raw.get("LoadBalancerVips") or []],
        status=1 if raw.get("Status") is None else int(raw["Status"]),
        internal=raw.get("LoadBalancerType") == "INTERNAL",
        tags=tags,
    )


# ------------------------------------------------------------------------------------------ listeners


def health_check_params(check: HealthCheck) -> dict[str, Any]:
    params: dict[str, Any] = {
        "HealthSwitch": 1 if check.enabled else 0,
        "TimeOut": check.timeout_s,
        "IntervalTime": check.interval_s,
        "HealthNum": check.healthy_threshold,
        "UnHealthNum": check.unhealthy_threshold,
        "CheckType": check.check_type,
    }
    optional = {
        "HttpCheckPath": check.http_path,
        "HttpCheckDomain": check.http_domain,
        "HttpCode": check.http_codes,
        "HttpCheckMethod": check.http_method,
        "HttpVersion": check.http_version,
        "CheckPort": check.check_port,
    }
    params.update({key: value for key, value in optional.items() if value is not None})
    return params


def health_check_from(raw: Mapping[str, Any] | None) -> HealthCheck | None:
    """None when the CLB reports nothing, or settings our model cannot express (e.g. GRPC checks);
    the service step then sees a difference and rewrites the listener to its own spec."""
    if not raw:
        return None
    check_type = raw.get("CheckType") or "TCP"
    # The CLB echoes its HTTP defaults (path "/", codes 31, HEAD) on TCP checks too; they only mean
    # something for HTTP checks, and reading them back elsewhere would make every listener look changed.
    http = raw if check_type == "HTTP" else {}
    try:
        return HealthCheck(
            enabled=raw.get("HealthSwitch", 1) == 1,
            check_type=check_type,
            interval_s=raw.get("IntervalTime") or 5,
            timeout_s=raw.get("TimeOut") or 2,
            healthy_threshold=raw.get("HealthNum") or 3,
            unhealthy_threshold=raw.get("UnHealthNum") or 3,
            http_path=http.get("HttpCheckPath") or None,
            http_domain=http.get("HttpCheckDomain") or None,
            http_codes=http.get("HttpCode") or None,
            http_method=http.get("HttpCheckMethod") or None,
            http_version=http.get("HttpVersion") or None,
            check_port=raw.get("CheckPort") if raw.get("CheckPort") not in (None, -1) else None,
        )
    except ValidationError:
        return None


def create_listener_params(lb_id: str, spec: ListenerSpec) -> dict[str, Any]:
    params: dict[str, Any] = {
        "LoadBalancerId": lb_id,
        "Ports": [spec.port],
        "Protocol": spec.protocol,
        "SessionExpireTime": spec.session_expire_s,
        "DeregisterTargetRst": spec.deregister_target_rst,
    }
    # CreateListener accepts WRR / LEAST_CONN only; IP_HASH is set by a ModifyListener afterwards.
    if spec.scheduler != "IP_HASH":
        params["Scheduler"] = spec.scheduler
    if spec.name:
        params["ListenerNames"] = [spec.name]
    if spec.health_check is not None:
        params["HealthCheck"] = health_check_params(spec.health_check)
    return params


def modify_listener_params(lb_id: str, listener_id: str, spec: ListenerSpec) -> dict[str, Any]:
    params: dict[str, Any] = {
        "LoadBalancerId": lb_id,
        "ListenerId": listener_id,
        "SessionExpireTime": spec.session_expire_s,
        "Scheduler": spec.scheduler,
        "DeregisterTargetRst": spec.deregister_target_rst,
    }
    if spec.name:
        params["ListenerName"] = spec.name
    if spec.health_check is not None:
        params["HealthCheck"] = health_check_params(spec.health_check)
    return params


def listener_from(raw: Mapping[str, Any]) -> Listener | None:
    """None for listener kinds this project never creates (TCP_SSL, QUIC, port ranges)."""
    if raw.get("Protocol") not in _PROTOCOLS or not raw.get("Port"):
        return None
    scheduler = raw.get("Scheduler") or "WRR"
    return Listener(
        listener_id=str(raw["ListenerId"]),
        port=int(raw["Port"]),
        protocol=raw["Protocol"],
        name=raw.get("ListenerName") or None,
        health_check=health_check_from(raw.get("HealthCheck")),
        session_expire_s=int(raw.get("SessionExpireTime") or 0),
        scheduler=scheduler if scheduler in ("WRR", "LEAST_CONN", "IP_HASH") else "WRR",
        deregister_target_rst=bool(raw.get("DeregisterTargetRst")),
    )


# ------------------------------------------------------------------------------------------ targets


def batch_target(target: Target) -> dict[str, Any]:
    return {"ListenerId": target.listener_id, "EniIp": target.ip, "Port": target.port, "Weight": target.weight}


def weight_modify_lists(targets: Sequence[Target]) -> list[list[dict[str, Any]]]:
    """Pack weight changes into BatchModifyTargetWeight calls: one RsWeightRule per listener slice of at
    most 50 targets, at most 100 rules and 500 targets per call."""
    by_listener: dict[str, list[Target]] = defaultdict(list)
    for target in targets:
        by_listener[target.listener_id].append(target)
    rules: list[dict[str, Any]] = []
    for listener_id in sorted(by_listener):
        for part in chunks(by_listener[listener_id], WEIGHT_TARGETS_PER_RULE):
            rules.append(
                {
                    "ListenerId": listener_id,
                    "Targets": [{"EniIp": t.ip, "Port": t.port, "Weight": t.weight} for t in part],
                }
            )
    calls: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    current_targets = 0
    for rule in rules:
        size = len(rule["Targets"])
        if current and (len(current) >= WEIGHT_RULES_PER_CALL or current_targets + size > WEIGHT_TARGETS_PER_CALL):
            calls.append(current)
            current, current_targets = [], 0
        current.append(rule)
        current_targets += size
    if current:
        calls.append(current)
    return calls


def _backend_targets(listener_id: str, backends: Sequence[Mapping[str, Any]]) -> Iterator[Target]:
    for backend in backends:
        ips = backend.get("PrivateIpAddresses") or []
        if not ips or backend.get("Port") is None:
            continue
        weight = backend.get("Weight")
        yield Target(
            listener_id=listener_id,
            ip=str(ips[0]),
            port=int(backend["Port"]),
            weight=int(weight) if weight is not None else 10,
        )


def targets_from(listeners: Sequence[Mapping[str, Any]]) -> list[Target]:
    """DescribeTargets → Targets: L4 backends sit on the listener, L7 ones under Rules[]."""
    found: list[Target] = []
    for listener in listeners:
        listener_id = str(listener["ListenerId"])
        found.extend(_backend_targets(listener_id, listener.get("Targets") or []))
        for rule in listener.get("Rules") or []:
            found.extend(_backend_targets(listener_id, rule.get("Targets") or []))
    return found


def _health(listener_id: str, raw: Mapping[str, Any]) -> TargetHealth:
    # HealthStatusDetial is the API's deprecated misspelling; older regions may send only that one.
    detail = raw.get("HealthStatusDetail") or raw.get("HealthStatusDetial") or "Unknown"
    weight = raw.get("Weight")
    return TargetHealth(
        listener_id=listener_id,
        ip=str(raw.get("IP") or ""),
        port=int(raw.get("Port") or 0),
        healthy=bool(raw.get("HealthStatus")),
        detail=detail if detail in _HEALTH_DETAILS else "Unknown",
        weight=int(weight) if weight is not None else None,
    )


def target_health_from(load_balancers: Sequence[Mapping[str, Any]]) -> dict[str, list[TargetHealth]]:
    """DescribeTargetHealth → per LB; L4 results also nest in Rules[], so walk them generically."""
    result: dict[str, list[TargetHealth]] = {}
    for lb in load_balancers:
        found = result.setdefault(str(lb["LoadBalancerId"]), [])
        for listener in lb.get("Listeners") or []:
            listener_id = str(listener["ListenerId"])
            targets = list(listener.get("Targets") or [])
            for rule in listener.get("Rules") or []:
                targets.extend(rule.get("Targets") or [])
            found.extend(_health(listener_id, raw) for raw in targets if raw.get("IP"))
    return result
