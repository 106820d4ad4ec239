"""Kubernetes Events for clb-direct: core/v1 Events with client-side aggregation of repeats.

`KubernetesCluster.emit_event` delegates here. Steps report every transition (docs/architecture.md, rule 8), and a
retried step would otherwise create one Event per attempt; like client-go's EventCorrelator, a repeat of
the same object + type + reason + message within a window bumps the earlier Event's `count` and
`lastTimestamp` instead. The cache is per process and bounded (LRU). Recording is best effort.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from shared.adapters import k8s_mapping as km
from shared.domain.errors import NotFound
from shared.domain.models import ObjectRef
from shared.logging import get_logger
from shared.ports import Clock

log = get_logger("shared.adapters.kubernetes")

COMPONENT = "clb-direct"
MERGE_PATCH = "application/merge-patch+json"
EVENT_NOTE_LIMIT = 1024


@dataclass
class _SeenEvent:
    namespace: str
    name: str
    count: int
    last_seen: float


class EventRecorder:
    def __init__(
        self,
        core: client.CoreV1Api,
        clock: Clock,
        *,
        window_s: float = 600.0,
        cache_size: int = 512,
        reporting_instance: str = COMPONENT,
        request_timeout_s: float = 10.0,
    ) -> None:
        self._core = core
        self._request_timeout_s = request_timeout_s
        self._clock = clock
        self._window_s = window_s
        self._cache_size = cache_size
        self._events: OrderedDict[tuple[str, ...], _SeenEvent] = OrderedDict()
        self._instance = reporting_instance

    def emit(self, regarding: ObjectRef, *, type: str, reason: str, message: str) -> None:
        """Record a core/v1 Event; a repeat (same object, type, reason, message) within the window bumps
        the earlier Event's count instead of creating another. Best effort, like client-go's recorder:
        a failure is logged, never raised, so reporting cannot fail the step it reports on."""
        message = message[:EVENT_NOTE_LIMIT]
        key = (regarding.kind, regarding.namespace, regarding.name, regarding.uid or "", type, reason, message)
        now = self._clock.now()
        stamp = km.epoch_rfc3339(now)
        try:
            seen = self._events.get(key)
            if seen is not None and now - seen.last_seen <= self._window_s and self._bump_event(seen, stamp):
                seen.count += 1
                seen.last_seen = now
                self._events.move_to_end(key)
                return
            self._events[key] = self._create_event(regarding, type, reason, message, stamp=stamp, now=now)
            self._events.move_to_end(key)
            while len(self._events) > self._cache_size:
                self._events.popitem(last=False)
        except Exception as exc:  # an Event must never fail the step that reports it
            log.warning(
                "event.emit_failed", reason=reason, object=f"{regarding.namespace}/{regarding.name}", error=str(exc)
            )

    def _bump_event(self, seen: _SeenEvent, stamp: str) -> bool:
        body = {"count": seen.count + 1, "lastTimestamp": stamp}
        try:
            km.call_api(
                f"update Event {seen.namespace}/{seen.name}",
                self._core.patch_namespaced_event,
                seen.name,
                seen.namespace,
                body,
                _content_type=MERGE_PATCH,
                _request_timeout=self._request_timeout_s,
            )
        except NotFound:
            return False  # expired (events have a TTL): start a new one
        return True

    def _create_event(
        self, regarding: ObjectRef, type: str, reason: str, message: str, *, stamp: str, now: float
    ) -> _SeenEvent:
        name = f"{regarding.name}.{int(now * 1e9):x}{secrets.token_hex(2)}"
        involved: dict[str, Any] = {
            "kind": regarding.kind,
            "namespace": regarding.namespace,
            "name": regarding.name,
            "apiVersion": regarding.api_version,
        }
        if regarding.uid:
            involved["uid"] = regarding.uid
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": regarding.namespace},
            "involvedObject": involved,
            "type": type,
            "reason": reason,
            "message": message,
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._instance,
            "action": reason,
        }
        km.call_api(
            f"create Event for {regarding.kind} {regarding.namespace}/{regarding.name}",
            self._core.create_namespaced_event,
            regarding.namespace,
            client.CoreV1Event.model_validate(body),
            _request_timeout=self._request_timeout_s,
        )
        return _SeenEvent(namespace=regarding.namespace, name=name, count=1, last_seen=now)
