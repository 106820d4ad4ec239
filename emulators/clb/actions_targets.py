"""Backend actions: (Batch)Register/DeregisterTargets, (Batch)ModifyTargetWeight, DescribeTargets,
DescribeTargetHealth.

Handlers follow `actions_instances.Handler`. RegisterTargets, DeregisterTargets and the weight changes are
async (applied when their task ends); BatchRegisterTargets / BatchDeregisterTargets apply at once and
report unknown listeners in `FailListenerIdSet`, as the real service does in practice.
Registering a bound target or deregistering an unbound one is a no-op, so retries are safe.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from emulators.clb import wire
from emulators.clb.actions_instances import Handler
from emulators.clb.errors import (
    FORMAT_ERROR,
    INVALID_PARAMETER,
    INVALID_PARAMETER_COMBINATION,
    LIMIT_EXCEEDED,
    LOCATION_NOT_FOUND,
    MISSING_PARAMETER,
    UNSUPPORTED_OPERATION,
    VALUE_DUPLICATE,
    VALUE_INVALID_FILTER,
    VALUE_LENGTH,
    ClbApiError,
)
from emulators.clb.params import Params, check_range, dict_list, opt_int, opt_str, req_int, req_str, str_list
from emulators.clb.state import L7_PROTOCOLS, ClbState, ListenerState, LoadBalancerState, TargetState

MAX_TARGETS_PER_CALL = 20
MAX_BATCH_TARGETS = 500
MAX_MODIFY_RULES = 100
MAX_TARGETS_PER_RULE = 50
MAX_DESCRIBE_LISTENERS = 20
MAX_HEALTH_LBS = 30
DEFAULT_WEIGHT = 10


@dataclass(frozen=True)
class TargetSpec:
    ip: str
    port: int
    weight: int | None
    tag: str

    @property
    def key(self) -> tuple[str, int]:
        return (self.ip, self.port)


def _parse_target(item: Params, path: str) -> TargetSpec:
    port = req_int(item, "Port", f"{path}.Port")
    check_range(f"{path}.Port", port, 1, 65535)
    eni_ip = opt_str(item, "EniIp", f"{path}.EniIp")
    instance_id = opt_str(item, "InstanceId", f"{path}.InstanceId")
    if eni_ip and instance_id:
        raise ClbApiError(INVALID_PARAMETER_COMBINATION, f"{path}: give exactly one of EniIp and InstanceId.")
    if instance_id:
        raise ClbApiError(UNSUPPORTED_OPERATION, f"{path}: the emulator binds EniIp targets only, not CVM ids.")
    if not eni_ip:
        raise ClbApiError(MISSING_PARAMETER, f"{path}: EniIp (or InstanceId) is required.")
    try:
        ipaddress.IPv4Address(eni_ip)
    except ValueError:
        raise ClbApiError(FORMAT_ERROR, f"{path}.EniIp {eni_ip!r} is not an IPv4 address.") from None
    weight = opt_int(item, "Weight", f"{path}.Weight")
    if weight is not None:
        check_range(f"{path}.Weight", weight, 0, 100)
    return TargetSpec(eni_ip, port, weight, opt_str(item, "Tag", f"{path}.Tag") or "")


def _parse_targets(params: Params, key: str, max_len: int) -> list[TargetSpec]:
    items = dict_list(params, key, required=True, max_len=max_len)
    return [_parse_target(item, f"{key}.{i}") for i, item in enumerate(items)]


def _reject_duplicates(pairs: Iterable[tuple[str, tuple[str, int]]]) -> None:
    seen: set[tuple[str, tuple[str, int]]] = set()
    for pair in pairs:
        if pair in seen:
            raise ClbApiError(VALUE_DUPLICATE, f"Target {pair[1][0]}:{pair[1][1]} repeats in the call.")
        seen.add(pair)


def _ensure_l4(listener: ListenerState) -> None:
    if listener.protocol in L7_PROTOCOLS:
        raise ClbApiError(
            LOCATION_NOT_FOUND, f"Listener {listener.listener_id} is L7; the emulator models no L7 forwarding rules."
        )


def _check_quota(state: ClbState, lb: LoadBalancerState, adding: int) -> None:
    quota = state.config.backend_quota
    if lb.target_count() + adding > quota:
        raise ClbApiError(
            LIMIT_EXCEEDED,
            f"LoadBalancer {lb.lb_id} would have {lb.target_count() + adding} backends; the quota is {quota}. "
            "Raise the quota or spread the backends over more CLBs.",
        )


def _bind(state: ClbState, listener: ListenerState, specs: list[TargetSpec]) -> None:
    for spec in specs:
        if spec.key not in listener.targets:
            listener.targets[spec.key] = TargetState(
                ip=spec.ip,
                port=spec.port,
                weight=DEFAULT_WEIGHT if spec.weight is None else spec.weight,
                health=listener.initial_health(),
                registered_at=state.wall_clock(),
                tag=spec.tag,
            )


def register_targets(state: ClbState, params: Params, request_id: str) -> dict[str, Any]:
    lb = state.get_lb(req_str(params, "LoadBalancerId"))
    listener = state.get_listener(lb, req_str(params, "ListenerId"))
    specs = _parse_targets(params, "Targets", MAX_TARGETS_PER_CALL)
    _ensure_l4(listener)
    _reject_duplicates((listener.listener_id, s.key) for s in specs)
    _check_quota(state, lb, sum(1 for s in specs if s.key not in listener.targets))
    state.ensure_unlocked(lb)
    state.start_task(request_id, [lb.lb_id], lambda: _bind(state, listener, specs))
    return {}


def deregister_targets(state: ClbState, params: Params, request_id: str) -> dict[str, Any]:
    lb = state.get_lb(req_str(params, "LoadBalancerId"))
    listener = state.get_listener(lb, req_str(params, "ListenerId"))
    specs = _parse_targets(params, "Targets", MAX_TARGETS_PER_CALL)
    _ensure_l4(listener)
    state.ensure_unlocked(lb)

    def unbind() -> None:
        for spec in specs:
            listener.targets.pop(spec.key, None)

    state.start_task(request_id, [lb.lb_id], unbind)
    return {}


def _batch_groups(
    state: ClbState, lb: LoadBalancerState, params: Params
) -> tuple[dict[str, list[TargetSpec]], list[str]]:
    """Targets grouped by known L4 listener, and the listener ids that cannot take them."""
    items = dict_list(params, "Targets", required=True, max_len=MAX_BATCH_TARGETS)
    groups: dict[str, list[TargetSpec]] = {}
    failed: list[str] = []
    for index, item in enumerate(items):
        listener_id = req_str(item, "ListenerId", f"Targets.{index}.ListenerId")
        spec = _parse_target(item, f"Targets.{index}")
        listener = lb.listeners.get(listener_id)
        if listener is None or listener.protocol in L7_PROTOCOLS:
            if listener_id not in failed:
                failed.append(listener_id)
            continue
        groups.setdefault(listener_id, []).append(spec)
    _reject_duplicates((lid, s.key) for lid, specs in groups.items() for s in specs)
    return groups, failed


def _batch_reply(failed: list[str]) -> dict[str, Any]:
    message = f"listener(s) not found or not L4: {', '.join(failed)}" if failed else ""
    return {"FailListenerIdSet": failed, "Message": message}


def batch_register_targets(state: ClbState, params: Params, request_id: str) -> dict[str, Any]:
    lb = state.get_lb(req_str(params, "LoadBalancerId"))
    groups, failed = _batch_groups(state, lb, params)
    adding = sum(1 for lid, specs in groups.items() for s in specs if s.key not in lb.listeners[lid].targets)
    _check_quota(state, lb, adding)
    state.ensure_unlocked(lb)
    for listener_id, specs in groups.items():
        _bind(state, lb.listeners[listener_id], specs)
    state.record_done_task(request_id, [lb.lb_id])
    state.changed = True
    return _batch_reply(failed)


def batch_deregister_targets(state: ClbState, params: Params, request_id: str) -> dict[str, Any]:
    lb = state.get_lb(req_str(params, "LoadBalancerId"))
    groups, failed = _batch_groups(state, lb, params)
    state.ensure_unlocked(lb)
    for listener_id, specs in groups.items():
        for spec in specs:
            lb.listeners[listener_id].targets.pop(spec.key, None)
    state.record_done_task(request_id, [lb.lb_id])
    state.changed = True
    return _batch_reply(failed)


def _weight_changes(
    listener: ListenerState, specs: list[TargetSpec], default_weight: int | None, path: str
) -> list[tuple[TargetState, int]]:
    changes: list[tuple[TargetState, int]] = []
    for spec in specs:
        target = listener.targets.get(spec.key)
        if target is None:
            raise ClbApiError(
                INVALID_PARAMETER,
                f"Target {spec.ip}:{spec.port} is not bound to listener {listener.listener_id}; register it first.",
            )
        weight = spec.weight if spec.weight is not None else default_weight
        if weight is None:
            raise ClbApiError(MISSING_PARAMETER, f"{path}: give Weight for the call or for each target.")
        changes.append((target, weight))
    return changes


def _optional_weight(params: Params, key: str) -> int | None:
    weight = opt_int(params, key)
    if weight is not None:
        check_range(key, weight, 0, 100)
    return weight


def _apply_weights(changes: list[tuple[TargetState, int]]) -> None:
    for target, weight in changes:
        target.weight = weight


def modify_target_weight(state: ClbState, params: Params, request_id: str) -> dict[str, Any]:
    lb = state.get_lb(req_str(params, "LoadBalancerId"))
    listener = state.get_listener(lb, req_str(params, "ListenerId"))
    _ensure_l4(listener)
    weight = _optional_weight(params, "Weight")
    specs = _parse_targets(params, "Targets", MAX_TARGETS_PER_CALL)
    changes = _weight_changes(listener, specs, weight, "Targets")
    state.ensure_unlocked(lb)
    state.start_task(request_id, [lb.lb_id], lambda: _apply_weights(changes))
    return {}


def batch_modify_target_weight(state: ClbState, params: Params, request_id: str) -> dict[str, Any]:
    lb = state.get_lb(req_str(params, "LoadBalancerId"))
    rules = dict_list(params, "ModifyList", required=True, max_len=MAX_MODIFY_RULES)
    changes: list[tuple[TargetState, int]] = []
    total = 0
    for index, rule in enumerate(rules):
        path = f"ModifyList.{index}"
        listener = state.get_listener(lb, req_str(rule, "ListenerId", f"{path}.ListenerId"))
        _ensure_l4(listener)
        weight = _optional_weight(rule, "Weight")
        items = dict_list(rule, "Targets", required=True, max_len=MAX_TARGETS_PER_RULE)
        total += len(items)
        specs = [_parse_target(item, f"{path}.Targets.{i}") for i, item in enumerate(items)]
        changes.extend(_weight_changes(listener, specs, weight, f"{path}.Targets"))
    if total > MAX_BATCH_TARGETS:
        raise ClbApiError(VALUE_LENGTH, f"ModifyList names {total} targets; at most {MAX_BATCH_TARGETS} per call.")
    state.ensure_unlocked(lb)
    state.start_task(request_id, [lb.lb_id], lambda: _apply_weights(changes))
    return {}


def describe_targets(state: ClbState, params: Params, request_id: str) -> dict[str, Any]:
    lb = state.get_lb(req_str(params, "LoadBalancerId"))
    ids = str_list(params, "ListenerIds", max_len=MAX_DESCRIBE_LISTENERS)
    protocol = opt_str(params, "Protocol")
    port = opt_int(params, "Port")
    ips: set[str] | None = None
    tags: set[str] | None = None
    for index, item in enumerate(dict_list(params, "Filters")):
        name = req_str(item, "Name", f"Filters.{index}.Name")
        values = set(str_list(item, "Values", required=True))
        if name == "private-ip-address":
            ips = values
        elif name == "tag":
            tags = values
        else:
            raise ClbApiError(VALUE_INVALID_FILTER, f"Filter {name!r} is not supported; use private-ip-address or tag.")
    listeners = []
    for listener in lb.listeners.values():
        if (ids and listener.listener_id not in ids) or (protocol and listener.protocol != protocol):
            continue
        if port is not None and listener.port != port:
            continue
        targets = [
            t for t in listener.targets.values() if (ips is None or t.ip in ips) and (tags is None or t.tag in tags)
        ]
        listeners.append(wire.listener_backend(listener, targets))
    return {"Listeners": listeners}


def describe_target_health(state: ClbState, params: Params, request_id: str) -> dict[str, Any]:
    ids = str_list(params, "LoadBalancerIds", required=True, max_len=MAX_HEALTH_LBS)
    listener_ids = str_list(params, "ListenerIds")
    str_list(params, "LocationIds")
    result = []
    for lb_id in dict.fromkeys(ids):
        lb = state.get_lb(lb_id)
        listeners = [
            wire.listener_health(listener)
            for listener in lb.listeners.values()
            if not listener_ids or listener.listener_id in listener_ids
        ]
        result.append({"LoadBalancerId": lb.lb_id, "LoadBalancerName": lb.name, "Listeners": listeners})
    return {"LoadBalancers": result}


TARGET_ACTIONS: dict[str, Handler] = {
    "RegisterTargets": register_targets,
    "DeregisterTargets": deregister_targets,
    "BatchRegisterTargets": batch_register_targets,
    "BatchDeregisterTargets": batch_deregister_targets,
    "ModifyTargetWeight": modify_target_weight,
    "BatchModifyTargetWeight": batch_modify_target_weight,
    "DescribeTargets": describe_targets,
    "DescribeTargetHealth": describe_target_health,
}
