"""The relay process: wires the filters, the batcher, the audit endpoint and the watch loops.

`Relay.start()` is what `clb-direct relay` runs (and what integration tests start in-process).
Sources: `watch` (Services first, so the selector cache is warm before Pods are filtered; then Pods,
the cluster ConfigMap and TkeServiceConfigs) and/or `audit` (the HTTP endpoint). `stats()` feeds
`/healthz`. In audit-only mode nothing lists Services, so the selector cache stays cold and every Pod
write is forwarded (the router filters against the selector index instead).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from limited_http import HttpLimits
from relay.auth import AuditAuth
from relay.batcher import Batcher
from relay.checkpoint import WatchCheckpoint
from relay.filters import SelectorCache, keep_audit_event, keep_watch_event
from relay.pending import Ticket
from relay.server import RelayHttpServer
from shared.domain.errors import InvalidInput
from shared.domain.routing import ObjectChange
from shared.logging import get_logger
from shared.normalize import normalize_audit, normalize_watch

WATCHED_RESOURCES = ("services", "pods", "configmaps", "tkeserviceconfigs")

if TYPE_CHECKING:
    from kubernetes import client

    from relay.watcher import ResourceWatcher

log = get_logger("clb_direct.relay")


@dataclass
class AuditReceipt:
    """What the audit endpoint answers: events kept, poison events by index, and the delivery ticket."""

    ticket: Ticket
    kept: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)


def _object_key(change: ObjectChange) -> str:
    # The UID keeps a recreated object (same name) apart from its predecessor, whose delete must still be routed.
    return f"{change.kind}/{change.namespace}/{change.name}/{change.uid}"


def _dumps(item: dict[str, Any]) -> bytes:
    return json.dumps(item, separators=(",", ":"), default=str).encode()


def _trim_object(obj: Any) -> Any:
    """The object without managedFields (often half its size; no step reads them)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("metadata"), dict) or "managedFields" not in obj["metadata"]:
        return obj
    meta = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
    return {**obj, "metadata": meta}


def trim_audit_event(event: dict[str, Any]) -> dict[str, Any]:
    """What the router reads of an audit event: everything but requestObject and managedFields.

    Held per object until delivered, so the relay's memory per pending object stays small.
    """
    trimmed = {k: v for k, v in event.items() if k != "requestObject"}
    if "responseObject" in trimmed:
        trimmed["responseObject"] = _trim_object(trimmed["responseObject"])
    return trimmed


# Consecutive failed forwards after which the readiness probe fails (the router is unreachable or refusing).
NOT_READY_AFTER_FAILURES = 3


