"""CLB instance actions: Create/Describe/DeleteLoadBalancer(s) and DescribeTaskStatus.

Each handler takes the `ClbState` (the model's lock already held), the request parameters and the
request id (which doubles as the async TaskId) and returns the response body without RequestId.
`ClbModel` (model.py) looks handlers up in `INSTANCE_ACTIONS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emulators.clb import wire
from emulators.clb.errors import (
    INVALID_PARAMETER,
    INVALID_PARAMETER_VALUE,
    LIMIT_EXCEEDED,
    MISSING_PARAMETER,
    TARGET_NUM_CHECK_RISK,
    UNSUPPORTED_OPERATION,
    VALUE_INVALID_FILTER,
    VALUE_LENGTH,
    ClbApiError,
)
from emulators.clb.params import (
    Params,
    check_range,
    dict_list,
    opt_bool,
    opt_int,
    opt_str,
    req_str,
    str_list,
)
from emulators.clb.state import ClbState, LoadBalancerState

Handler = Callable[[ClbState, Params, str], dict[str, Any]]

# Default CLB quota per region and network type.
LB_QUOTA_PER_TYPE = 100
MAX_TAGS = 20
MAX_NAME_LEN = 60
MAX_CLIENT_TOKEN_LEN = 64


def create_load_balancer(state: ClbState, params: Params, request_id: str) -> dict[str, Any]:
    lb_type = req_str(params, "LoadBalancerType")
    if lb_type not in ("OPEN", "INTERNAL"):
        raise ClbApiError(INVALID_PARAMETER_VALUE, f"LoadBalancerType {lb_type!r} must be OPEN or INTERNAL.")
    forward = opt_int(params, "Forward")
    if forward not in (None, 1):
        raise ClbApiError(UNSUPPORTED_OPERATION, "Only Forward=1 (CLB) is supported; classic CLBs are retired.")
    name = opt_str(params, "LoadBalancerName") or ""
    if len(name) > MAX_NAME_LEN:
        raise ClbApiError(VALUE_LENGTH, f"LoadBalancerName is longer than {MAX_NAME_LEN} characters.")
    vpc_id = opt_str(params, "VpcId") or ""
    subnet_id = opt_str(params, "SubnetId") or ""
    if lb_type == "INTERNAL" and not (vpc_id and subnet_id):
        raise ClbApiError(MISSING_PARAMETER, "An INTERNAL load balancer needs both VpcId and SubnetId.")
    if (opt_str(params, "AddressIPVersion") or "IPV4").upper() != "IPV4":
        raise ClbApiError(UNSUPPORTED_OPERATION, "The emulator serves IPv4 CLBs only (loopback VIPs).")
    if opt_str(params, "Vip") is not None:
        raise ClbApiError(UNSUPPORTED_OPERATION, "The emulator assigns VIPs itself (127.1.0.N); omit Vip.")
    number = opt_int(params, "Number")
    number = 1 if number is None else number
    check_range("Number", number, 1, 20)
    tags = _parse_tags(params)
    project_id = opt_int(params, "ProjectId") or 0
    token = opt_str(params, "ClientToken")
    if token is not None:
        if len(token) > MAX_CLIENT_TOKEN_LEN or not token.isascii():
            raise ClbApiError(
                "InvalidParameter.ClientTokenLimitExceeded",
                f"ClientToken must be at most {MAX_CLIENT_TOKEN_LEN} ASCII characters.",
            )
        if token in state.client_tokens:
            lb_ids, deal_name, task_id = state.client_tokens[token]
            # A retried create answers with the first call's ids; its task is the first call's task.
            state.tasks[request_id] = state.tasks[task_id]
            return {"LoadBalancerIds": list(lb_ids), "DealName": deal_name}
    existing = sum(1 for lb in state.lbs.values() if lb.lb_type == lb_type)
    if existing + number > LB_QUOTA_PER_TYPE:
        raise ClbApiError(
            LIMIT_EXCEEDED,
            f"{lb_type} CLB quota of {LB_QUOTA_PER_TYPE} per region reached ({existing} exist); delete unused CLBs.",
        )
    created: list[LoadBalancerState] = []
    for _ in range(number):
        lb = LoadBalancerState(
            lb_id=state.new_id("lb"),
            name=name,
            lb_type=lb_type,
            vip=state.next_vip(),
            vpc_id=vpc_id,
            subnet_id=subnet_id,
            tags=tags,
            status=0,
            created_at=state.wall_clock(),
            project_id=project_id,
        )
        state.lbs[lb.lb_id] = lb
        created.append(lb)
    lb_ids = [lb.lb_id for lb in created]
    deal_name = state.new_id("deal")
    state.deals[deal_name] = request_id
    if token is not None:
        state.client_tokens[token] = (lb_ids, deal_name, request_id)

    def activate() -> None:
        for lb in created:
            lb.status = 1

    def discard() -> None:
        for lb in created:
            state.lbs.pop(lb.lb_id, None)

    state.start_task(request_id, lb_ids, activate, rollback=discard, created_lb_ids=lb_ids)
    state.changed = True
    return {"LoadBalancerIds": lb_ids, "DealName": deal_name}


def _parse_tags(params: Params) -> list[tuple[str, str]]:
    tags: list[tuple[str, str]] = []
    for index, tag in enumerate(dict_list(params, "Tags", max_len=MAX_TAGS)):
        key = req_str(tag, "TagKey", f"Tags.{index}.TagKey")
        tags.append((key, opt_str(tag, "TagValue", f"Tags.{index}.TagValue") or ""))
    if len({key for key, _ in tags}) != len(tags):
        raise ClbApiError("InvalidParameterValue.Duplicate", "Tags repeat a TagKey; each key may appear once.")
    return tags


def describe_load_balancers(state: ClbState, params: Params, request_id: str) -> dict[str, Any]:
    ids = str_list(params, "LoadBalancerIds", max_len=20)
    lb_type = opt_str(params, "LoadBalancerType")
    name = opt_str(params, "LoadBalancerName")
    vips = str_list(params, "LoadBalancerVips")
    backend_ips = set(str_list(params, "BackendPrivateIps"))
    vpc_id = opt_str(params, "VpcId")
    search = opt_str(params, "SearchKey")
    project_id = opt_int(params, "ProjectId")
    offset = opt_int(params, "Offset") or 0
    limit = opt_int(params, "Limit")
    limit = 20 if limit is None else limit
    check_range("Offset", offset, 0, 2**31)
    check_range("Limit", limit, 1, 100)
    predicates = _filter_predicates(dict_list(params, "Filters", max_len=10))

    def matches(lb: LoadBalancerState) -> bool:
        ips = {t.ip for listener in lb.listeners.values() for t in listener.targets.values()}
        checks = (
            not ids or lb.lb_id in ids,
            lb_type is None or lb.lb_type == lb_type,
            name is None or name in lb.name,
            not vips or lb.vip in vips,
            not backend_ips or bool(backend_ips & ips),
            vpc_id is None or lb.vpc_id == vpc_id,
            search is None or any(search in v for v in (lb.lb_id, lb.name, lb.vip)),
            project_id is None or lb.project_id == project_id,
        )
        return all(checks) and all(pred(lb) for pred in predicates)

    found = [lb for lb in state.lbs.values() if matches(lb)]
    return {
        "TotalCount": len(found),
        "LoadBalancerSet": [wire.load_balancer(lb) for lb in found[offset : offset + limit]],
    }


def _filter_predicates(filters: list[Params]) -> list[Callable[[LoadBalancerState], bool]]:
    predicates: list[Callable[[LoadBalancerState], bool]] = []
    for index, item in enumerate(filters):
        filter_name = req_str(item, "Name", f"Filters.{index}.Name")
        values = set(str_list(item, "Values", required=True, max_len=100))
        if filter_name == "tag-key":
            predicates.append(_has_tag_key(values))
        elif filter_name.startswith("tag:") and len(filter_name) > 4:
            predicates.append(_has_tag_value(filter_name[4:], values))
        else:
            raise ClbApiError(
                VALUE_INVALID_FILTER,
                f"Filter {filter_name!r} is not supported by the emulator; use tag-key or tag:<key>.",
            )
    return predicates


def _has_tag_key(keys: set[str]) -> Callable[[LoadBalancerState], bool]:
    def check(lb: LoadBalancerState) -> bool:
        return any(key in keys for key, _ in lb.tags)

    return check


def _has_tag_value(key: str, wanted: set[str]) -> Callable[[LoadBalancerState], bool]:
    def check(lb: LoadBalancerState) -> bool:
        return any(k == key and v in wanted for k, v in lb.tags)

    return check


def delete_load_balancer(state: ClbState, params: Params, request_id: str) -> dict[str, Any]:
    ids = str_list(params, "LoadBalancerIds", required=True, max_len=20)
    force = bool(opt_bool(params, "ForceDelete"))
    lbs = [state.get_lb(lb_id) for lb_id in dict.fromkeys(ids)]
    for lb in lbs:
        state.ensure_unlocked(lb)
        # Without ForceDelete the real API refuses to delete a CLB that still serves >= 20 backends.
        if not force and lb.target_count() >= 20:
            raise ClbApiError(
                TARGET_NUM_CHECK_RISK,
                f"LoadBalancer {lb.lb_id} has {lb.target_count()} backends; deregister them or set ForceDelete.",
            )

    def remove() -> None:
        for lb in lbs:
            state.lbs.pop(lb.lb_id, None)

    state.start_task(request_id, [lb.lb_id for lb in lbs], remove)
    return {}


def describe_task_status(state: ClbState, params: Params, request_id: str) -> dict[str, Any]:
    task_id = opt_str(params, "TaskId")
    deal_name = opt_str(params, "DealName")
    if not task_id and not deal_name:
        raise ClbApiError(MISSING_PARAMETER, "Give TaskId (the RequestId of an async call) or DealName.")
    if not task_id:
        task_id = state.deals.get(deal_name or "")
    task = state.tasks.get(task_id or "")
    if task is None:
        raise ClbApiError(INVALID_PARAMETER, f"Task {task_id or deal_name} not found; pass the RequestId of a write.")
    return {
        "Status": task.status(),
        "LoadBalancerIds": list(task.created_lb_ids) if task.created_lb_ids is not None else None,
        "Message": task.fail_message or "",
    }


INSTANCE_ACTIONS: dict[str, Handler] = {
    "CreateLoadBalancer": create_load_balancer,
    "DescribeLoadBalancers": describe_load_balancers,
    "DeleteLoadBalancer": delete_load_balancer,
    "DescribeTaskStatus": describe_task_status,
}
