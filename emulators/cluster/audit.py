"""Audit webhook backend: turns the store's write records into ``audit.k8s.io/v1`` EventLists and POSTs them.

Installed as the object store's audit sink (``store.audit_sink = backend.record``) by
``clb-direct emulate cluster`` and tests. It behaves like the apiserver's buffered webhook backend:
one ``ResponseComplete`` event per write at the level the policy gives (RequestResponse
for pods, pods/status, pods/binding, services, services/status, configmaps, tkeserviceconfigs;
Metadata for secrets; nothing else), batched by size and time on a background thread, each batch sent
on its own thread (so batches may arrive out of order), retried on any error with exponential backoff
(factor 1.5, jitter 0.2, 5 attempts) and then dropped. Quirks kept: ``objectRef.name`` is omitted for
generateName creates, ``requestObject`` of a patch is the patch document, timestamps have microseconds.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from emulators.cluster.admission import user_info
from emulators.cluster.context import WriteRecord

log = logging.getLogger(__name__)
Obj = dict[str, Any]

_REQUEST_RESPONSE = {
    ("pods", None),
    ("pods", "status"),
    ("pods", "binding"),
    ("services", None),
    ("services", "status"),
    ("configmaps", None),
    ("tkeserviceconfigs", None),
    ("tkeserviceconfigs", "status"),
}


def default_policy(record: WriteRecord) -> str | None:
    """The project's audit policy (``infra/`` ships the same rules): level for a write, or None."""
    if (record.resource, record.subresource) in _REQUEST_RESPONSE:
        return "RequestResponse"
    if record.resource == "secrets":
        return "Metadata"
    return None


def micro_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_event(record: WriteRecord, level: str) -> Obj:
    """One ``audit.k8s.io/v1`` Event at stage ResponseComplete for ``record``."""
    object_ref: Obj = {"resource": record.resource}
    if record.namespace:
        object_ref["namespace"] = record.namespace
    if record.name:
        object_ref["name"] = record.name
    if record.api_group:
        object_ref["apiGroup"] = record.api_group
    object_ref["apiVersion"] = record.api_version
    if record.subresource:
        object_ref["subresource"] = record.subresource
    event: Obj = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": level,
        "auditID": record.request.audit_id,
        "stage": "ResponseComplete",
        "requestURI": record.request.request_uri,
        "verb": record.verb,
        "user": user_info(record.actor),
        "sourceIPs": list(record.request.source_ips) or ["127.0.0.1"],
        "objectRef": object_ref,
        "responseStatus": record.response_status,
        "requestReceivedTimestamp": micro_time(record.received),
        "stageTimestamp": micro_time(record.completed),
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
    }
    if record.request.user_agent:
        event["userAgent"] = record.request.user_agent
    if level in ("Request", "RequestResponse") and record.request_object is not None:
        event["requestObject"] = record.request_object
    if level == "RequestResponse" and record.response_object is not None:
        event["responseObject"] = record.response_object
    return event


class AuditWebhookBackend:
    """Buffered, batching audit webhook sender with the apiserver's retry-then-drop behaviour."""

    def __init__(
        self,
        url: str,
        *,
        ca_file: str | None = None,
        policy: Callable[[WriteRecord], str | None] = default_policy,
        buffer_size: int = 10000,
        batch_max_size: int = 400,
        batch_max_wait_s: float = 30.0,
        initial_backoff_s: float = 10.0,
        backoff_steps: int = 5,
        request_timeout_s: float = 30.0,
        token: str | None = None,
        client_cert: tuple[str, str] | None = None,
    ) -> None:
        self.url = url
        # The webhook kubeconfig's user: a bearer token and/or a client certificate (cert file, key file).
        self._headers = {"Content-Type": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._context = ssl.create_default_context(cafile=ca_file) if url.startswith("https") else None
        if self._context is not None and client_cert is not None:
            self._context.load_cert_chain(*client_cert)
        self._policy = policy
        self._queue: queue.Queue[Obj] = queue.Queue(maxsize=buffer_size)
        self._batch_max_size = batch_max_size
        self._batch_max_wait_s = batch_max_wait_s
        self._initial_backoff_s = initial_backoff_s
        self._backoff_steps = backoff_steps
        self._timeout_s = request_timeout_s
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._in_flight = 0
        self._worker: threading.Thread | None = None
        self._senders: set[threading.Thread] = set()
        self.sent_batches = 0
        self.dropped_events = 0

    def record(self, record: WriteRecord) -> None:
        """The object store's audit sink: enqueue the event, dropping it if the buffer is full."""
        level = self._policy(record)
        if level is None or level == "None":
            return
        with self._idle:
            try:
                self._queue.put_nowait(to_event(record, level))
            except queue.Full:
                self.dropped_events += 1
                log.warning("audit buffer queue blocked; dropping an audit event")
                return
            self._in_flight += 1

    def start(self) -> AuditWebhookBackend:
        self._worker = threading.Thread(target=self._batch_loop, name="audit-batcher", daemon=True)
        self._worker.start()
        return self

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until every recorded event was delivered or dropped; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._idle:
            while self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def stop(self, timeout_s: float = 10.0) -> None:
        """Send what is buffered (one attempt per batch), then stop all threads."""
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout_s)
        for sender in list(self._senders):
            sender.join(timeout_s)

    def _batch_loop(self) -> None:
        while not (self._stop.is_set() and self._queue.empty()):
            try:
                first = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            batch = [first]
            deadline = time.monotonic() + self._batch_max_wait_s
            while len(batch) < self._batch_max_size and not self._stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(self._queue.get(timeout=min(remaining, 0.1)))
                except queue.Empty:
                    continue
            sender = threading.Thread(target=self._deliver, args=(batch,), name="audit-sender", daemon=True)
            self._senders.add(sender)
            sender.start()

    def _deliver(self, batch: list[Obj]) -> None:
        body = json.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": batch})
        delay = self._initial_backoff_s
        delivered = False
        for attempt in range(self._backoff_steps):
            error = self._post(body.encode())
            if error is None:
                delivered = True
                break
            log.warning("audit webhook POST failed (attempt %d/%d): %s", attempt + 1, self._backoff_steps, error)
            if self._stop.is_set() or attempt == self._backoff_steps - 1:
                break
            self._stop.wait(delay * (1 + random.uniform(0, 0.2)))
            delay *= 1.5
        with self._idle:
            if delivered:
                self.sent_batches += 1
            else:
                self.dropped_events += len(batch)
                log.error("audit webhook batch of %d events dropped after retries", len(batch))
            self._in_flight -= len(batch)
            self._idle.notify_all()
        self._senders.discard(threading.current_thread())

    def _post(self, data: bytes) -> str | None:
        request = urllib.request.Request(self.url, data=data, method="POST", headers=self._headers)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s, context=self._context) as reply:
                reply.read()
                return None if 200 <= reply.status < 300 else f"HTTP {reply.status}"
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            return str(getattr(exc, "reason", exc))