class Relay:
    def __init__(
        self,
        *,
        batcher: Batcher,
        sources: Collection[str] = ("watch", "audit"),
        api_client: client.ApiClient | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        watch_timeout_s: int = 60,
        watched: Collection[str] = WATCHED_RESOURCES,
        http_limits: HttpLimits | None = None,
        checkpoint_path: str | None = None,
        checkpoint_interval_s: float = 2.0,
        audit_auth: AuditAuth | None = None,
    ) -> None:
        if "watch" in sources and api_client is None:
            raise ValueError("the watch source needs a Kubernetes API client (kubeconfig or in-cluster config)")
        self.batcher = batcher
        if "audit" in sources:
            (audit_auth or AuditAuth()).require_configured()
        self.cache = SelectorCache()
        self.counters: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.sources = frozenset(sources)
        if "watch" in self.sources:
            # Imported only here: an audit-only relay never loads the kubernetes client (~13 MB of RSS).
            from relay.watcher import ResourceWatcher
        self.watchers: list[ResourceWatcher] = [
            ResourceWatcher(api_client, r, self._on_watch_event, timeout_s=watch_timeout_s)
            for r in WATCHED_RESOURCES
            if "watch" in self.sources and api_client is not None and r in watched
        ]
        self.checkpoint = WatchCheckpoint(checkpoint_path) if checkpoint_path else None
        self._checkpoint_interval_s = checkpoint_interval_s
        self._stopping = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self.server = RelayHttpServer(
            host=host,
            port=port,
            on_event_list=self._on_event_list,
            stats=self.stats,
            tls_cert=tls_cert,
            tls_key=tls_key,
            limits=http_limits,
            ack_timeout_s=batcher.config.ack_timeout_s,
            auth=audit_auth,
            on_unauthenticated=lambda: self._count("audit_unauthenticated"),
            ready=self.not_ready_reason,
        )

    # --- sources -------------------------------------------------------------------------------------
    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counters[key] += n

    def _on_event_list(self, event_list: dict[str, Any]) -> AuditReceipt:
        """Filter, validate and queue one EventList; poison events are reported by index and skipped."""
        items = event_list.get("items")
        items = items if isinstance(items, list) else []
        receipt = AuditReceipt(ticket=Ticket())
        for index, raw in enumerate(items):
            try:
                change = self._audit_change(raw)
            except Exception as exc:  # one poison event must never take its neighbours (or the answer) with it
                reason = exc.message if isinstance(exc, InvalidInput) else f"{type(exc).__name__}: {exc}"
                receipt.rejected.append({"index": index, "reason": reason[:300]})
                log.warning("relay.event_malformed", index=index, reason=reason[:300])
                continue
            if change is None:
                continue
            item = {"source": "audit", "event": trim_audit_event(raw)}
            self.batcher.offer(
                _object_key(change), change.resource_version, change.action == "delete", _dumps(item), receipt.ticket
            )
            receipt.kept += 1
        self._count("audit_received", len(items))
        self._count("audit_malformed", len(receipt.rejected))
        self._count("audit_filtered", len(items) - receipt.kept - len(receipt.rejected))
        return receipt

    def _audit_change(self, raw: object) -> ObjectChange | None:
        if not isinstance(raw, dict):
            raise InvalidInput(f"audit event must be a JSON object, got {type(raw).__name__}")
        try:
            keep = keep_audit_event(raw, self.cache)
        except (TypeError, ValueError, AttributeError):
            keep = True  # the cheap filter cannot read it: the full parser names what is wrong
        return normalize_audit(raw) if keep else None

    def _on_watch_event(self, watch_type: str, resource: str, obj: dict[str, Any]) -> Ticket | None:
        self._count("watch_received")
        try:
            keep = keep_watch_event(watch_type, resource, obj, self.cache)
        except (TypeError, ValueError, AttributeError):
            keep = True
        if not keep:
            self._count("watch_filtered")
            return None
        try:
            change = normalize_watch(watch_type, resource, obj)
        except Exception as exc:
            reason = exc.message if isinstance(exc, InvalidInput) else f"{type(exc).__name__}: {exc}"
            self._count("watch_malformed")
            log.warning("relay.event_malformed", resource=resource, type=watch_type, reason=reason[:300])
            return None
        if change is None:
            self._count("watch_filtered")
            return None
        ticket = Ticket()
        item = {"source": "watch", "type": watch_type, "resource": resource, "object": _trim_object(obj)}
        self.batcher.offer(
            _object_key(change), change.resource_version, change.action == "delete", _dumps(item), ticket
        )
        return ticket

    # --- lifecycle -----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.server.url

    def start(self, *, sync_timeout_s: float = 30.0) -> None:
        self.batcher.start()
        self.server.start()  # /healthz is served in every mode; EventLists are accepted in audit mode
        self._resume_watches()
        for watcher in self.watchers:
            watcher.start()
            if watcher.resource == "services":
                # Pods are filtered by the Services' selectors: have them before the first Pod list.
                watcher.state.synced.wait(sync_timeout_s)
                self.cache.mark_warm()

    def _resume_watches(self) -> None:
        """Watch on from the checkpoint; Services always relist (the selector cache needs them all)."""
        if self.checkpoint is None or not self.watchers:
            return
        saved = self.checkpoint.load()
        for watcher in self.watchers:
            entry = saved.get(watcher.resource)
            if entry and watcher.resource != "services":
                watcher.resume_from(entry["resourceVersion"], entry["known"])
                self._count("watch_resumed")
        self._stopping.clear()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="relay-checkpoint", daemon=True)
        self._checkpointer.start()

    def save_checkpoint(self) -> None:
        if self.checkpoint is None:
            return
        state: dict[str, dict[str, Any]] = {}
        for watcher in self.watchers:
            rv, known = watcher.delivered()
            if rv:
                state[watcher.resource] = {"resourceVersion": rv, "known": known}
        self.checkpoint.save(state)

    def _checkpoint_loop(self) -> None:
        while not self._stopping.wait(self._checkpoint_interval_s):
            try:
                self.save_checkpoint()
            except OSError as exc:  # a full or read-only disk must not stop the relay; it only loses the resume point
                self._count("checkpoint_errors")
                log.warning("relay.checkpoint_failed", error=str(exc))

    def stop(self) -> None:
        for watcher in self.watchers:
            watcher.stop()
        self.server.stop()
        self.batcher.stop(flush=True)
        self._stopping.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=10)
        self.save_checkpoint()

    def not_ready_reason(self) -> str | None:
        """Why this replica should get no audit traffic: a watch not (re)synced, or the router refusing."""
        unsynced = [w.resource for w in self.watchers if not w.state.synced.is_set()]
        if unsynced:
            return f"watch not synced: {', '.join(unsynced)}"
        failures = self.batcher.consecutive_failures
        if failures >= NOT_READY_AFTER_FAILURES:
            return f"the last {failures} forwards to the router failed"
        return None

    def stats(self) -> dict[str, Any]:
        with self._lock:
            counters = dict(self.counters)
        return {
            "status": "ok",
            "sources": sorted(self.sources),
            "pending": self.batcher.pending(),
            "batcher": self.batcher.stats(),
            "relay": counters,
            "http": self.server.http_stats(),
            "selectorCache": {"warm": self.cache.warm, "services": self.cache.size()},
            "watches": [
                {
                    "resource": w.resource,
                    "resourceVersion": w.state.resource_version,
                    "synced": w.state.synced.is_set(),
                    "relists": w.state.relists,
                    "events": w.state.events,
                    "errors": w.state.errors,
                    "lastError": w.state.last_error,
                }
                for w in self.watchers
            ],
        }
