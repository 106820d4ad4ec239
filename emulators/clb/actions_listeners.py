"""Listener actions: Create/Describe/Modify/DeleteListener(s).

Handlers follow `actions_instances.Handler`: state (lock held), params, request id (= TaskId). Writes
validate at call time and apply when their async task finishes, so DescribeListeners shows a new
listener only once DescribeTaskStatus reports 0. `ClbModel` looks them up in `LISTENER_ACTIONS`.
"""

from __future__ import annotations

from typing import Any

from emulators.clb import wire
from emulators.clb.actions_instances import Handler
from emulators.clb.errors import (
    INVALID_PARAMETER_COMBINATION,
    INVALID_PARAMETER_VALUE,
    MISSING_PARAMETER,
    PORT_CHECK_FAILED,
    PROTOCOL_CHECK_FAILED,
    VALUE_LENGTH,
    ClbApiError,
)
from emulators.clb.healthcheck import merge_health_check
from emulators.clb.params import (
    Params,
    check_range,
    int_list,
    opt_bool,
    opt_dict,
    opt_int,
    opt_str,
    req_str,
    str_list,
)
from emulators.clb.state import (
    L4_PROTOCOLS,
    L7_PROTOCOLS,
    ClbState,
    ListenerState,
    default_health_check,
)
from emulators.clb.views import HEALTH_CLOSE, HEALTH_UNKNOWN

# "Length of .Ports should be less than 50".
MAX_PORTS_PER_CALL = 49
MAX_LISTENER_NAME_LEN = 255
_UDP_FAMILY = frozenset({"UDP", "QUIC"})


def _transport(protocol: str) -> str:
    return "udp" if protocol in _UDP_FAMILY else "tcp"


def _session_expire_time(params: Params) -> int | None:
    value = opt_int(params, "SessionExpireTime")
    if value is not None and value != 0:
        check_range("SessionExpireTime", value, 30, 3600)
    return value


def _scheduler(params: Params, allowed: tuple[str, ...]) -> str | None:
    value = opt_str(params, "Scheduler")
    if value is not None and value not in allowed:
        raise ClbApiError(INVALID_PARAMETER_VALUE, f"Scheduler {value!r} must be one of {', '.join(allowed)}.")
    return value


def create_listener(state: ClbState, params: Params, request_id: str) -> dict[str, Any]:
    lb = state.get_lb(req_str(params, "LoadBalancerId"))
    ports = int_list(params, "Ports", required=True)
    if len(ports) > MAX_PORTS_PER_CALL:
        raise ClbApiError(VALUE_LENGTH, f"Length of .Ports should be less than 50; got {len(ports)}.")
    protocol = req_str(params, "Protocol")
    if protocol not in L4_PROTOCOLS | L7_PROTOCOLS:
        raise ClbApiError(
            PROTOCOL_CHECK_FAILED, f"Protocol {protocol!r} is not one of TCP/UDP/TCP_SSL/QUIC/HTTP/HTTPS."
        )
    if protocol in ("HTTPS", "TCP_SSL") and opt_dict(params, "Certificate") is None:
        raise ClbApiError(MISSING_PARAMETER, f"A {protocol} listener needs a Certificate.")
    names = str_list(params, "ListenerNames")
    if names and len(names) != len(ports):
        raise ClbApiError(INVALID_PARAMETER_COMBINATION, "ListenerNames must have one name per entry of Ports.")
    for index, port in enumerate(ports):
        check_range(f"Ports.{index}", port, 1, 65535)
    taken = {(_transport(lst.protocol), lst.port) for lst in lb.listeners.values()}
    wanted = [(_transport(protocol), port) for port in ports]
    clash = [port for (family, port) in wanted if (family, port) in taken]
    if clash or len(set(wanted)) != len(wanted):
        raise ClbApiError(
            PORT_CHECK_FAILED,
            f"Port(s) {clash or ports} conflict with an existing listener of LoadBalancer {lb.lb_id} "
            "or repeat within the call.",
        )
    health = merge_health_check(protocol, opt_dict(params, "HealthCheck"), default_health_check(protocol))
    session = _session_expire_time(params) or 0
    scheduler = _scheduler(params, ("WRR", "LEAST_CONN")) or "WRR"
    rst = bool(opt_bool(params, "DeregisterTargetRst"))
    state.ensure_unlocked(lb)
    created = [
        ListenerState(
            listener_id=state.new_id("lbl"),
            protocol=protocol,
            port=port,
            name=names[index] if names else "",
            health_check=dict(health),
            scheduler=scheduler,
            session_expire_time=session,
            created_at=state.wall_clock(),
            deregister_target_rst=rst,
        )
        for index, port in enumerate(ports)
    ]

    def add() -> None:
        for listener in created:
            lb.listeners[listener.listener_id] = listener

    state.start_task(request_id, [lb.lb_id], add)
    return {"ListenerIds": [listener.listener_id for listener in created]}


