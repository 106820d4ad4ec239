"""The router service: relay batches, raw audit EventLists and CLS audit logs -> steps, per CLB.

Called by `functions/router/handler.py`. Flow: verify (signature, skew, batch-id replay) -> normalise
each item (a malformed one is reported by index, the rest go on) -> drop duplicates (event log ids:
auditID+stage, watch uid+resourceVersion) and stale versions (older than the live version a step read,
never a version remembered from an event)
-> plan (pure, `shared.domain.routing`) -> dispatch through the Invoker (split under 128 KB) -> only
then record the events. The batch id is claimed atomically before routing
and released when routing fails, so a failed dispatch can be retried by the sender and a replayed
batch (even 8 concurrent copies) changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.deps import Deps
from shared.dispatch import dispatch
from shared.domain.errors import InvalidInput
from shared.domain.json_input import check_json_value, parse_json
from shared.domain.models import SelectorEntry, StoredEvent
from shared.domain.routing import (
    ObjectChange,
    is_stale,
    plan_changes,
)
from shared.events.apigw import ApiGatewayEvent, ApiGatewayResponse
from shared.events.audit import AuditEventList
from shared.events.base import validate_wire
from shared.events.cls import ClsEvent
from shared.events.relay import AuditItem, RelayBatch
from shared.keys import batch_marker_key, version_key
from shared.logging import get_logger
from shared.normalize import normalize_audit, normalize_watch
from shared.signing import (
    BATCH_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureRejected,
    verify_batch,
)

log = get_logger("clb_direct.router")


@dataclass
class RouteResult:
    """What one delivery did; returned to the sender as JSON."""

    correlation_id: str
    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    stale: int = 0
    ignored: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    dispatched: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "correlationId": self.correlation_id,
            "received": self.received,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "stale": self.stale,
            "ignored": self.ignored,
            "errors": self.errors,
            "dispatched": self.dispatched,
        }


def _rv_key(change: ObjectChange) -> str | None:
    """Where the confirmed live version of the changed object is (None: no UID, nothing to compare)."""
    kind = {"Pod": "Pod", "Service": "Service"}.get(change.kind)
    return version_key(kind, change.namespace, change.name, change.uid) if kind and change.uid else None


def _select_fresh(deps: Deps, changes: list[ObjectChange], result: RouteResult) -> list[ObjectChange]:
    """Drop duplicates and versions older than the live object's (reads only).

    The version compared against is one the API server returned to a step (`shared.versions`), never one
    from an event: a forged or buggy hint can make its own event look fresh, never a later one stale.
    """
    now = deps.clock.now()
    fresh: list[ObjectChange] = []
    seen_ids: set[str] = set()
    confirmed: dict[str, str] = {}
    for change in changes:
        if change.event_id in seen_ids or deps.store.get_event(change.event_id, now=now) is not None:
            result.duplicates += 1
            continue
        seen_ids.add(change.event_id)
        key = _rv_key(change)
        if key is not None and key not in confirmed:
            confirmed[key] = deps.store.kv_get(key, now=now) or ""
        if key is not None and is_stale(change, confirmed[key]):
            result.stale += 1
            log.info("event.stale", event_id=change.event_id, object=change.object_key, rv=change.resource_version)
            continue
        fresh.append(change)
    return fresh


def _record(deps: Deps, changes: list[ObjectChange]) -> None:
    now = deps.clock.now()
    ttl = deps.settings.event_log_ttl_s
    for change in changes:
        deps.store.append_event(
            StoredEvent(
                id=change.event_id,
                received_at=now,
                source=change.source,
                kind=change.kind,
                summary=change.summary,
                payload=change.model_dump(mode="json"),
            ),
            ttl_s=ttl,
            now=now,
        )


def load_selectors(deps: Deps, changes: list[ObjectChange]) -> dict[str, list[SelectorEntry]]:
    namespaces = {c.namespace for c in changes if c.kind == "Pod"}
    return {ns: deps.store.list_selectors(ns) for ns in sorted(namespaces)}


def route_changes(deps: Deps, changes: list[ObjectChange], result: RouteResult) -> RouteResult:
    """Dedupe, discard stale, plan, dispatch, then record. Mutates and returns `result`."""
    fresh = _select_fresh(deps, changes, result)
    requests = plan_changes(fresh, load_selectors(deps, fresh), correlation_id=result.correlation_id)
    result.dispatched = dispatch(deps, requests)
    _record(deps, fresh)
    result.accepted = len(fresh)
    return result


def _normalise_items(items: list[tuple[int, str, Any]], result: RouteResult) -> list[ObjectChange]:
    """(index, source, payload) -> changes; a malformed item is reported and skipped."""
    changes: list[ObjectChange] = []
    for index, source, payload in items:
        try:
            change = normalize_audit(payload) if source == "audit" else normalize_watch(*payload)
        except InvalidInput as exc:
            result.errors.append({"index": index, "reason": exc.message})
            log.warning("event.malformed", index=index, reason=exc.message)
            continue
        except Exception as exc:  # a parser bug on one item must not take the batch (and its valid items) with it
            result.errors.append({"index": index, "reason": f"item could not be read ({type(exc).__name__})"})
            log.exception("event.unreadable", index=index, error=type(exc).__name__)
            continue
        if change is None:
            result.ignored += 1
        else:
            changes.append(change)
    return changes


def route_relay_batch(deps: Deps, batch: RelayBatch) -> RouteResult:
    result = RouteResult(correlation_id=batch.batch_id)
    items: list[tuple[int, str, Any]] = [
        (i, "audit", item.event)
        if isinstance(item, AuditItem)
        else (i, "watch", (item.type, item.resource, item.object))
        for i, item in enumerate(batch.items)
    ]
    result.received = len(items)
    return route_changes(deps, _normalise_items(items, result), result)


def route_event_list(deps: Deps, events: AuditEventList, *, correlation_id: str) -> RouteResult:
    check_json_value(events.items, what="EventList items")
    result = RouteResult(correlation_id=correlation_id)
    items = [(i, "audit", raw) for i, raw in enumerate(events.items)]
    result.received = len(items)
    return route_changes(deps, _normalise_items(items, result), result)


def route_cls(deps: Deps, event: ClsEvent, *, correlation_id: str) -> RouteResult:
    """CLS trigger: each record's content is one audit Event (TKE cluster audit shipped to CLS)."""
    payload = event.decode()
    result = RouteResult(correlation_id=correlation_id)
    items: list[tuple[int, str, Any]] = []
    result.received = len(payload.records)
    for index, record in enumerate(payload.records):
        try:
            items.append((index, "audit", parse_json(record.content, what="record content")))
        except InvalidInput as exc:
            result.errors.append({"index": index, "reason": exc.message})
    return route_changes(deps, _normalise_items(items, result), result)


