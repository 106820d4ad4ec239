"""List+watch loops over the real `kubernetes` client: resume from the last resourceVersion, relist on 410.

One thread per resource (Pods, Services, the cluster ConfigMap, TkeServiceConfigs). Each loop lists
once (emitting ADDED for what exists, and DELETED for what vanished since the previous list, so a 410
gap loses no deletion), then watches from the list's resourceVersion with bookmarks, resuming from
the newest version seen whenever the stream ends. Each event handed to the sink comes back with a
delivery ticket (or None when filtered); `delivered()` reports the newest resourceVersion up to
which every event was delivered, and the objects known at that point, which the relay checkpoints
(`relay.checkpoint`) so that a restarted relay watches on from there instead of losing the gap.
The client's own `Watch` helper is bypassed
because it cannot report a 410 ERROR event in raw (non-deserialised) mode; we read the chunked
stream line by line instead.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from relay.pending import Ticket
from shared.domain.models import CLUSTER_CONFIG_NAME, CLUSTER_CONFIG_NAMESPACE

# kubernetes ships iter_resp_lines unannotated: it splits a streamed (urllib3) response into decoded lines.
_iter_resp_lines = cast("Callable[[Any], Iterator[str]]", iter_resp_lines)

Sink = Callable[[str, str, dict[str, Any]], "Ticket | None"]
HTTP_GONE = 410


class Expired(Exception):
    """The watch resourceVersion is too old (410 Gone): relist."""


@dataclass
class WatchState:
    resource: str
    resource_version: str | None = None
    synced: threading.Event = field(default_factory=threading.Event)
    relists: int = 0
    events: int = 0
    errors: int = 0
    last_error: str = ""


def _minimal(obj: dict[str, Any]) -> dict[str, Any]:
    """What we remember per object to synthesise a DELETED after a relist gap."""
    meta = obj.get("metadata") or {}
    keep = {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "labels") if k in meta}
    return {"kind": obj.get("kind"), "metadata": keep}


class ResourceWatcher:
    """list/watch one resource; `sink(type, resource, object)` receives every change."""

    def __init__(
        self, api_client: client.ApiClient, resource: str, sink: Sink, *, timeout_s: int = 60, backoff_s: float = 1.0
    ) -> None:
        self.resource = resource
        self.state = WatchState(resource=resource)
        self._sink = sink
        self._timeout_s = timeout_s
        self._backoff_s = backoff_s
        self._core = client.CoreV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self._known: dict[str, dict[str, Any]] = {}
        # Deleted objects whose DELETED is not delivered yet: still "known" to a checkpoint.
        self._deleting: dict[str, dict[str, Any]] = {}
        # (ticket or None, resourceVersion, key to forget once delivered), in stream order.
        self._progress: deque[tuple[Ticket | None, str, str | None]] = deque()
        self._progress_lock = threading.Lock()
        self._delivered_rv: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._response: Any = None

    def _call(self, **kwargs: Any) -> Any:
        kwargs["_preload_content"] = False
        if self.resource == "pods":
            return self._core.list_pod_for_all_namespaces(**kwargs)
        if self.resource == "services":
            return self._core.list_service_for_all_namespaces(**kwargs)
        if self.resource == "configmaps":
            return self._core.list_namespaced_config_map(
                CLUSTER_CONFIG_NAMESPACE, field_selector=f"metadata.name={CLUSTER_CONFIG_NAME}", **kwargs
            )
        return self._custom.list_cluster_custom_object("cloud.tencent.com", "v1alpha1", "tkeserviceconfigs", **kwargs)

    @staticmethod
    def _key(obj: dict[str, Any]) -> str:
        meta = obj.get("metadata") or {}
        return f"{meta.get('namespace', '')}/{meta.get('name', '')}"

    def relist(self) -> None:
        data = json.loads(self._call().data)
        current = {self._key(o): o for o in data.get("items") or []}
        list_rv = str((data.get("metadata") or {}).get("resourceVersion") or "")
        for key, gone in list(self._known.items()):
            if key not in current:
                with self._progress_lock:
                    self._deleting[key] = gone
                self._track(self._sink("DELETED", self.resource, gone), "", forget=key)
        for obj in current.values():
            self._track(self._sink("ADDED", self.resource, obj), "")
        self._known = {k: _minimal(o) for k, o in current.items()}
        self._track(None, list_rv)
        self.state.resource_version = list_rv or None
        self.state.relists += 1
        self.state.synced.set()

    def _events(self) -> Iterator[dict[str, Any]]:
        self._response = self._call(
            watch=True,
            resource_version=self.state.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=self._timeout_s,
        )
        try:
            for line in _iter_resp_lines(self._response):
                if line:
                    yield json.loads(line)
        finally:
            self._response.release_conn()

    def watch_once(self) -> None:
        for event in self._events():
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == HTTP_GONE:
                    raise Expired(obj.get("message", "resourceVersion too old"))
                raise ApiException(status=obj.get("code"), reason=obj.get("message"))
            rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
            if rv:
                self.state.resource_version = rv
            if kind == "BOOKMARK":
                self._track(None, rv)
                continue
            self.state.events += 1
            key = self._key(obj)
            with self._progress_lock:  # delivered() copies these from the checkpoint thread
                if kind == "DELETED":
                    self._deleting[key] = self._known.pop(key, _minimal(obj))
                else:
                    self._known[key] = _minimal(obj)
            ticket = self._sink(str(kind), self.resource, obj)
            self._track(ticket, rv, forget=key if kind == "DELETED" else None)
            if self._stop.is_set():
                return

    # --- delivery progress (for the checkpoint) --------------------------------------------------------
    def _track(self, ticket: Ticket | None, rv: str, *, forget: str | None = None) -> None:
        with self._progress_lock:
            if ticket is None and forget is None and self._progress and self._progress[-1][0] is None:
                last = self._progress[-1]
                if last[2] is None:  # consecutive filtered events: keep only the newest version
                    self._progress[-1] = (None, rv or last[1], None)
                    return
            self._progress.append((ticket, rv, forget))

    def resume_from(self, resource_version: str, known: dict[str, dict[str, Any]]) -> None:
        """Start by watching from a checkpoint instead of listing (a 410 still relists, with `known`)."""
        self.state.resource_version = resource_version
        self._delivered_rv = resource_version
        self._known = dict(known)
        self.state.synced.set()

    def delivered(self) -> tuple[str | None, dict[str, dict[str, Any]]]:
        """(resourceVersion up to which every event was delivered, the objects known there)."""
        with self._progress_lock:
            while self._progress:
                ticket, rv, forget = self._progress[0]
                if ticket is not None and not ticket.done:
                    break
                self._progress.popleft()
                if forget is not None:
                    self._deleting.pop(forget, None)
                if rv:
                    self._delivered_rv = rv
            return self._delivered_rv, {**self._known, **self._deleting}

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.state.resource_version is None:
                    self.relist()
                self.watch_once()
            except (Expired, ApiException) as exc:
                if isinstance(exc, Expired) or exc.status == HTTP_GONE:
                    self.state.resource_version = None  # relist on the next turn
                    continue
                self._note_error(exc)
            except Exception as exc:  # connection resets, timeouts: keep the resume point and retry
                self._note_error(exc)

    def _note_error(self, exc: Exception) -> None:
        self.state.errors += 1
        self.state.last_error = f"{type(exc).__name__}: {exc}"[:300]
        self._stop.wait(self._backoff_s)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"relay-watch-{self.resource}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            # The stream may already be closed; stopping must not fail.
            with contextlib.suppress(Exception):
                response.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=15)
