"""The relay process: wires the filters, the batcher, the audit endpoint and the watch loops.

`Relay.start()` is what `clb-direct relay` runs (and what integration tests start in-process).
Sources: `watch` (Services first, so the selector cache is warm before Pods are filtered; then Pods,
the cluster ConfigMap and TkeServiceConfigs) and/or `audit` (the HTTP endpoint). `stats()` feeds
`/healthz`. In audit-only mode nothing lists Services, so the selector cache stays cold and every Pod
write is forwarded (the router filters against the selector index instead).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Collection
from typing import Any

from kubernetes import client

from limited_http import HttpLimits
from relay.batcher import Batcher
from relay.filters import SelectorCache, keep_audit_event, keep_watch_event
from relay.server import RelayHttpServer
from relay.watcher import ResourceWatcher
from shared.events.relay import AuditItem, WatchItem

WATCHED_RESOURCES = ("services", "pods", "configmaps", "tkeserviceconfigs")


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
    ) -> None:
        if "watch" in sources and api_client is None:
            raise ValueError("the watch source needs a Kubernetes API client (kubeconfig or in-cluster config)")
        self.batcher = batcher
        self.cache = SelectorCache()
        self.counters: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.sources = frozenset(sources)
        self.watchers = [
            ResourceWatcher(api_client, r, self._on_watch_event, timeout_s=watch_timeout_s)
            for r in WATCHED_RESOURCES
            if "watch" in self.sources and api_client is not None and r in watched
        ]
        self.server = RelayHttpServer(
            host=host,
            port=port,
            on_event_list=self._on_event_list,
            stats=self.stats,
            tls_cert=tls_cert,
            tls_key=tls_key,
            limits=http_limits,
        )

    # --- sources -------------------------------------------------------------------------------------
    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counters[key] += n

    def _on_event_list(self, event_list: dict[str, Any]) -> int:
        items = event_list.get("items") or []
        kept = 0
        for raw in items:
            if isinstance(raw, dict) and keep_audit_event(raw, self.cache):
                self.batcher.offer(AuditItem(event=raw))
                kept += 1
            elif not isinstance(raw, dict):
                # Not an object at all: forward it anyway so the router reports it (index + reason).
                self.batcher.offer(AuditItem(event={"malformed": raw}))
                kept += 1
        self._count("audit_received", len(items))
        self._count("audit_filtered", len(items) - kept)
        return kept

    def _on_watch_event(self, watch_type: str, resource: str, obj: dict[str, Any]) -> None:
        self._count("watch_received")
        if keep_watch_event(watch_type, resource, obj, self.cache):
            self.batcher.offer(WatchItem(type=watch_type, resource=resource, object=obj))  # type: ignore[arg-type]
        else:
            self._count("watch_filtered")

    # --- lifecycle -----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.server.url

    def start(self, *, sync_timeout_s: float = 30.0) -> None:
        self.batcher.start()
        self.server.start()  # /healthz is served in every mode; EventLists are accepted in audit mode
        for watcher in self.watchers:
            watcher.start()
            if watcher.resource == "services":
                # Pods are filtered by the Services' selectors: have them before the first Pod list.
                watcher.state.synced.wait(sync_timeout_s)
                self.cache.mark_warm()

    def stop(self) -> None:
        for watcher in self.watchers:
            watcher.stop()
        self.server.stop()
        self.batcher.stop(flush=True)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            counters = dict(self.counters)
        return {
            "status": "ok",
            "sources": sorted(self.sources),
            "pending": self.batcher.pending(),
            "batcher": dict(self.batcher.counters),
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
