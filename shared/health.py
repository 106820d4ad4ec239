"""The health service: CLB health signals -> `flip` steps for the Pods whose targets changed.

Called by `functions/health/handler.py` for three inputs: the CLB (emulator) `TargetHealthChanged`
notification (precise: one target on one listener), the Cloud Monitor `UnhealthRsCount` alarm callback
(coarse: only says "look at this CLB") and the timer poll, which asks
DescribeTargetHealth (≤30 CLBs per call) only for CLBs that still have Pods whose gate is not True —
the flip step records each Pod's gate in the store as `gate:<pod_uid>`. Each flip asked for names only
the Pods concerned, so one health change costs one Pod's flip, and Pods whose gate is True (a fence)
cost none. The first healthy report of a Pod's target is recorded on its timeline (`alive`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from shared.deps import Deps
from shared.dispatch import dispatch
from shared.domain.models import BindingRecord, ObjectKey, StepRequest
from shared.domain.routing import group_requests
from shared.events.health import AlarmAck, AlarmCallback, TargetHealthChanged
from shared.keys import GATE_SETTLED, gate_key
from shared.logging import get_logger
from shared.timeline import record_stage

# DescribeTargetHealth accepts up to 30 LoadBalancerIds per call.
DESCRIBE_HEALTH_BATCH = 30
ACTIVE_STATES = frozenset({"registering", "registered"})
ALARM_METRICS = frozenset({"UnhealthRsCount", "HealthRsCount"})

log = get_logger("clb_direct.health")


def settled_gates(deps: Deps, pod_uids: Iterable[str]) -> set[str]:
    """Which of these Pods need no more flips: the gate is True (a fence), or the Pod has no readiness
    gate of ours; one store read for all of them."""
    uids = sorted(set(pod_uids))
    values = deps.store.kv_get_many([gate_key(uid) for uid in uids], now=deps.clock.now()) if uids else {}
    return {uid for uid in uids if values.get(gate_key(uid)) in GATE_SETTLED}


def _flip_request(bindings: Iterable[BindingRecord], reason: str, correlation_id: str | None) -> list[StepRequest]:
    requests = [
        StepRequest(
            step="flip",
            lb_id=b.lb_id,
            # Only the Pod: naming its Service would make the flip re-examine every Pod the Service selects.
            pods=[ObjectKey(namespace=b.namespace, name=b.pod_name)],
            pod_uids=[b.pod_uid],
            reason=reason,
        )
        for b in bindings
    ]
    return group_requests(requests, correlation_id=correlation_id)


def _note_time(note: TargetHealthChanged, now: float) -> float:
    """When the CLB saw the change: the notification's epoch timestamp when plausible, else now."""
    stamp = note.timestamp
    return float(stamp) if isinstance(stamp, (int, float)) and 0 < float(stamp) <= now + 5 else now


def on_target_health_changed(deps: Deps, note: TargetHealthChanged) -> dict[str, Any]:
    """Flip the gate-pending Pods bound as this target on this listener (the flip re-reads live health).

    A Pod whose gate is already True is fenced (rule 11): its health changes are the CLB's business
    (it stops forwarding to a dead target) and cost no flip.
    """
    target = (note.listener_id, note.target.ip, note.target.port)
    matched = [
        b
        for b in deps.store.list_bindings(lb_id=note.load_balancer_id, ip=note.target.ip)
        if (b.listener_id, b.ip, b.port) == target and b.state in ACTIVE_STATES
    ]
    where = f"{note.load_balancer_id}/{note.listener_id} {note.target.ip}:{note.target.port}"
    reason = f"{where} {note.old_status}->{note.new_status}"
    if not matched:
        log.info("health.unmatched", lb_id=note.load_balancer_id, target=f"{note.target.ip}:{note.target.port}")
        return {"matched": 0, "dispatched": []}
    now = deps.clock.now()
    settled = settled_gates(deps, (b.pod_uid for b in matched))
    pending = [b for b in matched if b.pod_uid not in settled]
    if note.healthy:
        at = _note_time(note, now)
        for b in pending:
            record_stage(
                deps.store,
                pod=f"{b.namespace}/{b.pod_name}",
                pod_uid=b.pod_uid,
                stage="alive",
                at=at,
                now=now,
                listener=b.listener_id,
                service=b.service,
            )
    if not pending:
        return {"matched": len(matched), "fenced": len(matched), "dispatched": []}
    correlation = f"health-{note.sequence}" if note.sequence is not None else None
    sent = dispatch(deps, _flip_request(pending, reason, correlation))
    return {"matched": len(matched), "fenced": len(matched) - len(pending), "dispatched": sent}