def describe_listeners(state: ClbState, params: Params, request_id: str) -> dict[str, Any]:
    lb = state.get_lb(req_str(params, "LoadBalancerId"))
    ids = str_list(params, "ListenerIds", max_len=100)
    protocol = opt_str(params, "Protocol")
    port = opt_int(params, "Port")
    found = [
        listener
        for listener in lb.listeners.values()
        if (not ids or listener.listener_id in ids)
        and (protocol is None or listener.protocol == protocol)
        and (port is None or listener.port == port)
    ]
    return {"Listeners": [wire.listener(listener) for listener in found], "TotalCount": len(found)}


def modify_listener(state: ClbState, params: Params, request_id: str) -> dict[str, Any]:
    lb = state.get_lb(req_str(params, "LoadBalancerId"))
    listener = state.get_listener(lb, req_str(params, "ListenerId"))
    name = opt_str(params, "ListenerName")
    if name is not None and len(name) > MAX_LISTENER_NAME_LEN:
        raise ClbApiError(VALUE_LENGTH, f"ListenerName is longer than {MAX_LISTENER_NAME_LEN} characters.")
    given_health = opt_dict(params, "HealthCheck")
    health = merge_health_check(listener.protocol, given_health, listener.health_check) if given_health else None
    session = _session_expire_time(params)
    scheduler = _scheduler(params, ("WRR", "LEAST_CONN", "IP_HASH"))
    rst = opt_bool(params, "DeregisterTargetRst")
    state.ensure_unlocked(lb)

    def apply() -> None:
        if name is not None:
            listener.name = name
        if session is not None:
            listener.session_expire_time = session
        if scheduler is not None:
            listener.scheduler = scheduler
        if rst is not None:
            listener.deregister_target_rst = rst
        if health is not None:
            was_enabled = listener.health_enabled
            listener.health_check = health
            if was_enabled != listener.health_enabled:
                # Turning checks off reports Close; turning them on restarts from Unknown until probed.
                detail = HEALTH_UNKNOWN if listener.health_enabled else HEALTH_CLOSE
                for target in listener.targets.values():
                    target.health = detail

    state.start_task(request_id, [lb.lb_id], apply)
    return {}


def delete_listener(state: ClbState, params: Params, request_id: str) -> dict[str, Any]:
    lb = state.get_lb(req_str(params, "LoadBalancerId"))
    listener = state.get_listener(lb, req_str(params, "ListenerId"))
    state.ensure_unlocked(lb)

    def remove() -> None:
        lb.listeners.pop(listener.listener_id, None)

    state.start_task(request_id, [lb.lb_id], remove)
    return {}


LISTENER_ACTIONS: dict[str, Handler] = {
    "CreateListener": create_listener,
    "DescribeListeners": describe_listeners,
    "ModifyListener": modify_listener,
    "DeleteListener": delete_listener,
}