def _parse_delivery(event: ApiGatewayEvent, body: bytes) -> tuple[str, RelayBatch | AuditEventList]:
    """The verified body -> (batch id, relay batch or raw EventList); `InvalidInput` when malformed."""
    parsed = parse_json(body, what="request body")
    header_id = event.header(BATCH_ID_HEADER)
    if AuditEventList.looks_like(parsed):
        if not header_id:
            raise SignatureRejected(f"a signed EventList needs the {BATCH_ID_HEADER} header (replay protection)")
        return header_id, validate_wire(AuditEventList, parsed, what="EventList")
    batch = RelayBatch.parse_value(parsed)
    if header_id is not None and header_id != batch.batch_id:
        raise SignatureRejected(f"{BATCH_ID_HEADER} {header_id!r} does not match the body's batchId")
    return batch.batch_id, batch


def route_signed(deps: Deps, event: ApiGatewayEvent) -> ApiGatewayResponse:
    """An HTTP delivery from the relay: 401 unless signed, fresh and never seen; 400 if malformed.

    The batch id is claimed atomically (set-if-absent) before anything is routed, so concurrent copies of
    one signed batch dispatch once; a delivery that fails is un-claimed so the sender's retry can run.
    """
    settings = deps.settings
    now = deps.clock.now()
    marker_ttl_s = 2 * settings.relay_max_skew_s + 60  # outlasts the skew window: older copies fail that check
    try:
        body = event.raw_body()
        verify_batch(
            settings.relay_hmac_keys(),
            body,
            timestamp=event.header(TIMESTAMP_HEADER),
            signature=event.header(SIGNATURE_HEADER),
            now=now,
            max_skew_s=settings.relay_max_skew_s,
        )
        batch_id, delivery = _parse_delivery(event, body)
        if not deps.store.kv_set_if_absent(batch_marker_key(batch_id), "1", ttl_s=marker_ttl_s, now=now):
            raise SignatureRejected(f"batch {batch_id} was already delivered; a replay is refused")
    except SignatureRejected as exc:
        log.warning("batch.rejected", reason=exc.message)
        return ApiGatewayResponse.of(401, exc.to_dict())
    except InvalidInput as exc:
        return ApiGatewayResponse.of(400, {"error": "InvalidInput", "message": exc.message})
    try:
        if isinstance(delivery, RelayBatch):
            result = route_relay_batch(deps, delivery)
        else:
            result = route_event_list(deps, delivery, correlation_id=batch_id)
    except BaseException:
        deps.store.kv_delete(batch_marker_key(batch_id))
        raise
    log.info("batch.routed", batch_id=batch_id, **{k: v for k, v in result.to_dict().items() if isinstance(v, int)})
    return ApiGatewayResponse.of(200, result.to_dict())