def _lb_ids_for_alarm(deps: Deps, alarm: AlarmCallback, bound_lb_ids: Collection[str]) -> list[str]:
    direct = [lb for lb in alarm.candidate_lb_ids() if lb in bound_lb_ids]
    if direct:
        return direct
    vips = set(alarm.candidate_vips())
    if not vips:
        return []
    clb = deps.require_clb()
    found: list[str] = []
    for lb_id in sorted(bound_lb_ids):
        info = clb.describe_load_balancer(lb_id)
        if info is not None and vips & set(info.vips):
            found.append(lb_id)
    return found


def on_alarm(deps: Deps, alarm: AlarmCallback) -> tuple[AlarmAck, dict[str, Any]]:
    """Coarse signal: poll the named CLB (all pending CLBs when it cannot be identified)."""
    ack = AlarmAck(session_id=alarm.session_id, ret_code=0)
    if alarm.metric_name not in ALARM_METRICS:
        log.info("health.alarm_ignored", metric=alarm.metric_name, session_id=alarm.session_id)
        return ack, {"polled": [], "ignored": f"metric {alarm.metric_name!r} is not a CLB health metric"}
    bound = {b.lb_id for b in deps.store.list_bindings() if b.state in ACTIVE_STATES}
    lb_ids = _lb_ids_for_alarm(deps, alarm, bound)
    return ack, poll_pending(deps, lb_ids=lb_ids or None, correlation_id=f"alarm-{alarm.session_id}")


def poll_pending(
    deps: Deps, *, lb_ids: Collection[str] | None = None, correlation_id: str | None = None
) -> dict[str, Any]:
    """DescribeTargetHealth for CLBs with gate-pending Pods; flip Pods whose pending targets are all healthy."""
    active = [
        b for b in deps.store.list_bindings() if b.state in ACTIVE_STATES and (lb_ids is None or b.lb_id in lb_ids)
    ]
    settled = settled_gates(deps, (b.pod_uid for b in active))
    pending = [b for b in active if b.pod_uid not in settled]
    pending_lbs = sorted({b.lb_id for b in pending})
    if not pending_lbs:
        return {"polled": [], "calls": 0, "dispatched": []}
    clb = deps.require_clb()
    health: dict[tuple[str, str, str, int], bool] = {}
    calls = 0
    for start in range(0, len(pending_lbs), DESCRIBE_HEALTH_BATCH):
        chunk = pending_lbs[start : start + DESCRIBE_HEALTH_BATCH]
        calls += 1
        for lb_id, targets in clb.describe_target_health(chunk).items():
            for t in targets:
                health[(lb_id, t.listener_id, t.ip, t.port)] = t.healthy
    by_pod: dict[str, list[BindingRecord]] = {}
    for binding in pending:
        by_pod.setdefault(binding.pod_uid, []).append(binding)
    ready = [
        b
        for bindings in by_pod.values()
        if all(health.get((b.lb_id, b.listener_id, b.ip, b.port), False) for b in bindings)
        for b in bindings
    ]
    now = deps.clock.now()
    for b in ready:
        pod = f"{b.namespace}/{b.pod_name}"
        record_stage(
            deps.store,
            pod=pod,
            pod_uid=b.pod_uid,
            stage="alive",
            at=now,
            now=now,
            listener=b.listener_id,
            service=b.service,
        )
    sent = dispatch(deps, _flip_request(ready, "health poll: pending targets healthy", correlation_id)) if ready else []
    log.info("health.polled", clbs=len(pending_lbs), calls=calls, pending_pods=len(by_pod), flips=len(sent))
    return {"polled": pending_lbs, "calls": calls, "dispatched": sent}
