"""Per-Pod stage timelines: when each step of a Pod's way onto and off the CLB happened.

Called by the steps that observe a stage: the bind batch (`admitted`, `containers_ready`, `registered` per
listener), the health service and the flip step (`alive` per listener, `gate_true`), the unbind batch
(`deletion_seen`, `weight_zero` and `deregistered` per listener). Read by `clb-direct timeline` and
`clb-direct latency` (`pod_timeline`, `service_latencies`).

Each stage is recorded once, first observation wins (`kv_set_if_absent`, so concurrent invocations never
race a read-modify-write), and emitted as a `pod_stage` metric record (`shared.metrics`) with the latency
from the stage it follows as `stage_latency`. The store keeps, with a TTL on every stage key, a set of the
Pod's stage marks (`timeline-pod:<ns>/<name>`) and of the Pods seen per Service (`timeline-svc:<ns>/<svc>`);
the sets have no TTL of their own, so `prune_service` drops Pods whose marks have expired.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from shared.domain.backends import DesiredTarget
from shared.domain.models import BindingRecord, PodInfo
from shared.keys import timeline_mark_key, timeline_pod_set, timeline_service_set
from shared.logging import get_logger
from shared.metrics import emit_metric
from shared.ports import KeyValueStore, PendingSets
from wire_time import parse_rfc3339

STAGES: Final = (
    "admitted",
    "containers_ready",
    "registered",
    "alive",
    "gate_true",
    "deletion_seen",
    "weight_zero",
    "deregistered",
)
# The stage each latency is measured from (the last listener's mark for per-listener stages).
LATENCY_FROM: Final = {
    "containers_ready": "admitted",
    "registered": "containers_ready",
    "alive": "registered",
    "gate_true": "alive",
    "weight_zero": "deletion_seen",
    "deregistered": "weight_zero",
}
TIMELINE_TTL_S: Final = 7 * 24 * 3600.0

log = get_logger("clb_direct.timeline")


class TimelineStore(KeyValueStore, PendingSets, Protocol):
    """What timelines need of the store: first-wins stage marks (KV) and the per-Pod/per-Service sets."""


@dataclass(frozen=True)
class StageMark:
    pod: str  # namespace/name
    pod_uid: str
    stage: str
    at: float
    listener: str = ""
    service: str = ""

    def to_json(self) -> str:
        return json.dumps(
            {"uid": self.pod_uid, "stage": self.stage, "at": self.at, "listener": self.listener, "svc": self.service},
            sort_keys=True,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, pod: str, text: str) -> StageMark | None:
        try:
            data = json.loads(text)
            return cls(
                pod=pod,
                pod_uid=str(data["uid"]),
                stage=str(data["stage"]),
                at=float(data["at"]),
                listener=str(data.get("listener") or ""),
                service=str(data.get("svc") or ""),
            )
        except (ValueError, KeyError, TypeError):
            return None


def _mark_key(mark: StageMark) -> str:
    return timeline_mark_key(mark.pod_uid, mark.stage, mark.listener)


def record_stage(
    store: TimelineStore,
    *,
    pod: str,
    pod_uid: str,
    stage: str,
    at: float,
    now: float,
    listener: str = "",
    service: str = "",
) -> bool:
    """Record a stage once (first observation wins); emits its metrics. True when it was new.

    Timelines are observability: a store failure here is logged and never fails the step.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown timeline stage {stage!r}; one of {', '.join(STAGES)}")
    mark = StageMark(pod=pod, pod_uid=pod_uid, stage=stage, at=at, listener=listener, service=service)
    try:
        if not store.kv_set_if_absent(_mark_key(mark), f"{at!r}", ttl_s=TIMELINE_TTL_S, now=now):
            return False
        store.pending_add(timeline_pod_set(pod), [mark.to_json()])
        if service:
            store.pending_add(timeline_service_set(service), [pod])
        earlier = _latest(_marks(store, pod, pod_uid), LATENCY_FROM.get(stage, ""))
    except Exception as exc:  # observability must not break the step that observed the stage
        log.warning("timeline.record_failed", pod=pod, stage=stage, error=str(exc))
        return False
    dims = {"pod": pod, "pod_uid": pod_uid, "stage": stage}
    dims.update({k: v for k, v in (("listener", listener), ("service", service)) if v})
    emit_metric("pod_stage", at, "Seconds", **dims)
    if earlier is not None:
        emit_metric("stage_latency", max(0.0, at - earlier), "Seconds", since=LATENCY_FROM[stage], **dims)
    return True


