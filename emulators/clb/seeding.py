"""Export and load of the CLB emulator's whole state as JSON (the admin `GET state` / `POST seed`).

The format mirrors the API's field names so a test can write a seed by hand:
`{"load_balancers": [{"LoadBalancerId"?, "LoadBalancerType"?, "Vip"?, "Tags"?, "Listeners": [{"Protocol",
"Port", "HealthCheck"?, "Targets": [{"EniIp", "Port", "Weight"?, "Health"?}]}]}]}`; missing ids, VIPs
and settings are filled as CreateLoadBalancer / CreateListener would. Called by `ClbModel.seed` and
`ClbModel.export_state` with the model lock held.
"""

from __future__ import annotations

from typing import Any

from emulators.clb import wire
from emulators.clb.errors import INVALID_PARAMETER_VALUE, ClbApiError
from emulators.clb.healthcheck import merge_health_check
from emulators.clb.params import Params, dict_list, opt_bool, opt_dict, opt_int, opt_str, req_int, req_str
from emulators.clb.state import (
    ClbState,
    ListenerState,
    LoadBalancerState,
    TargetState,
    default_health_check,
)
from emulators.clb.views import HEALTH_DETAILS


def export_state(state: ClbState) -> dict[str, Any]:
    return {
        "load_balancers": [
            {
                "LoadBalancerId": lb.lb_id,
                "LoadBalancerName": lb.name,
                "LoadBalancerType": lb.lb_type,
                "Vip": lb.vip,
                "VpcId": lb.vpc_id,
                "SubnetId": lb.subnet_id,
                "Tags": [{"TagKey": k, "TagValue": v} for k, v in lb.tags],
                "Status": lb.status,
                "ProjectId": lb.project_id,
                "Listeners": [_export_listener(listener) for listener in lb.listeners.values()],
            }
            for lb in state.lbs.values()
        ],
        "tasks": [
            {"TaskId": task_id, "Status": task.status(), "LoadBalancerIds": list(task.lb_ids)}
            for task_id, task in state.tasks.items()
        ],
    }


def _export_listener(listener: ListenerState) -> dict[str, Any]:
    return {
        "ListenerId": listener.listener_id,
        "Protocol": listener.protocol,
        "Port": listener.port,
        "ListenerName": listener.name,
        "HealthCheck": wire.health_check(listener),
        "Scheduler": listener.scheduler,
        "SessionExpireTime": listener.session_expire_time,
        "DeregisterTargetRst": listener.deregister_target_rst,
        "Targets": [
            {"EniIp": t.ip, "Port": t.port, "Weight": t.weight, "Health": t.health, "Tag": t.tag}
            for t in listener.targets.values()
        ],
    }


def load_state(state: ClbState, data: Params) -> None:
    """Add the seeded CLBs to `state` (the caller resets it first); refuses duplicates and bad values."""
    for index, item in enumerate(dict_list(data, "load_balancers")):
        lb = _load_lb(state, item, f"load_balancers.{index}")
        if lb.lb_id in state.lbs:
            raise ClbApiError(INVALID_PARAMETER_VALUE, f"seed repeats LoadBalancerId {lb.lb_id}")
        state.lbs[lb.lb_id] = lb
    state.changed = True


def _load_lb(state: ClbState, item: Params, path: str) -> LoadBalancerState:
    vip = opt_str(item, "Vip", f"{path}.Vip")
    if vip is None:
        vip = state.next_vip()
    else:
        state.note_vip(vip)
    lb = LoadBalancerState(
        lb_id=opt_str(item, "LoadBalancerId", f"{path}.LoadBalancerId") or state.new_id("lb"),
        name=opt_str(item, "LoadBalancerName") or "",
        lb_type=opt_str(item, "LoadBalancerType") or "INTERNAL",
        vip=vip,
        vpc_id=opt_str(item, "VpcId") or "",
        subnet_id=opt_str(item, "SubnetId") or "",
        tags=[(req_str(t, "TagKey"), opt_str(t, "TagValue") or "") for t in dict_list(item, "Tags")],
        status=1 if opt_int(item, "Status") is None else int(opt_int(item, "Status") or 0),
        created_at=state.wall_clock(),
        project_id=opt_int(item, "ProjectId") or 0,
    )
    for index, raw in enumerate(dict_list(item, "Listeners")):
        listener = _load_listener(state, raw, f"{path}.Listeners.{index}")
        lb.listeners[listener.listener_id] = listener
    return lb


def _load_listener(state: ClbState, raw: Params, path: str) -> ListenerState:
    protocol = req_str(raw, "Protocol", f"{path}.Protocol")
    if protocol not in ("TCP", "UDP", "TCP_SSL", "QUIC", "HTTP", "HTTPS"):
        raise ClbApiError(INVALID_PARAMETER_VALUE, f"{path}.Protocol {protocol!r} is not a CLB protocol")
    listener = ListenerState(
        listener_id=opt_str(raw, "ListenerId", f"{path}.ListenerId") or state.new_id("lbl"),
        protocol=protocol,
        port=req_int(raw, "Port", f"{path}.Port"),
        name=opt_str(raw, "ListenerName") or "",
        health_check=merge_health_check(protocol, opt_dict(raw, "HealthCheck"), default_health_check(protocol)),
        scheduler=opt_str(raw, "Scheduler") or "WRR",
        session_expire_time=opt_int(raw, "SessionExpireTime") or 0,
        created_at=state.wall_clock(),
        deregister_target_rst=bool(opt_bool(raw, "DeregisterTargetRst")),
    )
    for index, target in enumerate(dict_list(raw, "Targets")):
        tpath = f"{path}.Targets.{index}"
        health = opt_str(target, "Health", f"{tpath}.Health") or listener.initial_health()
        if health not in HEALTH_DETAILS:
            raise ClbApiError(INVALID_PARAMETER_VALUE, f"{tpath}.Health must be one of {sorted(HEALTH_DETAILS)}")
        weight = opt_int(target, "Weight", f"{tpath}.Weight")
        state_target = TargetState(
            ip=req_str(target, "EniIp", f"{tpath}.EniIp"),
            port=req_int(target, "Port", f"{tpath}.Port"),
            weight=10 if weight is None else weight,
            health=health,
            registered_at=state.wall_clock(),
            tag=opt_str(target, "Tag") or "",
        )
        listener.targets[(state_target.ip, state_target.port)] = state_target
    return listener