def _marks(store: TimelineStore, pod: str, pod_uid: str | None = None) -> list[StageMark]:
    marks = [m for text in store.pending_members(timeline_pod_set(pod)) if (m := StageMark.from_json(pod, text))]
    return [m for m in marks if pod_uid is None or m.pod_uid == pod_uid]


def has_stage(store: TimelineStore, pod: str, pod_uid: str, stage: str) -> bool:
    return any(m.stage == stage for m in _marks(store, pod, pod_uid))


def _latest(marks: Iterable[StageMark], stage: str) -> float | None:
    times = [m.at for m in marks if m.stage == stage]
    return max(times) if times else None


def pod_timeline(store: TimelineStore, pod: str) -> list[StageMark]:
    """The newest incarnation's marks of Pod `namespace/name`, in stage order then time."""
    marks = _marks(store, pod)
    if not marks:
        return []
    newest = max(marks, key=lambda m: m.at).pod_uid
    order = {s: i for i, s in enumerate(STAGES)}
    return sorted((m for m in marks if m.pod_uid == newest), key=lambda m: (order[m.stage], m.at, m.listener))


def stage_durations(marks: Sequence[StageMark]) -> dict[str, float]:
    """Per stage with a predecessor: seconds from the predecessor's last mark to this stage's last mark."""
    out: dict[str, float] = {}
    for stage, since in LATENCY_FROM.items():
        end, start = _latest(marks, stage), _latest(marks, since)
        if end is not None and start is not None:
            out[f"{since}->{stage}"] = max(0.0, end - start)
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def service_latencies(store: TimelineStore, service: str) -> dict[str, list[float]]:
    """Per stage transition, the durations of every Pod recorded for `namespace/name`."""
    out: dict[str, list[float]] = {}
    for pod in store.pending_members(timeline_service_set(service)):
        marks = _marks(store, pod)
        for uid in sorted({m.pod_uid for m in marks}):
            for name, seconds in stage_durations([m for m in marks if m.pod_uid == uid]).items():
                out.setdefault(name, []).append(seconds)
    return out


def prune_service(store: TimelineStore, service: str, *, now: float) -> int:
    """Forget Pods of a Service whose stage marks have all expired; returns how many were dropped."""
    dropped = 0
    for pod in store.pending_members(timeline_service_set(service)):
        live = [m for m in _marks(store, pod) if store.kv_get(_mark_key(m), now=now) is not None]
        if live:
            continue
        store.pending_take(timeline_pod_set(pod))
        dropped += 1
    if dropped:
        keep = [
            p for p in store.pending_take(timeline_service_set(service)) if store.pending_members(timeline_pod_set(p))
        ]
        store.pending_add(timeline_service_set(service), keep)
    return dropped


def record_registered(
    store: TimelineStore, targets: Iterable[DesiredTarget | BindingRecord], pods: Mapping[str, PodInfo], *, now: float
) -> None:
    """The bind batch registered `targets`: mark admitted / containers_ready (from the Pod) and registered."""
    seen: set[str] = set()
    for t in targets:
        name = f"{t.namespace}/{t.pod_name}"
        pod = pods.get(t.pod_uid)
        if t.pod_uid not in seen and pod is not None:
            seen.add(t.pod_uid)
            created = parse_k8s_time(pod.creation_timestamp)
            if created is not None:
                record_stage(
                    store, pod=name, pod_uid=t.pod_uid, stage="admitted", at=created, now=now, service=t.service
                )
            ready = pod.condition("ContainersReady")
            ready_at = parse_k8s_time(ready.last_transition_time if ready is not None else None)
            record_stage(
                store,
                pod=name,
                pod_uid=t.pod_uid,
                stage="containers_ready",
                at=now if ready_at is None else ready_at,
                now=now,
                service=t.service,
            )
        record_stage(
            store,
            pod=name,
            pod_uid=t.pod_uid,
            stage="registered",
            at=now,
            now=now,
            listener=t.listener_id,
            service=t.service,
        )


def record_bindings(store: TimelineStore, bindings: Iterable[BindingRecord], stage: str, *, now: float) -> None:
    """The unbind batch reached `stage` (deletion_seen, weight_zero, deregistered) for these bindings."""
    per_listener = stage != "deletion_seen"
    for b in bindings:
        record_stage(
            store,
            pod=f"{b.namespace}/{b.pod_name}",
            pod_uid=b.pod_uid,
            stage=stage,
            at=now,
            now=now,
            listener=b.listener_id if per_listener else "",
            service=b.service,
        )


def parse_k8s_time(value: str | None) -> float | None:
    """Epoch seconds of a Kubernetes timestamp (`2023-11-14T22:13:20Z`, whole seconds on the wire)."""
    if not value:
        return None
    try:
        return parse_rfc3339(value).timestamp()
    except ValueError:
        return None
